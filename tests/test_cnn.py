"""slm_course.cnn against PyTorch: conv2d and max_pool2d, forward and autograd backward.

Everything NumPy runs in float64, where a right convolution matches
``torch.nn.functional.conv2d`` to a relative error far below 1e-6 and a wrong one (a flipped
kernel, a missed stride, a dropped overlap in col2im) misses by 1e-2 or more. Each test that
compares also shows, on a deliberately broken variant, that it would notice a mistake.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TOL, rel_err, t64

from slm_course.calculus import gradient_check
from slm_course.cnn import (
    LeNet5,
    NumpyConv2d,
    NumpyFlatten,
    NumpyMaxPool2d,
    SmallCNN,
    accuracy_under_shift,
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_loops,
    conv_bn_relu,
    conv_output_size,
    im2col,
    maxpool2d_backward,
    maxpool2d_forward,
    random_translate,
    receptive_field,
    translate_images,
)
from slm_course.data import load_vision
from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage07 import (
    check_cnn_challenge,
    check_conv2d_forward,
    check_conv_block,
    check_im2col,
    check_maxpool2d_backward,
)
from slm_course.numpy_nn import (
    Linear,
    ReLU,
    Sequential,
    SoftmaxCrossEntropyLoss,
    model_gradient_errors,
)

# (N, C, H, W, F, K, stride, padding): one channel, several, stride 2, padding, odd sizes
CONV_CASES = [
    (2, 1, 5, 5, 1, 3, 1, 0),
    (2, 3, 7, 6, 4, 3, 1, 1),
    (3, 2, 9, 9, 5, 3, 2, 1),
    (1, 4, 8, 10, 3, 5, 2, 2),
    (2, 3, 6, 6, 2, 1, 1, 0),
    (2, 2, 11, 7, 3, 4, 3, 2),
]
IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}F{c[4]}K{c[5]}s{c[6]}p{c[7]}" for c in CONV_CASES]


def _conv_problem(case, seed=0):
    N, C, H, W, F_, K, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F_, C, K, K))
    b = rng.standard_normal(F_)
    return x, w, b, stride, padding


@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_conv2d_forward_equals_torch(case):
    x, w, b, stride, padding = _conv_problem(case)
    want = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride,
                    padding=padding)
    assert rel_err(conv2d_forward(x, w, b, stride, padding), want) < 1e-12
    assert rel_err(conv2d_loops(x, w, b, stride, padding), want) < 1e-12


@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_conv2d_backward_equals_torch_autograd(case):
    x, w, b, stride, padding = _conv_problem(case, seed=1)
    y = conv2d_forward(x, w, b, stride, padding)
    G = np.random.default_rng(2).standard_normal(y.shape)  # L = sum(y * G), so dL/dy = G
    dx, dw, db = conv2d_backward(x, w, G, stride, padding)

    xt, wt, bt = t64(x), t64(w), t64(b)
    (F.conv2d(xt, wt, bt, stride=stride, padding=padding) * torch.tensor(G)).sum().backward()
    assert rel_err(dx, xt.grad) < TOL
    assert rel_err(dw, wt.grad) < TOL
    assert rel_err(db, bt.grad) < TOL


def test_conv2d_backward_equals_finite_differences():
    x, w, b, stride, padding = _conv_problem((2, 2, 6, 5, 3, 3, 2, 1), seed=3)
    G = np.random.default_rng(4).standard_normal(conv2d_forward(x, w, b, stride, padding).shape)
    dx, dw, db = conv2d_backward(x, w, G, stride, padding)
    assert gradient_check(lambda v: np.sum(conv2d_forward(v, w, b, stride, padding) * G), x,
                          dx, h=1e-6) < TOL
    assert gradient_check(lambda v: np.sum(conv2d_forward(x, v, b, stride, padding) * G), w,
                          dw, h=1e-6) < TOL
    assert gradient_check(lambda v: np.sum(conv2d_forward(x, w, v, stride, padding) * G), b,
                          db, h=1e-6) < TOL


def test_the_comparison_notices_a_flipped_kernel_and_a_lost_overlap():
    """The oracle tests can fail: convolution with a flipped kernel (true convolution, not
    cross-correlation) and a col2im that overwrites instead of adding both miss by far."""
    x, w, b, stride, padding = _conv_problem((2, 3, 7, 6, 4, 3, 1, 1))
    want = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=padding)
    flipped = conv2d_forward(x, w[:, :, ::-1, ::-1].copy(), b, stride, padding)
    assert rel_err(flipped, want) > 1e-2

    cols = im2col(x, 3, 3, 1, 1)
    ones = np.ones_like(cols)
    added = col2im(ones, x.shape, 3, 3, 1, 1)  # how many windows cover each pixel
    assert added.max() == 9 and added.min() == 4  # interior pixels 9, corners 4
    overwritten = np.minimum(added, 1.0)  # what a col2im with "=" instead of "+=" gives
    assert rel_err(overwritten, added) > 1e-2


def test_im2col_rows_are_receptive_fields():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    cols = im2col(x, 2, 3, stride=1, padding=0)  # OH = 3, OW = 3
    assert cols.shape == (2 * 3 * 3, 3 * 2 * 3)
    n, i, j = 1, 2, 1
    assert np.array_equal(cols[n * 9 + i * 3 + j], x[n, :, i:i + 2, j:j + 3].ravel())


@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> = <x, col2im(c)> for all x and c: col2im is im2col's transpose."""
    N, C, H, W, _, K, stride, padding = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W))
    c = rng.standard_normal(im2col(x, K, K, stride, padding).shape)
    lhs = np.sum(im2col(x, K, K, stride, padding) * c)
    rhs = np.sum(x * col2im(c, x.shape, K, K, stride, padding))
    assert abs(lhs - rhs) < 1e-9 * (abs(lhs) + 1)


