"""A text corpus as a language-modelling dataset: token ids, a fixed split, random batches.

The corpus is split once, by position: the first 90% of the text trains, the last 10%
validates (as nanoGPT does for Tiny Shakespeare), so validation text is text the model has
never seen. A batch is B windows of T + 1 consecutive tokens taken at random offsets i_b:

    x[b] = ids[i_b : i_b + T],      y[b] = ids[i_b + 1 : i_b + T + 1]

so y[b, t] is the token that follows x[b, :t+1], and every window gives T training examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from slm_course.tokenizers import CharTokenizer, Tokenizer

SPLITS = ("train", "val")
TOKENIZER_KINDS = ("char", "bpe")


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Return (train_text, val_text): the first ``1 - val_fraction`` of ``text``, then the rest."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(len(text) * (1.0 - val_fraction))
    return text[:n_train], text[n_train:]


def load_corpus(dataset: str = "tinyshakespeare") -> str:
    """The text of a course dataset (``"tinyshakespeare"``) or of a UTF-8 text file path."""
    if dataset == "tinyshakespeare":
        from slm_course.data import load_tinyshakespeare

        return load_tinyshakespeare()
    path = Path(dataset)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise ValueError(f"unknown dataset {dataset!r}: use 'tinyshakespeare' or the path of a "
                     f"UTF-8 text file")


def build_tokenizer(kind: str, text: str, train_text: str | None = None,
                    bpe_vocab_size: int = 512) -> Tokenizer:
    """A character tokenizer over every character of ``text``, or a byte-level BPE tokenizer
    trained on ``train_text`` only (the validation text must not shape the tokenizer)."""
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "bpe":
        from slm_course.bpe import ByteBPETokenizer

        return ByteBPETokenizer.train(text if train_text is None else train_text, bpe_vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}; use one of {TOKENIZER_KINDS}")


@dataclass
class LMData:
    """Token ids of a corpus split in two, and the tokenizer that made them."""

    tokenizer: Tokenizer
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,) int64 token ids
    train_chars: int  # characters of text behind each split, to convert nats/token to
    val_chars: int  # nats/character when tokenizers are compared

    @classmethod
    def from_text(cls, text: str, tokenizer: Tokenizer, val_fraction: float = 0.1) -> LMData:
        """Split ``text`` 90/10 (by default) and encode each part with ``tokenizer``."""
        train_text, val_text = split_text(text, val_fraction)
        return cls(tokenizer=tokenizer,
                   train=torch.tensor(tokenizer.encode(train_text), dtype=torch.long),
                   val=torch.tensor(tokenizer.encode(val_text), dtype=torch.long),
                   train_chars=len(train_text), val_chars=len(val_text))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return self.train if name == "train" else self.val

    def chars_per_token(self, split: str = "val") -> float:
        """Compression ratio of the tokenizer on ``split``: characters / tokens."""
        chars = self.train_chars if split == "train" else self.val_chars
        return chars / len(self.split(split))

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: x (B, T) and y (B, T) = x shifted left by one token.

        Offsets are drawn with ``generator`` (a ``torch.Generator``), so a saved generator
        state replays exactly the same batches.
        """
        data = self.split(split)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 1 <= block_size < len(data):
            raise ValueError(f"block_size={block_size} does not fit the {split} split of "
                             f"{len(data)} tokens; use a block_size in [1, {len(data) - 1}] "
                             f"or a larger corpus")
        ix = torch.randint(len(data) - block_size, (batch_size, 1), generator=generator)  # (B, 1)
        offsets = torch.arange(block_size)  # (T,)
        x = data[ix + offsets]  # (B, T)
        y = data[ix + offsets + 1]  # (B, T)
        if device is not None:
            x, y = x.to(device), y.to(device)
        return x, y

    def fixed_batches(self, split: str, n_batches: int, batch_size: int, block_size: int,
                      seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same ``n_batches`` batches on every call: an evaluation set that never changes,
        so two validation losses differ only because the model did."""
        generator = torch.Generator().manual_seed(seed)
        return [self.get_batch(split, batch_size, block_size, generator)
                for _ in range(n_batches)]


def prepare_lm_data(dataset: str = "tinyshakespeare", tokenizer: str = "char",
                    bpe_vocab_size: int = 512, val_fraction: float = 0.1,
                    existing: Tokenizer | None = None) -> LMData:
    """Load ``dataset``, build (or reuse ``existing``) the tokenizer and encode both splits."""
    text = load_corpus(dataset)
    if existing is None:
        train_text, _ = split_text(text, val_fraction)
        existing = build_tokenizer(tokenizer, text, train_text, bpe_vocab_size)
    return LMData.from_text(text, existing, val_fraction)
