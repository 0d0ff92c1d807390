# mutant: label scores sum every position, so the padding after a short label is added to its score
# replaces: label_scores
# fails: test_label_scores
def label_scores(token_logp, mask, per_token=False):
    total = np.sum(token_logp, axis=-1)
    if per_token:
        return total / np.sum(mask, axis=-1)
    return total
