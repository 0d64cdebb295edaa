"""slm_course.optim against its oracles: torch.optim and torch's own schedulers."""

import math

import numpy as np
import pytest
import torch

from slm_course import optim
from slm_course.optim import warmup_cosine_lr

# ----------------------------------------------------------------------------- schedule

SCHED = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)


@pytest.mark.parametrize("step, expected", [
    (0, 0.1),           # warm-up starts at max_lr / W, not at 0
    (4, 0.5),
    (9, 1.0),           # warm-up ends at max_lr ...
    (10, 1.0),          # ... and the cosine starts there
    (35, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))),
    (60, 0.55),         # halfway through the decay: halfway between max_lr and min_lr
    (85, 0.1 + 0.9 * 0.5 * (1 + math.cos(3 * math.pi / 4))),
    (110, 0.1),         # the floor from max_steps on
    (10_000, 0.1),
])
def test_schedule_closed_form(step, expected):
    assert warmup_cosine_lr(step, **SCHED) == pytest.approx(expected, rel=1e-12)


def test_schedule_shape():
    lrs = [warmup_cosine_lr(s, **SCHED) for s in range(200)]
    warm, decay = lrs[:10], lrs[10:110]
    assert (np.diff(warm) > 0).all(), "warm-up must increase strictly"
    assert (np.diff(decay) < 0).all(), "the cosine must decrease strictly"
    assert min(lrs) >= SCHED["min_lr"] - 1e-15 and max(lrs) <= SCHED["max_lr"] + 1e-15
    # without warm-up the first step already uses max_lr
    assert warmup_cosine_lr(0, max_lr=3e-4, min_lr=0.0, warmup_steps=0, max_steps=5) == 3e-4
    # warm-up as long as training: the cosine is never reached
    assert warmup_cosine_lr(4, max_lr=2.0, min_lr=0.5, warmup_steps=5, max_steps=5) == 2.0
    assert warmup_cosine_lr(5, max_lr=2.0, min_lr=0.5, warmup_steps=5, max_steps=5) == 0.5


