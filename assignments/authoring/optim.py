# %% [markdown]
# # Assignment: AdamW, the cosine schedule with warm-up, and global-norm clipping
#
# You will implement the three pieces of a training step that sit between `backward()` and
# the next batch: one AdamW update, the learning-rate schedule, and gradient clipping by the
# global norm. The chapter
# [Assembling a tiny GPT](../../../chapters/part3_attention/tiny_gpt.ipynb) uses all three.
#
# To keep the tests simple, everything here is a plain function on tensors: `adamw_step`
# takes the parameter, its gradient and its two moments and **returns new tensors**; do not
# modify its arguments in place.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers); `math` and torch are enough.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 10 in all.

# %% [setup]
import math

import torch


def check_close(actual, expected, what, tol=1e-10):
    """Assert two tensors (or numbers) have the same shape and agree to ``tol``, relative."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, \
        f"{what}: expected shape {tuple(expected.shape)}, got shape {tuple(actual.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: expected finite values, got {actual}"
    err = ((actual - expected).abs() / (expected.abs() + 1e-12)).max().item() \
        if actual.numel() else 0.0
    assert err <= tol, f"{what}: expected {expected}, got {actual} (relative error {err:.2e})"


def random_grads(shape, n_steps, seed, scale=1.0):
    """``n_steps`` float64 gradients of ``shape``, reproducible."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) * scale for _ in range(n_steps)]


def run_adamw(step_fn, param, grads, **hyper):
    """Apply ``step_fn`` for ``len(grads)`` steps from zero moments; the final parameter."""
    m, v = torch.zeros_like(param), torch.zeros_like(param)
    for t, grad in enumerate(grads, start=1):
        param, m, v = step_fn(param.clone(), grad.clone(), m.clone(), v.clone(), t, **hyper)
    return param

# %% [markdown]
# ## 1. One AdamW step (4 points)
#
# `adamw_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay)` performs step
# number `t` (`t = 1` for the first step) and returns `(param, m, v)`:
#
# 1. decoupled weight decay: $\theta \leftarrow \theta\,(1 - \eta\lambda)$ (the decay never
#    enters the gradient or the moments);
# 2. moments: $m \leftarrow \beta_1 m + (1-\beta_1) g$, $\;v \leftarrow \beta_2 v + (1-\beta_2) g^2$;
# 3. bias correction: $\hat m = m / (1 - \beta_1^t)$, $\;\hat v = v / (1 - \beta_2^t)$;
# 4. update: $\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$, with
#    $\epsilon$ **outside** the square root.
#
# This is the update of `torch.optim.AdamW` (Loshchilov and Hutter, *Decoupled Weight Decay
# Regularization*).

# %% [solution] id=adamw_step
def adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0):
    ### BEGIN SOLUTION
    param = param * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param = param - lr * m_hat / (torch.sqrt(v_hat) + eps)
    return param, m, v
    ### END SOLUTION

# %% [test] id=test_adamw_step points=3
def make():
    return {"p": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64),
            "g": torch.tensor([0.3, -5.0, 2e-3], dtype=torch.float64)}


def run(p, g):
    new, m, v = adamw_step(p.clone(), g.clone(), torch.zeros(3, dtype=torch.float64),
                           torch.zeros(3, dtype=torch.float64), 1, lr=0.1, eps=1e-12)
    return {"new": new, "m": m, "v": v}


def check(inputs, outputs):
    # the first step moves every weight by lr in the direction of -sign(grad)
    p, g = inputs["p"], inputs["g"]
    check_close(outputs["new"], p - 0.1 * torch.sign(g), "first AdamW step, weight_decay=0", tol=1e-6)
    check_close(outputs["m"], 0.1 * g, "m after the first step")
    check_close(outputs["v"], 0.001 * g * g, "v after the first step")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    start = random_grads((4, 3), 1, seed=5)[0]
    return {"start": start, "grads": random_grads((4, 3), 25, seed=6, scale=3.0),
            "hyper": dict(lr=1e-2, beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.0),
            "tiny_start": start[0], "tiny": random_grads((3,), 3, seed=7, scale=1e-4),
            "tiny_hyper": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)}


def run_hidden(start, grads, hyper, tiny_start, tiny, tiny_hyper):
    return {"final": run_adamw(adamw_step, start, grads, **hyper),
            "tiny_final": run_adamw(adamw_step, tiny_start, tiny, **tiny_hyper)}


