"""slm_course.mlp against its oracles: torch.autograd, finite differences, PyTorch built-ins
(F.cross_entropy, F.one_hot, nn.init, DataLoader, ToTensor) and counting by hand.

The central claim of stage 06 is proven here too: the NumPy MLP and the PyTorch MLP, from
the same initial weights and on the same batches, follow the same loss curve (float64).
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import rel_err
from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset

from slm_course.calculus import gradient_check
from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage06 import (
    check_epoch_batches,
    check_mlp_module,
    check_softmax_cross_entropy_grad,
    check_train_step,
)
from slm_course.mlp import (
    EarlyStopping,
    MLPAutoencoder,
    MLPClassifier,
    activation_statistics,
    confusion_matrix,
    epoch_batches,
    evaluate_classifier,
    init_linear_,
    init_std,
    load_numpy_weights,
    minibatch_stream,
    most_confident_mistakes,
    numpy_mlp,
    one_hot,
    predict_proba,
    softmax_cross_entropy_grad,
    split_indices,
    tensor_loader,
    train_early_stopping,
    train_numpy_classifier,
    vision_tensors,
)
from slm_course.numpy_nn import SoftmaxCrossEntropyLoss, model_gradient_errors
from slm_course.train import TrainConfig, batches_from, train

# --- the softmax cross-entropy gradient: p - y ---------------------------------------------


@pytest.mark.parametrize("n,c,scale", [(5, 10, 1.0), (1, 3, 1.0), (4, 6, 300.0)])
def test_cross_entropy_grad_is_torch_autograd(n, c, scale):
    rng = np.random.default_rng(n + c)
    z, y = scale * rng.standard_normal((n, c)), rng.integers(0, c, n)
    zt = torch.tensor(z, requires_grad=True)
    F.cross_entropy(zt, torch.tensor(y)).backward()
    assert rel_err(softmax_cross_entropy_grad(z, y), zt.grad) < 1e-12


def test_cross_entropy_grad_is_finite_differences_and_stage05s_loss():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    grad = softmax_cross_entropy_grad(z, y)
    loss = SoftmaxCrossEntropyLoss()
    assert gradient_check(lambda v: loss(v, y), z, grad) < 1e-7
    loss(z, y)
    assert np.allclose(loss.backward(), grad, rtol=0, atol=1e-15)
    assert np.allclose(grad.sum(axis=1), 0.0)  # p - y: each row sums to 1 - 1


def test_one_hot_is_torch_and_rejects_bad_labels():
    y = np.array([3, 0, 9, 3])
    assert np.array_equal(one_hot(y, 10), F.one_hot(torch.tensor(y), 10).numpy())
    with pytest.raises(ValueError, match="integers"):
        one_hot(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot(np.array([0, 3]), 3)


# --- initialisation ------------------------------------------------------------------------


def test_init_std_matches_torch_init_formulas():
    fan_in, fan_out = 300, 100
    w = torch.empty(fan_out, fan_in)
    gain = nn.init.calculate_gain("relu")
    assert np.isclose(init_std("kaiming", fan_in, fan_out), gain / np.sqrt(fan_in))
    assert np.isclose(init_std("xavier", fan_in, fan_out), np.sqrt(2 / (fan_in + fan_out)))
    # the drawn weights have those standard deviations (a 30,000-entry sample: within 2%)
    kaiming = lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu")  # noqa: E731
    for scheme, torch_init in (("kaiming", kaiming), ("xavier", nn.init.xavier_normal_)):
        layer = nn.Linear(fan_in, fan_out)
        init_linear_(layer, scheme, torch.Generator().manual_seed(0))
        assert abs(layer.weight.std().item() / torch_init(w).std().item() - 1) < 0.03
        assert torch.all(layer.bias == 0)
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_std("he", 3, 4)


def test_numpy_mlp_shapes_and_std():
    model = numpy_mlp((784, 400, 10), init="kaiming", rng=np.random.default_rng(0))
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "ReLU", "Linear"]
    assert abs(model[0].W.value.std() / np.sqrt(2 / 784) - 1) < 0.02
    assert abs(model[2].W.value.std() / np.sqrt(2 / 400) - 1) < 0.05


def test_kaiming_keeps_relu_activations_steady_and_small_init_makes_them_vanish():
    torch.manual_seed(0)
    x, y = torch.rand(256, 784), torch.randint(0, 10, (256,))
    stds = {}
    for scheme in ("kaiming", 0.01):
        stats = activation_statistics(MLPClassifier((784,) + (256,) * 8 + (10,), init=scheme), x, y)
        stds[scheme] = [s["activation"].std().item() for s in stats]
    assert 0.5 < stds["kaiming"][-1] / stds["kaiming"][0] < 2.0
    assert stds[0.01][-1] / stds[0.01][0] < 1e-6


# --- mini-batches and the NumPy loop -------------------------------------------------------


def test_epoch_batches_is_a_shuffled_partition():
    batches = epoch_batches(103, 10, np.random.default_rng(0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    order = np.concatenate(batches)
    assert np.array_equal(np.sort(order), np.arange(103))
    assert np.array_equal(order, np.random.default_rng(0).permutation(103))
    stream = minibatch_stream(20, 10, np.random.default_rng(0))
    epochs = [np.concatenate([next(stream), next(stream)]) for _ in range(2)]
    assert not np.array_equal(*epochs) and np.array_equal(np.sort(epochs[1]), np.arange(20))


def test_numpy_mlp_gradients_are_right_and_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    model = numpy_mlp((6, 5, 4, 3), rng=rng)
    x, y = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)
    errors = model_gradient_errors(model, SoftmaxCrossEntropyLoss(), x, y)
    assert max(errors.values()) < 1e-6, errors
    centres = rng.standard_normal((3, 6)) * 3  # three separable blobs
    labels = rng.integers(0, 3, 300)
    data = centres[labels] + rng.standard_normal((300, 6))
    losses = train_numpy_classifier(model, data, labels, steps=200, lr=0.1,
                                    batches=minibatch_stream(300, 32, rng))
    assert np.mean(losses[-20:]) < 0.2 * losses[0]
    assert (model(data).argmax(1) == labels).mean() > 0.95


# --- the same network in PyTorch -----------------------------------------------------------


def test_pytorch_mlp_equals_numpy_mlp_forward_and_backward():
    rng = np.random.default_rng(1)
    ours = numpy_mlp((12, 7, 5, 4), rng=rng)
    model = load_numpy_weights(MLPClassifier((12, 7, 5, 4)).double(), ours)
    x, y = rng.standard_normal((9, 12)), rng.integers(0, 4, 9)
    logits, loss = model(torch.tensor(x), torch.tensor(y))
    loss_fn = SoftmaxCrossEntropyLoss()
    assert np.allclose(logits.detach().numpy(), ours(x), rtol=0, atol=1e-12)
    assert np.isclose(loss.item(), loss_fn(ours(x), y))
    loss.backward()
    ours.backward(loss_fn.backward())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m, layer in zip(linears, ours.layers[::2], strict=True):
        assert rel_err(m.weight.grad.T, layer.W.grad) < 1e-12  # nn.Linear's (out, in) = W.T
        assert rel_err(m.bias.grad, layer.b.grad) < 1e-12


def test_load_numpy_weights_refuses_a_different_shape():
    with pytest.raises(ValueError, match="differ"):
        load_numpy_weights(MLPClassifier((4, 3, 2)), numpy_mlp((4, 5, 2)))


def test_the_course_loop_with_sgd_follows_the_numpy_loss_curve(one_thread):
    """The lesson's claim: same initial weights, same batches, same updates, same losses."""
    rng = np.random.default_rng(0)
    n, steps, lr = 200, 40, 0.2
    x = rng.standard_normal((n, 10))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)  # three classes
    ours = numpy_mlp((10, 16, 3), rng=np.random.default_rng(1))
    model = load_numpy_weights(MLPClassifier((10, 16, 3)).double(), ours)
    numpy_losses = train_numpy_classifier(ours, x, y, steps=steps, lr=lr,
                                          batches=minibatch_stream(n, 25, np.random.default_rng(2)))
    stream = minibatch_stream(n, 25, np.random.default_rng(2))
    xt, yt = torch.tensor(x), torch.tensor(y)

    def next_batch():
        idx = torch.as_tensor(next(stream))
        return xt[idx], yt[idx]

    cfg = TrainConfig(max_steps=steps, lr=lr, min_lr=lr, warmup_steps=0, grad_clip=0.0,
                      dtype="float32", progress=False, eval_interval=steps)
    state = train(model, next_batch, cfg, optimizer=torch.optim.SGD(model.parameters(), lr=lr))
    assert np.allclose(state.losses.double().numpy(), numpy_losses, rtol=1e-6)  # float32 record
    assert numpy_losses[-1] < 0.6 * numpy_losses[0]
    assert np.allclose(model(xt)[0].detach().numpy(), ours(x), atol=1e-10)


