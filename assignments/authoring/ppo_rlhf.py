# %% [markdown]
# # Assignment: the critic side of RLHF-PPO: KL-penalised rewards, GAE and the clipped value loss
#
# RLHF with PPO (InstructGPT) trains a policy *and* a critic. The reward model scores a
# whole completion once; the trainer turns that score into per-token rewards with a KL
# penalty against the frozen reference model, the critic's values turn the rewards into
# advantages with generalised advantage estimation (GAE), and the critic itself is trained
# with PPO's clipped value loss. You will implement those three functions. The chapter
# [PPO for RLHF: the critic, GAE and the KL in the reward](../../../chapters/part5_rl/ppo_rlhf.ipynb)
# derives each of them, and [Policy gradients, PPO and GRPO](../../../chapters/part5_rl/policy_gradients_ppo_grpo.ipynb)
# the clipped policy objective that uses these advantages.
#
# Conventions for every function: a batch holds `B` completions padded to `T` tokens.
# `mask [B, T]` (bool) is True on real response tokens and False on padding, and every
# row is a run of real tokens **from position 0**, then padding: a row may have no padding
# at all (all `T` tokens real), a single real token, or none.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers); torch is enough.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Points: 15 in all.

# %% [setup]
import math

import torch


def check_close(actual, expected, what, tol=1e-9):
    """Assert two tensors (or numbers) have the same shape and agree to ``tol``, absolute."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, \
        f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values {actual}"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol, f"{what}: expected {expected}, got {actual} (max error {err:.2e})"


def response_mask(lengths, T):
    """Bool ``[B, T]``: row ``b`` is True on its first ``lengths[b]`` positions."""
    return torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]

# %% [markdown]
# ## 1. Per-token rewards with a KL penalty (5 points)
#
# `kl_penalized_rewards(scores, logp, ref_logp, mask, beta)`: `scores [B]` is the reward
# model's score of each completion; `logp, ref_logp [B, T]` are the log-probs of the
# sampled tokens under the policy and under the frozen reference; `beta >= 0`. Return the
# per-token rewards `[B, T]`:
#
# $$r_{bt} = -\beta\,\big(\log\pi(y_{bt}) - \log\pi_{\text{ref}}(y_{bt})\big)
#   + [\,t = L_b - 1\,]\ \text{score}_b \quad\text{on real tokens}, \qquad r_{bt} = 0 \text{ on padding},$$
#
# where $L_b$ is the number of real tokens of row $b$: the score goes to the **last real
# token** (not the last column), on top of that token's KL penalty. Padding entries of
# `logp` and `ref_logp` may hold any value (even `inf` or `nan`) and must not affect the
# result. A row with no real token is all zeros (no token carries its score). The rewards
# are constants for the update: no gradient needs to flow through them.

# %% [solution] id=kl_penalized_rewards
def kl_penalized_rewards(scores, logp, ref_logp, mask, beta):
    ### BEGIN SOLUTION
    m = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype)
    rewards = torch.where(m, -beta * (logp - ref_logp), zero).detach()  # [B, T]
    last = m.sum(dim=1) - 1                                              # [B]
    for b in range(m.shape[0]):
        if last[b] >= 0:
            rewards[b, last[b]] += scores[b]
    return rewards
    ### END SOLUTION

# %% [test] id=test_kl_rewards points=2
_m = response_mask([2, 1], 3)
_logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], dtype=torch.float64)
_ref = torch.tensor([[-1.5, -1.0, 0.0], [-0.5, 0.0, 0.0]], dtype=torch.float64)
check_close(kl_penalized_rewards(torch.zeros(2, dtype=torch.float64), _logp, _ref, _m, 0.1),
            [[-0.05, 0.1, 0.0], [0.0, 0.0, 0.0]],
            "KL penalty, scores 0, lengths [2, 1], beta 0.1")
### BEGIN HIDDEN TESTS
from lib.rl import kl_penalized_rewards as _ref_rewards
_g = torch.Generator().manual_seed(11)
_m = response_mask([5, 1, 3, 4], 6)
_logp = torch.where(_m, -3 * torch.rand(4, 6, generator=_g, dtype=torch.float64), 0.0)
_ref = torch.where(_m, _logp + 0.3 * torch.randn(4, 6, generator=_g, dtype=torch.float64), 0.0)
for _beta in (0.0, 0.05, 0.5):
    check_close(kl_penalized_rewards(torch.zeros(4, dtype=torch.float64), _logp, _ref, _m, _beta),
                _ref_rewards(torch.zeros(4, dtype=torch.float64), _logp, _ref, _m, _beta),
                f"scores 0, ragged lengths [5, 1, 3, 4] of T=6, beta {_beta}")
### END HIDDEN TESTS

# %% [test] id=test_score_position points=1
_m = response_mask([2, 3], 4)
_lp = torch.zeros(2, 4, dtype=torch.float64)
check_close(kl_penalized_rewards(torch.tensor([1.0, -2.0], dtype=torch.float64), _lp, _lp, _m, 0.1),
            [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -2.0, 0.0]],
            "scores [1, -2], no KL, lengths [2, 3] of T=4: score on the last real token")
### BEGIN HIDDEN TESTS
from lib.rl import kl_penalized_rewards as _ref_rewards
_g = torch.Generator().manual_seed(12)
_m = response_mask([1, 4, 2], 5)                     # a one-token completion: position 0
_lp = -torch.rand(3, 5, generator=_g, dtype=torch.float64)
_s = torch.tensor([0.7, -1.3, 2.5], dtype=torch.float64)
check_close(kl_penalized_rewards(_s, _lp, _lp, _m, 0.2), _ref_rewards(_s, _lp, _lp, _m, 0.2),
            "scores [0.7, -1.3, 2.5], logp == ref_logp, lengths [1, 4, 2] of T=5")
### END HIDDEN TESTS

# %% [test] id=test_kl_padding points=1
_m = response_mask([1, 2], 3)
_logp = torch.tensor([[-1.0, 5.0, 7.0], [-1.0, -1.0, 9.0]], dtype=torch.float64)
_ref = torch.full((2, 3), -1.0, dtype=torch.float64)
check_close(kl_penalized_rewards(torch.zeros(2, dtype=torch.float64), _logp, _ref, _m, 0.5),
            torch.zeros(2, 3), "scores 0, logp == ref_logp on real tokens, garbage on padding")
### BEGIN HIDDEN TESTS
_m = response_mask(torch.tensor([2, 1]), 3)
_logp = torch.tensor([[-1.0, -2.0, math.inf], [-3.0, math.nan, -math.inf]], dtype=torch.float64)
_ref = torch.tensor([[-2.0, -2.0, 0.0], [-1.0, 0.0, math.nan]], dtype=torch.float64)
_zero_scores = torch.zeros(2, dtype=torch.float64)
check_close(kl_penalized_rewards(_zero_scores, _logp, _ref, _m, 0.5),
            [[-0.5, 0.0, 0.0], [1.0, 0.0, 0.0]],
            "scores 0, beta 0.5, inf and nan under the padding of lengths [2, 1]")
### END HIDDEN TESTS

# %% [test] id=test_kl_full_and_empty_rows points=1
_m = torch.ones(1, 3, dtype=torch.bool)
_lp = torch.zeros(1, 3, dtype=torch.float64)
check_close(kl_penalized_rewards(torch.tensor([2.0], dtype=torch.float64), _lp, _lp, _m, 0.1),
            [[0.0, 0.0, 2.0]], "score 2, no KL, one row with no padding (all 3 tokens real)")
### BEGIN HIDDEN TESTS
from lib.rl import kl_penalized_rewards as _ref_rewards
_g = torch.Generator().manual_seed(13)
_m = response_mask([4, 0, 4, 2], 4)                  # full rows and an empty row
_logp = -torch.rand(4, 4, generator=_g, dtype=torch.float64)
_ref = -torch.rand(4, 4, generator=_g, dtype=torch.float64)
_s = torch.tensor([1.0, 3.0, -0.5, 0.25], dtype=torch.float64)
check_close(kl_penalized_rewards(_s, _logp, _ref, _m, 0.1), _ref_rewards(_s, _logp, _ref, _m, 0.1),
            "lengths [4, 0, 4, 2] of T=4 (full rows and an empty one), beta 0.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Generalised advantage estimation (6 points)
#
# `gae(rewards, values, mask, gamma=1.0, lam=0.95)`: `rewards, values, mask [B, T]`, the
# critic's value $V_t$ of every position. With $V_t$ taken as **0 past the last real
# token** (the episode ends there, whatever `values` holds on padding):
#
# $$\delta_t = r_t + \gamma V_{t+1} - V_t, \qquad A_t = \delta_t + \gamma\lambda A_{t+1},
#   \qquad A_t = 0 \text{ past the last real token}.$$
#
# Return `(advantages, returns)`, both `[B, T]`, with `returns = advantages + values` on
# real tokens; both are 0 on padding (whatever `rewards` and `values` hold there). Both
# `gamma` and `lam` may be anywhere in $[0, 1]$, ends included: $\lambda = 0$ gives the
# one-step TD error, and $\gamma = \lambda = 1$ gives the sum of the remaining rewards
# minus $V_t$ (Monte Carlo minus the baseline). A row whose tokens are all real ends at
# column `T - 1`: there is no $V_T$ to bootstrap from, it is 0. A row without real tokens
# gets zeros. No gradient needs to flow into either output.

# %% [solution] id=gae
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    ### BEGIN SOLUTION
    m = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype)
    r = torch.where(m, rewards, zero).detach()                           # [B, T]
    v = torch.where(m, values, zero).detach()                            # [B, T], 0 past the end
    advantages = torch.zeros_like(r)                                     # [B, T]
    next_value = torch.zeros_like(r[:, 0])                               # [B]
    next_advantage = torch.zeros_like(r[:, 0])                           # [B]
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]                   # [B]
        advantages[:, t] = torch.where(m[:, t], delta + gamma * lam * next_advantage, zero)
        next_value, next_advantage = v[:, t], advantages[:, t]
    returns = torch.where(m, advantages + v, zero)                       # [B, T]
    return advantages, returns
    ### END SOLUTION

# %% [test] id=test_gae points=2
_m = response_mask([2], 3)
_r = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
_v = torch.tensor([[0.5, 0.25, 0.0]], dtype=torch.float64)
# A_1 = 1 - 0.25 = 0.75; A_0 = (0 + 0.9 * 0.25 - 0.5) + 0.9 * 0.8 * 0.75 = 0.265
check_close(gae(_r, _v, _m, gamma=0.9, lam=0.8)[0], [[0.265, 0.75, 0.0]],
            "advantages, rewards [0, 1], values [0.5, 0.25], gamma 0.9, lam 0.8")
### BEGIN HIDDEN TESTS
from lib.rl import gae as _ref_gae
_g = torch.Generator().manual_seed(21)
_m = response_mask([5, 1, 3, 6], 7)
_r = torch.where(_m, torch.randn(4, 7, generator=_g, dtype=torch.float64), 0.0)
_v = torch.where(_m, torch.randn(4, 7, generator=_g, dtype=torch.float64), 0.0)
for _gamma, _lam in ((0.9, 0.8), (0.99, 0.95), (0.5, 0.3)):
    check_close(gae(_r, _v, _m, gamma=_gamma, lam=_lam)[0],
                _ref_gae(_r, _v, _m, gamma=_gamma, lam=_lam)[0],
                f"advantages, lengths [5, 1, 3, 6] of T=7, gamma {_gamma}, lam {_lam}")
### END HIDDEN TESTS

# %% [test] id=test_gae_returns points=1
_m = response_mask([2], 3)
_r = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
_v = torch.tensor([[0.5, 0.25, 0.0]], dtype=torch.float64)
check_close(gae(_r, _v, _m, gamma=0.9, lam=0.8)[1], [[0.765, 1.0, 0.0]],
            "returns = advantages + values, rewards [0, 1], values [0.5, 0.25], gamma 0.9, lam 0.8")
### BEGIN HIDDEN TESTS
from lib.rl import gae as _ref_gae
_g = torch.Generator().manual_seed(22)
_m = response_mask([3, 1, 5], 6)
_r = torch.where(_m, torch.randn(3, 6, generator=_g, dtype=torch.float64), 0.0)
_v = torch.where(_m, torch.randn(3, 6, generator=_g, dtype=torch.float64), 0.0)
check_close(gae(_r, _v, _m, gamma=0.95, lam=0.9)[1], _ref_gae(_r, _v, _m, gamma=0.95, lam=0.9)[1],
            "returns, lengths [3, 1, 5] of T=6, gamma 0.95, lam 0.9")
### END HIDDEN TESTS

# %% [test] id=test_gae_padding points=1
_m = response_mask([1], 3)
_r = torch.tensor([[1.0, 5.0, 5.0]], dtype=torch.float64)
_v = torch.tensor([[0.5, 9.0, 9.0]], dtype=torch.float64)
_adv, _ret = gae(_r, _v, _m, gamma=0.9, lam=0.8)
check_close(_adv, [[0.5, 0.0, 0.0]], "advantages of a 1-token row with garbage rewards and values on padding")
check_close(_ret, [[1.0, 0.0, 0.0]], "returns of a 1-token row with garbage rewards and values on padding")
### BEGIN HIDDEN TESTS
from lib.rl import gae as _ref_gae
_g = torch.Generator().manual_seed(23)
_m = response_mask([2, 4, 1], 5)
_r = torch.randn(3, 5, generator=_g, dtype=torch.float64)      # garbage under the padding too
_v = torch.randn(3, 5, generator=_g, dtype=torch.float64)
_adv, _ret = gae(_r, _v, _m, 0.9, 0.8)
check_close(_adv, _ref_gae(_r, _v, _m, gamma=0.9, lam=0.8)[0],
            "advantages, lengths [2, 4, 1] of T=5, values and rewards nonzero on padding")
check_close(torch.where(_m, 0.0, _ret), torch.zeros(3, 5),
            "returns on padding, lengths [2, 4, 1] of T=5")
### END HIDDEN TESTS

# %% [test] id=test_gae_full_and_empty_rows points=1
_m = torch.ones(1, 2, dtype=torch.bool)
_r = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
_v = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
# no V_2 to bootstrap from: A_1 = 1 - 0.5; A_0 = (0 + 0.9 * 0.5 - 0.5) + 0.9 * 0.8 * 0.5
check_close(gae(_r, _v, _m, gamma=0.9, lam=0.8)[0], [[0.31, 0.5]],
            "advantages of a row with no padding, rewards [0, 1], values [0.5, 0.5]")
### BEGIN HIDDEN TESTS
from lib.rl import gae as _ref_gae
_g = torch.Generator().manual_seed(24)
_m = response_mask([4, 4, 0, 2], 4)
_r = torch.where(_m, torch.randn(4, 4, generator=_g, dtype=torch.float64), 0.0)
_v = torch.where(_m, torch.randn(4, 4, generator=_g, dtype=torch.float64), 0.0)
_adv, _ret = gae(_r, _v, _m, lam=0.8, gamma=0.9)
check_close(_adv, _ref_gae(_r, _v, _m, gamma=0.9, lam=0.8)[0],
            "advantages, lengths [4, 4, 0, 2] of T=4 (two rows without padding, one empty)")
check_close(_ret[2], torch.zeros(4), "returns of the empty row, lengths [4, 4, 0, 2] of T=4")
### END HIDDEN TESTS

# %% [test] id=test_gae_monte_carlo points=1
_m = response_mask([3], 4)
_r = torch.tensor([[1.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
_v = torch.tensor([[0.5, 1.0, 1.5, 0.0]], dtype=torch.float64)
check_close(gae(_r, _v, _m, gamma=1.0, lam=1.0)[0], [[2.5, 1.0, 0.5, 0.0]],
            "gamma = lam = 1: remaining rewards minus V, rewards [1, 0, 2], values [0.5, 1, 1.5]")
### BEGIN HIDDEN TESTS
from lib.rl import gae as _ref_gae
_g = torch.Generator().manual_seed(25)
_m = response_mask([5, 1, 3], 6)
_r = torch.where(_m, torch.randn(3, 6, generator=_g, dtype=torch.float64), 0.0)
_v = torch.where(_m, torch.randn(3, 6, generator=_g, dtype=torch.float64), 0.0)
_togo = torch.where(_m, _r.flip(1).cumsum(1).flip(1), 0.0)    # remaining reward, gamma = 1
check_close(gae(_r, _v, _m, gamma=1.0, lam=1.0)[0], torch.where(_m, _togo - _v, 0.0),
            "advantages, gamma = lam = 1, lengths [5, 1, 3] of T=6")
for _gamma, _lam in ((1.0, 0.0), (0.0, 1.0)):
    check_close(gae(_r, _v, _m, gamma=_gamma, lam=_lam)[0],
                _ref_gae(_r, _v, _m, gamma=_gamma, lam=_lam)[0],
                f"advantages at the ends of [0, 1]: gamma {_gamma}, lam {_lam}")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The clipped value loss (4 points)
#
# `value_loss(values, old_values, returns, mask, clip_eps=0.2)`: `values [B, T]` are the
# critic's current predictions (the gradient flows into them), `old_values [B, T]` its
# predictions when the batch was sampled, `returns [B, T]` the targets from GAE. Return
# the scalar
#
# $$\mathcal{L}_V = \frac{1}{\sum_{b,t} m_{bt}} \sum_{b,t} m_{bt}\ \tfrac12
#   \max\Big(\big(v_{bt} - R_{bt}\big)^2,\ \big(v^{\text{old}}_{bt}
#   + \operatorname{clip}(v_{bt} - v^{\text{old}}_{bt}, -\epsilon, \epsilon) - R_{bt}\big)^2\Big),$$
#
# the mean over the **real tokens of the whole batch** ($\epsilon$ = `clip_eps`). The clip
# is around the *old* value: one update may not move a value by more than $\epsilon$ from
# what the critic predicted when the batch was sampled. At $|v - v^{\text{old}}| = \epsilon$
# exactly the two terms are equal.

# %% [solution] id=value_loss
def value_loss(values, old_values, returns, mask, clip_eps=0.2):
    ### BEGIN SOLUTION
    m = mask.bool()
    unclipped = (values - returns) ** 2                                  # [B, T]
    clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    clipped = (clipped_values - returns) ** 2                            # [B, T]
    per_token = 0.5 * torch.maximum(unclipped, clipped)                  # [B, T]
    kept = torch.where(m, per_token, torch.zeros((), dtype=per_token.dtype))
    return kept.sum() / m.sum().clamp(min=1)
    ### END SOLUTION

# %% [test] id=test_value_loss points=2
_m = response_mask([2, 1], 2)
_v = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
check_close(value_loss(_v, _v, torch.zeros(2, 2, dtype=torch.float64), _m),
            (0.5 + 0.0 + 2.0) / 3, "values == old_values, returns 0, lengths [2, 1]: mean over 3 real tokens")
### BEGIN HIDDEN TESTS
from lib.rl import value_loss as _ref_value_loss
_g = torch.Generator().manual_seed(31)
_m = response_mask([6, 2, 4, 1], 6)
_old = torch.randn(4, 6, generator=_g, dtype=torch.float64)
_v = _old + 0.4 * torch.randn(4, 6, generator=_g, dtype=torch.float64)
_ret = _old + torch.randn(4, 6, generator=_g, dtype=torch.float64)
check_close(value_loss(_v, _old, _ret, _m), _ref_value_loss(_v, _old, _ret, _m),
            "value loss, lengths [6, 2, 4, 1] of T=6, default clip_eps")
### END HIDDEN TESTS

# %% [test] id=test_value_clip points=1
_v = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
_loss = value_loss(_v, torch.zeros(1, 1, dtype=torch.float64),
                   torch.tensor([[1.0]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
_loss.backward()
# v moved 0.5 towards R = 1, beyond eps = 0.2: the clipped term (0.2 - 1)^2 is larger
check_close(_loss, 0.5 * 0.8 ** 2, "loss, old 0, v 0.5, R 1, clip_eps 0.2")
check_close(_v.grad, [[0.0]], "gradient, old 0, v 0.5, R 1 (clipped: no gradient)")
### BEGIN HIDDEN TESTS
# (old, v, R): moved away from R beyond eps (unclipped term is larger, full gradient),
# moved towards R beyond eps on the negative side (clipped), inside the range
for _o, _x, _R in ((0.0, -0.5, 1.0), (0.0, -0.5, -1.0), (1.0, 1.1, 3.0)):
    _v = torch.tensor([[_x]], dtype=torch.float64, requires_grad=True)
    _loss = value_loss(_v, torch.tensor([[_o]], dtype=torch.float64),
                       torch.tensor([[_R]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
    _loss.sum().backward()
    _clipped = _o + min(max(_x - _o, -0.2), 0.2)
    _use_clip = (_clipped - _R) ** 2 > (_x - _R) ** 2
    check_close(_loss, 0.5 * max((_x - _R) ** 2, (_clipped - _R) ** 2),
                f"loss, old {_o}, v {_x}, R {_R}, clip_eps 0.2")
    check_close(_v.grad, [[0.0 if _use_clip else _x - _R]],
                f"gradient, old {_o}, v {_x}, R {_R}, clip_eps 0.2")
### END HIDDEN TESTS

# %% [test] id=test_value_clip_boundary points=1
_one = torch.ones(1, 1, dtype=torch.bool)
check_close(value_loss(torch.tensor([[0.5]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64),
                       torch.tensor([[1.0]], dtype=torch.float64), _one, clip_eps=0.5),
            0.5 * 0.5 ** 2, "old 0, v 0.5, R 1, clip_eps 0.5: |v - old| == eps, nothing clipped")
### BEGIN HIDDEN TESTS
from lib.rl import value_loss as _ref_value_loss
# |v - old| == clip_eps exactly (every number below is exact in binary), both signs
for _o, _x, _R, _eps in ((0.5, 0.75, 2.0, 0.25), (0.5, 0.25, 2.0, 0.25), (0.0, -0.5, 1.0, 0.5),
                         (1.0, 1.125, -1.0, 0.125)):
    _args = (torch.tensor([[_x]], dtype=torch.float64), torch.tensor([[_o]], dtype=torch.float64),
             torch.tensor([[_R]], dtype=torch.float64), _one)
    check_close(value_loss(*_args, clip_eps=_eps), 0.5 * (_x - _R) ** 2,
                f"old {_o}, v {_x}, R {_R}, clip_eps {_eps} (|v - old| == eps)")
    check_close(value_loss(*_args, clip_eps=_eps), _ref_value_loss(*_args, clip_eps=_eps),
                f"against the reference: old {_o}, v {_x}, R {_R}, clip_eps {_eps}")
### END HIDDEN TESTS
