"""Instruction tuning: teach a pretrained language model to answer requests.

A pretrained GPT only continues text. Fine-tuning it on (prompt, response) pairs, written
as one text

    "Q: reverse crown\\nA:" + " nworc\\n"          prompt, then response (ends with a newline)

teaches it to answer. The loss counts only the response: the targets at prompt positions
are IGNORE_INDEX (-100), so

    L = -(1 / |R|) sum_{t in R} log p(x_{t+1} | x_{<=t}),     R = positions whose next token
                                                              belongs to the response,

and the model learns to answer without being trained to write the questions. The tasks are
generated from templates this module writes and checks (every answer is computed, so it is
right): reverse a word, write it in capitals, count its letters, name its last letter, add
two small numbers (in words: Tiny Shakespeare's characters contain one digit, "3"). Words
and number pairs are split into training and held-out items, and each task keeps one
phrasing ("template") out of training, so accuracy is measured on requests never seen.

Stage 16: fine-tuning the small language model (LoRA, instruction tuning, DPO).
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from slm_course.helpers.eval_mode import evaluating
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.tokenizers import Tokenizer

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen")
END = "\n"  # a response ends with a newline; decoding stops there


@dataclass(frozen=True)
class Task:
    """A kind of request: phrasings for training, one held out, and the answer function."""

    name: str
    templates: tuple[str, ...]  # training phrasings, with {item} (or {a} and {b})
    heldout_template: str  # a phrasing never trained on
    answer: Callable[[str], str]  # item -> the correct answer
    on_numbers: bool = False  # items are "a b" pairs of small numbers, not words


def _add(item: str) -> str:
    a, b = item.split()
    return NUMBER_WORDS[NUMBER_WORDS.index(a) + NUMBER_WORDS.index(b)]


INSTRUCTION_TASKS: dict[str, Task] = {t.name: t for t in (
    Task("reverse", ("reverse {item}", "spell {item} backwards"), "write {item} back to front",
         lambda w: w[::-1]),
    Task("upper", ("uppercase {item}", "shout {item}"), "say {item} in capitals",
         lambda w: w.upper()),
    Task("count", ("how many letters in {item}?", "count the letters of {item}"),
         "what is the length of {item}?", lambda w: NUMBER_WORDS[len(w)]),
    Task("last", ("last letter of {item}", "how does {item} end?"), "final letter of {item}",
         lambda w: w[-1]),
    Task("add", ("{a} plus {b}", "add {a} and {b}"), "what is {a} plus {b}?", _add,
         on_numbers=True),
)}


@dataclass(frozen=True)
class Example:
    """One instruction: the prompt the model reads and the response it should write."""

    task: str
    item: str  # the word, or "a b" for addition
    prompt: str  # "Q: ...\nA:"
    response: str  # " answer\n"

    @property
    def answer(self) -> str:
        return self.response.strip()


def make_example(task: str, item: str, template: str | None = None) -> Example:
    """The example for ``item`` in ``task``'s phrasing ``template`` (default: its first)."""
    if task not in INSTRUCTION_TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {sorted(INSTRUCTION_TASKS)}")
    t = INSTRUCTION_TASKS[task]
    fields = dict(zip("ab", item.split(), strict=True)) if t.on_numbers else {"item": item}
    request = (template or t.templates[0]).format(**fields)
    return Example(task, item, f"Q: {request}\nA:", f" {t.answer(item)}{END}")


def common_words(text: str, n: int = 400, min_len: int = 3, max_len: int = 7) -> list[str]:
    """The ``n`` most frequent lowercase words of ``text`` with ``min_len`` to ``max_len``
    letters (ties by first appearance): the items of the word tasks."""
    counts = Counter(re.findall(r"\b[a-z]+\b", text.lower()))
    return [w for w, _ in counts.most_common() if min_len <= len(w) <= max_len][:n]


