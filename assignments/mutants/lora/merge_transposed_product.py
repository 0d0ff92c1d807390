# mutant: merge adds the transposed product (B A)^T, which fits only square weights
# replaces: merge_lora
# fails: test_merge_lora
def merge_lora(W, A, B, alpha):
    return W + (alpha / A.shape[0]) * (B @ A).T
