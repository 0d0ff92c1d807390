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
_A, _B = init_lora(16, 12, 4, torch.Generator().manual_seed(0))
assert _A.shape == (4, 16) and _B.shape == (12, 4), (
    f"init_lora(d_in=16, d_out=12, r=4): expected A [r, d_in] = (4, 16) and B [d_out, r] = (12, 4), "
    f"got {tuple(_A.shape)} and {tuple(_B.shape)}")
assert torch.count_nonzero(_B) == 0, (
    f"init_lora(16, 12, 4): expected B all zero (the model is unchanged at step 0), "
    f"got {torch.count_nonzero(_B).item()} nonzero entries")
### BEGIN HIDDEN TESTS
assert torch.count_nonzero(_A) == _A.numel(), (
    f"init_lora(16, 12, 4): expected every entry of A random and nonzero (or no gradient ever flows), "
    f"got {_A.numel() - torch.count_nonzero(_A).item()} zeros of {_A.numel()}")
_A, _B = init_lora(1024, 8, 64, torch.Generator().manual_seed(1))
assert abs(_A.var().item() * 1024 - 1.0) < 0.1, (
    f"init_lora(d_in=1024, 8, r=64): expected A's variance 1/d_in = {1 / 1024:.2e} (within 10%), got {_A.var().item():.2e}")
assert abs(_A.mean().item()) < 0.01, f"init_lora(1024, 8, 64): expected A's mean within 0.01 of 0, got {_A.mean().item():.3g}"
assert not _B.any(), (
    f"init_lora(1024, 8, 64): expected B all zero for every d_in, d_out and r, got {torch.count_nonzero(_B).item()} nonzero")
_A1, _ = init_lora(8, 8, 2, torch.Generator().manual_seed(3))
_A2, _ = init_lora(8, 8, 2, torch.Generator().manual_seed(3))
assert torch.equal(_A1, _A2), (
    f"init_lora(8, 8, 2) twice with generators seeded 3: expected the same A (draw from the generator you are "
    f"given), got entries differing by up to {(_A1 - _A2).abs().max().item():.3g}")
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
_W = torch.eye(2, dtype=torch.float64)
_A = torch.tensor([[1.0, 0.0]], dtype=torch.float64)                    # r = 1
_B = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
_x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
check_close(lora_forward(_x, _W, None, _A, _B, alpha=2.0), [[3.0, 4.0 + 2.0 * 3.0]],
            "lora_forward(x=[[3, 4]], W=I, b=None, A=[[1, 0]], B=[[0], [1]], alpha=2), r = 1")
### BEGIN HIDDEN TESTS
from lib.lora import lora_linear as _ref_forward
_W, _b, _A, _B = random_layer(7, 5, 3, seed=11)
_x = torch.randn(2, 4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
for _alpha in (3.0, 12.0):
    check_close(lora_forward(_x, _W, _b, _A, _B, _alpha), _ref_forward(_x, _W, _b, _A, _B, _alpha),
                f"lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha={_alpha}")
check_close(lora_forward(_x, _W, None, _A, _B, 6.0), _ref_forward(_x, _W, None, _A, _B, 6.0),
            "lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha=6, b=None")
# alpha / r not a whole number: the scale is a true division (16 / 3, and 2 / 3 < 1)
for _alpha in (16.0, 2.0):
    check_close(lora_forward(_x, _W, _b, _A, _B, _alpha), _ref_forward(_x, _W, _b, _A, _B, _alpha),
                f"lora_forward vs lib, x [2, 4, 7], d_out=5, r=3, alpha={_alpha} (alpha / r = {_alpha / 3:.4g})")
# rank 4 with alpha = 4: the scale alpha / r is exactly 1
_W, _b, _A, _B = random_layer(6, 6, 4, seed=13)
_x = torch.randn(3, 6, dtype=torch.float64)
check_close(lora_forward(_x, _W, _b, _A, _B, 4.0), _x @ (_W + _B @ _A).T + _b,
            "lora_forward, x [3, 6], r=4, alpha=4 (scale exactly 1) vs x (W + BA)^T + b")
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
_x = torch.ones(1, 2, dtype=torch.float64)
_A = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
_B = torch.zeros(3, 1, dtype=torch.float64)
_dy = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
_dA, _dB = lora_grads(_x, _A, _B, _dy, alpha=1.0)
check_close(_dA, torch.zeros(1, 2), "lora_grads dA with B = 0 (at init), x = [[1, 1]], r = 1")
check_close(_dB, [[3.0], [0.0], [-3.0]], "lora_grads dB, x = [[1, 1]], A = [[1, 2]], dy = [[1, 0, -1]], alpha = 1")
### BEGIN HIDDEN TESTS
for _seed, (_din, _dout, _r, _alpha) in enumerate([(5, 4, 2, 8.0), (3, 6, 3, 1.5)]):
    _W, _b, _A, _B = random_layer(_din, _dout, _r, seed=20 + _seed)
    _A.requires_grad_(True)
    _B.requires_grad_(True)
    _x = torch.randn(7, _din, dtype=torch.float64)
    _dy = torch.randn(7, _dout, dtype=torch.float64)
    (_dy * (_x @ _W.T + _b + (_alpha / _r) * (_x @ _A.T) @ _B.T)).sum().backward()
    _dA, _dB = lora_grads(_x, _A.detach(), _B.detach(), _dy, _alpha)
    check_close(_dA, _A.grad, f"lora_grads dA vs autograd, x [7, {_din}], d_out={_dout}, r={_r}, alpha={_alpha}")
    check_close(_dB, _B.grad, f"lora_grads dB vs autograd, x [7, {_din}], d_out={_dout}, r={_r}, alpha={_alpha}")
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
_W, _b, _A, _B = random_layer(4, 4, 2, seed=30)
_merged = merge_lora(_W, _A, _B, 2.0)
assert _merged.shape == (4, 4), f"merge_lora with W [4, 4], r=2: expected shape (4, 4), got {tuple(_merged.shape)}"
### BEGIN HIDDEN TESTS
from lib.lora import lora_linear as _ref_forward
# the last case has alpha / r = 7 / 3, not a whole number
for _seed, (_din, _dout, _r, _alpha) in enumerate([(4, 4, 2, 2.0), (9, 5, 3, 6.0), (5, 6, 3, 7.0)]):
    _W, _b, _A, _B = random_layer(_din, _dout, _r, seed=31 + _seed)
    _x = torch.randn(6, _din, dtype=torch.float64)
    _merged = merge_lora(_W, _A, _B, _alpha)
    assert _merged.shape == (_dout, _din), (
        f"merge_lora, W [{_dout}, {_din}], r={_r}: expected W's shape ({_dout}, {_din}), got {tuple(_merged.shape)}")
    check_close(_x @ _merged.T + _b, _ref_forward(_x, _W, _b, _A, _B, _alpha),
                f"x W_merged^T + b vs lib's adapted layer, W [{_dout}, {_din}], r={_r}, alpha={_alpha}")
### END HIDDEN TESTS
