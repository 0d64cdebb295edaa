"""Checks for stage 14 (GPT): the learner builds the whole model and its pipeline.

Batching (``get_batch``), causal self-attention, the pre-norm block, the GPT forward pass with
its loss and the generation loop are each compared with the course's reference
(``slm_course.lm_data``, ``slm_course.transformer``, ``slm_course.gpt``,
``slm_course.generate``) with the same weights copied in; the sampling filters with
``slm_course.generate``'s; the open challenge measures the whole-split validation loss of
the learner's own trained GPT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from slm_course.exercises.checking import call_learner, expect, expect_close, fail, passed
from slm_course.generate import generate, top_k_filter, top_p_filter
from slm_course.gpt import GPT, GPTConfig
from slm_course.helpers.workload import pick
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.transformer import Block, MultiHeadAttention

#: the open challenge: whole-split validation loss (nats/char) of the learner's GPT on Tiny
#: Shakespeare's validation split (full profile: all of it; fast profile: its first 20,000
#: characters, for a model trained in seconds on one CPU thread)
CHALLENGE_TARGET = {"full": 1.85, "fast": 2.60}


def _distinct_logits(batch: int, vocab: int, seed: int) -> torch.Tensor:
    """Logits without ties (a random permutation of spread-out values), so that 'the k
    largest' and 'the smallest set reaching p' have exactly one answer."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(vocab, generator=g).float() * 0.37 - 2.0 for _ in range(batch)]
    return torch.stack(rows)  # (B, V)


def _check_filter(name: str, fn: Callable, reference: Callable, cases: list, arg_name: str,
                  hint: str) -> None:
    for logits, arg in cases:
        before = logits.clone()
        got = call_learner(name, fn, logits, arg)
        expect(name, isinstance(got, torch.Tensor), f"return a torch.Tensor, got "
               f"{type(got).__name__}", hint="build the result with torch operations")
        expect(name, torch.equal(logits, before), "your function changed its input logits",
               hint="work on a copy: masked_fill (without the trailing _) returns a new tensor")
        expected = reference(logits, arg)
        expect(name, got.shape == expected.shape, f"result has shape {tuple(got.shape)}, "
               f"expected {tuple(expected.shape)}", hint="keep the (B, V) shape")
        kept_got, kept_exp = torch.isfinite(got), torch.isfinite(expected)
        expect(name, torch.equal(kept_got, kept_exp),
               f"kept the wrong tokens for {arg_name}={arg} (a kept token keeps its logit, a "
               f"removed one becomes -inf)", expected=kept_exp.int(), got=kept_got.int(),
               hint=hint)
        expect_close(name, got[kept_got], expected[kept_exp], what="the kept logits",
                     hint="kept logits must be unchanged (do not renormalise or softmax)")
        expect(name, bool(torch.all(got[~kept_got] == float("-inf"))),
               "removed tokens must be exactly -inf (so softmax gives them probability 0)",
               hint="use float('-inf'), not a large negative number or 0")


# ------------------------------------------------------------------------------ batching

