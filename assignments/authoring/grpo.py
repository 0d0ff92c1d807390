# %% [markdown]
# # Assignment 10: GRPO advantages and the clipped loss
#
# You will implement the three pieces of a GRPO update: group-normalised advantages,
# PPO's clipped per-token loss computed from log-probabilities, and the three ways GRPO
# trainers aggregate a per-token loss over a padded batch; then the cheapest check that
# the trainer scores the tokens the sampler drew. The chapter
# [Policy gradients, PPO and GRPO](../../../chapters/part5_rl/policy_gradients_ppo_grpo.ipynb)
# derives each formula, and [Debugging a broken GRPO loop](../../../chapters/part5_rl/debugging_grpo.ipynb)
# shows what each classic mistake does.
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
# - Points: 14 in all.

# %% [setup]
import math

import torch

torch.manual_seed(0)


def check_close(actual, expected, tol=1e-9, what="result"):
    """Assert two tensors (or numbers) have the same shape and agree to ``tol``.

    ``what`` names the quantity and the input in the failure message."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, \
        f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values: {actual}"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol, f"{what}: max error {err:.3e} > {tol:.0e}; got {actual}, expected {expected}"

# %% [markdown]
# ## 1. Group-normalised advantages (5 points)
#
# `group_advantages(rewards, group_size, eps=1e-4)`: `rewards [N]` holds the rewards of
# `group_size` completions for each prompt, the completions of one prompt contiguous
# (`N = prompts * group_size`). Return `[N]`:
#
# $$A_i = \frac{r_i - \operatorname{mean}(r_{g(i)})}{\operatorname{std}(r_{g(i)}) + \epsilon},$$
#
# where $g(i)$ is the group of completion $i$ and the std is **Bessel-corrected** (divide
# by `group_size - 1`). Statistics are per group, never over the whole batch. A group
# whose rewards are all equal must get advantages exactly 0, not NaN. `eps` is added to
# the std itself (not to the variance), and the `eps` the caller passes is the one used.
# `group_size` must be at least 2 (the Bessel std of a single reward is undefined):
# `group_size < 2` raises `ValueError`; `group_size = 2` is allowed.

# %% [solution] id=group_advantages
def group_advantages(rewards, group_size, eps=1e-4):
    ### BEGIN SOLUTION
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a Bessel std needs two rewards), got {group_size}")
    grouped = rewards.view(-1, group_size)                                # [P, G]
    mean = grouped.mean(dim=1, keepdim=True)                              # [P, 1]
    std = grouped.std(dim=1, keepdim=True)                                # [P, 1], Bessel
    return ((grouped - mean) / (std + eps)).view(-1)                      # [N]
    ### END SOLUTION

# %% [test] id=test_group_advantages points=2
_adv = group_advantages(torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64), 2)
check_close(_adv.view(2, 2).sum(1), [0.0, 0.0], what="per-group sums of the advantages of [0, 1, 2, 3], group_size 2")
### BEGIN HIDDEN TESTS
from lib.rl import group_advantages as _ref_adv
# two groups with very different means: per-group statistics, Bessel std, eps
_r = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 6.0, 9.0, 4.0], dtype=torch.float64)
check_close(group_advantages(_r, 4), _ref_adv(_r, 4), what=f"advantages of {_r.tolist()}, group_size 4")
_g = torch.Generator().manual_seed(3)
_r = torch.rand(12, generator=_g, dtype=torch.float64) + torch.arange(12.0, dtype=torch.float64)
check_close(group_advantages(_r, 3), _ref_adv(_r, 3), what="advantages of 12 random rewards, group_size 3")
### END HIDDEN TESTS

# %% [test] id=test_zero_variance_group points=1
_adv = group_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64), 3)
assert torch.isfinite(_adv).all(), f"non-finite advantages {_adv}"
### BEGIN HIDDEN TESTS
check_close(_adv[:3], [0.0, 0.0, 0.0], what="advantages of the equal-reward group [1, 1, 1]")
_adv = group_advantages(torch.zeros(4, dtype=torch.float64), 2)
check_close(_adv, [0.0, 0.0, 0.0, 0.0], what="advantages of [0, 0, 0, 0], group_size 2")
### END HIDDEN TESTS

# %% [test] id=test_group_size_bounds points=1
try:
    group_advantages(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), 1)
except ValueError as _err:
    print("ValueError, as required:", _err)
else:
    raise AssertionError("group_size=1 must raise ValueError (a Bessel std needs two rewards)")
### BEGIN HIDDEN TESTS
from lib.rl import group_advantages as _ref_adv
# the smallest allowed group, G = 2, and a single group holding the whole batch
_r = torch.tensor([0.0, 1.0, 3.0, 3.0, -2.0, 5.0], dtype=torch.float64)
check_close(group_advantages(_r, 2), _ref_adv(_r, 2), what=f"advantages of {_r.tolist()}, group_size 2")
check_close(group_advantages(_r, 6), _ref_adv(_r, 6), what=f"advantages of {_r.tolist()}, group_size 6")
for _bad in (0, 1):
    try:
        group_advantages(torch.zeros(4, dtype=torch.float64), _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"group_size={_bad} must raise ValueError")
### END HIDDEN TESTS

# %% [test] id=test_eps_as_stated points=1
_adv = group_advantages(torch.tensor([0.0, 2.0], dtype=torch.float64), 2, eps=1.0)
# std of [0, 2] is sqrt(2); eps = 1 is added to it: A = -+1 / (sqrt(2) + 1)
check_close(_adv, torch.tensor([-1.0, 1.0], dtype=torch.float64) / (math.sqrt(2.0) + 1.0),
            what="advantages of [0, 2], group_size 2, eps 1 (added to the std)")
### BEGIN HIDDEN TESTS
check_close(group_advantages(torch.tensor([0.0, 1.0], dtype=torch.float64), 2, eps=0.5),
            torch.tensor([-0.5, 0.5], dtype=torch.float64) / (math.sqrt(0.5) + 0.5),
            what="advantages of [0, 1], group_size 2, eps 0.5")
check_close(group_advantages(torch.tensor([3.0, 3.0, 1.0, 2.0], dtype=torch.float64), 2, eps=0.25),
            torch.tensor([0.0, 0.0, -0.5, 0.5], dtype=torch.float64) / torch.tensor(
                [0.25, 0.25, math.sqrt(0.5) + 0.25, math.sqrt(0.5) + 0.25], dtype=torch.float64),
            what="advantages of [3, 3, 1, 2], group_size 2, eps 0.25")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The clipped per-token loss (4 points)
#
# `clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2)`: `logp [B, T]` are the
# current policy's log-probs of the sampled tokens (with gradient), `old_logp [B, T]` the
# log-probs recorded by the policy that sampled them (constants), `advantages [B]` one
# per sequence, shared by all its tokens. Return the per-token loss `[B, T]`:
#
# $$\ell_{bt} = -\min\big(\rho_{bt} A_b,\ \operatorname{clip}(\rho_{bt}, 1-\epsilon, 1+\epsilon) A_b\big),
# \qquad \rho_{bt} = \exp\big(\log\pi_\theta(y_{bt}) - \log\pi_{\text{old}}(y_{bt})\big),$$
#
# where the two log-probs are the entries of `logp` and `old_logp`. Any `B >= 1` and
# `T >= 1` are allowed; a batch of one-token completions has `T = 1`, and the result is
# still `[B, T]`.
#
# Compute the ratio in log space, and use the `old_logp` you are given: replacing it by
# anything computed from `logp` makes every ratio 1 and silently disables the clip.

# %% [solution] id=clipped_token_loss
def clipped_token_loss(logp, old_logp, advantages, clip_eps=0.2):
    ### BEGIN SOLUTION
    adv = advantages.unsqueeze(-1)                                        # [B, 1]
    ratio = torch.exp(logp - old_logp)                                    # [B, T]
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)          # [B, T]
    return -torch.minimum(ratio * adv, clipped * adv)                     # [B, T]
    ### END SOLUTION

# %% [test] id=test_clipped_loss points=2
_lp = torch.zeros(2, 3, dtype=torch.float64)
check_close(clipped_token_loss(_lp, _lp, torch.tensor([1.0, -2.0], dtype=torch.float64)),
            [[-1.0, -1.0, -1.0], [2.0, 2.0, 2.0]], what="loss at ratio 1, advantages [1, -2]")
### BEGIN HIDDEN TESTS
from lib.rl import clipped_surrogate as _ref_clip
_g = torch.Generator().manual_seed(4)
_old = -3 * torch.rand(4, 6, generator=_g, dtype=torch.float64)
_new = _old + 0.5 * torch.randn(4, 6, generator=_g, dtype=torch.float64)
_a = torch.randn(4, generator=_g, dtype=torch.float64)
for _eps in (0.1, 0.2, 0.3):
    check_close(clipped_token_loss(_new, _old, _a, _eps), _ref_clip(_new, _old, _a, _eps),
                what=f"loss of a random [4, 6] batch, clip_eps {_eps}")
# long sequences have tiny probabilities: the ratio must come from a log-prob difference
check_close(clipped_token_loss(torch.tensor([[-800.0]], dtype=torch.float64),
                               torch.tensor([[-800.1]], dtype=torch.float64),
                               torch.tensor([1.0], dtype=torch.float64)),
            [[-math.exp(0.1)]], what="loss at log-probs -800 and -800.1, advantage 1")
### END HIDDEN TESTS

# %% [test] id=test_clip_sides points=1
_lp = torch.full((1, 1), math.log(1.5), dtype=torch.float64, requires_grad=True)
clipped_token_loss(_lp, torch.zeros(1, 1, dtype=torch.float64),
                   torch.tensor([1.0], dtype=torch.float64)).sum().backward()
check_close(_lp.grad, [[0.0]], what="gradient at ratio 1.5, advantage 1")   # clipped, no gradient
### BEGIN HIDDEN TESTS
# (advantage, ratio, clipped?) for both signs on both sides of the trust region
for _a, _rho, _clipped in ((1.0, 0.5, False), (-1.0, 0.5, True), (-1.0, 1.5, False)):
    _lp = torch.full((1, 1), math.log(_rho), dtype=torch.float64, requires_grad=True)
    _loss = clipped_token_loss(_lp, torch.zeros(1, 1, dtype=torch.float64),
                               torch.tensor([_a], dtype=torch.float64))
    _loss.sum().backward()
    _want_loss = -min(max(_rho, 0.8), 1.2) * _a if _clipped else -_rho * _a
    check_close(_loss, [[_want_loss]], what=f"loss at ratio {_rho}, advantage {_a}")
    check_close(_lp.grad, [[0.0 if _clipped else -_a * _rho]], what=f"gradient at ratio {_rho}, advantage {_a}")
### END HIDDEN TESTS

# %% [test] id=test_length_one points=1
_old = torch.log(torch.tensor([[0.5], [0.25], [0.5]], dtype=torch.float64))    # [B=3, T=1]
_new = torch.log(torch.tensor([[0.55], [0.25], [0.25]], dtype=torch.float64))
_loss = clipped_token_loss(_new, _old, torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64))
# ratios 1.1, 1, 0.5 (not clipped from below for A > 0): loss -A * ratio, shape [3, 1]
check_close(_loss, [[-1.1], [1.0], [-1.0]],
            what="loss of one-token completions [B=3, T=1], ratios [1.1, 1, 0.5], advantages [1, -1, 2]")
### BEGIN HIDDEN TESTS
from lib.rl import clipped_surrogate as _ref_clip
_g = torch.Generator().manual_seed(6)
for _b in (1, 2, 5):
    _old = -2 * torch.rand(_b, 1, generator=_g, dtype=torch.float64)
    _new = _old + 0.4 * torch.randn(_b, 1, generator=_g, dtype=torch.float64)
    _a = torch.randn(_b, generator=_g, dtype=torch.float64)
    check_close(clipped_token_loss(_new, _old, _a), _ref_clip(_new, _old, _a, 0.2),
                what=f"loss of one-token completions [B={_b}, T=1], clip_eps 0.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Aggregating over a padded batch (3 points)
#
# `aggregate_loss(per_token, mask, loss_type="grpo")`: `per_token [B, T]` is a per-token
# loss, `mask [B, T]` (bool) is True on real completion tokens and False on padding.
# Padding entries of `per_token` may hold **any** value (even huge ones) and must not
# affect the result. With $m$ the mask as 0/1:
#
# - `"grpo"`: $\frac{1}{B}\sum_b \frac{\sum_t \ell_{bt} m_{bt}}{\max(1, \sum_t m_{bt})}$ (a row with an empty mask contributes 0);
# - `"bnpo"`: $\frac{\sum_{b,t} \ell_{bt} m_{bt}}{\max(1, \sum_{b,t} m_{bt})}$;
# - `"dr_grpo"`: $\frac{\sum_{b,t} \ell_{bt} m_{bt}}{B \cdot T}$.
#
# Any other `loss_type` raises `ValueError`.

# %% [solution] id=aggregate_loss
def aggregate_loss(per_token, mask, loss_type="grpo"):
    ### BEGIN SOLUTION
    m = mask.bool()
    kept = torch.where(m, per_token, torch.zeros_like(per_token))        # [B, T]
    if loss_type == "grpo":
        per_seq = kept.sum(dim=1) / m.sum(dim=1).clamp(min=1)             # [B]
        return per_seq.mean()
    if loss_type == "bnpo":
        return kept.sum() / m.sum().clamp(min=1)
    if loss_type == "dr_grpo":
        return kept.sum() / (per_token.shape[0] * per_token.shape[1])
    raise ValueError(f"loss_type must be 'grpo', 'bnpo' or 'dr_grpo', got {loss_type!r}")
    ### END SOLUTION

# %% [test] id=test_aggregation points=2
_l = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
_m = torch.tensor([[True, True, True], [True, False, False]])
check_close(aggregate_loss(_l, _m, "grpo"), (2.0 + 4.0) / 2, what="grpo, lengths [3, 1]")
### BEGIN HIDDEN TESTS
from lib.rl import masked_mean as _ref_masked_mean
check_close(aggregate_loss(_l, _m, "bnpo"), 10.0 / 4, what="bnpo, lengths [3, 1]")
check_close(aggregate_loss(_l, _m, "dr_grpo"), 10.0 / 6, what="dr_grpo, lengths [3, 1] of T=3")
_g = torch.Generator().manual_seed(5)
_l = torch.randn(4, 7, generator=_g, dtype=torch.float64)
_m = torch.arange(7)[None, :] < torch.tensor([[7], [3], [1], [5]])
check_close(aggregate_loss(_l, _m, "grpo"), _ref_masked_mean(_l, _m, dim=1).mean(),
            what="grpo, lengths [7, 3, 1, 5] of T=7")
check_close(aggregate_loss(_l, _m, "bnpo"), _ref_masked_mean(_l, _m), what="bnpo, lengths [7, 3, 1, 5] of T=7")
check_close(aggregate_loss(_l, _m, "dr_grpo"), (_l * _m).sum() / 28, what="dr_grpo, lengths [7, 3, 1, 5] of T=7")
try:
    aggregate_loss(_l, _m, "sum")
except ValueError:
    pass
else:
    raise AssertionError("an unknown loss_type must raise ValueError")
### END HIDDEN TESTS

# %% [test] id=test_padding_excluded points=1
_l = torch.tensor([[1.0, 1.0e6], [2.0, 2.0]], dtype=torch.float64)
_m = torch.tensor([[True, False], [True, True]])
check_close(aggregate_loss(_l, _m, "bnpo"), (1.0 + 2.0 + 2.0) / 3, what="bnpo, 1e6 under the padding")
### BEGIN HIDDEN TESTS
_l = torch.tensor([[1.0, math.inf], [2.0, math.nan], [5.0, 5.0]], dtype=torch.float64)
_m = torch.tensor([[True, False], [True, False], [False, False]])
for _kind, _want in (("grpo", (1.0 + 2.0 + 0.0) / 3), ("bnpo", 3.0 / 2), ("dr_grpo", 3.0 / 6)):
    check_close(aggregate_loss(_l, _m, _kind), _want, what=f"{_kind}, inf and nan under the padding, an empty row")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The first-step ratio check (2 points)
#
# Before the first optimiser step of a batch, the trainer's policy *is* the policy that
# sampled it, so if the trainer scores exactly the tokens the sampler drew, with the
# same distribution, every ratio on a real token is exactly 1. Any mismatch (a stale
# sampler, a forgotten temperature, or a completion decoded to text and re-encoded before
# scoring, so that the trainer scores *other tokens*) breaks the equality on the first
# batch. See [Debugging a broken GRPO loop](../../../chapters/part5_rl/debugging_grpo.ipynb).
#
# `first_step_ratio_ok(logp, old_logp, mask)`: `logp, old_logp [B, T]` (the trainer's and
# the sampler's log-probs, position by position), `mask [B, T]` bool. Return `True` if
# the ratio $\exp(\text{logp} - \text{old\_logp})$ is **exactly** 1 on every real token
# (no tolerance), `False` otherwise. Padding entries may hold any value (even `nan`) and
# must not affect the answer. A batch without real tokens passes.

# %% [solution] id=first_step_ratio_ok
def first_step_ratio_ok(logp, old_logp, mask):
    ### BEGIN SOLUTION
    m = mask.bool()
    return bool(torch.equal(torch.exp(logp[m] - old_logp[m]), torch.ones_like(logp[m])))
    ### END SOLUTION

# %% [test] id=test_first_step_check points=2
_m = torch.tensor([[True, True, False]])
_old = torch.log(torch.tensor([[0.30, 0.50, 1.0]], dtype=torch.float64))
_pad = torch.tensor([[0.0, 0.0, math.nan]], dtype=torch.float64)
assert first_step_ratio_ok(_old + _pad, _old, _m), \
    "same log-probs on the 2 real tokens, nan on padding: expected True, got False"
# The sampler drew "a" then "bc"; decoded to "abc" and re-encoded, the completion becomes
# "ab", "c": the trainer scores other tokens, whose log-probs happen to be close.
_new = torch.log(torch.tensor([[0.27, 0.55, 1.0]], dtype=torch.float64))
assert not first_step_ratio_ok(_new, _old, _m), \
    "re-encoded completion, ratios 0.9 and 1.1 on real tokens: expected False, got True"
### BEGIN HIDDEN TESTS
# one real token off by one part in 10^12 (any tolerance would let it through)
_m = torch.tensor([[True, True], [True, False]])
_old = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], dtype=torch.float64)
_off = _old.clone()
_off[1, 0] = -0.5 + 1e-12
assert not first_step_ratio_ok(_off, _old, _m), \
    "ratio exp(1e-12) on one real token: expected False (exactly 1 is required), got True"
# a mismatch under padding only, and a batch without real tokens
_pad_only = _old.clone()
_pad_only[1, 1] = 3.0
assert first_step_ratio_ok(_pad_only, _old, _m), \
    "log-probs differ only under padding: expected True, got False"
assert first_step_ratio_ok(_pad_only, _old, torch.zeros(2, 2, dtype=torch.bool)), \
    "no real token at all: expected True, got False"
### END HIDDEN TESTS
