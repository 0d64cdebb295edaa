"""The multilayer perceptron classifier, in NumPy and then in PyTorch.

An MLP maps an image x (flattened to 784 numbers) to ten logits, z = f_L(... f_1(x)), each
f a linear map followed by a nonlinearity, and is trained on the softmax cross-entropy

    L = mean_n( logsumexp(z_n) - z_{n, y_n} )        dL/dz = (softmax(z) - onehot(y)) / N

whose gradient is "prediction minus target": p - y. The NumPy network is stage 05's
layers (:mod:`slm_course.numpy_nn`) stacked deeper and trained on shuffled mini-batches; the
PyTorch network, :class:`MLPClassifier`, is the same function (``nn.Linear`` stores the
transpose of stage 05's W and computes x W^T + b), trained by the course's one loop,
:func:`slm_course.train.train`. Around them: initialisation schemes (a weight's standard
deviation, from its fan-in and fan-out), the statistics that show whether a deep net will
train, early stopping, the numbers a learner reads after training (accuracy, a confusion
matrix, the most confident mistakes), and an MLP autoencoder.

Softmax and cross-entropy are stage 03's (:mod:`slm_course.probability`); the tests prove
every gradient here against torch.autograd and finite differences.

Stage 06: multilayer perceptrons on MNIST.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from slm_course.helpers.eval_mode import evaluating
from slm_course.numpy_nn import (
    GradientDescent,
    Linear,
    ReLU,
    Sequential,
    SoftmaxCrossEntropyLoss,
    Tanh,
)
from slm_course.probability import softmax
from slm_course.train import Batch, TrainConfig, TrainState, make_optimizer, train

# ---------------------------------------------------------------------------------------
# Ten classes: the softmax cross-entropy gradient
# ---------------------------------------------------------------------------------------


def one_hot(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Y[n, c] = 1 if targets[n] == c else 0.  targets: (N,) ints -> Y: (N, C) float64."""
    targets = _check_class_ids(targets, num_classes)
    Y = np.zeros((len(targets), num_classes))
    Y[np.arange(len(targets)), targets] = 1.0
    return Y


def softmax_cross_entropy_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """dL/dz of the mean softmax cross-entropy: (softmax(z) - onehot(y)) / N.

    logits z: (N, C), targets y: (N,) class ids -> (N, C). Row n moves every logit by the
    probability the model gave it, minus 1 for the right class: p - y, averaged over N.
    """
    z = np.asarray(logits, dtype=np.float64)  # (N, C)
    p = softmax(z, axis=1)  # (N, C), each row sums to 1
    return (p - one_hot(targets, z.shape[1])) / z.shape[0]


# ---------------------------------------------------------------------------------------
# Initialisation: the standard deviation of a weight
# ---------------------------------------------------------------------------------------

#: scheme -> std of W from (fan_in, fan_out); a number instead of a name is a fixed std
INIT_SCHEMES: dict[str, Callable[[int, int], float]] = {
    "kaiming": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),  # He et al. 2015, for ReLU
    "xavier": lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),  # Glorot 2010
    "lecun": lambda fan_in, fan_out: math.sqrt(1.0 / fan_in),  # stage 05's Linear
}


def init_std(scheme: str | float, fan_in: int, fan_out: int) -> float:
    """The std of W ~ N(0, std^2) for a layer: Kaiming sqrt(2 / fan_in) keeps the mean square
    of ReLU activations constant from layer to layer, Xavier sqrt(2 / (fan_in + fan_out))
    keeps the variance of tanh's roughly linear middle constant forwards and backwards."""
    if isinstance(scheme, int | float):
        if scheme <= 0:
            raise ValueError(f"a fixed init std must be > 0, got {scheme}")
        return float(scheme)
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; use one of {sorted(INIT_SCHEMES)} "
                         f"or a number (a fixed standard deviation)")
    return INIT_SCHEMES[scheme](fan_in, fan_out)


