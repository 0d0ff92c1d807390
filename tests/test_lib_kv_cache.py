"""Tests of lib.attention.kv_cache: incremental decoding equals full recomputation.

The reference for the full layer is written here with torch.nn.functional.scaled_dot_product_attention
(enable_gqa) and RoPE as complex multiplication, independent of lib.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.attention import KVCache, apply_rope, causal_self_attention, decode_step, kv_cache_bytes

F64 = torch.float64
D_MODEL, HEAD_DIM = 16, 4


def layer(n_heads, n_kv_heads, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    shapes = [(D_MODEL, n_heads * HEAD_DIM), (D_MODEL, n_kv_heads * HEAD_DIM),
              (D_MODEL, n_kv_heads * HEAD_DIM), (n_heads * HEAD_DIM, D_MODEL)]
    return [(torch.randn(s, generator=g, dtype=F64) / 4).to(dtype) for s in shapes]


def tokens(b=2, length=7, seed=1, dtype=F64):
    return torch.randn(b, length, D_MODEL, generator=torch.Generator().manual_seed(seed),
                       dtype=F64).to(dtype)


def rope_complex(x):
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half], x[..., half:])
    pos = torch.arange(x.shape[-2], dtype=F64)
    freq = 10000.0 ** (-2 * torch.arange(half, dtype=F64) / x.shape[-1])
    z = z * torch.polar(torch.ones(len(pos), half, dtype=F64), pos[:, None] * freq)
    return torch.cat([z.real, z.imag], dim=-1)


def reference_layer(x, w_q, w_k, w_v, w_o, n_heads, n_kv_heads):
    b, length, _ = x.shape
    q = (x @ w_q).view(b, length, n_heads, HEAD_DIM).transpose(1, 2)
    k = (x @ w_k).view(b, length, n_kv_heads, HEAD_DIM).transpose(1, 2)
    v = (x @ w_v).view(b, length, n_kv_heads, HEAD_DIM).transpose(1, 2)
    out = F.scaled_dot_product_attention(rope_complex(q), rope_complex(k), v, is_causal=True,
                                         enable_gqa=True)
    return out.transpose(1, 2).reshape(b, length, -1) @ w_o


HEADS = [pytest.param(4, 4, id="MHA"), pytest.param(4, 2, id="GQA"), pytest.param(4, 1, id="MQA")]


@pytest.mark.parametrize("n_heads,n_kv_heads", HEADS)
def test_full_layer_matches_independent_reference(n_heads, n_kv_heads):
    x, ws = tokens(), layer(n_heads, n_kv_heads)
    torch.testing.assert_close(causal_self_attention(x, *ws, n_heads, n_kv_heads),
                               reference_layer(x, *ws, n_heads, n_kv_heads))


@pytest.mark.parametrize("n_heads,n_kv_heads", HEADS)
def test_token_by_token_decoding_equals_recomputation(n_heads, n_kv_heads):
    x, ws = tokens(length=9), layer(n_heads, n_kv_heads)
    full = causal_self_attention(x, *ws, n_heads, n_kv_heads)
    cache = KVCache(2, n_kv_heads, 9, HEAD_DIM, dtype=F64)
    for t in range(9):
        out = decode_step(x[:, t:t + 1], cache, *ws, n_heads)
        assert cache.length == t + 1
        assert (out - full[:, t:t + 1]).abs().max() < 1e-6


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(1, 4), min_size=1, max_size=5), kv=st.sampled_from([1, 2, 4]))
def test_any_chunking_of_prefill_and_decode_equals_recomputation(cuts, kv):
    length = sum(cuts)
    x, ws = tokens(b=1, length=length), layer(4, kv)
    full = causal_self_attention(x, *ws, 4, kv)
    cache, start, outs = KVCache(1, kv, length, HEAD_DIM, dtype=F64), 0, []
    for size in cuts:
        outs.append(decode_step(x[:, start:start + size], cache, *ws, 4))
        start += size
    assert (torch.cat(outs, dim=1) - full).abs().max() < 1e-6


def test_wrong_rope_offset_is_detected():
    """Rotating the new token at position 0 (forgetting the cache length) changes the output."""
    x, ws = tokens(b=1, length=5), layer(4, 4)
    full = causal_self_attention(x, *ws, 4)
    cache = KVCache(1, 4, 5, HEAD_DIM, dtype=F64)
    decode_step(x[:, :4], cache, *ws, 4)
    q = apply_rope((x[:, 4:] @ ws[0]).view(1, 1, 4, HEAD_DIM).transpose(1, 2), offset=0)
    k = apply_rope((x[:, 4:] @ ws[1]).view(1, 1, 4, HEAD_DIM).transpose(1, 2), offset=0)
    v = (x[:, 4:] @ ws[2]).view(1, 1, 4, HEAD_DIM).transpose(1, 2)
    k_all, v_all = torch.cat([cache.k[:, :, :4], k], 2), torch.cat([cache.v[:, :, :4], v], 2)
    wrong = F.scaled_dot_product_attention(q, k_all, v_all).transpose(1, 2).reshape(1, 1, -1)
    assert (wrong @ ws[3] - full[:, 4:]).abs().max() > 1e-3


def test_without_rope_decoding_still_equals_recomputation():
    x, ws = tokens(length=5), layer(2, 1)
    full = causal_self_attention(x, *ws, 2, 1, rope_base=None)
    cache = KVCache(2, 1, 5, HEAD_DIM, dtype=F64)
    outs = [decode_step(x[:, t:t + 1], cache, *ws, 2, rope_base=None) for t in range(5)]
    assert (torch.cat(outs, 1) - full).abs().max() < 1e-6


def test_cache_holds_rotated_keys_and_raw_values():
    x, ws = tokens(b=1, length=3), layer(2, 2)
    cache = KVCache(1, 2, 4, HEAD_DIM, dtype=F64)
    decode_step(x, cache, *ws, 2)
    k = (x @ ws[1]).view(1, 3, 2, HEAD_DIM).transpose(1, 2)
    v = (x @ ws[2]).view(1, 3, 2, HEAD_DIM).transpose(1, 2)
    torch.testing.assert_close(cache.k[:, :, :3], rope_complex(k))
    torch.testing.assert_close(cache.v[:, :, :3], v)
    assert torch.equal(cache.k[:, :, 3], torch.zeros(1, 2, HEAD_DIM, dtype=F64))


@pytest.mark.parametrize("dtype,size", [(torch.float32, 4), (torch.float16, 2),
                                        (torch.bfloat16, 2), (F64, 8)])
def test_cache_bytes_formula_matches_bytes_held(dtype, size):
    cache = KVCache(3, 2, 10, HEAD_DIM, dtype=dtype)
    assert cache.nbytes == kv_cache_bytes(1, 2, HEAD_DIM, 10, batch=3, bytes_per_element=size)
    assert cache.nbytes == cache.k.untyped_storage().nbytes() + cache.v.untyped_storage().nbytes()


def test_cache_size_formula_for_a_7b_shape():
    # 32 layers, 32 kv heads, head_dim 128, 4096 tokens, fp16: 2 GiB per sequence
    assert kv_cache_bytes(32, 32, 128, 4096) == 2 * 1024 ** 3


def test_half_precision_decoding_is_finite_and_close():
    x, ws = tokens(length=4, dtype=torch.float16), layer(4, 2, dtype=torch.float16)
    full = causal_self_attention(x.double(), *[w.double() for w in ws], 4, 2)
    cache = KVCache(2, 2, 4, HEAD_DIM, dtype=torch.float16)
    outs = torch.cat([decode_step(x[:, t:t + 1], cache, *ws, 4) for t in range(4)], 1)
    assert outs.dtype == torch.float16 and torch.isfinite(outs).all()
    torch.testing.assert_close(outs.double(), full, atol=1e-2, rtol=1e-2)


def test_kv_cache_value_errors():
    ws = layer(4, 2)
    with pytest.raises(ValueError, match="every cache dimension"):
        KVCache(0, 2, 4, HEAD_DIM)
    cache = KVCache(1, 2, 3, HEAD_DIM, dtype=F64)
    with pytest.raises(ValueError, match="overflows max_len=3"):
        decode_step(tokens(b=1, length=4), cache, *ws, 4)
    with pytest.raises(ValueError, match=r"k must have shape \(batch, n_kv_heads, T, head_dim\)"):
        cache.append(torch.zeros(1, 3, 1, HEAD_DIM), torch.zeros(1, 3, 1, HEAD_DIM))
    with pytest.raises(ValueError, match="k must have 4 dimensions"):
        cache.append(torch.zeros(2, 1, HEAD_DIM), torch.zeros(2, 1, HEAD_DIM))
    with pytest.raises(ValueError, match="n_heads=3 must be a multiple of n_kv_heads=2"):
        causal_self_attention(tokens(), *ws, 3, 2)
    with pytest.raises(ValueError, match="w_k must have shape"):
        causal_self_attention(tokens(), *layer(4, 4), 4, 2)
    with pytest.raises(ValueError, match="w_q must have shape"):
        causal_self_attention(tokens(), ws[0][:5], *ws[1:], 4, 2)
    with pytest.raises(ValueError, match="w_o must have shape"):
        causal_self_attention(tokens(), *ws[:3], ws[3][:, :5], 4, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_decoding_on_cuda_equals_recomputation():
    x, ws = tokens(length=6).cuda(), [w.cuda() for w in layer(4, 2)]
    full = causal_self_attention(x, *ws, 4, 2)
    cache = KVCache(2, 2, 6, HEAD_DIM, dtype=F64, device="cuda")
    outs = torch.cat([decode_step(x[:, t:t + 1], cache, *ws, 4) for t in range(6)], dim=1)
    assert outs.device.type == "cuda"
    assert (outs - full).abs().max() < 1e-6
