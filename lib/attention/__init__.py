"""Attention in plain torch: the reference implementations of Part III.

Layout ``[batch, heads, seq, head_dim]``; bool masks mean True = may attend.
"""
from .kv_cache import KVCache, causal_self_attention, decode_step, kv_cache_bytes
from .masks import causal_mask, padding_mask, sliding_window_mask
from .mha import merge_heads, multi_head_attention, multi_head_attention_backward, split_heads
from .positions import alibi_bias, alibi_slopes, apply_rope, sinusoidal_positions
from .sdpa import attention_probs, scaled_dot_product_attention
from .blocked import blocked_attention, blocked_attention_backward
from .flash import flash_attention

__all__ = [
    "KVCache", "alibi_bias", "alibi_slopes", "apply_rope", "attention_probs",
    "blocked_attention", "blocked_attention_backward", "causal_mask", "causal_self_attention", "decode_step",
    "flash_attention", "kv_cache_bytes", "merge_heads", "multi_head_attention",
    "multi_head_attention_backward", "padding_mask", "scaled_dot_product_attention",
    "sinusoidal_positions", "sliding_window_mask", "split_heads",
]
