"""Checks for stage 08, text as data (solutions/08_text_as_data).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.ngram``, ``slm_course.tokenizers.bpe`` and ``slm_course.mlp_lm`` (each proven
against an oracle in the tests), and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.ngram import (
    NGramLM,
    bigram_counts,
    bigram_pairs,
    mean_nll,
    names_tokenizer,
    smoothed_probs,
)
from slm_course.tokenizers.bpe import count_pairs, merge_pair

SMALL_NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "zoe", "anna", "liam"]


def _bigram_nll(names: list[str], k: float) -> float:
    tok = names_tokenizer(names)
    xs, ys = bigram_pairs(names, tok)
    return mean_nll(smoothed_probs(bigram_counts(names, tok), k), xs, ys)


def check_bigram_nll(fn: Callable[..., Any]) -> bool:
    """Check ``fn(names, k) -> mean NLL`` of the add-k bigram model on its own training names."""
    name = "check_bigram_nll"
    cases = [(SMALL_NAMES, 1.0), (SMALL_NAMES, 0.5), (["ab", "ba", "abba"], 0.0),
             (SMALL_NAMES[:3], 3.0)]
    for names, k in cases:
        want = _bigram_nll(names, k)
        got = call_learner(name, fn, list(names), k)
        no_boundary = _nll_without_boundary(names, k)
        if got is not None and np.isfinite(no_boundary) and np.isclose(float(got), no_boundary):
            expect(name, False, f"k={k}: your NLL ignores the start and end of each name",
                   hint="wrap every name as '.' + name + '.', so '.e' (a name starts with e) "
                        "and 'a.' (a name ends with a) are bigrams too")
        expect_close(name, got, want, what=f"the mean NLL of {len(names)} names with k={k}",
                     hint="P[a, b] = (N[a, b] + k) / (sum_c N[a, c] + k V), V = the letters "
                          "plus '.'; then average -log P over every bigram (natural log)")
    return passed(name, f"{len(cases)} cases, k from 0 to 3")


def _nll_without_boundary(names: list[str], k: float) -> float:
    chars = sorted(set("".join(names)))
    ix = {c: i for i, c in enumerate(chars)}
    pairs = [(ix[a], ix[b]) for w in names for a, b in zip(w, w[1:], strict=False)]
    counts = np.zeros((len(chars), len(chars)))
    for a, b in pairs:
        counts[a, b] += 1
    if k == 0 and np.any(counts.sum(1) == 0):
        return float("nan")
    probs = (counts + k) / (counts + k).sum(1, keepdims=True)
    return float(-np.mean([np.log(probs[a, b]) for a, b in pairs]))


def check_bpe_merge_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(ids, new_id) -> (pair, merged_ids)``: one step of BPE training."""
    name = "check_bpe_merge_step"
    cases = [  # (what, ids, new_id)
        ("'aaabdaaabac' as bytes", list(b"aaabdaaabac"), 256),
        ("a run of three equal ids", [5, 5, 5, 7], 300),
        ("a tie between two pairs", [3, 4, 1, 2, 9, 1, 2, 3, 4], 257),
        ("ids that are earlier merges", [256, 32, 256, 32, 116], 258),
    ]
    for about, ids, new_id in cases:
        counts = count_pairs(ids)
        want_pair = min(counts, key=lambda p: (-counts[p], p))
        want = merge_pair(ids, want_pair, new_id)
        got = call_learner(name, fn, list(ids), new_id)
        expect(name, isinstance(got, tuple) and len(got) == 2,
               f"{about}: return a tuple (pair, merged_ids)", got=got)
        pair, merged = tuple(got[0]), list(got[1])
        expect(name, pair == want_pair, f"{about}: merged the pair {pair}, expected "
               f"{want_pair}", hint="count every adjacent pair (ids[i], ids[i+1]); take the most "
               "frequent, and among equally frequent pairs the smallest (compare tuples)")
        expect(name, merged == want, f"{about}: the merged ids are wrong", expected=want,
               got=merged, hint="scan left to right; where the pair starts at i, append new_id "
               "and jump to i + 2 (so 'aaa' becomes [new, 'a'], never two overlapping merges)")
    return passed(name, f"{len(cases)} cases, with overlaps and ties")


