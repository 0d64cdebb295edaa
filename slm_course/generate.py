"""Sampling text from a language model: temperature, top-k, top-p (nucleus).

At each step the model gives logits z over the vocabulary for the next token and we draw

    p = softmax(z / T),   then keep only the k most likely tokens (top-k) and/or the
                          smallest set whose probability reaches p_top (top-p), renormalise,
    x_next ~ p.

T < 1 sharpens the distribution (T -> 0 is greedy), T > 1 flattens it.

With a KV cache (stage 17, ``use_cache``) the model runs the prompt once, then one token per
step, reading the past tokens' keys and values from a
:class:`~slm_course.transformer.KVCache` instead of recomputing them: the same tokens, a
step cost linear instead of quadratic in the context length.

Stage 14: GPT, the small language model (the cache: stage 17, inference).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator

import torch

from slm_course.helpers.eval_mode import evaluating
from slm_course.transformer import KVCache


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -inf. logits: (B, V)."""
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability sum reaches ``p``.

    The most likely token is always kept. logits: (B, V).
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of the tokens ranked above
    drop_sorted = mass_before >= p  # already reached p without this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Draw one token id per row from (B, V) logits; returns (B, 1). temperature 0 = greedy."""
    if not (temperature >= 0 and math.isfinite(temperature)):  # nan fails every comparison
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool | None = None
             ) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + new).

    The context is cropped to the model's ``config.block_size`` (the last tokens), since the
    model cannot look further back than it was trained to. ``use_cache``: True runs with a
    KV cache (the model's forward must take ``cache=``), False recomputes the whole context
    every step, None (default) uses the cache when the model supports it. Both give the same
    tokens.
    """
    for next_id in generate_stream(model, idx, max_new_tokens, temperature=temperature,
                                   top_k=top_k, top_p=top_p, generator=generator,
                                   use_cache=use_cache):
        idx = torch.cat([idx, next_id], dim=1)
    return idx


def generate_stream(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *,
                    temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, generator: torch.Generator | None = None,
                    use_cache: bool | None = None) -> Iterator[torch.Tensor]:
    """:func:`generate` one token at a time: yields each new (B, 1) as soon as it is drawn,
    so a caller can print text as it comes (and keep it when stopped early).

    With the cache, the first step runs the prompt (its last block_size tokens) and stores
    every layer's keys and values; each later step runs only the newest token. Once the
    context fills the block_size window, the window has to slide: the model's positions are
    absolute (learned ``wpe``), and each cached key was computed from a hidden state that saw
    tokens now outside the window, so no cached entry is right any more. Such a step resets
    the cache and recomputes the window (exactly what the uncached model does), so tokens
    past block_size cost what they cost without a cache.
    """
    if idx.dim() != 2:
        raise ValueError(f"idx must be (batch, time), got shape {tuple(idx.shape)}")
    if idx.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token to start from")
    block_size = model.config.block_size
    cache = KVCache(block_size) if _wants_cache(model, use_cache) else None
    with torch.no_grad(), evaluating(model):
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = model(idx[:, -block_size:])  # (B, t, V): the whole context again
            elif cache.length == 0 or cache.length == block_size:  # first step, or full
                cache.reset()
                logits, _ = model(idx[:, -block_size:], cache=cache)  # fills the cache
            else:
                logits, _ = model(idx[:, -1:], cache=cache)  # (B, 1, V): the new token only
            next_id = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k,
                                  top_p=top_p, generator=generator).to(idx.device)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
            yield next_id


def supports_cache(model: torch.nn.Module) -> bool:
    """True when ``model``'s forward takes a ``cache`` argument (a KV cache)."""
    try:
        return "cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return False


def _wants_cache(model: torch.nn.Module, use_cache: bool | None) -> bool:
    if use_cache is None:
        return supports_cache(model)
    if use_cache and not supports_cache(model):
        raise ValueError(f"use_cache=True but {type(model).__name__}.forward takes no `cache` "
                         f"argument; pass use_cache=False (recompute every step)")
    return bool(use_cache)
