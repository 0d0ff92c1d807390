# %% [markdown]
# # Assignment 6: tiled attention with the online softmax (the FlashAttention forward)
#
# You will implement, in plain torch, the algorithm that FlashAttention runs inside a GPU
# kernel: attention computed one tile of scores at a time, with a running maximum, a
# running sum and a running output that are rescaled whenever the maximum grows. The
# chapter [FlashAttention](../../../chapters/part3_attention/flash_attention.ipynb) derives
# every formula you need, and [Masks](../../../chapters/part3_attention/masks.ipynb) the causal
# alignment.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Do not import `lib`
#   (it holds the reference answers); torch and math are enough.
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Never build a score matrix larger than one `[..., block_size, block_size]` tile: a
#   test watches every tensor your code creates.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 9 in all.

# %% [setup]
import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

torch.manual_seed(0)


def naive_attention(q, k, v, is_causal=False):
    """The formula, with the full score matrix: softmax(q k^T / sqrt(D) + mask) v.

    Causal masks are bottom-right aligned: query i sees key j iff j <= i + Lk - Lq.
    Returns (out, lse); a query that sees no key gets out = 0 and lse = -inf.
    """
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])        # [..., Lq, Lk]
    lq, lk = s.shape[-2:]
    if is_causal:
        i, j = torch.arange(lq)[:, None], torch.arange(lk)[None, :]
        s = s.masked_fill(j > i + lk - lq, -math.inf)
    lse = torch.logsumexp(s, dim=-1)                              # [..., Lq]
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    return p @ v, lse


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor that a torch op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


# torch loads its dispatch-mode machinery and some reference ops lazily (about 1 s each on a
# first use); load them here so that no graded cell pays for it
torch.broadcast_shapes((1,), (1,))
with LargestTensor():
    torch.zeros(1) + 1


def check_close(actual, expected, what, tol=1e-9):
    """Assert that `actual` matches `expected` (infinities included); `what` names the call."""
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}")
    inf_differs = torch.isinf(actual) != torch.isinf(expected)
    assert not inf_differs.any(), (
        f"{what}: expected infinities at the same places as the reference; they differ at "
        f"{int(inf_differs.sum())} entries, first at index "
        f"{tuple(torch.nonzero(inf_differs)[0].tolist())} (expected "
        f"{expected[inf_differs][0].item()}, got {actual[inf_differs][0].item()})")
    finite = torch.isfinite(expected)
    bad = finite & ~torch.isfinite(actual)
    assert not bad.any(), (
        f"{what}: expected finite values, got NaN or inf at {int(bad.sum())} entries, first at index "
        f"{tuple(torch.nonzero(bad)[0].tolist())}")
    err = (actual[finite] - expected[finite]).abs().max().item() if finite.any() else 0.0
    assert err <= tol, f"{what}: expected values within {tol:.0e} of the reference, got a max error of {err:.3e}"

# %% [markdown]
# ## 1. A streaming log-sum-exp (2 points)
#
# Implement `online_logsumexp(x, block_size)`: the log-sum-exp of `x [..., n]` over the
# last axis, reading `x` in blocks of `block_size` columns and keeping only a running
# maximum $m$ and a running sum $\ell = \sum_{\text{seen}} e^{x_j - m}$ per row. When a block
# raises the maximum to $m'$, the old sum must be rescaled:
#
# $$\ell' = e^{m - m'}\,\ell + \sum_{j \in \text{block}} e^{x_j - m'} .$$
#
# Return $m + \log \ell$, shape `[...]`. A row of all `-inf` returns `-inf` (not NaN): while
# the maximum is still `-inf`, subtract 0 instead of it.

# %% [solution] id=online_logsumexp
def online_logsumexp(x, block_size):
    ### BEGIN SOLUTION
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block_size):
        blk = x[..., start:start + block_size]
        m_new = torch.maximum(m, blk.amax(dim=-1))
        m_safe = torch.where(m_new == -math.inf, 0.0, m_new)
        l = torch.exp(m - m_safe) * l + torch.exp(blk - m_safe[..., None]).sum(dim=-1)
        m = m_new
    return torch.where(l > 0, m + torch.log(torch.where(l > 0, l, 1.0)), -math.inf)
    ### END SOLUTION

# %% [test] id=test_online_logsumexp points=2
def make():
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randn(3, 10, dtype=torch.float64, generator=g), "big": torch.tensor([1000.0, 1000.0])}


def run(x, big):
    return {"lse": online_logsumexp(x, 4), "big": online_logsumexp(big, 1)}


