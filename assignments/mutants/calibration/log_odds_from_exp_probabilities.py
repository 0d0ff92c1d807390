# mutant: the log-odds go through exp'd probabilities, which overflow (or give log 0) for logits near 1e4
# replaces: binary_log_odds
# fails: test_binary_log_odds
def binary_log_odds(logits, yes_id, no_id):
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    return np.log(p[:, yes_id]) - np.log(p[:, no_id])
