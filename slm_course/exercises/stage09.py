"""Checks for stage 09, word embeddings (solutions/09_word_embeddings).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.word2vec`` (itself proven against closed forms and autograd), and prints one ✓
line or raises :class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.word2vec import (
    cosine_neighbours,
    group_score,
    keep_probabilities,
    noise_distribution,
    sgns_gradients,
)

# The challenge's word groups: every word occurs at least 5 times in Tiny Shakespeare.
CHALLENGE_GROUPS: dict[str, tuple[str, ...]] = {
    "titles": ("king", "queen", "prince", "duke", "duchess", "lord", "lady", "earl"),
    "thou": ("thou", "thee", "thy", "thine", "art", "hast", "dost", "wilt"),
    "family": ("father", "mother", "son", "daughter", "brother", "sister", "uncle", "wife"),
    "time": ("day", "night", "morning", "hour", "year", "days", "hours", "years"),
    "body": ("hand", "eye", "heart", "head", "face", "tongue", "hands", "eyes"),
    "numbers": ("two", "three", "four", "five", "six", "ten", "twenty", "hundred"),
    "verona": ("romeo", "juliet", "tybalt", "mercutio", "benvolio", "nurse", "capulet",
               "montague"),
}


def check_keep_probabilities(fn: Callable[..., Any]) -> bool:
    """Check ``fn(counts, t) -> keep`` (V,), word2vec's subsampling keep probabilities."""
    name = "check_keep_probabilities"
    cases = [  # (what, counts, t)
        ("a few words, t = 1e-3", np.array([5000, 1000, 100, 10, 1]), 1e-3),
        ("a word that is never seen (count 0)", np.array([0, 300, 40, 2]), 1e-2),
        ("a larger t keeps more", np.array([900, 90, 9]), 0.05),
    ]
    for about, counts, t in cases:
        want = keep_probabilities(counts, t)
        got = as_array(name, call_learner(name, fn, counts.copy(), t), "keep")
        expect(name, got.shape == want.shape, f"{about}: keep has shape {got.shape}, expected "
               f"{want.shape}", hint="one probability per word of the vocabulary")
        paper = np.minimum(1, np.sqrt(t / np.maximum(counts / counts.sum(), 1e-300)))
        if np.allclose(got[counts > 0], paper[counts > 0]) and not np.allclose(got, want):
            expect(name, False, f"{about}: that is the paper's sqrt(t / f)",
                   hint="this exercise asks for the C code's formula, sqrt(t / f) + t / f")
        expect(name, bool(np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1))),
               f"{about}: a keep probability is outside [0, 1] or not finite", got=got,
               hint="clip with np.minimum(1.0, ...) and give a count of 0 the probability 0 "
                    "(divide only where f > 0)")
        expect_close(name, got, want, what=f"keep for {about}",
                     hint="f = counts / counts.sum() is a frequency, not a count; "
                          "keep = min(1, sqrt(t / f) + t / f)")
    return passed(name, f"{len(cases)} cases, with an unseen word")


def check_noise_distribution(fn: Callable[..., Any]) -> bool:
    """Check ``fn(counts) -> P_n`` (V,), the unigram distribution raised to the 3/4."""
    name = "check_noise_distribution"
    cases = [("counts 16, 81, 1", np.array([16, 81, 1])),
             ("with an unseen word", np.array([0, 5, 500, 50])),
             ("one word", np.array([7]))]
    for about, counts in cases:
        want = noise_distribution(counts)
        got = as_array(name, call_learner(name, fn, counts.copy()), "P_n")
        if got.shape == want.shape and np.allclose(got, counts / counts.sum()) and len(counts) > 1:
            expect(name, False, f"{about}: that is the plain unigram distribution",
                   hint="raise each count to the power 0.75 before normalising")
        expect(name, got.shape == want.shape and abs(float(got.sum()) - 1) < 1e-6,
               f"{about}: P_n must be a distribution over the {len(counts)} words "
               f"(sums to {float(got.sum()):.4g})",
               hint="divide counts ** 0.75 by its sum, not by the sum of the counts")
        expect_close(name, got, want, what=f"P_n for {about}",
                     hint="P_n(w) = count(w) ** 0.75 / sum over w' of count(w') ** 0.75")
    return passed(name, f"{len(cases)} cases")


