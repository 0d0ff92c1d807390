"""Tests for tile skipping in blocked_attention (its ``mask`` argument) and live_tiles.

References: the dense ``scaled_dot_product_attention`` with the same boolean mask and the
log-sum-exp written out, in float64; autograd through that formula for the backward; a
loop over the tiles for ``live_tiles``; and a count of the matrix products the forward
really runs (a torch dispatch mode), which shows that dead tiles are skipped, not masked.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from lib.attention import (blocked_attention, causal_mask, scaled_dot_product_attention,
                           sliding_window_mask)
from lib.attention.blocked import blocked_attention_backward, live_tiles


def _case(shape_q, shape_k, dv, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, generator=g, dtype=torch.float64)
    k = torch.randn(*shape_k, generator=g, dtype=torch.float64)
    v = torch.randn(*shape_k[:-1], dv, generator=g, dtype=torch.float64)
    return q, k, v


def _reference_lse(q, k, mask, scale):
    s = (q @ k.transpose(-2, -1) * scale).masked_fill(~mask, -math.inf)   # [..., Lq, Lk]
    return torch.logsumexp(s, dim=-1)                                    # -inf if all hidden


def _assert_matches_dense(q, k, v, mask, block, scale=0.4):
    out, lse = blocked_attention(q, k, v, scale=scale, block_size=block, mask=mask)
    expected = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lse, _reference_lse(q, k, mask, scale), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lq,lk,window,block", [
    (37, 37, 5, 8),      # ragged: 37 is no multiple of 8
    (37, 37, 1, 8),      # window 1: each query sees only its own key
    (37, 37, 37, 8),     # window == Lk: the causal mask
    (20, 20, 100, 3),    # window > Lk: still the causal mask
    (5, 29, 7, 4),       # Lq < Lk (queries appended after a cache)
    (29, 5, 3, 4),       # Lq > Lk: the first rows see nothing
    (64, 64, 16, 16),    # a window that is a whole number of tiles
    (1, 1, 1, 3),
])
def test_sliding_window_equals_dense_attention_with_the_same_mask(lq, lk, window, block):
    q, k, v = _case((2, 3, lq, 8), (2, 3, lk, 8), 6, seed=lq + 7 * lk + window)
    _assert_matches_dense(q, k, v, sliding_window_mask(lq, window, lk), block)


def test_window_at_least_lk_gives_the_same_output_as_is_causal():
    q, k, v = _case((1, 2, 33, 8), (1, 2, 33, 8), 8, seed=3)
    masked, _ = blocked_attention(q, k, v, block_size=8, mask=sliding_window_mask(33, 40))
    causal, _ = blocked_attention(q, k, v, is_causal=True, block_size=8)
    torch.testing.assert_close(masked, causal, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lq,lk", [(23, 23), (9, 23), (23, 9)])
def test_mask_and_is_causal_combine(lq, lk):
    q, k, v = _case((2, lq, 8), (2, lk, 8), 4, seed=lq * lk)
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(lq, lk, generator=g) < 0.5                        # [Lq, Lk]
    out, lse = blocked_attention(q, k, v, is_causal=True, scale=0.4, block_size=4, mask=mask)
    both = mask & causal_mask(lq, lk)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask=both, scale=0.4),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lse, _reference_lse(q, k, both, 0.4), rtol=1e-10, atol=1e-12)


def test_bigbird_style_mask_window_global_and_random_blocks():
    n, block = 48, 8
    band = (torch.arange(n)[:, None] - torch.arange(n)[None, :]).abs() <= 4  # [L, L]
    glob = torch.zeros(n, n, dtype=torch.bool)
    glob[:2, :] = glob[:, :2] = True                                     # two global tokens
    g = torch.Generator().manual_seed(5)
    rand_blocks = torch.rand(n // block, n // block, generator=g) < 0.2  # [nb, nb]
    rand = rand_blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)
    q, k, v = _case((2, 2, n, 8), (2, 2, n, 8), 8, seed=11)
    _assert_matches_dense(q, k, v, band | glob | rand, block)


def test_padding_mask_broadcast_over_heads_and_queries_and_per_batch_masks():
    q, k, v = _case((3, 2, 19, 8), (3, 2, 19, 8), 5, seed=2)
    lengths = torch.tensor([19, 7, 1])
    pad = torch.arange(19)[None, :] < lengths[:, None]                  # [B, Lk]
    _assert_matches_dense(q, k, v, pad[:, None, None, :], 4)            # [B, 1, 1, Lk]
    per_batch = torch.stack([sliding_window_mask(19, w) for w in (1, 4, 19)])  # [B, Lq, Lk]
    _assert_matches_dense(q, k, v, per_batch[:, None], 4)               # [B, 1, Lq, Lk]


def test_fully_masked_rows_give_zero_output_and_minus_inf_lse_like_is_causal():
    q, k, v = _case((1, 1, 12, 4), (1, 1, 12, 4), 4, seed=9)
    mask = sliding_window_mask(12, 3)
    mask[3:9] = False                                 # rows 3..8 see nothing (whole tiles)
    mask[10] = False                                  # and one row inside a live tile
    out, lse = blocked_attention(q, k, v, block_size=3, mask=mask)
    dead = torch.tensor([3, 4, 5, 6, 7, 8, 10])
    assert torch.equal(out[..., dead, :], torch.zeros(1, 1, 7, 4, dtype=torch.float64))
    assert torch.isneginf(lse[..., dead]).all()
    assert torch.isfinite(lse[..., [0, 1, 2, 9, 11]]).all()
    _assert_matches_dense(q, k, v, mask, 3)
    # The same convention as is_causal with Lq > Lk, where rows 0..3 see no key:
    _, lse_causal = blocked_attention(q[..., :6, :], k[..., :2, :], v[..., :2, :],
                                      is_causal=True, block_size=2)
    assert torch.isneginf(lse_causal[..., :4]).all()


def test_an_all_false_mask_gives_zeros_everywhere():
    q, k, v = _case((2, 10, 4), (2, 10, 4), 3)
    out, lse = blocked_attention(q, k, v, block_size=4, mask=torch.zeros(10, 10, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out)) and torch.isneginf(lse).all()


@settings(max_examples=25, deadline=None)
@given(lq=st.integers(1, 20), lk=st.integers(1, 20), block=st.integers(1, 9),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_any_mask_equals_dense_attention(lq, lk, block, density, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(lq, lk, generator=g) < density                   # [Lq, Lk]
    q, k, v = _case((2, lq, 4), (2, lk, 4), 3, seed=seed)
    _assert_matches_dense(q, k, v, mask, block)


def _live_by_loop(mask, block):
    lq, lk = mask.shape[-2:]
    n_q, n_k = math.ceil(lq / block), math.ceil(lk / block)
    flat = mask.reshape(-1, lq, lk)
    return torch.tensor([[bool(flat[:, a * block:(a + 1) * block, b * block:(b + 1) * block].any())
                          for b in range(n_k)] for a in range(n_q)], dtype=torch.bool)


@pytest.mark.parametrize("shape,block", [((13, 13), 4), ((5, 17), 3), ((17, 5), 6),
                                         ((2, 3, 9, 11), 2), ((8, 8), 8), ((7, 7), 1)])
def test_live_tiles_equals_a_loop_over_the_tiles(shape, block):
    g = torch.Generator().manual_seed(sum(shape) + block)
    mask = torch.rand(*shape, generator=g) < 0.15
    live = live_tiles(mask, block)
    assert live.shape == (math.ceil(shape[-2] / block), math.ceil(shape[-1] / block))
    assert torch.equal(live, _live_by_loop(mask, block))


def test_live_tiles_docstring_example_and_window_count():
    assert live_tiles(sliding_window_mask(4, 2), 2).tolist() == [[True, False], [True, True]]
    # A causal window of w = c * b keys over L = n * b tokens touches c + 1 key blocks per
    # query block (c on the first ones): sum_a min(a + 1, c + 1) tiles.
    n, c, b = 32, 2, 16
    live = live_tiles(sliding_window_mask(n * b, c * b), b)
    assert int(live.sum()) == sum(min(a + 1, c + 1) for a in range(n))


class _CountMatmuls(TorchDispatchMode):
    """Counts the matrix products (aten.mm) that run under it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.mm.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("window", [1, 5, 16, 64])
