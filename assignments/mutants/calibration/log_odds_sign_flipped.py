# mutant: the log-odds subtract in the wrong order, log p(no) - log p(yes), so every decision flips
# replaces: binary_log_odds
# fails: test_binary_log_odds
def binary_log_odds(logits, yes_id, no_id):
    return logits[:, no_id] - logits[:, yes_id]