def _torch_reference_lrs(max_lr, min_lr, warmup, max_steps):
    """torch's own schedulers: LinearLR (warm-up) then CosineAnnealingLR, chained."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0,
                                             total_iters=warmup - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_steps - warmup,
                                                     eta_min=min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    lrs = []
    for _ in range(max_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("max_lr, min_lr, warmup, max_steps",
                         [(1.0, 0.1, 10, 110), (6e-4, 6e-5, 7, 50), (1e-3, 0.0, 3, 4)])
def test_schedule_matches_torch_schedulers(max_lr, min_lr, warmup, max_steps):
    ref = _torch_reference_lrs(max_lr, min_lr, warmup, max_steps)
    ours = [warmup_cosine_lr(s, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup,
                             max_steps=max_steps) for s in range(max_steps)]
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-12)


def test_schedule_drives_torch_lambdalr():
    """The way a trainer uses it: LambdaLR multiplies the base lr (= max_lr) by lr(t)/max_lr."""
    hp = dict(max_lr=3e-3, min_lr=3e-4, warmup_steps=5, max_steps=40)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=hp["max_lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine_lr(s, **hp) / hp["max_lr"])
    seen = {}
    for step in range(60):
        seen[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    for step in (0, 2, 4, 5, 6, 20, 39, 40, 59):
        assert seen[step] == pytest.approx(warmup_cosine_lr(step, **hp), rel=1e-12)
    assert seen[4] == pytest.approx(hp["max_lr"]) and seen[59] == pytest.approx(hp["min_lr"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(step=-1), "step must be >= 0"),
    (dict(step=1.5), "step must be an int"),
    (dict(warmup_steps=-2), "warmup_steps must be >= 0"),
    (dict(warmup_steps=111), "warmup_steps=111 > max_steps=110"),
    (dict(max_steps=0, warmup_steps=0), "max_steps must be >= 1"),
    (dict(min_lr=2.0), "min_lr=2.0 > max_lr=1.0"),
    (dict(max_lr=-1.0, min_lr=-2.0), "max_lr must be a finite number >= 0"),
    (dict(max_lr=float("nan")), "max_lr must be a finite number"),
])
def test_schedule_rejects_bad_arguments(kwargs, message):
    args = dict(step=0, **SCHED) | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        warmup_cosine_lr(args.pop("step"), **args)


# ----------------------------------------------------------------------------- optimizers

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]  # several tensors, a scalar among them

# (ours, torch's, hyperparameters): every optimizer with weight decay on; a large eps where it
# matters, so that sqrt(v) + eps and sqrt(v + eps) would differ
PAIRS = {
    "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.05, weight_decay=0.1)),
    "sgd-momentum": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
    "sgd-nesterov": (optim.SGD, torch.optim.SGD,
                     dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    "rmsprop": (optim.RMSProp, torch.optim.RMSprop,
                dict(lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.1)),
    "adam": (optim.Adam, torch.optim.Adam,
             dict(lr=0.02, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    "adamw": (optim.AdamW, torch.optim.AdamW,
              dict(lr=0.02, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.5)),
}


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in SHAPES]


def _loss(params, step):
    """A non-quadratic loss whose gradient changes with the step (like mini-batches do)."""
    g = torch.Generator().manual_seed(1000 + step)
    total = 0.0
    for p in params:
        target = torch.randn(p.shape, generator=g, dtype=torch.float64)
        total = total + ((p - target) ** 2).sum() + torch.sin(3 * p).sum()
    return total


def _run(opt, params, steps, start=0):
    for step in range(start, start + steps):
        opt.zero_grad()
        _loss(params, step).backward()
        opt.step()


@pytest.mark.parametrize("name", PAIRS)
def test_optimizer_matches_torch_for_100_steps(name):
    ours_cls, torch_cls, hp = PAIRS[name]
    ours, ref = _params(), _params()
    _run(ours_cls(ours, **hp), ours, 100)
    _run(torch_cls(ref, **hp), ref, 100)
    start = _params()
    for a, b, s in zip(ours, ref, start, strict=True):
        assert not torch.allclose(b, s), "the reference must have moved (a test that can fail)"
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["sgd-momentum", "adam", "adamw"])
def test_param_groups_and_missing_grads_match_torch(name):
    """Per-group lr / weight decay, and a parameter without a gradient is left untouched."""
    ours_cls, torch_cls, hp = PAIRS[name]
    runs = []
    for cls in (ours_cls, torch_cls):
        params = _params(seed=1)
        groups = [{"params": params[:2]},
                  {"params": params[2:], "lr": hp["lr"] / 4, "weight_decay": 0.0}]
        opt = cls(groups, **hp)
        for step in range(30):
            opt.zero_grad()
            _loss(params[1:], step).backward()  # params[0] never gets a gradient
            opt.step()
        runs.append(params)
    ours, ref = runs
    torch.testing.assert_close(ours[0], _params(seed=1)[0], rtol=0, atol=0)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["sgd-nesterov", "rmsprop", "adamw"])
def test_state_dict_resumes_exactly(name):
    """Stop after 40 steps, save, load into a fresh optimizer, go on: same as never stopping."""
    cls, _, hp = PAIRS[name]
    straight = _params()
    _run(cls(straight, **hp), straight, 70)
    resumed = _params()
    first = cls(resumed, **hp)
    _run(first, resumed, 40)
    saved = first.state_dict()
    second = cls(resumed, **hp)
    second.load_state_dict(saved)
    _run(second, resumed, 30, start=40)
    for a, b in zip(resumed, straight, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_closure_returns_the_loss():
    params = _params()
    opt = optim.Adam(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = _loss(params, 0)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert torch.is_tensor(first) and opt.step(closure) < first


def test_update_rules_run_on_numpy_like_on_torch():
    """The pure update functions give the same numbers on NumPy arrays and on tensors."""
    rng = np.random.default_rng(0)
    p, g, m, v = (rng.normal(size=(4, 3)) for _ in range(4))
    v = v**2
    before = [a.copy() for a in (p, g, m, v)]
    cases = [
        (optim.sgd_update, (p, g, m), dict(lr=0.1, momentum=0.9, nesterov=True,
                                            weight_decay=0.01)),
        (optim.rmsprop_update, (p, g, v), dict(lr=0.1, alpha=0.9, weight_decay=0.01)),
        (optim.adam_update, (p, g, m, v, 3), dict(lr=0.1, weight_decay=0.01, decoupled=True)),
    ]
    for fn, args, hp in cases:
        as_np = fn(*args, **hp)
        as_torch = fn(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args),
                      **hp)
        for a, b in zip(as_np, as_torch, strict=True):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-12)
    for a, b in zip((p, g, m, v), before, strict=True):
        assert np.array_equal(a, b), "an update rule must not change its inputs in place"


def test_adam_first_step_is_lr_times_sign():
    """Bias correction: step 1 has m_hat = g and v_hat = g^2, so it moves lr * sign(g)."""
    p = np.array([1.0, -2.0, 3.0])
    g = np.array([1e-3, -50.0, 7.0])
    new, _, _ = optim.adam_update(p, g, np.zeros(3), np.zeros(3), 1, lr=0.01, eps=0.0)
    np.testing.assert_allclose(new, p - 0.01 * np.sign(g), rtol=1e-12)
    with pytest.raises(ValueError, match="starts at 1"):
        optim.adam_update(p, g, np.zeros(3), np.zeros(3), 0, lr=0.01)


@pytest.mark.parametrize("cls, kwargs, message", [
    (optim.SGD, dict(lr=-0.1), "SGD: lr must be a finite number >= 0, got -0.1"),
    (optim.SGD, dict(lr=float("inf")), "lr must be a finite number"),
    (optim.SGD, dict(lr=0.1, momentum=1.0), r"momentum must be in \[0, 1\)"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1e-4), "weight_decay must be a finite number >= 0"),
    (optim.RMSProp, dict(alpha=-0.5), r"alpha must be in \[0, 1\)"),
    (optim.RMSProp, dict(eps=-1e-8), "eps must be a finite number >= 0"),
    (optim.Adam, dict(lr=-1e-3), "Adam: lr must be"),
    (optim.Adam, dict(betas=(1.0, 0.999)), r"beta1 \(betas\[0\]\) must be in \[0, 1\)"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"beta2 \(betas\[1\]\) must be in \[0, 1\)"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), r"AdamW: beta2"),
    (optim.AdamW, dict(betas=0.9), "betas must be a pair"),
])
def test_bad_hyperparameters_are_clear_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(_params(), **kwargs)


def test_bad_hyperparameters_in_a_param_group_are_caught():
    params = _params()
    with pytest.raises(ValueError, match="AdamW: lr must be"):
        optim.AdamW([{"params": params[:2]}, {"params": params[2:], "lr": -1.0}])


# ----------------------------------------------------------------------------- exercise checks

def _adam(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, *, slip=None):
    """A learner's Adam step, correct or with one classic slip."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    tc = t + 1 if slip == "t+1" else t
    m_hat, v_hat = (m, v) if slip == "no-bias" else (m / (1 - beta1**tc), v / (1 - beta2**tc))
    denom = np.sqrt(v_hat + eps) if slip == "eps-inside" else np.sqrt(v_hat) + eps
    new = param - lr * m_hat / denom
    return (new, v, m) if slip == "swapped" else (new, m, v)


