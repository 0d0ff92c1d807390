# mutant: top-k compares with the k-th largest value, so tokens tied with it are all kept (more than k survive)
# replaces: top_k
# fails: test_top_k
def top_k_filter(logits, k):
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)
