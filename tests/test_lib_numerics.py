"""lib.numerics against torch, against formulas written out here, and at the extremes."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lib.numerics import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_sigmoid,
    log_softmax,
    logsumexp,
    sigmoid,
    softmax,
)

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """A stable implementation emits no overflow or divide-by-zero warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- parity with torch -------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_softmax_and_softmax_match_torch(axis):
    x = rng.normal(scale=5.0, size=(4, 7))
    ref = torch.log_softmax(torch.from_numpy(x), dim=axis).numpy()
    np.testing.assert_allclose(log_softmax(x, axis=axis), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(softmax(x, axis=axis), np.exp(ref), rtol=1e-12, atol=1e-15)


def test_logsumexp_matches_torch_with_keepdims():
    x = rng.normal(scale=50.0, size=(3, 5, 6))
    ref = torch.logsumexp(torch.from_numpy(x), dim=1, keepdim=True).numpy()
    out = logsumexp(x, axis=1, keepdims=True)
    assert out.shape == (3, 1, 6)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
def test_cross_entropy_matches_torch(eps):
    logits = rng.normal(scale=3.0, size=(16, 5))
    labels = rng.integers(0, 5, size=16)
    ref = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                          label_smoothing=eps).item()
    assert cross_entropy(logits, labels, label_smoothing=eps) == pytest.approx(ref, rel=1e-12)


def test_label_smoothing_formula_written_out():
    """Target q = (1-eps) onehot + eps/C; loss = -sum q log p, averaged over rows."""
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    eps = 0.2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    q = (1 - eps) * np.eye(4)[labels] + eps / 4
    assert np.allclose(q.sum(1), 1.0)
    expected = np.mean(-(q * np.log(p)).sum(1))
    assert cross_entropy(logits, labels, eps) == pytest.approx(expected, rel=1e-12)


def test_bce_matches_torch_with_soft_targets():
    logits = rng.normal(scale=10.0, size=(5, 3))
    targets = rng.uniform(size=(5, 3))
    ref = F.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                             torch.from_numpy(targets)).item()
    assert binary_cross_entropy_with_logits(logits, targets) == pytest.approx(ref, rel=1e-12)


def test_sigmoid_and_log_sigmoid_match_torch():
    x = np.linspace(-60, 60, 241)
    np.testing.assert_allclose(sigmoid(x), torch.sigmoid(torch.from_numpy(x)).numpy(),
                               rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_sigmoid(x), F.logsigmoid(torch.from_numpy(x)).numpy(),
                               rtol=1e-12)


# --- extreme inputs ----------------------------------------------------------------

def test_softmax_of_equal_huge_logits_is_uniform():
    np.testing.assert_array_equal(softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])


def test_softmax_of_very_negative_logit_is_exactly_zero():
    p = softmax(np.array([-1000.0, 0.0]))
    assert p[0] == 0.0 and p[1] == 1.0


def test_softmax_treats_minus_inf_as_probability_zero():
    p = softmax(np.array([[-np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf]]))
    np.testing.assert_array_equal(p, [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])


def test_extremes_up_to_1e308():
    x = np.array([1e308, -1e308, 0.0])
    np.testing.assert_array_equal(softmax(x), [1.0, 0.0, 0.0])
    assert log_softmax(x)[0] == 0.0 and np.isneginf(log_softmax(x)[1])
    assert logsumexp(np.array([1e308, 1e308])) == pytest.approx(1e308 + np.log(2))
    np.testing.assert_array_equal(sigmoid(np.array([-1e300, 1e300])), [0.0, 1.0])
    assert log_sigmoid(np.array([-1e300]))[0] == -1e300


def test_logsumexp_of_minus_inf_row_is_minus_inf_without_warning():
    out = logsumexp(np.array([[-np.inf, -np.inf], [0.0, 0.0]]))
    assert np.isneginf(out[0]) and out[1] == pytest.approx(np.log(2))


def test_bce_stays_finite_at_huge_logits():
    loss = binary_cross_entropy_with_logits(np.array([1e300, -1e300, 1e300]),
                                            np.array([1.0, 0.0, 0.0]))
    assert loss == pytest.approx(1e300 / 3)


def test_float16_and_float32_keep_their_dtype():
    for dtype in (np.float16, np.float32):
        x = np.array([10.0, 11.0, 12.0], dtype=dtype)
        assert softmax(x).dtype == dtype and log_softmax(x).dtype == dtype
        assert abs(float(softmax(x).sum()) - 1.0) < 1e-3


