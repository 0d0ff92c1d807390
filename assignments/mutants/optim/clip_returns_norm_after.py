# mutant: returns the norm after clipping, which hides how large the gradients really were
# replaces: clip_grad_norm
# fails: test_clip_grad_norm
def clip_grad_norm(grads, max_norm, eps=1e-6):
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm <= max_norm:
        return [g.clone() for g in grads], norm
    scale = max_norm / (norm + eps)
    clipped = [g * scale for g in grads]
    return clipped, math.sqrt(sum(float((g * g).sum()) for g in clipped))
