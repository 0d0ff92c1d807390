# mutant: the decoupled decay applied after the Adam update instead of before it (off by lr^2 * weight_decay * update)
# replaces: adamw_step
# fails: test_adamw_weight_decay
def adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param = param - lr * m_hat / (torch.sqrt(v_hat) + eps)
    param = param * (1 - lr * weight_decay)
    return param, m, v
