# mutant: the head size is taken as d_model // n_heads instead of from the cache (or w_q), wrong when n_heads * head_dim != d_model
# replaces: decode
# fails: test_decode_mha
def decode_step(x_new, cache_k, cache_v, w_q, w_k, w_v, w_o, n_heads):
    b, _, _ = x_new.shape
    n_kv, position = cache_k.shape[1], cache_k.shape[2]
    head_dim = x_new.shape[-1] // n_heads
    q = (x_new @ w_q).view(b, 1, n_heads, head_dim).transpose(1, 2)
    k = (x_new @ w_k).view(b, 1, n_kv, head_dim).transpose(1, 2)
    v = (x_new @ w_v).view(b, 1, n_kv, head_dim).transpose(1, 2)
    q, k = rope(q, position), rope(k, position)
    cache_k = torch.cat([cache_k, k], dim=2)
    cache_v = torch.cat([cache_v, v], dim=2)
    group = n_heads // n_kv
    keys = cache_k.repeat_interleave(group, dim=1)
    values = cache_v.repeat_interleave(group, dim=1)
    out = F.scaled_dot_product_attention(q, keys, values)
    out = out.transpose(1, 2).reshape(b, 1, n_heads * head_dim) @ w_o
    return out, cache_k, cache_v
