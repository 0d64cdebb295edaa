"""Checks for stage 17 (inference): the KV cache update, greedy decoding with a cache, int8
quantization and dequantization, and the open challenge, a 4-bit model.

Each is compared with the course's reference (``slm_course.transformer.KVCache``,
``slm_course.generate.generate``, ``slm_course.quantize``) on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.generate import generate
from slm_course.gpt import GPT, GPTConfig
from slm_course.quantize import dequantize, quantize_symmetric

#: the open challenge: the whole-split loss of a 4-bit model (at most 16 values in every
#: group of GROUP weights of a row) may exceed the float model's by at most this (nats)
CHALLENGE_MAX_RISE = 0.05
GROUP = 32


def check_cache_update(fn: Callable[..., Any]) -> bool:
    """Check ``fn(k_cache, v_cache, k_new, v_new, pos) -> (k, v)``: write the new (B, H, T, D)
    keys and values into the preallocated (B, H, max_len, D) buffers at positions
    pos..pos+T-1, in place, and return the buffers' first pos + T positions."""
    name = "check_cache_update"
    g = torch.Generator().manual_seed(0)
    k_cache, v_cache = torch.zeros(2, 3, 10, 4), torch.zeros(2, 3, 10, 4)
    written_k, written_v = [], []
    pos = 0
    for T in (4, 1, 2):
        k_new, v_new = torch.randn(2, 3, T, 4, generator=g), torch.randn(2, 3, T, 4, generator=g)
        written_k.append(k_new)
        written_v.append(v_new)
        out = call_learner(name, fn, k_cache, v_cache, k_new, v_new, pos)
        expect(name, isinstance(out, tuple) and len(out) == 2, "return a pair (k, v)",
               got=type(out).__name__)
        k, v = out
        expect(name, tuple(k.shape) == (2, 3, pos + T, 4) and tuple(v.shape) == k.shape,
               f"after writing {T} token(s) at position {pos}, return the first {pos + T} "
               f"positions", expected=(2, 3, pos + T, 4), got=tuple(k.shape),
               hint="return k_cache[:, :, :pos + T], v_cache[:, :, :pos + T]")
        expect_close(name, k, torch.cat(written_k, dim=2), what="the keys so far",
                     hint="write k_cache[:, :, pos:pos + T] = k_new (the time axis is dim 2)")
        expect_close(name, v, torch.cat(written_v, dim=2), what="the values so far")
        expect(name, bool(torch.equal(k_cache[:, :, :pos + T], k)),
               "the cache buffer itself must hold the new keys (write in place)",
               hint="assign into the slice of k_cache; do not torch.cat a new tensor")
        pos += T
    expect(name, bool((k_cache[:, :, pos:] == 0).all()), "positions after the written ones "
           "must stay untouched", hint="write only pos..pos+T-1")
    return passed(name, "three updates (4, 1 and 2 tokens) written in place and returned")