def numpy_mlp(sizes: Sequence[int], *, init: str | float = "kaiming", activation: str = "relu",
              rng: np.random.Generator | None = None) -> Sequential:
    """Stage 05's layers stacked into an MLP: Linear, act, Linear, act, ..., Linear (logits).

    sizes = (784, 256, 10) gives Linear(784, 256), ReLU, Linear(256, 10); each W is drawn
    N(0, init_std(init, fan_in, fan_out)^2) from ``rng``, each b is 0.
    """
    sizes, act = _check_sizes(sizes), _ACTIVATIONS[_check_activation(activation)][0]
    rng = rng if rng is not None else np.random.default_rng()
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = Linear(fan_in, fan_out, rng=rng)  # W ~ N(0, 1 / fan_in): rescale it
        linear.W.value *= init_std(init, fan_in, fan_out) * math.sqrt(fan_in)
        layers += [linear] if i == len(sizes) - 2 else [linear, act()]
    return Sequential(*layers)


# ---------------------------------------------------------------------------------------
# Mini-batches and the NumPy training loop
# ---------------------------------------------------------------------------------------


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of shuffled mini-batches: a random permutation of range(n), cut into
    pieces of ``batch_size`` (the last one smaller when batch_size does not divide n)."""
    _check_batching(n, batch_size)
    order = rng.permutation(n)  # every example exactly once, in a new order each epoch
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def minibatch_stream(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays of shuffled mini-batches, epoch after epoch, forever."""
    while True:
        yield from epoch_batches(n, batch_size, rng)


def train_numpy_classifier(model: Sequential, x: np.ndarray, y: np.ndarray, *, steps: int,
                           lr: float, batches: Iterator[np.ndarray]) -> list[float]:
    """Mini-batch gradient descent on the softmax cross-entropy; returns each step's loss.

    x: (N, D) float, y: (N,) class ids; ``batches`` yields index arrays (see
    :func:`minibatch_stream`). One step: forward, loss, backward, theta <- theta - lr grad.
    """
    loss_fn = SoftmaxCrossEntropyLoss()
    optimizer = GradientDescent(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = next(batches)  # (B,) indices of this step's examples
        loss = loss_fn(model(x[idx]), y[idx])  # forward: logits (B, C), then the loss
        model.backward(loss_fn.backward())  # backward: dL/dz = (p - y) / B, down the layers
        optimizer.step()
        losses.append(loss)
    return losses


# ---------------------------------------------------------------------------------------
# The same network in PyTorch
# ---------------------------------------------------------------------------------------


class MLPClassifier(nn.Module):
    """An MLP on images: flatten, then (Linear [BatchNorm] act [Dropout]) per hidden layer,
    then Linear to the logits.  x: (B, 1, 28, 28) or (B, 784) -> logits (B, C).

    ``forward(x, y)`` returns ``(logits, loss)``, loss = F.cross_entropy(logits, y), or None
    without targets, so the course's loop trains it. W ~ N(0, init_std(init)^2), b = 0.
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, init: str | float = "kaiming") -> None:
        super().__init__()
        sizes, act = _check_sizes(sizes), _ACTIVATIONS[_check_activation(activation)][1]
        layers: list[nn.Module] = [nn.Flatten()]  # (B, 1, 28, 28) -> (B, 784)
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            layers.append(nn.Linear(fan_in, fan_out))  # weight (out, in): x W^T + b
            layers += [nn.BatchNorm1d(fan_out)] if batch_norm else []
            layers.append(act())
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
        layers.append(nn.Linear(sizes[-2], sizes[-1]))  # the logits, no activation
        self.net = nn.Sequential(*layers)
        self.sizes = tuple(sizes)
        init_linear_(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.net(x)  # (B, C)
        loss = None if y is None else F.cross_entropy(logits, y)
        return logits, loss


def init_linear_(model: nn.Module, scheme: str | float = "kaiming",
                 generator: torch.Generator | None = None) -> nn.Module:
    """Redraw every ``nn.Linear`` of ``model`` in place: W ~ N(0, init_std^2), b = 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                fan_out, fan_in = m.weight.shape  # nn.Linear's weight is (out, in)
                m.weight.normal_(0.0, init_std(scheme, fan_in, fan_out), generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def load_numpy_weights(model: nn.Module, numpy_model: Sequential) -> nn.Module:
    """Copy a NumPy MLP's weights into the PyTorch one, layer by layer: weight = W.T."""
    ours = [m for m in model.modules() if isinstance(m, nn.Linear)]
    theirs = [layer for layer in numpy_model.layers if isinstance(layer, Linear)]
    _check_same_layers(ours, theirs)
    with torch.no_grad():
        for m, layer in zip(ours, theirs, strict=True):
            m.weight.copy_(torch.as_tensor(layer.W.value.T))  # (in, out) -> (out, in)
            m.bias.copy_(torch.as_tensor(layer.b.value))
    return model


# ---------------------------------------------------------------------------------------
# Data as tensors
# ---------------------------------------------------------------------------------------


def vision_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision MNIST-style dataset as two tensors, converted once:
    images float32 (N, 1, 28, 28) in [0, 1] (what ``transforms.ToTensor()`` gives per item)
    and labels int64 (N,)."""
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is None or targets is None:
        raise TypeError(f"{type(dataset).__name__} has no .data and .targets; pass a "
                        f"torchvision MNIST/FashionMNIST dataset (slm_course.data.load_vision)")
    x = torch.as_tensor(data).unsqueeze(1).float().div(255.0)  # (N, 1, 28, 28)
    return x, torch.as_tensor(targets).long()


def split_indices(n: int, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Carve a validation split from a training set: (train indices, val indices), disjoint,
    drawn by a random permutation seeded with ``seed`` (so every run carves the same one)."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must lie in (0, {n}), got {val_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def tensor_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
                  seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader over in-memory tensors that indexes a whole batch at once (one gather,
    not ``batch_size`` item look-ups and a collate). Shuffling is seeded with ``seed``."""
    dataset = TensorDataset(*tensors)
    sampler = (RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
               if shuffle else SequentialSampler(dataset))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last),
                      batch_size=None)  # each item the sampler yields is already a batch


