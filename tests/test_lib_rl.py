"""Tests for lib.rl against formulas written out here, autograd and edge cases."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.rl import (clipped_surrogate, gather_logprobs, group_advantages, grpo_loss, kl_k3,
                    masked_mean, masked_sum, ppo_clip_loss)



@pytest.fixture(autouse=True)
def _float64_default():
    """Build every tensor of this module in float64; restore the default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _batch(b: int = 3, t: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(b, t, generator=g) * 3
    old = logp + 0.3 * torch.randn(b, t, generator=g)
    ref = logp + 0.3 * torch.randn(b, t, generator=g)
    adv = torch.randn(b, generator=g)
    lengths = torch.tensor([t, 2, 0][:b] + [t] * max(0, b - 3))
    mask = torch.arange(t)[None, :] < lengths[:, None]          # [B, T], row 2 empty
    return logp, old, ref, adv, mask


# ---------------------------------------------------------------- gather_logprobs
def test_gather_logprobs_matches_log_softmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 7, generator=g) * 5
    tokens = torch.randint(0, 7, (2, 4), generator=g)
    want = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(gather_logprobs(logits, tokens), want)


def test_gather_logprobs_extreme_logits_finite():
    logits = torch.tensor([[[1000.0, 0.0, -1000.0]]], dtype=torch.float32)
    out = gather_logprobs(logits, torch.tensor([[0]]))
    assert torch.isfinite(out).all() and abs(out.item()) < 1e-6
    assert gather_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(-1000.0)


def test_gather_logprobs_gradient_is_onehot_minus_softmax():
    logits = torch.randn(1, 1, 5, requires_grad=True)
    gather_logprobs(logits, torch.tensor([[3]])).sum().backward()
    want = -torch.softmax(logits.detach(), -1)
    want[0, 0, 3] += 1
    torch.testing.assert_close(logits.grad, want)


@pytest.mark.parametrize("logits,tokens", [
    (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)),
    (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long)),
    (torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long)),
])
def test_gather_logprobs_rejects_bad_shapes(logits, tokens):
    with pytest.raises(ValueError, match="logits|tokens"):
        gather_logprobs(logits, tokens)


# ---------------------------------------------------------------- masked mean / sum
def test_masked_mean_formula_and_empty_rows():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    m = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    assert masked_mean(x, m).item() == pytest.approx((1 + 2 + 7 + 8 + 9) / 5)
    torch.testing.assert_close(masked_mean(x, m, dim=1), torch.tensor([1.5, 0.0, 8.0]))
    assert masked_mean(x, torch.zeros_like(m)).item() == 0.0


def test_masked_mean_ignores_inf_under_the_mask():
    x = torch.tensor([[1.0, -math.inf], [3.0, math.nan]], requires_grad=True)
    m = torch.tensor([[True, False], [True, False]])
    out = masked_mean(x, m)
    out.backward()
    assert out.item() == 2.0
    torch.testing.assert_close(x.grad, torch.tensor([[0.5, 0.0], [0.5, 0.0]]))


def test_masked_sum_rejects_mask_that_enlarges_x():
    with pytest.raises(ValueError, match="mask"):
        masked_sum(torch.zeros(3), torch.ones(2, 3))


# ---------------------------------------------------------------- group_advantages
def _reference_advantages(r, g, eps, scale):
    out = []
    all_std = torch.tensor(r).std().item()
    for start in range(0, len(r), g):
        grp = r[start:start + g]
        mean = sum(grp) / g
        if scale == "group":
            std = math.sqrt(sum((x - mean) ** 2 for x in grp) / (g - 1))
        elif scale == "batch":
            std = all_std
        else:
            out += [x - mean for x in grp]         # "none": centred only, no division at all
            continue
        out += [(x - mean) / (std + eps) for x in grp]
    return torch.tensor(out)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_matches_formula(scale):
    r = [1.0, 0.0, 0.0, 1.0, 0.5, 2.0, 3.0, 3.0, -1.0]
    got = group_advantages(torch.tensor(r), 3, scale=scale)
    torch.testing.assert_close(got, _reference_advantages(r, 3, 1e-4, scale))


def test_group_advantages_uses_bessel_std_and_eps():
    got = group_advantages(torch.tensor([0.0, 1.0]), 2, eps=0.5)
    std = math.sqrt(0.5)                      # Bessel: ((0.5^2 + 0.5^2) / 1) ** 0.5
    torch.testing.assert_close(got, torch.tensor([-0.5, 0.5]) / (std + 0.5))


def test_zero_variance_group_gives_zero_advantage_not_nan():
    got = group_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 3)
    assert torch.isfinite(got).all()
    assert torch.equal(got[:3], torch.zeros(3))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=4).flatmap(
    lambda grp: st.lists(st.floats(-10, 10), min_size=len(grp) * 2, max_size=len(grp) * 2)
    .map(lambda r: (r, len(grp)))))
