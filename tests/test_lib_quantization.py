"""Tests for lib.quantization: the absmax formula written out, error bounds, edge cases."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.quantization import dequantize_int8, int8_linear, int8_scale, quantize_int8


def test_known_values_per_tensor():
    w = torch.tensor([[1.27, -0.635], [0.0, 0.01]])
    q, scale = quantize_int8(w, "tensor")
    assert scale.shape == (1, 1)
    torch.testing.assert_close(scale, torch.tensor([[0.01]]))
    assert q.dtype == torch.int8
    assert q.tolist() == [[127, -64], [0, 1]]  # -63.5 rounds half to even -> -64


def test_per_channel_scale_is_row_absmax_over_127():
    w = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(int8_scale(w, "channel"), w.abs().amax(1, keepdim=True) / 127)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), granularity=st.sampled_from(["tensor", "channel"]),
       rows=st.integers(1, 6), cols=st.integers(1, 12))
def test_error_is_at_most_half_a_step(seed, granularity, rows, cols):
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    q, scale = quantize_int8(w, granularity)
    err = (dequantize_int8(q, scale) - w).abs()
    assert torch.all(err <= scale / 2 + 1e-12)
    assert q.abs().max() <= 127
    # The absmax entry of each group maps to +-127 exactly.
    assert q.abs().max().item() == 127


def test_per_channel_beats_per_tensor_with_an_outlier_row():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g) * 0.02
    w[0] *= 100.0
    errs = {}
    for gran in ("tensor", "channel"):
        q, s = quantize_int8(w, gran)
        errs[gran] = (dequantize_int8(q, s) - w)[1:].abs().mean()
    assert errs["channel"] < errs["tensor"] / 10


def test_zero_rows_stay_exact():
    w = torch.zeros(3, 4)
    w[1, 2] = 0.5
    q, s = quantize_int8(w, "channel")
    assert torch.isfinite(s).all()
    torch.testing.assert_close(dequantize_int8(q, s), w)


def test_int8_linear_matches_float_linear_on_dequantized_weight():
    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(6, 10, generator=g), torch.randn(6, generator=g)
    x = torch.randn(2, 3, 10, generator=g)
    q, s = quantize_int8(w)
    expected = torch.nn.functional.linear(x, dequantize_int8(q, s), b)
    torch.testing.assert_close(int8_linear(x, q, s, b), expected)
    rel = (int8_linear(x, q, s, b) - torch.nn.functional.linear(x, w, b)).norm() / \
        torch.nn.functional.linear(x, w, b).norm()
    assert rel < 0.01


def test_errors():
    w = torch.randn(3, 4)
    with pytest.raises(ValueError, match="w must have 2"):
        quantize_int8(w[0])
    with pytest.raises(ValueError, match="granularity must be one of"):
        quantize_int8(w, "row")
    q, s = quantize_int8(w)
    with pytest.raises(ValueError, match="q must have dtype torch.int8"):
        dequantize_int8(q.float(), s)
    with pytest.raises(ValueError, match="scale of shape"):
        dequantize_int8(q, torch.ones(4, 1))
    with pytest.raises(ValueError, match="x \\[..., d_in\\] must match"):
        int8_linear(torch.randn(2, 5), q, s)
