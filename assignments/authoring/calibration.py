# %% [markdown]
# # Assignment: calibrating an LLM classifier
#
# A language model classifies an input by scoring each label string as a continuation.
# You are given, for 3000 inputs and 3 label strings, the log-probability the model gave
# to every token of every label, and the true labels. You will turn these into class
# probabilities (summing token log-probs, normalizing for length, normalizing across labels
# with log-sum-exp), measure calibration with the expected calibration error, and fix it
# with temperature scaling fitted on a held-out split. The chapter
# [An LLM as a classifier](../../../chapters/part4_probability/llm_classifier_calibration.ipynb)
# derives everything you need.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Use NumPy only; do not
#   import `lib` (it holds the reference answers).
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Natural logarithms everywhere. Labels are integers in `[0, C)`.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Points: 10 in all.

# %% [setup]
import numpy as np

np.seterr(over="raise", invalid="raise")  # an overflow or a NaN in your code is an error

LABEL_STRINGS = ["positive", "negative", "mixed feelings overall"]
N_TOKENS = np.array([1, 2, 3])            # "positive" | "neg", "ative" | "mixed", " feelings", " overall"
N, C, L = 3000, 3, 3


def make_table(seed=0):
    """Token log-probs [N, C, L] of each label string, the mask [N, C, L], the labels [N].

    Padding positions (beyond a label's length) hold arbitrary values: never use them.
    """
    rng = np.random.default_rng(seed)
    labels = rng.choice(C, size=N, p=[0.4, 0.35, 0.25])
    evidence = 3.0 * np.eye(C)[labels] + rng.normal(scale=1.5, size=(N, C))   # [N, C]
    first = evidence - np.logaddexp.reduce(np.c_[evidence, np.full(N, 1.0)], axis=1)[:, None]
    token_logp = rng.uniform(-6.0, -2.0, size=(N, C, L))                     # padding junk
    token_logp[:, :, 0] = first
    later = -rng.uniform(0.2, 0.9, size=(N, C, L))                           # length cost
    mask = np.arange(L)[None, None, :] < N_TOKENS[None, :, None]              # [1, C, L]
    mask = np.broadcast_to(mask, (N, C, L))
    token_logp[:, :, 1:] = np.where(mask[:, :, 1:], later[:, :, 1:], token_logp[:, :, 1:])
    return token_logp, mask, labels


token_logp, mask, labels = make_table()
cal_idx, test_idx = np.arange(0, 1500), np.arange(1500, 3000)

# %% [markdown]
# ## 1. Label scores (2 points)
#
# `label_scores(token_logp, mask, per_token=False)`: `token_logp [N, C, L]`, `mask [N, C, L]`
# bool (True on the real tokens of each label). Return `[N, C]`: the **sum** of the
# log-probs of the real tokens of each label, or, when `per_token=True`, that sum divided
# by the number of real tokens of that label (the mean log-prob per token).

# %% [solution] id=label_scores
def label_scores(token_logp, mask, per_token=False):
    ### BEGIN SOLUTION
    total = np.sum(np.where(mask, token_logp, 0.0), axis=-1)
    if per_token:
        return total / np.sum(mask, axis=-1)
    return total
    ### END SOLUTION

# %% [test] id=test_label_scores points=2
_t = np.array([[[-1.0, -2.0, -9.0], [-0.5, -7.0, -7.0]]])
_m = np.array([[[True, True, False], [True, False, False]]])
assert np.allclose(label_scores(_t, _m), [[-3.0, -0.5]])
assert np.allclose(label_scores(_t, _m, per_token=True), [[-1.5, -0.5]])
### BEGIN HIDDEN TESTS
_s = label_scores(token_logp, mask)
assert _s.shape == (N, C)
assert np.allclose(_s, np.array([[token_logp[i, c, :N_TOKENS[c]].sum() for c in range(C)]
                                 for i in range(N)]))
assert np.allclose(label_scores(token_logp, mask, per_token=True), _s / N_TOKENS)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Normalizing across labels (2 points)
#
# `label_log_probs(scores)`: `scores [N, C]` (log-probabilities of whole strings, which can
# be very negative) to `log P(c | x) [N, C]`: subtract the log-sum-exp of each row. Compute
# it stably (subtract the row max before `exp`); never exponentiate the raw scores.

