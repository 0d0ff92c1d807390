"""Tiled attention with the online softmax, in plain torch (the FlashAttention algorithm).

``blocked_attention`` computes exactly what ``softmax(q k^T * scale + mask) v`` computes,
but visits the keys one block at a time and keeps, for every query row, only three
running quantities: the largest scaled score seen so far ``m``, the sum of
``exp(score - m)`` so far ``l``, and the un-normalized output ``acc = sum exp(score - m) v``.
When a new block raises the running maximum from ``m`` to ``m'``, everything accumulated
so far is rescaled by ``exp(m - m')``, so that at the end ``acc / l`` is the softmax-weighted
average of the values and ``m + log l`` is the row's log-sum-exp.

No tensor larger than one ``[..., block_size, block_size]`` score tile is ever created, so
the working memory grows linearly with the sequence length instead of quadratically.

Tile skipping: a tile whose scores a mask hides entirely contributes ``e^{-inf} = 0`` to
``l`` and ``acc``, so the loop can leave it out. ``is_causal`` skips the key blocks past the
diagonal; a boolean ``mask`` (sliding window, global tokens, random blocks) skips every tile
that :func:`live_tiles` marks dead, which is FlashAttention's block-sparse attention. The
mask itself is ``[Lq, Lk]`` booleans (one byte each) and finding its live tiles makes
boolean temporaries of that size; only the scores stay within one tile.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from lib._checks import check_broadcastable, check_in_range, check_min_ndim, shape_of
from lib.attention.sdpa import _check_qkv


def _causal_tile_mask(n_rows: int, k_start: int, k_stop: int, shift: int,
                      device: torch.device) -> torch.Tensor:
    """Bool ``[n_rows, k_stop - k_start]``: True where query row ``r`` may see key ``j``.

    Bottom-right alignment: row ``r`` sees key ``j`` iff ``j <= r + shift``; for the whole
    sequence ``shift = Lk - Lq``, so the last query sees every key (the KV-cache convention).
    """
    rows = torch.arange(n_rows, device=device)[:, None]           # [bq, 1]
    cols = torch.arange(k_start, k_stop, device=device)[None, :]  # [1, bk]
    return cols <= rows + shift


def _check_bool_mask(mask: torch.Tensor) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = may attend), got dtype {mask.dtype} "
                         f"with shape {shape_of(mask)}")


def live_tiles(mask: torch.Tensor, block_size: int) -> torch.Tensor:
    """Bool ``[ceil(Lq / block_size), ceil(Lk / block_size)]``: the tiles a mask leaves alive.

    ``mask`` is bool ``[..., Lq, Lk]`` (True = may attend). Tile ``(a, b)`` holds query rows
    ``a * block_size`` to ``(a + 1) * block_size - 1`` and the same range of key columns
    (the last row and column of tiles may be shorter). It is live iff the mask is True
    somewhere in it, for some index of the leading axes: one loop shared by a whole batch
    can skip only the tiles that every batch entry hides. A tiled kernel computes the scores
    of live tiles only, so ``live.sum()`` tiles of at most ``block_size**2`` scores each.

    Example: ``live_tiles(sliding_window_mask(4, 2), 2)`` -> ``[[True, False], [True, True]]``.
    """
    check_min_ndim("mask", mask, 2)
    _check_bool_mask(mask)
    check_in_range("block_size", block_size, 1, math.inf)
    lq, lk = mask.shape[-2:]
    n_q, n_k = -(-lq // block_size), -(-lk // block_size)          # ceil divisions
    anywhere = mask.any(dim=tuple(range(mask.ndim - 2))) if mask.ndim > 2 else mask  # [Lq, Lk]
    padded = mask.new_zeros((n_q * block_size, n_k * block_size))  # False past the ends
    padded[:lq, :lk] = anywhere
    tiles = padded.reshape(n_q, block_size, n_k, block_size)       # [nq, bs, nk, bs]
    return tiles.any(dim=1).any(dim=-1)                            # [nq, nk]


def _visible_and_live(mask: torch.Tensor | None, is_causal: bool, scores_shape: tuple[int, ...],
                      block_size: int, device: torch.device
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check ``mask`` and return ``(visible [..., Lq, Lk], live [nq, nk])``, or ``(None, None)``.

    ``visible`` is ``mask`` (with the causal mask folded in when ``is_causal``), expanded on
    its last two axes to ``[Lq, Lk]`` so that it can be sliced by tile; ``live`` is
    :func:`live_tiles` of it.
    """
    if mask is None:
        return None, None
    _check_bool_mask(mask)
    check_broadcastable("mask", mask.shape, scores_shape, "scores")
    lq, lk = scores_shape[-2:]
    visible = torch.broadcast_to(mask, torch.broadcast_shapes(mask.shape, (lq, lk)))
    visible = visible.to(device)                                   # [..., Lq, Lk]
    if is_causal:  # the whole sequence is one tile here: j <= i + Lk - Lq
        visible = visible & _causal_tile_mask(lq, 0, lk, lk - lq, device)
    return visible, live_tiles(visible, block_size)


