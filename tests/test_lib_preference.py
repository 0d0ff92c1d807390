"""Tests for lib.preference against formulas written out here and autograd."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.preference import bradley_terry_loss, dpo_loss, sequence_logprobs


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _pairs(b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [-10 * torch.rand(b, generator=g, dtype=torch.float64) for _ in range(4)]


# ---------------------------------------------------------------- sequence_logprobs
def test_sequence_logprobs_sums_masked_tokens_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 6, (2, 5), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    logp = torch.log_softmax(logits, -1)
    want = torch.tensor([sum(logp[b, t, labels[b, t]] for t in range(5) if mask[b, t])
                         for b in range(2)], dtype=torch.float64)
    torch.testing.assert_close(sequence_logprobs(logits, labels, mask), want)
    torch.testing.assert_close(sequence_logprobs(logits, labels, mask.bool()), want)


def test_sequence_logprobs_ignores_minus_100_labels_under_the_mask():
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[-100, 2, -100]])
    got = sequence_logprobs(logits, labels, labels != -100)
    assert got.item() == pytest.approx(-math.log(4))


def test_sequence_logprobs_gradient_only_on_masked_positions():
    logits = torch.randn(1, 3, 4, requires_grad=True)
    sequence_logprobs(logits, torch.tensor([[1, 2, 3]]), torch.tensor([[1, 0, 1]])).backward()
    assert torch.equal(logits.grad[0, 1], torch.zeros(4))
    assert logits.grad[0, 0].abs().sum() > 0


def test_sequence_logprobs_rejects_mask_shape_mismatch():
    with pytest.raises(ValueError, match="mask"):
        sequence_logprobs(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long),
                          torch.ones(2, 4))
    with pytest.raises(ValueError, match="logits"):
        sequence_logprobs(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long),
                          torch.ones(2, 3))


# ---------------------------------------------------------------- Bradley-Terry
def test_bradley_terry_matches_formula_and_is_stable():
    rc = torch.tensor([2.0, -1.0, 0.0, 800.0, -800.0], dtype=torch.float64)
    rr = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    want = sum(-_log_sigmoid(float(c - r)) for c, r in zip(rc, rr)) / 5
    got = bradley_terry_loss(rc, rr)
    assert torch.isfinite(got) and got.item() == pytest.approx(want)


def test_bradley_terry_gradient_is_sigmoid_minus_one():
    rc = torch.tensor([0.3, -2.0], requires_grad=True)
    rr = torch.tensor([0.1, 1.0])
    bradley_terry_loss(rc, rr).backward()
    torch.testing.assert_close(rc.grad, (torch.sigmoid(rc.detach() - rr) - 1) / 2)


@settings(max_examples=40, deadline=None)
@given(st.floats(-20, 20), st.floats(-20, 20), st.floats(-5, 5))
def test_bradley_terry_shift_invariant_and_swap_law(a, b, c):
    ra, rb = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    torch.testing.assert_close(bradley_terry_loss(ra + c, rb + c), bradley_terry_loss(ra, rb))
    # P(a > b) + P(b > a) = 1
    pa = torch.exp(-bradley_terry_loss(ra, rb))
    pb = torch.exp(-bradley_terry_loss(rb, ra))
    assert abs(pa.item() + pb.item() - 1.0) < 1e-9


def test_bradley_terry_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="r_rejected"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))


# ---------------------------------------------------------------- DPO
@pytest.mark.parametrize("beta,eps", [(0.1, 0.0), (0.5, 0.0), (0.1, 0.2)])
def test_dpo_sigmoid_matches_formula(beta, eps):
    pc, pr, rc, rr = _pairs()
    loss, cr, rj = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
    per = []
    for i in range(4):
        z = float((pc[i] - pr[i]) - (rc[i] - rr[i]))
        per.append(-(1 - eps) * _log_sigmoid(beta * z) - eps * _log_sigmoid(-beta * z))
    assert loss.item() == pytest.approx(sum(per) / 4)
    torch.testing.assert_close(cr, beta * (pc - rc))
    torch.testing.assert_close(rj, beta * (pr - rr))


def test_dpo_ipo_matches_formula():
    pc, pr, rc, rr = _pairs()
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="ipo")
    z = (pc - pr) - (rc - rr)
    assert loss.item() == pytest.approx(((z - 2.0) ** 2).mean().item())


def test_dpo_at_reference_is_log2_and_rewards_are_detached():
    pc, pr, _, _ = _pairs()
    pc = pc.clone().requires_grad_(True)
    loss, cr, rj = dpo_loss(pc, pr, pc.detach(), pr, beta=0.3)
    assert loss.item() == pytest.approx(math.log(2))
    assert not cr.requires_grad and not rj.requires_grad
    assert torch.equal(cr, torch.zeros(4, dtype=torch.float64))


def test_dpo_gradient_matches_closed_form():
    # d loss / d policy_chosen = -beta * sigmoid(-beta z) / B
    pc, pr, rc, rr = _pairs()
    pc = pc.clone().requires_grad_(True)
    beta = 0.2
    dpo_loss(pc, pr, rc, rr, beta=beta)[0].backward()
    z = (pc.detach() - pr) - (rc - rr)
    torch.testing.assert_close(pc.grad, -beta * torch.sigmoid(-beta * z) / 4)


@settings(max_examples=30, deadline=None)
@given(st.floats(-30, 30), st.floats(0.01, 2.0))
def test_dpo_depends_on_z_only_and_equals_bt_on_implicit_rewards(z, beta):
    t = lambda v: torch.tensor([v], dtype=torch.float64)   # noqa: E731
    loss_a, cr, rj = dpo_loss(t(z), t(0.0), t(0.0), t(0.0), beta=beta)
    loss_b, _, _ = dpo_loss(t(z - 3.0), t(-1.0), t(-3.0), t(-1.0), beta=beta)
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(loss_a, bradley_terry_loss(cr, rj))


def test_dpo_errors():
    pc, pr, rc, rr = _pairs()
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(pc, pr, rc, rr, loss_type="hinge2")
    with pytest.raises(ValueError, match="ref_rejected"):
        dpo_loss(pc, pr, rc, rr[:3])
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(pc, pr, rc, rr, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(pc, pr, rc, rr, label_smoothing=1.5)
    with pytest.raises(ValueError, match="policy_chosen"):
        dpo_loss(pc[:, None], pr[:, None], rc[:, None], rr[:, None])
