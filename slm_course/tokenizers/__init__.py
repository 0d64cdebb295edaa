"""Tokenizers turn text into integer ids and back: one protocol, a registry from kind to class.

    encode: str -> list[int],   decode: list[int] -> str,   decode(encode(s)) == s

Each kind is a class with ``kind`` (its name here, in configs and in checkpoints), a
``train(text, vocab_size)`` constructor, ``to_dict`` and ``from_dict``. Adding a tokenizer
is one class and one line in :data:`TOKENIZERS`.

Stages 08 and 14: stage 08 (text as data) teaches every tokenizer here, stage 14 (GPT) trains on
them, and later stages reuse them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slm_course.tokenizers.base import Tokenizer, as_token_ids
from slm_course.tokenizers.bpe import ByteBPETokenizer
from slm_course.tokenizers.char import CharTokenizer
from slm_course.tokenizers.words import WordTokenizer, split_words

TOKENIZERS: dict[str, type] = {cls.kind: cls for cls in (CharTokenizer, ByteBPETokenizer,
                                                    WordTokenizer)}

__all__ = ["TOKENIZERS", "ByteBPETokenizer", "CharTokenizer", "Tokenizer", "as_token_ids",
           "load_tokenizer", "save_tokenizer", "split_words", "tokenizer_class",
           "tokenizer_from_dict", "train_tokenizer", "WordTokenizer"]


def tokenizer_class(kind: str) -> type:
    """The class registered for ``kind``; an unknown kind is an error listing the known ones."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; use one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind]


def train_tokenizer(kind: str, text: str, vocab_size: int | None = None) -> Tokenizer:
    """Build a tokenizer of ``kind`` from ``text`` (the training split only: validation text
    must not shape the tokenizer). ``vocab_size`` is ignored by kinds that have no choice."""
    return tokenizer_class(kind).train(text, vocab_size)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (e.g. from a checkpoint)."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in TOKENIZERS:
        raise ValueError(f"cannot rebuild a tokenizer of kind {kind!r}; expected one of "
                         f"{sorted(TOKENIZERS)} (is this a tokenizer saved by slm_course?)")
    return TOKENIZERS[kind].from_dict(data)


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
