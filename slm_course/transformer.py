"""The transformer, piece by piece: multi-head attention, positions, LayerNorm, the block.

    x = x + MultiHeadAttention(LayerNorm(x))     # tokens exchange information
    x = x + MLP(LayerNorm(x))                    # each token computes on its own

This is the pre-norm block of GPT-2 and nanoGPT, and these parts are the parts of stage 14's
GPT (``slm_course.gpt`` imports them). :class:`TinyTransformer` stacks blocks into a small
model for synthetic tasks: decoder-only (``causal=True``: a token sees only the past, like
the GPT) or an encoder (``causal=False``: every token sees every other one).

The names are GPT-2's, as OpenAI's checkpoint and Hugging Face's ``GPT2LMHeadModel`` spell
them (``wte``, ``wpe``, ``h``, ``ln_1``, ``attn.c_attn``, ``attn.c_proj``, ``ln_2``,
``mlp.c_fc``, ``mlp.c_proj``, ``ln_f``, ``lm_head``; sizes ``n_embd``, ``n_head``,
``n_layer``), so loading or exporting GPT-2 weights (stage 17) maps keys one to one (GPT-2
keeps ``c_attn``, ``c_proj``, ``c_fc`` as Conv1D: the same matrices, transposed).

:class:`KVCache` and the ``cache`` argument of the attention and the block are stage 17's
(inference): they let a causal model generate without recomputing the past.

The options of stage 18 (``norm="rmsnorm"``, ``mlp="swiglu"``, ``n_kv_head`` for
grouped-query attention, ``rope_positions`` for rotary position embeddings) swap in the
modern parts of :mod:`slm_course.modern`; the defaults are GPT-2's.

Stage 13: the transformer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.attention import causal_mask, scaled_dot_product_attention
from slm_course.helpers.eval_mode import evaluating
from slm_course.modern import (
    RMSNorm,
    SwiGLU,
    apply_rotary,
    repeat_kv,
    rotary_tables,
    swiglu_hidden_width,
)
from slm_course.seq2seq import IGNORE_INDEX, SOS, make_digit_batch, sequence_loss
from slm_course.train import TrainConfig, train

POSITIONS = ("learned", "sinusoidal")
ATTENTION_PATHS = ("fast", "explicit")  # fused F.scaled_dot_product_attention, or readable


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
    bias: bool = True  # biases in the Linear and LayerNorm layers
    causal: bool = True  # True: decoder-only (sees the past); False: encoder (sees all)
    positions: str = "learned"  # "learned" or "sinusoidal"
    attention: str = "fast"  # "fast": fused kernel; "explicit": the readable maths

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
        check_attention_path(self.attention)


def check_attention_path(attention: str) -> None:
    """Raise a ValueError naming the choices unless ``attention`` is one of ATTENTION_PATHS."""
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")


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


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm from scratch, over the last dimension, one token at a time:

        y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta      (var: biased, divide by C)
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
    y = (x - mean) / torch.sqrt(var + eps) * weight  # (..., C)
    return y if bias is None else y + bias


class LayerNorm(nn.Module):
    """Normalise each token's features, then rescale: y = LN(x) * gamma + beta.

    Unlike batch norm it uses no batch statistics, so it behaves the same for any batch
    size, in training and in evaluation. ``explicit=True`` runs :func:`layer_norm` above;
    the default runs PyTorch's fused ``F.layer_norm``, the same equation in one kernel
    (the tests prove them equal), faster and bit for bit ``nn.LayerNorm``.
    ``bias=False`` drops beta (as GPTConfig(bias=False) does).
    """

    def __init__(self, n_embd: int, bias: bool = True, eps: float = 1e-5,
                 explicit: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.explicit = explicit
        self.weight = nn.Parameter(torch.ones(n_embd))  # gamma
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit:
            return layer_norm(x, self.weight, self.bias, self.eps)
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class KVCache:
    """The keys and values of every token seen so far, one (B, H, max_len, D) pair per layer.

    Generating token t+1 needs attention of the new query over the keys and values of tokens
    1..t; those of 1..t-1 were already computed for the previous token and do not change (a
    causal model never lets an old token see a new one). So keep them: each step computes
    k, v for the one new token, writes them at position ``length`` and attends over
    ``[0, length]``. A step then costs O(t) instead of recomputing all t tokens (O(t) per
    layer for the projections and O(t^2) for attention).

    Preallocated rather than concatenated: each layer's buffers are allocated once, at the
    first update, for ``max_len`` positions (the model's block_size), and a step writes one
    slice in place. ``torch.cat`` would copy the whole cache at every step (O(t) memory
    traffic per token, O(t^2) in all) and allocate a new tensor each time; preallocation
    also makes the memory visible up front: 2 * n_layer * B * max_len * C * bytes.
    The shapes (heads, head width, dtype, device) come from the first keys written, so the
    same cache serves any attention that calls :meth:`update`.

    The model calls :meth:`update` once per layer, then :meth:`advance` once all layers have
    written, so every layer of one forward pass sees the same ``length``.
    """

    def __init__(self, max_len: int) -> None:
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int (the model's block_size), "
                             f"got {max_len!r}")
        self.max_len = max_len
        self.length = 0  # tokens stored so far
        self.keys: list[torch.Tensor] = []  # per layer (B, H, max_len, D)
        self.values: list[torch.Tensor] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write layer ``layer``'s new k, v (B, H, T, D) at positions [length, length + T);
        return that layer's keys and values so far, each (B, H, length + T, D)."""
        B, H, T, D = k.shape
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"the KV cache holds {self.length} tokens and {T} more would pass "
                             f"its max_len={self.max_len} (the model's block_size); "
                             f"reset() it and recompute from the last tokens instead")
        if layer == len(self.keys):  # first time this layer writes: allocate its buffers
            self.keys.append(k.new_zeros(B, H, self.max_len, D))
            self.values.append(v.new_zeros(B, H, self.max_len, D))
        elif layer > len(self.keys):
            raise ValueError(f"layer {layer} wrote before layer {len(self.keys)}: layers must "
                             f"update the cache in order 0, 1, 2, ...")
        elif self.keys[layer].shape != (B, H, self.max_len, D):
            raise ValueError(f"layer {layer}'s cache holds shape "
                             f"{tuple(self.keys[layer].shape)} but got keys {tuple(k.shape)}; "
                             f"use a new KVCache for a new batch")
        self.keys[layer][:, :, self.length:end] = k  # in place: no copy of the past
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Count ``n`` more tokens as stored (call once per forward pass, after all layers)."""
        self.length += n

    def reset(self) -> None:
        """Forget every token (the buffers stay allocated, to be overwritten)."""
        self.length = 0

    def nbytes(self) -> int:
        """Bytes the buffers take: 2 * n_layer * B * H * max_len * D * element size."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


