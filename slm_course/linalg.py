"""Linear algebra written out: the few algorithms under every neural network (NumPy only).

    matmul_loops                    C[i, j] = sum_p A[i, p] B[p, j]
    project_onto                    p = A x_hat,  A^T A x_hat = A^T v    (p = (u.v / u.u) u)
    least_squares_normal_equations  x_hat = argmin_x ||A x - b||^2  solves  A^T A x = A^T b
    power_iteration                 v <- A v / ||A v||,  lambda = v^T A v
    pca_svd                         X - mu = U S V^T,  components = rows of V^T,
                                    explained variance = S^2 / (n - 1)

``numpy.linalg`` (``@``, ``lstsq``, ``eigh``, ``svd``) is the oracle the tests compare with.
Eigenvectors and singular vectors are only defined up to sign (if v is one, so is -v); every
vector returned here is flipped so that its entry of largest magnitude is positive, which
makes results reproducible and comparable.

Stage 01: linear algebra refresher.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def matmul_loops(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product with three explicit loops: C[i, j] = sum_p A[i, p] B[p, j].

    A (n, k) @ B (k, m) -> C (n, m). It does n*m*k multiply-adds, like ``a @ b``, but one
    Python step at a time, which is why ``@`` (compiled, blocked, vectorized BLAS) is
    thousands of times faster.
    """
    a, b = _check_matmul(np.asarray(a), np.asarray(b))
    (n, k), m = a.shape, b.shape[1]
    c = np.zeros((n, m), dtype=np.result_type(a, b))  # (n, m)
    for i in range(n):
        for j in range(m):
            total = c.dtype.type(0)
            for p in range(k):
                total += a[i, p] * b[p, j]  # row i of A dotted with column j of B
            c[i, j] = total
    return c


def least_squares_normal_equations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares by the normal equations: x_hat = argmin_x ||A x - b||^2 solves
    A^T A x = A^T b.

    A (m, n) with m >= n and independent columns; b (m,) or (m, k) for k right-hand sides.
    Returns x_hat (n,) or (n, k). The residual b - A x_hat is orthogonal to every column of
    A. Forming A^T A squares the condition number (cond(A^T A) = cond(A)^2), so for
    ill-conditioned A prefer ``np.linalg.lstsq`` (QR/SVD based), which does not.
    """
    a, b = _check_least_squares(_as_float(a, "A"), _as_float(b, "b"))
    gram = a.T @ a  # (n, n)
    rhs = a.T @ b   # (n,) or (n, k)
    return np.linalg.solve(gram, rhs)


def project_onto(v: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Orthogonal projection of v onto a line or onto the column space of a matrix.

    Onto the line through u (basis of shape (n,)): p = (u.v / u.u) u.
    Onto the columns of A (basis of shape (n, k)): p = A x_hat with A^T A x_hat = A^T v,
    i.e. p = P v with P = A (A^T A)^{-1} A^T. v is (n,) or (n, m) (m vectors as columns);
    p has v's shape. v - p is orthogonal to the subspace, and projecting p again gives p.
    """
    v, basis = _check_projection(_as_float(v, "v"), _as_float(basis, "basis"))
    if basis.ndim == 1:
        basis = basis[:, None]  # (n, 1): a line is the column space of one column
    x_hat = least_squares_normal_equations(basis, v)  # (k,) or (k, m)
    return basis @ x_hat


def power_iteration(a: np.ndarray, num_iters: int = 1000, tol: float | None = 1e-10,
                    seed: int = 0, v0: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Dominant eigenpair of a square matrix: repeat v <- A v / ||A v||; lambda = v^T A v.

    A^t v0 = sum_i c_i lambda_i^t q_i: the top eigenvector q_1 wins, and the angle to it
    shrinks like |lambda_2 / lambda_1|^t. Stops once ||A v - lambda v|| <= tol ||A v||
    (``tol=None``: runs all ``num_iters`` steps); raises RuntimeError if it never does, e.g.
    for eigenvalues lambda and -lambda. Starts from ``v0``, or a normal draw from ``seed``.
    Returns (lambda, v) with ||v|| = 1 and the largest-magnitude entry of v positive.
    """
    a = _check_square(_as_float(a, "A"))
    _check_positive_int("num_iters", num_iters)
    v = _start_vector(a.shape[0], seed, v0)  # (n,), ||v|| = 1
    for _ in range(num_iters):
        w = a @ v            # (n,)
        lam = float(v @ w)   # Rayleigh quotient v^T A v (keeps a negative lambda's sign)
        norm_w = float(np.linalg.norm(w))
        if tol is not None and np.linalg.norm(w - lam * v) <= tol * norm_w:
            return lam, _fix_sign(v)
        if norm_w == 0.0:  # A v = 0 = 0 v: v is an eigenvector for eigenvalue 0
            return 0.0, _fix_sign(v)
        v = w / norm_w
    if tol is None:
        return float(v @ (a @ v)), _fix_sign(v)
    raise _not_converged(num_iters, float(np.linalg.norm(w - lam * v) / norm_w), tol)


class PCA(NamedTuple):
    """The result of :func:`pca_svd`; unpack it as ``components, variance, mean = ...``."""

    components: np.ndarray          # (k, d) orthonormal rows, by decreasing variance
    explained_variance: np.ndarray  # (k,) variance of the data along each component
    mean: np.ndarray                # (d,) the data's mean, subtracted before the SVD


def pca_svd(x: np.ndarray, k: int | None = None) -> PCA:
    """Principal components from the SVD of the centred data.

    X (n, d), mu = mean of the rows, X - mu = U S V^T. The principal directions are the rows
    of V^T (the eigenvectors of the covariance C = (X - mu)^T (X - mu) / (n - 1)) and the
    variance along direction i is lambda_i = S_i^2 / (n - 1) (C's eigenvalues).
    Keeps the first ``k`` (default all min(n, d)). Project with z = (x - mean) @ components.T
    (k numbers per sample) and reconstruct with x_hat = mean + z @ components.
    """
    x = _as_float(x, "X")
    k = _check_pca(x, k)
    mean = x.mean(axis=0)   # (d,)
    centred = x - mean      # (n, d)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # s (r,), vt (r, d)
    components = _fix_sign(vt[:k])  # (k, d)
    explained_variance = s[:k] ** 2 / (len(x) - 1)  # (k,): the variance along each
    return PCA(components, explained_variance, mean)


def _fix_sign(vectors: np.ndarray) -> np.ndarray:
    """Flip each vector (each row, if 2-D) so its largest-magnitude entry is positive."""
    rows = np.atleast_2d(vectors)                              # (k, d)
    biggest = rows[np.arange(len(rows)), np.argmax(np.abs(rows), axis=1)]  # (k,)
    signs = np.where(biggest < 0, -1.0, 1.0)[:, None]          # (k, 1)
    return (rows * signs).reshape(vectors.shape)


def _as_float(value: np.ndarray, name: str) -> np.ndarray:
    """``value`` as a float64 array; a clear error for NaN/inf or non-numeric input."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a real-valued array, got {type(value).__name__}: "
                         f"{err}") from err
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; clean the data before the linear "
                         f"algebra (np.isfinite finds the bad entries)")
    return arr


