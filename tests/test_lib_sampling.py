"""lib.sampling: the filter invariants, sampling frequencies, and beam search vs brute force."""
import itertools
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lib.sampling import (
    beam_search,
    filter_logits,
    min_p_filter,
    sample,
    top_k_filter,
    top_p_filter,
)

# Property tests run without a deadline: on a shared 2-core machine one example can take
# hundreds of milliseconds for reasons unrelated to the code under test.

NEG_INF = float("-inf")


def logit_rows(min_v=2, max_v=12, unique=False):
    """Hypothesis strategy: a 1-D float64 logit tensor."""
    values = st.floats(-20, 20, allow_nan=False, allow_infinity=False)
    return st.lists(values, min_size=min_v, max_size=max_v, unique=unique).map(
        lambda xs: torch.tensor(xs, dtype=torch.float64))


def kept(filtered: torch.Tensor) -> set[int]:
    return set(torch.nonzero(filtered > NEG_INF).flatten().tolist())


def nucleus_reference(logits: torch.Tensor, p: float) -> set[int]:
    """The smallest-set rule written out with a Python loop (ties by index).

    Tokens are ranked by logit, not by probability: two distinct logits can round to the
    same probability, and the logit order is the true one."""
    probs = torch.softmax(logits.double(), dim=-1).tolist()
    z = logits.tolist()
    order = sorted(range(len(probs)), key=lambda i: (-z[i], i))
    chosen, mass = set(), 0.0
    for i in order:
        chosen.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return chosen


# --- top-k --------------------------------------------------------------------------

@settings(deadline=None)
@given(logit_rows())
def test_top_k_1_is_greedy(z):
    assert kept(top_k_filter(z, 1)) == {int(z.argmax())}
    assert int(sample(z, top_k=1, generator=torch.Generator().manual_seed(0))) == int(z.argmax())


@settings(deadline=None)
@given(logit_rows(unique=True), st.integers(1, 15))
def test_top_k_keeps_the_k_largest(z, k):
    expected = set(torch.topk(z, min(k, len(z))).indices.tolist())
    assert kept(top_k_filter(z, k)) == expected


def test_top_k_ties_are_broken_by_index():
    z = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    assert kept(top_k_filter(z, 2)) == {1, 2}


def test_filters_keep_kept_values_and_leading_shape():
    z = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0))
    for out in (top_k_filter(z, 4), top_p_filter(z, 0.7), min_p_filter(z, 0.2)):
        assert out.shape == z.shape and out.dtype == z.dtype
        keep = out > NEG_INF
        assert torch.equal(out[keep], z[keep])
    assert (top_k_filter(z, 4) > NEG_INF).sum(-1).eq(4).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_filters_and_sample_in_low_precision(dtype):
    z = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]], dtype=dtype)
    ref = z.double()
    for f in (lambda x: top_k_filter(x, 2), lambda x: top_p_filter(x, 0.8),
              lambda x: min_p_filter(x, 0.2)):
        out = f(z)
        assert out.dtype == dtype and kept(out[0]) == kept(f(ref)[0])
    draws = sample(z.expand(1000, -1), top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) <= {0, 1}


# --- top-p --------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(logit_rows(), st.floats(0.01, 0.99))
def test_top_p_matches_the_smallest_set_rule(z, p):
    sorted_probs = torch.softmax(z, -1).sort(descending=True).values
    assume(not torch.isclose(sorted_probs.cumsum(0), torch.tensor(p, dtype=z.dtype),
                             rtol=0, atol=1e-9).any())      # no rounding tie at the boundary
    assert kept(top_p_filter(z, p)) == nucleus_reference(z, p)


@settings(deadline=None)
@given(logit_rows(), st.floats(1e-6, 1.0))
def test_top_p_always_keeps_the_argmax(z, p):
    assert int(z.argmax()) in kept(top_p_filter(z, p))


@settings(deadline=None)
@given(logit_rows())
def test_top_p_1_keeps_everything(z):
    assert torch.equal(top_p_filter(z, 1.0), z)


def test_top_p_1_keeps_a_token_that_rounding_would_drop():
    z = torch.tensor([0.0, -40.0])                   # second prob ~4e-18: 1 - it == 1.0
    assert kept(top_p_filter(z, 1.0)) == {0, 1}


