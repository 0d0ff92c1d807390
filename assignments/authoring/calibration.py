# %% [markdown]
# # Assignment: calibrating an LLM classifier
#
# A language model classifies an input by scoring each label string as a continuation.
# You are given, for 3000 inputs and 3 label strings, the log-probability the model gave
# to every token of every label, and the true labels. You will turn these into class
# probabilities (summing token log-probs, normalizing for length, normalizing across labels
# with log-sum-exp), measure calibration with the expected calibration error, and fix it
# with temperature scaling fitted on a held-out split. Parts 6 to 9 design a yes/no
# classifier: one log-odds score per input read from the next-token logits, Platt scaling
# of that score, and a decision threshold chosen from the costs of the two kinds of error.
# The chapters
# [An LLM as a classifier](../../../chapters/part4_probability/llm_classifier_calibration.ipynb)
# and [Designing an LLM yes/no classifier](../../../chapters/part4_probability/binary_classifier.ipynb)
# derive everything you need.
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
# - Points: 17 in all.

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

YES_ID, NO_ID, VOCAB = 7, 3, 12           # token ids of " yes" and " no" in a 12-token vocabulary


def make_yes_no(n, prevalence, seed):
    """Next-token logits [n, VOCAB] after a yes/no question, and the true answers [n] (1 = yes).

    The model leans toward "no" and is over-confident: its log-odds are twice the evidence.
    """
    rng = np.random.default_rng(seed)
    answers = (rng.random(n) < prevalence).astype(int)
    evidence = 1.5 * (2 * answers - 1) + rng.normal(scale=1.5, size=n)          # [n]
    logits = rng.normal(size=(n, VOCAB))                                        # [n, VOCAB]
    logits[:, YES_ID] += 2.0 + evidence
    logits[:, NO_ID] += 2.5 - evidence
    return logits, answers

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
_got = np.asarray(label_scores(_t, _m))
assert np.allclose(_got, [[-3.0, -0.5]]), (
    f"label_scores(token_logp={_t.tolist()}, mask={_m.tolist()}): expected the sums of the real "
    f"tokens [[-3.0, -0.5]], got {_got.tolist()}")
_got = np.asarray(label_scores(_t, _m, per_token=True))
assert np.allclose(_got, [[-1.5, -0.5]]), (
    f"label_scores(..., per_token=True) on the same input: expected the means over each label's "
    f"own tokens [[-1.5, -0.5]], got {_got.tolist()}")
### BEGIN HIDDEN TESTS
_s = np.asarray(label_scores(token_logp, mask))
assert _s.shape == (N, C), f"label_scores on the setup's table: expected shape {(N, C)}, got {_s.shape}"
_want = np.array([[token_logp[i, c, :N_TOKENS[c]].sum() for c in range(C)] for i in range(N)])
assert np.allclose(_s, _want), (
    f"label_scores on the setup's table (labels of 1, 2, 3 tokens, padding after): expected "
    f"row 0 = {_want[0].round(4).tolist()}, got {_s[0].round(4).tolist()}")
_pt = np.asarray(label_scores(token_logp, mask, per_token=True))
assert np.allclose(_pt, _want / N_TOKENS), (
    f"label_scores(..., per_token=True) on the setup's table: expected row 0 = "
    f"{(_want[0] / N_TOKENS).round(4).tolist()} (sum / own token count), got {_pt[0].round(4).tolist()}")
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
_lp = np.asarray(label_log_probs(np.array([[0.0, 0.0], [np.log(3.0), 0.0]])))
assert _lp.shape == (2, 2) and np.allclose(_lp, np.log([[0.5, 0.5], [0.75, 0.25]])), (
    f"label_log_probs([[0, 0], [log 3, 0]]): expected log([[0.5, 0.5], [0.75, 0.25]]), got {_lp.tolist()}")
assert abs(float(_lp[1, 0]) - np.log(0.75)) < 1e-12, (
    f"label_log_probs([[log 3, 0]])[0]: expected log 0.75 to 1e-12, got {float(_lp[1, 0])!r}")
