"""Derivatives by finite differences: the oracle that analytic gradients are checked against.

    forward difference:  f'(x) ~ (f(x + h) - f(x)) / h            error ~ h/2 |f''|   + eps/h
    central difference:  f'(x) ~ (f(x + h) - f(x - h)) / (2h)     error ~ h^2/6 |f'''| + eps/h

The first term (truncation) comes from the Taylor series and shrinks with h; the second
(round-off) is float64's relative precision eps ~ 2.2e-16 divided by h and grows as h
shrinks. For central differences the sum is smallest near h ~ eps^(1/3) ~ 1e-5.

Stage 02: calculus and autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # 2.22e-16: the gap between 1.0 and the next float64


def _check_step(h: float) -> None:
    if not h > 0:
        raise ValueError(f"the step h must be a positive number, got {h!r}; "
                         f"1e-5 is a good default for central differences in float64")


def forward_difference(f: Callable[[float], float], x: float, h: float = 1e-5) -> float:
    """f'(x) ~ (f(x + h) - f(x)) / h, accurate to O(h)."""
    _check_step(h)
    return (f(x + h) - f(x)) / h


def central_difference(f: Callable[[float], float], x: float, h: float = 1e-5) -> float:
    """f'(x) ~ (f(x + h) - f(x - h)) / (2h), accurate to O(h^2)."""
    _check_step(h)
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
                       ) -> np.ndarray:
    """The gradient of a scalar function of an array, one central difference per entry.

        (grad f)_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)

    ``x`` may have any shape; the result has the same shape. ``x`` itself is not modified.
    It costs 2 * x.size evaluations of ``f``: fine for checking, far too slow for training.
    """
    _check_step(h)
    x = np.array(x, dtype=np.float64)  # a private copy we are free to nudge
    grad = np.zeros_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)  # views: writes go to x and grad
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        f_plus = float(f(x))
        flat[i] = saved - h
        f_minus = float(f(x))
        flat[i] = saved
        grad_flat[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray | float, b: np.ndarray | float) -> float:
    """||a - b|| / (||a|| + ||b||): 0 when equal, 1 when opposite, blind to scale; 0 if both are 0.

    The gradient-check score: in float64 a right gradient scores below about 1e-8, a wrong one
    1e-2 or more. Norms (not the worst entry) keep entries that are 0 in both from counting.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}; "
                         f"compare gradients of the same tensor")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def gradient_check(f: Callable[[np.ndarray], float], x: np.ndarray, analytic: np.ndarray,
                   h: float = 1e-5) -> float:
    """relative_error(analytic, numerical_gradient(f, x, h)): how far a claimed gradient is off."""
    return relative_error(analytic, numerical_gradient(f, x, h))
