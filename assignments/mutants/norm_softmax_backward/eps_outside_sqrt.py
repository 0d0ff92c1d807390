# mutant: eps added to the standard deviation, 1 / (sqrt(var) + eps), instead of inside the square root
# replaces: layernorm_forward
# fails: test_layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / (np.sqrt(var) + eps)
    xhat = (x - mu) * r
    return gamma * xhat + beta, (xhat, r, gamma)
