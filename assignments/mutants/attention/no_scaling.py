# mutant: the scores are not divided by sqrt(D), so the softmax is far too peaked
# replaces: sdpa
# fails: test_sdpa_values, test_sdpa_mask
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
