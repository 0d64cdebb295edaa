"""Checks for stage 10, RNN text classification (solutions/10_rnn_classification).

Each check calls the learner's function on a few cases, compares with an oracle
(``torch.nn.RNN`` for the recurrent parts, hand-computed numbers and
``slm_course.text_classifiers`` for the metrics and naive Bayes) and prints one ✓ line or
raises :class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick


def _rnn_weights(input_size: int, hidden_size: int, seed: int) -> tuple[nn.RNN, list]:
    torch.manual_seed(seed)
    rnn = nn.RNN(input_size, hidden_size, batch_first=True).double()
    weights = [p.detach().clone() for p in (rnn.weight_ih_l0, rnn.weight_hh_l0,
                                             rnn.bias_ih_l0, rnn.bias_hh_l0)]
    return rnn, weights


def check_rnn_cell(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_new`` against ``nn.RNNCell``'s maths."""
    name = "check_rnn_cell"
    g = torch.Generator().manual_seed(0)
    for about, (B, I, H) in [("a batch of 4, I = 3, H = 5", (4, 3, 5)),
                             ("one example, I = 2, H = 2", (1, 2, 2)),
                             ("I = 7 > H = 3 (W_ih is not square)", (3, 7, 3))]:
        _, (W_ih, W_hh, b_ih, b_hh) = _rnn_weights(I, H, seed=B + I)
        x = torch.randn(B, I, generator=g, dtype=torch.float64)
        h = torch.randn(B, H, generator=g, dtype=torch.float64)
        want = torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        got = call_learner(name, fn, x.clone(), h.clone(), W_ih, W_hh, b_ih, b_hh)
        got = as_array(name, got, "h_new")
        no_tanh = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).numpy()
        if got.shape == want.shape and np.allclose(got, no_tanh):
            expect(name, False, f"{about}: h_new is the pre-activation",
                   hint="apply torch.tanh to W_ih x + b_ih + W_hh h + b_hh")
        expect_close(name, got, want, what=f"h_new for {about}",
                     hint="rows are examples: x @ W_ih.T (W_ih is (H, I)) plus h @ W_hh.T, "
                          "both biases, then tanh")
    return passed(name, "3 cases, equal to nn.RNNCell")


