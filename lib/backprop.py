"""Backpropagation by hand, in NumPy (float64 friendly).

Every backward function here is the chain rule applied to one forward function, with the
forward intermediates it needs passed in a cache. The conventions:

* ``dx`` always means ``dL/dx`` for a scalar loss ``L``, and has the shape of ``x``.
* A parameter that was broadcast in the forward pass (a bias ``b [D]`` added to
  ``[N, D]``, LayerNorm's ``gamma [D]``) has its gradient *summed* over the broadcast axes.
* Gradients are checked against :func:`numerical_gradient` (central differences) with
  :func:`relative_error`; in float64 a correct gradient gives less than ``1e-6`` (round-off
  alone leaves ``1e-9`` to about ``1e-7``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from lib._checks import check_in_range, check_min_ndim, check_ndim, check_same_shape, shape_of
from lib.numerics import log_softmax, softmax

# --------------------------------------------------------------------------- checking


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``df/dx_i ~= (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``. The truncation error is
    ``O(eps^2)`` and the round-off error ``O(u / eps)`` (``u`` the unit round-off), so
    in float64 ``eps ~ 1e-6`` balances them. ``x`` is perturbed *in place* (``f`` reads
    it through a closure) and every entry is restored exactly afterwards.

    Shapes: ``x`` any shape, floating dtype; returns an array of the same shape and dtype.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating NumPy array (perturbed in place), got "
                         f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}")
    check_in_range("eps", eps, 0.0, np.inf, low_open=True)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = float(f())
        x[index] = saved - eps
        f_minus = float(f())
        x[index] = saved                                  # restore exactly
        grad[index] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max_i |a_i - b_i| / max(1e-12, |a_i| + |b_i|)``: 0 when equal, at most 1.

    The elementwise relative error is scale free; the floor ``1e-12`` keeps entries where
    both gradients are (nearly) zero from dividing by zero. Empty arrays give 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    check_same_shape("a", a, "b", b)
    if a.size == 0:
        return 0.0
    denom = np.maximum(1e-12, np.abs(a) + np.abs(b))
    return float(np.max(np.abs(a - b) / denom))


# --------------------------------------------------------------------------- the MLP


def init_mlp(d_in: int, d_hidden: int, d_out: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Parameters of ``affine -> ReLU -> affine`` in float64.

    ``W1 [d_in, d_hidden]`` and ``W2 [d_hidden, d_out]`` are drawn from
    ``N(0, 2 / fan_in)`` (He initialization, which keeps the activation variance
    constant through a ReLU); ``b1 [d_hidden]`` and ``b2 [d_out]`` are small,
    ``N(0, 0.01^2)``, so that they are not all zero and a gradient check exercises them.
    """
    for name, value in (("d_in", d_in), ("d_hidden", d_hidden), ("d_out", d_out)):
        if not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer width, got {value!r}")
        check_in_range(name, value, 1, np.inf)
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(0.0, np.sqrt(2.0 / d_in), size=(d_in, d_hidden)),
        "b1": rng.normal(0.0, 0.01, size=d_hidden),
        "W2": rng.normal(0.0, np.sqrt(2.0 / d_hidden), size=(d_hidden, d_out)),
        "b2": rng.normal(0.0, 0.01, size=d_out),
    }


