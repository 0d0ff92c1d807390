# mutant: the eps argument is ignored and the default 1e-4 hard-coded
# replaces: group_advantages
# fails: test_eps_as_stated
def group_advantages(rewards, group_size, eps=1e-4):
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + 1e-4)).view(-1)
