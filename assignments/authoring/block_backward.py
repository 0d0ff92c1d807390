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
_x = np.array([[[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]]])                    # [1, 2, 3]
_gamma, _beta = np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.0, -0.1])
_, (_xhat, _rstd, _) = layernorm_forward(_x, _gamma, _beta)
_dy = np.array([[[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]]])
_dx, _dgamma, _dbeta = layernorm_backward(_dy, _xhat, _rstd, _gamma)
check_close(_dx.sum(axis=-1), np.zeros((1, 2)), tol=1e-10, what="row sums of dx (shift invariance)")
check_close(_dbeta, [1.3, 0.2, -0.9], what="dbeta, summed over B and L")
_num = numerical_gradient(lambda: float(np.sum(_dy * layernorm_forward(_x, _gamma, _beta)[0])), _x)
check_close(_dx, _num, tol=1e-6, what="dx against finite differences")
### BEGIN HIDDEN TESTS
import torch as _torch
from lib.backprop import NormCache as _NormCache
from lib.backprop import layernorm_backward as _ref_ln_backward
for _shape, _seed in [((2, 5, 6), 1), ((1, 1, 4), 2), ((3, 4, 1, 5), 3), ((1, 7, 8), 4)]:
    _rng = np.random.default_rng(_seed)
    _x = _rng.normal(1.0, 2.0, size=_shape)
    _gamma, _beta, _dy = _rng.normal(size=_shape[-1]), _rng.normal(size=_shape[-1]), _rng.normal(size=_shape)
    _xhat, _rstd = layernorm_forward(_x, _gamma, _beta)[1][:2]
    _got = layernorm_backward(_dy, _xhat, _rstd, _gamma)
    _ref = _ref_ln_backward(_dy, _NormCache(_xhat, _rstd, _gamma))
    _tx = _torch.tensor(_x, requires_grad=True)
    _tg, _tb = _torch.tensor(_gamma, requires_grad=True), _torch.tensor(_beta, requires_grad=True)
    _torch.nn.functional.layer_norm(_tx, (_shape[-1],), _tg, _tb, eps=1e-5).backward(_torch.tensor(_dy))
    for _i, (_name, _t) in enumerate([("dx", _tx), ("dgamma", _tg), ("dbeta", _tb)]):
        check_close(_got[_i], _t.grad.numpy(), tol=1e-9, what=f"{_name} vs autograd, shape {_shape}")
        check_close(_got[_i], _ref[_i], tol=1e-9, what=f"{_name} vs lib, shape {_shape}")
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
_rng = np.random.default_rng(10)
_c, _W1 = _rng.normal(size=(1, 2, 3)), _rng.normal(size=(3, 4))
_b1, _W2 = _rng.normal(size=4), _rng.normal(size=(4, 3))
_dm = _rng.normal(size=(1, 2, 3))
_got = mlp_backward(_dm, _c, _c @ _W1 + _b1, _W1, _W2)
assert set(_got) == {"c", "W1", "b1", "W2", "b2"}, f"keys {sorted(_got)}, expected c, W1, b1, W2, b2"
_num = numerical_gradient(lambda: float(np.sum(_dm * (gelu(_c @ _W1 + _b1) @ _W2))), _c)
check_close(_got["c"], _num, tol=1e-6, what="dc against finite differences")
_num = numerical_gradient(lambda: float(np.sum(_dm * (gelu(_c @ _W1 + _b1) @ _W2))), _b1)
check_close(_got["b1"], _num, tol=1e-6, what="db1 against finite differences")
### BEGIN HIDDEN TESTS
import torch as _torch
for (_b, _l, _d, _f), _seed in [((2, 3, 4, 8), 11), ((1, 1, 3, 5), 12), ((3, 2, 2, 6), 13)]:
    _rng = np.random.default_rng(_seed)
    _c, _dm = _rng.normal(size=(_b, _l, _d)), _rng.normal(size=(_b, _l, _d))
    _W1, _b1 = _rng.normal(size=(_d, _f)), _rng.normal(size=_f)
    _W2, _b2 = _rng.normal(size=(_f, _d)), _rng.normal(size=_d)
    _u = _c @ _W1 + _b1
    _got = mlp_backward(_dm, _c, _u, _W1, _W2)
    _t = {_n: _torch.tensor(_v, requires_grad=True) for _n, _v in
          [("c", _c), ("W1", _W1), ("b1", _b1), ("W2", _W2), ("b2", _b2)]}
    _g = _torch.nn.functional.gelu(_t["c"] @ _t["W1"] + _t["b1"], approximate="tanh")   # [B, L, F]
    _m = _g @ _t["W2"] + _t["b2"]                                                         # [B, L, D]
    _m.backward(_torch.tensor(_dm))
    for _n in _t:
        check_close(_got[_n], _t[_n].grad.numpy(), tol=1e-9,
                    what=f"d{_n} vs autograd, B, L, D, F = {_b, _l, _d, _f}")
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
_rng = np.random.default_rng(20)
_q, _k, _v, _do = (_rng.normal(size=(1, 1, 3, 2)) for _ in range(4))
_dq, _dk, _dv = attention_backward(_do, _q, _k, _v, causal=False)
for _name, _arr, _got in [("q", _q, _dq), ("k", _k, _dk), ("v", _v, _dv)]:
    _num = numerical_gradient(lambda: float(np.sum(_do * attention_forward(_q, _k, _v, False))), _arr)
    check_close(_got, _num, tol=1e-6, what=f"d{_name} against finite differences (no mask, one head)")
