"""A tiny neural-network library on top of the scalar :class:`~slm_course.autograd.Value`.

    Neuron:       y = act(w . x + b)          w: (n_inputs,), b: scalar
    NeuronLayer:  n_outputs Neurons that read the same inputs   (n_inputs,) -> (n_outputs,)
    ValueMLP:     NeuronLayers in sequence; the last one is linear (it outputs raw scores)

Everything is a Value, so ``loss.backward()`` fills ``p.grad`` for every parameter ``p``.
It is slow (one Python object per multiply) and exists to be read, not to train real models.
The names say "Value" and "Neuron" because the NumPy layers of stage 05 (``numpy_nn``) and
the transformer's MLP (stage 13) are other ideas with other shapes.

Stage 02: calculus and autograd.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from slm_course.autograd import Number, Value

ACTIVATE = {"tanh": Value.tanh, "relu": Value.relu, "linear": lambda z: z}  # name -> act(z)
ACTIVATIONS = tuple(ACTIVATE)


class Module:
    """Anything with parameters: it can list them and reset their gradients."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0 (gradients accumulate across backward calls)."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """y = act(sum_i w_i x_i + b), with b = 0 and w_i ~ U(-a, a), a = sqrt(6 / n_inputs) for
    relu (He init), sqrt(3 / n_inputs) otherwise: w . x keeps its scale as layers stack."""

    def __init__(self, n_inputs: int, activation: str = "relu",
                 rng: random.Random | None = None) -> None:
        _check_neuron(n_inputs, activation)
        rng = rng or random.Random(0)
        bound = (6.0 if activation == "relu" else 3.0) ** 0.5 / n_inputs**0.5
        self.w = [Value(rng.uniform(-bound, bound)) for _ in range(n_inputs)]
        self.b = Value(0.0)
        self.activation = activation

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        _check_inputs(x, len(self.w))
        z = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)  # w . x + b
        return ACTIVATE[self.activation](z)

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, {self.activation})"


class NeuronLayer(Module):
    """n_outputs independent Neurons applied to the same input vector."""

    def __init__(self, n_inputs: int, n_outputs: int, activation: str = "relu",
                 rng: random.Random | None = None) -> None:
        rng = rng or random.Random(0)
        self.neurons = [Neuron(n_inputs, activation, rng) for _ in range(n_outputs)]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        return [neuron(x) for neuron in self.neurons]  # (n_outputs,)

    def parameters(self) -> list[Value]:
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def __repr__(self) -> str:
        first = self.neurons[0]
        return f"NeuronLayer({len(first.w)} -> {len(self.neurons)}, {first.activation})"


