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
z = torch.tensor([0.5, 2.0, -1.0, 1.0])
_got = kept(top_k_filter(z, 2))
assert _got == {1, 3}, f"top_k_filter({z.tolist()}, k=2): expected kept ids {{1, 3}}, got {_got}"
_got = kept(top_k_filter(z, 1))
assert _got == {1}, f"top_k_filter({z.tolist()}, k=1): expected kept ids {{1}}, got {_got}"
_got = top_k_filter(z, 2)[[1, 3]]
assert torch.equal(_got, z[[1, 3]]), (
    f"top_k_filter({z.tolist()}, k=2): kept logits must be unchanged, expected {z[[1, 3]].tolist()}, "
    f"got {_got.tolist()}")
### BEGIN HIDDEN TESTS
from lib.sampling import top_k_filter as _ref_top_k
_g = torch.Generator().manual_seed(0)
_z = torch.randn(3, 5, 11, generator=_g)
for _k in (1, 3, 11, 20):
    _got, _want = top_k_filter(_z, _k), _ref_top_k(_z, _k)
    assert torch.equal(_got, _want), (
        f"top_k_filter(random logits [3, 5, 11], k={_k}): expected {int((_want > NEG_INF).sum())} kept "
        f"logits equal to the reference, got {int((_got > NEG_INF).sum())} kept, "
        f"{int((_got != _want).sum())} entries differ")
_ties = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
_got = kept(top_k_filter(_ties, 2))
assert _got == {1, 2}, (f"top_k_filter({_ties.tolist()}, k=2), a tie at the k-th logit broken by index: "
                        f"expected kept ids {{1, 2}}, got {_got}")
_got = kept(top_k_filter(_ties, 1))
assert _got == {1}, f"top_k_filter({_ties.tolist()}, k=1): expected kept ids {{1}} (argmax), got {_got}"
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
z = torch.log(torch.tensor([0.10, 0.50, 0.15, 0.25]))
for _p, _want in [(0.6, {1, 3}), (1.0, {0, 1, 2, 3})]:
    _got = kept(top_p_filter(z, _p))
    assert _got == _want, (f"top_p_filter(log [0.10, 0.50, 0.15, 0.25], p={_p}): expected kept ids "
                           f"{_want}, got {_got}")
### BEGIN HIDDEN TESTS
from lib.sampling import top_p_filter as _ref_top_p
# p=0.3 and p=0.01: the argmax alone exceeds p
for _p_hidden, _want_ids in [(0.3, {1}), (0.8, {1, 3, 2}), (0.01, {1})]:
    _kept_ids = kept(top_p_filter(z, _p_hidden))
    assert _kept_ids == _want_ids, (
        f"top_p_filter(log [0.10, 0.50, 0.15, 0.25], p={_p_hidden}): expected kept ids {_want_ids}, "
        f"got {_kept_ids}")
_g = torch.Generator().manual_seed(1)
_z = 2 * torch.randn(4, 6, 13, generator=_g)
for _p in (0.05, 0.3, 0.5, 0.77, 0.9, 0.99, 1.0):
    _got, _want = top_p_filter(_z, _p), _ref_top_p(_z, _p)
    assert torch.equal(_got, _want), (
        f"top_p_filter(random logits [4, 6, 13], p={_p}): expected {int((_want > NEG_INF).sum())} kept "
        f"logits equal to the reference, got {int((_got > NEG_INF).sum())} kept, "
        f"{int((_got != _want).sum())} entries differ")
_perm = torch.randperm(13, generator=_g)
_got, _want = top_p_filter(_z[..., _perm], 0.7), top_p_filter(_z, 0.7)[..., _perm]
assert torch.equal(_got, _want), (
    f"top_p_filter(random logits [4, 6, 13] with the vocabulary permuted, p=0.7): expected the "
    f"permuted output of the unpermuted call, {int((_got != _want).sum())} entries differ")
# the mass before a token exactly equal to p: uniform over 4 tokens (probabilities 0.25, exact
# in floating point), p = 0.5: the mass before token 2 is 0.5, not < 0.5, so it is removed
_u = torch.zeros(4)
_got = kept(top_p_filter(_u, 0.5))
assert _got == {0, 1}, (f"top_p_filter(uniform logits [4], p=0.5): the mass before token 2 is exactly "
                        f"0.5, not < p, so expected kept ids {{0, 1}}, got {_got}")
