# mutant: population std (divide by G) instead of the Bessel-corrected std (divide by G - 1)
# replaces: group_advantages
# fails: test_group_advantages, test_group_size_bounds, test_eps_as_stated
def group_advantages(rewards, group_size, eps=1e-4):
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True, unbiased=False)
    return ((grouped - mean) / (std + eps)).view(-1)
