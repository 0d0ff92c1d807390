# %% [markdown]
# # Assignment 11: a LoRA adapter from scratch
#
# You will implement the four pieces of a LoRA (low-rank adaptation) layer: its
# initialization, its unmerged forward pass, its gradients, and merging the adapter into
# the frozen weight for inference. The chapter
# [LoRA and quantization](../../../chapters/part6_patterns/lora_quantization.ipynb) derives
# every formula you need.
#
# Conventions (as in `torch.nn.Linear`): the frozen weight is `W [d_out, d_in]`, the bias
# `b [d_out]`, the adapter factors are `A [r, d_in]` and `B [d_out, r]`, and the layer is
#
# $$y = x W^\top + b + \frac{\alpha}{r}\,(x A^\top) B^\top .$$
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers); torch is enough.
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

torch.manual_seed(0)


def check_close(actual, expected, what, tol=1e-9):
    """Assert two tensors have the same shape and agree to ``tol`` (absolute).

    ``what`` names the quantity and its input; every failure message starts with it.
    """
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {tuple(expected.shape)}, got shape {tuple(actual.shape)}")
    assert torch.isfinite(actual).all(), f"{what}: expected finite values, got {actual}"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol, f"{what}: expected\n{expected}\ngot\n{actual}\n(max error {err:.3e} > {tol:.0e})"


