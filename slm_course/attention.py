"""Scaled dot-product attention, the readable way.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

where the mask M is 0 where a query may look and -inf where it may not (the future, for a
causal mask; padding, for a padding mask). PyTorch's fused
``torch.nn.functional.scaled_dot_product_attention`` computes the same thing faster; the
tests prove the two equal.
"""

from __future__ import annotations

import math

import torch


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | None = None
                ) -> torch.Tensor:
    """Boolean (t_q, t_k) mask, True where query i may attend to key j (j <= i)."""
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) with masked positions set to -inf before the softmax.

    q: (..., T_q, d_k), k: (..., T_k, d_k), mask: broadcastable to (..., T_q, T_k), bool,
    True = may attend. Returns (..., T_q, T_k); each row sums to 1.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"query width {q.shape[-1]} != key width {k.shape[-1]}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, causal: bool = False
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (output, weights): output (..., T_q, d_v) = weights @ v.

    ``causal=True`` adds the causal mask to ``mask`` (both must allow a position).
    """
    if causal:
        cm = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        mask = cm if mask is None else mask & cm
    weights = attention_weights(q, k, mask)  # (..., T_q, T_k)
    return weights @ v, weights
