# mutant: softmax exponentiates the raw logits (no row-max subtraction), so exp(1000) overflows
# replaces: softmax
# fails: test_softmax
def softmax(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    x = np.asarray(x, dtype=float)
    return x - logsumexp(x)[..., None]