def check_get_batch(fn: Callable[..., Any]) -> bool:
    """Check ``fn(data (N,), batch_size, block_size, generator) -> (x, y)``: random windows
    x (B, T) of consecutive tokens and y (B, T), the same windows shifted by one token."""
    name = "check_get_batch"
    data = torch.arange(100, 200)  # token k is 100 + k: a window's start is readable
    for batch_size, block_size in [(4, 8), (16, 3), (3, 99)]:
        g = torch.Generator().manual_seed(batch_size)
        out = call_learner(name, fn, data, batch_size, block_size, g)
        expect(name, isinstance(out, tuple) and len(out) == 2, "return a pair (x, y)",
               got=type(out).__name__, hint="end with `return x, y`")
        x, y = out
        expect(name, isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor),
               "x and y must be torch tensors", hint="index the data tensor with a tensor "
               "of positions, e.g. data[ix[:, None] + torch.arange(block_size)]")
        for what, t in (("x", x), ("y", y)):
            expect(name, tuple(t.shape) == (batch_size, block_size),
                   f"{what} has shape {tuple(t.shape)} for batch_size={batch_size}, "
                   f"block_size={block_size}", expected=(batch_size, block_size),
                   got=tuple(t.shape), hint="one row per window, block_size tokens per row")
            expect(name, t.dtype == data.dtype, f"{what} has dtype {t.dtype}, expected the "
                   f"data's {data.dtype}", hint="take the tokens from data, do not build floats")
        start = x[:, :1] - 100  # (B, 1): each window's offset
        expect(name, torch.equal(x - 100, start + torch.arange(block_size)),
               "a row of x is not block_size consecutive tokens of data", got=x[:2],
               hint="x[b] = data[i_b : i_b + block_size] for one random offset i_b per row")
        expect(name, torch.equal(y, x + 1), "y is not x shifted by one token", got=y[:2],
               hint="y[b] = data[i_b + 1 : i_b + block_size + 1]: y[b, t] is the token that "
                    "follows x[b, t]")
        expect(name, bool((start >= 0).all() and (start + block_size < len(data)).all()),
               "a window runs past the end of data",
               hint="draw offsets in [0, len(data) - block_size) so that y's last token exists")
    g = torch.Generator().manual_seed(0)
    x, _ = call_learner(name, fn, data, 400, 99, g)
    expect(name, set((x[:, 0] - 100).tolist()) == {0}, "with block_size = len(data) - 1 "
           "only one window fits (offset 0)", got=sorted(set((x[:, 0] - 100).tolist())),
           hint="torch.randint(len(data) - block_size, ...) has exactly one choice here")
    x1, _ = call_learner(name, fn, data, 64, 4, torch.Generator().manual_seed(1))
    x2, _ = call_learner(name, fn, data, 64, 4, torch.Generator().manual_seed(1))
    x3, _ = call_learner(name, fn, data, 64, 4, torch.Generator().manual_seed(2))
    expect(name, torch.equal(x1, x2) and not torch.equal(x1, x3),
           "the windows do not follow the generator (same seed should give the same batch, "
           "another seed another batch)",
           hint="pass it on: torch.randint(high, (batch_size,), generator=generator)")
    offsets = set((x1[:, 0] - 100).tolist()) | set((x3[:, 0] - 100).tolist())
    expect(name, len(offsets) > 20, f"128 random windows started at only {len(offsets)} "
           f"distinct offsets", hint="draw a random offset for every row")
    return passed(name, "shapes, shift by one, bounds, the edge case of one possible window, "
                        "and reproducibility with a generator")


# ------------------------------------------------------------------------------ the model

def _copy_weights(name: str, reference: nn.Module, learner: nn.Module, what: str) -> None:
    """Load ``reference``'s parameters into ``learner`` by name, or fail listing the names."""
    ref_params = {k: v for k, v in reference.named_parameters(remove_duplicate=False)}
    mine = dict(learner.named_parameters(remove_duplicate=False))
    missing = sorted(set(ref_params) - set(mine))
    extra = sorted(set(mine) - set(ref_params))
    expect(name, not missing and not extra,
           f"your {what}'s parameters are not named like the reference's, so the check "
           f"cannot copy the weights in", expected=sorted(ref_params), got=sorted(mine),
           hint="use the attribute names the exercise gives (GPT-2's: c_attn, c_proj, ln_1, "
                "attn, ln_2, mlp, transformer.wte, ...) and bias=False in every Linear and "
                "LayerNorm")
    with torch.no_grad():
        for key, value in ref_params.items():
            expect(name, mine[key].shape == value.shape,
                   f"parameter {key} has shape {tuple(mine[key].shape)}, expected "
                   f"{tuple(value.shape)}", hint="nn.Linear(in, out) stores its weight as "
                                                 "(out, in)")
            mine[key].copy_(value)


