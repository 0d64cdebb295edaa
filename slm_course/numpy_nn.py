"""Neural networks from scratch in NumPy: layers that know their own derivative.

A network is a chain of layers y = f(x; theta). Backpropagation is the chain rule applied
one layer at a time, from the loss back to the input: given the upstream gradient dL/dy,
each layer returns the downstream gradient and stores the gradient of its parameters,

    dL/dx = (dy/dx)^T dL/dy            dL/dtheta = (dy/dtheta)^T dL/dy

Arrays are batches, one example per row: x has shape (N, D). Every ``forward`` caches what
its ``backward`` needs, so call ``forward`` and then ``backward`` once each per step.
``backward`` writes (not adds) the parameter gradients, so there is nothing to zero.

The equations live in small functions (``linear_backward``, ``tanh_backward``, ...); the
classes wrap them with a cache. ``tests/test_numpy_nn.py`` checks every backward against
central finite differences and ``torch.autograd`` in float64. The finite differences and the
relative error are stage 02's (:mod:`slm_course.calculus`), softmax is stage 03's
(:mod:`slm_course.probability`).

Stage 05: perceptron and backpropagation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from slm_course.calculus import gradient_check
from slm_course.probability import log_softmax

# ---------------------------------------------------------------------------------------
# The equations: one function each, no state.
# ---------------------------------------------------------------------------------------


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = x W + b.  x: (N, D_in), W: (D_in, D_out), b: (D_out,) -> y: (N, D_out)."""
    _check_linear(x, W, b)
    return x @ W + b


