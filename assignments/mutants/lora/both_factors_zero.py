# mutant: A and B both initialized to zero, a stationary point where nothing trains
# replaces: init_lora
# fails: test_init_lora
def init_lora(d_in, d_out, r, generator=None):
    return torch.zeros(r, d_in), torch.zeros(d_out, r)
