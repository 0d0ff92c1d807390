# mutant: A drawn from N(0, 1) instead of N(0, 1/d_in)
# replaces: init_lora
# fails: test_init_lora
def init_lora(d_in, d_out, r, generator=None):
    return torch.randn(r, d_in, generator=generator), torch.zeros(d_out, r)
