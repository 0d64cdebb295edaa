"""word2vec from scratch: skip-gram with negative sampling (SGNS), and a count-based baseline.

Every word w has two vectors: v_w when it is the centre word and u_w when it is a context
word (two embedding tables). For a centre c, a context word o seen within the window and
K noise words n_1..n_K drawn from P_n, the loss pulls u_o towards v_c and pushes the u_k away:

    l = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c)          (Mikolov et al., 2013)

    dl/dv_c = (sigma(u_o . v_c) - 1) u_o + sum_k sigma(u_k . v_c) u_k
    dl/du_o = (sigma(u_o . v_c) - 1) v_c        dl/du_k = sigma(u_k . v_c) v_c

The data side: a vocabulary of the words seen at least ``min_count`` times; subsampling,
which keeps each occurrence of a word of frequency f = count / total with probability
min(1, sqrt(t / f) + t / f) (the word2vec C code's formula; the paper's is sqrt(t / f));
the noise distribution P_n(w) = count(w)^0.75 / sum_w' count(w')^0.75; and (centre, context)
pairs from a dynamic window, whose size is drawn from 1..window for each centre, so near
words are seen more often than far ones.

``tests/test_word2vec.py`` proves the hand-derived gradient equal to autograd, the
distributions equal to their closed forms, the pairs equal to a hand enumeration, and that
training separates two topics of a synthetic corpus. PPMI + SVD (:func:`ppmi_matrix`,
:func:`svd_embeddings`) is the count-based baseline (Levy & Goldberg, 2014).

Stage 09: word embeddings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.tokenizers import WordTokenizer, split_words
from slm_course.tokenizers.words import UNK

# ---------------------------------------------------------------------------------------
# The data: vocabulary, subsampling, noise distribution, (centre, context) pairs.
# ---------------------------------------------------------------------------------------


def build_vocabulary(text: str, min_count: int = 5) -> tuple[WordTokenizer, np.ndarray]:
    """The words of ``text`` seen at least ``min_count`` times, most frequent first.

    Words are ``split_words(text, punctuation=False, newlines=False)``. Returns a
    ``WordTokenizer`` (id 0 is ``<unk>``, which word2vec drops) and ``counts`` (V,), with
    ``counts[0] = 0``.
    """
    if min_count < 1:
        raise ValueError(f"min_count={min_count}: a word must be seen at least once (use >= 1)")
    counts = Counter(split_words(text, punctuation=False, newlines=False))
    ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    if not ranked:
        raise ValueError(f"no word of the text occurs {min_count} times or more (the text has "
                         f"{sum(counts.values())} words): use a longer text or a lower min_count")
    tokenizer = WordTokenizer([UNK, *ranked])
    return tokenizer, np.array([0, *(counts[w] for w in ranked)], dtype=np.int64)


def encode_corpus(text: str, tokenizer: WordTokenizer) -> np.ndarray:
    """The ids of the vocabulary words of ``text``, in order; punctuation, line breaks and
    rare words (``<unk>``) are dropped, as word2vec does, before any window is taken."""
    ids = np.array(tokenizer.encode(text), dtype=np.int64)
    ids = ids[ids != tokenizer.unk_id]
    if len(ids) < 2:
        raise ValueError("the corpus has fewer than 2 vocabulary words: nothing to pair")
    return ids


def keep_probabilities(counts: np.ndarray, t: float = 1e-3) -> np.ndarray:
    """Subsampling: the probability of keeping one occurrence of each word,

        f(w) = count(w) / sum(counts),    keep(w) = min(1, sqrt(t / f(w)) + t / f(w)),

    the word2vec C code's formula (the paper's is min(1, sqrt(t / f))). A word with count 0
    gets 0. Frequent words ("the", "and") are thinned out; words with f <= 2.6 t are all kept.
    """
    counts = _check_counts(counts)
    if t <= 0:
        raise ValueError(f"t={t}: the subsampling threshold must be > 0 (word2vec uses 1e-3 "
                         f"to 1e-5)")
    f = counts / counts.sum()
    with np.errstate(divide="ignore"):
        ratio = np.where(f > 0, t / f, 0.0)
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep each position i of ``ids`` with probability ``keep[ids[i]]``."""
    return ids[rng.random(len(ids)) < keep[ids]]


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """P_n(w) = count(w)^power / sum_w' count(w')^power: the unigram distribution raised to
    3/4, which gives rare words more noise samples than their frequency would."""
    counts = _check_counts(counts)
    weights = counts ** power
    return weights / weights.sum()