def check(inputs, outputs):
    check_close(outputs["lse"], torch.logsumexp(inputs["x"], dim=-1),
                "online_logsumexp(x [3, 10], block_size=4) against torch.logsumexp")
    check_close(outputs["big"], torch.tensor(1000.0 + math.log(2)), "online_logsumexp([1000, 1000], block_size=1)")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(2)
    neg_inf = torch.full((2, 6), -math.inf, dtype=torch.float64)
    neg_inf[1, 4] = 3.0
    return {"jumps": torch.tensor([[0.0, 1.0, 500.0, 2.0, 600.0], [-700.0, -800.0, 0.0, 1.0, 2.0]]),
            "x": 30 * torch.randn(2, 3, 37, dtype=torch.float64, generator=g),
            "block_sizes": [1, 5, 16, 37, 64], "neg_inf": neg_inf}


def run_hidden(jumps, x, block_sizes, neg_inf):
    return {"jumps": online_logsumexp(jumps, 2), "lse": [online_logsumexp(x, b) for b in block_sizes],
            "neg_inf": online_logsumexp(neg_inf, 4)}


def check_hidden(inputs, outputs):
    check_close(outputs["jumps"], torch.logsumexp(inputs["jumps"], dim=-1),
                "online_logsumexp(float32 rows whose max grows by hundreds between blocks, block_size=2)", tol=1e-4)
    for b, lse in zip(inputs["block_sizes"], outputs["lse"]):
        check_close(lse, torch.logsumexp(inputs["x"], dim=-1), f"online_logsumexp(x [2, 3, 37], block_size={b})")
    check_close(outputs["neg_inf"], torch.tensor([-math.inf, 3.0], dtype=torch.float64),
                "online_logsumexp(row 0 all -inf, row 1 all -inf but x[1, 4] = 3, block_size=4)")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Tiled attention (7 points)
#
# Implement `tiled_attention(q, k, v, is_causal=False, block_size=16)` for
# `q [..., Lq, D]`, `k [..., Lk, D]`, `v [..., Lk, Dv]` with the scale $1/\sqrt{D}$. Return
# `(out, lse)`: `out [..., Lq, Dv]` equal to `naive_attention(q, k, v, is_causal)[0]` and
# `lse [..., Lq]`, the log-sum-exp of each row's scaled, masked scores.
#
# - Loop over blocks of `block_size` **queries**, and inside over blocks of `block_size`
#   **keys**. Keep per query row the running max `m`, the running sum `l` and the running
#   *unnormalized* output `acc`; when the max grows from $m$ to $m'$, multiply both `l`
#   and `acc` by $e^{m - m'}$ before adding the new block. Divide `acc` by `l` once, after
#   the last key block.
# - Lengths need not be multiples of `block_size`: the last block of each loop is shorter.
# - `is_causal` uses the bottom-right alignment: query $i$ sees key $j$ iff
#   $j \le i + L_k - L_q$. Mask a score by setting it to `-inf` **before** the exponential.
#   Key blocks that no query of the current query block can see may be skipped.
# - A query that sees no key at all (possible when $L_q > L_k$) gets `out = 0` and
#   `lse = -inf`, with no NaN anywhere.

# %% [solution] id=tiled_attention
def tiled_attention(q, k, v, is_causal=False, block_size=16):
    ### BEGIN SOLUTION
    lq, lk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    outs, lses = [], []
    for q0 in range(0, lq, block_size):
        qb = q[..., q0:q0 + block_size, :]                          # [..., bq, D]
        bq = qb.shape[-2]
        shift = q0 + lk - lq           # local row r sees keys j <= r + shift
        m = torch.full((*qb.shape[:-1],), -math.inf, dtype=q.dtype)
        l = torch.zeros(qb.shape[:-1], dtype=q.dtype)
        acc = torch.zeros((*qb.shape[:-1], v.shape[-1]), dtype=q.dtype)
        k_stop = max(0, min(lk, bq + shift)) if is_causal else lk
        for k0 in range(0, k_stop, block_size):
            s = qb @ k[..., k0:k0 + block_size, :].transpose(-2, -1) * scale   # [..., bq, bk]
            if is_causal:  # hide the keys past each row's diagonal
                rows = torch.arange(bq)[:, None]
                cols = torch.arange(k0, k0 + s.shape[-1])[None, :]
                s = s.masked_fill(cols > rows + shift, -math.inf)
            m_new = torch.maximum(m, s.amax(dim=-1))
            m_safe = torch.where(m_new == -math.inf, 0.0, m_new)
            alpha = torch.exp(m - m_safe)
            p = torch.exp(s - m_safe[..., None])
            l = alpha * l + p.sum(dim=-1)
            acc = alpha[..., None] * acc + p @ v[..., k0:k0 + block_size, :]
            m = m_new
        l_safe = torch.where(l > 0, l, 1.0)
        outs.append(acc / l_safe[..., None])
        lses.append(torch.where(l > 0, m + torch.log(l_safe), -math.inf))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)
    ### END SOLUTION

