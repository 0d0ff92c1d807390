"""Entropy, cross-entropy, KL divergence and Monte-Carlo KL estimators (torch).

For discrete distributions ``p`` and ``q`` on the last axis (natural logs, nats):

.. math::
    H(p) = -\\sum_i p_i \\log p_i, \\qquad
    H(p, q) = -\\sum_i p_i \\log q_i, \\qquad
    \\mathrm{KL}(p \\| q) = \\sum_i p_i \\log \\frac{p_i}{q_i} = H(p, q) - H(p).

Zero-mass conventions (limits of ``x log x`` and ``x log(x / y)`` as ``x -> 0``): a term
with ``p_i = 0`` contributes 0 whatever ``q_i`` is; a term with ``p_i > 0`` and ``q_i = 0``
contributes ``+inf``. ``torch.xlogy(x, y) = x log y`` with ``xlogy(0, y) = 0`` implements
exactly these conventions.

When the distributions are too large to sum over (sequences of tokens), KL is estimated
from samples; :func:`kl_estimators` gives the three standard per-sample estimators.
"""
from __future__ import annotations

import torch

from lib._checks import check_min_ndim, check_same_shape, shape_of


def _check_distribution(name: str, p: torch.Tensor) -> None:
    """``p [..., V]``: a float tensor of entries in [0, 1] whose last axis sums to 1."""
    check_min_ndim(name, p, 1)
    if not torch.is_floating_point(p):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {p.dtype}")
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got shape "
                         f"{shape_of(p)} with min {p.min().item()} and max {p.max().item()}")
    total = p.sum(dim=-1)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-3):
        raise ValueError(f"{name} must sum to 1 along the last axis, got shape {shape_of(p)} "
                         f"with sums in [{total.min().item()}, {total.max().item()}]")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) = -sum_i p_i log p_i`` in nats; ``p [..., V]`` -> ``[...]``."""
    _check_distribution("p", p)
    return -torch.xlogy(p, p).sum(dim=-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``H(p, q) = -sum_i p_i log q_i`` in nats; ``p, q [..., V]`` -> ``[...]``.

    It is the expected code length of samples from ``p`` under a code built for ``q``,
    and it equals ``H(p) + KL(p || q)``; ``+inf`` when ``q`` misses mass that ``p`` has.
    """
    _check_distribution("p", p)
    _check_distribution("q", q)
    check_same_shape("p", p, "q", q)
    return -torch.xlogy(p, q).sum(dim=-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_i p_i (log p_i - log q_i)`` in nats; ``p, q [..., V]`` -> ``[...]``.

    Entries with ``p_i = 0`` contribute 0; ``q_i = 0`` where ``p_i > 0`` gives ``+inf``.
    The result is ``>= 0`` (Gibbs' inequality) and 0 iff ``p == q``. It is not symmetric.
    Raises ``ValueError`` if the shapes differ or an input is not a distribution.
    """
    _check_distribution("p", p)
    _check_distribution("q", q)
    check_same_shape("p", p, "q", q)
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=-1)


def kl_estimators(logp: torch.Tensor, logq: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample Monte-Carlo estimates of ``KL(q || p)`` from samples ``x ~ q``.

    ``logp``, ``logq``: the log-densities of the same samples under ``p`` and ``q``, any
    shape (one entry per sample). With ``log r = log p(x) - log q(x)``:

    * ``k1 = -log r``: unbiased (``E_q[-log r] = KL(q||p)``), high variance, can be < 0;
    * ``k2 = (log r)^2 / 2``: biased, low variance, always ``>= 0``; its expectation is
      KL to second order when ``p`` and ``q`` are close, because ``f(r) = (log r)^2 / 2``
      has ``f(1) = f'(1) = 0`` and ``f''(1) = 1`` like KL's ``f(r) = -log r``. It is NOT an
      f-divergence: ``f''(r) = (1 - ln r) / r^2 < 0`` for ``r > e``, so ``f`` is not convex.
      It is unbounded too (quadratic in ``log r``); what it lacks is ``k3``'s exponential
      tail in ``r``;
    * ``k3 = (r - 1) - log r``: unbiased (``E_q[r] = 1`` adds a zero-mean control
      variate to ``k1``), always ``>= 0`` because ``log r <= r - 1``.

    ``r - 1`` is computed as ``expm1(log r)`` so that ``k3`` keeps its precision when
    ``r`` is close to 1. Returns ``{"k1", "k2", "k3"}``, each shaped like the inputs.
    Raises ``ValueError`` if the shapes differ.
    """
    check_same_shape("logp", logp, "logq", logq)
    log_r = logp - logq
    return {"k1": -log_r,
            "k2": 0.5 * log_r ** 2,
            "k3": torch.expm1(log_r) - log_r}


def gaussian_kl(mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor,
                sigma_p: torch.Tensor) -> torch.Tensor:
    """Closed-form ``KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2))`` for univariate Gaussians.

    .. math:: \\log\\frac{\\sigma_p}{\\sigma_q}
              + \\frac{\\sigma_q^2 + (\\mu_q - \\mu_p)^2}{2\\sigma_p^2} - \\frac12

    Inputs broadcast elementwise (all tensors); the standard deviations must be > 0.
    """
    for name, sigma in (("sigma_q", sigma_q), ("sigma_p", sigma_p)):
        if bool((sigma <= 0).any()):
            raise ValueError(f"{name} must be > 0, got shape {shape_of(sigma)} "
                             f"with min {sigma.min().item()}")
    return (torch.log(sigma_p / sigma_q)
            + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - 0.5)
