"""Stage 02: finite differences, the scalar autograd engine and the tiny MLP built on it.

Oracles: closed-form derivatives and Taylor error rates (calculus), ``torch.autograd`` in
float64 on hand-picked and on hundreds of random expression graphs (the engine), and a
PyTorch copy of the same network (the MLP).
"""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
import torch

from slm_course.autograd import Value, topological_order
from slm_course.autograd_nn import (
    Neuron,
    NeuronLayer,
    ValueMLP,
    accuracy,
    fit_hinge,
    hinge_loss,
    l2_penalty,
    make_moons,
)
from slm_course.calculus import (
    central_difference,
    forward_difference,
    gradient_check,
    numerical_gradient,
    relative_error,
)

TOL = {"rtol": 1e-10, "atol": 1e-10}  # for np.testing.assert_allclose
APPROX = {"rel": 1e-10, "abs": 1e-10}  # the same, for pytest.approx
F64 = torch.float64


def leaf(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=F64, requires_grad=True)


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("x", [-1.3, 0.0, 0.7, 2.5])
def test_central_difference_matches_the_derivative(x):
    assert central_difference(math.sin, x) == pytest.approx(math.cos(x), abs=1e-9)
    assert central_difference(math.exp, x) == pytest.approx(math.exp(x), rel=1e-9)


def test_truncation_error_is_order_h_for_forward_and_h2_for_central():
    # f = exp at x = 0.5: f' = f'' = f''' = e^0.5. Halving h halves the forward-difference
    # error (ratio 2) and quarters the central-difference error (ratio 4).
    x, exact = 0.5, math.exp(0.5)
    for h in (1e-1, 1e-2):
        fwd = [abs(forward_difference(math.exp, x, s) - exact) for s in (h, h / 2)]
        cen = [abs(central_difference(math.exp, x, s) - exact) for s in (h, h / 2)]
        assert fwd[0] / fwd[1] == pytest.approx(2.0, rel=0.05)
        assert cen[0] / cen[1] == pytest.approx(4.0, rel=0.05)
        # and the leading terms themselves: h/2 f'' and h^2/6 f'''
        assert fwd[0] == pytest.approx(h / 2 * exact, rel=0.05)
        assert cen[0] == pytest.approx(h**2 / 6 * exact, rel=0.05)


def test_best_step_for_central_differences_is_near_cube_root_of_eps():
    hs = np.logspace(-12, -1, 111)
    errors = [abs(central_difference(math.sin, 1.0, h) - math.cos(1.0)) for h in hs]
    best = hs[int(np.argmin(errors))]
    assert 1e-7 < best < 1e-4, best  # eps^(1/3) ~ 6e-6
    assert errors[0] > 1e3 * min(errors)  # tiny steps drown in round-off


def test_numerical_gradient_matches_torch_and_leaves_input_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    A = rng.normal(size=(4, 4))

    def f(v):  # any smooth scalar function of a (3, 4) array
        return float(np.sum(np.tanh(v @ A) ** 2) + np.sum(np.exp(0.3 * v)))

    before = x.copy()
    ours = numerical_gradient(f, x)
    t = torch.tensor(x, requires_grad=True)
    (torch.tanh(t @ torch.tensor(A)) ** 2 + 0).sum().add(torch.exp(0.3 * t).sum()).backward()
    assert ours.shape == x.shape
    assert relative_error(ours, t.grad.numpy()) < 1e-8
    assert np.array_equal(x, before), "numerical_gradient must not modify its input"
    x.setflags(write=False)  # it must not even write to it temporarily
    np.testing.assert_array_equal(numerical_gradient(f, x), ours)


def test_numerical_gradient_is_second_order_and_works_in_float64():
    x = np.array([1.0])
    err = [abs(numerical_gradient(lambda v: float(np.exp(v[0])), x, h)[0] - np.e)
           for h in (1e-2, 1e-3)]
    assert 80 < err[0] / err[1] < 120, "10x smaller h must give ~100x smaller error"
    x32 = np.array([0.5, -1.5, 2.0], dtype=np.float32)  # differenced in float64 all the same
    grad = numerical_gradient(lambda v: float(np.sum(v**3)), x32)
    assert grad.dtype == np.float64
    assert relative_error(grad, 3 * x32.astype(np.float64) ** 2) < 1e-9


