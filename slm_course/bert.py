"""BERT: the transformer without the causal mask, pretrained by filling in masked tokens.

An encoder reads the whole sequence at once, so token t sees the tokens after it too:

    h_0 = E_tok[x_t] + E_pos[t] (+ E_seg[s_t])               embeddings
    h_l = Block_l(h_{l-1}, causal=False, padding_mask)       stage 13's blocks, l = 1..n_layer
    z_t = GELU(LN(h_L)_t W_t + b_t)  ->  LN  ->  E_tok^T + b    MLM head tied to the embeddings

Masked language modelling (MLM) pretraining: select each ordinary token with probability
0.15 (special tokens never); of the selected ones 80% become [MASK], 10% a random token and
10% stay as they are (the 80/10/10 rule of Devlin et al. 2019), and the loss is the
cross-entropy at the selected positions only (targets are IGNORE_INDEX everywhere else):

    L = -(1 / |M|) sum_{t in M} log softmax(z_t)[x_t]

Fine-tuning for classification reads the final state of the [CLS] token that starts every
input: P(c | x) = softmax(LN(h_L)_0 W_c + b_c).

The tokens are characters (``slm_course.tokenizers.CharTokenizer``) after five special ones.

Stage 15: BERT, masked language modelling and fine-tuning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.helpers.eval_mode import evaluating
from slm_course.seq2seq import IGNORE_INDEX, sequence_loss
from slm_course.tokenizers import CharTokenizer
from slm_course.transformer import Block, LayerNorm, check_attention_path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))


# ---------------------------------------------------------------------------------------
# The vocabulary: five special tokens, then characters
# ---------------------------------------------------------------------------------------


class BertCharTokenizer:
    """Character tokens with BERT's special tokens in front: id = 5 + the character's index
    in a :class:`CharTokenizer` alphabet; a character outside the alphabet is [UNK]."""

    kind = "bert-char"

    def __init__(self, alphabet: str | Sequence[str]) -> None:
        self.chars = CharTokenizer(alphabet)  # checks the alphabet
        self.n_special = len(SPECIAL_TOKENS)

    @classmethod
    def from_text(cls, text: str) -> BertCharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return self.n_special + self.chars.vocab_size

    def encode(self, text: str) -> list[int]:
        ids = self.chars._ids
        return [self.n_special + ids[c] if c in ids else UNK_ID for c in text]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Characters as they are, a special token as its name (e.g. "[MASK]")."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return "".join(SPECIAL_TOKENS[i] if i < self.n_special else
                       self.chars.chars[i - self.n_special] for i in ids)

    def encode_batch(self, texts: Sequence[str], max_len: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ([CLS] text [SEP] padded with [PAD]: ids (B, T), padding_mask (B, T),
        True at real tokens); a text longer than max_len - 2 characters is cut."""
        if not texts or max_len < 3:
            raise ValueError(f"encode_batch needs at least one text and max_len >= 3 (room for "
                             f"[CLS], a character and [SEP]), got {len(texts)} texts, "
                             f"max_len={max_len}")
        rows = [[CLS_ID, *self.encode(t[: max_len - 2]), SEP_ID] for t in texts]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), PAD_ID, dtype=torch.long)  # (B, T)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return ids, ids != PAD_ID

    def __repr__(self) -> str:
        return f"BertCharTokenizer(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------------------------------
# The 80/10/10 masking rule
# ---------------------------------------------------------------------------------------


