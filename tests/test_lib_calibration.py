"""lib.calibration against loops written out here, torch, and brute force."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.calibration import (
    binary_confusion,
    cohen_kappa,
    expected_calibration_error,
    fit_temperature,
    majority_vote,
    nll,
    precision_recall_f1,
    reliability_bins,
    roc_auc,
    roc_curve,
    soft_targets,
)
from lib.numerics import softmax

# Property tests run without a deadline: on a shared 2-core machine one example can take
# hundreds of milliseconds for reasons unrelated to the code under test.


def ece_loop(probs, labels, n_bins):
    """ECE with an explicit loop over (lo, hi] bins."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if members.any():
            gap = abs(np.mean(pred[members] == labels[members]) - np.mean(conf[members]))
            total += members.sum() / len(conf) * gap
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_matches_an_explicit_loop(n_bins):
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(scale=2.0, size=(500, 4)), axis=1)
    labels = rng.integers(0, 4, size=500)
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        ece_loop(probs, labels, n_bins), abs=1e-12)


@settings(deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20))
def test_ece_is_in_0_1_and_ignores_row_order(seed, n_bins):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(scale=3.0, size=(64, 3)), axis=1)
    labels = rng.integers(0, 3, size=64)
    ece = expected_calibration_error(probs, labels, n_bins)
    perm = rng.permutation(64)
    assert 0.0 <= ece <= 1.0
    assert ece == pytest.approx(expected_calibration_error(probs[perm], labels[perm], n_bins))


def test_ece_is_bin_size_weighted():
    # bin (0.5, 0.6]: 9 examples at confidence 0.55, all right (gap 0.45);
    # bin (0.9, 1.0]: 1 example at confidence 0.95, wrong (gap 0.95).
    probs = np.array([[0.55, 0.45]] * 9 + [[0.95, 0.05]])
    labels = np.array([0] * 9 + [1])
    weighted = 0.9 * 0.45 + 0.1 * 0.95
    unweighted = (0.45 + 0.95) / 2
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(weighted)
    assert weighted != pytest.approx(unweighted)


def test_reliability_bins_counts_and_empty_bins():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.7, 0.3], [0.71, 0.29]])
    bins = reliability_bins(probs, np.array([0, 1, 0, 1]), n_bins=10)
    assert bins["count"].sum() == 4 and bins["edges"].shape == (11,)
    assert bins["count"][4] == 1 and bins["count"][6] == 1 and bins["count"][7] == 1  # 0.5, 0.7, 0.71
    assert bins["count"][9] == 1 and bins["accuracy"][9] == 1.0
    assert np.isnan(bins["accuracy"][0]) and np.isnan(bins["confidence"][0])


def test_confidence_on_a_bin_edge_goes_to_the_lower_bin():
    # 0.7 * 10 rounds to 7.000000000000001: a ceil-based bin index would put 0.7 in (0.7, 0.8]
    probs = np.array([[0.7, 0.3], [0.65, 0.35], [0.75, 0.25]])
    bins = reliability_bins(probs, np.array([0, 1, 0]), n_bins=10)
    assert bins["count"][6] == 2 and bins["count"][7] == 1
    expected = (2 / 3) * abs(0.5 - 0.675) + (1 / 3) * abs(1.0 - 0.75)
    assert expected_calibration_error(probs, np.array([0, 1, 0]), n_bins=10) == pytest.approx(expected)


def test_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(1)
    n = 100_000
    conf = rng.uniform(0.5, 1.0, size=n)                        # binary, predicted class 0
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = (rng.uniform(size=n) > conf).astype(int)           # right with probability conf
    assert expected_calibration_error(probs, labels) < 0.01


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(scale=2.0, size=(20_000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits, axis=1)])
    t = fit_temperature(3.0 * true_logits, labels)               # overconfident by 3x
    assert t == pytest.approx(3.0, rel=0.05)


