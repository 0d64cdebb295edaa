"""Checks for stage 05, the perceptron and backpropagation (solutions/05_perceptron_backprop).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.perceptron`` / ``slm_course.numpy_nn``, and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.numpy_nn import (
    BCEWithLogitsLoss,
    GradientDescent,
    Linear,
    Sequential,
    Tanh,
    fit,
    linear_backward,
    tanh_backward,
)
from slm_course.perceptron import perceptron_update, xor_data


def check_perceptron_update(fn: Callable[..., Any]) -> bool:
    """Check ``fn(w, b, x, y, lr) -> (w_new, b_new)``, the perceptron rule on one example."""
    name = "check_perceptron_update"
    rule = "on a mistake, w <- w + lr * y * x and b <- b + lr * y"
    cases = [  # (w, b, x, y, lr, what the case is about, hint)
        ([0.5, -1.0], 0.2, [1.0, 2.0], 1, 1.0, "a +1 example on the wrong side", rule),
        ([0.5, -1.0], 0.2, [2.0, 0.5], -1, 1.0, "a -1 example on the wrong side",
         rule + "; y is -1 here, so the line moves the other way"),
        ([0.5, -1.0], 0.2, [2.0, 0.5], 1, 1.0, "a correctly classified example",
         "update only when y * (w . x + b) <= 0; a correct example leaves w and b unchanged"),
        ([0.0, 0.0], 0.0, [1.0, 2.0], -1, 1.0, "the start w = 0, b = 0 (score exactly 0)",
         "a score of exactly 0 is a mistake (use <= 0, not < 0): from w = 0 every score is 0, "
         "and with < 0 nothing would ever be learned"),
        ([1.0, 1.0, 1.0], -0.5, [-1.0, 0.0, 0.5], 1, 0.1, "3 features and lr = 0.1",
         "scale the step by lr, both for w and for b"),
    ]
    for w, b, x, y, lr, about, hint in cases:
        w, x = np.array(w), np.array(x)
        want_w, want_b = perceptron_update(w, b, x, y, lr)
        got = call_learner(name, fn, w.copy(), b, x.copy(), y, lr)
        expect(name, isinstance(got, (tuple, list)) and len(got) == 2,
               f"{about}: expected a pair (w_new, b_new)", got=got,
               hint="end with `return w_new, b_new`")
        expect_close(name, got[0], want_w, what=f"w for {about}", hint=hint)
        expect_close(name, got[1], want_b, what=f"b for {about}", hint=hint)
    return passed(name, f"{len(cases)} cases, including a score of exactly 0")


def check_linear_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, W, grad_out) -> (dx, dW, db)`` for y = x W + b."""
    name = "check_linear_backward"
    rng = np.random.default_rng(5)
    hints = ("dL/dx = grad_out @ W.T, shape (N, D_in)",
             "dL/dW = x.T @ grad_out, shape (D_in, D_out): every example adds its outer product",
             "dL/db = grad_out summed over the batch (axis=0), shape (D_out,): b is added to "
             "every row")
    shapes = [(5, 3, 2), (4, 2, 6), (1, 3, 3)]  # (N, D_in, D_out); N = 1 is the edge case
    for n, d_in, d_out in shapes:
        x = rng.standard_normal((n, d_in))
        W = rng.standard_normal((d_in, d_out))
        g = rng.standard_normal((n, d_out))
        want = linear_backward(x, W, g)
        got = call_learner(name, fn, x.copy(), W.copy(), g.copy())
        expect(name, isinstance(got, (tuple, list)) and len(got) == 3,
               f"expected a triple (dx, dW, db) for N={n}, D_in={d_in}, D_out={d_out}",
               got=got, hint="end with `return dx, dW, db`")
        for what, got_part, want_part, hint in zip(("dx", "dW", "db"), got, want, hints,
                                                    strict=True):
            expect_close(name, got_part, want_part,
                         what=f"{what} (N={n}, D_in={d_in}, D_out={d_out})", hint=hint)
    return passed(name, f"{len(shapes)} shapes, including a batch of one")