def mask_tokens(ids: torch.Tensor, vocab_size: int, *, mask_prob: float = 0.15,
                replace_probs: tuple[float, float] = (0.8, 0.1),
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """MLM inputs and targets from token ids (B, T): each ordinary token (id >= 5) is
    selected with probability ``mask_prob``; a selected token becomes [MASK] with
    probability replace_probs[0], a random ordinary token with probability replace_probs[1],
    else stays. targets = ids at the selected positions, IGNORE_INDEX elsewhere."""
    _check_masking(ids, vocab_size, mask_prob, replace_probs)
    n_special = len(SPECIAL_TOKENS)
    u_select = torch.rand(ids.shape, generator=generator)  # (B, T)
    u_action = torch.rand(ids.shape, generator=generator)  # (B, T)
    random_ids = torch.randint(n_special, vocab_size, ids.shape, generator=generator)
    selected = (u_select < mask_prob) & (ids.cpu() >= n_special)  # specials never
    to_mask = selected & (u_action < replace_probs[0])
    to_random = selected & (u_action >= replace_probs[0]) & (u_action < sum(replace_probs))
    inputs = ids.cpu().clone()
    inputs[to_mask] = MASK_ID
    inputs[to_random] = random_ids[to_random]
    targets = torch.where(selected, ids.cpu(), IGNORE_INDEX)
    return inputs.to(ids.device), targets.to(ids.device)


def _check_masking(ids: torch.Tensor, vocab_size: int, mask_prob: float,
                   replace_probs: tuple[float, float]) -> None:
    if ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"ids must be int64 token ids of shape (B, T), got {ids.dtype} "
                         f"{tuple(ids.shape)}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got "
                         f"[{int(ids.min())}, {int(ids.max())}]: is vocab_size right?")
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    if min(replace_probs) < 0 or sum(replace_probs) > 1.0 + 1e-9:
        raise ValueError(f"replace_probs = (P[mask], P[random]) must be >= 0 and sum to at "
                         f"most 1, got {replace_probs}")


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


@dataclass
class BertConfig:
    """The shape of a :class:`BERT`; ``vocab_size`` counts the special tokens too."""

    vocab_size: int
    block_size: int = 64  # the longest input, [CLS] and [SEP] included
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    n_segments: int = 0  # 2 for sentence pairs (segment embeddings); 0: none
    attention: str = "fast"  # "fast": fused kernel; "explicit": the readable maths

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive int, got {value!r}")
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size={self.vocab_size} leaves no room for ordinary tokens "
                             f"after the {len(SPECIAL_TOKENS)} special ones")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                             f"each head gets n_embd // n_head channels")
        if not 0.0 <= self.dropout < 1.0 or self.n_segments < 0:
            raise ValueError(f"need 0 <= dropout < 1 and n_segments >= 0, got "
                             f"dropout={self.dropout}, n_segments={self.n_segments}")
        check_attention_path(self.attention)


