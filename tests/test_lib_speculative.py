"""Tests for speculative sampling in lib.sampling: the residual and the verification step.

The step's output distribution is checked against the target by Monte Carlo with a seeded
generator (tolerance: about 5 standard errors), and the acceptance rate against its
closed form sum_x min(p(x), q(x))."""
from __future__ import annotations

import pytest
import torch

from lib.sampling import speculative_residual, speculative_step

P = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]],
                 dtype=torch.float64)
Q = torch.tensor([[0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.1, 0.1]], dtype=torch.float64)


def test_residual_is_the_normalised_positive_part():
    r = speculative_residual(P[0], Q[0])
    torch.testing.assert_close(r, torch.tensor([0.3, 0.1, 0.0, 0.0], dtype=torch.float64) / 0.4)
    assert speculative_residual(P[:2], Q).sum(-1).sub(1).abs().max() < 1e-12
    torch.testing.assert_close(speculative_residual(P[0], P[0]), P[0])   # p == q: returns p


def test_residual_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        speculative_residual(P[0], Q)


def _run(n: int, K: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    outs = []
    for _ in range(n):
        draft = torch.stack([torch.multinomial(Q[i], 1, generator=g)[0] for i in range(K)])
        outs.append(speculative_step(P[:K + 1], Q[:K], draft, generator=g))
    return outs


def test_first_and_second_emitted_tokens_follow_the_target():
    n = 20_000
    outs = _run(n, K=2)
    first = torch.bincount(torch.tensor([o[0] for o in outs]), minlength=4).double() / n
    assert (first - P[0]).abs().max() < 5 * (0.25 / n) ** 0.5, first
    second = [o[1] for o in outs if len(o) >= 2]         # the second token, when one was emitted
    freq = torch.bincount(torch.tensor(second), minlength=4).double() / len(second)
    assert (freq - P[1]).abs().max() < 5 * (0.25 / len(second)) ** 0.5, freq


def test_acceptance_rate_is_the_overlap_of_p_and_q():
    n = 20_000
    outs = _run(n, K=1, seed=1)
    accepted = sum(len(o) == 2 for o in outs) / n        # K + 1 tokens: the draft was accepted
    alpha = torch.minimum(P[0], Q[0]).sum().item()       # = 1 - total variation distance
    assert abs(accepted - alpha) < 5 * (alpha * (1 - alpha) / n) ** 0.5


def test_identical_draft_is_always_accepted():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        draft = torch.multinomial(P[:2], 1, generator=g)[:, 0]
        assert len(speculative_step(P, P[:2], draft, generator=g)) == 3


def test_bad_input():
    with pytest.raises(ValueError, match="K\\+1"):
        speculative_step(P[:2], Q, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="draft probability 0"):
        speculative_step(P[:2], torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64),
                         torch.tensor([0]))
