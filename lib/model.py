"""A tiny decoder-only language model (Llama-style) built from ``lib``'s own parts.

Layers, with ``x [B, L, d_model]`` and weights stored as ``torch.nn.Linear`` does,
``W [d_out, d_in]`` applied as ``x W^T``:

    rmsnorm(x, g) = x / sqrt(mean(x^2, -1) + eps) * g
    swiglu(x)     = (silu(x W1^T) * (x W3^T)) W2^T,   silu(z) = z * sigmoid(z)
    block(x)      = h + swiglu(rmsnorm(h)),   h = x + attention(rmsnorm(x))   (pre-norm)
    TinyLM(ids)   = rmsnorm(block_N(... block_1(E[ids]))) W_head^T             [B, L, V]

Attention is causal multi-head attention with RoPE on queries and keys
(``lib.attention.apply_rope``, ``lib.attention.scaled_dot_product_attention``); there is
no positional embedding and no bias anywhere. The head is either its own matrix or the
embedding matrix itself (``tie_weights=True``).

Initialisation (as in Stanford CS336's assignment 1; BERT's TensorFlow code also truncates
its normal initializer, while GPT-2's reference code draws a plain ``N(0, 0.02^2)``):
``Linear(d_in, d_out)`` draws ``N(0, s^2)`` with ``s = sqrt(2 / (d_in +
d_out))`` truncated to ``[-3s, 3s]``; ``Embedding`` draws ``N(0, 1)`` truncated to
``[-3, 3]``; RMSNorm gains start at 1.
"""
from __future__ import annotations

import math

import torch

from lib._checks import check_min_ndim, check_ndim, shape_of
from lib.attention.mha import merge_heads, split_heads
from lib.attention.positions import apply_rope
from lib.attention.sdpa import scaled_dot_product_attention


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x / sqrt(mean(x^2, -1) + eps) * weight`` for ``x [..., D]``, ``weight [D]``.

    The mean square is taken in float32 (or float64 for float64 input) and the result is
    cast back to ``x``'s dtype, so half-precision inputs do not overflow in ``x^2``.
    """
    check_min_ndim("x", x, 1)
    if shape_of(weight) != shape_of(x)[-1:]:
        raise ValueError(f"weight must have shape {shape_of(x)[-1:]} to match x "
                         f"{shape_of(x)}, got {shape_of(weight)}")
    xf = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)  # [..., D]
    inv_rms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)  # [..., 1]
    return (xf * inv_rms).to(x.dtype) * weight  # [..., D]


def silu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)`` elementwise (also called swish); any shape."""
    return x * torch.sigmoid(x)


def swiglu(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
           w3: torch.Tensor) -> torch.Tensor:
    """The gated feed-forward ``(silu(x w1^T) * (x w3^T)) w2^T``.

    ``x [..., d_model]``, ``w1, w3 [d_ff, d_model]``, ``w2 [d_model, d_ff]``; returns
    ``[..., d_model]``.
    """
    check_min_ndim("x", x, 1)
    d_model = x.shape[-1]
    check_ndim("w1", w1, 2)
    d_ff = w1.shape[0]
    for name, w, want in (("w1", w1, (d_ff, d_model)), ("w3", w3, (d_ff, d_model)),
                          ("w2", w2, (d_model, d_ff))):
        if shape_of(w) != want:
            raise ValueError(f"{name} must have shape {want} for x {shape_of(x)} and w1 "
                             f"{shape_of(w1)}, got {shape_of(w)}")
    gate = silu(x @ w1.T)  # [..., d_ff]
    up = x @ w3.T  # [..., d_ff]
    return (gate * up) @ w2.T  # [..., d_model]


