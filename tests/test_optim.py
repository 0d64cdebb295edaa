"""slm_course.optim against its oracles: torch.optim and torch's own schedulers."""

import math

import numpy as np
import pytest
import torch

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
    (dict(warmup_steps=200), "warmup_steps=200 > max_steps=110"),
    (dict(max_steps=0, warmup_steps=0), "max_steps must be >= 1"),
    (dict(min_lr=2.0), "min_lr=2.0 > max_lr=1.0"),
    (dict(max_lr=-1.0, min_lr=-2.0), "max_lr must be a finite number >= 0"),
    (dict(max_lr=float("nan")), "max_lr must be a finite number"),
])
def test_schedule_rejects_bad_arguments(kwargs, message):
    args = dict(step=0, **SCHED) | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        warmup_cosine_lr(args.pop("step"), **args)
