# mutant: a stray .squeeze() on the log-ratio also drops the time axis of one-token completions (T = 1), so the loss broadcasts to [B, B]
# replaces: clipped_token_loss
# fails: test_length_one
def clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2):
    adv = advantages.unsqueeze(-1)
    ratio = torch.exp((logp - old_logp).squeeze())
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.minimum(ratio * adv, clipped * adv)
