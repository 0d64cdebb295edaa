"""Counting language models: the character bigram of makemore and interpolated word n-grams.

A language model assigns a probability to every next token given the ones before it. The
simplest ones *count*. The bigram model of names counts how often character b follows a,

    P(b | a) = (N[a, b] + k) / (sum_c N[a, c] + k V)          add-k smoothing (k = 1: add-one)

where every name is wrapped in the boundary token '.' ("emma" -> ". e m m a ."), so the
model also learns how names start and end. Its quality is the mean negative log-likelihood
(NLL) of the bigrams it is scored on, and perplexity = exp(mean NLL).

A word n-gram model conditions on the last n - 1 words. Its maximum-likelihood estimate
P_ML(w | h) = c(h w) / c(h) gives probability 0 to every continuation it never saw, so one
unseen n-gram makes the perplexity of a text infinite. Interpolation (Jelinek-Mercer) mixes
every order down to the uniform distribution, so nothing is ever impossible:

    p_0(w) = 1 / V,    p_k(w | h) = lam_k P_ML(w | h_k) + (1 - lam_k) p_{k-1}(w | h)

with h_k the last k - 1 words of h (p_k = p_{k-1} where h_k was never seen), and the weights
lam_k tuned on held-out text. Each p_k sums to 1 over the vocabulary.

Stage 08: text as data (the neural models are in ``slm_course.mlp_lm``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from slm_course.probability import sample_categorical
from slm_course.tokenizers import CharTokenizer

NAME_BOUNDARY = "."  # starts and ends every name, as in makemore; it sorts first, so its id is 0


# ---------------------------------------------------------------------------------------------
# The character bigram model of names
# ---------------------------------------------------------------------------------------------

def names_tokenizer(names: Sequence[str]) -> CharTokenizer:
    """The alphabet of ``names`` plus the boundary '.', sorted: '.' is id 0, 'a' id 1, ..."""
    text = "".join(names)
    if NAME_BOUNDARY in text:
        raise ValueError(f"a name contains the boundary token {NAME_BOUNDARY!r}; remove it first")
    return CharTokenizer.from_text(NAME_BOUNDARY + text)


def bigram_pairs(names: Sequence[str], tokenizer: CharTokenizer) -> tuple[np.ndarray, np.ndarray]:
    """Every bigram (a, b) of ``'.' + name + '.'`` for all names, as two id arrays (N,)."""
    xs: list[int] = []
    ys: list[int] = []
    for name in names:
        ids = tokenizer.encode(NAME_BOUNDARY + name + NAME_BOUNDARY)  # unknown char: an error
        xs += ids[:-1]
        ys += ids[1:]
    return np.array(xs, dtype=np.int64), np.array(ys, dtype=np.int64)


def bigram_counts(names: Sequence[str], tokenizer: CharTokenizer) -> np.ndarray:
    """N[a, b] = how often b follows a, over every name wrapped in '.': (V, V) integers."""
    xs, ys = bigram_pairs(names, tokenizer)
    counts = np.zeros((tokenizer.vocab_size, tokenizer.vocab_size), dtype=np.int64)  # (V, V)
    np.add.at(counts, (xs, ys), 1)
    return counts


def smoothed_probs(counts: np.ndarray, k: float = 1.0) -> np.ndarray:
    """P[a, b] = (N[a, b] + k) / (sum_c N[a, c] + k V): each row a distribution over b.

    k = 0 is the maximum-likelihood estimate, k = 1 add-one (Laplace) smoothing.
    """
    counts = _check_counts(counts, k)
    smoothed = counts + k  # (V, V)
    return smoothed / smoothed.sum(axis=1, keepdims=True)


def mean_nll(probs: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """-(1/N) sum_i log P[x_i, y_i]: the average negative log-likelihood, in nats."""
    with np.errstate(divide="ignore"):  # P = 0 gives -log 0 = inf, which is the truth
        return float(-np.mean(np.log(probs[xs, ys])))


def sample_names(probs: np.ndarray, tokenizer: CharTokenizer, n: int,
                 rng: np.random.Generator, max_len: int = 50) -> list[str]:
    """Draw ``n`` names: start at '.', sample b ~ P[a, :] until '.' comes back."""
    names = []
    for _ in range(n):
        ids: list[int] = []
        a = 0  # the boundary '.'
        while len(ids) < max_len:
            a = int(sample_categorical(probs[a], 1, rng)[0])
            if a == 0:
                break
            ids.append(a)
        names.append(tokenizer.decode(ids))
    return names


def _check_counts(counts: np.ndarray, k: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"counts must be a square (V, V) matrix, got shape {counts.shape}")
    if not (np.isfinite(k) and k >= 0):
        raise ValueError(f"the smoothing k must be a finite number >= 0, got {k!r} (k = 0: "
                         f"no smoothing, k = 1: add-one)")
    if np.any(counts < 0):
        raise ValueError("counts must be >= 0")
    if k == 0 and np.any(counts.sum(axis=1) == 0):
        row = int(np.argmax(counts.sum(axis=1) == 0))
        raise ValueError(f"row {row} has no counts, so without smoothing its distribution is "
                         f"0/0; use k > 0")
    return counts


# ---------------------------------------------------------------------------------------------
# Word n-grams with interpolation
# ---------------------------------------------------------------------------------------------

def count_ngrams(ids: Sequence[int], k: int) -> Counter:
    """c(g) for every run g of k consecutive ids, as tuples (k = 0: the empty context)."""
    if k == 0:
        return Counter({(): len(ids)})
    return Counter(zip(*(ids[j:len(ids) - k + 1 + j] for j in range(k)), strict=True))


def interpolate(mle: np.ndarray, lambdas: Sequence[float], vocab_size: int) -> np.ndarray:
    """Interpolated probabilities from the per-order estimates of each scored token.

    mle: (N, n) with mle[i, k-1] = P_ML of token i under order k, NaN where its context was
    never seen. p_0 = 1/V, p_k = lam_k P_ML_k + (1 - lam_k) p_{k-1}. Returns p_n: (N,).
    """
    p = np.full(mle.shape[0], 1.0 / vocab_size)  # (N,) the uniform distribution
    for k, lam in enumerate(lambdas):
        m = mle[:, k]  # (N,)
        p = np.where(np.isnan(m), p, lam * np.nan_to_num(m) + (1.0 - lam) * p)
    return p


class NGramLM:
    """An n-gram language model over token ids, interpolated down to the uniform distribution.

    ``fit(ids)`` counts; ``tune(ids)`` chooses the weights lam_1..lam_n on held-out ids; a
    token is scored from the ``order - 1`` tokens before it (the first ``order - 1`` tokens of
    a scored sequence are context only).
    """

    def __init__(self, order: int, vocab_size: int, lambdas: Sequence[float] | None = None):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an int >= 1 (1: unigram, 2: bigram, ...), got "
                             f"{order!r}")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.order, self.vocab_size = order, vocab_size
        self.lambdas = list(lambdas) if lambdas is not None else [0.5] * order
        _check_lambdas(self.lambdas, order)
        self.counts: list[Counter] = [Counter() for _ in range(order + 1)]  # [k]: (h..., w)
        self.context_counts: list[Counter] = [Counter() for _ in range(order + 1)]  # [k]: h

    def fit(self, ids: Sequence[int]) -> NGramLM:
        """Count every k-gram (k = 1..order) of ``ids`` and every context of length k - 1."""
        ids = self._check_ids(ids)
        for k in range(1, self.order + 1):
            self.counts[k] = count_ngrams(ids, k)
            # c(h) = sum_w c(h w): the times h is followed by a word (k = 1: all N tokens)
            self.context_counts[k] = count_ngrams(ids[:-1] if k > 1 else ids, k - 1)
        return self

    def mle(self, context: Sequence[int], word: int) -> list[float]:
        """P_ML(word | last k - 1 of context) = c(h w) / c(h) for k = 1..order (NaN: c(h) = 0)."""
        out = []
        for k in range(1, self.order + 1):
            h = tuple(context[len(context) - k + 1:]) if k > 1 else ()
            seen = self.context_counts[k].get(h, 0) if len(h) == k - 1 else 0
            out.append(self.counts[k].get((*h, word), 0) / seen if seen else float("nan"))
        return out

    def mle_table(self, ids: Sequence[int]) -> np.ndarray:
        """The per-order estimates of every scored token of ``ids``: (N - order + 1, order)."""
        ids = self._check_ids(ids)
        n = self.order
        return np.array([self.mle(ids[i - n + 1:i], ids[i]) for i in range(n - 1, len(ids))],
                        dtype=np.float64).reshape(-1, n)

    def prob(self, context: Sequence[int], word: int) -> float:
        """The interpolated P(word | context)."""
        mle = np.array([self.mle(list(context), int(word))])  # (1, n)
        return float(interpolate(mle, self.lambdas, self.vocab_size)[0])

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(w | context) for every w of the vocabulary: (V,), sums to 1."""
        mle = np.array([self.mle(list(context), w) for w in range(self.vocab_size)])  # (V, n)
        return interpolate(mle, self.lambdas, self.vocab_size)

    def token_nlls(self, ids: Sequence[int], smoothed: bool = True) -> np.ndarray:
        """-log P of every scored token; ``smoothed=False`` uses the bare top-order P_ML,
        which is 0 (an infinite NLL) for an n-gram never seen in training."""
        mle = self.mle_table(ids)  # (N, n)
        p = (interpolate(mle, self.lambdas, self.vocab_size) if smoothed
             else np.nan_to_num(mle[:, -1]))  # an unseen context: 0/0, no probability either
        with np.errstate(divide="ignore"):
            return -np.log(p)

    def perplexity(self, ids: Sequence[int], smoothed: bool = True) -> float:
        """exp(mean NLL) of the scored tokens of ``ids``."""
        return float(np.exp(np.mean(self.token_nlls(ids, smoothed))))

    def tune(self, ids: Sequence[int], grid: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19))
             ) -> NGramLM:
        """Choose lam_1, then lam_2, ... (each with the lower ones fixed) to minimise the mean
        NLL of held-out ``ids`` over ``grid``; the counts are not touched."""
        mle = self.mle_table(ids)  # (N, n), computed once
        for k in range(self.order):
            def nll(lam: float, k: int = k) -> float:
                p = interpolate(mle[:, :k + 1], [*self.lambdas[:k], lam], self.vocab_size)
                return float(-np.mean(np.log(p)))
            self.lambdas[k] = min(grid, key=nll)
        return self

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        ids = [int(i) for i in ids]
        if len(ids) < self.order:
            raise ValueError(f"need at least order = {self.order} tokens, got {len(ids)}")
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, "
                             f"{self.vocab_size}); encode with the model's tokenizer")
        return ids

    def __repr__(self) -> str:
        lams = ", ".join(f"{lam:.2f}" for lam in self.lambdas)
        return f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, lambdas=[{lams}])"


def _check_lambdas(lambdas: Sequence[float], order: int) -> None:
    if len(lambdas) != order:
        raise ValueError(f"need one weight per order ({order}), got {len(lambdas)}")
    if not all(0.0 <= lam <= 1.0 for lam in lambdas):
        raise ValueError(f"interpolation weights must lie in [0, 1], got {list(lambdas)}")
