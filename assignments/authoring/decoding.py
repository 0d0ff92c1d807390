# %% [markdown]
# # Assignment: decoding with top-k, top-p, temperature and beam search
#
# You will implement the decoding rules that turn a language model's logits into text:
# the top-k and nucleus (top-p) filters, sampling at a temperature, and beam search with
# length normalization, in PyTorch. The chapter
# [Decoding](../../../chapters/part4_probability/decoding.ipynb) derives everything you need.
#
# Rules:
# - Write your code between the marked lines of each answer cell. Use PyTorch only; do not
#   import `lib` (it holds the reference answers).
# - The grader reads every answer before it runs it. An answer that reaches for the grading
#   machinery (importing `os`, `sys`, `pathlib` and the like; calling `open`, `eval`, `exec`
#   or `getattr`; patching `numpy`, `torch` or a test helper) scores zero on every test of
#   the notebook, and the feedback names the line.
# - Logits have shape `[..., V]`: the vocabulary is the **last** axis and any leading
#   shape is a batch. A removed token gets the logit `-inf`.
# - Ties between equal logits are broken by index: the lower token id counts as larger.
#   `torch.sort(x, descending=True, stable=True)` gives exactly that order.
# - Run the test cell under each answer: the visible tests are a first check. The grader
#   runs more tests (hidden), so passing the visible ones is necessary, not sufficient.
# - Each test cell defines `make()` (the inputs), `run(...)` (the calls to your functions)
#   and `check(inputs, outputs)` (the expected values and asserts), and ends with
#   `check(make(), run(**make()))`. When a test fails, call `run(**make())` yourself to see
#   what your code returned. Do not give your own functions those three names.
# - Points: 10 in all.

# %% [setup]
import math

import torch

NEG_INF = float("-inf")


def kept(filtered):
    """The set of token ids whose logit is not -inf (1-D input)."""
    return set(torch.nonzero(filtered > NEG_INF).flatten().tolist())


def table_model(table, vocab=4, eos=1):
    """A step_fn that looks next-token probabilities up by prefix (unknown prefix: eos)."""
    def step_fn(seqs):
        rows = []
        for seq in seqs.tolist():
            probs = torch.zeros(vocab, dtype=torch.float64)
            for token, p in table.get(tuple(seq), {eos: 1.0}).items():
                probs[token] = p
            rows.append(torch.log(probs))
        return torch.stack(rows)
    return step_fn

# %% [markdown]
# ## 1. Top-k (2 points)
#
# `top_k_filter(logits, k)` keeps the `k` largest logits of the last axis (exactly
# `min(k, V)` of them, ties broken by index) and sets all others to `-inf`. With `k = 1`
# only the token that `argmax` returns survives. Return a new tensor with the same shape
# and dtype.

# %% [solution] id=top_k
def top_k_filter(logits, k):
    ### BEGIN SOLUTION
    k = min(k, logits.shape[-1])
    _, order = torch.sort(logits, dim=-1, descending=True, stable=True)     # [..., V]
    rank = torch.arange(logits.shape[-1])
    keep_sorted = (rank < k).expand_as(order)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)
    ### END SOLUTION

# %% [test] id=test_top_k points=2
def make():
    return {"z": torch.tensor([0.5, 2.0, -1.0, 1.0])}


def run(z):
    return {"k2": top_k_filter(z, 2), "k1": top_k_filter(z, 1)}


def check(inputs, outputs):
    z = inputs["z"]
    got = kept(outputs["k2"])
    assert got == {1, 3}, f"top_k_filter({z.tolist()}, k=2): expected kept ids {{1, 3}}, got {got}"
    got = kept(outputs["k1"])
    assert got == {1}, f"top_k_filter({z.tolist()}, k=1): expected kept ids {{1}}, got {got}"
    got = outputs["k2"][[1, 3]]
    assert torch.equal(got, z[[1, 3]]), (
        f"top_k_filter({z.tolist()}, k=2): kept logits must be unchanged, expected {z[[1, 3]].tolist()}, "
        f"got {got.tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(0)
    return {"z": torch.randn(3, 5, 11, generator=g), "ks": [1, 3, 11, 20],
            "ties": torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])}


