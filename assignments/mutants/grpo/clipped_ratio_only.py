# mutant: only the clipped term is used, so moves in the wrong direction are never corrected
# replaces: clipped_token_loss
# fails: test_clipped_loss, test_clip_sides, test_length_one
def clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2):
    adv = advantages.unsqueeze(-1)
    ratio = torch.exp(logp - old_logp)
    return -torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
