# mutant: the running max is set from the first key block and never updated: exact on paper, overflows in float32
# replaces: tiled_attention
# fails: test_tiled_large_scores, test_tiled_causal
def tiled_attention(q, k, v, is_causal=False, block_size=16):
    lq, lk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    outs, lses = [], []
    for q0 in range(0, lq, block_size):
        qb = q[..., q0:q0 + block_size, :]                          # [..., bq, D]
        bq = qb.shape[-2]
        shift = q0 + lk - lq           # local row r sees keys j <= r + shift
        m = torch.full((*qb.shape[:-1],), -math.inf, dtype=q.dtype)
        l = torch.zeros(qb.shape[:-1], dtype=q.dtype)
        acc = torch.zeros((*qb.shape[:-1], v.shape[-1]), dtype=q.dtype)
        k_stop = max(0, min(lk, bq + shift)) if is_causal else lk
        for k0 in range(0, k_stop, block_size):
            s = qb @ k[..., k0:k0 + block_size, :].transpose(-2, -1) * scale   # [..., bq, bk]
            if is_causal:  # hide the keys past each row's diagonal
                rows = torch.arange(bq)[:, None]
                cols = torch.arange(k0, k0 + s.shape[-1])[None, :]
                s = s.masked_fill(cols > rows + shift, -math.inf)
            m_new = s.amax(dim=-1) if k0 == 0 else m
            m_safe = torch.where(m_new == -math.inf, 0.0, m_new)
            alpha = torch.exp(m - m_safe)
            p = torch.exp(s - m_safe[..., None])
            l = alpha * l + p.sum(dim=-1)
            acc = alpha[..., None] * acc + p @ v[..., k0:k0 + block_size, :]
            m = m_new
        l_safe = torch.where(l > 0, l, 1.0)
        outs.append(acc / l_safe[..., None])
        lses.append(torch.where(l > 0, m + torch.log(l_safe), -math.inf))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)
