"""A text corpus as a language-modelling dataset: token ids, a fixed split, random batches.

A corpus without splits of its own is split once, by position: the first 90% of the text
trains, the last 10% validates (as nanoGPT does for Tiny Shakespeare), so validation text is
text the model has never seen. WikiText-2 comes with its own train and valid splits, which
are used as they are (its test split is left for a final evaluation).

A batch is B windows of T + 1 consecutive tokens taken at random offsets i_b:

    x[b] = ids[i_b : i_b + T],      y[b] = ids[i_b + 1 : i_b + T + 1]

so y[b, t] is the token that follows x[b, :t+1], and every window gives T training examples.

Stage 14: GPT, the small language model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from slm_course.helpers.eval_mode import evaluating
from slm_course.tokenizers import Tokenizer, train_tokenizer

SPLITS = ("train", "val")


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Return (train_text, val_text): the first ``1 - val_fraction`` of ``text``, then the rest."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(len(text) * (1.0 - val_fraction))
    return text[:n_train], text[n_train:]


# The course's corpora, by name; any other name is the path of a UTF-8 text file.
CORPORA = ("tinyshakespeare", "wikitext-2")


def load_corpus(dataset: str = "tinyshakespeare") -> str:
    """The whole text of a course corpus (WikiText-2: its train, valid and test splits one
    after the other) or of a UTF-8 text file path. :func:`load_splits` gives the split."""
    if dataset == "wikitext-2":
        from slm_course.data import load_wikitext2

        return "".join(load_wikitext2().values())
    if dataset == "tinyshakespeare":
        from slm_course.data import load_tinyshakespeare

        return load_tinyshakespeare()
    path = Path(dataset)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(CORPORA)} or the "
                     f"path of a UTF-8 text file")


def load_splits(dataset: str = "tinyshakespeare", val_fraction: float = 0.1
                ) -> tuple[str, str]:
    """(train_text, val_text) of a corpus: WikiText-2's own train and valid splits
    (``val_fraction`` is not used), else :func:`split_text` of :func:`load_corpus`."""
    if dataset == "wikitext-2":
        from slm_course.data import load_wikitext2

        splits = load_wikitext2()
        return splits["train"], splits["valid"]
    return split_text(load_corpus(dataset), val_fraction)


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
        return cls.from_splits(*split_text(text, val_fraction), tokenizer)

    @classmethod
    def from_splits(cls, train_text: str, val_text: str, tokenizer: Tokenizer) -> LMData:
        """Encode a corpus that is already split (WikiText-2's own train and valid)."""
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


@torch.no_grad()
def split_loss(model: nn.Module, tokens: torch.Tensor, block_size: int,
               batch_size: int = 64, device: torch.device | str | None = None) -> float:
    """The loss on a whole split, with no sampling noise: cut ``tokens`` into consecutive
    windows of ``block_size`` + 1 tokens (the last token of a window starts the next) and
    average over every predicted token,

        L = -(1/N) sum_i log p(t_{i+1} | the tokens since the start of t_i's window).

    Each context length 1..block_size appears equally often, as in random windows, so this
    is the exact value that ``slm_course.train.estimate_loss`` estimates from a few random batches.
    """
    n_windows = (len(tokens) - 1) // block_size
    if n_windows < 1:
        raise ValueError(f"the split has {len(tokens)} tokens, fewer than block_size + 1 = "
                         f"{block_size + 1}")
    used = n_windows * block_size
    x_all = tokens[:used].view(n_windows, block_size)  # (W, T)
    y_all = tokens[1:used + 1].view(n_windows, block_size)  # (W, T)
    device = device or next(model.parameters()).device
    total = 0.0
    with evaluating(model):
        for i in range(0, n_windows, batch_size):
            x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
            _, loss = model(x, y)  # mean over the batch's tokens
            total += float(loss) * y.numel()
    return total / used


def prepare_lm_data(dataset: str = "tinyshakespeare", tokenizer: str = "char",
                    bpe_vocab_size: int = 512, val_fraction: float = 0.1,
                    existing: Tokenizer | None = None) -> LMData:
    """Load ``dataset`` split in two (:func:`load_splits`), build (or reuse ``existing``) the
    tokenizer and encode both splits."""
    train_text, val_text = load_splits(dataset, val_fraction)
    if existing is None:
        # BPE merges are learned on the training split only (validation text must not shape
        # them); a character alphabet is only the set of symbols, so it comes from all the
        # text, or a character seen only in validation could not be encoded.
        existing = train_tokenizer(tokenizer, train_text + val_text if tokenizer == "char"
                                   else train_text, bpe_vocab_size)
    return LMData.from_splits(train_text, val_text, existing)
