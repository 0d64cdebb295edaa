"""Instruction data and prompt masking against oracles: answers recomputed independently,
the masked loss against cross-entropy over the response tokens alone, batched greedy decoding
against the course's one-prompt-at-a-time generate(), and accuracy of a model that knows
(or half knows) the answers."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.generate import generate
from slm_course.gpt import GPT, GPTConfig
from slm_course.instruct import (
    INSTRUCTION_TASKS,
    NUMBER_WORDS,
    Example,
    check_encodable,
    checkpoint_bytes,
    greedy_answers,
    instruction_accuracy,
    instruction_batches,
    make_example,
    make_instruction_data,
    prompt_masked_batch,
    split_items,
)
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.tokenizers import CharTokenizer

ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare
TOK = CharTokenizer.from_text(ALPHABET)
WORDS = ["crown", "king", "sword", "night", "rose", "dagger", "ghost", "queen", "storm", "moon",
         "heart", "blood", "level", "wit", "fool", "lord"]


def test_answers_are_right():
    data = make_instruction_data(WORDS)
    for ex in data.train + data.heldout + data.heldout_templates:
        if ex.task == "add":
            a, b = (NUMBER_WORDS.index(w) for w in ex.item.split())
            assert NUMBER_WORDS.index(ex.answer) == a + b
        else:
            expected = {"reverse": "".join(reversed(ex.item)), "upper": ex.item.upper(),
                        "count": NUMBER_WORDS[len(ex.item)], "last": ex.item[-1]}[ex.task]
            assert ex.answer == expected, ex
        assert ex.prompt.startswith("Q: ") and ex.prompt.endswith("\nA:")
        assert ex.response.startswith(" ") and ex.response.endswith("\n")
    assert make_example("add", "two three").prompt == "Q: two plus three\nA:"
    assert make_example("reverse", "crown").response == " nworc\n"


def test_held_out_items_and_templates_are_unseen():
    data = make_instruction_data(WORDS, heldout_fraction=0.25, seed=3)
    train_items = {(ex.task, ex.item) for ex in data.train}
    held_items = {(ex.task, ex.item) for ex in data.heldout}
    assert train_items and held_items and not train_items & held_items
    assert {(ex.task, ex.item) for ex in data.heldout_templates} == held_items
    train_prompts = {ex.prompt for ex in data.train}
    for ex in data.heldout_templates:
        phrasing = ex.prompt.replace(ex.item, "").replace(ex.item.replace(" ", " plus "), "")
        assert all(phrasing != p.replace(ex.item, "") for p in train_prompts)
    n_train_words = len(WORDS) - round(0.25 * len(WORDS))
    per_task = {t: len(INSTRUCTION_TASKS[t].templates) for t in INSTRUCTION_TASKS}
    assert len(data.train) == sum(n * (75 if INSTRUCTION_TASKS[t].on_numbers else n_train_words)
                                  for t, n in per_task.items())
    assert split_items(WORDS, 0.25, seed=3) == split_items(list(reversed(WORDS)), 0.25, seed=3)


@pytest.mark.parametrize("call, match", [
    (lambda: make_example("shout", "king"), "unknown task"),
    (lambda: make_instruction_data(WORDS, tasks=("reverse", "sing")), "unknown tasks"),
    (lambda: make_instruction_data(["King", "rose"]), "lowercase letters only"),
    (lambda: make_instruction_data(["rose"] * 3), "at least two distinct"),
    (lambda: split_items(WORDS, 1.0), "heldout_fraction"),
    (lambda: check_encodable(TOK, [Example("add", "1 2", "Q: 1 plus 2\nA:", " 3\n")]),
     "cannot encode"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_prompt_masked_batch_masks_the_prompt_and_the_padding():
    examples = [make_example("reverse", "crown"),
                make_example("add", "two three", "add {a} and {b}")]
    x, y = prompt_masked_batch(TOK, examples, pad_id=0)
    for b, ex in enumerate(examples):
        full = TOK.encode(ex.prompt + ex.response)
        n_prompt, n = len(TOK.encode(ex.prompt)), len(full)
        assert x[b, :n - 1].tolist() == full[:-1]
        assert (y[b, :n_prompt - 1] == IGNORE_INDEX).all()
        assert y[b, n_prompt - 1:n - 1].tolist() == TOK.encode(ex.response)
        assert (y[b, n - 1:] == IGNORE_INDEX).all() and (x[b, n - 1:] == 0).all()
    longest = max(len(TOK.encode(e.prompt + e.response)) for e in examples)
    assert x.shape == y.shape == (2, longest - 1)


def test_the_loss_counts_only_the_response_tokens():
    """The GPT's loss on a masked batch = cross-entropy over the response tokens alone."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16))
    examples = [make_example("upper", "king"),
                make_example("count", "dagger", "count the letters of {item}")]
    x, y = prompt_masked_batch(TOK, examples)
    with torch.no_grad():
        logits, loss = model(x, y)
    terms = []
    for b, ex in enumerate(examples):
        n_prompt = len(TOK.encode(ex.prompt))
        for j, token in enumerate(TOK.encode(ex.response)):
            t = n_prompt - 1 + j  # the position that predicts this response token
            terms.append(-F.log_softmax(logits[b, t], -1)[token])
    assert math.isclose(float(loss), float(torch.stack(terms).mean()), rel_tol=1e-5)
    y_all = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], 1)  # targets everywhere
    with torch.no_grad():
        assert float(model(x, y_all)[1]) != pytest.approx(float(loss))  # masking changes the loss


