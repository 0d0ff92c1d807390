"""Classic from-scratch patterns that interviews ask for, in NumPy.

- Logistic regression trained by full-batch gradient descent on the mean binary
  cross-entropy; the gradient is ``X^T (sigmoid(Xw + b) - y) / N``.
- k-means (Lloyd's algorithm) with k-means++ seeding and empty clusters re-seeded.
- Batched cosine similarity that maps a zero vector to similarity 0 instead of NaN.
- Padding a list of variable-length sequences into a ``[B, L]`` batch and its mask
  (True = real token).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lib._checks import (check_in_range, check_min_ndim, check_ndim, check_option,
                         shape_of)


# ----------------------------------------------------------------- logistic regression

def _check_xy(X: np.ndarray, y: np.ndarray) -> None:
    check_ndim("X", X, 2)
    check_ndim("y", y, 1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape [N] = [{X.shape[0]}], got y {shape_of(y)}")


def logistic_loss_and_grad(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray,
                           l2: float = 0.0) -> tuple[float, np.ndarray, float]:
    """Mean binary cross-entropy of ``sigmoid(X w + b)`` against ``y`` and its gradient.

    With ``z = X w + b`` and ``p = sigmoid(z)``:

        L = mean(log(1 + exp(z)) - y z) + (l2 / 2) ||w||^2
        dL/dw = X^T (p - y) / N + l2 w,     dL/db = mean(p - y).

    ``log(1 + exp(z))`` is computed as ``logaddexp(0, z)`` so no ``exp`` overflows.

    Args:
        w: ``[D]``; b: scalar; X: ``[N, D]``; y: ``[N]`` targets in [0, 1];
        l2: weight decay on ``w`` (not on ``b``).

    Returns:
        ``(loss, dw [D], db)``.
    """
    _check_xy(X, y)
    check_ndim("w", w, 1)
    if w.shape[0] != X.shape[1]:
        raise ValueError(f"w must have shape [D] = [{X.shape[1]}], got w {shape_of(w)}")
    z = X @ w + b  # [N]
    loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.dot(w, w)
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z) without overflow, [N]
    residual = p - y  # [N]
    dw = X.T @ residual / X.shape[0] + l2 * w  # [D]
    db = float(np.mean(residual))
    return float(loss), dw, db


def fit_logistic_regression(X: np.ndarray, y: np.ndarray, lr: float = 0.5,
                            steps: int = 500, l2: float = 0.0
                            ) -> tuple[np.ndarray, float, list[float]]:
    """Full-batch gradient descent from ``w = 0, b = 0``.

    Returns ``(w [D], b, losses)`` where ``losses[t]`` is the loss before step ``t``.
    """
    _check_xy(X, y)
    check_in_range("lr", lr, 0.0, np.inf, low_open=True)
    w, b = np.zeros(X.shape[1], dtype=X.dtype), 0.0
    losses = []
    for _ in range(steps):
        loss, dw, db = logistic_loss_and_grad(w, b, X, y, l2)
        losses.append(loss)
        w, b = w - lr * dw, b - lr * db
    return w, b, losses


def predict_proba(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``sigmoid(X w + b)``, ``[N]``."""
    check_ndim("X", X, 2)
    return 0.5 * (1.0 + np.tanh(0.5 * (X @ w + b)))


# ----------------------------------------------------------------------------- k-means

def pairwise_sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[N, K]`` between rows of ``X [N, D]`` and ``C [K, D]``.

    Uses ``|x|^2 - 2 x.c + |c|^2`` (one matmul, no ``[N, K, D]`` intermediate) and clips
    the small negative values that cancellation can produce.
    """
    check_ndim("X", X, 2)
    check_ndim("C", C, 2)
    if X.shape[1] != C.shape[1]:
        raise ValueError(f"X [N, D] and C [K, D] must agree on D, got X {shape_of(X)} "
                         f"and C {shape_of(C)}")
    sq = (X ** 2).sum(1)[:, None] - 2.0 * X @ C.T + (C ** 2).sum(1)[None, :]  # [N, K]
    return np.maximum(sq, 0.0)


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: the first center uniformly, each next one with probability
    proportional to its squared distance to the nearest chosen center. Returns ``[k, D]``.

    If every remaining point coincides with a center (all distances zero), the next
    center is drawn uniformly.
    """
    check_ndim("X", X, 2)
    check_in_range("k", k, 1, X.shape[0])
    centers = [X[rng.integers(X.shape[0])]]
    for _ in range(1, k):
        d2 = pairwise_sq_dists(X, np.stack(centers)).min(axis=1)  # [N]
        total = d2.sum()
        probs = d2 / total if total > 0 else np.full(X.shape[0], 1.0 / X.shape[0])
        centers.append(X[rng.choice(X.shape[0], p=probs)])
    return np.stack(centers)  # [k, D]


