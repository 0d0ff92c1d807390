# mutant: BCE clips the logits to [-1e4, 1e4] before the stable formula "to be safe", wrong for the statement's logits of size 1e300
# replaces: bce
# fails: test_bce
def bce_with_logits(x, y):
    x, y = np.clip(np.asarray(x, dtype=float), -1e4, 1e4), np.asarray(y, dtype=float)
    return float(np.mean(np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))))
