# %% [markdown]
# # Assignment 3: the softmax backward and LayerNorm, forward and backward
#
# Softmax and LayerNorm couple all the entries of a row: each output depends on every
# input of its row, so their backward passes are not elementwise. You will implement, in
# NumPy, the vectorized softmax backward and LayerNorm's forward and backward passes. The
# chapter [Softmax, LayerNorm, dropout and residual paths](../../../chapters/part2_backprop/softmax_layernorm_dropout.ipynb)
# derives every formula you need.
#
# Conventions: every function works on the **last axis** and accepts any number of
# leading axes (`[N, D]`, `[B, T, D]`, ...). `dX` means $\partial L / \partial X$ for a
# scalar loss $L$ and has the shape of `X`.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers) or any library other than NumPy.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Each function is graded on its own (the LayerNorm backward tests build the cache
#   themselves), so a mistake in one part does not cost you the others.
# - The visible tests are a first check; the grader runs hidden tests with other shapes.
#   Check your backward passes with finite differences (the helper below) before you submit.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 10 in all.

# %% [setup]
import numpy as np


def check_close(actual, expected, what, tol=1e-8):
    """Assert that two arrays have the same shape and agree to ``tol`` (relative and absolute).

    ``what`` names the quantity and its input; every failure message starts with it.
    """
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: expected shape {expected.shape}, got shape {actual.shape}"
    assert np.allclose(actual, expected, rtol=tol, atol=tol), (
        f"{what}: expected\n{expected}\ngot\n{actual}\n(tolerance {tol:g})")


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to the array x (perturbed in place)."""
    grad = np.zeros_like(x, dtype=float)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = f()
        x[index] = saved - eps
        f_minus = f()
        x[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad

# %% [markdown]
# ## 1. The softmax backward (3 points)
#
# Given `p = softmax(z)` (along the last axis) and `grad_p` $= \partial L/\partial p$, of
# the same shape `[..., C]`, return $\partial L / \partial z$. The Jacobian is
# $J = \operatorname{diag}(p) - pp^\top$; do **not** build it. Expanding $J^\top g$ gives
#
# $$\frac{\partial L}{\partial z} = p \odot \Big(g - \sum_{i} g_i\, p_i\Big),$$
#
# with the sum taken over the last axis, separately for every row.

# %% [solution] id=softmax_backward
def softmax_backward(p, grad_p):
    ### BEGIN SOLUTION
    inner = np.sum(grad_p * p, axis=-1, keepdims=True)
    return p * (grad_p - inner)
    ### END SOLUTION

# %% [test] id=test_softmax_backward points=3
def make():
    return {"p": np.array([0.2, 0.3, 0.5]), "grads": [np.array([1.0, 0.0, 0.0]), np.full(3, 4.0)]}


def run(p, grads):
    return {"dz": [softmax_backward(p, grad_p) for grad_p in grads]}


def check(inputs, outputs):
    one_hot, constant = outputs["dz"]
    check_close(one_hot, [0.16, -0.06, -0.1], "softmax_backward(p=[0.2, 0.3, 0.5], grad_p=[1, 0, 0])")
    check_close(constant, np.zeros(3),
                "softmax_backward(p=[0.2, 0.3, 0.5], grad_p=[4, 4, 4]) (a constant g changes nothing)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    import torch

    cases = []
    for shape in [(5,), (4, 6), (2, 3, 7), (3, 3)]:
        rng = np.random.default_rng(len(shape) + shape[-1])
        z, g = rng.normal(size=shape), rng.normal(size=shape)
        cases.append({"z": z, "p": torch.softmax(torch.tensor(z), -1).numpy(), "grad_p": g})
    return {"cases": cases}


def run_hidden(cases):
    return {"dz": [softmax_backward(case["p"], case["grad_p"]) for case in cases]}


def check_hidden(inputs, outputs):
    import torch
    from lib.backprop import softmax_backward as ref_softmax_backward

    for case, dz in zip(inputs["cases"], outputs["dz"]):
        z, p, g = case["z"], case["p"], case["grad_p"]
        tz = torch.tensor(z, requires_grad=True)
        torch.softmax(tz, -1).backward(torch.tensor(g))
        check_close(dz, tz.grad.numpy(), f"softmax_backward vs torch autograd, shape {z.shape}", tol=1e-10)
        check_close(dz, ref_softmax_backward(p, g), f"softmax_backward vs lib, shape {z.shape}", tol=1e-10)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. LayerNorm forward (2 points)
#
# `layernorm_forward(x, gamma, beta, eps=1e-5)` normalizes each row of `x [..., D]` over
# its last axis, with the **biased** variance (divide by $D$):
#
# $$\mu = \frac1D\sum_i x_i,\quad \sigma^2 = \frac1D\sum_i (x_i-\mu)^2,\quad r =
# \frac{1}{\sqrt{\sigma^2 + \epsilon}},\quad \hat x = (x-\mu)\,r,\quad y = \gamma\odot\hat
# x + \beta .$$
#
# Return `(y, cache)` with `cache = (xhat, r, gamma)` where `r` has shape `[..., 1]`.

# %% [solution] id=layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    ### BEGIN SOLUTION
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * r
    return gamma * xhat + beta, (xhat, r, gamma)
    ### END SOLUTION

# %% [test] id=test_layernorm_forward points=2
def make():
    return {"x": np.array([[1.0, 3.0]]), "gamma": np.ones(2), "beta": np.zeros(2)}


def run(x, gamma, beta):
    y, cache = layernorm_forward(x, gamma, beta, eps=0.0)
    return {"y": y, "cache_length": len(cache)}


def check(inputs, outputs):
    check_close(outputs["y"], [[-1.0, 1.0]], "layernorm_forward y, x = [[1, 3]], gamma = 1, beta = 0, eps = 0")
    assert outputs["cache_length"] == 3, (
        f"layernorm_forward cache on x = [[1, 3]]: expected the 3-tuple (xhat, r, gamma), "
        f"got length {outputs['cache_length']}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(21)
    cases = []
    for shape in [(4, 6), (2, 3, 5)]:
        x = rng.normal(3.0, 2.0, size=shape)
        gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
        cases.append({"x": x, "gamma": gamma, "beta": beta})
    # the variance is the mean of (x - mu)**2: rows far from 0, and a constant row where only eps keeps r finite
    cases.append({"x": np.array([[1e8 + 0.3, 1e8 - 1.1, 1e8 + 2.2, 1e8 + 0.7], [7.0, 7.0, 7.0, 7.0]]),
                  "gamma": np.array([1.0, -2.0, 0.5, 3.0]), "beta": np.array([0.1, 0.2, 0.3, 0.4])})
    return {"cases": cases}


def run_hidden(cases):
    results = []
    for case in cases:
        y, (xhat, r, _) = layernorm_forward(case["x"], case["gamma"], case["beta"])
        results.append({"y": y, "xhat": xhat, "r": r})
    return {"results": results}


def check_hidden(inputs, outputs):
    from lib.backprop import layernorm_forward as ref_ln_forward

    *random, far = zip(inputs["cases"], outputs["results"])
    for case, out in random:
        shape = case["x"].shape
        y_ref, c_ref = ref_ln_forward(case["x"], case["gamma"], case["beta"])
        check_close(out["y"], y_ref, f"layernorm_forward y vs lib, x ~ N(3, 2) of shape {shape}")
        check_close(out["xhat"], c_ref.xhat, f"layernorm_forward cache xhat vs lib, x ~ N(3, 2) of shape {shape}")
        check_close(out["r"], c_ref.rstd, f"layernorm_forward cache r (shape [..., 1]) vs lib, x ~ N(3, 2) of shape {shape}")
    # the variance is the mean of (x - mu)**2: rows far from 0, and a constant row where only eps keeps r finite
    case, out = far
    y_ref, c_ref = ref_ln_forward(case["x"], case["gamma"], case["beta"])
    check_close(out["r"], c_ref.rstd, "layernorm_forward r for the rows 1e8 + [0.3, -1.1, 2.2, 0.7] and [7, 7, 7, 7]",
                tol=1e-6)
    check_close(out["y"], y_ref, "layernorm_forward y for the rows 1e8 + [0.3, -1.1, 2.2, 0.7] and [7, 7, 7, 7]",
                tol=1e-6)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. LayerNorm backward (5 points)
#
# `layernorm_backward(dy, cache)` receives `dy` $= \partial L/\partial y$ `[..., D]` and
# the cache `(xhat, r, gamma)` of part 2, and returns `(dx, dgamma, dbeta)`. With
# $g = dy \odot \gamma$ (the gradient with respect to $\hat x$), differentiating through
# $\mu$ and $\sigma^2$ gives
#
# $$dx = r\,\Big(g - \overline{g} - \hat x\;\overline{g\,\hat x}\Big), \qquad
# \overline{g} = \frac1D\sum_j g_j,\quad \overline{g\hat x} = \frac1D\sum_j g_j \hat x_j,$$
#
# per row. `gamma` and `beta` were broadcast over **every** leading axis, so
# `dgamma` $= \sum dy\odot\hat x$ and `dbeta` $= \sum dy$ over all leading axes: both have
# shape `[D]`, also when `dy` is `[B, T, D]`.
#
# Two checks you can run yourself: every row of `dx` sums to zero, and `dx` matches
# `numerical_gradient` applied to `lambda: np.sum(w * layernorm_forward(x, gamma, beta)[0])`
# for a random weight array `w` (then `dy = w`).

# %% [solution] id=layernorm_backward
def layernorm_backward(dy, cache):
    ### BEGIN SOLUTION
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma
    dx = r * (g - g.mean(axis=-1, keepdims=True)
              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
    ### END SOLUTION

# %% [markdown]
# The tests build the cache with the reference forward pass, so they grade
# `layernorm_backward` alone: the first checks `dx`, the second `dgamma` and `dbeta`.

# %% [test] id=test_layernorm_backward_dx points=3
def make():
    x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    gamma = np.array([1.0, 2.0, 0.5])
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    return {"dy": np.array([[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]]), "cache": ((x - mu) * r, r, gamma)}


def run(dy, cache):
    dx, _, _ = layernorm_backward(dy, cache)
    return {"dx": dx}


def check(inputs, outputs):
    dx = outputs["dx"]
    assert np.shape(dx) == (2, 3), f"layernorm_backward dx for x of shape (2, 3): expected shape (2, 3), got {np.shape(dx)}"
    check_close(dx.sum(axis=-1), np.zeros(2), "the row sums of layernorm_backward dx, x [2, 3] (shift invariance)", tol=1e-10)


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(31)
    cases = []
    for shape in [(4, 6), (2, 3, 5), (1, 8)]:
        x = rng.normal(1.0, 2.0, size=shape)
        gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
        w = rng.normal(size=shape)
        # the cache of the reference forward pass (the arithmetic of lib.backprop.layernorm_forward)
        mu = x.mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
        cases.append({"x": x, "gamma": gamma, "beta": beta, "dy": w, "cache": ((x - mu) * rstd, rstd, gamma)})
    return {"cases": cases}


def run_hidden(cases):
    results = []
    for case in cases:
        dx, _, _ = layernorm_backward(case["dy"], case["cache"])
        results.append(dx)
    return {"dx": results}


def check_hidden(inputs, outputs):
    from lib.backprop import layernorm_backward as ref_ln_backward
    from lib.backprop import layernorm_forward as ref_ln_forward

    for case, dx in zip(inputs["cases"], outputs["dx"]):
        x, gamma, beta, w = case["x"], case["gamma"], case["beta"], case["dy"]
        _, c = ref_ln_forward(x, gamma, beta)
        check_close(dx, ref_ln_backward(w, c)[0], f"layernorm_backward dx vs lib, shape {x.shape}", tol=1e-9)
        num = numerical_gradient(lambda: float(np.sum(w * ref_ln_forward(x, gamma, beta)[0])), x)
        check_close(dx, num, f"layernorm_backward dx vs central differences, shape {x.shape}", tol=1e-6)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_layernorm_backward_params points=2
def make():
    x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    gamma = np.array([1.0, 2.0, 0.5])
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    return {"dy": np.array([[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]]), "cache": ((x - mu) * r, r, gamma)}


def run(dy, cache):
    _, dgamma, dbeta = layernorm_backward(dy, cache)
    return {"dgamma": dgamma, "dbeta": dbeta}


def check(inputs, outputs):
    check_close(outputs["dbeta"], [1.3, 0.2, -0.9], "layernorm_backward dbeta, dy [2, 3]")
    assert np.shape(outputs["dgamma"]) == (3,), (
        f"layernorm_backward dgamma, dy [2, 3]: expected the shape of gamma, (3,), got {np.shape(outputs['dgamma'])}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(41)
    cases = []
    for shape in [(5, 4), (2, 3, 4), (2, 2, 2, 4)]:
        x = rng.normal(size=shape)
        gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
        w = rng.normal(size=shape)
        # the cache of the reference forward pass (the arithmetic of lib.backprop.layernorm_forward)
        mu = x.mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
        cases.append({"x": x, "gamma": gamma, "beta": beta, "dy": w, "cache": ((x - mu) * rstd, rstd, gamma)})
    return {"cases": cases}


def run_hidden(cases):
    results = []
    for case in cases:
        _, dgamma, dbeta = layernorm_backward(case["dy"], case["cache"])
        results.append({"dgamma": dgamma, "dbeta": dbeta})
    return {"results": results}


def check_hidden(inputs, outputs):
    from lib.backprop import layernorm_backward as ref_ln_backward
    from lib.backprop import layernorm_forward as ref_ln_forward

    for case, out in zip(inputs["cases"], outputs["results"]):
        shape = case["x"].shape
        _, c = ref_ln_forward(case["x"], case["gamma"], case["beta"])
        _, ref_dgamma, ref_dbeta = ref_ln_backward(case["dy"], c)
        check_close(out["dgamma"], ref_dgamma, f"layernorm_backward dgamma vs lib, dy of shape {shape}", tol=1e-10)
        check_close(out["dbeta"], ref_dbeta, f"layernorm_backward dbeta vs lib, dy of shape {shape}", tol=1e-10)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