def check_hidden(inputs, outputs):
    from lib.optim import AdamW as RefAdamW

    def reference(param, grads, **hyper):
        p = torch.nn.Parameter(param.clone())
        opt = RefAdamW([p], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                       eps=hyper["eps"], weight_decay=0.0)
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        return p.detach()

    check_close(outputs["final"], reference(inputs["start"], inputs["grads"], **inputs["hyper"]),
                "25 AdamW steps on random gradients, weight_decay=0", tol=1e-9)
    # tiny gradients: eps must be added to sqrt(v_hat), not inside the square root
    check_close(outputs["tiny_final"], reference(inputs["tiny_start"], inputs["tiny"], **inputs["tiny_hyper"]),
                "3 AdamW steps on gradients of size 1e-4 (eps outside the sqrt)", tol=1e-9)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_adamw_weight_decay points=1
def make():
    return {"p": torch.tensor([3.0, -1.0], dtype=torch.float64)}


def run(p):
    zero = torch.zeros(2, dtype=torch.float64)
    new, _, _ = adamw_step(p.clone(), zero.clone(), zero.clone(), zero.clone(), 1, lr=0.1,
                           weight_decay=0.5)
    return {"new": new}


def check(inputs, outputs):
    # with zero gradients Adam's step is zero: only the decoupled decay acts
    check_close(outputs["new"], inputs["p"] * 0.95, "one step with zero gradient, lr=0.1, weight_decay=0.5")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    theta, g, m0 = random_grads((3, 2), 3, seed=12)
    return {"start": random_grads((3, 2), 1, seed=8)[0],
            "zeros": [torch.zeros(3, 2, dtype=torch.float64) for _ in range(4)],
            "theta": theta, "g": g, "m0": m0, "v0": random_grads((3, 2), 1, seed=13)[0] ** 2,
            "hyper": dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)}


def run_hidden(start, zeros, theta, g, m0, v0, hyper):
    plain, _, _ = adamw_step(theta.clone(), g.clone(), m0.clone(), v0.clone(), 3, weight_decay=0.0, **hyper)
    decayed, _, _ = adamw_step(theta.clone(), g.clone(), m0.clone(), v0.clone(), 3, weight_decay=0.5, **hyper)
    return {"zeros_final": run_adamw(adamw_step, start, zeros, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8,
                                     weight_decay=0.2),
            "plain": plain, "decayed": decayed}


def check_hidden(inputs, outputs):
    check_close(outputs["zeros_final"], inputs["start"] * (1 - 0.05 * 0.2) ** 4,
                "4 steps with zero gradients, weight_decay=0.2")
    # decay and gradient together: step 1 of the statement shrinks theta before the Adam update, so
    # the step with decay is theta (1 - lr wd) plus the step your own adamw_step takes without decay
    theta = inputs["theta"]
    check_close(outputs["decayed"], theta * (1 - 0.1 * 0.5) + (outputs["plain"] - theta),
                "step t=3 on a random [3, 2] parameter, lr=0.1, weight_decay=0.5: theta (1 - lr wd) + your step "
                "without decay", tol=1e-9)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The cosine schedule with linear warm-up (3 points)
#
# `cosine_lr(t, max_lr, min_lr, warmup_iters, cosine_iters)` returns the learning rate at
# step `t`:
#
# - $\dfrac{t}{T_w}\,\eta_{\max}$ while $t < T_w$ (`warmup_iters`), so step 0 has rate 0;
# - $\eta_{\min} + \tfrac12\left(1 + \cos\left(\pi\,\dfrac{t - T_w}{T_c - T_w}\right)\right)(\eta_{\max} - \eta_{\min})$
#   for $T_w \le t \le T_c$ (`cosine_iters`);
# - $\eta_{\min}$ after $T_c$.
#
# You may assume $0 < T_w < T_c$.

# %% [solution] id=cosine_lr
def cosine_lr(t, max_lr, min_lr, warmup_iters, cosine_iters):
    ### BEGIN SOLUTION
    if t < warmup_iters:
        return t / warmup_iters * max_lr
    if t > cosine_iters:
        return min_lr
    progress = (t - warmup_iters) / (cosine_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    ### END SOLUTION

# %% [test] id=test_cosine_lr points=3
def make():
    return {"ts": [0, 10, 60]}


def run(ts):
    return {"lr": [cosine_lr(t, 1.0, 0.1, 10, 110) for t in ts]}


def check(inputs, outputs):
    start, top, half = outputs["lr"]
    check_close(start, 0.0, "cosine_lr at t=0 (start of warm-up)")
    check_close(top, 1.0, "cosine_lr at t=warmup_iters=10")
    check_close(half, 0.55, "cosine_lr half-way through the decay")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"ts": [1, 5, 9, 11, 37, 109, 110, 111, 500]}


