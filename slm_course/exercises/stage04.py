"""Checks for stage 04, optimization (solutions/04_optimization).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.optim`` (itself tested against ``torch.optim``), and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slm_course.exercises.checking import call_learner, expect, expect_close, fail, passed
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