class Linear(torch.nn.Module):
    """``y = x W^T`` with ``W [d_out, d_in]``, no bias.

    Init: ``N(0, s^2)``, ``s = sqrt(2 / (d_in + d_out))``, truncated to ``[-3s, 3s]``.
    """

    def __init__(self, d_in: int, d_out: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        std = math.sqrt(2.0 / (d_in + d_out))
        self.weight = torch.nn.Parameter(torch.empty(d_out, d_in, dtype=dtype))
        torch.nn.init.trunc_normal_(self.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T  # [..., d_out]


class Embedding(torch.nn.Module):
    """Row lookup ``E[ids]`` with ``E [num_embeddings, d]``; init ``N(0, 1)`` truncated to ``[-3, 3]``."""

    def __init__(self, num_embeddings: int, d: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(num_embeddings, d, dtype=dtype))
        torch.nn.init.trunc_normal_(self.weight, mean=0.0, std=1.0, a=-3.0, b=3.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype.is_floating_point:
            raise ValueError(f"ids must be an integer tensor, got {ids.dtype}")
        return self.weight[ids]  # [..., d]


class RMSNorm(torch.nn.Module):
    """``rmsnorm`` with a learned gain ``[d]`` that starts at 1."""

    def __init__(self, d: int, eps: float = 1e-5, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rmsnorm(x, self.weight, self.eps)


class SwiGLU(torch.nn.Module):
    """``swiglu`` with its three matrices as ``Linear`` layers (``w1, w3 [d_ff, d_model]``)."""

    def __init__(self, d_model: int, d_ff: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.w1 = Linear(d_model, d_ff, dtype)
        self.w2 = Linear(d_ff, d_model, dtype)
        self.w3 = Linear(d_model, d_ff, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, self.w1.weight, self.w2.weight, self.w3.weight)


class CausalSelfAttention(torch.nn.Module):
    """Multi-head causal self-attention with RoPE (rotate-half) on queries and keys."""

    def __init__(self, d_model: int, n_heads: int, rope_base: float = 10000.0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model={d_model} must split into n_heads={n_heads} heads "
                             "of even size")
        self.n_heads, self.rope_base = n_heads, rope_base
        self.q_proj = Linear(d_model, d_model, dtype)
        self.k_proj = Linear(d_model, d_model, dtype)
        self.v_proj = Linear(d_model, d_model, dtype)
        self.o_proj = Linear(d_model, d_model, dtype)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        q = split_heads(self.q_proj(x), self.n_heads)  # [B, H, L, Dh]
        k = split_heads(self.k_proj(x), self.n_heads)  # [B, H, L, Dh]
        v = split_heads(self.v_proj(x), self.n_heads)  # [B, H, L, Dh]
        q = apply_rope(q, base=self.rope_base, positions=positions)
        k = apply_rope(k, base=self.rope_base, positions=positions)
        out = scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, L, Dh]
        return self.o_proj(merge_heads(out))  # [B, L, d_model]


class Block(torch.nn.Module):
    """Pre-norm block: ``h = x + attn(norm1(x))``, ``out = h + ffn(norm2(h))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, rope_base: float = 10000.0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model, dtype=dtype)
        self.attn = CausalSelfAttention(d_model, n_heads, rope_base, dtype)
        self.norm2 = RMSNorm(d_model, dtype=dtype)
        self.ffn = SwiGLU(d_model, d_ff, dtype)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        h = x + self.attn(self.norm1(x), positions)  # [B, L, d_model]
        return h + self.ffn(self.norm2(h))  # [B, L, d_model]


class TinyLM(torch.nn.Module):
    """Token embedding, ``n_layers`` pre-norm blocks, a final RMSNorm and the output head.

    ``forward(ids [B, L]) -> logits [B, L, vocab_size]`` (float), ``L <= context_length``.
    Parameter count (no biases)::

        V d + n_layers (4 d^2 + 3 d d_ff + 2 d) + d + (0 if tie_weights else V d)
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, n_layers: int,
                 n_heads: int, d_ff: int, rope_base: float = 10000.0,
                 tie_weights: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.context_length = context_length
        self.embed = Embedding(vocab_size, d_model, dtype)
        self.blocks = torch.nn.ModuleList(
            Block(d_model, n_heads, d_ff, rope_base, dtype) for _ in range(n_layers))
        self.norm = RMSNorm(d_model, dtype=dtype)
        self.head = None if tie_weights else Linear(d_model, vocab_size, dtype)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        check_ndim("ids", ids, 2)
        if ids.shape[1] > self.context_length:
            raise ValueError(f"ids {shape_of(ids)} is longer than context_length="
                             f"{self.context_length}")
        x = self.embed(ids)  # [B, L, d_model]
        for block in self.blocks:
            x = block(x, positions)  # [B, L, d_model]
        x = self.norm(x)  # [B, L, d_model]
        head = self.embed.weight if self.head is None else self.head.weight  # [V, d_model]
        return x @ head.T  # [B, L, V]


def get_batch(data: torch.Tensor, batch_size: int, context_length: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of a token stream ``data [N]``: inputs and next tokens.

    Starts ``s`` are uniform on ``0 .. N - context_length - 1``; ``x[b] = data[s : s + L]``,
    ``y[b] = data[s + 1 : s + L + 1]`` (``L = context_length``), both ``[B, L]`` long.
    """
    check_ndim("data", data, 1)
    if data.shape[0] <= context_length:
        raise ValueError(f"data {shape_of(data)} must be longer than "
                         f"context_length={context_length}")
    starts = torch.randint(0, data.shape[0] - context_length, (batch_size,),
                           generator=generator)  # [B]
    offsets = torch.arange(context_length)  # [L]
    index = starts[:, None] + offsets[None, :]  # [B, L]
    return data[index].long(), data[index + 1].long()
