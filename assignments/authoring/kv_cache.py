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
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
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
def make():
    # one layer, one head of size 1, one token, one sequence, 1 byte: a key and a value
    return {"args": (1, 1, 1, 1, 1, 1)}


def run(args):
    return {"got": kv_cache_bytes(*args)}


def check(inputs, outputs):
    got = outputs["got"]
    assert got == 2, f"kv_cache_bytes(1, 1, 1, 1, 1, 1): expected 2 bytes (a key and a value), got {got}"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"llama": (32, 32, 128, 4096, 1, 2),   # Llama 2 7B, 4k tokens, fp16
            "cases": [(80, 8, 128, 4096, 1, 2), (12, 12, 64, 1024, 8, 4), (3, 2, 16, 7, 5, 1)]}


def run_hidden(llama, cases):
    return {"llama": kv_cache_bytes(*llama), "cases": [kv_cache_bytes(*args) for args in cases]}


def check_hidden(inputs, outputs):
    from lib.attention import kv_cache_bytes as ref_bytes

    got = outputs["llama"]
    assert got == 2 * 2**30, (
        f"kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096, batch=1, "
        f"bytes_per_element=2), Llama 2 7B in fp16: expected {2 * 2**30} bytes (2 GiB), got {got}")
    for args, got in zip(inputs["cases"], outputs["cases"]):
        want = ref_bytes(*args[:4], batch=args[4], bytes_per_element=args[5])
        assert got == want, (
            f"kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element = "
            f"{args}): expected {want} bytes, got {got}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    D, H, DH = 16, 4, 4
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1), dtype=F64)
    cache_k, cache_v = empty_cache(2, H, DH)
    return {"x_new": x[:, :1], "cache_k": cache_k, "cache_v": cache_v, "ws": layer_weights(D, H, H, DH),
            "n_heads": H}


def run(x_new, cache_k, cache_v, ws, n_heads):
    out, ck, cv = decode_step(x_new, cache_k, cache_v, *ws, n_heads)
    return {"out": out, "cache_k": ck, "cache_v": cv}


def check(inputs, outputs):
    D, H, DH = 16, 4, 4
    out, ck, cv = outputs["out"], outputs["cache_k"], outputs["cache_v"]
    assert out.shape == (2, 1, D) and ck.shape == (2, H, 1, DH) and cv.shape == (2, H, 1, DH), (
        f"decode_step(x_new [2, 1, {D}], empty caches [2, {H}, 0, {DH}], {H} heads): expected out (2, 1, {D}) "
        f"and caches (2, {H}, 1, {DH}), got out {tuple(out.shape)}, cache_k {tuple(ck.shape)}, "
        f"cache_v {tuple(cv.shape)}")
    # a single token attends only to itself: its output is its own value, projected
    ws = inputs["ws"]
    v0 = (inputs["x_new"] @ ws[2])
    err = (out - v0 @ ws[3]).abs().max().item()
    assert err < 1e-10, (
        f"decode_step(first token [2, 1, {D}], empty cache): a lone token attends only to itself, so "
        f"expected out == (x @ w_v) @ w_o within 1e-10, got a max abs error of {err:.3g}")


check(make(), run(**make()))

# %% [test] id=test_decode_mha points=3
# Decode 6 tokens one at a time with 4 heads (MHA); every output must equal the full layer.
def make():
    D, H, DH = 16, 4, 4
    return {"x": torch.randn(2, 6, D, generator=torch.Generator().manual_seed(2), dtype=F64),
            "ws": layer_weights(D, H, H, DH, seed=2), "n_heads": H}


def run(x, ws, n_heads):
    outs, ck, cv = decode_sequence(x, ws, n_heads, n_heads)
    return {"outs": outs, "cache_k": ck, "cache_v": cv}


def check(inputs, outputs):
    D, H, DH = 16, 4, 4
    outs, ck, cv = outputs["outs"], outputs["cache_k"], outputs["cache_v"]
    assert outs.shape == (2, 6, D) and ck.shape == (2, H, 6, DH) and cv.shape == (2, H, 6, DH), (
        f"decode_sequence(x [2, 6, {D}], {H} heads, {H} kv heads): expected outputs (2, 6, {D}) and caches "
        f"(2, {H}, 6, {DH}), got {tuple(outs.shape)}, {tuple(ck.shape)}, {tuple(cv.shape)}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    D, H, DH = 16, 4, 4
    x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(2), dtype=F64)
    ws = layer_weights(D, H, H, DH, seed=2)
    # a cache prefilled by someone else: keys rotated at the absolute positions 0, 1, 2, 3, so the
    # new token must be rotated at position 4 (positions count from 0)
    prefilled_k = rope((x[:, :4] @ ws[1]).view(2, 4, H, DH).transpose(1, 2), 0)     # [2, H, 4, DH]
    prefilled_v = (x[:, :4] @ ws[2]).view(2, 4, H, DH).transpose(1, 2)
    # the head size comes from the cache, not from d_model: 4 heads of size 4 on d_model = 12
    return {"x": x, "ws": ws, "n_heads": H,
            "x12": torch.randn(1, 3, 12, generator=torch.Generator().manual_seed(5), dtype=F64),
            "ws12": layer_weights(12, H, H, DH, seed=5),
            "x_new": x[:, 4:5], "prefilled_k": prefilled_k, "prefilled_v": prefilled_v}


