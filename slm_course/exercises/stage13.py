"""Checks for stage 13, the transformer (solutions/13_transformer).

Each check calls the learner's function on a few cases, compares with the reference in
``slm_course.transformer``, and prints one ✓ line or raises
:class:`~slm_course.exercises.checking.CheckFailed` naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.transformer import Block, LayerNorm, MultiHeadAttention, sinusoidal_positions

#: the open challenge: exact-match accuracy of greedy sorting on 1,000 fresh prompts of one
#: length (full profile: 8 digits; fast profile: 5 digits, for a model trained in seconds)
CHALLENGE = {"full": {"length": 8, "target": 0.95}, "fast": {"length": 5, "target": 0.80}}


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _as_tensor(value: Any) -> torch.Tensor | None:
    """The learner's answer as a float tensor, or None when it is not array-like."""
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        return None


def _reference_mha(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
                   w_out: torch.Tensor, b_out: torch.Tensor, n_head: int, causal: bool
                   ) -> torch.Tensor:
    C = x.shape[-1]
    mha = MultiHeadAttention(C, n_head)
    with torch.no_grad():
        mha.c_attn.weight.copy_(w_qkv)
        mha.c_attn.bias.copy_(b_qkv)
        mha.c_proj.weight.copy_(w_out)
        mha.c_proj.bias.copy_(b_out)
        return mha(x, causal=causal)[0]


