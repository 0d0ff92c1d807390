# %% [markdown]
# # Assignment 2: a two-layer network, forward and backward, with a gradient check
#
# You will implement, in NumPy, the forward pass, the loss and the backward pass of the
# network `affine -> ReLU -> affine -> softmax cross-entropy`, batched over `N` examples,
# and the central-difference gradient checker that tells you whether your backward pass
# is right. The chapters [The chain rule and a tiny autograd engine](../../../chapters/part2_backprop/chain_rule_autograd.ipynb)
# and [The linear layer and a two-layer network by hand](../../../chapters/part2_backprop/linear_layer_mlp.ipynb)
# derive every formula you need.
#
# Shapes: `X [N, D]`, `W1 [D, H]`, `b1 [H]`, `W2 [H, C]`, `b2 [C]`, integer labels `y [N]`.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers) or any library other than NumPy.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Each function is graded on its own: the tests of one part feed it exact inputs, so a
#   mistake in one part does not cost you the others.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), with other shapes, so passing the visible ones is necessary,
#   not sufficient. Use your gradient checker on your own backward pass before you submit.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 10 in all.

# %% [setup]
import numpy as np


def check_close(actual, expected, what, tol=1e-8):
    """Assert that two arrays have the same shape and agree to ``tol`` (relative and absolute).

    ``what`` names the quantity and its input; every failure message starts with it.
    """
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: expected shape {expected.shape}, got shape {actual.shape}"
    assert np.allclose(actual, expected, rtol=tol, atol=tol), (
        f"{what}: expected\n{expected}\ngot\n{actual}\n(tolerance {tol:g})")


