# mutant: the ReLU mask is [A >= 0], so a pre-activation exactly 0 passes gradient (the statement's mask is [A > 0])
# replaces: mlp_backward
# fails: test_backward_hidden
def mlp_backward(params, cache, dlogits):
    X, A, H = cache
    dW2 = H.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dH = dlogits @ params["W2"].T
    dA = dH * (A >= 0)
    dW1 = X.T @ dA
    db1 = dA.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