def test_dead_tiles_are_skipped_not_masked(window):
    q, k, v = _case((64, 8), (64, 8), 8)                                # 2-D: one mm per product
    mask = sliding_window_mask(64, window)
    with _CountMatmuls() as counter:
        blocked_attention(q, k, v, block_size=8, mask=mask)
    assert counter.count == 2 * int(live_tiles(mask, 8).sum())          # q k^T and p v per tile
    with _CountMatmuls() as dense:
        blocked_attention(q, k, v, block_size=8)
    assert dense.count == 2 * 8 * 8


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lq,lk,window,block", [(37, 37, 5, 8), (9, 30, 4, 4), (30, 9, 3, 4),
                                                (16, 16, 1, 4)])
def test_backward_with_a_mask_equals_autograd(lq, lk, window, block, is_causal):
    q, k, v = _case((2, 2, lq, 8), (2, 2, lk, 8), 5, seed=lq + lk)
    mask = sliding_window_mask(lq, window, lk)
    mask[..., :2] = True                      # two global keys (is_causal hides some of them)
    kw = dict(is_causal=is_causal, scale=0.3, block_size=block, mask=mask)
    out, lse = blocked_attention(q, k, v, **kw)
    do = torch.randn_like(out)
    grads = blocked_attention_backward(q, k, v, out, lse, do, **kw)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    scaled_dot_product_attention(*leaves, mask=mask, is_causal=is_causal, scale=0.3).backward(do)
    for mine, ref in zip(grads, leaves):
        torch.testing.assert_close(mine, ref.grad, rtol=1e-10, atol=1e-10)
    # autograd through the forward with skipping gives the same gradients
    again = [t.clone().requires_grad_(True) for t in (q, k, v)]
    blocked_attention(*again, **kw)[0].backward(do)
    for mine, ref in zip(grads, again):
        torch.testing.assert_close(mine, ref.grad, rtol=1e-10, atol=1e-10)