class BERT(nn.Module):
    """The encoder with its MLM head: token ids (B, T) -> logits over the vocabulary (B, T, V)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"BERT needs a BertConfig, got {type(config).__name__}")
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embeddings
        self.wpe = nn.Embedding(c.block_size, c.n_embd)  # learned positions
        self.wse = nn.Embedding(c.n_segments, c.n_embd) if c.n_segments else None  # segments
        self.drop = nn.Dropout(c.dropout)
        self.h = nn.ModuleList(Block(c.n_embd, c.n_head, dropout=c.dropout, causal=False,
                                     attention=c.attention) for _ in range(c.n_layer))
        self.ln_f = LayerNorm(c.n_embd)
        self.mlm_transform = nn.Sequential(nn.Linear(c.n_embd, c.n_embd), nn.GELU(),
                                           LayerNorm(c.n_embd))
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))  # decoder = wte^T + bias
        self.apply(_init_weights)

    def encode(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None,
               segments: torch.Tensor | None = None, need_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """idx (B, T) -> final states LN(h_L) (B, T, C) and each layer's attention
        weights (B, H, T, T) (None unless need_weights)."""
        self._check_input(idx, padding_mask, segments)
        pos = torch.arange(idx.shape[1], device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        if self.wse is not None:
            x = x + self.wse(torch.zeros_like(idx) if segments is None else segments)
        x = self.drop(x)
        maps = []
        for block in self.h:
            x, weights = block(x, padding_mask, need_weights)  # every token sees every token
            maps.append(weights)
        return self.ln_f(x), maps

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, V): transform, then the tied decoder E_tok^T + b."""
        return self.mlm_transform(hidden) @ self.wte.weight.T + self.mlm_bias

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                padding_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(MLM logits (B, T, V), loss or None); the loss averages over the positions whose
        target is not IGNORE_INDEX, the masked ones."""
        hidden, _ = self.encode(idx, padding_mask)
        logits = self.mlm_logits(hidden)  # (B, T, V)
        return logits, None if targets is None else sequence_loss(logits, targets)

    def _check_input(self, idx: torch.Tensor, padding_mask: torch.Tensor | None,
                     segments: torch.Tensor | None) -> None:
        if idx.ndim != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be int64 token ids of shape (B, T), got {idx.dtype} "
                             f"{tuple(idx.shape)}")
        if idx.shape[1] > self.config.block_size:
            raise ValueError(f"the input has {idx.shape[1]} tokens but block_size is "
                             f"{self.config.block_size}; cut it or build a larger model")
        if padding_mask is not None and (padding_mask.shape != idx.shape
                                         or padding_mask.dtype != torch.bool):
            raise ValueError(f"padding_mask must be bool of shape {tuple(idx.shape)} (True = "
                             f"real token), got {padding_mask.dtype} {tuple(padding_mask.shape)}")
        if segments is not None and self.wse is None:
            raise ValueError("segments given, but the model has no segment embeddings; build "
                             "it with BertConfig(n_segments=2)")


def _init_weights(module: nn.Module) -> None:
    """BERT's initialisation: weights ~ N(0, 0.02^2), biases 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class BertClassifier(nn.Module):
    """A class for the whole input, from the final state of its [CLS] token:

        logits = Dropout(LN(h_L)_[CLS]) W_c + b_c          (B, num_classes)
    """

    def __init__(self, bert: BERT, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2, got {num_classes}")
        self.bert = bert
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(bert.config.n_embd, num_classes)

    def forward(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) starting with [CLS] -> (logits (B, num_classes), loss or None)."""
        if (idx[:, 0] != CLS_ID).any():
            raise ValueError("every input must start with [CLS] (id 2): the head reads its "
                             "state; build inputs with BertCharTokenizer.encode_batch")
        hidden, _ = self.bert.encode(idx, padding_mask)  # (B, T, C)
        logits = self.head(self.drop(hidden[:, 0]))  # (B, C) -> (B, num_classes)
        return logits, None if labels is None else F.cross_entropy(logits, labels)


# ---------------------------------------------------------------------------------------
# Evaluation: the whole validation split, masked once with a fixed seed
# ---------------------------------------------------------------------------------------


def masked_windows(tokens: torch.Tensor, block_size: int, vocab_size: int, *, seed: int = 0,
                   mask_prob: float = 0.15, replace_probs: tuple[float, float] = (0.8, 0.1)
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut a split's ids (N,) into consecutive windows (W, block_size) and mask them with a
    generator seeded by ``seed``: (clean ids, inputs, targets), the same every call."""
    n_windows = len(tokens) // block_size
    if n_windows < 1:
        raise ValueError(f"the split has {len(tokens)} tokens, fewer than block_size = "
                         f"{block_size}")
    clean = tokens[: n_windows * block_size].view(n_windows, block_size)  # (W, T)
    inputs, targets = mask_tokens(clean, vocab_size, mask_prob=mask_prob,
                                  replace_probs=replace_probs,
                                  generator=torch.Generator().manual_seed(seed))
    return clean, inputs, targets


@torch.no_grad()
def mlm_metrics(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                batch_size: int = 128) -> dict[str, float]:
    """Loss (nats per masked token) and accuracy over every masked position of
    ``inputs``/``targets`` (W, T); ``model(x)`` returns (logits (B, T, V), _)."""
    device = next(model.parameters()).device
    total, correct, count = 0.0, 0, 0
    with evaluating(model):
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size].to(device), targets[i:i + batch_size].to(device)
            logits, _ = model(x)  # (B, T, V)
            scored = y != IGNORE_INDEX
            total += float(F.cross_entropy(logits[scored].float(), y[scored], reduction="sum"))
            correct += int((logits[scored].argmax(-1) == y[scored]).sum())
            count += int(scored.sum())
    return {"loss": total / count, "accuracy": correct / count, "n_masked": count}