def test_conv_output_size_and_bad_shapes():
    assert conv_output_size(28, 5, 1, 2) == 28 and conv_output_size(7, 3, 2, 1) == 4
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(3, 5)
    x, w, b = np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="input channels"):
        conv2d_forward(x, w, b)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        conv2d_forward(np.zeros((5, 5)), w, b)


# --- max-pooling ----------------------------------------------------------------------------

POOL_CASES = [(2, 3, 8, 8, 2, None), (1, 2, 7, 9, 3, 2), (2, 1, 6, 6, 3, 3), (3, 2, 5, 5, 2, 1)]
POOL_IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}k{c[4]}s{c[5]}" for c in POOL_CASES]


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_forward_and_backward_equal_torch(case):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, C, H, W))  # continuous values: no ties
    y = maxpool2d_forward(x, size, stride)
    G = rng.standard_normal(y.shape)
    dx = maxpool2d_backward(x, G, size, stride)

    xt = t64(x)
    yt = F.max_pool2d(xt, size, stride)
    (yt * torch.tensor(G)).sum().backward()
    assert rel_err(y, yt) < 1e-12
    assert rel_err(dx, xt.grad) < TOL


def test_maxpool_backward_routes_to_the_max_only():
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]]])
    assert maxpool2d_forward(x).item() == 5.0
    assert np.array_equal(maxpool2d_backward(x, np.array([[[[7.0]]]])),
                          [[[[0.0, 7.0], [0.0, 0.0]]]])
    spread = np.full_like(x, 7.0 / 4)  # the classic mistake: share the gradient equally
    assert rel_err(spread, maxpool2d_backward(x, np.array([[[[7.0]]]]))) > 1e-2


# --- the NumPy layers inside stage 05's Sequential ------------------------------------------


def test_numpy_cnn_gradients_check_out():
    rng = np.random.default_rng(7)
    model = Sequential(NumpyConv2d(2, 3, 3, padding=1, rng=rng), ReLU(), NumpyMaxPool2d(2),
                       NumpyConv2d(3, 4, 3, stride=2, rng=rng), ReLU(), NumpyFlatten(),
                       Linear(4 * 1 * 1, 5, rng=rng))
    x = rng.standard_normal((3, 2, 6, 6))
    errors = model_gradient_errors(model, SoftmaxCrossEntropyLoss(), x, np.array([0, 3, 4]))
    assert set(errors) == {"0.w", "0.b", "3.w", "3.b", "6.W", "6.b", "input"}
    assert max(errors.values()) < TOL, errors


def test_receptive_field():
    assert receptive_field([]) == 1
    assert receptive_field([(3, 1), (3, 1)]) == 5  # two 3x3 convs see 5x5
    assert receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)]) == 22  # SmallCNN
    assert receptive_field([(5, 1), (2, 2), (5, 1), (2, 2)]) == 16  # LeNet-5


# --- the PyTorch models and the shift helpers -----------------------------------------------


@pytest.mark.parametrize("make", [LeNet5, lambda: SmallCNN(width=8)], ids=["LeNet5", "SmallCNN"])
def test_models_return_logits_and_loss(make):
    torch.manual_seed(0)
    model = make()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 9, -100])
    logits, loss = model(x, y)
    assert logits.shape == (4, 10)
    assert torch.allclose(loss, F.cross_entropy(logits[:3], y[:3]))  # -100 is ignored
    logits2, none = model(x)
    assert none is None and logits2.shape == (4, 10)


def test_lenet5_has_the_papers_parameter_count():
    assert sum(p.numel() for p in LeNet5().parameters()) == 61_706