def check_rnn_unroll(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, W_ih, W_hh, b_ih, b_hh) -> (outputs (B, T, H), h_T (B, H))``, h_0 = 0,
    against ``nn.RNN`` with the same weights."""
    name = "check_rnn_unroll"
    g = torch.Generator().manual_seed(1)
    for about, (B, T, I, H) in [("B 3, T 5, I 2, H 4", (3, 5, 2, 4)),
                                ("a single step (T = 1)", (2, 1, 3, 3)),
                                ("one sequence of 8 steps", (1, 8, 4, 2))]:
        rnn, weights = _rnn_weights(I, H, seed=T)
        x = torch.randn(B, T, I, generator=g, dtype=torch.float64)
        with torch.no_grad():
            want_out, want_h = rnn(x)
        result = call_learner(name, fn, x.clone(), *weights)
        expect(name, isinstance(result, tuple) and len(result) == 2,
               "the function must return a pair (outputs, h_T)", got=type(result).__name__,
               hint="collect every h_t in a list, torch.stack(hs, dim=1), and return it with "
                    "the last h")
        out, h = (as_array(name, r, what) for r, what in zip(result, ("outputs", "h_T"),
                                                               strict=True))
        expect(name, out.shape == tuple(want_out.shape),
               f"{about}: outputs has shape {out.shape}, expected {tuple(want_out.shape)}",
               hint="stack the hidden states along dim=1: (B, T, H), batch first")
        fresh = np.stack([torch.tanh(x[:, t] @ weights[0].T + weights[2] + weights[3]).numpy()
                          for t in range(T)], axis=1)
        if T > 1 and np.allclose(out, fresh):
            expect(name, False, f"{about}: every step starts again from h = 0",
                   hint="feed each step's new h into the next step: h = cell(x[:, t], h, ...)")
        expect_close(name, out, want_out, what=f"outputs for {about}",
                     hint="h_0 = zeros (B, H); for t in range(T): h = tanh(x[:, t] @ W_ih.T + "
                          "b_ih + h @ W_hh.T + b_hh)")
        expect_close(name, h, want_h[0], what=f"h_T for {about}",
                     hint="h_T is the hidden state after the last step, outputs[:, -1]")
    return passed(name, "3 cases, equal to nn.RNN")


def check_macro_f1(fn: Callable[..., Any]) -> bool:
    """Check ``fn(predicted, target, num_classes) -> float``: the mean over classes of F1."""
    name = "check_macro_f1"
    target, predicted = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]  # F1 = 4/5, 1/2, 2/3
    cases = [
        ("the six-example case", predicted, target, 3, (0.8 + 0.5 + 2 / 3) / 3),
        ("a fourth class never seen nor predicted (its F1 is 0)", predicted, target, 4,
         (0.8 + 0.5 + 2 / 3) / 4),
        ("all correct", target, target, 3, 1.0),
        ("always the majority class", [0] * 8, [0] * 6 + [1, 2], 3, (2 * 0.75 / 1.75) / 3),
    ]
    for about, p, t, C, want in cases:
        got = call_learner(name, fn, np.array(p), np.array(t), C)
        got = as_array(name, got, "macro-F1")
        expect(name, got.shape == (), f"{about}: expected one number, got shape {got.shape}",
               hint="average the per-class F1 scores into one float")
        if not np.isfinite(got):
            expect(name, False, f"{about}: macro-F1 is {float(got)}",
                   hint="a class with no prediction (or no example) divides 0 by 0: define "
                        "its precision, recall or F1 as 0 when the denominator is 0")
        accuracy = float(np.mean(np.array(p) == np.array(t)))
        if not np.isclose(got, want) and np.isclose(got, accuracy):
            expect(name, False, f"{about}: you returned the accuracy (= micro-F1)",
                   hint="compute F1 for each class separately, then take their plain mean")
        expect_close(name, got, want, what=f"macro-F1 for {about}",
                     hint="per class c: P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2PR/(P+R); then "
                          "the unweighted mean over all num_classes classes")
    return passed(name, f"{len(cases)} cases, including a class with no example")


def check_naive_bayes_log_posterior(fn: Callable[..., Any]) -> bool:
    """Check ``fn(X, class_counts, feature_counts, alpha) -> log P(c | x)`` of shape (N, C)."""
    name = "check_naive_bayes_log_posterior"
    rng = np.random.default_rng(3)
    # the hand case: P(c = 0 | x) = 48/97 (see tests/test_text_classifiers.py)
    hand = (np.array([[1.0, 0.0, 1.0]]), np.array([2.0, 2.0]),
            np.array([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), 1.0)
    cases = [("the hand-computed case", *hand, np.log([[48 / 97, 49 / 97]]))]
    for about, N, C, V, alpha in [("5 names, 3 classes, 6 n-grams, alpha 0.5", 5, 3, 6, 0.5),
                                  ("unequal priors, alpha 0.1", 4, 4, 3, 0.1)]:
        X = rng.integers(0, 3, (N, V)).astype(float)
        class_counts = rng.integers(1, 20, C).astype(float)
        feature_counts = rng.integers(0, 6, (C, V)).astype(float)
        cases.append((about, X, class_counts, feature_counts, alpha,
                      _nb_log_posterior(X, class_counts, feature_counts, alpha)))
    for about, X, class_counts, feature_counts, alpha, want in cases:
        got = call_learner(name, fn, X.copy(), class_counts.copy(), feature_counts.copy(), alpha)
        got = as_array(name, got, "log posterior")
        expect(name, got.shape == want.shape,
               f"{about}: shape {got.shape}, expected {want.shape}", hint="one row per name, "
               "one column per class: X (N, V) @ log_theta.T (V, C)")
        joint = want + _log_evidence(X, class_counts, feature_counts, alpha)
        if np.allclose(got, joint):
            expect(name, False, f"{about}: the rows do not sum to 1 in probability",
                   hint="subtract log Z(x) = logsumexp over classes of the log joint")
        expect_close(name, got, want, what=f"the log posterior for {about}",
                     hint="log theta_cj = log(count_cj + alpha) - log(sum_k count_ck + alpha V) "
                          "(V = number of n-grams); log prior = log(class_count / total); "
                          "log joint = log prior + X @ log_theta.T; then normalise")
    return passed(name, f"{len(cases)} cases, including one computed by hand")


def _nb_log_joint(X: np.ndarray, class_counts: np.ndarray, feature_counts: np.ndarray,
                  alpha: float) -> np.ndarray:
    smoothed = feature_counts + alpha
    log_theta = np.log(smoothed) - np.log(smoothed.sum(1, keepdims=True))  # (C, V)
    return np.log(class_counts / class_counts.sum()) + X @ log_theta.T  # (N, C)


def _log_evidence(X: np.ndarray, class_counts: np.ndarray, feature_counts: np.ndarray,
                  alpha: float) -> np.ndarray:
    joint = _nb_log_joint(X, class_counts, feature_counts, alpha)
    top = joint.max(1, keepdims=True)
    return top + np.log(np.exp(joint - top).sum(1, keepdims=True))  # (N, 1)


def _nb_log_posterior(X: np.ndarray, class_counts: np.ndarray, feature_counts: np.ndarray,
                      alpha: float) -> np.ndarray:
    return (_nb_log_joint(X, class_counts, feature_counts, alpha)
            - _log_evidence(X, class_counts, feature_counts, alpha))


def names_test_split() -> tuple[list[str], list[str], list[str]]:
    """The challenge's data: (test names, their languages, all 18 languages), the test part
    of the lesson's split (unique pairs, stratified 80/10/10, seed 0)."""
    from slm_course.data import load_names_by_language
    from slm_course.text_classifiers import stratified_split, unique_pairs

    names, labels, languages = unique_pairs(load_names_by_language())
    test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)[2]
    return [names[i] for i in test], [languages[labels[i]] for i in test], languages


