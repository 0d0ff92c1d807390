"""Tests for blocked_attention_backward: the tiled FlashAttention-2 backward.

Reference: autograd through the plain formula softmax(q k^T * scale + mask) v in float64.
The memory test records the size of every tensor the backward creates (a torch dispatch
mode) and checks that none is as large as the full [Lq, Lk] score matrix."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lib.attention import blocked_attention, causal_mask
from lib.attention.blocked import blocked_attention_backward


def _reference(q, k, v, is_causal, scale):
    s = q @ k.transpose(-2, -1) * scale
    if is_causal:
        s = s.masked_fill(~causal_mask(q.shape[-2], k.shape[-2]), -math.inf)
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)                 # rows with no key: 0
    return p @ v


def _case(shape_q, shape_k, dv, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, generator=g, dtype=torch.float64)
    k = torch.randn(*shape_k, generator=g, dtype=torch.float64)
    v = torch.randn(*shape_k[:-1], dv, generator=g, dtype=torch.float64)
    return q, k, v


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lq,lk,block", [(37, 37, 8), (5, 29, 4), (29, 5, 4), (64, 64, 64),
                                         (1, 1, 3), (70, 33, 16)])
def test_equals_autograd_through_the_formula(lq, lk, block, is_causal):
    q, k, v = _case((2, 3, lq, 8), (2, 3, lk, 8), 6, seed=lq + lk)
    scale = 0.3
    out, lse = blocked_attention(q, k, v, is_causal=is_causal, scale=scale, block_size=block)
    do = torch.randn_like(out)
    dq, dk, dv = blocked_attention_backward(q, k, v, out, lse, do, is_causal=is_causal,
                                            scale=scale, block_size=block)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    _reference(*leaves, is_causal, scale).backward(do)
    for mine, ref in zip((dq, dk, dv), leaves):
        torch.testing.assert_close(mine, ref.grad, rtol=1e-10, atol=1e-10)


def test_rows_that_see_no_key_give_zero_gradients():
    q, k, v = _case((1, 1, 6, 4), (1, 1, 2, 4), 4)
    out, lse = blocked_attention(q, k, v, is_causal=True, block_size=2)
    dq, _, _ = blocked_attention_backward(q, k, v, out, lse, torch.ones_like(out),
                                          is_causal=True, block_size=2)
    assert torch.isfinite(dq).all()
    assert torch.equal(dq[..., :4, :], torch.zeros_like(dq[..., :4, :]))   # rows 0-3 see nothing


def test_broadcast_keys_sum_their_gradient_over_heads():
    q, _, _ = _case((2, 4, 9, 8), (2, 4, 9, 8), 8)
    _, k, v = _case((2, 1, 11, 8), (2, 1, 11, 8), 8, seed=1)    # one k/v shared by 4 heads
    out, lse = blocked_attention(q, k, v, block_size=4)
    do = torch.randn_like(out)
    dq, dk, dv = blocked_attention_backward(q, k, v, out, lse, do, block_size=4)
    assert dk.shape == k.shape and dv.shape == v.shape
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    _reference(*leaves, False, 1 / math.sqrt(8)).backward(do)
    for mine, ref in zip((dq, dk, dv), leaves):
        torch.testing.assert_close(mine, ref.grad, rtol=1e-10, atol=1e-10)


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for t in (result if isinstance(result, (tuple, list)) else (result,)):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return result


def test_never_forms_the_full_score_matrix():
    B, H, L, D, block = 1, 2, 512, 16, 64
    q, k, v = _case((B, H, L, D), (B, H, L, D), D)
    out, lse = blocked_attention(q, k, v, block_size=block)
    do = torch.randn_like(out)
    with _LargestTensor() as seen:
        blocked_attention_backward(q, k, v, out, lse, do, block_size=block)
    full = B * H * L * L                      # 524,288 entries for the whole score matrix
    linear = B * H * L * D                    # 16,384: dq, dk, dv themselves
    tile = B * H * block * block              # 8,192
    print(f"largest tensor {seen.largest:,} entries; full score matrix {full:,}")
    assert seen.largest <= max(linear, tile) < full / 16


def test_shape_errors_name_the_argument():
    q, k, v = _case((1, 1, 4, 4), (1, 1, 4, 4), 4)
    out, lse = blocked_attention(q, k, v)
    with pytest.raises(ValueError, match="lse must have shape"):
        blocked_attention_backward(q, k, v, out, lse[..., :3], out)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        blocked_attention_backward(q, k, v, out, lse, out[..., :3, :])
