"""DPO against oracles: hand-computed losses, the analytic gradient and finite differences,
sequence log-probabilities summed by hand, ln 2 when the policy is the reference, and a
measured shift in preference after a few steps on a tiny model."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.dpo import (
    DPOModel,
    PreferencePair,
    dpo_loss,
    plausible_mistake,
    preference_accuracy,
    preference_batch,
    preference_batches,
    preference_margins,
    preference_pairs,
    sequence_logprobs,
)
from slm_course.gpt import GPT, GPTConfig
from slm_course.instruct import make_example, make_instruction_data
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.tokenizers import CharTokenizer
from slm_course.train import TrainConfig, train

ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOK = CharTokenizer.from_text(ALPHABET)
WORDS = ["crown", "king", "sword", "night", "rose", "dagger", "ghost", "queen", "storm", "moon",
         "heart", "blood", "level", "wit", "fool", "lord", "a"]


def test_loss_on_hand_computed_cases():
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    # margin = (-1 - -1.5) - (-2 - -1.5) = 1, beta 0.5: -log sigmoid(0.5) = log(1 + e^-0.5)
    loss = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5)
    assert math.isclose(float(loss), 0.4740769841801067, rel_tol=1e-12)
    assert math.isclose(float(loss), math.log(1 + math.exp(-0.5)), rel_tol=1e-12)
    # the policy is the reference: every margin is 0 and the loss is log 2
    same = t(-3.0, -0.2)
    assert math.isclose(float(dpo_loss(same, same - 1, same, same - 1)), math.log(2), rel_tol=1e-12)
    # a batch is the mean: margins +2 and -2 with beta 1
    loss = dpo_loss(t(0.0, 0.0), t(-2.0, 2.0), t(0.0, 0.0), t(0.0, 0.0), beta=1.0)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 2
    assert math.isclose(float(loss), expected, rel_tol=1e-12)
    # huge margins stay finite: about 0, and beta * |margin|
    tiny = float(dpo_loss(t(1e4), t(0.0), t(0.0), t(0.0), beta=0.1))
    assert tiny == pytest.approx(0.0, abs=1e-12)
    assert float(dpo_loss(t(-1e4), t(0.0), t(0.0), t(0.0), beta=0.1)) == pytest.approx(1e3)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(t(0.0), t(0.0), t(0.0), t(0.0), beta=0.0)


def test_gradient_is_analytic_and_matches_finite_differences():
    """dL/d log pi(y_w) = -beta sigmoid(-beta m) / B = -dL/d log pi(y_l)."""
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(3, generator=g, dtype=torch.float64) for _ in range(4)]
    policy_w, policy_l = (a.clone().requires_grad_(True) for a in args[:2])
    beta = 0.7
    dpo_loss(policy_w, policy_l, args[2], args[3], beta).backward()
    m = (args[0] - args[2]) - (args[1] - args[3])
    analytic = -beta * torch.sigmoid(-beta * m) / 3
    torch.testing.assert_close(policy_w.grad, analytic)
    torch.testing.assert_close(policy_l.grad, -analytic)
    eps = 1e-6
    for i in range(3):
        bump = torch.zeros(3, dtype=torch.float64)
        bump[i] = eps
        up = dpo_loss(args[0] + bump, args[1], args[2], args[3], beta)
        down = dpo_loss(args[0] - bump, args[1], args[2], args[3], beta)
        assert math.isclose(float((up - down) / (2 * eps)), float(policy_w.grad[i]),
                            rel_tol=1e-6, abs_tol=1e-10)


def test_sequence_logprobs_sum_the_response_tokens():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 7, generator=g)
    targets = torch.tensor([[IGNORE_INDEX, 3, 1, IGNORE_INDEX, IGNORE_INDEX],
                            [IGNORE_INDEX, IGNORE_INDEX, 6, 0, 2]])
    logp = F.log_softmax(logits, -1)
    expected = [logp[0, 1, 3] + logp[0, 2, 1], logp[1, 2, 6] + logp[1, 3, 0] + logp[1, 4, 2]]
    torch.testing.assert_close(sequence_logprobs(logits, targets), torch.stack(expected))


def test_mistakes_are_wrong_and_pairs_share_one_length():
    data = make_instruction_data(WORDS)
    for ex in data.train + data.heldout:
        assert plausible_mistake(ex).strip() != ex.answer, ex
    assert plausible_mistake(make_example("reverse", "level")) != " level\n"  # palindrome
    assert plausible_mistake(make_example("add", "nine nine")).strip() == "seventeen"
    pairs = preference_pairs(data.heldout[:6])
    x_w, y_w, x_l, y_l = preference_batch(TOK, pairs)
    assert x_w.shape == y_w.shape == x_l.shape == y_l.shape and x_w.shape[0] == 6
    assert torch.equal(x_w[y_w == IGNORE_INDEX][:3], x_l[y_l == IGNORE_INDEX][:3])  # same prompts


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=48, n_layer=1, n_head=2,
                         n_embd=32))


def test_dpo_model_starts_at_log_2_and_trains_only_the_policy():
    model = DPOModel(tiny_model(), beta=0.5)
    batch = preference_batch(TOK, preference_pairs(make_instruction_data(WORDS).train[:8]))
    margin, loss = model(*batch)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)
    assert torch.allclose(margin, torch.zeros(8), atol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.policy.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.reference[0].parameters())
    assert len(list(model.parameters())) == len(list(model.policy.parameters()))


def test_preference_accuracy_counts_wins_by_hand():
    model = tiny_model(3)
    pairs = preference_pairs(make_instruction_data(WORDS).heldout[:20])
    wins = 0
    with torch.no_grad():
        for p in pairs:
            scores = []
            for response in (p.chosen, p.rejected):
                ids = TOK.encode(p.prompt + response)
                logits, _ = model(torch.tensor([ids[:-1]]))
                n = len(TOK.encode(p.prompt))
                logp = F.log_softmax(logits[0], -1)
                scores.append(sum(float(logp[t - 1, ids[t]]) for t in range(n, len(ids))))
            wins += scores[0] > scores[1]
            if p is pairs[0]:
                first_margin = scores[0] - scores[1]
    assert preference_accuracy(model, TOK, pairs, batch_size=7) == pytest.approx(wins / len(pairs))
    margins = preference_margins(model, TOK, pairs, batch_size=7)
    assert margins.shape == (len(pairs),) and float(margins[0]) == pytest.approx(
        first_margin, rel=1e-4, abs=1e-4)
    flipped = [PreferencePair(p.prompt, p.rejected, p.chosen) for p in pairs]
    assert preference_accuracy(model, TOK, flipped) == pytest.approx(1 - wins / len(pairs))


@pytest.mark.slow  # 40 training steps
def test_a_few_dpo_steps_shift_the_preference():
    data = make_instruction_data(WORDS)
    pairs = preference_pairs(data.train)
    policy = tiny_model(1)
    reference = copy.deepcopy(policy)
    before = preference_accuracy(policy, TOK, pairs)
    cfg = TrainConfig(batch_size=32, max_steps=40, lr=3e-3, min_lr=3e-3, warmup_steps=0,
                      weight_decay=0.0, eval_interval=1000, progress=False)
    state = train(DPOModel(policy, beta=0.5), preference_batches(TOK, pairs, 32, seed=0), cfg)
    after = preference_accuracy(policy, TOK, pairs)
    assert state.losses[-5:].mean() < math.log(2) - 0.2
    assert after > before + 0.2 and after > 0.7, (before, after)
    assert preference_accuracy(reference, TOK, pairs) == before  # the reference never moved
