# mutant: BCE written as -(y log sigmoid(x) + (1-y) log(1 - sigmoid(x))), which overflows or takes log(0)
# replaces: bce
# fails: test_bce
def bce_with_logits(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    s = 1.0 / (1.0 + np.exp(-x))
    return float(np.mean(-(y * np.log(s) + (1 - y) * np.log(1 - s))))
