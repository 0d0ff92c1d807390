# mutant: the gradient of a mean loss without the 1/N (every gradient N times too large)
# replaces: softmax_ce
# fails: test_softmax_ce
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(n), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), y] -= 1.0
    return loss, dlogits
