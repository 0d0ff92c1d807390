# mutant: Platt's Newton iteration takes full steps from (1, 0), which diverges on large (over-confident) scores
# replaces: fit_platt
# fails: test_fit_platt
def fit_platt(scores, labels):
    x = np.stack([scores, np.ones_like(scores)], axis=1)
    theta = np.array([1.0, 0.0])
    for _ in range(100):
        pi = 0.5 * (1.0 + np.tanh(0.5 * (x @ theta)))
        grad = x.T @ (pi - labels) / len(labels)
        hess = (x * (pi * (1.0 - pi))[:, None]).T @ x / len(labels)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])