def _update_centers(X: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Mean of each cluster; an empty cluster takes the point farthest from its center."""
    k = centers.shape[0]
    new = centers.copy()
    counts = np.bincount(labels, minlength=k)  # [k]
    for j in np.flatnonzero(counts):
        new[j] = X[labels == j].mean(axis=0)
    dist_to_own = pairwise_sq_dists(X, new)[np.arange(X.shape[0]), labels]  # [N]
    for j in np.flatnonzero(counts == 0):
        far = int(np.argmax(dist_to_own))
        new[j] = X[far]
        dist_to_own[far] = 0.0  # never hand the same point to two empty clusters
    return new


def kmeans(X: np.ndarray, k: int, n_iter: int = 100, seed: int = 0,
           init: str = "k-means++", init_centers: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Lloyd's algorithm.

    Args:
        X: ``[N, D]`` float data; k: number of clusters, ``1 <= k <= N``.
        n_iter: maximum number of assign/update rounds (stops early when the labels
            stop changing).
        init: ``"k-means++"`` or ``"random"`` (k distinct data points), ignored when
            ``init_centers [k, D]`` is given.

    Returns:
        ``(centers [k, D], labels [N], inertia)`` where ``inertia[t]`` is the sum of
        squared distances to the assigned centers after round ``t``'s assignment.
        It never increases, and no center is ever NaN: an empty cluster is re-seeded
        with the point farthest from its current center.
    """
    check_ndim("X", X, 2)
    check_in_range("k", k, 1, X.shape[0])
    check_option("init", init, ("k-means++", "random"))
    rng = np.random.default_rng(seed)
    if init_centers is not None:
        check_ndim("init_centers", init_centers, 2)
        if init_centers.shape != (k, X.shape[1]):
            raise ValueError(f"init_centers must have shape {(k, X.shape[1])}, "
                             f"got {shape_of(init_centers)}")
        centers = init_centers.astype(X.dtype, copy=True)
    elif init == "k-means++":
        centers = kmeans_plus_plus(X, k, rng)
    else:
        centers = X[rng.choice(X.shape[0], size=k, replace=False)].copy()
    labels = np.full(X.shape[0], -1)
    inertia: list[float] = []
    for _ in range(n_iter):
        d2 = pairwise_sq_dists(X, centers)  # [N, k]
        new_labels = d2.argmin(axis=1)  # [N]
        inertia.append(float(d2[np.arange(X.shape[0]), new_labels].sum()))
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        centers = _update_centers(X, labels, centers)
    return centers, labels, inertia


# ------------------------------------------------------------------ cosine similarity

def cosine_similarity(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """All-pairs cosine similarity of row vectors, batched.

        sim[..., i, j] = a_i . b_j / (max(|a_i|, eps) * max(|b_j|, eps))

    Clamping each norm (not the product) maps a zero vector to similarity 0 against
    everything, with no NaN and no division warning.

    Args:
        a: ``[..., N, D]``; b: ``[..., M, D]``; leading dimensions broadcast.

    Returns:
        ``[..., N, M]`` in [-1, 1] (up to rounding).
    """
    check_min_ndim("a", a, 2)
    check_min_ndim("b", b, 2)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a [..., N, D] and b [..., M, D] must agree on D, "
                         f"got a {shape_of(a)} and b {shape_of(b)}")
    a_unit = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), eps)  # [..., N, D]
    b_unit = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), eps)  # [..., M, D]
    return a_unit @ np.swapaxes(b_unit, -1, -2)  # [..., N, M]


# ------------------------------------------------------------------ padding, batching

def pad_batch(sequences: Sequence[Sequence[int]], pad_value: int = 0,
              max_len: int | None = None, side: str = "right"
              ) -> tuple[np.ndarray, np.ndarray]:
    """Pad variable-length integer sequences into one batch.

    Args:
        sequences: ``B`` sequences of token ids (lists or 1-D arrays), any lengths.
        pad_value: the id written into padding positions.
        max_len: the batch length ``L``; defaults to the longest sequence. A sequence
            longer than ``max_len`` raises (this function never truncates silently).
        side: ``"right"`` (training, encoders) or ``"left"`` (batched generation with a
            decoder, so that every row's last real token sits in the last column).

    Returns:
        ``(ids int64 [B, L], mask bool [B, L])`` with mask True at real tokens.
    """
    check_option("side", side, ("right", "left"))
    if len(sequences) == 0:
        raise ValueError("sequences must contain at least one sequence, got 0")
    lengths = [len(s) for s in sequences]
    length = max(lengths) if max_len is None else max_len
    if max(lengths) > length:
        raise ValueError(f"max_len={length} is shorter than the longest sequence "
                         f"(length {max(lengths)})")
    ids = np.full((len(sequences), length), pad_value, dtype=np.int64)  # [B, L]
    mask = np.zeros((len(sequences), length), dtype=bool)  # [B, L]
    for row, (seq, n) in enumerate(zip(sequences, lengths)):
        cols = slice(0, n) if side == "right" else slice(length - n, length)
        ids[row, cols] = np.asarray(seq, dtype=np.int64)
        mask[row, cols] = True
    return ids, mask
