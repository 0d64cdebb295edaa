"""Checks for stage 02, calculus and a scalar autograd engine (solutions/02_calculus_autograd).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.calculus`` / ``slm_course.autograd`` (or a closed form), and prints one ✓ line
or raises :class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from slm_course.autograd import Value, topological_order
from slm_course.calculus import central_difference
from slm_course.exercises.checking import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fail,
    passed,
)

_DEEP_HINT = ("a recursive search hits Python's recursion limit on a long chain; keep your "
              "own stack (a list you append to and pop from) instead of calling yourself")


def check_central_difference(fn: Callable[..., Any]) -> bool:
    """Check ``fn(f, x, h) -> float``: (f(x + h) - f(x - h)) / (2h)."""
    name = "check_central_difference"
    cases = [  # (f, x, h, what the case is about)
        (math.sin, 1.0, 1e-3, "sin at x = 1"),
        (math.exp, 0.5, 1e-2, "exp at x = 0.5 with a large step h = 0.01"),
        (lambda x: x**3, -2.0, 1e-4, "x^3 at x = -2"),
        (abs, 0.0, 1e-3, "|x| at its kink x = 0 (the symmetric difference gives 0)"),
    ]
    for f, x, h, about in cases:
        got = call_learner(name, fn, f, x, h)
        expect_close(name, got, central_difference(f, x, h), what=f"the estimate for {about}",
                     rtol=1e-9, atol=1e-12,
                     hint="evaluate f on both sides, at x + h and at x - h, and divide the "
                          "difference by the distance between them, 2h (a forward "
                          "difference (f(x + h) - f(x)) / h is less accurate)")
    return passed(name, f"{len(cases)} cases, including a kink")


def _pair(name: str, got: Any, about: str) -> tuple[float, float]:
    expect(name, isinstance(got, (tuple, list)) and len(got) == 2,
           f"{about}: expected a pair (grad_a, grad_b)", got=got,
           hint="end with `return grad_a, grad_b`")
    return got[0], got[1]


def check_mul_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(a, b, grad_out) -> (grad_a, grad_b)`` for out = a * b."""
    name = "check_mul_backward"
    cases = [  # (a, b, grad_out, what the case is about)
        (2.0, -3.0, 1.0, "a = 2, b = -3, grad_out = 1"),
        (0.5, 4.0, -2.0, "grad_out = -2"),
        (0.0, 5.0, 3.0, "a = 0"),
        (1.5, 1.5, 2.0, "a == b"),
    ]
    for a, b, g, about in cases:
        got_a, got_b = _pair(name, call_learner(name, fn, a, b, g), about)
        hint = ("d(ab)/da = b and d(ab)/db = a: each input's gradient is the *other* input, "
                "times grad_out")
        expect_close(name, got_a, b * g, what=f"grad_a for {about}", hint=hint)
        expect_close(name, got_b, a * g, what=f"grad_b for {about}", hint=hint)
    return passed(name, f"{len(cases)} cases, including grad_out != 1")


def check_pow_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, n, grad_out) -> grad_x`` for out = x ** n with a fixed number n."""
    name = "check_pow_backward"
    cases = [  # (x, n, grad_out, what the case is about)
        (3.0, 2, 1.0, "x^2 at x = 3"),
        (2.0, 3, 0.5, "x^3 with grad_out = 0.5"),
        (4.0, 0.5, 1.0, "sqrt(x) at x = 4"),
        (2.0, -1, 1.0, "1/x at x = 2"),
        (-2.0, 3, 1.0, "x^3 at a negative x"),
        (5.0, 0, 2.0, "x^0 (a constant)"),
    ]
    for x, n, g, about in cases:
        got = call_learner(name, fn, x, n, g)
        expect_close(name, got, n * x ** (n - 1) * g, what=f"grad_x for {about}",
                     hint="the power rule: d(x^n)/dx = n * x^(n - 1), then times grad_out")
    return passed(name, f"{len(cases)} cases: whole, fractional, negative and zero powers")


def check_tanh_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(t, grad_out) -> grad_x`` for t = tanh(x), given the output t."""
    name = "check_tanh_backward"
    cases = [  # (x, grad_out, what the case is about)
        (0.5, 1.0, "x = 0.5"),
        (0.0, -3.0, "x = 0, where the slope is 1"),
        (-1.2, 2.0, "x = -1.2, grad_out = 2"),
        (6.0, 1.0, "a saturated unit, x = 6"),
    ]
    for x, g, about in cases:
        t = math.tanh(x)
        got = call_learner(name, fn, t, g)
        expect_close(name, got, (1 - t * t) * g, what=f"grad_x for {about}",
                     hint="you are given t = tanh(x), not x: the slope is 1 - t**2 (do not "
                          "apply tanh again), then multiply by grad_out")
    return passed(name, f"{len(cases)} cases, including saturation")


