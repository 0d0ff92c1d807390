# mutant: "grpo" aggregated as a token mean over the batch (bnpo), losing the per-sequence average
# replaces: aggregate_loss
# fails: test_aggregation, test_padding_excluded
def aggregate_loss(per_token, mask, loss_type="grpo"):
    m = mask.bool()
    kept = torch.where(m, per_token, torch.zeros_like(per_token))
    if loss_type in ("grpo", "bnpo"):
        return kept.sum() / m.sum().clamp(min=1)
    if loss_type == "dr_grpo":
        return kept.sum() / (per_token.shape[0] * per_token.shape[1])
    raise ValueError(f"unknown loss_type {loss_type!r}")
