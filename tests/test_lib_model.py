"""Tests of lib.model against torch.nn.functional (rms_norm, silu, linear, embedding,
scaled_dot_product_attention), autograd's gradcheck (finite differences in float64), the
truncated normal's moments, and a block written out with torch's own functions."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.model import (
    Block, CausalSelfAttention, Embedding, Linear, RMSNorm, SwiGLU, TinyLM, get_batch,
    rmsnorm, silu, swiglu,
)

F64 = torch.float64


def rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 16), scale=st.floats(1e-3, 1e3))
def test_rmsnorm_equals_torch_rms_norm(seed, d, scale):
    x, w = rand(3, 4, d, seed=seed) * scale, rand(d, seed=seed + 1)
    torch.testing.assert_close(rmsnorm(x, w), F.rms_norm(x, (d,), w, eps=1e-5))


def test_rmsnorm_formula_and_gradient():
    x, w = rand(2, 5, seed=1), rand(5, seed=2)
    expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-3) * w
    torch.testing.assert_close(rmsnorm(x, w, eps=1e-3), expected)
    assert torch.autograd.gradcheck(rmsnorm, (x.requires_grad_(), w.requires_grad_()))


def test_rmsnorm_float16_does_not_overflow():
    x = torch.full((2, 8), 1000.0, dtype=torch.float16)  # x^2 = 1e6 > float16's 65504
    out = rmsnorm(x, torch.ones(8, dtype=torch.float16))
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, torch.ones(2, 8, dtype=torch.float16), rtol=1e-3, atol=1e-3)


def test_silu_equals_torch():
    x = torch.linspace(-20, 20, 101, dtype=F64)
    torch.testing.assert_close(silu(x), F.silu(x))


def test_swiglu_formula_and_gradient():
    x, w1, w2, w3 = rand(2, 3, 4, seed=3), rand(6, 4, seed=4), rand(4, 6, seed=5), rand(6, 4, seed=6)
    expected = F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    torch.testing.assert_close(swiglu(x, w1, w2, w3), expected)
    args = tuple(t.requires_grad_() for t in (x, w1, w2, w3))
    assert torch.autograd.gradcheck(swiglu, args)


def test_linear_and_embedding_equal_torch():
    torch.manual_seed(0)
    lin, emb = Linear(5, 3, F64), Embedding(7, 4, F64)
    x, ids = rand(2, 5, seed=7), torch.tensor([[0, 6, 3]])
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight))
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight))
    assert lin.weight.shape == (3, 5) and emb.weight.shape == (7, 4)


def truncated_std(std: float, k: float = 3.0) -> float:
    """Standard deviation of N(0, std^2) truncated to [-k std, k std]."""
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(k / math.sqrt(2))
    return std * math.sqrt(1 - 2 * k * phi / mass)


def test_initialisation_is_the_documented_truncated_normal():
    torch.manual_seed(0)
    d_in, d_out = 300, 500
    w = Linear(d_in, d_out).weight.detach()
    s = math.sqrt(2 / (d_in + d_out))
    assert w.abs().max().item() <= 3 * s
    assert w.std().item() == pytest.approx(truncated_std(s), rel=0.01)
    e = Embedding(1000, 200).weight.detach()
    assert e.abs().max().item() <= 3.0
    assert e.std().item() == pytest.approx(truncated_std(1.0), rel=0.01)


def rotate_half(x, base=10000.0):
    """RoPE written out: pair (i, i + D/2) turns by p * base^(-2i/D)."""
    length, d = x.shape[-2:]
    freqs = base ** (-torch.arange(0, d, 2, dtype=F64) / d)  # [D/2]
    a = torch.arange(length, dtype=F64)[:, None] * freqs  # [L, D/2]
    u, v = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([u * a.cos() - v * a.sin(), u * a.sin() + v * a.cos()], dim=-1)


def reference_attention(attn: CausalSelfAttention, x):
    b, length, d = x.shape
    h = attn.n_heads

    def heads(w):  # [B, L, d] -> [B, H, L, Dh]
        return F.linear(x, w).view(b, length, h, d // h).transpose(1, 2)

    q, k, v = heads(attn.q_proj.weight), heads(attn.k_proj.weight), heads(attn.v_proj.weight)
    out = F.scaled_dot_product_attention(rotate_half(q), rotate_half(k), v, is_causal=True)
    return F.linear(out.transpose(1, 2).reshape(b, length, d), attn.o_proj.weight)


def test_block_equals_a_reference_written_with_torch_functions():
    torch.manual_seed(1)
    block = Block(d_model=16, n_heads=4, d_ff=24, dtype=F64)
    with torch.no_grad():
        for p in block.parameters():  # gains away from 1, so a forgotten gain shows
            p.add_(0.1 * torch.randn_like(p))
    x = rand(2, 7, 16, seed=8)
    hn = F.rms_norm(x, (16,), block.norm1.weight, eps=1e-5)
    h = x + reference_attention(block.attn, hn)
    hn2 = F.rms_norm(h, (16,), block.norm2.weight, eps=1e-5)
    ffn = block.ffn
    expected = h + F.linear(F.silu(F.linear(hn2, ffn.w1.weight)) * F.linear(hn2, ffn.w3.weight),
                            ffn.w2.weight)
    torch.testing.assert_close(block(x), expected)


def small_lm(tie: bool) -> TinyLM:
    torch.manual_seed(2)
    return TinyLM(vocab_size=11, context_length=8, d_model=8, n_layers=2, n_heads=2, d_ff=12,
                  tie_weights=tie, dtype=F64)


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_count_formula(tie):
    model = small_lm(tie)
    v, d, n, d_ff = 11, 8, 2, 12
    expected = v * d + n * (4 * d * d + 3 * d * d_ff + 2 * d) + d + (0 if tie else v * d)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tied_head_is_the_embedding_matrix():
    model = small_lm(tie=True)
    ids = torch.tensor([[1, 2, 3]])
    x = model.embed(ids)
    for block in model.blocks:
        x = block(x)
    expected = F.linear(model.norm(x), model.embed.weight)
    torch.testing.assert_close(model(ids), expected)


def test_tiny_lm_is_causal():
    model = small_lm(tie=False)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    changed = ids.clone()
    changed[0, 4:] = torch.tensor([9, 10])
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert (a[:, 4:] - b[:, 4:]).abs().max().item() > 1e-3


def test_tiny_lm_gradient_matches_finite_differences():
    model = small_lm(tie=True)
    ids, targets = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[2, 3, 4, 5]])
    w = model.blocks[0].attn.q_proj.weight

    def loss_of(weight):
        with torch.no_grad():
            w.copy_(weight)
        return F.cross_entropy(model(ids).view(-1, 11), targets.view(-1))

    loss = loss_of(w.detach().clone())
    (grad,) = torch.autograd.grad(loss, w)
    base, h = w.detach().clone(), 1e-6
    for i, j in [(0, 0), (3, 5), (7, 2)]:
        plus, minus = base.clone(), base.clone()
        plus[i, j] += h
        minus[i, j] -= h
        numeric = (loss_of(plus) - loss_of(minus)).item() / (2 * h)
        assert grad[i, j].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_explicit_positions_equal_the_default_ones():
    model = small_lm(tie=False)
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(model(ids, positions=torch.arange(4)), model(ids))


def test_get_batch_windows_and_next_tokens():
    data = torch.arange(100)
    x, y = get_batch(data, batch_size=5, context_length=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # data[i] = i: the target is the next token
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous windows
    assert x.min() >= 0 and y.max() <= 99


def test_model_value_errors():
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        rmsnorm(torch.ones(2, 4), torch.ones(3))
    with pytest.raises(ValueError, match="w2 must have shape"):
        swiglu(torch.ones(2, 4), torch.ones(6, 4), torch.ones(6, 4), torch.ones(6, 4))
    with pytest.raises(ValueError, match="ids must be an integer tensor"):
        Embedding(3, 2)(torch.ones(2))
    with pytest.raises(ValueError, match="n_heads=3"):
        CausalSelfAttention(8, 3)
    with pytest.raises(ValueError, match="context_length=8"):
        small_lm(False)(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="ids must have 2 dimensions"):
        small_lm(False)(torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="data"):
        get_batch(torch.arange(5), 2, 5)


def test_modules_hold_only_the_documented_parameters():
    assert {n for n, _ in SwiGLU(4, 6).named_parameters()} == {"w1.weight", "w2.weight", "w3.weight"}
    assert [n for n, _ in RMSNorm(4).named_parameters()] == ["weight"]
