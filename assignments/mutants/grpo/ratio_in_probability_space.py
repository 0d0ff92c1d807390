# mutant: ratio computed as p / p_old, which is 0/0 = NaN once the probabilities underflow
# replaces: clipped_token_loss
# fails: test_clipped_loss
def clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2):
    adv = advantages.unsqueeze(-1)
    ratio = torch.exp(logp) / torch.exp(old_logp)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.minimum(ratio * adv, clipped * adv)
