"""Attention in plain torch: the reference implementations of Part III.

Layout ``[batch, heads, seq, head_dim]``; bool masks mean True = may attend.
"""
from __future__ import annotations

import torch

from .kv_cache import KVCache, causal_self_attention, decode_step, kv_cache_bytes
from .masks import causal_mask, padding_mask, sliding_window_mask
from .mha import merge_heads, multi_head_attention, multi_head_attention_backward, split_heads
from .positions import alibi_bias, alibi_slopes, apply_rope, sinusoidal_positions
from .sdpa import attention_probs, scaled_dot_product_attention
from .blocked import blocked_attention, blocked_attention_backward, live_tiles


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False,
                    scale: float | None = None) -> torch.Tensor:
    """The Triton FlashAttention kernel (``lib/attention/flash.py``), forward and backward.

    Triton is imported on the first call, not with ``lib.attention``: Triton installs on
    Linux only, and every other function of this package runs without it. See
    ``lib.attention.flash.flash_attention`` for the contract.
    """
    try:
        from .flash import flash_attention as run
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("triton"):
            raise
        raise ModuleNotFoundError(
            "flash_attention needs Triton, which installs on Linux only "
            "(pip install triton, or the Linux set-up in README.md). Without it use "
            "lib.attention.blocked_attention (the same tiled algorithm in plain torch) or "
            "lib.attention.scaled_dot_product_attention.", name="triton") from error
    return run(q, k, v, is_causal=is_causal, scale=scale)


__all__ = [
    "KVCache", "alibi_bias", "alibi_slopes", "apply_rope", "attention_probs",
    "blocked_attention", "blocked_attention_backward", "causal_mask", "causal_self_attention",
    "decode_step",
    "flash_attention", "kv_cache_bytes", "live_tiles", "merge_heads", "multi_head_attention",
    "multi_head_attention_backward", "padding_mask", "scaled_dot_product_attention",
    "sinusoidal_positions", "sliding_window_mask", "split_heads",
]
