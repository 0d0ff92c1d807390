# mutant: the probabilities are multiplied by the mask after the softmax, so hidden keys stay in the denominator
# replaces: sdpa
# fails: test_sdpa_mask
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    probs = torch.softmax(scores, dim=-1)
    if mask is not None:
        probs = probs * mask
    return probs @ v
