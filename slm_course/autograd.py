"""A scalar autograd engine in the style of micrograd.

A :class:`Value` holds one number, the Values it was computed from (``inputs``) and a small
function ``_backward(grad)`` that applies the chain rule for the operation that made it,
given ``grad`` = d(final output)/d(this node)::

    input.grad += (d node / d input) * grad        # local gradient x upstream gradient

``out.backward()`` orders the graph so that every node comes after its inputs
(:func:`topological_order`), sets ``out.grad = 1`` and calls ``node._backward(node.grad)``
from the output back to the leaves. A Value used twice receives two contributions, which is
why every rule adds (``+=``) rather than assigns.

Unlike micrograd, ``_backward`` receives the upstream gradient as an argument instead of
reading ``out.grad``: the closure then does not refer to ``out``, so there is no reference
cycle out -> _backward -> out, and Python frees a graph the moment it is no longer used.

Stage 02: calculus and autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Number = int | float


def _no_backward(grad: float) -> None:
    """The backward rule of a leaf: nothing to pass on."""


class Value:
    """A scalar that records how it was computed, so that gradients can flow back to it.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> y = a * b + a  # dy/da = b + 1 = -2, dy/db = a = 2
    >>> y.backward()
    >>> a.grad, b.grad
    (-2.0, 2.0)
    """

    __slots__ = ("data", "grad", "inputs", "op", "label", "_backward")

    def __init__(self, data: Number, inputs: tuple[Value, ...] = (), op: str = "",
                 label: str = "") -> None:
        if isinstance(data, Value):
            raise TypeError("Value(...) got a Value; use it directly, or Value(v.data) "
                            "for a fresh leaf that gradients do not flow through")
        try:
            self.data = float(data)
        except (TypeError, ValueError) as err:
            raise TypeError(f"a Value holds one real number, got {data!r}") from err
        self.grad = 0.0  # d(output of the last backward) / d(self)
        self.inputs = inputs  # the Values this one was computed from (empty for a leaf)
        self.op = op  # the operation that made it, e.g. "*" (for printing and drawing)
        self.label = label  # an optional name (for drawing)
        self._backward: Callable[[float], None] = _no_backward

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.6g}, grad={self.grad:.6g})"

    # ---- the primitive operations: each defines its forward value and backward rule ----

    def __add__(self, other: Value | Number) -> Value:
        """out = a + b;  d out/da = 1, d out/db = 1."""
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward(grad: float) -> None:
            self.grad += grad
            other.grad += grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        """out = a * b;  d out/da = b, d out/db = a."""
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward(grad: float) -> None:  # grad = d(final output) / d(out)
            self.grad += other.data * grad
            other.grad += self.data * grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        """out = x ** n for a fixed number n;  d out/dx = n * x ** (n - 1).

        Defined for x > 0 and any real n, for x < 0 only when n is a whole number, and at
        x = 0 only for n >= 0 (where the slope is infinite when 0 < n < 1, as in PyTorch).
        """
        if isinstance(exponent, Value):
            raise TypeError("x ** y needs a number y; for a Value y write (y * x.log()).exp()")
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"the exponent must be an int or float, got {exponent!r}")
        n, x = float(exponent), self.data
        if x < 0 and not n.is_integer():
            raise ValueError(f"{x} ** {n} is not a real number (negative base, fractional "
                             f"exponent); keep the base positive, e.g. (x * x + 1e-12) ** {n}")
        if x == 0 and n < 0:
            raise ValueError(f"0 ** {n} divides by zero; keep the base away from 0, e.g. "
                             f"(x + 1e-12) ** {n}")
        out = Value(x**n, (self,), f"**{exponent}")

        def _backward(grad: float) -> None:
            self.grad += _power_slope(x, n) * grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """out = e ** x;  d out/dx = e ** x = out (the output is its own derivative)."""
        try:
            e = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data}) is larger than the largest float64 "
                                f"(~1.8e308); inputs above ~709 overflow, scale them down"
                                ) from None
        out = Value(e, (self,), "exp")

        def _backward(grad: float) -> None:
            self.grad += e * grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """out = ln x for x > 0;  d out/dx = 1 / x."""
        x = self.data
        if x <= 0:
            raise ValueError(f"log is defined for x > 0, got x = {x}; take the log of a "
                             f"positive quantity (a probability, exp(z), z * z + 1e-12)")
        out = Value(math.log(x), (self,), "log")

        def _backward(grad: float) -> None:
            self.grad += grad / x

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """out = tanh x;  d out/dx = 1 - tanh(x)^2 = 1 - out^2."""
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward(grad: float) -> None:
            self.grad += (1.0 - t * t) * grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        """out = 1 / (1 + e^-x);  d out/dx = out * (1 - out)."""
        x = self.data
        if x >= 0:  # two forms so that exp never overflows
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            z = math.exp(x)
            s = z / (1.0 + z)
        out = Value(s, (self,), "sigmoid")

        def _backward(grad: float) -> None:
            self.grad += s * (1.0 - s) * grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """out = max(0, x);  d out/dx = 1 if x > 0 else 0.

        At x = 0 the slope is undefined (a kink); we use 0 there, as PyTorch does.
        """
        x = self.data
        out = Value(x if x > 0 else 0.0, (self,), "relu")

        def _backward(grad: float) -> None:
            self.grad += (1.0 if x > 0 else 0.0) * grad

        out._backward = _backward
        return out

    # ---- everything else is built from the primitives ----

    def __neg__(self) -> Value:  # -a
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:  # a - b
        return self + (-_as_value(other))

    def __truediv__(self, other: Value | Number) -> Value:  # a / b = a * b ** -1
        other = _as_value(other)
        if other.data == 0:
            raise ZeroDivisionError("division by a Value equal to 0; add a small constant "
                                    "to the denominator or check how it reached 0")
        return self * other**-1

    def __radd__(self, other: Number) -> Value:  # 2 + a (also makes sum([...]) work)
        return self + other

    def __rmul__(self, other: Number) -> Value:  # 2 * a
        return self * other

    def __rsub__(self, other: Number) -> Value:  # 2 - a
        return _as_value(other) + (-self)

    def __rtruediv__(self, other: Number) -> Value:  # 2 / a
        return _as_value(other) / self

    # ---- reverse-mode differentiation ----

    def backward(self) -> None:
        """Fill ``grad`` of every node in the graph with d(self)/d(node).

        Interior nodes are reset first, so their ``grad`` always describes this call. Leaves
        (the inputs and parameters) *accumulate*, like PyTorch's ``.grad``: reset them with
        ``v.grad = 0.0`` (or ``model.zero_grad()``) before the next backward.
        """
        order = topological_order(self)
        for node in order:
            if node.inputs:
                node.grad = 0.0
        self.grad += 1.0  # d self / d self
        for node in reversed(order):  # outputs before inputs: each grad is complete when used
            node._backward(node.grad)


def _as_value(x: Any) -> Value:
    """Wrap a plain number as a constant leaf so that ``a + 1`` and ``1 + a`` both work."""
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"cannot combine a Value with {type(x).__name__} {x!r}; "
                        f"use an int, a float or another Value")
    return Value(x)


def _power_slope(x: float, n: float) -> float:
    """d/dx x ** n = n * x ** (n - 1), with PyTorch's limits at x = 0 when n < 1."""
    if x == 0 and n < 1:  # 0 ** (n - 1) would divide by zero: slope 0 for n = 0, +inf else
        return 0.0 if n == 0 else math.inf
    return n * x ** (n - 1)


