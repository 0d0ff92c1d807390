# mutant: the gradient checker restores x[i] by adding eps back instead of writing the saved value, so rounding leaves x changed
# replaces: numerical_gradient
# fails: test_numerical_gradient
def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=float)
    for index in np.ndindex(x.shape):
        x[index] += eps
        f_plus = f()
        x[index] -= 2 * eps
        f_minus = f()
        x[index] += eps
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad
