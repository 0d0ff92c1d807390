# mutant: the mask is ignored, so padding tokens enter the loss and every denominator
# replaces: aggregate_loss
# fails: test_aggregation, test_padding_excluded
def aggregate_loss(per_token, mask, loss_type="grpo"):
    if loss_type == "grpo":
        return per_token.mean(dim=1).mean()
    if loss_type == "bnpo":
        return per_token.mean()
    if loss_type == "dr_grpo":
        return per_token.sum() / (per_token.shape[0] * per_token.shape[1])
    raise ValueError(f"unknown loss_type {loss_type!r}")
