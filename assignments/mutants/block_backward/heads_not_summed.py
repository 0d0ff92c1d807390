# mutant: da overwritten head by head instead of summed over the heads: only the last head reaches the shared input
# replaces: qkv_backward
# fails: test_qkv_backward, test_block_backward_x, test_block_backward_weights
def qkv_backward(dq, dk, dv, a, Wq, Wk, Wv):
    n_heads, width = dq.shape[1], dq.shape[3]
    for head in range(n_heads):
        cols = slice(head * width, (head + 1) * width)
        da = dq[:, head] @ Wq[:, cols].T + dk[:, head] @ Wk[:, cols].T + dv[:, head] @ Wv[:, cols].T
    dq, dk, dv = merge_heads(dq), merge_heads(dk), merge_heads(dv)
    return {"a": da,
            "Wq": np.einsum("bli,blj->ij", a, dq),
            "Wk": np.einsum("bli,blj->ij", a, dk),
            "Wv": np.einsum("bli,blj->ij", a, dv)}
