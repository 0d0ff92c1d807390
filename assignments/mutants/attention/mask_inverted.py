# mutant: the boolean mask is read with the nn.MultiheadAttention convention (True = blocked)
# replaces: sdpa
# fails: test_sdpa_mask
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
