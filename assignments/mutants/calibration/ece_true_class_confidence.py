# mutant: ECE uses the probability of the true class as the confidence instead of the max probability
# replaces: ece
# fails: test_ece
def ece(probs, labels, n_bins=10):
    conf = probs[np.arange(len(labels)), labels]
    correct = (probs.argmax(axis=1) == labels).astype(float)
    total = 0.0
    for b in range(n_bins):
        in_bin = (conf > b / n_bins) & (conf <= (b + 1) / n_bins)
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)
