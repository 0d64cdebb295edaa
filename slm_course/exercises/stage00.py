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
