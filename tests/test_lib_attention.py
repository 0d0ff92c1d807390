"""Tests of lib.attention: SDPA, masks, multi-head attention (forward and backward), positions.

References: torch.nn.functional.scaled_dot_product_attention, torch.nn.MultiheadAttention,
torch autograd, central finite differences in float64, and formulas written out here.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.attention import (
    alibi_bias, alibi_slopes, apply_rope, attention_probs, causal_mask, merge_heads,
    multi_head_attention, multi_head_attention_backward, padding_mask,
    scaled_dot_product_attention, sinusoidal_positions, split_heads,
)

F64 = torch.float64


def qkv(b=2, h=3, lq=5, lk=5, d=8, dv=None, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    dv = d if dv is None else dv
    q = torch.randn(b, h, lq, d, generator=g, dtype=F64).to(dtype)
    k = torch.randn(b, h, lk, d, generator=g, dtype=F64).to(dtype)
    v = torch.randn(b, h, lk, dv, generator=g, dtype=F64).to(dtype)
    return q, k, v


def reference_attention(q, k, v, visible):
    """Loop over queries: softmax over the visible keys only, zeros if none is visible."""
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=F64)
    for idx in torch.cartesian_prod(*[torch.arange(n) for n in q.shape[:-1]]):
        *lead, i = idx.tolist()
        row = visible[tuple(lead)][i] if visible.ndim > 2 else visible[i]
        if row.any():
            s = (k[tuple(lead)][row] @ q[tuple(lead)][i]) / math.sqrt(q.shape[-1])
            out[tuple(lead)][i] = torch.softmax(s, 0) @ v[tuple(lead)][row]
    return out


# ---------------------------------------------------------------- scaled dot-product attention

def test_sdpa_matches_torch_without_mask():
    q, k, v = qkv(lq=6, lk=9, dv=5)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v),
                               F.scaled_dot_product_attention(q, k, v))


def test_sdpa_matches_torch_with_custom_scale():
    q, k, v = qkv()
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, scale=0.3),
                               F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_sdpa_matches_torch_with_bool_mask():
    q, k, v = qkv(lq=4, lk=7)
    mask = torch.rand(2, 1, 4, 7, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[..., 0] = True  # keep every row alive here; dead rows have their own test
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_sdpa_matches_torch_with_additive_mask():
    q, k, v = qkv(lq=4, lk=7)
    bias = torch.randn(3, 4, 7, dtype=F64)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=bias),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def test_bool_mask_equals_additive_minus_inf_mask():
    q, k, v = qkv(lq=4, lk=6)
    mask = causal_mask(4, 6)
    additive = torch.zeros(4, 6, dtype=F64).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=mask),
                               scaled_dot_product_attention(q, k, v, mask=additive))


def test_sdpa_causal_square_matches_torch():
    q, k, v = qkv(lq=7, lk=7)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("lq,lk", [(3, 8), (1, 6), (6, 4)])
def test_sdpa_causal_rectangular_is_bottom_right(lq, lk):
    q, k, v = qkv(lq=lq, lk=lk)
    visible = torch.tensor([[j <= i + lk - lq for j in range(lk)] for i in range(lq)])
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               reference_attention(q, k, v, visible))


def test_torch_causal_is_top_left_when_lq_differs_from_lk():
    """Documents the difference: torch's is_causal lets query i see keys j <= i."""
    q, k, v = qkv(lq=3, lk=8)
    top_left = torch.ones(3, 8, dtype=torch.bool).tril()
    ours_top_left = scaled_dot_product_attention(q, k, v, mask=top_left)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               ours_top_left)
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (ours - ours_top_left).abs().max() > 0.1
    # The last query (the newest token during decoding) must see every key: only ours does.
    full = scaled_dot_product_attention(q[..., -1:, :], k, v)
    torch.testing.assert_close(ours[..., -1:, :], full)


@pytest.mark.parametrize("lq,lk", [(3, 6), (5, 5), (1, 4), (4, 7)])
def test_torch_causal_lower_right_equals_lib_is_causal(lq, lk):
    """torch.nn.attention.bias.causal_lower_right is the bottom-right alignment lib uses."""
    from torch.nn.attention.bias import causal_lower_right
    q, k, v = qkv(lq=lq, lk=lk)
    bias = causal_lower_right(lq, lk)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                               scaled_dot_product_attention(q, k, v, is_causal=True))
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                               scaled_dot_product_attention(q, k, v, mask=causal_mask(lq, lk)))


