"""GPT: a decoder-only transformer language model, small enough to read in one sitting.

Given token ids x_1..x_T the model returns logits for every next token,

    h_0 = E_tok[x_t] + E_pos[t]                              token + position embeddings
    h_l = h_{l-1} + Attn(LN(h_{l-1}))                        pre-norm residual blocks,
    h_l = h_l     + MLP(LN(h_l))                             l = 1..n_layer
    logits_t = LN(h_L)_t E_tok^T                             weight tying: the output layer
                                                             reuses the token embeddings

and, with targets y, the loss  L = -(1 / B T) sum_{b,t} log softmax(logits_{b,t})[y_{b,t}].

The blocks are stage 13's: :class:`slm_course.transformer.Block` with its
``MultiHeadAttention``, ``MLP`` and ``LayerNorm``. This module adds only the causal language
model around them: the config, token and position embeddings, weight tying, GPT-2's
initialisation and the loss. The layout and names are nanoGPT's ``model.py``, which are
GPT-2's (``transformer.wte``, ``transformer.h.0.attn.c_attn``, ``lm_head``, ...), so the
keys of a Hugging Face ``GPT2LMHeadModel`` state dict map one to one onto ours (stage 17;
GPT-2 stores ``c_attn``, ``c_proj`` and ``c_fc`` as Conv1D, so those weights are transposed).
Attention runs through PyTorch's fused ``F.scaled_dot_product_attention``;
``GPTConfig(attention="explicit")`` switches to the readable
``slm_course.attention.scaled_dot_product_attention`` and the tests prove the two equal.

Stage 18 adds the options of a modern small LM, each off by default: ``norm="rmsnorm"``,
``position="rope"`` (no position table; q and k turn by their positions), ``mlp="swiglu"``
and ``n_kv_head`` (grouped-query attention); see :mod:`slm_course.modern`.

Stage 14: GPT, the small language model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from slm_course.helpers.configs import config_from_dict
from slm_course.modern import check_modern_options
from slm_course.seq2seq import sequence_loss
from slm_course.transformer import (
    Block,
    KVCache,
    check_activation,
    check_attention_path,
    make_norm,
)


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
    activation: str = "gelu"  # "gelu": exact; "gelu_tanh": GPT-2's approximation (gelu_new)
    # stage 18, a modern small LM (defaults: GPT-2's choices)
    norm: str = "layernorm"  # "rmsnorm": RMSNorm everywhere a LayerNorm was
    position: str = "learned"  # "rope": rotary embeddings in attention, no position table
    mlp: str = "gelu"  # "swiglu": a gated MLP with the GELU MLP's parameter count
    n_kv_head: int | None = None  # grouped-query attention: key/value heads (None = n_head)

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
        check_attention_path(self.attention)
        check_activation(self.activation)
        check_modern_options(self.norm, self.position, self.mlp, self.n_head, self.n_kv_head,
                             self.n_embd // self.n_head)

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


class GPT(nn.Module):
    """The language model: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        rope = config.position == "rope"  # stage 18: positions turn q and k inside attention
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            **({} if rope else {"wpe": nn.Embedding(config.block_size, config.n_embd)}),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config.n_embd, config.n_head, dropout=config.dropout,
                                   bias=config.bias, causal=True, attention=config.attention,
                                   activation=config.activation, norm=config.norm,
                                   mlp=config.mlp, n_kv_head=config.n_kv_head,
                                   rope_positions=config.block_size if rope else 0)
                             for _ in range(config.n_layer)]),  # stage 13's blocks
            ln_f=make_norm(config.norm, config.n_embd, config.bias),
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
        if non_embedding and "wpe" in self.transformer:  # RoPE models have no position table
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (logits (B, T, V), loss or None). ``targets`` (B, T); IGNORE_INDEX (-100)
        marks "no target" at a position.

        ``cache`` (stage 17): a :class:`~slm_course.transformer.KVCache` holding the keys and
        values of the ``cache.length`` tokens before ``idx``; ``idx`` then sits at positions
        cache.length .. cache.length + T - 1, and its keys and values are added to the cache.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        past = 0 if cache is None else cache.length
        if idx.shape[1] > self.config.block_size:
            raise ValueError(
                f"the input has {T} tokens but the model's block_size is "
                f"{self.config.block_size}: crop it to the last {self.config.block_size} tokens "
                f"(idx[:, -block_size:]) or train a model with a larger block_size")
        if past + T > self.config.block_size:
            raise ValueError(
                f"the KV cache holds {past} tokens, so {T} more would reach position "
                f"{past + T} past the model's block_size {self.config.block_size}: "
                f"cache.reset() and run the last {self.config.block_size} tokens again")
        x = self.transformer.wte(idx)  # (B, T, C)
        if "wpe" in self.transformer:  # learned positions; RoPE turns q and k in attention
            pos = torch.arange(past, past + T, device=idx.device)  # (T,): after cached tokens
            x = x + self.transformer.wpe(pos)  # (B, T, C) + (T, C)
        x = self.transformer.drop(x)
        for layer, block in enumerate(self.transformer.h):
            x, _ = block(x, cache=cache, layer=layer)  # (B, T, C)
        if cache is not None:
            cache.advance(T)  # every layer has written: the new tokens are stored
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None if targets is None else sequence_loss(logits, targets)
        return logits, loss


def parameter_counts(model: GPT) -> dict[str, int]:
    """Where the parameters live: {component: count}; the values sum to ``num_params(False)``.

    Components: token embeddings (shared with the output layer), position embeddings,
    attention (q, k, v and output projections), MLP, LayerNorms (or RMSNorms), summed over
    the blocks.
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
