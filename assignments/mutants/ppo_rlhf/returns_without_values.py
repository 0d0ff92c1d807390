# mutant: the returns are the advantages alone; the values are never added back
# replaces: gae
# fails: test_gae_returns, test_gae_padding
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype)
    r = torch.where(m, rewards, zero).detach()
    v = torch.where(m, values, zero).detach()
    advantages = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_advantage = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]
        advantages[:, t] = torch.where(m[:, t], delta + gamma * lam * next_advantage, zero)
        next_value, next_advantage = v[:, t], advantages[:, t]
    return advantages, advantages.clone()
