"""Checks for stage 18 (from GPT-2 to a modern small LM).

RMSNorm, the rotary tables and their application, a SwiGLU MLP and one Newton-Schulz step
are each compared with the course's reference (``slm_course.modern``, ``slm_course.muon``)
or with PyTorch on several inputs; the open challenge is the speedrun: a whole-split
validation loss within a wall-clock budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.modern import apply_rotary, rotary_tables
from slm_course.muon import NS_COEFFICIENTS

#: the open challenge, the speedrun: whole-split validation loss (nats/char) on Tiny
#: Shakespeare within a training budget in seconds. Full profile: the record's target, all
#: of the validation split in 120 s on a 2-core CPU; fast profile: the first 20,000
#: validation characters, no time limit (CI machines differ too much in speed to time them).
CHALLENGE_TARGET: dict[str, tuple[float, float | None]] = {"full": (1.62, 120.0),
                                                            "fast": (2.60, None)}


def _tensor(name: str, got: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    expect(name, isinstance(got, torch.Tensor), f"{what} must be a torch.Tensor",
           got=type(got).__name__, hint="build it from torch operations and return it")
    expect(name, tuple(got.shape) == shape, f"{what} has shape {tuple(got.shape)}, "
           f"expected {shape}", hint="reduce over the last dimension with keepdim=True")
    return got


def check_rms_norm(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x (..., C), weight (C,), eps) -> x / sqrt(mean(x^2) + eps) * weight``."""
    name = "check_rms_norm"
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(4, 8, generator=g) * 3 + 2, torch.randn(8, generator=g), 1e-6),
             (torch.randn(2, 3, 16, generator=g), torch.ones(16), 1e-6),
             (torch.zeros(1, 5), torch.ones(5), 1e-2)]  # all zeros: eps keeps it finite
    for x, weight, eps in cases:
        got = _tensor(name, call_learner(name, fn, x, weight, eps), tuple(x.shape), "y")
        expected = F.rms_norm(x, weight.shape, weight, eps)
        expect_close(name, got, expected, what="y", rtol=1e-4, atol=1e-5,
                     hint="RMS = sqrt(mean of x squared over the LAST dimension + eps); no "
                          "mean is subtracted (that would be LayerNorm); multiply by weight")
    return passed(name, f"{len(cases)} cases, equal to F.rms_norm (an all-zero row included)")


def check_rotary_tables(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n_positions, head_dim, base) -> (cos, sin)``, each (n_positions,
    head_dim / 2), of the angles m * base^(-2i / head_dim)."""
    name = "check_rotary_tables"
    for T, D, base in [(5, 8, 10_000.0), (12, 4, 100.0), (1, 2, 10_000.0)]:
        got = call_learner(name, fn, T, D, base)
        expect(name, isinstance(got, tuple) and len(got) == 2, "return a pair (cos, sin)",
               got=type(got).__name__)
        cos, sin = rotary_tables(T, D, base)
        _tensor(name, got[0], (T, D // 2), "cos")
        _tensor(name, got[1], (T, D // 2), "sin")
        hint = ("theta_i = base ** (-2i / head_dim) for i = 0 .. head_dim/2 - 1 (use "
                "torch.arange(0, head_dim, 2) / head_dim); angle[m, i] = m * theta_i, m from 0")
        expect_close(name, got[0], cos, what="cos", atol=1e-5, hint=hint)
        expect_close(name, got[1], sin, what="sin", atol=1e-5, hint=hint)
    return passed(name, "3 shapes and bases")


def check_apply_rotary(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x (..., T, D), cos, sin) -> x`` with each pair of channels (j, j + D/2)
    rotated by its angle; and that rotated scores depend only on relative positions."""
    name = "check_apply_rotary"
    g = torch.Generator().manual_seed(1)
    for shape in [(1, 6, 8), (2, 3, 5, 4)]:
        x = torch.randn(*shape, generator=g)
        cos, sin = rotary_tables(shape[-2], shape[-1])
        got = _tensor(name, call_learner(name, fn, x, cos, sin), shape, "the rotated x")
        expect_close(name, got, apply_rotary(x, cos, sin), what="the rotated x", atol=1e-5,
                     hint="split x into halves x1 = x[..., :D/2], x2 = x[..., D/2:]; return "
                          "cat([x1 cos - x2 sin, x1 sin + x2 cos], dim=-1)")
    q, k = torch.randn(1, 1, 8, generator=g), torch.randn(1, 1, 8, generator=g)
    cos, sin = rotary_tables(40, 8)
    scores = [call_learner(name, fn, q, cos[m:m + 1], sin[m:m + 1])
              @ call_learner(name, fn, k, cos[m - 3:m - 2], sin[m - 3:m - 2]).transpose(-1, -2)
              for m in (3, 17, 39)]
    expect_close(name, torch.stack(scores), scores[0].expand(3, 1, 1, 1), what="q_m . k_(m-3)",
                 atol=1e-4, hint="the same rotation for q and k: scores then depend on m - n")
    return passed(name, "2 shapes, and q_m . k_n depends only on m - n")