def check_interpolated_prob(fn: Callable[..., Any]) -> bool:
    """Check ``fn(ids, vocab_size, lambdas, prev, word)``: the interpolated bigram
    P(word | prev) = l2 P_ML(word | prev) + (1 - l2) (l1 P_ML(word) + (1 - l1) / V)."""
    name = "check_interpolated_prob"
    ids = [0, 1, 0, 2, 0, 1, 3, 0, 1, 2, 2, 5, 2]  # the last 2 is followed by nothing
    V = 7  # ids 4 and 6 never occur
    cases = [("a seen bigram", (0.8, 0.6), 0, 1), ("a seen context, unseen word", (0.8, 0.6), 0, 5),
             ("another context", (0.9, 0.3), 2, 2), ("a context never seen", (0.7, 0.5), 4, 1),
             ("a word never seen anywhere", (0.7, 0.5), 1, 6)]
    for about, lambdas, prev, word in cases:
        want = NGramLM(2, V, lambdas=list(lambdas)).fit(ids).prob([prev], word)
        got = call_learner(name, fn, list(ids), V, lambdas, prev, word)
        hint = ("P_ML(w | prev) = c(prev w) / c(prev, followed by anything): the last id is "
                "followed by nothing, so do not count it")
        if about == "a context never seen":
            hint = ("c(prev) = 0 makes P_ML(w | prev) = 0/0: drop the bigram term and use the "
                    "unigram mixture l1 P_ML(w) + (1 - l1) / V alone")
        elif about == "a word never seen anywhere":
            hint = "an unseen word still gets the uniform share (1 - l2)(1 - l1) / V"
        expect_close(name, got, want, what=f"P({word} | {prev}) for {about}", hint=hint)
    return passed(name, f"{len(cases)} cases, with an unseen context and an unseen word")


def check_mlp_lm_forward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, C, W1, b1, W2, b2) -> logits``: x (B, T) ids, C (V, E), W1 (T E, H),
    b1 (H,), W2 (H, V), b2 (V,); logits (B, V)."""
    name = "check_mlp_lm_forward"
    g = torch.Generator().manual_seed(0)
    for B, T, V, E, H in [(4, 3, 27, 2, 5), (7, 5, 11, 3, 8), (1, 1, 6, 4, 3)]:
        x = torch.randint(0, V, (B, T), generator=g)
        C, W1, b1 = torch.randn(V, E, generator=g), torch.randn(T * E, H, generator=g), \
            torch.randn(H, generator=g)
        W2, b2 = torch.randn(H, V, generator=g), torch.randn(V, generator=g)
        want = torch.tanh(C[x].reshape(B, T * E) @ W1 + b1) @ W2 + b2
        got = call_learner(name, fn, x.clone(), C, W1, b1, W2, b2)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and \
                torch.allclose(got, (C[x].reshape(B, T * E) @ W1 + b1) @ W2 + b2, atol=1e-5):
            expect(name, False, "the hidden layer has no non-linearity",
                   hint="h = tanh(e @ W1 + b1); without tanh two linear layers are one")
        expect_close(name, got, want, what=f"logits for B={B}, T={T}, E={E}", rtol=1e-4,
                     atol=1e-5, hint="look up C[x] (B, T, E), put the T embeddings side by "
                     "side with .reshape(B, T * E) (or .view), then tanh(e @ W1 + b1) @ W2 + b2")
    return passed(name, "3 shapes, including a context of one character")


def check_names_challenge(model: Any, target: float | None = None) -> float:
    """Score a names model on makemore's dev split: the mean NLL over every dev example.

    ``model(x)`` takes (B, model.block_size) ids of ``names_tokenizer(load_names())`` ('.' is
    0, 'a' is 1, ...) and returns logits (B, 27) (or ``(logits, loss)``). The target is
    2.20 nats in the full profile and 2.60 in the fast profile (CI's few seconds).
    """
    from slm_course.data import load_names
    from slm_course.helpers.eval_mode import evaluating
    from slm_course.mlp_lm import context_windows, makemore_split

    name = "check_names_challenge"
    target = target if target is not None else pick(fast=2.60, full=2.20)
    block_size = getattr(model, "block_size", None)
    expect(name, isinstance(block_size, int) and block_size >= 1,
           "the model has no integer attribute block_size",
           hint="set self.block_size in __init__: how many previous characters it reads")
    names = load_names()
    tok = names_tokenizer(names)
    _, dev, _ = makemore_split(names)
    X, Y = context_windows(dev, tok, block_size)
    with torch.no_grad(), evaluating(model):
        out = call_learner(name, model, X)
    logits = out[0] if isinstance(out, tuple) else out
    expect(name, isinstance(logits, torch.Tensor) and tuple(logits.shape) == (len(X), 27),
           f"the model returned {tuple(getattr(logits, 'shape', ()))}, expected "
           f"({len(X)}, 27) logits", hint="return one row of 27 logits per context")
    loss = float(F.cross_entropy(logits.float().cpu(), Y))
    expect(name, loss <= target, f"dev loss {loss:.4f}, the target is {target:.2f}",
           hint="train longer, with a larger hidden layer or embedding, and decay the "
                "learning rate at the end; watch the gap between train and dev loss")
    passed(name, f"dev loss {loss:.4f} on all {len(X):,} dev examples (target {target:.2f})")
    return loss
