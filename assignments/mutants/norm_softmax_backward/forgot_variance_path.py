# mutant: LayerNorm backward without the variance term (treats sigma as a constant); rows still sum to 0
# replaces: layernorm_backward
# fails: test_layernorm_backward_dx
def layernorm_backward(dy, cache):
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma
    dx = r * (g - g.mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
