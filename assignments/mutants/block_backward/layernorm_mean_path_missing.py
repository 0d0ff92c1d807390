# mutant: LayerNorm backward without the mean term (mu treated as a constant); rows of dx no longer sum to 0
# replaces: layernorm_backward
# fails: test_layernorm_backward, test_block_backward_x, test_block_backward_weights
def layernorm_backward(dy, xhat, rstd, gamma):
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
