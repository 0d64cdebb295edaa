"""slm_course.word2vec against oracles: autograd, closed forms, hand enumerations, brute force.

The hand-derived SGNS gradient must equal torch.autograd's in float64 (a sign or a missing
sum over the noise words misses by far more than 1e-6); the subsampling and noise
distributions must equal their formulas; the pairs of a six-word sentence must be exactly the
ones listed by hand; and a model trained on a two-topic synthetic corpus must put words of the
same topic nearer than words of different topics (a real learning test: an untrained or a
wrongly-signed model fails it).
"""

from collections import Counter

import numpy as np
import pytest
import torch
from helpers import TOL, rel_err, t64

from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage09 import (
    check_keep_probabilities,
    check_nearest_neighbours,
    check_noise_distribution,
    check_sgns_gradients,
)
from slm_course.train import TrainConfig, train
from slm_course.word2vec import (
    SkipGram,
    analogy,
    build_vocabulary,
    cosine_neighbours,
    encode_corpus,
    group_score,
    keep_probabilities,
    nearest_words,
    noise_distribution,
    ppmi_matrix,
    sgns_batches,
    sgns_gradients,
    sgns_loss,
    skipgram_pairs,
    subsample,
    svd_embeddings,
    word_id,
)


def random_sgns(B=4, K=3, D=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((B, D)), scale * rng.standard_normal((B, D)),
            scale * rng.standard_normal((B, K, D)))


@pytest.mark.parametrize("B,K,D,scale", [(4, 3, 5, 1.0), (1, 1, 2, 0.1), (7, 6, 8, 3.0)])
def test_sgns_gradients_equal_autograd(B, K, D, scale):
    v, u, n = (t64(a) for a in random_sgns(B, K, D, seed=B, scale=scale))
    sgns_loss(v, u, n).sum().backward()
    ours = sgns_gradients(v.detach(), u.detach(), n.detach())
    for got, tensor in zip(ours, (v, u, n), strict=True):
        assert rel_err(got, tensor.grad) < TOL
    # the test can fail: a flipped sign on the noise term is far off
    dv_wrong = ours[0] - 2 * torch.einsum("bk,bkd->bd", torch.sigmoid(
        torch.einsum("bkd,bd->bk", n, v)), n).detach()
    assert rel_err(dv_wrong, v.grad) > 1e-2


def test_sgns_loss_closed_form_and_stable():
    v, u, n = (torch.tensor(a) for a in random_sgns())
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    vn, un, nn_ = v.numpy(), u.numpy(), n.numpy()
    want = (-np.log(sig((un * vn).sum(1)))
            - np.log(sig(-np.einsum("bkd,bd->bk", nn_, vn))).sum(1))
    assert np.allclose(sgns_loss(v, u, n).numpy(), want, rtol=1e-12)
    s = dict(dtype=torch.float64)
    big = sgns_loss(torch.full((1, 2), 30.0, **s), torch.full((1, 2), -30.0, **s),
                    torch.zeros(1, 1, 2, **s))                  # u_o . v_c = -1800
    assert torch.isfinite(big).all() and abs(float(big) - (1800 + np.log(2))) < 1e-6