def run_hidden(z, ks, ties):
    return {"filtered": [top_k_filter(z, k) for k in ks],
            "ties_k2": top_k_filter(ties, 2), "ties_k1": top_k_filter(ties, 1)}


def check_hidden(inputs, outputs):
    from lib.sampling import top_k_filter as ref_top_k

    for k, got in zip(inputs["ks"], outputs["filtered"]):
        want = ref_top_k(inputs["z"], k)
        assert torch.equal(got, want), (
            f"top_k_filter(random logits [3, 5, 11], k={k}): expected {int((want > NEG_INF).sum())} kept "
            f"logits equal to the reference, got {int((got > NEG_INF).sum())} kept, "
            f"{int((got != want).sum())} entries differ")
    ties = inputs["ties"]
    got = kept(outputs["ties_k2"])
    assert got == {1, 2}, (f"top_k_filter({ties.tolist()}, k=2), a tie at the k-th logit broken by index: "
                           f"expected kept ids {{1, 2}}, got {got}")
    got = kept(outputs["ties_k1"])
    assert got == {1}, f"top_k_filter({ties.tolist()}, k=1): expected kept ids {{1}} (argmax), got {got}"


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Top-p, the nucleus (3 points)
#
# `top_p_filter(logits, p)` keeps the **smallest** set of most likely tokens whose total
# probability is **at least** `p`, and removes the rest. Sort the probabilities in
# decreasing order; token $(j)$ in that order is kept iff the probability mass of the
# tokens *before* it is still below `p`:
# $\sum_{i<j} \pi_{(i)} < p$. So the token that makes the running sum cross `p` is kept,
# the most likely token is always kept, and `p = 1` keeps every token (return the logits
# unchanged in that case, because rounding can make a float running sum reach 1 early).
# Remember to map the mask from sorted order back to vocabulary order.
#
# Example: probabilities `[0.10, 0.50, 0.15, 0.25]` and `p = 0.6` keep tokens `{1, 3}`.

# %% [solution] id=top_p
def top_p_filter(logits, p):
    ### BEGIN SOLUTION
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    keep_sorted = mass_before < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)
    ### END SOLUTION

# %% [test] id=test_top_p points=3
def make():
    return {"z": torch.log(torch.tensor([0.10, 0.50, 0.15, 0.25])), "ps": [0.6, 1.0]}


def run(z, ps):
    return {"filtered": [top_p_filter(z, p) for p in ps]}