### BEGIN HIDDEN TESTS
from lib.numerics import log_softmax as _ref_log_softmax
_got = np.asarray(label_log_probs(np.array([[-1000.0, -1001.0, -1003.0]])))
_want = _ref_log_softmax(np.array([[-1000.0, -1001.0, -1003.0]]))
assert np.allclose(_got, _want), (
    f"label_log_probs([[-1000, -1001, -1003]]) (exp underflows): expected {_want.round(6).tolist()}, "
    f"got {_got.tolist()}")
_got = np.asarray(label_log_probs(np.array([[800.0, 799.0]])))
_want = _ref_log_softmax(np.array([[800.0, 799.0]]))
assert np.allclose(_got, _want), (
    f"label_log_probs([[800, 799]]) (exp overflows): expected {_want.round(6).tolist()}, got {_got.tolist()}")
_x = np.random.default_rng(5).normal(scale=30.0, size=(20, 4))
_got = np.asarray(label_log_probs(_x))
assert np.allclose(_got, _ref_log_softmax(_x)), (
    f"label_log_probs on 20 rows of N(0, 30^2) scores (seed 5): expected row 0 = "
    f"{_ref_log_softmax(_x)[0].round(4).tolist()}, got {_got[0].round(4).tolist()}")
_far_scores = np.array([[-1000.0, -1001.0, -1003.0]])
_far = label_log_probs(_far_scores)
assert _far.shape == (1, 3) and np.max(np.abs(_far - _ref_log_softmax(_far_scores))) < 1e-12, (
    f"label_log_probs([[-1000, -1001, -1003]]): expected {_ref_log_softmax(_far_scores).tolist()} "
    f"to 1e-12, got {np.asarray(_far).tolist()}")
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
_got = ece(_p, np.array([0, 0, 0, 1]))
assert abs(_got - 0.1) < 1e-12, (
    f"ece(probs={_p.tolist()}, labels=[0, 0, 0, 1]): bins 0.9 (2 right, gap 0.1) and 0.6 "
    f"(1 of 2 right, gap 0.1), so expected 0.5*0.1 + 0.5*0.1 = 0.1, got {_got}")
### BEGIN HIDDEN TESTS
from lib.calibration import expected_calibration_error as _ref_ece
# 9 rows at confidence 0.55, all right; 1 row at 0.95, wrong
_p2 = np.array([[0.55, 0.45]] * 9 + [[0.95, 0.05]])
_y2 = np.array([0] * 9 + [1])
_got2 = ece(_p2, _y2)
assert abs(_got2 - (0.9 * 0.45 + 0.1 * 0.95)) < 1e-12, (
    f"ece with 9 rows at confidence 0.55 (all right) and 1 at 0.95 (wrong): bins weighted by size "
    f"give 0.9*0.45 + 0.1*0.95 = 0.5, got {_got2}")
# the confidence is the max probability, whatever the label
_p3 = np.array([[0.2, 0.8], [0.3, 0.7]])
_got3 = ece(_p3, np.array([0, 0]))
assert abs(_got3 - 0.75) < 1e-12, (
    f"ece(probs={_p3.tolist()}, labels=[0, 0]): the confidence is max p (0.8, 0.7), both wrong, "
    f"so expected 0.75, got {_got3}")
_rng = np.random.default_rng(6)
_z = _rng.normal(scale=2.0, size=(500, 4))
_pr = np.exp(_z - _z.max(1, keepdims=True))
_pr /= _pr.sum(1, keepdims=True)
_yy = _rng.integers(0, 4, size=500)
for _nb in (1, 5, 10, 15):
    _got, _want = ece(_pr, _yy, _nb), _ref_ece(_pr, _yy, _nb)
    assert abs(_got - _want) < 1e-12, (
        f"ece on 500 random rows of 4 classes (seed 6), n_bins={_nb}: expected {_want}, got {_got}")
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
assert _t > 0, f"fit_temperature(logits={_z.tolist()}, labels=[0, 1, 1, 0]): expected T > 0, got {_t}"
### BEGIN HIDDEN TESTS
from lib.calibration import fit_temperature as _ref_fit, nll as _ref_nll
# half right, half wrong with equal margins: the best distribution is uniform, T -> large
assert _t > 50, (
    f"fit_temperature(logits={_z.tolist()}, labels=[0, 1, 1, 0]): half right, half wrong with "
    f"equal margins, so the NLL falls as T grows; expected T > 50 (the search goes to 100), got {_t}")