# a tie at the threshold: token 0 crosses p = 0.5, tokens 2 and 3 have the same logit but
# come later in index order, so the mass before them is already >= p
_zt = torch.log(torch.tensor([0.2, 0.4, 0.2, 0.2]))
_kt = kept(top_p_filter(_zt, 0.5))
assert _kt == {0, 1}, (f"top_p_filter(log [0.2, 0.4, 0.2, 0.2], 0.5): ties are broken by index, "
                       f"so the kept set is {{0, 1}}; got {_kt}")
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
z = torch.tensor([2.0, 1.0, 0.0])
for _t in (1.0, 0.5):
    _got, _want = sampling_probs(z, _t), torch.softmax(z / _t, -1)
    assert torch.allclose(_got, _want), (f"sampling_probs({z.tolist()}, temperature={_t}): expected "
                                         f"{_want.tolist()}, got {_got.tolist()}")
### BEGIN HIDDEN TESTS
from lib.sampling import filter_logits as _ref_filter
_g = torch.Generator().manual_seed(2)
_z = torch.randn(5, 9, generator=_g, dtype=torch.float64)
for _t, _k, _p in [(0.3, None, None), (2.5, None, None), (0.7, 4, None), (1.5, None, 0.8),
                   (0.9, 5, 0.6)]:
    _ref = torch.softmax(_ref_filter(_z, _t, top_k=_k, top_p=_p), -1)
    _got = sampling_probs(_z, _t, _k, _p)
    assert torch.allclose(_got, _ref, atol=1e-9), (
        f"sampling_probs(random float64 logits [5, 9], temperature={_t}, top_k={_k}, top_p={_p}): "
        f"expected the reference probabilities, largest difference {(_got - _ref).abs().max().item():.3g}, "
        f"row 0 expected {[round(v, 4) for v in _ref[0].tolist()]}, "
        f"got {[round(v, 4) for v in _got[0].tolist()]}")
_ent = [-(q * q.log()).sum().item() for q in (sampling_probs(_z[0], t) for t in (0.25, 1.0, 4.0))]
assert _ent[0] < _ent[1] < _ent[2], (
    f"sampling_probs(a random row of 9 logits) at temperatures 0.25, 1, 4: expected the entropy "
    f"to increase with the temperature, got {[round(e, 4) for e in _ent]}")
### END HIDDEN TESTS

# %% [test] id=test_sample points=1
z = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
_got = sample(z, 0.0).tolist()
assert _got == [1, 0], f"sample({z.tolist()}, temperature=0): expected the argmax per row [1, 0], got {_got}"
draws = sample(z, 1.0, generator=torch.Generator().manual_seed(0))
assert draws.shape == (2,) and draws.dtype == torch.long, (
    f"sample(logits [2, 3], temperature=1): expected a LongTensor of shape (2,), got "
    f"{draws.dtype} of shape {tuple(draws.shape)}")
### BEGIN HIDDEN TESTS
from lib.sampling import filter_logits as _ref_filter
_row = torch.tensor([1.5, 1.0, 0.5, 0.0, -0.5, -1.0])
_n = 100_000
_d = sample(_row.expand(_n, 6), 0.8, top_p=0.9, generator=torch.Generator().manual_seed(3))
assert _d.shape == (_n,), f"sample(logits [{_n}, 6], temperature=0.8, top_p=0.9): expected shape ({_n},), got {tuple(_d.shape)}"
_freq = torch.bincount(_d, minlength=6).double() / _n
_target = torch.softmax(_ref_filter(_row.double(), 0.8, top_p=0.9), -1)
assert (_freq - _target).abs().max() < 0.01, (
    f"sample({_n} copies of {_row.tolist()}, temperature=0.8, top_p=0.9): expected frequencies within "
    f"0.01 of {[round(v, 3) for v in _target.tolist()]}, got {[round(v, 3) for v in _freq.tolist()]}")
assert _freq[_target == 0].sum() == 0, (
    f"sample({_n} copies of {_row.tolist()}, temperature=0.8, top_p=0.9): expected no draw of a "
    f"removed token, got frequencies {[round(v, 4) for v in _freq.tolist()]}")
_a = sample(_row.expand(50, 6), 1.0, generator=torch.Generator().manual_seed(4))
_b = sample(_row.expand(50, 6), 1.0, generator=torch.Generator().manual_seed(4))
assert torch.equal(_a, _b), (
    f"sample(logits [50, 6], temperature=1) twice with generators seeded 4: expected identical "
    f"draws, {int((_a != _b).sum())} differ")