# ---------------------------------------------------------------------------------------------
# Argument checks, kept out of the algorithms above so that a lesson shows the algorithm.
# ---------------------------------------------------------------------------------------------


def _check_matmul(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul_loops multiplies 2-D matrices, got shapes {a.shape} and "
                         f"{b.shape}; make a vector v a column with v[:, None] or a row with "
                         f"v[None, :]")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply A {a.shape} by B {b.shape}: A has {a.shape[1]} "
                         f"columns but B has {b.shape[0]} rows, and the inner dimensions must "
                         f"match (A (n, k) @ B (k, m)); did you mean to transpose one of them?")
    return a, b


def _check_least_squares(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.ndim != 2:
        raise ValueError(f"A must be a 2-D matrix (m, n), got shape {a.shape}")
    m, n = a.shape
    if b.ndim not in (1, 2) or b.shape[0] != m:
        raise ValueError(f"b must have shape ({m},) or ({m}, k) to match A {a.shape} (one "
                         f"entry per row of A), got {b.shape}")
    if m < n:
        raise ValueError(f"A {a.shape} has fewer rows than columns: the system is "
                         f"underdetermined, A^T A is singular and x_hat is not unique; use "
                         f"np.linalg.lstsq, which returns the minimum-norm solution")
    rank = np.linalg.matrix_rank(a)
    if rank < n:
        raise ValueError(f"A {a.shape} has rank {rank} < {n} columns: its columns are linearly "
                         f"dependent, so A^T A is singular and x_hat is not unique; drop the "
                         f"redundant columns or use np.linalg.lstsq (minimum-norm solution)")
    return a, b


def _check_projection(v: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if basis.ndim == 1 and not np.any(basis):
        raise ValueError("cannot project onto the zero vector: it spans no line; pass a "
                         "non-zero direction u")
    if basis.ndim not in (1, 2):
        raise ValueError(f"basis must be a vector (n,) or a matrix (n, k) whose columns span "
                         f"the subspace, got shape {basis.shape}")
    if v.ndim not in (1, 2) or v.shape[0] != basis.shape[0]:
        raise ValueError(f"v has shape {v.shape} but the basis vectors have {basis.shape[0]} "
                         f"entries; v must be ({basis.shape[0]},) or ({basis.shape[0]}, m)")
    return v, basis


def _check_square(a: np.ndarray) -> np.ndarray:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"power iteration needs a square matrix (A v must live where v does), "
                         f"got shape {a.shape}; for a rectangular X use the singular vectors "
                         f"(power iteration on X^T X)")
    return a


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _start_vector(n: int, seed: int, v0: np.ndarray | None) -> np.ndarray:
    """``v0`` (checked), or a standard normal draw from ``seed``, scaled to length 1."""
    if v0 is None:
        v = np.random.default_rng(seed).standard_normal(n)  # (n,)
    else:
        v = _as_float(v0, "v0")
        if v.shape != (n,):
            raise ValueError(f"v0 must have shape ({n},) to match A ({n}, {n}), got {v.shape}")
    if not np.any(v):
        raise ValueError("v0 must not be the zero vector: A^t 0 = 0 never finds a direction")
    return v / np.linalg.norm(v)


def _not_converged(num_iters: int, residual: float, tol: float) -> RuntimeError:
    return RuntimeError(f"power iteration did not converge in {num_iters} steps (relative "
                        f"residual {residual:.2e} > tol={tol}); the two largest |eigenvalues| "
                        f"may be (nearly) equal, e.g. lambda and -lambda or a complex pair; "
                        f"raise num_iters or use np.linalg.eig")


def _check_pca(x: np.ndarray, k: int | None) -> int:
    """Raise unless X is (n >= 2, d); return k, or min(n, d) when k is None."""
    if x.ndim != 2:
        raise ValueError(f"X must be 2-D (n samples, d features), got shape {x.shape}; "
                         f"flatten images first, e.g. images.reshape(len(images), -1)")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples to measure a variance, got {n}")
    r = min(n, d)
    k = r if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= r:
        raise ValueError(f"k must be an int in 1..{r} (at most min(n, d) = min({n}, {d}) "
                         f"components exist), got {k!r}")
    return k
