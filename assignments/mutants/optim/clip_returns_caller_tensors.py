# mutant: below max_norm the caller's own gradient tensors are returned, not new ones as the statement asks
# replaces: clip_grad_norm
# fails: test_clip_grad_norm
def clip_grad_norm(grads, max_norm, eps=1e-6):
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm <= max_norm:
        return list(grads), norm
    scale = max_norm / (norm + eps)
    return [g * scale for g in grads], norm
