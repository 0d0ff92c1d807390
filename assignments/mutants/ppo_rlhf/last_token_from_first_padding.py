# mutant: the last real token is found as the first padding position minus one, which does not exist in a row without padding (or without real tokens)
# replaces: kl_penalized_rewards
# fails: test_kl_full_and_empty_rows
def kl_penalized_rewards(scores, logp, ref_logp, mask, beta):
    m = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype)
    rewards = torch.where(m, -beta * (logp - ref_logp), zero).detach()
    last = (~m).int().argmax(dim=1) - 1
    return rewards.scatter_add(1, last[:, None], scores[:, None].to(rewards.dtype))
