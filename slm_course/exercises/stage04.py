"""Checks for stage 04, optimization (solutions/04_optimization).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.optim`` (itself tested against ``torch.optim``), and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slm_course.exercises.checking import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fail,
    passed,
)
from slm_course.optim import adam_update, warmup_cosine_lr


def check_adam_update(fn: Callable[..., Any]) -> bool:
    """Check ``fn(param, grad, m, v, t, lr, beta1, beta2, eps) -> (param, m, v)``, one Adam step."""
    name = "check_adam_update"
    rng = np.random.default_rng(4)
    moments = "m = beta1 * m + (1 - beta1) * grad and v = beta2 * v + (1 - beta2) * grad**2"
    cases = [  # (what the case is about, param, grad, m, v, t, hyperparameters, hint)
        ("the first step (t = 1, m = v = 0)", rng.standard_normal(4),
         np.array([0.5, -2.0, 1e-3, 30.0]), np.zeros(4), np.zeros(4), 1,
         dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8),
         "with bias correction the first step moves every coordinate by lr * sign(grad): "
         "divide m by (1 - beta1**t) and v by (1 - beta2**t), with t = 1 on the first step"),
        ("step t = 7 with non-zero moments, shape (2, 3)", rng.standard_normal((2, 3)),
         rng.standard_normal((2, 3)), 0.1 * rng.standard_normal((2, 3)),
         0.1 * rng.random((2, 3)), 7, dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8),
         f"{moments}; the bias correction uses this step's t (not t - 1), and the update is "
         "param - lr * m_hat / (sqrt(v_hat) + eps)"),
        ("a large eps (1e-2) and small gradients", rng.standard_normal(3),
         np.array([1e-3, -2e-3, 0.0]), np.zeros(3), np.zeros(3), 3,
         dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-2),
         "eps is added after the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps); a "
         "zero gradient with m = 0 must not move the parameter"),
    ]
    for about, param, grad, m, v, t, hp, hint in cases:
        given = [param.copy(), grad.copy(), m.copy(), v.copy()]
        want = adam_update(param, grad, m, v, t, **hp)
        got = call_learner(name, fn, *given, t, **hp)
        expect(name, isinstance(got, (tuple, list)) and len(got) == 3,
               f"{about}: expected a triple (param, m, v)", got=got,
               hint="end with `return param, m, v` (the new values of all three)")
        if _close(got[1], want[2]) and _close(got[2], want[1]):
            raise fail(name, f"{about}: m and v come back swapped",
                       hint="return the triple in the order (param, m, v)")
        mistake = _adam_mistake(got[0], param, grad, m, v, t, **hp)  # a known slip, if any
        for what, got_part, want_part in zip(("param", "m", "v"), got, want, strict=True):
            expect_close(name, got_part, want_part, what=f"the new {what} for {about}",
                         rtol=1e-7, atol=1e-12,
                         hint=(mistake if what == "param" else None) or hint)
        for what, after, before in zip(("param", "grad", "m", "v"), given,
                                       (param, grad, m, v), strict=True):
            expect(name, np.array_equal(after, before),
                   f"{about}: your function changed the {what} array it was given",
                   hint="build new arrays (m = beta1 * m + ...) instead of updating in place "
                        "(m *= beta1), and return them")
    return passed(name, f"{len(cases)} cases, including the first step and a large eps")


def _close(a: Any, b: np.ndarray) -> bool:
    try:
        return bool(np.allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-7, atol=1e-12))
    except (TypeError, ValueError):
        return False


def _adam_mistake(got: Any, param: np.ndarray, grad: np.ndarray, m: np.ndarray,
                  v: np.ndarray, t: int, *, lr: float, beta1: float, beta2: float,
                  eps: float) -> str | None:
    """Name the classic mistake whose result equals ``got``, if one does."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    variants = {  # hint -> (m_hat, v_hat, eps inside the square root?)
        "you left out the bias correction: divide m by (1 - beta1**t) and v by "
        "(1 - beta2**t) before the step": (m, v, False),
        "the bias correction uses t + 1; use this step's t (1 on the first step)":
            (m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1)), False),
        "eps goes outside the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps)":
            (m / (1 - beta1**t), v / (1 - beta2**t), True),
        "the step uses the raw gradient; use the corrected first moment m_hat":
            (grad, v / (1 - beta2**t), False),
    }
    if t > 1:
        variants["the bias correction uses t - 1; use this step's t"] = (
            m / (1 - beta1 ** (t - 1)), v / (1 - beta2 ** (t - 1)), False)
    for hint, (m_hat, v_hat, inside) in variants.items():
        denominator = np.sqrt(v_hat + eps) if inside else np.sqrt(v_hat) + eps
        if _close(got, param - lr * m_hat / denominator):
            return hint
    return None


