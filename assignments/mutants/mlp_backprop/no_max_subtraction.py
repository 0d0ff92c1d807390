# mutant: softmax without subtracting the row maximum (exp overflows to inf, the loss to nan)
# replaces: softmax_ce
# fails: test_softmax_ce
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    dlogits = p.copy()
    dlogits[np.arange(n), y] -= 1.0
    return loss, dlogits / n