# %% [test] id=test_tiled_noncausal points=2
def make():
    g = torch.Generator().manual_seed(3)
    return {"q": torch.randn(2, 20, 8, dtype=torch.float64, generator=g),
            "k": torch.randn(2, 36, 8, dtype=torch.float64, generator=g),
            "v": torch.randn(2, 36, 4, dtype=torch.float64, generator=g)}


def run(q, k, v):
    out, lse = tiled_attention(q, k, v, block_size=16)
    return {"out": out, "lse": lse}


def check(inputs, outputs):
    ref_out, ref_lse = naive_attention(inputs["q"], inputs["k"], inputs["v"])
    check_close(outputs["out"], ref_out, "tiled_attention(q [2, 20, 8], k [2, 36, 8], v [2, 36, 4], block_size=16), out")
    check_close(outputs["lse"], ref_lse, "tiled_attention(q [2, 20, 8], k [2, 36, 8], v [2, 36, 4], block_size=16), lse")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(4)
    cases = []
    for lq, lk, b in [(37, 37, 16), (5, 50, 7), (50, 5, 8), (1, 1, 16), (33, 64, 16)]:
        cases.append({"q": 2 * torch.randn(2, 3, lq, 8, dtype=torch.float64, generator=g),
                      "k": torch.randn(2, 3, lk, 8, dtype=torch.float64, generator=g),
                      "v": torch.randn(2, 3, lk, 5, dtype=torch.float64, generator=g), "block_size": b})
    return {"cases": cases}


def run_hidden(cases):
    results = []
    for case in cases:
        out, lse = tiled_attention(case["q"], case["k"], case["v"], block_size=case["block_size"])
        results.append({"out": out, "lse": lse})
    return {"results": results}


def check_hidden(inputs, outputs):
    from lib.attention import blocked_attention as oracle

    for case, got in zip(inputs["cases"], outputs["results"]):
        q, k, v, b = case["q"], case["k"], case["v"], case["block_size"]
        lq, lk = q.shape[-2], k.shape[-2]
        want_out, want_lse = oracle(q, k, v, block_size=b)
        what = f"tiled_attention(q [2, 3, {lq}, 8], k [2, 3, {lk}, 8], v [2, 3, {lk}, 5], block_size={b})"
        check_close(got["out"], want_out, what + ", out", tol=1e-10)
        check_close(got["lse"], want_lse, what + ", lse", tol=1e-10)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_tiled_large_scores points=1
# float32 scores that grow by hundreds from one key block to the next: exp must never
# see a positive argument.
def make():
    q = torch.zeros(1, 4, 4)
    q[..., 0] = 2.0
    k = torch.zeros(1, 32, 4)
    k[:, 16:, 0] = torch.linspace(1.0, 200.0, 16)   # scores up to 2 * 200 / sqrt(4) = 200
    return {"q": q, "k": k, "v": torch.randn(1, 32, 3, generator=torch.Generator().manual_seed(5))}


def run(q, k, v):
    out, lse = tiled_attention(q, k, v, block_size=16)
    return {"out": out}


def check(inputs, outputs):
    check_close(outputs["out"], naive_attention(inputs["q"], inputs["k"], inputs["v"])[0],
                "tiled_attention(float32 q [1, 4, 4], k [1, 32, 4] with scores up to 200 in the second key "
                "block, block_size=16), out", tol=1e-4)


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    q = torch.zeros(1, 4, 4)
    q[..., 0] = 2.0
    k = torch.zeros(1, 48, 4)
    k[:, 16:32, 0] = 150.0
    k[:, 32:, 0] = torch.linspace(160.0, 300.0, 16)
    return {"q": q, "k": k, "v": torch.randn(1, 48, 3, generator=torch.Generator().manual_seed(6))}


def run_hidden(q, k, v):
    out, lse = tiled_attention(q, k, v, block_size=16)
    return {"out": out, "lse": lse}


