# mutant: the padding mask keeps position lengths[b] too (<= instead of <), so one pad token is attended
# replaces: padding
# fails: test_padding_mask
def padding_mask(lengths, max_len):
    real = torch.arange(max_len)[None, :] <= lengths[:, None]
    return real[:, None, None, :]
