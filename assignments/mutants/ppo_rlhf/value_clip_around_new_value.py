# mutant: the value clip is centred on the new value (old clipped to v +- eps) instead of on the old value
# replaces: value_loss
# fails: test_value_loss, test_value_clip, test_value_clip_boundary
def value_loss(values, old_values, returns, mask, clip_eps=0.2):
    m = mask.bool()
    unclipped = (values - returns) ** 2
    clipped_values = values + (old_values - values).clamp(-clip_eps, clip_eps)
    clipped = (clipped_values - returns) ** 2
    per_token = 0.5 * torch.maximum(unclipped, clipped)
    kept = torch.where(m, per_token, torch.zeros((), dtype=per_token.dtype))
    return kept.sum() / m.sum().clamp(min=1)
