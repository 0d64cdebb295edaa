"""Checks for stage 00, the welcome warm-up (solutions/00_welcome): text as characters.

The oracles are Python's own: ``collections.Counter`` counts, ``sorted(set(text))`` is the
vocabulary. Each check prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from slm_course.exercises.checking import call_learner, expect, passed

# Texts that catch the usual slips: repeats, white space, an empty text, non-ASCII letters.
_TEXTS = ("hello", "To be,\nor not to be", "", "café über naïve", "aaaa")


def check_count_characters(fn: Callable[[str], Any]) -> bool:
    """Check ``fn(text) -> dict[str, int]``: how many times each character occurs."""
    name = "check_count_characters"
    for text in _TEXTS:
        got = call_learner(name, fn, text)
        expect(name, isinstance(got, Mapping), f"for {text!r} expected a dict, got "
               f"{type(got).__name__}", hint="return a dict {character: count}")
        want = dict(Counter(text))
        if any(not isinstance(k, str) or len(k) != 1 for k in got):
            bad_keys = [k for k in got if not isinstance(k, str) or len(k) != 1][:3]
            expect(name, False, f"for {text!r} the keys must be single characters, got "
                   f"{bad_keys}",
                   hint="iterate over the characters of the text (`for ch in text`), not "
                        "over words (`text.split()`)")
        missing = sorted(set(want) - set(got))
        expect(name, not missing, f"for {text!r} some characters are not counted: {missing}",
               hint="count every character, spaces and newlines included")
        wrong = {k: got[k] for k in want if got[k] != want[k]}
        expect(name, not wrong and len(got) == len(want),
               f"for {text!r} some counts are wrong", expected=want, got=dict(got),
               hint="add 1 for each occurrence: counts[ch] = counts.get(ch, 0) + 1")
    return passed(name, f"{len(_TEXTS)} texts, including an empty one and accented letters")


def check_build_vocabulary(fn: Callable[[str], Any]) -> bool:
    """Check ``fn(text) -> list[str]``: the distinct characters of the text, sorted."""
    name = "check_build_vocabulary"
    for text in _TEXTS:
        got = call_learner(name, fn, text)
        expect(name, isinstance(got, list), f"for {text!r} expected a list, got "
               f"{type(got).__name__}",
               hint="a set has no order; turn it into a sorted list with sorted(...)")
        want = sorted(set(text))
        expect(name, len(got) == len(set(got)), f"for {text!r} the vocabulary has repeats",
               expected=want, got=got, hint="keep each character once: set(text)")
        expect(name, set(got) == set(want), f"for {text!r} the vocabulary holds the wrong "
               f"characters", expected=want, got=got,
               hint="every distinct character belongs in it, spaces and newlines too")
        expect(name, got == want, f"for {text!r} the vocabulary is not sorted",
               expected=want, got=got,
               hint="sort it (sorted(...)) so every run gives each character the same id")
    return passed(name, f"{len(_TEXTS)} texts: distinct, complete and sorted")


def check_encode_decode(encode: Callable[[str, list[str]], Any],
                        decode: Callable[[list[int], list[str]], Any]) -> bool:
    """Check ``encode(text, vocab) -> list[int]`` and ``decode(ids, vocab) -> str``.

    The id of a character is its position in ``vocab``; decode inverts encode.
    """
    name = "check_encode_decode"
    vocab = sorted(set("".join(_TEXTS)))
    for text in _TEXTS:
        want = [vocab.index(ch) for ch in text]
        got = call_learner(name, encode, text, vocab)
        expect(name, isinstance(got, list) and all(isinstance(i, int) for i in got),
               f"encode({text!r}) should return a list of ints", got=got,
               hint="one int per character: [position of ch in vocab for ch in text]")
        expect(name, got == want, f"encode({text!r}) gives the wrong ids",
               expected=want, got=got,
               hint="the id of a character is its index in vocab (build a dict "
                    "{ch: i for i, ch in enumerate(vocab)} once)")
        back = call_learner(name, decode, want, vocab)
        expect(name, back == text, f"decode of the ids of {text!r} is wrong",
               expected=text, got=back,
               hint="look each id up in vocab and join the characters: ''.join(...)")
    shuffled = vocab[::-1]  # the ids depend on the vocabulary passed in, not a global one
    expect(name, call_learner(name, encode, "hello", shuffled)
           == [shuffled.index(c) for c in "hello"],
           "encode ignores the vocab argument",
           hint="use the vocab you are given, not a vocabulary from an earlier cell")
    return passed(name, f"{len(_TEXTS)} round trips and a reversed vocabulary")


# ---------------------------------------------------------------- the open challenge

#: the open challenge: characters per token on Tiny Shakespeare's held-out last 10%, with a
#: vocabulary of at most CHALLENGE_VOCAB tokens (one token per character gives 1.0)
CHALLENGE_TARGET = 1.35
CHALLENGE_VOCAB = 256


def challenge_split() -> tuple[str, str]:
    """Tiny Shakespeare cut once by position: (the first 90%, the last 10%), as the course's
    language models split it. Build your vocabulary from the first part only."""
    from slm_course.data import load_tinyshakespeare

    text = load_tinyshakespeare()
    n_train = int(len(text) * 0.9)
    return text[:n_train], text[n_train:]


def check_compression_challenge(encode: Callable[[str], Any], decode: Callable[[Any], str],
                                vocab_size: int, target: float | None = None) -> float:
    """The open challenge: a lossless code with at most 256 token ids that writes the
    held-out text in few tokens. ``encode(text) -> list of ids in [0, vocab_size)``,
    ``decode(ids) -> text`` with ``decode(encode(t)) == t``; the score is characters per
    token on the held-out 10% (fast profile: its first 20,000 characters). Target: 1.35."""
    from slm_course.helpers.workload import pick

    name = "check_compression_challenge"
    target = CHALLENGE_TARGET if target is None else target
    expect(name, isinstance(vocab_size, int) and 1 <= vocab_size <= CHALLENGE_VOCAB,
           f"vocab_size must be an int from 1 to {CHALLENGE_VOCAB}", got=vocab_size,
           hint="pass len(your_vocabulary)")
    held_out = challenge_split()[1][:pick(fast=20_000, full=None)]
    ids = call_learner(name, encode, held_out)
    expect(name, isinstance(ids, (list, tuple)) and all(isinstance(i, int) for i in ids),
           "encode must return a list of int ids", got=type(ids).__name__,
           hint="return a list such as [12, 0, 57, ...]")
    expect(name, all(0 <= i < vocab_size for i in ids),
           f"an id is outside 0..{vocab_size - 1}", got=[i for i in ids
                                                        if not 0 <= i < vocab_size][:5],
           hint="every id is a position in your vocabulary")
    back = call_learner(name, decode, list(ids))
    if back != held_out:
        where = next((k for k, (a, b) in enumerate(zip(back, held_out, strict=False))
                      if a != b), min(len(back), len(held_out)))
        expect(name, False, f"decode(encode(text)) is not the text: they first differ at "
               f"character {where}", expected=held_out[where:where + 30],
               got=str(back)[where:where + 30],
               hint="the code must be lossless: every character, space and newline comes "
                    "back; keep the single characters in the vocabulary as a fallback")
    ratio = len(held_out) / max(len(ids), 1)
    expect(name, ratio >= target, f"{ratio:.3f} characters per token, the target is "
           f"{target}", expected=f">= {target}", got=round(ratio, 3),
           hint="add frequent words (with their leading space) or pairs of characters to "
                "the vocabulary, and encode greedily with the longest match first")
    passed(name, f"{ratio:.3f} characters per token on {len(held_out):,} held-out characters "
                 f"with {vocab_size} tokens (target {target})")
    return ratio
