"""Checks for stage 14 (GPT): the top-k and top-p sampling filters.

Each check compares the learner's filter with the reference in ``slm_course.generate`` on
several cases, edge cases included. The schedule exercise of stage 14 reuses
``slm_course.exercises.stage04.check_warmup_cosine_lr``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.generate import top_k_filter, top_p_filter


def _distinct_logits(batch: int, vocab: int, seed: int) -> torch.Tensor:
    """Logits without ties (a random permutation of spread-out values), so that 'the k
    largest' and 'the smallest set reaching p' have exactly one answer."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(vocab, generator=g).float() * 0.37 - 2.0 for _ in range(batch)]
    return torch.stack(rows)  # (B, V)


def _check_filter(name: str, fn: Callable, reference: Callable, cases: list, arg_name: str,
                  hint: str) -> None:
    for logits, arg in cases:
        before = logits.clone()
        got = call_learner(name, fn, logits, arg)
        expect(name, isinstance(got, torch.Tensor), f"return a torch.Tensor, got "
               f"{type(got).__name__}", hint="build the result with torch operations")
        expect(name, torch.equal(logits, before), "your function changed its input logits",
               hint="work on a copy: masked_fill (without the trailing _) returns a new tensor")
        expected = reference(logits, arg)
        expect(name, got.shape == expected.shape, f"result has shape {tuple(got.shape)}, "
               f"expected {tuple(expected.shape)}", hint="keep the (B, V) shape")
        kept_got, kept_exp = torch.isfinite(got), torch.isfinite(expected)
        expect(name, torch.equal(kept_got, kept_exp),
               f"kept the wrong tokens for {arg_name}={arg} (a kept token keeps its logit, a "
               f"removed one becomes -inf)", expected=kept_exp.int(), got=kept_got.int(),
               hint=hint)
        expect_close(name, got[kept_got], expected[kept_exp], what="the kept logits",
                     hint="kept logits must be unchanged (do not renormalise or softmax)")
        expect(name, bool(torch.all(got[~kept_got] == float("-inf"))),
               "removed tokens must be exactly -inf (so softmax gives them probability 0)",
               hint="use float('-inf'), not a large negative number or 0")


def check_top_k_filter(fn: Callable) -> bool:
    """Check ``fn(logits (B, V), k) -> logits`` keeping the k largest per row, others -inf."""
    name = "check_top_k_filter"
    logits = _distinct_logits(3, 10, seed=0)
    cases = [(logits, 1), (logits, 3), (logits, 10), (_distinct_logits(2, 50, seed=1), 7)]
    _check_filter(name, fn, top_k_filter, cases, "k",
                  hint="per row, find the k-th largest logit (torch.topk(...).values[..., -1:]) "
                       "and set every logit strictly below it to -inf; k = V keeps all")
    return passed(name, f"{len(cases)} cases, k = 1 to V")


def check_top_p_filter(fn: Callable) -> bool:
    """Check ``fn(logits (B, V), p) -> logits`` keeping the nucleus of probability p."""
    name = "check_top_p_filter"
    logits = _distinct_logits(3, 12, seed=2)
    peaked = torch.tensor([[5.0, 1.0, 0.5, 0.0, -1.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    cases = [(logits, 0.5), (logits, 0.9), (logits, 1e-6), (peaked, 0.6), (peaked, 0.999)]
    _check_filter(name, fn, top_p_filter, cases, "p",
                  hint="sort by probability (descending), keep a token while the probability "
                       "of the tokens ranked *above* it is still < p, so the token that "
                       "crosses p is kept and the most likely token always is")
    return passed(name, f"{len(cases)} cases, including a tiny p (keeps only the top token)")