def run_hidden(ts):
    return {"lr": [cosine_lr(t, 3e-3, 3e-4, 10, 110) for t in ts]}


def check_hidden(inputs, outputs):
    from lib.optim import cosine_lr as ref_cosine_lr

    for t, lr in zip(inputs["ts"], outputs["lr"]):
        check_close(lr, ref_cosine_lr(t, 3e-3, 3e-4, 10, 110),
                    f"cosine_lr(t={t}, 3e-3, 3e-4, warmup_iters=10, cosine_iters=110)")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Clipping by the global norm (3 points)
#
# `clip_grad_norm(grads, max_norm, eps=1e-6)` takes a list of gradient tensors (one per
# parameter) and returns `(clipped, norm)`: `norm` is the **global** L2 norm
# $N = \sqrt{\sum_k \lVert g_k \rVert^2}$ over all of them, as a Python float; if
# $N > $ `max_norm`, every gradient is multiplied by the **same** factor
# `max_norm / (N + eps)`, otherwise the gradients are returned unchanged. Return new
# tensors. (`torch.nn.utils.clip_grad_norm_` does this in place on `.grad`.)

# %% [solution] id=clip_grad_norm
def clip_grad_norm(grads, max_norm, eps=1e-6):
    ### BEGIN SOLUTION
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm <= max_norm:
        return [g.clone() for g in grads], norm
    scale = max_norm / (norm + eps)
    return [g * scale for g in grads], norm
    ### END SOLUTION

# %% [test] id=test_clip_grad_norm points=3
def make():
    return {"grads": [torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64)]}


def run(grads):
    clipped, norm = clip_grad_norm(grads, 1.0, eps=0.0)
    return {"clipped": clipped, "norm": norm}


def check(inputs, outputs):
    clipped = outputs["clipped"]
    check_close(outputs["norm"], 5.0, "global norm of [3, 0] and [4]")
    check_close(clipped[0], [0.6, 0.0], "first gradient clipped to global norm 1")
    check_close(clipped[1], [0.8], "second gradient clipped to global norm 1")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"cases": [(scale, max_norm, random_grads((4, 3), 1, seed=9, scale=scale)
                       + random_grads((3,), 1, seed=10, scale=scale)) for scale, max_norm in [(10.0, 1.0), (0.01, 1.0)]],
            "equal": [torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)],
            "below": [torch.tensor([0.3, -0.1], dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64)]}


def run_hidden(cases, equal, below):
    clipped_cases = [clip_grad_norm([g.clone() for g in grads], max_norm) for _, max_norm, grads in cases]
    equal_clipped, equal_norm = clip_grad_norm([g.clone() for g in equal], 3.0)
    below_clipped, _ = clip_grad_norm(below, 10.0)
    # whether a tensor handed back is the caller's own can only be seen here: its storage address
    return {"cases": clipped_cases, "equal_clipped": equal_clipped, "equal_norm": equal_norm,
            "below_ptrs": [c.data_ptr() for c in below_clipped], "caller_ptrs": [g.data_ptr() for g in below]}


def check_hidden(inputs, outputs):
    for (scale, max_norm, grads), (clipped, norm) in zip(inputs["cases"], outputs["cases"]):
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        ref_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        check_close(norm, ref_norm, f"global norm of gradients of scale {scale}")
        for k, (c, p) in enumerate(zip(clipped, params)):
            check_close(c, p.grad, f"gradient {k} of scale {scale} clipped to {max_norm}",
                        tol=1e-8)
    # a norm exactly equal to max_norm is not above it: the gradients come back unchanged
    check_close(outputs["equal_norm"], 3.0, "global norm of [2, 0] and [1, 2] with max_norm=3")
    for k, g in enumerate(inputs["equal"]):
        check_close(outputs["equal_clipped"][k], g,
                    f"gradient {k} of [2, 0], [1, 2] with max_norm = norm = 3 (not clipped)", tol=0.0)
    # below max_norm: new tensors all the same, so that changing one leaves the caller's gradients alone
    shared = [k for k, (c, g) in enumerate(zip(outputs["below_ptrs"], outputs["caller_ptrs"])) if c == g]
    assert not shared, (f"clip_grad_norm of [0.3, -0.1], [0.2] with max_norm=10 (no clipping): expected new tensors, "
                        f"got the caller's own tensors back at positions {shared}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
