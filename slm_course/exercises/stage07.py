"""Checks for stage 07, convolutional networks (solutions/07_cnn).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.cnn`` (itself proven equal to PyTorch), and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.cnn import conv2d_forward, im2col, maxpool2d_backward
from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick


def check_im2col(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, kh, kw, stride, padding) -> cols`` of shape (N OH OW, C kh kw)."""
    name = "check_im2col"
    rng = np.random.default_rng(0)
    cases = [  # (what, x shape, kh, kw, stride, padding)
        ("one channel, 3x3, no padding", (1, 1, 4, 4), 3, 3, 1, 0),
        ("3 channels, 2x3 windows", (2, 3, 5, 6), 2, 3, 1, 0),
        ("padding 1", (2, 2, 4, 4), 3, 3, 1, 1),
        ("stride 2 and padding 1", (1, 2, 7, 7), 3, 3, 2, 1),
    ]
    for about, shape, kh, kw, stride, padding in cases:
        x = rng.standard_normal(shape)
        want = im2col(x, kh, kw, stride, padding)
        got = as_array(name, call_learner(name, fn, x.copy(), kh, kw, stride, padding), "cols")
        expect(name, got.shape == want.shape,
               f"{about}: cols has shape {got.shape}, expected {want.shape}",
               hint="one row per output position (N * OH * OW rows, n first, then i, then j) "
                    "and one column per kernel entry (C * kh * kw); OH = (H + 2 padding - kh) "
                    "// stride + 1")
        if not np.allclose(got, want) and np.allclose(np.sort(got, axis=1), np.sort(want, axis=1)):
            expect(name, False, f"{about}: each row holds the right values in the wrong order",
                   hint="flatten each window in the order (channel, row, column), the order of "
                        "w.reshape(F, -1), e.g. window.reshape(-1) for a (C, kh, kw) window")
        expect_close(name, got, want, what=f"cols for {about}",
                     hint="row n*OH*OW + i*OW + j is x_padded[n, :, i*stride:i*stride+kh, "
                          "j*stride:j*stride+kw] flattened; pad with zeros on all four sides")
    return passed(name, f"{len(cases)} cases, with stride and padding")


def check_conv2d_forward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, w, b, stride, padding) -> y`` of shape (N, F, OH, OW)."""
    name = "check_conv2d_forward"
    rng = np.random.default_rng(1)
    cases = [  # (what, x shape, w shape, stride, padding)
        ("one filter on one channel", (1, 1, 5, 5), (1, 1, 3, 3), 1, 0),
        ("3 channels in, 4 filters out", (2, 3, 6, 6), (4, 3, 3, 3), 1, 0),
        ("padding 2 with a 5x5 kernel", (2, 2, 6, 7), (3, 2, 5, 5), 1, 2),
        ("stride 2 and padding 1", (2, 3, 7, 7), (2, 3, 3, 3), 2, 1),
    ]
    for about, x_shape, w_shape, stride, padding in cases:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        b = rng.standard_normal(w_shape[0])
        want = conv2d_forward(x, w, b, stride, padding)
        got = as_array(name, call_learner(name, fn, x.copy(), w.copy(), b.copy(), stride,
                                          padding), "y")
        if got.shape != want.shape and stride > 1:
            expect(name, False, f"{about}: y has shape {got.shape}, expected {want.shape}",
                   hint="with stride s the window moves s pixels: OH = (H + 2 padding - KH) "
                        "// s + 1, and im2col must be called with the stride")
        flipped = conv2d_forward(x, w[:, :, ::-1, ::-1].copy(), b, stride, padding)
        if got.shape == want.shape and np.allclose(got, flipped) and not np.allclose(got, want):
            expect(name, False, f"{about}: you flipped the kernel",
                   hint="deep-learning convolution is a cross-correlation: multiply the window "
                        "by w as it is, without rotating it by 180 degrees")
        expect_close(name, got, want, what=f"y for {about}",
                     hint="y = im2col(x) @ w.reshape(F, -1).T + b gives (N*OH*OW, F); reshape to "
                          "(N, OH, OW, F) and transpose to (N, F, OH, OW), not reshape directly")
    return passed(name, f"{len(cases)} cases, with stride, padding and several channels")


def check_maxpool2d_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, grad_out, size, stride) -> dx`` for max-pooling."""
    name = "check_maxpool2d_backward"
    rng = np.random.default_rng(2)
    cases = [  # (what, x shape, size, stride)
        ("2x2 windows, stride 2", (2, 3, 4, 4), 2, 2),
        ("3x3 windows on 7x7, stride 2 (windows overlap)", (1, 2, 7, 7), 3, 2),
        ("an odd size that leaves the last row and column out", (2, 1, 5, 5), 2, 2),
    ]
    for about, shape, size, stride in cases:
        x = rng.standard_normal(shape)
        OH, OW = (shape[2] - size) // stride + 1, (shape[3] - size) // stride + 1
        g = rng.standard_normal((shape[0], shape[1], OH, OW))
        want = maxpool2d_backward(x, g, size, stride)
        got = as_array(name, call_learner(name, fn, x.copy(), g.copy(), size, stride), "dx")
        expect(name, got.shape == x.shape, f"{about}: dx has shape {got.shape}, expected "
               f"{x.shape}", hint="the gradient has the shape of the input x, not of the output")
        expect(name, np.count_nonzero(got) <= g.size,
               f"{about}: more entries of dx are nonzero than there are windows",
               hint="only the maximum of each window affected the output, so only that one "
                    "position gets the window's gradient; the other positions get 0")
        expect_close(name, got, want, what=f"dx for {about}",
                     hint="find each window's argmax and add grad_out there; where windows "
                          "overlap, one pixel can win twice, so add (+=), do not overwrite")
    return passed(name, f"{len(cases)} cases, including overlapping windows")