def test_top_p_keeps_the_crossing_token_and_no_more():
    z = torch.log(torch.tensor([0.1, 0.5, 0.15, 0.25]))
    assert kept(top_p_filter(z, 0.5)) == {1}          # 0.5 alone reaches p = 0.5
    assert kept(top_p_filter(z, 0.6)) == {1, 3}       # 0.5 + 0.25 crosses 0.6
    assert kept(top_p_filter(z, 0.8)) == {1, 3, 2}    # 0.9 >= 0.8


def test_top_p_ties_are_broken_by_index():
    assert kept(top_p_filter(torch.zeros(4), 0.5)) == {0, 1}


# --- min-p --------------------------------------------------------------------------

@settings(deadline=None)
@given(logit_rows(), st.floats(0.0, 1.0))
def test_min_p_matches_the_probability_rule(z, min_p):
    probs = torch.softmax(z, dim=-1)
    threshold = min_p * probs.max()
    assume(not torch.isclose(probs, threshold, rtol=1e-9, atol=0).any())  # no rounding ties
    assert kept(min_p_filter(z, min_p)) == set(torch.nonzero(probs >= threshold).flatten().tolist())
    assert int(z.argmax()) in kept(min_p_filter(z, min_p))


# --- permutation equivariance --------------------------------------------------------

@settings(deadline=None)
@given(logit_rows(unique=True), st.randoms(use_true_random=False))
def test_filters_are_permutation_equivariant(z, rnd):
    perm = list(range(len(z)))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    for f in (lambda x: top_k_filter(x, 3), lambda x: top_p_filter(x, 0.8),
              lambda x: min_p_filter(x, 0.1)):
        assert torch.equal(f(z[perm]), f(z)[perm])


# --- sample --------------------------------------------------------------------------

def chi2_critical(df: int, z: float = 4.753) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 4.753: 1 - 1e-6)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


@pytest.mark.parametrize("kwargs", [
    dict(temperature=1.0),
    dict(temperature=0.7, top_k=4),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.1),
])
def test_sample_frequencies_match_the_filtered_distribution(kwargs):
    logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])
    n = 100_000
    draws = sample(logits.expand(n, -1), generator=torch.Generator().manual_seed(0), **kwargs)
    assert draws.shape == (n,) and draws.dtype == torch.long
    counts = torch.bincount(draws, minlength=len(logits)).double()
    # reference distribution computed here, independently of filter_logits
    z = logits.double() / kwargs["temperature"]
    support = torch.ones(len(z), dtype=torch.bool)
    if "top_k" in kwargs:
        support &= torch.zeros_like(support).index_fill(0, torch.topk(z, kwargs["top_k"]).indices, True)
    if "top_p" in kwargs:
        support &= torch.zeros_like(support).index_fill(
            0, torch.tensor(sorted(nucleus_reference(z, kwargs["top_p"]))), True)
    if "min_p" in kwargs:
        probs = torch.softmax(z, -1)
        support &= probs >= kwargs["min_p"] * probs.max()
    expected = torch.softmax(z.masked_fill(~support, NEG_INF), -1) * n
    assert counts[~support].sum() == 0
    chi2 = ((counts[support] - expected[support]) ** 2 / expected[support]).sum().item()
    assert chi2 < chi2_critical(int(support.sum()) - 1)


def test_temperature_0_is_greedy_and_ignores_the_generator():
    z = torch.randn(5, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sample(z, temperature=0.0), z.argmax(-1))


