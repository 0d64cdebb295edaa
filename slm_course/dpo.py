"""Direct preference optimisation (DPO): learn from "this answer is better than that one".

Given a prompt x, a preferred response y_w and a dispreferred one y_l, DPO (Rafailov et
al., 2023) trains the policy pi_theta against a frozen reference pi_ref (the model before
this step) with

    L = -log sigmoid( beta [ (log pi_theta(y_w|x) - log pi_ref(y_w|x))
                           - (log pi_theta(y_l|x) - log pi_ref(y_l|x)) ] )

where log pi(y|x) = sum over the response tokens of log p(token | everything before it).
The implicit reward r(y) = beta (log pi_theta(y|x) - log pi_ref(y|x)) rises for y_w and
falls for y_l; the reference keeps the policy from drifting further than the preferences
ask. No reward model and no sampling: a classification loss on pairs.

The pairs here come from the instruction tasks of :mod:`slm_course.instruct`: the correct
answer against a plausible mistake (the word not reversed, not capitalised, a count or a
sum off by one, the first letter for the last).

Stage 16: fine-tuning the small language model (LoRA, instruction tuning, DPO).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.helpers.eval_mode import evaluating
from slm_course.instruct import END, INSTRUCTION_TASKS, NUMBER_WORDS, Example, prompt_masked_batch
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.tokenizers import Tokenizer


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log pi(y|x) for each row: the sum of log p(target) over positions whose target is
    not IGNORE_INDEX. logits (B, T, V), targets (B, T) -> (B,)."""
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    keep = targets != IGNORE_INDEX  # (B, T)
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * keep).sum(dim=-1)  # (B,)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float = 0.1
             ) -> torch.Tensor:
    """The mean DPO loss over a batch of pairs, from sequence log-probabilities (B,) each."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0 (it scales the implicit reward), got {beta}")
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    return -F.logsigmoid(beta * margin).mean()  # logsigmoid: stable for large |margin|


class DPOModel(nn.Module):
    """The policy and a frozen copy of it as the reference, shaped for the training loop:
    ``model(x_w, y_w, x_l, y_l) -> (reward margins (B,), DPO loss)``."""

    def __init__(self, policy: nn.Module, beta: float = 0.1,
                 reference: nn.Module | None = None) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.policy, self.beta = policy, beta
        reference = reference if reference is not None else copy.deepcopy(policy)
        for p in reference.parameters():
            p.requires_grad_(False)
        self.reference = [reference.eval()]  # a list: not a submodule, not trained or saved

    def forward(self, x_w: torch.Tensor, y_w: torch.Tensor, x_l: torch.Tensor,
                y_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = torch.cat([x_w, x_l]), torch.cat([y_w, y_l])  # one forward pass for both
        policy = sequence_logprobs(self.policy(x)[0], y)  # (2B,)
        with torch.no_grad():
            ref = sequence_logprobs(self.reference[0](x)[0], y)  # (2B,)
        B = len(x_w)
        loss = dpo_loss(policy[:B], policy[B:], ref[:B], ref[B:], self.beta)
        margin = self.beta * ((policy[:B] - ref[:B]) - (policy[B:] - ref[B:])).detach()
        return margin, loss


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred and a dispreferred response."""

    prompt: str
    chosen: str
    rejected: str


def plausible_mistake(example: Example) -> str:
    """A wrong answer a weak model might give: the task half done or off by one."""
    task, item = example.task, example.item
    if task == "reverse":
        wrong = item  # not reversed
    elif task == "upper":
        wrong = item  # not capitalised
    elif task == "last":
        wrong = item[0]  # the first letter instead
    elif task in ("count", "add"):
        n = NUMBER_WORDS.index(example.answer)
        wrong = NUMBER_WORDS[n + 1 if n + 1 < len(NUMBER_WORDS) else n - 1]  # off by one
    else:
        raise ValueError(f"no mistake defined for task {task!r}; the tasks are "
                         f"{sorted(INSTRUCTION_TASKS)}")
    if wrong == example.answer:  # a palindrome, or a one-letter word: try off by one letter
        wrong = wrong[:-1] + ("a" if wrong[-1] != "a" else "e")
    return f" {wrong}{END}"


def preference_pairs(examples: Sequence[Example]) -> list[PreferencePair]:
    """One pair per example: its correct response against :func:`plausible_mistake`."""
    return [PreferencePair(ex.prompt, ex.response, plausible_mistake(ex)) for ex in examples]


def preference_batch(tokenizer: Tokenizer, pairs: Sequence[PreferencePair]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_w, y_w, x_l, y_l), each (B, T) with one T, the prompts masked out of the targets."""
    examples = [Example("", "", p.prompt, p.chosen) for p in pairs] + \
               [Example("", "", p.prompt, p.rejected) for p in pairs]
    x, y = prompt_masked_batch(tokenizer, examples)  # (2B, T)
    B = len(pairs)
    return x[:B], y[:B], x[B:], y[B:]


def preference_batches(tokenizer: Tokenizer, pairs: Sequence[PreferencePair], batch_size: int,
                       seed: int = 0, device: torch.device | str | None = None
                       ) -> Callable[[], tuple[torch.Tensor, ...]]:
    """The training loop's ``next_batch`` for :class:`DPOModel`: random pairs (seeded)."""
    if not pairs:
        raise ValueError("no preference pairs to train on")
    rng = random.Random(seed)

    def next_batch() -> tuple[torch.Tensor, ...]:
        batch = preference_batch(tokenizer, rng.choices(pairs, k=batch_size))
        return batch if device is None else tuple(t.to(device) for t in batch)

    return next_batch


@torch.no_grad()
def preference_margins(model: nn.Module, tokenizer: Tokenizer,
                       pairs: Sequence[PreferencePair], batch_size: int = 256) -> torch.Tensor:
    """log pi(y_w|x) - log pi(y_l|x) for each pair, (N,) on the CPU: how much more likely
    the model finds the chosen response than the rejected one."""
    if not pairs:
        raise ValueError("no preference pairs to score")
    device = next(model.parameters()).device
    margins = []
    with evaluating(model):
        for i in range(0, len(pairs), batch_size):
            x_w, y_w, x_l, y_l = (t.to(device) for t in
                                  preference_batch(tokenizer, pairs[i:i + batch_size]))
            chosen = sequence_logprobs(model(x_w)[0], y_w)  # (B,)
            rejected = sequence_logprobs(model(x_l)[0], y_l)  # (B,)
            margins.append((chosen - rejected).cpu())
    return torch.cat(margins)


def preference_accuracy(model: nn.Module, tokenizer: Tokenizer,
                        pairs: Sequence[PreferencePair], batch_size: int = 256) -> float:
    """The share of pairs where the model gives the chosen response the higher
    log-probability, log pi(y_w|x) > log pi(y_l|x)."""
    margins = preference_margins(model, tokenizer, pairs, batch_size)
    return float((margins > 0).float().mean())
