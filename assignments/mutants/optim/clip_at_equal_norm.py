# mutant: clips when the norm is at least max_norm (>=), so a norm exactly equal to max_norm is scaled by max_norm / (N + eps)
# replaces: clip_grad_norm
# fails: test_clip_grad_norm
def clip_grad_norm(grads, max_norm, eps=1e-6):
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm < max_norm:
        return [g.clone() for g in grads], norm
    scale = max_norm / (norm + eps)
    return [g * scale for g in grads], norm
