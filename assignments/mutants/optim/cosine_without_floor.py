# mutant: no floor after cosine_iters, so the cosine climbs back up towards max_lr
# replaces: cosine_lr
# fails: test_cosine_lr
def cosine_lr(t, max_lr, min_lr, warmup_iters, cosine_iters):
    if t < warmup_iters:
        return t / warmup_iters * max_lr
    progress = (t - warmup_iters) / (cosine_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