# --- gradients: the derivation in the chapter, checked numerically ------------------

def test_cross_entropy_gradient_is_p_minus_y_over_n():
    logits = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    p = softmax(logits)
    analytic = (p - np.eye(4)[labels]) / 5
    h = 1e-6
    numeric = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (cross_entropy(up, labels) - cross_entropy(down, labels)) / (2 * h)
    np.testing.assert_allclose(numeric, analytic, rtol=1e-6, atol=1e-9)


def test_bce_gradient_is_sigmoid_minus_target():
    x = torch.tensor(rng.normal(size=7), requires_grad=True)
    y = rng.uniform(size=7)
    loss = F.binary_cross_entropy_with_logits(x, torch.from_numpy(y), reduction="sum")
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), sigmoid(x.detach().numpy()) - y, rtol=1e-12)


# --- property tests ----------------------------------------------------------------

finite_rows = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)),
                     elements=st.floats(-1e300, 1e300))
moderate_rows = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)),
                       elements=st.floats(-30, 30))


@settings(max_examples=60, deadline=None)
@given(finite_rows)
def test_softmax_sums_to_one_and_is_in_range(x):
    p = softmax(x)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(moderate_rows, st.floats(-1e3, 1e3))
def test_softmax_is_shift_invariant(x, c):
    np.testing.assert_allclose(softmax(x + c), softmax(x), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(finite_rows)
def test_log_softmax_is_log_of_softmax_where_both_are_finite(x):
    lp = log_softmax(x)
    with np.errstate(divide="ignore"):
        log_p = np.log(softmax(x))
    finite = np.isfinite(lp) & np.isfinite(log_p) & (log_p > -700)
    # x - logsumexp(x) cancels two numbers of the size of the row's max: its absolute
    # error is a few ulps of that max, the tolerance each row must allow.
    ulps = 8 * np.finfo(np.float64).eps * np.max(np.abs(x), axis=-1, keepdims=True)
    error = np.abs(lp - log_p)
    assert np.all(error[finite] <= (1e-9 + 1e-9 * np.abs(log_p) + ulps)[finite])


@settings(max_examples=60, deadline=None)
@given(finite_rows)
def test_logsumexp_bounds(x):
    """max(x) <= logsumexp(x) <= max(x) + log(n)."""
    lse, m = logsumexp(x), x.max(-1)
    assert np.all(lse >= m) and np.all(lse <= m + np.log(x.shape[-1]) + 1e-9 * np.abs(m))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 10), elements=st.floats(-700, 700)))
def test_log_sigmoid_identities(x):
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1.0, rtol=1e-12)
    np.testing.assert_allclose(log_sigmoid(x) - log_sigmoid(-x), x, rtol=1e-9, atol=1e-9)


# --- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda: cross_entropy(np.zeros((3, 4)), np.zeros(2, dtype=int)), ["labels", "(3, 4)", "(2,)"]),
    (lambda: cross_entropy(np.zeros(4), np.zeros(4, dtype=int)), ["logits", "2 dimensions", "(4,)"]),
    (lambda: cross_entropy(np.zeros((3, 4)), np.zeros((3, 1), dtype=int)), ["labels", "(3, 1)"]),
    (lambda: cross_entropy(np.zeros((2, 4)), np.array([0, 4])), ["labels", "[0, 4)"]),
    (lambda: cross_entropy(np.zeros((2, 4)), np.array([0.0, 1.0])), ["labels", "integers"]),
    (lambda: cross_entropy(np.zeros((2, 4)), np.array([0, 1]), 1.5), ["label_smoothing", "1.5"]),
    (lambda: binary_cross_entropy_with_logits(np.zeros(3), np.array([0.0, 1.0, 1.2])), ["targets", "[0, 1]"]),
    (lambda: binary_cross_entropy_with_logits(np.zeros(3), np.array([0.0, -0.1, 1.0])), ["targets", "[0, 1]"]),
    (lambda: binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros(3)), ["targets", "(2, 3)", "(3,)"]),
    (lambda: softmax(np.zeros((2, 3)), axis=2), ["axis", "(2, 3)"]),
    (lambda: logsumexp(np.float64(1.0)), ["axis", "()"]),
])
def test_bad_input_raises_value_error_naming_argument_and_shapes(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
