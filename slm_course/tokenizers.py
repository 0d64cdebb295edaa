"""Tokenizers turn text into integer ids and back.

A tokenizer is a pair of inverse maps, ``encode: str -> list[int]`` and
``decode: list[int] -> str``, with ``decode(encode(s)) == s``. This module holds the
character tokenizer and the common interface; byte-level BPE lives in ``slm_course.bpe``.
Every tokenizer serialises to a plain dict (``to_dict``), stored in checkpoints, and
:func:`tokenizer_from_dict` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class Tokenizer(Protocol):
    """What the model, the trainer and the sampler need from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


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
        try:
            return "".join(self.chars[i] for i in _as_ints(ids, self.vocab_size))
        except IndexError:  # pragma: no cover - _as_ints already checked the range
            raise

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _as_ints(ids: Any, vocab_size: int) -> list[int]:
    """Turn a list/array/tensor of ids into ints, checking each is in [0, vocab_size)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab_size}); "
                         f"was this text produced by a different tokenizer or model?")
    return out


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (e.g. from a checkpoint)."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == CharTokenizer.kind:
        return CharTokenizer(data["chars"])
    if kind == "byte-bpe":
        from slm_course.bpe import ByteBPETokenizer

        return ByteBPETokenizer.from_dict(data)
    raise ValueError(f"cannot rebuild a tokenizer of kind {kind!r}; expected 'char' or "
                     f"'byte-bpe' (is this a tokenizer saved by slm_course?)")


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    """Write the tokenizer as JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer written by :func:`save_tokenizer`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no tokenizer file at {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a tokenizer file (invalid JSON: {err})") from None
    return tokenizer_from_dict(data)
