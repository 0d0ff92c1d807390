r"""Policy-gradient primitives: token log-probs, advantages, PPO and GRPO losses.

Layout everywhere: a batch of ``B`` sampled completions, each padded to ``T`` response
tokens. ``logp``, ``old_logp``, ``ref_logp`` and ``mask`` are ``[B, T]``; ``mask`` is
bool or 0/1 and is true only on real response tokens (never prompt, never padding).

The per-token clipped surrogate (Schulman et al., 2017) is

.. math::

    \ell_t = -\min\big(\rho_t A,\ \operatorname{clip}(\rho_t, 1-\epsilon, 1+\epsilon) A\big),
    \qquad \rho_t = \exp(\log\pi_\theta - \log\pi_{\text{old}}),

computed from log-probabilities so that the ratio never divides two tiny numbers.
"""
from __future__ import annotations

from numbers import Integral

import torch

from lib._checks import (check_broadcastable, check_in_range, check_ndim, check_option,
                         check_same_shape, shape_of)

SCALES = ("group", "batch", "none")
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each chosen token, ``log softmax(logits)[tokens]``.

    Args:
        logits: ``[B, T, V]`` float; position ``t`` scores the token at ``tokens[:, t]``.
        tokens: ``[B, T]`` int64, already aligned with ``logits`` (no shift here).

    Returns:
        ``[B, T]`` in the dtype of ``logits``:
        ``logits[b, t, tokens[b, t]] - logsumexp_v logits[b, t, v]``. Only the gathered
        logit and the log-sum-exp are formed; the ``[B, T, V]`` softmax never is.
    """
    check_ndim("logits", logits, 3)
    check_ndim("tokens", tokens, 2)
    if shape_of(logits)[:2] != shape_of(tokens):
        raise ValueError(f"tokens must have shape logits.shape[:2] = {shape_of(logits)[:2]}, "
                         f"got tokens {shape_of(tokens)}")
    picked = logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # [B, T]
    return picked - torch.logsumexp(logits, dim=-1)                       # [B, T]


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over the entries where ``mask`` is true (along ``dim`` if given).

    Masked-out entries are replaced by 0 with ``torch.where`` rather than multiplied by
    the mask, so a ``-inf`` or NaN sitting under padding cannot leak into the sum.
    ``mask`` (bool or 0/1) must broadcast to ``x`` without enlarging it.
    """
    check_broadcastable("mask", shape_of(mask), shape_of(x), "x")
    kept = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true; along ``dim`` if given.

    ``sum(x * m) / max(sum(m), 1)``: a row (or batch) with no true entry gives 0, not
    NaN, so an empty completion contributes nothing instead of poisoning the loss.
    """
    count = masked_sum(torch.ones_like(x), mask, dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                     scale: str = "group") -> torch.Tensor:
    """GRPO advantages: each reward centred on its own group's mean, then scaled.

    Args:
        rewards: ``[N]`` float, the ``group_size`` completions of each prompt contiguous,
            so ``N = prompts * group_size``.
        group_size: completions per prompt ``G``.
        eps: added to the std, so a group whose rewards are all equal gets advantage 0.
        scale: ``"group"``: divide by the Bessel-corrected std of the group;
            ``"batch"``: by the Bessel-corrected std of all ``N`` rewards;
            ``"none"``: no division at all (Dr. GRPO; TRL's ``scale_rewards="none"``).

    Returns:
        ``[N]``: ``(r_i - mean_{group(i)}) / (std + eps)``, or exactly
        ``r_i - mean_{group(i)}`` for ``scale="none"`` (``eps`` is not used then).

    Example: ``group_advantages(torch.tensor([1., 0., 0., 0.]), 2, scale="none")`` ->
    ``[0.5, -0.5, 0., 0.]``.
    """
    check_ndim("rewards", rewards, 1)
    check_option("scale", scale, SCALES)
    min_group = 2 if scale == "group" else 1
    if not isinstance(group_size, Integral) or group_size < min_group:
        raise ValueError(f"group_size must be an int >= {min_group} for scale={scale!r}, "
                         f"got {group_size!r}")
    n = rewards.shape[0]
    if n == 0 or n % group_size != 0:
        raise ValueError(f"rewards of shape {shape_of(rewards)} cannot be split into groups "
                         f"of group_size={group_size}")
    grouped = rewards.view(n // group_size, group_size)            # [P, G]
    centred = grouped - grouped.mean(dim=1, keepdim=True)          # [P, G]
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True)                     # [P, 1], divides by G - 1
    elif scale == "batch":
        if n < 2:
            raise ValueError(f"scale='batch' needs at least 2 rewards, got shape {shape_of(rewards)}")
        std = rewards.std()                                        # [], divides by N - 1
    else:
        return centred.reshape(n)                                  # [N], no division
    return (centred / (std + eps)).reshape(n)                      # [N]


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi``.

    With ``d = ref_logp - logp``: ``exp(d) - d - 1``. It is >= 0 for every sample
    (since ``e^d >= 1 + d``), unbiased (``E_pi[e^d] = 1``), and 0 where the two agree.
    """
    check_same_shape("logp", logp, "ref_logp", ref_logp)
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def _check_token_inputs(logp: torch.Tensor, old_logp: torch.Tensor,
                        advantages: torch.Tensor, mask: torch.Tensor | None,
                        clip_eps: float) -> None:
    """Shapes ``logp, old_logp, mask [B, T]``, ``advantages [B]`` or ``[B, T]``."""
    check_ndim("logp", logp, 2)
    check_same_shape("logp", logp, "old_logp", old_logp)
    if mask is not None:
        check_same_shape("logp", logp, "mask", mask)
    check_ndim("advantages", advantages, (1, 2))
    want = shape_of(logp) if advantages.ndim == 2 else shape_of(logp)[:1]
    if shape_of(advantages) != want:
        raise ValueError(f"advantages must have shape [B] = {shape_of(logp)[:1]} or "
                         f"[B, T] = {shape_of(logp)}, got {shape_of(advantages)}")
    check_in_range("clip_eps", clip_eps, 0.0, 1.0, low_open=True, high_open=True)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_eps: float = 0.2) -> torch.Tensor:
    """Per-token PPO loss ``-min(rho A, clip(rho, 1-eps, 1+eps) A)``, ``[B, T]``.

    ``rho = exp(logp - old_logp)``; ``advantages`` is ``[B]`` (one per sequence, broadcast
    over its tokens) or ``[B, T]``. No masking here: callers aggregate with a mask.

    Raises ``ValueError`` if the shapes disagree or ``clip_eps`` is outside (0, 1).
    """
    _check_token_inputs(logp, old_logp, advantages, None, clip_eps)
    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages  # [B, 1] or [B, T]
    ratio = torch.exp(logp - old_logp)                                      # [B, T]
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)            # [B, T]
    return -torch.minimum(ratio * adv, clipped * adv)                       # [B, T]


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, clip_eps: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate averaged over all masked tokens of the batch (a scalar).

    Args:
        logp: ``[B, T]`` log-probs of the sampled tokens under the current policy.
        old_logp: ``[B, T]`` log-probs under the policy that sampled them (no gradient).
        advantages: ``[B]`` or ``[B, T]``.
        mask: ``[B, T]`` bool or 0/1, true on response tokens.
        clip_eps: the clip range ``epsilon`` in (0, 1).

    Returns:
        ``sum_{b,t} l_{bt} m_{bt} / sum_{b,t} m_{bt}``.
    """
    _check_token_inputs(logp, old_logp, advantages, mask, clip_eps)
    return masked_mean(clipped_surrogate(logp, old_logp, advantages, clip_eps), mask)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2,
              beta: float = 0.0, loss_type: str = "grpo",
              max_completion_length: int | None = None) -> torch.Tensor:
    """GRPO loss: clipped surrogate plus ``beta`` times the k3 KL, then aggregated.

    Per token ``l = -min(rho A, clip(rho, 1-eps, 1+eps) A) + beta * kl_k3(logp, ref_logp)``.
    With ``m`` the mask, ``B`` the batch size:

    * ``"grpo"``: ``mean_b [ sum_t l m / sum_t m ]`` (each sequence weighs the same, so a
      token of a short answer weighs more than a token of a long one);
    * ``"bnpo"``: ``sum l m / sum m`` (each token weighs the same);
    * ``"dr_grpo"``: ``sum l m / (B * max_completion_length)``, a constant normalizer
      (``max_completion_length`` defaults to ``T``).

    ``ref_logp`` (``[B, T]``) may be None only when ``beta == 0``. Returns a scalar.
    """
    _check_token_inputs(logp, old_logp, advantages, mask, clip_eps)
    check_option("loss_type", loss_type, GRPO_LOSS_TYPES)
    check_in_range("beta", beta, 0.0, float("inf"))
    per_token = clipped_surrogate(logp, old_logp, advantages, clip_eps)      # [B, T]
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError(f"ref_logp is None but beta={beta!r} > 0 needs it")
        per_token = per_token + beta * kl_k3(logp, ref_logp)                 # [B, T]
    if loss_type == "grpo":
        return masked_mean(per_token, mask, dim=1).mean()
    if loss_type == "bnpo":
        return masked_mean(per_token, mask)
    length = logp.shape[1] if max_completion_length is None else max_completion_length
    if length < 1:
        raise ValueError(f"max_completion_length must be >= 1, got {length!r}")
    return masked_sum(per_token, mask) / (logp.shape[0] * length)


# ---- RLHF-PPO with a critic (InstructGPT): rewards with a per-token KL, GAE, value loss ----

def _check_response_mask(mask: torch.Tensor, like: torch.Tensor, like_name: str) -> torch.Tensor:
    """``mask`` as bool; it must be ``[B, T]`` like ``like`` and, in every row, a run of real
    tokens from position 0 followed only by padding (right padding)."""
    check_ndim(like_name, like, 2)
    check_same_shape("mask", mask, like_name, like)
    m = mask.bool()
    if bool((m[:, 1:] & ~m[:, :-1]).any()):  # note: a CPU-GPU sync point
        raise ValueError(f"mask of shape {shape_of(mask)} must be a run of real tokens from "
                         "position 0, then padding (a real token follows a padded one)")
    return m


@torch.no_grad()
def kl_penalized_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Per-token rewards of RLHF-PPO: a KL penalty on every token, the score at the end.

    .. math::

        r_t = -\beta\,(\log\pi(y_t) - \log\pi_{\text{ref}}(y_t))
              + [t = \text{last real token}]\ \text{score}

    Args:
        scores: ``[B]``, the reward model's score of each completion.
        logp, ref_logp: ``[B, T]`` log-probs of the sampled tokens under the policy and the
            frozen reference.
        mask: ``[B, T]`` bool or 0/1, real response tokens from position 0, then padding.
        beta: KL coefficient, >= 0.

    Returns:
        ``[B, T]``, 0 on padding, no gradient. A row without real tokens is all zeros (there
        is no token to carry its score).
    """
    m = _check_response_mask(mask, logp, "logp")
    check_same_shape("logp", logp, "ref_logp", ref_logp)
    check_ndim("scores", scores, 1)
    if scores.shape[0] != logp.shape[0]:
        raise ValueError(f"scores must have shape [B] = [{logp.shape[0]}], got {shape_of(scores)}")
    check_in_range("beta", beta, 0.0, float("inf"))
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    rewards = torch.where(m, -beta * (logp - ref_logp), zero)             # [B, T]
    last = m.sum(dim=1) - 1                                               # [B]
    has_token = last >= 0                                                 # [B]
    rows = torch.arange(logp.shape[0], device=logp.device)[has_token]
    rewards[rows, last[has_token]] += scores[has_token].to(logp.dtype)
    return rewards


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Generalized advantage estimation (Schulman et al., 2016) over response tokens.

    .. math::

        \delta_t = r_t + \gamma V_{t+1} - V_t, \qquad
        A_t = \delta_t + \gamma\lambda A_{t+1},

    with ``V`` taken as 0 past the last real token (the episode ends there) and ``A = 0``
    there too. ``lam = 0`` gives the one-step TD error; ``lam = 1`` gives the discounted
    return minus ``V_t`` (Monte Carlo minus the baseline).

    Args:
        rewards, values: ``[B, T]``; mask ``[B, T]``: real tokens from position 0, then padding.

    Returns:
        ``(advantages, returns)``, both ``[B, T]``: ``returns = advantages + values`` on real
        tokens, both 0 on padding; no gradient flows into either.
    """
    m = _check_response_mask(mask, rewards, "rewards")
    check_same_shape("rewards", rewards, "values", values)
    check_in_range("gamma", gamma, 0.0, 1.0)
    check_in_range("lam", lam, 0.0, 1.0)
    zero = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    r = torch.where(m, rewards, zero)                                     # [B, T]
    v = torch.where(m, values.detach(), zero)                             # [B, T], 0 past the end
    advantages = torch.zeros_like(r)                                      # [B, T]
    next_value = torch.zeros_like(r[:, 0])                                # [B]
    next_advantage = torch.zeros_like(r[:, 0])                            # [B]
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]                    # [B]
        advantages[:, t] = torch.where(m[:, t], delta + gamma * lam * next_advantage, zero)
        next_value, next_advantage = v[:, t], advantages[:, t]
    returns = torch.where(m, advantages + v, zero)                        # [B, T]
    return advantages, returns


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_eps: float = 0.2) -> torch.Tensor:
    r"""PPO's clipped value loss, averaged over the real tokens of the batch.

    .. math::

        \tfrac12 \max\big((v - R)^2,\ (v_{\text{old}} + \operatorname{clip}(v - v_{\text{old}},
        -\epsilon, \epsilon) - R)^2\big)

    The clip is around the *old* value (the critic's prediction when the batch was
    sampled), so one update cannot move the value by more than ``clip_eps``; the max makes
    it a pessimistic bound, as the policy's ``min`` does.

    Args:
        values: ``[B, T]`` the critic's current predictions (gradient flows here).
        old_values, returns: ``[B, T]``; mask ``[B, T]`` bool or 0/1.

    Returns:
        A scalar.
    """
    check_same_shape("values", values, "old_values", old_values)
    check_same_shape("values", values, "returns", returns)
    check_same_shape("values", values, "mask", mask)
    check_in_range("clip_eps", clip_eps, 0.0, float("inf"))
    unclipped = (values - returns) ** 2                                   # [B, T]
    clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    clipped = (clipped_values - returns) ** 2                             # [B, T]
    return masked_mean(0.5 * torch.maximum(unclipped, clipped), mask)


@torch.no_grad()
def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  eps: float = 1e-8) -> torch.Tensor:
    """Whiten ``x`` with the mean and Bessel-corrected variance of its real entries only.

    ``(x - mean) / sqrt(var + eps)`` where mean and var are taken over ``mask``; with
    ``shift_mean=False`` the mean is added back (used for rewards, whose sign matters).
    Padding stays 0 and never enters the statistics: whitening over all ``B * T`` entries
    would count the zeros of padding as data.
    """
    check_same_shape("x", x, "mask", mask)
    m = mask.bool()
    n = m.sum()
    if int(n) < 2:
        raise ValueError(f"masked_whiten needs at least 2 real entries, mask of shape "
                         f"{shape_of(mask)} has {int(n)}")
    mean = masked_mean(x, m)
    var = masked_sum((x - mean) ** 2, m) / (n - 1)
    white = (x - mean) / torch.sqrt(var + eps)
    if not shift_mean:
        white = white + mean
    return torch.where(m, white, torch.zeros((), dtype=x.dtype, device=x.device))
