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
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
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
def make():
    return {"rewards": torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64), "group_size": 2}


def run(rewards, group_size):
    return {"adv": group_advantages(rewards, group_size)}


def check(inputs, outputs):
    check_close(outputs["adv"].view(2, 2).sum(1), [0.0, 0.0],
                what="per-group sums of the advantages of [0, 1, 2, 3], group_size 2")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # two groups with very different means: per-group statistics, Bessel std, eps
    g = torch.Generator().manual_seed(3)
    return {"cases": [(torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 6.0, 9.0, 4.0], dtype=torch.float64), 4),
                      (torch.rand(12, generator=g, dtype=torch.float64) + torch.arange(12.0, dtype=torch.float64), 3)]}


def run_hidden(cases):
    return {"adv": [group_advantages(rewards, group_size) for rewards, group_size in cases]}


def check_hidden(inputs, outputs):
    from lib.rl import group_advantages as ref_adv

    (two_groups, size_4), (random, size_3) = inputs["cases"]
    two_groups_adv, random_adv = outputs["adv"]
    check_close(two_groups_adv, ref_adv(two_groups, size_4), what=f"advantages of {two_groups.tolist()}, group_size 4")
    check_close(random_adv, ref_adv(random, size_3), what="advantages of 12 random rewards, group_size 3")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_zero_variance_group points=1
def make():
    return {"rewards": torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64), "group_size": 3}


def run(rewards, group_size):
    return {"adv": group_advantages(rewards, group_size)}


def check(inputs, outputs):
    adv = outputs["adv"]
    assert torch.isfinite(adv).all(), f"non-finite advantages {adv}"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"rewards": torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64), "group_size": 3,
            "zeros": torch.zeros(4, dtype=torch.float64), "zeros_group_size": 2}


def run_hidden(rewards, group_size, zeros, zeros_group_size):
    return {"adv": group_advantages(rewards, group_size), "zeros_adv": group_advantages(zeros, zeros_group_size)}


def check_hidden(inputs, outputs):
    check_close(outputs["adv"][:3], [0.0, 0.0, 0.0], what="advantages of the equal-reward group [1, 1, 1]")
    check_close(outputs["zeros_adv"], [0.0, 0.0, 0.0, 0.0], what="advantages of [0, 0, 0, 0], group_size 2")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_group_size_bounds points=1
def make():
    return {"rewards": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), "group_size": 1}


def run(rewards, group_size):
    try:
        group_advantages(rewards, group_size)
    except ValueError as err:
        return {"raised": type(err).__name__, "message": str(err)}
    return {"raised": None, "message": ""}


def check(inputs, outputs):
    if outputs["raised"] is None:
        raise AssertionError("group_size=1 must raise ValueError (a Bessel std needs two rewards)")
    print("ValueError, as required:", outputs["message"])


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # the smallest allowed group, G = 2, and a single group holding the whole batch
    return {"rewards": torch.tensor([0.0, 1.0, 3.0, 3.0, -2.0, 5.0], dtype=torch.float64), "sizes": [2, 6],
            "zeros": torch.zeros(4, dtype=torch.float64), "bad_sizes": [0, 1]}


def run_hidden(rewards, sizes, zeros, bad_sizes):
    adv = [group_advantages(rewards, size) for size in sizes]
    raised = []
    for bad in bad_sizes:
        try:
            group_advantages(zeros, bad)
        except ValueError as err:
            raised.append(type(err).__name__)
        else:
            raised.append(None)
    return {"adv": adv, "raised": raised}


def check_hidden(inputs, outputs):
    from lib.rl import group_advantages as ref_adv

    rewards = inputs["rewards"]
    for size, adv in zip(inputs["sizes"], outputs["adv"]):
        check_close(adv, ref_adv(rewards, size), what=f"advantages of {rewards.tolist()}, group_size {size}")
    for bad, raised in zip(inputs["bad_sizes"], outputs["raised"]):
        assert raised is not None, f"group_size={bad} must raise ValueError"


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_eps_as_stated points=1
def make():
    return {"rewards": torch.tensor([0.0, 2.0], dtype=torch.float64), "group_size": 2, "eps": 1.0}