def split_items(items: Sequence[str], heldout_fraction: float = 0.2, seed: int = 0
                ) -> tuple[list[str], list[str]]:
    """Shuffle ``items`` with ``seed`` and hold out a fraction: (train, held out), disjoint."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    unique = sorted(set(items))
    if len(unique) < 2:
        raise ValueError(f"need at least two distinct items to split, got {len(unique)}")
    random.Random(seed).shuffle(unique)
    n_held = max(1, round(heldout_fraction * len(unique)))
    return unique[n_held:], unique[:n_held]


def number_pairs() -> list[str]:
    """Every "a b" with a, b in zero..nine, as words."""
    return [f"{a} {b}" for a in NUMBER_WORDS[:10] for b in NUMBER_WORDS[:10]]


@dataclass
class InstructionData:
    """Training examples, held-out items in training phrasings, and held-out phrasings."""

    train: list[Example]
    heldout: list[Example]  # unseen words / number pairs, phrasings seen in training
    heldout_templates: list[Example]  # unseen words / pairs in each task's unseen phrasing


def make_instruction_data(words: Sequence[str], heldout_fraction: float = 0.2,
                          seed: int = 0, tasks: Sequence[str] = tuple(INSTRUCTION_TASKS)
                          ) -> InstructionData:
    """Every (task, item, phrasing) combination, split by item into train and held out."""
    bad = [w for w in words if not (w.isalpha() and w.islower() and len(w) < len(NUMBER_WORDS))]
    if bad:
        raise ValueError(f"words must be lowercase letters only, shorter than "
                         f"{len(NUMBER_WORDS)} (the count task answers in words): {bad[:5]}")
    train_words, held_words = split_items(words, heldout_fraction, seed)
    train_pairs, held_pairs = split_items(number_pairs(), heldout_fraction, seed)
    data = InstructionData([], [], [])
    unknown = set(tasks) - set(INSTRUCTION_TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; the tasks are "
                         f"{sorted(INSTRUCTION_TASKS)}")
    for name in tasks:
        t = INSTRUCTION_TASKS[name]
        train_items, held_items = (train_pairs, held_pairs) if t.on_numbers else \
            (train_words, held_words)
        data.train += [make_example(name, i, p) for i in train_items for p in t.templates]
        data.heldout += [make_example(name, i, p) for i in held_items for p in t.templates]
        data.heldout_templates += [make_example(name, i, t.heldout_template) for i in held_items]
    return data


def check_encodable(tokenizer: Tokenizer, examples: Sequence[Example]) -> None:
    """Raise a clear error if an example has a character the tokenizer cannot encode."""
    alphabet = set(getattr(tokenizer, "chars", []))
    if not alphabet:
        return
    for ex in examples:
        missing = set(ex.prompt + ex.response) - alphabet
        if missing:
            raise ValueError(f"the tokenizer cannot encode {sorted(missing)} in {ex!r}; use "
                             f"only characters of its vocabulary")


def prompt_masked_batch(tokenizer: Tokenizer, examples: Sequence[Example], pad_id: int = 0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x (B, T) and targets y (B, T) for next-token training on prompt + response,
    with y = IGNORE_INDEX wherever the next token is part of the prompt, or padding.

    Sequences are padded on the right to the longest; a causal model never looks right,
    so padding changes nothing at the real positions.
    """
    rows = []
    for ex in examples:
        prompt, response = tokenizer.encode(ex.prompt), tokenizer.encode(ex.response)
        ids = prompt + response
        targets = [IGNORE_INDEX] * (len(prompt) - 1) + response  # target of ids[t] is ids[t+1]
        rows.append((ids[:-1], targets))
    T = max(len(x) for x, _ in rows)
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    y = torch.full((len(rows), T), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    for b, (ids, targets) in enumerate(rows):
        x[b, :len(ids)] = torch.tensor(ids)
        y[b, :len(targets)] = torch.tensor(targets)
    return x, y


def instruction_batches(tokenizer: Tokenizer, examples: Sequence[Example], batch_size: int,
                        seed: int = 0, device: torch.device | str | None = None
                        ) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """The training loop's ``next_batch``: random examples (seeded), prompt-masked."""
    if not examples:
        raise ValueError("no examples to train on")
    check_encodable(tokenizer, examples)
    rng = random.Random(seed)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = prompt_masked_batch(tokenizer, rng.choices(examples, k=batch_size))
        return (x, y) if device is None else (x.to(device), y.to(device))

    return next_batch


@torch.no_grad()
def greedy_answers(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str],
                   max_new_tokens: int = 16) -> list[str]:
    """Greedy decoding of each prompt until a newline (or ``max_new_tokens``), without the
    prompt and the newline. Prompts of equal length are decoded together as one batch."""
    answers: dict[int, str] = {}
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(tokenizer.encode(p)), []).append(i)
    device = next(model.parameters()).device
    block_size = model.config.block_size
    end_id = tokenizer.encode(END)[0]
    with evaluating(model):
        for group in by_length.values():
            idx = torch.tensor([tokenizer.encode(prompts[i]) for i in group], device=device)
            n_prompt = idx.shape[1]
            for _ in range(max_new_tokens):
                logits, _ = model(idx[:, -block_size:])  # (B, t, V)
                idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
                if bool((idx[:, n_prompt:] == end_id).any(dim=1).all()):
                    break
            for i, row in zip(group, idx[:, n_prompt:].tolist(), strict=True):
                answers[i] = tokenizer.decode(row).split(END)[0].strip()
    return [answers[i] for i in range(len(prompts))]


def instruction_accuracy(model: nn.Module, tokenizer: Tokenizer, examples: Sequence[Example]
                         ) -> dict[str, float]:
    """Exact-match accuracy of greedy answers, per task and over all ("all")."""
    if not examples:
        raise ValueError("no examples to score")
    answers = greedy_answers(model, tokenizer, [ex.prompt for ex in examples])
    right: dict[str, list[bool]] = {}
    for ex, got in zip(examples, answers, strict=True):
        right.setdefault(ex.task, []).append(got == ex.answer)
    scores = {task: sum(r) / len(r) for task, r in right.items()}
    scores["all"] = sum(sum(r) for r in right.values()) / len(examples)
    return scores


def checkpoint_bytes(state: dict[str, torch.Tensor]) -> int:
    """Size in bytes of ``torch.save(state)``: what a checkpoint of it costs on disk."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return len(buffer.getvalue())
