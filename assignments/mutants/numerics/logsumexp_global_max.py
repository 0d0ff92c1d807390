# mutant: log-sum-exp subtracts the maximum of the whole array instead of each row's, so a row far below the largest one underflows to -inf
# replaces: logsumexp
# fails: test_logsumexp
def logsumexp(x):
    x = np.asarray(x, dtype=float)
    m = np.max(x)
    if np.isneginf(m):
        m = 0.0
    with np.errstate(divide="ignore"):
        return m + np.log(np.sum(np.exp(x - m), axis=-1))