_rng = np.random.default_rng(7)
for _scale in (0.3, 1.0, 4.0):
    _lg = _scale * _rng.normal(size=(400, 3)) + 2.0 * np.eye(3)[_rng.integers(0, 3, size=400)]
    _yy = np.where(_rng.random(400) < 0.7, _lg.argmax(1), _rng.integers(0, 3, size=400))
    _got, _ref = fit_temperature(_lg, _yy), _ref_fit(_lg, _yy)
    assert abs(_got - _ref) < 1e-3 * _ref, (
        f"fit_temperature on 400 noisy 3-class logits of scale {_scale} (seed 7): expected "
        f"T = {_ref:.6f}, got {_got}")
    assert _ref_nll(_lg, _yy, _got) <= _ref_nll(_lg, _yy, _got * 1.01), (
        f"fit_temperature (scale {_scale}): the NLL at 1.01 T is below the NLL at T = {_got}")
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
_probs = np.asarray(_probs)
assert _T > 0 and _probs.shape == (8, 3) and np.allclose(_probs.sum(1), 1.0), (
    f"calibrate on 20 rows, cal 0..11, test 12..19: expected T > 0 and probs of shape (8, 3) "
    f"with rows summing to 1, got T = {_T}, shape {_probs.shape}")
assert np.array_equal(_probs.argmax(1), _z[12:].argmax(1)), (
    f"calibrate: dividing by T > 0 keeps every argmax; expected {_z[12:].argmax(1).tolist()}, "
    f"got {_probs.argmax(1).tolist()}")
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
    assert abs(_T - _T_ref) < 1e-6 * _T_ref, (
        f"calibrate on the setup's table: T fitted on cal_idx only should be {_T_ref:.6f}, got {_T}")
    _p_test = np.asarray(_probs)
    assert np.allclose(_p_test, _ref_softmax(_logits[test_idx] / _T_ref), atol=1e-6), (
        f"calibrate: probs_test should be softmax(logits[test_idx] / T); row 0 expected "
        f"{_ref_softmax(_logits[test_idx] / _T_ref)[0].round(6).tolist()}, got {_p_test[0].round(6).tolist()}")
    _before = _ref_ece(_ref_softmax(_logits[test_idx]), labels[test_idx])
    _after = _ref_ece(_p_test, labels[test_idx])
    assert _after < 0.7 * _before, (
        f"calibrate: the test ECE should fall below 0.7 x {_before:.4f}, got {_after:.4f}")
    _T2, _ = calibrate(_logits, labels, cal_idx[:200], test_idx[:20])
    _T2_ref = _ref_fit(_logits[cal_idx[:200]], labels[cal_idx[:200]])
    assert abs(_T2 - _T2_ref) < 1e-6 * _T2, (
        f"calibrate with the first 200 calibration rows: expected T = {_T2_ref:.6f}, got {_T2}")
finally:
    fit_temperature = _student_fit
### END HIDDEN TESTS

# %% [markdown]
# ## 6. A yes/no classifier in one forward pass (2 points)
#
# For a yes/no question, the labels `" yes"` and `" no"` are single tokens, so one forward
# pass gives both scores: read the next-token logits at the last prompt position.
# `binary_log_odds(logits, yes_id, no_id)`: `logits [N, V]` (the next-token logits of `N`
# prompts), two token ids. Return `[N]`: the log-odds of "yes" in the distribution
# restricted to the two labels,
#
# $$s = \log p(\text{yes}) - \log p(\text{no}), \qquad
# \sigma(s) = \frac{p(\text{yes})}{p(\text{yes}) + p(\text{no})}.$$
#
# Logits can be as large as $10^4$ in absolute value; an overflow is an error.

