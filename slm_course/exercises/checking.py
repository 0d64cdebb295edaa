"""The building blocks of every exercise check.

A check calls the learner's function on a few cases, compares with the reference answer and
either prints one ``✓`` line or raises :class:`CheckFailed` with a message that says what was
expected, what came back, and a hint. It never shows the reference code itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_NOT_GIVEN = object()
PASS_MARK = "✓"
FAIL_MARK = "✗"


class CheckFailed(AssertionError):
    """An exercise check did not pass. The message is written for the learner."""


def fail(check: str, problem: str, *, expected: Any = _NOT_GIVEN, got: Any = _NOT_GIVEN,
         hint: str = "") -> CheckFailed:
    """Build (not raise) a :class:`CheckFailed` with a uniform, readable message."""
    lines = [f"{FAIL_MARK} {check}: {problem}"]
    if expected is not _NOT_GIVEN:
        lines.append(f"  expected: {_short(expected)}")
    if got is not _NOT_GIVEN:
        lines.append(f"  got:      {_short(got)}")
    if hint:
        lines.append(f"  hint: {hint}")
    return CheckFailed("\n".join(lines))


def call_learner(check: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; turn a stub or a crash into a helpful :class:`CheckFailed`."""
    if not callable(fn):
        raise fail(check, f"expected a function, got {type(fn).__name__}",
                   hint="pass the function itself, e.g. check(my_fn), not my_fn().")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise fail(check, "not implemented yet",
                   hint="replace `# YOUR CODE HERE` and `raise NotImplementedError()` "
                        "with your code, re-run that cell, then this one.") from None
    except Exception as err:  # the learner's bug, reported with its type and message
        raise fail(check, f"your function raised {type(err).__name__}: {err}",
                   hint="run your function on a small input by hand and read the traceback "
                        "(the full traceback is chained below).") from err


def expect_close(check: str, got: Any, expected: Any, *, what: str = "result",
                 rtol: float = 1e-5, atol: float = 1e-8, hint: str = "") -> None:
    """Raise :class:`CheckFailed` unless ``got`` matches ``expected`` in shape and value."""
    got_arr = _as_array(got)
    exp_arr = _as_array(expected)
    if got_arr is None:
        raise fail(check, f"{what} is {type(got).__name__}, expected an array or number",
                   expected=expected, got=got, hint=hint)
    if got_arr.shape != exp_arr.shape:
        raise fail(check, f"{what} has shape {got_arr.shape}, expected {exp_arr.shape}",
                   hint=hint or "check which axis you sum over and whether you transposed.")
    if not np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol, equal_nan=False):
        worst = float(np.max(np.abs(got_arr - exp_arr)))
        raise fail(check, f"{what} is wrong (largest difference {worst:.3g})",
                   expected=exp_arr, got=got_arr, hint=hint)


def expect(check: str, condition: bool, problem: str, *, expected: Any = _NOT_GIVEN,
           got: Any = _NOT_GIVEN, hint: str = "") -> None:
    """Raise :class:`CheckFailed` with ``problem`` unless ``condition`` holds."""
    if not condition:
        raise fail(check, problem, expected=expected, got=got, hint=hint)


def as_array(check: str, value: Any, what: str = "result") -> np.ndarray:
    """Return the learner's ``value`` as a float64 array, or fail saying what came back."""
    arr = _as_array(value)
    if arr is None:
        raise fail(check, f"{what} is a {type(value).__name__}, expected numbers",
                   hint="return a NumPy array (or a float), not None or text.")
    return arr


def passed(check: str, detail: str = "") -> bool:
    """Print the pass line and return True (so a grader can count it)."""
    print(f"{PASS_MARK} {check} passed" + (f": {detail}" if detail else ""))
    return True


def _as_array(value: Any) -> np.ndarray | None:
    if value is None:  # np.asarray(None, float) would be nan, hiding a missing `return`
        return None
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _short(value: Any, limit: int = 300) -> str:
    arr = _as_array(value)
    if arr is None:
        text = repr(value)
    elif arr.ndim == 0:
        text = f"{float(arr):.6g}"
    else:
        text = np.array2string(arr, precision=4, threshold=20, edgeitems=3)
    return text if len(text) <= limit else text[: limit - 3] + "..."
