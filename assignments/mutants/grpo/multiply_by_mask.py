# mutant: padding removed by multiplying with the mask, so inf or NaN under padding poisons the sum
# replaces: aggregate_loss
# fails: test_padding_excluded
def aggregate_loss(per_token, mask, loss_type="grpo"):
    m = mask.to(per_token.dtype)
    kept = per_token * m
    if loss_type == "grpo":
        return (kept.sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()
    if loss_type == "bnpo":
        return kept.sum() / m.sum().clamp(min=1)
    if loss_type == "dr_grpo":
        return kept.sum() / (per_token.shape[0] * per_token.shape[1])
    raise ValueError(f"unknown loss_type {loss_type!r}")