def run(rewards, group_size, eps):
    return {"adv": group_advantages(rewards, group_size, eps=eps)}


def check(inputs, outputs):
    # std of [0, 2] is sqrt(2); eps = 1 is added to it: A = -+1 / (sqrt(2) + 1)
    check_close(outputs["adv"], torch.tensor([-1.0, 1.0], dtype=torch.float64) / (math.sqrt(2.0) + 1.0),
                what="advantages of [0, 2], group_size 2, eps 1 (added to the std)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"cases": [(torch.tensor([0.0, 1.0], dtype=torch.float64), 2, 0.5),
                      (torch.tensor([3.0, 3.0, 1.0, 2.0], dtype=torch.float64), 2, 0.25)]}


def run_hidden(cases):
    return {"adv": [group_advantages(rewards, group_size, eps=eps) for rewards, group_size, eps in cases]}


def check_hidden(inputs, outputs):
    pair, two_groups = outputs["adv"]
    check_close(pair, torch.tensor([-0.5, 0.5], dtype=torch.float64) / (math.sqrt(0.5) + 0.5),
                what="advantages of [0, 1], group_size 2, eps 0.5")
    check_close(two_groups, torch.tensor([0.0, 0.0, -0.5, 0.5], dtype=torch.float64) / torch.tensor(
                    [0.25, 0.25, math.sqrt(0.5) + 0.25, math.sqrt(0.5) + 0.25], dtype=torch.float64),
                what="advantages of [3, 3, 1, 2], group_size 2, eps 0.25")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"logp": torch.zeros(2, 3, dtype=torch.float64), "old_logp": torch.zeros(2, 3, dtype=torch.float64),
            "advantages": torch.tensor([1.0, -2.0], dtype=torch.float64)}


def run(logp, old_logp, advantages):
    return {"loss": clipped_token_loss(logp, old_logp, advantages)}