class MultiHeadAttention(nn.Module):
    """n_head attentions side by side, each on its own d = C / n_head channels:

        head_h = softmax(Q_h K_h^T / sqrt(d) + M) V_h,   Q_h = x W_q^h, K_h = x W_k^h, V_h = x W_v^h
        MHA(x) = concat(head_1, ..., head_H) W_o

    The three input projections live in one (C, 3C) linear layer ``c_attn``, laid out
    [W_q; W_k; W_v] like ``nn.MultiheadAttention.in_proj_weight``; ``c_proj`` is W_o.
    ``attention="fast"`` runs PyTorch's fused ``F.scaled_dot_product_attention``;
    ``"explicit"`` (or ``need_weights=True``, which also returns the weights for plots) runs
    the readable ``slm_course.attention.scaled_dot_product_attention``. Same numbers.

    Stage 18: ``n_kv_head=G`` < n_head makes it grouped-query attention (G key/value heads,
    each shared by n_head / G query heads: ``c_attn`` is then C -> (H + 2G) D, and a KV cache
    stores G heads); ``rope_positions=N`` rotates q and k by their positions (RoPE, tables
    for N positions) instead of relying on position embeddings added to x.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 attention: str = "fast", n_kv_head: int | None = None,
                 rope_positions: int = 0) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}; choose "
                             f"a width that is a multiple of the number of heads")
        check_attention_path(attention)
        self.n_head = n_head
        self.n_kv_head = n_kv_head or n_head
        if n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={n_head}")
        self.n_embd = n_embd
        self.dropout = dropout
        self.explicit = attention == "explicit"
        kv_width = self.n_kv_head * (n_embd // n_head)  # G D: C when G = H
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv_width, bias=bias)  # x -> [q, k, v]
        self.rope = rope_positions > 0
        if self.rope:  # buffers move with .to(device); not saved: they are a pure function
            cos, sin = rotary_tables(rope_positions, n_embd // n_head)
            self.register_buffer("rope_cos", cos, persistent=False)  # (N, D/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)  # W_o
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None,
                causal: bool = False, need_weights: bool = False,
                cache: KVCache | None = None, layer: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (output (B, T, C), weights (B, H, T, T_k) or None).

        padding_mask (B, T) bool: True at real tokens, False at padding, which no query may
        attend to (the opposite of ``nn.MultiheadAttention``'s key_padding_mask).
        causal: query t may attend only to keys <= t.
        need_weights: also return the attention weights (takes the explicit path).
        cache: a :class:`KVCache` holding the keys and values of the ``cache.length`` tokens
        before x (stage 17); this layer (number ``layer``) appends its new k, v there and
        attends over all T_k = cache.length + T of them.
        """
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"expected x of shape (B, T, {self.n_embd}), got {tuple(x.shape)}")
        B, T, C = x.shape
        H, G, D = self.n_head, self.n_kv_head, C // self.n_head
        q, k, v = self.c_attn(x).split([C, G * D, G * D], dim=2)  # (B, T, C), (B, T, G D) x2
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D): each head attends on its own
        k = k.view(B, T, G, D).transpose(1, 2)  # (B, G, T, D); G = H without GQA
        v = v.view(B, T, G, D).transpose(1, 2)  # (B, G, T, D)
        if self.rope:  # stage 18: turn q and k by their positions, after any cached tokens
            past = 0 if cache is None else cache.length
            cos, sin = self.rope_cos[past:past + T], self.rope_sin[past:past + T]  # (T, D/2)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        mask = self._key_mask(padding_mask, B, T)  # (B, 1, 1, T) or None
        if cache is not None:  # stage 17: the past tokens' keys and values, not recomputed
            if padding_mask is not None:
                raise ValueError("a KV cache with a padding_mask is not supported: generate "
                                 "unpadded prompts (one length per batch) or pass cache=None")
            past = cache.length
            k, v = cache.update(layer, k, v)  # each (B, H, past + T, D)
            if causal and past > 0:  # new query i sits at position past + i: sees keys <= it
                mask = causal_mask(T, past + T, device=x.device) if T > 1 else None
                causal = False  # (T, past + T); one new token may see every key
        k, v = repeat_kv(k, H // G), repeat_kv(v, H // G)  # (B, H, T_k, D): the cache keeps G
        if mask is not None and causal:  # one boolean mask for both
            mask, causal = mask & causal_mask(T, device=x.device), False  # (B, 1, T, T)
        weights = None
        if self.explicit or need_weights:  # readable: softmax(q k^T / sqrt(D) + M) v
            y, weights = scaled_dot_product_attention(q, k, v, mask, causal=causal)
            if self.training and self.dropout > 0:
                y = self.attn_dropout(weights) @ v  # (B, H, T, D)
        else:  # fused kernel (flash attention on a GPU), the same result
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                is_causal=causal)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y)), weights

    @staticmethod
    def _key_mask(padding_mask: torch.Tensor | None, B: int, T: int) -> torch.Tensor | None:
        """(B, T) True = real token -> (B, 1, 1, T), the same for every head and query."""
        if padding_mask is None:
            return None
        if padding_mask.shape != (B, T) or padding_mask.dtype != torch.bool:
            raise ValueError(f"padding_mask must be a bool tensor of shape {(B, T)} "
                             f"(True = real token), got {padding_mask.dtype} "
                             f"{tuple(padding_mask.shape)}")
        return padding_mask[:, None, None, :]


