# mutant: the first-step check accepts any ratio inside the clip range (clip fraction 0), so a completion decoded and re-encoded before scoring, whose trainer log-probs belong to other tokens, passes
# replaces: first_step_ratio_ok
# fails: test_first_step_check
def first_step_ratio_ok(logp, old_logp, mask, clip_eps=0.2):
    m = mask.bool()
    ratio = torch.exp(logp[m] - old_logp[m])
    return bool(((ratio - 1.0).abs() <= clip_eps).all())
