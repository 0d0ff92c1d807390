# mutant: the softmax backward through the diagonal of its Jacobian only, dS = P * dP (the -p_i p_j cross terms dropped)
# replaces: attention_backward
# fails: test_attention_backward, test_attention_backward_causal, test_block_backward_x, test_block_backward_weights
def attention_backward(do, q, k, v, causal):
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(0, 1, 3, 2) * scale
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    dv = p.transpose(0, 1, 3, 2) @ do
    ds = p * (do @ v.transpose(0, 1, 3, 2))
    return ds @ k * scale, ds.transpose(0, 1, 3, 2) @ q * scale, dv
