# mutant: the score is added at the last column (T - 1) instead of the last real token
# replaces: kl_penalized_rewards
# fails: test_score_position, test_kl_full_and_empty_rows
def kl_penalized_rewards(scores, logp, ref_logp, mask, beta):
    m = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype)
    rewards = torch.where(m, -beta * (logp - ref_logp), zero).detach()
    rewards[:, -1] += scores
    return rewards
