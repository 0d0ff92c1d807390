# mutant: the streaming log-sum-exp adds each block's sum without rescaling the old sum by exp(m - m')
# replaces: online_logsumexp
# fails: test_online_logsumexp
def online_logsumexp(x, block_size):
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block_size):
        blk = x[..., start:start + block_size]
        m = torch.maximum(m, blk.amax(dim=-1))
        m_safe = torch.where(m == -math.inf, 0.0, m)
        l = l + torch.exp(blk - m_safe[..., None]).sum(dim=-1)
    return torch.where(l > 0, m + torch.log(torch.where(l > 0, l, 1.0)), -math.inf)
