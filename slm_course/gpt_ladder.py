"""The GPT built one idea at a time: an ablation ladder, from a bigram table to the full block.

Every rung is a language model ``model(x, y) -> (logits, loss)`` over the same data; each adds
one idea to the rung below (Karpathy's "Let's build GPT" takes the same path):

    0 bigram               logits_t = E[x_t]          a (V, V) table, zeros at first; no context
    1 self-attention       one causal head over token + position embeddings, then a linear layer
    2 multi-head           n_head heads of width C / n_head in place of the one head
    3 + MLP                each attention layer followed by an MLP (4C wide, GELU)
    4 + residual, LayerNorm  x <- x + Attn(LN(x)); x <- x + MLP(LN(x)); a final LN (GPT's block)
    5 + dropout            the same with dropout on attention weights and sub-layer outputs

Rungs 1-5 stack ``n_layer`` layers, so rungs 1-3 show how a deep stack *without* residual
connections trains. The pieces are stage 13's ``MultiHeadAttention``, ``MLP`` and
``LayerNorm``; rung 5 is the same computation as :class:`slm_course.gpt.GPT` up to its
initialisation and weight tying.

Stage 14: GPT, the small language model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.seq2seq import IGNORE_INDEX
from slm_course.transformer import MLP, LayerNorm, MultiHeadAttention

LADDER = ("bigram", "self-attention (1 head)", "multi-head", "+ MLP",
          "+ residual & LayerNorm", "+ dropout")


@dataclass
class LadderConfig:
    """The shape of a rung; ``rung`` indexes :data:`LADDER`."""

    vocab_size: int
    block_size: int
    rung: int
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.rung < len(LADDER):
            raise ValueError(f"rung must be 0..{len(LADDER) - 1} ({', '.join(LADDER)}), "
                             f"got {self.rung}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be a multiple of n_head={self.n_head}")


class LadderLM(nn.Module):
    """One rung of the ladder (see the module docstring)."""

    def __init__(self, config: LadderConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.rung == 0:
            self.table = nn.Embedding(c.vocab_size, c.vocab_size)  # row x_t = logits of x_{t+1}
            nn.init.zeros_(self.table.weight)  # start uniform, at a loss of ln V, like the others
            return
        heads = 1 if c.rung == 1 else c.n_head
        p = c.dropout if c.rung >= 5 else 0.0
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.attn = nn.ModuleList(MultiHeadAttention(c.n_embd, heads, p) for _ in range(c.n_layer))
        self.mlp = nn.ModuleList(MLP(c.n_embd, dropout=p) for _ in range(c.n_layer)
                                 ) if c.rung >= 3 else None
        self.residual = c.rung >= 4
        if self.residual:
            self.ln_1 = nn.ModuleList(LayerNorm(c.n_embd) for _ in range(c.n_layer))
            self.ln_2 = nn.ModuleList(LayerNorm(c.n_embd) for _ in range(c.n_layer))
            self.ln_f = LayerNorm(c.n_embd)
        self.drop = nn.Dropout(p)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> (logits (B, T, V), mean cross-entropy against targets, or None)."""
        if idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} tokens is longer than block_size="
                             f"{self.config.block_size}")
        logits = self.table(idx) if self.config.rung == 0 else self.lm_head(self._body(idx))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    def _body(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))  # (B, T, C)
        for i, attn in enumerate(self.attn):
            if self.residual:
                x = x + attn(self.ln_1[i](x), causal=True)[0]
                x = x + self.mlp[i](self.ln_2[i](x))
            else:
                x = attn(x, causal=True)[0]
                x = self.mlp[i](x) if self.mlp is not None else x
        return self.ln_f(x) if self.residual else x