_got = sample(torch.zeros(2, 3, 5), 0.0).shape
assert _got == (2, 3), f"sample(logits [2, 3, 5], temperature=0): expected shape (2, 3), got {tuple(_got)}"
# two leading batch axes with temperature > 0: flatten them to one before torch.multinomial
_d3 = sample(_row.expand(2, 3, 6), 1.0, top_k=1, generator=torch.Generator().manual_seed(5))
assert _d3.shape == (2, 3) and bool((_d3 == 0).all()), (
    f"sample(logits [2, 3, 6], temperature=1, top_k=1): expected shape (2, 3), all token 0, "
    f"got shape {tuple(_d3.shape)}, values {_d3.tolist()}")
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
BOS, EOS, A, B = 0, 1, 2, 3
model = table_model({(BOS,): {A: 0.6, B: 0.4}, (BOS, A): {EOS: 0.5, B: 0.5}, (BOS, B): {EOS: 1.0}})
seq, score = beam_search(model, BOS, EOS, beam_size=2, max_len=4, length_penalty=0.0)
assert seq == [BOS, B, EOS] and abs(score - math.log(0.4)) < 1e-9, (
    f"beam_search(the setup's 3-prefix table, beam_size=2, max_len=4, length_penalty=0): expected "
    f"([0, 3, 1], {math.log(0.4):.6f}), got ({seq}, {score})")
### BEGIN HIDDEN TESTS
from lib.sampling import beam_search as _ref_beam
_greedy, _ = beam_search(model, BOS, EOS, beam_size=1, max_len=4, length_penalty=0.0)
assert _greedy[:2] == [BOS, A], (
    f"beam_search(the 3-prefix table, beam_size=1, max_len=4): expected the greedy path to start "
    f"[0, 2], got {_greedy}")
# the raw sum prefers [eos]; the mean log-prob prefers [A, A, eos]
_m2 = table_model({(BOS,): {EOS: 0.5, A: 0.5}, (BOS, A): {A: 0.8, EOS: 0.2},
                   (BOS, A, A): {EOS: 0.9, A: 0.1}})
_s0, _v0 = beam_search(_m2, BOS, EOS, beam_size=3, max_len=5, length_penalty=0.0)
_s1, _v1 = beam_search(_m2, BOS, EOS, beam_size=3, max_len=5, length_penalty=1.0)
assert _s0 == [BOS, EOS] and abs(_v0 - math.log(0.5)) < 1e-9, (
    f"beam_search(table where [eos] has the best raw sum, beam_size=3, max_len=5, length_penalty=0): "
    f"expected ([0, 1], {math.log(0.5):.6f}), got ({_s0}, {_v0})")
assert _s1 == [BOS, A, A, EOS] and abs(_v1 - math.log(0.5 * 0.8 * 0.9) / 3) < 1e-9, (
    f"beam_search(table where [A, A, eos] has the best mean log-prob, beam_size=3, max_len=5, "
    f"length_penalty=1): expected ([0, 2, 2, 1], {math.log(0.36) / 3:.6f}), got ({_s1}, {_v1})")
# a tie in summed log-prob at the beam's edge: A and B both have probability 0.5 and
# beam_size=1, so the lower token id, A, is the one kept live
_m3 = table_model({(BOS,): {A: 0.5, B: 0.5}, (BOS, A): {EOS: 1.0}, (BOS, B): {EOS: 1.0}})
_s3, _v3 = beam_search(_m3, BOS, EOS, beam_size=1, max_len=4, length_penalty=1.0)
assert _s3 == [BOS, A, EOS], (
    f"beam_search(table with a tie between tokens 2 and 3 after bos, beam_size=1): ties go to the "
    f"lower token id, expected ([0, 2, 1], {math.log(0.5) / 2:.6f}), got ({_s3}, {_v3})")


def _random_model(seed, vocab=4):
    def _step(seqs):
        _rows = []
        for _s in seqs.tolist():
            _gen = torch.Generator().manual_seed(hash((seed, *_s)) % (2 ** 31))
            _rows.append(torch.log_softmax(2 * torch.randn(vocab, generator=_gen, dtype=torch.float64), -1))
        return torch.stack(_rows)
    return _step


for _seed in range(4):
    for _beam, _alpha in [(1, 1.0), (2, 0.0), (3, 0.6), (3, 1.0)]:
        _got = beam_search(_random_model(_seed), BOS, EOS, _beam, 6, _alpha)
        _ref = _ref_beam(_random_model(_seed), BOS, EOS, _beam, 6, _alpha)
        assert _got[0] == _ref[0] and abs(_got[1] - _ref[1]) < 1e-9, (
            f"beam_search(random 4-token model seeded {_seed}, beam_size={_beam}, max_len=6, "
            f"length_penalty={_alpha}): expected {_ref}, got {_got}")
### END HIDDEN TESTS
