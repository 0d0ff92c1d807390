# mutant: the projection weights' gradients taken from the first example of the batch instead of summed over it
# replaces: qkv_backward
# fails: test_qkv_backward, test_block_backward_weights
def qkv_backward(dq, dk, dv, a, Wq, Wk, Wv):
    dq, dk, dv = merge_heads(dq), merge_heads(dk), merge_heads(dv)
    return {"a": dq @ Wq.T + dk @ Wk.T + dv @ Wv.T,
            "Wq": a[0].T @ dq[0],
            "Wk": a[0].T @ dk[0],
            "Wv": a[0].T @ dv[0]}
