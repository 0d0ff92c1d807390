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
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
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
def make():
    return {"token_logp": np.array([[[-1.0, -2.0, -9.0], [-0.5, -7.0, -7.0]]]),
            "mask": np.array([[[True, True, False], [True, False, False]]])}


def run(token_logp, mask):
    return {"sums": label_scores(token_logp, mask), "means": label_scores(token_logp, mask, per_token=True)}


def check(inputs, outputs):
    t, m = inputs["token_logp"], inputs["mask"]
    got = np.asarray(outputs["sums"])
    assert np.allclose(got, [[-3.0, -0.5]]), (
        f"label_scores(token_logp={t.tolist()}, mask={m.tolist()}): expected the sums of the real "
        f"tokens [[-3.0, -0.5]], got {got.tolist()}")
    got = np.asarray(outputs["means"])
    assert np.allclose(got, [[-1.5, -0.5]]), (
        f"label_scores(..., per_token=True) on the same input: expected the means over each label's "
        f"own tokens [[-1.5, -0.5]], got {got.tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"token_logp": token_logp.copy(), "mask": mask.copy()}


def run_hidden(token_logp, mask):
    return {"sums": label_scores(token_logp, mask), "means": label_scores(token_logp, mask, per_token=True)}


def check_hidden(inputs, outputs):
    table = inputs["token_logp"]
    s = np.asarray(outputs["sums"])
    assert s.shape == (N, C), f"label_scores on the setup's table: expected shape {(N, C)}, got {s.shape}"
    want = np.array([[table[i, c, :N_TOKENS[c]].sum() for c in range(C)] for i in range(N)])
    assert np.allclose(s, want), (
        f"label_scores on the setup's table (labels of 1, 2, 3 tokens, padding after): expected "
        f"row 0 = {want[0].round(4).tolist()}, got {s[0].round(4).tolist()}")
    pt = np.asarray(outputs["means"])
    assert np.allclose(pt, want / N_TOKENS), (
        f"label_scores(..., per_token=True) on the setup's table: expected row 0 = "
        f"{(want[0] / N_TOKENS).round(4).tolist()} (sum / own token count), got {pt[0].round(4).tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"scores": np.array([[0.0, 0.0], [np.log(3.0), 0.0]])}


def run(scores):
    return {"lp": label_log_probs(scores)}


def check(inputs, outputs):
    lp = np.asarray(outputs["lp"])
    assert lp.shape == (2, 2) and np.allclose(lp, np.log([[0.5, 0.5], [0.75, 0.25]])), (
        f"label_log_probs([[0, 0], [log 3, 0]]): expected log([[0.5, 0.5], [0.75, 0.25]]), got {lp.tolist()}")
    assert abs(float(lp[1, 0]) - np.log(0.75)) < 1e-12, (
        f"label_log_probs([[log 3, 0]])[0]: expected log 0.75 to 1e-12, got {float(lp[1, 0])!r}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"underflow": np.array([[-1000.0, -1001.0, -1003.0]]), "overflow": np.array([[800.0, 799.0]]),
            "normals": np.random.default_rng(5).normal(scale=30.0, size=(20, 4)),
            "far": np.array([[-1000.0, -1001.0, -1003.0]])}


def run_hidden(underflow, overflow, normals, far):
    return {"underflow": label_log_probs(underflow), "overflow": label_log_probs(overflow),
            "normals": label_log_probs(normals), "far": label_log_probs(far)}


def check_hidden(inputs, outputs):
    from lib.numerics import log_softmax as ref_log_softmax

    got = np.asarray(outputs["underflow"])
    want = ref_log_softmax(inputs["underflow"])
    assert np.allclose(got, want), (
        f"label_log_probs([[-1000, -1001, -1003]]) (exp underflows): expected {want.round(6).tolist()}, "
        f"got {got.tolist()}")
    got = np.asarray(outputs["overflow"])
    want = ref_log_softmax(inputs["overflow"])
    assert np.allclose(got, want), (
        f"label_log_probs([[800, 799]]) (exp overflows): expected {want.round(6).tolist()}, got {got.tolist()}")
    got = np.asarray(outputs["normals"])
    want = ref_log_softmax(inputs["normals"])
    assert np.allclose(got, want), (
        f"label_log_probs on 20 rows of N(0, 30^2) scores (seed 5): expected row 0 = "
        f"{want[0].round(4).tolist()}, got {got[0].round(4).tolist()}")
    far, want = outputs["far"], ref_log_softmax(inputs["far"])
    assert far.shape == (1, 3) and np.max(np.abs(far - want)) < 1e-12, (
        f"label_log_probs([[-1000, -1001, -1003]]): expected {want.tolist()} "
        f"to 1e-12, got {np.asarray(far).tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"probs": np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]]), "labels": np.array([0, 0, 0, 1])}


def run(probs, labels):
    return {"ece": ece(probs, labels)}


def check(inputs, outputs):
    got = outputs["ece"]
    assert abs(got - 0.1) < 1e-12, (
        f"ece(probs={inputs['probs'].tolist()}, labels=[0, 0, 0, 1]): bins 0.9 (2 right, gap 0.1) and 0.6 "
        f"(1 of 2 right, gap 0.1), so expected 0.5*0.1 + 0.5*0.1 = 0.1, got {got}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(6)
    z = rng.normal(scale=2.0, size=(500, 4))
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    # 9 rows at confidence 0.55, all right; 1 row at 0.95, wrong
    return {"weighted": (np.array([[0.55, 0.45]] * 9 + [[0.95, 0.05]]), np.array([0] * 9 + [1])),
            "max_prob": (np.array([[0.2, 0.8], [0.3, 0.7]]), np.array([0, 0])),
            "noisy": (probs, rng.integers(0, 4, size=500)), "n_bins": [1, 5, 10, 15],
            "edge": (np.array([[0.5, 0.3, 0.2], [0.75, 0.25, 0.0]]), np.array([0, 1]))}


def run_hidden(weighted, max_prob, noisy, n_bins, edge):
    return {"weighted": ece(*weighted), "max_prob": ece(*max_prob),
            "noisy": [ece(noisy[0], noisy[1], nb) for nb in n_bins], "edge": ece(edge[0], edge[1], 2)}


def check_hidden(inputs, outputs):
    from lib.calibration import expected_calibration_error as ref_ece

    got2 = outputs["weighted"]
    assert abs(got2 - (0.9 * 0.45 + 0.1 * 0.95)) < 1e-12, (
        f"ece with 9 rows at confidence 0.55 (all right) and 1 at 0.95 (wrong): bins weighted by size "
        f"give 0.9*0.45 + 0.1*0.95 = 0.5, got {got2}")
    # the confidence is the max probability, whatever the label
    got3 = outputs["max_prob"]
    assert abs(got3 - 0.75) < 1e-12, (
        f"ece(probs={inputs['max_prob'][0].tolist()}, labels=[0, 0]): the confidence is max p (0.8, 0.7), "
        f"both wrong, so expected 0.75, got {got3}")
    pr, yy = inputs["noisy"]
    for nb, got in zip(inputs["n_bins"], outputs["noisy"]):
        want = ref_ece(pr, yy, nb)
        assert abs(got - want) < 1e-12, (
            f"ece on 500 random rows of 4 classes (seed 6), n_bins={nb}: expected {want}, got {got}")
    # a confidence exactly on a bin edge: 0.5 belongs to (0, 0.5], not to (0.5, 1]
    got4 = outputs["edge"]
    assert abs(got4 - 0.625) < 1e-12, (
        f"ece with confidences 0.5 (right) and 0.75 (wrong), n_bins=2: bins are (b/n, (b+1)/n], "
        f"so 0.5 is alone in the first bin and ECE = 0.5*0.5 + 0.5*0.75 = 0.625; got {got4}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"logits": np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]]), "labels": np.array([0, 1, 1, 0])}


def run(logits, labels):
    return {"T": fit_temperature(logits, labels)}


def check(inputs, outputs):
    t = outputs["T"]
    assert t > 0, f"fit_temperature(logits={inputs['logits'].tolist()}, labels=[0, 1, 1, 0]): expected T > 0, got {t}"


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(7)
    noisy = []
    for scale in (0.3, 1.0, 4.0):
        logits = scale * rng.normal(size=(400, 3)) + 2.0 * np.eye(3)[rng.integers(0, 3, size=400)]
        noisy.append((logits, np.where(rng.random(400) < 0.7, logits.argmax(1), rng.integers(0, 3, size=400))))
    return {"even": (np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]]), np.array([0, 1, 1, 0])),
            "scales": [0.3, 1.0, 4.0], "noisy": noisy}


def run_hidden(even, scales, noisy):
    return {"even": fit_temperature(*even), "noisy": [fit_temperature(logits, labels) for logits, labels in noisy]}


def check_hidden(inputs, outputs):
    from lib.calibration import fit_temperature as ref_fit, nll as ref_nll

    # half right, half wrong with equal margins: the best distribution is uniform, T -> large
    t = outputs["even"]
    assert t > 50, (
        f"fit_temperature(logits={inputs['even'][0].tolist()}, labels=[0, 1, 1, 0]): half right, half wrong with "
        f"equal margins, so the NLL falls as T grows; expected T > 50 (the search goes to 100), got {t}")
    for scale, (lg, yy), got in zip(inputs["scales"], inputs["noisy"], outputs["noisy"]):
        ref = ref_fit(lg, yy)
        assert abs(got - ref) < 1e-3 * ref, (
            f"fit_temperature on 400 noisy 3-class logits of scale {scale} (seed 7): expected "
            f"T = {ref:.6f}, got {got}")
        assert ref_nll(lg, yy, got) <= ref_nll(lg, yy, got * 1.01), (
            f"fit_temperature (scale {scale}): the NLL at 1.01 T is below the NLL at T = {got}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"logits": np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]] * 5),
            "labels": np.array([0, 1, 2, 1] * 5), "cal_idx": np.arange(0, 12), "test_idx": np.arange(12, 20)}


def run(logits, labels, cal_idx, test_idx):
    T, probs = calibrate(logits, labels, cal_idx, test_idx)
    return {"T": T, "probs": probs}


def check(inputs, outputs):
    T, probs, z = outputs["T"], np.asarray(outputs["probs"]), inputs["logits"]
    assert T > 0 and probs.shape == (8, 3) and np.allclose(probs.sum(1), 1.0), (
        f"calibrate on 20 rows, cal 0..11, test 12..19: expected T > 0 and probs of shape (8, 3) "
        f"with rows summing to 1, got T = {T}, shape {probs.shape}")
    assert np.array_equal(probs.argmax(1), z[12:].argmax(1)), (
        f"calibrate: dividing by T > 0 keeps every argmax; expected {z[12:].argmax(1).tolist()}, "
        f"got {probs.argmax(1).tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    scores = np.array([[token_logp[i, c, :N_TOKENS[c]].mean() for c in range(C)] for i in range(N)])  # [N, C]
    top = scores.max(axis=1, keepdims=True)
    logits = scores - top - np.log(np.sum(np.exp(scores - top), axis=1, keepdims=True))      # log-softmax
    return {"logits": logits, "labels": labels.copy(), "cal_idx": cal_idx.copy(), "test_idx": test_idx.copy()}


def run_hidden(logits, labels, cal_idx, test_idx):
    # isolate part 5 from part 4: while calibrate runs, fit_temperature (the name the answer
    # cells share) is a stand-in that records what it was given and answers T = 1.7, so a
    # wrong part 4 costs nothing here; the student's own is put back afterwards
    seen = []

    def stand_in(lg, yy, *args, **kwargs):
        seen.append({"logits": np.array(lg, dtype=float), "labels": np.array(yy)})
        return 1.7

    answers, student_fit = calibrate.__globals__, fit_temperature
    answers["fit_temperature"] = stand_in
    try:
        T, probs = calibrate(logits, labels, cal_idx, test_idx)
        first = list(seen)
        T2, _ = calibrate(logits, labels, cal_idx[:200], test_idx[:20])
    finally:
        answers["fit_temperature"] = student_fit
    return {"T": T, "probs": probs, "T2": T2, "fits": first, "fits2": seen[len(first):]}


def check_hidden(inputs, outputs):
    from lib.calibration import fit_temperature as ref_fit, expected_calibration_error as ref_ece
    from lib.numerics import softmax as ref_softmax

    logits, labels, cal_idx, test_idx = (inputs[k] for k in ("logits", "labels", "cal_idx", "test_idx"))

    def expected_T(rows, fits, what):
        """1.7 if calibrate called fit_temperature (on exactly the calibration rows), else the true fit."""
        if not fits:  # a calibrate that fits its temperature inline
            return ref_fit(logits[rows], labels[rows])
        assert len(fits) == 1, f"{what}: expected one call of fit_temperature, got {len(fits)}"
        got_z, got_y = fits[0]["logits"], fits[0]["labels"]
        assert got_z.shape == logits[rows].shape and np.allclose(got_z, logits[rows]), (
            f"{what}: fit_temperature should get logits[cal_idx] (shape {logits[rows].shape}), "
            f"got an array of shape {got_z.shape} with other values")
        assert np.array_equal(got_y, labels[rows]), f"{what}: fit_temperature should get labels[cal_idx]"
        return 1.7

    T_ref = expected_T(cal_idx, outputs["fits"], "calibrate on the setup's table")
    T = outputs["T"]
    assert abs(T - T_ref) < 1e-6 * T_ref, (
        f"calibrate on the setup's table: T fitted on cal_idx only should be {T_ref:.6f}, got {T}")
    p_test = np.asarray(outputs["probs"])
    want = ref_softmax(logits[test_idx] / T_ref)
    assert np.allclose(p_test, want, atol=1e-6), (
        f"calibrate: probs_test should be softmax(logits[test_idx] / T); row 0 expected "
        f"{want[0].round(6).tolist()}, got {p_test[0].round(6).tolist()}")
    if not outputs["fits"]:  # the true fit must help (with the stand-in's T = 1.7 it need not)
        before = ref_ece(ref_softmax(logits[test_idx]), labels[test_idx])
        after = ref_ece(p_test, labels[test_idx])
        assert after < 0.7 * before, (
            f"calibrate: the test ECE should fall below 0.7 x {before:.4f}, got {after:.4f}")
    T2_ref = expected_T(cal_idx[:200], outputs["fits2"], "calibrate with the first 200 calibration rows")
    T2 = outputs["T2"]
    assert abs(T2 - T2_ref) < 1e-6 * T2_ref, (
        f"calibrate with the first 200 calibration rows: expected T = {T2_ref:.6f}, got {T2}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"logits": np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.5]])}


def run(logits):
    return {"s": binary_log_odds(logits, 0, 2)}


def check(inputs, outputs):
    s = np.asarray(outputs["s"])
    assert s.shape == (2,), f"binary_log_odds of logits [2, 3]: expected shape (2,), got {s.shape}"
    assert np.allclose(s, [1.0, -0.5]), (
        f"binary_log_odds(logits={inputs['logits'].tolist()}, yes_id=0, no_id=2): expected "
        f"log p(yes) - log p(no) = [1.0, -0.5], got {s.tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    logits, _ = make_yes_no(50, 0.5, seed=12)
    return {"logits": logits, "big": np.array([[1e4, 0.0, 9990.0], [-1e4, -9995.0, 0.0]])}


def run_hidden(logits, big):
    return {"s": binary_log_odds(logits, YES_ID, NO_ID), "back": binary_log_odds(logits, NO_ID, YES_ID),
            "big": binary_log_odds(big, 0, 2)}


def check_hidden(inputs, outputs):
    from lib.numerics import log_softmax as ref_log_softmax

    lp = ref_log_softmax(inputs["logits"], axis=1)                     # [50, VOCAB]
    want = lp[:, YES_ID] - lp[:, NO_ID]
    got = np.asarray(outputs["s"])
    assert got.shape == (50,) and np.allclose(got, want, atol=1e-9), (
        f"binary_log_odds on 50 rows of make_yes_no(seed=12): expected log_softmax[yes] - "
        f"log_softmax[no] (first 3: {want[:3].round(6).tolist()}), got shape {got.shape}, "
        f"first 3: {got[:3].round(6).tolist()}")
    two_way = np.exp(lp[:, YES_ID]) / (np.exp(lp[:, YES_ID]) + np.exp(lp[:, NO_ID]))
    assert np.allclose(0.5 * (1 + np.tanh(0.5 * got)), two_way, atol=1e-9), (
        "sigmoid(binary_log_odds) must equal p(yes) / (p(yes) + p(no)) on make_yes_no(seed=12)")
    back = np.asarray(outputs["back"])
    assert np.allclose(back, -want, atol=1e-9), (
        f"swapping yes_id and no_id must negate the log-odds: expected first 3 "
        f"{(-want[:3]).round(6).tolist()}, got {back[:3].round(6).tolist()}")
    got_big = np.asarray(outputs["big"])
    assert np.allclose(got_big, [10.0, -1e4]), (
        f"binary_log_odds(logits={inputs['big'].tolist()}, yes_id=0, no_id=2): expected [10, -10000] "
        f"(never exponentiate the logits), got {got_big.tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    # at s = -1 one label in four is 1, at s = +1 three in four: sigma(-a + b) = 1/4, sigma(a + b) = 3/4
    return {"scores": np.array([-1.0] * 4 + [1.0] * 4), "labels": np.array([1, 0, 0, 0, 1, 1, 1, 0])}


def run(scores, labels):
    a, b = fit_platt(scores, labels)
    return {"a": a, "b": b}


def check(inputs, outputs):
    a, b = outputs["a"], outputs["b"]
    assert abs(float(a) - np.log(3.0)) < 1e-6 and abs(float(b)) < 1e-6, (
        f"fit_platt(scores={inputs['scores'].tolist()}, labels={inputs['labels'].tolist()}): expected (a, b) = (log 3, 0) "
        f"= ({np.log(3.0):.6f}, 0), got ({float(a):.6f}, {float(b):.6f})")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    lg, answers = make_yes_no(2000, 0.3, seed=11)
    lg3, answers3 = make_yes_no(2000, 0.3, seed=14)
    # at s = 0 one label in five is 1, at s = 1 three in five: b = logit(0.2), a = logit(0.6) - b
    return {"exact": (np.array([0.0] * 5 + [1.0] * 5), np.array([1, 0, 0, 0, 0, 1, 1, 1, 0, 0])),
            "yes_no": (lg[:, YES_ID] - lg[:, NO_ID], answers),
            "confident": (3.0 * (lg3[:, YES_ID] - lg3[:, NO_ID]), answers3)}


def run_hidden(exact, yes_no, confident):
    return {"exact": fit_platt(*exact), "yes_no": fit_platt(*yes_no), "confident": fit_platt(*confident)}


def check_hidden(inputs, outputs):
    from lib.calibration import fit_platt as ref_platt

    s2, y2 = inputs["exact"]
    a2, b2 = outputs["exact"]
    assert abs(float(a2) - np.log(6.0)) < 1e-6 and abs(float(b2) - np.log(0.25)) < 1e-6, (
        f"fit_platt(scores={s2.tolist()}, labels={y2.tolist()}): expected (a, b) = "
        f"(log 6, log 0.25) = ({np.log(6.0):.6f}, {np.log(0.25):.6f}), "
        f"got ({float(a2):.6f}, {float(b2):.6f})")
    got, ref = outputs["yes_no"], ref_platt(*inputs["yes_no"])
    assert abs(float(got[0]) - ref[0]) < 1e-6 and abs(float(got[1]) - ref[1]) < 1e-6, (
        f"fit_platt on the log-odds of make_yes_no(2000, 0.3, seed=11): expected (a, b) = "
        f"({ref[0]:.6f}, {ref[1]:.6f}), got ({float(got[0]):.6f}, {float(got[1]):.6f})")
    # over-confident scores (std about 12): the optimum is equivariant, so the oracle fits the
    # scores divided by their std (a well-scaled problem) and divides its slope back
    sc3, ans3 = inputs["confident"]
    sd3 = float(sc3.std())
    ref3 = ref_platt(sc3 / sd3, ans3)
    ref3 = (ref3[0] / sd3, ref3[1])
    got3 = outputs["confident"]
    assert abs(float(got3[0]) - ref3[0]) < 1e-6 and abs(float(got3[1]) - ref3[1]) < 1e-6, (
        f"fit_platt on 3 x the log-odds of make_yes_no(2000, 0.3, seed=14) (scores up to "
        f"{np.abs(sc3).max():.0f} in absolute value): expected (a, b) = ({ref3[0]:.6f}, "
        f"{ref3[1]:.6f}), got ({float(got3[0]):.6g}, {float(got3[1]):.6g}); an undamped "
        f"Newton step from (1, 0) diverges here, halve the step while L rises")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"probs": np.array([0.2, 0.55, 0.9])}


def run(probs):
    return {"d": predict_yes(probs, 0.6)}


def check(inputs, outputs):
    d = np.asarray(outputs["d"])
    assert np.array_equal(d, [0, 0, 1]), (
        f"predict_yes(probs={inputs['probs'].tolist()}, threshold=0.6): expected [0, 0, 1], got {d.tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"at_half": np.array([0.3, 0.5, 0.5000001, 0.4999999, 0.5]), "ends": np.array([0.0, 0.25, 1.0])}


def run_hidden(at_half, ends):
    return {"at_half": predict_yes(at_half, 0.5), "zero": predict_yes(ends, 0.0), "one": predict_yes(ends, 1.0)}


def check_hidden(inputs, outputs):
    p2, p3 = inputs["at_half"], inputs["ends"]
    d2 = np.asarray(outputs["at_half"])
    assert np.array_equal(d2, [0, 1, 1, 0, 1]), (
        f"predict_yes(probs={p2.tolist()}, threshold=0.5): a probability exactly at the "
        f"threshold is a yes, so expected [0, 1, 1, 0, 1], got {d2.tolist()}")
    d3 = np.asarray(outputs["zero"])
    assert np.array_equal(d3, [1, 1, 1]), (
        f"predict_yes(probs={p3.tolist()}, threshold=0.0): expected [1, 1, 1], got {d3.tolist()}")
    d4 = np.asarray(outputs["one"])
    assert np.array_equal(d4, [0, 0, 1]), (
        f"predict_yes(probs={p3.tolist()}, threshold=1.0): expected [0, 0, 1], got {d4.tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
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
def make():
    return {"probs": np.array([0.1, 0.4, 0.35, 0.8]), "labels": np.array([0, 0, 1, 1])}


def run(probs, labels):
    return {"t": choose_threshold(probs, labels, 1.0, 2.0)}


def check(inputs, outputs):
    t = outputs["t"]
    assert float(t) == 0.35, (
        f"choose_threshold(probs={inputs['probs'].tolist()}, labels={inputs['labels'].tolist()}, c_fp=1, c_fn=2): "
        f"the costs at t = 0.1, 0.35, 0.4, 0.8, inf are 2, 1, 3, 2, 4, so expected 0.35, got {t}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(13)
    costs, noisy = [(1.0, 1.0), (1.0, 3.0), (3.0, 1.0), (2.0, 7.0)], []
    for _ in costs:
        pp = np.round(rng.random(400), 2)                             # many ties in probs
        noisy.append((pp, (rng.random(400) < pp).astype(int)))
    return {"probs": np.array([0.1, 0.4, 0.35, 0.8]), "labels": np.array([0, 0, 1, 1]),
            "zeros": np.zeros(4, dtype=int), "ones": np.ones(4, dtype=int), "costs": costs, "noisy": noisy}


def run_hidden(probs, labels, zeros, ones, costs, noisy):
    return {"tie": choose_threshold(probs, labels, 1.0, 1.0), "fp_dear": choose_threshold(probs, labels, 4.0, 1.0),
            "no_positive": choose_threshold(probs, zeros, 1.0, 5.0),
            "no_negative": choose_threshold(probs, ones, 5.0, 1.0),
            "noisy": [choose_threshold(pp, yy, c_fp, c_fn) for (pp, yy), (c_fp, c_fn) in zip(noisy, costs)]}


def check_hidden(inputs, outputs):
    from lib.calibration import binary_confusion as ref_confusion

    def ref_choose(p, y, c_fp, c_fn):
        best = None
        for t in np.append(np.unique(p), np.inf):          # ascending, so `<=` keeps the largest tie
            c = ref_confusion(y, (p >= t).astype(int))
            cost = c_fp * c["fp"] + c_fn * c["fn"]
            if best is None or cost <= best[1]:
                best = (float(t), cost)
        return best[0]

    p, y = inputs["probs"].tolist(), inputs["labels"].tolist()
    # a tie: with c_fp = c_fn = 1 both t = 0.35 and t = 0.8 cost 1; the rule keeps the larger
    t1 = outputs["tie"]
    assert float(t1) == 0.8, (
        f"choose_threshold(probs={p}, labels={y}, c_fp=1, c_fn=1): t = 0.35 "
        f"and t = 0.8 both cost 1 and ties go to the largest, so expected 0.8, got {t1}")
    t2 = outputs["fp_dear"]
    assert float(t2) == 0.8, (
        f"choose_threshold(probs={p}, labels={y}, c_fp=4, c_fn=1): the costs "
        f"at t = 0.1, 0.35, 0.4, 0.8, inf are 8, 4, 5, 1, 2, so expected 0.8, got {t2}")
    neg = outputs["no_positive"]
    assert float(neg) == np.inf, (
        f"choose_threshold(probs={p}, labels=[0, 0, 0, 0], c_fp=1, c_fn=5): with no "
        f"positive only t = inf costs nothing, so expected inf, got {neg}")
    pos = outputs["no_negative"]
    assert float(pos) == 0.1, (
        f"choose_threshold(probs={p}, labels=[1, 1, 1, 1], c_fp=5, c_fn=1): with no "
        f"negative only t = min(probs) = 0.1 costs nothing, so expected 0.1, got {pos}")
    for (c_fp, c_fn), (pp, yy), got_t in zip(inputs["costs"], inputs["noisy"], outputs["noisy"]):
        want_t = ref_choose(pp, yy, c_fp, c_fn)
        assert float(got_t) == want_t, (
            f"choose_threshold on 400 calibrated probabilities (seed 13), c_fp={c_fp}, "
            f"c_fn={c_fn}: expected {want_t}, got {got_t}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