def check_conv_block(cls: Callable[..., Any]) -> bool:
    """Check ``cls(in_channels, out_channels)``: conv 3x3 (padding 1, no bias), BatchNorm,
    ReLU, 2x2 max-pooling, as an ``nn.Module``: (N, C_in, H, W) -> (N, C_out, H/2, W/2)."""
    name = "check_conv_block"
    order = ("Conv2d(in, out, 3, padding=1, bias=False) -> BatchNorm2d(out) -> ReLU -> "
             "MaxPool2d(2)")
    for c_in, c_out, size in [(1, 4, 8), (3, 5, 6)]:
        torch.manual_seed(0)
        block = call_learner(name, cls, c_in, c_out)
        expect(name, isinstance(block, nn.Module), "ConvBlock(...) must build an nn.Module",
               got=type(block).__name__, hint="class ConvBlock(nn.Module): call "
               "super().__init__() first, then create the layers")
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
        expect(name, len(convs) == 1 and len(norms) == 1,
               f"expected one Conv2d and one BatchNorm2d, found {len(convs)} and {len(norms)}",
               hint=order)
        conv, norm = convs[0], norms[0]
        expect(name, conv.bias is None, "the convolution has a bias",
               hint="BatchNorm subtracts the mean right after, which removes any bias; pass "
                    "bias=False and let BatchNorm's own shift (beta) play its part")
        n_params = sum(p.numel() for p in block.parameters())
        want_params = c_out * c_in * 9 + 2 * c_out
        expect(name, n_params == want_params, f"{n_params} parameters, expected {want_params}",
               hint=f"a 3x3 kernel per (out, in) pair and BatchNorm's gain and shift: {order}")
        x = torch.randn(2, c_in, size, size, generator=torch.Generator().manual_seed(c_in))
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
            got = call_learner(name, block.train(), x)
        want = F.max_pool2d(F.relu(F.batch_norm(
            F.conv2d(x, conv.weight, padding=1), None, None, norm.weight, norm.bias,
            training=True)), 2)
        expect(name, isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape),
               f"output shape {tuple(getattr(got, 'shape', ()))}, expected {tuple(want.shape)}",
               hint="padding=1 keeps a 3x3 convolution's size; the 2x2 pooling then halves it")
        expect_close(name, got, want, what=f"the output for {c_in} -> {c_out} channels",
                     rtol=1e-4, atol=1e-5, hint=f"the order matters: {order} (ReLU after "
                     "BatchNorm, pooling last)")
    return passed(name, "two channel counts: layers, parameter count, output in train mode")


def check_cnn_challenge(classifier: Any, target: float | None = None,
                        n_images: int | None = None) -> float:
    """Score ``classifier.predict(images) -> labels`` on test images it has not trained on.

    ``images`` is a uint8 tensor (N, 28, 28) of the test split of ``vision_name()``'s dataset;
    the target is 99.2% on MNIST and 91.0% on Fashion-MNIST in the full profile (all 10,000
    test images), 95% / 75% on the first 2,000 in the fast profile (CI's few seconds of
    training). This is a self-check: it trusts you not to train on the test split.
    """
    from slm_course.data import load_vision, vision_name

    name = "check_cnn_challenge"
    dataset = vision_name()
    if target is None:
        full_target = {"mnist": 0.992, "fashion-mnist": 0.910}[dataset]
        target = pick(fast={"mnist": 0.95, "fashion-mnist": 0.75}[dataset], full=full_target)
    n_images = n_images or pick(fast=2000, full=10_000)
    test = load_vision(dataset, train=False)
    images, labels = test.data[:n_images], test.targets[:n_images]  # uint8 (N, 28, 28), (N,)
    predict = getattr(classifier, "predict", None)
    expect(name, callable(predict), "the classifier has no predict method",
           hint="write a class with a method predict(self, images) -> labels")
    got = call_learner(name, predict, images.clone())
    got = torch.as_tensor(got).reshape(-1).cpu()
    expect(name, got.shape == labels.shape, f"predict returned {tuple(got.shape)} labels for "
           f"{len(labels)} images", hint="return one class id per image, e.g. "
           "logits.argmax(dim=-1), for all the images you were given")
    accuracy = float((got.long() == labels).float().mean())
    expect(name, accuracy >= target, f"test accuracy {accuracy:.2%} on {dataset}, the target "
           f"is {target:.1%}", hint="normalise the images the way you did in training, put "
           "the model in eval mode (BatchNorm, dropout), and train longer or wider")
    passed(name, f"{accuracy:.2%} test accuracy on {n_images:,} {dataset} images "
           f"(target {target:.1%})")
    return accuracy
