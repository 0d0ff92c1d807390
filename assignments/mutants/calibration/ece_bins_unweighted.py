# mutant: ECE averages the per-bin gaps without weighting each bin by its share of the examples
# replaces: ece
# fails: test_ece
def ece(probs, labels, n_bins=10):
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    gaps = []
    for b in range(n_bins):
        in_bin = (conf > b / n_bins) & (conf <= (b + 1) / n_bins)
        if in_bin.any():
            gaps.append(abs(correct[in_bin].mean() - conf[in_bin].mean()))
    return float(np.mean(gaps))
