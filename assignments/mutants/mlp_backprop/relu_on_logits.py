# mutant: a ReLU applied to the output layer too, clipping negative logits to zero
# replaces: mlp_forward
# fails: test_mlp_forward
def mlp_forward(params, X):
    A = X @ params["W1"] + params["b1"]
    H = np.maximum(A, 0.0)
    logits = np.maximum(H @ params["W2"] + params["b2"], 0.0)
    return logits, (X, A, H)
