"""Text classification without a network: the data, character n-gram baselines and metrics.

The data: surnames with their language of origin, made into unique (name, language) pairs
and split per language (stratified), so that every language keeps its share in each split.

The features: the character n-grams of a name, with ``^`` and ``$`` marking its ends
("Abe" -> ^, a, b, e, $, ^a, ab, be, e$, ^ab, abe, be$ for n <= 3); a name's count vector
x (V,) says how often each n-gram occurs, stored as the bag of its ids. Two linear
classifiers read the same counts:

    naive Bayes (generative, add-alpha smoothing), theta_cj = (N_cj + alpha) / (N_c + alpha V):
        log P(c | x) = log pi_c + sum_j x_j log theta_cj - log Z(x)
    logistic regression (discriminative), trained by gradient descent on cross-entropy:
        P(c | x) = softmax(W x + b)_c,    dL/dW = (P - Y)^T X / N,   dL/db = sum_n (P - Y)_n / N

The metrics: accuracy, and macro-F1, the unweighted mean over classes of
F1_c = 2 P_c R_c / (P_c + R_c) (precision P_c = TP / (TP + FP), recall R_c = TP / (TP + FN)),
which weighs a language with 70 names as much as one with 9,000. Both read stage 06's
:func:`slm_course.mlp.confusion_matrix`.

Stage 10: RNN text classification (the baselines the RNN must beat).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.mlp import confusion_matrix

BOUNDARY = ("^", "$")  # the start and end marks around a name

# ---------------------------------------------------------------------------------------
# The data: unique pairs and a stratified split
# ---------------------------------------------------------------------------------------


def unique_pairs(by_language: dict[str, list[str]]) -> tuple[list[str], list[int], list[str]]:
    """Unique (name, language) pairs: (names, label ids, languages), in the loader's order.

    A name listed twice for one language is kept once; a name listed for two languages
    (e.g. "Abel": French and German) is kept once for each, an ambiguity no model can resolve.
    """
    languages = sorted(by_language)
    names, labels, seen = [], [], set()
    for label, language in enumerate(languages):
        for name in by_language[language]:
            if (name, label) not in seen:
                seen.add((name, label))
                names.append(name)
                labels.append(label)
    return names, labels, languages


def stratified_split(labels: Sequence[int], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0) -> list[np.ndarray]:
    """Split the indices of ``labels`` in the proportions ``fractions`` within every class.

    Each class is shuffled (seeded) and cut by its own counts, so a 70-name language has
    about 7 names in a 10% split rather than whatever a global shuffle happens to give.
    Returns one sorted index array per fraction (train, validation, test).
    """
    y = _check_fractions(labels, fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


# ---------------------------------------------------------------------------------------
# Character n-gram features
# ---------------------------------------------------------------------------------------


def char_ngrams(name: str, n_max: int = 3) -> list[str]:
    """All character n-grams of ``^name$`` (lower-cased) for n = 1 .. n_max, with repeats."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    text = BOUNDARY[0] + name.lower() + BOUNDARY[1]
    return [text[i:i + n] for n in range(1, n_max + 1) for i in range(len(text) - n + 1)]


def build_ngram_vocab(names: Sequence[str], n_max: int = 3, min_count: int = 1
                      ) -> dict[str, int]:
    """Map every n-gram seen at least ``min_count`` times in ``names`` to a column id."""
    counts: dict[str, int] = {}
    for name in names:
        for gram in char_ngrams(name, n_max):
            counts[gram] = counts.get(gram, 0) + 1
    kept = sorted(g for g, k in counts.items() if k >= min_count)
    return {g: j for j, g in enumerate(kept)}


def ngram_ids(names: Sequence[str], vocab: dict[str, int], n_max: int = 3) -> torch.Tensor:
    """Each name as the ids of its n-grams, (N, L) long, padded with V = len(vocab).

    A bag of ids is a sparse count vector: x_j = how often id j occurs in the row. N-grams
    outside ``vocab`` (never seen in training) are dropped.
    """
    rows = [[vocab[g] for g in char_ngrams(name, n_max) if g in vocab] for name in names]
    ids = torch.full((len(rows), max(1, max(map(len, rows), default=1))), len(vocab))
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return ids


