"""The word tokenizer: regex pre-tokenization, a vocabulary of frequent words, and ``<unk>``.

A word-level model sees one token per word or punctuation mark. The text is split by a
regular expression (:data:`WORD_PATTERN`), lower-cased, and every word outside the
vocabulary (the ``vocab_size - 1`` most frequent training words) becomes ``<unk>``::

    encode("Thou art a knave!")  ->  ids of ["thou", "art", "a", "knave", "!"]

Unlike the character and byte-level BPE tokenizers this one is *lossy*: case, spacing and
rare words are lost, so ``decode(encode(s))`` is the normalised text, not ``s``.

Stages 08 and 14: stage 08 (text as data) teaches it and its word n-grams use it; stage 14
registers it with the other tokenizers; stages 09 (word2vec) and 11 (the word-level LSTM)
use it too.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from slm_course.tokenizers.base import as_token_ids

# A word (letters, with inner apostrophes: "o'er", "king's"), a number, one punctuation
# mark, or a line break (kept: a line ends a verse, and a language model should know it).
WORD_PATTERN = r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+|[^\w\s]|\n"
UNK = "<unk>"


def split_words(text: str, *, lowercase: bool = True, punctuation: bool = True,
                newlines: bool = True) -> list[str]:
    """Pre-tokenize ``text`` into words: ``re.findall(WORD_PATTERN, text)``.

    ``punctuation=False`` keeps only words and numbers (what word2vec wants);
    ``newlines=False`` drops the line-break tokens.
    """
    words = re.findall(WORD_PATTERN, text.lower() if lowercase else text)
    if not punctuation:
        words = [w for w in words if w == "\n" or w[0].isalnum()]
    if not newlines:
        words = [w for w in words if w != "\n"]
    return words


class WordTokenizer:
    """One token per word of a fixed vocabulary; id 0 is ``<unk>`` for every other word.

    ids are ranks: the most frequent training word is 1, the next 2, ... (ties alphabetical).
    """

    kind = "word"

    def __init__(self, words: list[str]):
        if not words or words[0] != UNK:
            raise ValueError(f"a WordTokenizer's vocabulary must start with {UNK!r}")
        if len(set(words)) != len(words):
            raise ValueError("the word vocabulary contains repeated words")
        self.words = list(words)
        self._ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None, min_count: int = 1
              ) -> WordTokenizer:
        """Keep the ``vocab_size - 1`` most frequent words seen at least ``min_count`` times
        (all of them if ``vocab_size`` is None), plus ``<unk>``."""
        if vocab_size is not None and vocab_size < 2:
            raise ValueError(f"vocab_size={vocab_size}: a word vocabulary needs at least 2 "
                             f"entries (<unk> and one word)")
        counts = Counter(split_words(text))
        ranked = sorted((w for w, c in counts.items() if c >= min_count),
                        key=lambda w: (-counts[w], w))
        keep = ranked if vocab_size is None else ranked[:vocab_size - 1]
        return cls([UNK, *keep])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        """ids of ``split_words(text)``; a word outside the vocabulary becomes ``<unk>`` (0)."""
        return [self._ids.get(w, 0) for w in split_words(text)]

    def decode(self, ids: list[int]) -> str:
        """Words joined by spaces, with no space around a line break."""
        words = [self.words[i] for i in as_token_ids(ids, self.vocab_size)]
        return "".join(w if k == 0 or "\n" in (w, words[k - 1]) else " " + w
                       for k, w in enumerate(words))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        if data.get("kind") != cls.kind or not isinstance(data.get("words"), list):
            raise ValueError(f"not a word tokenizer: kind={data.get('kind')!r}")
        return cls(data["words"])

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"