def test_group_advantages_sum_to_zero_per_group_and_are_shift_invariant(case):
    r, g = case
    rewards = torch.tensor(r)
    adv = group_advantages(rewards, g)
    assert torch.allclose(adv.view(-1, g).sum(1), torch.zeros(len(r) // g), atol=1e-9)
    torch.testing.assert_close(group_advantages(rewards + 7.0, g), adv, atol=1e-9, rtol=1e-7)


def test_group_advantages_errors():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, scale="global")
    with pytest.raises(ValueError, match="rewards"):
        group_advantages(torch.zeros(2, 2), 2)


# ---------------------------------------------------------------- kl_k3
def test_kl_k3_formula_nonnegative_and_unbiased():
    logp, _, ref, _, _ = _batch()
    d = ref - logp
    torch.testing.assert_close(kl_k3(logp, ref), torch.exp(d) - d - 1)
    assert (kl_k3(logp, ref) >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros_like(logp))
    # Monte-Carlo check: samples from p, the mean of k3 approaches KL(p || q).
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    estimate = kl_k3(p.log()[x], q.log()[x]).mean()
    exact = (p * (p / q).log()).sum()
    assert abs(estimate - exact) < 0.01


def test_kl_k3_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="ref_logp"):
        kl_k3(torch.zeros(2, 3), torch.zeros(2, 4))


# ---------------------------------------------------------------- PPO clipped loss
def _reference_token_loss(logp, old, adv, eps):
    rows = []
    for b in range(logp.shape[0]):
        row = []
        for t in range(logp.shape[1]):
            a = float(adv[b] if adv.ndim == 1 else adv[b, t])
            rho = math.exp(float(logp[b, t] - old[b, t]))
            row.append(-min(rho * a, min(max(rho, 1 - eps), 1 + eps) * a))
        rows.append(row)
    return torch.tensor(rows)


def test_ppo_clip_loss_matches_formula():
    logp, old, _, adv, mask = _batch()
    per_tok = _reference_token_loss(logp, old, adv, 0.2)
    torch.testing.assert_close(clipped_surrogate(logp, old, adv, 0.2), per_tok)
    want = (per_tok * mask).sum() / mask.sum()
    torch.testing.assert_close(ppo_clip_loss(logp, old, adv, mask), want)
    adv_tok = adv[:, None].expand_as(logp)
    torch.testing.assert_close(ppo_clip_loss(logp, old, adv_tok, mask), want)


def test_ratio_is_exactly_one_on_policy_and_gradient_is_minus_a_dlogp_over_count():
    logp, _, _, adv, mask = _batch()
    theta = logp.clone().requires_grad_(True)
    ratio = torch.exp(theta - theta.detach())
    assert torch.equal(ratio, torch.ones_like(ratio))
    ppo_clip_loss(theta, theta.detach(), adv, mask).backward()
    want = -adv[:, None] * mask / mask.sum()
    torch.testing.assert_close(theta.grad, want.expand_as(theta))


@pytest.mark.parametrize("a,rho,clipped", [
    (1.0, 1.5, True),    # positive advantage, ratio above 1+eps: no more incentive
    (1.0, 0.5, False),   # positive advantage, ratio below 1-eps: still pushed up
    (-1.0, 0.5, True),   # negative advantage, ratio below 1-eps: no more incentive
    (-1.0, 1.5, False),  # negative advantage, ratio above 1+eps: still pushed down
])
def test_clipping_is_active_on_the_right_side(a, rho, clipped):
    old = torch.zeros(1, 1)
    logp = torch.full((1, 1), math.log(rho), requires_grad=True)
    loss = ppo_clip_loss(logp, old, torch.tensor([a]), torch.ones(1, 1))
    loss.backward()
    if clipped:
        assert loss.item() == pytest.approx(-(min(max(rho, 0.8), 1.2)) * a)
        assert logp.grad.item() == 0.0
    else:
        assert loss.item() == pytest.approx(-rho * a)
        assert logp.grad.item() == pytest.approx(-a * rho)   # d(rho)/d(logp) = rho


@settings(max_examples=50, deadline=None)
@given(st.floats(-3, 3), st.floats(-2, 2), st.floats(0.05, 0.5))
def test_clipped_objective_is_a_pessimistic_bound(a, log_rho, eps):
    rho = math.exp(log_rho)
    loss = clipped_surrogate(torch.tensor([[log_rho]]), torch.zeros(1, 1),
                             torch.tensor([a]), eps).item()
    assert loss >= -rho * a - 1e-12        # never more optimistic than the unclipped one