def check_sgns_gradients(fn: Callable[..., Any]) -> bool:
    """Check ``fn(v_c, u_o, u_neg) -> (dv_c, du_o, du_neg)`` against autograd (float64)."""
    name = "check_sgns_gradients"
    rng = np.random.default_rng(0)
    for B, K, D in [(1, 1, 3), (4, 5, 6), (3, 2, 8)]:
        arrays = [rng.standard_normal(s) for s in ((B, D), (B, D), (B, K, D))]
        want = sgns_gradients(*(torch.tensor(a) for a in arrays))
        got = call_learner(name, fn, *(torch.tensor(a) for a in arrays))
        expect(name, isinstance(got, (tuple, list)) and len(got) == 3,
               "return three gradients: (dv_c, du_o, du_neg)", got=type(got).__name__)
        for what, g, w, hint in [
            ("dv_c", got[0], want[0], "dv_c = (sigma(s_o) - 1) u_o + sum_k sigma(s_k) u_k: "
             "the noise words enter with sigma(s_k), not sigma(s_k) - 1 or -sigma(-s_k)"),
            ("du_o", got[1], want[1], "du_o = (sigma(s_o) - 1) v_c: the derivative of "
             "-log sigma(s) is sigma(s) - 1, which is negative"),
            ("du_neg", got[2], want[2], "du_k = sigma(s_k) v_c, one row per noise word: "
             "(B, K, 1) times (B, 1, D)"),
        ]:
            g = as_array(name, g, what)
            expect(name, g.shape == tuple(w.shape), f"{what} has shape {g.shape}, expected "
                   f"{tuple(w.shape)} (B={B}, K={K}, D={D})", hint=hint)
            expect_close(name, g, w.numpy(), what=f"{what} (B={B}, K={K}, D={D})", hint=hint)
    return passed(name, "3 shapes, all three gradients equal to autograd's")


def check_nearest_neighbours(fn: Callable[..., Any]) -> bool:
    """Check ``fn(vectors, query, k) -> ids`` of the k nearest by cosine, best first."""
    name = "check_nearest_neighbours"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 5)) * rng.uniform(0.1, 10, size=(40, 1))  # mixed lengths
    for query, k in [(0, 3), (17, 5), (39, 1)]:
        want = [i for i, _ in cosine_neighbours(x, query, k)]
        got = [int(i) for i in np.asarray(call_learner(name, fn, x.copy(), query, k)).ravel()]
        expect(name, query not in got, f"query {query}: the query itself is in its neighbours",
               hint="a vector's cosine with itself is 1: leave the query out")
        dots = [int(i) for i in np.argsort(-(x @ x[query]))[:k + 1] if i != query][:k]
        if got == dots and got != want:
            expect(name, False, f"query {query}: you ranked by dot product",
                   hint="divide by the lengths: cos(a, b) = a . b / (|a| |b|), or normalise "
                        "every row to length 1 first")
        expect(name, got == want, f"query {query}, k={k}: wrong neighbours", expected=want,
               got=got, hint="sort by cosine similarity, largest first (np.argsort(-sims)), "
                             "and return k ids")
    return passed(name, "3 queries on vectors of very different lengths")


def check_word2vec_challenge(vectors: Any, tokenizer: Any, target: float | None = None) -> float:
    """Score word vectors (V, D) on :data:`CHALLENGE_GROUPS`: the fraction of the 56 words
    whose nearest listed word (cosine) is in their own group (chance is about 1/7). Target
    0.70 in the full profile, 0.45 in the fast one."""
    name = "check_word2vec_challenge"
    target = pick(fast=0.45, full=0.70) if target is None else target
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
    expect(name, x.ndim == 2 and len(x) == tokenizer.vocab_size,
           f"vectors has shape {tuple(x.shape)}, expected ({tokenizer.vocab_size}, D)",
           hint="pass one row per word of the tokenizer, e.g. model.centre.weight.detach()")
    try:
        score = group_score(x, tokenizer, CHALLENGE_GROUPS)
    except KeyError as err:
        expect(name, False, f"a challenge word is missing: {err}",
               hint="build the vocabulary with min_count <= 5 on the whole Tiny Shakespeare")
    expect(name, score >= target, f"group score {score:.1%}, the target is {target:.0%}",
           hint="train longer (several epochs), try dim 100, window 5, t = 1e-3, 5-10 negatives")
    passed(name, f"group score {score:.1%} (target {target:.0%})")
    return score
