"""A pseudo-English corpus of any size, for timing tokenizer trainers.

Words are built from syllables (onset, vowel, coda) and drawn with Zipf-like frequencies
(the r-th word of the lexicon has weight 1 / (r + 2)), so, as in real text, a few words are
very common and most are rare. Deterministic for a given seed. Used by the BPE chapter and
by ``bench/bpe_train.py``.
"""
from __future__ import annotations

import itertools
import random

ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
          "st", "tr", "ch", "sh", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
CODAS = ["", "", "n", "r", "s", "t", "l", "nd", "ng", "st"]
ENDINGS = [". ", ", ", "! ", "? ", ".\n"]


def synthetic_corpus(n_bytes: int, seed: int = 0, lexicon_size: int = 20_000) -> str:
    """``n_bytes`` characters of sentences over a random lexicon (ASCII, so bytes = chars)."""
    rng = random.Random(seed)

    def word() -> str:
        n_syllables = rng.choice([1, 1, 2, 2, 3, 4])
        return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(n_syllables))

    lexicon = [word() for _ in range(lexicon_size)]
    cum_weights = list(itertools.accumulate(1 / (r + 2) for r in range(lexicon_size)))
    sentences, size = [], 0
    while size < n_bytes:
        words = rng.choices(lexicon, cum_weights=cum_weights, k=rng.randint(4, 18))
        sentence = " ".join(words).capitalize() + rng.choice(ENDINGS)
        sentences.append(sentence)
        size += len(sentence)
    return "".join(sentences)[:n_bytes]
