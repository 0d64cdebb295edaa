"""slm_course.lstm against PyTorch: the cells against nn.LSTM / nn.GRU with the same weights
(values and gradients, float64), clipping against clip_grad_norm_, the truncated-BPTT stream
against a layout written by hand, and a tiny LSTM language model that must learn."""

import math

import pytest
import torch
import torch.nn as nn
from helpers import rel_err

from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage11 import (
    check_batchify,
    check_clip_by_global_norm,
    check_gru_step,
    check_lstm_step,
)
from slm_course.lstm import (
    CarryState,
    GRUCellScratch,
    LSTMCellScratch,
    RecurrentLM,
    RecurrentLMConfig,
    TBPTTBatches,
    batchify,
    clip_grad_norm,
    detach_hidden,
    hidden_gradient_norms,
    sample_recurrent,
    steps_in_budget,
    stream_loss,
    unroll,
)
from slm_course.probability import perplexity
from slm_course.train import TrainConfig, train

TIGHT = 1e-10  # float64: a right cell agrees to round-off, a wrong gate order misses by 1e-1


def _pair(kind, I=5, H=4, layers=1):
    torch.manual_seed(0)
    theirs = (nn.LSTM if kind == "lstm" else nn.GRU)(I, H, layers, batch_first=True).double()
    cells = [(LSTMCellScratch if kind == "lstm" else GRUCellScratch)(I if k == 0 else H, H)
             .double().load_from(theirs, k) for k in range(layers)]
    return theirs, cells


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_one_step_equals_pytorch_values_and_grads(kind):
    theirs, (cell,) = _pair(kind)
    x = torch.randn(3, 5, dtype=torch.float64)
    h0 = torch.randn(1, 3, 4, dtype=torch.float64)
    c0 = torch.randn(1, 3, 4, dtype=torch.float64)
    state = (h0, c0) if kind == "lstm" else h0
    out_t, st_t = theirs(x[:, None], state)
    ours = cell(x, (h0[0], c0[0]) if kind == "lstm" else h0[0])
    h_ours = ours[0] if kind == "lstm" else ours
    assert rel_err(h_ours, out_t[:, 0]) < TIGHT
    if kind == "lstm":
        assert rel_err(ours[1], st_t[1][0]) < TIGHT  # the cell state too
    w = torch.randn(3, 4, dtype=torch.float64)  # a loss that weighs every output differently
    (h_ours * w).sum().backward()
    (out_t[:, 0] * w).sum().backward()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert rel_err(getattr(cell, name).grad, getattr(theirs, f"{name}_l0").grad) < TIGHT


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_unrolled_two_layers_equal_pytorch_over_a_sequence(kind):
    theirs, cells = _pair(kind, layers=2)
    x = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    out_t, _ = theirs(x)
    h = x
    for cell in cells:
        h, _ = unroll(cell, h)
    assert rel_err(h, out_t) < TIGHT
    gx_t, = torch.autograd.grad(out_t.pow(2).sum(), x)
    gx, = torch.autograd.grad(h.pow(2).sum(), x)
    assert rel_err(gx, gx_t) < TIGHT  # backprop through time agrees at every input step


def test_a_wrong_gate_order_would_be_noticed():
    theirs, (cell,) = _pair("lstm")
    with torch.no_grad():  # swap the f and g blocks: what a wrong chunk order does
        for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh):
            p[4:8], p[8:12] = p[8:12].clone(), p[4:8].clone()
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    assert rel_err(unroll(cell, x)[0], theirs(x)[0]) > 1e-3


def test_clip_grad_norm_equals_pytorch():
    for max_norm in (0.1, 1.0, 1e6):  # clipped, clipped, untouched
        torch.manual_seed(1)
        a, b = nn.Linear(4, 3), nn.Linear(4, 3)
        b.load_state_dict(a.state_dict())
        x = torch.randn(5, 4) * 10
        a(x).pow(2).sum().backward()
        b(x).pow(2).sum().backward()
        n_ours = clip_grad_norm(a.parameters(), max_norm)
        n_torch = nn.utils.clip_grad_norm_(b.parameters(), max_norm)
        assert torch.isclose(n_ours, n_torch, rtol=1e-5)
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_batchify_and_chunks_equal_a_hand_layout():
    tokens = torch.arange(23)
    assert batchify(tokens, 3).tolist() == [list(range(0, 7)), list(range(7, 14)),
                                            list(range(14, 21))]
    restarts = []
    stream = TBPTTBatches(tokens, 3, 4, on_restart=lambda: restarts.append(1))
    x1, y1 = stream()
    x2, y2 = stream()  # the last 2 of each 7-token row: a shorter chunk
    assert x1.tolist() == [[0, 1, 2, 3], [7, 8, 9, 10], [14, 15, 16, 17]]
    assert y1.tolist() == [[1, 2, 3, 4], [8, 9, 10, 11], [15, 16, 17, 18]]
    assert x2.tolist() == [[4, 5], [11, 12], [18, 19]]
    assert y2.tolist() == [[5, 6], [12, 13], [19, 20]]
    assert not restarts
    x3, _ = stream()  # a new pass
    assert x3.tolist() == x1.tolist() and restarts == [1] and stream.passes == 1


