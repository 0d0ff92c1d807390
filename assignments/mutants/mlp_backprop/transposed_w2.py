# mutant: the hidden gradient multiplies by W2 instead of W2 transposed (runs only when W2 is square, so a non-square case raises in both backward tests)
# replaces: mlp_backward
# fails: test_backward_output, test_backward_hidden
def mlp_backward(params, cache, dlogits):
    X, A, H = cache
    dW2 = H.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dH = dlogits @ params["W2"]
    dA = dH * (A > 0)
    dW1 = X.T @ dA
    db1 = dA.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
