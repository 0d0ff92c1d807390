# mutant: V_{t+1} taken with torch.roll, which wraps V_0 round into the last column of a row without padding
# replaces: gae
# fails: test_gae_full_and_empty_rows
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype)
    r = torch.where(m, rewards, zero).detach()
    v = torch.where(m, values, zero).detach()
    next_v = torch.roll(v, shifts=-1, dims=1)
    delta = r + gamma * next_v - v
    advantages = torch.zeros_like(r)
    next_advantage = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        advantages[:, t] = torch.where(m[:, t], delta[:, t] + gamma * lam * next_advantage, zero)
        next_advantage = advantages[:, t]
    returns = torch.where(m, advantages + v, zero)
    return advantages, returns