def test_fit_temperature_minimizes_nll_like_torch_lbfgs():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(300, 3))
    labels = rng.integers(0, 3, size=300)
    labels[:150] = logits[:150].argmax(1)                         # partly informative
    t = fit_temperature(logits, labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)
    opt = torch.optim.LBFGS([log_t], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss
    opt.step(closure)
    assert t == pytest.approx(log_t.exp().item(), rel=1e-4)
    assert nll(logits, labels, t) <= min(nll(logits, labels, t * 1.01), nll(logits, labels, t / 1.01))


def test_fit_temperature_keeps_ranking_and_accuracy():
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=5.0, size=(400, 6))
    labels = rng.integers(0, 6, size=400)
    t = fit_temperature(logits, labels)
    assert np.array_equal(np.argsort(logits / t, axis=1), np.argsort(logits, axis=1))


def test_fit_temperature_clips_at_the_bounds():
    logits = np.array([[10.0, 0.0], [0.0, 10.0]])
    assert fit_temperature(logits, np.array([0, 1])) == 1e-3        # separable: T -> 0
    assert fit_temperature(logits, np.array([1, 0])) == 1e3         # all wrong: T -> inf


def test_nll_matches_torch_cross_entropy():
    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(50, 4)), rng.integers(0, 4, size=50)
    ref = F.cross_entropy(torch.from_numpy(logits) / 2.0, torch.from_numpy(labels)).item()
    assert nll(logits, labels, 2.0) == pytest.approx(ref, rel=1e-12)


def test_precision_recall_f1_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    preds = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    assert binary_confusion(labels, preds) == {"tp": 2, "fp": 1, "fn": 1, "tn": 4}
    p, r, f1 = precision_recall_f1(labels, preds)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 * p * r / (p + r))


def test_precision_recall_f1_zero_division_is_zero():
    labels = np.array([0, 0, 1])
    assert precision_recall_f1(labels, np.zeros(3, dtype=int)) == (0.0, 0.0, 0.0)


