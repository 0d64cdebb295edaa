"""Int8 quantization from scratch against closed forms: the round trip's error is at most
half a step, scales and zero points are what the formulas say, 0 is exact, per-channel beats
per-tensor on rows of different sizes, the int8 GPT loses at most 0.02 nats on a whole split
and weighs at most 0.3x its float32 self; PyTorch's dynamic quantization where it runs."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from slm_course.cli.presets import get_preset
from slm_course.cli.runs import run_training
from slm_course.gpt import GPT, GPTConfig
from slm_course.lm_data import split_loss
from slm_course.quantize import (
    Int8Embedding,
    Int8Linear,
    dequantize,
    dynamic_quantize,
    quantization_error,
    quantize_asymmetric,
    quantize_model,
    quantize_symmetric,
    state_dict_bytes,
)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_round_trip_error_is_at_most_half_a_step(symmetric, axis):
    torch.manual_seed(0)
    w = torch.randn(32, 48) * torch.logspace(-3, 1, 32)[:, None] + 0.3  # rows of many sizes
    err, scale = quantization_error(w, symmetric=symmetric, axis=axis)
    assert (err <= scale / 2 * (1 + 1e-5) + 1e-12).all(), float((err / scale).max())
    assert (err / scale).max() > 0.4, "with this many weights some land near half a step"


def test_symmetric_closed_form():
    w = torch.tensor([[-2.0, 0.5, 1.0], [0.1, -0.05, 0.0]])
    q, s = quantize_symmetric(w)
    assert s.item() == pytest.approx(2.0 / 127)
    assert q.dtype == torch.int8 and q[0].tolist() == [-127, round(0.5 * 127 / 2), 64]
    q, s = quantize_symmetric(w, axis=0)
    assert s.shape == (2, 1) and s[1].item() == pytest.approx(0.1 / 127)
    assert q[1].tolist() == [127, -64, 0]  # -63.5 rounds to the even -64
    assert dequantize(q, s)[1, 2].item() == 0.0, "0 stays exactly 0"


def test_asymmetric_closed_form_and_exact_zero():
    w = torch.tensor([0.0, 1.0, 2.0, 5.1])  # all >= 0: the range is [0, 5.1]
    q, s, z = quantize_asymmetric(w)
    assert s.item() == pytest.approx(5.1 / 255) and z.item() == -128
    assert q[0].item() == -128 and q[-1].item() == 127
    assert dequantize(q, s, z)[0].item() == 0.0
    w = torch.tensor([-1.0, 3.0])  # min -1 -> -128; max 3 -> 127; z = -128 + round(1 / s)
    q, s, z = quantize_asymmetric(w)
    assert z.item() == -128 + round(1 / (4 / 255)) and q.tolist() == [-128, 127]
    # asymmetric beats symmetric on a one-sided tensor: twice the levels in use
    w = torch.rand(1000)
    assert quantization_error(w, False)[0].mean() < 0.6 * quantization_error(w, True)[0].mean()


def test_per_channel_beats_per_tensor_on_rows_of_different_sizes():
    torch.manual_seed(1)
    w = torch.randn(16, 64) * torch.logspace(-2, 0, 16)[:, None]
    rel = [(quantization_error(w, axis=a)[0].pow(2).sum(1) / w.pow(2).sum(1)).max()
           for a in (None, 0)]
    assert rel[1] < rel[0] / 10


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="float tensor"):
        quantize_symmetric(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        quantize_asymmetric(torch.ones(3, 3), axis=2)
    with pytest.raises(ValueError, match="inf or nan"):
        quantize_symmetric(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="2-D int8"):
        Int8Linear(torch.ones(2, 2), torch.ones(2))
    q, s = quantize_symmetric(torch.zeros(2, 3), axis=0)  # an all-zero row: no division by 0
    assert torch.equal(dequantize(q, s), torch.zeros(2, 3))


def test_int8_linear_is_the_linear_with_dequantized_weights():
    torch.manual_seed(2)
    lin = nn.Linear(20, 7)
    qlin = Int8Linear.from_linear(lin)
    q, s = quantize_symmetric(lin.weight.detach(), axis=0)
    x = torch.randn(4, 20)
    torch.testing.assert_close(qlin(x), x @ dequantize(q, s).T + lin.bias)
    assert (qlin(x) - lin(x)).abs().max() < 0.01


def test_quantized_gpt_shares_the_tied_matrix_and_matches_closely():
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    qmodel = quantize_model(model)
    assert isinstance(qmodel.transformer.wte, Int8Embedding)
    assert isinstance(qmodel.lm_head, Int8Linear)
    assert qmodel.lm_head.weight_int8 is qmodel.transformer.wte.weight_int8, "tied: one matrix"
    assert not any(isinstance(m, nn.Linear) for m in qmodel.modules())
    assert isinstance(model.lm_head, nn.Linear), "the original model is untouched"
    idx = torch.randint(50, (2, 16))
    with torch.no_grad():
        a, b = model(idx)[0], qmodel(idx)[0]
    assert (a - b).abs().max() < 0.02 * a.abs().max()
    assert state_dict_bytes(qmodel) < 0.4 * state_dict_bytes(model)  # small: overhead shows


def test_trained_int8_gpt_loses_under_002_nats_and_weighs_under_03x(tmp_path):
    preset = get_preset("tiny")
    cfg = replace(preset.train, max_steps=150, eval_interval=150, progress=False)
    model, _, data = run_training({**preset.model, "n_embd": 64}, cfg)
    val = data.val[:20_000]
    base = split_loss(model, val, model.config.block_size)
    qmodel = quantize_model(model)
    rise = split_loss(qmodel, val, model.config.block_size) - base
    assert base < 2.9, f"the model should have learned something, loss {base:.3f}"
    assert abs(rise) <= 0.02, f"int8 raised the loss by {rise:.4f} nats"
    ratio = state_dict_bytes(qmodel) / state_dict_bytes(model)
    assert ratio <= 0.3, f"int8 weights are {ratio:.2f}x the float32 ones"
    dq = dynamic_quantize(model)
    if dq is None:
        pytest.skip("torch.ao.quantization.quantize_dynamic does not run on this machine")
    dq_rise = split_loss(dq, val, model.config.block_size) - base
    assert abs(dq_rise) <= 0.05, f"dynamic int8 raised the loss by {dq_rise:.4f} nats"
