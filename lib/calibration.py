"""Calibration and evaluation of a classifier (NumPy).

A classifier that outputs probabilities ``probs [N, C]`` is *calibrated* when, among the
examples it labels with confidence ``c``, a fraction ``c`` is right:
``P(y = argmax p | max p = c) = c``. This module measures that (reliability bins and the
expected calibration error), repairs it without changing any prediction (temperature
scaling), and computes the ranking and threshold metrics that matter under class
imbalance (precision, recall, F1, ROC AUC) and under label noise (majority vote, soft
targets, Cohen's kappa).

Labels are integer arrays ``[N]``; binary metrics take labels in {0, 1} with 1 = positive.
"""
from __future__ import annotations

import numpy as np

from lib._checks import check_ndim, check_same_shape, shape_of
from lib.numerics import log_softmax, softmax


def _check_labels(name: str, labels: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    check_ndim(name, labels, 1)
    if labels.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries, got shape {shape_of(labels)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got values from "
                         f"{labels.min()} to {labels.max()}")
    return labels


def _check_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    check_ndim("probs", probs, 2)
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise ValueError(f"probs must lie in [0, 1], got shape {shape_of(probs)} with values "
                         f"from {probs.min()} to {probs.max()}")
    return probs


def _check_n_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")


def reliability_bins(probs: np.ndarray, labels: np.ndarray,
                     n_bins: int = 15) -> dict[str, np.ndarray]:
    """The data of a reliability diagram: per confidence bin, accuracy vs confidence.

    The confidence of row ``i`` is ``c_i = max_k probs[i, k]`` and its prediction is the
    argmax. Bin ``b`` (of ``n_bins`` equal-width bins) holds the rows with
    ``c_i in (b / n_bins, (b + 1) / n_bins]`` (the first bin also holds ``c_i = 0``).

    Returns a dict of arrays: ``edges [n_bins + 1]``, ``count [n_bins]`` (int),
    ``confidence [n_bins]`` (mean confidence) and ``accuracy [n_bins]`` (fraction of
    correct predictions); the last two are NaN for empty bins.
    """
    probs = _check_probs(probs)
    labels = _check_labels("labels", labels, probs.shape[0], probs.shape[1])
    _check_n_bins(n_bins)
    confidence = probs.max(axis=1)                                   # [N]
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)    # [N]
    edges = np.linspace(0.0, 1.0, n_bins + 1)                        # [n_bins + 1]
    # (lo, hi] bins by comparison with the edges themselves (edges[b] < c <= edges[b+1]);
    # computing ceil(c * n_bins) instead would misplace c = 0.7 with 10 bins (7.000...01).
    bin_of = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bin_of, minlength=n_bins)                    # [n_bins]
    sum_conf = np.bincount(bin_of, weights=confidence, minlength=n_bins)
    sum_correct = np.bincount(bin_of, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):             # 0 / 0 -> NaN
        return {"edges": edges, "count": count,
                "confidence": sum_conf / count, "accuracy": sum_correct / count}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the bin-size-weighted mean gap between accuracy and confidence.

    .. math:: \\mathrm{ECE} = \\sum_b \\frac{|B_b|}{N} \\,
              \\bigl|\\mathrm{acc}(B_b) - \\mathrm{conf}(B_b)\\bigr|

    with the equal-width bins of :func:`reliability_bins`. Weighting by ``|B_b| / N``
    makes ECE the expected gap over *examples*; an unweighted mean over bins would let a
    bin holding one example count as much as a bin holding thousands.
    Shapes: ``probs [N, C]``, ``labels [N]`` -> a float in ``[0, 1]``.
    """
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(weights * gaps))


def _nll_slope(beta: float, logits: np.ndarray, labels: np.ndarray) -> float:
    """d/d beta of ``mean_i [logsumexp(beta z_i) - beta z_i[y_i]]`` = ``mean(E_p[z] - z_y)``."""
    p = softmax(beta * logits, axis=1)                                # [N, C]
    expected = np.sum(p * logits, axis=1)                             # [N]
    return float(np.mean(expected - logits[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, t_min: float = 1e-3,
                    t_max: float = 1e3) -> float:
    """The ``T > 0`` that minimizes the mean NLL of ``softmax(logits / T)``.

    With ``beta = 1 / T`` the NLL ``mean_i [logsumexp(beta z_i) - beta z_{i, y_i}]`` is
    convex in ``beta``: its second derivative is the mean variance of ``z`` under
    ``softmax(beta z)``, which is ``>= 0``. So its slope ``mean(E_p[z] - z_y)`` increases
    with ``beta``, and bisection on the sign of the slope (in ``log beta``) finds the
    minimizer. The answer is clipped to ``[t_min, t_max]`` (the optimum is ``T -> 0``
    when the logits already separate the classes perfectly).

    Dividing every row by the same ``T > 0`` keeps each row's ranking, hence the argmax
    and the accuracy: temperature scaling only changes the confidence.
    Shapes: ``logits [N, C]``, ``labels [N]`` -> a float.
    """
    logits = np.asarray(logits, dtype=np.float64)
    check_ndim("logits", logits, 2)
    labels = _check_labels("labels", labels, logits.shape[0], logits.shape[1])
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min!r}, t_max={t_max!r}")
    lo, hi = np.log(1.0 / t_max), np.log(1.0 / t_min)                 # log beta bounds
    if _nll_slope(np.exp(lo), logits, labels) >= 0:
        return t_max
    if _nll_slope(np.exp(hi), logits, labels) <= 0:
        return t_min
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _nll_slope(np.exp(mid), logits, labels) < 0:
            lo = mid
        else:
            hi = mid
    return float(np.exp(-0.5 * (lo + hi)))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    logits = np.asarray(logits, dtype=np.float64)
    check_ndim("logits", logits, 2)
    labels = _check_labels("labels", labels, logits.shape[0], logits.shape[1])
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    logp = log_softmax(logits / temperature, axis=1)                  # [N, C]
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def fit_platt(scores: np.ndarray, labels: np.ndarray, n_iter: int = 50) -> tuple[float, float]:
    """Platt scaling: the ``(a, b)`` maximizing the likelihood of ``sigmoid(a * s + b)``.

    For a binary score ``s`` (for an LLM classifier, the log-odds
    ``log p(yes) - log p(no)``), the mean NLL
    ``L(a, b) = mean_i [log(1 + exp(a s_i + b)) - y_i (a s_i + b)]`` is convex: its Hessian
    is ``mean_i pi_i (1 - pi_i) [s_i, 1][s_i, 1]^T`` with ``pi_i = sigmoid(a s_i + b)``.
    Newton's method from ``(1, 0)`` (the identity map) is run for ``n_iter`` steps or until
    the step is below ``1e-12``; each step is halved until it does not raise ``L`` (plain
    Newton overshoots, and can diverge, when the scores are over-confident). This is the plain maximum-likelihood fit; Platt (1999) also
    smooths the targets to ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, which we do not.
    Temperature scaling of the log-odds is the special case ``b = 0``, ``a = 1 / T``.
    With ``a > 0`` the map is increasing, so the ROC curve and its AUC are unchanged.

    If the scores separate the classes perfectly there is no finite optimum and the
    iterates grow; the returned ``a`` is then large.
    Shapes: ``scores [N]`` float, ``labels [N]`` in {0, 1} -> two floats.
    Raises ``ValueError`` on shape mismatch or if ``labels`` holds only one class.
    """
    scores = np.asarray(scores, dtype=np.float64)
    check_ndim("scores", scores, 1)
    labels = _check_binary("labels", labels)
    check_same_shape("scores", scores, "labels", labels)
    if labels.min() == labels.max():
        raise ValueError(f"labels must contain both classes, got only {labels[0]} "
                         f"(shape {shape_of(labels)})")
    x = np.stack([scores, np.ones_like(scores)], axis=1)             # [N, 2]
    theta = np.array([1.0, 0.0])                                      # [2] = (a, b)
    loss = _platt_nll(theta, x, labels)
    for _ in range(n_iter):
        z = x @ theta                                                 # [N]
        pi = 0.5 * (1.0 + np.tanh(0.5 * z))                           # sigmoid, no overflow
        grad = x.T @ (pi - labels) / len(labels)                      # [2]
        hess = (x * (pi * (1 - pi))[:, None]).T @ x / len(labels)     # [2, 2]
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)        # [2]
        for _ in range(60):                                           # backtracking
            new_loss = _platt_nll(theta - step, x, labels)
            if new_loss <= loss:
                break
            step = step / 2
        theta, loss = theta - step, min(loss, new_loss)
        if np.max(np.abs(step)) < 1e-12:
            break
    return float(theta[0]), float(theta[1])


def _platt_nll(theta: np.ndarray, x: np.ndarray, labels: np.ndarray) -> float:
    """``mean_i [log(1 + exp(z_i)) - y_i z_i]`` with ``z = x theta``, without overflow."""
    z = x @ theta                                                     # [N]
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def _check_binary(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    check_ndim(name, x, 1)
    if not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{name} must hold only 0 and 1, got shape {shape_of(x)}")
    return x.astype(int)


def binary_confusion(labels: np.ndarray, preds: np.ndarray) -> dict[str, int]:
    """Counts ``tp, fp, fn, tn`` of binary predictions; ``labels, preds [N]`` in {0, 1}."""
    labels = _check_binary("labels", labels)
    preds = _check_binary("preds", preds)
    check_same_shape("labels", labels, "preds", preds)
    return {"tp": int(np.sum((preds == 1) & (labels == 1))),
            "fp": int(np.sum((preds == 1) & (labels == 0))),
            "fn": int(np.sum((preds == 0) & (labels == 1))),
            "tn": int(np.sum((preds == 0) & (labels == 0)))}


def precision_recall_f1(labels: np.ndarray, preds: np.ndarray) -> tuple[float, float, float]:
    """Precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)`` and F1, their harmonic mean.

    ``F1 = 2 P R / (P + R) = 2 tp / (2 tp + fp + fn)``. A ratio with a zero denominator
    (no predicted positives, or no actual positives) is reported as 0.0.
    """
    c = binary_confusion(labels, preds)
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    denominator = 2 * c["tp"] + c["fp"] + c["fn"]
    f1 = 2 * c["tp"] / denominator if denominator else 0.0
    return precision, recall, f1


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    check_ndim("scores", scores, 1)
    labels = _check_binary("labels", labels)
    check_same_shape("scores", scores, "labels", labels)
    if labels.min(initial=1) == 1 or labels.max(initial=0) == 0:
        raise ValueError(f"labels need both classes for a ROC curve, got shape "
                         f"{shape_of(labels)} with {int(labels.sum())} positives")
    return scores, labels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates of the rule ``score >= t`` at every distinct ``t``.

    Shapes: ``scores [N]`` float, ``labels [N]`` in {0, 1} with both classes present.
    Returns ``(fpr, tpr, thresholds)``, each ``[M + 1]`` for ``M`` distinct scores, from
    the point (0, 0) (threshold ``+inf``) to (1, 1) (the lowest score).
    """
    scores, labels = _check_scores(scores, labels)
    order = np.argsort(-scores, kind="stable")                         # high scores first
    s, y = scores[order], labels[order]
    last_of_each_value = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # ties move together
    tp = np.cumsum(y)[last_of_each_value]
    fp = np.cumsum(1 - y)[last_of_each_value]
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (len(y) - y.sum())]
    return fpr, tpr, np.r_[np.inf, s[last_of_each_value]]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = ``P(score of a random positive > of a random negative)``.

    Computed by the Mann-Whitney rank statistic with ties counted as 1/2:

    .. math:: \\mathrm{AUC} = \\frac{\\sum_{i \\in +} \\mathrm{rank}_i - n_+(n_+ + 1)/2}{n_+ n_-}

    with ranks from 1 (lowest score) and tied scores sharing their mean rank. It is the
    same number as the trapezoid area under :func:`roc_curve`. It depends only on the
    ranking, so any increasing transform of the scores leaves it unchanged.
    """
    scores, labels = _check_scores(scores, labels)
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    before = np.cumsum(counts) - counts            # [U] scores strictly below each value
    mid_rank = before + (counts + 1) / 2           # [U] mean of the ranks before+1..before+count
    ranks = mid_rank[inverse]                      # [N] tied scores share their mean rank
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _check_votes(votes: np.ndarray, n_classes: int) -> np.ndarray:
    votes = np.asarray(votes)
    check_ndim("votes", votes, 2)
    if not np.issubdtype(votes.dtype, np.integer) or (
            votes.size and (votes.min() < 0 or votes.max() >= n_classes)):
        raise ValueError(f"votes must be integers in [0, {n_classes}), got shape "
                         f"{shape_of(votes)} and dtype {votes.dtype}")
    return votes


def soft_targets(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example vote fractions: ``votes [N, A]`` (A annotators) -> ``[N, n_classes]``."""
    votes = _check_votes(votes, n_classes)
    counts = np.stack([(votes == c).sum(axis=1) for c in range(n_classes)], axis=1)
    return counts / votes.shape[1]


def majority_vote(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """The most voted class per row of ``votes [N, A]``; ties go to the lower class index."""
    return soft_targets(votes, n_classes).argmax(axis=1)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Agreement of two annotators beyond chance: ``(p_o - p_e) / (1 - p_e)``.

    ``p_o`` is the fraction of items where ``a == b``; ``p_e = sum_c P_a(c) P_b(c)`` is
    the agreement expected if each annotator labelled at random with their own class
    frequencies. 1 is perfect agreement, 0 is chance level.
    Shapes: ``a, b [N]`` integers in ``[0, n_classes)``.
    """
    a = _check_labels("a", a, len(np.asarray(a)), n_classes)
    b = _check_labels("b", b, len(a), n_classes)
    p_observed = np.mean(a == b)
    freq_a = np.bincount(a, minlength=n_classes) / len(a)
    freq_b = np.bincount(b, minlength=n_classes) / len(b)
    p_expected = float(np.sum(freq_a * freq_b))
    if p_expected == 1.0:
        raise ValueError("cohen_kappa is undefined when both annotators use a single class")
    return float((p_observed - p_expected) / (1.0 - p_expected))
