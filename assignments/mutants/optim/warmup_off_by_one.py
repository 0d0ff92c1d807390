# mutant: warm-up off by one step, (t + 1) / warmup_iters, so step 0 already has a nonzero rate
# replaces: cosine_lr
# fails: test_cosine_lr
def cosine_lr(t, max_lr, min_lr, warmup_iters, cosine_iters):
    if t < warmup_iters:
        return (t + 1) / warmup_iters * max_lr
    if t > cosine_iters:
        return min_lr
    progress = (t - warmup_iters) / (cosine_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