def _check_mlp_inputs(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> None:
    missing = {"W1", "b1", "W2", "b2"} - set(params)
    if missing:
        raise ValueError(f"params is missing {sorted(missing)}")
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    check_ndim("X", X, 2)
    check_ndim("y", y, 1)
    check_ndim("W1", W1, 2)
    check_ndim("W2", W2, 2)
    if X.shape[1] != W1.shape[0]:
        raise ValueError(f"X [N, d_in] and W1 [d_in, d_hidden] disagree on d_in: "
                         f"X {shape_of(X)}, W1 {shape_of(W1)}")
    if shape_of(b1) != (W1.shape[1],):
        raise ValueError(f"b1 must have shape ({W1.shape[1]},) to match W1 {shape_of(W1)}, "
                         f"got {shape_of(b1)}")
    if W2.shape[0] != W1.shape[1]:
        raise ValueError(f"W1 [d_in, d_hidden] and W2 [d_hidden, d_out] disagree on "
                         f"d_hidden: W1 {shape_of(W1)}, W2 {shape_of(W2)}")
    if shape_of(b2) != (W2.shape[1],):
        raise ValueError(f"b2 must have shape ({W2.shape[1]},) to match W2 {shape_of(W2)}, "
                         f"got {shape_of(b2)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one label per row of X: X {shape_of(X)}, y {shape_of(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= W2.shape[1]):
        raise ValueError(f"y must lie in [0, {W2.shape[1]}), got values from "
                         f"{y.min()} to {y.max()}")


def mlp_loss_and_grads(params: dict[str, np.ndarray], X: np.ndarray,
                       y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy of a two-layer ReLU network, and its gradients.

    Forward (``N`` examples, shapes in brackets)::

        A = X W1 + b1          [N, H]
        H = relu(A)            [N, H]
        Z = H W2 + b2          [N, C]   (logits)
        L = -(1/N) sum_i log softmax(Z_i)[y_i]

    Backward, each line the chain rule through one forward line::

        dZ  = (softmax(Z) - onehot(y)) / N     [N, C]
        dW2 = H^T dZ,  db2 = sum_i dZ_i        [H, C], [C]
        dH  = dZ W2^T                          [N, H]
        dA  = dH * (A > 0)                     [N, H]
        dW1 = X^T dA,  db1 = sum_i dA_i        [D, H], [H]

    Returns ``(loss, grads)`` with ``grads`` keyed like ``params``.
    """
    X, y = np.asarray(X), np.asarray(y)
    _check_mlp_inputs(params, X, y)
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = X.shape[0]
    # forward
    A = X @ W1 + b1                                       # [N, H]
    H = np.maximum(A, 0.0)                                # [N, H]
    Z = H @ W2 + b2                                       # [N, C]
    logp = log_softmax(Z, axis=-1)                        # [N, C]
    loss = float(-np.mean(logp[np.arange(n), y]))
    # backward
    dZ = softmax(Z, axis=-1)                              # [N, C]
    dZ[np.arange(n), y] -= 1.0
    dZ /= n
    dW2 = H.T @ dZ                                        # [H, C]
    db2 = dZ.sum(axis=0)                                  # [C]
    dH = dZ @ W2.T                                        # [N, H]
    dA = dH * (A > 0)                                     # [N, H]
    dW1 = X.T @ dA                                        # [D, H]
    db1 = dA.sum(axis=0)                                  # [H]
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# --------------------------------------------------------------------------- softmax


def softmax_jacobian(z: np.ndarray) -> np.ndarray:
    """The Jacobian ``J[i, j] = dp_i / dz_j = p_i (delta_ij - p_j) = (diag(p) - p p^T)[i, j]``.

    Shapes: ``z [C]`` -> ``[C, C]``, symmetric, every row and column sums to 0 (adding
    a constant to ``z`` leaves ``p`` unchanged).
    """
    z = np.asarray(z)
    check_ndim("z", z, 1)
    p = softmax(z)                                        # [C]
    return np.diag(p) - np.outer(p, p)                    # [C, C]


def softmax_backward(p: np.ndarray, grad_p: np.ndarray) -> np.ndarray:
    """``dL/dz`` from ``p = softmax(z)`` (last axis) and ``dL/dp``, without the Jacobian.

    ``dz_j = sum_i dp_i p_i (delta_ij - p_j) = p_j (dp_j - sum_i dp_i p_i)``, i.e.
    ``p * (g - sum(g * p, -1))``: ``O(C)`` per row instead of the ``O(C^2)`` of
    ``J^T g``. Shapes: ``p`` and ``grad_p`` ``[..., C]`` (same shape) -> ``[..., C]``.
    """
    p, grad_p = np.asarray(p), np.asarray(grad_p)
    check_min_ndim("p", p, 1)
    check_same_shape("p", p, "grad_p", grad_p)
    inner = np.sum(grad_p * p, axis=-1, keepdims=True)    # [..., 1]
    return p * (grad_p - inner)                           # [..., C]


# --------------------------------------------------------------------------- normalization


class NormCache(NamedTuple):
    """What LayerNorm and RMSNorm keep for their backward pass.

    ``xhat [..., D]`` is the normalized input, ``rstd [..., 1]`` the reciprocal of the
    standard deviation (LayerNorm) or of the root mean square (RMSNorm), ``gamma [D]``
    the scale.
    """
    xhat: np.ndarray
    rstd: np.ndarray
    gamma: np.ndarray


def _check_norm_params(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None,
                       eps: float) -> None:
    check_min_ndim("x", x, 1)
    d = x.shape[-1]
    if shape_of(gamma) != (d,):
        raise ValueError(f"gamma must have shape ({d},) to match x {shape_of(x)}, "
                         f"got {shape_of(gamma)}")
    if beta is not None and shape_of(beta) != (d,):
        raise ValueError(f"beta must have shape ({d},) to match x {shape_of(x)}, "
                         f"got {shape_of(beta)}")
    check_in_range("eps", eps, 0.0, np.inf)


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      eps: float = 1e-5) -> tuple[np.ndarray, NormCache]:
    """LayerNorm over the last axis: ``y = gamma * (x - mu) / sqrt(var + eps) + beta``.

    ``mu`` and ``var`` are the mean and the *biased* variance (divide by ``D``) of each
    row. Shapes: ``x [..., D]``, ``gamma [D]``, ``beta [D]`` -> ``y [..., D]`` and a
    :class:`NormCache` for :func:`layernorm_backward`.
    """
    x, gamma, beta = np.asarray(x), np.asarray(gamma), np.asarray(beta)
    _check_norm_params(x, gamma, beta, eps)
    mu = x.mean(axis=-1, keepdims=True)                   # [..., 1]
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)    # [..., 1] biased
    rstd = 1.0 / np.sqrt(var + eps)                       # [..., 1]
    xhat = (x - mu) * rstd                                # [..., D]
    return gamma * xhat + beta, NormCache(xhat, rstd, gamma)


def layernorm_backward(dy: np.ndarray,
                       cache: NormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of LayerNorm: ``(dx [..., D], dgamma [D], dbeta [D])``.

    With ``g = dy * gamma`` (the gradient with respect to ``xhat``) and
    ``xhat = (x - mu) * rstd``, differentiating through ``mu`` and ``var`` gives::

        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))     (means over the last axis)

    ``dgamma = sum(dy * xhat)`` and ``dbeta = sum(dy)`` over every leading axis, because
    ``gamma`` and ``beta`` were broadcast over them.
    """
    dy = np.asarray(dy)
    check_same_shape("dy", dy, "cache.xhat", cache.xhat)
    xhat, rstd, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma                                        # [..., D]
    g_mean = g.mean(axis=-1, keepdims=True)               # [..., 1]
    gx_mean = (g * xhat).mean(axis=-1, keepdims=True)     # [..., 1]
    dx = rstd * (g - g_mean - xhat * gx_mean)             # [..., D]
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def rmsnorm_forward(x: np.ndarray, gamma: np.ndarray,
                    eps: float = 1e-6) -> tuple[np.ndarray, NormCache]:
    """RMSNorm over the last axis: ``y = gamma * x / sqrt(mean(x^2) + eps)``.

    No mean subtraction and no bias (as in T5 and LLaMA). Shapes: ``x [..., D]``,
    ``gamma [D]`` -> ``y [..., D]`` and a :class:`NormCache`.
    """
    x, gamma = np.asarray(x), np.asarray(gamma)
    _check_norm_params(x, gamma, None, eps)
    rstd = 1.0 / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps)   # [..., 1]
    xhat = x * rstd                                       # [..., D]
    return gamma * xhat, NormCache(xhat, rstd, gamma)


def rmsnorm_backward(dy: np.ndarray, cache: NormCache) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of RMSNorm: ``(dx [..., D], dgamma [D])``.

    With ``g = dy * gamma``: ``dx = rstd * (g - xhat * mean(g * xhat))``, LayerNorm's
    formula without the ``mean(g)`` term (there is no mean to differentiate through).
    """
    dy = np.asarray(dy)
    check_same_shape("dy", dy, "cache.xhat", cache.xhat)
    xhat, rstd, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma                                        # [..., D]
    gx_mean = (g * xhat).mean(axis=-1, keepdims=True)     # [..., 1]
    return rstd * (g - xhat * gx_mean), (dy * xhat).sum(axis=lead)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      eps: float = 1e-5) -> tuple[np.ndarray, NormCache]:
    """BatchNorm in training mode: each feature normalized over the *batch* axis.

    ``y = gamma * (x - mu) / sqrt(var + eps) + beta`` with ``mu [D]`` and the *biased*
    ``var [D]`` (divide by ``N``) of each column. Shapes: ``x [N, D]``, ``gamma [D]``,
    ``beta [D]`` -> ``y [N, D]`` and a :class:`NormCache` (``rstd`` is ``[1, D]``). It is
    LayerNorm with the roles of the axes swapped; at evaluation time running averages of
    ``mu`` and ``var`` replace the batch statistics (not modelled here).
    """
    x, gamma, beta = np.asarray(x), np.asarray(gamma), np.asarray(beta)
    check_ndim("x", x, 2)
    _check_norm_params(x, gamma, beta, eps)
    mu = x.mean(axis=0, keepdims=True)                    # [1, D]
    var = ((x - mu) ** 2).mean(axis=0, keepdims=True)     # [1, D] biased
    rstd = 1.0 / np.sqrt(var + eps)                       # [1, D]
    xhat = (x - mu) * rstd                                # [N, D]
    return gamma * xhat + beta, NormCache(xhat, rstd, gamma)


def batchnorm_backward(dy: np.ndarray,
                       cache: NormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of training-mode BatchNorm: ``(dx [N, D], dgamma [D], dbeta [D])``.

    The compact form, with ``g = dy * gamma`` and means over the batch axis::

        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))

    the LayerNorm formula with the mean taken over ``N`` instead of ``D``: every example's
    output depends on every other example through ``mu`` and ``var``.
    """
    dy = np.asarray(dy)
    check_same_shape("dy", dy, "cache.xhat", cache.xhat)
    xhat, rstd, gamma = cache
    g = dy * gamma                                        # [N, D]
    g_mean = g.mean(axis=0, keepdims=True)                # [1, D]
    gx_mean = (g * xhat).mean(axis=0, keepdims=True)     # [1, D]
    dx = rstd * (g - g_mean - xhat * gx_mean)             # [N, D]
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


# --------------------------------------------------------------------------- dropout


def dropout_forward(x: np.ndarray, p: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout: zero each unit with probability ``p``, scale survivors by ``1/(1-p)``.

    ``E[y] = x`` for every entry, so nothing changes at evaluation time (where dropout is
    the identity). Shapes: ``x`` any shape -> ``(y, mask)`` with ``mask`` boolean, same
    shape, True where the unit is kept. ``p`` lies in ``[0, 1)``.
    """
    x = np.asarray(x)
    check_in_range("p", p, 0.0, 1.0, high_open=True)
    mask = rng.random(x.shape) >= p                       # keep with probability 1 - p
    return x * mask / (1.0 - p), mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray, p: float) -> np.ndarray:
    """``dx = dy * mask / (1 - p)``: the same mask and the same scale as the forward pass."""
    dy, mask = np.asarray(dy), np.asarray(mask)
    check_same_shape("dy", dy, "mask", mask)
    check_in_range("p", p, 0.0, 1.0, high_open=True)
    return dy * mask / (1.0 - p)
