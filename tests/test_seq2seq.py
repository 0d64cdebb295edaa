"""The digit-task generator and the GRU encoder-decoder: determinism, shapes and masking."""

import pytest
import torch

from slm_course.seq2seq import (
    DIGIT0,
    EOS,
    IGNORE_INDEX,
    PAD,
    SOS,
    VOCAB_SIZE,
    AdditiveAttention,
    Seq2Seq,
    accuracy_by_length,
    digits_to_string,
    make_digit_batch,
    sequence_loss,
    train_seq2seq,
)


def _fields(batch):
    return batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out


def test_generator_is_deterministic_per_seed():
    a, b = make_digit_batch(16, 3, 9, generator=7), make_digit_batch(16, 3, 9, generator=7)
    assert all(torch.equal(x, y) for x, y in zip(_fields(a), _fields(b), strict=True))
    c = make_digit_batch(16, 3, 9, generator=8)
    assert not torch.equal(a.src, c.src)
    # a torch.Generator continues its stream: two draws differ, and replay from the seed
    g = torch.Generator().manual_seed(7)
    first, second = make_digit_batch(16, 3, 9, generator=g), make_digit_batch(16, 3, 9,
                                                                              generator=g)
    assert torch.equal(first.src, a.src) and not torch.equal(first.src, second.src)


@pytest.mark.parametrize("task,rule", [("reverse", lambda d: d[::-1]), ("sort", sorted),
                                       ("copy", list)])
def test_targets_follow_the_task_and_padding_is_right(task, rule):
    batch = make_digit_batch(32, 2, 12, task=task, generator=0)
    B, S = batch.src.shape
    assert batch.tgt_in.shape == batch.tgt_out.shape == (B, S + 1)
    assert int(batch.src_lengths.max()) == S
    assert int(batch.src_lengths.min()) >= 2
    for b in range(B):
        n = int(batch.src_lengths[b])
        digits = (batch.src[b, :n] - DIGIT0).tolist()
        assert all(0 <= d <= 9 for d in digits)
        target = [d + DIGIT0 for d in rule(digits)]
        assert batch.tgt_out[b, :n].tolist() == target
        assert batch.tgt_in[b, : n + 1].tolist() == [SOS] + target
        assert int(batch.tgt_out[b, n]) == EOS
        assert torch.all(batch.src[b, n:] == PAD)
        assert torch.all(batch.tgt_out[b, n + 1:] == IGNORE_INDEX)  # the loss skips these
        assert torch.all(batch.tgt_in[b, n + 1:] == PAD)


def test_lengths_cover_the_range():
    lengths = make_digit_batch(500, 5, 30, generator=0).src_lengths
    assert int(lengths.min()) == 5 and int(lengths.max()) == 30


@pytest.mark.parametrize("kwargs,message", [
    ({"min_len": 0, "max_len": 3}, "1 <= min_len <= max_len"),
    ({"min_len": 5, "max_len": 3}, "1 <= min_len <= max_len"),
    ({"task": "shuffle"}, "unknown task 'shuffle'"),
    ({"batch_size": 0}, "batch_size"),
])
def test_generator_rejects_bad_arguments(kwargs, message):
    args = {"batch_size": 4, "min_len": 2, "max_len": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        make_digit_batch(args.pop("batch_size"), args.pop("min_len"), args.pop("max_len"),
                         **args)


def test_digits_to_string_stops_at_eos():
    assert digits_to_string(torch.tensor([SOS, DIGIT0 + 4, DIGIT0 + 2, EOS, DIGIT0])) == "42"


@pytest.mark.parametrize("attention", [True, False])
def test_shapes(attention):
    torch.manual_seed(0)
    model = Seq2Seq(emb_dim=8, hidden=12, attention=attention)
    batch = make_digit_batch(5, 2, 7, generator=0)
    B, S = batch.src.shape
    logits, loss = model(batch.src, batch.src_lengths, batch.tgt_in)
    assert logits.shape == (B, S + 1, VOCAB_SIZE) and loss is None
    run_logits, weights = model.run(batch.src, batch.src_lengths, batch.tgt_in)
    torch.testing.assert_close(run_logits, logits)
    tokens, dec_weights = model.greedy_decode(batch.src, batch.src_lengths, steps=4)
    assert tokens.shape == (B, 4) and tokens.dtype == torch.long
    if attention:
        assert weights.shape == (B, S + 1, S) and dec_weights.shape == (B, 4, S)
    else:
        assert weights is None and dec_weights is None


def test_attention_ignores_padding():
    torch.manual_seed(0)
    model = Seq2Seq(emb_dim=8, hidden=12, attention=True).eval()
    batch = make_digit_batch(6, 2, 8, generator=1)
    _, weights = model.run(batch.src, batch.src_lengths, batch.tgt_in)
    real = batch.src != PAD  # (B, S)
    assert torch.all(weights.masked_select(~real[:, None, :].expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))


@pytest.mark.parametrize("attention", [True, False])
def test_padding_never_changes_the_output(attention):
    # The same sentence alone and inside a padded batch must get the same logits: the
    # encoder skips padding (packed sequences) and attention gives it zero weight.
    torch.manual_seed(0)
    model = Seq2Seq(emb_dim=8, hidden=12, attention=attention).eval()
    batch = make_digit_batch(6, 2, 9, generator=2)
    b = int(batch.src_lengths.argmin())
    n = int(batch.src_lengths[b])
    assert n < batch.src.shape[1], "the test needs a padded sequence"
    padded, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
    src = batch.src.clone()
    src[b, n:] = DIGIT0 + 7  # garbage in the padding must not matter either
    garbage, _ = model(src, batch.src_lengths, batch.tgt_in)
    alone, _ = model(batch.src[b:b + 1, :n], batch.src_lengths[b:b + 1],
                     batch.tgt_in[b:b + 1, : n + 1])
    torch.testing.assert_close(padded[b, : n + 1], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(garbage, padded)


def test_additive_attention_matches_the_formula():
    torch.manual_seed(0)
    attn = AdditiveAttention(query_dim=3, key_dim=4, attn_dim=5)
    s, h = torch.randn(2, 3), torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    context, weights = attn(s, attn.project_keys(h), h, mask)
    for b in range(2):
        n = int(mask[b].sum())
        W, U, u, v = attn.W.weight, attn.U.weight, attn.U.bias, attn.v.weight[0]
        e = torch.stack([v @ torch.tanh(W @ s[b] + U @ h[b, j] + u) for j in range(n)])
        a = torch.softmax(e, dim=0)
        torch.testing.assert_close(weights[b, :n], a)
        torch.testing.assert_close(context[b], a @ h[b, :n])


def test_loss_ignores_the_ignore_index():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, VOCAB_SIZE)
    tgt = torch.tensor([[DIGIT0, EOS, IGNORE_INDEX], [DIGIT0 + 1, DIGIT0, EOS]])
    real = tgt != IGNORE_INDEX
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0)[..., None])
    torch.testing.assert_close(sequence_loss(logits, tgt), -log_p.squeeze(-1)[real].mean())
    changed = logits.clone()
    changed[0, 2] = 10 * torch.randn(VOCAB_SIZE)  # a wild prediction there changes nothing
    torch.testing.assert_close(sequence_loss(changed, tgt), sequence_loss(logits, tgt))
    half = sequence_loss(logits.bfloat16(), tgt)  # half precision is upcast to float32
    assert half.dtype == torch.float32


