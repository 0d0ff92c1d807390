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
from lib.lora import lora_delta
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


def _first_adam_step_update(r: int, alpha: float) -> tuple[float, float]:
    """After one Adam step on ``B`` (``B = 0``, ``A`` random): (||dW||_F, <grad_W L, dW>)."""
    gen = torch.Generator().manual_seed(0)
    d, n = 128, 256
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    y = torch.randn(n, d, generator=gen, dtype=torch.float64)
    a = torch.randn(r, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    b = torch.zeros(d, r, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([b], lr=1e-3)
    ((x @ (w + lora_delta(a, b, alpha)).T - y) ** 2).mean().backward()
    opt.step()
    delta = lora_delta(a, b.detach(), alpha)                     # [d, d]
    w_leaf = w.clone().requires_grad_(True)
    (grad_w,) = torch.autograd.grad(((x @ w_leaf.T - y) ** 2).mean(), w_leaf)
    return delta.norm().item(), (grad_w * delta).sum().item()


def test_lora_alpha_over_r_keeps_the_first_order_effect_not_the_norm():
    # lib/lora.py module docstring: with alpha / r and Adam, the first step's first-order
    # loss change is independent of r, while ||dW|| falls like 1 / sqrt(r) (rsLoRA's point).
    norm_4, effect_4 = _first_adam_step_update(4, alpha=8.0)
    norm_64, effect_64 = _first_adam_step_update(64, alpha=8.0)
    assert effect_4 < 0 and effect_64 / effect_4 == pytest.approx(1.0, rel=0.1), (
        f"first-order loss change at r=4: {effect_4}, at r=64: {effect_64}")
    assert norm_4 / norm_64 == pytest.approx(4.0, rel=0.2), (
        f"||dW|| at r=4: {norm_4}, at r=64: {norm_64}; expected a ratio near sqrt(64 / 4) = 4")
    # alpha / sqrt(r) (pass alpha * sqrt(r) to the alpha / r convention) keeps the norm
    norm_64_rs, _ = _first_adam_step_update(64, alpha=8.0 * math.sqrt(64 / 4))
    assert norm_64_rs / norm_4 == pytest.approx(1.0, rel=0.2), (
        f"rank-stabilized ||dW|| at r=64: {norm_64_rs} vs {norm_4} at r=4")
