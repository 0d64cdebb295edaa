"""Checks for stage 16 (fine-tuning the small language model): the LoRA forward pass, the
prompt-masked targets of instruction tuning, the DPO loss, and the open challenge (held-out
instruction accuracy after a limited number of fine-tuning steps).

Each check compares the learner's function with the reference in ``slm_course.lora``,
``slm_course.instruct`` and ``slm_course.dpo`` on several cases, edge cases included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from slm_course.dpo import dpo_loss
from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.tokenizers import Tokenizer


def check_lora_forward(fn: Callable) -> bool:
    """Check ``fn(x, weight, bias, A, B, scaling) -> y`` = x W^T + b + scaling x A^T B^T."""
    name = "check_lora_forward"
    g = torch.Generator().manual_seed(16)
    cases = []
    for shape, n_in, n_out, r, with_bias, zero_b in [((4, 6), 6, 5, 2, True, False),
                                                     ((2, 3, 8), 8, 4, 1, False, False),
                                                     ((3, 6), 6, 5, 3, True, True)]:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        W = torch.randn(n_out, n_in, generator=g, dtype=torch.float64)
        b = torch.randn(n_out, generator=g, dtype=torch.float64) if with_bias else None
        A = torch.randn(r, n_in, generator=g, dtype=torch.float64)
        B = torch.zeros(n_out, r, dtype=torch.float64) if zero_b else \
            torch.randn(n_out, r, generator=g, dtype=torch.float64)
        cases.append((x, W, b, A, B, 2.5 / r))
    for x, W, b, A, B, s in cases:
        got = call_learner(name, fn, x, W, b, A, B, s)
        expect(name, isinstance(got, torch.Tensor), f"return a torch.Tensor, got "
               f"{type(got).__name__}", hint="compute with torch operations")
        expected = nn.functional.linear(x, W + s * B @ A, b)  # the merged weight, W + s B A
        expect_close(name, got, expected, what=f"y for x of shape {tuple(x.shape)}, r={len(A)}"
                     f"{', no bias' if b is None else ''}{', B = 0' if not B.any() else ''}",
                     hint="W is stored (out, in) as in nn.Linear: y = x @ W.T (+ b) + scaling * "
                          "(x @ A.T) @ B.T; skip the bias when it is None")
    return passed(name, f"{len(cases)} cases, including a 3-D input, no bias, and B = 0")


def _reference_masked(prompt: list[int], response: list[int]) -> tuple[list[int], list[int]]:
    ids = prompt + response
    return ids[:-1], [IGNORE_INDEX] * (len(prompt) - 1) + response


def check_mask_prompt_targets(fn: Callable) -> bool:
    """Check ``fn(prompt_ids, response_ids) -> (inputs, targets)`` for instruction tuning."""
    name = "check_mask_prompt_targets"
    cases = [([5, 6, 7, 8], [9, 10, 0]), ([3], [4]), ([1, 2], [3, 4, 5, 6, 0]), ([7] * 5, [7])]
    for prompt, response in cases:
        got = call_learner(name, fn, list(prompt), list(response))
        expect(name, isinstance(got, tuple) and len(got) == 2,
               "return a pair (inputs, targets)", got=got, hint="return x, y")
        x, y = (list(map(int, part)) for part in got)
        ex, ey = _reference_masked(prompt, response)
        expect(name, x == ex, f"inputs wrong for prompt {prompt}, response {response}",
               expected=ex, got=x, hint="the inputs are prompt + response without its last "
                                        "token (nothing is predicted after the end)")
        expect(name, y == ey, f"targets wrong for prompt {prompt}, response {response}",
               expected=ey, got=y,
               hint="target t is token t + 1; it is -100 (IGNORE_INDEX) while token t + 1 is "
                    "still part of the prompt, so the first response token is the target of "
                    "the last prompt position")
    return passed(name, f"{len(cases)} cases, including a one-token prompt and response")


def check_dpo_loss(fn: Callable) -> bool:
    """Check ``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> loss``."""
    name = "check_dpo_loss"
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    cases = [((t(-1.0), t(-2.0), t(-1.5), t(-1.5)), 0.5, "one pair, margin 1"),
             ((t(-3.0, -0.5), t(-4.0, -0.5), t(-3.0, -0.5), t(-4.0, -0.5)), 0.1,
              "the policy equals the reference: log 2"),
             ((t(-2.0, -1.0, -7.0), t(-1.0, -6.0, -2.0), t(-2.5, -2.0, -3.0),
               t(-1.5, -3.0, -4.0)), 2.0, "a batch of three (the mean)"),
             ((t(-1e4), t(0.0), t(0.0), t(0.0)), 0.1, "a huge negative margin")]
    for args, beta, what in cases:
        got = call_learner(name, fn, *args, beta)
        expected = dpo_loss(*args, beta=beta)
        expect(name, isinstance(got, torch.Tensor) and got.dim() == 0,
               f"return a 0-d tensor (the mean loss), got {got!r}"[:200],
               hint="average over the batch with .mean()")
        expect(name, bool(torch.isfinite(got)), f"{what}: the loss is {float(got)}",
               hint="-log(sigmoid(z)) overflows for very negative z; F.logsigmoid(z) is the "
                    "stable form")
        expect_close(name, got, expected, what=f"the loss ({what})", rtol=1e-6,
                     hint="margin = (pi_w - ref_w) - (pi_l - ref_l); loss = -logsigmoid(beta * "
                          "margin), averaged")
    return passed(name, f"{len(cases)} cases: log 2 at the reference, a batch mean, and a "
                        f"margin of -10,000 (stable)")


def check_instruction_challenge(model: nn.Module, tokenizer: Tokenizer, steps: int,
                                target: float | None = None, max_steps: int | None = None
                                ) -> float:
    """Held-out exact-match accuracy of a GPT fine-tuned for ``steps`` steps on the course's
    instruction data (``slm_course.instruct.make_instruction_data`` on the 400 commonest
    words of Tiny Shakespeare's training split, default split), every task.

    Targets: 0.40 in at most 1,500 steps (full profile); 0.10 in at most 150 (fast profile).
    """
    from slm_course.instruct import common_words, instruction_accuracy, make_instruction_data
    from slm_course.lm_data import load_splits

    name = "check_instruction_challenge"
    target = target if target is not None else pick(fast=0.10, full=0.40)
    max_steps = max_steps or pick(fast=150, full=1500)
    expect(name, steps <= max_steps, f"fine-tuned for {steps} steps, the budget is {max_steps}",
           hint="lower max_steps in your TrainConfig; the challenge is accuracy per step")
    train_text, _ = load_splits()
    heldout = make_instruction_data(common_words(train_text)).heldout
    scores = call_learner(name, instruction_accuracy, model, tokenizer, heldout)
    expect(name, scores["all"] >= target,
           f"held-out accuracy {scores['all']:.1%}, target {target:.0%} (per task: "
           + ", ".join(f"{k} {v:.0%}" for k, v in scores.items() if k != "all") + ")",
           hint="a higher learning rate for LoRA (1e-2 and more), a larger rank, adapters on "
                "the MLP too, or full fine-tuning; a wider or longer-pretrained base")
    passed(name, f"{scores['all']:.1%} of {len(heldout)} held-out requests answered exactly "
                 f"after {steps} steps (target {target:.0%})")
    return scores["all"]
