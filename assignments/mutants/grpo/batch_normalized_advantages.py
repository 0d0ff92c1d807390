# mutant: advantages normalized with the mean and std of the whole batch instead of each group
# replaces: group_advantages
# fails: test_group_advantages, test_zero_variance_group
def group_advantages(rewards, group_size, eps=1e-4):
    return (rewards - rewards.mean()) / (rewards.std() + eps)