# ---------------------------------------------------------------------------------------
# After training: predictions, accuracy, confusion matrix, mistakes
# ---------------------------------------------------------------------------------------


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """softmax(model(x)) in eval mode (dropout off, BatchNorm's running statistics), in
    batches, on the model's device; returns (N, C) on the CPU."""
    device = next(model.parameters()).device
    with evaluating(model):
        parts = [F.softmax(model(x[i:i + batch_size].to(device))[0].float(), dim=1).cpu()
                 for i in range(0, len(x), batch_size)]
    return torch.cat(parts)


def evaluate_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        batch_size: int = 2000) -> dict[str, float]:
    """{"loss": mean cross-entropy, "accuracy": fraction right} of ``model`` on (x, y)."""
    probs = predict_proba(model, x, batch_size)  # (N, C)
    y = y.cpu()
    loss = -probs[torch.arange(len(y)), y].clamp_min(1e-30).log().mean()
    return {"loss": float(loss), "accuracy": float((probs.argmax(1) == y).float().mean())}


def confusion_matrix(predicted: Any, target: Any, num_classes: int) -> np.ndarray:
    """M[i, j] = how many examples of true class i were predicted as class j (int64, C x C).
    The diagonal holds the right answers; row i sums to the number of class-i examples."""
    p = _check_class_ids(np.asarray(predicted).ravel(), num_classes)
    t = _check_class_ids(np.asarray(target).ravel(), num_classes)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions but {t.size} targets; pass one of each per example")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes)


def most_confident_mistakes(probs: Any, target: Any, k: int) -> np.ndarray:
    """Indices of the k wrong predictions made with the highest probability, most confident
    first.  probs: (N, C), target: (N,)."""
    probs, target = np.asarray(probs), np.asarray(target)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(predicted != target)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:k]


def activation_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          kind: type[nn.Module] = nn.ReLU) -> list[dict[str, torch.Tensor]]:
    """One forward and backward pass; for each ``kind`` layer (the activations), in order:
    {"activation": its output, "gradient": dL/d(that output)}, detached, (B, width)."""
    found: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        output.retain_grad()  # a non-leaf tensor keeps .grad only when asked
        found.append(output)

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, kind)]
    try:
        model.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    return [{"activation": a.detach(), "gradient": a.grad.detach()} for a in found]


# ---------------------------------------------------------------------------------------
# Early stopping: watch the validation split, keep the best weights
# ---------------------------------------------------------------------------------------


