"""Checks for stage 11, LSTM and GRU language models (solutions/11_lstm_language_models).

Each check calls the learner's function on a few cases, compares with ``nn.LSTM``,
``nn.GRU``, ``torch.nn.utils.clip_grad_norm_`` or a layout written out by hand, and prints
one ✓ line or raises :class:`~slm_course.exercises.checking.CheckFailed` naming the likely
mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from slm_course.exercises.checking import as_array, call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick


def _weights(kind: type, I: int, H: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return kind(I, H, batch_first=True).double()


def check_lstm_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new)`` for one LSTM step
    (x (B, I), h and c (B, H), W_ih (4H, I), W_hh (4H, H), gate order i, f, g, o)."""
    name = "check_lstm_step"
    for I, H, B, seed in [(3, 2, 1, 0), (5, 4, 3, 1), (2, 6, 2, 2)]:
        rnn = _weights(nn.LSTM, I, H, seed)
        x, h, c = (torch.randn(B, n, dtype=torch.float64) for n in (I, H, H))
        _, (h_want, c_want) = rnn(x[:, None], (h[None], c[None]))
        args = [t.detach().clone() for t in (x, h, c, rnn.weight_ih_l0, rnn.weight_hh_l0,
                                              rnn.bias_ih_l0, rnn.bias_hh_l0)]
        got = call_learner(name, fn, *args)
        expect(name, isinstance(got, tuple) and len(got) == 2, "return a pair (h_new, c_new)",
               got=type(got).__name__, hint="return h, c at the end of the function")
        h_got, c_got = (as_array(name, t, w) for t, w in zip(got, ("h_new", "c_new"), strict=True))
        expect_close(name, c_got, c_want[0].detach().numpy(), what=f"c_new for B={B}, H={H}",
                     hint="split z = x W_ih^T + b_ih + h W_hh^T + b_hh into 4 blocks in the "
                          "order i, f, g, o; sigmoid on i, f, o, tanh on g; c' = f*c + i*g")
        expect_close(name, h_got, h_want[0].detach().numpy(), what=f"h_new for B={B}, H={H}",
                     hint="h' = o * tanh(c'), with the new cell state c', not the old one")
    return passed(name, "3 shapes against nn.LSTM")