def _peaky_gpt(seed: int = 1) -> GPT:
    """A small random GPT whose greedy tokens vary (an untied, larger output layer)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=13, block_size=24, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        model.transformer.wpe.weight.mul_(3)
        model.lm_head.weight = nn.Parameter(torch.randn_like(model.lm_head.weight))
    return model.eval()


def check_generate_cached(fn: Callable[..., Any]) -> bool:
    """Check ``fn(model, idx, max_new_tokens) -> idx`` (greedy, with a KV cache): the tokens
    of ``generate(..., temperature=0, use_cache=False)``, the prompt run once, then one new
    token per forward pass."""
    name = "check_generate_cached"
    model = _peaky_gpt()
    prompt = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    expected = generate(model, prompt, 12, temperature=0, use_cache=False)
    lengths: list[int] = []
    hook = model.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    try:
        got = call_learner(name, fn, model, prompt.clone(), 12)
    finally:
        hook.remove()
    expect(name, isinstance(got, torch.Tensor), "return the token ids as a tensor",
           got=type(got).__name__)
    expect(name, tuple(got.shape) == tuple(expected.shape), "wrong shape",
           expected=tuple(expected.shape), got=tuple(got.shape),
           hint="return the prompt followed by the new tokens: (B, T + max_new_tokens)")
    expect(name, bool(torch.equal(got, expected)), "greedy tokens differ from the uncached "
           "reference's", expected=expected, got=got,
           hint="first call model(idx, cache=cache) on the whole prompt, then each step "
                "model(next_id, cache=cache) with only the new token (B, 1)")
    expect(name, lengths[:1] == [4] and all(t == 1 for t in lengths[1:]),
           "run the prompt once, then one token per step", expected=[4] + [1] * 11,
           got=lengths, hint="after the first call, feed only the newest token: the cache "
                             "holds the rest")
    return passed(name, "the uncached tokens, with 1 token per forward pass after the prompt")


def check_quantize_int8(quantize: Callable[..., Any], dequant: Callable[..., Any]) -> bool:
    """Check ``quantize(w) -> (q, scale)``: symmetric int8 per output row (q = round(w / s),
    s = max|w_row| / 127, q int8 in [-127, 127], scale (rows, 1)), and ``dequant(q, scale)
    -> s q``; the round trip's error is at most scale / 2."""
    name = "check_quantize_int8"
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 20, generator=g) * torch.logspace(-3, 1, 6)[:, None]
    w[2] = 0.0  # an all-zero row must not divide by zero
    out = call_learner(name, quantize, w.clone())
    expect(name, isinstance(out, tuple) and len(out) == 2, "return a pair (q, scale)",
           got=type(out).__name__)
    q, scale = out
    ref_q, ref_scale = quantize_symmetric(w, axis=0)
    expect(name, isinstance(q, torch.Tensor) and q.dtype == torch.int8,
           "q must be an int8 tensor", got=getattr(q, "dtype", type(q).__name__),
           hint="torch.round(w / scale).clamp(-127, 127).to(torch.int8)")
    expect(name, tuple(scale.shape) == (6, 1), "one scale per row, shape (rows, 1)",
           got=tuple(scale.shape), hint="w.abs().amax(dim=1, keepdim=True) / 127")
    rows = [0, 1, 3, 4, 5]  # the zero row's scale is free
    expect_close(name, scale[rows], ref_scale[rows], what="the scales (max|w_row| / 127)")
    expect(name, bool(torch.equal(q, ref_q)), "q differs from round(w / scale)",
           expected=ref_q, got=q, hint="round to the nearest integer (torch.round), then "
                                       "clamp to [-127, 127]")
    w_hat = call_learner(name, dequant, q, scale)
    expect_close(name, w_hat, dequantize(ref_q, ref_scale), what="dequant(q, scale) = s q")
    err = (w - w_hat).abs()
    expect(name, bool((err <= scale / 2 * (1 + 1e-5) + 1e-12).all()),
           "the round trip's error exceeds half a step (scale / 2)")
    return passed(name, f"per-row int8, max error {float((err / scale.clamp_min(1e-12)).max()):.3f}"
                        f" steps (bound 0.5)")


def _levels_ok(weight: torch.Tensor, group: int) -> tuple[bool, int]:
    """(every group of ``group`` columns of every row holds <= 16 values, the worst count)."""
    rows, cols = weight.shape
    worst = 0
    for start in range(0, cols, group):
        block = weight[:, start:start + group]  # (rows, <= group)
        for r in range(rows):
            worst = max(worst, int(torch.unique(block[r]).numel()))
    return worst <= 16, worst


def check_challenge_4bit(model_4bit: nn.Module, model: nn.Module, val: torch.Tensor,
                         block_size: int, max_rise: float = CHALLENGE_MAX_RISE) -> float:
    """The open challenge: every ``nn.Linear`` weight of ``model_4bit`` holds at most 16
    distinct values in each group of 32 consecutive weights of a row (4 bits an entry), and
    its whole-split loss on ``val`` is at most ``max_rise`` nats above ``model``'s."""
    from slm_course.lm_data import split_loss

    name = "check_challenge_4bit"
    linears = [(n, m) for n, m in model_4bit.named_modules() if isinstance(m, nn.Linear)]
    expect(name, len(linears) > 0, "the model must keep its nn.Linear layers (fake "
           "quantization: float weights that take at most 16 values per group)")
    for layer_name, layer in linears:
        ok, worst = _levels_ok(layer.weight.detach(), GROUP)
        expect(name, ok, f"{layer_name}.weight has {worst} distinct values in a group of "
               f"{GROUP}; 4 bits allow 16", hint="quantize each group of 32 weights of a row "
               "with its own scale (and zero point) to 16 levels, then dequantize")
    base = split_loss(model, val, block_size)
    loss = split_loss(model_4bit, val, block_size)
    rise = loss - base
    expect(name, rise <= max_rise, f"the 4-bit model's loss is {rise:.4f} nats above the "
           f"float model's; target <= {max_rise}", got=round(rise, 4),
           hint="smaller groups, asymmetric levels (min..max), or keep the embeddings float")
    passed(name, f"loss {loss:.4f} vs {base:.4f} float: +{rise:.4f} nats (target <= "
                 f"{max_rise}) with 16 levels per group of {GROUP}")
    return rise
