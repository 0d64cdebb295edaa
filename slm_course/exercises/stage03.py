"""Checks for stage 03, probability and information: log-softmax, cross-entropy, Gaussian MLE.

Each check runs the learner's function on a few cases (a small one, a batch, an edge case)
and, when the answer is wrong, recognizes the usual mistakes (overflow, the wrong axis, a
sum instead of a mean, N - 1 instead of N) to name them in the hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, fail, passed
from slm_course.probability import gaussian_mle, log_softmax

#: logits whose exp overflows (1000) or underflows (-1000) in float64
HUGE_LOGITS = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -1002.0]])


def _quietly(check: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the learner without NumPy's overflow warnings: the hint explains them instead."""
    with np.errstate(all="ignore"):
        return call_learner(check, fn, *args)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))


def _name_the_mistake(got: np.ndarray, mistakes: dict[str, np.ndarray]) -> str:
    """The hint of the first known mistake whose answer ``got`` reproduces, or ''."""
    for hint, wrong in mistakes.items():
        if _same(got, np.asarray(wrong, dtype=np.float64)):
            return hint
    return ""


def _non_finite_hint(got: np.ndarray) -> str:
    if np.any(np.isnan(got)) or np.any(got == np.inf):
        return ("overflow: exp(1000) is inf in float64 and inf/inf is nan. Subtract each "
                "row's max before exp (x - max(x) <= 0, so exp never overflows), then add it "
                "back: the log-sum-exp trick.")
    return ("-inf means log(0): exp(-1000) underflows to 0, so log(softmax(x)) fails. "
            "Compute (x - m) - log(sum(exp(x - m))) directly instead of taking the log of a "
            "probability.")


# --------------------------------------------------------------------------- log-softmax


