"""Tests for RLHF-PPO's pieces in lib.rl: KL-penalised rewards, GAE, the clipped value loss,
masked whitening, and GRPO's scale="none". References are plain Python loops over lists."""
from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.rl import gae, group_advantages, kl_penalized_rewards, masked_whiten, value_loss


def _batch(seed: int, B: int = 4, T: int = 6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T                                                   # one full row
    mask = torch.arange(T)[None, :] < lengths[:, None]               # [B, T], right padding
    rand = lambda: torch.randn(B, T, generator=g, dtype=dtype)       # noqa: E731
    return mask, rand(), rand(), rand(), lengths


def _gae_reference(r, v, n, gamma, lam):
    """One row as Python lists: TD residuals with V = 0 past the end, then the recursion."""
    adv = [0.0] * len(r)
    running = 0.0
    for t in reversed(range(n)):
        next_v = v[t + 1] if t + 1 < n else 0.0
        delta = r[t] + gamma * next_v - v[t]
        running = delta + gamma * lam * running
        adv[t] = running
    ret = [adv[t] + v[t] if t < n else 0.0 for t in range(len(r))]
    return adv, ret


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 0.0), (1.0, 1.0), (0.5, 0.3)])
@pytest.mark.parametrize("seed", range(3))
def test_gae_matches_the_recursion_written_out(seed, gamma, lam):
    mask, r, v, _, lengths = _batch(seed)
    adv, ret = gae(r, v, mask, gamma=gamma, lam=lam)
    for b in range(mask.shape[0]):
        ref_adv, ref_ret = _gae_reference(r[b].tolist(), v[b].tolist(), int(lengths[b]), gamma, lam)
        torch.testing.assert_close(adv[b], torch.tensor(ref_adv, dtype=adv.dtype))
        torch.testing.assert_close(ret[b], torch.tensor(ref_ret, dtype=ret.dtype))