def ngram_counts(ids: torch.Tensor, num_features: int) -> torch.Tensor:
    """The count matrix X (N, V), dense float32, from :func:`ngram_ids`' padded rows."""
    X = torch.zeros(ids.shape[0], num_features + 1)  # one extra column catches the padding
    X.scatter_add_(1, ids, torch.ones(ids.shape))
    return X[:, :num_features]


def sum_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x W: the rows of ``table`` (V, C) picked by each bag of ids and added, (N, C).

    The same number as counts @ table, without building the (N, V) count matrix; the
    padding id V picks a row of zeros.
    """
    padded = torch.cat([table, table.new_zeros(1, table.shape[1])])  # (V + 1, C)
    return F.embedding(ids, padded).sum(1)  # (N, L, C) -> (N, C)


# ---------------------------------------------------------------------------------------
# Naive Bayes: the generative model
# ---------------------------------------------------------------------------------------


class NaiveBayes:
    """Multinomial naive Bayes on bags of n-gram ids, with add-alpha (Lidstone) smoothing.

    Each class c is a bag of n-grams drawn independently from theta_c:
        log P(c | x) = log pi_c + sum_j x_j log theta_cj - log Z(x)
        pi_c = N_c / N (names),   theta_cj = (count_cj + alpha) / (sum_k count_ck + alpha V)
    """

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (alpha = 0 gives log 0 for unseen n-grams), "
                             f"got {alpha}")
        self.alpha = alpha
        self.log_prior: torch.Tensor | None = None  # (C,)
        self.log_theta: torch.Tensor | None = None  # (C, V)

    def fit(self, ids: torch.Tensor, y: torch.Tensor, num_features: int, num_classes: int
            ) -> NaiveBayes:
        """Count: the class priors from y, each class's n-gram counts from its names' bags."""
        y = _check_labels(ids, y, num_classes)
        counts = torch.zeros(num_classes, num_features + 1)  # (C, V + 1), the last: padding
        counts.index_put_((y[:, None].expand_as(ids), ids), torch.ones(ids.shape),
                          accumulate=True)
        smoothed = counts[:, :num_features] + self.alpha  # (C, V)
        self.log_theta = smoothed.log() - smoothed.sum(1, keepdim=True).log()
        prior = torch.bincount(y, minlength=num_classes).float()
        self.log_prior = prior.log() - np.log(len(y))  # (C,); a class never seen: -inf
        return self

    def log_joint(self, ids: torch.Tensor) -> torch.Tensor:
        """log pi_c + sum_j x_j log theta_cj, (N, C): the log posterior before normalising."""
        if self.log_theta is None or self.log_prior is None:
            raise RuntimeError("this NaiveBayes is not fitted yet; call fit(ids, y, V, C)")
        return sum_rows(self.log_theta.t(), ids) + self.log_prior  # (N, C)

    def log_posterior(self, ids: torch.Tensor) -> torch.Tensor:
        """log P(c | x), (N, C): Bayes' rule, normalised by log Z(x) = logsumexp over c."""
        return torch.log_softmax(self.log_joint(ids), dim=1)

    def predict(self, ids: torch.Tensor) -> torch.Tensor:
        return self.log_joint(ids).argmax(1)


# ---------------------------------------------------------------------------------------
# Logistic regression: the discriminative model
# ---------------------------------------------------------------------------------------


class LogisticRegression(nn.Module):
    """Multinomial logistic regression on n-gram counts: logits = x W^T + b.

    ``forward(ids, y)`` reads bags of n-gram ids (:func:`ngram_ids`) and computes x W^T by
    :func:`sum_rows`; it returns ``(logits, loss)`` like every model of the course, so the
    shared training loop trains it.
    """

    def __init__(self, num_features: int, num_classes: int,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, num_features))  # W (C, V)
        self.bias = nn.Parameter(torch.zeros(num_classes))  # convex: a zero start is fine
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, ids: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = sum_rows(self.weight.t(), ids) + self.bias  # (N, C)
        if y is None:
            return logits, None
        return logits, F.cross_entropy(logits, y, weight=self.class_weights, ignore_index=-100)


