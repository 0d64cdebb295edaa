"""Checks for stage 01, the linear algebra refresher (solutions/01_linear_algebra).

Matrix multiplication with loops, power iteration and PCA via the SVD. Each check runs the
learner's function on a few cases (a small one, a rectangular one, an edge case), compares
with ``numpy.linalg`` or ``slm_course.linalg``, and names the usual mistake in its hint:
calling ``@`` inside the "loops" version, losing the sign of a negative eigenvalue, not
centring the data, dividing by N instead of N - 1. Vectors are compared up to sign, since
eigenvectors and singular vectors are only defined up to sign.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, fail, passed
from slm_course.linalg import pca_svd

_BUILT_IN_PRODUCTS = {"dot", "matmul", "einsum", "inner", "tensordot", "vdot"}


def _tuple(check: str, got: Any, size: int, names: str) -> tuple:
    if not (isinstance(got, (tuple, list)) and len(got) == size):
        raise fail(check, f"expected a tuple ({names})", got=got,
                   hint=f"end your function with `return {names}`")
    return tuple(got)


def _same(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=1e-9))


def _up_to_sign(got: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``reference`` with each row (or the vector) flipped to point the way ``got`` does."""
    got2, ref2 = np.atleast_2d(got), np.atleast_2d(reference)
    signs = np.where(np.sum(got2 * ref2, axis=1, keepdims=True) < 0, -1.0, 1.0)
    return (ref2 * signs).reshape(reference.shape)