GELU_VARIANTS = ("gelu", "gelu_tanh")  # exact GELU, or GPT-2's tanh approximation (gelu_new)


def check_activation(activation: str) -> None:
    """Raise a ValueError naming the choices unless ``activation`` is one of GELU_VARIANTS."""
    if activation not in GELU_VARIANTS:
        raise ValueError(f"activation must be one of {GELU_VARIANTS} (\"gelu\": exact, "
                         f"x * Phi(x); \"gelu_tanh\": GPT-2's tanh approximation), "
                         f"got {activation!r}")


class MLP(nn.Module):
    """The position-wise feed-forward net: MLP(x) = W_2 GELU(W_1 x + b_1) + b_2, 4x wide.

    ``activation="gelu"`` is the exact GELU(x) = x Phi(x); ``"gelu_tanh"`` is the
    approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) that OpenAI's GPT-2 was
    trained with (Hugging Face calls it ``gelu_new``); they differ by up to about 1e-3, enough
    to matter when running GPT-2's weights (stage 17).
    """

    def __init__(self, n_embd: int, ratio: int = 4, dropout: float = 0.0,
                 bias: bool = True, activation: str = "gelu") -> None:
        super().__init__()
        check_activation(activation)
        self.c_fc = nn.Linear(n_embd, ratio * n_embd, bias=bias)  # W_1
        self.gelu = nn.GELU(approximate="tanh" if activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(ratio * n_embd, n_embd, bias=bias)  # W_2
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, C)


