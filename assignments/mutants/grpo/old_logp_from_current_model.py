# mutant: old log-probs recomputed with the updated model (logp.detach()), so every ratio is 1
# replaces: clipped_token_loss
# fails: test_clipped_loss, test_clip_sides, test_length_one
def clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2):
    adv = advantages.unsqueeze(-1)
    ratio = torch.exp(logp - logp.detach())
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.minimum(ratio * adv, clipped * adv)