def auc_pairs(scores, labels):
    """P(s+ > s-) + P(s+ == s-) / 2 over all positive-negative pairs."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0))


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 1)), min_size=2, max_size=40))
def test_roc_auc_is_the_pairwise_probability_and_the_trapezoid_area(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    labels = np.array([y for _, y in pairs])
    if labels.min() == labels.max():
        return
    auc = roc_auc(scores, labels)
    assert auc == pytest.approx(auc_pairs(scores, labels))
    fpr, tpr, _ = roc_curve(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc)
    assert roc_auc(np.exp(scores / 3), labels) == pytest.approx(auc)   # ranking only


def test_roc_curve_endpoints_and_monotone():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    labels = np.array([1, 0, 1, 0, 0])
    fpr, tpr, thresholds = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert list(thresholds[1:]) == [0.9, 0.8, 0.3, 0.1]


def test_votes_soft_targets_majority_and_kappa():
    votes = np.array([[0, 0, 1], [2, 1, 1], [0, 1, 2], [2, 2, 2]])
    np.testing.assert_allclose(soft_targets(votes, 3),
                               [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3], [1 / 3] * 3, [0, 0, 1]])
    assert majority_vote(votes, 3).tolist() == [0, 1, 0, 2]         # three-way tie: class 0
    a, b = np.array([0, 0, 1, 1, 0, 1]), np.array([0, 1, 1, 1, 0, 0])
    p_o, p_e = 4 / 6, 0.5 * 0.5 + 0.5 * 0.5
    assert cohen_kappa(a, b, 2) == pytest.approx((p_o - p_e) / (1 - p_e))
    assert cohen_kappa(a, a, 2) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: expected_calibration_error(np.array([0.5, 0.5]), np.array([0])), "2 dimensions"),
    (lambda: expected_calibration_error(np.full((2, 2), 0.5), np.array([0])), "2 entries"),
    (lambda: expected_calibration_error(np.full((2, 2), 0.5), np.array([0, 2])), r"\[0, 2\)"),
    (lambda: expected_calibration_error(np.full((2, 2), 0.5), np.array([0.0, 1.0])), "integers"),
    (lambda: expected_calibration_error(np.full((2, 2), 1.5), np.array([0, 1])), r"in \[0, 1\]"),
    (lambda: reliability_bins(np.full((2, 2), 0.5), np.array([0, 1]), n_bins=0), "n_bins"),
    (lambda: fit_temperature(np.zeros(3), np.array([0])), "2 dimensions"),
    (lambda: fit_temperature(np.zeros((2, 2)), np.array([0, 1]), t_min=2.0, t_max=1.0), "t_min"),
    (lambda: nll(np.zeros((2, 2)), np.array([0, 1]), temperature=0.0), "temperature"),
    (lambda: precision_recall_f1(np.array([0, 2]), np.array([0, 1])), "only 0 and 1"),
    (lambda: binary_confusion(np.array([0, 1]), np.array([0, 1, 1])), "same shape"),
    (lambda: roc_auc(np.array([0.1, 0.2]), np.array([1, 1])), "both classes"),
    (lambda: roc_curve(np.array([0.1, 0.2]), np.array([1, 0, 1])), "same shape"),
    (lambda: soft_targets(np.array([[0, 3]]), 3), "votes must be integers"),
    (lambda: cohen_kappa(np.array([0, 0]), np.array([0, 0]), 2), "single class"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- fit_platt --------------------------------------------------------------------------

def platt_data(n=4000, a=2.0, b=-1.0, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * s + b)))).astype(int)
    return s, y


def test_platt_matches_torch_lbfgs_on_the_bce_loss():
    from lib.calibration import fit_platt
    s, y = platt_data(n=500, seed=1)
    a, b = fit_platt(s, y)
    theta = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    st_, yt = torch.tensor(s), torch.tensor(y, dtype=torch.float64)
    opt = torch.optim.LBFGS([theta], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(theta[0] * st_ + theta[1], yt)
        loss.backward()
        return loss
    opt.step(closure)
    assert np.allclose([a, b], theta.detach().numpy(), atol=1e-6), (
        f"fit_platt gave {(a, b)}, torch LBFGS on the BCE loss gave {theta.tolist()}")


def test_platt_recovers_the_generating_parameters():
    from lib.calibration import fit_platt
    s, y = platt_data(n=20000, a=2.0, b=-1.0, seed=2)
    a, b = fit_platt(s, y)
    assert abs(a - 2.0) < 0.1 and abs(b + 1.0) < 0.1, f"expected about (2, -1), got {(a, b)}"


def test_platt_keeps_the_roc_auc():
    from lib.calibration import fit_platt
    s, y = platt_data(n=300, a=0.7, b=0.3, seed=3)
    a, b = fit_platt(s, y)
    assert a > 0, f"a positively informative score gets a > 0, got a = {a}"
    assert roc_auc(a * s + b, y) == pytest.approx(roc_auc(s, y)), "an increasing map keeps AUC"


def test_platt_converges_on_over_confident_scores():
    # Scores 8x too confident (true a = 1/8): plain Newton from (1, 0) overshoots and
    # diverges to a ~ 1e11 on this data; the halved steps converge to the optimum.
    from lib.calibration import fit_platt
    rng = np.random.default_rng(14)
    z = rng.normal(0.0, 1.5, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    a, b = fit_platt(8 * z, y)
    pi = 1 / (1 + np.exp(-(a * 8 * z + b)))
    grad = np.array([np.mean((pi - y) * 8 * z), np.mean(pi - y)])
    assert np.abs(grad).max() < 1e-9, f"gradient at the fit {(a, b)} is {grad}, not 0"
    assert abs(a - 1 / 8) < 0.02 and abs(b) < 0.15, f"expected about (0.125, 0), got {(a, b)}"


def test_roc_auc_mid_ranks_match_pairwise_counting_with_many_ties():
    rng = np.random.default_rng(5)
    scores, labels = rng.integers(0, 7, 400).astype(float), rng.integers(0, 2, 400)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)


def test_platt_rejects_one_class_and_mismatched_shapes():
    from lib.calibration import fit_platt
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.arange(4.0), np.ones(4, int))
    with pytest.raises(ValueError, match="shape"):
        fit_platt(np.arange(4.0), np.array([0, 1, 0]))