def _output(name: str, out: Any, what: str) -> torch.Tensor:
    if isinstance(out, tuple):  # a (y, weights) pair like the reference's is fine
        out = out[0]
    expect(name, isinstance(out, torch.Tensor), f"{what} must return a tensor (B, T, C)",
           got=type(out).__name__, hint="end forward with `return` of the output tensor")
    return out


def check_causal_self_attention(cls: Callable[..., Any]) -> bool:
    """Check a module ``cls(n_embd, n_head)`` with ``c_attn`` (C -> 3C, [q; k; v]) and
    ``c_proj`` (C -> C), no biases, against ``MultiHeadAttention(causal=True)``."""
    name = "check_causal_self_attention"
    for seed, (B, T, C, H) in enumerate([(2, 5, 8, 2), (3, 7, 12, 3), (1, 1, 8, 4),
                                         (2, 6, 8, 1)]):
        torch.manual_seed(seed)
        reference = MultiHeadAttention(C, H, bias=False)
        learner = call_learner(name, cls, C, H)
        _copy_weights(name, reference, learner, "attention")
        x = torch.randn(B, T, C)
        expected, _ = reference(x, causal=True)
        got = _output(name, call_learner(name, learner, x.clone()), "attention")
        expect(name, tuple(got.shape) == (B, T, C), f"output has shape {tuple(got.shape)}",
               expected=(B, T, C), hint="put the heads side by side again: "
               "y.transpose(1, 2).reshape(B, T, C), then c_proj")
        if T > 1 and not torch.allclose(got, expected, atol=1e-5):
            unmasked, _ = reference(x, causal=False)
            if torch.allclose(got, unmasked, atol=1e-5):
                raise fail(name, "every token attends to the future too",
                           hint="mask the scores where key > query with -inf before the "
                                "softmax (torch.tril), or is_causal=True")
        expect_close(name, got, expected, what=f"attention output (B={B}, T={T}, C={C}, "
                     f"H={H})", atol=1e-5, rtol=1e-4,
                     hint="split c_attn(x) into q, k, v in that order; view each as "
                          "(B, T, H, D) then transpose to (B, H, T, D); scale the scores by "
                          "1/sqrt(D) (the head width, not C)")
    return passed(name, "4 shapes, one head to four, T = 1 included: equal to the reference")


def check_block(cls: Callable[..., Any]) -> bool:
    """Check ``cls(n_embd, n_head)``, a pre-norm block with ``ln_1, attn, ln_2, mlp``,
    against ``slm_course.transformer.Block(bias=False, causal=True)``."""
    name = "check_block"
    for seed, (B, T, C, H) in enumerate([(2, 6, 8, 2), (1, 4, 16, 4)]):
        torch.manual_seed(seed)
        reference = Block(C, H, bias=False, causal=True)
        with torch.no_grad():  # LayerNorm weights other than 1, so a missing LN shows
            for ln in (reference.ln_1, reference.ln_2):
                ln.weight.uniform_(0.5, 1.5)
        learner = call_learner(name, cls, C, H)
        _copy_weights(name, reference, learner, "block")
        x = torch.randn(B, T, C) * 3 + 1
        expected, _ = reference(x)
        got = _output(name, call_learner(name, learner, x.clone()), "the block")
        expect(name, tuple(got.shape) == (B, T, C), f"output has shape {tuple(got.shape)}",
               expected=(B, T, C))
        expect_close(name, got, expected, what="block output", atol=1e-5, rtol=1e-4,
                     hint="pre-norm: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)); the "
                          "LayerNorm goes inside the residual branch, the sum outside")
    return passed(name, "2 shapes: equal to the reference pre-norm block")


def _small_config(vocab_size: int = 11, block_size: int = 8) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                     n_embd=16)


