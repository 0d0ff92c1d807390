# %% [markdown]
# # Assignment 9: the DPO loss from sequence log-probabilities
#
# You will implement the two functions a DPO trainer needs: the summed log-probability of
# each response under a causal language model (with the label shift and the response
# mask), and the DPO loss with its implicit rewards. The chapter
# [From RLHF to DPO](../../../chapters/part5_rl/rlhf_to_dpo.ipynb) derives every formula
# you need; section 5 there is the masking recipe.
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
# - Points: 8 in all.

# %% [setup]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)


def check_close(actual, expected, tol=1e-9):
    """Assert two tensors (or numbers) have the same shape and agree to ``tol``."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"non-finite values: {actual}"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= tol, f"max error {err:.3e} > {tol:.0e}; got {actual}, expected {expected}"


def bigram_logits(table, input_ids):
    """A tiny causal LM: the logits at position t depend only on input_ids[:, t]. [B, L, V]"""
    return table[input_ids]

# %% [markdown]
# ## 1. Summed response log-probabilities (4 points)
#
# `response_logprobs(logits, input_ids, response_mask)` receives
#
# - `logits [B, L, V]`: the output of a causal LM run on `input_ids`; **the logits at
#   position $t$ predict the token at position $t+1$**;
# - `input_ids [B, L]`: prompt, then response, then right padding;
# - `response_mask [B, L]` (bool): True exactly on the response tokens of `input_ids`.
#
# Return `[B]`: for each row, with $x$ = `input_ids`, $\sum_t \log p(x_t \mid x_{<t})$
# over the response positions $t$ only, never the prompt, never padding. Compute the
# token log-probs with `torch.log_softmax` (or logit minus log-sum-exp), never
# `log(softmax)`. Sum them; do not average.

# %% [solution] id=response_logprobs
def response_logprobs(logits, input_ids, response_mask):
    ### BEGIN SOLUTION
    logp = torch.log_softmax(logits[:, :-1], dim=-1)                     # [B, L-1, V]
    labels = input_ids[:, 1:]                                            # [B, L-1]
    token_logp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)       # [B, L-1]
    mask = response_mask[:, 1:].to(token_logp.dtype)                     # [B, L-1]
    return (token_logp * mask).sum(dim=1)                                # [B]
    ### END SOLUTION

# %% [test] id=test_response_logprobs points=4
def make():
    return {"table": torch.zeros(4, 4, dtype=torch.float64),                 # uniform model
            "input_ids": torch.tensor([[1, 2, 3, 0]]),
            "response_mask": torch.tensor([[False, True, True, False]])}


def run(table, input_ids, response_mask):
    return {"logp": response_logprobs(bigram_logits(table, input_ids), input_ids, response_mask)}


def check(inputs, outputs):
    check_close(outputs["logp"], [2 * math.log(0.25)])


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(5)
    # prompt [5, 3] (2 tokens); responses of lengths 3 and 1; pad id 0
    return {"table": torch.randn(7, 7, generator=g, dtype=torch.float64) * 2,
            "input_ids": torch.tensor([[5, 3, 2, 4, 6], [5, 3, 6, 0, 0]]),
            "response_mask": torch.tensor([[False, False, True, True, True], [False, False, True, False, False]]),
            # log p = -1000 underflows exp() even in float64: log(softmax) would give -inf here
            "big_table": torch.tensor([[0.0, 1000.0], [1000.0, 0.0]], dtype=torch.float64),
            "big_ids": torch.tensor([[0, 0, 1]]), "big_mask": torch.tensor([[False, True, True]])}


def run_hidden(table, input_ids, response_mask, big_table, big_ids, big_mask):
    return {"logp": response_logprobs(bigram_logits(table, input_ids), input_ids, response_mask),
            "big": response_logprobs(bigram_logits(big_table, big_ids), big_ids, big_mask)}


def check_hidden(inputs, outputs):
    from lib.preference import sequence_logprobs as ref_seq

    table, ids, mask = inputs["table"], inputs["input_ids"], inputs["response_mask"]
    logits = bigram_logits(table, ids)
    lp = torch.log_softmax(table, -1)
    by_hand = [lp[3, 2] + lp[2, 4] + lp[4, 6], lp[3, 6]]
    check_close(outputs["logp"], torch.stack(by_hand))
    check_close(outputs["logp"], ref_seq(logits[:, :-1], ids[:, 1:], mask[:, 1:]))
    check_close(outputs["big"], [-1000.0])


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The DPO loss and the implicit rewards (4 points)
#
# `dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)` receives four
# `[B]` tensors of summed response log-probs. With
#
# $$z = \big(\log\pi_\theta(y_w) - \log\pi_\theta(y_l)\big) - \big(\log\pi_{\text{ref}}(y_w) - \log\pi_{\text{ref}}(y_l)\big),$$
#
# return a tuple `(loss, chosen_rewards, rejected_rewards)`:
#
# - `loss`: the batch mean of $-\log\sigma(\beta z)$, computed stably (`F.logsigmoid`), a
#   scalar tensor that gradients flow through;
# - `chosen_rewards`, `rejected_rewards`: the implicit rewards $\beta(\log\pi_\theta - \log\pi_{\text{ref}})$
#   of each response, `[B]`, **detached** (they are for logging).

# %% [solution] id=dpo_loss
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    ### BEGIN SOLUTION
    z = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)   # [B]
    loss = -F.logsigmoid(beta * z).mean()
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return loss, chosen_rewards, rejected_rewards
    ### END SOLUTION

# %% [test] id=test_dpo_loss points=2
def make():
    return {"zero": torch.zeros(3, dtype=torch.float64)}


def run(zero):
    return {"loss": dpo_loss(zero, zero, zero, zero)[0]}


def check(inputs, outputs):
    check_close(outputs["loss"], math.log(2))


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(6)
    return {"args": [-20 * torch.rand(8, generator=g, dtype=torch.float64) for _ in range(4)],
            "betas": [0.1, 0.5],
            # z = -50000: sigmoid(beta z) underflows to 0, but the loss is finite, beta * 50000 = 5000
            "far": [torch.tensor([v], dtype=torch.float64) for v in (-50000.0, 0.0, 0.0, 0.0)]}


def run_hidden(args, betas, far):
    return {"loss": [dpo_loss(*args, beta=beta)[0] for beta in betas], "far": dpo_loss(*far, beta=0.1)[0]}


def check_hidden(inputs, outputs):
    from lib.preference import dpo_loss as ref_dpo

    for beta, loss in zip(inputs["betas"], outputs["loss"]):
        check_close(loss, ref_dpo(*inputs["args"], beta=beta)[0])
    check_close(outputs["far"], 5000.0, tol=1e-6)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_dpo_rewards points=1
def make():
    return {"policy_chosen": torch.tensor([-3.0, -4.0], dtype=torch.float64, requires_grad=True),
            "policy_rejected": torch.tensor([-5.0, -1.0]), "ref_chosen": torch.tensor([-4.0, -4.0]),
            "ref_rejected": torch.tensor([-5.0, -2.0])}


def run(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
    out = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.5)
    return {"chosen_rewards": out[1]}


def check(inputs, outputs):
    check_close(outputs["chosen_rewards"], [0.5, 0.0])


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(7)
    return {"example": [torch.tensor([-3.0, -4.0], dtype=torch.float64, requires_grad=True),
                        torch.tensor([-5.0, -1.0]), torch.tensor([-4.0, -4.0]), torch.tensor([-5.0, -2.0])],
            "args": [-20 * torch.rand(5, generator=g, dtype=torch.float64) for _ in range(4)]}


def run_hidden(example, args):
    out = dpo_loss(*example, beta=0.5)
    got = dpo_loss(*args, beta=0.2)
    return {"rejected_rewards": out[2], "requires_grad": [out[1].requires_grad, out[2].requires_grad],
            "random_rewards": [got[1], got[2]]}


def check_hidden(inputs, outputs):
    from lib.preference import dpo_loss as ref_dpo

    check_close(outputs["rejected_rewards"], [0.0, 0.5])
    assert not any(outputs["requires_grad"]), "rewards must be detached"
    ref_out = ref_dpo(*inputs["args"], beta=0.2)
    check_close(outputs["random_rewards"][0], ref_out[1])
    check_close(outputs["random_rewards"][1], ref_out[2])


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_dpo_gradient points=1
def make():
    return {"policy_chosen": torch.zeros(2, dtype=torch.float64, requires_grad=True),
            "policy_rejected": torch.zeros(2, dtype=torch.float64),
            "ref_chosen": torch.zeros(2, dtype=torch.float64), "ref_rejected": torch.zeros(2, dtype=torch.float64)}


def run(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
    dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1)[0].backward()
    return {"grad": policy_chosen.grad}


def check(inputs, outputs):
    check_close(outputs["grad"], [-0.1 * 0.5 / 2, -0.1 * 0.5 / 2])


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(8)
    policy_chosen = (-10 * torch.rand(4, generator=g, dtype=torch.float64)).requires_grad_(True)
    policy_rejected, ref_chosen, ref_rejected = (-10 * torch.rand(4, generator=g, dtype=torch.float64)
                                                 for _ in range(3))
    return {"policy_chosen": policy_chosen, "policy_rejected": policy_rejected, "ref_chosen": ref_chosen,
            "ref_rejected": ref_rejected}


def run_hidden(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
    dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.3)[0].backward()
    return {"grad": policy_chosen.grad}


def check_hidden(inputs, outputs):
    z = (inputs["policy_chosen"].detach() - inputs["policy_rejected"]) - (inputs["ref_chosen"] - inputs["ref_rejected"])
    check_close(outputs["grad"], -0.3 * torch.sigmoid(-0.3 * z) / 4)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
