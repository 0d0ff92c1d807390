# %% [markdown]
# # Assignment: the whole transformer block, backward by hand
#
# You will write, in NumPy, the backward pass of a pre-LayerNorm decoder block: LayerNorm,
# causal multi-head attention, residual, LayerNorm, GELU MLP, residual. The forward pass is
# given (in the setup cell below); you implement four pieces of the backward pass and then
# assemble them. The chapter [The whole transformer block, backward by hand](../../../chapters/part3_attention/block_backward.ipynb)
# derives every formula; [Multi-head attention and its backward pass](../../../chapters/part3_attention/multi_head_backward.ipynb)
# and [Softmax, LayerNorm, dropout and residual paths](../../../chapters/part2_backprop/softmax_layernorm_dropout.ipynb)
# derive the pieces.
#
# Shapes: `x [B, L, D]`; `H` heads of width `Dh = D / H`; the MLP is `D -> F -> D`. Weights
# are applied as `x @ W`. Per-head arrays are `[B, H, L, Dh]`: `split_heads` and
# `merge_heads` (given) convert between `[B, L, D]` and `[B, H, L, Dh]`. `dX` means
# $\partial \mathcal{L}/\partial X$ for a scalar loss and has the shape of `X`. A weight
# used at every position has its gradient **summed** over the batch and position axes.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers) or any library other than NumPy; no autograd.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Parts 1 to 4 are graded on their own: their tests feed them exact inputs, so a mistake
#   in one of them does not cost you the others. Part 5 assembles your parts 1 to 4, so it
#   can only pass once they are right: do it last.
# - The visible tests are a first check; the grader runs hidden tests with other shapes,
#   including the boundary cases `B = 1`, `L = 1` and one head. Check your backward passes
#   with finite differences (the helper below) before you submit.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 14 in all.

# %% [setup]
import math

import numpy as np
import torch  # the grader's hidden tests compare with autograd; your answers may not use it


