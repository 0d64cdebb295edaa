"""Optimizers and learning-rate schedules, written out so every update can be read.

The schedule every GPT in this course trains with (nanoGPT style)::

    lr(t) = max_lr * (t + 1) / W                                 t < W       (warm-up)
    lr(t) = min_lr + (max_lr - min_lr) * (1 + cos(pi * p)) / 2   W <= t < T  (cosine)
    lr(t) = min_lr                                               t >= T      (floor)

with W = ``warmup_steps``, T = ``max_steps`` and p = (t - W) / (T - W) the fraction of the
decay done.

Stage 04: optimization.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:  # the name moved between torch versions; only type checkers need it
    from torch.optim.optimizer import ParamsT


def warmup_cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
                     max_steps: int) -> float:
    """Learning rate at ``step``: linear warm-up, cosine decay, then a floor.

    lr = max_lr (step+1)/W for step < W;  min_lr + (max_lr-min_lr)(1+cos(pi (step-W)/(T-W)))/2
    for W <= step < T;  min_lr for step >= T  (W = warmup_steps, T = max_steps).

    The warm-up reaches ``max_lr`` at step W-1, the cosine starts from ``max_lr`` at step W
    and approaches ``min_lr`` as step -> T. ``warmup_steps=0`` means no warm-up.
    """
    _check_schedule(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps,
                    max_steps=max_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return float(min_lr)
    progress = (step - warmup_steps) / (max_steps - warmup_steps)  # in [0, 1)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_schedule(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
                    max_steps: int) -> None:
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


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# ---------------------------------------------------------------------------------------------
# Update rules. Each is a pure function of the parameter, its gradient and the optimizer's
# state: it returns new values and changes nothing in place, so the same code runs on NumPy
# arrays (the 2-D experiments of the lesson) and on torch tensors (the optimizers below).
# ---------------------------------------------------------------------------------------------

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def sgd_update(param: Array, grad: Array, velocity: Array, *, lr: float, momentum: float = 0.0,
               nesterov: bool = False, weight_decay: float = 0.0) -> tuple[Array, Array]:
    """One SGD step with (heavy-ball or Nesterov) momentum; returns (param, velocity).

        g = grad + weight_decay * param          (L2 regularization folded into the gradient)
        v = momentum * v + g                     (v starts at 0; momentum = 0 is plain SGD)
        param = param - lr * v                   (heavy ball)
        param = param - lr * (g + momentum * v)  (Nesterov: look one velocity step ahead)
    """
    g = grad + weight_decay * param
    velocity = momentum * velocity + g
    direction = g + momentum * velocity if nesterov else velocity
    return param - lr * direction, velocity


def rmsprop_update(param: Array, grad: Array, square_avg: Array, *, lr: float,
                   alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0
                   ) -> tuple[Array, Array]:
    """One RMSProp step; returns (param, square_avg).

        g = grad + weight_decay * param
        s = alpha * s + (1 - alpha) * g^2        (running mean of squared gradients, s_0 = 0)
        param = param - lr * g / (sqrt(s) + eps) (each coordinate divided by its own RMS)
    """
    g = grad + weight_decay * param
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    return param - lr * g / (square_avg**0.5 + eps), square_avg


def adam_update(param: Array, grad: Array, m: Array, v: Array, t: int, *, lr: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0, decoupled: bool = False
                ) -> tuple[Array, Array, Array]:
    """One Adam step (AdamW if ``decoupled``) at step t = 1, 2, ...; returns (param, m, v)::

        Adam:  g = grad + weight_decay * param   (L2: the decay goes through 1/sqrt(v))
        AdamW: param = param * (1 - lr * weight_decay);  g = grad   (decay applied directly)
        m = beta1 * m + (1 - beta1) * g          (first moment: momentum)
        v = beta2 * v + (1 - beta2) * g^2        (second moment: as in RMSProp)
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)   (bias correction, m_0 = v_0 = 0)
        param = param - lr * m_hat / (sqrt(v_hat) + eps)
    """
    _check_step_counter(t)
    if decoupled:
        param = param * (1 - lr * weight_decay)
        g = grad
    else:
        g = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat**0.5 + eps), m, v


def _check_step_counter(t: int) -> None:
    if t < 1:
        raise ValueError(f"Adam's step counter t starts at 1 (bias correction divides by "
                         f"1 - beta^t), got t={t}")


# ---------------------------------------------------------------------------------------------
# The same rules as torch.optim optimizers: use them exactly like torch.optim.SGD & co.
#     opt = AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
#     loss.backward(); opt.step(); opt.zero_grad()
# zero_grad, param groups, state_dict / load_state_dict and lr schedulers come from
# torch.optim.Optimizer; each class below only says what state it keeps and how it updates.
# ---------------------------------------------------------------------------------------------


class PerParameterOptimizer(torch.optim.Optimizer):
    """The loop every optimizer here shares: apply an update rule to each parameter with a gradient.

    A subclass says what state a parameter needs (:meth:`init_state`) and how one parameter
    changes (:meth:`update`); everything else is :class:`torch.optim.Optimizer`'s.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        check_hyperparameters(type(self).__name__, defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_hyperparameters(type(self).__name__, {**self.defaults, **param_group})
        super().add_param_group(param_group)

    def init_state(self, p: torch.Tensor) -> dict[str, Any]:
        """The state kept for parameter ``p`` before its first step."""
        raise NotImplementedError

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> torch.Tensor:
        """Return the new value of ``p``; store the new state in ``state``."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter with a gradient; ``closure`` re-computes the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:  # frozen or unused this step: leave it (and its state) alone
                    continue
                if p.grad.is_sparse:
                    raise ValueError(f"{type(self).__name__} does not support sparse gradients; "
                                     f"use dense embeddings (sparse=False)")
                state = self.state[p]
                if not state:
                    state.update(self.init_state(p))
                p.copy_(self.update(p, p.grad, state, group))
        return loss


class SGD(PerParameterOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum: :func:`sgd_update` on
    every parameter. Matches ``torch.optim.SGD(params, lr, momentum, nesterov, weight_decay)``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay))

    def init_state(self, p: torch.Tensor) -> dict[str, Any]:
        return {"velocity": torch.zeros_like(p)}

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> torch.Tensor:
        p, state["velocity"] = sgd_update(p, grad, state["velocity"], lr=group["lr"],
                                          momentum=group["momentum"],
                                          nesterov=group["nesterov"],
                                          weight_decay=group["weight_decay"])
        return p


class RMSProp(PerParameterOptimizer):
    """RMSProp (Hinton, 2012): :func:`rmsprop_update` on every parameter. Matches
    ``torch.optim.RMSprop(params, lr, alpha, eps, weight_decay)`` (no momentum, not centered).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    def init_state(self, p: torch.Tensor) -> dict[str, Any]:
        return {"square_avg": torch.zeros_like(p)}

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> torch.Tensor:
        p, state["square_avg"] = rmsprop_update(p, grad, state["square_avg"], lr=group["lr"],
                                                alpha=group["alpha"], eps=group["eps"],
                                                weight_decay=group["weight_decay"])
        return p


