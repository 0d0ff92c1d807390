# mutant: the logits are multiplied by T instead of divided, so the fitted value is 1/T
# replaces: fit_temperature
# fails: test_fit_temperature
def fit_temperature(logits, labels):
    def nll(t):
        z = logits * t
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(z - m), axis=1))
        return np.mean(lse - z[np.arange(len(labels)), labels])

    grid = np.exp(np.linspace(np.log(0.01), np.log(100.0), 2001))
    return float(grid[np.argmin([nll(t) for t in grid])])
