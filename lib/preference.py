r"""Preference learning: sequence log-probs, the Bradley-Terry loss and DPO.

A preference pair is a prompt with a *chosen* and a *rejected* response. The policy and
a frozen reference model each score both responses by the sum of their response-token
log-probs (``sequence_logprobs``); the losses below only ever see those ``[B]`` sums.

Bradley-Terry: :math:`P(a \succ b) = \sigma(r_a - r_b)`.
DPO (Rafailov et al., 2023), with
:math:`z = (\log\pi_\theta(y_w) - \log\pi_\theta(y_l)) - (\log\pi_{ref}(y_w) - \log\pi_{ref}(y_l))`:
:math:`-\log\sigma(\beta z)`; the implicit reward of a response is
:math:`\beta(\log\pi_\theta(y) - \log\pi_{ref}(y))`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lib._checks import check_in_range, check_ndim, check_option, check_same_shape
from lib.rl import gather_logprobs, masked_sum

DPO_LOSS_TYPES = ("sigmoid", "ipo")


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of the masked tokens of each sequence.

    Args:
        logits: ``[B, T, V]`` float.
        labels: ``[B, T]`` int, already aligned with ``logits`` (no shift inside):
            ``logits[:, t]`` scores ``labels[:, t]``. Entries under a false mask may hold
            anything (e.g. ``-100``); they are never gathered.
        mask: ``[B, T]`` bool or 0/1, true on the response tokens to score.

    Returns:
        ``[B]``: ``sum_t m_t * log softmax(logits_t)[labels_t]``.
    """
    check_ndim("logits", logits, 3)
    check_ndim("labels", labels, 2)
    check_same_shape("labels", labels, "mask", mask)
    keep = mask.bool()                                          # [B, T]
    safe_labels = torch.where(keep, labels.long(), 0)           # [B, T], no -100 gathered
    token_logp = gather_logprobs(logits, safe_labels)           # [B, T]
    return masked_sum(token_logp, keep, dim=1)                  # [B]


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the preferences, ``mean(-log sigmoid(r_c - r_r))``.

    ``r_chosen`` and ``r_rejected`` are rewards of the same shape (usually ``[B]``);
    ``F.logsigmoid`` keeps it finite for any margin. Returns a scalar.
    """
    check_same_shape("r_chosen", r_chosen, "r_rejected", r_rejected)
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float = 0.1,
             label_smoothing: float = 0.0, loss_type: str = "sigmoid",
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct Preference Optimization loss from summed sequence log-probs.

    Args:
        policy_chosen, policy_rejected, ref_chosen, ref_rejected: ``[B]`` summed response
            log-probs under the policy and the frozen reference.
        beta: strength of the implicit KL penalty, > 0.
        label_smoothing: ``eps``, the assumed probability that a label is flipped
            (conservative DPO); only used by ``"sigmoid"``.
        loss_type: ``"sigmoid"``: ``-(1-eps) log sigma(beta z) - eps log sigma(-beta z)``;
            ``"ipo"``: ``(z - 1/(2 beta))^2``, where
            ``z = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)``.

    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the batch-mean loss (a scalar) and
        the detached implicit rewards ``beta * (policy - ref)``, each ``[B]``.
    """
    check_ndim("policy_chosen", policy_chosen, 1)
    for name, x in (("policy_rejected", policy_rejected), ("ref_chosen", ref_chosen),
                    ("ref_rejected", ref_rejected)):
        check_same_shape("policy_chosen", policy_chosen, name, x)
    check_in_range("beta", beta, 0.0, float("inf"), low_open=True)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    check_option("loss_type", loss_type, DPO_LOSS_TYPES)
    z = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)  # [B]
    if loss_type == "sigmoid":
        losses = (-(1.0 - label_smoothing) * F.logsigmoid(beta * z)
                  - label_smoothing * F.logsigmoid(-beta * z))           # [B]
    else:
        losses = (z - 1.0 / (2.0 * beta)) ** 2                           # [B]
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()        # [B]
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()  # [B]
    return losses.mean(), chosen_rewards, rejected_rewards
