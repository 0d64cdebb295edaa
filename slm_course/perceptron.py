"""The perceptron (Rosenblatt, 1958): a linear classifier with a mistake-driven update.

    predict:  y_hat = +1 if w . x + b > 0 else -1            labels y in {-1, +1}
    update:   if y (w . x + b) <= 0:   w <- w + lr y x,   b <- b + lr y

On linearly separable data the rule stops making mistakes after at most (R / gamma)^2
updates (Novikoff, 1962), where R = max ||(x, 1)|| and gamma is the margin
min y (w* . x + b*) of any separating (w*, b*) with ||(w*, b*)|| = 1. On XOR no line
separates the classes, so the rule never stops making mistakes.

Also here: the two toy 2-D data sets of stage 05 (separable points and XOR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def perceptron_scores(w: np.ndarray, b: float, X: np.ndarray) -> np.ndarray:
    """The signed score s = X w + b of every row of X. X: (N, D), w: (D,) -> (N,)."""
    X = _as_points(X)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (X.shape[1],):
        raise ValueError(f"w has shape {w.shape} but the points have {X.shape[1]} features; "
                         f"w must have shape ({X.shape[1]},)")
    return X @ w + b  # (N,)


def perceptron_predict(w: np.ndarray, b: float, X: np.ndarray) -> np.ndarray:
    """y_hat = +1 where X w + b > 0, else -1. X: (N, D) -> (N,) of ints in {-1, +1}."""
    return np.where(perceptron_scores(w, b, X) > 0, 1, -1)


def perceptron_update(w: np.ndarray, b: float, x: np.ndarray, y: int, lr: float = 1.0
                      ) -> tuple[np.ndarray, float]:
    """One step of the perceptron rule on one example (x, y), y in {-1, +1}.

    If y (w . x + b) <= 0 (wrong side, or exactly on the line) move the line towards the
    example: w <- w + lr y x, b <- b + lr y. Otherwise leave it. Returns new (w, b); the
    inputs are not modified. x: (D,), w: (D,).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if x.ndim != 1 or x.shape != w.shape:
        raise ValueError(f"x must be one example of shape {w.shape} like w, got {x.shape}; "
                         f"pass a single row X[i], not the whole matrix")
    if y not in (-1, 1):
        raise ValueError(f"perceptron labels are -1 or +1, got {y!r}; "
                         f"convert 0/1 labels with y = 2 * y - 1")
    if y * (w @ x + b) <= 0:  # a mistake: the score has the wrong sign (or is 0)
        return w + lr * y * x, b + lr * y
    return w.copy(), b


@dataclass
class PerceptronRun:
    """What :func:`train_perceptron` did, epoch by epoch."""

    w: np.ndarray
    b: float
    mistakes: list[int] = field(default_factory=list)  # updates made in each epoch
    accuracy: list[float] = field(default_factory=list)  # on all of X, after each epoch
    snapshots: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (w, b) per epoch

    @property
    def converged(self) -> bool:
        """True when the last epoch made no mistake: every training point is classified."""
        return bool(self.mistakes) and self.mistakes[-1] == 0

    @property
    def total_mistakes(self) -> int:
        return sum(self.mistakes)


def train_perceptron(X: np.ndarray, y: np.ndarray, *, epochs: int = 100, lr: float = 1.0,
                     rng: np.random.Generator | None = None) -> PerceptronRun:
    """Run the perceptron rule over X (N, D) with labels y (N,) in {-1, +1}, from w = 0.

    Each epoch visits every example once (in a fresh random order when ``rng`` is given)
    and applies :func:`perceptron_update`. Training stops after the first epoch without a
    mistake, or after ``epochs`` epochs.
    """
    X, y = _check_training(X, y, epochs=epochs, lr=lr)
    w, b = np.zeros(X.shape[1]), 0.0
    run = PerceptronRun(w=w, b=b)
    for _ in range(epochs):
        order = rng.permutation(len(X)) if rng is not None else range(len(X))
        mistakes = 0
        for i in order:
            mistakes += int(y[i] * (X[i] @ w + b) <= 0)  # the update below will fire
            w, b = perceptron_update(w, b, X[i], int(y[i]), lr)
        run.mistakes.append(int(mistakes))
        run.accuracy.append(float(np.mean(perceptron_predict(w, b, X) == y)))
        run.snapshots.append((w.copy(), b))
        if mistakes == 0:
            break
    run.w, run.b = w, b
    return run


def make_separable_data(n: int = 100, *, margin: float = 0.25,
                        rng: np.random.Generator | None = None
                        ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, float]]:
    """n points in [-2, 2]^2 on both sides of a random line, none closer to it than ``margin``.

    Returns X (n, 2), y (n,) in {-1, +1} and the true line (w, b) with ||w|| = 1, so that
    y (X w + b) >= margin for every point.
    """
    if n < 2 or margin < 0:
        raise ValueError(f"need n >= 2 and margin >= 0, got n={n}, margin={margin}")
    rng = rng if rng is not None else np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi)
    w = np.array([np.cos(angle), np.sin(angle)])
    b = float(rng.uniform(-0.5, 0.5))
    points = []
    while sum(len(p) for p in points) < n:
        candidates = rng.uniform(-2, 2, size=(2 * n, 2))
        points.append(candidates[np.abs(candidates @ w + b) >= margin])
    X = np.concatenate(points)[:n]  # (n, 2)
    y = np.where(X @ w + b > 0, 1, -1)
    return X, y, (w, b)


def xor_data(n_per_corner: int = 1, *, noise: float = 0.0,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: label 1 at corners (0, 1) and (1, 0), label 0 at (0, 0) and (1, 1).

    With the defaults, the four classic points. ``n_per_corner`` > 1 with ``noise`` > 0
    scatters Gaussian clouds (std ``noise``) around each corner. Returns X (4n, 2) float64
    and y (4n,) int64 in {0, 1}; for the perceptron use 2 * y - 1.
    """
    if n_per_corner < 1 or noise < 0:
        raise ValueError(f"need n_per_corner >= 1 and noise >= 0, got {n_per_corner}, {noise}")
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
    labels = np.array([0, 1, 1, 0])
    X = np.repeat(corners, n_per_corner, axis=0)  # (4n, 2)
    y = np.repeat(labels, n_per_corner)
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        X = X + noise * rng.standard_normal(X.shape)
    return X, y


def _as_points(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a matrix of points, shape (N, D), got shape {X.shape}; "
                         f"for one point use X[None, :]")
    return X


def _check_training(X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    X, y = _as_points(X), np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y has shape {y.shape} but X has {X.shape[0]} rows; "
                         f"give one label per row, shape ({X.shape[0]},)")
    if not np.isin(y, (-1, 1)).all():
        raise ValueError(f"perceptron labels are -1 or +1, got values {np.unique(y)}; "
                         f"convert 0/1 labels with y = 2 * y - 1")
    if epochs < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
    return X, y