def check(inputs, outputs):
    check_close(outputs["loss"], [[-1.0, -1.0, -1.0], [2.0, 2.0, 2.0]], what="loss at ratio 1, advantages [1, -2]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(4)
    old = -3 * torch.rand(4, 6, generator=g, dtype=torch.float64)
    new = old + 0.5 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    advantages = torch.randn(4, generator=g, dtype=torch.float64)
    # long sequences have tiny probabilities: the ratio must come from a log-prob difference
    tiny = (torch.tensor([[-800.0]], dtype=torch.float64), torch.tensor([[-800.1]], dtype=torch.float64),
            torch.tensor([1.0], dtype=torch.float64))
    return {"new": new, "old": old, "advantages": advantages, "epsilons": [0.1, 0.2, 0.3], "tiny": tiny}


def run_hidden(new, old, advantages, epsilons, tiny):
    return {"loss": [clipped_token_loss(new, old, advantages, eps) for eps in epsilons],
            "tiny": clipped_token_loss(*tiny)}


def check_hidden(inputs, outputs):
    from lib.rl import clipped_surrogate as ref_clip

    new, old, advantages = inputs["new"], inputs["old"], inputs["advantages"]
    for eps, loss in zip(inputs["epsilons"], outputs["loss"]):
        check_close(loss, ref_clip(new, old, advantages, eps), what=f"loss of a random [4, 6] batch, clip_eps {eps}")
    check_close(outputs["tiny"], [[-math.exp(0.1)]], what="loss at log-probs -800 and -800.1, advantage 1")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_clip_sides points=1
def make():
    return {"logp": torch.full((1, 1), math.log(1.5), dtype=torch.float64, requires_grad=True),
            "old_logp": torch.zeros(1, 1, dtype=torch.float64),
            "advantages": torch.tensor([1.0], dtype=torch.float64)}


def run(logp, old_logp, advantages):
    clipped_token_loss(logp, old_logp, advantages).sum().backward()
    return {"grad": logp.grad}


def check(inputs, outputs):
    check_close(outputs["grad"], [[0.0]], what="gradient at ratio 1.5, advantage 1")   # clipped, no gradient


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # advantages and ratios for both signs on both sides of the trust region
    cases = ((1.0, 0.5), (-1.0, 0.5), (-1.0, 1.5))
    return {"logps": [torch.full((1, 1), math.log(rho), dtype=torch.float64, requires_grad=True) for _, rho in cases],
            "old_logp": torch.zeros(1, 1, dtype=torch.float64),
            "advantages": [torch.tensor([a], dtype=torch.float64) for a, _ in cases]}


def run_hidden(logps, old_logp, advantages):
    losses, grads = [], []
    for logp, adv in zip(logps, advantages):
        loss = clipped_token_loss(logp, old_logp, adv)
        loss.sum().backward()
        losses.append(loss)
        grads.append(logp.grad)
    return {"loss": losses, "grad": grads}


def check_hidden(inputs, outputs):
    # (advantage, ratio, clipped?) for both signs on both sides of the trust region
    cases = ((1.0, 0.5, False), (-1.0, 0.5, True), (-1.0, 1.5, False))
    for (a, rho, clipped), loss, grad in zip(cases, outputs["loss"], outputs["grad"]):
        want_loss = -min(max(rho, 0.8), 1.2) * a if clipped else -rho * a
        check_close(loss, [[want_loss]], what=f"loss at ratio {rho}, advantage {a}")
        check_close(grad, [[0.0 if clipped else -a * rho]], what=f"gradient at ratio {rho}, advantage {a}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_length_one points=1
def make():
    return {"logp": torch.log(torch.tensor([[0.55], [0.25], [0.25]], dtype=torch.float64)),   # [B=3, T=1]
            "old_logp": torch.log(torch.tensor([[0.5], [0.25], [0.5]], dtype=torch.float64)),
            "advantages": torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)}


def run(logp, old_logp, advantages):
    return {"loss": clipped_token_loss(logp, old_logp, advantages)}


def check(inputs, outputs):
    # ratios 1.1, 1, 0.5 (not clipped from below for A > 0): loss -A * ratio, shape [3, 1]
    check_close(outputs["loss"], [[-1.1], [1.0], [-1.0]],
                what="loss of one-token completions [B=3, T=1], ratios [1.1, 1, 0.5], advantages [1, -1, 2]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(6)
    cases = []
    for b in (1, 2, 5):
        old = -2 * torch.rand(b, 1, generator=g, dtype=torch.float64)
        new = old + 0.4 * torch.randn(b, 1, generator=g, dtype=torch.float64)
        cases.append((new, old, torch.randn(b, generator=g, dtype=torch.float64)))
    return {"cases": cases}


def run_hidden(cases):
    return {"loss": [clipped_token_loss(new, old, advantages) for new, old, advantages in cases]}


def check_hidden(inputs, outputs):
    from lib.rl import clipped_surrogate as ref_clip

    for (new, old, advantages), loss in zip(inputs["cases"], outputs["loss"]):
        check_close(loss, ref_clip(new, old, advantages, 0.2),
                    what=f"loss of one-token completions [B={new.shape[0]}, T=1], clip_eps 0.2")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"per_token": torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64),
            "mask": torch.tensor([[True, True, True], [True, False, False]])}


def run(per_token, mask):
    return {"grpo": aggregate_loss(per_token, mask, "grpo")}


def check(inputs, outputs):
    check_close(outputs["grpo"], (2.0 + 4.0) / 2, what="grpo, lengths [3, 1]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(5)
    return {"per_token": torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64),
            "mask": torch.tensor([[True, True, True], [True, False, False]]),
            "random": torch.randn(4, 7, generator=g, dtype=torch.float64),
            "random_mask": torch.arange(7)[None, :] < torch.tensor([[7], [3], [1], [5]])}


def run_hidden(per_token, mask, random, random_mask):
    small = {kind: aggregate_loss(per_token, mask, kind) for kind in ("bnpo", "dr_grpo")}
    random_losses = {kind: aggregate_loss(random, random_mask, kind) for kind in ("grpo", "bnpo", "dr_grpo")}
    try:
        aggregate_loss(random, random_mask, "sum")
    except ValueError as err:
        raised = type(err).__name__
    else:
        raised = None
    return {"small": small, "random": random_losses, "raised": raised}


