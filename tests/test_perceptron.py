"""slm_course.perceptron against hand-worked updates and two theorems.

* Novikoff (1962): on data separable with margin gamma, the perceptron makes at most
  (R / gamma)^2 mistakes, so it converges.
* XOR is not linearly separable: no line classifies more than 3 of its 4 points, so the
  perceptron never converges on it.
"""

import numpy as np
import pytest

from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage05 import check_perceptron_update
from slm_course.perceptron import (
    make_separable_data,
    perceptron_predict,
    perceptron_update,
    train_perceptron,
    xor_data,
)


@pytest.mark.parametrize("w, b, x, y, lr, want_w, want_b", [
    ([0.0, 0.0], 0.0, [1.0, 2.0], 1, 1.0, [1.0, 2.0], 1.0),  # score 0 counts as a mistake
    ([1.0, 1.0], 0.0, [1.0, 0.0], -1, 1.0, [0.0, 1.0], -1.0),  # score +1 for a -1 example
    ([1.0, 1.0], 0.0, [1.0, 0.0], 1, 1.0, [1.0, 1.0], 0.0),  # correct: no change
    ([1.0, -1.0], 0.5, [1.0, 2.0], 1, 0.5, [1.5, 0.0], 1.0),  # lr scales the step
])
def test_update_by_hand(w, b, x, y, lr, want_w, want_b):
    w, x = np.array(w), np.array(x)
    w_before = w.copy()
    new_w, new_b = perceptron_update(w, b, x, y, lr)
    assert np.array_equal(new_w, want_w) and new_b == want_b
    assert np.array_equal(w, w_before), "the update must not modify its input"


def test_an_update_raises_the_margin_of_its_example_by_lr_times_norm_squared():
    """y (w' . x + b') = y (w . x + b) + lr (||x||^2 + 1), because y^2 = 1."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        w, x, b, y = rng.standard_normal(3), rng.standard_normal(3), 0.3, -1
        if y * (w @ x + b) > 0:
            w = -w  # make it a mistake
        new_w, new_b = perceptron_update(w, b, x, y, lr=0.7)
        gain = y * (new_w @ x + new_b) - y * (w @ x + b)
        assert gain == pytest.approx(0.7 * (x @ x + 1))


def test_training_trace_by_hand():
    X = np.array([[2.0, 1.0], [-1.0, -2.0]])
    y = np.array([1, -1])
    run = train_perceptron(X, y, epochs=10)
    # epoch 1: x0 has score 0 -> w = (2, 1), b = 1; x1 then scores -3, correct.
    # epoch 2: no mistakes -> stop.
    assert run.mistakes == [1, 0] and run.converged
    assert np.array_equal(run.w, [2.0, 1.0]) and run.b == 1.0
    assert len(run.snapshots) == len(run.accuracy) == 2


@pytest.mark.parametrize("seed", range(5))
def test_converges_on_separable_data_within_novikoffs_bound(seed):
    rng = np.random.default_rng(seed)
    X, y, (w_true, b_true) = make_separable_data(200, margin=0.2, rng=rng)
    run = train_perceptron(X, y, epochs=1000, rng=rng)
    assert run.converged and run.mistakes[-1] == 0
    assert np.array_equal(perceptron_predict(run.w, run.b, X), y)
    assert run.accuracy[-1] == 1.0
    R = np.sqrt((X**2).sum(axis=1) + 1).max()  # radius of the points (x, 1)
    gamma = (y * (X @ w_true + b_true)).min() / np.hypot(1.0, b_true)  # ||(w_true, b)||
    assert run.total_mistakes <= (R / gamma) ** 2


def test_separable_data_respects_its_margin():
    X, y, (w, b) = make_separable_data(300, margin=0.4, rng=np.random.default_rng(1))
    assert X.shape == (300, 2) and y.shape == (300,)
    assert np.isclose(np.linalg.norm(w), 1.0)
    assert (y * (X @ w + b)).min() >= 0.4
    assert set(np.unique(y)) == {-1, 1}


def test_no_line_classifies_more_than_three_xor_points():
    X, y = xor_data()
    angles = np.linspace(0, 2 * np.pi, 721)
    W = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (A, 2) directions
    biases = np.linspace(-2, 2, 401)
    scores = (X @ W.T)[:, :, None] + biases  # (4, A, B)
    accuracy = ((scores > 0) == (y[:, None, None] == 1)).mean(axis=0)
    assert accuracy.max() == 0.75


@pytest.mark.parametrize("shuffle", [False, True])
def test_never_converges_on_xor(shuffle):
    X, y = xor_data()
    rng = np.random.default_rng(0) if shuffle else None
    run = train_perceptron(X, 2 * y - 1, epochs=200, rng=rng)
    assert not run.converged and len(run.mistakes) == 200
    assert min(run.mistakes) > 0 and max(run.accuracy) <= 0.75


def test_xor_data():
    X, y = xor_data()
    assert np.array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    assert np.array_equal(y, X[:, 0].astype(int) ^ X[:, 1].astype(int))
    Xn, yn = xor_data(10, noise=0.1, rng=np.random.default_rng(0))
    assert Xn.shape == (40, 2) and np.array_equal(yn, np.repeat(y, 10))


def test_bad_inputs_are_clear_errors():
    X, y = xor_data()
    with pytest.raises(ValueError, match=r"2 \* y - 1"):
        train_perceptron(X, y)  # 0/1 labels
    with pytest.raises(ValueError, match="one label per row"):
        train_perceptron(X, np.array([1, -1]))
    with pytest.raises(ValueError, match=r"X\[None, :\]"):
        train_perceptron(X[0], np.array([1]))
    with pytest.raises(ValueError, match="single row"):
        perceptron_update(np.zeros(2), 0.0, X, 1)
    with pytest.raises(ValueError, match=r"2 \* y - 1"):
        perceptron_update(np.zeros(2), 0.0, X[0], 0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        perceptron_predict(np.zeros(3), 0.0, X)


def test_check_perceptron_update_passes_the_rule_and_names_the_mistakes():
    assert check_perceptron_update(perceptron_update)

    def strict_inequality(w, b, x, y, lr):  # `< 0`: never learns from w = 0
        return (w + lr * y * x, b + lr * y) if y * (w @ x + b) < 0 else (w, b)

    def forgets_bias(w, b, x, y, lr):
        return (w + lr * y * x, b) if y * (w @ x + b) <= 0 else (w, b)

    def always_updates(w, b, x, y, lr):
        return w + lr * y * x, b + lr * y

    with pytest.raises(CheckFailed, match="use <= 0"):
        check_perceptron_update(strict_inequality)
    with pytest.raises(CheckFailed, match="b for a \\+1 example"):
        check_perceptron_update(forgets_bias)
    with pytest.raises(CheckFailed, match="correct example leaves w and b unchanged"):
        check_perceptron_update(always_updates)
