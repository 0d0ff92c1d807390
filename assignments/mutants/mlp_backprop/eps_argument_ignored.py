# mutant: the gradient checker ignores its eps argument and always steps by 1e-6
# replaces: numerical_gradient
# fails: test_numerical_gradient
def numerical_gradient(f, x, eps=1e-6):
    step = 1e-6
    grad = np.zeros_like(x, dtype=float)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + step
        f_plus = f()
        x[index] = saved - step
        f_minus = f()
        x[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * step)
    return grad
