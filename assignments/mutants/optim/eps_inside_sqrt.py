# mutant: eps inside the square root, sqrt(v_hat + eps), which damps small gradients
# replaces: adamw_step
# fails: test_adamw_step
def adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0):
    param = param * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param = param - lr * m_hat / torch.sqrt(v_hat + eps)
    return param, m, v