def check(inputs, outputs):
    expected = {0.6: {1, 3}, 1.0: {0, 1, 2, 3}}
    for p, filtered in zip(inputs["ps"], outputs["filtered"]):
        got, want = kept(filtered), expected[p]
        assert got == want, (f"top_p_filter(log [0.10, 0.50, 0.15, 0.25], p={p}): expected kept ids "
                             f"{want}, got {got}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(1)
    z = 2 * torch.randn(4, 6, 13, generator=g)
    return {"table": torch.log(torch.tensor([0.10, 0.50, 0.15, 0.25])), "table_ps": [0.3, 0.8, 0.01],
            "z": z, "ps": [0.05, 0.3, 0.5, 0.77, 0.9, 0.99, 1.0],
            "perm": torch.randperm(13, generator=g), "perm_p": 0.7,
            "uniform": torch.zeros(4), "tie": torch.log(torch.tensor([0.2, 0.4, 0.2, 0.2])), "edge_p": 0.5}


def run_hidden(table, table_ps, z, ps, perm, perm_p, uniform, tie, edge_p):
    return {"table": [top_p_filter(table, p) for p in table_ps],
            "random": [top_p_filter(z, p) for p in ps],
            "permuted": top_p_filter(z[..., perm], perm_p), "unpermuted": top_p_filter(z, perm_p),
            "uniform": top_p_filter(uniform, edge_p), "tie": top_p_filter(tie, edge_p)}


def check_hidden(inputs, outputs):
    from lib.sampling import top_p_filter as ref_top_p

    # p=0.3 and p=0.01: the argmax alone exceeds p
    expected = {0.3: {1}, 0.8: {1, 3, 2}, 0.01: {1}}
    for p, filtered in zip(inputs["table_ps"], outputs["table"]):
        kept_ids, want_ids = kept(filtered), expected[p]
        assert kept_ids == want_ids, (
            f"top_p_filter(log [0.10, 0.50, 0.15, 0.25], p={p}): expected kept ids {want_ids}, "
            f"got {kept_ids}")
    for p, got in zip(inputs["ps"], outputs["random"]):
        want = ref_top_p(inputs["z"], p)
        assert torch.equal(got, want), (
            f"top_p_filter(random logits [4, 6, 13], p={p}): expected {int((want > NEG_INF).sum())} kept "
            f"logits equal to the reference, got {int((got > NEG_INF).sum())} kept, "
            f"{int((got != want).sum())} entries differ")
    got, want = outputs["permuted"], outputs["unpermuted"][..., inputs["perm"]]
    assert torch.equal(got, want), (
        f"top_p_filter(random logits [4, 6, 13] with the vocabulary permuted, p={inputs['perm_p']}): expected "
        f"the permuted output of the unpermuted call, {int((got != want).sum())} entries differ")
    # the mass before a token exactly equal to p: uniform over 4 tokens (probabilities 0.25, exact
    # in floating point), p = 0.5: the mass before token 2 is 0.5, not < 0.5, so it is removed
    got = kept(outputs["uniform"])
    assert got == {0, 1}, (f"top_p_filter(uniform logits [4], p=0.5): the mass before token 2 is exactly "
                           f"0.5, not < p, so expected kept ids {{0, 1}}, got {got}")
    # a tie at the threshold: token 0 crosses p = 0.5, tokens 2 and 3 have the same logit but
    # come later in index order, so the mass before them is already >= p
    got = kept(outputs["tie"])
    assert got == {0, 1}, (f"top_p_filter(log [0.2, 0.4, 0.2, 0.2], 0.5): ties are broken by index, "
                           f"so the kept set is {{0, 1}}; got {got}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Temperature and sampling (2 points)
#
# `sampling_probs(logits, temperature, top_k=None, top_p=None)` returns the probabilities
# `[..., V]` that a sampler draws from, for `temperature > 0`: **divide the logits by the
# temperature first**, then apply top-k (if given), then top-p (if given) to the result,
# then take the softmax.
#
# `sample(logits, temperature, top_k=None, top_p=None, generator=None)` returns one token
# id per row, a LongTensor of shape `logits.shape[:-1]`. `temperature == 0` means greedy
# decoding (`argmax`); otherwise draw from `sampling_probs(...)` with
# `torch.multinomial(..., generator=generator)` (flatten the leading axes to one batch
# axis first, and reshape back).

# %% [solution] id=sampling
def sampling_probs(logits, temperature, top_k=None, top_p=None):
    ### BEGIN SOLUTION
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)
    ### END SOLUTION


def sample(logits, temperature, top_k=None, top_p=None, generator=None):
    ### BEGIN SOLUTION
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)
    return ids.reshape(logits.shape[:-1])
    ### END SOLUTION

# %% [test] id=test_temperature points=1
def make():
    return {"z": torch.tensor([2.0, 1.0, 0.0]), "temperatures": [1.0, 0.5]}


def run(z, temperatures):
    return {"probs": [sampling_probs(z, t) for t in temperatures]}