def topological_order(root: Value) -> list[Value]:
    """Every node that ``root`` depends on, each listed after all of its inputs; root last.

    An iterative depth-first search with an explicit stack (a recursive one would hit
    Python's recursion limit of ~1000 on a long chain such as an unrolled RNN). A node
    reached along two paths is listed once.
    """
    order: list[Value] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:  # second visit: all of its inputs are already in `order`
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))  # come back to it after its inputs
        for child in reversed(node.inputs):  # reversed: inputs are listed left to right
            if id(child) not in seen:
                stack.append((child, False))
    return order


def draw_graph(root: Value, ax: Any = None, show_grad: bool = True) -> Any:
    """Draw the computational graph of ``root`` with matplotlib and return the axes.

    Columns are depths (leaves on the left, ``root`` on the right); each box shows a node's
    label, value and (optionally) gradient; each circle is the operation that made it.
    """
    import matplotlib.pyplot as plt

    order = topological_order(root)
    depth: dict[int, int] = {}
    for node in order:  # inputs come first, so their depth is known
        depth[id(node)] = 1 + max((depth[id(c)] for c in node.inputs), default=-1)
    first_use: dict[int, int] = {}  # a leaf (often a constant) moves next to its first user
    for node in order:
        for child in node.inputs:
            if not child.inputs:
                first_use[id(child)] = min(first_use.get(id(child), depth[id(node)]),
                                           depth[id(node)])
    for leaf_id, user_depth in first_use.items():
        depth[leaf_id] = user_depth - 1
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    pos = {}
    for d, nodes in columns.items():
        for row, node in enumerate(nodes):
            pos[id(node)] = (2.0 * d, (len(nodes) - 1) / 2 - row)
    if ax is None:
        width = 2.2 * (max(columns) + 1) + 1
        height = 1.2 * max(len(c) for c in columns.values()) + 0.8
        _, ax = plt.subplots(figsize=(width, height))
    boxes, circles = {}, {}  # id(node) -> its Text (drawn first, so arrows can clip to it)
    for node in order:
        x, y = pos[id(node)]
        text = f"{node.label + ' | ' if node.label else ''}{node.data:.4g}"
        if show_grad:
            text += f"\ngrad {node.grad:.4g}"
        boxes[id(node)] = ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox={
            "boxstyle": "round", "fc": "#e8f0fe" if node.inputs else "#fff4d6"})
        if node.inputs:  # the operation sits halfway between the inputs and the output
            circles[id(node)] = ax.text(x - 1.0, y, node.op, ha="center", va="center",
                                        fontsize=9, bbox={"boxstyle": "circle", "fc": "white"})

    def arrow(start: Any, end: Any) -> None:  # from one Text's box to another's
        (x0, _), (x1, _) = start.get_position(), end.get_position()
        bend = -0.2 if x1 - x0 > 1.5 else 0.0  # an edge that skips a column arcs over it
        ax.annotate("", end.get_position(), start.get_position(), arrowprops={
            "arrowstyle": "->", "color": "0.45", "shrinkA": 1, "shrinkB": 1,
            "connectionstyle": f"arc3,rad={bend}",
            "patchA": start.get_bbox_patch(), "patchB": end.get_bbox_patch()})

    for node in order:
        if node.inputs:
            arrow(circles[id(node)], boxes[id(node)])
            for child in node.inputs:
                arrow(boxes[id(child)], circles[id(node)])
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    return ax
