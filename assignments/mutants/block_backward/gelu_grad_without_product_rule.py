# mutant: GELU'(u) taken as 0.5 (1 + tanh(...)), forgetting the product rule's second term
# replaces: mlp_backward
# fails: test_mlp_backward, test_block_backward_x, test_block_backward_weights
def mlp_backward(dm, c, u, W1, W2):
    t = np.tanh(KAPPA * (u + 0.044715 * u ** 3))
    du = (dm @ W2.T) * 0.5 * (1 + t)
    return {"c": du @ W1.T,
            "W1": np.einsum("bld,blf->df", c, du),
            "b1": du.sum(axis=(0, 1)),
            "W2": np.einsum("blf,bld->fd", gelu(u), dm),
            "b2": dm.sum(axis=(0, 1))}
