"""Tests for lib.patterns against finite differences, torch and written-out formulas."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.patterns import (cosine_similarity, fit_logistic_regression, kmeans,
                          kmeans_plus_plus, logistic_loss_and_grad, pad_batch,
                          pairwise_sq_dists, predict_proba)


def blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    X = np.concatenate([m + rng.normal(size=(n // 3, 2)) for m in means])
    return X, np.repeat(np.arange(3), n // 3)


# ------------------------------------------------------------- logistic regression

def test_logistic_loss_matches_torch_bce_and_autograd():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, size=20).astype(float)
    w, b = rng.normal(size=3), 0.3
    loss, dw, db = logistic_loss_and_grad(w, b, X, y, l2=0.1)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    z = torch.tensor(X) @ wt + bt
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y))
    assert np.isclose(loss, bce.item() + 0.05 * np.dot(w, w))
    ref = bce + 0.05 * wt.square().sum()
    ref.backward()
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert np.isclose(db, bt.grad.item())


def test_logistic_gradient_matches_central_differences():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(10, 4)), rng.uniform(size=10)
    w, b, h = rng.normal(size=4), -0.2, 1e-6
    _, dw, db = logistic_loss_and_grad(w, b, X, y)
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        num = (logistic_loss_and_grad(w + e, b, X, y)[0]
               - logistic_loss_and_grad(w - e, b, X, y)[0]) / (2 * h)
        assert np.isclose(dw[i], num, rtol=1e-6, atol=1e-9)
    num_b = (logistic_loss_and_grad(w, b + h, X, y)[0]
             - logistic_loss_and_grad(w, b - h, X, y)[0]) / (2 * h)
    assert np.isclose(db, num_b, rtol=1e-6)


def test_logistic_loss_is_finite_for_huge_logits():
    X = np.array([[1e4], [-1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dw, _ = logistic_loss_and_grad(np.array([1.0]), 0.0, X, np.array([0.0, 1.0]))
    assert np.isclose(loss, 1e4)
    assert np.all(np.isfinite(dw))


def test_fit_decreases_loss_and_separates_data():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    y = np.repeat([0.0, 1.0], 50)
    w, b, losses = fit_logistic_regression(X, y, lr=0.5, steps=300)
    assert np.all(np.diff(losses) <= 1e-12)
    assert ((predict_proba(X, w, b) > 0.5) == y).mean() > 0.95
    assert losses[0] == pytest.approx(np.log(2))


# ------------------------------------------------------------------------- k-means

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8), k=st.integers(1, 5))
def test_pairwise_sq_dists_matches_broadcast_formula(seed, n, k):
    rng = np.random.default_rng(seed)
    X, C = rng.normal(size=(n, 3)), rng.normal(size=(k, 3))
    ref = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_sq_dists(X, C), ref, atol=1e-12)
    assert np.all(pairwise_sq_dists(X, X) >= 0)


def test_kmeans_recovers_blobs_and_inertia_never_increases():
    X, truth = blobs()
    centers, labels, inertia = kmeans(X, 3, seed=0)
    assert np.all(np.diff(inertia) <= 1e-9)
    # each true blob maps to exactly one cluster
    for j in range(3):
        assert len(set(labels[truth == j])) == 1
    assert len(set(labels)) == 3
    for j in range(3):
        np.testing.assert_allclose(centers[j], X[labels == j].mean(0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), k=st.integers(1, 6),
       init=st.sampled_from(["k-means++", "random"]), duplicates=st.booleans())
def test_kmeans_properties_on_random_data(seed, n, k, init, duplicates):
    k = min(k, n)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    if duplicates:
        X = np.round(X)  # many identical points: empty clusters become likely
    centers, labels, inertia = kmeans(X, k, seed=seed, init=init)
    assert np.all(np.isfinite(centers)) and centers.shape == (k, 2)
    assert np.all(np.diff(inertia) <= 1e-9)
    d2 = pairwise_sq_dists(X, centers)
    # the returned labels are nearest-center labels for the returned centers (up to ties)
    assert np.allclose(d2[np.arange(n), labels], d2.min(1))


def test_empty_cluster_is_reseeded_with_the_farthest_point():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    init = np.array([[0.5], [100.0], [10.5]])  # the center at 100 owns nothing
    centers, labels, inertia = kmeans(X, 3, init_centers=init)
    assert np.all(np.isfinite(centers))
    assert len(set(labels.tolist())) == 3
    assert np.all(np.diff(inertia) <= 1e-9)
    assert inertia[-1] < inertia[0]


def test_kmeans_plus_plus_picks_distinct_points_and_handles_duplicates():
    X, _ = blobs()
    C = kmeans_plus_plus(X, 3, np.random.default_rng(0))
    assert len({tuple(c) for c in C}) == 3
    same = np.ones((5, 2))
    C = kmeans_plus_plus(same, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(C, np.ones((3, 2)))


def test_kmeans_plus_plus_samples_proportional_to_squared_distance():
    X = np.array([[0.0], [1.0], [3.0]])
    rng = np.random.default_rng(0)
    second = []
    for _ in range(4000):
        # force the first pick to be X[0] by rejection
        C = kmeans_plus_plus(X, 2, rng)
        if C[0, 0] == 0.0:
            second.append(C[1, 0])
    frac = np.mean(np.array(second) == 3.0)
    assert abs(frac - 9 / 10) < 0.03  # d^2 = 1 and 9


def test_kmeans_random_init_and_identical_points():
    X = np.zeros((4, 2))
    centers, labels, _ = kmeans(X, 2, init="random")
    assert np.all(np.isfinite(centers))


# --------------------------------------------------------------- cosine similarity

def test_cosine_matches_torch_and_is_batched():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 5)), rng.normal(size=(2, 3, 5))
    ref = torch.nn.functional.cosine_similarity(
        torch.tensor(a)[:, :, None, :], torch.tensor(b)[:, None, :, :], dim=-1)
    np.testing.assert_allclose(cosine_similarity(a, b), ref.numpy(), atol=1e-12)


def test_zero_vectors_give_zero_not_nan():
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    with np.errstate(all="raise"):
        s = cosine_similarity(a, a)
    np.testing.assert_allclose(s, [[0.0, 0.0], [0.0, 1.0]])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_cosine_is_scale_invariant_and_bounded(seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    s = cosine_similarity(a, b)
    np.testing.assert_allclose(cosine_similarity(scale * a, b), s, atol=1e-10)
    assert np.all(np.abs(s) <= 1 + 1e-12)
    np.testing.assert_allclose(np.diag(cosine_similarity(a, a)), 1.0)


# -------------------------------------------------------------------------- padding

def test_pad_right_and_left():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_value=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_value=-1, side="left", max_len=4)
    assert ids.tolist() == [[-1, 5, 6, 7], [-1, -1, -1, 8]]
    assert mask[:, -1].all()


@settings(max_examples=50, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(1, 99), max_size=6), min_size=1, max_size=5),
       side=st.sampled_from(["right", "left"]))
def test_pad_then_unpad_round_trips(seqs, side):
    ids, mask = pad_batch(seqs, side=side)
    assert mask.sum(1).tolist() == [len(s) for s in seqs]
    assert [row[m].tolist() for row, m in zip(ids, mask)] == seqs
    assert np.all(ids[~mask] == 0)


def test_errors():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="w must have shape"):
        logistic_loss_and_grad(np.zeros(3), 0.0, X, np.zeros(4))
    with pytest.raises(ValueError, match="y must have shape"):
        logistic_loss_and_grad(np.zeros(2), 0.0, X, np.zeros(3))
    with pytest.raises(ValueError, match="lr must be in"):
        fit_logistic_regression(X, np.zeros(4), lr=0.0)
    with pytest.raises(ValueError, match="k must be in"):
        kmeans(X, 5)
    with pytest.raises(ValueError, match="init must be one of"):
        kmeans(X, 2, init="forgy")
    with pytest.raises(ValueError, match="init_centers must have shape"):
        kmeans(X, 2, init_centers=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="agree on D"):
        pairwise_sq_dists(X, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="agree on D"):
        cosine_similarity(X, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="a must have at least 2"):
        cosine_similarity(np.zeros(2), X)
    with pytest.raises(ValueError, match="side must be one of"):
        pad_batch([[1]], side="middle")
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_batch([])
    with pytest.raises(ValueError, match="max_len=1 is shorter"):
        pad_batch([[1, 2]], max_len=1)