def test_translate_images():
    img = torch.arange(12.0).reshape(1, 3, 4)
    right = translate_images(img, 1, 0)
    assert torch.equal(right[0, :, 1:], img[0, :, :3]) and (right[0, :, 0] == 0).all()
    down_left = translate_images(img, -1, 2, fill=-1.0)
    assert torch.equal(down_left[0, 2:, :3], img[0, :1, 1:])
    assert (down_left[0, :2] == -1).all() and (down_left[0, :, 3] == -1).all()
    assert torch.equal(translate_images(img, 0, 0), img)
    with pytest.raises(ValueError, match="out of the frame"):
        translate_images(img, 4, 0)


def test_random_translate_is_a_per_image_shift():
    x = torch.randn(64, 2, 7, 7)
    out = random_translate(x, 2, generator=torch.Generator().manual_seed(0))
    seen = set()
    for n in range(len(x)):  # every output equals one of the 25 shifts of its own input
        match = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                 if torch.equal(out[n], translate_images(x[n], dx, dy))]
        assert len(match) == 1, n
        seen.add(match[0])
    assert len(seen) > 10  # and the shifts differ from image to image


def test_accuracy_under_shift_counts_right_answers():
    class FirstPixel(torch.nn.Module):  # predicts class 1 when the top-left pixel is on
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, y=None):
            on = (x[:, 0, 0, 0] > 0.5).float()
            return torch.stack([1 - on, on], dim=1), None

    images = torch.zeros(4, 1, 5, 5)
    images[:2, 0, 0, 0] = 1.0
    labels = torch.tensor([1, 1, 0, 0])
    model = FirstPixel().train()
    assert accuracy_under_shift(model, images, labels, [0, 1], batch_size=3) == [1.0, 0.5]
    assert model.training  # its mode is restored


# --- the exercise checks accept the reference and reject the usual mistakes -----------------


def test_checks_pass_the_reference():
    assert check_im2col(im2col)
    assert check_conv2d_forward(conv2d_forward)
    assert check_maxpool2d_backward(maxpool2d_backward)


def test_checks_reject_the_usual_mistakes():
    def im2col_wrong_order(x, kh, kw, stride=1, padding=0):  # (p, q, c) instead of (c, p, q)
        N, C = x.shape[:2]
        cols = im2col(x, kh, kw, stride, padding)
        return cols.reshape(-1, C, kh, kw).transpose(0, 2, 3, 1).reshape(cols.shape)

    def conv_no_stride(x, w, b, stride=1, padding=0):
        return conv2d_forward(x, w, b, 1, padding)

    def pool_spread(x, grad_out, size=2, stride=None):
        return np.repeat(np.repeat(grad_out, size, 2), size, 3) / size**2

    with pytest.raises(CheckFailed, match="order"):
        check_im2col(im2col_wrong_order)
    with pytest.raises(CheckFailed, match="stride"):
        check_conv2d_forward(conv_no_stride)
    with pytest.raises(CheckFailed, match="maximum"):
        check_maxpool2d_backward(pool_spread)


class _Block(torch.nn.Module):
    """A conv block for check_conv_block: right, or with one of the usual mistakes."""

    def __init__(self, c_in, c_out, *, bias=False, relu_first=False, pool=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
        self.norm = torch.nn.BatchNorm2d(c_out)
        self.relu_first, self.pool = relu_first, pool

    def forward(self, x):
        h = self.conv(x)
        h = self.norm(F.relu(h)) if self.relu_first else F.relu(self.norm(h))
        return F.max_pool2d(h, 2) if self.pool else h


def test_conv_block_check_accepts_the_block_and_names_the_mistakes():
    assert check_conv_block(_Block)
    assert check_conv_block(lambda i, o: torch.nn.Sequential(conv_bn_relu(i, o),
                                                             torch.nn.MaxPool2d(2)))
    for mistake, message in [({"bias": True}, "bias"), ({"relu_first": True}, "order"),
                             ({"pool": False}, "shape")]:
        with pytest.raises(CheckFailed, match=message):
            check_conv_block(lambda i, o, m=mistake: _Block(i, o, **m))


def test_challenge_check_scores_on_the_test_split():
    labels = load_vision(train=False).targets

    class Oracle:  # knows the answers: passes any target
        def predict(self, images):
            return labels[:len(images)]

    class Constant:  # always class 0: about 10%
        def predict(self, images):
            return torch.zeros(len(images), dtype=torch.long)

    assert check_cnn_challenge(Oracle(), target=0.99, n_images=500) == 1.0
    with pytest.raises(CheckFailed, match="target"):
        check_cnn_challenge(Constant(), target=0.5, n_images=500)
    with pytest.raises(CheckFailed, match="no predict"):
        check_cnn_challenge(object(), target=0.5, n_images=500)