def _wrong_head_split(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
                      w_out: torch.Tensor, b_out: torch.Tensor, n_head: int, causal: bool
                      ) -> torch.Tensor:
    """The classic bug: view (B, T, C) straight as (B, H, T, D), mixing tokens into heads."""
    B, T, C = x.shape
    D = C // n_head
    q, k, v = (x @ w_qkv.T + b_qkv).split(C, dim=-1)
    q, k, v = (t.reshape(B, n_head, T, D) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / D ** 0.5
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = (torch.softmax(scores, -1) @ v).reshape(B, T, C)
    return y @ w_out.T + b_out


def check_multi_head_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, w_qkv, b_qkv, w_out, b_out, n_head, causal) -> out`` (B, T, C).

    w_qkv (3C, C) and b_qkv (3C,) project x to [q, k, v] (the layout of
    ``nn.MultiheadAttention.in_proj_weight``); w_out (C, C), b_out (C,) mix the heads.
    """
    name = "check_multi_head_attention"
    cases = [  # (what, B, T, C, n_head, causal)
        ("one head, no mask", 2, 4, 6, 1, False),
        ("4 heads, no mask", 2, 5, 8, 4, False),
        ("4 heads, causal", 2, 5, 8, 4, True),
        ("3 heads, causal, one token", 3, 1, 6, 3, True),
        ("2 heads, causal, a longer sequence", 1, 9, 4, 2, True),
    ]
    for seed, (about, B, T, C, H, causal) in enumerate(cases):
        x = _randn(B, T, C, seed=seed)
        w_qkv, b_qkv = _randn(3 * C, C, seed=50 + seed) / C ** 0.5, _randn(3 * C, seed=60 + seed)
        w_out, b_out = _randn(C, C, seed=70 + seed) / C ** 0.5, _randn(C, seed=80 + seed)
        args = (w_qkv, b_qkv, w_out, b_out)
        want = _reference_mha(x, *args, n_head=H, causal=causal)
        got = call_learner(name, fn, x.clone(), *(a.clone() for a in args), H, causal)
        expect(name, isinstance(got, torch.Tensor) and tuple(got.shape) == (B, T, C),
               f"{about}: expected a tensor of shape {(B, T, C)}",
               got=getattr(got, "shape", got), hint="return out, not (out, weights)")
        hint = ("q, k, v = (x @ w_qkv.T + b_qkv).split(C, dim=-1); give each head its own "
                "D = C // n_head channels: .view(B, T, n_head, D).transpose(1, 2); "
                "softmax(q k^T / sqrt(D)); put the heads back side by side and apply w_out")
        if not torch.allclose(got, want, atol=1e-5):
            if causal and torch.allclose(got, _reference_mha(x, *args, n_head=H, causal=False),
                                         atol=1e-5):
                hint = ("this is the answer without the causal mask: set the scores of keys "
                        "j > i to -inf before the softmax (torch.ones(T, T).tril() marks the "
                        "allowed ones)")
            elif H > 1 and torch.allclose(got, _reference_mha(x, *args, n_head=1,
                                                              causal=causal), atol=1e-5):
                hint = ("this is one wide head: split the C channels into n_head heads of "
                        "D = C // n_head and scale by sqrt(D), not sqrt(C)")
            elif H > 1 and T > 1 and torch.allclose(
                    got, _wrong_head_split(x, *args, n_head=H, causal=causal), atol=1e-5):
                hint = ("tokens and heads got mixed: reshape (B, T, C) to (B, T, n_head, D) "
                        "first, then transpose to (B, n_head, T, D); and back the same way")
        expect_close(name, got, want, what=f"output for {about}", rtol=1e-4, atol=1e-5,
                     hint=hint)
    return passed(name, f"{len(cases)} cases: 1 to 4 heads, causal and not, a single token")


def check_sinusoidal_positions(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n_positions, d_model) -> PE`` (n_positions, d_model):
    PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    name = "check_sinusoidal_positions"
    cases = [(1, 2), (6, 4), (50, 16), (128, 64)]
    for n, d in cases:
        got = call_learner(name, fn, n, d)
        want = sinusoidal_positions(n, d)
        hint = ("even channels 0, 2, 4, ... hold sin and odd channels 1, 3, 5, ... hold cos "
                "of the same angle p / 10000^(2i/d), where 2i is the even channel index")
        got_t = _as_tensor(got)
        if got_t is not None and got_t.shape == want.shape and d > 2:
            two_i = torch.arange(0, d, 2, dtype=torch.float32)  # 0, 2, 4, ...
            position = torch.arange(n, dtype=torch.float32)[:, None]
            angle = position / 10_000 ** (two_i / d)  # (n, d/2)
            if torch.allclose(got_t, torch.cat([angle.sin(), angle.cos()], dim=1), atol=1e-4):
                hint = ("you put all the sines first and then all the cosines: interleave "
                        "them, pe[:, 0::2] = sin and pe[:, 1::2] = cos")
            if torch.allclose(got_t[:, 0::2], (position / 10_000 ** (two_i / (d / 2))).sin(),
                              atol=1e-4):
                hint = ("the frequencies fall too fast: the exponent is 2i/d with 2i the even "
                        "channel index (0, 2, 4, ...), i.e. torch.arange(0, d, 2) / d")
        expect_close(name, got, want, what=f"PE for n_positions={n}, d_model={d}",
                     rtol=1e-4, atol=1e-5, hint=hint)
    return passed(name, f"{len(cases)} shapes, from one position to 128 x 64")


def check_layer_norm(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, gamma, beta, eps) -> y``: normalise over the last axis, then rescale."""
    name = "check_layer_norm"
    cases = [  # (what, x)
        ("a (4, 8) batch", _randn(4, 8, seed=0) * 3 + 1),
        ("a (2, 3, 5) batch of sequences", _randn(2, 3, 5, seed=1)),
        ("a constant token (variance 0: eps keeps it finite)", torch.full((1, 6), 2.5)),
    ]
    for seed, (about, x) in enumerate(cases):
        d = x.shape[-1]
        ln = LayerNorm(d, eps=1e-5)
        with torch.no_grad():
            ln.weight.copy_(_randn(d, seed=90 + seed))
            ln.bias.copy_(_randn(d, seed=95 + seed))
            want = ln(x)
        got = call_learner(name, fn, x.clone(), ln.weight.detach().clone(),
                           ln.bias.detach().clone(), 1e-5)
        hint = ("y = (x - mean) / sqrt(var + eps) * gamma + beta, with mean and var over the "
                "last axis (dim=-1, keepdim=True)")
        got_t = _as_tensor(got)
        if got_t is not None and got_t.shape == want.shape and d > 1:
            mean = x.mean(-1, keepdim=True)
            with torch.no_grad():
                unbiased = (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5)
                unbiased = unbiased * ln.weight + ln.bias
            if torch.allclose(got_t, unbiased, atol=1e-5):
                hint = ("LayerNorm uses the biased variance (divide by d, not d - 1): "
                        "x.var(dim=-1, unbiased=False) or ((x - mean) ** 2).mean(-1)")
        expect(name, got_t is None or bool(torch.isfinite(got_t).all()),
               f"{about}: the output has nan or inf", hint="add eps inside the square root")
        expect_close(name, got, want, what=f"y for {about}", rtol=1e-4, atol=1e-5, hint=hint)
    return passed(name, f"{len(cases)} cases, including a constant token")