def check(inputs, outputs):
    z = inputs["z"]
    for t, got in zip(inputs["temperatures"], outputs["probs"]):
        want = torch.softmax(z / t, -1)
        assert torch.allclose(got, want), (f"sampling_probs({z.tolist()}, temperature={t}): expected "
                                           f"{want.tolist()}, got {got.tolist()}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    g = torch.Generator().manual_seed(2)
    return {"z": torch.randn(5, 9, generator=g, dtype=torch.float64),
            "settings": [(0.3, None, None), (2.5, None, None), (0.7, 4, None), (1.5, None, 0.8),
                         (0.9, 5, 0.6)],
            "entropy_temperatures": [0.25, 1.0, 4.0]}


def run_hidden(z, settings, entropy_temperatures):
    return {"probs": [sampling_probs(z, t, k, p) for t, k, p in settings],
            "row_probs": [sampling_probs(z[0], t) for t in entropy_temperatures]}


def check_hidden(inputs, outputs):
    from lib.sampling import filter_logits as ref_filter

    for (t, k, p), got in zip(inputs["settings"], outputs["probs"]):
        ref = torch.softmax(ref_filter(inputs["z"], t, top_k=k, top_p=p), -1)
        assert torch.allclose(got, ref, atol=1e-9), (
            f"sampling_probs(random float64 logits [5, 9], temperature={t}, top_k={k}, top_p={p}): "
            f"expected the reference probabilities, largest difference {(got - ref).abs().max().item():.3g}, "
            f"row 0 expected {[round(v, 4) for v in ref[0].tolist()]}, "
            f"got {[round(v, 4) for v in got[0].tolist()]}")
    ent = [-(q * q.log()).sum().item() for q in outputs["row_probs"]]
    assert ent[0] < ent[1] < ent[2], (
        f"sampling_probs(a random row of 9 logits) at temperatures 0.25, 1, 4: expected the entropy "
        f"to increase with the temperature, got {[round(e, 4) for e in ent]}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [test] id=test_sample points=1
def make():
    return {"z": torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]]), "seed": 0}


def run(z, seed):
    return {"greedy": sample(z, 0.0), "draws": sample(z, 1.0, generator=torch.Generator().manual_seed(seed))}


def check(inputs, outputs):
    z = inputs["z"]
    got = outputs["greedy"].tolist()
    assert got == [1, 0], f"sample({z.tolist()}, temperature=0): expected the argmax per row [1, 0], got {got}"
    draws = outputs["draws"]
    assert draws.shape == (2,) and draws.dtype == torch.long, (
        f"sample(logits [2, 3], temperature=1): expected a LongTensor of shape (2,), got "
        f"{draws.dtype} of shape {tuple(draws.shape)}")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    return {"row": torch.tensor([1.5, 1.0, 0.5, 0.0, -0.5, -1.0]), "n": 100_000}


def run_hidden(row, n):
    return {"many": sample(row.expand(n, 6), 0.8, top_p=0.9, generator=torch.Generator().manual_seed(3)),
            "a": sample(row.expand(50, 6), 1.0, generator=torch.Generator().manual_seed(4)),
            "b": sample(row.expand(50, 6), 1.0, generator=torch.Generator().manual_seed(4)),
            "greedy_3d": sample(torch.zeros(2, 3, 5), 0.0),
            # two leading batch axes with temperature > 0: flatten them to one before torch.multinomial
            "top1_3d": sample(row.expand(2, 3, 6), 1.0, top_k=1, generator=torch.Generator().manual_seed(5))}