def test_mlp_classifier_layers_loss_and_no_target():
    model = MLPClassifier((784, 32, 16, 10), dropout=0.5, batch_norm=True)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout",
                     "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    logits, loss = model(x, y)
    assert logits.shape == (8, 10) and torch.isclose(loss, F.cross_entropy(logits, y))
    assert model(x)[1] is None
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier((4, 2), activation="gelu")


def test_activation_statistics_gradients_are_autograd():
    torch.manual_seed(0)
    model = MLPClassifier((20, 8, 6, 3))
    x, y = torch.randn(5, 20), torch.randint(0, 3, (5,))
    stats = activation_statistics(model, x, y)
    assert len(stats) == 2
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    outputs = []
    hooks = [r.register_forward_hook(lambda m, i, o: outputs.append(o)) for r in relus]
    _, loss = model(x, y)
    for h in hooks:
        h.remove()
    grads = torch.autograd.grad(loss, outputs)
    for s, out, g in zip(stats, outputs, grads, strict=True):
        assert torch.allclose(s["activation"], out.detach())
        assert torch.allclose(s["gradient"], g)
    assert all(p.grad is None for p in model.parameters())  # it leaves no gradients behind


# --- data ----------------------------------------------------------------------------------


class FakeVision:
    """The two attributes vision_tensors reads from a torchvision MNIST dataset."""

    def __init__(self, n=6, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.data = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        self.targets = torch.randint(0, 10, (n,), generator=g)


def test_vision_tensors_equal_to_tensor_per_item():
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    fake = FakeVision()
    x, y = vision_tensors(fake)
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    for i in range(6):  # what torchvision's MNIST + ToTensor() gives for item i
        assert torch.equal(x[i], to_tensor(Image.fromarray(fake.data[i].numpy(), mode="L")))
    with pytest.raises(TypeError, match="targets"):
        vision_tensors([1, 2, 3])


def test_split_indices_disjoint_complete_and_seeded():
    train_idx, val_idx = split_indices(100, 20, seed=3)
    assert len(val_idx) == 20 and len(train_idx) == 80
    assert torch.equal(torch.sort(torch.cat([train_idx, val_idx])).values, torch.arange(100))
    assert torch.equal(split_indices(100, 20, seed=3)[1], val_idx)
    assert not torch.equal(split_indices(100, 20, seed=4)[1], val_idx)


def test_tensor_loader_gives_the_batches_of_an_item_by_item_dataloader():
    x, y = torch.arange(50.0).view(25, 2), torch.arange(25)
    ours = list(tensor_loader(x, y, batch_size=8, seed=5))
    sampler = RandomSampler(range(25), generator=torch.Generator().manual_seed(5))
    plain = list(DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler))
    assert len(ours) == len(plain) == 4
    for (a, b), (c, d) in zip(ours, plain, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d) and torch.equal(a[:, 0], 2.0 * b)
    loader = tensor_loader(x, y, batch_size=8)
    epochs = [torch.cat([b for _, b in loader]) for _ in range(2)]
    assert not torch.equal(*epochs) and torch.equal(epochs[1].sort().values, y)  # reshuffled
    in_order = torch.cat([b for _, b in tensor_loader(x, y, batch_size=8, shuffle=False)])
    assert torch.equal(in_order, y)


