# mutant: the output bias gradient is averaged over the batch instead of summed (the 1/N applied twice)
# replaces: mlp_backward
# fails: test_backward_output
def mlp_backward(params, cache, dlogits):
    X, A, H = cache
    dW2 = H.T @ dlogits
    db2 = dlogits.mean(axis=0)
    dH = dlogits @ params["W2"].T
    dA = dH * (A > 0)
    dW1 = X.T @ dA
    db1 = dA.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
