# mutant: LayerNorm with the unbiased variance (divide by D - 1) instead of the biased one
# replaces: layernorm_forward
# fails: test_layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * r
    return gamma * xhat + beta, (xhat, r, gamma)
