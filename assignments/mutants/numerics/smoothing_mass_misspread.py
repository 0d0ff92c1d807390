# mutant: label smoothing spreads eps over the C-1 wrong classes only (target 1-eps on the true class)
# replaces: cross_entropy
# fails: test_label_smoothing
def cross_entropy(logits, labels, eps=0.0):
    logp = log_softmax(logits)
    n, c = logp.shape
    onehot = np.eye(c)[labels]
    q = (1.0 - eps) * onehot + eps / (c - 1) * (1.0 - onehot)
    return float(np.mean(-np.sum(q * logp, axis=-1)))