### BEGIN HIDDEN TESTS
import torch as _torch
for _shape, _seed in [((2, 3, 4, 2), 21), ((1, 1, 1, 3), 22), ((1, 2, 5, 4), 23)]:
    _rng = np.random.default_rng(_seed)
    _q, _k, _v, _do = (_rng.normal(size=_shape) for _ in range(4))
    _got = attention_backward(_do, _q, _k, _v, causal=False)
    _tq, _tk, _tv = (_torch.tensor(_a, requires_grad=True) for _a in (_q, _k, _v))
    _torch.nn.functional.scaled_dot_product_attention(_tq, _tk, _tv).backward(_torch.tensor(_do))
    for _i, (_name, _t) in enumerate([("dq", _tq), ("dk", _tk), ("dv", _tv)]):
        check_close(_got[_i], _t.grad.numpy(), tol=1e-9, what=f"{_name} vs autograd, no mask, shape {_shape}")
### END HIDDEN TESTS

# %% [markdown]
# A causal check you can reason about: if the loss reads only query position 0, that query
# sees only key 0, so `dk` and `dv` must be exactly zero at every later position.

# %% [test] id=test_attention_backward_causal points=2
_rng = np.random.default_rng(30)
_q, _k, _v = (_rng.normal(size=(1, 2, 4, 3)) for _ in range(3))
_do = np.zeros((1, 2, 4, 3))
_do[:, :, 0] = _rng.normal(size=(1, 2, 3))                              # the loss reads query 0 only
_dq, _dk, _dv = attention_backward(_do, _q, _k, _v, causal=True)
check_close(_dk[:, :, 1:], np.zeros((1, 2, 3, 3)), tol=1e-12, what="dk at keys 1..3 (hidden from query 0)")
check_close(_dv[:, :, 1:], np.zeros((1, 2, 3, 3)), tol=1e-12, what="dv at keys 1..3 (hidden from query 0)")
### BEGIN HIDDEN TESTS
import torch as _torch
for _shape, _seed in [((2, 3, 5, 2), 31), ((1, 1, 1, 4), 32), ((1, 2, 6, 3), 33), ((3, 1, 2, 2), 34)]:
    _rng = np.random.default_rng(_seed)
    _q, _k, _v, _do = (_rng.normal(size=_shape) for _ in range(4))
    _got = attention_backward(_do, _q, _k, _v, causal=True)
    _tq, _tk, _tv = (_torch.tensor(_a, requires_grad=True) for _a in (_q, _k, _v))
    _o = _torch.nn.functional.scaled_dot_product_attention(_tq, _tk, _tv, is_causal=True)
    _o.backward(_torch.tensor(_do))
    for _i, (_name, _t) in enumerate([("dq", _tq), ("dk", _tk), ("dv", _tv)]):
        check_close(_got[_i], _t.grad.numpy(), tol=1e-9, what=f"{_name} vs autograd, causal, shape {_shape}")
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
_rng = np.random.default_rng(40)
_a, _Wq, _Wk, _Wv = _rng.normal(size=(1, 2, 4)), *(_rng.normal(size=(4, 4)) for _ in range(3))
_dq, _dk, _dv = (_rng.normal(size=(1, 2, 2, 2)) for _ in range(3))      # two heads of width 2


