"""Convolution from scratch, then convolutional networks: loops, im2col, pooling, LeNet-5.

A 2-D convolution layer (a cross-correlation, as in every deep-learning library) slides F
filters of shape (C, KH, KW) over an input of shape (N, C, H, W):

    y[n, f, i, j] = b[f] + sum_{c, p, q} x_pad[n, c, i s + p, j s + q] w[f, c, p, q]
    OH = (H + 2 pad - KH) // s + 1          OW = (W + 2 pad - KW) // s + 1

im2col copies every receptive field into one row, so the whole layer is one matrix
multiplication, and its backward is the backward of that matmul (stage 05's
``linear_backward``) followed by col2im, which adds each row back where it came from:

    cols: (N OH OW, C KH KW)     y = cols W^T + b     dL/dx = col2im(dL/dcols)

Max-pooling keeps the largest value of each window; its gradient flows to that one
position only. ``tests/test_cnn.py`` proves the NumPy code equal to
``torch.nn.functional.conv2d`` / ``max_pool2d`` and their autograd gradients in float64.

The PyTorch half: :class:`LeNet5` (LeCun et al., 1998) and :class:`SmallCNN`, a stack of
conv-BatchNorm-ReLU blocks; both return ``(logits, loss)`` like every model of the course,
so ``slm_course.train.train`` trains them. :func:`translate_images` and
:func:`random_translate` shift images for the translation experiment and for augmentation.

Stage 07: convolutional networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.mlp import evaluate_classifier
from slm_course.numpy_nn import Layer, Parameter, linear_backward

# ---------------------------------------------------------------------------------------
# NumPy: convolution as loops, as im2col + one matmul, and its backward.
# ---------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: (size + 2 padding - kernel) // stride + 1."""
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1 or kernel < 1 or stride < 1 or padding < 0:
        raise ValueError(f"a kernel of {kernel} with stride {stride} and padding {padding} "
                         f"does not fit an input of {size}; pad more or use a smaller kernel")
    return out


def conv2d_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                 padding: int = 0) -> np.ndarray:
    """The definition, one output value at a time (slow: for teaching and testing only).

    x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> y: (N, F, OH, OW).
    """
    F_, _, KH, KW = _check_conv(x, w, b)
    N, _, H, W = x.shape
    OH, OW = conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, F_, OH, OW))
    for n in range(N):
        for f in range(F_):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
                    y[n, f, i, j] = np.sum(window * w[f]) + b[f]  # (C, KH, KW) dot (C, KH, KW)
    return y


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Every (C, kh, kw) receptive field of x as one row: (N, C, H, W) -> (N OH OW, C kh kw).

    Row n OH OW + i OW + j holds the window under output (n, i, j), flattened in the order
    (c, p, q), the order of ``w.reshape(F, -1)``.
    """
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, stride, padding), conv_output_size(W, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((N, C, kh, kw, OH, OW), dtype=xp.dtype)
    for p in range(kh):  # one strided slice per kernel offset, not one per output pixel
        for q in range(kw):
            cols[:, :, p, q] = xp[:, :, p:p + stride * OH:stride, q:q + stride * OW:stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * kh * kw)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every row back onto the window it was copied from.

    Overlapping windows share pixels, so their contributions sum: that sum is dL/dx.
    cols: (N OH OW, C kh kw) -> (N, C, H, W).
    """
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, kh, stride, padding), conv_output_size(W, kw, stride, padding)
    cols = cols.reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    xp = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xp[:, :, p:p + stride * OH:stride, q:q + stride * OW:stride] += cols[:, :, p, q]
    return xp[:, :, padding:padding + H, padding:padding + W]


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                   padding: int = 0) -> np.ndarray:
    """y = conv2d(x, w) + b as im2col and one matmul.

    x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> y: (N, F, OH, OW).
    """
    F_, _, KH, KW = _check_conv(x, w, b)
    N, _, H, W = x.shape
    OH, OW = conv_output_size(H, KH, stride, padding), conv_output_size(W, KW, stride, padding)
    cols = im2col(x, KH, KW, stride, padding)  # (N OH OW, C KH KW)
    y = cols @ w.reshape(F_, -1).T + b  # (N OH OW, F): a linear layer applied to every window
    return y.reshape(N, OH, OW, F_).transpose(0, 3, 1, 2)  # (N, F, OH, OW)