def skipgram_pairs(ids: np.ndarray, window: int, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every (centre, context) pair: ids[j] is a context of ids[i] when 1 <= |i - j| <= b_i.

    b_i = ``window`` for every i if ``rng`` is None, else drawn uniformly from 1..window for
    each centre (the dynamic window: a word d places away is used with probability
    (window - d + 1) / window). Returns centres (P,) and contexts (P,), grouped by offset.
    """
    ids = np.asarray(ids)
    _check_window(window, len(ids))
    n = len(ids)
    reach = np.full(n, window) if rng is None else rng.integers(1, window + 1, size=n)  # b_i
    centres, contexts = [], []
    for d in range(1, window + 1):
        i = np.arange(n - d)                         # pairs (i, i + d): both directions
        right, left = i[reach[i] >= d], i[reach[i + d] >= d]
        centres += [ids[right], ids[left + d]]
        contexts += [ids[right + d], ids[left]]
    return np.concatenate(centres), np.concatenate(contexts)


# ---------------------------------------------------------------------------------------
# The loss and its gradient, by hand.
# ---------------------------------------------------------------------------------------


def sgns_loss(v_c: torch.Tensor, u_o: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """The SGNS loss of each example: -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c).

    v_c (B, D) centre vectors, u_o (B, D) context vectors, u_neg (B, K, D) noise vectors
    -> (B,). ``logsigmoid`` keeps it finite for large scores.
    """
    pos = (u_o * v_c).sum(-1)                          # (B,)   u_o . v_c
    neg = torch.einsum("bkd,bd->bk", u_neg, v_c)       # (B, K) u_k . v_c
    return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)


def sgns_gradients(v_c: torch.Tensor, u_o: torch.Tensor, u_neg: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hand-derived gradient of each example's loss, row by row (of ``sgns_loss(...).sum()``):

        dv_c = (sigma(s_o) - 1) u_o + sum_k sigma(s_k) u_k,   s_o = u_o . v_c,  s_k = u_k . v_c
        du_o = (sigma(s_o) - 1) v_c,                          du_k = sigma(s_k) v_c

    Shapes as in :func:`sgns_loss`: returns (B, D), (B, D), (B, K, D).
    """
    g_pos = torch.sigmoid((u_o * v_c).sum(-1)) - 1                     # (B,)   dl/ds_o
    g_neg = torch.sigmoid(torch.einsum("bkd,bd->bk", u_neg, v_c))      # (B, K) dl/ds_k
    dv_c = g_pos[:, None] * u_o + torch.einsum("bk,bkd->bd", g_neg, u_neg)
    du_o = g_pos[:, None] * v_c
    du_neg = g_neg[:, :, None] * v_c[:, None, :]
    return dv_c, du_o, du_neg


# ---------------------------------------------------------------------------------------
# The model and its data stream, for slm_course.train.train.
# ---------------------------------------------------------------------------------------


class SkipGram(nn.Module):
    """Two embedding tables: ``centre`` (the v vectors, the embeddings we keep) and
    ``context`` (the u vectors). As in the C code, v starts uniform in +-0.5/D and u at 0.

    ``forward(centres (B,), contexts (B,), negatives (B, K))`` returns ``(None, loss)``,
    the mean SGNS loss, like every model of the course.
    """

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.centre = nn.Embedding(vocab_size, dim)
        self.context = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.centre.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.context.weight)

    def forward(self, centres: torch.Tensor, contexts: torch.Tensor,
                negatives: torch.Tensor) -> tuple[None, torch.Tensor]:
        v_c = self.centre(centres)                 # (B, D)
        u_o = self.context(contexts)               # (B, D)
        u_neg = self.context(negatives)            # (B, K, D)
        return None, sgns_loss(v_c, u_o, u_neg).mean()

    def vectors(self) -> torch.Tensor:
        """The word vectors: the centre table, (V, D), detached."""
        return self.centre.weight.detach()


def sgns_batches(ids: np.ndarray, counts: np.ndarray, *, window: int = 5, t: float = 1e-3,
                 negatives: int = 5, batch_size: int = 1024, seed: int = 0,
                 device: torch.device | str = "cpu") -> Callable[[], tuple[torch.Tensor, ...]]:
    """``next_batch()`` for :func:`slm_course.train.train`: (centres, contexts, negatives).

    Each epoch subsamples the corpus afresh, draws new dynamic windows and shuffles the
    pairs; each batch draws ``negatives`` noise words per pair from P_n (counts^0.75).
    """
    _check_window(window, len(ids))
    rng = np.random.default_rng(seed)
    keep = keep_probabilities(counts, t)
    noise = torch.as_tensor(noise_distribution(counts), dtype=torch.float)
    generator = torch.Generator().manual_seed(seed)

    def epochs():
        while True:
            centres, contexts = skipgram_pairs(subsample(ids, keep, rng), window, rng)
            order = rng.permutation(len(centres))
            for s in range(0, len(order) - batch_size + 1, batch_size):
                b = order[s:s + batch_size]
                neg = torch.multinomial(noise, batch_size * negatives, replacement=True,
                                        generator=generator).view(batch_size, negatives)
                yield tuple(torch.as_tensor(a).to(device) for a in
                            (centres[b], contexts[b], neg))

    stream = epochs()
    return lambda: next(stream)


# ---------------------------------------------------------------------------------------
# Using the vectors: cosine neighbours, analogies, a PCA-ready matrix.
# ---------------------------------------------------------------------------------------


