# mutant: the validation cost weights false positives by c_fn and misses by c_fp (the wrong cost ratio)
# replaces: choose_threshold
# fails: test_choose_threshold
def choose_threshold(probs, labels, c_fp, c_fn):
    best_t, best_cost = np.inf, c_fp * np.sum(labels == 1)
    for t in np.unique(probs)[::-1]:
        yes = probs >= t
        cost = c_fn * np.sum(yes & (labels == 0)) + c_fp * np.sum(~yes & (labels == 1))
        if cost < best_cost:
            best_t, best_cost = t, cost
    return float(best_t)
