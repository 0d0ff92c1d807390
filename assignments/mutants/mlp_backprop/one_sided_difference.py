# mutant: one-sided difference (f(x+eps) - f(x)) / eps, whose error is O(eps) instead of O(eps^2)
# replaces: numerical_gradient
# fails: test_numerical_gradient
def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=float)
    f_0 = f()
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = f()
        x[index] = saved
        grad[index] = (f_plus - f_0) / eps
    return grad
