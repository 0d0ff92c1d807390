# mutant: the first-step check compares the ratio with 1 up to torch.allclose's default tolerance instead of exactly
# replaces: first_step_ratio_ok
# fails: test_first_step_check
def first_step_ratio_ok(logp, old_logp, mask):
    m = mask.bool()
    ratio = torch.exp(logp[m] - old_logp[m])
    return bool(torch.allclose(ratio, torch.ones_like(ratio)))