def check_swiglu(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x (B, T, C), w_gate (C, h), w_up (C, h), w_down (h, C)) -> (B, T, C)``:
    SwiGLU(x) = (SiLU(x W_gate) * (x W_up)) W_down."""
    name = "check_swiglu"
    g = torch.Generator().manual_seed(2)
    for B, T, C, h in [(2, 3, 8, 12), (1, 1, 4, 4)]:
        x = torch.randn(B, T, C, generator=g)
        w_gate, w_up = torch.randn(C, h, generator=g), torch.randn(C, h, generator=g)
        w_down = torch.randn(h, C, generator=g)
        got = _tensor(name, call_learner(name, fn, x, w_gate, w_up, w_down), (B, T, C), "out")
        expected = (F.silu(x @ w_gate) * (x @ w_up)) @ w_down
        expect_close(name, got, expected, what="out", rtol=1e-4, atol=1e-4,
                     hint="SiLU (z * sigmoid(z)) goes on the GATE branch only; multiply "
                          "element-wise by the up branch, then project with w_down")
    return passed(name, "2 shapes")


def check_newton_schulz_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(X (m, n), a, b, c) -> a X + b (X X^T) X + c (X X^T)^2 X``."""
    name = "check_newton_schulz_step"
    g = torch.Generator().manual_seed(3)
    a, b, c = NS_COEFFICIENTS
    for m, n in [(4, 6), (5, 5), (1, 3)]:
        X = torch.randn(m, n, generator=g, dtype=torch.float64)
        X = X / X.norm()
        got = _tensor(name, call_learner(name, fn, X, a, b, c), (m, n), "X_next")
        A = X @ X.T
        expect_close(name, got, a * X + b * A @ X + c * A @ A @ X, what="X_next", rtol=1e-6,
                     atol=1e-9, hint="A = X @ X.T is (m, m); X_next = a X + (b A + c A @ A) X")
    X = torch.randn(6, 9, generator=g, dtype=torch.float64)
    X = X / X.norm()
    for _ in range(5):
        X = call_learner(name, fn, X, a, b, c)
    s = torch.linalg.svdvals(X)
    expect(name, bool(s.min() > 0.6 and s.max() < 1.25), "five steps should bring every "
           "singular value near 1", expected="in [0.6, 1.25]",
           got=[round(float(v), 3) for v in s])
    return passed(name, "3 shapes; 5 steps bring the singular values to about 1")


def check_speedrun_challenge(model: nn.Module, block_size: int, seconds: float,
                             target: tuple[float, float | None] | None = None) -> float:
    """The open challenge, the speedrun: ``model`` (``model(x, y) -> (logits, loss)`` on ids
    of the course's character tokenizer, ``slm_course.lm_data.prepare_lm_data()``) trained
    in ``seconds`` of wall time must reach ``CHALLENGE_TARGET``: full profile, a loss of at
    most 1.62 nats/char on the whole validation split within 120 s; fast profile, 2.60 on the
    first 20,000 characters (not timed)."""
    from slm_course.lm_data import prepare_lm_data, split_loss

    name = "check_speedrun_challenge"
    loss_target, time_target = target if target is not None else pick(**CHALLENGE_TARGET)
    expect(name, isinstance(model, nn.Module), "pass your trained model (an nn.Module)",
           got=type(model).__name__)
    expect(name, time_target is None or seconds <= time_target, f"training took "
           f"{seconds:.1f} s, the budget is {time_target} s",
           hint="fewer steps, a smaller model, or a faster step")
    val = prepare_lm_data().val[:pick(fast=20_000, full=None)]
    loss = call_learner(name, split_loss, model, val, block_size)
    expect(name, loss <= loss_target, f"validation loss {loss:.3f} nats/char, target "
           f"{loss_target}", expected=f"<= {loss_target}", got=round(loss, 3),
           hint="start from the preset shakespeare-char-cpu-speedrun's settings: RoPE, "
                "RMSNorm, SwiGLU, Muon, a high learning rate decayed to zero, a longer context")
    budget = "" if time_target is None else f" in {time_target:.0f} s"
    return passed(name, f"{loss:.3f} nats/char on {len(val):,} validation characters in "
                        f"{seconds:.1f} s (target {loss_target}{budget})")