def test_carried_state_is_detached_and_continues_the_stream():
    torch.manual_seed(0)
    lm = RecurrentLM(RecurrentLMConfig(vocab_size=7, n_embd=4, n_hidden=5))
    model = CarryState(lm)
    tokens = torch.randint(0, 7, (40,))
    stream = TBPTTBatches(tokens, 2, 5)
    x1, y1 = stream()
    model(x1, y1)
    h, c = model.hidden
    assert h.grad_fn is None and c.grad_fn is None and not h.requires_grad
    x2, y2 = stream()
    logits, loss = model(x2, y2)
    loss.backward()  # only this chunk's graph: a second backward of chunk 1 is not needed
    # the carried state gives the same logits as running both chunks in one go
    (whole, _), _ = lm(torch.cat([x1, x2], dim=1))
    assert torch.allclose(logits, whole[:, 5:], atol=1e-6)
    assert detach_hidden(None) is None


def test_stream_loss_is_the_mean_over_every_target_and_perplexity_is_its_exp():
    torch.manual_seed(0)
    lm = RecurrentLM(RecurrentLMConfig(vocab_size=6, n_embd=4, n_hidden=8, cell="gru"))
    tokens = torch.randint(0, 6, (50,))
    with torch.no_grad():
        (logits, _), _ = lm(tokens[None, :-1])
    loss = stream_loss(lm, tokens, chunk=7)  # chunks of 7 carried = one pass over all 49
    oracle = perplexity(logits[0].double().numpy(), tokens[1:].numpy())
    assert math.isclose(math.exp(loss), float(oracle), rel_tol=1e-5)


def test_a_tiny_lstm_lm_learns_a_periodic_sequence():
    torch.manual_seed(0)
    period = torch.tensor([0, 1, 2, 3, 2, 1])  # the next token depends on the direction
    tokens = period.repeat(100)
    lm = RecurrentLM(RecurrentLMConfig(vocab_size=4, n_embd=8, n_hidden=16))
    model = CarryState(lm)
    stream = TBPTTBatches(tokens, 4, 10, on_restart=model.reset)
    cfg = TrainConfig(batch_size=4, max_steps=150, lr=1e-2, min_lr=1e-3, warmup_steps=5,
                      eval_interval=150, progress=False)
    train(model, stream, cfg)
    assert stream_loss(lm, tokens) < 0.05  # a periodic text is predictable: ~0 nats
    sample = sample_recurrent(lm, tokens[None, :3], 12, temperature=0)
    assert sample[0].tolist() == tokens[:15].tolist()


def test_steps_in_budget_times_the_loop_on_a_copy():
    torch.manual_seed(0)
    lm = RecurrentLM(RecurrentLMConfig(vocab_size=4, n_embd=8, n_hidden=16))
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    tokens = torch.tensor([0, 1, 2, 3]).repeat(50)
    stream = TBPTTBatches(tokens, 4, 10)
    # the clock after steps 2..7: 0.125 s a step, but step 5 took 2 s (another program's burst)
    ticks = iter([100.0, 100.125, 100.25, 102.25, 102.375, 102.5])
    cfg = TrainConfig(batch_size=4, max_steps=1000, lr=1e-2, progress=False)
    steps = steps_in_budget(lm, stream, cfg, seconds=30, probe_steps=5, clock=lambda: next(ticks))
    assert steps == 240                   # median 0.125 s a step, 30 s -> 240 (the mean: 60)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())  # a copy trained
    built = []                            # the run's own optimizer is what gets timed

    def sgd(module):
        built.append(module)
        return torch.optim.SGD(module.parameters(), lr=0.1)

    steps_in_budget(lm, stream, cfg, seconds=1, probe_steps=3, optimizer=sgd)
    assert len(built) == 1 and built[0] is not lm and isinstance(built[0], RecurrentLM)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())


def test_vanishing_gradient_rnn_against_lstm():
    torch.manual_seed(0)
    x = torch.randn(4, 40, 8)
    rnn = nn.RNN(8, 32, batch_first=True)
    lstm = nn.LSTM(8, 32, batch_first=True)
    with torch.no_grad():
        lstm.bias_hh_l0[32:64].fill_(3.0)  # forget gate mostly open
    g_rnn, g_lstm = hidden_gradient_norms(rnn, x), hidden_gradient_norms(lstm, x)
    assert g_rnn.shape == (40,)
    assert g_rnn[0] / g_rnn[-1] < 1e-6  # the tanh RNN forgets in 40 steps
    assert g_lstm[0] / g_lstm[-1] > 1e-3  # the open forget gate keeps a path


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="fewer rows"):
        batchify(torch.arange(5), 3)
    with pytest.raises(ValueError, match="one stream"):
        batchify(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="unroll"):
        LSTMCellScratch(3, 4)(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="tie_weights"):
        RecurrentLMConfig(vocab_size=5, n_embd=3, n_hidden=4, tie_weights=True)
    with pytest.raises(ValueError, match="cell must be"):
        RecurrentLMConfig(vocab_size=5, cell="transformer")
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(nn.Linear(2, 2).parameters(), 0.0)
    with pytest.raises(ValueError, match="chunk"):
        TBPTTBatches(torch.arange(10), 2, 0)


@pytest.mark.parametrize("check", [check_lstm_step, check_gru_step, check_batchify,
                                   check_clip_by_global_norm])
def test_checks_fail_on_a_stub(check):
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailed):
        check(stub)