def check_hidden(inputs, outputs):
    from lib.sampling import filter_logits as ref_filter

    row, n = inputs["row"], inputs["n"]
    d = outputs["many"]
    assert d.shape == (n,), f"sample(logits [{n}, 6], temperature=0.8, top_p=0.9): expected shape ({n},), got {tuple(d.shape)}"
    freq = torch.bincount(d, minlength=6).double() / n
    target = torch.softmax(ref_filter(row.double(), 0.8, top_p=0.9), -1)
    assert (freq - target).abs().max() < 0.01, (
        f"sample({n} copies of {row.tolist()}, temperature=0.8, top_p=0.9): expected frequencies within "
        f"0.01 of {[round(v, 3) for v in target.tolist()]}, got {[round(v, 3) for v in freq.tolist()]}")
    assert freq[target == 0].sum() == 0, (
        f"sample({n} copies of {row.tolist()}, temperature=0.8, top_p=0.9): expected no draw of a "
        f"removed token, got frequencies {[round(v, 4) for v in freq.tolist()]}")
    a, b = outputs["a"], outputs["b"]
    assert torch.equal(a, b), (
        f"sample(logits [50, 6], temperature=1) twice with generators seeded 4: expected identical "
        f"draws, {int((a != b).sum())} differ")
    got = outputs["greedy_3d"].shape
    assert got == (2, 3), f"sample(logits [2, 3, 5], temperature=0): expected shape (2, 3), got {tuple(got)}"
    d3 = outputs["top1_3d"]
    assert d3.shape == (2, 3) and bool((d3 == 0).all()), (
        f"sample(logits [2, 3, 6], temperature=1, top_k=1): expected shape (2, 3), all token 0, "
        f"got shape {tuple(d3.shape)}, values {d3.tolist()}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Beam search with length normalization (3 points)
#
# `beam_search(step_fn, bos_id, eos_id, beam_size, max_len, length_penalty=1.0)`.
# `step_fn(seqs)` takes a LongTensor `[n, t]` of live prefixes (each starts with `bos_id`)
# and returns next-token log-probs `[n, V]`.
#
# - Start with the single live prefix `[bos_id]` with summed log-prob 0.
# - At each step, extend every live prefix by every token; a candidate's summed log-prob is
#   its prefix's plus the token's log-prob. Go through the candidates from best to worst
#   summed log-prob (ties: lower row, then lower token id first): a candidate that ends in
#   `eos_id`, or that has reached `max_len` tokens (bos included), is **finished**;
#   otherwise it becomes live. Stop going through the list once `beam_size` candidates are
#   live (skip candidates whose log-prob is `-inf`).
# - Repeat until no prefix is live. Return the finished hypothesis with the best
#   **length-normalized** score `sum_logprob / n ** length_penalty`, where `n` is the number
#   of generated tokens (bos excluded, eos included), as `(list_of_ids, score)`.

# %% [solution] id=beam
def beam_search(step_fn, bos_id, eos_id, beam_size, max_len, length_penalty=1.0):
    ### BEGIN SOLUTION
    live = [([bos_id], 0.0)]
    finished = []
    while live:
        seqs = torch.tensor([s for s, _ in live], dtype=torch.long)
        logprobs = step_fn(seqs).double()
        totals = torch.tensor([lp for _, lp in live], dtype=torch.float64)[:, None] + logprobs
        order = torch.argsort(totals.flatten(), descending=True, stable=True)
        next_live = []
        for flat in order.tolist():
            row, token = divmod(flat, totals.shape[1])
            seq, lp = live[row][0] + [token], totals[row, token].item()
            if lp == NEG_INF:
                break
            if token == eos_id or len(seq) == max_len:
                finished.append((seq, lp))
            else:
                next_live.append((seq, lp))
            if len(next_live) == beam_size:
                break
        live = next_live
    scored = [(seq, lp / (len(seq) - 1) ** length_penalty) for seq, lp in finished]
    return max(scored, key=lambda item: item[1])
    ### END SOLUTION

# %% [test] id=test_beam points=3
def make():
    bos, eos, a, b = 0, 1, 2, 3
    # table_model's table as (prefix, ((token, probability), ...)) pairs: only plain data crosses
    table = [((bos,), ((a, 0.6), (b, 0.4))), ((bos, a), ((eos, 0.5), (b, 0.5))), ((bos, b), ((eos, 1.0),))]
    return {"table": table, "bos": bos, "eos": eos}


def run(table, bos, eos):
    model = table_model({tuple(prefix): dict(probs) for prefix, probs in table})
    return {"beam": beam_search(model, bos, eos, beam_size=2, max_len=4, length_penalty=0.0)}


def check(inputs, outputs):
    seq, score = outputs["beam"]
    assert seq == [0, 3, 1] and abs(score - math.log(0.4)) < 1e-9, (
        f"beam_search(the setup's 3-prefix table, beam_size=2, max_len=4, length_penalty=0): expected "
        f"([0, 3, 1], {math.log(0.4):.6f}), got ({seq}, {score})")


check(make(), run(**make()))
### BEGIN HIDDEN TESTS
def make_hidden():
    bos, eos, a, b = 0, 1, 2, 3
    table = [((bos,), ((a, 0.6), (b, 0.4))), ((bos, a), ((eos, 0.5), (b, 0.5))), ((bos, b), ((eos, 1.0),))]
    return {"bos": bos, "eos": eos, "table": table,
            # the raw sum prefers [eos]; the mean log-prob prefers [A, A, eos]
            "sum_vs_mean": [((bos,), ((eos, 0.5), (a, 0.5))), ((bos, a), ((a, 0.8), (eos, 0.2))),
                            ((bos, a, a), ((eos, 0.9), (a, 0.1)))],
            # A and B both have probability 0.5 after bos
            "tie": [((bos,), ((a, 0.5), (b, 0.5))), ((bos, a), ((eos, 1.0),)), ((bos, b), ((eos, 1.0),))],
            "random": [(seed, beam, alpha) for seed in range(4)
                       for beam, alpha in [(1, 1.0), (2, 0.0), (3, 0.6), (3, 1.0)]]}


def run_hidden(bos, eos, table, sum_vs_mean, tie, random):
    def model(pairs):
        return table_model({tuple(prefix): dict(probs) for prefix, probs in pairs})

    def random_model(seed, vocab=4):
        def step(seqs):
            rows = []
            for s in seqs.tolist():
                gen = torch.Generator().manual_seed(hash((seed, *s)) % (2 ** 31))
                rows.append(torch.log_softmax(2 * torch.randn(vocab, generator=gen, dtype=torch.float64), -1))
            return torch.stack(rows)
        return step

    return {"greedy": beam_search(model(table), bos, eos, beam_size=1, max_len=4, length_penalty=0.0),
            "raw_sum": beam_search(model(sum_vs_mean), bos, eos, beam_size=3, max_len=5, length_penalty=0.0),
            "mean": beam_search(model(sum_vs_mean), bos, eos, beam_size=3, max_len=5, length_penalty=1.0),
            "tie": beam_search(model(tie), bos, eos, beam_size=1, max_len=4, length_penalty=1.0),
            "random": [beam_search(random_model(seed), bos, eos, beam, 6, alpha) for seed, beam, alpha in random]}


def check_hidden(inputs, outputs):
    from lib.sampling import beam_search as ref_beam

    greedy, _ = outputs["greedy"]
    assert greedy[:2] == [0, 2], (
        f"beam_search(the 3-prefix table, beam_size=1, max_len=4): expected the greedy path to start "
        f"[0, 2], got {greedy}")
    s0, v0 = outputs["raw_sum"]
    s1, v1 = outputs["mean"]
    assert s0 == [0, 1] and abs(v0 - math.log(0.5)) < 1e-9, (
        f"beam_search(table where [eos] has the best raw sum, beam_size=3, max_len=5, length_penalty=0): "
        f"expected ([0, 1], {math.log(0.5):.6f}), got ({s0}, {v0})")
    assert s1 == [0, 2, 2, 1] and abs(v1 - math.log(0.5 * 0.8 * 0.9) / 3) < 1e-9, (
        f"beam_search(table where [A, A, eos] has the best mean log-prob, beam_size=3, max_len=5, "
        f"length_penalty=1): expected ([0, 2, 2, 1], {math.log(0.36) / 3:.6f}), got ({s1}, {v1})")
    # a tie in summed log-prob at the beam's edge: A and B both have probability 0.5 and
    # beam_size=1, so the lower token id, A, is the one kept live
    s3, v3 = outputs["tie"]
    assert s3 == [0, 2, 1], (
        f"beam_search(table with a tie between tokens 2 and 3 after bos, beam_size=1): ties go to the "
        f"lower token id, expected ([0, 2, 1], {math.log(0.5) / 2:.6f}), got ({s3}, {v3})")

    def random_model(seed, vocab=4):  # the same model as run_hidden's, for the reference
        def step(seqs):
            rows = []
            for s in seqs.tolist():
                gen = torch.Generator().manual_seed(hash((seed, *s)) % (2 ** 31))
                rows.append(torch.log_softmax(2 * torch.randn(vocab, generator=gen, dtype=torch.float64), -1))
            return torch.stack(rows)
        return step

    bos, eos = inputs["bos"], inputs["eos"]
    for (seed, beam, alpha), got in zip(inputs["random"], outputs["random"]):
        ref = ref_beam(random_model(seed), bos, eos, beam, 6, alpha)
        assert got[0] == ref[0] and abs(got[1] - ref[1]) < 1e-9, (
            f"beam_search(random 4-token model seeded {seed}, beam_size={beam}, max_len=6, "
            f"length_penalty={alpha}): expected {ref}, got {got}")


check_hidden(make_hidden(), run_hidden(**make_hidden()))
### END HIDDEN TESTS
