"""Checks for stage 12, attention and seq2seq (solutions/12_attention_seq2seq).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.attention`` / ``slm_course.seq2seq``, and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from slm_course.attention import attention_weights, causal_mask
from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.seq2seq import AdditiveAttention


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _diagnose_weights(got: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                      mask: torch.Tensor | None) -> str:
    """Name the likely mistake behind wrong attention weights."""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if torch.allclose(got, torch.softmax(scores, dim=-1), atol=1e-5):
        return "these are softmax(Q K^T): divide the scores by sqrt(d_k) before the softmax"
    if not torch.allclose(got.sum(-1), torch.ones(got.shape[:-1]), atol=1e-4):
        return ("each row (one query) must sum to 1: take the softmax over the last axis, the "
                "keys, and mask *before* the softmax (scores -> -inf), not after it")
    return "weights = softmax(Q K^T / sqrt(d_k)) with scores set to -inf where mask is False"


def check_attention_weights(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, mask=None) -> weights``: softmax(Q K^T / sqrt(d_k)), masked."""
    name = "check_attention_weights"
    cases = [  # (what the case is about, q, k, mask)
        ("3 queries, 4 keys, no mask", _randn(3, 8, seed=0), _randn(4, 8, seed=1), None),
        ("a causal mask", _randn(5, 4, seed=2), _randn(5, 4, seed=3), causal_mask(5)),
        ("a batch of 2 with padding (B, 1, T_k)", _randn(2, 3, 6, seed=4),
         _randn(2, 3, 6, seed=5), torch.tensor([[True] * 3, [True, False, False]])[:, None]),
        ("large scores (softmax must not overflow)", 30 * _randn(3, 16, seed=6),
         30 * _randn(4, 16, seed=7), None),
    ]
    for about, q, k, mask in cases:
        got = call_learner(name, fn, q.clone(), k.clone(), mask)
        want = attention_weights(q, k, mask)
        expect(name, isinstance(got, torch.Tensor), f"{about}: return a torch.Tensor, got "
               f"{type(got).__name__}", hint="build the result with torch operations")
        expect(name, tuple(got.shape) == tuple(want.shape),
               f"{about}: weights have shape {tuple(got.shape)}, expected {tuple(want.shape)}",
               hint="weights are (..., T_q, T_k): transpose the last two axes of k, "
                    "k.transpose(-2, -1), so batches work too")
        expect(name, bool(torch.isfinite(got).all()), f"{about}: weights contain nan or inf",
               hint="exp of a large score overflows: use torch.softmax (it subtracts the "
                    "row maximum first) rather than exp(...) / exp(...).sum()")
        expect_close(name, got, want, what=f"weights for {about}", rtol=1e-4, atol=1e-6,
                     hint=_diagnose_weights(got, q, k, mask) + f" (d_k = {q.shape[-1]})")
    return passed(name, f"{len(cases)} cases: masks, a batch and large scores")


def check_additive_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(s, h, W, U, v, mask) -> (context, weights)``, Bahdanau attention:

    e_j = v . tanh(W s + U h_j),  a = softmax over the real positions,  c = sum_j a_j h_j
    with s (B, Q), h (B, S, K), W (A, Q), U (A, K), v (A,), mask (B, S) True = real token.
    """
    name = "check_additive_attention"
    cases = [  # (what, B, S, Q, K, A, lengths)
        ("no padding", 2, 4, 3, 5, 6, [4, 4]),
        ("padding in the second sentence", 2, 5, 4, 4, 3, [5, 2]),
        ("a one-token sentence", 3, 3, 2, 2, 2, [3, 1, 2]),
    ]
    for seed, (about, B, S, Q, K, A, lengths) in enumerate(cases):
        s, h = _randn(B, Q, seed=10 + seed), _randn(B, S, K, seed=20 + seed)
        W, U, v = _randn(A, Q, seed=30 + seed), _randn(A, K, seed=40 + seed), _randn(A,
                                                                                     seed=seed)
        mask = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]  # (B, S)
        reference = AdditiveAttention(Q, K, A)
        with torch.no_grad():
            reference.W.weight.copy_(W)
            reference.U.weight.copy_(U)
            reference.U.bias.zero_()
            reference.v.weight.copy_(v[None, :])
            want_c, want_a = reference(s, reference.project_keys(h), h, mask)
        got = call_learner(name, fn, s.clone(), h.clone(), W.clone(), U.clone(), v.clone(),
                           mask.clone())
        expect(name, isinstance(got, (tuple, list)) and len(got) == 2,
               f"{about}: expected a pair (context, weights)", got=got,
               hint="end with `return context, weights`")
        context, weights = got
        expect_close(name, weights, want_a, what=f"weights for {about}", rtol=1e-4, atol=1e-6,
                     hint="e_j = v . tanh(W s + U h_j) for every position j (broadcast W s "
                          "over the S positions), -inf where mask is False, then softmax "
                          "over the positions (dim=-1)")
        expect_close(name, context, want_c, what=f"context for {about}", rtol=1e-4,
                     atol=1e-6, hint="context = sum_j a_j h_j: weights (B, S) times h "
                                     "(B, S, K) summed over S, e.g. torch.einsum('bs,bsk->bk')")
    return passed(name, f"{len(cases)} cases, padding and a one-token sentence included")