# %% [solution] id=binary_log_odds
def binary_log_odds(logits, yes_id, no_id):
    ### BEGIN SOLUTION
    # log p(yes) - log p(no): the log-sum-exp of the row appears in both and cancels
    return logits[:, yes_id] - logits[:, no_id]
    ### END SOLUTION

# %% [test] id=test_binary_log_odds points=2
_z = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.5]])
_s = np.asarray(binary_log_odds(_z, 0, 2))
assert _s.shape == (2,), f"binary_log_odds of logits [2, 3]: expected shape (2,), got {_s.shape}"
assert np.allclose(_s, [1.0, -0.5]), (
    f"binary_log_odds(logits={_z.tolist()}, yes_id=0, no_id=2): expected "
    f"log p(yes) - log p(no) = [1.0, -0.5], got {_s.tolist()}")
### BEGIN HIDDEN TESTS
from lib.numerics import log_softmax as _ref_log_softmax
_lg, _ = make_yes_no(50, 0.5, seed=12)
_lp = _ref_log_softmax(_lg, axis=1)                                    # [50, VOCAB]
_want = _lp[:, YES_ID] - _lp[:, NO_ID]
_got = np.asarray(binary_log_odds(_lg, YES_ID, NO_ID))
assert _got.shape == (50,) and np.allclose(_got, _want, atol=1e-9), (
    f"binary_log_odds on 50 rows of make_yes_no(seed=12): expected log_softmax[yes] - "
    f"log_softmax[no] (first 3: {_want[:3].round(6).tolist()}), got shape {_got.shape}, "
    f"first 3: {_got[:3].round(6).tolist()}")
_two_way = np.exp(_lp[:, YES_ID]) / (np.exp(_lp[:, YES_ID]) + np.exp(_lp[:, NO_ID]))
assert np.allclose(0.5 * (1 + np.tanh(0.5 * _got)), _two_way, atol=1e-9), (
    "sigmoid(binary_log_odds) must equal p(yes) / (p(yes) + p(no)) on make_yes_no(seed=12)")
_back = np.asarray(binary_log_odds(_lg, NO_ID, YES_ID))
assert np.allclose(_back, -_want, atol=1e-9), (
    f"swapping yes_id and no_id must negate the log-odds: expected first 3 "
    f"{(-_want[:3]).round(6).tolist()}, got {_back[:3].round(6).tolist()}")
_big = np.array([[1e4, 0.0, 9990.0], [-1e4, -9995.0, 0.0]])
_got_big = np.asarray(binary_log_odds(_big, 0, 2))
assert np.allclose(_got_big, [10.0, -1e4]), (
    f"binary_log_odds(logits={_big.tolist()}, yes_id=0, no_id=2): expected [10, -10000] "
    f"(never exponentiate the logits), got {_got_big.tolist()}")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Platt scaling of the log-odds (2 points)
#
# The raw log-odds of a prompted model are rarely calibrated. Platt scaling fits two
# numbers on held-out labels: $P(y = 1 \mid s) = \sigma(a s + b)$.
# `fit_platt(scores, labels)`: `scores [N]` float, `labels [N]` in {0, 1}. Return the
# floats `(a, b)` that minimize the mean negative log-likelihood
#
# $$L(a, b) = \frac1N \sum_i \bigl[\log(1 + e^{a s_i + b}) - y_i (a s_i + b)\bigr],$$
#
# each within `1e-6` of the exact minimizer. $L$ is convex. With $\pi_i = \sigma(a s_i + b)$
# and $x_i = (s_i, 1)$, its gradient is $g = \frac1N\sum_i (\pi_i - y_i) x_i$ and its
# Hessian $H = \frac1N\sum_i \pi_i (1 - \pi_i) x_i x_i^\top$. Use Newton's method from
# $(a, b) = (1, 0)$ with step halving: compute the step $\Delta = H^{-1} g$, halve it while
# $L(\theta - \Delta) > L(\theta)$, then move to $\theta - \Delta$; stop when no
# coordinate of the accepted step exceeds `1e-10` (at most 100 steps). The halving matters:
# the scores can be large (an over-confident model's log-odds reach tens), and there an
# undamped Newton step from $(1, 0)$ overshoots to where every $\pi_i$ is 0 or 1 and the
# iteration diverges. The labels contain both classes and the scores do not separate them
# perfectly, so the minimizer is finite. Compute the sigmoid and $L$ without overflow
# (`np.logaddexp(0, z)` is $\log(1 + e^z)$).