def check_names_challenge(classifier: Any, target: float | None = None) -> float:
    """Score ``classifier.predict(names) -> languages`` by macro-F1 on the test split.

    The target is {full} in the full profile and {fast} in the fast profile (CI's few
    seconds of training). A self-check: it trusts you to train on the training split only.
    """
    from slm_course.text_classifiers import accuracy_score, macro_f1

    name = "check_names_challenge"
    target = pick(fast=CHALLENGE_TARGET["fast"], full=CHALLENGE_TARGET["full"]) \
        if target is None else target
    names, languages, all_languages = names_test_split()
    predict = getattr(classifier, "predict", None)
    expect(name, callable(predict), "the classifier has no predict method",
           hint="write a class with a method predict(self, names) -> list of languages")
    got = list(call_learner(name, predict, list(names)))
    expect(name, len(got) == len(names), f"predict returned {len(got)} languages for "
           f"{len(names)} names", hint="return one language (a string) per name")
    unknown = sorted({str(g) for g in got} - set(all_languages))
    expect(name, not unknown, f"predict returned labels that are not languages: {unknown[:5]}",
           hint=f"return language names spelled as in the data: {all_languages[:3]} ...")
    index = {lang: i for i, lang in enumerate(all_languages)}
    p, t = [index[str(g)] for g in got], [index[lang] for lang in languages]
    f1, acc = macro_f1(p, t, len(all_languages)), accuracy_score(p, t)
    expect(name, f1 >= target, f"macro-F1 {f1:.3f} on the test split (accuracy {acc:.1%}); "
           f"the target is {target:.2f}", hint="weigh the loss by class (rare languages "
           "count as much as Russian in macro-F1), train longer, try a GRU with dropout")
    passed(name, f"macro-F1 {f1:.3f}, accuracy {acc:.1%} on {len(names):,} test names "
           f"(target {target:.2f})")
    return f1


CHALLENGE_TARGET = {"fast": 0.15, "full": 0.48}  # macro-F1 on the test split
check_names_challenge.__doc__ = (check_names_challenge.__doc__ or "").format(**CHALLENGE_TARGET)