def check_gru_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_new`` for one GRU step (W_ih (3H, I),
    W_hh (3H, H), gate order r, z, n)."""
    name = "check_gru_step"
    for I, H, B, seed in [(3, 2, 1, 0), (5, 4, 3, 1), (2, 6, 2, 2)]:
        rnn = _weights(nn.GRU, I, H, seed)
        x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
        _, h_want = rnn(x[:, None], h[None])
        args = [t.detach().clone() for t in (x, h, rnn.weight_ih_l0, rnn.weight_hh_l0,
                                              rnn.bias_ih_l0, rnn.bias_hh_l0)]
        got = as_array(name, call_learner(name, fn, *args), "h_new")
        want = h_want[0].detach().numpy()
        swapped = _gru_swapped_z(x, h, rnn)
        if got.shape == want.shape and np.allclose(got, swapped) and not np.allclose(got, want):
            expect(name, False, "h_new mixes n and h the other way round",
                   hint="PyTorch's GRU keeps the old state where z is 1: h' = (1 - z) * n + z * h")
        expect_close(name, got, want, what=f"h_new for B={B}, H={H}",
                     hint="r and z are sigmoids of their x and h blocks (order r, z, n); the "
                          "reset gate multiplies the whole recurrent part of n, bias included: "
                          "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))")
    return passed(name, "3 shapes against nn.GRU")


def _gru_swapped_z(x: torch.Tensor, h: torch.Tensor, rnn: nn.GRU) -> np.ndarray:
    xr, xz, xn = (x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0).chunk(3, dim=1)
    hr, hz, hn = (h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (z * n + (1 - z) * h).detach().numpy()


def check_batchify(fn: Callable[..., Any]) -> bool:
    """Check ``fn(tokens, rows) -> (rows, N // rows)``: contiguous streams, the tail dropped."""
    name = "check_batchify"
    for n, rows in [(12, 3), (23, 4), (10, 1), (9, 9 // 2)]:
        tokens = torch.arange(n)
        length = n // rows
        want = np.array([list(range(r * length, (r + 1) * length)) for r in range(rows)])
        got = as_array(name, call_learner(name, fn, tokens.clone(), rows), "rows")
        expect(name, got.shape == want.shape, f"{n} tokens in {rows} rows: shape {got.shape}, "
               f"expected {want.shape}", hint="drop the last N % rows tokens, then make rows "
               "of N // rows tokens each")
        if got.shape == want.shape and rows > 1 and np.array_equal(got, np.arange(
                rows * length).reshape(length, rows).T):
            expect(name, False, f"{n} tokens in {rows} rows: the rows interleave the stream",
                   hint="row r must be a contiguous piece of text, tokens[r*L:(r+1)*L]: "
                        "tokens[:rows*L].view(rows, L), not .view(L, rows).T")
        expect(name, np.array_equal(got, want), f"{n} tokens in {rows} rows: wrong layout",
               expected=want, got=got, hint="row r is tokens[r*L:(r+1)*L] with L = N // rows")
    return passed(name, "4 cases, with a dropped tail and one row")


def check_clip_by_global_norm(fn: Callable[..., Any]) -> bool:
    """Check ``fn(grads, max_norm) -> (clipped_grads, total_norm)`` against
    ``torch.nn.utils.clip_grad_norm_`` (total_norm is the norm *before* clipping)."""
    name = "check_clip_by_global_norm"
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    for max_norm, scale in [(1.0, 10.0), (0.5, 1.0), (100.0, 1.0)]:  # the last: untouched
        grads = [torch.randn(s, generator=gen, dtype=torch.float64) * scale for s in shapes]
        params = [nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        norm = float(nn.utils.clip_grad_norm_(params, max_norm))
        got = call_learner(name, fn, [g.clone() for g in grads], max_norm)
        expect(name, isinstance(got, tuple) and len(got) == 2,
               "return a pair (clipped_grads, total_norm)", got=type(got).__name__)
        clipped, total = got
        expect_close(name, float(total), norm, what=f"total_norm (max_norm={max_norm})",
                     hint="the global norm is sqrt of the sum of every squared entry of every "
                          "gradient, one number for all tensors, measured before clipping")
        expect(name, len(clipped) == len(grads), f"{len(clipped)} clipped tensors for "
               f"{len(grads)} gradients")
        per_tensor = [g * min(1.0, max_norm / float(g.norm())) for g in grads]
        for k, (c, p) in enumerate(zip(clipped, params, strict=True)):
            c = as_array(name, c, f"clipped_grads[{k}]")
            if max_norm < norm and np.allclose(c, per_tensor[k].numpy()):
                expect(name, False, "each tensor was clipped by its own norm",
                       hint="use one scale for all: min(1, max_norm / global_norm), so the "
                            "direction of the whole gradient is kept")
            expect_close(name, c, p.grad.numpy(), what=f"clipped_grads[{k}] (max_norm="
                         f"{max_norm})", hint="multiply every gradient by min(1, max_norm / "
                         "(total_norm + 1e-6)); a gradient already short enough is unchanged")
    return passed(name, "3 cases: two clipped, one left alone")


def check_char_lstm_challenge(lm: nn.Module, steps: int, target: float | None = None,
                              max_steps: int | None = None, n_chars: int | None = None
                              ) -> float:
    """Whole-split validation loss of a character language model trained for ``steps``
    steps (``lm(x, y, hidden) -> ((logits, hidden), loss)``, as ``slm_course.lstm.
    RecurrentLM``), read as one stream with the state carried (``stream_loss``).

    Targets, in nats/char on Tiny Shakespeare's 10% validation split with lesson 14's
    character tokenizer: 1.80 in at most 1,500 steps (full profile, all 111,540 characters);
    2.45 in at most 150 steps (fast profile, the first 20,000 characters).
    """
    from slm_course.lm_data import prepare_lm_data
    from slm_course.lstm import stream_loss

    name = "check_char_lstm_challenge"
    target = target if target is not None else pick(fast=2.45, full=1.80)
    max_steps = max_steps or pick(fast=150, full=1500)
    n_chars = n_chars or pick(fast=20_000, full=None)
    expect(name, steps <= max_steps, f"trained for {steps} steps, the budget is {max_steps}",
           hint="lower max_steps in your TrainConfig; the challenge is the loss per step")
    val = prepare_lm_data().val[:n_chars]
    loss = call_learner(name, stream_loss, lm, val)
    expect(name, loss <= target, f"validation loss {loss:.3f} nats/char, target {target}",
           hint="a larger hidden state, a higher learning rate (3e-3 to 1e-2 with AdamW), "
                "longer chunks for truncated BPTT, and gradient clipping at 1.0")
    passed(name, f"{loss:.3f} nats/char on {len(val):,} validation characters in {steps} "
           f"steps (target {target})")
    return loss