def _uses_a_built_in_product(fn: Callable[..., Any]) -> str:
    """The name of the built-in product ``fn``'s code calls (``@``, ``np.dot``, ...), or ''."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):  # no source to read: give the benefit of doubt
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            return "@"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _BUILT_IN_PRODUCTS:
                return f"{name}()"
    return ""


# --------------------------------------------------------------------------- matmul


def check_matmul_loops(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """Check ``fn(A, B) -> C`` with C[i, j] = sum_p A[i, p] B[p, j], written with loops."""
    name = "check_matmul_loops"
    rng = np.random.default_rng(1)
    hint = ("C[i, j] is row i of A times column j of B, summed over p: "
            "C[i, j] = sum_p A[i, p] * B[p, j]; C has shape (rows of A, columns of B)")
    cases = [
        ("A (2, 3) @ B (3, 4)", rng.standard_normal((2, 3)), rng.standard_normal((3, 4))),
        ("square A (3, 3) @ B (3, 3)", rng.standard_normal((3, 3)), rng.standard_normal((3, 3))),
        ("a row (1, 5) @ a column (5, 1)", rng.standard_normal((1, 5)),
         rng.standard_normal((5, 1))),
        ("a column (4, 1) @ a row (1, 2): an outer product, inner dimension 1",
         rng.standard_normal((4, 1)), rng.standard_normal((1, 2))),
    ]
    for about, a, b in cases:
        got = as_array(name, call_learner(name, fn, a.copy(), b.copy()), f"the result for {about}")
        expected = a @ b  # (n, m)
        transposed = got.shape == expected.T.shape and got.shape != expected.shape
        expect_close(name, got, expected, what=f"A @ B for {about}", rtol=1e-9, atol=1e-12,
                     hint="your result is transposed: C has one row per row of A"
                     if transposed else hint)
    a, b = cases[1][1], cases[1][2]
    got = as_array(name, call_learner(name, fn, b.copy(), a.copy()), "B @ A")
    expect_close(name, got, b @ a, what="B @ A (the arguments swapped)", rtol=1e-9,
                 atol=1e-12, hint="A @ B was right but B @ A is not: the loops must not "
                 "depend on which matrix comes first")
    used = _uses_a_built_in_product(fn)
    expect(name, not used, f"your function calls {used}: the exercise is to write the loops",
           hint="use three nested for-loops over i, j and p and add up a[i, p] * b[p, j]; "
                "no @, np.dot, np.matmul or np.einsum")
    return passed(name, f"{len(cases) + 1} products, including an outer product, "
                        f"all with explicit loops")


# --------------------------------------------------------------------------- power iteration


def _symmetric(eigenvalues: list[float], seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T


def check_power_iteration(fn: Callable[..., Any]) -> bool:
    """Check ``fn(A, num_iters) -> (eigenvalue, eigenvector)`` of largest |eigenvalue|."""
    name = "check_power_iteration"
    cases = [
        ("diag(3, 1)", np.diag([3.0, 1.0])),
        ("a symmetric 5x5 matrix, eigenvalues 4, 2, 1, -1, 0.5",
         _symmetric([4.0, 2.0, 1.0, -1.0, 0.5], seed=2)),
        ("a matrix whose dominant eigenvalue is negative (-5, 2, 1)",
         _symmetric([-5.0, 2.0, 1.0], seed=3)),
        ("a non-symmetric matrix", np.array([[2.0, 1.0, 0.0], [0.5, 3.0, 1.0],
                                             [0.0, 0.2, 1.0]])),
    ]
    for about, a in cases:
        values, vectors = np.linalg.eig(a)
        top = int(np.argmax(np.abs(values)))
        want_lam = float(values[top].real)
        want_v = vectors[:, top].real / np.linalg.norm(vectors[:, top].real)
        lam, v = _tuple(name, call_learner(name, fn, a.copy(), num_iters=500), 2,
                        "eigenvalue, eigenvector")
        lam = as_array(name, lam, f"the eigenvalue for {about}")
        v = as_array(name, v, f"the eigenvector for {about}")
        if lam.shape == () and np.isclose(lam, -want_lam) and want_lam < 0:
            hint = ("you found |lambda| but lost its sign: ||A v|| is always positive. Use the "
                    "Rayleigh quotient lambda = v . (A v) with ||v|| = 1")
        else:
            hint = ("repeat v = A v / ||A v||, then lambda = v . (A v) (the Rayleigh "
                    "quotient, with ||v|| = 1)")
        expect_close(name, lam, want_lam, what=f"the eigenvalue of {about}", rtol=1e-6,
                     hint=hint)
        expect(name, v.shape == want_v.shape,
               f"the eigenvector of {about} has shape {v.shape}, expected {want_v.shape}",
               hint="return the vector v itself, one entry per row of A")
        expect(name, np.isclose(np.linalg.norm(v), 1.0, rtol=1e-6),
               f"the eigenvector of {about} has norm {np.linalg.norm(v):.4g}, expected 1",
               hint="divide by the norm at every step: v = w / np.linalg.norm(w)")
        expect_close(name, v, _up_to_sign(v, want_v), what=f"the eigenvector of {about} "
                     f"(compared up to sign)", rtol=1e-5, atol=1e-6,
                     hint="return the normalised v of the last step; A v should equal "
                          "lambda v")
    return passed(name, f"{len(cases)} matrices, including a negative dominant eigenvalue")


# --------------------------------------------------------------------------- PCA


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) * np.linspace(3.0, 0.2, d)  # (d, d) unequal scales
    return rng.standard_normal((n, d)) @ mixing.T + 5.0 + rng.standard_normal(d)  # offset


def check_pca_svd(fn: Callable[..., Any]) -> bool:
    """Check ``fn(X, k) -> (components (k, d), explained_variance (k,), mean (d,))``."""
    name = "check_pca_svd"
    cases = [
        ("X (200, 5), k = 2", _data(200, 5, seed=4), 2),
        ("X (300, 3), k = 3 (all of them)", _data(300, 3, seed=5), 3),
        ("X (10, 20), k = 4: fewer samples than features", _data(10, 20, seed=6), 4),
    ]
    for about, x, k in cases:
        n = len(x)
        want_c, want_var, want_mean = pca_svd(x, k)
        got = _tuple(name, call_learner(name, fn, x.copy(), k), 3,
                     "components, explained_variance, mean")
        comps = as_array(name, got[0], f"components for {about}")
        var = as_array(name, got[1], f"explained_variance for {about}")
        mean = as_array(name, got[2], f"mean for {about}")
        expect_close(name, mean, want_mean, what=f"the mean for {about}",
                     hint="the mean of every feature over the samples: x.mean(axis=0)")
        if comps.shape == want_c.T.shape and comps.shape != want_c.shape:
            raise fail(name, f"components for {about} have shape {comps.shape}, expected "
                       f"{want_c.shape}", hint="return the first k ROWS of Vt (one component "
                       "per row), not columns")
        s_raw = np.linalg.svd(x, compute_uv=False)[:k]
        s = np.linalg.svd(x - want_mean, compute_uv=False)[:k]
        mistakes = {
            "you did not centre X: subtract the mean of each feature before the SVD":
                s_raw ** 2 / (n - 1),
            "those are the singular values S; the variance along a component is "
            "S**2 / (n - 1)": s,
            "divide by n - 1 (the sample covariance), not by n": s ** 2 / n,
        }
        hint = next((h for h, wrong in mistakes.items() if _same(var, wrong)),
                    "centre X, take the SVD X_c = U S Vt, then variance = S**2 / (n - 1)")
        expect_close(name, var, want_var, what=f"explained_variance for {about}", rtol=1e-6,
                     hint=hint)
        expect(name, comps.shape == want_c.shape,
               f"components for {about} have shape {comps.shape}, expected {want_c.shape}",
               hint="keep the first k rows of Vt, each of length d (one entry per feature)")
        expect_close(name, comps, _up_to_sign(comps, want_c),
                     what=f"components for {about} (compared up to sign)", rtol=1e-5,
                     atol=1e-7, hint="the components are the rows of Vt from "
                     "np.linalg.svd(X - mean, full_matrices=False), ordered as the SVD "
                     "returns them (by decreasing singular value)")
    return passed(name, f"{len(cases)} data sets, including fewer samples than features")


# ---------------------------------------------------------------- the open challenge

#: the open challenge: accuracy on the last 2,000 images of the MNIST test split for a
#: classifier built with linear algebra from the first 8,000 (nearest class mean: ~85%)
CHALLENGE_TARGET = 0.93
CHALLENGE_TRAIN = 8_000


def challenge_data() -> tuple[np.ndarray, np.ndarray]:
    """The training part of the challenge: the first 8,000 images of the MNIST test split,
    as float64 rows (8000, 784) in [0, 1], and their labels (8000,)."""
    from slm_course.data import load_mnist_test

    images, labels = load_mnist_test()
    x = images[:CHALLENGE_TRAIN].reshape(CHALLENGE_TRAIN, -1).astype(np.float64) / 255.0
    return x, labels[:CHALLENGE_TRAIN].astype(np.int64)


def check_digits_challenge(predict: Callable[[np.ndarray], Any],
                           target: float | None = None) -> float:
    """The open challenge: ``predict(x) -> labels`` for rows ``x (N, 784)`` in [0, 1] of
    images never used for training (the MNIST test split after the first 8,000; fast
    profile: 500 of them). Target: 93% correct. NumPy only, any method."""
    from slm_course.data import load_mnist_test
    from slm_course.helpers.workload import pick

    name = "check_digits_challenge"
    target = CHALLENGE_TARGET if target is None else target
    images, labels = load_mnist_test()
    stop = CHALLENGE_TRAIN + pick(fast=500, full=len(images) - CHALLENGE_TRAIN)
    x = images[CHALLENGE_TRAIN:stop].reshape(stop - CHALLENGE_TRAIN, -1) / 255.0
    y = labels[CHALLENGE_TRAIN:stop]
    got = as_array(name, call_learner(name, predict, x.copy()), "predict(x)")
    expect(name, got.shape == y.shape, f"predict returned shape {got.shape}",
           expected=y.shape, hint="one label (0 to 9) per row of x")
    accuracy = float(np.mean(got == y))
    expect(name, accuracy >= target, f"held-out accuracy {accuracy:.1%}, the target is "
           f"{target:.0%}", expected=f">= {target:.0%}", got=f"{accuracy:.1%}",
           hint="project onto your PCA components (50 or so) and vote among the nearest "
                "training images; squared distances for all pairs at once are "
                "|a|^2 + |b|^2 - 2 a.b, one matrix product")
    passed(name, f"{accuracy:.1%} on {len(y):,} held-out digits (target {target:.0%})")
    return accuracy
