"""Checks for stage 06, the MLP on MNIST (solutions/06_mlp_mnist).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.mlp``, and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake. The open
challenge, :func:`check_mlp_challenge`, scores the learner's classifier on the test split.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.helpers.workload import is_fast
from slm_course.mlp import MLPClassifier, epoch_batches, softmax_cross_entropy_grad

#: the open challenge's test accuracy, by dataset: the full profile's target, and a
#: CI-sized one for the fast profile (a model trained in seconds on one CPU thread)
CHALLENGE_TARGETS = {"mnist": {"full": 0.98, "fast": 0.95},
                     "fashion-mnist": {"full": 0.89, "fast": 0.82}}


def check_softmax_cross_entropy_grad(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, targets) -> dL/dlogits`` for the mean softmax cross-entropy."""
    name = "check_softmax_cross_entropy_grad"
    rng = np.random.default_rng(6)
    cases = [
        ("a batch of 4 with 3 classes", rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])),
        ("a batch of one (N = 1)", rng.standard_normal((1, 10)), np.array([7])),
        ("large logits (1000): exp overflows unless you subtract the max",
         np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]]), np.array([0, 2])),
    ]
    for about, z, y in cases:
        got = as_array(name, call_learner(name, fn, z.copy(), y.copy()), "dL/dlogits")
        want = softmax_cross_entropy_grad(z, y)
        expect(name, got.shape == want.shape, f"{about}: dL/dlogits has shape {got.shape}, "
               f"expected {want.shape}", hint="the gradient has the shape of the logits (N, C)")
        expect(name, bool(np.isfinite(got).all()), f"{about}: the gradient has nan or inf",
               got=got, hint="compute softmax as exp(z - max) / sum(exp(z - max)), row by row")
        rows = got.sum(axis=1)
        expect(name, bool(np.allclose(rows, 0, atol=1e-8)), f"{about}: a row of the gradient "
               f"does not sum to 0", got=rows,
               hint="subtract the one-hot target: p - y sums to 1 - 1 = 0 in every row")
        expect_close(name, got, want, what=f"dL/dlogits for {about}",
                     hint="(softmax(z) - onehot(y)) / N: divide by the batch size N, because "
                          "the loss is a mean over the batch")
    return passed(name, f"{len(cases)} cases, including N = 1 and logits of 1000")


