# mutant: lambda and gamma swapped: the TD error discounts V_{t+1} by lambda instead of gamma
# replaces: gae
# fails: test_gae, test_gae_returns, test_gae_padding, test_gae_full_and_empty_rows, test_gae_monte_carlo
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype)
    r = torch.where(m, rewards, zero).detach()
    v = torch.where(m, values, zero).detach()
    advantages = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_advantage = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + lam * next_value - v[:, t]
        advantages[:, t] = torch.where(m[:, t], delta + lam * gamma * next_advantage, zero)
        next_value, next_advantage = v[:, t], advantages[:, t]
    returns = torch.where(m, advantages + v, zero)
    return advantages, returns
