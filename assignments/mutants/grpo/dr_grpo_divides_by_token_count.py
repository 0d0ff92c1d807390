# mutant: dr_grpo divides by the number of real tokens instead of the constant B * T
# replaces: aggregate_loss
# fails: test_aggregation, test_padding_excluded
def aggregate_loss(per_token, mask, loss_type="grpo"):
    m = mask.bool()
    kept = torch.where(m, per_token, torch.zeros_like(per_token))
    if loss_type == "grpo":
        return (kept.sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()
    if loss_type in ("bnpo", "dr_grpo"):
        return kept.sum() / m.sum().clamp(min=1)
    raise ValueError(f"unknown loss_type {loss_type!r}")