def check_tanh_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(y, grad_out) -> grad_in`` for y = tanh(x)."""
    name = "check_tanh_backward"
    hint = ("y is the forward output tanh(x), so dL/dx = grad_out * (1 - y**2), elementwise; "
            "do not apply np.tanh to y again")
    rng = np.random.default_rng(7)
    cases = [
        ("a (3, 4) batch", np.tanh(rng.standard_normal((3, 4))), rng.standard_normal((3, 4))),
        ("x = 0, where the slope is 1", np.zeros(3), np.array([1.0, -2.0, 3.0])),
        ("saturated units (|x| large)", np.tanh(np.array([-8.0, 8.0])), np.array([1.0, 1.0])),
    ]
    for about, y, g in cases:
        got = call_learner(name, fn, y.copy(), g.copy())
        expect_close(name, got, tanh_backward(y, g), what=f"grad_in for {about}", hint=hint)
    return passed(name, f"{len(cases)} cases, including saturation")


def check_train_xor(fn: Callable[..., Any]) -> bool:
    """Check ``fn(steps, lr, hidden, seed) -> (probs, losses)``: a network that solves XOR.

    The learner's loss curve must follow the reference network (same initialisation, same
    full-batch gradient descent) step by step, and the trained network must classify all
    four XOR points.
    """
    name = "check_train_xor"
    X, y = xor_data()
    steps, lr, hidden, compared = 1000, 1.0, 8, 50
    for seed in (0, 1):
        got = call_learner(name, fn, steps=steps, lr=lr, hidden=hidden, seed=seed)
        expect(name, isinstance(got, (tuple, list)) and len(got) == 2,
               "expected a pair (probs, losses)", got=got, hint="end with `return probs, losses`")
        probs = np.asarray(got[0], dtype=np.float64).ravel()
        losses = np.asarray(got[1], dtype=np.float64).ravel()
        expect(name, probs.shape == (4,), f"probs has {probs.size} entries, expected 4",
               hint="return P(y = 1) for the four XOR points, in the order of xor_data()")
        expect(name, losses.shape == (steps,) and np.isfinite(losses).all(),
               f"expected {steps} finite losses, one per step", got=losses,
               hint="nan or inf means the updates blew up: is a sign flipped?")
        want = _reference_xor_losses(X, y, steps=compared, lr=lr, hidden=hidden, seed=seed)
        off = np.flatnonzero(~np.isclose(losses[:compared], want, rtol=1e-6, atol=1e-9))
        if off.size:
            k = int(off[0])
            expect(name, False,
                   f"seed {seed}: your loss leaves the reference curve at step {k}",
                   expected=want[max(k - 1, 0):k + 2], got=losses[max(k - 1, 0):k + 2],
                   hint="the forward pass is given, so the gradients or the update differ: "
                        "dz -> (dh, dW2, db2) with linear_backward, dh -> da with "
                        "tanh_backward, da -> (dW1, db1); compute every gradient before "
                        "changing any parameter, then W -= lr * dW for all four")
        expect(name, np.array_equal(probs > 0.5, y == 1),
               f"seed {seed}: the trained network does not solve XOR", expected=y,
               got=(probs > 0.5).astype(int),
               hint="probs must be sigmoid(logits) of the trained network on xor_data()'s X")
    return passed(name, "loss curve matches the reference, 4/4 XOR points for seeds 0 and 1")


def _reference_xor_losses(X: np.ndarray, y: np.ndarray, *, steps: int, lr: float,
                          hidden: int, seed: int) -> np.ndarray:
    """The reference run that ``train_xor`` in the solution notebook reproduces."""
    rng = np.random.default_rng(seed)
    model = Sequential(Linear(2, hidden, rng=rng), Tanh(), Linear(hidden, 1, rng=rng))
    losses = fit(model, BCEWithLogitsLoss(), X, y.reshape(-1, 1).astype(np.float64),
                 optimizer=GradientDescent(model.parameters(), lr=lr), steps=steps)
    return np.array(losses)


# ---------------------------------------------------------------- the open challenge

#: the open challenge: accuracy on 2,000 fresh points of two interleaved spirals (a linear
#: classifier gets about half of them right)
CHALLENGE_TARGET = 0.95


def spiral_data(n: int, seed: int = 0, noise: float = 0.2, turns: float = 1.5
                ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: X (n, 2) float64 and labels y (n,) in {0, 1}. Each arm winds
    ``turns`` times around the origin out to radius 3; the points jitter with noise that
    grows with the radius. The challenge trains on ``seed=0`` and is scored on ``seed=1``."""
    if n < 2:
        raise ValueError(f"need at least 2 points, got n={n}")
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n)) * turns * 2 * np.pi  # (n,) angle along the arm
    y = rng.integers(0, 2, n)  # (n,) which arm
    radius = 3.0 * t / (turns * 2 * np.pi)  # (n,)
    angle = t + np.pi * y  # the second arm is the first turned by 180 degrees
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # (n, 2)
    X = X + rng.normal(0.0, 1.0, (n, 2)) * (noise * radius[:, None] / 3 + 0.05)
    return X, y.astype(np.int64)


def check_spirals_challenge(predict: Callable[[np.ndarray], Any],
                            target: float | None = None) -> float:
    """The open challenge: ``predict(X) -> labels`` (0 or 1) for 2,000 fresh spiral points
    (``spiral_data(2000, seed=1)``), from a network trained with your backpropagation or
    ``slm_course.numpy_nn`` on ``spiral_data(n, seed=0)``. Target: 95% correct."""
    name = "check_spirals_challenge"
    target = CHALLENGE_TARGET if target is None else target
    X, y = spiral_data(2000, seed=1)
    got = as_array(name, call_learner(name, predict, X.copy()), "predict(X)").reshape(-1)
    expect(name, got.shape == y.shape, f"predict returned {got.size} labels for {len(y)} "
           "points", hint="one label (0 or 1) per row of X, e.g. (logits[:, 0] > 0)")
    accuracy = float(np.mean(got == y))
    expect(name, accuracy >= target, f"held-out accuracy {accuracy:.1%}, the target is "
           f"{target:.0%}", expected=f">= {target:.0%}", got=f"{accuracy:.1%}",
           hint="two hidden tanh layers of 32 or so, a few thousand full-batch steps with "
                "learning rate 0.5 to 1; a straight line cannot separate spirals")
    passed(name, f"{accuracy:.1%} of 2,000 held-out spiral points (target {target:.0%})")
    return accuracy