# %% [solution] id=fit_platt
def fit_platt(scores, labels):
    ### BEGIN SOLUTION
    x = np.stack([scores, np.ones_like(scores)], axis=1)             # [N, 2]

    def loss(theta):
        z = x @ theta                                                 # [N]
        return np.mean(np.logaddexp(0.0, z) - labels * z)

    theta = np.array([1.0, 0.0])                                      # (a, b)
    for _ in range(100):
        pi = 0.5 * (1.0 + np.tanh(0.5 * (x @ theta)))                 # sigmoid, [N]
        grad = x.T @ (pi - labels) / len(labels)                      # [2]
        hess = (x * (pi * (1.0 - pi))[:, None]).T @ x / len(labels)   # [2, 2]
        step = np.linalg.solve(hess, grad)
        for _ in range(60):                                           # halve until L does not rise
            if loss(theta - step) <= loss(theta):
                break
            step = step / 2
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])
    ### END SOLUTION

# %% [test] id=test_fit_platt points=2
# at s = -1 one label in four is 1, at s = +1 three in four: sigma(-a + b) = 1/4, sigma(a + b) = 3/4
_s = np.array([-1.0] * 4 + [1.0] * 4)
_y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
_a, _b = fit_platt(_s, _y)
assert abs(float(_a) - np.log(3.0)) < 1e-6 and abs(float(_b)) < 1e-6, (
    f"fit_platt(scores={_s.tolist()}, labels={_y.tolist()}): expected (a, b) = (log 3, 0) "
    f"= ({np.log(3.0):.6f}, 0), got ({float(_a):.6f}, {float(_b):.6f})")
### BEGIN HIDDEN TESTS
from lib.calibration import fit_platt as _ref_platt
# at s = 0 one label in five is 1, at s = 1 three in five: b = logit(0.2), a = logit(0.6) - b
_s2 = np.array([0.0] * 5 + [1.0] * 5)
_y2 = np.array([1, 0, 0, 0, 0, 1, 1, 1, 0, 0])
_a2, _b2 = fit_platt(_s2, _y2)
assert abs(float(_a2) - np.log(6.0)) < 1e-6 and abs(float(_b2) - np.log(0.25)) < 1e-6, (
    f"fit_platt(scores={_s2.tolist()}, labels={_y2.tolist()}): expected (a, b) = "
    f"(log 6, log 0.25) = ({np.log(6.0):.6f}, {np.log(0.25):.6f}), "
    f"got ({float(_a2):.6f}, {float(_b2):.6f})")
_lg, _ans = make_yes_no(2000, 0.3, seed=11)
_sc = _lg[:, YES_ID] - _lg[:, NO_ID]
_got, _ref = fit_platt(_sc, _ans), _ref_platt(_sc, _ans)
assert abs(float(_got[0]) - _ref[0]) < 1e-6 and abs(float(_got[1]) - _ref[1]) < 1e-6, (
    f"fit_platt on the log-odds of make_yes_no(2000, 0.3, seed=11): expected (a, b) = "
    f"({_ref[0]:.6f}, {_ref[1]:.6f}), got ({float(_got[0]):.6f}, {float(_got[1]):.6f})")