class EarlyStopping:
    """A training-loop callback: after each evaluation, keep a copy of the weights if
    ``metric`` improved (lower is better); ``stop`` turns True after ``patience`` evaluations
    without improvement. :func:`train_early_stopping` runs the loop until then."""

    def __init__(self, model: nn.Module, metric: str = "val_loss", patience: int = 3) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1 evaluation, got {patience}")
        self.model, self.metric, self.patience = model, metric, patience
        self.best, self.best_step, self.bad_evals = math.inf, -1, 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, kind: str, state: TrainState) -> None:
        if kind != "eval" or not state.history or self.metric not in state.history[-1]:
            return
        value = state.history[-1][self.metric]
        if value < self.best:
            self.best, self.best_step, self.bad_evals = value, state.step, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_evals += 1

    @property
    def stop(self) -> bool:
        return self.bad_evals >= self.patience

    def restore(self) -> None:
        """Load the best weights seen back into the model."""
        if self.best_state is None:
            raise RuntimeError(f"no evaluation reported {self.metric!r}; pass evaluate= "
                               f"returning it to train_early_stopping")
        self.model.load_state_dict(self.best_state)


def train_early_stopping(model: nn.Module, next_batch: Callable[[], Batch], cfg: TrainConfig,
                         *, evaluate: Callable[[], dict[str, float]], patience: int = 3,
                         metric: str = "val_loss", optimizer: torch.optim.Optimizer | None = None,
                         callbacks: Sequence[Callable[[str, TrainState], None]] = ()
                         ) -> tuple[TrainState, EarlyStopping]:
    """The course's loop, one evaluation interval at a time (``stop_at``), until ``metric``
    has not improved for ``patience`` evaluations; then the best weights are restored."""
    early = EarlyStopping(model, metric, patience)
    optimizer = optimizer or make_optimizer(model, cfg)  # one optimizer across the pieces
    state = TrainState()
    while state.step < cfg.max_steps and not early.stop:
        state = train(model, next_batch, cfg, optimizer=optimizer, evaluate=evaluate,
                      callbacks=[early, *callbacks], state=state,
                      stop_at=state.step + cfg.eval_interval)
    early.restore()
    return state, early


# ---------------------------------------------------------------------------------------
# An MLP autoencoder
# ---------------------------------------------------------------------------------------


class MLPAutoencoder(nn.Module):
    """Encoder MLP 784 -> ... -> latent, decoder MLP latent -> ... -> 784, sigmoid pixels.

    ``forward(x)`` returns ``(reconstruction (B, 1, 28, 28), loss)`` with loss the binary
    cross-entropy between reconstruction and x (pixels in [0, 1] as probabilities); there
    are no labels, so a batch is ``(x,)``.
    """

    def __init__(self, hidden: Sequence[int] = (256, 64), latent: int = 2) -> None:
        super().__init__()
        sizes = [784, *hidden, latent]
        self.encoder = MLPClassifier(sizes).net  # Flatten, Linear, ReLU, ..., Linear
        self.decoder = MLPClassifier(sizes[::-1]).net[1:]  # no Flatten: latent (B, k) in

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 1, 28, 28) -> (B, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.decoder(self.encode(x)).view(x.shape[0], 1, 28, 28)  # pixel logits
        loss = F.binary_cross_entropy_with_logits(logits, x.view_as(logits))
        return torch.sigmoid(logits), loss


# ---------------------------------------------------------------------------------------
# Argument checks with messages that say how to fix the call
# ---------------------------------------------------------------------------------------

_ACTIVATIONS = {"relu": (ReLU, nn.ReLU), "tanh": (Tanh, nn.Tanh)}  # NumPy layer, PyTorch


def _check_activation(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(_ACTIVATIONS)}")
    return name


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output size, all "
                         f"positive, e.g. (784, 256, 10); got {tuple(sizes)}")
    return sizes


def _check_class_ids(targets: Any, num_classes: int) -> np.ndarray:
    t = np.asarray(targets)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"class ids must be integers, got dtype {t.dtype}; "
                         f"pass labels such as y = [3, 0, 9], not one-hot rows or probabilities")
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes}), got range "
                         f"[{t.min()}, {t.max()}]; is num_classes right?")
    return t.astype(np.int64)


def _check_batching(n: int, batch_size: int) -> None:
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 examples and batch_size >= 1, got n={n}, "
                         f"batch_size={batch_size}")


def _check_same_layers(ours: list[nn.Linear], theirs: list[Linear]) -> None:
    shapes = [tuple(m.weight.shape[::-1]) for m in ours]
    numpy_shapes = [layer.W.value.shape for layer in theirs]
    if shapes != numpy_shapes:
        raise ValueError(f"the two networks differ: PyTorch layers (in, out) {shapes}, NumPy "
                         f"layers {numpy_shapes}; build both from the same sizes")