def check_transformer_block(cls: Callable[..., Any]) -> bool:
    """Check ``cls(n_embd, n_head, causal)``, a pre-norm block assembled from the given
    ``LayerNorm``, ``MultiHeadAttention`` and ``MLP`` as ``ln_1, attn, ln_2, mlp``, whose
    ``forward(x, padding_mask=None, need_weights=False)`` returns ``(x, weights)``, against
    ``slm_course.transformer.Block`` with the same weights."""
    name = "check_transformer_block"
    cases = [("causal", True, 2, 5, 8, 2, None), ("encoder (not causal)", False, 3, 4, 16, 4,
                                                  None),
             ("encoder with padding", False, 2, 6, 8, 2, [6, 3])]
    for seed, (about, causal, B, T, C, H, lengths) in enumerate(cases):
        torch.manual_seed(seed)
        reference = Block(C, H, causal=causal)
        with torch.no_grad():  # LayerNorm weights other than 1, so a missing LN shows
            for p in reference.parameters():
                p.add_(0.1 * torch.randn_like(p))
        learner = call_learner(name, cls, C, H, causal)
        expect(name, isinstance(learner, nn.Module), f"{about}: the block must be an "
               f"nn.Module", got=type(learner).__name__)
        want_keys = sorted(reference.state_dict())
        got_keys = sorted(learner.state_dict())
        expect(name, got_keys == want_keys, f"{about}: the block's parts are not named "
               "ln_1, attn, ln_2, mlp (or are not the given parts)", expected=want_keys,
               got=got_keys, hint="self.ln_1 = LayerNorm(n_embd); self.attn = "
               "MultiHeadAttention(n_embd, n_head); self.ln_2 = LayerNorm(n_embd); "
               "self.mlp = MLP(n_embd)")
        learner.load_state_dict(reference.state_dict())
        x = torch.randn(B, T, C) * 2 + 0.5
        mask = None if lengths is None else torch.arange(T)[None] < torch.tensor(lengths)[:, None]
        want, _ = reference(x, mask)
        out = call_learner(name, learner, x.clone(), mask)
        expect(name, isinstance(out, tuple) and len(out) == 2,
               f"{about}: forward must return a pair (x, weights), as the given attention does",
               got=type(out).__name__, hint="a, weights = self.attn(...); ...; return x, weights")
        expect_close(name, out[0], want, what=f"block output ({about})", atol=1e-5, rtol=1e-4,
                     hint="x = x + attn(ln_1(x), padding_mask, causal, need_weights)[0], then "
                          "x = x + mlp(ln_2(x)); pass self.causal and the padding mask on to "
                          "the attention")
    return passed(name, f"{len(cases)} cases: causal, encoder, padding; equal to Block")


def check_sort_challenge(model: nn.Module, target: float | None = None) -> float:
    """The open challenge: exact-match accuracy of ``model`` (a decoder-only model with
    ``generate_greedy`` like ``TinyTransformer``) sorting 1,000 fresh digit strings
    (``digit_task_accuracy(task="sort", seed=11)``). ``CHALLENGE``: 8 digits and 95% in the
    full profile, 5 digits and 80% in the fast profile."""
    from slm_course.transformer import digit_task_accuracy

    name = "check_sort_challenge"
    setting = pick(**CHALLENGE)
    target = setting["target"] if target is None else target
    length = setting["length"]
    expect(name, callable(getattr(model, "generate_greedy", None)),
           "pass a decoder-only model with generate_greedy, e.g. a TinyTransformer",
           got=type(model).__name__)
    block_size = getattr(getattr(model, "config", None), "block_size", 2 * length)
    expect(name, block_size >= 2 * length, f"the model's block_size {block_size} is too short "
           f"for prompts of {length} digits and their answers", expected=f">= {2 * length}",
           hint="TransformerConfig(block_size=2 * length, ...)")
    device = next(model.parameters()).device
    score = call_learner(name, digit_task_accuracy, model, length=length, task="sort", n=1000,
                         seed=11, device=device)
    exact = score["exact"]
    expect(name, exact >= target, f"exact-match accuracy {exact:.1%} sorting {length} digits "
           f"is below the target {target:.0%}", got=f"{exact:.1%}",
           hint="more steps or a larger batch, a learning rate around 3e-3 with warm-up, "
                "width 64 and 2 layers or more; train on the length you are tested on")
    passed(name, f"{exact:.1%} of 1,000 held-out strings of {length} digits sorted exactly "
                 f"(target {target:.0%}); {score['token']:.1%} of digits right")
    return exact
