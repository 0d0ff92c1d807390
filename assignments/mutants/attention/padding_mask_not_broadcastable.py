# mutant: the padding mask is returned as [B, Lk], which broadcasts its batch axis against the query axis
# replaces: padding
# fails: test_padding_mask
def padding_mask(lengths, max_len):
    return torch.arange(max_len)[None, :] < lengths[:, None]
