# %% [markdown]
# # Assignment: KV-cache decoding with RoPE, MHA and GQA
#
# You will compute the size of a KV cache and write one step of incremental decoding for an
# attention layer with rotary position embeddings and grouped key/value heads. Decoding
# token by token must give exactly what running the layer on the whole sequence gives. The
# chapter [The KV cache](../../../chapters/part3_attention/kv_cache.ipynb) explains every step, and
# [Positional information](../../../chapters/part3_attention/positions.ipynb) explains RoPE.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Use PyTorch and the
#   helpers of the setup cell only; do not import `lib` (it holds the reference answers).
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Layout: `[batch, heads, seq, head_dim]`.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Points: 8 in all.

# %% [setup]
import math

import torch
import torch.nn.functional as F

F64 = torch.float64

# torch imports some reference ops lazily (about 1 s on a first call); load them here so
# that no graded cell pays for it
torch.broadcast_shapes((1,), (1,))


def rope(x, offset):
    """Rotate x [..., T, dh] as if its rows sat at positions offset .. offset + T - 1.

    Features i and i + dh/2 form a pair rotated by the angle p * 10000^(-2i/dh).
    """
    t, dh = x.shape[-2:]
    pos = torch.arange(offset, offset + t, dtype=F64)                         # [T]
    freqs = 10000.0 ** (-torch.arange(0, dh, 2, dtype=F64) / dh)              # [dh/2]
    angles = pos[:, None] * freqs[None, :]                                    # [T, dh/2]
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def layer_weights(d_model, n_heads, n_kv_heads, head_dim, seed=0):
    """w_q [D, H*dh], w_k and w_v [D, Hkv*dh], w_o [H*dh, D], float64."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(d_model, n_heads * head_dim), (d_model, n_kv_heads * head_dim),
              (d_model, n_kv_heads * head_dim), (n_heads * head_dim, d_model)]
    return [torch.randn(s, generator=g, dtype=F64) / math.sqrt(d_model) for s in shapes]


def empty_cache(batch, n_kv_heads, head_dim):
    """An empty cache: keys and values [B, Hkv, 0, dh]."""
    return (torch.zeros(batch, n_kv_heads, 0, head_dim, dtype=F64),
            torch.zeros(batch, n_kv_heads, 0, head_dim, dtype=F64))


def decode_sequence(x, ws, n_heads, n_kv_heads):
    """Run your decode_step over x [B, L, D] one token at a time; returns outputs and caches."""
    head_dim = ws[0].shape[1] // n_heads
    cache_k, cache_v = empty_cache(x.shape[0], n_kv_heads, head_dim)
    outs = []
    for t in range(x.shape[1]):
        out, cache_k, cache_v = decode_step(x[:, t:t + 1], cache_k, cache_v, *ws, n_heads)
        outs.append(out)
    return torch.cat(outs, dim=1), cache_k, cache_v

# %% [markdown]
# ## 1. The size of a KV cache (2 points)
#
# Implement `kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element)`:
# the number of bytes needed to cache the keys and the values of every layer for `batch`
# sequences of `seq_len` tokens.

# %% [solution] id=cache_bytes
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element):
    ### BEGIN SOLUTION
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element
    ### END SOLUTION

# %% [test] id=test_cache_bytes points=2
# one layer, one head of size 1, one token, one sequence, 1 byte: a key and a value
_got = kv_cache_bytes(1, 1, 1, 1, 1, 1)
assert _got == 2, f"kv_cache_bytes(1, 1, 1, 1, 1, 1): expected 2 bytes (a key and a value), got {_got}"
### BEGIN HIDDEN TESTS
from lib.attention import kv_cache_bytes as _ref_bytes
_got = kv_cache_bytes(32, 32, 128, 4096, 1, 2)   # Llama 2 7B, 4k tokens, fp16
assert _got == 2 * 2**30, (
    f"kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096, batch=1, "
    f"bytes_per_element=2), Llama 2 7B in fp16: expected {2 * 2**30} bytes (2 GiB), got {_got}")
for _args in [(80, 8, 128, 4096, 1, 2), (12, 12, 64, 1024, 8, 4), (3, 2, 16, 7, 5, 1)]:
    _got = kv_cache_bytes(*_args)
    _want = _ref_bytes(*_args[:4], batch=_args[4], bytes_per_element=_args[5])
    assert _got == _want, (
        f"kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element = "
        f"{_args}): expected {_want} bytes, got {_got}")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. One decoding step (6 points)
#
# Implement `decode_step(x_new, cache_k, cache_v, w_q, w_k, w_v, w_o, n_heads)` for one new
# token `x_new [B, 1, D]` and a cache `cache_k, cache_v [B, Hkv, t, dh]` holding the
# (already rotated) keys and the values of the `t` previous tokens (`t` may be 0). It returns
# `(out, new_cache_k, new_cache_v)` with `out [B, 1, D]` and the caches grown to `t + 1`:
#
# 1. project: `q = x_new @ w_q` split into `n_heads` heads `[B, H, 1, dh]`; `k` and `v` split
#    into `Hkv = cache_k.shape[1]` heads `[B, Hkv, 1, dh]` (split as `[B, 1, heads, dh]`, then
#    transpose);
# 2. rotate `q` and `k` with `rope(..., offset)` at the token's **absolute** position;
# 3. append `k` and `v` to the caches (`torch.cat` along the sequence axis);
# 4. expand the key/value heads so that query head `h` reads key/value head
#    `h // (n_heads // Hkv)`;
# 5. attend over all `t + 1` cached positions (think about which mask, if any, one new
#    query needs), merge the heads to `[B, 1, H * dh]` and apply `w_o`.
#
# You may use `F.scaled_dot_product_attention`.

# %% [solution] id=decode
def decode_step(x_new, cache_k, cache_v, w_q, w_k, w_v, w_o, n_heads):
    ### BEGIN SOLUTION
    b, _, _ = x_new.shape
    n_kv, position, head_dim = cache_k.shape[1], cache_k.shape[2], cache_k.shape[3]
    q = (x_new @ w_q).view(b, 1, n_heads, head_dim).transpose(1, 2)  # [B, H, 1, dh]
    k = (x_new @ w_k).view(b, 1, n_kv, head_dim).transpose(1, 2)     # [B, Hkv, 1, dh]
    v = (x_new @ w_v).view(b, 1, n_kv, head_dim).transpose(1, 2)     # [B, Hkv, 1, dh]
    q, k = rope(q, position), rope(k, position)
    cache_k = torch.cat([cache_k, k], dim=2)                           # [B, Hkv, t+1, dh]
    cache_v = torch.cat([cache_v, v], dim=2)
    group = n_heads // n_kv
    keys = cache_k.repeat_interleave(group, dim=1)                     # [B, H, t+1, dh]
    values = cache_v.repeat_interleave(group, dim=1)
    out = F.scaled_dot_product_attention(q, keys, values)              # one query sees all keys
    out = out.transpose(1, 2).reshape(b, 1, n_heads * head_dim) @ w_o  # [B, 1, D]
    return out, cache_k, cache_v
    ### END SOLUTION

# %% [test] id=test_decode_first_token points=1
D, H, DH = 16, 4, 4
ws = layer_weights(D, H, H, DH)
x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1), dtype=F64)
out, ck, cv = decode_step(x[:, :1], *empty_cache(2, H, DH), *ws, H)
assert out.shape == (2, 1, D) and ck.shape == (2, H, 1, DH) and cv.shape == (2, H, 1, DH), (
    f"decode_step(x_new [2, 1, {D}], empty caches [2, {H}, 0, {DH}], {H} heads): expected out (2, 1, {D}) "
    f"and caches (2, {H}, 1, {DH}), got out {tuple(out.shape)}, cache_k {tuple(ck.shape)}, "
    f"cache_v {tuple(cv.shape)}")
# a single token attends only to itself: its output is its own value, projected
v0 = (x[:, :1] @ ws[2])
_err = (out - v0 @ ws[3]).abs().max().item()
assert _err < 1e-10, (
    f"decode_step(first token [2, 1, {D}], empty cache): a lone token attends only to itself, so "
    f"expected out == (x @ w_v) @ w_o within 1e-10, got a max abs error of {_err:.3g}")

# %% [test] id=test_decode_mha points=3
# Decode 6 tokens one at a time with 4 heads (MHA); every output must equal the full layer.
D, H, DH = 16, 4, 4
ws = layer_weights(D, H, H, DH, seed=2)
x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(2), dtype=F64)
outs, ck, cv = decode_sequence(x, ws, H, H)
assert outs.shape == (2, 6, D) and ck.shape == (2, H, 6, DH) and cv.shape == (2, H, 6, DH), (
    f"decode_sequence(x [2, 6, {D}], {H} heads, {H} kv heads): expected outputs (2, 6, {D}) and caches "
    f"(2, {H}, 6, {DH}), got {tuple(outs.shape)}, {tuple(ck.shape)}, {tuple(cv.shape)}")
### BEGIN HIDDEN TESTS
from lib.attention import causal_self_attention as _ref_layer
_err = (outs - _ref_layer(x, *ws, H, H)).abs().max(dim=-1).values.amax(dim=0)   # [L]
assert _err.max() < 1e-6, (
    f"decode_sequence(x [2, 6, {D}], {H} heads, {H} kv heads): expected every output within 1e-6 of the "
    f"full causal layer, got max abs errors per position {[f'{e:.2g}' for e in _err.tolist()]}")
# the head size comes from the cache, not from d_model: 4 heads of size 4 on d_model = 12
_ws12 = layer_weights(12, H, H, DH, seed=5)
_x12 = torch.randn(1, 3, 12, generator=torch.Generator().manual_seed(5), dtype=F64)
_outs12, _, _ = decode_sequence(_x12, _ws12, H, H)
_err = (_outs12 - _ref_layer(_x12, *_ws12, H, H)).abs().max().item()
assert _err < 1e-6, (
    f"decode_sequence(x [1, 3, 12], 4 heads of size 4, so n_heads * head_dim = 16 != d_model = 12): "
    f"expected the full causal layer within 1e-6, got a max abs error of {_err:.3g}")
# a cache prefilled by someone else: keys rotated at the absolute positions 0, 1, 2, 3, so the
# new token must be rotated at position 4 (positions count from 0)
_pk = rope((x[:, :4] @ ws[1]).view(2, 4, H, DH).transpose(1, 2), 0)     # [2, H, 4, DH]
_pv = (x[:, :4] @ ws[2]).view(2, 4, H, DH).transpose(1, 2)
_out4, _, _ = decode_step(x[:, 4:5], _pk, _pv, *ws, H)
_err = (_out4 - _ref_layer(x[:, :5], *ws, H, H)[:, 4:5]).abs().max().item()
assert _err < 1e-6, (
    f"decode_step(token 4 of x [2, 6, {D}], a cache of 4 positions rotated at 0..3): expected the full "
    f"causal layer's output at position 4 within 1e-6, got a max abs error of {_err:.3g}")
### END HIDDEN TESTS

# %% [test] id=test_decode_gqa points=2
# The same with grouped key/value heads: 2 kv heads (GQA) and 1 kv head (MQA) for 4 query heads.
D, H, DH = 16, 4, 4
x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(4), dtype=F64)
for n_kv in (2, 1):
    ws = layer_weights(D, H, n_kv, DH, seed=3)
    outs, ck, cv = decode_sequence(x, ws, H, n_kv)
    assert outs.shape == (2, 6, D) and ck.shape == (2, n_kv, 6, DH), (
        f"decode_sequence(x [2, 6, {D}], {H} heads, {n_kv} kv heads): expected outputs (2, 6, {D}) and "
        f"cache_k (2, {n_kv}, 6, {DH}), got {tuple(outs.shape)} and {tuple(ck.shape)}")
### BEGIN HIDDEN TESTS
from lib.attention import causal_self_attention as _ref_layer
for _n_kv in (2, 1):
    _ws = layer_weights(D, H, _n_kv, DH, seed=3)
    _outs, _, _ = decode_sequence(x, _ws, H, _n_kv)
    _err = (_outs - _ref_layer(x, *_ws, H, _n_kv)).abs().max().item()
    assert _err < 1e-6, (
        f"decode_sequence(x [2, 6, {D}], {H} heads, {_n_kv} kv heads): expected the full causal layer "
        f"within 1e-6, got a max abs error of {_err:.3g}")
### END HIDDEN TESTS