class Block(nn.Module):
    """The pre-norm transformer block:

        x = x + MHA(LN_1(x))
        x = x + MLP(LN_2(x))

    The residual path carries x through untouched; each sub-layer only adds a correction.
    Stage 18's options: ``norm="rmsnorm"`` (RMSNorm for both LNs), ``mlp="swiglu"`` (a
    SwiGLU MLP with the GELU MLP's parameter count), ``n_kv_head`` and ``rope_positions``
    (passed to :class:`MultiHeadAttention`).
    """

    def __init__(self, n_embd: int, n_head: int, *, mlp_ratio: int = 4, dropout: float = 0.0,
                 bias: bool = True, causal: bool = True, attention: str = "fast",
                 activation: str = "gelu", norm: str = "layernorm", mlp: str = "gelu",
                 n_kv_head: int | None = None, rope_positions: int = 0) -> None:
        super().__init__()
        self.causal = causal
        self.ln_1 = make_norm(norm, n_embd, bias)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout, bias, attention, n_kv_head,
                                       rope_positions)
        self.ln_2 = make_norm(norm, n_embd, bias)
        if mlp == "swiglu":
            hidden = swiglu_hidden_width(n_embd, mlp_ratio, bias)
            self.mlp = SwiGLU(n_embd, hidden, dropout, bias)
        else:
            self.mlp = MLP(n_embd, mlp_ratio, dropout, bias, activation)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None,
                need_weights: bool = False, cache: KVCache | None = None, layer: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (x (B, T, C), attention weights (B, H, T, T) or None).

        ``cache``: a :class:`KVCache` this block (number ``layer``) reads and writes."""
        a, weights = self.attn(self.ln_1(x), padding_mask, self.causal, need_weights,
                               cache=cache, layer=layer)
        x = x + a  # tokens talk to each other
        x = x + self.mlp(self.ln_2(x))  # each token thinks on its own
        return x, weights


def make_norm(norm: str, n_embd: int, bias: bool = True) -> nn.Module:
    """``"layernorm"``: :class:`LayerNorm` (with beta when ``bias``); ``"rmsnorm"``: stage 18's
    :class:`slm_course.modern.RMSNorm` (a gain only)."""
    if norm == "rmsnorm":
        return RMSNorm(n_embd)
    if norm == "layernorm":
        return LayerNorm(n_embd, bias=bias)
    raise ValueError(f"norm={norm!r}; choose 'layernorm' or 'rmsnorm'")


def block_for(config: TransformerConfig) -> Block:
    """A :class:`Block` of the shape ``config`` describes."""
    return Block(config.n_embd, config.n_head, mlp_ratio=config.mlp_ratio,
                 dropout=config.dropout, bias=config.bias, causal=config.causal,
                 attention=config.attention)


class TinyTransformer(nn.Module):
    """Token embeddings + positions -> n_layer blocks -> LayerNorm -> logits over the vocab.

        h_0 = E[idx] + P[0..T-1],   h_l = Block_l(h_{l-1}),   logits = LN(h_L) W_head
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embeddings
        if config.positions == "learned":
            self.wpe = nn.Parameter(torch.randn(config.block_size, config.n_embd) * 0.02)
        else:  # fixed: a buffer moves with .to(device) but is not trained
            self.register_buffer("wpe", sinusoidal_positions(config.block_size,
                                                             config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(block_for(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                padding_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> (logits (B, T, V), loss or None); targets (B, T), IGNORE_INDEX =
        no target at that position."""
        logits, _ = self.run(idx, padding_mask, need_weights=False)
        loss = None if targets is None else sequence_loss(logits, targets)
        return logits, loss

    def run(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None,
            need_weights: bool = True) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """idx (B, T) token ids -> logits (B, T, V) and each layer's weights (B, H, T, T)."""
        if idx.ndim != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size="
                             f"{self.config.block_size}; crop it or build the model with a "
                             f"larger block_size")
        x = self.drop(self.wte(idx) + self.wpe[:T])  # (B, T, C)
        maps = []
        for block in self.h:
            x, weights = block(x, padding_mask, need_weights)
            maps.append(weights)
        return self.lm_head(self.ln_f(x)), maps  # (B, T, V)

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, n_new: int) -> torch.Tensor:
        """Append the most likely next token ``n_new`` times: (B, T0) -> (B, T0 + n_new).
        Runs in eval mode and leaves the model in the mode it was in."""
        if not self.config.causal:
            raise ValueError("generation needs a causal (decoder-only) model; this one was "
                             "built with causal=False")
        idx = prompt
        with evaluating(self):
            for _ in range(n_new):
                logits, _ = self(idx[:, -self.config.block_size:])  # (B, T, V)
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
    with the targets inside the prompt set to IGNORE_INDEX, so the loss counts only y_1..y_m.
    src (B, n), tgt (B, m) -> inputs (B, n + m), targets (B, n + m).
    """
    if src.ndim != 2 or tgt.ndim != 2 or src.shape[0] != tgt.shape[0]:
        raise ValueError(f"expected src (B, n) and tgt (B, m), got {tuple(src.shape)} and "
                         f"{tuple(tgt.shape)}")
    B, n = src.shape
    sep_col = torch.full((B, 1), sep, dtype=src.dtype, device=src.device)
    sequence = torch.cat([src, sep_col, tgt], dim=1)  # (B, n + 1 + m)
    inputs, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, : n] = IGNORE_INDEX  # positions 0..n-1 predict prompt tokens: not scored
    return inputs, targets


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
                     device: torch.device | str = "cpu", progress: bool = True) -> list[float]:
    """AdamW on fresh random batches through the course's one loop
    (:func:`slm_course.train.train`): the learning rate warms up linearly over ``warmup``
    steps, then decays along a cosine to lr / 10; returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        _, inputs, targets = digit_task_batch(batch_size, length, task=task,
                                              generator=generator)
        return inputs.to(device), targets.to(device)

    cfg = TrainConfig(max_steps=steps, lr=lr, min_lr=lr / 10, warmup_steps=warmup,
                      grad_clip=clip, eval_interval=steps, log_interval=max(1, steps // 20),
                      progress=progress)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return train(model, next_batch, cfg, optimizer=optimizer).losses.tolist()


@torch.no_grad()
def digit_task_accuracy(model: TinyTransformer, *, length: int, task: str = "sort",
                        n: int = 1000, seed: int = 1, device: torch.device | str = "cpu"
                        ) -> dict[str, float]:
    """Greedy-complete ``n`` fresh prompts [x_1..x_n, SEP]; return the fraction of answers
    that are exactly right ("exact") and of digits in the right place ("token")."""
    model.to(device)
    _, inputs, targets = digit_task_batch(n, length, task=task, generator=seed)
    prompt = inputs[:, : length + 1].to(device)  # (N, length + 1): the digits, then SEP
    answer = model.generate_greedy(prompt, length)[:, length + 1:]  # (N, length)
    right = answer == targets[:, length:].to(device)  # (N, length)
    return {"exact": right.all(dim=1).float().mean().item(),
            "token": right.float().mean().item()}
