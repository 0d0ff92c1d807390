# mutant: the low-rank path scaled by alpha instead of alpha / r
# replaces: lora_forward
# fails: test_lora_forward
def lora_forward(x, W, b, A, B, alpha):
    y = x @ W.T
    if b is not None:
        y = y + b
    return y + alpha * ((x @ A.T) @ B.T)
