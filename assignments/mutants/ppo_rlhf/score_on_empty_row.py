# mutant: the last real token found as the argmax of the mask's running count, which is position 0 in a row without real tokens, so an empty completion still receives its score
# replaces: kl_penalized_rewards
# fails: test_kl_full_and_empty_rows
def kl_penalized_rewards(scores, logp, ref_logp, mask, beta):
    m = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype)
    rewards = torch.where(m, -beta * (logp - ref_logp), zero).detach()
    last = m.long().cumsum(dim=1).argmax(dim=1)
    rows = torch.arange(m.shape[0])
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards
