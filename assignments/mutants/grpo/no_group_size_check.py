# mutant: group_size is not checked, so a group of one reward gets a NaN std and NaN advantages instead of a ValueError
# replaces: group_advantages
# fails: test_group_size_bounds
def group_advantages(rewards, group_size, eps=1e-4):
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(-1)
