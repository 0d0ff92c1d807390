# mutant: log_softmax computed as log(softmax(x)), which is -inf wherever a probability underflows
# replaces: softmax
# fails: test_log_softmax, test_cross_entropy
def softmax(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    return np.log(softmax(x))
