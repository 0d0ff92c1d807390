"""Tests for lib.lora against torch autograd and the formula written out."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lib.lora import (LoRALinear, lora_delta, lora_linear, lora_parameter_count,
                      merge_lora)


def make_factors(d_in=6, d_out=5, r=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_out, d_in, generator=g, dtype=dtype)
    b = torch.randn(d_out, generator=g, dtype=dtype)
    A = torch.randn(r, d_in, generator=g, dtype=dtype)
    B = torch.randn(d_out, r, generator=g, dtype=dtype)
    return W, b, A, B


def test_delta_matches_explicit_sum_of_outer_products():
    W, b, A, B = make_factors(r=3)
    expected = sum(torch.outer(B[:, i], A[i]) for i in range(3)) * (8.0 / 3)
    torch.testing.assert_close(lora_delta(A, B, alpha=8.0), expected)


def test_delta_has_rank_at_most_r():
    _, _, A, B = make_factors(d_in=10, d_out=9, r=2)
    assert torch.linalg.matrix_rank(lora_delta(A, B, 4.0)).item() == 2


@settings(max_examples=25, deadline=None)
@given(r=st.integers(1, 4), alpha=st.floats(0.5, 32.0), seed=st.integers(0, 1000),
       batch=st.integers(1, 3))
def test_merged_forward_equals_unmerged(r, alpha, seed, batch):
    W, b, A, B = make_factors(d_in=7, d_out=5, r=r, seed=seed)
    x = torch.randn(batch, 4, 7, generator=torch.Generator().manual_seed(seed + 1),
                    dtype=torch.float64)
    merged = torch.nn.functional.linear(x, merge_lora(W, A, B, alpha), b)
    torch.testing.assert_close(lora_linear(x, W, b, A, B, alpha), merged)


def test_lora_linear_without_bias():
    W, _, A, B = make_factors()
    x = torch.randn(3, 6, dtype=torch.float64)
    expected = x @ W.T + 2.0 / 2 * x @ A.T @ B.T
    torch.testing.assert_close(lora_linear(x, W, None, A, B, 2.0), expected)


def test_module_equals_base_at_init_and_only_adapter_trains():
    torch.manual_seed(0)
    base = nn.Linear(8, 6)
    layer = LoRALinear(base, r=2, alpha=4.0, generator=torch.Generator().manual_seed(1))
    x = torch.randn(5, 8)
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)
    trainable = [name for name, p in layer.named_parameters() if p.requires_grad]
    assert trainable == ["A", "B"]
    assert layer.scaling == 2.0


def test_gradient_of_A_is_zero_at_init_but_B_is_not():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 6), r=2, alpha=4.0)
    layer(torch.randn(5, 8)).square().sum().backward()
    assert torch.count_nonzero(layer.A.grad) == 0
    assert layer.B.grad.abs().sum() > 0


def test_gradient_of_B_matches_formula():
    W, b, A, B = make_factors(dtype=torch.float64)
    B = B.clone().requires_grad_(True)
    x = torch.randn(4, 6, dtype=torch.float64)
    dy = torch.randn(4, 5, dtype=torch.float64)
    (lora_linear(x, W, b, A, B, alpha=3.0) * dy).sum().backward()
    # y = ... + s (x A^T) B^T  =>  dB = s dy^T (x A^T)
    torch.testing.assert_close(B.grad, 1.5 * dy.T @ (x @ A.T))


def test_merged_module_matches_adapter_after_training_step():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 6), r=3, alpha=6.0)
    opt = torch.optim.SGD([layer.A, layer.B], lr=0.1)
    x = torch.randn(16, 8)
    for _ in range(3):
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
    assert layer.B.abs().sum() > 0
    torch.testing.assert_close(layer.merged()(x), layer(x), rtol=1e-5, atol=1e-5)


def test_parameter_count():
    assert lora_parameter_count(4096, 4096, 8) == 65536
    layer = LoRALinear(nn.Linear(40, 30), r=4, alpha=8.0)
    n = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert n == lora_parameter_count(40, 30, 4)


def test_A_init_scale():
    layer = LoRALinear(nn.Linear(1024, 16), r=16, alpha=16.0,
                       generator=torch.Generator().manual_seed(0))
    assert math.isclose(layer.A.var().item(), 1 / 1024, rel_tol=0.1)


def test_errors():
    W, b, A, B = make_factors()
    with pytest.raises(ValueError, match="A must have 2"):
        lora_delta(A[0], B, 1.0)
    with pytest.raises(ValueError, match="B must have shape"):
        lora_delta(A, B[:, :1], 1.0)
    with pytest.raises(ValueError, match="weight must have shape"):
        merge_lora(W[:, :3], A, B, 1.0)
    with pytest.raises(ValueError, match="agree on d_in"):
        lora_linear(torch.randn(2, 3, dtype=torch.float64), W, b, A, B, 1.0)
    with pytest.raises(ValueError, match="d_out = weight"):
        lora_linear(torch.randn(2, 6, dtype=torch.float64), W[:4], b[:4], A, B, 1.0)
    with pytest.raises(ValueError, match="r must be in"):
        lora_parameter_count(4, 4, 0)
    with pytest.raises(ValueError, match="r must be in"):
        LoRALinear(nn.Linear(4, 3), r=4, alpha=1.0)
