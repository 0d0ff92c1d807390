# mutant: merge scales B A by alpha // r (floor division), right only when r divides alpha
# replaces: merge_lora
# fails: test_merge_lora
def merge_lora(W, A, B, alpha):
    return W + (alpha // A.shape[0]) * (B @ A)
