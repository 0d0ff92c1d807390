"""Tests for lib.bpe: round trips on arbitrary Unicode, merges checked by hand."""
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.bpe import BPETokenizer, merge_pair, pair_counts, split_chunks, train_bpe

CORPUS = ("the cat sat on the mat. the cat ate the rat. "
          "naïve café, déjà vu: ünïcödé! 東京 東京 🙂🙂 ") * 5


@pytest.fixture(scope="module")
def tok():
    return train_bpe(CORPUS, vocab_size=300)


def test_merge_pair_is_left_to_right_and_non_overlapping():
    assert merge_pair((1, 1, 1, 2, 1, 1), (1, 1), 9) == (9, 1, 2, 9)
    assert merge_pair((), (1, 1), 9) == ()


def test_pair_counts_weighted_by_frequency():
    counts = pair_counts({(1, 2, 3): 2, (2, 3): 5})
    assert counts == Counter({(1, 2): 2, (2, 3): 7})


def test_first_merge_is_the_most_frequent_pair_counted_by_hand():
    text = "aaab aaab ab"
    # chunks: "aaab", " aaab", " ab"; pairs: (a,a) x4, (a,b) x3, (space,a) x2
    tok = train_bpe(text, vocab_size=257)
    assert tok.merges == {(ord("a"), ord("a")): 256}


def test_split_chunks_is_lossless_and_keeps_leading_space():
    text = "Hello,  world!\n\tnaïve 東京"
    chunks = split_chunks(text)
    assert "".join(chunks) == text
    assert " world" in chunks


def test_training_is_deterministic_and_ids_are_consecutive(tok):
    again = train_bpe(CORPUS, vocab_size=300)
    assert again.merges == tok.merges
    assert sorted(tok.merges.values()) == list(range(256, 256 + len(tok.merges)))
    assert tok.vocab_size == 256 + len(tok.merges)


def test_each_vocab_entry_is_the_concatenation_of_its_pair(tok):
    for (left, right), new in tok.merges.items():
        assert tok.vocab[new] == tok.vocab[left] + tok.vocab[right]
        assert left < new and right < new


def test_encoding_compresses_the_training_text(tok):
    ids = tok.encode(CORPUS)
    assert len(ids) < len(CORPUS.encode("utf-8")) / 2
    assert tok.decode(ids) == CORPUS


def test_common_word_becomes_one_token(tok):
    assert tok.encode(" cat") == [next(i for i, b in tok.vocab.items() if b == b" cat")]


def test_stops_when_no_pair_repeats():
    tok = train_bpe("abcdef", vocab_size=1000)
    assert tok.merges == {}
    assert tok.encode("abc") == [97, 98, 99]


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_round_trip_on_arbitrary_unicode(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_cut_through_a_multibyte_character_gives_replacement_char():
    tok = BPETokenizer({})
    ids = tok.encode("é")  # two bytes
    assert len(ids) == 2
    assert tok.decode(ids[:1]) == "\ufffd"


def test_errors(tok):
    with pytest.raises(ValueError, match="vocab_size must be in"):
        train_bpe("abc", vocab_size=100)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


# ---- incremental trainer, special tokens, the GPT-2 pattern, streaming encode ----------
import random  # noqa: E402

from lib.bpe import train_bpe_naive  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|end|>", "<|endoftext|><|endoftext|>"]


def _random_corpus(seed: int, n_words: int = 3000) -> str:
    """Zipf-ish words from a small syllable set, with punctuation, digits and specials."""
    rng = random.Random(seed)
    syllables = ["ka", "to", "ri", "an", "el", "mo", "su", "ne", "é", "東", "ab"]
    lexicon = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(300)]
    weights = [1 / (r + 1) for r in range(len(lexicon))]
    parts = []
    for _ in range(n_words):
        parts.append(rng.choices(lexicon, weights)[0])
        parts.append(rng.choice([" ", " ", " ", ", ", ".\n", "  ", " 42 ", " <|endoftext|> "]))
    return "".join(parts)