def check_epoch_batches(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, batch_size, rng) -> list of index arrays``: one shuffled epoch."""
    name = "check_epoch_batches"
    for n, bs in ((100, 32), (64, 16), (5, 8)):  # a short last batch; exact; one batch
        got = call_learner(name, fn, n, bs, np.random.default_rng(0))
        expect(name, isinstance(got, list | tuple) and len(got) > 0,
               f"n={n}, batch_size={bs}: expected a list of index arrays", got=got,
               hint="collect the batches in a list and return it")
        parts = [np.asarray(b).ravel() for b in got]
        sizes = [len(b) for b in parts]
        want_sizes = [len(b) for b in epoch_batches(n, bs, np.random.default_rng(0))]
        expect(name, sizes == want_sizes, f"n={n}, batch_size={bs}: wrong batch sizes",
               expected=want_sizes, got=sizes,
               hint="cut the permutation every batch_size indices and keep the short last "
                    "batch: range(0, n, batch_size); dropping it loses examples each epoch")
        every = np.sort(np.concatenate(parts))
        expect(name, np.array_equal(every, np.arange(n)), f"n={n}: an epoch must use every "
               f"index exactly once", got=every,
               hint="shuffle a permutation (rng.permutation(n)) rather than drawing indices "
                    "with replacement (rng.integers), which repeats some and skips others")
    got = [np.asarray(b).ravel() for b in call_learner(name, fn, 100, 32, np.random.default_rng(1))]
    expect(name, not np.array_equal(np.concatenate(got), np.arange(100)),
           "the batches are in order 0, 1, 2, ...: nothing was shuffled",
           hint="shuffle every epoch with order = rng.permutation(n)")
    rng = np.random.default_rng(2)
    first, second = (np.concatenate(call_learner(name, fn, 50, 10, rng)) for _ in range(2))
    expect(name, not np.array_equal(first, second),
           "two epochs drawn with the same generator came out in the same order",
           hint="draw the permutation from the rng you are given, inside the function, so "
                "each call continues its stream (do not reseed it)")
    want = np.concatenate(epoch_batches(100, 32, np.random.default_rng(1)))
    expect_close(name, np.concatenate(got), want, what="the order of the examples",
                 hint="use order = rng.permutation(n) once, then slice it, so that the same "
                      "seed gives the same batches as the course's reference")
    return passed(name, "3 sizes, shuffled, a new order each epoch, every example once")


def check_mlp_module(fn: Callable[..., Any]) -> bool:
    """Check ``fn(sizes) -> nn.Module`` whose ``forward(x, y=None)`` returns (logits, loss)."""
    name = "check_mlp_module"
    torch.manual_seed(0)
    for sizes, shape in (((784, 32, 10), (5, 1, 28, 28)), ((784, 64, 32, 10), (3, 784)),
                         ((20, 5), (4, 20))):
        model = call_learner(name, fn, sizes)
        expect(name, isinstance(model, nn.Module), f"sizes={sizes}: expected an nn.Module",
               got=model, hint="define a class that subclasses nn.Module and return an instance")
        ours = [m for m in model.modules() if isinstance(m, nn.Linear)]
        want_shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
        expect(name, [tuple(m.weight.shape) for m in ours] == want_shapes,
               f"sizes={sizes}: the nn.Linear layers have the wrong shapes",
               expected=want_shapes, got=[tuple(m.weight.shape) for m in ours],
               hint="one nn.Linear(sizes[i], sizes[i + 1]) per consecutive pair of sizes; "
                    "its weight has shape (out, in)")
        reference = MLPClassifier(sizes)
        with torch.no_grad():
            for mine, theirs in zip(ours, [m for m in reference.modules()
                                           if isinstance(m, nn.Linear)], strict=True):
                theirs.weight.copy_(mine.weight)
                theirs.bias.copy_(mine.bias)
        x, y = torch.rand(shape), torch.randint(0, sizes[-1], (shape[0],))
        out = call_learner(name, model, x, y)
        expect(name, isinstance(out, tuple | list) and len(out) == 2,
               "forward(x, y) must return a pair (logits, loss)", got=out,
               hint="end forward with `return logits, loss`")
        want_logits, want_loss = reference(x, y)
        expect_close(name, out[0], want_logits.detach(), what=f"logits for sizes={sizes}",
                     rtol=1e-4, atol=1e-5,
                     hint="flatten the images (nn.Flatten or x.view(len(x), -1)), put a ReLU "
                          "between layers but not after the last one, and return raw logits "
                          "(no softmax: F.cross_entropy applies log-softmax itself)")
        expect_close(name, out[1], want_loss.detach(), what="the loss", rtol=1e-4,
                     hint="loss = F.cross_entropy(logits, y), a mean over the batch")
        no_target = call_learner(name, model, x)
        expect(name, isinstance(no_target, tuple | list) and no_target[1] is None,
               "forward(x) without targets must return (logits, None)", got=no_target,
               hint="give y a default, `def forward(self, x, y=None)`, and compute the loss "
                    "only when y is not None")
    return passed(name, "3 shapes: logits, loss, and (logits, None) without targets")


def check_train_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(model, optimizer, x, y) -> float``: one step, zero_grad/backward/step."""
    name = "check_train_step"
    torch.manual_seed(1)
    mine = MLPClassifier((12, 8, 3))
    reference = copy.deepcopy(mine)
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
        _, loss = reference(x, y)
        opt_ref.zero_grad()
        loss.backward()
        opt_ref.step()
        got = call_learner(name, fn, mine, opt_mine, x, y)
        expect(name, isinstance(got, float | int) or (torch.is_tensor(got) and got.numel() == 1),
               "return the loss as a number", got=got, hint="return loss.item()")
        expect_close(name, float(got), loss.item(), what=f"the loss returned at step {step + 1}",
                     rtol=1e-5, hint="return the loss of this batch, computed before the update")
        for (pname, p), q in zip(mine.named_parameters(), reference.parameters(), strict=True):
            expect_close(name, p.detach(), q.detach(), what=f"{pname} after step {step + 1}",
                         rtol=1e-5, atol=1e-7,
                         hint=("nothing changed: call optimizer.step() after loss.backward(), "
                               "not before it" if step == 0 else
                               "the first step was right, a later one is not: call "
                               "optimizer.zero_grad() every step, or the gradients of "
                               "earlier batches add up in .grad"))
    return passed(name, "3 steps with SGD + momentum match the reference")


def check_mlp_challenge(build: Callable[[], Any], target: float | None = None) -> bool:
    """The open challenge: ``build()`` returns an object whose ``predict(images)`` gives
    labels; it is scored on the test split, which it must never have trained on.

    images: float32 (N, 1, 28, 28) in [0, 1]; labels: (N,) integers. The target is
    :data:`CHALLENGE_TARGETS` for the dataset and profile unless ``target`` is given.
    """
    from slm_course.data import load_vision, vision_name
    from slm_course.mlp import vision_tensors

    name = "check_mlp_challenge"
    dataset, profile = vision_name(), "fast" if is_fast() else "full"
    target = CHALLENGE_TARGETS[dataset][profile] if target is None else target
    start = time.perf_counter()
    classifier = call_learner(name, build)
    trained = time.perf_counter() - start
    expect(name, callable(getattr(classifier, "predict", None)),
           "build() must return an object with a predict(images) method", got=classifier,
           hint="return an instance of your class, e.g. `return MyClassifier(model)`")
    images, labels = vision_tensors(load_vision(dataset, train=False))
    predicted = call_learner(name, classifier.predict, images.clone())
    got = as_array(name, predicted, "predict(images)")
    expect(name, got.shape == (len(labels),), f"predict returned shape {got.shape}, "
           f"expected ({len(labels)},): one label per image",
           hint="return logits.argmax(dim=1), not the logits or the probabilities")
    accuracy = float((got == labels.numpy()).mean())
    expect(name, accuracy >= target, f"test accuracy {accuracy:.2%} is below the target "
           f"{target:.2%} ({dataset}, {profile} profile)",
           hint="train longer or wider, try AdamW with a cosine schedule, dropout between "
                "layers, and check that predict runs the model in eval mode")
    return passed(name, f"{accuracy:.2%} on {len(labels):,} {dataset} test images "
                        f"(target {target:.2%}, {profile} profile; built in {trained:.0f} s)")