def random_layer(d_in, d_out, r, seed):
    """A random frozen layer and adapter in float64: (W, b, A, B)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(d_out, d_in, generator=g, dtype=torch.float64),
            torch.randn(d_out, generator=g, dtype=torch.float64),
            torch.randn(r, d_in, generator=g, dtype=torch.float64),
            torch.randn(d_out, r, generator=g, dtype=torch.float64))

# %% [markdown]
# ## 1. Initialization (2 points)
#
# `init_lora(d_in, d_out, r, generator)` returns `(A, B)` in float32:
#
# - `A [r, d_in]` with independent entries drawn from $\mathcal N(0, 1/d_\text{in})$ (use
#   `torch.randn(..., generator=generator)` and scale it);
# - `B [d_out, r]` such that the adapted layer computes **exactly** the base layer at
#   step 0, while the first gradient step can still change the adapter.

# %% [solution] id=init_lora
def init_lora(d_in, d_out, r, generator=None):
    ### BEGIN SOLUTION
    A = torch.randn(r, d_in, generator=generator) / math.sqrt(d_in)     # [r, d_in]
    B = torch.zeros(d_out, r)                                           # [d_out, r]
    return A, B
    ### END SOLUTION

# %% [test] id=test_init_lora points=2
def make():
    return {"d_in": 16, "d_out": 12, "r": 4, "seed": 0}


def run(d_in, d_out, r, seed):
    A, B = init_lora(d_in, d_out, r, torch.Generator().manual_seed(seed))
    return {"A": A, "B": B}


def check(inputs, outputs):
    A, B = outputs["A"], outputs["B"]
    assert A.shape == (4, 16) and B.shape == (12, 4), (
        f"init_lora(d_in=16, d_out=12, r=4): expected A [r, d_in] = (4, 16) and B [d_out, r] = (12, 4), "
        f"got {tuple(A.shape)} and {tuple(B.shape)}")
    assert torch.count_nonzero(B) == 0, (
        f"init_lora(16, 12, 4): expected B all zero (the model is unchanged at step 0), "
        f"got {torch.count_nonzero(B).item()} nonzero entries")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"small": (16, 12, 4, 0), "wide": (1024, 8, 64, 1), "twice": (8, 8, 2, 3)}


def run_hidden(small, wide, twice):
    def init(d_in, d_out, r, seed):
        return init_lora(d_in, d_out, r, torch.Generator().manual_seed(seed))

    A, _ = init(*small)
    wide_A, wide_B = init(*wide)
    A1, _ = init(*twice)
    A2, _ = init(*twice)
    return {"A": A, "wide_A": wide_A, "wide_B": wide_B, "A1": A1, "A2": A2}


def check_hidden(inputs, outputs):
    A = outputs["A"]
    assert torch.count_nonzero(A) == A.numel(), (
        f"init_lora(16, 12, 4): expected every entry of A random and nonzero (or no gradient ever flows), "
        f"got {A.numel() - torch.count_nonzero(A).item()} zeros of {A.numel()}")
    A, B = outputs["wide_A"], outputs["wide_B"]
    assert abs(A.var().item() * 1024 - 1.0) < 0.1, (
        f"init_lora(d_in=1024, 8, r=64): expected A's variance 1/d_in = {1 / 1024:.2e} (within 10%), got {A.var().item():.2e}")
    assert abs(A.mean().item()) < 0.01, f"init_lora(1024, 8, 64): expected A's mean within 0.01 of 0, got {A.mean().item():.3g}"
    assert not B.any(), (
        f"init_lora(1024, 8, 64): expected B all zero for every d_in, d_out and r, got {torch.count_nonzero(B).item()} nonzero")
    A1, A2 = outputs["A1"], outputs["A2"]
    assert torch.equal(A1, A2), (
        f"init_lora(8, 8, 2) twice with generators seeded 3: expected the same A (draw from the generator you are "
        f"given), got entries differing by up to {(A1 - A2).abs().max().item():.3g}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The unmerged forward pass (3 points)
#
# `lora_forward(x, W, b, A, B, alpha)` takes `x [..., d_in]` (any number of leading
# dimensions) and returns `[..., d_out]`:
# $x W^\top + b + \frac{\alpha}{r}(xA^\top)B^\top$, where $r$ is the adapter's rank (read
# it from the shapes). Compute the low-rank path as two thin matmuls; do not form
# $BA$. `b` may be `None` (no bias).

# %% [solution] id=lora_forward
def lora_forward(x, W, b, A, B, alpha):
    ### BEGIN SOLUTION
    r = A.shape[0]
    y = x @ W.T                                                         # [..., d_out]
    if b is not None:
        y = y + b
    return y + (alpha / r) * ((x @ A.T) @ B.T)                          # [..., r] -> [..., d_out]
    ### END SOLUTION

# %% [test] id=test_lora_forward points=3
def make():
    return {"x": torch.tensor([[3.0, 4.0]], dtype=torch.float64),
            "W": torch.eye(2, dtype=torch.float64),
            "A": torch.tensor([[1.0, 0.0]], dtype=torch.float64),                    # r = 1
            "B": torch.tensor([[0.0], [1.0]], dtype=torch.float64)}


def run(x, W, A, B):
    return {"y": lora_forward(x, W, None, A, B, alpha=2.0)}


def check(inputs, outputs):
    check_close(outputs["y"], [[3.0, 4.0 + 2.0 * 3.0]],
                "lora_forward(x=[[3, 4]], W=I, b=None, A=[[1, 0]], B=[[0], [1]], alpha=2), r = 1")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    W, b, A, B = random_layer(7, 5, 3, seed=11)
    W4, b4, A4, B4 = random_layer(6, 6, 4, seed=13)
    return {"layer": (W, b, A, B),
            "x": torch.randn(2, 4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(12)),
            "alphas": [3.0, 12.0], "fractional_alphas": [16.0, 2.0],
            "square": (W4, b4, A4, B4),
            "x_square": torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(14))}


def run_hidden(layer, x, alphas, fractional_alphas, square, x_square):
    W, b, A, B = layer
    return {"y": [lora_forward(x, W, b, A, B, alpha) for alpha in alphas],
            "no_bias": lora_forward(x, W, None, A, B, 6.0),
            "fractional": [lora_forward(x, W, b, A, B, alpha) for alpha in fractional_alphas],
            "square": lora_forward(x_square, *square, 4.0)}


def check_hidden(inputs, outputs):
    from lib.lora import lora_linear as ref_forward

    W, b, A, B = inputs["layer"]
    x = inputs["x"]
    for alpha, y in zip(inputs["alphas"], outputs["y"]):
        check_close(y, ref_forward(x, W, b, A, B, alpha),
                    f"lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha={alpha}")
    check_close(outputs["no_bias"], ref_forward(x, W, None, A, B, 6.0),
                "lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha=6, b=None")
    # alpha / r not a whole number: the scale is a true division (16 / 3, and 2 / 3 < 1)
    for alpha, y in zip(inputs["fractional_alphas"], outputs["fractional"]):
        check_close(y, ref_forward(x, W, b, A, B, alpha),
                    f"lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha={alpha} (alpha / r = {alpha / 3:.4g})")
    # rank 4 with alpha = 4: the scale alpha / r is exactly 1
    W, b, A, B = inputs["square"]
    x = inputs["x_square"]
    check_close(outputs["square"], x @ (W + B @ A).T + b,
                "lora_forward, x [3, 6], r=4, alpha=4 (scale exactly 1) vs x (W + BA)^T + b")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Gradients of the adapter (3 points)
#
# For a 2-D input `x [N, d_in]` and the upstream gradient `dy [N, d_out]`
# ($= \partial L/\partial y$), return `(dA, dB)`, the gradients of $L$ with respect to `A`
# and `B` (shapes `[r, d_in]` and `[d_out, r]`), by hand: no autograd. With
# $s = \alpha/r$ and $h = xA^\top$, derive them from $y = \dots + s\,hB^\top$.

# %% [solution] id=lora_grads
def lora_grads(x, A, B, dy, alpha):
    ### BEGIN SOLUTION
    s = alpha / A.shape[0]
    h = x @ A.T                                                         # [N, r]
    dB = s * dy.T @ h                                                   # [d_out, r]
    dA = s * (dy @ B).T @ x                                             # [r, d_in]
    return dA, dB
    ### END SOLUTION

# %% [test] id=test_lora_grads points=3
def make():
    return {"x": torch.ones(1, 2, dtype=torch.float64),
            "A": torch.tensor([[1.0, 2.0]], dtype=torch.float64),
            "B": torch.zeros(3, 1, dtype=torch.float64),
            "dy": torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)}


def run(x, A, B, dy):
    dA, dB = lora_grads(x, A, B, dy, alpha=1.0)
    return {"dA": dA, "dB": dB}


def check(inputs, outputs):
    check_close(outputs["dA"], torch.zeros(1, 2), "lora_grads dA with B = 0 (at init), x = [[1, 1]], r = 1")
    check_close(outputs["dB"], [[3.0], [0.0], [-3.0]],
                "lora_grads dB, x = [[1, 1]], A = [[1, 2]], dy = [[1, 0, -1]], alpha = 1")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for seed, (d_in, d_out, r, alpha) in enumerate([(5, 4, 2, 8.0), (3, 6, 3, 1.5)]):
        W, b, A, B = random_layer(d_in, d_out, r, seed=20 + seed)
        g = torch.Generator().manual_seed(40 + seed)
        cases.append({"W": W, "b": b, "A": A, "B": B, "alpha": alpha,
                      "x": torch.randn(7, d_in, dtype=torch.float64, generator=g),
                      "dy": torch.randn(7, d_out, dtype=torch.float64, generator=g)})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [lora_grads(c["x"], c["A"], c["B"], c["dy"], c["alpha"]) for c in cases]}


def check_hidden(inputs, outputs):
    for c, (dA, dB) in zip(inputs["cases"], outputs["grads"]):
        W, b, x, dy, alpha = c["W"], c["b"], c["x"], c["dy"], c["alpha"]
        A, B = c["A"].clone().requires_grad_(True), c["B"].clone().requires_grad_(True)
        d_in, d_out, r = W.shape[1], W.shape[0], A.shape[0]
        (dy * (x @ W.T + b + (alpha / r) * (x @ A.T) @ B.T)).sum().backward()
        check_close(dA, A.grad, f"lora_grads dA vs autograd, x [7, {d_in}], d_out={d_out}, r={r}, alpha={alpha}")
        check_close(dB, B.grad, f"lora_grads dB vs autograd, x [7, {d_in}], d_out={d_out}, r={r}, alpha={alpha}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Merging the adapter (2 points)
#
# `merge_lora(W, A, B, alpha)` returns the weight `[d_out, d_in]` of a plain linear layer
# that computes the same function as the adapted one, so inference costs nothing extra.

# %% [solution] id=merge_lora
def merge_lora(W, A, B, alpha):
    ### BEGIN SOLUTION
    return W + (alpha / A.shape[0]) * (B @ A)                           # [d_out, d_in]
    ### END SOLUTION

# %% [test] id=test_merge_lora points=2
def make():
    W, b, A, B = random_layer(4, 4, 2, seed=30)
    return {"W": W, "A": A, "B": B}


def run(W, A, B):
    return {"merged": merge_lora(W, A, B, 2.0)}


def check(inputs, outputs):
    merged = outputs["merged"]
    assert merged.shape == (4, 4), f"merge_lora with W [4, 4], r=2: expected shape (4, 4), got {tuple(merged.shape)}"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    # the last case has alpha / r = 7 / 3, not a whole number
    for seed, (d_in, d_out, r, alpha) in enumerate([(4, 4, 2, 2.0), (9, 5, 3, 6.0), (5, 6, 3, 7.0)]):
        W, b, A, B = random_layer(d_in, d_out, r, seed=31 + seed)
        x = torch.randn(6, d_in, dtype=torch.float64, generator=torch.Generator().manual_seed(50 + seed))
        cases.append({"W": W, "b": b, "A": A, "B": B, "alpha": alpha, "x": x})
    return {"cases": cases}


def run_hidden(cases):
    return {"merged": [merge_lora(c["W"], c["A"], c["B"], c["alpha"]) for c in cases]}


def check_hidden(inputs, outputs):
    from lib.lora import lora_linear as ref_forward

    for c, merged in zip(inputs["cases"], outputs["merged"]):
        W, b, A, B, alpha, x = c["W"], c["b"], c["A"], c["B"], c["alpha"], c["x"]
        d_out, d_in, r = W.shape[0], W.shape[1], A.shape[0]
        assert merged.shape == (d_out, d_in), (
            f"merge_lora, W [{d_out}, {d_in}], r={r}: expected W's shape ({d_out}, {d_in}), got {tuple(merged.shape)}")
        check_close(x @ merged.T + b, ref_forward(x, W, b, A, B, alpha),
                    f"x W_merged^T + b vs lib's adapted layer, W [{d_out}, {d_in}], r={r}, alpha={alpha}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
