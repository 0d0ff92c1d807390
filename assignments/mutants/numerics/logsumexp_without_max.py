# mutant: log-sum-exp as log(sum(exp(x))), which overflows at x = 1000 and underflows at x = -1000
# replaces: logsumexp
# fails: test_logsumexp, test_log_softmax, test_cross_entropy
def logsumexp(x):
    x = np.asarray(x, dtype=float)
    return np.log(np.sum(np.exp(x), axis=-1))
