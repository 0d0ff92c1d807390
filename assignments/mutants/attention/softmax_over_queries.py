# mutant: the softmax normalizes over the query axis (dim=-2) instead of the key axis
# replaces: sdpa
# fails: test_sdpa_values, test_sdpa_rows, test_sdpa_mask
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v