class Adam(PerParameterOptimizer):
    """Adam (Kingma & Ba, 2015): :func:`adam_update` (the one statement of its equations) on
    every parameter, with ``weight_decay`` as L2 added to the gradient.
    Matches ``torch.optim.Adam(params, lr, betas, eps, weight_decay)``.
    """

    decoupled = False  # AdamW sets True: decay the weights directly, not through the gradient

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def init_state(self, p: torch.Tensor) -> dict[str, Any]:
        return {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> torch.Tensor:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        p, state["m"], state["v"] = adam_update(
            p, grad, state["m"], state["v"], state["step"], lr=group["lr"], beta1=beta1,
            beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            decoupled=self.decoupled)
        return p


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, which shrinks
    every weight whatever its gradient history (``decoupled=True`` in :func:`adam_update`).
    Matches ``torch.optim.AdamW`` (same default ``weight_decay=0.01``).
    """

    decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def check_hyperparameters(owner: str, hp: dict[str, Any]) -> None:
    """Raise a ValueError that names the bad hyperparameter and the range it must lie in."""
    if "lr" in hp:
        _check_real(owner, "lr", hp["lr"], "a learning rate is a step size, e.g. 1e-3")
    for name in ("weight_decay", "eps"):
        if name in hp:
            _check_real(owner, name, hp[name], "use 0 to turn it off")
    for name in ("momentum", "alpha"):
        if name in hp:
            _check_fraction(owner, name, hp[name])
    if "betas" in hp:
        betas = hp["betas"]
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), e.g. (0.9, 0.999); "
                             f"got {betas!r}")
        for i, beta in enumerate(betas, start=1):
            _check_fraction(owner, f"beta{i} (betas[{i - 1}])", beta)
    if hp.get("nesterov") and hp.get("momentum", 0) == 0:
        raise ValueError(f"{owner}: nesterov=True needs momentum > 0 (it looks one momentum "
                         f"step ahead); set momentum=0.9 or nesterov=False")


def _check_real(owner: str, name: str, value: Any, hint: str) -> None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}; {hint}")


def _check_fraction(owner: str, name: str, value: Any) -> None:
    if not (isinstance(value, numbers.Real) and 0 <= value < 1):
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}; it is the weight "
                         f"of the old average in a running average (0.9 and 0.999 are usual)")