def test_training_batches_are_seeded_and_masked():
    examples = make_instruction_data(WORDS).train
    a = instruction_batches(TOK, examples, 8, seed=5)
    b = instruction_batches(TOK, examples, 8, seed=5)
    for _ in range(3):
        (xa, ya), (xb, yb) = a(), b()
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.shape[0] == 8
        assert (ya != IGNORE_INDEX).any() and (ya == IGNORE_INDEX).any()
    with pytest.raises(ValueError, match="no examples"):
        instruction_batches(TOK, [], 8)


def test_batched_greedy_decoding_equals_generate_one_prompt_at_a_time():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    prompts = ["Q: reverse king\nA:", "Q: shout rose\nA:", "Q: reverse moon\nA:", "Q: a\nA:"]
    got = greedy_answers(model, TOK, prompts, max_new_tokens=10)
    for prompt, answer in zip(prompts, got, strict=True):
        idx = torch.tensor([TOK.encode(prompt)])
        out = TOK.decode(generate(model, idx, 10, temperature=0.0)[0, idx.shape[1]:].tolist())
        assert answer == out.split("\n")[0].strip()


class KnowsTheAnswers(nn.Module):
    """A stand-in model whose next token is read off the right text (or a wrong one)."""

    def __init__(self, examples, wrong_task=None):
        super().__init__()
        self.config = GPTConfig(vocab_size=TOK.vocab_size, block_size=64)
        self.weight = nn.Parameter(torch.zeros(1))
        self.texts = {}
        for ex in examples:
            response = " nonsense\n" if ex.task == wrong_task else ex.response
            self.texts[ex.prompt] = ex.prompt + response

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, TOK.vocab_size)
        for b, row in enumerate(idx.tolist()):
            text = TOK.decode(row)
            full = next(t for p, t in self.texts.items() if text.startswith(p))
            nxt = full[len(text)] if len(text) < len(full) else "\n"
            logits[b, -1, TOK.encode(nxt)[0]] = 10.0
        return logits, None


def test_accuracy_of_a_model_that_knows_every_answer_but_one_task():
    examples = make_instruction_data(WORDS).heldout
    assert instruction_accuracy(KnowsTheAnswers(examples), TOK, examples)["all"] == 1.0
    scores = instruction_accuracy(KnowsTheAnswers(examples, wrong_task="upper"), TOK, examples)
    assert scores["upper"] == 0.0 and scores["reverse"] == scores["add"] == 1.0
    n_upper = sum(ex.task == "upper" for ex in examples)
    assert math.isclose(scores["all"], 1 - n_upper / len(examples))


def test_checkpoint_bytes_grow_with_the_numbers_stored():
    small = checkpoint_bytes({"a": torch.zeros(10)})
    big = checkpoint_bytes({"a": torch.zeros(10_010)})
    assert big - small == 4 * 10_000  # float32: 4 bytes a number, the rest is overhead
