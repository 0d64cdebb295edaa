"""slm_course.linalg against its oracle, numpy.linalg (``@``, ``qr``, ``lstsq``, ``eigh``,
``eig``, ``cov``), on random inputs and on the edge cases that break naive code; and the
stage 01 exercise checks against right and typically wrong answers."""

import numpy as np
import pytest

from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage01 import (
    check_matmul_loops,
    check_pca_svd,
    check_power_iteration,
)
from slm_course.linalg import (
    PCA,
    least_squares_normal_equations,
    matmul_loops,
    pca_svd,
    power_iteration,
    project_onto,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _symmetric_with_spectrum(eigenvalues, seed: int = 0) -> np.ndarray:
    """Q diag(eigenvalues) Q^T for a random orthogonal Q: a matrix whose spectrum we know."""
    q, _ = np.linalg.qr(_rng(seed).standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


def _align(got: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flip each row of ``reference`` to point the way the matching row of ``got`` does."""
    got2, ref2 = np.atleast_2d(got), np.atleast_2d(reference)
    signs = np.sign(np.sum(got2 * ref2, axis=1, keepdims=True))
    return (ref2 * signs).reshape(np.shape(reference))


# ----------------------------------------------------------------------------- matmul_loops

@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (3, 3, 3), (2, 5, 4), (7, 1, 3), (1, 6, 1),
                                     (6, 2, 1)])
def test_matmul_loops_matches_numpy(n, k, m):
    rng = _rng(n * 100 + k * 10 + m)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    got = matmul_loops(a, b)
    assert got.shape == (n, m)
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_loops_integers_are_exact_and_keep_their_dtype():
    rng = _rng(1)
    a, b = rng.integers(-9, 10, (4, 3)), rng.integers(-9, 10, (3, 5))
    got = matmul_loops(a, b)
    assert got.dtype == (a @ b).dtype
    assert np.array_equal(got, a @ b)


def test_matmul_loops_is_not_symmetric_in_its_arguments():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[0.0, 1.0], [1.0, 0.0]])  # swaps columns on the right, rows on the left
    assert np.array_equal(matmul_loops(a, b), [[2.0, 1.0], [4.0, 3.0]])
    assert np.array_equal(matmul_loops(b, a), [[3.0, 4.0], [1.0, 2.0]])


def test_matmul_loops_empty_inner_dimension_gives_zeros():
    got = matmul_loops(np.ones((2, 0)), np.ones((0, 3)))
    assert np.array_equal(got, np.zeros((2, 3)))  # an empty sum is 0, as with @


def test_matmul_loops_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"inner dimensions must match"):
        matmul_loops(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"2-D matrices.*v\[:, None\]"):
        matmul_loops(np.ones(3), np.ones((3, 2)))


# ----------------------------------------------------------------------------- project_onto

def test_projection_onto_a_line_is_the_closed_form():
    rng = _rng(2)
    u, v = rng.standard_normal(5), rng.standard_normal(5)
    p = project_onto(v, u)
    np.testing.assert_allclose(p, (u @ v) / (u @ u) * u, rtol=1e-12)
    assert abs(u @ (v - p)) < 1e-12  # the error is orthogonal to the line
    np.testing.assert_allclose(project_onto(v, 3.0 * u), p, rtol=1e-12)  # only the line counts


@pytest.mark.parametrize("n, k", [(3, 2), (6, 3), (10, 1), (4, 4)])
def test_projection_onto_columns_matches_qr(n, k):
    rng = _rng(n + k)
    a, v = rng.standard_normal((n, k)), rng.standard_normal(n)
    q, _ = np.linalg.qr(a)  # orthonormal basis of the same column space
    p = project_onto(v, a)
    np.testing.assert_allclose(p, q @ (q.T @ v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.T @ (v - p), 0.0, atol=1e-10)  # residual orthogonal to A
    np.testing.assert_allclose(project_onto(p, a), p, rtol=1e-10, atol=1e-12)  # P^2 = P


def test_projection_keeps_vectors_in_the_span_and_handles_many_at_once():
    rng = _rng(3)
    a = rng.standard_normal((6, 2))
    in_span = a @ np.array([2.0, -1.0])
    np.testing.assert_allclose(project_onto(in_span, a), in_span, rtol=1e-10)
    vs = rng.standard_normal((6, 4))  # four vectors as columns
    got = project_onto(vs, a)
    assert got.shape == (6, 4)
    for j in range(4):
        np.testing.assert_allclose(got[:, j], project_onto(vs[:, j], a), rtol=1e-12)


def test_projection_errors():
    with pytest.raises(ValueError, match="zero vector"):
        project_onto(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="linearly dependent"):
        project_onto(np.ones(3), np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="entries"):
        project_onto(np.ones(4), np.ones((3, 2)))


# ----------------------------------------------------------------------------- least squares

@pytest.mark.parametrize("m, n", [(5, 1), (10, 3), (50, 7), (4, 4)])
def test_least_squares_matches_lstsq(m, n):
    rng = _rng(m * n)
    a, b = rng.standard_normal((m, n)), rng.standard_normal(m)
    x = least_squares_normal_equations(a, b)
    expected = np.linalg.lstsq(a, b, rcond=None)[0]
    assert x.shape == (n,)
    np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.T @ (b - a @ x), 0.0, atol=1e-9)  # normal equations hold


def test_least_squares_many_right_hand_sides_and_exact_fit():
    rng = _rng(4)
    a = rng.standard_normal((8, 3))
    b = rng.standard_normal((8, 2))
    np.testing.assert_allclose(least_squares_normal_equations(a, b),
                               np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-9)
    x_true = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(least_squares_normal_equations(a, a @ x_true), x_true,
                               rtol=1e-10)


def test_least_squares_fits_a_line_through_known_points():
    t = np.array([0.0, 1.0, 2.0])
    a = np.stack([np.ones(3), t], axis=1)  # model b = c0 + c1 t
    # points (0, 6), (1, 0), (2, 0): the textbook answer is b = 5 - 3 t (Strang, 4.3)
    np.testing.assert_allclose(least_squares_normal_equations(a, np.array([6.0, 0.0, 0.0])),
                               [5.0, -3.0], rtol=1e-12)


def test_least_squares_rank_deficient_and_bad_shapes_are_clear_errors():
    rng = _rng(5)
    a = rng.standard_normal((6, 2))
    dependent = np.column_stack([a, a[:, 0] + a[:, 1]])  # rank 2, three columns
    with pytest.raises(ValueError, match=r"rank 2 < 3.*lstsq"):
        least_squares_normal_equations(dependent, np.ones(6))
    with pytest.raises(ValueError, match="underdetermined"):
        least_squares_normal_equations(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"\(6,\) or \(6, k\)"):
        least_squares_normal_equations(a, np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        least_squares_normal_equations(a, np.full(6, np.nan))


# ----------------------------------------------------------------------------- power iteration

@pytest.mark.parametrize("spectrum", [
    [5.0, 2.0, 1.0, 0.5],
    [-6.0, 3.0, 2.0, -1.0],        # dominant eigenvalue negative: v flips every step
    [10.0, 9.0, -8.5, 1.0, 0.1],   # small gap: slow, but converges
])
def test_power_iteration_matches_eigh(spectrum):
    a = _symmetric_with_spectrum(spectrum, seed=len(spectrum))
    lam, v = power_iteration(a, num_iters=5000)
    values, vectors = np.linalg.eigh(a)
    top = np.argmax(np.abs(values))
    assert lam == pytest.approx(values[top], rel=1e-9)
    assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(v, _align(v, vectors[:, top]), atol=1e-6)
    assert v[np.argmax(np.abs(v))] > 0, "sign convention: largest entry positive"


def test_power_iteration_nonsymmetric_matches_eig():
    a = np.array([[2.0, 1.0, 0.0], [0.5, 3.0, 1.0], [0.0, 0.2, 1.0]])
    values, vectors = np.linalg.eig(a)
    top = np.argmax(np.abs(values))
    lam, v = power_iteration(a)
    assert lam == pytest.approx(values[top].real, rel=1e-9)
    expected = vectors[:, top].real / np.linalg.norm(vectors[:, top].real)
    np.testing.assert_allclose(v, _align(v, expected), atol=1e-8)


def test_power_iteration_sign_is_deterministic_whatever_the_start():
    a = _symmetric_with_spectrum([4.0, 1.0, 0.5], seed=7)
    _, v1 = power_iteration(a, seed=1)
    _, v2 = power_iteration(a, v0=-np.ones(3))
    np.testing.assert_allclose(v1, v2, atol=1e-8)


def test_power_iteration_takes_exactly_num_iters_steps_when_tol_is_none():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    v0 = np.array([1.0, -2.0])
    for t in (1, 2, 3):
        lam, v = power_iteration(a, num_iters=t, tol=None, v0=v0)
        expected = np.linalg.matrix_power(a, t) @ v0  # A^t v0, normalised, sign-fixed
        expected = expected / np.linalg.norm(expected)
        np.testing.assert_allclose(v, _align(v, expected), rtol=1e-12)
        assert lam == pytest.approx(v @ a @ v, rel=1e-12)


def test_power_iteration_converges_at_the_predicted_rate():
    a = _symmetric_with_spectrum([2.0, 1.0, 0.25], seed=8)  # |lambda2 / lambda1| = 1/2
    q1 = np.linalg.eigh(a)[1][:, -1]
    errors = [1.0 - abs(power_iteration(a, num_iters=t, tol=None, seed=3)[1] @ q1)
              for t in (10, 20)]
    # 1 - cos(angle) ~ angle^2 / 2 shrinks like (1/2)^(2t): a factor 2^20 per 10 steps
    assert errors[1] / errors[0] == pytest.approx(0.5 ** 20, rel=0.05)
    lam, _ = power_iteration(a, num_iters=60, tol=None, seed=3)  # exactly 60 steps
    assert lam == pytest.approx(2.0, rel=1e-12)


def test_power_iteration_repeated_top_eigenvalue_finds_a_vector_in_the_eigenspace():
    a = _symmetric_with_spectrum([3.0, 3.0, 1.0], seed=9)
    lam, v = power_iteration(a)
    assert lam == pytest.approx(3.0, rel=1e-9)
    np.testing.assert_allclose(a @ v, 3.0 * v, atol=1e-8)


def test_power_iteration_zero_and_nilpotent_matrices_give_eigenvalue_zero():
    lam, v = power_iteration(np.zeros((3, 3)))
    assert lam == 0.0 and np.linalg.norm(v) == pytest.approx(1.0)
    lam, v = power_iteration(np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert lam == 0.0
    np.testing.assert_allclose(v, [1.0, 0.0])


def test_power_iteration_without_a_dominant_eigenvalue_raises():
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # eigenvalues +1 and -1: no single winner
    with pytest.raises(RuntimeError, match="did not converge"):
        power_iteration(swap, num_iters=200)
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues +i and -i
    with pytest.raises(RuntimeError, match="complex pair"):
        power_iteration(rotation, num_iters=200)


def test_power_iteration_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="square"):
        power_iteration(np.ones((2, 3)))
    with pytest.raises(ValueError, match="num_iters"):
        power_iteration(np.eye(2), num_iters=0)
    with pytest.raises(ValueError, match="zero vector"):
        power_iteration(np.eye(2), v0=np.zeros(2))
    with pytest.raises(ValueError, match=r"v0 must have shape \(2,\)"):
        power_iteration(np.eye(2), v0=np.ones(3))


# ----------------------------------------------------------------------------- pca_svd

def _correlated_data(n: int, d: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    mixing = rng.standard_normal((d, d)) * np.linspace(3.0, 0.1, d)  # unequal variances
    return rng.standard_normal((n, d)) @ mixing.T + 10.0 * rng.standard_normal(d)  # + offset


@pytest.mark.parametrize("n, d", [(200, 5), (50, 10), (8, 20)])  # includes n < d
def test_pca_matches_covariance_eigh(n, d):
    x = _correlated_data(n, d, seed=n + d)
    result = pca_svd(x)
    assert isinstance(result, PCA)
    components, variance, mean = result
    r = min(n, d)
    assert components.shape == (r, d) and variance.shape == (r,) and mean.shape == (d,)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)

    eigvals, eigvecs = np.linalg.eigh(np.cov(x, rowvar=False))  # ascending; ddof = 1
    eigvals, eigvecs = eigvals[::-1][:r], eigvecs[:, ::-1][:, :r].T  # (r,), (r, d)
    np.testing.assert_allclose(variance, eigvals, rtol=1e-9, atol=1e-9 * eigvals[0])
    assert np.all(np.diff(variance) <= 1e-12), "components come by decreasing variance"
    np.testing.assert_allclose(components @ components.T, np.eye(r), atol=1e-10)
    distinct = r - 1 if n <= d else r  # centring leaves n - 1 directions when n <= d
    np.testing.assert_allclose(components[:distinct], _align(components, eigvecs)[:distinct],
                               atol=1e-7)
    big = np.argmax(np.abs(components), axis=1)
    assert np.all(components[np.arange(r), big] > 0), "sign convention: largest entry > 0"


def test_pca_total_variance_and_reconstruction_error_closed_forms():
    x = _correlated_data(300, 6, seed=11)
    components, variance, mean = pca_svd(x)
    total = np.var(x, axis=0, ddof=1).sum()
    assert variance.sum() == pytest.approx(total, rel=1e-10)  # nothing is lost with all r
    for k in (1, 3, 6):
        c_k, v_k, _ = pca_svd(x, k=k)
        np.testing.assert_allclose(c_k, components[:k], atol=1e-12)
        np.testing.assert_allclose(v_k, variance[:k], rtol=1e-12)
        z = (x - mean) @ c_k.T         # (n, k)
        x_hat = mean + z @ c_k         # (n, d)
        error = np.sum((x - x_hat) ** 2) / (len(x) - 1)
        # Eckart-Young: the error left is the variance of the components dropped
        assert error == pytest.approx(variance[k:].sum(), rel=1e-8, abs=1e-9)


def test_pca_of_a_known_ellipse():
    rng = _rng(12)
    angle = np.pi / 6
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    x = (rng.standard_normal((20_000, 2)) * [3.0, 0.5]) @ rotation.T + [1.0, -2.0]
    components, variance, mean = pca_svd(x)
    np.testing.assert_allclose(variance, [9.0, 0.25], rtol=0.05)
    np.testing.assert_allclose(mean, [1.0, -2.0], atol=0.1)
    np.testing.assert_allclose(components[0], rotation[:, 0], atol=0.01)  # both entries > 0


def test_pca_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        pca_svd(np.ones(5))
    with pytest.raises(ValueError, match="at least 2 samples"):
        pca_svd(np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"1\.\.3"):
        pca_svd(np.ones((3, 5)), k=4)
    with pytest.raises(ValueError, match=r"1\.\.3"):
        pca_svd(np.ones((3, 5)), k=0)
    with pytest.raises(ValueError, match="NaN"):
        pca_svd(np.array([[1.0, np.nan], [2.0, 3.0]]))


# ----------------------------------------------------------------------------- exercise checks
# The checks of solutions/01_linear_algebra pass on the reference and fail, naming the
# mistake, on the usual wrong answers (tests/test_exercise_checks.py covers the stubs).


def _matmul_with_at(a, b):
    return a @ b


def _matmul_transposed(a, b):
    return matmul_loops(b.T, a.T)  # (A B)^T


def test_check_matmul_loops_accepts_loops_and_rejects_shortcuts_and_transposes():
    assert check_matmul_loops(matmul_loops) is True
    with pytest.raises(CheckFailed, match="calls @"):
        check_matmul_loops(_matmul_with_at)
    with pytest.raises(CheckFailed, match="transposed"):
        check_matmul_loops(_matmul_transposed)


def _power(a, num_iters=500):
    return power_iteration(a, num_iters=num_iters)


def test_check_power_iteration_accepts_the_reference_and_names_mistakes():
    assert check_power_iteration(_power) is True
    with pytest.raises(CheckFailed, match="lost its sign"):
        check_power_iteration(lambda a, num_iters: (abs(_power(a)[0]), _power(a)[1]))
    with pytest.raises(CheckFailed, match="has norm 2"):
        check_power_iteration(lambda a, num_iters: (_power(a)[0], 2.0 * _power(a)[1]))
    with pytest.raises(CheckFailed, match="not implemented"):
        check_power_iteration(_stub)


def _stub(*args, **kwargs):
    raise NotImplementedError()


def _pca_variant(*, centre=True, ddof=1, singular_values=False, transpose=False):
    def pca(x, k):
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean if centre else x, full_matrices=False)
        variance = s[:k] if singular_values else s[:k] ** 2 / (len(x) - ddof)
        return (vt[:k].T if transpose else vt[:k]), variance, mean
    return pca


def test_check_pca_svd_accepts_the_reference_and_names_mistakes():
    assert check_pca_svd(pca_svd) is True
    assert check_pca_svd(_pca_variant()) is True  # raw SVD signs: compared up to sign
    for mistake, message in [(dict(centre=False), "did not centre"),
                             (dict(ddof=0), "not by n"),
                             (dict(singular_values=True), "singular values"),
                             (dict(transpose=True), "ROWS")]:
        with pytest.raises(CheckFailed, match=message):
            check_pca_svd(_pca_variant(**mistake))
