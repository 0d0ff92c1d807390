# mutant: each gradient clipped by its own norm, which changes the direction of the update
# replaces: clip_grad_norm
# fails: test_clip_grad_norm
def clip_grad_norm(grads, max_norm, eps=1e-6):
    clipped = []
    for g in grads:
        n = float(torch.sqrt((g * g).sum()))
        clipped.append(g * (max_norm / (n + eps)) if n > max_norm else g.clone())
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    return clipped, norm
