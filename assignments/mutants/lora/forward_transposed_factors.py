# mutant: the low-rank factors applied in the wrong order (x B A), which only fits square shapes
# replaces: lora_forward
# fails: test_lora_forward
def lora_forward(x, W, b, A, B, alpha):
    r = A.shape[0]
    y = x @ W.T
    if b is not None:
        y = y + b
    return y + (alpha / r) * ((x @ B) @ A)
