# mutant: multi-head attention turns any mask into is_causal=True, which is right only when the mask is the causal one
# replaces: mha
# fails: test_mha
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, l, d = x.shape

    def split(t):
        return t.view(b, l, n_heads, d // n_heads).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=mask is not None)
    return out.transpose(1, 2).reshape(b, l, d) @ w_o
