"""From GPT-2 to a modern small language model: the parts that changed, one at a time.

    RMSNorm(x)  = x / sqrt(mean_c x_c^2 + eps) * g             no mean subtracted, no bias
    RoPE(q)_m   = R(m theta) q_m,   RoPE(k)_n = R(n theta) k_n  q_m . k_n sees only m - n
    SwiGLU(x)   = (SiLU(x W_gate) * (x W_up)) W_down             a gated MLP, 8/3 C wide
    GQA         H query heads share G key/value heads            a KV cache G/H as large

Each is a drop-in replacement for a GPT-2 part of stage 13: RMSNorm for LayerNorm, rotary
position embeddings (RoPE) for the learned position table, SwiGLU for the GELU MLP, and
grouped-query attention (GQA) for multi-head attention. ``slm_course.transformer`` and
``slm_course.gpt`` switch them on with ``GPTConfig(norm="rmsnorm", position="rope",
mlp="swiglu", n_kv_head=...)``; the optimizer that goes with them, Muon, is in
``slm_course.muon``.

Stage 18: from GPT-2 to a modern small LM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("layernorm", "rmsnorm")
POSITION_KINDS = ("learned", "rope")
MLP_KINDS = ("gelu", "swiglu")


# ---------------------------------------------------------------------------------------------
# RMSNorm
# ---------------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm from scratch, over the last dimension (Zhang and Sennrich, 2019):

        y = x / sqrt(mean(x^2) + eps) * g

    LayerNorm without the mean: it rescales each token to unit root-mean-square and keeps
    its direction; one reduction instead of two, and no bias.
    """
    rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., 1)
    return x / rms * weight  # (..., C)


class RMSNorm(nn.Module):
    """y = x / RMS(x) * g with a learned gain g (starts at 1). ``explicit=True`` runs
    :func:`rms_norm`; the default runs PyTorch's fused ``F.rms_norm``, the same equation
    (the tests prove both equal ``nn.RMSNorm``)."""

    def __init__(self, n_embd: int, eps: float = 1e-6, explicit: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.explicit = explicit
        self.weight = nn.Parameter(torch.ones(n_embd))  # g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit:
            return rms_norm(x, self.weight, self.eps)
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


# ---------------------------------------------------------------------------------------------
# Rotary position embeddings
# ---------------------------------------------------------------------------------------------

def rotary_tables(n_positions: int, head_dim: int, base: float = 10_000.0,
                  offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (n_positions, head_dim / 2):

        angle[m, i] = (offset + m) * theta_i,    theta_i = base^(-2i / head_dim)

    Pair i turns theta_i radians a position: fast clocks for near tokens, slow ones for far.
    """
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"rotary embeddings turn pairs of channels, so the head width must "
                         f"be even, got head_dim={head_dim}; pick n_embd / n_head even")
    if n_positions < 1 or offset < 0:
        raise ValueError(f"need n_positions >= 1 and offset >= 0, got {n_positions}, {offset}")
    theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    position = torch.arange(offset, offset + n_positions, dtype=torch.float32)  # (T,)
    angle = position[:, None] * theta[None, :]  # (T, D/2)
    return torch.cos(angle), torch.sin(angle)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of channels (x_j, x_{j + D/2}) of x (..., T, D) by its angle:

        [x_1; x_2] -> [x_1 cos - x_2 sin;  x_1 sin + x_2 cos]     (x_1, x_2: the two halves)

    cos and sin are (T, D/2) from :func:`rotary_tables`. A rotation keeps lengths, and
    R(m theta)^T R(n theta) = R((n - m) theta), so after rotating queries by their position m
    and keys by theirs n, q_m . k_n depends on the positions only through m - n.
    (The halves pairing is GPT-NeoX's and Llama's; the original paper pairs neighbours.)
    """
    x1, x2 = x.chunk(2, dim=-1)  # (..., T, D/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., T, D)


# ---------------------------------------------------------------------------------------------
# SwiGLU
# ---------------------------------------------------------------------------------------------

def swiglu_hidden_width(n_embd: int, ratio: int = 4, bias: bool = False) -> int:
    """The SwiGLU hidden width h with the parameter count of a GELU MLP ratio x as wide.

    GELU MLP: 2 C (ratio C) weights (+ ratio C + C biases); SwiGLU: 3 C h (+ 2h + C). Without
    biases h = 2 ratio C / 3 (8C/3 for ratio 4, as in Llama), rounded to the nearest integer.
    """
    gelu = 2 * n_embd * ratio * n_embd + (ratio * n_embd + n_embd if bias else 0)
    per_unit = 3 * n_embd + (2 if bias else 0)  # parameters one hidden unit of SwiGLU costs
    return max(1, round((gelu - (n_embd if bias else 0)) / per_unit))


class SwiGLU(nn.Module):
    """The gated MLP of PaLM and Llama (Shazeer, 2020):

        SwiGLU(x) = (SiLU(x W_gate) * (x W_up)) W_down,    SiLU(z) = z sigmoid(z)

    One branch decides how much of the other passes, channel by channel. W_gate and W_up sit
    side by side in one (C, 2h) layer ``c_fc`` (one matmul, like ``c_attn``'s [q; k; v]);
    ``c_proj`` is W_down. The names match the GELU MLP's, so GPT-2's initialisation of
    ``c_proj`` applies unchanged.
    """

    def __init__(self, n_embd: int, hidden: int | None = None, dropout: float = 0.0,
                 bias: bool = False) -> None:
        super().__init__()
        self.hidden = hidden or swiglu_hidden_width(n_embd, bias=bias)
        self.c_fc = nn.Linear(n_embd, 2 * self.hidden, bias=bias)  # [W_gate, W_up]
        self.c_proj = nn.Linear(self.hidden, n_embd, bias=bias)  # W_down
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.c_fc(x).chunk(2, dim=-1)  # (B, T, h) each
        return self.dropout(self.c_proj(F.silu(gate) * up))  # (B, T, C)


# ---------------------------------------------------------------------------------------------
# Grouped-query attention
# ---------------------------------------------------------------------------------------------

def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, G, T, D) key or value heads -> (B, G n_rep, T, D): each of the G heads serves
    n_rep query heads in a row (query head h reads key/value head h // n_rep).

    With G = H (n_rep = 1) this is ordinary multi-head attention; with G = 1 it is
    multi-query attention. Only the G heads are computed and cached.
    """
    if n_rep == 1:
        return x
    B, G, T, D = x.shape
    return x[:, :, None].expand(B, G, n_rep, T, D).reshape(B, G * n_rep, T, D)


def check_modern_options(norm: str, position: str, mlp: str, n_head: int,
                         n_kv_head: int | None, head_dim: int) -> None:
    """Raise a ValueError that names the choices for any option out of range."""
    for name, value, choices in (("norm", norm, NORMS), ("position", position, POSITION_KINDS),
                                 ("mlp", mlp, MLP_KINDS)):
        if value not in choices:
            raise ValueError(f"{name}={value!r}; choose one of {choices}")
    if n_kv_head is not None and (isinstance(n_kv_head, bool) or not isinstance(n_kv_head, int)
                                  or n_kv_head < 1 or n_head % n_kv_head):
        raise ValueError(f"n_kv_head={n_kv_head!r} must divide n_head={n_head} (each key/value "
                         f"head serves n_head / n_kv_head query heads); None means n_head")
    if position == "rope" and head_dim % 2:
        raise ValueError(f"position='rope' turns pairs of channels, so each head's width "
                         f"n_embd / n_head must be even, got {head_dim}")