def test_sdpa_padding_mask_broadcasts_from_lengths():
    q, k, v = qkv(b=3, lq=5, lk=6)
    lengths = torch.tensor([6, 2, 4])
    mask = padding_mask(lengths, 6)  # [B, 1, 1, Lk]
    visible = torch.arange(6)[None, None, None, :] < lengths[:, None, None, None]
    visible = visible.expand(3, 3, 5, 6)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=mask),
                               reference_attention(q, k, v, visible))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_sdpa_combined_padding_and_causal():
    q, k, v = qkv(b=2, lq=5, lk=5)
    pad = padding_mask(torch.tensor([5, 3]), 5)
    combined = pad & causal_mask(5)
    ours = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True)
    torch.testing.assert_close(ours, scaled_dot_product_attention(q, k, v, mask=combined))
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=combined))


def test_fully_masked_rows_give_zeros_and_zero_finite_gradients():
    q, k, v = qkv(b=1, h=1, lq=4, lk=5)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1] = False  # query 1 sees nothing
    out = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(out[0, 0, 1], torch.zeros(8, dtype=F64))
    out.square().sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[0, 0, 1], torch.zeros(8, dtype=F64))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_row_of_minus_inf_additive_mask_is_also_dead():
    q, k, v = qkv(b=1, h=1, lq=3, lk=4)
    bias = torch.zeros(3, 4, dtype=F64)
    bias[2] = float("-inf")
    out = scaled_dot_product_attention(q, k, v, mask=bias)
    assert torch.equal(out[0, 0, 2], torch.zeros(8, dtype=F64))


def test_causal_with_more_queries_than_keys_has_dead_rows():
    q, k, v = qkv(lq=5, lk=3)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.equal(out[..., :2, :], torch.zeros_like(out[..., :2, :]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_match_float64(dtype):
    q, k, v = qkv(lq=6, lk=6, d=64)
    mask = padding_mask(torch.tensor([6, 3]), 6)
    ref = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    out = scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), mask=mask,
                                       is_causal=True)
    assert out.dtype == dtype
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    torch.testing.assert_close(out.to(F64), ref, atol=tol, rtol=tol)


def test_half_precision_large_scores_do_not_overflow():
    """q.k = 64 * 300^2 = 5.8e6 overflows float16 (max 65504); the softmax runs in fp32."""
    q = torch.full((1, 1, 2, 64), 300.0, dtype=torch.float16)
    k = q.clone()
    v = torch.randn(1, 1, 2, 64).to(torch.float16)
    naive = torch.softmax((q @ k.transpose(-2, -1)) / 8, dim=-1)
    assert torch.isnan(naive).any()  # the trap this test guards against
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.isfinite(out).all()


def test_half_precision_fully_masked_row_has_no_nan():
    q, k, v = qkv(b=1, h=1, lq=3, lk=3, dtype=torch.float16)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    assert not torch.isnan(scaled_dot_product_attention(q, k, v, mask=mask)).any()


def test_sdpa_gradcheck_float64_with_mask():
    q, k, v = qkv(b=1, h=2, lq=3, lk=4, d=4)
    mask = torch.tensor([[True, True, False, False]] * 3)
    mask[2] = False
    inputs = tuple(t.requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: scaled_dot_product_attention(a, b, c, mask=mask, is_causal=True), inputs)


@settings(max_examples=25, deadline=None)
@given(lq=st.integers(1, 5), lk=st.integers(1, 6), seed=st.integers(0, 10_000),
       shift=st.floats(-50, 50))
def test_probabilities_sum_to_one_and_ignore_row_shifts(lq, lk, seed, shift):
    q, k, _ = qkv(b=1, h=1, lq=lq, lk=lk, seed=seed)
    bias = torch.randn(lq, lk, dtype=F64, generator=torch.Generator().manual_seed(seed))
    p = attention_probs(q, k, mask=bias)
    torch.testing.assert_close(p.sum(-1), torch.ones(1, 1, lq, dtype=F64))
    torch.testing.assert_close(attention_probs(q, k, mask=bias + shift), p)