# over-confident scores (std about 12): the optimum is equivariant, so the oracle fits the
# scores divided by their std (a well-scaled problem) and divides its slope back
_lg3, _ans3 = make_yes_no(2000, 0.3, seed=14)
_sc3 = 3.0 * (_lg3[:, YES_ID] - _lg3[:, NO_ID])
_sd3 = float(_sc3.std())
_ref3 = _ref_platt(_sc3 / _sd3, _ans3)
_ref3 = (_ref3[0] / _sd3, _ref3[1])
_got3 = fit_platt(_sc3, _ans3)
assert abs(float(_got3[0]) - _ref3[0]) < 1e-6 and abs(float(_got3[1]) - _ref3[1]) < 1e-6, (
    f"fit_platt on 3 x the log-odds of make_yes_no(2000, 0.3, seed=14) (scores up to "
    f"{np.abs(_sc3).max():.0f} in absolute value): expected (a, b) = ({_ref3[0]:.6f}, "
    f"{_ref3[1]:.6f}), got ({float(_got3[0]):.6g}, {float(_got3[1]):.6g}); an undamped "
    f"Newton step from (1, 0) diverges here, halve the step while L rises")
### END HIDDEN TESTS

# %% [markdown]
# ## 8. The decision rule at a threshold (1 point)
#
# `predict_yes(probs, threshold)`: `probs [N]` calibrated probabilities of "yes", a float
# threshold. Return an integer array `[N]`: 1 where `probs >= threshold` (a probability
# exactly at the threshold is a "yes"), 0 elsewhere.

# %% [solution] id=predict_yes
def predict_yes(probs, threshold):
    ### BEGIN SOLUTION
    return (probs >= threshold).astype(int)
    ### END SOLUTION

# %% [test] id=test_predict_yes points=1
_p = np.array([0.2, 0.55, 0.9])
_d = np.asarray(predict_yes(_p, 0.6))
assert np.array_equal(_d, [0, 0, 1]), (
    f"predict_yes(probs={_p.tolist()}, threshold=0.6): expected [0, 0, 1], got {_d.tolist()}")
### BEGIN HIDDEN TESTS
_p2 = np.array([0.3, 0.5, 0.5000001, 0.4999999, 0.5])
_d2 = np.asarray(predict_yes(_p2, 0.5))
assert np.array_equal(_d2, [0, 1, 1, 0, 1]), (
    f"predict_yes(probs={_p2.tolist()}, threshold=0.5): a probability exactly at the "
    f"threshold is a yes, so expected [0, 1, 1, 0, 1], got {_d2.tolist()}")
_p3 = np.array([0.0, 0.25, 1.0])
_d3 = np.asarray(predict_yes(_p3, 0.0))
assert np.array_equal(_d3, [1, 1, 1]), (
    f"predict_yes(probs={_p3.tolist()}, threshold=0.0): expected [1, 1, 1], got {_d3.tolist()}")
_d4 = np.asarray(predict_yes(_p3, 1.0))
assert np.array_equal(_d4, [0, 0, 1]), (
    f"predict_yes(probs={_p3.tolist()}, threshold=1.0): expected [0, 0, 1], got {_d4.tolist()}")
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Choosing the threshold from the costs of errors (2 points)
#
# A false "yes" costs `c_fp` and a missed "yes" costs `c_fn`. For calibrated probabilities
# the expected cost is smallest at the Bayes threshold $p^* = c_{FP} / (c_{FP} + c_{FN})$;
# on a finite validation set we pick the threshold that costs least on it.
# `choose_threshold(probs, labels, c_fp, c_fn)`: `probs [N]`, `labels [N]` in {0, 1} (they
# may all be 0 or all be 1), two positive costs. The rule at threshold `t` is part 8's:
# "yes" iff `probs >= t`. The candidates are the distinct values of `probs` and `np.inf`
# (no "yes" at all). Return, as a float, the candidate with the smallest validation cost
# `c_fp * FP + c_fn * FN`; if several candidates share the smallest cost, return the
# **largest** of them. Write this part without calling `predict_yes` (it is graded on its
# own).