def test_value_errors_name_the_argument():
    q, k, v = _case((1, 2, 6, 4), (1, 2, 6, 4), 4)
    with pytest.raises(ValueError, match=r"mask of shape \(7, 6\)"):
        blocked_attention(q, k, v, mask=torch.ones(7, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 2, 6, 6\)"):   # would enlarge
        blocked_attention(q, k, v, mask=torch.ones(3, 2, 6, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be bool.*float32"):
        blocked_attention(q, k, v, mask=torch.ones(6, 6))
    out, lse = blocked_attention(q, k, v)
    with pytest.raises(ValueError, match="mask must be bool"):
        blocked_attention_backward(q, k, v, out, lse, out, mask=torch.ones(6, 6))
    with pytest.raises(ValueError, match=r"mask must have at least 2 dimensions, got shape \(6,\)"):
        live_tiles(torch.ones(6, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="mask must be bool.*int64"):
        live_tiles(torch.ones(6, 6, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="block_size"):
        live_tiles(torch.ones(6, 6, dtype=torch.bool), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("is_causal", [False, True])
def test_masked_tiles_on_cuda_match_the_cpu_in_float64(is_causal):
    q, k, v = _case((2, 2, 70, 16), (2, 2, 70, 16), 8, seed=4)
    mask = sliding_window_mask(70, 9) | (torch.arange(70) < 2)          # window + 2 global keys
    cpu = blocked_attention(q, k, v, is_causal=is_causal, block_size=16, mask=mask)
    gpu = blocked_attention(q.cuda(), k.cuda(), v.cuda(), is_causal=is_causal, block_size=16,
                            mask=mask.cuda())
    for mine, ref in zip(gpu, cpu):
        assert mine.device.type == "cuda"
        torch.testing.assert_close(mine.cpu(), ref, rtol=1e-10, atol=1e-12)
