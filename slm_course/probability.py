"""Probability and information for language models, in NumPy.

A language model outputs *logits* z over a vocabulary; everything else follows from them:

    softmax(z)_i     = exp(z_i) / sum_j exp(z_j)            a categorical distribution
    logsumexp(z)     = m + log sum_j exp(z_j - m),  m = max_j z_j   (never overflows)
    cross-entropy    = -(1/N) sum_n log softmax(z_n)[y_n]   the training loss
    perplexity       = exp(cross-entropy)                   "how many choices it hesitates over"
    H(p)             = -sum_i p_i log p_i                   entropy, in nats
    KL(p || q)       = sum_i p_i log(p_i / q_i) >= 0        the extra nats paid for using q

plus the maximum-likelihood fits of a Gaussian and a categorical, sampling by the inverse
CDF, and temperature. Logarithms are natural (nats); divide by log(2) for bits.

Every function takes NumPy arrays (or anything ``np.asarray`` accepts). Where it is
natural, a ``torch.Tensor`` is accepted too and a tensor of the same dtype and device comes
back; it is computed in NumPy, so no gradient flows through it (train with
``torch.nn.functional``; the tests prove the two agree).

Stage 03: probability and information.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ArrayLike = Any  # a NumPy array, a nested list, a number, or a torch.Tensor

#: how far from 1 a probability vector may sum (float32 softmax outputs are ~1e-7 off)
SUM_TOLERANCE = 1e-5


# --------------------------------------------------------------------------- plumbing


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device")  # torch.Tensor, without importing torch


def _to_numpy(x: ArrayLike) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """Return ``x`` as a float ndarray and a function that turns a result back into x's type."""
    if _is_tensor(x):
        import torch

        tensor = x
        plain = tensor.detach().cpu()
        array = (plain.float() if plain.dtype == torch.bfloat16 else plain).numpy()  # no bf16
        dtype = tensor.dtype if tensor.dtype.is_floating_point else torch.float64

        def back(result: np.ndarray) -> Any:
            return torch.as_tensor(np.asarray(result), dtype=dtype, device=tensor.device)
    else:
        array = np.asarray(x)

        def back(result: np.ndarray) -> Any:
            return result
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array, back