def cosine_neighbours(vectors: torch.Tensor | np.ndarray, query: int, k: int = 10
                      ) -> list[tuple[int, float]]:
    """The ``k`` ids most similar to ``query`` by cosine similarity, best first, without
    the query itself: cos(a, b) = a . b / (|a| |b|). Returns [(id, cosine), ...]."""
    x = torch.as_tensor(vectors, dtype=torch.float64)                    # (V, D)
    if not 0 <= query < len(x):
        raise IndexError(f"query id {query} is outside the vocabulary (0..{len(x) - 1})")
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)              # (V, D)
    sims = unit @ unit[query]                                            # (V,)
    sims[query] = -float("inf")
    best = torch.topk(sims, min(k, len(x) - 1))
    return [(int(i), float(s)) for s, i in zip(best.values, best.indices, strict=True)]


def word_id(tokenizer: WordTokenizer, word: str) -> int:
    """The id of ``word``; a word outside the vocabulary is an error, not ``<unk>``."""
    i = tokenizer.encode(word)
    if len(i) != 1 or i[0] == tokenizer.unk_id:
        raise KeyError(f"{word!r} is not in the vocabulary ({tokenizer.vocab_size - 1} words); "
                       f"check the spelling (lower case) or lower min_count")
    return i[0]


def nearest_words(vectors: torch.Tensor | np.ndarray, tokenizer: WordTokenizer, word: str,
                  k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words nearest to ``word`` by cosine similarity: [(word, cosine), ...]."""
    found = cosine_neighbours(vectors, word_id(tokenizer, word), k + 1)
    return [(tokenizer.words[i], s) for i, s in found if i != tokenizer.unk_id][:k]


def analogy(vectors: torch.Tensor | np.ndarray, tokenizer: WordTokenizer, a: str, b: str,
            c: str, k: int = 5) -> list[tuple[str, float]]:
    """a is to b as c is to ?: the words nearest (cosine) to b - a + c on unit vectors
    (3CosAdd), leaving out a, b and c themselves."""
    x = torch.as_tensor(vectors, dtype=torch.float64)
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)               # (V, D)
    ia, ib, ic = (word_id(tokenizer, w) for w in (a, b, c))
    target = unit[ib] - unit[ia] + unit[ic]                               # (D,)
    sims = unit @ (target / target.norm())
    sims[[ia, ib, ic, tokenizer.unk_id]] = -float("inf")
    best = torch.topk(sims, k)
    return [(tokenizer.words[int(i)], float(s)) for s, i in zip(best.values, best.indices,
                                                                 strict=True)]


def group_score(vectors: torch.Tensor | np.ndarray, tokenizer: WordTokenizer,
                groups: dict[str, Sequence[str]]) -> float:
    """How well the vectors sort words into ``groups``: for each word of every group, is its
    nearest neighbour (cosine) among all the other listed words one of its own group?
    Returns the fraction of words for which it is (chance is about 1 / len(groups))."""
    words = [(w, g) for g, members in groups.items() for w in members]
    x = torch.as_tensor(vectors, dtype=torch.float64)[[word_id(tokenizer, w) for w, _ in words]]
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sims = unit @ unit.T
    sims.fill_diagonal_(-float("inf"))
    best = sims.argmax(dim=1)
    return float(np.mean([words[int(j)][1] == g for (_, g), j in zip(words, best, strict=True)]))


# ---------------------------------------------------------------------------------------
# The count-based baseline: PPMI + truncated SVD.
# ---------------------------------------------------------------------------------------


def ppmi_matrix(ids: np.ndarray, vocab_size: int, window: int = 5) -> torch.Tensor:
    """Positive pointwise mutual information of (word, context) pairs within ``window``:

        PPMI(w, c) = max(0, log( #(w, c) N / (#(w) #(c)) ))

    with the counts taken over all pairs (N of them); returns (V, V) float32.
    """
    centres, contexts = skipgram_pairs(ids, window)
    flat = torch.as_tensor(centres * vocab_size + contexts)
    counts = torch.bincount(flat, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)
    counts = counts.float()                                               # (V, V)
    row, col, total = counts.sum(1, keepdim=True), counts.sum(0, keepdim=True), counts.sum()
    pmi = torch.log(counts * total / (row * col).clamp_min(1))          # -inf where never seen
    return torch.nan_to_num(pmi, nan=0.0, neginf=0.0).clamp_min(0)


def svd_embeddings(matrix: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """Word vectors U_d sqrt(S_d) from a rank-``dim`` (randomised) SVD of ``matrix``."""
    torch.manual_seed(seed)
    u, s, _ = torch.svd_lowrank(matrix, q=dim, niter=4)
    return u * s.sqrt()


# ---------------------------------------------------------------------------------------
# Argument checks.
# ---------------------------------------------------------------------------------------


def _check_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError("counts must be a non-empty 1-D array of non-negative word counts "
                         "with a positive total (is the corpus empty?)")
    return counts


def _check_window(window: int, n: int) -> None:
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window={window!r}: the window must be an int >= 1 (words on each "
                         f"side of the centre)")
    if n < 2:
        raise ValueError(f"the corpus has {n} word(s): at least 2 are needed to make a pair")