def _qkv_loss():
    return float(np.sum(_dq * split_heads(_a @ _Wq, 2)) + np.sum(_dk * split_heads(_a @ _Wk, 2))
                 + np.sum(_dv * split_heads(_a @ _Wv, 2)))


_got = qkv_backward(_dq, _dk, _dv, _a, _Wq, _Wk, _Wv)
assert set(_got) == {"a", "Wq", "Wk", "Wv"}, f"keys {sorted(_got)}, expected a, Wq, Wk, Wv"
check_close(_got["a"], numerical_gradient(_qkv_loss, _a), tol=1e-6,
            what="da against finite differences (2 heads)")
check_close(_got["Wk"], numerical_gradient(_qkv_loss, _Wk), tol=1e-6, what="dWk against finite differences")
### BEGIN HIDDEN TESTS
import torch as _torch
from lib.attention import merge_heads as _ref_merge
for (_b, _l, _d, _h), _seed in [((2, 3, 6, 3), 41), ((1, 1, 4, 1), 42), ((3, 2, 8, 4), 43)]:
    _rng = np.random.default_rng(_seed)
    _a = _rng.normal(size=(_b, _l, _d))
    _W = [_rng.normal(size=(_d, _d)) for _ in range(3)]
    _g = [_rng.normal(size=(_b, _h, _l, _d // _h)) for _ in range(3)]
    _got = qkv_backward(*_g, _a, *_W)
    _ta = _torch.tensor(_a, requires_grad=True)
    _tW = [_torch.tensor(_w, requires_grad=True) for _w in _W]
    _loss = sum((_ref_merge(_torch.tensor(_gi)) * (_ta @ _tw)).sum() for _gi, _tw in zip(_g, _tW))
    _loss.backward()
    check_close(_got["a"], _ta.grad.numpy(), tol=1e-9, what=f"da vs autograd, B, L, D, H = {_b, _l, _d, _h}")
    for _n, _tw in zip(("Wq", "Wk", "Wv"), _tW):
        check_close(_got[_n], _tw.grad.numpy(), tol=1e-9,
                    what=f"d{_n} vs autograd, B, L, D, H = {_b, _l, _d, _h}")
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
_rng = np.random.default_rng(50)
_params, _x = init_block(4, 8, seed=51), _rng.normal(size=(1, 3, 4))
_dy = _rng.normal(size=(1, 3, 4))
_, _cache = block_forward(_x, _params, 2)
_got = block_backward(_dy, _cache, _params, 2)
_num = numerical_gradient(lambda: float(np.sum(_dy * block_forward(_x, _params, 2)[0])), _x)
check_close(_got["x"], _num, tol=1e-6, what="dx against finite differences (B=1, L=3, D=4, H=2)")
### BEGIN HIDDEN TESTS
import torch as _torch
import torch.nn.functional as _F


def _torch_block(x, p, n_heads):
    b, l, d = x.shape
    a = _F.layer_norm(x, (d,), p["ln1_g"], p["ln1_b"], eps=1e-5)
    q, k, v = (t.view(b, l, n_heads, d // n_heads).transpose(1, 2)          # [B, H, L, Dh]
               for t in (a @ p["Wq"], a @ p["Wk"], a @ p["Wv"]))
    o = _F.scaled_dot_product_attention(q, k, v, is_causal=True)            # [B, H, L, Dh]
    h = x + o.transpose(1, 2).reshape(b, l, d) @ p["Wo"]                    # [B, L, D]
    c = _F.layer_norm(h, (d,), p["ln2_g"], p["ln2_b"], eps=1e-5)
    return h + _F.gelu(c @ p["W1"] + p["b1"], approximate="tanh") @ p["W2"] + p["b2"]


for (_b, _l, _d, _h, _f), _seed in [((2, 5, 8, 2, 16), 52), ((1, 1, 4, 1, 8), 53),   # B = L = H = 1
                                     ((1, 4, 6, 3, 12), 54), ((3, 1, 4, 2, 8), 55)]:
    _rng = np.random.default_rng(_seed)
    _params = init_block(_d, _f, seed=_seed)
    _x, _dy = _rng.normal(size=(_b, _l, _d)), _rng.normal(size=(_b, _l, _d))
    _, _cache = block_forward(_x, _params, _h)
    _got = block_backward(_dy, _cache, _params, _h)
    _tx = _torch.tensor(_x, requires_grad=True)
    _torch_block(_tx, {_n: _torch.tensor(_v) for _n, _v in _params.items()}, _h).backward(_torch.tensor(_dy))
    check_close(_got["x"], _tx.grad.numpy(), tol=1e-9,
                what=f"dx vs autograd, B, L, D, H, F = {_b, _l, _d, _h, _f}")
### END HIDDEN TESTS

# %% [test] id=test_block_backward_weights points=2
_rng = np.random.default_rng(60)
_params, _x = init_block(4, 8, seed=61), _rng.normal(size=(2, 3, 4))
_dy = _rng.normal(size=(2, 3, 4))
_, _cache = block_forward(_x, _params, 2)
_got = block_backward(_dy, _cache, _params, 2)
assert set(_got) == set(_params) | {"x"}, f"keys {sorted(_got)}, expected x and {sorted(_params)}"
for _name in ("Wo", "ln1_g", "b1"):
    _num = numerical_gradient(lambda: float(np.sum(_dy * block_forward(_x, _params, 2)[0])), _params[_name])
    check_close(_got[_name], _num, tol=1e-6, what=f"d{_name} against finite differences (B=2, L=3, D=4, H=2)")
### BEGIN HIDDEN TESTS
import torch as _torch
import torch.nn.functional as _F


def _torch_block(x, p, n_heads):
    b, l, d = x.shape
    a = _F.layer_norm(x, (d,), p["ln1_g"], p["ln1_b"], eps=1e-5)
    q, k, v = (t.view(b, l, n_heads, d // n_heads).transpose(1, 2)          # [B, H, L, Dh]
               for t in (a @ p["Wq"], a @ p["Wk"], a @ p["Wv"]))
    o = _F.scaled_dot_product_attention(q, k, v, is_causal=True)            # [B, H, L, Dh]
    h = x + o.transpose(1, 2).reshape(b, l, d) @ p["Wo"]                    # [B, L, D]
    c = _F.layer_norm(h, (d,), p["ln2_g"], p["ln2_b"], eps=1e-5)
    return h + _F.gelu(c @ p["W1"] + p["b1"], approximate="tanh") @ p["W2"] + p["b2"]


for (_b, _l, _d, _h, _f), _seed in [((2, 5, 8, 2, 16), 62), ((1, 1, 4, 1, 8), 63),   # B = L = H = 1
                                     ((1, 4, 6, 3, 12), 64), ((3, 1, 4, 2, 8), 65)]:
    _rng = np.random.default_rng(_seed)
    _params = init_block(_d, _f, seed=_seed)
    _x, _dy = _rng.normal(size=(_b, _l, _d)), _rng.normal(size=(_b, _l, _d))
    _, _cache = block_forward(_x, _params, _h)
    _got = block_backward(_dy, _cache, _params, _h)
    _tp = {_n: _torch.tensor(_v, requires_grad=True) for _n, _v in _params.items()}
    _torch_block(_torch.tensor(_x), _tp, _h).backward(_torch.tensor(_dy))
    for _n, _t in _tp.items():
        check_close(_got[_n], _t.grad.numpy(), tol=1e-9,
                    what=f"d{_n} vs autograd, B, L, D, H, F = {_b, _l, _d, _h, _f}")
### END HIDDEN TESTS