def check_hidden(inputs, outputs):
    want_out, want_lse = naive_attention(inputs["q"], inputs["k"], inputs["v"])
    what = ("tiled_attention(float32 q [1, 4, 4], k [1, 48, 4] with scores 0, then 150, then 160..300 "
            "per key block, block_size=16)")
    check_close(outputs["out"], want_out, what + ", out", tol=1e-4)
    check_close(outputs["lse"], want_lse, what + ", lse", tol=1e-3)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_tiled_causal points=2
def make():
    g = torch.Generator().manual_seed(7)
    return {"q": torch.randn(1, 2, 20, 8, dtype=torch.float64, generator=g),
            "k": torch.randn(1, 2, 20, 8, dtype=torch.float64, generator=g),
            "v": torch.randn(1, 2, 20, 8, dtype=torch.float64, generator=g)}


def run(q, k, v):
    out, lse = tiled_attention(q, k, v, is_causal=True, block_size=16)
    return {"out": out}


def check(inputs, outputs):
    check_close(outputs["out"], naive_attention(inputs["q"], inputs["k"], inputs["v"], is_causal=True)[0],
                "tiled_attention(q, k, v [1, 2, 20, 8], is_causal=True, block_size=16), out")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(8)
    cases = []
    for lq, lk, b in [(10, 30, 4), (21, 21, 8), (17, 40, 16), (1, 9, 4), (35, 35, 16)]:
        cases.append({"q": torch.randn(2, lq, 8, dtype=torch.float64, generator=g),
                      "k": torch.randn(2, lk, 8, dtype=torch.float64, generator=g),
                      "v": torch.randn(2, lk, 6, dtype=torch.float64, generator=g), "block_size": b})
    # hidden keys with scores far above the visible ones (key j scores 400 * j): masking after the
    # exponential lets them set the running max, and every visible exp(s - m) underflows to 0
    q = torch.zeros(1, 8, 4, dtype=torch.float64)
    q[..., 0] = 2.0
    k = torch.zeros(1, 8, 4, dtype=torch.float64)
    k[..., 0] = 400.0 * torch.arange(8, dtype=torch.float64)
    steep = {"q": q, "k": k, "v": torch.randn(1, 8, 3, dtype=torch.float64, generator=g), "block_size": 4}
    return {"cases": cases, "steep": steep}


def run_hidden(cases, steep):
    results = []
    for case in cases + [steep]:
        out, lse = tiled_attention(case["q"], case["k"], case["v"], is_causal=True, block_size=case["block_size"])
        results.append({"out": out, "lse": lse})
    return {"results": results[:-1], "steep": results[-1]}


def check_hidden(inputs, outputs):
    from lib.attention import blocked_attention as oracle

    for case, got in zip(inputs["cases"], outputs["results"]):
        q, k, v, b = case["q"], case["k"], case["v"], case["block_size"]
        lq, lk = q.shape[-2], k.shape[-2]
        want_out, want_lse = oracle(q, k, v, is_causal=True, block_size=b)
        what = f"tiled_attention(q [2, {lq}, 8], k [2, {lk}, 8], v [2, {lk}, 6], is_causal=True, block_size={b})"
        check_close(got["out"], want_out, what + ", out", tol=1e-10)
        check_close(got["lse"], want_lse, what + ", lse", tol=1e-10)
    steep, got = inputs["steep"], outputs["steep"]
    want_out, want_lse = naive_attention(steep["q"], steep["k"], steep["v"], is_causal=True)
    what = "tiled_attention(q, k [1, 8, 4] with score 400 * j for key j, v [1, 8, 3], is_causal=True, block_size=4)"
    check_close(got["out"], want_out, what + ", out", tol=1e-10)
    check_close(got["lse"], want_lse, what + ", lse", tol=1e-10)


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_tiled_fully_masked_rows points=1
def make():
    g = torch.Generator().manual_seed(9)
    return {"q": torch.randn(1, 12, 8, dtype=torch.float64, generator=g),
            "k": torch.randn(1, 5, 8, dtype=torch.float64, generator=g),
            "v": torch.randn(1, 5, 8, dtype=torch.float64, generator=g)}


def run(q, k, v):
    out, lse = tiled_attention(q, k, v, is_causal=True, block_size=4)
    return {"out": out}


