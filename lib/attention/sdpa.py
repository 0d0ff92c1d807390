"""Scaled dot-product attention, written out step by step.

    scores = q k^T * scale            # [..., Lq, Lk], scale = 1/sqrt(D) by default
    scores = scores + additive_mask   # or -inf where a bool mask is False
    P      = softmax(scores, axis=-1)  # over the *key* axis
    out    = P v                       # [..., Lq, Dv]

The scores and the softmax are computed in float32 (or float64 for float64 inputs), so
float16/bfloat16 inputs neither overflow in ``q k^T`` nor lose the softmax to rounding.
"""
from __future__ import annotations

import math

import torch

from lib._checks import check_broadcastable, check_min_ndim, shape_of
from lib.attention.masks import causal_mask


def _leading_shape(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, ...]:
    """Broadcast the batch/head axes of q, k, v, or raise a ValueError naming them."""
    try:
        return tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    except RuntimeError as err:
        raise ValueError(
            f"leading dimensions of q {shape_of(q)}, k {shape_of(k)} and v {shape_of(v)} "
            "do not broadcast"
        ) from err


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, ...]:
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_min_ndim(name, t, 2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last (head_dim) axis, got q {shape_of(q)} "
                         f"and k {shape_of(k)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys (axis -2), got "
                         f"k {shape_of(k)} and v {shape_of(v)}")
    return _leading_shape(q, k, v) + (q.shape[-2], k.shape[-2])


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float type is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def masked_scores(scores: torch.Tensor, mask: torch.Tensor | None,
                  is_causal: bool) -> torch.Tensor:
    """Apply a bool/additive mask and/or the causal mask to ``scores [..., Lq, Lk]``.

    Hidden entries become ``-inf``; an additive float mask is added. This happens
    *before* the softmax, so the surviving probabilities still sum to one.
    """
    if mask is not None:
        check_broadcastable("mask", mask.shape, scores.shape, "scores")
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        elif mask.is_floating_point():
            scores = scores + mask.to(scores.dtype)
        else:
            raise ValueError(f"mask must be bool or floating point, got dtype {mask.dtype} "
                             f"with shape {shape_of(mask)}")
    if is_causal:
        lq, lk = scores.shape[-2:]
        visible = causal_mask(lq, lk, device=scores.device)  # [Lq, Lk]
        scores = scores.masked_fill(~visible, float("-inf"))
    return scores


def safe_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; a row whose entries are all ``-inf`` gives zeros.

    The dead rows are replaced by zeros *before* the softmax (so no ``-inf - -inf = nan``
    is ever formed) and their probabilities are zeroed after it; ``torch.where`` routes no
    gradient into the replaced branch, so their gradients are exactly zero.

    Shapes: ``scores [..., Lk]`` (at least 1-d) -> same shape.
    """
    check_min_ndim("scores", scores, 1)
    alive = torch.isfinite(scores.detach().amax(dim=-1, keepdim=True))  # [..., Lq, 1]
    probs = torch.softmax(torch.where(alive, scores, torch.zeros_like(scores)), dim=-1)
    return torch.where(alive, probs, torch.zeros_like(probs))  # [..., Lq, Lk]


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                    is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """The attention matrix ``P = softmax(q k^T * scale + mask)``, ``[..., Lq, Lk]``.

    Computed in float32 (float64 for float64 inputs) whatever the input dtype.
    """
    _check_qkv(q, k, k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dtype = _compute_dtype(q.dtype)
    scores = q.to(dtype) @ k.to(dtype).transpose(-2, -1) * scale  # [..., Lq, Lk]
    return safe_softmax(masked_scores(scores, mask, is_causal))


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, is_causal: bool = False,
                                 scale: float | None = None, dropout_p: float = 0.0,
                                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Attention ``softmax(q k^T * scale + mask) v``, with optional attention dropout.

    Args:
        q: ``[..., Lq, D]`` queries; k: ``[..., Lk, D]`` keys; v: ``[..., Lk, Dv]`` values.
            Leading axes (batch, heads) broadcast. float16/bfloat16/float32/float64.
        mask: optional bool mask (True = may attend) or float mask added to the scores,
            broadcastable to ``[..., Lq, Lk]`` without enlarging it.
        is_causal: hide key ``j`` from query ``i`` unless ``j <= i + Lk - Lq`` (the last
            query is aligned with the last key). Combined with ``mask`` if both are given.
        scale: multiplies the scores; defaults to ``1 / sqrt(D)``.
        dropout_p: probability in ``[0, 1)`` of zeroing each attention weight ``P[..., i, j]``
            (inverted dropout: survivors are divided by ``1 - dropout_p``, so the expected
            output equals the output without dropout). ``0.0`` (the default) is the
            deterministic, evaluation-mode attention.
        generator: optional ``torch.Generator`` that draws the dropout mask (on the
            device of ``q``), for reproducible masks.

    Returns:
        ``[..., Lq, Dv]`` in the dtype of ``v``. A query that sees no key gets a zero
        output and zero (finite) gradients.
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1), got {dropout_p!r}")
    probs = attention_probs(q, k, mask, is_causal, scale)  # [..., Lq, Lk], fp32/fp64
    if dropout_p > 0.0:
        keep = torch.rand(probs.shape, generator=generator, device=probs.device,
                          dtype=probs.dtype) >= dropout_p  # [..., Lq, Lk], P(keep) = 1 - p
        probs = probs * keep / (1.0 - dropout_p)
    out = probs @ v.to(probs.dtype)  # [..., Lq, Dv]
    return out.to(v.dtype)