# %% [solution] id=normalize
def label_log_probs(scores):
    ### BEGIN SOLUTION
    m = np.max(scores, axis=1, keepdims=True)
    return scores - m - np.log(np.sum(np.exp(scores - m), axis=1, keepdims=True))
    ### END SOLUTION

# %% [test] id=test_normalize points=2
_lp = label_log_probs(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]))
assert np.allclose(_lp, np.log([[0.5, 0.5], [0.75, 0.25]]))
assert _lp.shape == (2, 2) and abs(float(_lp[1, 0]) - np.log(0.75)) < 1e-12
### BEGIN HIDDEN TESTS
from lib.numerics import log_softmax as _ref_log_softmax
assert np.allclose(label_log_probs(np.array([[-1000.0, -1001.0, -1003.0]])),
                   _ref_log_softmax(np.array([[-1000.0, -1001.0, -1003.0]])))
assert np.allclose(label_log_probs(np.array([[800.0, 799.0]])), _ref_log_softmax(np.array([[800.0, 799.0]])))
_x = np.random.default_rng(5).normal(scale=30.0, size=(20, 4))
assert np.allclose(label_log_probs(_x), _ref_log_softmax(_x))
_far_scores = np.array([[-1000.0, -1001.0, -1003.0]])
_far = label_log_probs(_far_scores)
assert _far.shape == (1, 3) and np.max(np.abs(_far - _ref_log_softmax(_far_scores))) < 1e-12
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Expected calibration error (2 points)
#
# `ece(probs, labels, n_bins=10)`: `probs [N, C]`. The confidence of row `i` is
# `max_k probs[i, k]` and its prediction the argmax. Put each row in one of `n_bins`
# equal-width bins `(b/n_bins, (b+1)/n_bins]` by its confidence, and return
#
# $$\mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|,$$
#
# where `acc` is the fraction of correct predictions in the bin and `conf` the mean
# confidence; empty bins contribute nothing.

# %% [solution] id=ece
def ece(probs, labels, n_bins=10):
    ### BEGIN SOLUTION
    conf = probs.max(axis=1)                       # > 0: at least 1/C
    correct = (probs.argmax(axis=1) == labels).astype(float)
    total = 0.0
    for b in range(n_bins):
        in_bin = (conf > b / n_bins) & (conf <= (b + 1) / n_bins)
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)
    ### END SOLUTION

# %% [test] id=test_ece points=2
_p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
assert abs(ece(_p, np.array([0, 0, 0, 1])) - (0.5 * 0.1 + 0.5 * 0.1)) < 1e-12
### BEGIN HIDDEN TESTS
from lib.calibration import expected_calibration_error as _ref_ece
# 9 rows at confidence 0.55, all right; 1 row at 0.95, wrong
_p2 = np.array([[0.55, 0.45]] * 9 + [[0.95, 0.05]])
_y2 = np.array([0] * 9 + [1])
assert abs(ece(_p2, _y2) - (0.9 * 0.45 + 0.1 * 0.95)) < 1e-12
# the confidence is the max probability, whatever the label
_p3 = np.array([[0.2, 0.8], [0.3, 0.7]])
assert abs(ece(_p3, np.array([0, 0])) - 0.75) < 1e-12
_rng = np.random.default_rng(6)
_z = _rng.normal(scale=2.0, size=(500, 4))
_pr = np.exp(_z - _z.max(1, keepdims=True))
_pr /= _pr.sum(1, keepdims=True)
_yy = _rng.integers(0, 4, size=500)
for _nb in (1, 5, 10, 15):
    assert abs(ece(_pr, _yy, _nb) - _ref_ece(_pr, _yy, _nb)) < 1e-12, _nb
# a confidence exactly on a bin edge: 0.5 belongs to (0, 0.5], not to (0.5, 1]
_p4 = np.array([[0.5, 0.3, 0.2], [0.75, 0.25, 0.0]])
_got4 = ece(_p4, np.array([0, 1]), 2)
assert abs(_got4 - 0.625) < 1e-12, (
    f"ece with confidences 0.5 (right) and 0.75 (wrong), n_bins=2: bins are (b/n, (b+1)/n], "
    f"so 0.5 is alone in the first bin and ECE = 0.5*0.5 + 0.5*0.75 = 0.625; got {_got4}")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Fitting a temperature (2 points)
#
# `fit_temperature(logits, labels)`: return the `T > 0` that minimizes the mean negative
# log-likelihood of `labels` under `softmax(logits / T)`, to a relative precision of
# `1e-4` or better. Any 1-D method works: the NLL is convex in `1/T`, so bisection on the
# sign of its derivative, golden-section search on `log T`, or a fine grid refined around
# its best point all do. Search `T` in `[0.01, 100]`.

