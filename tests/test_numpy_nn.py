"""slm_course.numpy_nn against two oracles: central finite differences and torch.autograd.

Everything runs in float64, where a correct backward agrees with both to a relative error
far below 1e-6 and a wrong one (a missing factor, a missing transpose) misses by 1e-2 or
more. The gradient checker itself is checked against closed-form derivatives first.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TOL, rel_err, t64

from slm_course.calculus import gradient_check
from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage05 import (
    check_linear_backward,
    check_tanh_backward,
    check_train_xor,
)
from slm_course.numpy_nn import (
    BCEWithLogitsLoss,
    GradientDescent,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    SoftmaxCrossEntropyLoss,
    Tanh,
    fit,
    linear_backward,
    model_gradient_errors,
    sigmoid,
    tanh_backward,
)
from slm_course.perceptron import xor_data
from slm_course.probability import softmax

# --- every layer: forward equals PyTorch, backward equals autograd and finite differences --


def _away_from_zero(rng, shape):
    """Inputs with |x| >= 0.1, so finite differences never straddle ReLU's kink."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


LAYERS = {  # name: (build the layer, the same function in PyTorch of (x, parameters))
    "Linear": (lambda rng: Linear(3, 4, rng=rng), lambda x, p: F.linear(x, p["W"].T, p["b"])),
    "Tanh": (lambda rng: Tanh(), lambda x, p: torch.tanh(x)),
    "Sigmoid": (lambda rng: Sigmoid(), lambda x, p: torch.sigmoid(x)),
    "ReLU": (lambda rng: ReLU(), lambda x, p: torch.relu(x)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch_autograd(name):
    make, torch_forward = LAYERS[name]
    rng = np.random.default_rng(0)
    layer = make(rng)
    x = _away_from_zero(rng, (5, 3))
    y = layer.forward(x)
    G = rng.standard_normal(y.shape)  # L = sum(y * G), so dL/dy = G
    dx = layer.backward(G)

    xt = t64(x)
    params = {n: t64(p.value) for n, p in layer.parameters().items()}
    yt = torch_forward(xt, params)
    (yt * torch.tensor(G)).sum().backward()

    assert rel_err(y, yt) < 1e-12
    assert rel_err(dx, xt.grad) < TOL
    for n, p in layer.parameters().items():
        assert rel_err(p.grad, params[n].grad) < TOL, f"{name}.{n}"


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_finite_differences(name):
    make, _ = LAYERS[name]
    rng = np.random.default_rng(1)
    layer = make(rng)
    x = _away_from_zero(rng, (4, 3))
    G = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(G)
    analytic = {n: p.grad.copy() for n, p in layer.parameters().items()}

    def loss(x_in: np.ndarray) -> float:  # L = sum(y * G)
        return float(np.sum(layer.forward(x_in) * G))

    def loss_of_param(p):  # L as a function of one parameter's value
        def f(value):
            saved, p.value = p.value, value
            try:
                return loss(x)
            finally:
                p.value = saved
        return f

    assert gradient_check(loss, x, dx, h=1e-6) < TOL
    for n, p in layer.parameters().items():
        assert gradient_check(loss_of_param(p), p.value, analytic[n], h=1e-6) < TOL, f"{name}.{n}"


def test_sigmoid_is_stable_at_extreme_inputs():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(all="raise"):  # any overflow would raise here
        s = sigmoid(x)
    assert rel_err(s, torch.sigmoid(torch.tensor(x))) < 1e-12
    assert s[0] >= 0.0 and s[-1] == 1.0 and s[2] == 0.5


# --- every loss: value equals the PyTorch built-in, gradient equals autograd and FD ------


def _loss_cases(rng):
    z = rng.standard_normal((6, 3))
    return {
        "MSE": (MSELoss(), z, rng.standard_normal((6, 3)),
                lambda zt, t: F.mse_loss(zt, torch.tensor(t))),
        "BCEWithLogits": (BCEWithLogitsLoss(), 3 * z, rng.uniform(0, 1, size=(6, 3)),
                          lambda zt, t: F.binary_cross_entropy_with_logits(zt, torch.tensor(t))),
        "SoftmaxCrossEntropy": (SoftmaxCrossEntropyLoss(), 3 * z, rng.integers(0, 3, size=6),
                                lambda zt, t: F.cross_entropy(zt, torch.tensor(t))),
    }


@pytest.mark.parametrize("name", ["MSE", "BCEWithLogits", "SoftmaxCrossEntropy"])
def test_loss_matches_torch_and_finite_differences(name):
    loss_fn, z, target, torch_loss = _loss_cases(np.random.default_rng(2))[name]
    value = loss_fn(z, target)
    grad = loss_fn.backward()

    zt = t64(z)
    expected = torch_loss(zt, target)
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    assert rel_err(grad, zt.grad) < TOL
    assert gradient_check(lambda v: loss_fn(v, target), z, grad, h=1e-6) < TOL


def test_losses_are_stable_for_huge_logits():
    z = np.array([[1000.0], [-1000.0]])
    t = np.array([[0.0], [1.0]])
    bce = BCEWithLogitsLoss()
    assert bce(z, t) == pytest.approx(1000.0)  # -log(1 - sigmoid(1000)) = 1000, not inf
    assert np.allclose(bce.backward(), [[0.5], [-0.5]])
    ce = SoftmaxCrossEntropyLoss()
    assert ce(np.array([[1000.0, 0.0]]), np.array([1])) == pytest.approx(1000.0)
    assert np.allclose(softmax(np.array([[1000.0, 1000.0]])), 0.5)


# --- a whole network ---------------------------------------------------------------------


def _mlp(rng):
    return Sequential(Linear(3, 5, rng=rng), Tanh(), Linear(5, 4, rng=rng), Sigmoid(),
                      Linear(4, 2, rng=rng))


def test_sequential_backprop_matches_torch_autograd():
    rng = np.random.default_rng(3)
    model = _mlp(rng)
    x, labels = rng.standard_normal((7, 3)), rng.integers(0, 2, size=7)
    loss_fn = SoftmaxCrossEntropyLoss()
    loss = loss_fn(model(x), labels)
    dx = model.backward(loss_fn.backward())

    params = {n: t64(p.value) for n, p in model.parameters().items()}
    xt = t64(x)
    h = torch.tanh(xt @ params["0.W"] + params["0.b"])
    h = torch.sigmoid(h @ params["2.W"] + params["2.b"])
    expected = F.cross_entropy(h @ params["4.W"] + params["4.b"], torch.tensor(labels))
    expected.backward()

    assert loss == pytest.approx(expected.item(), rel=1e-12)
    assert rel_err(dx, xt.grad) < TOL
    assert set(params) == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}
    for n, p in model.parameters().items():
        assert rel_err(p.grad, params[n].grad) < TOL, n


def test_model_gradient_errors_passes_a_right_network():
    rng = np.random.default_rng(4)
    model = Sequential(Linear(2, 3, rng=rng), ReLU(), Linear(3, 1, rng=rng))
    x = _away_from_zero(rng, (5, 2))
    before = {n: (p, p.value.copy()) for n, p in model.parameters().items()} | {"x": (x, x.copy())}
    errors = model_gradient_errors(model, MSELoss(), x, rng.standard_normal((5, 1)))
    assert set(errors) == {"0.W", "0.b", "2.W", "2.b", "input"}
    assert max(errors.values()) < TOL, errors
    for n, (now, then) in before.items():  # every nudged array is back as it was
        assert np.array_equal(getattr(now, "value", now), then), n


def test_model_gradient_errors_catches_a_wrong_backward(monkeypatch):
    # A classic bug: forgetting the local derivative (1 - y^2) of tanh.
    monkeypatch.setattr(Tanh, "backward", lambda self, grad_out: grad_out)
    rng = np.random.default_rng(5)
    model = Sequential(Linear(2, 3, rng=rng), Tanh(), Linear(3, 1, rng=rng))
    x = 2 * rng.standard_normal((6, 2))  # large inputs, so tanh is far from linear
    errors = model_gradient_errors(model, MSELoss(), x, rng.standard_normal((6, 1)))
    assert errors["2.W"] < TOL, "layers after the bug are still right"
    assert errors["0.W"] > 1e-2 and errors["input"] > 1e-2, errors


# --- training ----------------------------------------------------------------------------


def test_sgd_step_is_theta_minus_lr_grad_for_every_parameter():
    rng = np.random.default_rng(6)
    model = Sequential(Linear(3, 2, rng=rng), Tanh(), Linear(2, 1, rng=rng))
    x = rng.standard_normal((4, 3))
    model.backward(np.ones_like(model(x)))
    before = {n: (p.value.copy(), p.grad.copy()) for n, p in model.parameters().items()}
    GradientDescent(model.parameters(), lr=0.1).step()
    for n, p in model.parameters().items():
        value, grad = before[n]
        assert np.any(grad != 0), n
        assert np.array_equal(p.value, value - 0.1 * grad), n


def test_fit_recovers_least_squares_solution():
    """Gradient descent on MSE converges to the closed-form least-squares fit."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((50, 2))
    t = x @ np.array([[2.0], [-3.0]]) + 0.5 + 0.1 * rng.standard_normal((50, 1))
    layer = Linear(2, 1, rng=rng)
    losses = fit(layer, MSELoss(), x, t, optimizer=GradientDescent(layer.parameters(), lr=0.1),
                 steps=500)
    A = np.hstack([x, np.ones((50, 1))])
    solution, *_ = np.linalg.lstsq(A, t, rcond=None)  # (3, 1): w1, w2, b
    assert np.allclose(layer.W.value, solution[:2], atol=1e-6)
    assert np.allclose(layer.b.value, solution[2], atol=1e-6)
    assert losses[-1] < 0.05 * losses[0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_two_layer_network_solves_xor(seed):
    X, y = xor_data()
    rng = np.random.default_rng(seed)
    model = Sequential(Linear(2, 8, rng=rng), Tanh(), Linear(8, 1, rng=rng))
    losses = fit(model, BCEWithLogitsLoss(), X, y.reshape(-1, 1).astype(float),
                 optimizer=GradientDescent(model.parameters(), lr=1.0), steps=1000)
    predictions = (model(X)[:, 0] > 0).astype(int)  # logit > 0  <=>  P(y = 1) > 0.5
    assert np.array_equal(predictions, y), f"seed {seed}: predicted {predictions}, want {y}"
    assert losses[-1] < 0.02 < 0.6 < losses[0]


# --- bad inputs are clear errors -----------------------------------------------------------


def test_linear_rejects_bad_shapes_with_a_fix():
    layer = Linear(3, 2)
    with pytest.raises(ValueError, match=r"x\[None, :\]"):
        layer(np.ones(3))  # one example without a batch axis
    with pytest.raises(ValueError, match="4 features per row but W expects 3"):
        layer(np.ones((5, 4)))
    layer(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"grad_out has shape \(5, 3\), expected \(5, 2\)"):
        layer.backward(np.ones((5, 3)))
    with pytest.raises(ValueError, match="positive sizes"):
        Linear(0, 2)


def test_backward_before_forward_is_a_clear_error():
    for layer in (Linear(2, 2), Tanh(), Sigmoid(), ReLU()):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        MSELoss().backward()


def test_activation_backward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="grad_out has shape"):
        tanh_backward(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="grad_out has shape"):
        linear_backward(np.zeros((4, 3)), np.zeros((3, 2)), np.zeros((4, 3)))


def test_losses_reject_bad_targets():
    with pytest.raises(ValueError, match="reshape"):
        MSELoss()(np.zeros((4, 1)), np.zeros(4))  # would broadcast to (4, 4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BCEWithLogitsLoss()(np.zeros(2), np.array([-1.0, 1.0]))
    ce = SoftmaxCrossEntropyLoss()
    with pytest.raises(ValueError, match="one-hot"):
        ce(np.zeros((2, 3)), np.eye(3)[:2])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ce(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        ce(np.zeros(3), np.array([0]))


def test_containers_and_optimizer_reject_misuse():
    with pytest.raises(TypeError, match="not a Layer"):
        Sequential(Linear(2, 2), np.tanh)
    with pytest.raises(ValueError, match="positive"):
        GradientDescent(Linear(2, 2).parameters(), lr=0.0)
    with pytest.raises(ValueError, match="no parameters"):
        GradientDescent(Tanh().parameters(), lr=0.1)


# --- the exercise checks pass the reference and catch the likely mistakes ----------------


def test_check_linear_backward():
    assert check_linear_backward(linear_backward)

    def db_not_summed(x, W, g):
        dx, dW, _ = linear_backward(x, W, g)
        return dx, dW, g  # forgot to sum over the batch: shape (N, D_out)

    def dW_transposed(x, W, g):
        dx, _, db = linear_backward(x, W, g)
        return dx, g.T @ x, db  # (D_out, D_in) instead of (D_in, D_out)

    def dx_without_transpose(x, W, g):
        _, dW, db = linear_backward(x, W, g)
        return g @ W, dW, db  # raises: (N, D_out) @ (D_in, D_out)

    with pytest.raises(CheckFailed, match="axis=0"):
        check_linear_backward(db_not_summed)
    with pytest.raises(CheckFailed, match=r"dW .*shape \(2, 3\), expected \(3, 2\)"):
        check_linear_backward(dW_transposed)
    with pytest.raises(CheckFailed, match="your function raised ValueError"):
        check_linear_backward(dx_without_transpose)


def test_check_tanh_backward():
    assert check_tanh_backward(tanh_backward)
    with pytest.raises(CheckFailed, match="do not apply np.tanh"):
        check_tanh_backward(lambda y, g: g * (1 - np.tanh(y) ** 2))
    with pytest.raises(CheckFailed, match="not implemented"):
        check_tanh_backward(lambda y, g: (_ for _ in ()).throw(NotImplementedError()))


def _train_xor(steps=1000, lr=1.0, hidden=8, seed=0, update_first_layer_late=False):
    """The solution's train_xor, written against the reference functions."""
    X, y = xor_data()
    t = y.reshape(-1, 1).astype(float)
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((2, hidden)) / np.sqrt(2)
    b1 = np.zeros(hidden)
    W2 = rng.standard_normal((hidden, 1)) / np.sqrt(hidden)
    b2 = np.zeros(1)
    loss_fn, losses = BCEWithLogitsLoss(), []
    for _ in range(steps):
        h = np.tanh(X @ W1 + b1)
        losses.append(loss_fn(h @ W2 + b2, t))
        dh, dW2, db2 = linear_backward(h, W2, loss_fn.backward())
        W2 -= lr * dW2
        b2 -= lr * db2
        if update_first_layer_late:  # bug: dh recomputed with the already-updated W2
            dh, _, _ = linear_backward(h, W2, loss_fn.backward())
        _, dW1, db1 = linear_backward(X, W1, tanh_backward(h, dh))
        W1 -= lr * dW1
        b1 -= lr * db1
    return sigmoid(np.tanh(X @ W1 + b1) @ W2 + b2).ravel(), losses


def test_check_train_xor():
    assert check_train_xor(_train_xor)
    with pytest.raises(CheckFailed, match="leaves the reference curve at step 1"):
        check_train_xor(lambda **kw: _train_xor(**kw, update_first_layer_late=True))
    with pytest.raises(CheckFailed, match="1000 finite losses"):
        check_train_xor(lambda **kw: (_train_xor(**kw)[0], [1.0]))
