# mutant: dx computed from dy instead of dy * gamma (the scale's chain-rule factor forgotten)
# replaces: layernorm_backward
# fails: test_layernorm_backward_dx
def layernorm_backward(dy, cache):
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy
    dx = r * (g - g.mean(axis=-1, keepdims=True)
              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
