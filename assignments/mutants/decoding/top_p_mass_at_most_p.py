# mutant: top-p keeps tokens while the running mass *including* them is <= p, so the token that crosses p is dropped
# replaces: top_p
# fails: test_top_p, test_temperature, test_sample
def top_p_filter(logits, p):
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    keep_sorted = torch.cumsum(probs, dim=-1) <= p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)
