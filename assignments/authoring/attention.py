# %% [markdown]
# # Assignment: attention with masks, and multi-head attention
#
# You will implement scaled dot-product attention with boolean masks, then multi-head
# self-attention, in PyTorch. The chapters [Scaled dot-product attention](../../../chapters/part3_attention/scaled_dot_product.ipynb),
# [Masks](../../../chapters/part3_attention/masks.ipynb) and
# [Multi-head attention](../../../chapters/part3_attention/multi_head_backward.ipynb) derive everything you need.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Use PyTorch only; do not
#   import `lib` (it holds the reference answers).
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Layout: `[batch, heads, seq, head_dim]`. Boolean masks mean **True = may attend**.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 12 in all.

# %% [setup]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
F64 = torch.float64

# torch imports some reference ops lazily (about 1 s on a first call); load them here so
# that no graded cell pays for it
torch.broadcast_shapes((1,), (1,))


def randn(*shape, seed=0):
    """A float64 standard-normal tensor from its own seeded generator."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def check_close(actual, expected, what, tol=1e-10):
    """Assert that `actual` matches `expected`; `what` names the call and its input."""
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}")
    diff = (actual - expected).abs()
    err = diff.max().item()
    where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if err == err else None
    assert err < tol, (
        f"{what}: expected values within {tol:g} of the reference, got a max abs error of "
        f"{err:.2e}" + ("" if where is None else
                        f" at index {where} (expected {expected[where].item():.6g}, "
                        f"got {actual[where].item():.6g})"))

# %% [markdown]
# ## 1. Scaled dot-product attention (6 points)
#
# Implement `attention(q, k, v, mask=None)` for `q [..., Lq, D]`, `k [..., Lk, D]`,
# `v [..., Lk, Dv]` (leading axes broadcast), returning `[..., Lq, Dv]`:
#
# $$\operatorname{softmax}\!\left(\frac{q k^\top}{\sqrt{D}} + M\right) v,$$
#
# where the softmax runs over the **key** axis and $M$ is $0$ where the boolean `mask` is
# True and $-\infty$ where it is False. `mask` broadcasts to the scores `[..., Lq, Lk]`.
# Apply the mask to the scores **before** the softmax. You may assume every query sees at
# least one key. Do not call `F.scaled_dot_product_attention` here.

# %% [solution] id=sdpa
def attention(q, k, v, mask=None):
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [..., Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # [..., Lq, Dv]
    ### END SOLUTION

# %% [test] id=test_sdpa_values points=2
def make():
    return {"q": randn(2, 3, 4, 16, seed=1), "k": randn(2, 3, 6, 16, seed=2), "v": randn(2, 3, 6, 5, seed=3)}


def run(q, k, v):
    return {"out": attention(q, k, v)}


def check(inputs, outputs):
    out = outputs["out"]
    assert out.shape == (2, 3, 4, 5), f"attention(q [2, 3, 4, 16], k [2, 3, 6, 16], v [2, 3, 6, 5]): expected shape (2, 3, 4, 5), got {tuple(out.shape)}"
    check_close(out, F.scaled_dot_product_attention(inputs["q"], inputs["k"], inputs["v"]),
                "attention(q [2, 3, 4, 16], k [2, 3, 6, 16], v [2, 3, 6, 5]) against F.scaled_dot_product_attention")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    q = randn(1, 2, 7, 64, seed=11)
    return {"q": q, "q3": 3 * q, "k": randn(1, 2, 9, 64, seed=12), "v": randn(1, 2, 9, 8, seed=13),
            "q_batched": randn(2, 3, 4, 16, seed=1), "k_shared": randn(5, 16, seed=14), "v_shared": randn(5, 3, seed=15)}


def run_hidden(q, q3, k, v, q_batched, k_shared, v_shared):
    return {"out": attention(q, k, v), "out3": attention(q3, k, v),
            "shared": attention(q_batched, k_shared, v_shared)}


def check_hidden(inputs, outputs):
    from lib.attention import scaled_dot_product_attention as ref

    q, q3, k, v = inputs["q"], inputs["q3"], inputs["k"], inputs["v"]
    check_close(outputs["out"], ref(q, k, v), "attention(q [1, 2, 7, 64], k [1, 2, 9, 64], v [1, 2, 9, 8])")
    check_close(outputs["out3"], ref(q3, k, v),
                "attention(3 * q [1, 2, 7, 64], k [1, 2, 9, 64], v [1, 2, 9, 8]), larger scores")
    # leading axes broadcast: keys and values shared by every batch entry and head
    check_close(outputs["shared"], ref(inputs["q_batched"], inputs["k_shared"], inputs["v_shared"]),
                "attention(q [2, 3, 4, 16], k [5, 16], v [5, 3]), leading axes broadcast")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_sdpa_rows points=1
# Each query's output depends on that query only, and is an average of value rows.
def make():
    return {"q": randn(1, 1, 5, 8, seed=4), "k": randn(1, 1, 3, 8, seed=5), "v": randn(1, 1, 3, 2, seed=6)}


def run(q, k, v):
    return {"out": attention(q, k, v)}


def check(inputs, outputs):
    out = outputs["out"]
    assert out.shape == (1, 1, 5, 2), f"attention(q [1, 1, 5, 8], k [1, 1, 3, 8], v [1, 1, 3, 2]): expected shape (1, 1, 5, 2), got {tuple(out.shape)}"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    q = randn(1, 1, 5, 8, seed=4)
    q2 = q.clone()
    q2[..., 0, :] += 5.0
    return {"q": q, "q2": q2, "k": randn(1, 1, 3, 8, seed=5), "v": randn(1, 1, 3, 2, seed=6),
            "ones": torch.ones(1, 1, 3, 1, dtype=F64)}


def run_hidden(q, q2, k, v, ones):
    return {"out": attention(q, k, v), "out2": attention(q2, k, v), "averaged_ones": attention(q, k, ones)}


def check_hidden(inputs, outputs):
    check_close(outputs["out2"][..., 1:, :], outputs["out"][..., 1:, :],
                "attention(q [1, 1, 5, 8] with only query 0 changed): the outputs of queries 1..4 must not change")
    check_close(outputs["averaged_ones"], torch.ones(1, 1, 5, 1, dtype=F64),
                "attention(q [1, 1, 5, 8], k [1, 1, 3, 8], v all ones [1, 1, 3, 1]): the weights of each query sum to 1")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_sdpa_mask points=3
def make():
    L = 5
    return {"q": randn(2, 2, L, 8, seed=7), "k": randn(2, 2, L, 8, seed=8), "v": randn(2, 2, L, 8, seed=9),
            "causal": torch.ones(L, L, dtype=torch.bool).tril()}


def run(q, k, v, causal):
    return {"out": attention(q, k, v, mask=causal)}


def check(inputs, outputs):
    q, k, v, causal = inputs["q"], inputs["k"], inputs["v"], inputs["causal"]
    check_close(outputs["out"], F.scaled_dot_product_attention(q, k, v, attn_mask=causal),
                "attention(q, k, v [2, 2, 5, 8], causal mask [5, 5]) against F.scaled_dot_product_attention")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    L = 5
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    pad = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]  # [B, 1, 1, L]
    k = randn(2, 2, L, 8, seed=8)
    k2 = k.clone()
    k2[..., -1, :] *= 20.0
    return {"q": randn(2, 2, L, 8, seed=7), "k": k, "k2": k2, "v": randn(2, 2, L, 8, seed=9),
            "causal": causal, "pad": pad, "pad_causal": pad & causal}


def run_hidden(q, k, k2, v, causal, pad, pad_causal):
    return {"pad": attention(q, k, v, mask=pad), "pad_causal": attention(q, k, v, mask=pad_causal),
            "causal": attention(q, k, v, mask=causal), "causal_k2": attention(q, k2, v, mask=causal)}


def check_hidden(inputs, outputs):
    from lib.attention import scaled_dot_product_attention as ref

    q, k, v, pad = inputs["q"], inputs["k"], inputs["v"], inputs["pad"]
    check_close(outputs["pad"], ref(q, k, v, mask=pad),
                "attention(q, k, v [2, 2, 5, 8], padding mask [2, 1, 1, 5] for lengths [5, 3])")
    check_close(outputs["pad_causal"], ref(q, k, v, mask=pad, is_causal=True),
                "attention(q, k, v [2, 2, 5, 8], padding & causal mask [2, 1, 5, 5])")
    # changing only hidden keys must not change anything
    check_close(outputs["causal_k2"][..., :-1, :], outputs["causal"][..., :-1, :],
                "attention(q, k, v [2, 2, 5, 8], causal mask) with only the last key changed: queries 0..3 "
                "do not see it, so their outputs must not change")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. A padding mask (2 points)
#
# A batch of sequences with lengths `lengths [B]` is right-padded to `max_len`. Implement
# `padding_mask(lengths, max_len)` returning a **bool** mask of shape `[B, 1, 1, max_len]`,
# True for the real tokens (positions `0 .. lengths[b] - 1`). The two singleton axes make it
# broadcast over heads and queries when used with scores `[B, H, Lq, Lk]`.

# %% [solution] id=padding
def padding_mask(lengths, max_len):
    ### BEGIN SOLUTION
    positions = torch.arange(max_len)                 # [Lk]
    real = positions[None, :] < lengths[:, None]      # [B, Lk]
    return real[:, None, None, :]                     # [B, 1, 1, Lk]
    ### END SOLUTION

# %% [test] id=test_padding_mask points=2
def make():
    return {"lengths": torch.tensor([3, 1]), "max_len": 4}


def run(lengths, max_len):
    return {"m": padding_mask(lengths, max_len)}


def check(inputs, outputs):
    m = outputs["m"]
    assert m.dtype == torch.bool and m.shape == (2, 1, 1, 4), (
        f"padding_mask(lengths=[3, 1], max_len=4): expected a bool mask of shape (2, 1, 1, 4), got "
        f"{m.dtype} of shape {tuple(m.shape)}")
    got = m[0, 0, 0].tolist()
    assert got == [True, True, True, False], (
        f"padding_mask(lengths=[3, 1], max_len=4), row 0: expected [True, True, True, False], got {got}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"cases": [(torch.tensor([5, 0, 2]), 5), (torch.tensor([1]), 1), (torch.tensor([4, 4, 1, 3]), 6)],
            "lens": torch.tensor([5, 2, 3])}


def run_hidden(cases, lens):
    return {"masks": [padding_mask(lengths, n) for lengths, n in cases], "lens_mask": padding_mask(lens, 5)}


def check_hidden(inputs, outputs):
    from lib.attention import padding_mask as ref_pad
    from lib.attention import scaled_dot_product_attention as ref

    for (lengths, n), got in zip(inputs["cases"], outputs["masks"]):
        want, lengths = ref_pad(lengths, n), lengths.tolist()
        assert got.dtype == torch.bool and torch.equal(got, want), (
            f"padding_mask(lengths={lengths}, max_len={n}): expected bool {tuple(want.shape)} rows "
            f"{want.reshape(len(lengths), -1).int().tolist()}, got {got.dtype} {tuple(got.shape)} "
            f"{got.reshape(-1).int().tolist()}")
    # used with scores whose batch size equals the number of queries, it must still mask keys
    q, k, v = randn(3, 2, 3, 8, seed=30), randn(3, 2, 5, 8, seed=31), randn(3, 2, 5, 4, seed=32)
    check_close(F.scaled_dot_product_attention(q, k, v, attn_mask=outputs["lens_mask"]),
                ref(q, k, v, mask=ref_pad(inputs["lens"], 5)),
                "F.scaled_dot_product_attention(q [3, 2, 3, 8], k, v [3, 2, 5, .], "
                "attn_mask=padding_mask(lengths=[5, 2, 3], max_len=5)): the mask must hide keys, not queries")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Multi-head self-attention (4 points)
#
# Implement `multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None)` for
# `x [B, L, D]` and weights `[D, D]` applied as `x @ w`. With `dh = D // n_heads`:
#
# 1. project: `x @ w_q`, `x @ w_k`, `x @ w_v`, each `[B, L, D]`;
# 2. split heads: `[B, L, D] -> [B, L, H, dh] -> [B, H, L, dh]` (feature `h * dh + i` of a
#    token belongs to head `h`);
# 3. attend per head: use `F.scaled_dot_product_attention(q, k, v, attn_mask=mask)` here, so
#    that this part is graded independently of part 1;
# 4. merge heads back to `[B, L, D]` and apply `w_o`.

# %% [solution] id=mha
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    ### BEGIN SOLUTION
    b, l, d = x.shape

    def split(t):  # [B, L, D] -> [B, H, L, dh]
        return t.view(b, l, n_heads, d // n_heads).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, L, dh]
    return out.transpose(1, 2).reshape(b, l, d) @ w_o  # [B, L, D]
    ### END SOLUTION

# %% [test] id=test_mha points=4
def make():
    return {"x": randn(2, 6, 12, seed=20), "ws": [randn(12, 12, seed=21 + i) / math.sqrt(12) for i in range(4)]}


def run(x, ws):
    return {"y": multi_head_attention(x, *ws, 3), "one_head": multi_head_attention(x, *ws, 1)}


def check(inputs, outputs):
    x, ws, y = inputs["x"], inputs["ws"], outputs["y"]
    assert y.shape == (2, 6, 12), f"multi_head_attention(x [2, 6, 12], n_heads=3): expected shape (2, 6, 12), got {tuple(y.shape)}"
    # with one head, multi-head attention is plain attention between projections
    check_close(outputs["one_head"],
                F.scaled_dot_product_attention(x @ ws[0], x @ ws[1], x @ ws[2]) @ ws[3],
                "multi_head_attention(x [2, 6, 12], n_heads=1) against one attention of the projections")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    lengths = torch.tensor([6, 2])
    return {"x": randn(2, 6, 12, seed=20), "ws": [randn(12, 12, seed=21 + i) / math.sqrt(12) for i in range(4)],
            "causal": torch.ones(6, 6, dtype=torch.bool).tril(),
            # a mask that is not causal: padding, lengths [6, 2]
            "pad": (torch.arange(6)[None, :] < lengths[:, None])[:, None, None, :]}


def run_hidden(x, ws, causal, pad):
    return {"y": multi_head_attention(x, *ws, 3), "causal": multi_head_attention(x, *ws, 4, mask=causal),
            "pad": multi_head_attention(x, *ws, 3, mask=pad)}


def check_hidden(inputs, outputs):
    from lib.attention import multi_head_attention as ref_mha

    x, ws, causal, pad = inputs["x"], inputs["ws"], inputs["causal"], inputs["pad"]
    check_close(outputs["y"], ref_mha(x, *ws, 3), "multi_head_attention(x [2, 6, 12], n_heads=3)")
    check_close(outputs["causal"], ref_mha(x, *ws, 4, mask=causal),
                "multi_head_attention(x [2, 6, 12], n_heads=4, causal mask [6, 6])")
    check_close(outputs["pad"], ref_mha(x, *ws, 3, mask=pad),
                "multi_head_attention(x [2, 6, 12], n_heads=3, padding mask [2, 1, 1, 6] for lengths [6, 2])")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
