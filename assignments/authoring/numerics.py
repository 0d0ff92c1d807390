# %% [markdown]
# # Assignment 1: numerically stable softmax, log-sum-exp and losses from logits
#
# You will implement five functions in NumPy. Each must give the right answer for **any
# finite input**, including logits of size 1000 or 1e300, without overflow warnings and
# without NaN. The chapters [Softmax and log-sum-exp](../../../chapters/part1_numerics/softmax_logsumexp.ipynb)
# and [Cross-entropy](../../../chapters/part1_numerics/cross_entropy.ipynb) derive every formula you need.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers) or any library other than NumPy.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 10 in all.

# %% [setup]
import numpy as np

np.seterr(over="raise", invalid="raise")  # an overflow or a NaN in your code is an error


def check_close(actual, expected, what, tol=1e-9):
    """Assert that two arrays have the same shape and agree to ``tol``.

    ``what`` names the call and its input (``"softmax([1000, 1000])"``); every failure
    message starts with it, then says what was expected and what came back.
    """
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, got shape {actual.shape}")
    with np.errstate(all="ignore"):  # the message may subtract inf from inf
        close = np.allclose(actual, expected, rtol=tol, atol=tol)
        gap = np.max(np.nan_to_num(np.abs(actual - expected)), initial=0.0)  # inf - inf counts as 0
    assert close, f"{what}: expected {expected}, got {actual} (tolerance {tol:g}, largest gap {gap:.3g})"

# %% [markdown]
# ## 1. Log-sum-exp (2 points)
#
# Implement `logsumexp(x)`: $\log \sum_j e^{x_j}$ over the **last axis**, for `x` of shape
# `[..., n]`, returning shape `[...]`. Subtract the row maximum $m$ first:
# $\operatorname{lse}(x) = m + \log \sum_j e^{x_j - m}$. A row that is all `-inf` must
# give `-inf` (and no warning).

# %% [solution] id=logsumexp
def logsumexp(x):
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, -1) + np.log(np.sum(np.exp(x - m), axis=-1))
    ### END SOLUTION

# %% [test] id=test_logsumexp points=2
def make():
    return {"xs": [np.array([0.0, 0.0]), np.array([[1.0, 2.0, 3.0]])]}


def run(xs):
    return {"lse": [logsumexp(x) for x in xs]}


def check(inputs, outputs):
    zeros, row = outputs["lse"]
    check_close(zeros, np.log(2), "logsumexp([0, 0])")
    check_close(row, [np.log(np.exp(1) + np.exp(2) + np.exp(3))], "logsumexp([[1, 2, 3]]), shape [1, 3] -> [1]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"xs": [np.array([1000.0, 1000.0]), np.array([1e300, -1e300]), np.array([-1000.0, -1000.0]),
                   np.random.default_rng(1).normal(scale=300.0, size=(4, 5, 6)),
                   np.array([[-np.inf, -np.inf], [1000.0, 1000.0], [-1000.0, -1000.0]])],
            "all_neg_inf": np.array([[-np.inf, -np.inf]])}


def run_hidden(xs, all_neg_inf):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the statement asks for no warning on an all -inf row
        try:
            neg_inf, warning = logsumexp(all_neg_inf), ""
        except RuntimeWarning as caught:
            neg_inf, warning = None, str(caught)
    return {"lse": [logsumexp(x) for x in xs], "neg_inf": neg_inf, "warning": warning}


def check_hidden(inputs, outputs):
    from lib.numerics import logsumexp as ref_logsumexp

    big, huge, small, normals, mixed = outputs["lse"]
    check_close(big, 1000.0 + np.log(2), "logsumexp([1000, 1000])")
    check_close(huge, 1e300, "logsumexp([1e300, -1e300])")
    check_close(small, -1000.0 + np.log(2), "logsumexp([-1000, -1000])")
    check_close(normals, ref_logsumexp(inputs["xs"][3]), "logsumexp of random normals (scale 300), shape [4, 5, 6]")
    assert not outputs["warning"], (
        f"logsumexp([[-inf, -inf]]): expected [-inf] and no warning, got the warning '{outputs['warning']}'")
    assert np.isneginf(outputs["neg_inf"][0]), f"logsumexp([[-inf, -inf]]): expected [-inf], got {outputs['neg_inf']}"
    # rows at very different scales in one batch: the maximum must be taken per row
    check_close(mixed, [-np.inf, 1000.0 + np.log(2), -1000.0 + np.log(2)],
                "logsumexp of the rows [-inf, -inf], [1000, 1000], [-1000, -1000] in one [3, 2] batch")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Softmax and log-softmax (3 points)
