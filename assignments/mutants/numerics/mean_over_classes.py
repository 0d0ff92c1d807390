# mutant: cross-entropy averaged over classes as well as rows (divides the loss by C)
# replaces: cross_entropy
# fails: test_cross_entropy, test_label_smoothing
def cross_entropy(logits, labels, eps=0.0):
    logp = log_softmax(logits)
    n, c = logp.shape
    q = (1.0 - eps) * np.eye(c)[labels] + eps / c
    return float(np.mean(-q * logp))
