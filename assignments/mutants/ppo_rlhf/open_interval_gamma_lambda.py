# mutant: gamma and lam checked as open intervals (0, 1), so the stated ends (lam = 0, gamma = lam = 1) raise
# replaces: gae
# fails: test_gae_monte_carlo
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    if not (0.0 < gamma < 1.0 and 0.0 < lam < 1.0):
        raise ValueError(f"gamma and lam must lie in (0, 1), got {gamma}, {lam}")
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
    returns = torch.where(m, advantages + v, zero)
    return advantages, returns
