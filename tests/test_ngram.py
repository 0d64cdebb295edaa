"""Counting language models against oracles: a published number (makemore's 2.454 nats),
an independent pure-Python count, closed forms of interpolation, and exp(mean NLL)."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from slm_course.data import load_names
from slm_course.ngram import (
    NGramLM,
    bigram_counts,
    bigram_pairs,
    count_ngrams,
    interpolate,
    mean_nll,
    names_tokenizer,
    sample_names,
    smoothed_probs,
)
from slm_course.probability import perplexity as perplexity_from_logits


@pytest.fixture(scope="module")
def names():
    return load_names()


def test_add_one_bigram_nll_on_names_is_makemores_2_454(names):
    """The anchor: 228,146 bigrams, mean NLL 2.454 with add-one smoothing, computed here a
    second way (strings, dicts and math.log, no NumPy)."""
    pairs = Counter()
    for name in names:
        s = "." + name + "."
        pairs.update(zip(s, s[1:], strict=False))
    alphabet = sorted({c for pair in pairs for c in pair})
    row = Counter()
    for (a, _), c in pairs.items():
        row[a] += c
    n = sum(pairs.values())
    oracle = -sum(c * math.log((c + 1) / (row[a] + len(alphabet)))
                  for (a, _), c in pairs.items()) / n
    assert n == 228_146 and len(alphabet) == 27
    assert abs(oracle - 2.454) < 1e-3

    tok = names_tokenizer(names)
    xs, ys = bigram_pairs(names, tok)
    counts = bigram_counts(names, tok)
    assert len(xs) == n and counts.sum() == n
    assert abs(mean_nll(smoothed_probs(counts, k=1.0), xs, ys) - oracle) < 1e-12
    # without smoothing the training NLL is a little lower (it is the maximum likelihood)
    assert mean_nll(smoothed_probs(counts, k=0.0), xs, ys) < oracle


def test_counts_and_ids_are_makemores():
    tok = names_tokenizer(["emma", "ava"])
    assert tok.chars == [".", "a", "e", "m", "v"]  # '.' sorts first: id 0
    counts = bigram_counts(["emma", "ava"], tok)
    assert counts.sum() == 5 + 4  # ".emma." has 5 bigrams, ".ava." 4
    assert counts[0, 2] == 1 and counts[3, 3] == 1 and counts[1, 0] == 2 and counts[0, 1] == 1


def test_smoothing_closed_forms():
    counts = np.array([[0, 3, 1], [2, 0, 0], [5, 5, 0]])
    assert np.allclose(smoothed_probs(counts, 0.0), counts / counts.sum(1, keepdims=True))
    p1 = smoothed_probs(counts, 1.0)
    assert np.allclose(p1[1], [3 / 5, 1 / 5, 1 / 5])  # (2+1, 0+1, 0+1) / (2 + 3)
    assert np.allclose(p1.sum(axis=1), 1.0)
    assert np.allclose(smoothed_probs(counts, 1e9), 1 / 3)  # k -> inf: uniform


def test_bad_smoothing_and_bad_characters_are_clear_errors():
    counts = np.array([[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="k must be a finite number >= 0"):
        smoothed_probs(counts, -1.0)
    with pytest.raises(ValueError, match="k must be a finite number"):
        smoothed_probs(counts, float("nan"))
    with pytest.raises(ValueError, match="row 1 has no counts"):
        smoothed_probs(counts, 0.0)
    with pytest.raises(ValueError, match="square"):
        smoothed_probs(np.ones((2, 3)), 1.0)
    tok = names_tokenizer(["abc"])
    with pytest.raises(ValueError, match="unknown character 'z'"):
        bigram_pairs(["abz"], tok)
    with pytest.raises(ValueError, match="boundary token"):
        names_tokenizer(["a.b"])


def test_samples_come_from_the_model():
    tok = names_tokenizer(["ab"])
    # '.' -> a -> b -> '.' with certainty: every sample is "ab"
    probs = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    assert sample_names(probs, tok, 5, np.random.default_rng(0)) == ["ab"] * 5


# ------------------------------------------------------------------------------ word n-grams

IDS = [0, 1, 0, 2, 0, 1, 3, 0, 1, 2]  # a tiny corpus over V = 5 ids (id 4 never occurs)


def test_count_ngrams():
    assert count_ngrams([1, 2, 1, 2], 2) == Counter({(1, 2): 2, (2, 1): 1})
    assert count_ngrams([1, 2, 3], 0) == Counter({(): 3})


def test_interpolated_probability_closed_form():
    lm = NGramLM(2, 5, lambdas=[0.8, 0.6]).fit(IDS)
    # c(0 1) = 3, c(0 .) = 4 (0 is followed by a word 4 times), c(1) = 3 of 10 tokens
    p_uni = 0.8 * 3 / 10 + 0.2 / 5
    assert lm.prob([0], 1) == pytest.approx(0.6 * 3 / 4 + 0.4 * p_uni)
    # a context never seen (4) falls back to the unigram mixture; so does an empty context
    assert lm.prob([4], 1) == pytest.approx(p_uni) and lm.prob([], 1) == pytest.approx(p_uni)
    # a word never seen gets only the uniform share
    assert lm.prob([0], 4) == pytest.approx(0.4 * 0.2 / 5)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_interpolated_distributions_sum_to_one(order):
    lm = NGramLM(order, 5, lambdas=[0.7, 0.5, 0.3, 0.9][:order]).fit(IDS)
    for context in ([], [0], [1, 3, 0], [4, 4, 4], [2, 0, 1]):
        p = lm.distribution(context)
        assert p.shape == (5,) and np.all(p > 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_interpolate_is_the_recursion():
    mle = np.array([[0.5, np.nan, 0.25], [0.1, 0.2, 0.3]])
    lams, v = [0.9, 0.5, 0.4], 10
    p1 = 0.9 * mle[:, 0] + 0.1 / v
    p2 = np.array([p1[0], 0.5 * 0.2 + 0.5 * p1[1]])  # row 0: its bigram context is unseen
    assert np.allclose(interpolate(mle, lams, v), 0.4 * mle[:, 2] + 0.6 * p2)


def test_perplexity_is_exp_of_the_mean_nll():
    rng = np.random.default_rng(0)
    train, held_out = rng.integers(0, 6, 300).tolist(), rng.integers(0, 6, 60).tolist()
    lm = NGramLM(3, 6, lambdas=[0.9, 0.6, 0.3]).fit(train)
    scored = range(2, len(held_out))  # the first order - 1 tokens are context only
    nll = [-math.log(lm.prob(held_out[i - 2:i], held_out[i])) for i in scored]
    assert lm.perplexity(held_out) == pytest.approx(math.exp(np.mean(nll)), rel=1e-12)
    # the same through stage 03's perplexity(logits, targets) with logits = log P(. | h)
    logits = np.log([lm.distribution(held_out[i - 2:i]) for i in scored])
    targets = np.array([held_out[i] for i in scored])
    assert lm.perplexity(held_out) == pytest.approx(perplexity_from_logits(logits, targets))
    assert torch.isfinite(torch.tensor(lm.perplexity(held_out)))


def test_an_unseen_ngram_makes_the_unsmoothed_perplexity_infinite():
    lm = NGramLM(2, 5).fit(IDS)
    assert math.isfinite(lm.perplexity(IDS, smoothed=False))  # every bigram was seen
    assert lm.perplexity([0, 1, 2, 3], smoothed=False) == math.inf  # (1, 2) never was
    assert math.isfinite(lm.perplexity([0, 1, 2, 3]))  # interpolation fixes it


def test_tuning_lowers_the_held_out_nll():
    rng = np.random.default_rng(1)
    text = np.repeat(rng.integers(0, 8, 400), 2).tolist()  # every token repeats once
    lm = NGramLM(2, 8, lambdas=[0.5, 0.05]).fit(text[:600])
    before = lm.perplexity(text[600:])
    lm.tune(text[600:])
    assert lm.perplexity(text[600:]) < before
    assert lm.lambdas[1] > 0.3  # the bigram is very informative here, so it gets weight


def test_bad_ngram_input_is_a_clear_error():
    with pytest.raises(ValueError, match="order must be an int >= 1"):
        NGramLM(0, 5)
    with pytest.raises(ValueError, match="one weight per order"):
        NGramLM(2, 5, lambdas=[0.5])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        NGramLM(2, 5, lambdas=[0.5, 1.5])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        NGramLM(2, 5).fit([0, 1, 7])
    with pytest.raises(ValueError, match="at least order"):
        NGramLM(3, 5).fit([0, 1])
