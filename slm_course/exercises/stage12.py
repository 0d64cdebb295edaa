"""Checks for stage 12, attention and seq2seq (solutions/12_attention_seq2seq).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.attention`` / ``slm_course.seq2seq``, and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from slm_course.attention import attention_weights, causal_mask
from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.seq2seq import (
    IGNORE_INDEX,
    VOCAB_SIZE,
    AdditiveAttention,
    Seq2Seq,
    make_digit_batch,
)

#: the open challenge: exact-match accuracy of greedy reversal on 500 fresh strings of one
#: length (full profile: 8 digits; fast profile: 5 digits, for a model trained in seconds)
CHALLENGE = {"full": {"length": 8, "target": 0.90}, "fast": {"length": 5, "target": 0.80}}


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



def check_masked_sequence_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits (B, T, V), targets (B, T)) -> scalar``: the mean cross-entropy over
    the positions whose target is not IGNORE_INDEX (-100), equal to
    ``F.cross_entropy(..., ignore_index=-100)``."""
    name = "check_masked_sequence_loss"
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(5, (3, 4), generator=g)
    padded = targets.clone()
    padded[0, 2:] = IGNORE_INDEX  # a short sentence
    padded[2, 1:] = IGNORE_INDEX  # a one-token sentence
    cases = [
        ("no padding", torch.randn(3, 4, 5, generator=g), targets),
        ("padding (IGNORE_INDEX) in two rows", torch.randn(3, 4, 5, generator=g), padded),
        ("large logits (up to 1000)", torch.randn(3, 4, 5, generator=g) * 1000, padded),
        ("one sentence of one token", torch.randn(1, 1, 7, generator=g), torch.tensor([[3]])),
    ]
    for about, logits, tgt in cases:
        got = call_learner(name, fn, logits.clone(), tgt.clone())
        want = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        expect(name, isinstance(got, torch.Tensor) and got.dim() == 0,
               f"{about}: return a scalar tensor (so that loss.backward() works)",
               got=type(got).__name__, hint="end with a mean or a sum divided by the count")
        unmasked = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   tgt.clamp(min=0).reshape(-1))
        n_real = int((tgt != IGNORE_INDEX).sum())
        hint = ("log p of each target from log_softmax over the vocabulary (not softmax then "
                "log: large logits overflow), keep the positions whose target is not -100, "
                "and divide by their number")
        padded_case = n_real < tgt.numel() and bool(torch.isfinite(got))
        if padded_case and torch.allclose(got, unmasked, atol=1e-5):
            hint = "the padded positions are counted: leave out every target equal to -100"
        elif padded_case and torch.allclose(
                got * tgt.numel() / n_real, want, atol=1e-4):
            hint = ("the sum is right but divided by all B*T positions: divide by the number "
                    "of real (not -100) targets")
        expect_close(name, got, want, what=f"the loss for {about}", rtol=1e-5, atol=1e-6,
                     hint=hint)
    return passed(name, f"{len(cases)} cases, padding and large logits included")


def check_greedy_decode(fn: Callable[..., Any]) -> bool:
    """Check ``fn(model, src, src_lengths, steps) -> tokens (B, steps)`` against
    ``Seq2Seq.greedy_decode``, with and without attention."""
    name = "check_greedy_decode"
    for seed, attention in [(0, True), (1, False), (2, True)]:
        torch.manual_seed(seed)
        model = Seq2Seq(VOCAB_SIZE, emb_dim=8, hidden=12, attention=attention)
        with torch.no_grad():  # sharper outputs than at initialisation: a clear argmax
            model.out.weight.mul_(8.0)
        batch = make_digit_batch(4, 2, 6, generator=seed)
        steps = int(batch.src_lengths.max()) + 1
        want, _ = model.greedy_decode(batch.src, batch.src_lengths, steps)
        model.train()
        got = call_learner(name, fn, model, batch.src.clone(), batch.src_lengths.clone(), steps)
        if isinstance(got, tuple):  # (tokens, weights) like the reference is fine
            got = got[0]
        about = "with attention" if attention else "without attention"
        expect(name, isinstance(got, torch.Tensor), f"{about}: return the tokens as a tensor",
               got=type(got).__name__, hint="torch.stack(tokens, dim=1): (B, steps)")
        expect(name, tuple(got.shape) == tuple(want.shape), f"{about}: tokens have shape "
               f"{tuple(got.shape)}", expected=tuple(want.shape),
               hint="one token per step and sentence, without the SOS you started from")
        expect(name, torch.equal(got, want), f"{about}: the decoded tokens differ from the "
               "reference's", expected=want, got=got,
               hint="start from y = SOS for every sentence, memory = model._start(src, "
                    "src_lengths); each step logits, _ = model._step(y, memory) and feed "
                    "back y = logits.argmax(dim=-1), not the true token")
    return passed(name, "3 models, with and without attention: the reference's tokens")


def check_seq2seq_challenge(model: Any, target: float | None = None) -> float:
    """The open challenge: exact-match accuracy of ``model.greedy_decode`` reversing 500
    fresh digit strings of one length (``CHALLENGE``: 8 digits, 90%, full profile; 5 digits,
    80%, fast profile). An exact match is all the digits and the EOS."""
    from slm_course.seq2seq import accuracy_by_length

    name = "check_seq2seq_challenge"
    setting = pick(**CHALLENGE)
    target = setting["target"] if target is None else target
    length = setting["length"]
    expect(name, callable(getattr(model, "greedy_decode", None)),
           "pass a model with greedy_decode(src, src_lengths, steps), e.g. a Seq2Seq",
           got=type(model).__name__)
    device = next(model.parameters()).device
    result = call_learner(name, accuracy_by_length, model, [length], n=500, task="reverse",
                          seed=7, device=device)
    exact = result["exact"][0]
    expect(name, exact >= target, f"exact-match accuracy {exact:.1%} on strings of "
           f"{length} digits is below the target {target:.0%}", got=f"{exact:.1%}",
           hint="attention, more steps, a wider GRU, training on lengths up to (at least) the "
                "test length, a learning rate around 3e-3 to 1e-2 with clipping")
    passed(name, f"{exact:.1%} of 500 held-out strings of {length} digits reversed exactly "
                 f"(target {target:.0%}); token accuracy {result['token'][0]:.1%}")
    return exact