def check_exp_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(out, grad_out) -> grad_x`` for out = exp(x), given the output."""
    name = "check_exp_backward"
    cases = [(0.0, 1.0, "x = 0"), (1.5, -0.5, "x = 1.5, grad_out = -0.5"),
             (-3.0, 2.0, "x = -3")]
    for x, g, about in cases:
        out = math.exp(x)
        got = call_learner(name, fn, out, g)
        expect_close(name, got, out * g, what=f"grad_x for {about}",
                     hint="d(e^x)/dx = e^x, which is `out` itself: no need to call exp "
                          "(you are not even given x); then multiply by grad_out")
    return passed(name, f"{len(cases)} cases")


def _graphs() -> list[tuple[str, Value]]:
    """Small graphs with the features that trip a topological sort up."""
    lone = Value(2.0)
    a, b = Value(1.5), Value(-0.5)
    chain = ((a * b).tanh() + 1.0).exp()
    p = Value(0.7)
    q, r = p.tanh(), p.exp()
    diamond = q * r + p  # p is read three times, q and r once
    x = Value(0.3)
    y = x * x
    reuse = (y + y) * y - x  # y is read three times
    return [("a single leaf", lone), ("a chain", chain), ("a diamond", diamond),
            ("a node used three times", reuse)]


def _deep_chain(length: int) -> tuple[Value, Value]:
    x = Value(1.0)
    y = x
    for _ in range(length):
        y = y * 1.0
    return x, y


def _call_deep(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return call_learner(name, fn, *args)
    except CheckFailed as err:
        if isinstance(err.__cause__, RecursionError):
            raise fail(name, "a chain of thousands of nodes raised RecursionError",
                       hint=_DEEP_HINT) from None
        raise


def check_topological_order(fn: Callable[..., Any]) -> bool:
    """Check ``fn(root) -> list[Value]``: every node of the graph once, each after its inputs."""
    name = "check_topological_order"
    depth = 4 * sys.getrecursionlimit()
    _, deep = _deep_chain(depth)
    for about, root in [*_graphs(), (f"a chain of {depth} multiplications", deep)]:
        got = _call_deep(name, fn, root)
        expect(name, isinstance(got, list) and all(isinstance(v, Value) for v in got),
               f"{about}: expected a list of Values", got=type(got).__name__,
               hint="collect the nodes in a list and return it")
        want = topological_order(root)
        ids = [id(v) for v in got]
        expect(name, len(set(ids)) == len(ids), f"{about}: a node is listed more than once",
               hint="remember which nodes you have visited (a set of id(node)) and skip them "
                    "the second time you reach them")
        expect(name, set(ids) == {id(v) for v in want},
               f"{about}: the list has {len(got)} nodes, the graph has {len(want)}",
               hint="visit every input of every node, all the way down to the leaves, and "
                    "include the root itself")
        position = {i: k for k, i in enumerate(ids)}
        late = [v for v in got if any(position[id(c)] > position[id(v)] for c in v.inputs)]
        expect(name, not late, f"{about}: {len(late)} node(s) come before one of their inputs",
               got=late[:3], hint="append a node only after all of its inputs have been "
                                  "appended (post-order), so the root comes last")
    return passed(name, f"{len(_graphs()) + 1} graphs, including reuse and a chain of {depth}")


def check_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(root) -> None``: fills ``grad`` of every node with d(root)/d(node)."""
    name = "check_backward"
    depth = 4 * sys.getrecursionlimit()
    cases = [(about, root, g) for (about, root), (_, g) in zip(_graphs(), _graphs(), strict=True)]
    (_, deep), (_, deep_twin) = _deep_chain(depth), _deep_chain(depth)
    cases.append((f"a chain of {depth} multiplications", deep, deep_twin))
    for about, root, twin in cases:
        _call_deep(name, fn, root)
        twin.backward()  # the reference, on an identical copy of the graph
        got = [v.grad for v in topological_order(root)]
        want = [v.grad for v in topological_order(twin)]
        expect_close(name, got[-1], 1.0, what=f"root.grad for {about}",
                     hint="start with root.grad = 1.0: d(root)/d(root) = 1")
        expect_close(name, got, want, what=f"every node's grad in {about}",
                     hint="visit the nodes from the root back to the leaves (the reversed "
                          "topological order) and call node._backward(node.grad) on each, so "
                          "that a node passes its gradient on only once it is complete")
    return passed(name, f"{len(cases)} graphs, including reuse and a chain of {depth}")