@settings(max_examples=20, deadline=None)
@given(lk=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_output_is_invariant_to_permuting_keys_with_values(lk, seed):
    q, k, v = qkv(lq=3, lk=lk, seed=seed)
    perm = torch.randperm(lk, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(scaled_dot_product_attention(q, k[..., perm, :], v[..., perm, :]),
                               scaled_dot_product_attention(q, k, v))


@settings(max_examples=20, deadline=None)
@given(length=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_padded_keys_never_influence_the_output(length, seed):
    q, k, v = qkv(b=1, lq=4, lk=6, seed=seed)
    mask = padding_mask(torch.tensor([length]), 6)
    k2, v2 = k.clone(), v.clone()
    k2[..., length:, :] = torch.randn_like(k2[..., length:, :]) * 100
    v2[..., length:, :] = torch.randn_like(v2[..., length:, :]) * 100
    out = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(q, k2, v2, mask=mask), out)
    # and padding equals truncation
    torch.testing.assert_close(scaled_dot_product_attention(q, k[..., :length, :],
                                                           v[..., :length, :]), out)


def test_sdpa_value_errors():
    q, k, v = qkv(lq=4, lk=6)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\).*scores of shape"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be bool or floating"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="q and k must share"):
        scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="k and v must have the same number of keys"):
        scaled_dot_product_attention(q, k, v[..., :5, :])
    with pytest.raises(ValueError, match="do not broadcast"):
        scaled_dot_product_attention(q[:, :2], k, v)
    with pytest.raises(ValueError, match="q must have at least 2 dimensions"):
        scaled_dot_product_attention(q[0, 0, 0], k, v)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout_p must lie in \[0, 1\)"):
            scaled_dot_product_attention(q, k, v, dropout_p=bad)


def test_sdpa_dropout_off_by_default_and_at_zero():
    q, k, v = qkv()
    plain = scaled_dot_product_attention(q, k, v, is_causal=True)
    zero = scaled_dot_product_attention(q, k, v, None, True, None, 0.0)
    assert torch.equal(plain, zero), "dropout_p=0.0 must be the deterministic attention"


def test_sdpa_dropout_is_inverted_dropout_on_the_probabilities():
    """Same generator seed -> same uniforms; rebuild the output from the written-out rule."""
    q, k, v = qkv(lq=4, lk=6)
    p = 0.3
    out = scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p,
                                       generator=torch.Generator().manual_seed(7))
    probs = attention_probs(q, k, is_causal=True)  # [B, H, Lq, Lk]
    u = torch.rand(probs.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    expected = (probs * (u >= p) / (1 - p)) @ v
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    again = scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p,
                                         generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, again), "the same generator seed must give the same mask"


def test_sdpa_dropout_expectation_equals_plain_attention():
    """Mean over n independent masks -> P v, within 5 standard errors per entry."""
    q, k, v = qkv(b=1, h=1, lq=3, lk=5, d=4)
    n = 20_000
    outs = scaled_dot_product_attention(q.expand(n, 1, 3, 4), k, v, dropout_p=0.25,
                                        generator=torch.Generator().manual_seed(0))
    plain = scaled_dot_product_attention(q, k, v)[0]  # [1, 3, 4]
    mean, se = outs.mean(0), outs.std(0) / math.sqrt(n)
    assert ((mean - plain).abs() <= 5 * se + 1e-12).all(), (
        f"mean of {n} dropout outputs {mean} vs plain attention {plain} (se {se})")
    assert (outs != plain).any(), "dropout_p=0.25 changed nothing"


def test_sdpa_dropout_keeps_masked_and_dead_rows_zero():
    q, k, v = qkv(lq=4, lk=4)
    visible = torch.tensor([[True, False, False, False]] * 3 + [[False] * 4])  # row 3 dead
    out = scaled_dot_product_attention(q, k, v, mask=visible, dropout_p=0.5,
                                       generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[..., 3, :], torch.zeros_like(out[..., 3, :])), "dead row not zero"
    kept_or_zero = (out[..., :3, :] == 0).all(-1) | torch.isclose(
        out[..., :3, :], 2 * v[..., :1, :]).all(-1)
    assert kept_or_zero.all(), "a row seeing one key must give 0 or v_0 / (1 - p)"


# ---------------------------------------------------------------- masks

@pytest.mark.parametrize("lq,lk", [(4, 4), (2, 5), (5, 2)])
def test_causal_mask_formula(lq, lk):
    expected = torch.tensor([[j <= i + lk - lq for j in range(lk)] for i in range(lq)])
    assert torch.equal(causal_mask(lq, lk), expected)


def test_causal_mask_defaults_to_square():
    assert torch.equal(causal_mask(3), torch.ones(3, 3, dtype=torch.bool).tril())


def test_padding_mask_shape_and_values():
    mask = padding_mask(torch.tensor([3, 0, 5]), 5)
    assert mask.shape == (3, 1, 1, 5) and mask.dtype == torch.bool
    assert mask[:, 0, 0].sum(-1).tolist() == [3, 0, 5]
    assert mask[0, 0, 0].tolist() == [True, True, True, False, False]