def check(inputs, outputs):
    out = outputs["out"]
    what = "tiled_attention(q [1, 12, 8], k, v [1, 5, 8], is_causal=True, block_size=4)"
    assert torch.isfinite(out).all(), (
        f"{what}: expected a finite output, got NaN or inf in rows "
        f"{sorted(set(torch.nonzero(~torch.isfinite(out))[:, 1].tolist()))}")
    assert torch.all(out[:, :7] == 0), (
        f"{what}: queries 0..6 see no key, so expected their output to be 0, got a max abs value of "
        f"{out[:, :7].abs().max().item():.3g}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(9)
    short = {"q": torch.randn(1, 12, 8, dtype=torch.float64, generator=g),
             "k": torch.randn(1, 5, 8, dtype=torch.float64, generator=g),
             "v": torch.randn(1, 5, 8, dtype=torch.float64, generator=g)}
    g = torch.Generator().manual_seed(10)
    longer = {"q": torch.randn(2, 40, 8, dtype=torch.float64, generator=g),
              "k": torch.randn(2, 3, 8, dtype=torch.float64, generator=g),
              "v": torch.randn(2, 3, 8, dtype=torch.float64, generator=g)}
    return {"short": short, "longer": longer}


def run_hidden(short, longer):
    out, lse = tiled_attention(short["q"], short["k"], short["v"], is_causal=True, block_size=4)
    got_out, got_lse = tiled_attention(longer["q"], longer["k"], longer["v"], is_causal=True, block_size=16)
    return {"out": out, "lse": lse, "got_out": got_out, "got_lse": got_lse}


def check_hidden(inputs, outputs):
    short, out, lse = inputs["short"], outputs["out"], outputs["lse"]
    what = "tiled_attention(q [1, 12, 8], k, v [1, 5, 8], is_causal=True, block_size=4)"
    assert torch.all(lse[:, :7] == -math.inf) and torch.isfinite(lse[:, 7:]).all(), (
        f"{what}: expected lse = -inf for queries 0..6 (they see no key) and finite after, got "
        f"{[round(x, 3) for x in lse[0].tolist()]}")
    check_close(out, naive_attention(short["q"], short["k"], short["v"], True)[0], what + ", out")
    got_out, got_lse = outputs["got_out"], outputs["got_lse"]
    what = "tiled_attention(q [2, 40, 8], k, v [2, 3, 8], is_causal=True, block_size=16)"
    assert torch.isfinite(got_out).all() and torch.all(got_out[:, :37] == 0), (
        f"{what}: queries 0..36 see no key, so expected a finite output that is 0 in their rows, got "
        f"{int((~torch.isfinite(got_out)).sum())} non-finite entries and a max abs value of "
        f"{got_out[:, :37].nan_to_num(math.inf).abs().max().item():.3g} in rows 0..36")
    assert torch.all(got_lse[:, :37] == -math.inf), (
        f"{what}: expected lse = -inf for queries 0..36, got {int((got_lse[:, :37] != -math.inf).sum())} "
        f"other values, e.g. {got_lse[:, :37][got_lse[:, :37] != -math.inf][:3].tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_tiled_memory points=1
def make():
    g = torch.Generator().manual_seed(11)
    return {"q": torch.randn(1, 64, 4, generator=g), "k": torch.randn(1, 64, 4, generator=g),
            "v": torch.randn(1, 64, 4, generator=g)}


def run(q, k, v):
    with LargestTensor() as spy:
        tiled_attention(q, k, v, block_size=8)
    return {"largest": spy.largest}


def check(inputs, outputs):
    # the output has 64 * 4 = 256 elements; a tile 8 * 8 = 64; the full matrix 4096
    assert outputs["largest"] <= 256, (
        f"tiled_attention(q, k, v [1, 64, 4], block_size=8): expected no tensor larger than the "
        f"256-element output (a tile has 64), got a tensor of {outputs['largest']} elements")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(12)
    return {"q": torch.randn(2, 96, 2, generator=g), "k": torch.randn(2, 96, 2, generator=g),
            "v": torch.randn(2, 96, 2, generator=g), "causal_flags": [False, True]}


def run_hidden(q, k, v, causal_flags):
    largest = []
    for causal in causal_flags:
        with LargestTensor() as spy:
            tiled_attention(q, k, v, is_causal=causal, block_size=16)
        largest.append(spy.largest)
    return {"largest": largest}


def check_hidden(inputs, outputs):
    for causal, largest in zip(inputs["causal_flags"], outputs["largest"]):
        assert largest <= 2 * 96 * 2 + 2 * 16 * 16, (
            f"tiled_attention(q, k, v [2, 96, 2], is_causal={causal}, block_size=16): expected no "
            f"tensor larger than {2 * 96 * 2 + 2 * 16 * 16} elements (the output plus two tiles; the "
            f"full score matrix has {2 * 96 * 96}), got a tensor of {largest} elements")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