def _adam_in_place(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    new, m_new, v_new = _adam(param, grad, m, v, t, lr, beta1, beta2, eps)
    m[...], v[...] = m_new, v_new  # updates the caller's arrays
    return new, m, v


def test_adam_check_passes_a_correct_step_and_names_classic_slips():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage04 import check_adam_update

    assert check_adam_update(_adam) is True
    slips = {"no-bias": "left out the bias correction", "t+1": "uses t \\+ 1",
             "eps-inside": "eps goes outside the square root", "swapped": "swapped"}
    for slip, message in slips.items():
        with pytest.raises(CheckFailed, match=message):
            check_adam_update(lambda *a, slip=slip, **k: _adam(*a, **k, slip=slip))
    with pytest.raises(CheckFailed, match="changed the m array"):
        check_adam_update(_adam_in_place)


def _schedule(step, max_lr, min_lr, warmup_steps, max_steps, slip=None):
    if warmup_steps > max_steps and slip != "no-raise":
        raise ValueError("warm-up longer than training")
    if min_lr > max_lr and slip not in ("no-raise", "no-lr-check"):
        raise ValueError("min_lr above max_lr")
    if step < warmup_steps:
        return max_lr * (step if slip == "step" else step + 1) / warmup_steps
    if step >= max_steps and slip != "no-floor":
        return min_lr
    p = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * p))


def test_schedule_check_passes_a_correct_schedule_and_catches_slips():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage04 import check_warmup_cosine_lr

    assert check_warmup_cosine_lr(_schedule) is True
    slips = {"step": "(?s)lr at step 0 .*step \\+ 1", "no-floor": "from max_steps on",
             "no-raise": "instead of raising ValueError",
             "no-lr-check": "min_lr > max_lr .* instead of raising"}
    for slip, message in slips.items():
        with pytest.raises(CheckFailed, match=message):
            check_warmup_cosine_lr(lambda *a, slip=slip, **k: _schedule(*a, **k, slip=slip))