def logistic_regression_grad(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
                             b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of the mean cross-entropy of softmax(X W^T + b), by hand, X (N, V):
    dL/dW = (P - Y)^T X / N (C, V),   dL/db = sum_n (P - Y)_n / N (C,)."""
    y = _check_labels(X, y, W.shape[0])
    P = torch.softmax(X @ W.t() + b, dim=1)  # (N, C)
    G = (P - F.one_hot(y, W.shape[0]).to(P.dtype)) / len(y)  # (N, C)
    return G.t() @ X, G.sum(0)


# ---------------------------------------------------------------------------------------
# Metrics and class weights
# ---------------------------------------------------------------------------------------


def accuracy_score(predicted: Any, target: Any) -> float:
    """The fraction of predictions equal to the target."""
    p, t = _as_label_arrays(predicted, target)
    return float(np.mean(p == t))


def precision_recall_f1(predicted: Any, target: Any, num_classes: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: precision TP/(TP+FP), recall TP/(TP+FN), F1 = 2PR/(P+R), each (C,).

    A ratio with nothing to count (no prediction of c, or no example of c) is 0, as is F1
    when P + R = 0 (scikit-learn's ``zero_division=0``).
    """
    p, t = _as_label_arrays(predicted, target)
    M = confusion_matrix(p, t, num_classes)  # M[true, predicted]
    tp = np.diag(M).astype(float)
    precision = _ratio(tp, M.sum(0))  # column sums: how often c was predicted
    recall = _ratio(tp, M.sum(1))  # row sums: how many examples of c there are
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


def macro_f1(predicted: Any, target: Any, num_classes: int) -> float:
    """The mean of the per-class F1 over all ``num_classes`` classes, each weighing the same."""
    return float(precision_recall_f1(predicted, target, num_classes)[2].mean())


def balanced_class_weights(labels: Any, num_classes: int, power: float = 1.0) -> torch.Tensor:
    """w_c = (N / (C n_c))^power. With power 1 every class carries the same total weight,
    n_c w_c = N / C (scikit-learn's "balanced"); power 0.5 goes half-way (in log scale)
    from no weighting (power 0) to that. A class with no example gets weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=num_classes)
    if len(counts) > num_classes or power < 0:
        raise ValueError(f"need labels < num_classes={num_classes} and power >= 0, got "
                         f"labels up to {len(counts) - 1} and power {power}")
    weights = _ratio(np.full(num_classes, counts.sum() / num_classes), counts.astype(float))
    return torch.tensor(weights**power, dtype=torch.float32)


# ---------------------------------------------------------------------------------------
# Helpers and argument checks
# ---------------------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _as_label_arrays(predicted: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted.cpu() if hasattr(predicted, "cpu") else predicted).ravel()
    t = np.asarray(target.cpu() if hasattr(target, "cpu") else target).ravel()
    if p.shape != t.shape or p.size == 0:
        raise ValueError(f"{p.size} predictions and {t.size} targets: pass one predicted "
                         f"class id per target, and at least one")
    return p, t


def _check_labels(X: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    y = torch.as_tensor(y).long()
    if y.ndim != 1 or len(y) != X.shape[0]:
        raise ValueError(f"y must hold one label per row of X ({X.shape[0]}), got shape "
                         f"{tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {int(y.min())}.."
                         f"{int(y.max())}")
    return y


def _check_fractions(labels: Sequence[int], fractions: Sequence[float]) -> np.ndarray:
    if len(fractions) < 2 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be two or more positive numbers that sum to 1, "
                         f"got {tuple(fractions)}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {y.shape}")
    return y
