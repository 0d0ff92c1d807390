# mutant: dA returned as x^T (dy B), the transpose [d_in, r] of the right gradient
# replaces: lora_grads
# fails: test_lora_grads
def lora_grads(x, A, B, dy, alpha):
    s = alpha / A.shape[0]
    dB = s * dy.T @ (x @ A.T)
    dA = s * x.T @ (dy @ B)
    return dA, dB