def check_gpt(cls: Callable[..., Any]) -> bool:
    """Check ``cls(config) -> model``, ``model(idx, targets=None) -> (logits, loss)``, against
    ``slm_course.gpt.GPT`` with the same weights: the same logits, the same loss."""
    name = "check_gpt"
    config = _small_config()
    torch.manual_seed(0)
    reference = GPT(config)
    with torch.no_grad():  # position embeddings as large as the tokens', so a missed one shows
        reference.transformer.wpe.weight.normal_(0.0, 0.5)
    learner = call_learner(name, cls, config)
    expect(name, isinstance(learner, nn.Module), "GPT(config) must build an nn.Module",
           got=type(learner).__name__)
    expect(name, getattr(getattr(learner, "lm_head", None), "weight", None) is
           getattr(getattr(getattr(learner, "transformer", {}), "wte", None), "weight", 0),
           "the output layer does not share the token embedding matrix (weight tying)",
           hint="after building both: self.transformer.wte.weight = self.lm_head.weight")
    _copy_weights(name, reference, learner, "GPT")
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(config.vocab_size, (3, config.block_size), generator=g)
    targets = torch.randint(config.vocab_size, (3, config.block_size), generator=g)
    targets[0, :3] = IGNORE_INDEX
    for inputs, tgt, what in [(idx, targets, "full block"), (idx[:, :3], targets[:, :3],
                                                              "3 tokens")]:
        exp_logits, exp_loss = reference(inputs, tgt)
        out = call_learner(name, learner, inputs.clone(), tgt.clone())
        expect(name, isinstance(out, tuple) and len(out) == 2,
               "forward must return a pair (logits, loss)", got=type(out).__name__,
               hint="return logits, loss (loss None when targets is None)")
        logits, loss = out
        expect_close(name, logits, exp_logits, what=f"logits ({what})", atol=1e-5, rtol=1e-4,
                     hint="tokens + positions (torch.arange(T)), the blocks, ln_f, lm_head")
        expect(name, isinstance(loss, torch.Tensor) and loss.dim() == 0,
               "the loss must be a scalar tensor", got=loss,
               hint="F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)")
        expect_close(name, loss, exp_loss, what=f"loss ({what}, some targets IGNORE_INDEX)",
                     atol=1e-5, rtol=1e-4,
                     hint="average over the positions whose target is not -100: "
                          "ignore_index=-100 in F.cross_entropy")
    out = call_learner(name, learner, idx.clone())
    expect(name, isinstance(out, tuple) and len(out) == 2 and out[1] is None,
           "without targets forward must return (logits, None)",
           hint="def forward(self, idx, targets=None): ... loss = None if targets is None")
    return passed(name, "logits and loss equal to slm_course.gpt.GPT with the same weights")


def check_generate(fn: Callable[..., Any]) -> bool:
    """Check ``fn(model, idx, max_new_tokens, temperature=..., generator=...)`` against
    ``slm_course.generate.generate``: greedy (temperature 0) and sampled tokens equal."""
    name = "check_generate"
    config = _small_config(vocab_size=13, block_size=6)
    torch.manual_seed(1)
    model = GPT(config)
    with torch.no_grad():  # sharper predictions than a fresh model's, so greedy is clear
        model.lm_head.weight.normal_(0.0, 1.0)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    expected = generate(model, prompt, 10, temperature=0.0)
    got = call_learner(name, fn, model, prompt.clone(), 10, temperature=0.0)
    expect(name, isinstance(got, torch.Tensor), "return the token ids as a tensor",
           got=type(got).__name__)
    expect(name, tuple(got.shape) == tuple(expected.shape), "the result has the wrong shape",
           expected=tuple(expected.shape), got=tuple(got.shape),
           hint="return the prompt followed by the new tokens: (B, T + max_new_tokens)")
    expect(name, torch.equal(got[:, :3], prompt), "the result must start with the prompt",
           got=got, hint="concatenate each new token to idx and return idx")
    expect(name, torch.equal(got, expected), "greedy tokens (temperature 0) differ from the "
           "reference's (10 new tokens, past block_size=6)", expected=expected, got=got,
           hint="at each step feed the last block_size tokens, idx[:, -block_size:], take "
                "the logits of the LAST position, logits[:, -1, :], and append the argmax")
    for temperature in (1.0, 0.7):
        expected = generate(model, prompt, 10, temperature=temperature,
                            generator=torch.Generator().manual_seed(3))
        got = call_learner(name, fn, model, prompt.clone(), 10, temperature=temperature,
                           generator=torch.Generator().manual_seed(3))
        expect(name, isinstance(got, torch.Tensor) and torch.equal(got, expected),
               f"sampled tokens at temperature {temperature} differ from the reference's "
               "with the same generator", expected=expected, got=got,
               hint="probs = softmax(logits[:, -1, :] / temperature, dim=-1); then "
                    "torch.multinomial(probs, num_samples=1, generator=generator)")
    return passed(name, "greedy and sampled (temperature 1 and 0.7) tokens equal to the "
                        "reference's, with the context cropped to block_size")