#
# Implement `softmax(x)` and `log_softmax(x)` over the last axis. Use the row max as in
# part 1; compute `log_softmax` as $x - \operatorname{lse}(x)$, **not** as
# `log(softmax(x))`, which gives `-inf` as soon as a probability underflows to 0.
# Entries equal to `-inf` get probability 0.

# %% [solution] id=softmax
def softmax(x):
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)
    ### END SOLUTION


def log_softmax(x):
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    return x - logsumexp(x)[..., None]
    ### END SOLUTION

# %% [test] id=test_softmax points=1.5
def make():
    return {"xs": [np.array([1.0, 1.0]), np.array([[0.0, np.log(3.0)]])]}


def run(xs):
    return {"p": [softmax(x) for x in xs]}


def check(inputs, outputs):
    ones, row = outputs["p"]
    check_close(ones, [0.5, 0.5], "softmax([1, 1])")
    check_close(row, [[0.25, 0.75]], "softmax([[0, log 3]])")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"xs": [np.array([1000.0, 1000.0]), np.array([-1000.0, 0.0]), np.array([0.0, -np.inf, 0.0]),
                   np.random.default_rng(2).normal(scale=50.0, size=(3, 7))]}


def run_hidden(xs):
    return {"p": [softmax(x) for x in xs]}


def check_hidden(inputs, outputs):
    from lib.numerics import softmax as ref_softmax

    big, apart, masked, normals = outputs["p"]
    check_close(big, [0.5, 0.5], "softmax([1000, 1000])")
    check_close(apart, [0.0, 1.0], "softmax([-1000, 0])")
    check_close(masked, [0.5, 0.0, 0.5], "softmax([0, -inf, 0])")
    check_close(normals, ref_softmax(inputs["xs"][3]), "softmax of random normals (scale 50), shape [3, 7]")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_log_softmax points=1.5
def make():
    return {"x": np.array([0.0, 0.0])}


def run(x):
    return {"logp": log_softmax(x)}


def check(inputs, outputs):
    check_close(outputs["logp"], [-np.log(2), -np.log(2)], "log_softmax([0, 0])")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"xs": [np.array([0.0, -1000.0]), np.array([1000.0, 0.0, 1000.0]),
                   np.random.default_rng(3).normal(scale=50.0, size=(3, 7)), np.array([[0.0, -np.inf, 0.0]])]}


def run_hidden(xs):
    return {"logp": [log_softmax(x) for x in xs]}


def check_hidden(inputs, outputs):
    from lib.numerics import log_softmax as ref_log_softmax

    apart, big, normals, masked = outputs["logp"]
    check_close(apart, [0.0, -1000.0], "log_softmax([0, -1000])")
    check_close(big, [-np.log(2), -1000.0 - np.log(2), -np.log(2)], "log_softmax([1000, 0, 1000])")
    check_close(normals, ref_log_softmax(inputs["xs"][2]), "log_softmax of random normals (scale 50), shape [3, 7]")
    # an entry equal to -inf has probability 0, so its log-probability is exactly -inf
    check_close(masked, [[-np.log(2), -np.inf, -np.log(2)]], "log_softmax([[0, -inf, 0]])")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Cross-entropy with label smoothing (3 points)
#
# `cross_entropy(logits, labels, eps)`: logits `[N, C]`, integer labels `[N]`, the mean
# over rows of $-\sum_c q_c \log p_c$ where $p = \operatorname{softmax}(\text{logits})$ and the
# smoothed target is $q = (1-\varepsilon)\,\text{onehot}(y) + \varepsilon / C$ (the
# $\varepsilon$ mass is spread over **all** $C$ classes, the true one included).

# %% [solution] id=cross_entropy
def cross_entropy(logits, labels, eps=0.0):
    ### BEGIN SOLUTION
    logp = log_softmax(logits)
    n, c = logp.shape
    q = (1.0 - eps) * np.eye(c)[labels] + eps / c
    return float(np.mean(-np.sum(q * logp, axis=-1)))
    ### END SOLUTION

