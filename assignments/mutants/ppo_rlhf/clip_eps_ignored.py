# mutant: the clip range is hard-coded to the default 0.2, so the clip_eps argument is ignored
# replaces: value_loss
# fails: test_value_clip_boundary
def value_loss(values, old_values, returns, mask, clip_eps=0.2):
    m = mask.bool()
    unclipped = (values - returns) ** 2
    clipped_values = old_values + (values - old_values).clamp(-0.2, 0.2)
    clipped = (clipped_values - returns) ** 2
    per_token = 0.5 * torch.maximum(unclipped, clipped)
    kept = torch.where(m, per_token, torch.zeros((), dtype=per_token.dtype))
    return kept.sum() / m.sum().clamp(min=1)
