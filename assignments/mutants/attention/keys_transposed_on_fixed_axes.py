# mutant: the keys are transposed with k.transpose(2, 3), which assumes 4-D [B, H, L, D] inputs instead of broadcasting leading axes
# replaces: sdpa
# fails: test_sdpa_values
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(2, 3) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