def conv2d_backward(x: np.ndarray, w: np.ndarray, grad_out: np.ndarray, stride: int = 1,
                    padding: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward`, given g = dL/dy of shape (N, F, OH, OW).

    The forward is the linear layer cols W^T + b, so stage 05's ``linear_backward`` gives
    dL/dcols, dL/dW and dL/db; col2im sends dL/dcols back to the pixels: (dx, dw, db).
    """
    F_, C, KH, KW = _check_conv(x, w)
    _check_grad_out(x, w, grad_out, stride, padding)
    cols = im2col(x, KH, KW, stride, padding)  # (N OH OW, C KH KW), as in the forward
    g = grad_out.transpose(0, 2, 3, 1).reshape(-1, F_)  # (N OH OW, F)
    dcols, dW, db = linear_backward(cols, w.reshape(F_, -1).T, g)  # W here is (C KH KW, F)
    dx = col2im(dcols, x.shape, KH, KW, stride, padding)  # (N, C, H, W)
    return dx, dW.T.reshape(F_, C, KH, KW), db


# ---------------------------------------------------------------------------------------
# NumPy: max-pooling.
# ---------------------------------------------------------------------------------------


def maxpool2d_forward(x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """y[n, c, i, j] = max of the size x size window at (i s, j s); stride defaults to size.

    x: (N, C, H, W) -> y: (N, C, OH, OW), OH = (H - size) // stride + 1.
    """
    N, C, H, W = _check_4d("x", x).shape
    stride = stride or size
    windows = im2col(x.reshape(N * C, 1, H, W), size, size, stride)  # (N C OH OW, size^2)
    OH, OW = conv_output_size(H, size, stride), conv_output_size(W, size, stride)
    return windows.max(axis=1).reshape(N, C, OH, OW)


def maxpool2d_backward(x: np.ndarray, grad_out: np.ndarray, size: int = 2,
                       stride: int | None = None) -> np.ndarray:
    """dL/dx: each window's gradient goes to the position of its maximum, the rest get 0.

    (Ties go to the first maximum in row-major order, as in PyTorch.) Windows that overlap
    (stride < size) add their gradients, which col2im does.
    """
    N, C, H, W = _check_4d("x", x).shape
    stride = stride or size
    windows = im2col(x.reshape(N * C, 1, H, W), size, size, stride)  # (N C OH OW, size^2)
    _expect_size("grad_out", grad_out, windows.shape[0], "it must match the pooled output")
    dwindows = np.zeros_like(windows)
    winner = windows.argmax(axis=1)  # (N C OH OW,) the position that produced the max
    dwindows[np.arange(len(winner)), winner] = grad_out.reshape(-1)
    return col2im(dwindows, (N * C, 1, H, W), size, size, stride).reshape(N, C, H, W)


# ---------------------------------------------------------------------------------------
# NumPy layers in stage 05's style (forward caches, backward writes .grad).
# ---------------------------------------------------------------------------------------


class NumpyConv2d(Layer):
    """A convolution layer for stage 05's ``Sequential``: w (F, C, KH, KW), b (F,).

    w starts as N(0, 2 / (C KH KW)) (Kaiming, for a ReLU after it), b as 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, padding: int = 0, rng: np.random.Generator | None = None):
        rng = rng or np.random.default_rng()
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.w = Parameter(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))
        self.b = Parameter(np.zeros(out_channels))
        self.stride, self.padding = stride, padding
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = np.asarray(x, dtype=np.float64)  # (N, C, H, W)
        return conv2d_forward(self._x, self.w.value, self.b.value, self.stride, self.padding)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        dx, self.w.grad, self.b.grad = conv2d_backward(
            self._cached(self._x), self.w.value, grad_out, self.stride, self.padding)
        return dx

    def parameters(self) -> dict[str, Parameter]:
        return {"w": self.w, "b": self.b}

    def __repr__(self) -> str:
        F_, C, K, _ = self.w.value.shape
        return f"NumpyConv2d({C}, {F_}, {K}, stride={self.stride}, padding={self.padding})"


class NumpyMaxPool2d(Layer):
    """Max-pooling over size x size windows (stride defaults to size)."""

    def __init__(self, size: int = 2, stride: int | None = None) -> None:
        self.size, self.stride = size, stride
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = np.asarray(x, dtype=np.float64)
        return maxpool2d_forward(self._x, self.size, self.stride)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return maxpool2d_backward(self._cached(self._x), grad_out, self.size, self.stride)


class NumpyFlatten(Layer):
    """(N, C, H, W) -> (N, C H W), so a ``Linear`` can follow; backward reshapes back."""

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._shape is None:
            self._cached(None)
        return grad_out.reshape(self._shape)


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """How many input pixels (along one axis) one output unit sees, for (kernel, stride) layers.

        r_0 = 1,  j_0 = 1;    r_l = r_{l-1} + (k_l - 1) j_{l-1},   j_l = j_{l-1} s_l

    j is the distance, in input pixels, between neighbouring units of layer l.
    """
    r, jump = 1, 1
    for kernel, stride in layers:
        r, jump = r + (kernel - 1) * jump, jump * stride
    return r


# ---------------------------------------------------------------------------------------
# PyTorch: LeNet-5 and a small modern CNN, both model(x, y) -> (logits, loss).
# ---------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 (LeCun, Bottou, Bengio, Haffner, 1998) for 28x28 digits, 61,706 parameters.

    conv 5x5 (6, padded to keep 28x28) -> tanh -> avg-pool 2 -> conv 5x5 (16) -> tanh ->
    avg-pool 2 -> 400 -> 120 -> 84 -> 10, with tanh between the linear layers, as in the paper
    (its sparse C3 connection table and RBF output are replaced by the usual dense versions).
    """

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),  # (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),  # (B, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, n_classes),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.classifier(self.features(x))  # (B, 1, 28, 28) -> (B, n_classes)
        return logits, _cross_entropy(logits, y)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution (size kept, no bias: BatchNorm's shift replaces it), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks, each followed by 2x2 max-pooling, then a small MLP head.

    (B, 1, 28, 28) -> (B, w, 14, 14) -> (B, 2w, 7, 7) -> (B, 4w, 3, 3) -> (B, hidden) -> (B, 10)
    """

    def __init__(self, width: int = 16, hidden: int = 128, n_classes: int = 10,
                 dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(1, w), nn.MaxPool2d(2),  # (B, w, 14, 14)
            conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d(2),  # (B, 4w, 3, 3)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w * 3 * 3, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.classifier(self.features(x))  # (B, n_classes)
        return logits, _cross_entropy(logits, y)


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
    return None if y is None else F.cross_entropy(logits, y, ignore_index=-100)


# ---------------------------------------------------------------------------------------
# Shifting images: the translation experiment and data augmentation.
# ---------------------------------------------------------------------------------------


def translate_images(images: torch.Tensor, dx: int, dy: int, fill: float = 0.0
                     ) -> torch.Tensor:
    """Shift a batch (..., H, W) right by dx and down by dy pixels; what moves in is ``fill``."""
    H, W = images.shape[-2:]
    if abs(dx) >= W or abs(dy) >= H:
        raise ValueError(f"a shift of ({dx}, {dy}) moves a {H}x{W} image out of the frame")
    out = torch.full_like(images, fill)
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        images[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def random_translate(images: torch.Tensor, max_shift: int, fill: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of (N, C, H, W) by its own random (dx, dy) in [-max_shift, max_shift]:
    pad by max_shift, then crop a random H x W window (one gather, no Python loop)."""
    N, C, H, W = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s), value=fill)  # (N, C, H + 2s, W + 2s)
    top = torch.randint(0, 2 * s + 1, (N, 1), generator=generator).to(images.device)
    left = torch.randint(0, 2 * s + 1, (N, 1), generator=generator).to(images.device)
    rows = (top + torch.arange(H, device=images.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (left + torch.arange(W, device=images.device))[:, None, None, :]  # (N, 1, 1, W)
    n = torch.arange(N, device=images.device)[:, None, None, None]
    c = torch.arange(C, device=images.device)[None, :, None, None]
    return padded[n, c, rows, cols]


def accuracy_under_shift(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         shifts: Sequence[int], fill: float = 0.0, batch_size: int = 1000
                         ) -> list[float]:
    """Test accuracy with every image moved k pixels right and k down, for each k in shifts.

    ``fill`` is the value of an empty pixel (after normalisation, -mean / std). The scoring
    is stage 06's :func:`slm_course.mlp.evaluate_classifier` (eval mode, batched).
    """
    return [evaluate_classifier(model, translate_images(images, k, k, fill), labels,
                                batch_size)["accuracy"] for k in shifts]


# ---------------------------------------------------------------------------------------
# Argument checks, kept out of the algorithms above.
# ---------------------------------------------------------------------------------------


def _check_4d(name: str, a: np.ndarray) -> np.ndarray:
    if np.ndim(a) != 4:
        raise ValueError(f"{name} must be a batch of images (N, C, H, W), got shape "
                         f"{np.shape(a)}; add axes with x[None, None] or x[:, None]")
    return a


def _check_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
                ) -> tuple[int, int, int, int]:
    _check_4d("x", x)
    _check_4d("w", w)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} input channels but x has {x.shape[1]}; "
                         f"w is (F, C, KH, KW) with C = x.shape[1]")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},), one bias per filter, "
                         f"got {np.shape(b)}")
    return w.shape


def _check_grad_out(x: np.ndarray, w: np.ndarray, grad_out: np.ndarray, stride: int,
                    padding: int) -> None:
    N, _, H, W = x.shape
    F_, _, KH, KW = w.shape
    want = (N, F_, conv_output_size(H, KH, stride, padding),
            conv_output_size(W, KW, stride, padding))
    if np.shape(grad_out) != want:
        raise ValueError(f"grad_out has shape {np.shape(grad_out)}, the layer's output has "
                         f"{want}; pass dL/dy for this layer's y")


def _expect_size(name: str, a: np.ndarray, size: int, why: str) -> None:
    if np.size(a) != size:
        raise ValueError(f"{name} has {np.size(a)} entries, expected {size}: {why}")
