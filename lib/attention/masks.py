"""Boolean attention masks: causal, sliding-window and padding.

Convention of the whole book: in a boolean mask ``True`` means *may attend* (or *is a
real token*). A mask broadcasts to the score tensor ``[..., Lq, Lk]``.
"""
from __future__ import annotations

import torch

from lib._checks import check_in_range, check_ndim


def causal_mask(lq: int, lk: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[lq, lk]`` causal mask aligned bottom-right.

    Query ``i`` may see key ``j`` iff ``j <= i + (lk - lq)``: the last query is aligned
    with the last key. With ``lq == lk`` this is the usual lower triangle; with
    ``lq < lk`` (new queries appended after ``lk - lq`` cached keys) every query also sees
    the whole prefix, which is what decoding with a KV cache needs. With ``lq > lk`` the
    first ``lq - lk`` rows see nothing.
    """
    lk = lq if lk is None else lk
    check_in_range("lq", lq, 1, float("inf"))
    check_in_range("lk", lk, 1, float("inf"))
    ones = torch.ones(lq, lk, dtype=torch.bool, device=device)  # [Lq, Lk]
    return torch.tril(ones, diagonal=lk - lq)


def sliding_window_mask(lq: int, window: int, lk: int | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[lq, lk]`` causal sliding-window (local) mask, aligned bottom-right.

    With ``s = lk - lq``, query ``i`` may see key ``j`` iff ``i + s - window < j <= i + s``:
    the ``window`` most recent keys, itself included, as in Mistral's sliding window.
    (Longformer's local attention is the bidirectional variant: ``window / 2`` keys on each
    side, not causal.) ``window >= lk`` gives :func:`causal_mask`.

    Example: ``sliding_window_mask(4, 2)`` ->
    ``[[1,0,0,0], [1,1,0,0], [0,1,1,0], [0,0,1,1]]``.
    """
    lk = lq if lk is None else lk
    check_in_range("window", window, 1, float("inf"))
    causal = causal_mask(lq, lk, device=device)                      # [Lq, Lk], j <= i + s
    too_old = torch.tril(torch.ones(lq, lk, dtype=torch.bool, device=device),
                         diagonal=lk - lq - window)                 # j <= i + s - window
    return causal & ~too_old


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool ``[B, 1, 1, max_len]`` key mask, True for the first ``lengths[b]`` positions.

    ``lengths`` is an integer tensor ``[B]`` with values in ``[0, max_len]`` (right
    padding). The two singleton axes broadcast over heads and queries, so the mask can be
    passed directly to attention scores ``[B, H, Lq, max_len]``.
    """
    lengths = torch.as_tensor(lengths)
    check_ndim("lengths", lengths, 1)
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len={max_len}], got values "
            f"from {int(lengths.min())} to {int(lengths.max())} (shape {tuple(lengths.shape)})"
        )
    positions = torch.arange(max_len, device=lengths.device)  # [Lk]
    real = positions[None, :] < lengths[:, None]  # [B, Lk]
    return real[:, None, None, :]  # [B, 1, 1, Lk]
