# mutant: the cache-size formula forgets the factor 2 (only keys, no values)
# replaces: cache_bytes
# fails: test_cache_bytes
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element):
    return n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element