def test_relative_error_closed_forms():
    a = np.array([3.0, 4.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)
    assert relative_error(a, 2 * a) == pytest.approx(1 / 3)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    # norms, not the worst entry: an entry that is ~0 in both does not dominate
    assert relative_error([1.0, 1e-13], [1.0, -1e-13]) < 1e-12


def test_gradient_check_passes_a_right_gradient_and_fails_a_wrong_one():
    x = np.array([0.5, -1.5, 2.0])
    f = lambda v: float(np.sum(v**3))  # noqa: E731
    assert gradient_check(f, x, 3 * x**2) < 1e-9
    assert gradient_check(f, x, 2 * x**2) > 0.1  # a wrong power rule is caught


def test_bad_steps_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        central_difference(math.sin, 0.0, h=0.0)
    with pytest.raises(ValueError, match="positive"):
        numerical_gradient(lambda v: float(v.sum()), np.ones(2), h=-1e-5)
    with pytest.raises(ValueError, match="shapes"):
        relative_error(np.ones(2), np.ones(3))


# ------------------------------------------------------------------ the Value engine, op by op

UNARY = {
    "exp": (lambda v: v.exp(), torch.exp),
    "log": (lambda v: v.log(), torch.log),
    "tanh": (lambda v: v.tanh(), torch.tanh),
    "sigmoid": (lambda v: v.sigmoid(), torch.sigmoid),
    "relu": (lambda v: v.relu(), torch.relu),
    "neg": (lambda v: -v, lambda t: -t),
    "square": (lambda v: v**2, lambda t: t**2),
    "cube": (lambda v: v**3, lambda t: t**3),
    "inverse": (lambda v: v**-1, lambda t: t**-1),
    "sqrt": (lambda v: v**0.5, lambda t: t**0.5),
    "pow -1.5": (lambda v: v**-1.5, lambda t: t**-1.5),
    "radd": (lambda v: 3 + v, lambda t: 3 + t),
    "rsub": (lambda v: 3 - v, lambda t: 3 - t),
    "rmul": (lambda v: 3 * v, lambda t: 3 * t),
    "rdiv": (lambda v: 3 / v, lambda t: 3 / t),
    "add const": (lambda v: v + 2.5, lambda t: t + 2.5),
    "sub const": (lambda v: v - 2.5, lambda t: t - 2.5),
    "mul const": (lambda v: v * 2.5, lambda t: t * 2.5),
    "div const": (lambda v: v / 2.5, lambda t: t / 2.5),
}
POSITIVE_ONLY = {"log", "sqrt", "pow -1.5"}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("x", [-1.7, -0.3, 0.4, 2.2])
def test_unary_op_value_and_gradient_match_torch(name, x):
    if name in POSITIVE_ONLY:  # x <= 0 is outside the domain: see test_domain_errors...
        x = abs(x)
    ours_fn, torch_fn = UNARY[name]
    v, t = Value(x), leaf(x)
    out, ref = ours_fn(v), torch_fn(t)
    out.backward()
    ref.backward()
    assert out.data == pytest.approx(ref.item(), **APPROX)
    assert v.grad == pytest.approx(t.grad.item(), **APPROX)


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
@pytest.mark.parametrize("a, b", [(1.5, -2.0), (-0.7, 0.3), (4.0, 4.0)])
def test_binary_op_value_and_gradients_match_torch(op, a, b):
    fn = {"+": lambda p, q: p + q, "-": lambda p, q: p - q,
          "*": lambda p, q: p * q, "/": lambda p, q: p / q}[op]
    va, vb, ta, tb = Value(a), Value(b), leaf(a), leaf(b)
    out, ref = fn(va, vb), fn(ta, tb)
    out.backward()
    ref.backward()
    assert out.data == pytest.approx(ref.item(), **APPROX)
    assert (va.grad, vb.grad) == pytest.approx((ta.grad.item(), tb.grad.item()), **APPROX)


def test_relu_at_zero_has_slope_zero_like_pytorch():
    v, t = Value(0.0), leaf(0.0)
    v.relu().backward()
    torch.relu(t).backward()
    assert v.grad == 0.0 == t.grad.item()
    # x - x is exactly 0, so the kink is reached inside a graph too
    v = Value(1.3)
    (v - v).relu().backward()
    assert v.grad == 0.0


@pytest.mark.parametrize("n", [0, 0.5, 1, 2])
def test_power_at_zero_uses_pytorch_limits(n):
    v, t = Value(0.0), leaf(0.0)
    (v**n).backward()
    (t**n).backward()
    assert v.grad == t.grad.item()  # 0, +inf, 1, 0


def test_sigmoid_and_exp_saturate_without_overflow():
    for x in (-800.0, 800.0):
        v, t = Value(x), leaf(x)
        v.sigmoid().backward()
        torch.sigmoid(t).backward()
        assert v.grad == t.grad.item() == 0.0
    v = Value(-800.0)
    v.exp().backward()
    assert v.grad == 0.0


def test_domain_errors_are_clear():
    with pytest.raises(ValueError, match="x > 0"):
        Value(0.0).log()
    with pytest.raises(ValueError, match="x > 0"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="not a real number"):
        Value(-2.0) ** 0.5
    with pytest.raises(ValueError, match="divides by zero"):
        Value(0.0) ** -1
    with pytest.raises(ZeroDivisionError, match="equal to 0"):
        Value(1.0) / Value(0.0)
    with pytest.raises(ZeroDivisionError, match="equal to 0"):
        1 / Value(0.0)
    with pytest.raises(OverflowError, match="float64"):
        Value(1000.0).exp()
    with pytest.raises(TypeError, match="number"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(TypeError, match="cannot combine"):
        Value(1.0) + "1"
    with pytest.raises(TypeError, match="one real number"):
        Value("abc")
    with pytest.raises(TypeError, match="got a Value"):
        Value(Value(1.0))
    # a negative base is fine with a whole exponent, as in real arithmetic
    v = Value(-2.0)
    (v**3).backward()
    assert v.grad == pytest.approx(12.0)


# ------------------------------------------------------------------ random expression graphs


def _random_graph(seed: int, n_leaves: int = 4, n_ops: int = 30):
    """The same random expression DAG built twice: with Values and with float64 tensors.

    Operands are drawn from every node built so far (recent ones more often), so many nodes
    are used several times. An operation outside its domain (log of x <= 0, a fractional
    power of x <= 0, division by ~0) or one that makes a huge number is drawn again.
    Returns the list of (Value, tensor) pairs; the last pair is the output.
    """
    rng = random.Random(seed)
    pool = []
    for _ in range(n_leaves):
        x = rng.uniform(-2.0, 2.0)
        pool.append((Value(x), leaf(x)))
    ops = ["+", "-", "*", "/", "pow", "exp", "log", "tanh", "sigmoid", "relu", "neg",
           "c+", "c-", "c*", "c/"]
    while len(pool) < n_leaves + n_ops:
        (a, ta) = pool[-1 - min(int(rng.expovariate(0.4)), len(pool) - 1)]
        (b, tb) = rng.choice(pool)
        op, c = rng.choice(ops), round(rng.uniform(-3.0, 3.0), 2)
        if op == "+":
            pair = a + b, ta + tb
        elif op == "-":
            pair = a - b, ta - tb
        elif op == "*":
            pair = a * b, ta * tb
        elif op == "/":
            if abs(b.data) < 0.2:
                continue
            pair = a / b, ta / tb
        elif op == "pow":
            n = rng.choice([0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5])
            if (not float(n).is_integer() and a.data < 0.05) or (n < 0 and abs(a.data) < 0.2):
                continue
            pair = a**n, ta**n
        elif op == "exp":
            if a.data > 5:
                continue
            pair = a.exp(), ta.exp()
        elif op == "log":
            if a.data < 0.05:
                continue
            pair = a.log(), ta.log()
        elif op == "tanh":
            pair = a.tanh(), ta.tanh()
        elif op == "sigmoid":
            pair = a.sigmoid(), ta.sigmoid()
        elif op == "relu":
            pair = a.relu(), ta.relu()
        elif op == "neg":
            pair = -a, -ta
        elif op == "c+":
            pair = c + a, c + ta
        elif op == "c-":
            pair = c - a, c - ta
        elif op == "c*":
            pair = c * a, c * ta
        else:  # "c/"
            if abs(a.data) < 0.2:
                continue
            pair = c / a, c / ta
        if abs(pair[0].data) > 1e4:
            continue
        pair[1].retain_grad()  # keep torch's gradient of interior nodes for comparison
        pool.append(pair)
    return pool


@pytest.mark.parametrize("seed", range(200))
def test_random_graph_values_and_gradients_match_torch(seed):
    pool = _random_graph(seed)
    out, ref = pool[-1]
    out.backward()
    ref.backward()
    ours = np.array([[v.data, v.grad] for v, _ in pool])
    theirs = np.array([[t.item(), 0.0 if t.grad is None else t.grad.item()] for _, t in pool])
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_random_graphs_reuse_nodes():
    # the test above is only as strong as its graphs: they must reuse nodes (fan-out > 1)
    reused = 0
    for seed in range(20):
        pool = _random_graph(seed)
        uses = {}
        for node in topological_order(pool[-1][0]):
            for child in node.inputs:
                uses[id(child)] = uses.get(id(child), 0) + 1
        reused += sum(n > 1 for n in uses.values())
    assert reused >= 40


def test_gradients_accumulate_over_every_use():
    x = Value(3.0)
    y = x * x + x  # x is used three times: dy/dx = 2x + 1
    y.backward()
    assert x.grad == 7.0
    a = Value(0.5)  # a diamond: b and c both read a, d reads both
    b, c = a.tanh(), a.exp()
    d = b * c
    d.backward()
    expected = (1 - math.tanh(0.5) ** 2) * math.exp(0.5) + math.tanh(0.5) * math.exp(0.5)
    assert a.grad == pytest.approx(expected, rel=1e-12)


def test_second_backward_accumulates_into_leaves_only_like_pytorch():
    a, b = Value(0.8), Value(-1.1)
    ta, tb = leaf(0.8), leaf(-1.1)
    mid, tmid = a * b, ta * tb
    tmid.retain_grad()
    out, tout = mid.tanh() + a, tmid.tanh() + ta
    for _ in range(2):
        out.backward()
        tout.backward(retain_graph=True)
    assert (a.grad, b.grad) == pytest.approx((ta.grad.item(), tb.grad.item()), **APPROX)
    # interior grads are recomputed each time in our engine (not doubled)
    assert mid.grad == pytest.approx(tmid.grad.item() / 2, **APPROX)


def test_deep_graph_does_not_hit_the_recursion_limit():
    depth = 5 * sys.getrecursionlimit()
    x = Value(1.0)
    y = x
    for _ in range(depth):
        y = y * 1.0 + 0.0  # two nodes (and two constants) per step
    y.backward()
    assert x.grad == 1.0


def test_topological_order_lists_each_node_once_after_its_inputs():
    for seed in range(10):
        pool = _random_graph(seed)
        order = topological_order(pool[-1][0])
        position = {id(n): i for i, n in enumerate(order)}
        assert len(position) == len(order), "a node is listed twice"
        assert order[-1] is pool[-1][0]
        for node in order:
            for child in node.inputs:
                assert position[id(child)] < position[id(node)]
        # exactly the nodes reachable from the output
        reachable, stack = set(), [pool[-1][0]]
        while stack:
            n = stack.pop()
            if id(n) not in reachable:
                reachable.add(id(n))
                stack.extend(n.inputs)
        assert set(position) == reachable


# ------------------------------------------------------------------ the MLP on top


def _torch_copy(model: ValueMLP) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    layers = []
    for layer in model.layers:
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=F64,
                         requires_grad=True)  # (n_out, n_in)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=F64, requires_grad=True)
        layers.append((W, b, layer.neurons[0].activation))
    return layers


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_loss_and_parameter_gradients_match_torch(activation):
    model = ValueMLP(2, [5, 4, 1], activation=activation, seed=3)
    X, y = make_moons(12, noise=0.1, seed=1)
    scores = [model(list(x)) for x in X]
    loss = hinge_loss(scores, list(y)) + l2_penalty(model, 1e-2)
    loss.backward()

    layers = _torch_copy(model)
    h = torch.tensor(X)  # (N, 2)
    for W, b, act in layers:
        h = h @ W.T + b  # (N, n_out)
        h = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda t: t}[act](h)
    ref = torch.relu(1 - torch.tensor(y, dtype=F64) * h[:, 0]).mean()
    ref = ref + 1e-2 * sum((W**2).sum() + (b**2).sum() for W, b, _ in layers)
    ref.backward()

    assert loss.data == pytest.approx(ref.item(), **APPROX)
    ours = np.array([p.grad for p in model.parameters()])
    theirs = np.concatenate([torch.cat([W.grad, b.grad[:, None]], dim=1).reshape(-1).numpy()
                             for W, b, _ in layers])  # neuron by neuron: w..., b
    np.testing.assert_allclose(ours, theirs, **TOL)
    assert np.count_nonzero(ours) > len(ours) // 2  # the check is not vacuous


