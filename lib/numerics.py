"""Numerically stable softmax, log-sum-exp, sigmoid and the losses built on them (NumPy).

Every function here is written so that no intermediate value overflows, whatever the
magnitude of the finite inputs:

* ``logsumexp(x) = m + log(sum(exp(x - m)))`` with ``m = max(x)``: the largest term of the
  sum is ``exp(0) = 1``, so the sum lies in ``[1, n]`` and its log is finite.
* ``log_softmax(x) = x - logsumexp(x)``: a difference of finite numbers, never ``log(0)``.
* ``log_sigmoid(x) = -log(1 + exp(-x)) = min(x, 0) - log1p(exp(-|x|))``: the exponent is
  never positive.
* ``BCE(x, y) = max(x, 0) - x*y + log1p(exp(-|x|))``, which equals
  ``-y log sigmoid(x) - (1 - y) log sigmoid(-x)``.

Entries equal to ``-inf`` are allowed where they mean "probability zero" (masked logits).
"""
from __future__ import annotations

import numpy as np

from lib._checks import check_in_range, check_ndim, shape_of


def _as_float(x: np.ndarray) -> np.ndarray:
    """Promote integers to float64; keep float16/32/64 as they are."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def _check_axis(name: str, x: np.ndarray, axis: int) -> None:
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for {name} of shape {shape_of(x)}")


def _safe_max(x: np.ndarray, axis: int) -> np.ndarray:
    """Row max with ``keepdims``, replaced by 0 where the whole row is ``-inf``.

    Subtracting ``-inf`` from ``-inf`` would give NaN; subtracting 0 keeps the row at
    ``-inf`` so that ``exp`` gives exact zeros.
    """
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isneginf(m), 0.0, m).astype(x.dtype)


def _shift(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x - m``. With |x| near 1e308 the difference can exceed the float range; it then
    rounds to ``-inf``, which is the right answer (``exp`` of it is exactly 0), so the
    overflow warning is silenced here and nowhere else."""
    with np.errstate(over="ignore"):
        return x - m


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis``, without overflow.

    Shapes: ``x [..., n, ...]`` -> the same shape without ``axis`` (or with it of size 1
    when ``keepdims``). Rows that are all ``-inf`` give ``-inf`` with no warning.
    """
    x = _as_float(x)
    _check_axis("x", x, axis)
    m = _safe_max(x, axis)                              # [..., 1, ...]
    sum_exp = np.sum(np.exp(_shift(x, m)), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):                  # log(0) = -inf for all -inf rows
        out = m + np.log(sum_exp)
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis``; ``-inf`` entries stay ``-inf``.

    A row that is entirely ``-inf`` has no distribution; it returns ``-inf`` everywhere.
    """
    x = _as_float(x)
    _check_axis("x", x, axis)
    lse = logsumexp(x, axis=axis, keepdims=True)
    lse = np.where(np.isneginf(lse), 0.0, lse).astype(x.dtype)
    return _shift(x, lse)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``.

    Stable for any finite input (|x| up to 1e308); ``-inf`` entries get probability 0.
    A row that is entirely ``-inf`` returns zeros (there is nothing to normalize).
    """
    x = _as_float(x)
    _check_axis("x", x, axis)
    e = np.exp(_shift(x, _safe_max(x, axis)))           # largest entry is exp(0) = 1
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` computed from ``exp(-|x|)`` so that nothing overflows.

    For ``x >= 0``: ``1 / (1 + e)``; for ``x < 0``: ``e / (1 + e)``, with ``e = exp(-|x|)``.
    """
    x = _as_float(x)
    e = np.exp(-np.abs(x))                              # in (0, 1]
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, finite for every finite x."""
    x = _as_float(x)
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def cross_entropy(logits: np.ndarray, labels: np.ndarray,
                  label_smoothing: float = 0.0) -> float:
    """Mean softmax cross-entropy of integer labels, optionally with label smoothing.

    Shapes: ``logits [N, C]`` float, ``labels [N]`` integers in ``[0, C)``.

    The target of row ``i`` is ``q = (1 - eps) * onehot(labels[i]) + eps / C`` (every
    class, the true one included, receives ``eps / C``), and the loss is
    ``mean_i( -sum_c q_c log_softmax(logits_i)_c )``. With ``eps = 0`` this is
    ``mean_i( logsumexp(logits_i) - logits_i[labels_i] )``.
    """
    logits = _as_float(logits)
    labels = np.asarray(labels)
    check_ndim("logits", logits, 2)
    check_ndim("labels", labels, 1)
    n, c = logits.shape
    if labels.shape[0] != n:
        raise ValueError(
            f"labels must have one entry per row of logits: logits {shape_of(logits)}, "
            f"labels {shape_of(labels)}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"labels must lie in [0, {c}), got values from "
                         f"{labels.min()} to {labels.max()}")
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    logp = log_softmax(logits, axis=-1)                 # [N, C]
    nll = -logp[np.arange(n), labels]                   # [N]
    if label_smoothing == 0.0:
        return float(np.mean(nll))
    uniform = -np.mean(logp, axis=-1)                   # [N]: -(1/C) sum_c log p_c
    return float(np.mean((1.0 - label_smoothing) * nll + label_smoothing * uniform))


def binary_cross_entropy_with_logits(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean over all elements of ``max(x, 0) - x*y + log1p(exp(-|x|))``.

    Shapes: ``logits`` and ``targets`` of the same shape; targets are probabilities in
    ``[0, 1]`` (soft labels allowed). Equal to
    ``-y log sigmoid(x) - (1 - y) log(1 - sigmoid(x))`` but finite for any finite x.
    """
    logits = _as_float(logits)
    targets = _as_float(targets)
    if shape_of(logits) != shape_of(targets):
        raise ValueError(f"logits and targets must have the same shape, got logits "
                         f"{shape_of(logits)} and targets {shape_of(targets)}")
    if targets.size and (np.any(targets < 0) or np.any(targets > 1) or np.any(np.isnan(targets))):
        raise ValueError(f"targets must lie in [0, 1], got values from {np.nanmin(targets)} "
                         f"to {np.nanmax(targets)} (shape {shape_of(targets)})")
    loss = np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return float(np.mean(loss))