def test_mask_value_errors():
    with pytest.raises(ValueError, match="lengths must have 1 dimensions"):
        padding_mask(torch.tensor([[1, 2]]), 3)
    with pytest.raises(ValueError, match="lengths must lie in"):
        padding_mask(torch.tensor([1, 4]), 3)
    with pytest.raises(ValueError, match="integer tensor"):
        padding_mask(torch.tensor([1.0]), 3)
    with pytest.raises(ValueError, match="lq must be in"):
        causal_mask(0)


# ---------------------------------------------------------------- multi-head attention

def mha_inputs(b=2, length=5, d_model=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, d_model, generator=g, dtype=F64)
    ws = [torch.randn(d_model, d_model, generator=g, dtype=F64) / math.sqrt(d_model)
          for _ in range(4)]
    return x, ws


def test_split_and_merge_heads_layout():
    x = torch.arange(2 * 3 * 6).reshape(2, 3, 6).float()
    heads = split_heads(x, 2)  # [B, H, L, Dh]
    assert heads.shape == (2, 2, 3, 3)
    assert torch.equal(heads[1, 1, 2], x[1, 2, 3:6])  # head h holds features h*Dh .. (h+1)*Dh
    assert torch.equal(merge_heads(heads), x)


@pytest.mark.parametrize("is_causal", [False, True])
def test_mha_matches_torch_multihead_attention(is_causal):
    x, (w_q, w_k, w_v, w_o) = mha_inputs()
    layer = torch.nn.MultiheadAttention(12, 3, bias=False, batch_first=True, dtype=F64)
    with torch.no_grad():  # torch computes x @ W.T, ours x @ w
        layer.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
        layer.out_proj.weight.copy_(w_o.T)
    blocked = ~causal_mask(5) if is_causal else None  # torch: True = blocked
    expected, _ = layer(x, x, x, attn_mask=blocked, need_weights=False)
    torch.testing.assert_close(multi_head_attention(x, w_q, w_k, w_v, w_o, 3,
                                                    is_causal=is_causal), expected)


def test_mha_with_padding_mask_matches_torch():
    x, (w_q, w_k, w_v, w_o) = mha_inputs(b=2)
    layer = torch.nn.MultiheadAttention(12, 4, bias=False, batch_first=True, dtype=F64)
    with torch.no_grad():
        layer.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
        layer.out_proj.weight.copy_(w_o.T)
    mask = padding_mask(torch.tensor([5, 3]), 5)
    expected, _ = layer(x, x, x, key_padding_mask=~mask[:, 0, 0], need_weights=False)
    torch.testing.assert_close(multi_head_attention(x, w_q, w_k, w_v, w_o, 4, mask=mask), expected)


def test_one_head_equals_plain_attention():
    x, (w_q, w_k, w_v, w_o) = mha_inputs()
    plain = scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v) @ w_o
    torch.testing.assert_close(multi_head_attention(x, w_q, w_k, w_v, w_o, 1), plain)


@pytest.mark.parametrize("is_causal,use_pad", [(False, False), (True, False), (True, True)])
def test_mha_backward_matches_autograd(is_causal, use_pad):
    x, ws = mha_inputs()
    mask = padding_mask(torch.tensor([5, 0]), 5) if use_pad else None  # batch 1: all dead
    leaves = [t.clone().requires_grad_() for t in (x, *ws)]
    y = multi_head_attention(*leaves, 3, mask=mask, is_causal=is_causal)
    d_y = torch.randn(y.shape, dtype=F64, generator=torch.Generator().manual_seed(5))
    y.backward(d_y)
    ours = multi_head_attention_backward(d_y, x, *ws, 3, mask=mask, is_causal=is_causal)
    for name, leaf in zip(["x", "w_q", "w_k", "w_v", "w_o"], leaves):
        torch.testing.assert_close(ours[name], leaf.grad, rtol=1e-10, atol=1e-12)