def linear_backward(x: np.ndarray, W: np.ndarray, grad_out: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of y = x W + b, given g = dL/dy of shape (N, D_out).

        dL/dx = g W^T  (N, D_in)      dL/dW = x^T g  (D_in, D_out)      dL/db = sum_n g  (D_out,)

    b is added to every row, so its gradient sums over the batch.
    """
    _check_linear(x, W)
    _expect_shape("grad_out", grad_out, (x.shape[0], W.shape[1]),
                  "it must match the layer's output y = x W + b")
    return grad_out @ W.T, x.T @ grad_out, grad_out.sum(axis=0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """sigma(x) = 1 / (1 + e^-x), computed as (1 + tanh(x / 2)) / 2, which never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def tanh_backward(y: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy * (1 - y^2), where y = tanh(x) is the forward output."""
    _expect_shape("grad_out", grad_out, y.shape, "it must match tanh's output")
    return grad_out * (1.0 - y**2)


def sigmoid_backward(y: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy * y (1 - y), where y = sigmoid(x) is the forward output."""
    _expect_shape("grad_out", grad_out, y.shape, "it must match sigmoid's output")
    return grad_out * y * (1.0 - y)


def relu_backward(y: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy * 1[y > 0], where y = max(x, 0) (at the kink x = 0 the slope is 0)."""
    _expect_shape("grad_out", grad_out, y.shape, "it must match relu's output")
    return grad_out * (y > 0)


# ---------------------------------------------------------------------------------------
# Layers: the equations plus the cache that backward needs.
# ---------------------------------------------------------------------------------------


@dataclass
class Parameter:
    """A trainable array and ``grad`` = dL/dvalue, which the owning layer's backward writes."""

    value: np.ndarray
    grad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.value = np.asarray(self.value, dtype=np.float64)
        self.grad = np.zeros_like(self.value)


class Layer:
    """A differentiable function of a batch: ``forward(x) -> y``, ``backward(dL/dy) -> dL/dx``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> dict[str, Parameter]:
        """The layer's trainable parameters by name (none for an activation)."""
        return {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _cached(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward; "
                               f"run forward(x) on the batch first, then backward(grad_out)")
        return value


class Linear(Layer):
    """Fully connected layer y = x W + b, W: (D_in, D_out) (``nn.Linear``'s weight transposed),
    b: (D_out,). W starts as N(0, 1 / D_in), b as 0; ``rng`` defaults to NumPy's global one."""

    def __init__(self, in_features: int, out_features: int, *,
                 rng: np.random.Generator | None = None) -> None:
        _check_sizes(in_features, out_features)
        normal = rng.standard_normal if rng is not None else np.random.standard_normal
        self.in_features, self.out_features = in_features, out_features
        self.W = Parameter(normal((in_features, out_features)) / np.sqrt(in_features))
        self.b = Parameter(np.zeros(out_features))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = np.asarray(x, dtype=np.float64)  # (N, D_in), kept for dL/dW = x^T g
        return linear_forward(self._x, self.W.value, self.b.value)  # (N, D_out)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._cached(self._x)
        dx, self.W.grad, self.b.grad = linear_backward(x, self.W.value, grad_out)
        return dx  # (N, D_in)

    def parameters(self) -> dict[str, Parameter]:
        return {"W": self.W, "b": self.b}

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"


class Tanh(Layer):
    """y = tanh(x), elementwise; backward: dL/dx = dL/dy * (1 - y^2)."""

    def __init__(self) -> None:
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)  # same shape as x; the derivative needs only y
        return self._y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return tanh_backward(self._cached(self._y), grad_out)


class Sigmoid(Layer):
    """y = sigmoid(x), elementwise; backward: dL/dx = dL/dy * y (1 - y)."""

    def __init__(self) -> None:
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = sigmoid(np.asarray(x, dtype=np.float64))
        return self._y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return sigmoid_backward(self._cached(self._y), grad_out)


class ReLU(Layer):
    """y = max(x, 0), elementwise; backward: dL/dx = dL/dy where x > 0, else 0."""

    def __init__(self) -> None:
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.maximum(x, 0.0)
        return self._y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return relu_backward(self._cached(self._y), grad_out)


class Sequential(Layer):
    """Layers applied in order; backward visits them in reverse (the chain rule)."""

    def __init__(self, *layers: Layer) -> None:
        self.layers = _check_layers(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def parameters(self) -> dict[str, Parameter]:  # named "<layer index>.<name>", e.g. "0.W"
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers)
                for name, p in layer.parameters().items()}

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


# ---------------------------------------------------------------------------------------
# Losses: forward(prediction, target) -> scalar L, then backward() -> dL/dprediction.
# ---------------------------------------------------------------------------------------


class Loss:
    """A scalar loss of a batch; ``backward()`` returns dL/dprediction for the last forward."""

    def __init__(self) -> None:
        self._cache: tuple[np.ndarray, ...] | None = None

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def _cached(self) -> tuple[np.ndarray, ...]:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward; "
                               f"compute the loss first: loss = loss_fn(pred, target)")
        return self._cache


class MSELoss(Loss):
    """L = mean((y - t)^2) over every element;  dL/dy = 2 (y - t) / (number of elements)."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        pred, target = _same_shape(pred, target)
        self._cache = (pred, target)
        return float(np.mean((pred - target) ** 2))

    def backward(self) -> np.ndarray:
        pred, target = self._cached()
        return 2.0 * (pred - target) / pred.size


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits z with targets t in [0, 1]:

        L = mean( -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)) ) = mean( softplus(z) - t z )
        dL/dz = (sigmoid(z) - t) / (number of elements)

    Taking logits rather than probabilities lets the log and the sigmoid cancel: the loss
    never takes log(0), and the gradient is simply "prediction minus target".
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        z, t = _same_shape(pred, target)
        if np.any((t < 0) | (t > 1)):
            raise ValueError("BCE targets must lie in [0, 1] (class 1 probability); "
                             "for -1/+1 labels use t = (y + 1) / 2")
        self._cache = (z, t)
        return float(np.mean(np.logaddexp(0.0, z) - t * z))  # logaddexp(0, z) = softplus(z)

    def backward(self) -> np.ndarray:
        z, t = self._cached()
        return (sigmoid(z) - t) / z.size


class SoftmaxCrossEntropyLoss(Loss):
    """Cross-entropy of softmax(z) against integer classes y, averaged over the batch:

        L = mean_n( log sum_c e^{z_nc} - z_{n, y_n} )        z: (N, C), y: (N,)
        dL/dz = (softmax(z) - onehot(y)) / N
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        z = np.asarray(pred, dtype=np.float64)
        y = np.asarray(target)
        if z.ndim != 2:
            raise ValueError(f"logits must have shape (N, C), got {z.shape}")
        if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"targets must be integer class ids of shape ({z.shape[0]},), "
                             f"got {y.dtype} of shape {y.shape}; pass labels, not one-hot rows")
        if y.min() < 0 or y.max() >= z.shape[1]:
            raise ValueError(f"class ids must lie in [0, {z.shape[1]}), got range "
                             f"[{y.min()}, {y.max()}]; is the number of logits right?")
        logp = log_softmax(z)  # (N, C)
        self._cache = (logp, y)
        return float(-logp[np.arange(len(y)), y].mean())

    def backward(self) -> np.ndarray:
        logp, y = self._cached()
        grad = np.exp(logp)  # softmax, (N, C)
        grad[np.arange(len(y)), y] -= 1.0
        return grad / len(y)


