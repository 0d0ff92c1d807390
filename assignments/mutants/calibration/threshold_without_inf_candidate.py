# mutant: the candidates are only the observed probabilities, so "never say yes" (t = inf) can never be chosen
# replaces: choose_threshold
# fails: test_choose_threshold
def choose_threshold(probs, labels, c_fp, c_fn):
    best_t, best_cost = None, None
    for t in np.unique(probs)[::-1]:
        yes = probs >= t
        cost = c_fp * np.sum(yes & (labels == 0)) + c_fn * np.sum(~yes & (labels == 1))
        if best_cost is None or cost < best_cost:
            best_t, best_cost = t, cost
    return float(best_t)