# %% [solution] id=choose_threshold
def choose_threshold(probs, labels, c_fp, c_fn):
    ### BEGIN SOLUTION
    best_t, best_cost = np.inf, c_fn * np.sum(labels == 1)           # t = inf: every yes missed
    for t in np.unique(probs)[::-1]:                                   # largest first
        yes = probs >= t
        cost = c_fp * np.sum(yes & (labels == 0)) + c_fn * np.sum(~yes & (labels == 1))
        if cost < best_cost:                                          # strict: ties keep the larger t
            best_t, best_cost = t, cost
    return float(best_t)
    ### END SOLUTION

# %% [test] id=test_choose_threshold points=2
_p = np.array([0.1, 0.4, 0.35, 0.8])
_y = np.array([0, 0, 1, 1])
_t = choose_threshold(_p, _y, 1.0, 2.0)
assert float(_t) == 0.35, (
    f"choose_threshold(probs={_p.tolist()}, labels={_y.tolist()}, c_fp=1, c_fn=2): the costs "
    f"at t = 0.1, 0.35, 0.4, 0.8, inf are 2, 1, 3, 2, 4, so expected 0.35, got {_t}")
### BEGIN HIDDEN TESTS
from lib.calibration import binary_confusion as _ref_confusion


def _ref_choose(p, y, c_fp, c_fn):
    best = None
    for t in np.append(np.unique(p), np.inf):          # ascending, so `<=` keeps the largest tie
        c = _ref_confusion(y, (p >= t).astype(int))
        cost = c_fp * c["fp"] + c_fn * c["fn"]
        if best is None or cost <= best[1]:
            best = (float(t), cost)
    return best[0]


# a tie: with c_fp = c_fn = 1 both t = 0.35 and t = 0.8 cost 1; the rule keeps the larger
_t1 = choose_threshold(_p, _y, 1.0, 1.0)
assert float(_t1) == 0.8, (
    f"choose_threshold(probs={_p.tolist()}, labels={_y.tolist()}, c_fp=1, c_fn=1): t = 0.35 "
    f"and t = 0.8 both cost 1 and ties go to the largest, so expected 0.8, got {_t1}")
_t2 = choose_threshold(_p, _y, 4.0, 1.0)
assert float(_t2) == 0.8, (
    f"choose_threshold(probs={_p.tolist()}, labels={_y.tolist()}, c_fp=4, c_fn=1): the costs "
    f"at t = 0.1, 0.35, 0.4, 0.8, inf are 8, 4, 5, 1, 2, so expected 0.8, got {_t2}")
_neg = choose_threshold(_p, np.zeros(4, dtype=int), 1.0, 5.0)
assert float(_neg) == np.inf, (
    f"choose_threshold(probs={_p.tolist()}, labels=[0, 0, 0, 0], c_fp=1, c_fn=5): with no "
    f"positive only t = inf costs nothing, so expected inf, got {_neg}")
_pos = choose_threshold(_p, np.ones(4, dtype=int), 5.0, 1.0)
assert float(_pos) == 0.1, (
    f"choose_threshold(probs={_p.tolist()}, labels=[1, 1, 1, 1], c_fp=5, c_fn=1): with no "
    f"negative only t = min(probs) = 0.1 costs nothing, so expected 0.1, got {_pos}")
_rng = np.random.default_rng(13)
for _c_fp, _c_fn in [(1.0, 1.0), (1.0, 3.0), (3.0, 1.0), (2.0, 7.0)]:
    _pp = np.round(_rng.random(400), 2)                             # many ties in probs
    _yy = (_rng.random(400) < _pp).astype(int)
    _got_t, _want_t = choose_threshold(_pp, _yy, _c_fp, _c_fn), _ref_choose(_pp, _yy, _c_fp, _c_fn)
    assert float(_got_t) == _want_t, (
        f"choose_threshold on 400 calibrated probabilities (seed 13), c_fp={_c_fp}, "
        f"c_fn={_c_fn}: expected {_want_t}, got {_got_t}")
### END HIDDEN TESTS
