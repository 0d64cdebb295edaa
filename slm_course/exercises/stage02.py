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


def _value_op_case(name: str, fn: Callable[..., Any], reference: Callable[..., Value],
                   inputs: list[float], extra: tuple, about: str, hint: str) -> None:
    """Run the learner's operation on fresh leaves inside a small graph, let the engine's
    ``backward`` call the learner's closure, and compare the forward value and every leaf's
    gradient with the reference operation (and the graph around it)."""
    leaves = [Value(v) for v in inputs]
    twins = [Value(v) for v in inputs]
    out = call_learner(name, fn, *leaves, *extra)
    expect(name, isinstance(out, Value), f"{about}: return a new Value", got=type(out).__name__,
           hint="out = Value(forward value, (inputs...), 'op'); ...; return out")
    want = reference(*twins, *extra)
    expect_close(name, out.data, want.data, what=f"the forward value for {about}",
                 rtol=1e-9, atol=1e-12, hint="compute the operation on the inputs' .data")
    expect(name, all(any(v is leaf for v in out.inputs) for leaf in leaves),
           f"{about}: out.inputs must list the Values it was computed from",
           got=out.inputs, hint="pass them as the second argument: Value(data, (a, b), '*')")
    # a graph around the operation: the gradient that reaches `out` is not 1
    root = (out * -1.5 + out * out) if out.data < 5 else out * 0.25
    twin_root = (want * -1.5 + want * want) if want.data < 5 else want * 0.25
    root.backward()
    twin_root.backward()
    for k, (leaf, twin) in enumerate(zip(leaves, twins, strict=True)):
        expect_close(name, leaf.grad, twin.grad, what=f"the gradient of input {k} for {about}",
                     rtol=1e-7, atol=1e-10, hint=hint)


def _check_value_ops(name: str, ops: list[tuple[str, Callable, Callable, list, str]]) -> int:
    count = 0
    for op_name, fn, reference, cases, hint in ops:
        for inputs, extra, about in cases:
            _value_op_case(name, fn, reference, inputs, extra, f"{op_name}, {about}", hint)
            count += 1
    return count


_CLOSURE_HINT = ("inside _backward(grad), add (+=, never =) to each input's .grad its local "
                 "derivative times grad, the gradient that reached out")


def check_value_add_mul(add: Callable[..., Any], mul: Callable[..., Any]) -> bool:
    """Check ``add(a, b)`` and ``mul(a, b)``: new Values whose ``_backward(grad)`` closures
    pass ``grad`` (add) and ``b * grad``, ``a * grad`` (mul) back to the inputs."""
    name = "check_value_add_mul"
    same = Value(1.5)
    n = _check_value_ops(name, [
        ("add", add, lambda a, b: a + b, [([2.0, -3.0], (), "a = 2, b = -3"),
                                          ([0.5, 0.25], (), "a = 0.5, b = 0.25")],
         "d(a + b)/da = d(a + b)/db = 1: both inputs get grad. " + _CLOSURE_HINT),
        ("mul", mul, lambda a, b: a * b, [([2.0, -3.0], (), "a = 2, b = -3"),
                                          ([0.0, 5.0], (), "a = 0"),
                                          ([-1.2, 0.7], (), "a = -1.2, b = 0.7")],
         "d(ab)/da = b and d(ab)/db = a: each input gets the *other* input's value times "
         "grad. " + _CLOSURE_HINT),
    ])
    for op, fn, want in (("add", add, 2.0), ("mul", mul, 2 * same.data)):
        same.grad = 0.0
        out = call_learner(name, fn, same, same)
        expect(name, isinstance(out, Value), f"{op}(a, a): return a new Value",
               got=type(out).__name__)
        out.backward()
        expect_close(name, same.grad, want, what=f"the gradient of a in {op}(a, a)",
                     hint="when both inputs are the same Value, both contributions must "
                          "count: use +=, not =")
    return passed(name, f"{n} cases and the same Value used twice")


