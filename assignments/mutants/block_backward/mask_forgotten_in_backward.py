# mutant: the probabilities recomputed in the backward without the causal mask, so future keys receive gradient
# replaces: attention_backward
# fails: test_attention_backward_causal, test_block_backward_x, test_block_backward_weights
def attention_backward(do, q, k, v, causal):
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(0, 1, 3, 2) * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    dv = p.transpose(0, 1, 3, 2) @ do
    dp = do @ v.transpose(0, 1, 3, 2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return ds @ k * scale, ds.transpose(0, 1, 3, 2) @ q * scale, dv
