# mutant: Platt scaling fits only the slope a (b fixed at 0), i.e. temperature scaling of the log-odds
# replaces: fit_platt
# fails: test_fit_platt
def fit_platt(scores, labels):
    a = 1.0
    for _ in range(100):
        pi = 0.5 * (1.0 + np.tanh(0.5 * a * scores))
        grad = np.mean((pi - labels) * scores)
        hess = np.mean(pi * (1.0 - pi) * scores ** 2)
        step = grad / hess
        a = a - step
        if abs(step) < 1e-10:
            break
    return float(a), 0.0
