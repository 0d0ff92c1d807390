# mutant: dgamma and dbeta summed over axis 0 only, which leaves a [T, D] gradient for [B, T, D] inputs
# replaces: layernorm_backward
# fails: test_layernorm_backward_params
def layernorm_backward(dy, cache):
    xhat, r, gamma = cache
    g = dy * gamma
    dx = r * (g - g.mean(axis=-1, keepdims=True)
              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)
