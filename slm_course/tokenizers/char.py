"""The character tokenizer: one token per character of a fixed alphabet.

Stages 08 and 14: stage 08 (text as data) teaches it, stage 14 trains its GPT on it.
"""

from __future__ import annotations

from typing import Any

from slm_course.tokenizers.base import as_token_ids


class CharTokenizer:
    """One token per character of a fixed alphabet (Tiny Shakespeare: 65 characters).

    ids are positions in the sorted alphabet: ``encode(s)[i] = alphabet.index(s[i])``.
    """

    kind = "char"

    def __init__(self, alphabet: str | list[str]):
        chars = list(alphabet)
        if not chars:
            raise ValueError("a CharTokenizer needs a non-empty alphabet")
        if len(set(chars)) != len(chars):
            raise ValueError("the alphabet contains repeated characters")
        if any(len(c) != 1 for c in chars):
            raise ValueError("every alphabet entry must be a single character")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the alphabet from every distinct character in ``text``, sorted."""
        return cls(sorted(set(text)))

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> CharTokenizer:
        """The registry's common constructor; a character vocabulary has no size to choose."""
        return cls.from_text(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError as err:
            bad = err.args[0]
            pos = text.index(bad)
            raise ValueError(
                f"unknown character {bad!r} (U+{ord(bad):04X}) at position {pos}: this "
                f"tokenizer knows only its {self.vocab_size} training characters; remove it "
                f"from the text or train a byte-level BPE tokenizer, which can encode anything"
            ) from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in as_token_ids(ids, self.vocab_size))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        if data.get("kind") != cls.kind or not isinstance(data.get("chars"), str):
            raise ValueError(f"not a character tokenizer: kind={data.get('kind')!r}")
        return cls(data["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
