# mutant: the KL penalty is applied on every position, padding included
# replaces: kl_penalized_rewards
# fails: test_kl_padding, test_kl_full_and_empty_rows
def kl_penalized_rewards(scores, logp, ref_logp, mask, beta):
    m = mask.bool()
    rewards = (-beta * (logp - ref_logp)).detach().clone()
    last = m.sum(dim=1) - 1
    for b in range(m.shape[0]):
        if last[b] >= 0:
            rewards[b, last[b]] += scores[b]
    return rewards