def test_mlp_shapes_parameters_and_numpy_forward():
    model = ValueMLP(3, [4, 2], activation="tanh", seed=0)
    assert len(model.parameters()) == (3 + 1) * 4 + (4 + 1) * 2
    X = np.random.default_rng(0).normal(size=(5, 3))
    out = [model(list(x)) for x in X]
    assert len(out[0]) == 2  # several outputs come back as a list
    np.testing.assert_allclose(model.predict(X), [[v.data for v in o] for o in out], rtol=1e-12)
    single = ValueMLP(3, [4, 1], seed=0)
    assert isinstance(single(list(X[0])), Value)
    np.testing.assert_allclose(single.predict(X), [single(list(x)).data for x in X], rtol=1e-12)
    assert ValueMLP(3, [4, 1], seed=0).parameters()[0].data == single.parameters()[0].data
    assert ValueMLP(3, [4, 1], seed=1).parameters()[0].data != single.parameters()[0].data


def test_init_keeps_the_pre_activation_scale():
    # w ~ U(-a, a) with a = sqrt(6/n) for relu gives Var(w) = 2/n (He); sqrt(3/n): 1/n
    for activation, var in (("relu", 2.0), ("tanh", 1.0)):
        layer = NeuronLayer(200, 200, activation, random.Random(0))
        w = np.array([[p.data for p in n.w] for n in layer.neurons])
        assert w.var() * 200 == pytest.approx(var, rel=0.05)
        assert all(n.b.data == 0.0 for n in layer.neurons)


