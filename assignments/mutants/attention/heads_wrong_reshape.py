# mutant: heads are split by reshaping straight to [B, H, L, dh] (no transpose), mixing tokens
# replaces: mha
# fails: test_mha
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, l, d = x.shape

    def split(t):
        return t.reshape(b, n_heads, l, d // n_heads)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.reshape(b, l, d) @ w_o
