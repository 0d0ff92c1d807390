"""Byte-level byte-pair encoding (BPE), in plain Python.

The base vocabulary is the 256 byte values, so every Unicode string can be encoded (as its
UTF-8 bytes) and there is no unknown token. (A Python ``str`` may also hold lone
surrogates such as ``"\\ud800"``, which are not Unicode scalar values and have no UTF-8
bytes: encoding them raises ``UnicodeEncodeError``, a ``ValueError``.) Training repeatedly
finds the most frequent adjacent pair of token ids and gives it a new id (256, 257, ...).
Text is first split into chunks by a pre-tokenization pattern and merges never cross a
chunk boundary, as in GPT-2.
Two patterns are built in:

- ``"simple"``: a word with its optional leading space, a run of other symbols with its
  optional leading space, runs of whitespace (the book's default);
- ``"gpt2"``: GPT-2's pattern, which also splits off the English contractions ``'s 't 're
  've 'm 'll 'd`` and keeps letters and numbers (Unicode categories L and N) apart.

Special tokens (``"<|endoftext|>"``, say) are cut out of the text before pre-tokenization:
they are never split, never merged with their neighbours, and get the ids after the merges.

Encoding applies the learned merges in the order they were learned (lowest new id first);
decoding concatenates the bytes of each id and decodes UTF-8. For ids produced by
``encode`` the round trip ``decode(encode(s)) == s`` is exact for every string without
lone surrogates.
"""
from __future__ import annotations

import heapq
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

from lib._checks import check_in_range, check_option

N_BYTES = 256
Pair = tuple[int, int]

# A word with an optional leading space, a run of other non-space symbols with an
# optional leading space; a whitespace run gives its last space to the word that follows.
CHUNK_PATTERN = re.compile(r" ?\w+| ?[^\s\w]+|\s+(?!\S)|\s+")
PATTERNS = ("simple", "gpt2")