def _key_tiles(q_start: int, q_end: int, lq: int, lk: int, is_causal: bool,
               visible: torch.Tensor | None, live: torch.Tensor | None, block_size: int,
               device: torch.device) -> Iterator[tuple[int, int, torch.Tensor | None]]:
    """Yield ``(k_start, k_end, keep)`` for each key tile that query rows ``q_start:q_end`` visit.

    ``keep`` is None when the whole tile is visible, else a bool tensor broadcastable to
    the score tile ``[..., q_end - q_start, k_end - k_start]``. With a mask, only the
    tiles ``live`` marks are visited; with ``is_causal`` alone, the key blocks that even
    the block's last query cannot see are skipped. The forward and the backward both walk
    this iterator, so they skip the same tiles.
    """
    if visible is not None:
        for b in live[q_start // block_size].nonzero().flatten().tolist():
            k_start, k_end = b * block_size, min((b + 1) * block_size, lk)
            yield k_start, k_end, visible[..., q_start:q_end, k_start:k_end]
        return
    shift = q_start + lk - lq  # global query i = q_start + r sees keys j <= i + lk - lq
    k_stop = max(0, min(lk, (q_end - q_start) + shift)) if is_causal else lk
    for k_start in range(0, k_stop, block_size):
        k_end = min(k_start + block_size, lk)
        keep = (_causal_tile_mask(q_end - q_start, k_start, k_end, shift, device)
                if is_causal else None)
        yield k_start, k_end, keep


def _query_block(q_blk: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 tiles: Iterator[tuple[int, int, torch.Tensor | None]], scale: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Online softmax over the key tiles ``tiles`` (from :func:`_key_tiles`) for one query block.

    ``q_blk [..., bq, D]``, ``k [..., Lk, D]``, ``v [..., Lk, Dv]``; returns
    ``out [..., bq, Dv]`` and ``lse [..., bq]``.
    """
    lq_blk = q_blk.shape[-2]
    batch = torch.broadcast_shapes(q_blk.shape[:-2], k.shape[:-2], v.shape[:-2])
    m = q_blk.new_full((*batch, lq_blk), -math.inf)               # running max   [..., bq]
    l = q_blk.new_zeros((*batch, lq_blk))                         # running sum   [..., bq]
    acc = q_blk.new_zeros((*batch, lq_blk, v.shape[-1]))          # running out   [..., bq, Dv]
    for k_start, k_end, keep in tiles:
        s = q_blk @ k[..., k_start:k_end, :].transpose(-2, -1) * scale  # [..., bq, bk]
        if keep is not None:
            s = s.masked_fill(~keep, -math.inf)
        m_new = torch.maximum(m, s.amax(dim=-1))                    # [..., bq]
        m_safe = torch.where(m_new == -math.inf, 0.0, m_new)         # rows with no key yet
        alpha = torch.exp(m - m_safe)                                # rescales the old sums
        p = torch.exp(s - m_safe[..., None])                         # [..., bq, bk]
        l = alpha * l + p.sum(dim=-1)
        acc = alpha[..., None] * acc + p @ v[..., k_start:k_end, :]
        m = m_new
    l_safe = torch.where(l == 0, 1.0, l)          # fully masked rows: output 0, lse -inf
    out = acc / l_safe[..., None]
    lse = torch.where(l > 0, m + torch.log(l_safe), -math.inf)
    return out, lse


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      is_causal: bool = False, scale: float | None = None,
                      block_size: int = 64, *, mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention by tiles with the online softmax; returns ``(out, lse)``.

    Args:
        q: queries ``[..., Lq, D]``; k: keys ``[..., Lk, D]``; v: values ``[..., Lk, Dv]``.
            Leading dimensions broadcast. Any floating dtype; the recurrence runs in
            ``q``'s dtype (use float64 for an exact reference).
        is_causal: if True, query ``i`` sees key ``j`` only when ``j <= i + Lk - Lq``
            (bottom-right alignment). A query that sees no key (``Lq > Lk``) gets a zero
            output and ``lse = -inf``.
        scale: multiplies ``q k^T``; defaults to ``1 / sqrt(D)``.
        block_size: rows of queries and of keys per tile (``>= 1``).
        mask: optional bool mask (True = may attend) broadcastable to ``[..., Lq, Lk]``
            without enlarging it; combined with ``is_causal`` if both are given. Tiles the
            mask hides entirely (:func:`live_tiles`) are skipped, not computed, so a
            sliding window of ``w`` keys costs ``O(L w)`` instead of ``O(L^2)``. Rows it
            hides entirely get a zero output and ``lse = -inf``, as above.

    Returns:
        ``out [..., Lq, Dv] = softmax(q k^T * scale + mask) v`` and
        ``lse [..., Lq] = log sum_j exp(scale * q_i . k_j)`` over the visible keys.

    The per-row recurrence over key blocks ``b`` (scores ``s_b``, values ``V_b``) is
    ``m' = max(m, rowmax s_b)``, ``l' = e^{m-m'} l + rowsum e^{s_b - m'}``,
    ``acc' = e^{m-m'} acc + e^{s_b - m'} V_b``; finally ``out = acc / l`` and
    ``lse = m + log l``. Differentiable through torch autograd.
    """
    _check_qkv(q, k, v)
    check_in_range("block_size", block_size, 1, math.inf)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    lq, lk = q.shape[-2], k.shape[-2]
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    visible, live = _visible_and_live(mask, is_causal, (*batch, lq, lk), block_size, q.device)
    outs, lses = [], []
    for q_start in range(0, lq, block_size):
        q_end = min(q_start + block_size, lq)
        q_blk = q[..., q_start:q_end, :]                             # [..., bq, D]
        tiles = _key_tiles(q_start, q_end, lq, lk, is_causal, visible, live, block_size,
                           q.device)
        out, lse = _query_block(q_blk, k, v, tiles, scale)
        outs.append(out)
        lses.append(lse)
    if not outs:  # Lq == 0: nothing to compute, keep the shapes right
        return (q.new_zeros((*batch, 0, v.shape[-1])), q.new_zeros((*batch, 0)))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


def blocked_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               out: torch.Tensor, lse: torch.Tensor, grad_out: torch.Tensor,
                               is_causal: bool = False, scale: float | None = None,
                               block_size: int = 64, *, mask: torch.Tensor | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""FlashAttention-2's backward pass by tiles: ``(dq, dk, dv)`` from the saved ``lse``.

    With ``S = scale * q k^T`` (masked), ``P = exp(S - lse)`` (the softmax, recomputed one
    tile at a time from the row log-sum-exp the forward saved) and ``dO = grad_out``:

    .. math::

        dV = P^T dO, \quad dP = dO\,V^T, \quad
        \delta_i = \sum_j P_{ij} dP_{ij} = \textstyle\sum_d dO_{id} O_{id}, \quad
        dS = P \circ (dP - \delta), \quad dQ = \text{scale}\; dS\,K, \quad
        dK = \text{scale}\; dS^T Q.

    ``delta = rowsum(dO * O)`` replaces a row sum over all ``Lk`` keys by one over ``Dv``
    features, which is what lets each tile be processed on its own. No tensor larger than
    one ``[..., block_size, block_size]`` tile of scores is formed; ``dk`` and ``dv`` are
    accumulated across query blocks.

    Args:
        q, k, v: as for :func:`blocked_attention` (leading dimensions broadcast).
        out, lse: what :func:`blocked_attention` returned for them.
        grad_out: ``[..., Lq, Dv]``, the gradient of the loss with respect to ``out``.
        is_causal, scale, block_size, mask: the same as in the forward call. The backward
            visits exactly the tiles the forward visited (a tile the mask hides has
            ``P = 0`` there, so it adds nothing to any gradient).

    Returns:
        ``dq`` shaped like ``q``, ``dk`` like ``k``, ``dv`` like ``v``. Rows that saw no
        key (``lse = -inf``) contribute nothing.
    """
    _check_qkv(q, k, v)
    check_in_range("block_size", block_size, 1, math.inf)
    lq, lk = q.shape[-2], k.shape[-2]
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    for name, t, want in [("out", out, (*batch, lq, v.shape[-1])),
                          ("grad_out", grad_out, (*batch, lq, v.shape[-1])),
                          ("lse", lse, (*batch, lq))]:
        if tuple(t.shape) != tuple(want):
            raise ValueError(f"{name} must have shape {tuple(want)} for q {tuple(q.shape)}, "
                             f"k {tuple(k.shape)}, v {tuple(v.shape)}; got {tuple(t.shape)}")
    visible, live = _visible_and_live(mask, is_causal, (*batch, lq, lk), block_size, q.device)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    delta = (grad_out * out).sum(dim=-1)                               # [..., Lq]
    lse_safe = torch.where(lse == -math.inf, 0.0, lse)                 # rows with no key
    dq = torch.zeros((*batch, lq, q.shape[-1]), dtype=q.dtype, device=q.device)
    dk = torch.zeros((*batch, lk, k.shape[-1]), dtype=q.dtype, device=q.device)
    dv = torch.zeros((*batch, lk, v.shape[-1]), dtype=q.dtype, device=q.device)
    for q_start in range(0, lq, block_size):
        q_end = min(q_start + block_size, lq)
        q_blk = q[..., q_start:q_end, :]                               # [..., bq, D]
        do_blk = grad_out[..., q_start:q_end, :]                       # [..., bq, Dv]
        for k_start, k_end, keep in _key_tiles(q_start, q_end, lq, lk, is_causal, visible,
                                               live, block_size, q.device):
            k_blk, v_blk = k[..., k_start:k_end, :], v[..., k_start:k_end, :]
            s = q_blk @ k_blk.transpose(-2, -1) * scale                 # [..., bq, bk]
            if keep is not None:
                s = s.masked_fill(~keep, -math.inf)
            p = torch.exp(s - lse_safe[..., q_start:q_end, None])       # [..., bq, bk], P tile
            dv[..., k_start:k_end, :] += p.transpose(-2, -1) @ do_blk   # dV += P^T dO
            dp = do_blk @ v_blk.transpose(-2, -1)                       # [..., bq, bk]
            ds = p * (dp - delta[..., q_start:q_end, None])             # [..., bq, bk]
            dq[..., q_start:q_end, :] += scale * ds @ k_blk             # dQ += scale dS K
            dk[..., k_start:k_end, :] += scale * ds.transpose(-2, -1) @ q_blk
    # Leading dimensions that were broadcast in the forward pass sum their gradients.
    return dq.sum_to_size(q.shape), dk.sum_to_size(k.shape), dv.sum_to_size(v.shape)
