# mutant: the gradient checker leaves each entry of x at x - eps instead of restoring it
# replaces: numerical_gradient
# fails: test_numerical_gradient
def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=float)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = f()
        x[index] = saved - eps
        f_minus = f()
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad
