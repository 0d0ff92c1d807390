# mutant: the variance in one pass, mean(x**2) - mean(x)**2, which cancels catastrophically for rows far from 0
# replaces: layernorm_forward
# fails: test_layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = (x ** 2).mean(axis=-1, keepdims=True) - mu ** 2
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * r
    return gamma * xhat + beta, (xhat, r, gamma)
