# mutant: B initialized randomly like A, so the model is changed at step 0
# replaces: init_lora
# fails: test_init_lora
def init_lora(d_in, d_out, r, generator=None):
    A = torch.randn(r, d_in, generator=generator) / math.sqrt(d_in)
    B = torch.randn(d_out, r, generator=generator) / math.sqrt(r)
    return A, B