def test_keep_probabilities_closed_form():
    counts = np.array([0, 5000, 1000, 100, 10, 1])
    t = 1e-3
    f = counts / counts.sum()
    want = [0.0] + [min(1.0, np.sqrt(t / x) + t / x) for x in f[1:]]
    got = keep_probabilities(counts, t)
    assert np.allclose(got, want, rtol=1e-12)
    assert got[1] < got[2] < got[3] <= 1 and got[5] == 1.0
    rng = np.random.default_rng(0)
    ids = rng.choice(len(counts), size=200_000, p=f)
    kept = Counter(subsample(ids, got, rng).tolist())
    for w in (1, 2, 3):  # the empirical keep rate matches, within 5 standard errors
        n, p = (ids == w).sum(), got[w]
        assert abs(kept[w] / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_noise_distribution_closed_form():
    counts = np.array([0, 16, 81, 1])
    got = noise_distribution(counts)
    want = np.array([0, 8, 27, 1]) / 36                 # 16^.75 = 8, 81^.75 = 27
    assert np.allclose(got, want, rtol=1e-12) and abs(got.sum() - 1) < 1e-12
    assert got[3] > counts[3] / counts.sum()           # rare words get more than their share
    assert np.allclose(noise_distribution(counts, power=1.0), counts / counts.sum())


def test_pairs_equal_a_hand_enumeration():
    ids = np.array([10, 11, 12, 13, 14, 15])            # "a b c d e f"
    got = sorted(zip(*skipgram_pairs(ids, window=2), strict=True))
    want = sorted([(10, 11), (10, 12), (11, 10), (11, 12), (11, 13), (12, 10), (12, 11),
                   (12, 13), (12, 14), (13, 11), (13, 12), (13, 14), (13, 15), (14, 12),
                   (14, 13), (14, 15), (15, 13), (15, 14)])
    assert [(int(a), int(b)) for a, b in got] == want
    one = sorted(zip(*skipgram_pairs(ids[:3], window=1), strict=True))
    assert [(int(a), int(b)) for a, b in one] == [(10, 11), (11, 10), (11, 12), (12, 11)]


def test_dynamic_window_uses_each_centres_own_reach():
    n, window = 3000, 4
    ids = np.arange(n)                                 # distinct ids: a pair names positions
    centres, contexts = skipgram_pairs(ids, window, rng=np.random.default_rng(3))
    reach = np.random.default_rng(3).integers(1, window + 1, size=n)   # the same draws
    want = sorted((i, j) for i in range(n) for j in range(max(0, i - reach[i]),
                                                          min(n, i + reach[i] + 1)) if j != i)
    assert sorted(zip(centres.tolist(), contexts.tolist(), strict=True)) == want
    offsets = np.abs(centres - contexts)               # offset d is used (w - d + 1) / w times
    share = np.bincount(offsets, minlength=window + 1)[1:] / len(offsets)
    expected = np.array([window - d + 1 for d in range(1, window + 1)], float)
    assert np.allclose(share, expected / expected.sum(), atol=0.02)


def test_cosine_neighbours_equal_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 6))
    for q in (0, 7, 29):
        got = cosine_neighbours(x, q, k=5)
        sims = [(float(x[q] @ x[j] / np.linalg.norm(x[q]) / np.linalg.norm(x[j])), j)
                for j in range(30) if j != q]
        want = sorted(sims, reverse=True)[:5]
        assert [i for i, _ in got] == [j for _, j in want]
        assert np.allclose([s for _, s in got], [s for s, _ in want], rtol=1e-12)


TEXT = "The cat sat. the cat ran! a dog sat, the dog? zebra\n" * 3


def test_vocabulary_and_corpus():
    tok, counts = build_vocabulary(TEXT, min_count=3)
    assert tok.words == ["<unk>", "the", "cat", "dog", "sat", "a", "ran", "zebra"]
    assert counts.tolist() == [0, 9, 6, 6, 6, 3, 3, 3]
    ids = encode_corpus(TEXT, tok)
    assert len(ids) == counts.sum() and 0 not in ids
    tok2, _ = build_vocabulary(TEXT, min_count=4)
    assert "a" not in tok2.words and 0 not in encode_corpus(TEXT, tok2)


def test_bad_input_is_a_clear_error():
    tok, counts = build_vocabulary(TEXT, min_count=1)
    with pytest.raises(KeyError, match="not in the vocabulary"):
        word_id(tok, "unicorn")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        nearest_words(np.ones((tok.vocab_size, 2)), tok, "unicorn")
    with pytest.raises(ValueError, match="window"):
        skipgram_pairs(np.arange(5), window=0)
    with pytest.raises(ValueError, match="window"):
        sgns_batches(np.arange(5), np.ones(5), window=-1)
    with pytest.raises(ValueError, match="no word"):
        build_vocabulary("", min_count=1)
    with pytest.raises(ValueError, match="no word"):
        build_vocabulary(TEXT, min_count=100)
    with pytest.raises(ValueError, match="fewer than 2"):
        encode_corpus("!!! ...", tok)
    with pytest.raises(ValueError, match="counts"):
        noise_distribution(np.zeros(4))
    with pytest.raises(ValueError, match="t="):
        keep_probabilities(counts, t=0)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        cosine_neighbours(np.ones((3, 2)), 3)


def two_topic_corpus(n_sentences=1500, seed=0):
    """Sentences of 8 words drawn from one of two disjoint topics, plus shared filler words."""
    rng = np.random.default_rng(seed)
    topics = [["apple", "pear", "plum", "fig", "grape", "melon"],
              ["ship", "sail", "oar", "mast", "anchor", "harbour"]]
    filler = ["the", "a", "and", "of"]
    lines = []
    for _ in range(n_sentences):
        words = topics[rng.integers(2)]
        lines.append(" ".join(rng.choice(words) if rng.random() < 0.7 else rng.choice(filler)
                              for _ in range(8)))
    return ". ".join(lines), topics