# %% [test] id=test_cross_entropy points=2
def make():
    return {"logits": np.zeros((2, 4)), "labels": np.array([0, 3])}


def run(logits, labels):
    return {"loss": cross_entropy(logits, labels)}


def check(inputs, outputs):
    check_close(outputs["loss"], np.log(4), "cross_entropy(zeros [2, 4], labels [0, 3])")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(4)
    return {"logits": rng.normal(scale=4.0, size=(8, 5)), "labels": rng.integers(0, 5, size=8)}


def run_hidden(logits, labels):
    return {"loss": cross_entropy(logits, labels),
            "far": cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))}


def check_hidden(inputs, outputs):
    from lib.numerics import cross_entropy as ref_ce

    check_close(outputs["loss"], ref_ce(inputs["logits"], inputs["labels"]),
                "cross_entropy of random logits [8, 5] (scale 4)")
    check_close(outputs["far"], 1000.0, "cross_entropy([[1000, 0]], labels [1])")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_label_smoothing points=1
def make():
    return {"logits": np.zeros((1, 4)), "labels": np.array([2])}


def run(logits, labels):
    return {"loss": cross_entropy(logits, labels, eps=0.1)}


def check(inputs, outputs):
    check_close(outputs["loss"], np.log(4), "cross_entropy(zeros [1, 4], labels [2], eps=0.1)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(7)
    return {"logits": rng.normal(scale=4.0, size=(8, 5)), "labels": rng.integers(0, 5, size=8),
            "epsilons": [0.1, 0.3, 1.0]}


def run_hidden(logits, labels, epsilons):
    return {"loss": [cross_entropy(logits, labels, eps=eps) for eps in epsilons]}


def check_hidden(inputs, outputs):
    from lib.numerics import cross_entropy as ref_ce

    for eps, loss in zip(inputs["epsilons"], outputs["loss"]):
        check_close(loss, ref_ce(inputs["logits"], inputs["labels"], label_smoothing=eps),
                    f"cross_entropy of random logits [8, 5] (scale 4), eps={eps}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Binary cross-entropy from logits (2 points)
#
# `bce_with_logits(x, y)`: the mean over all elements of
# $-y \log \sigma(x) - (1-y)\log(1-\sigma(x))$, computed as
# $\max(x, 0) - x y + \log(1 + e^{-|x|})$ so that it is finite for every finite $x$.
# Derive it before you code it: why does $-\log\sigma(x) = \log(1+e^{-x})$, and why may
# you rewrite $\log(1 + e^{-x})$ with $|x|$?

# %% [solution] id=bce
def bce_with_logits(x, y):
    ### BEGIN SOLUTION
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.mean(np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))))
    ### END SOLUTION

# %% [test] id=test_bce points=2
def make():
    return {"x": np.array([0.0]), "y": np.array([1.0])}


def run(x, y):
    return {"loss": bce_with_logits(x, y)}


def check(inputs, outputs):
    check_close(outputs["loss"], np.log(2), "bce_with_logits(x=[0], y=[1])")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"pairs": [(np.array([-1000.0]), np.array([1.0])),
                      (np.array([1000.0, -1000.0]), np.array([1.0, 0.0])),
                      (np.random.default_rng(5).normal(scale=8.0, size=(4, 3)),
                       np.random.default_rng(6).uniform(size=(4, 3))),
                      (np.array([1e300, -1e300]), np.array([0.0, 0.0]))]}


def run_hidden(pairs):
    return {"loss": [bce_with_logits(x, y) for x, y in pairs]}


def check_hidden(inputs, outputs):
    from lib.numerics import binary_cross_entropy_with_logits as ref_bce

    far, saturated, normals, huge = outputs["loss"]
    check_close(far, 1000.0, "bce_with_logits(x=[-1000], y=[1])")
    check_close(saturated, 0.0, "bce_with_logits(x=[1000, -1000], y=[1, 0])")
    check_close(normals, ref_bce(*inputs["pairs"][2]),
                "bce_with_logits of random x (scale 8) and y in [0, 1], shape [4, 3]")
    # the statement's "any finite input": logits of size 1e300
    check_close(huge, 5e299, "bce_with_logits(x=[1e300, -1e300], y=[0, 0])")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
