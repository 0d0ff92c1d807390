# mutant: dgamma and dbeta averaged over the batch instead of summed (a broadcast parameter sums its gradient)
# replaces: layernorm_backward
# fails: test_layernorm_backward_params
def layernorm_backward(dy, cache):
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma
    dx = r * (g - g.mean(axis=-1, keepdims=True)
              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).mean(axis=lead), dy.mean(axis=lead)
