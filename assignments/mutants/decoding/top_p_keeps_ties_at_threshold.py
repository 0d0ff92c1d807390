# mutant: top-p cuts by value at the crossing token's logit, so every token tied with it survives
# replaces: top_p
# fails: test_top_p
def top_p_filter(logits, p):
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    n_keep = (mass_before < p).sum(dim=-1, keepdim=True)
    cutoff = sorted_logits.gather(-1, n_keep - 1)
    return logits.masked_fill(logits < cutoff, NEG_INF)
