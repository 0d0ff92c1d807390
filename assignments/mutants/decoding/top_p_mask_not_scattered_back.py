# mutant: the keep mask computed in sorted order is applied to the logits in vocabulary order
# replaces: top_p
# fails: test_top_p, test_temperature
def top_p_filter(logits, p):
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    keep = (torch.cumsum(probs, dim=-1) - probs) < p
    return logits.masked_fill(~keep, NEG_INF)
