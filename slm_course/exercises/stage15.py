"""Checks for stage 15 (BERT): the 80/10/10 masking rule, the masked-only loss, the [CLS]
classifier's forward pass, and the open challenge (names by language).

The masking check is statistical (the learner's random draws need not match the
reference's): on 40,000 tokens every proportion must lie within 5 binomial standard
deviations of the rule's, which a correct rule misses with probability below 1e-5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.bert import (
    BERT,
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    BertCharTokenizer,
    BertClassifier,
    BertConfig,
    predict_classes,
)
from slm_course.exercises.checking import call_learner, expect, expect_close, passed
from slm_course.helpers.workload import pick
from slm_course.seq2seq import IGNORE_INDEX

CHALLENGE_TARGET = {"fast": 0.55, "full": 0.75}  # test accuracy, names by language


def _binomial_ok(count: int, n: int, p: float, z: float = 5.0) -> bool:
    return abs(count - n * p) <= z * math.sqrt(max(n * p * (1 - p), 1e-12))


def check_mask_tokens(fn: Callable) -> bool:
    """Check ``fn(ids (B, T), vocab_size, generator) -> (inputs, targets)``, the 80/10/10 rule."""
    name = "check_mask_tokens"
    V = 40
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(len(SPECIAL_TOKENS), V, (400, 100), generator=g)
    ids[:, 0], ids[:, -1], ids[:, 90:99] = CLS_ID, SEP_ID, PAD_ID  # special tokens
    original = ids.clone()
    got = call_learner(name, fn, ids, V, torch.Generator().manual_seed(1))
    expect(name, isinstance(got, tuple) and len(got) == 2, "return (inputs, targets)",
           got=type(got).__name__, hint="return two tensors: the model's input and the targets")
    inputs, targets = got
    expect(name, torch.equal(ids, original), "your function changed its input ids",
           hint="work on a copy: inputs = ids.clone()")
    expect(name, inputs.shape == ids.shape and targets.shape == ids.shape,
           f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must both have the "
           f"shape of ids, {tuple(ids.shape)}")
    special = ids < len(SPECIAL_TOKENS)
    selected = targets != IGNORE_INDEX
    expect(name, not bool(selected[special].any()) and torch.equal(inputs[special], ids[special]),
           "a special token ([CLS], [SEP], [PAD]) was selected or changed",
           hint="select only positions where ids >= 5 (the ordinary tokens)")
    expect(name, bool(torch.equal(targets[selected], ids[selected])),
           "at a selected position the target must be the original token",
           hint="targets = torch.where(selected, ids, IGNORE_INDEX), computed from the ids "
                "before you change them")
    expect(name, bool(torch.equal(inputs[~selected], ids[~selected])),
           "a position that was not selected changed in the inputs",
           hint="only selected positions become [MASK] or a random token")
    n, k = int((~special).sum()), int(selected.sum())
    expect(name, _binomial_ok(k, n, 0.15), f"{k / n:.1%} of the ordinary tokens were selected",
           expected="15%", got=f"{k / n:.1%}",
           hint="select each ordinary token independently with probability 0.15")
    n_mask = int((inputs[selected] == MASK_ID).sum())
    n_same = int((inputs[selected] == ids[selected]).sum())
    p_same = 0.1 + 0.1 / (V - len(SPECIAL_TOKENS))  # a random token can equal the original
    expect(name, _binomial_ok(n_mask, k, 0.8), f"{n_mask / k:.1%} of the selected tokens became "
           f"[MASK]", expected="80%", got=f"{n_mask / k:.1%}",
           hint="of the selected positions, 80% become MASK_ID (4)")
    expect(name, _binomial_ok(n_same, k, p_same), f"{n_same / k:.1%} of the selected tokens "
           f"were left as they were", expected="about 10%", got=f"{n_same / k:.1%}",
           hint="10% random token, 10% unchanged: draw one uniform number per position and "
                "cut it at 0.8 and 0.9")
    replaced = selected & (inputs != MASK_ID) & (inputs != ids)
    expect(name, bool((inputs[replaced] >= len(SPECIAL_TOKENS)).all()),
           "a random replacement was a special token",
           hint="draw random tokens from the ordinary ones: torch.randint(5, vocab_size, ...)")
    return passed(name, f"{k:,} of {n:,} ordinary tokens selected; proportions within 5 "
                        f"binomial sigmas of 15% and 80/10/10")


def check_masked_lm_loss(fn: Callable) -> bool:
    """Check ``fn(logits (B, T, V), targets (B, T)) -> loss`` averaged over masked positions."""
    name = "check_masked_lm_loss"
    g = torch.Generator().manual_seed(0)
    cases = []
    logits = torch.randn(3, 7, 11, generator=g)
    ids = torch.randint(11, (3, 7), generator=g)
    chosen = torch.rand(3, 7, generator=g) < 0.3
    chosen[0, 0] = True
    cases.append((logits, torch.where(chosen, ids, IGNORE_INDEX)))
    one = torch.full((3, 7), IGNORE_INDEX)
    one[2, 4] = 5  # a single masked position
    cases.append((logits * 3, one))
    for logits, targets in cases:
        got = call_learner(name, fn, logits, targets)
        scored = targets != IGNORE_INDEX
        expected = F.cross_entropy(logits[scored], targets[scored])
        expect(name, isinstance(got, torch.Tensor) and got.ndim == 0,
               "return the loss as a 0-d tensor", got=getattr(got, "shape", type(got).__name__))
        expect_close(name, got, expected, what="loss",
                     hint="average -log softmax(logits)[target] over the masked positions "
                          "only (targets != IGNORE_INDEX), not over all B*T positions")
    return passed(name, f"{len(cases)} cases, one with a single masked position")


def _tiny_classifier(num_classes: int = 3) -> tuple[BertClassifier, BertCharTokenizer]:
    torch.manual_seed(0)
    tok = BertCharTokenizer("abcdefghij")
    bert = BERT(BertConfig(tok.vocab_size, block_size=12, n_layer=2, n_head=2, n_embd=16,
                           dropout=0.0))
    return BertClassifier(bert, num_classes, dropout=0.0).eval(), tok


def check_cls_classifier(fn: Callable) -> bool:
    """Check ``fn(bert, head, ids, padding_mask) -> logits (B, num_classes)``: the head on the
    final state of [CLS], with padding masked."""
    name = "check_cls_classifier"
    reference, tok = _tiny_classifier()
    ids, mask = tok.encode_batch(["abc", "hij", "abcdefghij", "e"], max_len=12)
    with torch.no_grad():
        got = call_learner(name, fn, reference.bert, reference.head, ids, mask)
        expected, _ = reference(ids, mask)
    expect(name, isinstance(got, torch.Tensor) and got.shape == expected.shape,
           f"return logits of shape {tuple(expected.shape)} (batch, classes)",
           got=tuple(getattr(got, "shape", ())),
           hint="one row per input: read the [CLS] position, hidden[:, 0], of the (B, T, C) "
                "states")
    alone = ids[3:, :3]  # "e" on its own, without padding
    with torch.no_grad():
        no_pad = reference(alone)[0]
    expect_close(name, got[3:], no_pad, what="the logits of a padded input",
                 hint="pass padding_mask to bert.encode so no token attends to [PAD]")
    expect_close(name, got, expected, what="logits",
                 hint="h = bert.encode(ids, padding_mask)[0]; logits = head(h[:, 0]): the "
                      "state of the first token, [CLS], not the mean or the last token")
    return passed(name, "4 inputs of different lengths, padding included")


def check_names_challenge(model: nn.Module, tokenizer: BertCharTokenizer,
                          target: float | None = None) -> float:
    """The open challenge: test accuracy of a fine-tuned classifier on names by language.

    The split is stage 10's (``unique_pairs``, ``stratified_split(labels, (0.8, 0.1, 0.1),
    seed=0)``, the third part); ``model(ids, padding_mask)`` returns (logits (B, 18), _)
    on inputs from ``tokenizer.encode_batch``. Target: ``CHALLENGE_TARGET``.
    """
    from slm_course.data import load_names_by_language
    from slm_course.text_classifiers import stratified_split, unique_pairs

    name = "check_names_challenge"
    target = target if target is not None else pick(**CHALLENGE_TARGET)
    expect(name, isinstance(model, nn.Module), "pass your fine-tuned model (an nn.Module)",
           got=type(model).__name__)
    names, labels, languages = unique_pairs(load_names_by_language())
    test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)[2]
    block = getattr(getattr(getattr(model, "bert", None), "config", None), "block_size", 32)
    ids, mask = tokenizer.encode_batch([names[i] for i in test], max_len=block)
    pred = call_learner(name, predict_classes, model, ids, mask)
    accuracy = float((pred == torch.tensor(labels)[test]).float().mean())
    expect(name, accuracy >= target, f"test accuracy {accuracy:.1%}, target {target:.0%}",
           expected=f">= {target:.0%}", got=f"{accuracy:.1%}",
           hint="train longer (several epochs), lr 1e-3 to 3e-3 with warm-up, a wider "
                "model; stage 10's GRU reaches 81.9%")
    passed(name, f"{accuracy:.1%} on {len(test):,} test names of {len(languages)} languages "
                 f"(target {target:.0%})")
    return accuracy
