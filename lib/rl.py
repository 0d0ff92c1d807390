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
            ``"none"``: std is taken as 1.

    Returns:
        ``[N]``: ``(r_i - mean_{group(i)}) / (std + eps)``.
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
        std = torch.ones((), dtype=rewards.dtype, device=rewards.device)
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
