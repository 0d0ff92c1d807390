"""Incremental decoding with a key/value cache, for MHA, GQA and MQA.

One attention layer with ``n_heads`` query heads and ``n_kv_heads`` key/value heads
(``n_kv_heads == n_heads``: MHA; ``1``: MQA; in between: GQA). Shapes, ``Dh = head_dim``:

    w_q [D_model, n_heads * Dh]     w_k, w_v [D_model, n_kv_heads * Dh]     w_o [n_heads * Dh, D_model]

The cache holds the *rotated* keys (RoPE applied at their absolute positions) and the
values of every token seen so far. A decode step projects only the new tokens, rotates
them at positions ``cache.length ..``, appends them, and attends over the whole cache.
"""
from __future__ import annotations

import torch

from lib._checks import check_ndim, shape_of
from lib.attention.mha import merge_heads, split_heads
from lib.attention.positions import apply_rope
from lib.attention.sdpa import scaled_dot_product_attention


class KVCache:
    """Preallocated keys and values of one layer, ``[batch, n_kv_heads, max_len, head_dim]``.

    ``append(k, v)`` writes ``T`` new positions at ``[length, length + T)`` and returns
    the filled prefix ``[:, :, :length + T]`` of both tensors; ``length`` is the number of
    positions written so far, and also the absolute position of the next token.
    """

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        shape = (batch, n_kv_heads, max_len, head_dim)
        if min(shape) < 1:
            raise ValueError(f"every cache dimension must be >= 1, got {shape}")
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # [B, Hkv, Lmax, Dh]
        self.v = torch.zeros(shape, dtype=dtype, device=device)  # [B, Hkv, Lmax, Dh]
        self.length = 0

    @property
    def n_kv_heads(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the two preallocated tensors."""
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v [B, Hkv, T, Dh]``; return all keys and values so far ``[B, Hkv, length, Dh]``."""
        check_ndim("k", k, 4)
        expected = (*self.k.shape[:2], k.shape[2], self.k.shape[3])  # [B, Hkv, T, Dh]
        for name, t in (("k", k), ("v", v)):
            if shape_of(t) != expected:
                raise ValueError(f"{name} must have shape (batch, n_kv_heads, T, head_dim) = "
                                 f"{expected}, got {shape_of(t)}")
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"appending {k.shape[2]} positions to a cache holding "
                             f"{self.length} overflows max_len={self.max_len}")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int,
                   batch: int = 1, bytes_per_element: int = 2) -> int:
    """``2 * layers * kv_heads * head_dim * seq * batch * bytes`` (the 2: keys and values)."""
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element


def _check_layer(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w_v: torch.Tensor,
                 w_o: torch.Tensor, n_heads: int, n_kv_heads: int) -> None:
    check_ndim("x", x, 3)
    d_model = x.shape[-1]
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
    if w_q.ndim != 2 or w_q.shape[0] != d_model or w_q.shape[1] % n_heads:
        raise ValueError(f"w_q must have shape ({d_model}, n_heads * head_dim) for x "
                         f"{shape_of(x)} and n_heads={n_heads}, got {shape_of(w_q)}")
    kv_shape = (d_model, n_kv_heads * (w_q.shape[1] // n_heads))
    for name, w in (("w_k", w_k), ("w_v", w_v)):
        if shape_of(w) != kv_shape:
            raise ValueError(f"{name} must have shape {kv_shape}, got {shape_of(w)}")
    if shape_of(w_o) != (w_q.shape[1], d_model):
        raise ValueError(f"w_o must have shape {(w_q.shape[1], d_model)}, got {shape_of(w_o)}")


def _project(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w_v: torch.Tensor,
             n_heads: int, n_kv_heads: int, offset: int,
             rope_base: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries ``[B, H, T, Dh]``, keys and values ``[B, Hkv, T, Dh]``, RoPE at ``offset``."""
    q = split_heads(x @ w_q, n_heads)  # [B, H, T, Dh]
    k = split_heads(x @ w_k, n_kv_heads)  # [B, Hkv, T, Dh]
    v = split_heads(x @ w_v, n_kv_heads)  # [B, Hkv, T, Dh]
    if rope_base is not None:
        q, k = apply_rope(q, offset, rope_base), apply_rope(k, offset, rope_base)
    return q, k, v


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
    """Each group of ``H / Hkv`` query heads shares one key/value head; causal, bottom-right."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)  # [B, H, Lk, Dh]: head h reads kv head h // group
    v = v.repeat_interleave(group, dim=1)  # [B, H, Lk, Dh]
    out = scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, Dh]
    return merge_heads(out) @ w_o  # [B, T, D_model]


def causal_self_attention(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                          w_v: torch.Tensor, w_o: torch.Tensor, n_heads: int,
                          n_kv_heads: int | None = None,
                          rope_base: float | None = 10000.0) -> torch.Tensor:
    """Full recomputation: causal (GQA) self-attention over ``x [B, L, D_model]``.

    The reference that incremental decoding must reproduce. ``n_kv_heads`` defaults to
    ``n_heads`` (MHA); ``rope_base=None`` disables RoPE.
    """
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    _check_layer(x, w_q, w_k, w_v, w_o, n_heads, n_kv_heads)
    q, k, v = _project(x, w_q, w_k, w_v, n_heads, n_kv_heads, 0, rope_base)
    return _attend(q, k, v, w_o)


def decode_step(x_new: torch.Tensor, cache: KVCache, w_q: torch.Tensor, w_k: torch.Tensor,
                w_v: torch.Tensor, w_o: torch.Tensor, n_heads: int,
                rope_base: float | None = 10000.0) -> torch.Tensor:
    """Attend ``T`` new tokens ``x_new [B, T, D_model]`` to everything cached, then to themselves.

    The new tokens sit at absolute positions ``cache.length .. cache.length + T - 1``
    (RoPE is applied there); their keys and values are appended to ``cache`` (which is
    mutated); the output ``[B, T, D_model]`` equals rows ``cache.length ..`` of
    :func:`causal_self_attention` on the whole sequence. ``T = 1`` is a decode step;
    ``T = prompt length`` on an empty cache is the prefill. The number of key/value heads
    is ``cache.n_kv_heads``.
    """
    _check_layer(x_new, w_q, w_k, w_v, w_o, n_heads, cache.n_kv_heads)
    q, k, v = _project(x_new, w_q, w_k, w_v, n_heads, cache.n_kv_heads, cache.length, rope_base)
    k_all, v_all = cache.append(k, v)  # [B, Hkv, length, Dh]
    return _attend(q, k_all, v_all, w_o)
