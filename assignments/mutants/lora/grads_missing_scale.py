# mutant: the gradients forget the alpha / r factor
# replaces: lora_grads
# fails: test_lora_grads
def lora_grads(x, A, B, dy, alpha):
    h = x @ A.T
    dB = dy.T @ h
    dA = (dy @ B).T @ x
    return dA, dB
