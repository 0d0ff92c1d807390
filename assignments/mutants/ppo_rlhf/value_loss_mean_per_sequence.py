# mutant: the value loss is averaged per sequence, then over the batch, instead of over all real tokens
# replaces: value_loss
# fails: test_value_loss
def value_loss(values, old_values, returns, mask, clip_eps=0.2):
    m = mask.bool()
    unclipped = (values - returns) ** 2
    clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    clipped = (clipped_values - returns) ** 2
    per_token = 0.5 * torch.maximum(unclipped, clipped)
    kept = torch.where(m, per_token, torch.zeros((), dtype=per_token.dtype))
    return (kept.sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()
