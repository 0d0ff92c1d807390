"""Tests of lib.attention.apply_rope's two pairings and explicit positions.

References: multiplication by unit complex numbers through ``torch.view_as_complex`` (the
form of the RoFormer paper and Meta's Llama reference code), the rotate-half formula written
out, and a fixed permutation of the features that maps one pairing onto the other.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.attention import apply_rope

F64 = torch.float64


def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0):
    """Interleaved RoPE as Meta's reference writes it: pairs (2i, 2i+1) as complex numbers."""
    d = x.shape[-1]
    freqs = 1.0 / base ** (torch.arange(0, d, 2, dtype=F64) / d)  # [D/2]
    angles = positions.to(F64)[..., None] * freqs  # [..., L, D/2]
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())  # [..., L, D/2]
    rotated = z * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(rotated).flatten(-2)  # [..., L, D]


def rotate_half_formula(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0):
    """Rotate-half written out: pair (i, i + D/2), one feature pair at a time."""
    d = x.shape[-1]
    out = torch.empty_like(x)
    for i in range(d // 2):
        a = positions.to(F64) * base ** (-2 * i / d)  # [..., L]
        u, v = x[..., i], x[..., i + d // 2]
        out[..., i] = u * torch.cos(a) - v * torch.sin(a)
        out[..., i + d // 2] = u * torch.sin(a) + v * torch.cos(a)
    return out


def interleave_permutation(d: int) -> torch.Tensor:
    """``perm`` with ``x[..., perm]`` moving feature 2i to slot i and 2i+1 to slot i + D/2."""
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


def test_default_is_rotate_half_at_offset_positions():
    x = torch.randn(2, 3, 5, 8, dtype=F64)
    torch.testing.assert_close(apply_rope(x, offset=7), rotate_half_formula(x, torch.arange(7, 12)))


def test_interleaved_equals_complex_multiplication():
    x = torch.randn(2, 3, 5, 8, dtype=F64)
    out = apply_rope(x, offset=3, interleaved=True)
    torch.testing.assert_close(out, complex_rope(x, torch.arange(3, 8)))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), half=st.integers(1, 8), offset=st.integers(0, 4096))
def test_pairings_differ_by_a_fixed_feature_permutation(seed, half, offset):
    d = 2 * half
    x = torch.randn(2, 4, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    perm = interleave_permutation(d)
    inverse = torch.argsort(perm)
    interleaved = apply_rope(x, offset=offset, interleaved=True)
    via_half = apply_rope(x[..., perm], offset=offset)[..., inverse]
    torch.testing.assert_close(interleaved, via_half, rtol=0, atol=1e-12)


def test_the_pairings_really_differ():
    x = torch.randn(1, 4, 8, dtype=F64)
    diff = (apply_rope(x, interleaved=True) - apply_rope(x)).abs().max().item()
    assert diff > 0.1, f"the two pairings should differ on random x, max difference {diff}"


@pytest.mark.parametrize("interleaved", [False, True])
def test_positions_override_offset_and_broadcast_over_heads(interleaved):
    x = torch.randn(2, 3, 4, 8, dtype=F64)  # [B, H, L, D]
    positions = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]])[:, None, :]  # [B, 1, L]
    out = apply_rope(x, offset=100, positions=positions, interleaved=interleaved)
    for b in range(2):
        expected = apply_rope(x[b], offset=int(positions[b, 0, 0]), interleaved=interleaved)
        torch.testing.assert_close(out[b], expected)


@pytest.mark.parametrize("interleaved", [False, True])
def test_arbitrary_positions_match_the_references(interleaved):
    x = torch.randn(2, 5, 6, dtype=F64)
    positions = torch.tensor([[3, 0, 9, 9, 1], [2, 2, 2, 40, 7]])  # [B, L], any order
    reference = complex_rope if interleaved else rotate_half_formula
    torch.testing.assert_close(
        apply_rope(x, positions=positions, interleaved=interleaved), reference(x, positions))


@settings(max_examples=20, deadline=None)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 500),
       seed=st.integers(0, 10_000))
def test_interleaved_scores_depend_only_on_relative_position(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 16, generator=g, dtype=F64), torch.randn(1, 16, generator=g, dtype=F64)

    def score(a, b):
        return (apply_rope(q, a, interleaved=True) @ apply_rope(k, b, interleaved=True).T).item()

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)


def test_float32_input_keeps_its_dtype():
    x = torch.randn(3, 8)
    assert apply_rope(x, interleaved=True).dtype == torch.float32


def test_positions_value_errors():
    x = torch.randn(2, 3, 4, 8)
    with pytest.raises(ValueError, match=r"positions of shape \(5,\) does not broadcast"):
        apply_rope(x, positions=torch.arange(5))
    with pytest.raises(ValueError, match="positions must be an integer tensor"):
        apply_rope(x, positions=torch.arange(4.0))
    with pytest.raises(ValueError, match="must be even"):
        apply_rope(torch.randn(3, 5), interleaved=True)