def check_log_softmax(fn: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``fn(logits) -> log-probabilities`` over the last axis; logits (..., C)."""
    name = "check_log_softmax"
    small = np.array([1.0, 2.0, 3.0])
    got = as_array(name, _quietly(name, fn, small.copy()), "log_softmax([1, 2, 3])")
    expect_close(name, got, log_softmax(small), what="log_softmax([1., 2., 3.])",
                 hint=_name_the_mistake(got, {
                     "that is softmax itself: take its log, log p_i = x_i - logsumexp(x).":
                         np.exp(log_softmax(small)),
                     "the normalizer is log sum_j exp(x_j), not log sum_j x_j.":
                         small - np.log(small.sum()),
                     "subtracting the max is only the first step: also subtract "
                     "log sum_j exp(x_j - m).": small - small.max(),
                 }) or "log softmax(x)_i = x_i - log sum_j exp(x_j).")

    batch = np.random.default_rng(3).normal(scale=2.0, size=(4, 5))  # (N, C)
    got = as_array(name, _quietly(name, fn, batch.copy()), "log_softmax(batch)")
    expected = log_softmax(batch, axis=-1)
    wrong_axis = {"each ROW is one distribution: reduce over the last axis (axis=-1) with "
                  "keepdims=True.": log_softmax(batch, axis=0),
                  "you normalized over the whole array: reduce over the last axis only "
                  "(axis=-1, keepdims=True).": batch - np.log(np.exp(batch).sum())}
    expect_close(name, got, expected, what="log_softmax of a (4, 5) batch",
                 hint=_name_the_mistake(got, wrong_axis)
                 or "reduce over axis=-1 with keepdims=True so (4, 1) broadcasts against (4, 5).")

    got = as_array(name, _quietly(name, fn, HUGE_LOGITS.copy()), "log_softmax(huge logits)")
    if got.shape == HUGE_LOGITS.shape and not np.all(np.isfinite(got)):
        raise fail(name, "logits of +-1000 give non-finite log-probabilities",
                   expected=log_softmax(HUGE_LOGITS), got=got, hint=_non_finite_hint(got))
    expect_close(name, got, log_softmax(HUGE_LOGITS), what="log_softmax of logits +-1000",
                 rtol=1e-9, hint="subtract the row max m, then (x - m) - log(sum(exp(x - m))).")
    return passed(name, "a vector, a (4, 5) batch and logits of +-1000")


# --------------------------------------------------------------------------- cross-entropy


def _cross_entropy_case(name: str, fn: Callable[..., Any], logits: np.ndarray,
                        targets: np.ndarray, label: str) -> None:
    got = as_array(name, _quietly(name, fn, logits.copy(), targets.copy()), label)
    n = len(targets)
    logp = log_softmax(logits)  # (N, C)
    picked = logp[np.arange(n), targets]  # (N,)
    expected = -picked.mean()
    if got.shape == (n,) and n > 1:
        raise fail(name, f"{label} returned {n} losses, expected one number",
                   expected=expected, got=got,
                   hint="return the MEAN over the batch: one scalar, e.g. losses.mean().")
    if got.shape == () and not np.isfinite(got):
        raise fail(name, f"{label} is not finite", expected=expected, got=got,
                   hint="overflow or log(0): use a stable log-softmax (subtract the row max, "
                        "log-sum-exp) rather than log(softmax(logits)).")
    mistakes = {
        "you summed over the batch: cross-entropy is the MEAN of -log p(target).":
            -picked.sum(),
        "sign: the loss is the NEGATIVE log-probability of the target (it is >= 0).":
            picked.mean(),
        "logits are not log-probabilities: apply log_softmax before picking the target.":
            -logits[np.arange(n), targets].mean(),
        "pick ONE log-probability per row, the target's: logp[np.arange(N), targets] "
        "(logp[:, targets] makes an (N, N) matrix).": -logp[:, targets].mean(),
        "average only the target class's log-probability, not every class's.": -logp.mean(),
    }
    expect_close(name, got, expected, what=label, rtol=1e-7,
                 hint=_name_the_mistake(got, mistakes)
                 or "loss = -mean_n log_softmax(logits)[n, targets[n]].")


def check_cross_entropy(fn: Callable[[np.ndarray, np.ndarray], float]) -> bool:
    """Check ``fn(logits, targets) -> mean cross-entropy``; logits (N, C), targets (N,) ints."""
    name = "check_cross_entropy"
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=2.0, size=(6, 4))  # (N, C)
    targets = np.array([0, 3, 1, 1, 2, 3])
    _cross_entropy_case(name, fn, logits, targets, "cross_entropy of a (6, 4) batch")
    one = np.array([[2.0, -1.0, 0.5]])
    _cross_entropy_case(name, fn, one, np.array([2]), "cross_entropy of a single example")
    _cross_entropy_case(name, fn, HUGE_LOGITS, np.array([2, 0]),
                        "cross_entropy with logits of +-1000")
    uniform = np.zeros((3, 5))
    got = as_array(name, _quietly(name, fn, uniform, np.array([0, 1, 4])), "uniform logits")
    expect_close(name, got, np.log(5.0), what="cross_entropy of uniform logits over 5 classes",
                 hint="a uniform guess over C classes costs exactly log(C) nats.")
    return passed(name, "a batch, one example, logits of +-1000 and a uniform guess")


# --------------------------------------------------------------------------- Gaussian MLE


def _gaussian_case(name: str, fn: Callable[..., Any], x: np.ndarray, label: str) -> None:
    result = _quietly(name, fn, x.copy())
    expect(name, isinstance(result, (tuple, list)) and len(result) == 2,
           f"{label}: expected a pair (mean, variance)", got=result,
           hint="end with `return mean, variance`.")
    mean, variance = (as_array(name, v, label) for v in result)
    mu, var = gaussian_mle(x)
    expect_close(name, mean, mu, what=f"{label}: the mean", rtol=1e-9,
                 hint="the MLE of the mean is the sample average, sum(x) / N.")
    n = x.size
    mistakes = {"return the VARIANCE sigma^2, not the standard deviation sigma.": np.sqrt(var),
                "the MLE divides by N, not N - 1 (np.var(x, ddof=1) is the unbiased "
                "estimate, not the maximum-likelihood one).":
                    var * n / (n - 1) if n > 1 else np.nan,
                "square the deviations: mean((x - mu)**2), not mean(x - mu).":
                    np.mean(x - mu),
                "subtract the mean before squaring: mean((x - mu)**2), not mean(x**2).":
                    np.mean(x**2)}
    if n == 1 and np.isnan(variance):
        raise fail(name, f"{label}: the variance is nan", expected=var, got=variance,
                   hint="dividing by N - 1 = 0: the MLE divides by N (one sample has "
                        "variance 0).")
    expect_close(name, variance, var, what=f"{label}: the variance", rtol=1e-9,
                 hint=_name_the_mistake(variance, mistakes)
                 or "sigma^2 = mean((x - mu)**2), dividing by N.")


def check_gaussian_mle(fn: Callable[[np.ndarray], tuple[float, float]]) -> bool:
    """Check ``fn(x) -> (mean, variance)``, the Gaussian maximum-likelihood fit of 1-D x."""
    name = "check_gaussian_mle"
    _gaussian_case(name, fn, np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
                   "x = [2, 4, 4, 4, 5, 5, 7, 9]")
    x = np.random.default_rng(5).normal(loc=-3.0, scale=0.7, size=1000)
    _gaussian_case(name, fn, x, "1000 samples of N(-3, 0.49)")
    _gaussian_case(name, fn, np.array([1.5]), "a single sample")
    return passed(name, "a textbook example, 1000 samples and a single sample")


# ---------------------------------------------------------------- the open challenge

#: the open challenge: held-out cross-entropy of the next character, in nats per character
#: (uniform over 65 characters: ln 65 = 4.17; counting single characters: 3.35; counting
#: pairs: 2.48)
CHALLENGE_TARGET = 2.30


def check_next_char_challenge(predict: Callable[[str], Any], target: float | None = None
                              ) -> float:
    """The open challenge: ``predict(context) -> p``, a probability for each of the 65
    characters of ``sorted(set(tiny_shakespeare))`` given the (up to) 32 characters before,
    built from the first 90% of Tiny Shakespeare. Scored by the cross-entropy
    -mean log p(next character) on the last 10% (fast profile: its first 5,000 characters).
    Target: 2.30 nats/char."""
    from slm_course.data import load_tinyshakespeare
    from slm_course.helpers.workload import pick

    name = "check_next_char_challenge"
    target = CHALLENGE_TARGET if target is None else target
    text = load_tinyshakespeare()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    start = int(len(text) * 0.9)
    stop = len(text) if pick(fast=5_000, full=None) is None else start + 5_000
    total = 0.0
    for pos in range(start, stop):
        p = as_array(name, call_learner(name, predict, text[max(0, pos - 32):pos]),
                     "predict(context)")
        if pos == start:
            expect(name, p.shape == (len(vocab),), f"predict returned shape {p.shape}",
                   expected=(len(vocab),), hint="one probability per character of the "
                   "sorted vocabulary")
        prob = float(p[index[text[pos]]])
        if not (prob > 0 and abs(float(p.sum()) - 1.0) < 1e-6 and (p >= 0).all()):
            raise fail(name, f"predict({text[max(0, pos - 32):pos][-10:]!r}) is not a "
                       f"distribution that gives the next character {text[pos]!r} a "
                       f"positive probability", got=p,
                       hint="probabilities >= 0 that sum to 1, and never 0 for a character "
                            "that can occur: smooth your counts (add-k, or mix with the "
                            "single-character frequencies)")
        total -= np.log(prob)
    loss = total / (stop - start)
    expect(name, loss <= target, f"held-out cross-entropy {loss:.3f} nats/char, the target "
           f"is {target}", expected=f"<= {target}", got=round(loss, 3),
           hint="condition on more than one previous character (counts of triples) and mix "
                "the estimates of different context lengths (interpolation), since long "
                "contexts are often unseen")
    passed(name, f"{loss:.3f} nats/char on {stop - start:,} held-out characters "
                 f"(target {target})")
    return loss