def unigram_baseline(train_tokens: torch.Tensor, targets: torch.Tensor, vocab_size: int
                     ) -> dict[str, float]:
    """The best guess without context: the training split's token frequencies p (add-one
    smoothed). Loss -mean log p(y) and accuracy of always guessing the commonest token,
    over the masked targets."""
    counts = torch.bincount(train_tokens, minlength=vocab_size).double() + 1.0
    log_p = (counts / counts.sum()).log()
    y = targets[targets != IGNORE_INDEX]
    return {"loss": float(-log_p[y].mean()),
            "accuracy": float((y == counts.argmax()).double().mean())}


@torch.no_grad()
def causal_fill_accuracy(model: nn.Module, clean: torch.Tensor, targets: torch.Tensor,
                         batch_size: int = 128) -> float:
    """A causal LM's left-only guess at the masked positions: it reads the clean windows
    and predicts token t from tokens < t (position 0 has no left context: counted wrong)."""
    device = next(model.parameters()).device
    correct, count = 0, 0
    with evaluating(model):
        for i in range(0, len(clean), batch_size):
            x, y = clean[i:i + batch_size].to(device), targets[i:i + batch_size].to(device)
            logits, _ = model(x[:, :-1])  # (B, T-1, V): logits[:, t] predicts x[:, t + 1]
            scored = y[:, 1:] != IGNORE_INDEX
            correct += int((logits.argmax(-1)[scored] == y[:, 1:][scored]).sum())
            count += int((y != IGNORE_INDEX).sum())
    return correct / count


def mlm_batches(tokens: torch.Tensor, block_size: int, batch_size: int, vocab_size: int, *,
                seed: int = 0, device: torch.device | str = "cpu"
                ) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """The loop's ``next_batch`` for MLM pretraining: random windows (B, block_size),
    masked afresh each time -> (inputs, targets) on ``device``."""
    if len(tokens) <= block_size:
        raise ValueError(f"need more than block_size = {block_size} tokens, got {len(tokens)}")
    g = torch.Generator().manual_seed(seed)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=g)
        clean = torch.stack([tokens[s:s + block_size] for s in starts.tolist()])  # (B, T)
        inputs, targets = mask_tokens(clean, vocab_size, generator=g)
        return inputs.to(device), targets.to(device)

    return next_batch


def speaker_lines(text: str, n_speakers: int = 5) -> tuple[list[str], list[int], list[str]]:
    """Tiny Shakespeare's lines with who speaks them: a speech is a "NAME:" line and the
    lines under it up to a blank line. Returns (lines, label ids, speakers) for the
    ``n_speakers`` speakers with the most lines (speakers sorted by name)."""
    speeches = [block.split("\n") for block in text.strip().split("\n\n")]
    pairs = [(head[:-1], line) for head, *lines in speeches if head.endswith(":")
             for line in lines if line.strip()]
    top = sorted(name for name, _ in Counter(s for s, _ in pairs).most_common(n_speakers))
    if len(top) < n_speakers:
        raise ValueError(f"the text has only {len(top)} speakers, asked for {n_speakers}")
    label = {name: i for i, name in enumerate(top)}
    kept = [(line, label[s]) for s, line in pairs if s in label]
    return [line for line, _ in kept], [y for _, y in kept], top


@torch.no_grad()
def predict_classes(model: BertClassifier, ids: torch.Tensor, padding_mask: torch.Tensor,
                    batch_size: int = 512) -> torch.Tensor:
    """The most likely class of every input, (N,) on the CPU, in eval mode and in batches."""
    device = next(model.parameters()).device
    with evaluating(model):
        return torch.cat([model(ids[i:i + batch_size].to(device),
                                padding_mask[i:i + batch_size].to(device))[0].argmax(-1).cpu()
                          for i in range(0, len(ids), batch_size)])