# %% [solution] id=fit_temperature
def fit_temperature(logits, labels):
    ### BEGIN SOLUTION
    def slope(beta):
        z = beta * logits
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return np.mean(np.sum(p * logits, axis=1) - logits[np.arange(len(labels)), labels])

    lo, hi = np.log(1 / 100.0), np.log(1 / 0.01)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if slope(np.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(np.exp(-0.5 * (lo + hi)))
    ### END SOLUTION

# %% [test] id=test_fit_temperature points=2
_z = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
_t = fit_temperature(_z, np.array([0, 1, 1, 0]))
assert _t > 0
### BEGIN HIDDEN TESTS
from lib.calibration import fit_temperature as _ref_fit, nll as _ref_nll
# half right, half wrong with equal margins: the best distribution is uniform, T -> large
assert _t > 50
_rng = np.random.default_rng(7)
for _scale in (0.3, 1.0, 4.0):
    _lg = _scale * _rng.normal(size=(400, 3)) + 2.0 * np.eye(3)[_rng.integers(0, 3, size=400)]
    _yy = np.where(_rng.random(400) < 0.7, _lg.argmax(1), _rng.integers(0, 3, size=400))
    _got, _ref = fit_temperature(_lg, _yy), _ref_fit(_lg, _yy)
    assert abs(_got - _ref) < 1e-3 * _ref, (_scale, _got, _ref)
    assert _ref_nll(_lg, _yy, _got) <= _ref_nll(_lg, _yy, _got * 1.01)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Calibrating on a held-out split (2 points)
#
# `calibrate(logits, labels, cal_idx, test_idx)`: fit the temperature on the calibration
# rows `cal_idx` **only**, and return `(T, probs_test)` where `probs_test [len(test_idx), C]`
# is `softmax(logits[test_idx] / T)`. The test rows are for reporting: their labels must
# not influence `T`. Call your `fit_temperature` from part 4 (the grader checks this part
# with a reference `fit_temperature`, so a mistake in part 4 costs no points here).

# %% [solution] id=calibrate
def calibrate(logits, labels, cal_idx, test_idx):
    ### BEGIN SOLUTION
    T = fit_temperature(logits[cal_idx], labels[cal_idx])
    z = logits[test_idx] / T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return T, p / p.sum(axis=1, keepdims=True)
    ### END SOLUTION

# %% [test] id=test_calibrate points=2
_z = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]] * 5)
_y = np.array([0, 1, 2, 1] * 5)
_T, _probs = calibrate(_z, _y, np.arange(0, 12), np.arange(12, 20))
assert _T > 0 and _probs.shape == (8, 3) and np.allclose(_probs.sum(1), 1.0)
assert np.array_equal(_probs.argmax(1), _z[12:].argmax(1))        # accuracy unchanged
### BEGIN HIDDEN TESTS
from lib.calibration import fit_temperature as _ref_fit, expected_calibration_error as _ref_ece
from lib.numerics import softmax as _ref_softmax, log_softmax as _ref_log_softmax
_student_fit = fit_temperature
fit_temperature = lambda lg, yy: _ref_fit(lg, yy, t_min=0.01, t_max=100.0)   # isolate part 5
try:
    _logits = _ref_log_softmax(np.array([[token_logp[i, c, :N_TOKENS[c]].mean() for c in range(C)]
                                         for i in range(N)]))
    _T, _probs = calibrate(_logits, labels, cal_idx, test_idx)
    _T_ref = _ref_fit(_logits[cal_idx], labels[cal_idx])
    assert abs(_T - _T_ref) < 1e-6 * _T_ref, (_T, _T_ref)
    assert np.allclose(_probs, _ref_softmax(_logits[test_idx] / _T_ref), atol=1e-6)
    _before = _ref_ece(_ref_softmax(_logits[test_idx]), labels[test_idx])
    assert _ref_ece(_probs, labels[test_idx]) < 0.7 * _before
    _T2, _ = calibrate(_logits, labels, cal_idx[:200], test_idx[:20])
    assert abs(_T2 - _ref_fit(_logits[cal_idx[:200]], labels[cal_idx[:200]])) < 1e-6 * _T2
finally:
    fit_temperature = _student_fit
### END HIDDEN TESTS