def test_zero_grad_and_input_errors():
    neuron = Neuron(2, "tanh")
    neuron([1.0, 2.0]).backward()
    assert any(p.grad != 0 for p in neuron.parameters())
    neuron.zero_grad()
    assert all(p.grad == 0 for p in neuron.parameters())
    with pytest.raises(ValueError, match="takes 2 inputs, got 3"):
        neuron([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="activation"):
        Neuron(2, "gelu")
    with pytest.raises(ValueError, match="-1, \\+1"):
        hinge_loss([Value(1.0)], [0])


def test_make_moons_shapes_labels_and_determinism():
    X, y = make_moons(101, noise=0.0, seed=0)
    assert X.shape == (101, 2) and y.shape == (101,)
    assert set(np.unique(y)) == {-1, 1} and abs(int(y.sum())) <= 1
    top, bottom = X[y == -1], X[y == 1]  # noiseless points lie on the two unit half circles
    np.testing.assert_allclose(np.hypot(*top.T), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(bottom[:, 0] - 1, bottom[:, 1] - 0.5), 1.0, atol=1e-12)
    a, b = make_moons(50, seed=7), make_moons(50, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.slow
def test_mlp_learns_two_moons():
    X, y = make_moons(40, noise=0.1, seed=0)
    X_test, y_test = make_moons(400, noise=0.1, seed=1)
    model = ValueMLP(2, [8, 8, 1], seed=0)
    losses = fit_hinge(model, X, y, steps=80, lr=1.0)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy(model.predict(X), y) >= 0.95
    assert accuracy(model.predict(X_test), y_test) >= 0.95