def check_hidden(inputs, outputs):
    from lib.rl import masked_mean as ref_masked_mean

    small, random = outputs["small"], outputs["random"]
    check_close(small["bnpo"], 10.0 / 4, what="bnpo, lengths [3, 1]")
    check_close(small["dr_grpo"], 10.0 / 6, what="dr_grpo, lengths [3, 1] of T=3")
    l, m = inputs["random"], inputs["random_mask"]
    check_close(random["grpo"], ref_masked_mean(l, m, dim=1).mean(), what="grpo, lengths [7, 3, 1, 5] of T=7")
    check_close(random["bnpo"], ref_masked_mean(l, m), what="bnpo, lengths [7, 3, 1, 5] of T=7")
    check_close(random["dr_grpo"], (l * m).sum() / 28, what="dr_grpo, lengths [7, 3, 1, 5] of T=7")
    assert outputs["raised"] is not None, "an unknown loss_type must raise ValueError"


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_padding_excluded points=1
def make():
    return {"per_token": torch.tensor([[1.0, 1.0e6], [2.0, 2.0]], dtype=torch.float64),
            "mask": torch.tensor([[True, False], [True, True]])}


def run(per_token, mask):
    return {"bnpo": aggregate_loss(per_token, mask, "bnpo")}


def check(inputs, outputs):
    check_close(outputs["bnpo"], (1.0 + 2.0 + 2.0) / 3, what="bnpo, 1e6 under the padding")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"per_token": torch.tensor([[1.0, math.inf], [2.0, math.nan], [5.0, 5.0]], dtype=torch.float64),
            "mask": torch.tensor([[True, False], [True, False], [False, False]]),
            "kinds": ["grpo", "bnpo", "dr_grpo"]}


def run_hidden(per_token, mask, kinds):
    return {"loss": [aggregate_loss(per_token, mask, kind) for kind in kinds]}


def check_hidden(inputs, outputs):
    wants = {"grpo": (1.0 + 2.0 + 0.0) / 3, "bnpo": 3.0 / 2, "dr_grpo": 3.0 / 6}
    for kind, loss in zip(inputs["kinds"], outputs["loss"]):
        check_close(loss, wants[kind], what=f"{kind}, inf and nan under the padding, an empty row")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    old = torch.log(torch.tensor([[0.30, 0.50, 1.0]], dtype=torch.float64))
    pad = torch.tensor([[0.0, 0.0, math.nan]], dtype=torch.float64)
    # The sampler drew "a" then "bc"; decoded to "abc" and re-encoded, the completion becomes
    # "ab", "c": the trainer scores other tokens, whose log-probs happen to be close.
    reencoded = torch.log(torch.tensor([[0.27, 0.55, 1.0]], dtype=torch.float64))
    return {"same": old + pad, "reencoded": reencoded, "old_logp": old, "mask": torch.tensor([[True, True, False]])}


def run(same, reencoded, old_logp, mask):
    return {"same": first_step_ratio_ok(same, old_logp, mask), "reencoded": first_step_ratio_ok(reencoded, old_logp, mask)}


def check(inputs, outputs):
    assert outputs["same"], "same log-probs on the 2 real tokens, nan on padding: expected True, got False"
    assert not outputs["reencoded"], "re-encoded completion, ratios 0.9 and 1.1 on real tokens: expected False, got True"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    old = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], dtype=torch.float64)
    # one real token off by one part in 10^12 (any tolerance would let it through)
    off = old.clone()
    off[1, 0] = -0.5 + 1e-12
    # a mismatch under padding only, and a batch without real tokens
    pad_only = old.clone()
    pad_only[1, 1] = 3.0
    return {"off": off, "pad_only": pad_only, "old_logp": old, "mask": torch.tensor([[True, True], [True, False]]),
            "no_tokens": torch.zeros(2, 2, dtype=torch.bool)}


def run_hidden(off, pad_only, old_logp, mask, no_tokens):
    return {"off": first_step_ratio_ok(off, old_logp, mask), "pad_only": first_step_ratio_ok(pad_only, old_logp, mask),
            "no_tokens": first_step_ratio_ok(pad_only, old_logp, no_tokens)}


def check_hidden(inputs, outputs):
    assert not outputs["off"], "ratio exp(1e-12) on one real token: expected False (exactly 1 is required), got True"
    assert outputs["pad_only"], "log-probs differ only under padding: expected True, got False"
    assert outputs["no_tokens"], "no real token at all: expected True, got False"


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
