"""Tests for sliding_window_mask and training-mode BatchNorm (API Round 2).

sliding_window_mask is checked against the rule written out with two loops and against
causal_mask; batchnorm_forward/backward against torch.nn.functional.batch_norm and its
autograd, and against central differences in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.attention import causal_mask, sliding_window_mask
from lib.backprop import batchnorm_backward, batchnorm_forward, numerical_gradient, relative_error


@settings(max_examples=80, deadline=None)
@given(lq=st.integers(1, 9), extra=st.integers(0, 6), window=st.integers(1, 12))
def test_sliding_window_follows_the_rule(lq, extra, window):
    lk = lq + extra
    got = sliding_window_mask(lq, window, lk)
    s = lk - lq
    want = torch.tensor([[i + s - window < j <= i + s for j in range(lk)] for i in range(lq)])
    assert torch.equal(got, want)
    assert int(got.sum(-1).max()) <= window                       # at most `window` keys
    if window >= lk:
        assert torch.equal(got, causal_mask(lq, lk))


def test_sliding_window_example_and_errors():
    assert sliding_window_mask(4, 2).int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0],
                                                        [0, 1, 1, 0], [0, 0, 1, 1]]
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(4, 0)


def _bn_case(seed=0, n=6, d=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * 3 + 1, rng.normal(size=d), rng.normal(size=d), rng.normal(size=(n, d))


def test_batchnorm_matches_torch_forward_and_autograd():
    x, gamma, beta, dy = _bn_case()
    y, cache = batchnorm_forward(x, gamma, beta, eps=1e-5)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    yt.backward(torch.tensor(dy))
    dx, dgamma, dbeta = batchnorm_backward(dy, cache)
    for mine, ref in [(dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)]:
        np.testing.assert_allclose(mine, ref.numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_backward_matches_central_differences():
    x, gamma, beta, dy = _bn_case(seed=3, n=4, d=3)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, _ = batchnorm_backward(dy, cache)
    loss = lambda: float(np.sum(batchnorm_forward(x, gamma, beta)[0] * dy))  # noqa: E731
    num_dx = numerical_gradient(loss, x)
    num_dgamma = numerical_gradient(loss, gamma)
    err = relative_error(dx, num_dx)
    print(f"batchnorm dx relative error {err:.1e} (expect < 1e-7 in float64)")
    assert err < 1e-7 and relative_error(dgamma, num_dgamma) < 1e-7


def test_batchnorm_output_columns_have_zero_mean_and_unit_variance():
    x, _, _, _ = _bn_case(seed=5, n=50)
    y, _ = batchnorm_forward(x, np.ones(5), np.zeros(5), eps=0.0)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), 1, atol=1e-12)


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match="x must have 2 dimensions"):
        batchnorm_forward(np.ones((2, 3, 4)), np.ones(4), np.zeros(4))
