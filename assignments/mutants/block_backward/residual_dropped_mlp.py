# mutant: the residual y = h + mlp(LN2(h)) forgotten in the backward: dh gets the MLP branch only, not dy
# replaces: block_backward
# fails: test_block_backward_x, test_block_backward_weights
def block_backward(dy, cache, params, n_heads):
    p = params
    mlp = mlp_backward(dy, cache["c"], cache["u"], p["W1"], p["W2"])
    dh, dln2_g, dln2_b = layernorm_backward(mlp["c"], cache["xhat2"], cache["rstd2"], p["ln2_g"])
    do = split_heads(dh @ p["Wo"].T, n_heads)
    dq, dk, dv = attention_backward(do, cache["q"], cache["k"], cache["v"], causal=True)
    proj = qkv_backward(dq, dk, dv, cache["a"], p["Wq"], p["Wk"], p["Wv"])
    dx_branch, dln1_g, dln1_b = layernorm_backward(proj["a"], cache["xhat1"], cache["rstd1"], p["ln1_g"])
    return {"x": dh + dx_branch, "ln1_g": dln1_g, "ln1_b": dln1_b,
            "Wq": proj["Wq"], "Wk": proj["Wk"], "Wv": proj["Wv"],
            "Wo": np.einsum("bli,blj->ij", cache["o"], dh),
            "ln2_g": dln2_g, "ln2_b": dln2_b,
            "W1": mlp["W1"], "b1": mlp["b1"], "W2": mlp["W2"], "b2": mlp["b2"]}
