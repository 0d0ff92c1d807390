# mutant: log_softmax replaces -inf logits by the most negative float first (np.nan_to_num), so a masked entry gets a finite log-probability instead of -inf
# replaces: softmax
# fails: test_log_softmax
def softmax(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    x = np.nan_to_num(np.asarray(x, dtype=float))
    return x - logsumexp(x)[..., None]
