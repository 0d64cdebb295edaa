"""What every tokenizer is: a pair of inverse maps, and a plain-dict form for checkpoints.

    encode: str -> list[int],   decode: list[int] -> str,   decode(encode(s)) == s

Stages 08 and 14: stage 08 (text as data) teaches tokenization, stage 14 (GPT) relies on it.
"""

from __future__ import annotations

from typing import Any, Protocol


class Tokenizer(Protocol):
    """What the model, the trainer and the sampler need from a tokenizer."""

    kind: str  # the name in the registry, in configs and in saved dicts

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def as_token_ids(ids: Any, vocab_size: int) -> list[int]:
    """Turn a list/array/tensor of ids into ints, checking each is in [0, vocab_size)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab_size}); "
                         f"was this text produced by a different tokenizer or model?")
    return out