# ---------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------


class GradientDescent:
    """Plain gradient descent: theta <- theta - lr * dL/dtheta, in place, for every parameter.

    The NumPy-only optimizer of this stage; :class:`slm_course.optim.SGD` adds momentum and
    weight decay for PyTorch tensors.
    """

    def __init__(self, params: Mapping[str, Parameter] | Iterable[Parameter], lr: float) -> None:
        self.params = list(params.values() if isinstance(params, Mapping) else params)
        if not self.params:
            raise ValueError("GradientDescent got no parameters; pass model.parameters()")
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = lr

    def step(self) -> None:
        for p in self.params:
            p.value -= self.lr * p.grad


def fit(model: Layer, loss_fn: Loss, x: np.ndarray, target: np.ndarray, *,
        optimizer: GradientDescent, steps: int) -> list[float]:
    """Full-batch training: forward, loss, backward, step, ``steps`` times; returns the losses."""
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), target)  # forward: the prediction and its loss
        model.backward(loss_fn.backward())  # backward: every parameter's .grad
        optimizer.step()  # update: theta <- theta - lr * grad
        losses.append(loss)
    return losses


# ---------------------------------------------------------------------------------------
# Gradient checking.
# ---------------------------------------------------------------------------------------


def model_gradient_errors(model: Layer, loss_fn: Loss, x: np.ndarray, target: np.ndarray,
                          h: float = 1e-6) -> dict[str, float]:
    """Gradient-check every parameter of ``model`` and its input ``x`` on loss_fn(model(x), t).

    Returns {name: relative error} (see :func:`slm_course.calculus.gradient_check`), with the
    input under ``"input"``; a right backward scores below 1e-6, a wrong one 1e-2 or more.
    """
    x = np.asarray(x, dtype=np.float64)

    def loss() -> float:
        return loss_fn(model(x), target)

    loss()  # forward, then backward: the gradients to check
    grad_x = model.backward(loss_fn.backward())
    analytic = {name: p.grad.copy() for name, p in model.parameters().items()}
    errors = {name: gradient_check(_as_function_of(p, loss), p.value, analytic[name], h)
              for name, p in model.parameters().items()}
    errors["input"] = gradient_check(lambda v: loss_fn(model(v), target), x, grad_x, h)
    return errors


def _as_function_of(p: Parameter, loss: Callable[[], float]) -> Callable[[np.ndarray], float]:
    """``loss()`` as a function of p's value: put the value in, evaluate, put the old one back."""
    def f(value: np.ndarray) -> float:
        saved, p.value = p.value, value
        try:
            return loss()
        finally:
            p.value = saved
    return f


# ---------------------------------------------------------------------------------------
# Shape checks with messages that say how to fix the call.
# ---------------------------------------------------------------------------------------


def _check_sizes(in_features: int, out_features: int) -> None:
    if in_features < 1 or out_features < 1:
        raise ValueError(f"Linear needs positive sizes, got ({in_features}, {out_features})")


def _check_layers(layers: tuple[Layer, ...]) -> list[Layer]:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential item {i} is {type(layer).__name__}, not a Layer; "
                            f"pass layer objects, e.g. Sequential(Linear(2, 8), Tanh())")
    return list(layers)


def _check_linear(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> None:
    if W.ndim != 2:
        raise ValueError(f"W must be a matrix (D_in, D_out), got shape {W.shape}")
    if x.ndim != 2:
        raise ValueError(f"a linear layer takes a batch x of shape (N, {W.shape[0]}), got "
                         f"shape {x.shape}; for a single example use x[None, :]")
    if x.shape[1] != W.shape[0]:
        raise ValueError(f"x has {x.shape[1]} features per row but W expects {W.shape[0]} "
                         f"(W: {W.shape} = (D_in, D_out)); check the layer sizes")
    if b is not None and b.shape != (W.shape[1],):
        raise ValueError(f"b must have shape ({W.shape[1]},) to match W {W.shape}, got {b.shape}")


def _expect_shape(name: str, arr: np.ndarray, shape: tuple[int, ...], why: str) -> None:
    if np.shape(arr) != tuple(shape):
        raise ValueError(f"{name} has shape {np.shape(arr)}, expected {tuple(shape)}: {why}")


def _same_shape(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape; "
                         f"reshape the target, e.g. t.reshape(-1, 1) for a (N, 1) output "
                         f"(broadcasting them would silently compute the wrong loss)")
    return pred, target
