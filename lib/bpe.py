"""Byte-level byte-pair encoding (BPE), in plain Python.

The base vocabulary is the 256 byte values, so every Unicode string can be encoded (as its
UTF-8 bytes) and there is no unknown token. Training repeatedly finds the most frequent
adjacent pair of token ids and gives it a new id (256, 257, ...), up to ``vocab_size``.
Text is first split into chunks (a word with its leading space, a run of punctuation, a
run of whitespace) and merges never cross a chunk boundary, as in GPT-2.

Encoding applies the learned merges in the order they were learned (lowest new id
first); decoding concatenates the bytes of each id and decodes UTF-8. For ids produced by
``encode`` the round trip ``decode(encode(s)) == s`` is exact for every string.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from lib._checks import check_in_range

N_BYTES = 256
# A word with an optional leading space, a run of other non-space symbols with an
# optional leading space, trailing whitespace before a word is left for that word.
CHUNK_PATTERN = re.compile(r" ?\w+| ?[^\s\w]+|\s+(?!\S)|\s+")

Pair = tuple[int, int]


def split_chunks(text: str) -> list[str]:
    """Split ``text`` into pre-tokenization chunks; ``"".join(chunks) == text``."""
    return CHUNK_PATTERN.findall(text)


def pair_counts(words: dict[tuple[int, ...], int]) -> Counter[Pair]:
    """Count adjacent id pairs over ``words`` (a word's ids -> how often it occurs)."""
    counts: Counter[Pair] = Counter()
    for ids, freq in words.items():
        for pair in zip(ids, ids[1:]):
            counts[pair] += freq
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> tuple[int, ...]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right)."""
    out: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return tuple(out)


class BPETokenizer:
    """A trained byte-level BPE: ``merges`` maps a pair of ids to its new id."""

    def __init__(self, merges: dict[Pair, int]) -> None:
        self.merges = dict(merges)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(N_BYTES)}
        for (left, right), new_id in sorted(self.merges.items(), key=lambda kv: kv[1]):
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        ids: tuple[int, ...] = tuple(chunk)
        while len(ids) >= 2:
            # The pair that was merged earliest in training goes first.
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return list(ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (UTF-8 bytes, chunked, merges applied by rank)."""
        ids: list[int] = []
        for chunk in split_chunks(text):
            ids.extend(self._encode_chunk(chunk.encode("utf-8")))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of ``ids``; raises ``ValueError`` for an id outside the vocabulary."""
        parts = []
        for i in ids:
            if i not in self.vocab:
                raise ValueError(f"ids contains {i}, outside the vocabulary [0, {self.vocab_size})")
            parts.append(self.vocab[i])
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``. A cut through a multi-byte character decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def train_bpe(text: str, vocab_size: int) -> BPETokenizer:
    """Learn ``vocab_size - 256`` merges on ``text``.

    Each step merges the most frequent adjacent pair (ties: the smallest pair, so
    training is deterministic). Training stops early when no pair occurs twice, because
    merging a pair seen once saves nothing on the corpus.
    """
    check_in_range("vocab_size", vocab_size, N_BYTES, float("inf"))
    words = Counter(tuple(chunk.encode("utf-8")) for chunk in split_chunks(text))
    merges: dict[Pair, int] = {}
    for new_id in range(N_BYTES, vocab_size):
        counts = pair_counts(words)
        if not counts:
            break
        pair, count = max(counts.items(), key=lambda kv: (kv[1], (-kv[0][0], -kv[0][1])))
        if count < 2:
            break
        merges[pair] = new_id
        merged: Counter[tuple[int, ...]] = Counter()
        for ids, freq in words.items():
            merged[merge_pair(ids, pair, new_id)] += freq
        words = merged
    return BPETokenizer(merges)
