"""slm_course.text_classifiers against hand computations, autograd and (if installed) sklearn.

The metrics are checked on a six-example case worked out on paper; naive Bayes on a
three-n-gram, two-class corpus whose posterior is the fraction 48/97; the logistic
regression's hand-derived gradient against autograd in float64. The data tests read the
real names-by-language files: 18 correctly spelled languages, unique pairs, a split that
keeps every language's share.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import rel_err

from slm_course.data import load_names_by_language
from slm_course.text_classifiers import (
    LogisticRegression,
    NaiveBayes,
    accuracy_score,
    balanced_class_weights,
    build_ngram_vocab,
    char_ngrams,
    logistic_regression_grad,
    macro_f1,
    ngram_counts,
    ngram_ids,
    precision_recall_f1,
    stratified_split,
    sum_rows,
    unique_pairs,
)

LANGUAGES = ["Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek",
             "Irish", "Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian",
             "Scottish", "Spanish", "Vietnamese"]

# ---------------------------------------------------------------------------------------
# Metrics: a case worked out by hand
# ---------------------------------------------------------------------------------------

TARGET = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, 2, 2]
# class 0: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 4/5
# class 1: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
# class 2: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
HAND_P, HAND_R, HAND_F1 = [1, 0.5, 0.5], [2 / 3, 0.5, 1], [0.8, 0.5, 2 / 3]


def test_accuracy_and_per_class_scores_match_the_hand_computation():
    assert accuracy_score(PRED, TARGET) == pytest.approx(4 / 6)
    p, r, f1 = precision_recall_f1(PRED, TARGET, 3)
    np.testing.assert_allclose(p, HAND_P)
    np.testing.assert_allclose(r, HAND_R)
    np.testing.assert_allclose(f1, HAND_F1)
    assert macro_f1(PRED, TARGET, 3) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert macro_f1(torch.tensor(PRED), torch.tensor(TARGET), 3) == pytest.approx(0.65555556)


def test_macro_f1_counts_a_class_never_seen_nor_predicted_as_zero():
    # a fourth class with no example and no prediction scores 0 and still counts in the mean
    assert macro_f1(PRED, TARGET, 4) == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)
    assert macro_f1(TARGET, TARGET, 3) == 1.0


def test_macro_f1_differs_from_accuracy_under_imbalance():
    target = [0] * 98 + [1, 2]
    always_zero = [0] * 100
    assert accuracy_score(always_zero, target) == 0.98
    assert macro_f1(always_zero, target, 3) == pytest.approx((2 * 0.98 / 1.98) / 3)


def test_metrics_agree_with_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    p[p == 4] = 3  # class 4 is never predicted: precision 0 by zero_division=0
    want = metrics.f1_score(t, p, labels=range(5), average="macro", zero_division=0)
    assert macro_f1(p, t, 5) == pytest.approx(want)
    assert accuracy_score(p, t) == pytest.approx(metrics.accuracy_score(t, p))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="one predicted class id per target"):
        macro_f1([0, 1], [0, 1, 1], 2)
    with pytest.raises(ValueError):
        macro_f1([0, 5], [0, 1], 2)  # a class id outside [0, num_classes)
    with pytest.raises(ValueError, match="at least one"):
        accuracy_score([], [])


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    labels = [0, 0, 0, 1]
    w = balanced_class_weights(labels, 3)
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0], rtol=1e-6)  # N / (C n_c); absent: 0
    counts = np.bincount(labels, minlength=3)
    np.testing.assert_allclose((w.numpy() * counts)[:2], [4 / 3, 4 / 3], rtol=1e-6)
    np.testing.assert_allclose(balanced_class_weights(labels, 3, power=0.5), [2 / 3, 2 / 3**0.5, 0],
                               rtol=1e-6)
    np.testing.assert_allclose(balanced_class_weights(labels, 2, power=0), [1, 1])
    with pytest.raises(ValueError, match="num_classes"):
        balanced_class_weights([0, 3], 3)


# ---------------------------------------------------------------------------------------
# N-gram features
# ---------------------------------------------------------------------------------------


def test_char_ngrams_mark_both_ends_and_lower_case():
    assert char_ngrams("Abe", 3) == ["^", "a", "b", "e", "$", "^a", "ab", "be", "e$",
                                     "^ab", "abe", "be$"]
    assert char_ngrams("Li", 1) == ["^", "l", "i", "$"]
    with pytest.raises(ValueError, match="n_max"):
        char_ngrams("Li", 0)


def test_ngram_ids_and_counts_agree_with_counting_by_hand():
    vocab = build_ngram_vocab(["Anna", "Ann"], n_max=2)
    ids = ngram_ids(["Anna", "Zed"], vocab, n_max=2)
    X = ngram_counts(ids, len(vocab))
    assert X.shape == (2, len(vocab))
    assert X[0, vocab["n"]] == 2 and X[0, vocab["nn"]] == 1 and X[0, vocab["a$"]] == 1
    assert X[0].sum() == len(char_ngrams("Anna", 2))  # every n-gram of a training name known
    assert X[1].sum() == 2 and X[1, vocab["^"]] == 1 and X[1, vocab["$"]] == 1  # z, e, d unseen
    W = torch.randn(len(vocab), 3, generator=torch.Generator().manual_seed(0))
    assert rel_err(sum_rows(W, ids), X @ W) < 1e-6  # a bag of ids times W = counts @ W


# ---------------------------------------------------------------------------------------
# Naive Bayes: a posterior computed by hand
# ---------------------------------------------------------------------------------------

# V = 3 n-grams; class 0 = bags [0, 0, 1] and [0]; class 1 = bags [2] and [1, 2]
NB_IDS = torch.tensor([[0, 0, 1], [0, 3, 3], [2, 3, 3], [1, 2, 3]])  # padded with V = 3
NB_Y = torch.tensor([0, 0, 1, 1])


def test_naive_bayes_matches_the_hand_computation():
    # alpha 1: theta_0 = (3+1, 1+1, 0+1) / 7 = (4, 2, 1) / 7, theta_1 = (1, 2, 3) / 6, pi = 1/2
    nb = NaiveBayes(alpha=1.0).fit(NB_IDS, NB_Y, num_features=3, num_classes=2)
    np.testing.assert_allclose(nb.log_theta.exp(), [[4 / 7, 2 / 7, 1 / 7], [1 / 6, 2 / 6, 3 / 6]],
                               rtol=1e-6)
    np.testing.assert_allclose(nb.log_prior.exp(), [0.5, 0.5], rtol=1e-6)
    # x = one n-gram 0 and one n-gram 2: P(0, x) = 1/2 4/7 1/7 = 2/49, P(1, x) = 1/2 1/6 3/6
    # = 1/24, so P(0 | x) = (2/49) / (2/49 + 1/24) = 48/97
    post = nb.log_posterior(torch.tensor([[0, 2, 3]])).exp()[0]
    np.testing.assert_allclose(post, [48 / 97, 49 / 97], rtol=1e-6)
    assert nb.predict(torch.tensor([[0, 2, 3], [2, 2, 1]])).tolist() == [1, 1]


def test_naive_bayes_smoothing_and_a_different_alpha():
    nb = NaiveBayes(alpha=0.5).fit(NB_IDS, NB_Y, num_features=3, num_classes=2)
    # class 0: counts (3, 1, 0) + 0.5 over 4 + 1.5 = 5.5
    np.testing.assert_allclose(nb.log_theta[0].exp(), [3.5 / 5.5, 1.5 / 5.5, 0.5 / 5.5],
                               rtol=1e-6)
    post = nb.log_posterior(NB_IDS).exp()
    np.testing.assert_allclose(post.sum(1), torch.ones(4), rtol=1e-6)


def test_naive_bayes_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        NaiveBayes(alpha=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        NaiveBayes().predict(NB_IDS)
    with pytest.raises(ValueError, match="labels must lie"):
        NaiveBayes().fit(NB_IDS, torch.tensor([0, 0, 1, 2]), 3, 2)
    with pytest.raises(ValueError, match="one label per row"):
        NaiveBayes().fit(NB_IDS, torch.tensor([0, 1]), 3, 2)


# ---------------------------------------------------------------------------------------
# Logistic regression: the hand-derived gradient against autograd
# ---------------------------------------------------------------------------------------


def test_logistic_regression_gradient_equals_autograd():
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 3, (7, 5), generator=g).double()  # counts
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    W = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(X @ W.t() + b, y).backward()
    dW, db = logistic_regression_grad(X, y, W.detach(), b.detach())
    assert rel_err(dW, W.grad) < 1e-12 and rel_err(db, b.grad) < 1e-12
    wrong = logistic_regression_grad(X, (y + 1) % 4, W.detach(), b.detach())[0]
    assert rel_err(wrong, W.grad) > 1e-2  # the comparison notices a wrong gradient


def test_logistic_regression_model_reads_bags_as_counts_and_trains():
    ids = torch.tensor([[0, 0, 2], [1, 3, 3], [2, 3, 3], [1, 1, 0]])  # V = 3, pad 3
    X = ngram_counts(ids, 3)
    model = LogisticRegression(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]))
        model.bias.copy_(torch.tensor([0.1, -0.1]))
    logits, loss = model(ids, torch.tensor([0, 1, 1, 0]))
    assert rel_err(logits, X @ model.weight.t() + model.bias) < 1e-6
    assert loss.ndim == 0 and model(ids)[1] is None
    weighted = LogisticRegression(3, 2, class_weights=torch.tensor([1.0, 3.0]))
    weighted.load_state_dict(model.state_dict())
    y = torch.tensor([0, 1, 1, 0])
    want = F.cross_entropy(logits, y, weight=torch.tensor([1.0, 3.0]))
    assert weighted(ids, y)[1].item() == pytest.approx(want.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------
# The data: spelling, unique pairs, a stratified split
# ---------------------------------------------------------------------------------------


def test_languages_are_the_eighteen_spelled_right():
    by_language = load_names_by_language()
    names, labels, languages = unique_pairs(by_language)
    assert languages == LANGUAGES  # "Portuguese", not the file's "Portugese"
    assert sum(map(len, by_language.values())) == 20_050
    assert len(names) == len(labels) == 18_013  # the repeats (mostly Arabic) removed
    assert len(set(zip(names, labels, strict=True))) == len(names)
    assert sum(label == languages.index("Arabic") for label in labels) == 108


def test_unique_pairs_keep_a_name_once_per_language():
    names, labels, languages = unique_pairs({"B": ["x", "y", "x"], "A": ["x"]})
    assert languages == ["A", "B"]
    assert list(zip(names, labels, strict=True)) == [("x", 0), ("x", 1), ("y", 1)]


def test_stratified_split_keeps_every_class_share_and_is_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 10, 3])
    train, val, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert len(np.concatenate([train, val, test])) == len(labels)
    assert len(set(train) | set(val) | set(test)) == len(labels)  # disjoint, complete
    for c, n in enumerate([100, 50, 10, 3]):
        for part, f in [(train, 0.8), (val, 0.1), (test, 0.1)]:
            assert abs(np.sum(labels[part] == c) - f * n) <= 1
    again = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    other = stratified_split(labels, (0.8, 0.1, 0.1), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, [train, val, test], strict=True))
    assert not np.array_equal(other[2], test)


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split([0, 1, 1], (0.8, 0.1))
    with pytest.raises(ValueError, match="non-empty"):
        stratified_split([], (0.5, 0.5))


# ---------------------------------------------------------------------------------------
# The exercise checks pass on the reference and fail on the likely mistakes
# ---------------------------------------------------------------------------------------


def test_metric_and_naive_bayes_checks_pass_on_the_reference_and_fail_on_mistakes():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage10 import check_macro_f1, check_naive_bayes_log_posterior

    assert check_macro_f1(macro_f1)
    with pytest.raises(CheckFailed, match="accuracy"):
        check_macro_f1(lambda p, t, c: accuracy_score(p, t))
    with pytest.raises(CheckFailed):  # averaging only over the classes present
        check_macro_f1(lambda p, t, c: macro_f1(p, t, c) * c / len(set(t) | set(p)))

    def reference(X, class_counts, feature_counts, alpha):
        smoothed = feature_counts + alpha
        log_theta = np.log(smoothed) - np.log(smoothed.sum(1, keepdims=True))
        joint = np.log(class_counts / class_counts.sum()) + X @ log_theta.T
        return joint - np.log(np.exp(joint).sum(1, keepdims=True))

    assert check_naive_bayes_log_posterior(reference)

    def log_joint(X, class_counts, feature_counts, alpha, denominator_alpha=True):
        V = feature_counts.shape[1]
        log_theta = np.log(feature_counts + alpha) - np.log(
            feature_counts.sum(1, keepdims=True) + (alpha * V if denominator_alpha else 0))
        return np.log(class_counts / class_counts.sum()) + X @ log_theta.T

    with pytest.raises(CheckFailed, match="sum to 1"):  # not normalised
        check_naive_bayes_log_posterior(log_joint)

    def no_alpha_v(X, class_counts, feature_counts, alpha):  # alpha V left out of the sum
        joint = log_joint(X, class_counts, feature_counts, alpha, denominator_alpha=False)
        return joint - np.log(np.exp(joint).sum(1, keepdims=True))

    with pytest.raises(CheckFailed, match="log posterior"):
        check_naive_bayes_log_posterior(no_alpha_v)


def test_names_challenge_check_scores_macro_f1_on_the_test_split():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage10 import check_names_challenge, names_test_split

    class Always:
        def __init__(self, language):
            self.language = language

        def predict(self, names):
            return [self.language] * len(names)

    test_names, test_languages, languages = names_test_split()
    assert len(test_names) == 1802 and set(test_languages) == set(LANGUAGES)
    share = test_languages.count("Russian") / len(test_languages)
    want = 2 * share / (1 + share) / 18  # F1 of Russian (precision = share, recall 1) / C
    assert check_names_challenge(Always("Russian"), target=0.0) == pytest.approx(want)
    with pytest.raises(CheckFailed, match="macro-F1 0.0"):
        check_names_challenge(Always("Russian"))
    with pytest.raises(CheckFailed, match="not languages"):
        check_names_challenge(Always("Portugese"), target=0.0)
