"""Docstring claims of ``lib`` corrected in the claims audit of issue 12, each pinned here.

Each test checks the corrected sentence of one docstring against an independent
construction (a hand-built step function, a direct UTF-8 check, a double loop, the
moments of a truncated normal written out), so that the wrong form cannot come back
unnoticed.
"""
from __future__ import annotations

import math

import pytest
import torch

from lib.attention import sliding_window_mask
from lib.bpe import train_bpe
from lib.model import Linear
from lib.sampling import beam_search

BOS, EOS, WORD = 0, 1, 2


def _two_path_step(seqs: torch.Tensor) -> torch.Tensor:
    """Log-probs ``[n, 3]``: after bos, eos has 0.1 and WORD 0.9; after WORD, eos has 0.99."""
    rows = []
    for seq in seqs.tolist():
        if seq[-1] == BOS:
            probs = [1e-6, 0.1, 0.9 - 1e-6]
        else:
            probs = [1e-6, 0.99, 0.01 - 1e-6]
        rows.append(probs)
    return torch.tensor(rows, dtype=torch.float64).log()


def test_beam_search_raw_sum_is_biased_to_short_but_can_pick_a_longer_hypothesis():
    # lib/sampling.py beam_search: with alpha = 0 extending never raises the score, but a
    # longer hypothesis of likely tokens still beats a short unlikely one.
    seq, score = beam_search(_two_path_step, BOS, EOS, beam_size=2, max_len=4, length_penalty=0.0)
    short = math.log(0.1)
    long_ = math.log(0.9 - 1e-6) + math.log(0.99)
    assert seq == [BOS, WORD, EOS], (
        f"alpha=0 on the two-path model: expected the longer {[BOS, WORD, EOS]}, got {seq}")
    assert score == pytest.approx(long_) and long_ > short, (
        f"score {score} vs short {short}, long {long_}")


def test_bpe_round_trip_for_scalar_values_and_lone_surrogates_raise():
    # lib/bpe.py module docstring: exact round trip for strings without lone surrogates;
    # a lone surrogate has no UTF-8 bytes and raises UnicodeEncodeError (a ValueError).
    tok = train_bpe("hello hello world, héllo wörld 你好 🙂🙂", 270)
    for text in ["héllo 你好 🙂", "tab\tnew\nline", "", "\u0000\U0010ffff"]:
        assert tok.decode(tok.encode(text)) == text, f"round trip failed on {text!r}"
    with pytest.raises(UnicodeEncodeError):
        tok.encode("a\ud800b")


@pytest.mark.parametrize("lq, lk, window", [(5, 5, 2), (3, 7, 3), (6, 6, 1)])
def test_sliding_window_is_causal_and_keeps_the_window_most_recent_keys(lq, lk, window):
    # lib/attention/masks.py: Mistral-style causal window (not Longformer's two-sided one).
    mask = sliding_window_mask(lq, window, lk)
    shift = lk - lq
    for i in range(lq):
        expected = [shift + i - window < j <= shift + i for j in range(lk)]
        assert mask[i].tolist() == expected, (
            f"row {i} of ({lq}, {lk}, w={window}): expected {expected}, got {mask[i].tolist()}")
        assert not mask[i, shift + i + 1:].any(), f"row {i} sees a future key"


def test_linear_init_is_a_normal_truncated_at_three_sigma():
    # lib/model.py: N(0, s^2) with s = sqrt(2 / (d_in + d_out)), truncated to [-3s, 3s].
    torch.manual_seed(0)
    d_in, d_out = 512, 512
    weight = Linear(d_in, d_out, dtype=torch.float64).weight.detach()
    s = math.sqrt(2.0 / (d_in + d_out))
    assert weight.abs().max() <= 3 * s, f"max |w| {weight.abs().max()} exceeds 3s = {3 * s}"
    # std of N(0, 1) truncated to [-3, 3]: sqrt(1 - 6 phi(3) / (2 Phi(3) - 1))
    phi3 = math.exp(-4.5) / math.sqrt(2 * math.pi)
    mass = math.erf(3 / math.sqrt(2))
    expected_std = s * math.sqrt(1 - 6 * phi3 / mass)
    assert weight.std().item() == pytest.approx(expected_std, rel=0.01), (
        f"std {weight.std().item()} vs truncated-normal std {expected_std}")