def _batches(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_dataloader_is_spawn_safe():
    """Windows and macOS start DataLoader workers with spawn: the dataset is pickled and
    the workers import it afresh. They must yield the batches a single process does."""
    torchvision = pytest.importorskip("torchvision")
    from slm_course.data import DatasetError, load_vision

    try:
        dataset = load_vision(train=False, transform=torchvision.transforms.ToTensor())
    except DatasetError as err:  # pragma: no cover - CI has the data
        pytest.skip(f"no vision data here: {err}")
    subset = Subset(dataset, range(96))
    single = _batches(DataLoader(subset, batch_size=32, num_workers=0))
    spawned = _batches(DataLoader(subset, batch_size=32, num_workers=2,
                                  multiprocessing_context="spawn"))
    assert len(single) == len(spawned) == 3
    for a, b in zip(single, spawned, strict=True):
        assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    x, y = vision_tensors(dataset)  # and the tensors the lesson batches are the same images
    assert torch.equal(single[0][0], x[:32]) and torch.equal(single[0][1], y[:32])


# --- after training ------------------------------------------------------------------------


def test_predict_proba_and_evaluate_match_torch_and_restore_the_mode():
    torch.manual_seed(0)
    model = MLPClassifier((30, 16, 4), dropout=0.5)
    x, y = torch.randn(50, 30), torch.randint(0, 4, (50,))
    model.train()
    probs = predict_proba(model, x, batch_size=7)  # several batches, dropout off
    assert model.training
    model.eval()
    logits = model(x)[0]
    assert torch.allclose(probs, F.softmax(logits, 1), atol=1e-6)
    result = evaluate_classifier(model, x, y, batch_size=16)
    assert np.isclose(result["loss"], F.cross_entropy(logits, y).item(), atol=1e-5)
    assert np.isclose(result["accuracy"], (logits.argmax(1) == y).float().mean().item())


def test_confusion_matrix_counts_by_hand():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    by_hand = np.zeros((4, 4), dtype=int)
    for ti, pi in zip(t, p, strict=True):
        by_hand[ti, pi] += 1
    m = confusion_matrix(torch.tensor(p), t, 4)
    assert np.array_equal(m, by_hand) and m.sum() == 200
    assert np.array_equal(m.sum(axis=1), np.bincount(t, minlength=4))
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix(p[:5], t, 4)


def test_most_confident_mistakes_by_brute_force():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=300)
    target = rng.integers(0, 5, 300)
    got = most_confident_mistakes(probs, target, k=10)
    mistakes = sorted((-probs[i].max(), i) for i in range(300) if probs[i].argmax() != target[i])
    assert list(got) == [i for _, i in mistakes[:10]]


