# mutant: ECE bins by floor(conf * n_bins), i.e. left-closed bins [b/n, (b+1)/n) with 1.0 in the last
# replaces: ece
# fails: test_ece
def ece(probs, labels, n_bins=10):
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    which = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)
