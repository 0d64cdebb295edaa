"""Character, word and byte-level BPE tokenizers: round trips, merges, clear errors."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slm_course.tokenizers import (
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    split_words,
    tokenizer_from_dict,
)
from slm_course.tokenizers.bpe import ByteBPETokenizer, count_pairs, merge_pair

SAMPLE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
          "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than "
          "to famish?\n") * 3


# ---- character tokenizer ---------------------------------------------------------------

def test_char_round_trip_and_vocab():
    tok = CharTokenizer.from_text(SAMPLE)
    assert tok.vocab_size == len(set(SAMPLE))
    assert tok.chars == sorted(tok.chars)
    ids = tok.encode(SAMPLE)
    assert tok.decode(ids) == SAMPLE
    assert all(0 <= i < tok.vocab_size for i in ids)


def test_char_unknown_character_is_named():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"unknown character 'z' \(U\+007A\) at position 2"):
        tok.encode("abz")


def test_char_out_of_range_ids_are_an_error():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        CharTokenizer.from_text("abc").decode([0, 3])


@pytest.mark.parametrize("alphabet", ["", "aa", ["ab"]])
def test_char_bad_alphabet(alphabet):
    with pytest.raises(ValueError):
        CharTokenizer(alphabet)


# ---- byte-level BPE ----------------------------------------------------------------------

def test_bpe_merges_follow_the_textbook_example():
    # Wikipedia's BPE example: aaabdaaabac -> Z=aa, Y=ab, X=ZY.
    tok = ByteBPETokenizer.train("aaabdaaabac", 259)
    a, b = ord("a"), ord("b")
    assert list(tok.merges) == [(a, a), (a, b), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, a, ord("c")]


def _naive_train(text, vocab_size):
    """The definition, recounting every pair after every merge (the oracle for train())."""
    import re

    from slm_course.tokenizers.bpe import CHUNK_PATTERN
    chunks = Counter(re.findall(CHUNK_PATTERN, text))
    words = [list(c.encode("utf-8")) for c in chunks]
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter()
        for ids, w in zip(words, chunks.values(), strict=True):
            count_pairs(ids, counts, w)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        words = [merge_pair(ids, best, new_id) for ids in words]
    return merges


def test_incremental_training_equals_the_naive_definition():
    tok = ByteBPETokenizer.train(SAMPLE, 330)
    assert list(tok.merges) == _naive_train(SAMPLE, 330)


def test_bpe_is_deterministic_and_compresses():
    a = ByteBPETokenizer.train(SAMPLE, 300)
    b = ByteBPETokenizer.train(SAMPLE, 300)
    assert a.to_dict() == b.to_dict()
    assert len(a.encode(SAMPLE)) < 0.6 * len(SAMPLE.encode())


def test_merges_never_cross_words():
    tok = ByteBPETokenizer.train(SAMPLE, 350)
    for token in tok.vocab.values():
        body = token[1:] if token.startswith(b" ") else token  # a word may carry one space
        assert b" " not in body or not body.strip(), token


@pytest.fixture(scope="module")
def trained():
    return ByteBPETokenizer.train(SAMPLE + "héllo wörld ünïcödé 日本語 🤖🤖", 320)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_unicode_string(trained, text):
    assert trained.decode(trained.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Cs", "Lu", "Zs"])))
def test_bpe_round_trips_lone_surrogates(trained, text):
    assert trained.decode(trained.encode(text)) == text


def test_bpe_decode_of_a_partial_character_does_not_crash(trained):
    ids = trained.encode("🤖")
    byte_ids = list("🤖".encode())
    assert trained.decode(byte_ids[:2]) == "\ufffd" or "\ufffd" in trained.decode(byte_ids[:2])
    assert trained.decode(ids) == "🤖"


def test_bpe_rejects_small_vocab_and_corrupt_merges():
    with pytest.raises(ValueError, match="at least 256"):
        ByteBPETokenizer.train("abc", 100)
    with pytest.raises(ValueError, match="corrupt"):
        ByteBPETokenizer([(0, 300)])


# ---- word tokenizer --------------------------------------------------------------------

def test_split_words_keeps_words_apostrophes_punctuation_and_line_breaks():
    text = "O'er the King's head, thou art 2 fools!\nAll: well."
    assert split_words(text) == ["o'er", "the", "king's", "head", ",", "thou", "art", "2",
                                 "fools", "!", "\n", "all", ":", "well", "."]
    assert split_words(text, punctuation=False, newlines=False) == [
        "o'er", "the", "king's", "head", "thou", "art", "2", "fools", "all", "well"]
    assert split_words("Thou", lowercase=False) == ["Thou"]


def test_word_vocabulary_is_ranked_by_count_and_unknown_words_map_to_unk():
    tok = WordTokenizer.train(SAMPLE, vocab_size=4)
    counts = Counter(split_words(SAMPLE))
    top3 = sorted(counts, key=lambda w: (-counts[w], w))[:3]
    assert tok.words == ["<unk>", *top3]
    ids = tok.encode("speak famish zebra")
    assert ids == [tok.words.index("speak") if "speak" in tok.words else 0, 0, 0]
    full = WordTokenizer.train(SAMPLE)
    assert full.vocab_size == len(counts) + 1
    assert full.decode(full.encode("All:\n\nSpeak,  SPEAK.\n")) == "all :\n\nspeak , speak .\n"


def test_word_tokenizer_errors_are_clear():
    with pytest.raises(ValueError, match="at least 2"):
        WordTokenizer.train(SAMPLE, vocab_size=1)
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(["the", "<unk>"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        WordTokenizer.train(SAMPLE, 5).decode([7])


# ---- serialisation -----------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: CharTokenizer.from_text(SAMPLE),
                                  lambda: ByteBPETokenizer.train(SAMPLE, 300),
                                  lambda: WordTokenizer.train(SAMPLE, 10)])
def test_save_load_round_trip(tmp_path, make):
    tok = make()
    save_tokenizer(tok, tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert type(again) is type(tok)
    assert again.encode(SAMPLE) == tok.encode(SAMPLE)
    assert tokenizer_from_dict(tok.to_dict()).to_dict() == tok.to_dict()


def test_load_errors_are_clear(tmp_path):
    bad = tmp_path / "tok.json"
    bad.write_text("{ truncated")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(bad)
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="kind 'wordpiece'"):
        tokenizer_from_dict({"kind": "wordpiece"})
