# mutant: log-sum-exp returns -inf for an all -inf row but lets NumPy warn "divide by zero in log", which the statement forbids
# replaces: logsumexp
# fails: test_logsumexp
def logsumexp(x):
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    return np.squeeze(m, -1) + np.log(np.sum(np.exp(x - m), axis=-1))
