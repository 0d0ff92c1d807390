# mutant: length normalization divides every label by the padded length L instead of its own token count
# replaces: label_scores
# fails: test_label_scores
def label_scores(token_logp, mask, per_token=False):
    total = np.sum(np.where(mask, token_logp, 0.0), axis=-1)
    if per_token:
        return total / token_logp.shape[-1]
    return total