def test_ppo_rejects_bad_inputs():
    logp, old, _, adv, mask = _batch()
    with pytest.raises(ValueError, match="mask"):
        ppo_clip_loss(logp, old, adv, mask[:, :-1])
    with pytest.raises(ValueError, match="old_logp"):
        ppo_clip_loss(logp, old[:, :-1], adv, mask)
    with pytest.raises(ValueError, match="advantages"):
        ppo_clip_loss(logp, old, adv[:-1], mask)
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_clip_loss(logp, old, adv, mask, clip_eps=0.0)


# ---------------------------------------------------------------- GRPO loss
def test_grpo_loss_three_aggregations_match_formulas():
    logp, old, ref, adv, mask = _batch(b=4, t=6)
    beta, eps = 0.04, 0.2
    per_tok = _reference_token_loss(logp, old, adv, eps)
    d = ref - logp
    per_tok = per_tok + beta * (torch.exp(d) - d - 1)
    m = mask.double()
    seq = [(per_tok[b] * m[b]).sum() / max(m[b].sum(), 1.0) for b in range(4)]
    want = {"grpo": sum(seq) / 4,
            "bnpo": (per_tok * m).sum() / m.sum(),
            "dr_grpo": (per_tok * m).sum() / (4 * 6)}
    for loss_type, value in want.items():
        got = grpo_loss(logp, old, ref, adv, mask, eps, beta, loss_type)
        torch.testing.assert_close(got, torch.as_tensor(value), msg=loss_type)
    got = grpo_loss(logp, old, ref, adv, mask, eps, beta, "dr_grpo", max_completion_length=10)
    torch.testing.assert_close(got, (per_tok * m).sum() / 40)


def test_grpo_with_beta_zero_equals_ppo_and_accepts_no_reference():
    logp, old, _, adv, mask = _batch()
    torch.testing.assert_close(grpo_loss(logp, old, None, adv, mask, loss_type="bnpo"),
                               ppo_clip_loss(logp, old, adv, mask))


def test_grpo_all_masked_row_contributes_zero_without_nan():
    logp, old, ref, adv, mask = _batch()          # row 2 has an all-zero mask
    logp = logp.clone().requires_grad_(True)
    loss = grpo_loss(logp, old, ref, adv, mask, beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert torch.equal(logp.grad[2], torch.zeros(logp.shape[1]))


def test_grpo_first_step_gradient_per_aggregation():
    logp, _, _, adv, mask = _batch(b=3, t=4)
    m = mask.double()
    counts = {"grpo": m.sum(1, keepdim=True).clamp(min=1) * 3,
              "bnpo": m.sum(), "dr_grpo": torch.tensor(3 * 4.0)}
    for loss_type, count in counts.items():
        theta = logp.clone().requires_grad_(True)
        grpo_loss(theta, theta.detach(), None, adv, mask, loss_type=loss_type).backward()
        torch.testing.assert_close(theta.grad, -adv[:, None] * m / count, msg=loss_type)


def test_grpo_kl_gradient_matches_autograd_of_written_formula():
    logp, old, ref, adv, mask = _batch()
    a = logp.clone().requires_grad_(True)
    b = logp.clone().requires_grad_(True)
    grpo_loss(a, old, ref, adv, mask, beta=0.5, loss_type="bnpo").backward()
    ratio = torch.exp(b - old)
    surrogate = -torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
    kl = torch.exp(ref - b) - (ref - b) - 1
    ((surrogate + 0.5 * kl) * mask).sum().div(mask.sum()).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_grpo_rejects_bad_inputs():
    logp, old, ref, adv, mask = _batch()
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(logp, old, ref, adv, mask, loss_type="sum")
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, old, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="mask"):
        grpo_loss(logp, old, ref, adv, mask.T)
    with pytest.raises(ValueError, match="beta"):
        grpo_loss(logp, old, ref, adv, mask, beta=-1.0)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(logp, old, ref, adv, mask, loss_type="dr_grpo", max_completion_length=0)
    with pytest.raises(ValueError, match="logp"):
        grpo_loss(logp[0], old[0], ref[0], adv, mask[0])


def test_float32_and_float16_inputs_work():
    logp, old, ref, adv, mask = _batch()
    for dtype in (torch.float32, torch.float16):
        got = grpo_loss(logp.to(dtype), old.to(dtype), ref.to(dtype), adv.to(dtype), mask,
                        beta=0.1)
        want = grpo_loss(logp, old, ref, adv, mask, beta=0.1)
        assert got.dtype == dtype
        assert abs(got.double() - want) < (1e-5 if dtype == torch.float32 else 1e-2)


def test_token_level_advantages_and_float_mask_match_sequence_level_bool():
    logp, old, ref, adv, mask = _batch(b=4, t=6)
    want = grpo_loss(logp, old, ref, adv, mask, beta=0.1, loss_type="grpo")
    got = grpo_loss(logp, old, ref, adv[:, None].expand(4, 6).clone(), mask.double(),
                    beta=0.1, loss_type="grpo")
    torch.testing.assert_close(got, want)
