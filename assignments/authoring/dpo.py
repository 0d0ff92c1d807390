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
_table = torch.zeros(4, 4, dtype=torch.float64)                          # uniform model
_ids = torch.tensor([[1, 2, 3, 0]])
_mask = torch.tensor([[False, True, True, False]])
check_close(response_logprobs(bigram_logits(_table, _ids), _ids, _mask), [2 * math.log(0.25)])
### BEGIN HIDDEN TESTS
from lib.preference import sequence_logprobs as _ref_seq
_g = torch.Generator().manual_seed(5)
_table = torch.randn(7, 7, generator=_g, dtype=torch.float64) * 2
# prompt [5, 3] (2 tokens); responses of lengths 3 and 1; pad id 0
_ids = torch.tensor([[5, 3, 2, 4, 6], [5, 3, 6, 0, 0]])
_mask = torch.tensor([[False, False, True, True, True], [False, False, True, False, False]])
_logits = bigram_logits(_table, _ids)
_lp = torch.log_softmax(_table, -1)
_by_hand = [_lp[3, 2] + _lp[2, 4] + _lp[4, 6], _lp[3, 6]]
check_close(response_logprobs(_logits, _ids, _mask), torch.stack(_by_hand))
check_close(response_logprobs(_logits, _ids, _mask),
            _ref_seq(_logits[:, :-1], _ids[:, 1:], _mask[:, 1:]))
# log p = -1000 underflows exp() even in float64: log(softmax) would give -inf here
_big = bigram_logits(torch.tensor([[0.0, 1000.0], [1000.0, 0.0]], dtype=torch.float64),
                     torch.tensor([[0, 0, 1]]))
check_close(response_logprobs(_big, torch.tensor([[0, 0, 1]]), torch.tensor([[False, True, True]])),
            [-1000.0])
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
_zero = torch.zeros(3, dtype=torch.float64)
check_close(dpo_loss(_zero, _zero, _zero, _zero)[0], math.log(2))
### BEGIN HIDDEN TESTS
from lib.preference import dpo_loss as _ref_dpo
_g = torch.Generator().manual_seed(6)
_args = [-20 * torch.rand(8, generator=_g, dtype=torch.float64) for _ in range(4)]
for _beta in (0.1, 0.5):
    check_close(dpo_loss(*_args, beta=_beta)[0], _ref_dpo(*_args, beta=_beta)[0])
# z = -50000: sigmoid(beta z) underflows to 0, but the loss is finite, beta * 50000 = 5000
_far = [torch.tensor([v], dtype=torch.float64) for v in (-50000.0, 0.0, 0.0, 0.0)]
check_close(dpo_loss(*_far, beta=0.1)[0], 5000.0, tol=1e-6)
### END HIDDEN TESTS

# %% [test] id=test_dpo_rewards points=1
_pc = torch.tensor([-3.0, -4.0], dtype=torch.float64, requires_grad=True)
_out = dpo_loss(_pc, torch.tensor([-5.0, -1.0]), torch.tensor([-4.0, -4.0]), torch.tensor([-5.0, -2.0]), beta=0.5)
check_close(_out[1], [0.5, 0.0])
### BEGIN HIDDEN TESTS
from lib.preference import dpo_loss as _ref_dpo
check_close(_out[2], [0.0, 0.5])
assert not _out[1].requires_grad and not _out[2].requires_grad, "rewards must be detached"
_g = torch.Generator().manual_seed(7)
_args = [-20 * torch.rand(5, generator=_g, dtype=torch.float64) for _ in range(4)]
_ref_out = _ref_dpo(*_args, beta=0.2)
_got = dpo_loss(*_args, beta=0.2)
check_close(_got[1], _ref_out[1])
check_close(_got[2], _ref_out[2])
### END HIDDEN TESTS

# %% [test] id=test_dpo_gradient points=1
_pc = torch.zeros(2, dtype=torch.float64, requires_grad=True)
dpo_loss(_pc, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
         torch.zeros(2, dtype=torch.float64), beta=0.1)[0].backward()
check_close(_pc.grad, [-0.1 * 0.5 / 2, -0.1 * 0.5 / 2])
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(8)
_pc = (-10 * torch.rand(4, generator=_g, dtype=torch.float64)).requires_grad_(True)
_pr, _rc, _rr = (-10 * torch.rand(4, generator=_g, dtype=torch.float64) for _ in range(3))
dpo_loss(_pc, _pr, _rc, _rr, beta=0.3)[0].backward()
_z = (_pc.detach() - _pr) - (_rc - _rr)
check_close(_pc.grad, -0.3 * torch.sigmoid(-0.3 * _z) / 4)
### END HIDDEN TESTS
