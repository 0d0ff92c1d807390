"""Tests for lib.sampling.speculative_generate: speculative sampling end to end.

The reference is the target model's own autoregressive distribution, computed exactly by
enumerating every sequence of a tiny vocabulary (V = 3, three new tokens: 27 sequences).
The generated sequences' frequencies at a fixed seed are compared with it by a chi-square
test (p-value from torch.special.gammainc). The models are arbitrary causal models: each
prefix gets its own random next-token distribution, so the test does not lean on a bigram
or any other structure."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.sampling import speculative_generate

V = 3


def causal_model(seed: int, sharpness: float):
    """A causal model over ``V`` tokens with a random next-token distribution per prefix.

    Returns ``probs_fn(ids [T]) -> [T, V]`` (float64), row ``t`` depending on all of
    ``ids[: t + 1]``, and ``next_dist(prefix) -> [V]``."""
    table: dict[tuple[int, ...], torch.Tensor] = {}

    def next_dist(prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix not in table:
            code = sum(t * V ** i for i, t in enumerate(prefix)) + 1000 * len(prefix)
            g = torch.Generator().manual_seed(seed * 100_003 + code)
            logits = sharpness * torch.randn(V, generator=g, dtype=torch.float64)
            table[prefix] = torch.softmax(logits, dim=-1)
        return table[prefix]

    rows: dict[tuple[int, ...], torch.Tensor] = {}

    def probs_fn(ids: torch.Tensor) -> torch.Tensor:
        seq = tuple(ids.tolist())
        if seq not in rows:
            rows[seq] = torch.stack([next_dist(seq[: t + 1]) for t in range(len(seq))])  # [T, V]
        return rows[seq]

    return probs_fn, next_dist


TARGET, TARGET_NEXT = causal_model(seed=1, sharpness=0.5)
DRAFT, _ = causal_model(seed=2, sharpness=1.0)             # a different, poorer model
PROMPT = [0]


def exact_target_distribution(n_new: int) -> dict[tuple[int, ...], float]:
    """P(sequence) = prod_t p(x_t | prompt, x_<t), for all V**n_new sequences."""
    dist = {}
    for seq in itertools.product(range(V), repeat=n_new):
        prob, prefix = 1.0, tuple(PROMPT)
        for token in seq:
            prob *= TARGET_NEXT(prefix)[token].item()
            prefix += (token,)
        dist[seq] = prob
    return dist


def chi_square_p_value(counts: dict[tuple[int, ...], int], probs: dict[tuple[int, ...], float],
                       n: int) -> float:
    stat = sum((counts.get(s, 0) - n * p) ** 2 / (n * p) for s, p in probs.items())
    dof = len(probs) - 1
    return 1.0 - torch.special.gammainc(torch.tensor(dof / 2, dtype=torch.float64),
                                        torch.tensor(stat / 2, dtype=torch.float64)).item()


@pytest.mark.parametrize("k", [1, 2, 4])                  # k = 4 > max_new_tokens = 3
def test_generated_sequences_follow_the_target_distribution(k):
    n_new, n_runs = 3, 1500
    exact = exact_target_distribution(n_new)
    assert abs(sum(exact.values()) - 1.0) < 1e-12
    assert min(exact.values()) * n_runs > 5, "expected counts too small for chi-square"
    g = torch.Generator().manual_seed(k)
    counts: dict[tuple[int, ...], int] = {}
    rejections = 0
    for _ in range(n_runs):
        stats: dict[str, list[int]] = {}
        seq = tuple(speculative_generate(TARGET, DRAFT, PROMPT, n_new, k, generator=g,
                                         stats=stats))
        assert len(seq) == n_new, f"k={k}: expected {n_new} tokens, got {len(seq)}"
        counts[seq] = counts.get(seq, 0) + 1
        rejections += sum(a < k for a in stats["accepted"])
    assert rejections > n_runs // 4, "the residual path must be exercised"
    p_value = chi_square_p_value(counts, exact, n_runs)
    assert p_value > 1e-3, f"k={k}: chi-square p-value {p_value:.2e} against the target"


def test_chi_square_detects_a_wrong_distribution():
    """The test above has power: sampling from the draft alone fails it."""
    n_new, n_runs = 3, 1500
    exact = exact_target_distribution(n_new)
    g = torch.Generator().manual_seed(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(n_runs):
        ids = list(PROMPT)
        for _ in range(n_new):
            ids.append(int(torch.multinomial(DRAFT(torch.tensor(ids))[-1], 1, generator=g)))
        seq = tuple(ids[len(PROMPT):])
        counts[seq] = counts.get(seq, 0) + 1
    assert chi_square_p_value(counts, exact, n_runs) < 1e-6


@pytest.mark.parametrize("k, n_new", [(1, 5), (3, 10), (5, 2)])
def test_identical_draft_accepts_everything(k, n_new):
    stats: dict[str, list[int]] = {}
    out = speculative_generate(TARGET, TARGET, [1, 2], n_new, k,
                               generator=torch.Generator().manual_seed(0), stats=stats)
    assert len(out) == n_new
    assert stats["accepted"] == [k] * math.ceil(n_new / (k + 1)), stats


def test_call_counts_match_the_stats():
    calls = {"target": 0, "draft": 0}

    def counted(name, fn):
        def wrapped(ids):
            calls[name] += 1
            return fn(ids)
        return wrapped

    stats: dict[str, list[int]] = {}
    k, n_new = 3, 12
    out = speculative_generate(counted("target", TARGET), counted("draft", DRAFT), PROMPT, n_new,
                               k, generator=torch.Generator().manual_seed(3), stats=stats)
    steps = len(stats["accepted"])
    assert calls == {"target": steps, "draft": k * steps}, (calls, steps)
    assert all(0 <= a <= k for a in stats["accepted"])
    emitted = sum(a + 1 for a in stats["accepted"])
    assert n_new <= emitted < n_new + k + 1 and len(out) == n_new    # only the overshoot is cut


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 5), n_new=st.integers(1, 9), seed=st.integers(0, 2**16),
       prompt=st.lists(st.integers(0, V - 1), min_size=1, max_size=3))
def test_length_and_accounting_laws(k, n_new, seed, prompt):
    """For any k, length and prompt: exactly n_new in-vocabulary tokens, each step accepts
    0..k drafts, and only the last step can overshoot (by at most k tokens)."""
    stats: dict[str, list[int]] = {}
    out = speculative_generate(TARGET, DRAFT, prompt, n_new, k,
                               generator=torch.Generator().manual_seed(seed), stats=stats)
    assert len(out) == n_new and all(0 <= t < V for t in out)
    emitted = [a + 1 for a in stats["accepted"]]
    assert all(1 <= e <= k + 1 for e in emitted)
    assert sum(emitted[:-1]) < n_new <= sum(emitted), (emitted, n_new)


def test_same_seed_same_tokens_and_tensor_prompt():
    a = speculative_generate(TARGET, DRAFT, [0], 6, 2, generator=torch.Generator().manual_seed(7))
    b = speculative_generate(TARGET, DRAFT, torch.tensor([0]), 6, 2,
                             generator=torch.Generator().manual_seed(7))
    assert a == b and all(isinstance(t, int) and 0 <= t < V for t in a)


def test_bad_input():
    with pytest.raises(ValueError, match="k .* >= 1, got 0"):
        speculative_generate(TARGET, DRAFT, PROMPT, 3, 0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        speculative_generate(TARGET, DRAFT, PROMPT, 0, 2)
    with pytest.raises(ValueError, match=r"prompt must have 1 dimensions, got shape \(1, 2\)"):
        speculative_generate(TARGET, DRAFT, [[0, 1]], 3, 2)
    with pytest.raises(ValueError, match="prompt must hold at least one"):
        speculative_generate(TARGET, DRAFT, [], 3, 2)
    with pytest.raises(ValueError, match=r"draft_probs_fn must return .*\[T=1, V\], got shape \(3,\)"):
        speculative_generate(TARGET, lambda ids: torch.full((V,), 1 / V), PROMPT, 3, 2)
    with pytest.raises(ValueError, match=r"target_probs_fn must return .*got shape \(2, 3\)"):
        speculative_generate(lambda ids: torch.full((2, V), 1 / V), DRAFT, PROMPT, 3, 2)
