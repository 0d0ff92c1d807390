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
