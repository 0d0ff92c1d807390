# mutant: labels normalized with exp and a division, which underflows (0/0) for string log-probs near -1000
# replaces: normalize
# fails: test_normalize
def label_log_probs(scores):
    e = np.exp(scores)
    return np.log(e / np.sum(e, axis=1, keepdims=True))