def test_seeded_generator_reproduces_draws():
    z = torch.randn(1000, 9, generator=torch.Generator().manual_seed(2))
    a = sample(z, generator=torch.Generator().manual_seed(7))
    b = sample(z, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (1000,)


def test_filter_logits_is_softmax_of_tempered_logits():
    z = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(torch.softmax(filter_logits(z, 0.5), -1), torch.softmax(2 * z, -1))


def test_low_temperature_approaches_greedy():
    z = torch.tensor([1.0, 0.9, 0.0])
    probs = torch.softmax(filter_logits(z, 0.01), -1)
    assert probs[0] > 0.9999


# --- beam search ---------------------------------------------------------------------

BOS, EOS, A, B = 0, 1, 2, 3


def table_model(table: dict[tuple[int, ...], dict[int, float]], vocab: int = 4):
    """A step_fn that looks up next-token probabilities by prefix (missing mass: eos)."""
    def step_fn(seqs: torch.Tensor) -> torch.Tensor:
        rows = []
        for seq in seqs.tolist():
            probs = torch.zeros(vocab, dtype=torch.float64)
            for tok, pr in table.get(tuple(seq), {EOS: 1.0}).items():
                probs[tok] = pr
            rows.append(torch.log(probs))
        return torch.stack(rows)
    return step_fn


def test_beam_search_beats_greedy_on_a_hand_built_model():
    # greedy takes A (0.6) and then has 0.5 at best: 0.30. The path B, eos has 0.4.
    model = table_model({(BOS,): {A: 0.6, B: 0.4},
                         (BOS, A): {EOS: 0.5, B: 0.5},
                         (BOS, B): {EOS: 1.0}})
    greedy, _ = beam_search(model, BOS, EOS, beam_size=1, max_len=4, length_penalty=0.0)
    best, score = beam_search(model, BOS, EOS, beam_size=2, max_len=4, length_penalty=0.0)
    assert greedy[:2] == [BOS, A]
    assert best == [BOS, B, EOS]
    assert score == pytest.approx(math.log(0.4))


def test_length_normalization_changes_the_winner():
    # [eos] at once: log 0.5 = -0.69. [A, A, eos]: log(0.5 * 0.8 * 0.9) = -1.02 in total,
    # but -0.34 per token: the sum prefers the short answer, the mean the long one.
    model = table_model({(BOS,): {EOS: 0.5, A: 0.5},
                         (BOS, A): {A: 0.8, EOS: 0.2},
                         (BOS, A, A): {EOS: 0.9, A: 0.1}})
    short, s0 = beam_search(model, BOS, EOS, beam_size=3, max_len=5, length_penalty=0.0)
    long, s1 = beam_search(model, BOS, EOS, beam_size=3, max_len=5, length_penalty=1.0)
    assert short == [BOS, EOS] and s0 == pytest.approx(math.log(0.5))
    assert long == [BOS, A, A, EOS] and s1 == pytest.approx(math.log(0.5 * 0.8 * 0.9) / 3)


def random_model(vocab: int, seed: int):
    """Next-token log-probs that depend on the whole prefix through a seeded hash."""
    def step_fn(seqs: torch.Tensor) -> torch.Tensor:
        rows = []
        for seq in seqs.tolist():
            g = torch.Generator().manual_seed(hash((seed, *seq)) % (2 ** 31))
            rows.append(torch.log_softmax(2 * torch.randn(vocab, generator=g, dtype=torch.float64), -1))
        return torch.stack(rows)
    return step_fn


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_brute_force(seed, length_penalty):
    vocab, max_len = 3, 5                                   # bos 0, eos 1, tokens 0..2
    model = random_model(vocab, seed)
    best_score, best_seq = -math.inf, None
    for n in range(1, max_len):                             # n generated tokens
        for body in itertools.product(range(vocab), repeat=n):
            if EOS in body[:-1] or (body[-1] != EOS and n < max_len - 1):
                continue
            seq = [BOS, *body]
            lp = sum(model(torch.tensor([seq[:t]]))[0, seq[t]].item() for t in range(1, len(seq)))
            if lp / n ** length_penalty > best_score:
                best_score, best_seq = lp / n ** length_penalty, seq
    seq, score = beam_search(model, BOS, EOS, beam_size=vocab ** max_len, max_len=max_len,
                             length_penalty=length_penalty)
    assert seq == best_seq and score == pytest.approx(best_score)


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_without_normalization_is_greedy(seed):
    model = random_model(4, seed)
    greedy = [BOS]
    while greedy[-1] != EOS and len(greedy) < 8:
        greedy.append(int(model(torch.tensor([greedy]))[0].argmax()))
    seq, _ = beam_search(model, BOS, EOS, beam_size=1, max_len=8, length_penalty=0.0)
    assert seq == greedy


# --- ValueError --------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda z: top_k_filter(z, 0), "k must be >= 1"),
    (lambda z: top_p_filter(z, 0.0), "p must be in"),
    (lambda z: top_p_filter(z, 1.5), "p must be in"),
    (lambda z: min_p_filter(z, -0.1), "min_p must be in"),
    (lambda z: sample(z, temperature=-1.0), "temperature must be >= 0"),
    (lambda z: sample(z, top_k=0), "top_k must be >= 1"),
    (lambda z: sample(z, top_p=2.0), "top_p must be in"),
    (lambda z: sample(z, temperature=0.0, top_k=0), "top_k must be >= 1"),       # even when greedy
    (lambda z: sample(z, temperature=0.0, min_p=1.5), "min_p must be in"),
    (lambda z: filter_logits(z, temperature=0.0), "temperature must be > 0"),
    (lambda z: top_k_filter(z.long(), 2), "floating-point"),
    (lambda z: top_p_filter(z[0, 0], 0.5), "at least 1 dimensions"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.zeros(2, 5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(beam_size=0, max_len=4), "beam_size"),
    (dict(beam_size=2, max_len=1), "max_len"),
])
def test_beam_search_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        beam_search(random_model(3, 0), BOS, EOS, **kwargs)


