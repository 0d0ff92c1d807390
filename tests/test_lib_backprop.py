"""Tests of lib.backprop against torch autograd, finite differences and written-out formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lib.backprop import (
    dropout_backward,
    dropout_forward,
    init_mlp,
    layernorm_backward,
    layernorm_forward,
    mlp_loss_and_grads,
    numerical_gradient,
    relative_error,
    rmsnorm_backward,
    rmsnorm_forward,
    softmax_backward,
    softmax_jacobian,
)

RNG = np.random.default_rng(0)
finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# ----------------------------------------------------------------- numerical_gradient


def test_numerical_gradient_of_known_function():
    x = RNG.normal(size=(3, 4))
    expected = 3 * x ** 2 + np.cos(x)                     # d/dx of x^3 + sin x
    num = numerical_gradient(lambda: np.sum(x ** 3 + np.sin(x)), x)
    assert relative_error(num, expected) < 1e-7


def test_numerical_gradient_restores_x_exactly():
    x = RNG.normal(size=(2, 3))
    before = x.copy()
    numerical_gradient(lambda: float(np.sum(np.exp(x))), x, eps=1e-3)
    assert np.array_equal(x, before)


def test_numerical_gradient_error_is_second_order_in_eps():
    # f = exp(x): the central difference error is f'''(x) eps^2 / 6 to leading order
    x = np.array([0.3])
    for eps in (1e-2, 1e-3):
        num = numerical_gradient(lambda: float(np.exp(x[0])), x, eps=eps)
        assert abs(num[0] - np.exp(0.3)) == pytest.approx(np.exp(0.3) * eps ** 2 / 6, rel=1e-2)


def test_numerical_gradient_rejects_bad_input():
    with pytest.raises(ValueError, match="x must be a floating"):
        numerical_gradient(lambda: 0.0, np.arange(3))
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(lambda: 0.0, np.zeros(3), eps=0.0)


# ----------------------------------------------------------------- relative_error


def test_relative_error_formula():
    a = np.array([1.0, 0.0, -2.0])
    b = np.array([1.1, 0.0, -2.0])
    assert relative_error(a, b) == pytest.approx(0.1 / 2.1)
    assert relative_error(a, a) == 0.0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == 1.0
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (5,), elements=finite), arrays(np.float64, (5,), elements=finite))
def test_relative_error_is_symmetric_and_bounded(a, b):
    e = relative_error(a, b)
    assert e == relative_error(b, a)
    assert 0.0 <= e <= 1.0


def test_relative_error_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"a and b must have the same shape.*\(3,\).*\(4,\)"):
        relative_error(np.zeros(3), np.zeros(4))


# ----------------------------------------------------------------- MLP


def test_init_mlp_shapes_and_scale():
    params = init_mlp(200, 300, 5, seed=1)
    assert {k: v.shape for k, v in params.items()} == {
        "W1": (200, 300), "b1": (300,), "W2": (300, 5), "b2": (5,)}
    assert all(v.dtype == np.float64 for v in params.values())
    assert params["W1"].std() == pytest.approx(np.sqrt(2 / 200), rel=0.02)
    assert np.array_equal(init_mlp(200, 300, 5, seed=1)["W1"], params["W1"])


def test_init_mlp_rejects_zero_or_fractional_width():
    with pytest.raises(ValueError, match="d_hidden"):
        init_mlp(3, 0, 2)
    with pytest.raises(ValueError, match="d_out must be an integer"):
        init_mlp(3, 4, 2.5)


def _mlp_problem(n=7, d=5, h=6, c=4, seed=3):
    rng = np.random.default_rng(seed)
    return init_mlp(d, h, c, seed=seed), rng.normal(size=(n, d)), rng.integers(0, c, size=n)


def test_mlp_matches_torch_autograd():
    params, X, y = _mlp_problem()
    loss, grads = mlp_loss_and_grads(params, X, y)
    tp = {k: t(v, grad=True) for k, v in params.items()}
    z = torch.relu(t(X) @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"]
    ref = torch.nn.functional.cross_entropy(z, torch.tensor(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    for k in params:
        assert relative_error(grads[k], tp[k].grad.numpy()) < 1e-10, k


def test_mlp_matches_finite_differences():
    params, X, y = _mlp_problem()
    _, grads = mlp_loss_and_grads(params, X, y)
    for k in params:
        num = numerical_gradient(lambda: mlp_loss_and_grads(params, X, y)[0], params[k])
        err = relative_error(grads[k], num)
        print(f"{k}: relative error {err:.1e}")
        # the chapter's rule of thumb: a correct float64 gradient gives less than 1e-6
        assert err < 1e-6, k


def test_mlp_input_gradient_is_consistent_with_scaling():
    # the loss is a mean: duplicating the batch leaves loss and gradients unchanged
    params, X, y = _mlp_problem()
    loss1, g1 = mlp_loss_and_grads(params, X, y)
    loss2, g2 = mlp_loss_and_grads(params, np.concatenate([X, X]), np.concatenate([y, y]))
    assert loss1 == pytest.approx(loss2, rel=1e-12)
    for k in g1:
        assert relative_error(g1[k], g2[k]) < 1e-12


@pytest.mark.parametrize("bad, match", [
    (dict(X=np.zeros((4, 6))), "disagree on d_in"),
    (dict(X=np.zeros(5)), "X must have 2 dimensions"),
    (dict(y=np.zeros(3, dtype=int)), "one label per row"),
    (dict(y=np.zeros(7)), "integer"),
    (dict(y=np.full(7, 4)), r"y must lie in \[0, 4\)"),
    (dict(b1=np.zeros(5)), "b1 must have shape"),
    (dict(b2=np.zeros((1, 4))), "b2 must have shape"),
    (dict(W2=np.zeros((5, 4))), "disagree on d_hidden"),
])
def test_mlp_rejects_bad_shapes(bad, match):
    params, X, y = _mlp_problem()
    X, y = bad.pop("X", X), bad.pop("y", y)
    params.update(bad)
    with pytest.raises(ValueError, match=match):
        mlp_loss_and_grads(params, X, y)


def test_mlp_rejects_missing_param():
    params, X, y = _mlp_problem()
    del params["b2"]
    with pytest.raises(ValueError, match="missing"):
        mlp_loss_and_grads(params, X, y)


# ----------------------------------------------------------------- softmax


def test_softmax_jacobian_matches_autograd():
    z = RNG.normal(size=6)
    jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, -1), t(z))
    assert relative_error(softmax_jacobian(z), jac.numpy()) < 1e-12


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (5,), elements=finite))
def test_softmax_jacobian_rows_sum_to_zero_and_is_symmetric(z):
    jac = softmax_jacobian(z)
    assert np.allclose(jac.sum(axis=0), 0.0, atol=1e-12)
    assert np.array_equal(jac, jac.T)


def test_softmax_jacobian_rejects_matrix():
    with pytest.raises(ValueError, match=r"z must have 1 dimensions, got shape \(2, 3\)"):
        softmax_jacobian(np.zeros((2, 3)))


def test_softmax_backward_matches_autograd_with_leading_dims():
    z, g = RNG.normal(size=(2, 3, 5)), RNG.normal(size=(2, 3, 5))
    tz = t(z, grad=True)
    torch.softmax(tz, -1).backward(t(g))
    p = torch.softmax(t(z), -1).numpy()
    assert relative_error(softmax_backward(p, g), tz.grad.numpy()) < 1e-10


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (4,), elements=finite), arrays(np.float64, (4,), elements=finite))
def test_softmax_backward_equals_jacobian_product(z, g):
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert np.allclose(softmax_backward(p, g), softmax_jacobian(z).T @ g, atol=1e-10)


def test_softmax_backward_of_constant_gradient_is_zero():
    # adding c to every dL/dp changes nothing: p sums to one
    p = np.array([0.2, 0.3, 0.5])
    assert np.allclose(softmax_backward(p, np.full(3, 7.0)), 0.0)


def test_softmax_backward_rejects_mismatch():
    with pytest.raises(ValueError, match="p and grad_p must have the same shape"):
        softmax_backward(np.zeros((2, 3)), np.zeros((3,)))


# ----------------------------------------------------------------- LayerNorm and RMSNorm


def test_layernorm_matches_torch():
    x, dy = RNG.normal(size=(2, 3, 8)), RNG.normal(size=(2, 3, 8))
    gamma, beta = RNG.normal(size=8), RNG.normal(size=8)
    y, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(dy, cache)
    tx, tg, tb = t(x, True), t(gamma, True), t(beta, True)
    ty = torch.nn.functional.layer_norm(tx, (8,), tg, tb, eps=1e-5)
    ty.backward(t(dy))
    assert relative_error(y, ty.detach().numpy()) < 1e-12
    assert relative_error(dx, tx.grad.numpy()) < 1e-9
    assert relative_error(dgamma, tg.grad.numpy()) < 1e-10
    assert relative_error(dbeta, tb.grad.numpy()) < 1e-12


def test_layernorm_backward_matches_finite_differences():
    x, w = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    gamma, beta = RNG.normal(size=5), RNG.normal(size=5)

    def loss() -> float:
        return float(np.sum(w * layernorm_forward(x, gamma, beta)[0]))

    dx, dgamma, dbeta = layernorm_backward(w, layernorm_forward(x, gamma, beta)[1])
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    assert relative_error(dgamma, numerical_gradient(loss, gamma)) < 1e-6
    assert relative_error(dbeta, numerical_gradient(loss, beta)) < 1e-6


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (3, 6), elements=st.floats(-100, 100)),
       arrays(np.float64, (3, 6), elements=st.floats(-10, 10)))
def test_layernorm_dx_rows_sum_to_zero(x, dy):
    # y is invariant to adding a constant to a row of x, so each row of dx sums to zero
    _, cache = layernorm_forward(x, np.ones(6), np.zeros(6))
    dx, _, _ = layernorm_backward(dy, cache)
    scale = np.abs(dy).sum(axis=-1) * cache.rstd[:, 0] + 1e-12
    assert np.all(np.abs(dx.sum(axis=-1)) <= 1e-9 * scale)


def test_layernorm_output_has_zero_mean_unit_variance():
    x = RNG.normal(3.0, 5.0, size=(10, 64))
    y, _ = layernorm_forward(x, np.ones(64), np.zeros(64), eps=0.0)
    assert np.allclose(y.mean(-1), 0.0, atol=1e-12)
    assert np.allclose(y.var(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("gamma, beta, match", [
    (np.ones(7), np.zeros(8), r"gamma must have shape \(8,\)"),
    (np.ones(8), np.zeros((1, 8)), r"beta must have shape \(8,\)"),
])
def test_layernorm_rejects_bad_params(gamma, beta, match):
    with pytest.raises(ValueError, match=match):
        layernorm_forward(np.zeros((2, 8)), gamma, beta)


def test_layernorm_rejects_negative_eps_and_bad_dy():
    with pytest.raises(ValueError, match="eps"):
        layernorm_forward(np.zeros((2, 8)), np.ones(8), np.zeros(8), eps=-1.0)
    _, cache = layernorm_forward(np.ones((2, 8)), np.ones(8), np.zeros(8))
    with pytest.raises(ValueError, match="dy and cache.xhat"):
        layernorm_backward(np.zeros((8, 2)), cache)
    with pytest.raises(ValueError, match="x must have at least 1"):
        layernorm_forward(np.float64(1.0), np.ones(1), np.zeros(1))


def test_rmsnorm_matches_torch():
    x, dy, gamma = RNG.normal(size=(3, 8)), RNG.normal(size=(3, 8)), RNG.normal(size=8)
    y, cache = rmsnorm_forward(x, gamma, eps=1e-6)
    dx, dgamma = rmsnorm_backward(dy, cache)
    tx, tg = t(x, True), t(gamma, True)
    ty = torch.nn.functional.rms_norm(tx, (8,), tg, eps=1e-6)
    ty.backward(t(dy))
    assert relative_error(y, ty.detach().numpy()) < 1e-12
    assert relative_error(dx, tx.grad.numpy()) < 1e-9
    assert relative_error(dgamma, tg.grad.numpy()) < 1e-10


def test_rmsnorm_is_scale_invariant_and_rejects_bad_gamma():
    x = RNG.normal(size=(2, 16))
    y1, _ = rmsnorm_forward(x, np.ones(16), eps=0.0)
    y2, _ = rmsnorm_forward(10.0 * x, np.ones(16), eps=0.0)
    assert np.allclose(y1, y2, atol=1e-12)
    with pytest.raises(ValueError, match=r"gamma must have shape \(16,\)"):
        rmsnorm_forward(x, np.ones(8))


# ----------------------------------------------------------------- dropout


def test_dropout_is_unbiased_and_keeps_the_right_fraction():
    x = np.ones((500, 400))
    y, mask = dropout_forward(x, 0.3, np.random.default_rng(0))
    assert mask.dtype == bool
    assert mask.mean() == pytest.approx(0.7, abs=0.005)
    assert y.mean() == pytest.approx(1.0, abs=0.01)                # E[y] = x
    assert set(np.unique(y)) == {0.0, 1.0 / 0.7}


def test_dropout_backward_matches_autograd_and_p0_is_identity():
    x, dy = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    y, mask = dropout_forward(x, 0.5, np.random.default_rng(1))
    tx = t(x, True)
    (tx * t(mask.astype(float)) / 0.5).backward(t(dy))
    assert relative_error(dropout_backward(dy, mask, 0.5), tx.grad.numpy()) < 1e-15
    y0, mask0 = dropout_forward(x, 0.0, np.random.default_rng(1))
    assert np.array_equal(y0, x) and mask0.all()


def test_dropout_rejects_bad_p_and_mask():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"p must be in \[0.0, 1.0\)"):
        dropout_forward(np.ones(3), 1.0, rng)
    with pytest.raises(ValueError, match="p must be in"):
        dropout_backward(np.ones(3), np.ones(3, bool), -0.1)
    with pytest.raises(ValueError, match="dy and mask must have the same shape"):
        dropout_backward(np.ones(3), np.ones(4, bool), 0.5)