def _check_distribution(p: np.ndarray, name: str, axis: int = -1) -> None:
    """Raise ValueError unless ``p`` is non-negative and sums to 1 along ``axis``."""
    if p.ndim == 0 or p.shape[axis] == 0:
        raise ValueError(f"{name} must have at least one category along axis {axis}, "
                         f"got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or inf; probabilities must be finite numbers")
    if np.any(p < 0):
        raise ValueError(f"{name} has negative entries (smallest {p.min():.3g}); "
                         f"probabilities must be >= 0. Did you pass logits? Use softmax first.")
    sums = np.asarray(p.sum(axis=axis))
    if not np.allclose(sums, 1.0, rtol=0.0, atol=SUM_TOLERANCE):
        worst = float(sums.flat[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(f"{name} must sum to 1 along axis {axis}, but a row sums to "
                         f"{worst:.6g}; normalize it with p / p.sum(axis={axis}, keepdims=True) "
                         f"or build it with softmax(logits).")


# --------------------------------------------------------------------------- softmax family


def _minus_max(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (a - m, m) with m = max along ``axis`` (kept), or 0 where that max is not finite."""
    m = np.max(a, axis=axis, keepdims=True)  # (..., 1, ...)
    m = np.where(np.isfinite(m), m, 0.0)  # an all -inf slice: shift by 0, not by -inf
    return a - m, m


def logsumexp(x: ArrayLike, axis: int = -1, keepdims: bool = False) -> Any:
    """log sum_i exp(x_i), computed stably as m + log sum_i exp(x_i - m) with m = max_i x_i.

    Subtracting the max makes the largest exponent exp(0) = 1, so nothing overflows, and the
    sum is at least 1, so the log never sees 0. A slice that is all -inf gives -inf (log 0).
    """
    a, back = _to_numpy(x)
    shifted, m = _minus_max(a, axis)  # every entry <= 0
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for all -inf
        out = m + np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return back(out)


def softmax(x: ArrayLike, axis: int = -1) -> Any:
    """softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j (same value, no overflow)."""
    a, back = _to_numpy(x)
    e = np.exp(_minus_max(a, axis)[0])  # the largest entry becomes exp(0) = 1
    return back(e / np.sum(e, axis=axis, keepdims=True))


def log_softmax(x: ArrayLike, axis: int = -1) -> Any:
    """log softmax(x)_i = (x_i - m) - log sum_j exp(x_j - m) = x_i - logsumexp(x).

    Exact even where softmax(x)_i underflows to 0; working with x - m (not adding m back
    and subtracting it again) also keeps float32 precision at large logits.
    """
    a, back = _to_numpy(x)
    shifted, _ = _minus_max(a, axis)
    with np.errstate(divide="ignore"):
        return back(shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)))


def apply_temperature(logits: ArrayLike, temperature: float) -> Any:
    """Return z / T. softmax(z / T) is sharper for T < 1 (T -> 0: argmax), flatter for T > 1."""
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}; "
                         f"temperature 0 means greedy decoding (take the argmax of the logits "
                         f"instead), and a negative one would prefer the least likely tokens.")
    a, back = _to_numpy(logits)
    return back(a / t)


# --------------------------------------------------------------------------- losses and information


def cross_entropy(logits: ArrayLike, targets: ArrayLike, reduction: str = "mean") -> Any:
    """-log softmax(z_n)[y_n], averaged over the batch: the loss every classifier and LM trains on.

    logits: (N, C) unnormalized scores (or (..., C)); targets: (N,) (or (...)) integer class
    ids in [0, C). reduction: "mean" (default), "sum" or "none" (one loss per example).
    Equals ``torch.nn.functional.cross_entropy`` on (N, C) logits.
    """
    z, back = _to_numpy(logits)
    y = _check_targets(z, targets)
    reduce = _reduction(reduction)
    logp = log_softmax(z, axis=-1)  # (..., C)
    nll = -np.take_along_axis(logp, y[..., None].astype(np.int64), axis=-1)[..., 0]  # (...)
    return back(reduce(nll))


def _check_targets(z: np.ndarray, targets: ArrayLike) -> np.ndarray:
    """Targets as an integer array of shape z.shape[:-1] with ids in [0, C), or a clear error."""
    y = targets.detach().cpu().numpy() if _is_tensor(targets) else np.asarray(targets)
    if z.ndim < 1 or z.shape[-1] == 0:
        raise ValueError(f"logits must have shape (N, C) with C >= 1, got {z.shape}")
    if y.shape != z.shape[:-1]:
        raise ValueError(f"targets have shape {y.shape} but logits {z.shape} need targets of "
                         f"shape {z.shape[:-1]}: one class id per row of logits. (Passing "
                         f"one-hot targets? Use targets.argmax(-1).)")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"targets must be integer class ids, got dtype {y.dtype}")
    n_classes = z.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"targets must lie in [0, {n_classes}) for {n_classes} classes, got "
                         f"values from {y.min()} to {y.max()}")
    return y


_REDUCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": np.mean, "sum": np.sum, "none": lambda losses: losses}


def _reduction(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {name!r}")
    return _REDUCTIONS[name]


def perplexity(logits: ArrayLike, targets: ArrayLike) -> Any:
    """exp(mean cross-entropy): 1 for a perfect model, C for a uniform guess over C classes."""
    ce = cross_entropy(logits, targets, reduction="mean")
    if _is_tensor(ce):
        return ce.exp()
    return np.exp(ce)


def entropy(p: ArrayLike, axis: int = -1) -> Any:
    """H(p) = -sum_i p_i log p_i in nats, with 0 log 0 = 0. Raises if p is not a distribution."""
    a, back = _to_numpy(p)
    _check_distribution(a, "p", axis)
    terms = -a * np.log(np.where(a > 0, a, 1.0))  # p log p, and 0 where p = 0
    return back(np.sum(terms, axis=axis))


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1) -> Any:
    """KL(p || q) = sum_i p_i log(p_i / q_i) >= 0, zero iff p = q; not symmetric.

    Terms with p_i = 0 count 0; a category with p_i > 0 but q_i = 0 makes it +inf.
    """
    a, back = _to_numpy(p)
    b, _ = _to_numpy(q)
    if a.shape != b.shape:
        raise ValueError(f"p has shape {a.shape} but q has shape {b.shape}; KL compares two "
                         f"distributions over the same categories")
    _check_distribution(a, "p", axis)
    _check_distribution(b, "q", axis)
    support = a > 0
    with np.errstate(divide="ignore"):  # p > 0, q = 0 gives log(p / 0) = +inf on purpose
        log_ratio = np.log(np.where(support, a, 1.0)) - np.log(np.where(support, b, 1.0))
    return back(np.sum(np.where(support, a * log_ratio, 0.0), axis=axis))


# --------------------------------------------------------------------------- maximum likelihood


def gaussian_mle(x: ArrayLike, axis: int = 0) -> tuple[Any, Any]:
    """Maximum-likelihood (mean, variance) of a Gaussian fitted to samples x along ``axis``.

        mu = (1/N) sum_n x_n,     sigma^2 = (1/N) sum_n (x_n - mu)^2

    The MLE divides by N (not N - 1): it maximizes the likelihood, it is not unbiased.
    """
    a, back = _to_numpy(x)
    if a.ndim == 0 or a.shape[axis] == 0:
        raise ValueError(f"need at least one sample along axis {axis}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("samples contain NaN or inf; drop or fix them before fitting")
    mean = np.mean(a, axis=axis)
    variance = np.mean((a - np.expand_dims(mean, axis)) ** 2, axis=axis)
    return back(mean), back(variance)


def gaussian_log_likelihood(x: ArrayLike, mean: float, variance: float) -> float:
    """sum_n log N(x_n; mu, sigma^2) = -N/2 log(2 pi sigma^2) - sum_n (x_n - mu)^2 / (2 sigma^2)."""
    a, _ = _to_numpy(x)
    if not variance > 0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    n = a.size
    return float(-0.5 * n * np.log(2 * np.pi * variance)
                 - np.sum((a - mean) ** 2) / (2 * variance))


def categorical_mle(samples: ArrayLike, num_classes: int) -> np.ndarray:
    """Maximum-likelihood probabilities of a categorical: p_k = count(k) / N.

    samples: integer class ids in [0, num_classes) (any shape). Returns (num_classes,).
    A class never seen gets probability 0 (see add-one smoothing in stage 08).
    """
    s = samples.detach().cpu().numpy() if _is_tensor(samples) else np.asarray(samples)
    s = s.reshape(-1)
    if s.size == 0:
        raise ValueError("need at least one sample to fit a categorical distribution")
    if not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"samples must be integer class ids, got dtype {s.dtype}; map "
                         f"symbols to ids first, e.g. {{ch: i for i, ch in enumerate(vocab)}}")
    if num_classes < 1 or s.min() < 0 or s.max() >= num_classes:
        raise ValueError(f"samples must lie in [0, {num_classes}), got values from {s.min()} "
                         f"to {s.max()}; is num_classes={num_classes} too small?")
    counts = np.bincount(s, minlength=num_classes)  # (num_classes,)
    return counts / s.size


# --------------------------------------------------------------------------- sampling


def sample_categorical(probs: ArrayLike, num_samples: int, rng: np.random.Generator) -> Any:
    """Draw class ids from a categorical by the inverse CDF.

    With F_k = p_0 + ... + p_k and u ~ Uniform[0, 1), return the first k with u < F_k:
    category k owns the interval [F_{k-1}, F_k) of width p_k.
    probs: (K,) or (B, K), rows summing to 1. Returns (num_samples,) or (B, num_samples).
    """
    p = _check_sampling(probs, num_samples, rng)  # (K,) or (B, K)
    cdf = np.cumsum(p, axis=-1)  # (..., K)
    cdf = cdf / cdf[..., -1:]  # the last edge is exactly 1, so every u < 1 lands somewhere
    u = rng.random((*p.shape[:-1], int(num_samples)))  # (..., S)
    # the number of edges F_k <= u is the index of the interval u falls in
    ids = np.sum(u[..., None] >= cdf[..., None, :], axis=-1)  # (..., S)
    if _is_tensor(probs):
        import torch

        return torch.as_tensor(ids, dtype=torch.long, device=probs.device)
    return ids


def _check_sampling(probs: ArrayLike, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``probs`` as a checked (K,) or (B, K) array of distributions, or a clear error."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)),"
                        f" got {type(rng).__name__}")
    if int(num_samples) != num_samples or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative integer, got {num_samples!r}")
    p, _ = _to_numpy(probs)
    if p.ndim not in (1, 2):
        raise ValueError(f"probs must have shape (K,) or (B, K), got {p.shape}")
    _check_distribution(p, "probs", axis=-1)
    return p
