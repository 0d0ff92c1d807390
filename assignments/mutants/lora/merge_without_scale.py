# mutant: merge forgets the alpha / r scale, so the merged model differs from the trained one
# replaces: merge_lora
# fails: test_merge_lora
def merge_lora(W, A, B, alpha):
    return W + B @ A
