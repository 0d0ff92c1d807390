# mutant: the first-step check compares whole tensors, padding included, so garbage under padding fails a correct trainer
# replaces: first_step_ratio_ok
# fails: test_first_step_check
def first_step_ratio_ok(logp, old_logp, mask):
    return bool(torch.equal(torch.exp(logp - old_logp), torch.ones_like(logp)))