def run_hidden(x, ws, n_heads, x12, ws12, x_new, prefilled_k, prefilled_v):
    outs, _, _ = decode_sequence(x, ws, n_heads, n_heads)
    outs12, _, _ = decode_sequence(x12, ws12, n_heads, n_heads)
    out4, _, _ = decode_step(x_new, prefilled_k, prefilled_v, *ws, n_heads)
    return {"outs": outs, "outs12": outs12, "out4": out4}


def check_hidden(inputs, outputs):
    from lib.attention import causal_self_attention as ref_layer

    D, H = 16, 4
    x, ws = inputs["x"], inputs["ws"]
    err = (outputs["outs"] - ref_layer(x, *ws, H, H)).abs().max(dim=-1).values.amax(dim=0)   # [L]
    assert err.max() < 1e-6, (
        f"decode_sequence(x [2, 6, {D}], {H} heads, {H} kv heads): expected every output within 1e-6 of the "
        f"full causal layer, got max abs errors per position {[f'{e:.2g}' for e in err.tolist()]}")
    err = (outputs["outs12"] - ref_layer(inputs["x12"], *inputs["ws12"], H, H)).abs().max().item()
    assert err < 1e-6, (
        f"decode_sequence(x [1, 3, 12], 4 heads of size 4, so n_heads * head_dim = 16 != d_model = 12): "
        f"expected the full causal layer within 1e-6, got a max abs error of {err:.3g}")
    err = (outputs["out4"] - ref_layer(x[:, :5], *ws, H, H)[:, 4:5]).abs().max().item()
    assert err < 1e-6, (
        f"decode_step(token 4 of x [2, 6, {D}], a cache of 4 positions rotated at 0..3): expected the full "
        f"causal layer's output at position 4 within 1e-6, got a max abs error of {err:.3g}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_decode_gqa points=2
# The same with grouped key/value heads: 2 kv heads (GQA) and 1 kv head (MQA) for 4 query heads.
def make():
    D, H, DH = 16, 4, 4
    return {"x": torch.randn(2, 6, D, generator=torch.Generator().manual_seed(4), dtype=F64), "n_heads": H,
            "n_kvs": [2, 1], "weights": [layer_weights(D, H, n_kv, DH, seed=3) for n_kv in (2, 1)]}


def run(x, n_heads, n_kvs, weights):
    outs, caches = [], []
    for n_kv, ws in zip(n_kvs, weights):
        out, ck, _ = decode_sequence(x, ws, n_heads, n_kv)
        outs.append(out)
        caches.append(ck)
    return {"outs": outs, "cache_k": caches}


def check(inputs, outputs):
    D, H, DH = 16, 4, 4
    for n_kv, outs, ck in zip(inputs["n_kvs"], outputs["outs"], outputs["cache_k"]):
        assert outs.shape == (2, 6, D) and ck.shape == (2, n_kv, 6, DH), (
            f"decode_sequence(x [2, 6, {D}], {H} heads, {n_kv} kv heads): expected outputs (2, 6, {D}) and "
            f"cache_k (2, {n_kv}, 6, {DH}), got {tuple(outs.shape)} and {tuple(ck.shape)}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    D, H, DH = 16, 4, 4
    return {"x": torch.randn(2, 6, D, generator=torch.Generator().manual_seed(4), dtype=F64), "n_heads": H,
            "n_kvs": [2, 1], "weights": [layer_weights(D, H, n_kv, DH, seed=3) for n_kv in (2, 1)]}


def run_hidden(x, n_heads, n_kvs, weights):
    outs = []
    for n_kv, ws in zip(n_kvs, weights):
        out, _, _ = decode_sequence(x, ws, n_heads, n_kv)
        outs.append(out)
    return {"outs": outs}


def check_hidden(inputs, outputs):
    from lib.attention import causal_self_attention as ref_layer

    D, H = 16, 4
    x = inputs["x"]
    for n_kv, ws, outs in zip(inputs["n_kvs"], inputs["weights"], outputs["outs"]):
        err = (outs - ref_layer(x, *ws, H, n_kv)).abs().max().item()
        assert err < 1e-6, (
            f"decode_sequence(x [2, 6, {D}], {H} heads, {n_kv} kv heads): expected the full causal layer "
            f"within 1e-6, got a max abs error of {err:.3g}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