def check_warmup_cosine_lr(fn: Callable[..., Any]) -> bool:
    """Check ``fn(step, max_lr, min_lr, warmup_steps, max_steps) -> lr`` at telling steps."""
    name = "check_warmup_cosine_lr"
    configs = [  # (hyperparameters, steps that show each part of the schedule)
        (dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110),
         [0, 1, 5, 9, 10, 11, 35, 60, 85, 109, 110, 111, 1000]),
        (dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=0, max_steps=50), [0, 1, 25, 49, 50, 80]),
        (dict(max_lr=3e-3, min_lr=0.0, warmup_steps=4, max_steps=4), [0, 3, 4, 9]),
    ]
    checked = 0
    for hp, steps in configs:
        for step in steps:
            got = call_learner(name, fn, step, **hp)
            want = warmup_cosine_lr(step, **hp)
            expect_close(name, got, want, what=f"lr at step {step} with {_fmt(hp)}",
                         rtol=1e-9, atol=1e-15, hint=_schedule_hint(step, **hp))
            checked += 1
    for bad, why in [(dict(max_lr=1.0, min_lr=0.1, warmup_steps=20, max_steps=10),
                      "warmup_steps > max_steps"),
                     (dict(max_lr=0.1, min_lr=1.0, warmup_steps=2, max_steps=10),
                      "min_lr > max_lr")]:
        try:
            fn(0, **bad)
        except ValueError:
            continue
        except Exception as err:
            raise fail(name, f"with {why} your function raised {type(err).__name__}: {err}",
                       hint="raise ValueError(...) with a message that says what to change"
                       ) from err
        raise fail(name, f"with {why} ({_fmt(bad)}) your function returned instead of "
                         "raising ValueError",
                   hint="check the arguments first: if warmup_steps > max_steps or "
                        "min_lr > max_lr: raise ValueError('...')")
    return passed(name, f"{checked} steps in 3 schedules (incl. no warm-up), 2 bad arguments")


def _schedule_hint(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
                   max_steps: int) -> str:
    if step < warmup_steps:
        return ("during warm-up lr = max_lr * (step + 1) / warmup_steps: step 0 already uses "
                "max_lr / warmup_steps, and step warmup_steps - 1 reaches max_lr")
    if step >= max_steps:
        return "from max_steps on, return min_lr"
    return ("after warm-up, progress = (step - warmup_steps) / (max_steps - warmup_steps) goes "
            "from 0 to 1 and lr = min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2; "
            "it equals max_lr at step = warmup_steps")


def _fmt(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in hp.items())


# ---------------------------------------------------------------- the open challenge

#: the open challenge: reach f <= this on Rosenbrock's function from (-1.2, 1) with at most
#: CHALLENGE_BUDGET gradient evaluations (plain Adam at the lesson's lr 2e-2 gets to ~1e-3)
CHALLENGE_TARGET = 1e-8
CHALLENGE_BUDGET = 2000


class _BudgetSpent(Exception):
    """Raised by the challenge's gradient when the learner asks for one too many."""


def _rosenbrock(p: np.ndarray) -> float:
    return float((1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2)


def check_rosenbrock_challenge(minimize: Callable[..., Any], target: float | None = None,
                               budget: int | None = None) -> float:
    """The open challenge: ``minimize(grad, x0) -> x`` must bring Rosenbrock's function
    f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 from x0 = (-1.2, 1) to f <= 1e-8 (the minimum is
    0 at (1, 1)) calling ``grad`` at most 2,000 times. Any method goes."""
    name = "check_rosenbrock_challenge"
    target = CHALLENGE_TARGET if target is None else target
    budget = CHALLENGE_BUDGET if budget is None else budget
    calls = 0

    def grad(p: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls > budget:
            raise _BudgetSpent
        x, y = np.asarray(p, dtype=np.float64)
        return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])

    try:
        got = call_learner(name, minimize, grad, np.array([-1.2, 1.0]))
    except CheckFailed as err:
        if isinstance(err.__cause__, _BudgetSpent):
            raise fail(name, f"your minimize asked for more than {budget} gradients",
                       hint="stop after the budget: a loop of at most 2,000 steps, one "
                            "gradient each") from None
        raise
    point = np.asarray(got, dtype=np.float64) if got is not None else None
    expect(name, point is not None and point.shape == (2,) and bool(np.isfinite(point).all()),
           "minimize must return the final point, two finite numbers", got=got,
           hint="return p; if it is nan or inf the steps were too large (lower lr)")
    value = _rosenbrock(point)
    expect(name, value <= target, f"f = {value:.3g} at {point.round(6)} after {calls} "
           f"gradients; the target is f <= {target:g}", expected=f"<= {target:g}",
           got=f"{value:.3g}",
           hint="Adam with a shorter memory of squared gradients (beta2 = 0.99) and a "
                "learning rate that decays to 0 (your warmup_cosine_lr), or Nesterov "
                "momentum with a small step; the valley is long and curved")
    passed(name, f"f = {value:.2g} with {calls} gradients (target {target:g} within {budget})")
    return value