@lru_cache(maxsize=None)
def _category_class(prefix: str) -> str:
    """A ``re`` character class of every code point whose Unicode category starts with
    ``prefix`` (``"L"``: letters, ``"N"``: numbers), written as ranges.

    Python's ``re`` has no ``\\p{L}``; ``\\w`` mixes letters with every numeric character
    (``"²"`` and ``"Ⅻ"`` are ``\\w`` but not ``\\d``), so the GPT-2 classes are built here
    from ``unicodedata`` once, on first use.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                   for a, b in ranges)


@lru_cache(maxsize=None)
def chunk_pattern(name: str = "simple") -> re.Pattern[str]:
    """The compiled pre-tokenization pattern ``name`` (``"simple"`` or ``"gpt2"``)."""
    check_option("pattern", name, PATTERNS)
    if name == "simple":
        return CHUNK_PATTERN
    letters, numbers = _category_class("L"), _category_class("N")
    # GPT-2's pattern, with \p{L} and \p{N} spelled out as explicit classes.
    return re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+"
                      rf"| ?[^\s{letters}{numbers}]+|\s+(?!\S)|\s+")


def split_chunks(text: str, pattern: str = "simple") -> list[str]:
    """Split ``text`` into pre-tokenization chunks; ``"".join(chunks) == text``.

    Example: ``split_chunks("Hi  there!")`` -> ``["Hi", " ", " there", "!"]``.
    """
    return chunk_pattern(pattern).findall(text)


def pair_counts(words: dict[tuple[int, ...], int]) -> Counter[Pair]:
    """Count adjacent id pairs over ``words`` (a word's ids -> how often it occurs).

    Example: ``{(1, 2, 3): 2, (2, 3): 5}`` -> ``{(1, 2): 2, (2, 3): 7}``.
    """
    counts: Counter[Pair] = Counter()
    for ids, freq in words.items():
        for pair in zip(ids, ids[1:]):
            counts[pair] += freq
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> tuple[int, ...]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right).

    Example: ``merge_pair((1, 2, 3, 1, 2), pair=(1, 2), new_id=256)`` -> ``(256, 3, 256)``.
    """
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


def _check_special_tokens(special_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(special_tokens, str):
        raise ValueError(f"special_tokens must be a sequence of strings, got the string "
                         f"{special_tokens!r} (wrap it in a list)")
    tokens = tuple(dict.fromkeys(special_tokens))  # drop repeats, keep order
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special_tokens must be non-empty strings, got {token!r}")
    return tokens


def _special_splitter(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    """A pattern that finds special tokens, longest first, so that when two start at the
    same place the longest wins (``"<a><a>"`` before ``"<a>"``)."""
    if not special_tokens:
        return None
    by_length = sorted(special_tokens, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in by_length))


def _segments(text: str, splitter: re.Pattern[str] | None) -> Iterator[tuple[str, bool]]:
    """Yield ``(piece, is_special)`` covering ``text`` in order."""
    start = 0
    if splitter is not None:
        for match in splitter.finditer(text):
            if match.start() > start:
                yield text[start:match.start()], False
            yield match.group(), True
            start = match.end()
    if start < len(text):
        yield text[start:], False


class BPETokenizer:
    """A trained byte-level BPE.

    ``merges`` maps a pair of ids to its new id (256, 257, ...). ``special_tokens`` get the
    ids after the merges, in the order given: with 10 merges, the first special token is 266.
    """

    def __init__(self, merges: dict[Pair, int], special_tokens: Sequence[str] = (),
                 pattern: str = "simple") -> None:
        check_option("pattern", pattern, PATTERNS)
        self.merges = dict(merges)
        self.pattern = pattern
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(N_BYTES)}
        for (left, right), new_id in sorted(self.merges.items(), key=lambda kv: kv[1]):
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self.special_tokens: dict[str, int] = {}
        for token in _check_special_tokens(special_tokens):
            self.special_tokens[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
        self._splitter = _special_splitter(self.special_tokens)
        self._chunk_cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_chunk(self, chunk: str) -> list[int]:
        if chunk in self._chunk_cache:  # corpora repeat words: encode each one once
            return self._chunk_cache[chunk]
        ids: tuple[int, ...] = tuple(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # The pair that was merged earliest in training goes first.
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        self._chunk_cache[chunk] = list(ids)
        return list(ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: special tokens cut out first, then each piece is
        chunked, turned into UTF-8 bytes, and merged by rank."""
        ids: list[int] = []
        for piece, is_special in _segments(text, self._splitter):
            if is_special:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in split_chunks(piece, self.pattern):
                ids.extend(self._encode_chunk(chunk))
        return ids

    def _stable_prefix_length(self, buffer: str) -> int:
        """How much of ``buffer`` encodes the same whatever text is appended to it.

        Two things can still change at the end of the buffer: a special token whose first
        characters have arrived but not the rest (or a longer special token that starts
        with a complete shorter one), and the last chunks of ordinary text (``" a"`` may
        grow into ``" about"``; a whitespace run gives its last space to the next word).
        Everything before the last two chunks of the last ordinary piece is final.
        """
        cut = len(buffer)
        longest = max((len(t) for t in self.special_tokens), default=0)
        for start in range(max(0, len(buffer) - longest + 1), len(buffer)):
            tail = buffer[start:]  # may still grow into a (longer) special token
            if any(t.startswith(tail) and len(t) > len(tail) for t in self.special_tokens):
                cut = start
                break
        piece_start = 0
        for match in (self._splitter.finditer(buffer) if self._splitter else ()):
            if match.end() > cut:  # a match that runs into the undecided tail is undecided
                cut = min(cut, match.start())
                break
            piece_start = match.end()
        chunks = split_chunks(buffer[piece_start:cut], self.pattern)
        return piece_start + sum(len(c) for c in chunks[:-2])

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Lazily yield the ids of ``"".join(lines)``, holding only a short tail in memory.

        Each line is appended to a buffer; the part of the buffer that no later text can
        change (see ``_stable_prefix_length``) is encoded and yielded, the rest waits.
        """
        buffer = ""
        for line in lines:
            buffer += line
            n = self._stable_prefix_length(buffer)
            yield from self.encode(buffer[:n])
            buffer = buffer[n:]
        yield from self.encode(buffer)

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


def _word_counts(text: str, special_tokens: Sequence[str], pattern: str) -> Counter[tuple[int, ...]]:
    """How often each chunk occurs in ``text``, as byte tuples; special tokens are cut out
    first and not counted (no merge may involve them)."""
    words: Counter[tuple[int, ...]] = Counter()
    for piece, is_special in _segments(text, _special_splitter(special_tokens)):
        if not is_special:
            words.update(tuple(chunk.encode("utf-8")) for chunk in split_chunks(piece, pattern))
    return words


def _n_merges(vocab_size: int, special_tokens: Sequence[str]) -> int:
    check_in_range("vocab_size", vocab_size, N_BYTES + len(special_tokens), float("inf"))
    return vocab_size - N_BYTES - len(special_tokens)


def train_bpe(text: str, vocab_size: int, special_tokens: Sequence[str] = (),
              pattern: str = "simple") -> BPETokenizer:
    """Learn up to ``vocab_size - 256 - len(special_tokens)`` merges on ``text``.

    ``vocab_size`` counts everything: the 256 bytes, the merges and the special tokens.
    Each step merges the most frequent adjacent pair. **Tie-break:** among pairs with the
    same count, the smallest pair of ids wins (``(97, 98)`` before ``(97, 99)``), so training
    is deterministic. Training stops early when no pair occurs twice, because merging a pair
    seen once saves nothing on the corpus.

    Pair counts are updated incrementally: after a merge only the words that contain the
    merged pair are recounted (an index maps each pair to those words), and the best pair
    comes from a heap whose stale entries are skipped. The merges are exactly those of
    ``train_bpe_naive``, which recounts every pair after every merge.
    """
    check_option("pattern", pattern, PATTERNS)
    specials = _check_special_tokens(special_tokens)
    n_merges = _n_merges(vocab_size, specials)
    counted = _word_counts(text, specials, pattern)
    words = [list(ids) for ids in counted]                  # word index -> its ids
    freqs = list(counted.values())                          # word index -> occurrences
    counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)   # pair -> words containing it
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            counts[pair] += freqs[w]
            where[pair].add(w)
    # Max-heap by count, then smallest pair: entries are (-count, pair).
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)

    merges: dict[Pair, int] = {}
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg_count:
            continue  # stale entry: this pair's count changed since it was pushed
        if -neg_count < 2:
            break
        new_id = N_BYTES + len(merges)
        merges[pair] = new_id
        changed: set[Pair] = set()
        for w in where.pop(pair):
            old_pairs = list(zip(words[w], words[w][1:]))
            words[w] = list(merge_pair(words[w], pair, new_id))
            new_pairs = list(zip(words[w], words[w][1:]))
            for p in old_pairs:                             # take the word's pairs out ...
                counts[p] -= freqs[w]
            for p in new_pairs:                             # ... and put the merged ones back
                counts[p] += freqs[w]
                where[p].add(w)
            for p in set(old_pairs) - set(new_pairs):       # w no longer holds these pairs
                where[p].discard(w)
            changed.update(old_pairs, new_pairs)
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]
    return BPETokenizer(merges, specials, pattern)


def train_bpe_naive(text: str, vocab_size: int, special_tokens: Sequence[str] = (),
                    pattern: str = "simple") -> BPETokenizer:
    """The textbook trainer: recount every pair of every word after every merge.

    Same merges as ``train_bpe`` (same tie-break); kept as the readable reference and for
    the speed comparison in the BPE chapter.
    """
    check_option("pattern", pattern, PATTERNS)
    specials = _check_special_tokens(special_tokens)
    n_merges = _n_merges(vocab_size, specials)
    words = _word_counts(text, specials, pattern)
    merges: dict[Pair, int] = {}
    while len(merges) < n_merges:
        counts = pair_counts(words)
        if not counts:
            break
        # Highest count; among equal counts the smallest pair.
        pair, count = max(counts.items(), key=lambda kv: (kv[1], (-kv[0][0], -kv[0][1])))
        if count < 2:
            break
        new_id = N_BYTES + len(merges)
        merges[pair] = new_id
        merged: Counter[tuple[int, ...]] = Counter()
        for ids, freq in words.items():
            merged[merge_pair(ids, pair, new_id)] += freq
        words = merged
    return BPETokenizer(merges, specials, pattern)