def check_close(actual, expected, tol=1e-8, what="value"):
    """Assert that two arrays have the same shape and agree to ``tol`` (relative and absolute)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    worst = np.max(np.abs(actual - expected), initial=0.0)
    assert np.allclose(actual, expected, rtol=tol, atol=tol), (
        f"{what}: largest difference {worst:.3g}; got\n{actual}\nexpected\n{expected}")


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


KAPPA = math.sqrt(2.0 / math.pi)


def gelu(u):
    """GELU, tanh approximation (GPT-2's): 0.5 u (1 + tanh(KAPPA (u + 0.044715 u^3)))."""
    return 0.5 * u * (1.0 + np.tanh(KAPPA * (u + 0.044715 * u ** 3)))


def split_heads(t, n_heads):
    """[B, L, D] -> [B, H, L, Dh]: feature h * Dh + j goes to head h."""
    b, l, d = t.shape
    return t.reshape(b, l, n_heads, d // n_heads).transpose(0, 2, 1, 3)


def merge_heads(t):
    """[B, H, L, Dh] -> [B, L, D], the inverse of split_heads."""
    b, h, l, dh = t.shape
    return t.transpose(0, 2, 1, 3).reshape(b, l, h * dh)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis (biased variance); returns y and (xhat, rstd [..., 1], gamma)."""
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    return gamma * xhat + beta, (xhat, rstd, gamma)


def attention_forward(q, k, v, causal):
    """softmax(q k^T / sqrt(Dh), masked causally if causal) v; q, k, v [B, H, L, Dh]."""
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])           # [B, H, L, L]
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v                     # [B, H, L, Dh]


def init_block(d, d_ff, seed):
    """Random float64 parameters of the block (biases and LayerNorm shifts nonzero)."""
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0.0, 1.0 / math.sqrt(shape[0]), size=shape)  # noqa: E731
    return {"ln1_g": 1 + 0.1 * rng.normal(size=d), "ln1_b": 0.1 * rng.normal(size=d),
            "Wq": w(d, d), "Wk": w(d, d), "Wv": w(d, d), "Wo": w(d, d),
            "ln2_g": 1 + 0.1 * rng.normal(size=d), "ln2_b": 0.1 * rng.normal(size=d),
            "W1": w(d, d_ff), "b1": 0.1 * rng.normal(size=d_ff),
            "W2": w(d_ff, d), "b2": 0.1 * rng.normal(size=d)}


def block_forward(x, params, n_heads):
    """The pre-LN causal decoder block. x [B, L, D] -> y [B, L, D] and the cache (a dict).

    The cache does not keep the attention probabilities [B, H, L, L]: your attention
    backward recomputes them from q and k (as FlashAttention does), mask included.
    """
    p = params
    a, (xhat1, rstd1, _) = layernorm_forward(x, p["ln1_g"], p["ln1_b"])   # [B, L, D]
    q, k, v = (split_heads(a @ p[w], n_heads) for w in ("Wq", "Wk", "Wv"))  # [B, H, L, Dh]
    o = merge_heads(attention_forward(q, k, v, causal=True))            # [B, L, D]
    h = x + o @ p["Wo"]                                                   # residual 1
    c, (xhat2, rstd2, _) = layernorm_forward(h, p["ln2_g"], p["ln2_b"])   # [B, L, D]
    u = c @ p["W1"] + p["b1"]                                             # [B, L, F]
    y = h + gelu(u) @ p["W2"] + p["b2"]                                   # residual 2
    cache = {"xhat1": xhat1, "rstd1": rstd1, "a": a, "q": q, "k": k, "v": v, "o": o,
             "xhat2": xhat2, "rstd2": rstd2, "c": c, "u": u}
    return y, cache

# %% [markdown]
# ## 1. LayerNorm backward (2 points)
#
# `layernorm_backward(dy, xhat, rstd, gamma)` receives `dy [..., D]` and what LayerNorm's
# forward kept: `xhat [..., D]`, `rstd [..., 1]`, `gamma [D]`. Return `(dx, dgamma, dbeta)`.
# With $g = dy \odot \gamma$, differentiating through the mean **and** the variance gives
#
# $$dx = r\,\big(g - \overline{g} - \hat x\;\overline{g\,\hat x}\big)\quad\text{(means over the last axis, per row)},$$
#
# and `dgamma` $= \sum dy \odot \hat x$, `dbeta` $= \sum dy$ over **every** leading axis
# (both `[D]`). Each row of a correct `dx` sums to zero.

# %% [solution] id=layernorm_backward
def layernorm_backward(dy, xhat, rstd, gamma):
    ### BEGIN SOLUTION
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma                                                    # [..., D]
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))    # [..., D]
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
    ### END SOLUTION

# %% [test] id=test_layernorm_backward points=2
def make():
    x = np.array([[[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]]])                     # [1, 2, 3]
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.0, -0.1])
    _, (xhat, rstd, _) = layernorm_forward(x, gamma, beta)
    return {"dy": np.array([[[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]]]), "xhat": xhat, "rstd": rstd,
            "gamma": gamma, "x": x, "beta": beta}


def run(dy, xhat, rstd, gamma, x, beta):
    return {"grads": layernorm_backward(dy, xhat, rstd, gamma)}


def check(inputs, outputs):
    dx, dgamma, dbeta = outputs["grads"]
    x, gamma, beta, dy = inputs["x"], inputs["gamma"], inputs["beta"], inputs["dy"]
    check_close(dx.sum(axis=-1), np.zeros((1, 2)), tol=1e-10, what="row sums of dx (shift invariance)")
    check_close(dbeta, [1.3, 0.2, -0.9], what="dbeta, summed over B and L")
    num = numerical_gradient(lambda: float(np.sum(dy * layernorm_forward(x, gamma, beta)[0])), x)
    check_close(dx, num, tol=1e-6, what="dx against finite differences")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for shape, seed in [((2, 5, 6), 1), ((1, 1, 4), 2), ((3, 4, 1, 5), 3), ((1, 7, 8), 4)]:
        rng = np.random.default_rng(seed)
        x = rng.normal(1.0, 2.0, size=shape)
        gamma, beta, dy = rng.normal(size=shape[-1]), rng.normal(size=shape[-1]), rng.normal(size=shape)
        xhat, rstd = layernorm_forward(x, gamma, beta)[1][:2]
        cases.append({"x": x, "gamma": gamma, "beta": beta, "dy": dy, "xhat": xhat, "rstd": rstd})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [layernorm_backward(c["dy"], c["xhat"], c["rstd"], c["gamma"]) for c in cases]}


def check_hidden(inputs, outputs):
    import torch
    from lib.backprop import NormCache
    from lib.backprop import layernorm_backward as ref_ln_backward

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        shape = case["x"].shape
        ref = ref_ln_backward(case["dy"], NormCache(case["xhat"], case["rstd"], case["gamma"]))
        tx = torch.tensor(case["x"], requires_grad=True)
        tg, tb = torch.tensor(case["gamma"], requires_grad=True), torch.tensor(case["beta"], requires_grad=True)
        torch.nn.functional.layer_norm(tx, (shape[-1],), tg, tb, eps=1e-5).backward(torch.tensor(case["dy"]))
        for i, (name, t) in enumerate([("dx", tx), ("dgamma", tg), ("dbeta", tb)]):
            check_close(got[i], t.grad.numpy(), tol=1e-9, what=f"{name} vs autograd, shape {shape}")
            check_close(got[i], ref[i], tol=1e-9, what=f"{name} vs lib, shape {shape}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The MLP backward (2 points)
#
# The MLP of the block is $m = \operatorname{GELU}(u)\,W_2 + b_2$ with $u = c\,W_1 + b_1$
# (`c [B, L, D]`, `u [B, L, F]`), and `gelu` is the tanh approximation of the setup cell.
# `mlp_backward(dm, c, u, W1, W2)` receives `dm` $= \partial\mathcal{L}/\partial m$
# `[B, L, D]` and returns a dict with keys `"c"`, `"W1"`, `"b1"`, `"W2"`, `"b2"`. With
# $t = \tanh\big(\kappa(u + 0.044715\,u^3)\big)$ and $\kappa = \sqrt{2/\pi}$ (`KAPPA`):
#
# $$\operatorname{GELU}'(u) = \tfrac12(1 + t) + \tfrac12\,u\,(1 - t^2)\,\kappa\,(1 + 3 \cdot 0.044715\,u^2).$$

# %% [solution] id=mlp_backward
def mlp_backward(dm, c, u, W1, W2):
    ### BEGIN SOLUTION
    t = np.tanh(KAPPA * (u + 0.044715 * u ** 3))                      # [B, L, F]
    gelu_grad = 0.5 * (1 + t) + 0.5 * u * (1 - t ** 2) * KAPPA * (1 + 3 * 0.044715 * u ** 2)
    du = (dm @ W2.T) * gelu_grad                                      # [B, L, F]
    return {"c": du @ W1.T,                                           # [B, L, D]
            "W1": np.einsum("bld,blf->df", c, du),                    # [D, F]
            "b1": du.sum(axis=(0, 1)),                                # [F]
            "W2": np.einsum("blf,bld->fd", gelu(u), dm),              # [F, D]
            "b2": dm.sum(axis=(0, 1))}                                # [D]
    ### END SOLUTION

# %% [test] id=test_mlp_backward points=2
def make():
    rng = np.random.default_rng(10)
    c, W1 = rng.normal(size=(1, 2, 3)), rng.normal(size=(3, 4))
    b1, W2 = rng.normal(size=4), rng.normal(size=(4, 3))
    dm = rng.normal(size=(1, 2, 3))
    return {"dm": dm, "c": c, "u": c @ W1 + b1, "W1": W1, "W2": W2, "b1": b1}


def run(dm, c, u, W1, W2, b1):
    return {"grads": mlp_backward(dm, c, u, W1, W2)}


def check(inputs, outputs):
    got = outputs["grads"]
    dm, c, W1, b1, W2 = (inputs[n] for n in ("dm", "c", "W1", "b1", "W2"))
    assert set(got) == {"c", "W1", "b1", "W2", "b2"}, f"keys {sorted(got)}, expected c, W1, b1, W2, b2"
    num = numerical_gradient(lambda: float(np.sum(dm * (gelu(c @ W1 + b1) @ W2))), c)
    check_close(got["c"], num, tol=1e-6, what="dc against finite differences")
    num = numerical_gradient(lambda: float(np.sum(dm * (gelu(c @ W1 + b1) @ W2))), b1)
    check_close(got["b1"], num, tol=1e-6, what="db1 against finite differences")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for (b, l, d, f), seed in [((2, 3, 4, 8), 11), ((1, 1, 3, 5), 12), ((3, 2, 2, 6), 13)]:
        rng = np.random.default_rng(seed)
        c, dm = rng.normal(size=(b, l, d)), rng.normal(size=(b, l, d))
        W1, b1 = rng.normal(size=(d, f)), rng.normal(size=f)
        W2, b2 = rng.normal(size=(f, d)), rng.normal(size=d)
        cases.append({"dims": (b, l, d, f), "c": c, "dm": dm, "W1": W1, "b1": b1, "W2": W2, "b2": b2,
                      "u": c @ W1 + b1})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [mlp_backward(c["dm"], c["c"], c["u"], c["W1"], c["W2"]) for c in cases]}


def check_hidden(inputs, outputs):
    import torch

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        t = {n: torch.tensor(case[n], requires_grad=True) for n in ("c", "W1", "b1", "W2", "b2")}
        g = torch.nn.functional.gelu(t["c"] @ t["W1"] + t["b1"], approximate="tanh")   # [B, L, F]
        m = g @ t["W2"] + t["b2"]                                                       # [B, L, D]
        m.backward(torch.tensor(case["dm"]))
        for n in t:
            check_close(got[n], t[n].grad.numpy(), tol=1e-9,
                        what=f"d{n} vs autograd, B, L, D, F = {case['dims']}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The attention core backward (4 points)
#
# `attention_backward(do, q, k, v, causal)` receives `do` $= \partial\mathcal{L}/\partial O$
# and `q`, `k`, `v`, all `[B, H, L, Dh]`, for $O = PV$ with
# $P = \operatorname{softmax}(S)$ over the key axis and $S = s\,QK^\top$, $s = 1/\sqrt{D_h}$,
# where `causal=True` forbids key $j > i$ for query $i$. It returns `(dq, dk, dv)`.
#
# The forward did not keep $P$, so **recompute it** from `q` and `k` (the same mask as the
# forward). Then, in order:
#
# $$dV = P^\top dO,\quad dP = dO\,V^\top,\quad dS = P \odot \big(dP - \operatorname{rowsum}(dP \odot P)\big),\quad dQ = s\,dS\,K,\quad dK = s\,dS^\top Q .$$
#
# The first test uses `causal=False`, the second `causal=True`.

# %% [solution] id=attention_backward
def attention_backward(do, q, k, v, causal):
    ### BEGIN SOLUTION
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(0, 1, 3, 2) * scale                           # [B, H, L, L]
    if causal:
        length = q.shape[-2]
        allowed = np.tril(np.ones((length, length), dtype=bool))     # [L, L], key j <= query i
        s = np.where(allowed, s, -np.inf)
    p = np.exp(s - np.max(s, axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)                             # [B, H, L, L]
    dv = p.transpose(0, 1, 3, 2) @ do                                 # [B, H, L, Dh]
    dp = do @ v.transpose(0, 1, 3, 2)                                 # [B, H, L, L]
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))             # [B, H, L, L]
    return ds @ k * scale, ds.transpose(0, 1, 3, 2) @ q * scale, dv
    ### END SOLUTION

# %% [test] id=test_attention_backward points=2
def make():
    rng = np.random.default_rng(20)
    q, k, v, do = (rng.normal(size=(1, 1, 3, 2)) for _ in range(4))
    return {"do": do, "q": q, "k": k, "v": v}


def run(do, q, k, v):
    return {"grads": attention_backward(do, q, k, v, causal=False)}


def check(inputs, outputs):
    dq, dk, dv = outputs["grads"]
    q, k, v, do = inputs["q"], inputs["k"], inputs["v"], inputs["do"]
    for name, arr, got in [("q", q, dq), ("k", k, dk), ("v", v, dv)]:
        num = numerical_gradient(lambda: float(np.sum(do * attention_forward(q, k, v, False))), arr)
        check_close(got, num, tol=1e-6, what=f"d{name} against finite differences (no mask, one head)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for shape, seed in [((2, 3, 4, 2), 21), ((1, 1, 1, 3), 22), ((1, 2, 5, 4), 23)]:
        rng = np.random.default_rng(seed)
        q, k, v, do = (rng.normal(size=shape) for _ in range(4))
        cases.append({"q": q, "k": k, "v": v, "do": do})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [attention_backward(c["do"], c["q"], c["k"], c["v"], causal=False) for c in cases]}


def check_hidden(inputs, outputs):
    import torch

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        shape = case["q"].shape
        tq, tk, tv = (torch.tensor(case[n], requires_grad=True) for n in ("q", "k", "v"))
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv).backward(torch.tensor(case["do"]))
        for i, (name, t) in enumerate([("dq", tq), ("dk", tk), ("dv", tv)]):
            check_close(got[i], t.grad.numpy(), tol=1e-9, what=f"{name} vs autograd, no mask, shape {shape}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# A causal check you can reason about: if the loss reads only query position 0, that query
# sees only key 0, so `dk` and `dv` must be exactly zero at every later position.

# %% [test] id=test_attention_backward_causal points=2
def make():
    rng = np.random.default_rng(30)
    q, k, v = (rng.normal(size=(1, 2, 4, 3)) for _ in range(3))
    do = np.zeros((1, 2, 4, 3))
    do[:, :, 0] = rng.normal(size=(1, 2, 3))                              # the loss reads query 0 only
    return {"do": do, "q": q, "k": k, "v": v}


def run(do, q, k, v):
    return {"grads": attention_backward(do, q, k, v, causal=True)}


def check(inputs, outputs):
    dq, dk, dv = outputs["grads"]
    check_close(dk[:, :, 1:], np.zeros((1, 2, 3, 3)), tol=1e-12, what="dk at keys 1..3 (hidden from query 0)")
    check_close(dv[:, :, 1:], np.zeros((1, 2, 3, 3)), tol=1e-12, what="dv at keys 1..3 (hidden from query 0)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for shape, seed in [((2, 3, 5, 2), 31), ((1, 1, 1, 4), 32), ((1, 2, 6, 3), 33), ((3, 1, 2, 2), 34)]:
        rng = np.random.default_rng(seed)
        q, k, v, do = (rng.normal(size=shape) for _ in range(4))
        cases.append({"q": q, "k": k, "v": v, "do": do})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [attention_backward(c["do"], c["q"], c["k"], c["v"], causal=True) for c in cases]}


def check_hidden(inputs, outputs):
    import torch

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        shape = case["q"].shape
        tq, tk, tv = (torch.tensor(case[n], requires_grad=True) for n in ("q", "k", "v"))
        o = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
        o.backward(torch.tensor(case["do"]))
        for i, (name, t) in enumerate([("dq", tq), ("dk", tk), ("dv", tv)]):
            check_close(got[i], t.grad.numpy(), tol=1e-9, what=f"{name} vs autograd, causal, shape {shape}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The projections backward (2 points)
#
# The forward computed `q = split_heads(a @ Wq, H)` (and `k`, `v` likewise) from the one
# input `a [B, L, D]`. `qkv_backward(dq, dk, dv, a, Wq, Wk, Wv)` receives the per-head
# gradients `[B, H, L, Dh]` and returns a dict with keys `"a"`, `"Wq"`, `"Wk"`, `"Wv"`.
# Merge the heads back to `[B, L, D]` first; then $dW_Q = \sum_{b,l} a^\top \operatorname{merge}(dQ)$
# and
#
# $$da = \operatorname{merge}(dQ)\,W_Q^\top + \operatorname{merge}(dK)\,W_K^\top + \operatorname{merge}(dV)\,W_V^\top,$$
#
# which sums the contributions of **all** heads and all three projections into `a`.

# %% [solution] id=qkv_backward
def qkv_backward(dq, dk, dv, a, Wq, Wk, Wv):
    ### BEGIN SOLUTION
    dq, dk, dv = merge_heads(dq), merge_heads(dk), merge_heads(dv)   # [B, L, D] each
    return {"a": dq @ Wq.T + dk @ Wk.T + dv @ Wv.T,                   # [B, L, D]
            "Wq": np.einsum("bli,blj->ij", a, dq),                    # [D, D]
            "Wk": np.einsum("bli,blj->ij", a, dk),
            "Wv": np.einsum("bli,blj->ij", a, dv)}
    ### END SOLUTION

# %% [test] id=test_qkv_backward points=2
def make():
    rng = np.random.default_rng(40)
    a, Wq, Wk, Wv = rng.normal(size=(1, 2, 4)), *(rng.normal(size=(4, 4)) for _ in range(3))
    dq, dk, dv = (rng.normal(size=(1, 2, 2, 2)) for _ in range(3))          # two heads of width 2
    return {"dq": dq, "dk": dk, "dv": dv, "a": a, "Wq": Wq, "Wk": Wk, "Wv": Wv}


def run(dq, dk, dv, a, Wq, Wk, Wv):
    return {"grads": qkv_backward(dq, dk, dv, a, Wq, Wk, Wv)}


def check(inputs, outputs):
    got = outputs["grads"]
    dq, dk, dv, a, Wq, Wk, Wv = (inputs[n] for n in ("dq", "dk", "dv", "a", "Wq", "Wk", "Wv"))

    def qkv_loss():
        return float(np.sum(dq * split_heads(a @ Wq, 2)) + np.sum(dk * split_heads(a @ Wk, 2))
                     + np.sum(dv * split_heads(a @ Wv, 2)))

    assert set(got) == {"a", "Wq", "Wk", "Wv"}, f"keys {sorted(got)}, expected a, Wq, Wk, Wv"
    check_close(got["a"], numerical_gradient(qkv_loss, a), tol=1e-6,
                what="da against finite differences (2 heads)")
    check_close(got["Wk"], numerical_gradient(qkv_loss, Wk), tol=1e-6, what="dWk against finite differences")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for (b, l, d, h), seed in [((2, 3, 6, 3), 41), ((1, 1, 4, 1), 42), ((3, 2, 8, 4), 43)]:
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(b, l, d))
        W = [rng.normal(size=(d, d)) for _ in range(3)]
        g = [rng.normal(size=(b, h, l, d // h)) for _ in range(3)]
        cases.append({"dims": (b, l, d, h), "a": a, "W": W, "g": g})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [qkv_backward(*c["g"], c["a"], *c["W"]) for c in cases]}


def check_hidden(inputs, outputs):
    import torch
    from lib.attention import merge_heads as ref_merge

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        dims = case["dims"]
        ta = torch.tensor(case["a"], requires_grad=True)
        tW = [torch.tensor(w, requires_grad=True) for w in case["W"]]
        loss = sum((ref_merge(torch.tensor(gi)) * (ta @ tw)).sum() for gi, tw in zip(case["g"], tW))
        loss.backward()
        check_close(got["a"], ta.grad.numpy(), tol=1e-9, what=f"da vs autograd, B, L, D, H = {dims}")
        for n, tw in zip(("Wq", "Wk", "Wv"), tW):
            check_close(got[n], tw.grad.numpy(), tol=1e-9, what=f"d{n} vs autograd, B, L, D, H = {dims}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The whole block (4 points)
#
# `block_backward(dy, cache, params, n_heads)` receives `dy [B, L, D]`, the `cache` of
# `block_forward` and the `params` dict, and returns a dict with the key `"x"` and one key
# per parameter (`ln1_g, ln1_b, Wq, Wk, Wv, Wo, ln2_g, ln2_b, W1, b1, W2, b2`), each shaped
# like what it differentiates. Use your parts 1 to 4, in this order:
#
# 1. output -> MLP (`mlp_backward`); the residual `y = h + m` sends `dy` to `h` as well;
# 2. LN2 (`layernorm_backward`), **added** to the residual gradient: `dh`;
# 3. the output projection: $dW_O = \sum_{b,l} o^\top dh$ and $dO = \operatorname{split}(dh\,W_O^\top)$;
# 4. `attention_backward` (causal), then `qkv_backward`;
# 5. LN1, and the residual `h = x + ...`: `dx` is `dh` **plus** LN1's `dx`.

# %% [solution] id=block_backward
def block_backward(dy, cache, params, n_heads):
    ### BEGIN SOLUTION
    p = params
    mlp = mlp_backward(dy, cache["c"], cache["u"], p["W1"], p["W2"])
    dh_branch, dln2_g, dln2_b = layernorm_backward(mlp["c"], cache["xhat2"], cache["rstd2"], p["ln2_g"])
    dh = dy + dh_branch                                               # [B, L, D]
    do = split_heads(dh @ p["Wo"].T, n_heads)                         # [B, H, L, Dh]
    dq, dk, dv = attention_backward(do, cache["q"], cache["k"], cache["v"], causal=True)
    proj = qkv_backward(dq, dk, dv, cache["a"], p["Wq"], p["Wk"], p["Wv"])
    dx_branch, dln1_g, dln1_b = layernorm_backward(proj["a"], cache["xhat1"], cache["rstd1"], p["ln1_g"])
    return {"x": dh + dx_branch, "ln1_g": dln1_g, "ln1_b": dln1_b,
            "Wq": proj["Wq"], "Wk": proj["Wk"], "Wv": proj["Wv"],
            "Wo": np.einsum("bli,blj->ij", cache["o"], dh),
            "ln2_g": dln2_g, "ln2_b": dln2_b,
            "W1": mlp["W1"], "b1": mlp["b1"], "W2": mlp["W2"], "b2": mlp["b2"]}
    ### END SOLUTION

# %% [markdown]
# The first test grades `dx`, the second the twelve parameter gradients.

# %% [test] id=test_block_backward_x points=2
def make():
    rng = np.random.default_rng(50)
    params, x = init_block(4, 8, seed=51), rng.normal(size=(1, 3, 4))
    dy = rng.normal(size=(1, 3, 4))
    _, cache = block_forward(x, params, 2)
    return {"dy": dy, "cache": cache, "params": params, "n_heads": 2, "x": x}


def run(dy, cache, params, n_heads, x):
    return {"dx": block_backward(dy, cache, params, n_heads)["x"]}


def check(inputs, outputs):
    x, params, dy = inputs["x"], inputs["params"], inputs["dy"]
    num = numerical_gradient(lambda: float(np.sum(dy * block_forward(x, params, 2)[0])), x)
    check_close(outputs["dx"], num, tol=1e-6, what="dx against finite differences (B=1, L=3, D=4, H=2)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for (b, l, d, h, f), seed in [((2, 5, 8, 2, 16), 52), ((1, 1, 4, 1, 8), 53),   # B = L = H = 1
                                  ((1, 4, 6, 3, 12), 54), ((3, 1, 4, 2, 8), 55)]:
        rng = np.random.default_rng(seed)
        params = init_block(d, f, seed=seed)
        x, dy = rng.normal(size=(b, l, d)), rng.normal(size=(b, l, d))
        _, cache = block_forward(x, params, h)
        cases.append({"dims": (b, l, d, h, f), "x": x, "dy": dy, "params": params, "cache": cache,
                      "n_heads": h})
    return {"cases": cases}


def run_hidden(cases):
    return {"dx": [block_backward(c["dy"], c["cache"], c["params"], c["n_heads"])["x"] for c in cases]}


def check_hidden(inputs, outputs):
    import torch
    import torch.nn.functional as F

    def torch_block(x, p, n_heads):
        b, l, d = x.shape
        a = F.layer_norm(x, (d,), p["ln1_g"], p["ln1_b"], eps=1e-5)
        q, k, v = (t.view(b, l, n_heads, d // n_heads).transpose(1, 2)          # [B, H, L, Dh]
                   for t in (a @ p["Wq"], a @ p["Wk"], a @ p["Wv"]))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)             # [B, H, L, Dh]
        h = x + o.transpose(1, 2).reshape(b, l, d) @ p["Wo"]                    # [B, L, D]
        c = F.layer_norm(h, (d,), p["ln2_g"], p["ln2_b"], eps=1e-5)
        return h + F.gelu(c @ p["W1"] + p["b1"], approximate="tanh") @ p["W2"] + p["b2"]

    for case, got in zip(inputs["cases"], outputs["dx"], strict=True):
        tx = torch.tensor(case["x"], requires_grad=True)
        tp = {n: torch.tensor(v) for n, v in case["params"].items()}
        torch_block(tx, tp, case["n_heads"]).backward(torch.tensor(case["dy"]))
        check_close(got, tx.grad.numpy(), tol=1e-9, what=f"dx vs autograd, B, L, D, H, F = {case['dims']}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_block_backward_weights points=2
def make():
    rng = np.random.default_rng(60)
    params, x = init_block(4, 8, seed=61), rng.normal(size=(2, 3, 4))
    dy = rng.normal(size=(2, 3, 4))
    _, cache = block_forward(x, params, 2)
    return {"dy": dy, "cache": cache, "params": params, "n_heads": 2, "x": x}


def run(dy, cache, params, n_heads, x):
    return {"grads": block_backward(dy, cache, params, n_heads)}


def check(inputs, outputs):
    got, x, params, dy = outputs["grads"], inputs["x"], inputs["params"], inputs["dy"]
    assert set(got) == set(params) | {"x"}, f"keys {sorted(got)}, expected x and {sorted(params)}"
    for name in ("Wo", "ln1_g", "b1"):
        num = numerical_gradient(lambda: float(np.sum(dy * block_forward(x, params, 2)[0])), params[name])
        check_close(got[name], num, tol=1e-6, what=f"d{name} against finite differences (B=2, L=3, D=4, H=2)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for (b, l, d, h, f), seed in [((2, 5, 8, 2, 16), 62), ((1, 1, 4, 1, 8), 63),   # B = L = H = 1
                                  ((1, 4, 6, 3, 12), 64), ((3, 1, 4, 2, 8), 65)]:
        rng = np.random.default_rng(seed)
        params = init_block(d, f, seed=seed)
        x, dy = rng.normal(size=(b, l, d)), rng.normal(size=(b, l, d))
        _, cache = block_forward(x, params, h)
        cases.append({"dims": (b, l, d, h, f), "x": x, "dy": dy, "params": params, "cache": cache,
                      "n_heads": h})
    return {"cases": cases}


def run_hidden(cases):
    return {"grads": [block_backward(c["dy"], c["cache"], c["params"], c["n_heads"]) for c in cases]}


def check_hidden(inputs, outputs):
    import torch
    import torch.nn.functional as F

    def torch_block(x, p, n_heads):
        b, l, d = x.shape
        a = F.layer_norm(x, (d,), p["ln1_g"], p["ln1_b"], eps=1e-5)
        q, k, v = (t.view(b, l, n_heads, d // n_heads).transpose(1, 2)          # [B, H, L, Dh]
                   for t in (a @ p["Wq"], a @ p["Wk"], a @ p["Wv"]))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)             # [B, H, L, Dh]
        h = x + o.transpose(1, 2).reshape(b, l, d) @ p["Wo"]                    # [B, L, D]
        c = F.layer_norm(h, (d,), p["ln2_g"], p["ln2_b"], eps=1e-5)
        return h + F.gelu(c @ p["W1"] + p["b1"], approximate="tanh") @ p["W2"] + p["b2"]

    for case, got in zip(inputs["cases"], outputs["grads"], strict=True):
        tp = {n: torch.tensor(v, requires_grad=True) for n, v in case["params"].items()}
        torch_block(torch.tensor(case["x"]), tp, case["n_heads"]).backward(torch.tensor(case["dy"]))
        for n, t in tp.items():
            check_close(got[n], t.grad.numpy(), tol=1e-9, what=f"d{n} vs autograd, B, L, D, H, F = {case['dims']}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
