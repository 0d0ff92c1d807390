"""Positional information: sinusoidal embeddings, RoPE and ALiBi.

* Sinusoidal (Vaswani et al. 2017): a fixed ``[L, D]`` table added to the token
  embeddings, ``PE[p, 2i] = sin(p w_i)``, ``PE[p, 2i+1] = cos(p w_i)``, ``w_i = base^(-2i/D)``.
* RoPE (Su et al. 2021): rotate each pair of query/key features by the angle ``p w_i``;
  then ``<R_m q, R_n k>`` depends on ``m - n`` only. By default this module pairs feature
  ``i`` with feature ``i + D/2`` (the "rotate-half" layout of GPT-NeoX and Hugging Face's
  Llama); ``interleaved=True`` pairs ``2i`` with ``2i+1`` (Meta's Llama reference code).
* ALiBi (Press et al. 2021): no embedding at all; head ``h`` adds ``-m_h * distance`` to
  the attention scores.
"""
from __future__ import annotations

import math

import torch

from lib._checks import check_broadcastable, check_min_ndim, shape_of


def _check_even(name: str, d: int) -> None:
    if d % 2:
        raise ValueError(f"{name} must be even, got {d}")


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0,
                         dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """The ``[n_positions, d_model]`` table of sines (even columns) and cosines (odd)."""
    _check_even("d_model", d_model)
    pos = torch.arange(n_positions, dtype=torch.float64, device=device)  # [L]
    freqs = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
                     / d_model)  # [D/2]
    angles = pos[:, None] * freqs[None, :]  # [L, D/2]
    table = torch.empty(n_positions, d_model, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table.to(dtype)


def rope_angles(positions: torch.Tensor, head_dim: int,
                base: float = 10000.0) -> torch.Tensor:
    """Float64 angles ``positions[..., None] * base^(-2i/head_dim)``, shape ``[..., head_dim/2]``.

    Example: ``rope_angles(torch.tensor([0, 1]), 4, base=100.0)`` is
    ``[[0, 0], [1, 0.1]]`` (frequencies ``100^0 = 1`` and ``100^(-1/2) = 0.1``).
    """
    _check_even("head_dim", head_dim)
    freqs = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64,
                                   device=positions.device) / head_dim)  # [D/2]
    return positions.to(torch.float64)[..., None] * freqs  # [..., D/2]


def apply_rope(x: torch.Tensor, offset: int = 0, base: float = 10000.0,
               positions: torch.Tensor | None = None,
               interleaved: bool = False) -> torch.Tensor:
    """Rotate the pairs of features of ``x [..., L, D]`` by the angles of their positions.

    Position ``p`` of a row is ``offset + row index`` (``offset`` is the number of tokens
    already in a KV cache: a decoded token must be rotated by its absolute position, not
    by 0), unless ``positions`` is given: an integer tensor that broadcasts to
    ``x.shape[:-1]`` (for example ``[L]`` or ``[B, 1, L]`` for ``x [B, H, L, D]``; packed
    or left-padded sequences), which then overrides ``offset``.

    Pair ``i`` (``i = 0 .. D/2-1``) turns by ``a = p * base^(-2i/D)``:
    ``(u, v) -> (u cos a - v sin a, u sin a + v cos a)``. Which features form pair ``i``:

    * ``interleaved=False`` (rotate-half; GPT-NeoX, Hugging Face Llama):
      ``u = x[..., i]``, ``v = x[..., i + D/2]``;
    * ``interleaved=True`` (the complex-number form of the RoFormer paper and Meta's
      Llama reference code): ``u = x[..., 2i]``, ``v = x[..., 2i+1]``, i.e.
      ``(u + iv) * e^{ia}``.

    The two differ only by a fixed permutation of the features. A rotation, so norms are
    kept. Float64 angles, the result in ``x``'s dtype.
    """
    check_min_ndim("x", x, 2)
    length, head_dim = x.shape[-2:]
    _check_even(f"the last axis of x {shape_of(x)}", head_dim)
    if positions is None:
        positions = torch.arange(offset, offset + length, device=x.device)  # [L]
    else:
        if positions.dtype.is_floating_point or positions.dtype == torch.bool:
            raise ValueError(f"positions must be an integer tensor, got {positions.dtype}")
        check_broadcastable("positions", shape_of(positions), x.shape[:-1], "x.shape[:-1]")
    angles = rope_angles(positions, head_dim, base)  # [..., L, D/2]
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    if interleaved:
        u, v = x[..., 0::2], x[..., 1::2]  # [..., L, D/2] each: features 2i and 2i+1
        # stack then flatten puts the rotated pair back at (2i, 2i+1)
        return torch.stack([u * cos - v * sin, u * sin + v * cos], dim=-1).flatten(-2)
    u, v = x[..., : head_dim // 2], x[..., head_dim // 2:]  # [..., L, D/2] each
    return torch.cat([u * cos - v * sin, u * sin + v * cos], dim=-1)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Float32 ``[n_heads]`` ALiBi slopes ``2^(-8 h / n)``, ``h = 1..n``.

    For ``n_heads`` not a power of two, the paper's rule: the slopes of the largest power
    of two below it, then every other slope of twice that many heads.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    closest = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_heads: int, lq: int, lk: int | None = None) -> torch.Tensor:
    """Additive float32 bias ``[n_heads, lq, lk]``: ``m_h * (j - (i + lk - lq))``.

    Zero on the aligned diagonal, ``-m_h`` per step into the past. Entries for future keys
    are positive, so combine it with a causal mask (``is_causal=True``).
    """
    lk = lq if lk is None else lk
    rows = torch.arange(lq)[:, None] + (lk - lq)  # [Lq, 1], aligned bottom-right
    cols = torch.arange(lk)[None, :]  # [1, Lk]
    distance = (cols - rows).to(torch.float32)  # [Lq, Lk]
    return alibi_slopes(n_heads)[:, None, None] * distance  # [H, Lq, Lk]