def check_value_pow(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, n)`` for x ** n with a fixed number n: slope n * x ** (n - 1)."""
    name = "check_value_pow"
    n = _check_value_ops(name, [
        ("power", fn, lambda x, k: x**k, [([3.0], (2,), "x^2 at x = 3"),
                                          ([4.0], (0.5,), "sqrt(x) at x = 4"),
                                          ([2.0], (-1,), "1/x at x = 2"),
                                          ([-2.0], (3,), "x^3 at x = -2")],
         "the power rule: d(x^n)/dx = n * x^(n - 1), times grad. " + _CLOSURE_HINT),
    ])
    return passed(name, f"{n} cases: whole, fractional and negative powers")


def check_value_tanh_relu(tanh: Callable[..., Any], relu: Callable[..., Any]) -> bool:
    """Check ``tanh(x)`` (slope 1 - tanh^2) and ``relu(x)`` (slope 1 for x > 0, else 0)."""
    name = "check_value_tanh_relu"
    n = _check_value_ops(name, [
        ("tanh", tanh, Value.tanh, [([0.5], (), "x = 0.5"), ([0.0], (), "x = 0"),
                                    ([-1.2], (), "x = -1.2"), ([6.0], (), "x = 6, saturated")],
         "d tanh(x)/dx = 1 - tanh(x)^2: keep t = math.tanh(x) from the forward pass and use "
         "1 - t*t. " + _CLOSURE_HINT),
        ("relu", relu, Value.relu, [([2.0], (), "x = 2"), ([-0.5], (), "x = -0.5"),
                                    ([0.0], (), "x = 0 (slope 0 at the kink, as PyTorch)")],
         "relu passes grad where x > 0 and nothing elsewhere (x = 0 included). "
         + _CLOSURE_HINT),
    ])
    return passed(name, f"{n} cases, including saturation and relu's kink")


def check_value_exp_log(exp: Callable[..., Any], log: Callable[..., Any]) -> bool:
    """Check ``exp(x)`` (slope e^x, the output itself) and ``log(x)`` (slope 1/x)."""
    name = "check_value_exp_log"
    n = _check_value_ops(name, [
        ("exp", exp, Value.exp, [([0.0], (), "x = 0"), ([1.5], (), "x = 1.5"),
                                 ([-3.0], (), "x = -3")],
         "d e^x/dx = e^x, the forward output itself. " + _CLOSURE_HINT),
        ("log", log, Value.log, [([1.0], (), "x = 1"), ([0.2], (), "x = 0.2"),
                                 ([7.5], (), "x = 7.5")],
         "d ln(x)/dx = 1/x. " + _CLOSURE_HINT),
    ])
    return passed(name, f"{n} cases")


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


# ---------------------------------------------------------------- the two-moons MLP

#: the open challenge: accuracy of the learner's Value MLP on 1,000 fresh two-moons points
#: (noise 0.1, never trained on); full profile, and a CI-sized fast profile
CHALLENGE_TARGET = {"full": 0.97, "fast": 0.90}


def check_train_moons(fn: Callable[..., Any]) -> bool:
    """Check ``fn(model, X, y, steps, lr, alpha) -> losses``: full-batch gradient descent on
    hinge loss + alpha * sum p^2, learning rate decaying linearly from lr to lr / 10, against
    ``slm_course.autograd_nn.fit_hinge`` step by step (the same parameters after each step)."""
    from slm_course.autograd_nn import ValueMLP, fit_hinge, make_moons

    name = "check_train_moons"
    X, y = make_moons(12, noise=0.1, seed=3)
    for steps in (1, 2, 4):
        mine, reference = ValueMLP(2, [4, 1], seed=1), ValueMLP(2, [4, 1], seed=1)
        losses = call_learner(name, fn, mine, X, y, steps, 0.5, 1e-3)
        want = fit_hinge(reference, X, y, steps, lr=0.5, alpha=1e-3)
        expect(name, isinstance(losses, (list, tuple)) and len(losses) == steps,
               f"return the list of the {steps} losses, one per step", got=losses,
               hint="append loss.data to a list at every step and return it")
        expect_close(name, [float(v.data) if isinstance(v, Value) else v for v in losses],
                     want, what=f"the losses of {steps} step(s)", rtol=1e-7,
                     hint="loss = hinge_loss(scores, labels) + l2_penalty(model, alpha), over "
                          "all points, computed before the update of that step")
        got_p = [p.data for p in mine.parameters()]
        want_p = [p.data for p in reference.parameters()]
        expect_close(name, got_p, want_p, what=f"the parameters after {steps} step(s)",
                     rtol=1e-7, atol=1e-10,
                     hint="model.zero_grad() before loss.backward() (gradients accumulate), "
                          "then p.data -= step_lr * p.grad with step_lr = lr * (1 - 0.9 * "
                          "step / (steps - 1)), step counted from 0" if steps > 1 else
                          "model.zero_grad(), loss.backward(), then p.data -= lr * p.grad")
    return passed(name, "1, 2 and 4 steps: the same losses and parameters as fit_hinge")


def check_moons_challenge(model: Any, target: float | None = None) -> float:
    """The open challenge: the accuracy of ``model`` (a ``ValueMLP``, or anything whose
    ``predict(X)`` gives one score per point, positive for label +1) on 1,000 fresh
    two-moons points (``make_moons(1000, noise=0.1, seed=2024)``) it never trained on.
    Target: ``CHALLENGE_TARGET`` (97% full profile, 90% fast profile)."""
    import numpy as np

    from slm_course.autograd_nn import make_moons
    from slm_course.helpers.workload import pick

    name = "check_moons_challenge"
    target = pick(**CHALLENGE_TARGET) if target is None else target
    X, y = make_moons(1000, noise=0.1, seed=2024)
    expect(name, callable(getattr(model, "predict", None)),
           "pass a model with a predict(X) method (a ValueMLP has one)",
           got=type(model).__name__)
    scores = np.asarray(call_learner(name, model.predict, X.copy()), dtype=np.float64)
    expect(name, scores.shape == (len(X),), f"predict returned shape {scores.shape}, "
           f"expected ({len(X)},)", hint="one output neuron: ValueMLP(2, [..., 1])")
    accuracy = float(np.mean(np.where(scores > 0, 1, -1) == y))
    expect(name, accuracy >= target, f"held-out accuracy {accuracy:.1%} is below the target "
           f"{target:.0%}", expected=f">= {target:.0%}", got=f"{accuracy:.1%}",
           hint="a wider or deeper net (16 or 32 units, two hidden layers), more steps, or "
                "more training points; the boundary must bend around both moons")
    passed(name, f"{accuracy:.1%} on 1,000 held-out points (target {target:.0%})")
    return accuracy
