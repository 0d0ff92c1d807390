# mutant: the streaming log-sum-exp subtracts the running max even while it is -inf, so a block of all -inf gives exp(-inf - (-inf)) = NaN
# replaces: online_logsumexp
# fails: test_online_logsumexp
def online_logsumexp(x, block_size):
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block_size):
        blk = x[..., start:start + block_size]
        m_new = torch.maximum(m, blk.amax(dim=-1))
        l = torch.exp(m - m_new) * l + torch.exp(blk - m_new[..., None]).sum(dim=-1)
        m = m_new
    return m + torch.log(l)
