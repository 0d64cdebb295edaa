"""Optimizers and learning-rate schedules, written out so every update can be read.

The schedule every GPT in this course trains with (nanoGPT style)::

    lr(t) = max_lr * (t + 1) / W                                 t < W       (warm-up)
    lr(t) = min_lr + (max_lr - min_lr) * (1 + cos(pi * p)) / 2   W <= t < T  (cosine)
    lr(t) = min_lr                                               t >= T      (floor)

with W = ``warmup_steps``, T = ``max_steps`` and p = (t - W) / (T - W) the fraction of the
decay done.
"""

from __future__ import annotations

import math
import numbers


def warmup_cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
                     max_steps: int) -> float:
    """Learning rate at ``step``: linear warm-up, cosine decay, then a floor.

    lr = max_lr (step+1)/W for step < W;  min_lr + (max_lr-min_lr)(1+cos(pi (step-W)/(T-W)))/2
    for W <= step < T;  min_lr for step >= T  (W = warmup_steps, T = max_steps).

    The warm-up reaches ``max_lr`` at step W-1, the cosine starts from ``max_lr`` at step W
    and approaches ``min_lr`` as step -> T. ``warmup_steps=0`` means no warm-up.
    """
    _check_count("step", step, minimum=0)
    _check_count("warmup_steps", warmup_steps, minimum=0)
    _check_count("max_steps", max_steps, minimum=1)
    if warmup_steps > max_steps:
        raise ValueError(f"warmup_steps={warmup_steps} > max_steps={max_steps}: the warm-up "
                         f"must end before training does; lower warmup_steps or raise max_steps")
    for name, value in (("max_lr", max_lr), ("min_lr", min_lr)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if min_lr > max_lr:
        raise ValueError(f"min_lr={min_lr} > max_lr={max_lr}: the schedule decays from max_lr "
                         f"down to min_lr; swap them or lower min_lr")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return float(min_lr)
    progress = (step - warmup_steps) / (max_steps - warmup_steps)  # in [0, 1)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