@pytest.mark.parametrize("pattern", ["simple", "gpt2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_trainer_gives_exactly_the_naive_merges(seed, pattern):
    text = _random_corpus(seed)
    fast = train_bpe(text, 420, special_tokens=SPECIALS, pattern=pattern)
    slow = train_bpe_naive(text, 420, special_tokens=SPECIALS, pattern=pattern)
    assert list(fast.merges.items()) == list(slow.merges.items())
    assert len(fast.merges) == 420 - 256 - len(SPECIALS)


def test_incremental_trainer_matches_on_the_book_corpus_and_stops_at_the_same_place():
    for size in (300, 5000):   # 5000 runs out of repeated pairs first
        assert train_bpe(CORPUS, size).merges == train_bpe_naive(CORPUS, size).merges


def test_ties_go_to_the_smallest_pair():
    # "ab" and "cd" both occur twice: (97, 98) < (99, 100), so "ab" is merged first.
    tok = train_bpe("ab.cd.ab.cd", vocab_size=257)
    assert tok.merges == {(97, 98): 256}


def test_special_tokens_get_the_ids_after_the_merges_and_count_in_vocab_size():
    tok = train_bpe(_random_corpus(0), 300, special_tokens=SPECIALS)
    n = len(tok.merges)
    assert n == 300 - 256 - 3 and tok.vocab_size == 300
    assert tok.special_tokens == {t: 256 + n + i for i, t in enumerate(SPECIALS)}
    assert tok.decode([256 + n]) == "<|endoftext|>"


def test_special_tokens_are_never_split_nor_merged_into_neighbours():
    text = "a<|endoftext|>b" * 50
    tok = train_bpe(text, 280, special_tokens=["<|endoftext|>"])
    eot = tok.special_tokens["<|endoftext|>"]
    for left, right in tok.merges:         # no merge learned from the special token's bytes
        assert b"<|" not in tok.vocab[left] + tok.vocab[right]
    ids = tok.encode("xx<|endoftext|>yy")
    assert ids.count(eot) == 1 and tok.decode(ids) == "xx<|endoftext|>yy"
    plain = BPETokenizer(tok.merges)        # without the special token: plain bytes
    assert eot not in plain.encode("<|endoftext|>")


def test_the_longest_special_token_wins_where_two_overlap():
    tok = BPETokenizer({}, special_tokens=SPECIALS)
    one, end, two = (tok.special_tokens[t] for t in SPECIALS)
    assert tok.encode("<|endoftext|><|endoftext|>") == [two]
    assert tok.encode("<|endoftext|><|endoftext|><|endoftext|>") == [two, one]
    assert tok.encode("<|end|><|endoftext|>") == [end, one]


@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.sampled_from(list("ab <|endoftext>\n'é東") + SPECIALS)).map("".join))
def test_round_trip_with_special_tokens(text):
    tok = BPETokenizer(train_bpe(CORPUS, 300).merges, special_tokens=SPECIALS)
    assert tok.decode(tok.encode(text)) == text


def test_gpt2_pattern_splits_contractions_letters_and_numbers():
    chunks = split_chunks("I'll pay 1234 dollars,  you've ²x", pattern="gpt2")
    assert chunks == ["I", "'ll", " pay", " 1234", " dollars", ",", " ", " you", "'ve", " ²", "x"]
    # The simple pattern keeps "'" apart and "²x" together (both are \w to Python's re).
    assert split_chunks("you've ²x") == ["you", "'", "ve", " ²x"]


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_gpt2_pattern_is_lossless(text):
    assert "".join(split_chunks(text, pattern="gpt2")) == text


@pytest.fixture(scope="module")
def special_tok():
    return train_bpe(_random_corpus(3), 400, special_tokens=SPECIALS)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.lists(st.sampled_from(
    list("ka to ri,.\n\t'é東<|endoftext>") + ["<|end", "oftext|>", "<|endoftext|>", "  "]),
    max_size=8).map("".join), max_size=12))
def test_encode_iterable_equals_encode_of_the_joined_text(special_tok, pieces):
    assert list(special_tok.encode_iterable(pieces)) == special_tok.encode("".join(pieces))


@pytest.mark.parametrize("pieces", [
    ["<|endoftext|>", "<|endoftext|>"],         # a complete token that starts a longer one
    ["ka <|endoftext|>", "<|endoftext|> to"],
    ["<|end", "oftext|>"],                      # a token cut in the middle
    ["<", "|", "end", "|>"],
    ["ka   ", "  to"],                          # a whitespace run across the cut
    ["you'", "ll"], ["ka", "ri"], ["4", "2"],
])
def test_encode_iterable_across_awkward_cuts(special_tok, pieces):
    assert list(special_tok.encode_iterable(pieces)) == special_tok.encode("".join(pieces))


def test_encode_iterable_is_lazy_and_keeps_a_short_buffer(special_tok):
    consumed = []

    def lines():
        for i in range(10_000):
            consumed.append(i)
            yield f"ka to ri {i} <|endoftext|>\n"

    stream = special_tok.encode_iterable(lines())
    first = [next(stream) for _ in range(50)]
    assert len(consumed) < 20                    # it did not read the whole input first
    whole = "".join(f"ka to ri {i} <|endoftext|>\n" for i in range(10_000))
    assert first + list(stream) == special_tok.encode(whole)


def test_new_errors():
    with pytest.raises(ValueError, match="vocab_size must be in"):
        train_bpe("abc", vocab_size=257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match="pattern must be one of"):
        train_bpe("abc", vocab_size=300, pattern="gpt4")
    with pytest.raises(ValueError, match="special_tokens must be a sequence"):
        BPETokenizer({}, special_tokens="<|endoftext|>")
    with pytest.raises(ValueError, match="special_tokens must be non-empty"):
        BPETokenizer({}, special_tokens=[""])