def test_forward_returns_the_loss_over_real_targets_only():
    torch.manual_seed(0)
    model = Seq2Seq(emb_dim=8, hidden=12, attention=True)
    batch = make_digit_batch(6, 2, 8, generator=1)
    assert torch.any(batch.tgt_out == IGNORE_INDEX), "the test needs a padded target"
    logits, loss = model(*batch)  # src, src_lengths, tgt_in, tgt_out
    real = batch.tgt_out != IGNORE_INDEX
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(
        logits[real], batch.tgt_out[real]))


def test_evaluation_restores_the_training_mode():
    model = Seq2Seq(emb_dim=4, hidden=4).train()
    accuracy_by_length(model, [2], n=4)
    assert model.training


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden": 0}, "hidden must be a positive int"),
    ({"emb_dim": 2.5}, "emb_dim must be a positive int"),
    ({"vocab_size": 3}, "leaves no room"),
])
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Seq2Seq(**kwargs)


def test_bad_lengths_are_a_clear_error():
    model = Seq2Seq(emb_dim=4, hidden=4)
    src = torch.full((2, 3), DIGIT0)
    with pytest.raises(ValueError, match="source length must be in 1..3"):
        model(src, torch.tensor([3, 4]), torch.full((2, 4), SOS))


def test_attention_model_learns_to_reverse(one_thread):
    torch.manual_seed(0)
    model = Seq2Seq(emb_dim=16, hidden=32, attention=True)
    losses = train_seq2seq(model, steps=120, batch_size=32, min_len=2, max_len=5, lr=1e-2)
    assert sum(losses[-10:]) < 0.3 * sum(losses[:10])
    acc = accuracy_by_length(model, [3, 5], n=100)
    assert min(acc["token"]) > 0.85, acc


# ---- the stage 12 exercise check: passes on a right answer, names the likely mistake ----

def _loop_additive(s, h, W, U, v, mask, use_mask=True):
    """Bahdanau attention one sentence and one position at a time (an independent answer)."""
    contexts, weights = [], []
    for b in range(h.shape[0]):
        e = torch.stack([v @ torch.tanh(W @ s[b] + U @ h[b, j]) for j in range(h.shape[1])])
        if use_mask:
            e = e.masked_fill(~mask[b], float("-inf"))
        a = torch.softmax(e, dim=0)
        weights.append(a)
        contexts.append(a @ h[b])
    return torch.stack(contexts), torch.stack(weights)


def test_check_additive_attention_passes_a_right_answer_and_catches_a_missing_mask():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage12 import check_additive_attention

    assert check_additive_attention(_loop_additive)
    with pytest.raises(CheckFailed, match="weights for padding"):
        check_additive_attention(lambda *args: _loop_additive(*args, use_mask=False))