def relative_error(a, b):
    """max |a - b| / max(1e-12, |a| + |b|), elementwise: below 1e-6 means 'equal' for float64 gradients."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"relative_error: expected two arrays of one shape, got {a.shape} and {b.shape}"
    return float(np.max(np.abs(a - b) / np.maximum(1e-12, np.abs(a) + np.abs(b))))


def make_params(d, h, c, seed):
    """Random float64 parameters of the right shapes (biases nonzero so that they are tested)."""
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0, np.sqrt(2 / d), (d, h)), "b1": rng.normal(0, 0.1, h),
            "W2": rng.normal(0, np.sqrt(2 / h), (h, c)), "b2": rng.normal(0, 0.1, c)}


def backward_case(n, d, h, c, seed):
    """Parameters, the cache (X, A, H), dlogits of the mean cross-entropy, X and labels y."""
    p = make_params(d, h, c, seed)
    rng = np.random.default_rng(seed + 100)
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    A = X @ p["W1"] + p["b1"]
    H = np.maximum(A, 0)
    Z = H @ p["W2"] + p["b2"]
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    P[np.arange(n), y] -= 1
    return p, (X, A, H), P / n, X, y

# %% [markdown]
# ## 1. A central-difference gradient checker (2 points)
#
# Implement `numerical_gradient(f, x, eps=1e-6)`. `f` takes no argument and returns a
# float; it reads the array `x` (through a closure), so perturbing `x` **in place**
# changes `f()`. For every entry $i$ of `x` (any shape; `np.ndindex(x.shape)` visits them
# all) compute
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \epsilon e_i) - f(x - \epsilon e_i)}{2\epsilon},$$
#
# and **restore `x[i]` exactly** before moving on. Return an array shaped like `x`.
# Use the central difference, not the one-sided one: its error is $O(\epsilon^2)$, not
# $O(\epsilon)$.

# %% [solution] id=numerical_gradient
def numerical_gradient(f, x, eps=1e-6):
    ### BEGIN SOLUTION
    grad = np.zeros_like(x, dtype=float)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = f()
        x[index] = saved - eps
        f_minus = f()
        x[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad
    ### END SOLUTION

# %% [test] id=test_numerical_gradient points=2
def make():
    return {"x": np.array([0.5, -1.0, 2.0])}


def run(x):
    return {"grad": numerical_gradient(lambda: float(np.sum(x ** 2)), x)}


def check(inputs, outputs):
    # the expected gradient comes from make()'s x, which the call cannot have changed
    check_close(outputs["grad"], 2 * inputs["x"], "numerical_gradient of sum(x**2) at x = [0.5, -1, 2]", tol=1e-6)


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    # two separate copies of the cubic's point: the first call must not leak into the second
    return {"x": np.random.default_rng(11).normal(size=(3, 4)),
            "cubics": [np.array([0.3, 1.7]), np.array([0.3, 1.7])], "epsilons": [1e-4, 1e-2]}


def run_hidden(x, cubics, epsilons):
    grad = numerical_gradient(lambda: float(np.sum(np.sin(x) * x ** 2)), x)
    cubic_grads = []
    for c, eps in zip(cubics, epsilons):
        cubic_grads.append(numerical_gradient(lambda: float(np.sum(c ** 3)), c, eps=eps))
    return {"grad": grad, "x_after": x, "cubic_grads": cubic_grads}


def check_hidden(inputs, outputs):
    x, x_after, num = inputs["x"], outputs["x_after"], outputs["grad"]
    assert np.array_equal(x_after, x), (
        f"numerical_gradient of sum(sin(x) x**2) on a [3, 4] x must restore x exactly: expected x unchanged, "
        f"got entries changed by up to {np.max(np.abs(x_after - x)):.3g}")
    exact = np.cos(x) * x ** 2 + 2 * x * np.sin(x)
    assert num.shape == (3, 4), f"numerical_gradient of a [3, 4] x: expected shape (3, 4), got {num.shape}"
    err = relative_error(num, exact)
    assert err < 1e-8, (
        f"numerical_gradient of sum(sin(x) x**2) on a [3, 4] x: expected relative error < 1e-8 against the exact "
        f"gradient (central differences), got {err:.3g}")
    (c, c2), (num_4, num_2) = inputs["cubics"], outputs["cubic_grads"]
    # a cubic: one-sided differences are off by ~eps
    check_close(num_4, 3 * c ** 2 + 1e-8, "numerical_gradient of sum(x**3) at x = [0.3, 1.7], eps=1e-4", tol=1e-7)
    # the eps argument itself: the central difference of x**3 is exactly 3 x**2 + eps**2
    check_close(num_2, 3 * c2 ** 2 + 1e-4,
                "numerical_gradient of sum(x**3) at x = [0.3, 1.7], eps=1e-2 (3 x**2 + eps**2)", tol=1e-9)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The forward pass (2 points)
#
# Implement `mlp_forward(params, X)`: return `(logits, cache)` with
#
# $$A = X W_1 + b_1,\qquad H = \max(A, 0),\qquad \text{logits} = H W_2 + b_2,$$
#
# and `cache = (X, A, H)` exactly in this order (part 4 receives this tuple).

# %% [solution] id=mlp_forward
def mlp_forward(params, X):
    ### BEGIN SOLUTION
    A = X @ params["W1"] + params["b1"]
    H = np.maximum(A, 0.0)
    logits = H @ params["W2"] + params["b2"]
    return logits, (X, A, H)
    ### END SOLUTION

# %% [test] id=test_mlp_forward points=2
def make():
    return {"params": {"W1": np.array([[1.0, -1.0]]), "b1": np.array([0.0, 0.5]),
                       "W2": np.array([[2.0], [3.0]]), "b2": np.array([1.0])},
            "X": np.array([[1.0], [-2.0]])}


def run(params, X):
    logits, cache = mlp_forward(params, X)
    return {"logits": logits, "cache_length": len(cache)}


def check(inputs, outputs):
    check_close(outputs["logits"], [[3.0], [8.5]], "mlp_forward logits, X = [[1], [-2]] and the 1-2-1 network above")
    # row 0: H = [1, 0]; row 1: H = [0, 2.5]
    assert outputs["cache_length"] == 3, (
        f"mlp_forward cache on X = [[1], [-2]]: expected the 3-tuple (X, A, H), got length {outputs['cache_length']}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(4)  # the draws of lib.backprop.init_mlp(5, 7, 3, seed=4)
    params = {"W1": rng.normal(0.0, np.sqrt(2.0 / 5), size=(5, 7)), "b1": rng.normal(0.0, 0.01, size=7),
              "W2": rng.normal(0.0, np.sqrt(2.0 / 7), size=(7, 3)), "b2": rng.normal(0.0, 0.01, size=3)}
    return {"params": params, "X": np.random.default_rng(5).normal(size=(6, 5))}


def run_hidden(params, X):
    logits, (cache_X, cache_A, cache_H) = mlp_forward(params, X)
    return {"logits": logits, "X": cache_X, "A": cache_A, "H": cache_H}


def check_hidden(inputs, outputs):
    p, X = inputs["params"], inputs["X"]
    pre = X @ p["W1"] + p["b1"]
    check_close(outputs["logits"], np.maximum(pre, 0) @ p["W2"] + p["b2"], "mlp_forward logits, X [6, 5], D=5 H=7 C=3")
    check_close(outputs["X"], X, "mlp_forward cache[0] (X), X [6, 5]")
    check_close(outputs["A"], pre, "mlp_forward cache[1] (A = X W1 + b1), X [6, 5]")
    check_close(outputs["H"], np.maximum(pre, 0), "mlp_forward cache[2] (H = max(A, 0)), X [6, 5]")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Softmax cross-entropy and its gradient (2 points)
#
# Implement `softmax_cross_entropy(logits, y)`: return `(loss, dlogits)` where
#
# $$L = -\frac1N\sum_{n}\log \operatorname{softmax}(\text{logits}_n)_{y_n},\qquad
# \frac{\partial L}{\partial\,\text{logits}} = \frac{P - \operatorname{onehot}(y)}{N}.$$
#
# Compute the log-softmax stably (subtract each row's maximum). `loss` is a float and
# `dlogits` has the shape of `logits`. Mind the $1/N$ of the mean.

# %% [solution] id=softmax_ce
def softmax_cross_entropy(logits, y):
    ### BEGIN SOLUTION
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(n), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), y] -= 1.0
    return loss, dlogits / n
    ### END SOLUTION

# %% [test] id=test_softmax_ce points=2
def make():
    return {"logits": np.zeros((1, 4)), "y": np.array([2])}


def run(logits, y):
    loss, dlogits = softmax_cross_entropy(logits, y)
    return {"loss": loss, "dlogits": dlogits}


def check(inputs, outputs):
    check_close(outputs["loss"], np.log(4), "softmax_cross_entropy loss, logits zeros [1, 4], y = [2]")
    check_close(outputs["dlogits"], [[0.25, 0.25, -0.75, 0.25]],
                "softmax_cross_entropy dlogits, logits zeros [1, 4], y = [2]")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    rng = np.random.default_rng(6)
    return {"cases": [(rng.normal(scale=3.0, size=(8, 5)), rng.integers(0, 5, size=8)),
                      (np.array([[1000.0, 0.0]]), np.array([1]))]}


def run_hidden(cases):
    results = []
    for logits, y in cases:
        loss, dlogits = softmax_cross_entropy(logits, y)
        results.append({"loss": loss, "dlogits": dlogits})
    return {"results": results}


def check_hidden(inputs, outputs):
    import torch

    z, y = inputs["cases"][0]
    tz = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tz, torch.tensor(y))
    ref.backward()
    random, far = outputs["results"]
    check_close(random["loss"], ref.item(), "softmax_cross_entropy loss vs torch, random logits [8, 5]")
    check_close(random["dlogits"], tz.grad.numpy(), "softmax_cross_entropy dlogits vs torch autograd, random logits [8, 5]")
    check_close(far["loss"], 1000.0, "softmax_cross_entropy loss, logits [[1000, 0]], y = [1]")
    check_close(far["dlogits"], [[1.0, -1.0]], "softmax_cross_entropy dlogits, logits [[1000, 0]], y = [1]")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The backward pass (4 points)
#
# Implement `mlp_backward(params, cache, dlogits)` where `cache = (X, A, H)` comes from
# part 2 and `dlogits` $= \partial L / \partial\,\text{logits}$ from part 3. Return a dict
# with the keys `"W1"`, `"b1"`, `"W2"`, `"b2"`, each gradient shaped like its parameter:
#
# $$dW_2 = H^\top d\text{logits},\quad db_2 = \textstyle\sum_n d\text{logits}_n,\quad
# dH = d\text{logits}\, W_2^\top,\quad dA = dH \odot [A > 0],\quad dW_1 = X^\top dA,\quad
# db_1 = \textstyle\sum_n dA_n .$$
#
# Before you run the tests, check your answer yourself: build a loss from parts 2 and 3,
# and compare `mlp_backward` with `numerical_gradient` on every parameter with
# `relative_error` (below $10^{-6}$ is correct). Test with all of `N, D, H, C`
# different; then try `H == C` too: a transposed matrix runs without error when it is square.

# %% [solution] id=mlp_backward
def mlp_backward(params, cache, dlogits):
    ### BEGIN SOLUTION
    X, A, H = cache
    dW2 = H.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dH = dlogits @ params["W2"].T
    dA = dH * (A > 0)
    dW1 = X.T @ dA
    db1 = dA.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
    ### END SOLUTION

# %% [markdown]
# The tests build the cache and `dlogits` themselves (from the formulas above), so they
# grade `mlp_backward` alone. The first test checks the output layer's gradients
# ($W_2$, $b_2$), the second the hidden layer's ($W_1$, $b_1$).

# %% [test] id=test_backward_output points=2
def make():
    params = make_params(3, 4, 2, seed=0)
    X = np.random.default_rng(1).normal(size=(5, 3))
    A = X @ params["W1"] + params["b1"]
    return {"params": params, "cache": (X, A, np.maximum(A, 0)),
            "dlogits": np.random.default_rng(2).normal(size=(5, 2))}


def run(params, cache, dlogits):
    grads = mlp_backward(params, cache, dlogits)
    return {"W2": grads["W2"], "b2": grads["b2"]}


def check(inputs, outputs):
    H = inputs["cache"][2]
    check_close(outputs["W2"], H.T @ inputs["dlogits"], "mlp_backward dW2, N=5 D=3 H=4 C=2")
    assert np.shape(outputs["b2"]) == (2,), (
        f"mlp_backward db2, N=5 D=3 H=4 C=2: expected the shape of b2, (2,), got {np.shape(outputs['b2'])}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for case in [(7, 5, 6, 4, 0), (6, 5, 5, 5, 1), (9, 4, 3, 3, 2)]:   # square ones too
        params, cache, dlogits, X, y = backward_case(*case)
        cases.append({"params": params, "cache": cache, "dlogits": dlogits, "X": X, "y": y})
    return {"cases": cases}


def run_hidden(cases):
    grads = []
    for case in cases:
        g = mlp_backward(case["params"], case["cache"], case["dlogits"])
        grads.append({"W2": g["W2"], "b2": g["b2"]})
    return {"grads": grads}


def check_hidden(inputs, outputs):
    from lib.backprop import mlp_loss_and_grads as ref_grads

    for case, g in zip(inputs["cases"], outputs["grads"]):
        p, X = case["params"], case["X"]
        sizes = (X.shape[0], X.shape[1], p["W1"].shape[1], p["W2"].shape[1])   # (N, D, H, C)
        ref = ref_grads(p, X, case["y"])[1]
        for k in ("W2", "b2"):
            assert np.shape(g[k]) == ref[k].shape, (
                f"mlp_backward d{k} for (N, D, H, C) = {sizes}: expected shape {ref[k].shape}, got {np.shape(g[k])}")
            err = relative_error(g[k], ref[k])
            assert err < 1e-10, (f"mlp_backward d{k} for (N, D, H, C) = {sizes}: expected relative error "
                                 f"< 1e-10 against lib, got {err:.3g}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_backward_hidden points=2
def make():
    params = make_params(3, 4, 2, seed=0)
    X = np.random.default_rng(1).normal(size=(5, 3))
    A = X @ params["W1"] + params["b1"]
    return {"params": params, "cache": (X, A, np.maximum(A, 0)),
            "dlogits": np.random.default_rng(2).normal(size=(5, 2))}


def run(params, cache, dlogits):
    grads = mlp_backward(params, cache, dlogits)
    return {"W1": grads["W1"], "b1": grads["b1"]}


def check(inputs, outputs):
    assert np.shape(outputs["W1"]) == (3, 4) and np.shape(outputs["b1"]) == (4,), (
        f"mlp_backward dW1, db1 for N=5 D=3 H=4 C=2: expected shapes (3, 4) and (4,), "
        f"got {np.shape(outputs['W1'])} and {np.shape(outputs['b1'])}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    cases = []
    for case in [(7, 5, 6, 4, 0), (6, 5, 5, 5, 1), (9, 4, 3, 3, 2)]:   # square ones too
        params, cache, dlogits, X, y = backward_case(*case)
        cases.append({"params": params, "cache": cache, "dlogits": dlogits, "X": X, "y": y})
    # pre-activations exactly 0: the statement's mask is [A > 0], so no gradient flows there
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    A = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    zeros = {"params": make_params(2, 3, 2, seed=3), "cache": (X, A, np.maximum(A, 0)),
             "dlogits": np.array([[1.0, -2.0], [0.5, 1.5]])}
    return {"cases": cases, "zeros": zeros}


def run_hidden(cases, zeros):
    grads = []
    for case in [*cases, zeros]:
        g = mlp_backward(case["params"], case["cache"], case["dlogits"])
        grads.append({"W1": g["W1"], "b1": g["b1"]})
    return {"grads": grads[:-1], "zeros": grads[-1]}


def check_hidden(inputs, outputs):
    from lib.backprop import mlp_loss_and_grads as ref_grads

    for case, g in zip(inputs["cases"], outputs["grads"]):
        p, X = case["params"], case["X"]
        sizes = (X.shape[0], X.shape[1], p["W1"].shape[1], p["W2"].shape[1])   # (N, D, H, C)
        ref = ref_grads(p, X, case["y"])[1]
        for k in ("W1", "b1"):
            assert np.shape(g[k]) == ref[k].shape, (
                f"mlp_backward d{k} for (N, D, H, C) = {sizes}: expected shape {ref[k].shape}, got {np.shape(g[k])}")
            err = relative_error(g[k], ref[k])
            assert err < 1e-10, (f"mlp_backward d{k} for (N, D, H, C) = {sizes}: expected relative error "
                                 f"< 1e-10 against lib, got {err:.3g}")
    # pre-activations exactly 0: the statement's mask is [A > 0], so no gradient flows there
    zeros = inputs["zeros"]
    X, A, _ = zeros["cache"]
    dA = (zeros["dlogits"] @ zeros["params"]["W2"].T) * (A > 0)
    check_close(outputs["zeros"]["W1"], X.T @ dA, "mlp_backward dW1 with A = [[0, 1, -1], [2, 0, 0]] (mask [A > 0])",
                tol=1e-12)
    check_close(outputs["zeros"]["b1"], dA.sum(0), "mlp_backward db1 with A = [[0, 1, -1], [2, 0, 0]] (mask [A > 0])",
                tol=1e-12)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
