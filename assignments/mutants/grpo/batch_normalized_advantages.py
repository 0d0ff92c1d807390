# mutant: advantages normalized with the mean and std of the whole batch instead of each group
# replaces: group_advantages
# fails: test_group_advantages, test_zero_variance_group, test_group_size_bounds, test_eps_as_stated
def group_advantages(rewards, group_size, eps=1e-4):
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    return (rewards - rewards.mean()) / (rewards.std() + eps)
