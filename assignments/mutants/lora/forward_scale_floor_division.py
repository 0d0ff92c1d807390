# mutant: the scale alpha // r by floor division, right only when r divides alpha
# replaces: lora_forward
# fails: test_lora_forward
def lora_forward(x, W, b, A, B, alpha):
    r = A.shape[0]
    y = x @ W.T
    if b is not None:
        y = y + b
    return y + (alpha // r) * ((x @ A.T) @ B.T)
