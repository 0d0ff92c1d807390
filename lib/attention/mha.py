"""Multi-head attention: forward, and its backward pass written by hand.

Weights are ``[D_model, D_model]`` and are applied as ``x @ w``. With ``H`` heads of size
``Dh = D_model / H``:

    Q = split(x @ w_q), K = split(x @ w_k), V = split(x @ w_v)    # [B, H, L, Dh]
    O = softmax(Q K^T / sqrt(Dh) + mask) V                         # [B, H, L, Dh]
    y = merge(O) @ w_o                                              # [B, L, D_model]

``split`` reshapes ``[B, L, D_model]`` to ``[B, L, H, Dh]`` and *then* moves the head axis
forward; ``merge`` undoes exactly that.
"""
from __future__ import annotations

import math

import torch

from lib._checks import check_ndim, shape_of
from lib.attention.sdpa import attention_probs, scaled_dot_product_attention


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, L, H * Dh]`` to ``[B, H, L, Dh]``: feature ``h * Dh + d`` goes to head ``h``."""
    check_ndim("x", x, 3)
    batch, length, d_model = x.shape
    if n_heads < 1 or d_model % n_heads:
        raise ValueError(f"the last axis of x {shape_of(x)} must split into n_heads={n_heads} "
                         "equal heads")
    return x.view(batch, length, n_heads, d_model // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, L, Dh]`` to ``[B, L, H * Dh]``, the inverse of :func:`split_heads`."""
    check_ndim("x", x, 4)
    batch, n_heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, n_heads * head_dim)


def _check_weights(x: torch.Tensor, weights: dict[str, torch.Tensor]) -> None:
    check_ndim("x", x, 3)
    d_model = x.shape[-1]
    for name, w in weights.items():
        if shape_of(w) != (d_model, d_model):
            raise ValueError(f"{name} must have shape ({d_model}, {d_model}) to match "
                             f"x {shape_of(x)}, got {shape_of(w)}")


def multi_head_attention(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                         w_v: torch.Tensor, w_o: torch.Tensor, n_heads: int,
                         mask: torch.Tensor | None = None,
                         is_causal: bool = False) -> torch.Tensor:
    """Self-attention with ``n_heads`` heads; ``x [B, L, D_model]`` to ``[B, L, D_model]``.

    ``mask`` broadcasts to the scores ``[B, H, L, L]`` (bool: True = may attend; float:
    added). No biases, no dropout: the four matrices are the only parameters.
    """
    _check_weights(x, {"w_q": w_q, "w_k": w_k, "w_v": w_v, "w_o": w_o})
    q = split_heads(x @ w_q, n_heads)  # [B, H, L, Dh]
    k = split_heads(x @ w_k, n_heads)  # [B, H, L, Dh]
    v = split_heads(x @ w_v, n_heads)  # [B, H, L, Dh]
    out = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
    return merge_heads(out) @ w_o  # [B, L, D_model]


def multi_head_attention_backward(
    d_y: torch.Tensor, x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
    w_v: torch.Tensor, w_o: torch.Tensor, n_heads: int,
    mask: torch.Tensor | None = None, is_causal: bool = False,
) -> dict[str, torch.Tensor]:
    """Gradients of ``L`` w.r.t. ``x`` and the four weights, given ``d_y = dL/dy``.

    The forward intermediates are recomputed (no autograd is used). In order:

        dW_o = merge(O)^T dy              dO = split(dy W_o^T)
        dV   = P^T dO                      dP = dO V^T
        dS   = P * (dP - rowsum(dP * P))   (softmax Jacobian; masked entries have P = 0)
        dQ   = dS K * s                    dK = dS^T Q * s
        dW_q = x^T merge(dQ)  (summed over the batch; merging sums the heads into W_q)
        dx   = merge(dQ) W_q^T + merge(dK) W_k^T + merge(dV) W_v^T

    Returns a dict with keys ``x, w_q, w_k, w_v, w_o``, each shaped like its input.
    """
    _check_weights(x, {"w_q": w_q, "w_k": w_k, "w_v": w_v, "w_o": w_o})
    if shape_of(d_y) != shape_of(x):
        raise ValueError(f"d_y must have the shape of x {shape_of(x)}, got {shape_of(d_y)}")
    q = split_heads(x @ w_q, n_heads)  # [B, H, L, Dh]
    k = split_heads(x @ w_k, n_heads)  # [B, H, L, Dh]
    v = split_heads(x @ w_v, n_heads)  # [B, H, L, Dh]
    scale = 1.0 / math.sqrt(q.shape[-1])
    p = attention_probs(q, k, mask, is_causal).to(x.dtype)  # [B, H, L, L]
    o = p @ v  # [B, H, L, Dh]

    d_w_o = torch.einsum("bli,blj->ij", merge_heads(o), d_y)  # [D, D]
    d_o = split_heads(d_y @ w_o.T, n_heads)  # [B, H, L, Dh]
    d_v = p.transpose(-2, -1) @ d_o  # [B, H, L, Dh]
    d_p = d_o @ v.transpose(-2, -1)  # [B, H, L, L]
    d_s = p * (d_p - (d_p * p).sum(dim=-1, keepdim=True))  # [B, H, L, L]
    d_q = d_s @ k * scale  # [B, H, L, Dh]
    d_k = d_s.transpose(-2, -1) @ q * scale  # [B, H, L, Dh]

    d_q, d_k, d_v = merge_heads(d_q), merge_heads(d_k), merge_heads(d_v)  # [B, L, D]
    return {
        "x": d_q @ w_q.T + d_k @ w_k.T + d_v @ w_v.T,  # [B, L, D]
        "w_q": torch.einsum("bli,blj->ij", x, d_q),  # [D, D]
        "w_k": torch.einsum("bli,blj->ij", x, d_k),
        "w_v": torch.einsum("bli,blj->ij", x, d_v),
        "w_o": d_w_o,
    }