# ------------------------------------------------------------------------------ sampling

def check_top_k_filter(fn: Callable) -> bool:
    """Check ``fn(logits (B, V), k) -> logits`` keeping the k largest per row, others -inf."""
    name = "check_top_k_filter"
    logits = _distinct_logits(3, 10, seed=0)
    cases = [(logits, 1), (logits, 3), (logits, 10), (_distinct_logits(2, 50, seed=1), 7)]
    _check_filter(name, fn, top_k_filter, cases, "k",
                  hint="per row, find the k-th largest logit (torch.topk(...).values[..., -1:]) "
                       "and set every logit strictly below it to -inf; k = V keeps all")
    return passed(name, f"{len(cases)} cases, k = 1 to V")


def check_top_p_filter(fn: Callable) -> bool:
    """Check ``fn(logits (B, V), p) -> logits`` keeping the nucleus of probability p."""
    name = "check_top_p_filter"
    logits = _distinct_logits(3, 12, seed=2)
    peaked = torch.tensor([[5.0, 1.0, 0.5, 0.0, -1.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    cases = [(logits, 0.5), (logits, 0.9), (logits, 1e-6), (peaked, 0.6), (peaked, 0.999)]
    _check_filter(name, fn, top_p_filter, cases, "p",
                  hint="sort by probability (descending), keep a token while the probability "
                       "of the tokens ranked *above* it is still < p, so the token that "
                       "crosses p is kept and the most likely token always is")
    return passed(name, f"{len(cases)} cases, including a tiny p (keeps only the top token)")


# ------------------------------------------------------------------------------ challenge

def check_gpt_challenge(model: nn.Module, block_size: int, target: float | None = None
                        ) -> float:
    """The open challenge: the whole-split validation loss of the learner's trained GPT.

    ``model(x, y) -> (logits, loss)`` on ids of lesson 14's character tokenizer
    (``slm_course.lm_data.prepare_lm_data()``); the loss is ``split_loss`` over Tiny
    Shakespeare's validation split in windows of ``block_size``. Target (nats/char):
    ``CHALLENGE_TARGET`` — 1.85 on the whole split (full profile), 2.60 on its first 20,000
    characters (fast profile).
    """
    from slm_course.lm_data import prepare_lm_data, split_loss

    name = "check_gpt_challenge"
    target = target if target is not None else pick(**CHALLENGE_TARGET)
    val = prepare_lm_data().val[:pick(fast=20_000, full=None)]
    expect(name, isinstance(model, nn.Module), "pass your trained model (an nn.Module)",
           got=type(model).__name__)
    loss = call_learner(name, split_loss, model, val, block_size)
    expect(name, loss <= target, f"validation loss {loss:.3f} nats/char, target {target}",
           expected=f"<= {target}", got=round(loss, 3),
           hint="train longer, a wider or deeper model (n_embd 128, 4 layers), a longer "
                "context (block_size 64 to 128), AdamW at 1e-3 to 3e-3 with warm-up and "
                "cosine decay; watch the gap to the training loss for overfitting")
    passed(name, f"{loss:.3f} nats/char on {len(val):,} validation characters "
                 f"(target {target})")
    return loss
