# mutant: the temperature is fitted on the test split that is then used to report calibration
# replaces: calibrate
# fails: test_calibrate
def calibrate(logits, labels, cal_idx, test_idx):
    T = fit_temperature(logits[test_idx], labels[test_idx])
    z = logits[test_idx] / T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return T, p / p.sum(axis=1, keepdims=True)