class ValueMLP(Module):
    """A multi-layer perceptron of Values: hidden layers with ``activation``, then a linear one.

    ``ValueMLP(2, [16, 16, 1])`` maps 2 inputs through two relu layers of 16 to 1 raw score.
    A single output is returned as a Value; several as a list of Values.
    """

    def __init__(self, n_inputs: int, layer_sizes: Sequence[int], activation: str = "relu",
                 seed: int = 0) -> None:
        if not layer_sizes:
            raise ValueError("give at least one layer size, e.g. ValueMLP(2, [16, 1])")
        rng = random.Random(seed)
        sizes = [n_inputs, *layer_sizes]
        last = len(layer_sizes) - 1
        self.layers = [NeuronLayer(sizes[i], sizes[i + 1],
                                   "linear" if i == last else activation, rng)
                       for i in range(len(layer_sizes))]

    def __call__(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The same forward pass on plain floats with NumPy: fast, and builds no graph.

        X: (N, n_inputs) -> scores (N, n_outputs), or (N,) for a single output.
        """
        h = np.asarray(X, dtype=np.float64)  # (N, n_inputs)
        for layer in self.layers:
            W = np.array([[w.data for w in n.w] for n in layer.neurons])  # (n_out, n_in)
            b = np.array([n.b.data for n in layer.neurons])  # (n_out,)
            h = h @ W.T + b  # (N, n_out)
            act = layer.neurons[0].activation
            if act == "tanh":
                h = np.tanh(h)
            elif act == "relu":
                h = np.maximum(h, 0.0)
        return h[:, 0] if h.shape[1] == 1 else h

    def __repr__(self) -> str:
        return f"ValueMLP({', '.join(map(repr, self.layers))})"


def hinge_loss(scores: Sequence[Value], labels: Sequence[int]) -> Value:
    """mean_i max(0, 1 - y_i s_i) for labels y_i in {-1, +1}: the SVM "max-margin" loss.

    It is zero once every point is on the right side with a margin of at least 1.
    """
    if len(scores) != len(labels) or not labels:
        raise ValueError(f"need one label per score, got {len(scores)} scores and "
                         f"{len(labels)} labels")
    if any(y not in (-1, 1) for y in labels):
        raise ValueError("hinge_loss wants labels in {-1, +1}; map 0/1 labels with 2 * y - 1")
    total = sum(((1 - int(y) * s).relu() for s, y in zip(scores, labels, strict=True)), Value(0.0))
    return total / len(labels)


def l2_penalty(model: Module, alpha: float) -> Value:
    """alpha * sum_p p^2 over all parameters: weight decay written as a loss term."""
    return alpha * sum((p * p for p in model.parameters()), Value(0.0))


def accuracy(scores: Sequence[Value | float] | np.ndarray, labels: Sequence[int]) -> float:
    """Fraction of points with sign(score) == label, labels in {-1, +1}."""
    s = np.array([v.data if isinstance(v, Value) else v for v in scores], dtype=np.float64)
    y = np.asarray(labels)
    return float(np.mean(np.where(s > 0, 1, -1) == y))


def fit_hinge(model: ValueMLP, X: np.ndarray, y: np.ndarray, steps: int, lr: float = 1.0,
              alpha: float = 1e-4, batch_size: int | None = None, seed: int = 0) -> list[float]:
    """Train ``model`` by gradient descent on hinge loss + L2 penalty; return the losses.

    Each step: (mini)batch forward -> loss -> ``zero_grad`` -> ``backward`` -> p -= lr * grad.
    The learning rate decays linearly from ``lr`` to ``0.1 * lr``. X: (N, 2), y: (N,) in
    {-1, +1}. ``batch_size=None`` uses every point at every step.
    """
    X, y = _as_dataset(X, y)
    rng = np.random.default_rng(seed)
    losses = []
    with _cycle_collector_paused():
        for step in range(steps):
            idx = (np.arange(len(X)) if batch_size is None
                   else rng.choice(len(X), size=batch_size, replace=False))
            scores = [model(list(x)) for x in X[idx]]
            loss = hinge_loss(scores, [int(t) for t in y[idx]]) + l2_penalty(model, alpha)
            model.zero_grad()
            loss.backward()
            step_lr = lr * (1.0 - 0.9 * step / max(steps - 1, 1))
            for p in model.parameters():
                p.data -= step_lr * p.grad
            losses.append(loss.data)
    return losses


def _check_neuron(n_inputs: int, activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if n_inputs < 1:
        raise ValueError(f"a neuron needs at least one input, got n_inputs={n_inputs}")


def _check_inputs(x: Sequence[Value | Number], n_inputs: int) -> None:
    if len(x) != n_inputs:
        raise ValueError(f"this neuron takes {n_inputs} inputs, got {len(x)}")


def _as_dataset(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, features) and y (N,), got {X.shape} and {y.shape}")
    return X, y


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector (reference counting still frees memory).

    A training step keeps tens of thousands of Values alive at once, and the collector
    would scan them all again and again looking for cycles; Values make none, so pausing it
    about halves the time of a step.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def make_moons(n: int, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in 2-D, labelled -1 and +1 (like scikit-learn's).

    Returns X: (n, 2) float64 and y: (n,) int64 in {-1, +1}; Gaussian noise of std ``noise``
    is added to each coordinate.
    """
    if n < 2:
        raise ValueError(f"need at least 2 points (one per moon), got n={n}")
    rng = np.random.default_rng(seed)
    n_top = n // 2
    t_top = np.linspace(0.0, np.pi, n_top)
    t_bottom = np.linspace(0.0, np.pi, n - n_top)
    top = np.stack([np.cos(t_top), np.sin(t_top)], axis=1)  # (n_top, 2)
    bottom = np.stack([1.0 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)], axis=1)
    X = np.concatenate([top, bottom]) + rng.normal(0.0, noise, size=(n, 2))  # (n, 2)
    y = np.concatenate([-np.ones(n_top, dtype=np.int64), np.ones(n - n_top, dtype=np.int64)])
    perm = rng.permutation(n)
    return X[perm], y[perm]