def train_on(text, steps, seed=0):
    tok, counts = build_vocabulary(text, min_count=1)
    ids = encode_corpus(text, tok)
    torch.manual_seed(seed)
    model = SkipGram(tok.vocab_size, 16)
    next_batch = sgns_batches(ids, counts, window=2, t=1e-2, batch_size=128, seed=seed)
    cfg = TrainConfig(batch_size=128, max_steps=steps, lr=0.02, min_lr=0.002, warmup_steps=0,
                      weight_decay=0.0, grad_clip=0.0, eval_interval=steps, progress=False)
    state = train(model, next_batch, cfg)
    return model, tok, state


def test_training_separates_two_topics():
    torch.set_num_threads(1)
    text, topics = two_topic_corpus()
    model, tok, state = train_on(text, steps=300)
    assert float(state.losses[-20:].mean()) < 0.8 * float(state.losses[:5].mean())
    vectors = model.vectors()
    x = vectors / vectors.norm(dim=1, keepdim=True)
    ids = [[word_id(tok, w) for w in topic] for topic in topics]
    sims = x @ x.T
    same = np.mean([float(sims[a, b]) for t in ids for a in t for b in t if a != b])
    cross = np.mean([float(sims[a, b]) for a in ids[0] for b in ids[1]])
    assert same > cross + 0.3, (same, cross)
    assert group_score(vectors, tok, {"fruit": topics[0], "sea": topics[1]}) == 1.0
    for word in ("apple", "ship"):
        own = topics[0] if word == "apple" else topics[1]
        assert all(w in own for w, _ in nearest_words(vectors, tok, word, k=3))
    # the same test on the untrained model fails: it is a test of learning
    untrained = SkipGram(tok.vocab_size, 16).vectors()
    assert group_score(untrained, tok, {"fruit": topics[0], "sea": topics[1]}) < 1.0


def test_analogy_on_constructed_vectors():
    tok, _ = build_vocabulary("king queen man woman apple " * 2, min_count=1)
    base = {"king": [1, 1, 0], "queen": [1, -1, 0], "man": [0.2, 1, 0.1],
            "woman": [0.2, -1, 0.1], "apple": [0, 0, 1]}
    x = np.zeros((tok.vocab_size, 3))
    for w, v in base.items():
        x[word_id(tok, w)] = v
    assert analogy(x, tok, "man", "woman", "king", k=1)[0][0] == "queen"


def test_ppmi_closed_form_and_svd():
    ids = np.array([1, 2, 1, 3, 1, 2])
    V = 4
    got = ppmi_matrix(ids, V, window=1).numpy()
    c, o = skipgram_pairs(ids, 1)
    counts = np.zeros((V, V))
    np.add.at(counts, (c, o), 1)
    N = counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts * N / np.outer(counts.sum(1), counts.sum(0)))
    want = np.nan_to_num(np.maximum(pmi, 0), nan=0.0, posinf=0.0)
    assert np.allclose(got, want, atol=1e-6)
    emb = svd_embeddings(torch.as_tensor(want, dtype=torch.float32), dim=2)
    assert emb.shape == (V, 2)


def test_checks_pass_on_the_reference_and_fail_on_a_mistake():
    assert check_keep_probabilities(keep_probabilities)
    assert check_noise_distribution(noise_distribution)
    assert check_sgns_gradients(sgns_gradients)
    assert check_nearest_neighbours(lambda x, q, k: [i for i, _ in cosine_neighbours(x, q, k)])
    with pytest.raises(CheckFailed, match="hint"):
        check_keep_probabilities(lambda c, t: np.minimum(1, np.sqrt(t * np.sum(c) / c)))
    with pytest.raises(CheckFailed):
        check_noise_distribution(lambda c: c / c.sum())
    with pytest.raises(CheckFailed):
        check_sgns_gradients(lambda v, u, n: tuple(-g for g in sgns_gradients(v, u, n)))
    with pytest.raises(CheckFailed):  # dot products instead of cosines
        check_nearest_neighbours(lambda x, q, k: np.argsort(-(x @ x[q]))[1:k + 1].tolist())