def test_gae_lambda_zero_is_one_step_td_and_lambda_one_is_monte_carlo_minus_baseline():
    mask, r, v, _, lengths = _batch(7)
    v_next = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1) * torch.cat(
        [mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)        # V = 0 past the end
    td, _ = gae(r, v, mask, gamma=0.9, lam=0.0)
    torch.testing.assert_close(td, torch.where(mask, r + 0.9 * v_next - v, torch.zeros(())))
    mc, returns = gae(r, v, mask, gamma=1.0, lam=1.0)
    reward_to_go = torch.flip(torch.cumsum(torch.flip(torch.where(mask, r, 0.0), [1]), 1), [1])
    torch.testing.assert_close(mc, torch.where(mask, reward_to_go - v, torch.zeros(())))
    torch.testing.assert_close(returns, torch.where(mask, reward_to_go, torch.zeros(())))


def test_gae_ignores_padding_values_and_passes_no_gradient():
    mask, r, v, _, _ = _batch(3)
    v = v.clone().requires_grad_(True)
    adv, ret = gae(r, v, mask)
    assert not adv.requires_grad and not ret.requires_grad
    garbage = torch.where(mask, v.detach(), torch.full_like(v, 1e6))
    adv2, ret2 = gae(torch.where(mask, r, torch.full_like(r, -1e6)), garbage, mask)
    torch.testing.assert_close(adv, adv2)
    torch.testing.assert_close(ret, ret2)
    assert torch.equal(adv[~mask], torch.zeros_like(adv[~mask]))


def test_kl_penalized_rewards_per_token_kl_and_score_on_the_last_real_token():
    mask, logp, ref, _, lengths = _batch(11)
    scores = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    got = kl_penalized_rewards(scores, logp, ref, mask, beta=0.1)
    for b in range(4):
        n = int(lengths[b])
        for t in range(mask.shape[1]):
            want = -0.1 * (logp[b, t] - ref[b, t]).item() if t < n else 0.0
            if t == n - 1:
                want += scores[b].item()
            assert math.isclose(got[b, t].item(), want, rel_tol=1e-12, abs_tol=1e-12), (b, t)


def test_kl_penalized_rewards_has_no_gradient_and_rejects_left_padding():
    mask, logp, ref, _, _ = _batch(2)
    logp.requires_grad_(True)
    assert not kl_penalized_rewards(torch.zeros(4, dtype=torch.float64), logp, ref, mask, 0.1).requires_grad
    left = torch.flip(mask, [1])
    with pytest.raises(ValueError, match="mask of shape"):
        kl_penalized_rewards(torch.zeros(4), logp, ref, left, 0.1)
    with pytest.raises(ValueError, match="scores must have shape"):
        kl_penalized_rewards(torch.zeros(3), logp, ref, mask, 0.1)
    with pytest.raises(ValueError, match="beta must be in"):
        kl_penalized_rewards(torch.zeros(4), logp, ref, mask, -0.1)


def test_value_loss_matches_the_formula_and_clips_around_the_old_value():
    mask, v, old, R, _ = _batch(5)
    got = value_loss(v, old, R, mask, clip_eps=0.2)
    terms = []
    for b, t in mask.nonzero().tolist():
        vv, oo, rr = v[b, t].item(), old[b, t].item(), R[b, t].item()
        clipped = oo + max(-0.2, min(0.2, vv - oo))
        terms.append(0.5 * max((vv - rr) ** 2, (clipped - rr) ** 2))
    assert math.isclose(got.item(), sum(terms) / len(terms), rel_tol=1e-12)
    # The clipped value (0 + 0.2) is farther from R = 10 than v = 5 is: the clipped branch
    # is the max, and its gradient is 0 (the clamp is saturated).
    v1 = torch.tensor([[5.0]], requires_grad=True)
    value_loss(v1, torch.tensor([[0.0]]), torch.tensor([[10.0]]), torch.ones(1, 1)).backward()
    assert v1.grad.item() == 0.0
    # Overshooting past R: the unclipped branch is the max, gradient v - R.
    v3 = torch.tensor([[5.0]], requires_grad=True)
    value_loss(v3, torch.tensor([[0.0]]), torch.tensor([[-1.0]]), torch.ones(1, 1)).backward()
    assert v3.grad.item() == 6.0
    # Inside the clip range the loss is plain 0.5 (v - R)^2 with gradient v - R.
    v2 = torch.tensor([[0.1]], requires_grad=True)
    value_loss(v2, torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.ones(1, 1)).backward()
    assert math.isclose(v2.grad.item(), 0.1 - 1.0, rel_tol=1e-6)


def test_value_loss_gradient_matches_finite_differences():
    mask, v, old, R, _ = _batch(9)
    v = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: value_loss(x, old, R, mask, 0.5), (v,))


def test_masked_whiten_uses_real_tokens_only():
    mask, x, _, _, _ = _batch(4)
    w = masked_whiten(x, mask)
    real = w[mask]
    assert abs(real.mean().item()) < 1e-9 and abs(real.var().item() - 1.0) < 1e-6
    assert torch.equal(w[~mask], torch.zeros_like(w[~mask]))
    moved = torch.where(mask, x, torch.full_like(x, 1e3))           # padding changes nothing
    torch.testing.assert_close(masked_whiten(moved, mask), w)
    kept = masked_whiten(x, mask, shift_mean=False)
    torch.testing.assert_close(kept[mask].mean(), x[mask].mean())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=4).flatmap(
    lambda grp: st.lists(st.floats(-5, 5), min_size=len(grp) * 3, max_size=len(grp) * 3)
    .map(lambda r: (r, len(grp)))))
def test_group_advantages_scale_none_is_exactly_reward_minus_group_mean(case):
    r, g = case
    rewards = torch.tensor(r, dtype=torch.float64)
    got = group_advantages(rewards, g, scale="none")
    want = (rewards.view(-1, g) - rewards.view(-1, g).mean(1, keepdim=True)).reshape(-1)
    assert torch.equal(got, want)


def test_group_advantages_scale_none_allows_groups_of_one():
    assert torch.equal(group_advantages(torch.tensor([3.0, -1.0]), 1, scale="none"),
                       torch.zeros(2))
