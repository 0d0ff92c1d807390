# mutant: GAE bootstraps from the critic's values on padding instead of V = 0 past the last real token
# replaces: gae
# fails: test_gae_padding
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype)
    r = torch.where(m, rewards, zero).detach()
    v = values.detach()
    advantages = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_advantage = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]
        advantages[:, t] = torch.where(m[:, t], delta + gamma * lam * next_advantage, zero)
        next_value, next_advantage = v[:, t], advantages[:, t]
    returns = torch.where(m, advantages + v, zero)
    return advantages, returns
