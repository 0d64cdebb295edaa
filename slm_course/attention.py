"""Scaled dot-product attention, the readable way.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

where the mask M is 0 where a query may look and -inf where it may not (the future, for a
causal mask; padding, for a padding mask). Boolean masks here mean True = may attend, the
convention of PyTorch's fused ``torch.nn.functional.scaled_dot_product_attention``, which
computes the same thing faster; the tests prove the two equal. :func:`attention_loops` is
the same computation one number at a time, the definition the matrix version must match.
A query whose mask row is all False has nothing to attend to: its weights come out nan.

Stage 12: attention and seq2seq.
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


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean (B, T) mask, True at real tokens and False at padding.

    Sequence b holds ``lengths[b]`` real tokens followed by padding, so
    ``mask[b, t] = t < lengths[b]``. For attention over keys, broadcast it over the queries:
    ``mask[:, None, :]`` (B, 1, T_k), or ``mask[:, None, None, :]`` (B, 1, 1, T_k) with heads.
    Note PyTorch's ``key_padding_mask`` uses the opposite convention (True = padding).
    """
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D (one length per sequence), got shape "
                         f"{tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if max_len < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest}); "
                         f"pass max_len >= {longest} or leave it out")
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions[None, :] < lengths[:, None]  # (B, T)


def attention_loops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same attention as :func:`scaled_dot_product_attention`, one number at a time.

    For each query i:  s_ij = q_i . k_j / sqrt(d_k)  (or -inf where ``mask[i, j]`` is False),
    a_ij = exp(s_ij) / sum_j' exp(s_ij'),  out_i = sum_j a_ij v_j.
    q: (T_q, d_k), k: (T_k, d_k), v: (T_k, d_v), mask: (T_q, T_k) bool or None.
    Slow on purpose: it is the definition the matrix version must agree with.
    """
    if q.ndim != 2 or k.ndim != 2 or v.ndim != 2:
        raise ValueError("attention_loops takes 2-D q (T_q, d_k), k (T_k, d_k), v (T_k, d_v); "
                         "loop over the batch and heads yourself or use the matrix version")
    t_q, d_k = q.shape
    t_k = k.shape[0]
    out = torch.zeros(t_q, v.shape[1], dtype=v.dtype)
    weights = torch.zeros(t_q, t_k, dtype=q.dtype)
    for i in range(t_q):
        scores = []
        for j in range(t_k):
            allowed = mask is None or bool(mask[i, j])
            score = sum(float(q[i, c]) * float(k[j, c]) for c in range(d_k)) / math.sqrt(d_k)
            scores.append(score if allowed else float("-inf"))
        top = max(scores)  # subtract the largest score so exp never overflows
        if top == float("-inf"):
            raise ValueError(f"the mask lets query {i} attend to no key at all; every row "
                             f"of the mask needs at least one True")
        exps = [math.exp(s - top) if s != float("-inf") else 0.0 for s in scores]
        total = sum(exps)
        for j in range(t_k):
            weights[i, j] = exps[j] / total
            out[i] += weights[i, j] * v[j]
    return out, weights