def test_mha_backward_matches_finite_differences():
    x, ws = mha_inputs(b=1, length=3, d_model=4)
    d_y = torch.randn(1, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    inputs = {"x": x, "w_q": ws[0], "w_k": ws[1], "w_v": ws[2], "w_o": ws[3]}

    def loss():
        return float((multi_head_attention(*inputs.values(), 2, is_causal=True) * d_y).sum())

    ours = multi_head_attention_backward(d_y, *inputs.values(), 2, is_causal=True)
    eps = 1e-6
    for name, t in inputs.items():
        numeric = torch.zeros_like(t)
        for idx in range(t.numel()):
            flat = t.view(-1)
            old = flat[idx].item()
            flat[idx] = old + eps
            up = loss()
            flat[idx] = old - eps
            down = loss()
            flat[idx] = old
            numeric.view(-1)[idx] = (up - down) / (2 * eps)
        rel = (ours[name] - numeric).abs() / (ours[name].abs() + numeric.abs()).clamp_min(1e-12)
        assert rel.max() < 1e-6, name


def test_mha_value_errors():
    x, (w_q, w_k, w_v, w_o) = mha_inputs()
    with pytest.raises(ValueError, match=r"w_k must have shape \(12, 12\)"):
        multi_head_attention(x, w_q, w_k[:, :6], w_v, w_o, 3)
    with pytest.raises(ValueError, match="n_heads=5"):
        multi_head_attention(x, w_q, w_k, w_v, w_o, 5)
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        multi_head_attention(x[0], w_q, w_k, w_v, w_o, 3)
    with pytest.raises(ValueError, match="mask of shape"):
        multi_head_attention(x, w_q, w_k, w_v, w_o, 3, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="d_y must have the shape of x"):
        multi_head_attention_backward(x[:, :2], x, w_q, w_k, w_v, w_o, 3)


# ---------------------------------------------------------------- positions

def test_sinusoidal_positions_formula():
    table = sinusoidal_positions(7, 6, dtype=F64)
    for p in range(7):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-12)


def rope_by_complex_numbers(x, offset):
    """Reference: feature pairs (i, i + D/2) as complex numbers times e^{i p w_i}."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half], x[..., half:])
    pos = torch.arange(offset, offset + x.shape[-2], dtype=F64)
    w = 10000.0 ** (-torch.arange(half, dtype=F64) * 2 / x.shape[-1])
    z = z * torch.polar(torch.ones(len(pos), half, dtype=F64), pos[:, None] * w)
    return torch.cat([z.real, z.imag], dim=-1)


def test_rope_matches_complex_rotation_and_keeps_norms():
    x = torch.randn(2, 3, 5, 8, dtype=F64)
    out = apply_rope(x, offset=4)
    torch.testing.assert_close(out, rope_by_complex_numbers(x, 4))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


def test_rope_offset_equals_slicing_a_longer_sequence():
    x = torch.randn(1, 1, 6, 8, dtype=F64)
    torch.testing.assert_close(apply_rope(x)[..., 4:, :], apply_rope(x[..., 4:, :], offset=4))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 500),
       seed=st.integers(0, 10_000))
def test_rope_scores_depend_only_on_relative_position(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 16, generator=g, dtype=F64), torch.randn(1, 16, generator=g, dtype=F64)
    score = (apply_rope(q, m) @ apply_rope(k, n).T).item()
    shifted = (apply_rope(q, m + shift) @ apply_rope(k, n + shift).T).item()
    assert shifted == pytest.approx(score, abs=1e-9)


def test_alibi_slopes_from_the_paper():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -i for i in range(1, 9)]))
    twelve = alibi_slopes(12)
    torch.testing.assert_close(twelve[:8], alibi_slopes(8))
    torch.testing.assert_close(twelve[8:], torch.tensor([2.0 ** -(i + 0.5) for i in range(4)]))


def test_alibi_bias_formula():
    bias = alibi_bias(2, 3, 5)
    for h in range(2):
        for i in range(3):
            for j in range(5):
                expected = alibi_slopes(2)[h] * (j - (i + 2))
                assert bias[h, i, j].item() == pytest.approx(expected.item())


def test_position_value_errors():
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoidal_positions(4, 5)
    with pytest.raises(ValueError, match="must be even"):
        apply_rope(torch.randn(3, 5))
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        apply_rope(torch.randn(4))
    with pytest.raises(ValueError, match="n_heads must be >= 1"):
        alibi_slopes(0)


# ---------------------------------------------------------------- CUDA (skipped without a GPU)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_sdpa_on_cuda_matches_torch(dtype):
    q, k, v = (t.cuda().to(dtype) for t in qkv(lq=5, lk=9, d=64))
    mask = padding_mask(torch.tensor([9, 4], device="cuda"), 9)
    ours = scaled_dot_product_attention(q, k, v, mask=mask)
    assert ours.device.type == "cuda" and ours.dtype == dtype
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
    tol = {torch.float32: 1e-3, torch.float16: 3e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(ours.double(), ref, atol=tol, rtol=tol)
    causal = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal.double().cpu(),
                               scaled_dot_product_attention(*(t.double().cpu() for t in (q, k, v)),
                                                            is_causal=True), atol=tol, rtol=tol)