def test_beam_search_rejects_a_step_fn_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"step_fn must return"):
        beam_search(lambda seqs: torch.zeros(4), BOS, EOS, beam_size=2, max_len=4)


# ---- typical_filter ---------------------------------------------------------------------

def typical_reference(z: list[float], tau: float) -> set[int]:
    """The kept set written out with Python floats: sort by |surprisal - entropy|, then by
    index, and keep while the mass before the token is below tau."""
    m = max(z)
    w = [math.exp(v - m) for v in z]
    pi = [x / sum(w) for x in w]
    h = -sum(x * math.log(x) for x in pi if x > 0)
    order = sorted(range(len(z)), key=lambda i: (abs(-math.log(pi[i]) - h), i))
    kept, before, gap = set(), 0.0, math.inf
    for i in order:
        if before < tau:
            kept.add(i)
        gap = min(gap, abs(before - tau))
        before += pi[i]
    return kept, gap


@settings(deadline=None, max_examples=60)
@given(logit_rows(unique=True), st.floats(0.05, 0.99))
def test_typical_matches_the_written_out_rule(z, tau):
    from lib.sampling import typical_filter
    kept = set(torch.nonzero(torch.isfinite(typical_filter(z, tau))).flatten().tolist())
    expected, gap = typical_reference(z.tolist(), tau)
    assume(gap > 1e-9)  # a mass-before within rounding of tau may fall either way
    assert kept == expected, f"typical_filter({z.tolist()}, {tau}) kept {kept}, expected {expected}"


def test_typical_can_drop_the_most_likely_token():
    """One token at 0.5 and 50 at 0.01: H is about 2.3 nats, the big token's surprisal is
    0.69, the small ones' 4.6, so the small ones are more typical and fill tau = 0.4 first."""
    from lib.sampling import typical_filter
    probs = torch.tensor([0.5] + [0.01] * 50, dtype=torch.float64)
    out = typical_filter(probs.log(), 0.4)
    assert torch.isinf(out[0]), f"the most likely token should be removed, got logit {out[0]}"
    assert torch.isfinite(out[1:]).sum() == 40, (
        f"40 tokens of 0.01 reach mass 0.4, kept {int(torch.isfinite(out[1:]).sum())}")
    assert torch.isfinite(top_p_filter(probs.log(), 0.4)[0]), "top-p keeps the argmax"


def test_typical_keeps_mass_at_least_tau_and_respects_minus_inf():
    from lib.sampling import typical_filter
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 20, generator=g, dtype=torch.float64)
    z[:, 3] = NEG_INF
    out = typical_filter(z, 0.7)
    kept_mass = torch.where(torch.isfinite(out), torch.softmax(z, -1), 0.0).sum(-1)  # [32]
    assert torch.all(kept_mass >= 0.7), f"kept mass below tau: min {kept_mass.min():.4f}"
    assert torch.all(torch.isinf(out[:, 3])), "a -inf logit must stay removed"
    assert torch.equal(typical_filter(z, 1.0), z), "tau = 1 keeps every token"


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.5])
def test_typical_rejects_tau_outside_the_unit_interval(tau):
    from lib.sampling import typical_filter
    with pytest.raises(ValueError, match="tau"):
        typical_filter(torch.zeros(4), tau)
