"""GPT: a decoder-only transformer language model, small enough to read in one sitting.

Given token ids x_1..x_T the model returns logits for every next token,

    h_0 = E_tok[x_t] + E_pos[t]                              token + position embeddings
    h_l = h_{l-1} + Attn(LN(h_{l-1}))                        pre-norm residual blocks,
    h_l = h_l     + MLP(LN(h_l))                             l = 1..n_layer
    logits_t = LN(h_L)_t E_tok^T                             weight tying: the output layer
                                                             reuses the token embeddings

and, with targets y, the loss  L = -(1 / B T) sum_{b,t} log softmax(logits_{b,t})[y_{b,t}].

The layout follows nanoGPT's ``model.py`` (so its names ``c_attn``, ``c_proj``, ``wte``... are
the GPT-2 ones). Attention runs through PyTorch's fused ``F.scaled_dot_product_attention``;
``GPTConfig(attention="explicit")`` switches to the readable
``slm_course.attention.scaled_dot_product_attention`` and the tests prove the two equal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.attention import scaled_dot_product_attention

ATTENTION_PATHS = ("fast", "explicit")


def config_from_dict(cls: type[Any], data: dict[str, Any]) -> Any:
    """Build the dataclass ``cls`` from a dict; an unknown key is an error naming the valid ones."""
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(valid)}")
    return cls(**data)


@dataclass
class GPTConfig:
    """The shape of a GPT. ``vocab_size`` must match the tokenizer the model is trained with."""

    vocab_size: int = 65
    block_size: int = 64  # the longest context the model sees (position embeddings)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128  # the model width C; each head has C / n_head channels
    dropout: float = 0.0
    bias: bool = False  # biases in Linear and LayerNorm layers (GPT-2: True)
    attention: str = "fast"  # "fast": F.scaled_dot_product_attention; "explicit": readable

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}: each "
                f"head gets n_embd / n_head channels; pick e.g. n_embd="
                f"{self.n_head * max(1, round(self.n_embd / self.n_head))} or an n_head that "
                f"divides {self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.attention not in ATTENTION_PATHS:
            raise ValueError(f"GPTConfig.attention must be one of {ATTENTION_PATHS}, "
                             f"got {self.attention!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Rebuild from ``to_dict()``; an unknown key is an error that lists the valid ones."""
        return config_from_dict(cls, data)


def check_vocab(config: GPTConfig, vocab_size: int, what: str = "the tokenizer") -> None:
    """Raise a clear ValueError unless the model's vocabulary matches ``what``'s."""
    if config.vocab_size != vocab_size:
        raise ValueError(
            f"vocabulary mismatch: the model has vocab_size={config.vocab_size} but {what} has "
            f"{vocab_size} tokens; build the model with GPTConfig(vocab_size={vocab_size}) or "
            f"use the tokenizer the model was trained with")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: y = concat_h softmax(Q_h K_h^T / sqrt(d) + M) V_h W_o."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.explicit = config.attention == "explicit"
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_o
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs): each head attends independently
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.explicit:  # readable: softmax(q k^T / sqrt(hs) + causal mask) v
            y, weights = scaled_dot_product_attention(q, k, v, causal=True)  # (B, nh, T, hs)
            if self.training and self.dropout > 0:
                y = self.attn_dropout(weights) @ v
        else:  # fused kernel (flash attention on a GPU), same result
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward network: MLP(x) = GELU(x W_1 + b_1) W_2 + b_2, 4x wide."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """A pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # tokens talk to each other
        x = x + self.mlp(self.ln_2(x))  # each token thinks on its own
        return x


class GPT(nn.Module):
    """The language model: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # position embeddings
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one (V, C) matrix
        self.apply(self._init_weights)
        # GPT-2: scale the layers that write into the residual stream by 1/sqrt(2 n_layer), so
        # the variance of the sum of 2 n_layer residual branches does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2 initialisation: weights ~ N(0, 0.02^2), biases 0 (LayerNorm keeps 1 and 0)."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters; by default without the position embeddings (as nanoGPT).

        The token embeddings stay in the count: they are the output layer too (weight tying),
        and ``parameters()`` yields the shared matrix once.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (logits (B, T, V), loss or None). ``targets`` (B, T); -1 marks "no target"."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        if idx.shape[1] > self.config.block_size:
            raise ValueError(
                f"the input has {T} tokens but the model's block_size is "
                f"{self.config.block_size}: crop it to the last {self.config.block_size} tokens "
                f"(idx[:, -block_size:]) or train a model with a larger block_size")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C) + (T, C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T),
                                   ignore_index=-1)
        return logits, loss


def parameter_counts(model: GPT) -> dict[str, int]:
    """Where the parameters live: {component: count}; the values sum to ``num_params(False)``.

    Components: token embeddings (shared with the output layer), position embeddings,
    attention (q, k, v and output projections), MLP, LayerNorms, summed over the blocks.
    """
    counts = {"token embedding (= output layer)": 0, "position embedding": 0,
              "attention": 0, "MLP": 0, "LayerNorm": 0}
    for name, p in model.named_parameters():  # a tied matrix is listed once
        if name.startswith("transformer.wte") or name.startswith("lm_head"):
            key = "token embedding (= output layer)"
        elif name.startswith("transformer.wpe"):
            key = "position embedding"
        elif ".attn." in name:
            key = "attention"
        elif ".mlp." in name:
            key = "MLP"
        elif ".ln_" in name:
            key = "LayerNorm"
        else:  # pragma: no cover - a new module type would land here
            raise ValueError(f"parameter {name!r} belongs to no known component")
        counts[key] += p.numel()
    return counts
