"""Symmetric int8 weight quantization (absmax), in torch.

A float weight ``w`` is stored as 8-bit integers ``q`` and a float scale ``s``:

    s = max|w| / 127,    q = clamp(round(w / s), -127, 127),    w_hat = s * q.

With ``granularity="tensor"`` one scale covers the whole tensor; with
``granularity="channel"`` each row (output channel of a ``[d_out, d_in]`` weight) gets its
own scale, so one large row no longer coarsens the grid of every other row. Rounding
to the nearest grid point gives ``|w - w_hat| <= s / 2`` for every entry.
"""
from __future__ import annotations

import torch

from lib._checks import check_broadcastable, check_ndim, check_option, shape_of

QMAX = 127  # symmetric range [-127, 127]; -128 is left unused so that q and -q both fit


def int8_scale(w: torch.Tensor, granularity: str = "channel") -> torch.Tensor:
    """The absmax scale ``max|w| / 127``, per tensor or per row.

    Args:
        w: ``[d_out, d_in]`` float weight.
        granularity: ``"tensor"`` (returns shape ``[1, 1]``) or ``"channel"``
            (returns ``[d_out, 1]``, one scale per row).

    Returns:
        float scale(s) in ``w``'s dtype, broadcastable against ``w``. An all-zero row gets
        scale 1 so that dequantization stays exact (zero) instead of dividing by zero.
    """
    check_ndim("w", w, 2)
    check_option("granularity", granularity, ("tensor", "channel"))
    if granularity == "tensor":
        absmax = w.abs().amax().reshape(1, 1)  # [1, 1]
    else:
        absmax = w.abs().amax(dim=1, keepdim=True)  # [d_out, 1]
    scale = absmax / QMAX
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_int8(w: torch.Tensor,
                  granularity: str = "channel") -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``w [d_out, d_in]`` to ``(q int8 [d_out, d_in], scale)``.

    ``scale`` is ``[1, 1]`` or ``[d_out, 1]`` (see :func:`int8_scale`).
    """
    scale = int8_scale(w, granularity)
    q = torch.clamp(torch.round(w / scale), -QMAX, QMAX).to(torch.int8)  # [d_out, d_in]
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``scale * q`` as floats, ``[d_out, d_in]``; ``scale`` must broadcast to ``q``."""
    check_ndim("q", q, 2)
    if q.dtype != torch.int8:
        raise ValueError(f"q must have dtype torch.int8, got {q.dtype} of shape {shape_of(q)}")
    check_broadcastable("scale", scale.shape, q.shape, "q")
    return scale * q.to(scale.dtype)


def int8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """A linear layer with an int8 weight: ``x [..., d_in] -> [..., d_out]``.

    Weight-only quantization: the weight is dequantized and the matmul runs in ``x``'s
    float dtype. (A production kernel dequantizes tile by tile inside the matmul so the
    full-precision weight never exists in memory; the arithmetic is the same.)
    """
    w_hat = dequantize_int8(q, scale).to(x.dtype)  # [d_out, d_in]
    if x.shape[-1] != w_hat.shape[1]:
        raise ValueError(
            f"x [..., d_in] must match q [d_out, d_in], got x {shape_of(x)} and q {shape_of(q)}"
        )
    y = x @ w_hat.T  # [..., d_out]
    return y if bias is None else y + bias
