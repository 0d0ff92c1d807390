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
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
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
def make():
    return {"scores": torch.zeros(2, dtype=torch.float64),
            "logp": torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], dtype=torch.float64),
            "ref_logp": torch.tensor([[-1.5, -1.0, 0.0], [-0.5, 0.0, 0.0]], dtype=torch.float64),
            "mask": response_mask([2, 1], 3), "beta": 0.1}


def run(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check(inputs, outputs):
    check_close(outputs["rewards"], [[-0.05, 0.1, 0.0], [0.0, 0.0, 0.0]],
                "KL penalty, scores 0, lengths [2, 1], beta 0.1")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(11)
    mask = response_mask([5, 1, 3, 4], 6)
    logp = torch.where(mask, -3 * torch.rand(4, 6, generator=g, dtype=torch.float64), 0.0)
    ref_logp = torch.where(mask, logp + 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64), 0.0)
    return {"logp": logp, "ref_logp": ref_logp, "mask": mask, "betas": [0.0, 0.05, 0.5]}


def run_hidden(logp, ref_logp, mask, betas):
    return {"rewards": [kl_penalized_rewards(torch.zeros(4, dtype=torch.float64), logp, ref_logp, mask, beta)
                        for beta in betas]}


def check_hidden(inputs, outputs):
    from lib.rl import kl_penalized_rewards as ref_rewards

    for beta, rewards in zip(inputs["betas"], outputs["rewards"]):
        check_close(rewards,
                    ref_rewards(torch.zeros(4, dtype=torch.float64), inputs["logp"], inputs["ref_logp"],
                                inputs["mask"], beta),
                    f"scores 0, ragged lengths [5, 1, 3, 4] of T=6, beta {beta}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_score_position points=1
def make():
    return {"scores": torch.tensor([1.0, -2.0], dtype=torch.float64),
            "logp": torch.zeros(2, 4, dtype=torch.float64), "ref_logp": torch.zeros(2, 4, dtype=torch.float64),
            "mask": response_mask([2, 3], 4), "beta": 0.1}


def run(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check(inputs, outputs):
    check_close(outputs["rewards"], [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -2.0, 0.0]],
                "scores [1, -2], no KL, lengths [2, 3] of T=4: score on the last real token")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(12)
    mask = response_mask([1, 4, 2], 5)                # a one-token completion: position 0
    logp = -torch.rand(3, 5, generator=g, dtype=torch.float64)
    return {"scores": torch.tensor([0.7, -1.3, 2.5], dtype=torch.float64), "logp": logp,
            "ref_logp": logp.clone(), "mask": mask, "beta": 0.2}


def run_hidden(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check_hidden(inputs, outputs):
    from lib.rl import kl_penalized_rewards as ref_rewards

    check_close(outputs["rewards"], ref_rewards(**inputs),
                "scores [0.7, -1.3, 2.5], logp == ref_logp, lengths [1, 4, 2] of T=5")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_kl_padding points=1
def make():
    return {"scores": torch.zeros(2, dtype=torch.float64),
            "logp": torch.tensor([[-1.0, 5.0, 7.0], [-1.0, -1.0, 9.0]], dtype=torch.float64),
            "ref_logp": torch.full((2, 3), -1.0, dtype=torch.float64),
            "mask": response_mask([1, 2], 3), "beta": 0.5}


def run(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check(inputs, outputs):
    check_close(outputs["rewards"], torch.zeros(2, 3),
                "scores 0, logp == ref_logp on real tokens, garbage on padding")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"scores": torch.zeros(2, dtype=torch.float64),
            "logp": torch.tensor([[-1.0, -2.0, math.inf], [-3.0, math.nan, -math.inf]], dtype=torch.float64),
            "ref_logp": torch.tensor([[-2.0, -2.0, 0.0], [-1.0, 0.0, math.nan]], dtype=torch.float64),
            "mask": response_mask(torch.tensor([2, 1]), 3), "beta": 0.5}


def run_hidden(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check_hidden(inputs, outputs):
    check_close(outputs["rewards"], [[-0.5, 0.0, 0.0], [1.0, 0.0, 0.0]],
                "scores 0, beta 0.5, inf and nan under the padding of lengths [2, 1]")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_kl_full_and_empty_rows points=1
def make():
    return {"scores": torch.tensor([2.0], dtype=torch.float64),
            "logp": torch.zeros(1, 3, dtype=torch.float64), "ref_logp": torch.zeros(1, 3, dtype=torch.float64),
            "mask": torch.ones(1, 3, dtype=torch.bool), "beta": 0.1}


def run(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check(inputs, outputs):
    check_close(outputs["rewards"], [[0.0, 0.0, 2.0]],
                "score 2, no KL, one row with no padding (all 3 tokens real)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(13)
    mask = response_mask([4, 0, 4, 2], 4)             # full rows and an empty row
    logp = -torch.rand(4, 4, generator=g, dtype=torch.float64)
    ref_logp = -torch.rand(4, 4, generator=g, dtype=torch.float64)
    return {"scores": torch.tensor([1.0, 3.0, -0.5, 0.25], dtype=torch.float64), "logp": logp,
            "ref_logp": ref_logp, "mask": mask, "beta": 0.1}


def run_hidden(scores, logp, ref_logp, mask, beta):
    return {"rewards": kl_penalized_rewards(scores, logp, ref_logp, mask, beta)}


def check_hidden(inputs, outputs):
    from lib.rl import kl_penalized_rewards as ref_rewards

    check_close(outputs["rewards"], ref_rewards(**inputs),
                "lengths [4, 0, 4, 2] of T=4 (full rows and an empty one), beta 0.1")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"rewards": torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64),
            "values": torch.tensor([[0.5, 0.25, 0.0]], dtype=torch.float64), "mask": response_mask([2], 3)}


def run(rewards, values, mask):
    return {"advantages": gae(rewards, values, mask, gamma=0.9, lam=0.8)[0]}


def check(inputs, outputs):
    # A_1 = 1 - 0.25 = 0.75; A_0 = (0 + 0.9 * 0.25 - 0.5) + 0.9 * 0.8 * 0.75 = 0.265
    check_close(outputs["advantages"], [[0.265, 0.75, 0.0]],
                "advantages, rewards [0, 1], values [0.5, 0.25], gamma 0.9, lam 0.8")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(21)
    mask = response_mask([5, 1, 3, 6], 7)
    rewards = torch.where(mask, torch.randn(4, 7, generator=g, dtype=torch.float64), 0.0)
    values = torch.where(mask, torch.randn(4, 7, generator=g, dtype=torch.float64), 0.0)
    return {"rewards": rewards, "values": values, "mask": mask,
            "gammas_lams": [(0.9, 0.8), (0.99, 0.95), (0.5, 0.3)]}


def run_hidden(rewards, values, mask, gammas_lams):
    return {"advantages": [gae(rewards, values, mask, gamma=gamma, lam=lam)[0] for gamma, lam in gammas_lams]}


def check_hidden(inputs, outputs):
    from lib.rl import gae as ref_gae

    for (gamma, lam), advantages in zip(inputs["gammas_lams"], outputs["advantages"]):
        check_close(advantages, ref_gae(inputs["rewards"], inputs["values"], inputs["mask"], gamma=gamma, lam=lam)[0],
                    f"advantages, lengths [5, 1, 3, 6] of T=7, gamma {gamma}, lam {lam}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_gae_returns points=1
def make():
    return {"rewards": torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64),
            "values": torch.tensor([[0.5, 0.25, 0.0]], dtype=torch.float64), "mask": response_mask([2], 3)}


def run(rewards, values, mask):
    return {"returns": gae(rewards, values, mask, gamma=0.9, lam=0.8)[1]}


def check(inputs, outputs):
    check_close(outputs["returns"], [[0.765, 1.0, 0.0]],
                "returns = advantages + values, rewards [0, 1], values [0.5, 0.25], gamma 0.9, lam 0.8")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(22)
    mask = response_mask([3, 1, 5], 6)
    rewards = torch.where(mask, torch.randn(3, 6, generator=g, dtype=torch.float64), 0.0)
    values = torch.where(mask, torch.randn(3, 6, generator=g, dtype=torch.float64), 0.0)
    return {"rewards": rewards, "values": values, "mask": mask}


def run_hidden(rewards, values, mask):
    return {"returns": gae(rewards, values, mask, gamma=0.95, lam=0.9)[1]}


def check_hidden(inputs, outputs):
    from lib.rl import gae as ref_gae

    check_close(outputs["returns"], ref_gae(**inputs, gamma=0.95, lam=0.9)[1],
                "returns, lengths [3, 1, 5] of T=6, gamma 0.95, lam 0.9")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_gae_padding points=1
def make():
    return {"rewards": torch.tensor([[1.0, 5.0, 5.0]], dtype=torch.float64),
            "values": torch.tensor([[0.5, 9.0, 9.0]], dtype=torch.float64), "mask": response_mask([1], 3)}


def run(rewards, values, mask):
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    return {"advantages": advantages, "returns": returns}


def check(inputs, outputs):
    check_close(outputs["advantages"], [[0.5, 0.0, 0.0]],
                "advantages of a 1-token row with garbage rewards and values on padding")
    check_close(outputs["returns"], [[1.0, 0.0, 0.0]],
                "returns of a 1-token row with garbage rewards and values on padding")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(23)
    mask = response_mask([2, 4, 1], 5)
    rewards = torch.randn(3, 5, generator=g, dtype=torch.float64)    # garbage under the padding too
    values = torch.randn(3, 5, generator=g, dtype=torch.float64)
    return {"rewards": rewards, "values": values, "mask": mask}


def run_hidden(rewards, values, mask):
    advantages, returns = gae(rewards, values, mask, 0.9, 0.8)
    return {"advantages": advantages, "returns": returns}


def check_hidden(inputs, outputs):
    from lib.rl import gae as ref_gae

    check_close(outputs["advantages"], ref_gae(**inputs, gamma=0.9, lam=0.8)[0],
                "advantages, lengths [2, 4, 1] of T=5, values and rewards nonzero on padding")
    check_close(torch.where(inputs["mask"], 0.0, outputs["returns"]), torch.zeros(3, 5),
                "returns on padding, lengths [2, 4, 1] of T=5")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_gae_full_and_empty_rows points=1
def make():
    return {"rewards": torch.tensor([[0.0, 1.0]], dtype=torch.float64),
            "values": torch.tensor([[0.5, 0.5]], dtype=torch.float64), "mask": torch.ones(1, 2, dtype=torch.bool)}


def run(rewards, values, mask):
    return {"advantages": gae(rewards, values, mask, gamma=0.9, lam=0.8)[0]}


def check(inputs, outputs):
    # no V_2 to bootstrap from: A_1 = 1 - 0.5; A_0 = (0 + 0.9 * 0.5 - 0.5) + 0.9 * 0.8 * 0.5
    check_close(outputs["advantages"], [[0.31, 0.5]],
                "advantages of a row with no padding, rewards [0, 1], values [0.5, 0.5]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(24)
    mask = response_mask([4, 4, 0, 2], 4)
    rewards = torch.where(mask, torch.randn(4, 4, generator=g, dtype=torch.float64), 0.0)
    values = torch.where(mask, torch.randn(4, 4, generator=g, dtype=torch.float64), 0.0)
    return {"rewards": rewards, "values": values, "mask": mask}


def run_hidden(rewards, values, mask):
    advantages, returns = gae(rewards, values, mask, lam=0.8, gamma=0.9)
    return {"advantages": advantages, "returns": returns}


def check_hidden(inputs, outputs):
    from lib.rl import gae as ref_gae

    check_close(outputs["advantages"], ref_gae(**inputs, gamma=0.9, lam=0.8)[0],
                "advantages, lengths [4, 4, 0, 2] of T=4 (two rows without padding, one empty)")
    check_close(outputs["returns"][2], torch.zeros(4), "returns of the empty row, lengths [4, 4, 0, 2] of T=4")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_gae_monte_carlo points=1
def make():
    return {"rewards": torch.tensor([[1.0, 0.0, 2.0, 0.0]], dtype=torch.float64),
            "values": torch.tensor([[0.5, 1.0, 1.5, 0.0]], dtype=torch.float64), "mask": response_mask([3], 4)}


def run(rewards, values, mask):
    return {"advantages": gae(rewards, values, mask, gamma=1.0, lam=1.0)[0]}


def check(inputs, outputs):
    check_close(outputs["advantages"], [[2.5, 1.0, 0.5, 0.0]],
                "gamma = lam = 1: remaining rewards minus V, rewards [1, 0, 2], values [0.5, 1, 1.5]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(25)
    mask = response_mask([5, 1, 3], 6)
    rewards = torch.where(mask, torch.randn(3, 6, generator=g, dtype=torch.float64), 0.0)
    values = torch.where(mask, torch.randn(3, 6, generator=g, dtype=torch.float64), 0.0)
    return {"rewards": rewards, "values": values, "mask": mask, "ends": [(1.0, 0.0), (0.0, 1.0)]}


def run_hidden(rewards, values, mask, ends):
    return {"monte_carlo": gae(rewards, values, mask, gamma=1.0, lam=1.0)[0],
            "ends": [gae(rewards, values, mask, gamma=gamma, lam=lam)[0] for gamma, lam in ends]}


def check_hidden(inputs, outputs):
    from lib.rl import gae as ref_gae

    r, v, m = inputs["rewards"], inputs["values"], inputs["mask"]
    togo = torch.where(m, r.flip(1).cumsum(1).flip(1), 0.0)      # remaining reward, gamma = 1
    check_close(outputs["monte_carlo"], torch.where(m, togo - v, 0.0),
                "advantages, gamma = lam = 1, lengths [5, 1, 3] of T=6")
    for (gamma, lam), advantages in zip(inputs["ends"], outputs["ends"]):
        check_close(advantages, ref_gae(r, v, m, gamma=gamma, lam=lam)[0],
                    f"advantages at the ends of [0, 1]: gamma {gamma}, lam {lam}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    values = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    return {"values": values, "old_values": values.clone(), "returns": torch.zeros(2, 2, dtype=torch.float64),
            "mask": response_mask([2, 1], 2)}


def run(values, old_values, returns, mask):
    return {"loss": value_loss(values, old_values, returns, mask)}


def check(inputs, outputs):
    check_close(outputs["loss"], (0.5 + 0.0 + 2.0) / 3,
                "values == old_values, returns 0, lengths [2, 1]: mean over 3 real tokens")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(31)
    mask = response_mask([6, 2, 4, 1], 6)
    old_values = torch.randn(4, 6, generator=g, dtype=torch.float64)
    values = old_values + 0.4 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    returns = old_values + torch.randn(4, 6, generator=g, dtype=torch.float64)
    return {"values": values, "old_values": old_values, "returns": returns, "mask": mask}


def run_hidden(values, old_values, returns, mask):
    return {"loss": value_loss(values, old_values, returns, mask)}


def check_hidden(inputs, outputs):
    from lib.rl import value_loss as ref_value_loss

    check_close(outputs["loss"], ref_value_loss(**inputs),
                "value loss, lengths [6, 2, 4, 1] of T=6, default clip_eps")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_value_clip points=1
def make():
    return {"values": torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True),
            "old_values": torch.zeros(1, 1, dtype=torch.float64),
            "returns": torch.tensor([[1.0]], dtype=torch.float64), "mask": torch.ones(1, 1, dtype=torch.bool)}


def run(values, old_values, returns, mask):
    loss = value_loss(values, old_values, returns, mask)
    loss.backward()
    return {"loss": loss, "grad": values.grad}


def check(inputs, outputs):
    # v moved 0.5 towards R = 1, beyond eps = 0.2: the clipped term (0.2 - 1)^2 is larger
    check_close(outputs["loss"], 0.5 * 0.8 ** 2, "loss, old 0, v 0.5, R 1, clip_eps 0.2")
    check_close(outputs["grad"], [[0.0]], "gradient, old 0, v 0.5, R 1 (clipped: no gradient)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # (old, v, R): moved away from R beyond eps (unclipped term is larger, full gradient),
    # moved towards R beyond eps on the negative side (clipped), inside the range
    return {"cases": [(0.0, -0.5, 1.0), (0.0, -0.5, -1.0), (1.0, 1.1, 3.0)]}


def run_hidden(cases):
    losses, grads = [], []
    for o, x, R in cases:
        v = torch.tensor([[x]], dtype=torch.float64, requires_grad=True)
        loss = value_loss(v, torch.tensor([[o]], dtype=torch.float64),
                          torch.tensor([[R]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
        loss.sum().backward()
        losses.append(loss)
        grads.append(v.grad)
    return {"loss": losses, "grad": grads}


def check_hidden(inputs, outputs):
    for (o, x, R), loss, grad in zip(inputs["cases"], outputs["loss"], outputs["grad"]):
        clipped = o + min(max(x - o, -0.2), 0.2)
        use_clip = (clipped - R) ** 2 > (x - R) ** 2
        check_close(loss, 0.5 * max((x - R) ** 2, (clipped - R) ** 2),
                    f"loss, old {o}, v {x}, R {R}, clip_eps 0.2")
        check_close(grad, [[0.0 if use_clip else x - R]],
                    f"gradient, old {o}, v {x}, R {R}, clip_eps 0.2")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_value_clip_boundary points=1
def make():
    return {"values": torch.tensor([[0.5]], dtype=torch.float64), "old_values": torch.zeros(1, 1, dtype=torch.float64),
            "returns": torch.tensor([[1.0]], dtype=torch.float64), "mask": torch.ones(1, 1, dtype=torch.bool),
            "clip_eps": 0.5}


def run(values, old_values, returns, mask, clip_eps):
    return {"loss": value_loss(values, old_values, returns, mask, clip_eps=clip_eps)}


def check(inputs, outputs):
    check_close(outputs["loss"], 0.5 * 0.5 ** 2, "old 0, v 0.5, R 1, clip_eps 0.5: |v - old| == eps, nothing clipped")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # |v - old| == clip_eps exactly (every number below is exact in binary), both signs
    return {"cases": [(0.5, 0.75, 2.0, 0.25), (0.5, 0.25, 2.0, 0.25), (0.0, -0.5, 1.0, 0.5),
                      (1.0, 1.125, -1.0, 0.125)]}


def run_hidden(cases):
    one = torch.ones(1, 1, dtype=torch.bool)
    return {"loss": [value_loss(torch.tensor([[x]], dtype=torch.float64), torch.tensor([[o]], dtype=torch.float64),
                                torch.tensor([[R]], dtype=torch.float64), one, clip_eps=eps)
                     for o, x, R, eps in cases]}


def check_hidden(inputs, outputs):
    from lib.rl import value_loss as ref_value_loss

    for (o, x, R, eps), loss in zip(inputs["cases"], outputs["loss"]):
        args = (torch.tensor([[x]], dtype=torch.float64), torch.tensor([[o]], dtype=torch.float64),
                torch.tensor([[R]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
        check_close(loss, 0.5 * (x - R) ** 2, f"old {o}, v {x}, R {R}, clip_eps {eps} (|v - old| == eps)")
        check_close(loss, ref_value_loss(*args, clip_eps=eps),
                    f"against the reference: old {o}, v {x}, R {R}, clip_eps {eps}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
