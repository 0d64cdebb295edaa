"""The transformer, piece by piece: multi-head attention, positions, LayerNorm, the block.

    x = x + MultiHeadAttention(LayerNorm(x))     # tokens exchange information
    x = x + MLP(LayerNorm(x))                    # each token computes on its own

This is the pre-norm block of GPT-2 and nanoGPT. :class:`TinyTransformer` stacks blocks into
a small model for synthetic tasks: decoder-only (``causal=True``: a token sees only the past,
the GPT of stage 14) or an encoder (``causal=False``: every token sees every other one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.attention import attention_weights, causal_mask
from slm_course.optim import warmup_cosine_lr
from slm_course.seq2seq import SOS, make_digit_batch

POSITIONS = ("learned", "sinusoidal")
IGNORE = -100  # target id that cross-entropy skips (F.cross_entropy's ignore_index)


@dataclass
class TransformerConfig:
    """Everything that fixes the shape of a :class:`TinyTransformer`."""

    vocab_size: int
    block_size: int  # the longest sequence the model accepts
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    mlp_ratio: int = 4  # the MLP's hidden width is mlp_ratio * n_embd
    dropout: float = 0.0
    causal: bool = True  # True: decoder-only (sees the past); False: encoder (sees all)
    positions: str = "learned"  # "learned" or "sinusoidal"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                             f"each head gets n_embd // n_head channels, so pick e.g. "
                             f"n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions={self.positions!r}; choose one of {POSITIONS}")
        if self.positions == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"sinusoidal positions pair a sine with a cosine, so n_embd must "
                             f"be even, got {self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10_000.0
                         ) -> torch.Tensor:
    """The fixed encodings of "Attention is all you need", shape (n_positions, d_model):

        PE[p, 2i] = sin(p / base^(2i / d_model)),   PE[p, 2i+1] = cos(p / base^(2i / d_model))

    Each pair of channels is a clock turning at its own speed, from one turn every 2*pi
    positions (i = 0) to one every 2*pi*base positions.
    """
    if n_positions < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"need n_positions >= 1 and an even d_model >= 2, got "
                         f"n_positions={n_positions}, d_model={d_model}")
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (C/2,)
    angle = position / base ** (two_i / d_model)  # (T, C/2)
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class LayerNorm(nn.Module):
    """Normalise each token's features, then rescale:

        y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta

    mean and (biased) var are taken over the last dimension, one token at a time, so unlike
    batch norm it behaves the same for any batch size, in training and in evaluation.
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # gamma
        self.bias = nn.Parameter(torch.zeros(d_model))  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class MultiHeadAttention(nn.Module):
    """n_head attentions side by side, each on its own d = C / n_head channels:

        head_h = softmax(Q_h K_h^T / sqrt(d) + M) V_h,   Q_h = x W_q^h, K_h = x W_k^h, V_h = x W_v^h
        MHA(x) = concat(head_1, ..., head_H) W_o

    The three input projections live in one (C, 3C) linear layer, laid out [W_q; W_k; W_v]
    like ``nn.MultiheadAttention.in_proj_weight``.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}; choose "
                             f"a width that is a multiple of the number of heads")
        self.n_head = n_head
        self.d_model = d_model
        self.qkv = nn.Linear(d_model, 3 * d_model)  # x -> [q, k, v]
        self.proj = nn.Linear(d_model, d_model)  # W_o
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None,
                causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> (output (B, T, C), weights (B, H, T, T)).

        padding_mask (B, T) bool: True at real tokens, False at padding, which no query may
        attend to (the opposite of ``nn.MultiheadAttention``'s key_padding_mask).
        causal: query t may attend only to keys <= t.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x of shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        mask = None
        if padding_mask is not None:
            if padding_mask.shape != (B, T) or padding_mask.dtype != torch.bool:
                raise ValueError(f"padding_mask must be a bool tensor of shape {(B, T)} "
                                 f"(True = real token), got {padding_mask.dtype} "
                                 f"{tuple(padding_mask.shape)}")
            mask = padding_mask[:, None, None, :]  # (B, 1, 1, T): the same for all heads
        if causal:
            future = causal_mask(T, device=x.device)  # (T, T)
            mask = future if mask is None else mask & future  # (B, 1, T, T)
        weights = attention_weights(q, k, mask)  # (B, H, T, T)
        y = self.attn_dropout(weights) @ v  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.resid_dropout(self.proj(y)), weights


class MLP(nn.Module):
    """The position-wise feed-forward net: MLP(x) = W_2 GELU(W_1 x + b_1) + b_2."""

    def __init__(self, d_model: int, ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, ratio * d_model)
        self.proj = nn.Linear(ratio * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, T, C) -> (B, T, C)


class Block(nn.Module):
    """The pre-norm transformer block:

        x = x + MHA(LN_1(x))
        x = x + MLP(LN_2(x))

    The residual path carries x through untouched; each sub-layer only adds a correction.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.causal = config.causal
        self.ln_1 = LayerNorm(config.n_embd)
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, config.dropout)
        self.ln_2 = LayerNorm(config.n_embd)
        self.mlp = MLP(config.n_embd, config.mlp_ratio, config.dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> (x (B, T, C), attention weights (B, H, T, T))."""
        a, weights = self.attn(self.ln_1(x), padding_mask, causal=self.causal)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, weights


class TinyTransformer(nn.Module):
    """Token embeddings + positions -> n_layer blocks -> LayerNorm -> logits over the vocab.

        h_0 = E[idx] + P[0..T-1],   h_l = Block_l(h_{l-1}),   logits = LN(h_L) W_head
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.pos_emb = nn.Parameter(torch.randn(config.block_size, config.n_embd) * 0.02)
        else:  # fixed: a buffer moves with .to(device) but is not trained
            self.register_buffer("pos_emb", sinusoidal_positions(config.block_size,
                                                                 config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)

    def run(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """idx (B, T) token ids -> logits (B, T, V) and each layer's weights (B, H, T, T)."""
        if idx.ndim != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size="
                             f"{self.config.block_size}; crop it or build the model with a "
                             f"larger block_size")
        x = self.drop(self.tok_emb(idx) + self.pos_emb[:T])  # (B, T, C)
        maps = []
        for block in self.blocks:
            x, weights = block(x, padding_mask)
            maps.append(weights)
        return self.head(self.ln_f(x)), maps  # (B, T, V)

    def forward(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V)."""
        return self.run(idx, padding_mask)[0]

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, n_new: int) -> torch.Tensor:
        """Append the most likely next token ``n_new`` times: (B, T0) -> (B, T0 + n_new)."""
        if not self.config.causal:
            raise ValueError("generation needs a causal (decoder-only) model; this one was "
                             "built with causal=False")
        idx = prompt
        for _ in range(n_new):
            logits = self(idx[:, -self.config.block_size:])  # (B, T, V)
            idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
        return idx


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------
# A synthetic task for a decoder-only model: read digits, then write them transformed.

def prompt_and_target(src: torch.Tensor, tgt: torch.Tensor, sep: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lay out a seq2seq pair as one sequence for a decoder-only model.

    sequence = [x_1..x_n, SEP, y_1..y_m];  inputs = sequence[:-1], targets = sequence[1:]
    with the targets inside the prompt set to IGNORE, so the loss counts only y_1..y_m.
    src (B, n), tgt (B, m) -> inputs (B, n + m), targets (B, n + m).
    """
    if src.ndim != 2 or tgt.ndim != 2 or src.shape[0] != tgt.shape[0]:
        raise ValueError(f"expected src (B, n) and tgt (B, m), got {tuple(src.shape)} and "
                         f"{tuple(tgt.shape)}")
    B, n = src.shape
    sep_col = torch.full((B, 1), sep, dtype=src.dtype, device=src.device)
    sequence = torch.cat([src, sep_col, tgt], dim=1)  # (B, n + 1 + m)
    inputs, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, : n] = IGNORE  # positions 0..n-1 predict prompt tokens: not scored
    return inputs, targets


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not IGNORE."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE)


def digit_task_batch(batch_size: int, length: int, *, task: str = "sort",
                     generator: torch.Generator | int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Strings of ``length`` digits from :func:`slm_course.seq2seq.make_digit_batch`, laid
    out for a decoder-only model: returns src (B, n), inputs (B, 2n), targets (B, 2n).

    The separator is the seq2seq start token SOS; the vocabulary is ``seq2seq.VOCAB_SIZE``.
    """
    batch = make_digit_batch(batch_size, length, length, task=task, generator=generator)
    tgt = batch.tgt_out[:, :length]  # (B, n): the answer without its EOS
    inputs, targets = prompt_and_target(batch.src, tgt, sep=SOS)
    return batch.src, inputs, targets


def train_digit_task(model: TinyTransformer, *, steps: int, batch_size: int, length: int,
                     task: str = "sort", lr: float = 3e-3, weight_decay: float = 0.01,
                     warmup: int = 50, clip: float = 1.0, seed: int = 0,
                     device: torch.device | str = "cpu") -> list[float]:
    """AdamW on fresh random batches, the learning rate warmed up linearly over ``warmup``
    steps then decayed along a cosine to lr / 10; returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # multiplies lr by the factor below
        optimizer, lambda step: warmup_cosine_lr(step, max_lr=1.0, min_lr=0.1,
                                                 warmup_steps=warmup, max_steps=steps))
    model.to(device).train()
    losses = []
    for _ in range(steps):
        _, inputs, targets = digit_task_batch(batch_size, length, task=task,
                                              generator=generator)
        loss = sequence_loss(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def digit_task_accuracy(model: TinyTransformer, *, length: int, task: str = "sort",
                        n: int = 1000, seed: int = 1, device: torch.device | str = "cpu"
                        ) -> dict[str, float]:
    """Greedy-complete ``n`` fresh prompts [x_1..x_n, SEP]; return the fraction of answers
    that are exactly right ("exact") and of digits in the right place ("token")."""
    model.to(device).eval()
    _, inputs, targets = digit_task_batch(n, length, task=task, generator=seed)
    prompt = inputs[:, : length + 1].to(device)  # (N, length + 1): the digits, then SEP
    answer = model.generate_greedy(prompt, length)[:, length + 1:]  # (N, length)
    right = answer == targets[:, length:].to(device)  # (N, length)
    return {"exact": right.all(dim=1).float().mean().item(),
            "token": right.float().mean().item()}