# --- early stopping ------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(one_thread):
    torch.manual_seed(0)
    model = MLPClassifier((4, 8, 2))
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    scores = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.9, 1.0, 0.5])  # best 3.0 at the third eval
    snapshots = {}

    def evaluate():
        return {"val_loss": next(scores)}

    def remember(kind, state):
        if kind == "eval":
            snapshots[state.step] = copy.deepcopy(model.state_dict())

    cfg = TrainConfig(max_steps=100, lr=1e-2, min_lr=1e-3, warmup_steps=0, eval_interval=5,
                      progress=False)
    state, early = train_early_stopping(model, batches_from(tensor_loader(x, y, batch_size=16)),
                                        cfg, evaluate=evaluate, patience=3, callbacks=[remember])
    assert state.step == 25 and early.stop  # evals at 0, 5, 10 (best), 15, 20, 25: 3 worse
    assert early.best == 3.0 and early.best_step == 10
    assert [h["step"] for h in state.history] == [0, 5, 10, 15, 20, 25]
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[10][name])
    with pytest.raises(RuntimeError, match="no evaluation"):
        EarlyStopping(model).restore()


# --- the autoencoder -----------------------------------------------------------------------


def test_autoencoder_shapes_loss_and_learning(one_thread):
    torch.manual_seed(0)
    model = MLPAutoencoder(hidden=(32,), latent=2)
    x = torch.rand(64, 1, 28, 28).round()  # binary pixels
    recon, loss = model(x)
    assert recon.shape == x.shape and model.encode(x).shape == (64, 2)
    assert torch.isclose(loss, F.binary_cross_entropy(recon, x), rtol=1e-4)
    cfg = TrainConfig(max_steps=60, lr=3e-3, min_lr=3e-3, warmup_steps=0, progress=False,
                      eval_interval=60)
    state = train(model, batches_from(tensor_loader(x, batch_size=64)), cfg)
    assert state.losses[-1] < state.losses[0] - 0.01


# --- the exercise checks: they pass the reference and name the usual mistakes --------------


def test_checks_pass_on_the_reference(capsys):
    assert check_softmax_cross_entropy_grad(softmax_cross_entropy_grad)
    assert check_epoch_batches(epoch_batches)
    assert check_mlp_module(lambda sizes: MLPClassifier(sizes))

    def step(model, optimizer, x, y):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    assert check_train_step(step)
    assert capsys.readouterr().out.count("✓") == 4


def _no_mean(z, y):
    return softmax_cross_entropy_grad(z, y) * len(y)


def _in_order(n, bs, rng):
    return [np.arange(n)[i:i + bs] for i in range(0, n, bs)]


def _drop_last(n, bs, rng):
    return epoch_batches(n, bs, rng)[: n // bs] or epoch_batches(n, bs, rng)


class _ReluOnLogits(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.inner = MLPClassifier(sizes)

    def forward(self, x, y=None):
        logits = F.relu(self.inner(x)[0])
        return logits, None if y is None else F.cross_entropy(logits, y)


def _no_zero_grad(model, optimizer, x, y):
    _, loss = model(x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_first(model, optimizer, x, y):
    optimizer.zero_grad()
    optimizer.step()
    _, loss = model(x, y)
    loss.backward()
    return loss.item()


@pytest.mark.parametrize("check,wrong,hint", [
    (check_softmax_cross_entropy_grad, _no_mean, "divide by the batch size"),
    (check_softmax_cross_entropy_grad, lambda z, y: softmax_cross_entropy_grad(z, y) + 0.1,
     "sum to 0"),
    (check_epoch_batches, _in_order, "nothing was shuffled"),
    (check_epoch_batches, _drop_last, "short last"),
    (check_epoch_batches, lambda n, bs, rng: [rng.integers(0, n, len(b)) for b in
                                              epoch_batches(n, bs, np.random.default_rng())],
     "exactly once"),
    (check_mlp_module, _ReluOnLogits, "not after the last one"),
    (check_train_step, _no_zero_grad, "zero_grad"),
    (check_train_step, _step_first, "after loss.backward"),
])
def test_checks_name_the_usual_mistake(check, wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check(wrong)
