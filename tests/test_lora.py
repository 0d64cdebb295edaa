"""LoRA against oracles: the written-out equation W x + (alpha/r) B A x, a merged weight,
autograd's gradients (only A and B receive any), closed-form parameter counts, and peft's
own LoRA layers (a test-only extra) on the same weights."""

import copy
import io

import pytest
import torch
import torch.nn as nn

from slm_course.gpt import GPT, GPTConfig
from slm_course.lora import (
    GPT_LINEAR_LAYERS,
    LoRALinear,
    apply_lora,
    lora_layers,
    lora_parameter_count,
    lora_state_dict,
    merge_lora,
    trainable_parameters,
    unwrap_lora,
)


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**dict(vocab_size=13, block_size=8, n_layer=2, n_head=2,
                                   n_embd=16), **kw}))


def randomised(layer: LoRALinear, seed: int = 1) -> LoRALinear:
    """B is zero at init; give it values so the update is not trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g, dtype=layer.lora_B.dtype))
    return layer


def test_zero_change_at_initialisation():
    torch.manual_seed(0)
    base = nn.Linear(10, 7)
    layer = LoRALinear(copy.deepcopy(base), r=3, alpha=6.0, dropout=0.5)
    x = torch.randn(4, 5, 10)
    layer.train()  # even with dropout active: B = 0 makes the update vanish
    assert torch.equal(layer(x), base(x))
    assert torch.count_nonzero(layer.lora_A) == layer.lora_A.numel()  # A is random, not 0
    assert torch.count_nonzero(layer.lora_B) == 0
    model, reference = tiny_gpt(), tiny_gpt()
    apply_lora(model, GPT_LINEAR_LAYERS, r=2)
    idx = torch.randint(0, 13, (3, 8))
    assert torch.equal(model(idx)[0], reference(idx)[0])


def test_forward_is_the_written_out_equation():
    torch.manual_seed(0)
    layer = randomised(LoRALinear(nn.Linear(6, 5, dtype=torch.float64), r=2, alpha=3.0))
    x = torch.randn(3, 6, dtype=torch.float64)
    W, b, A, B = layer.base.weight, layer.base.bias, layer.lora_A, layer.lora_B
    expected = x @ W.T + b + (3.0 / 2) * (x @ A.T) @ B.T  # PyTorch stores W as (out, in)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.delta_weight(), 1.5 * B @ A, rtol=0, atol=1e-12)


def test_merged_equals_unmerged_and_unmerge_restores_the_weight():
    torch.manual_seed(0)
    layer = randomised(LoRALinear(nn.Linear(8, 12, dtype=torch.float64), r=4, alpha=16))
    w0 = layer.base.weight.detach().clone()
    x = torch.randn(5, 8, dtype=torch.float64)
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer.base.weight, w0 + 4.0 * layer.lora_B @ layer.lora_A)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)
    assert (layer.base.weight - w0).abs().max() > 0.1  # the update is real
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_merged_gpt_equals_unmerged_gpt():
    model = tiny_gpt(3)
    apply_lora(model, GPT_LINEAR_LAYERS, r=2, alpha=4)
    for i, layer in enumerate(lora_layers(model)):
        randomised(layer, seed=3 + i)
    idx = torch.randint(0, 13, (2, 8))
    before = model(idx)[0]
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model))
    torch.testing.assert_close(model(idx)[0], before, rtol=1e-5, atol=1e-5)


def test_gradient_reaches_only_A_and_B():
    model = tiny_gpt()
    names = apply_lora(model, ("attn.c_attn", "mlp.c_fc"), r=2)
    assert names == ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc",
                     "transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_fc"]
    for layer in lora_layers(model):
        randomised(layer)  # with B = 0 the gradient of A would be zero too
    idx = torch.randint(0, 13, (3, 8))
    _, loss = model(idx, idx)
    loss.backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_gradient_of_A_and_B_matches_the_hand_derivation():
    """L = sum(y * G): dL/dB = s G^T (x A^T), dL/dA = s B^T G^T x (s = alpha / r)."""
    torch.manual_seed(0)
    layer = randomised(LoRALinear(nn.Linear(5, 4, dtype=torch.float64), r=2, alpha=2.0))
    x, G = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    (layer(x) * G).sum().backward()
    A, B, s = layer.lora_A.detach(), layer.lora_B.detach(), 1.0
    torch.testing.assert_close(layer.lora_B.grad, s * G.T @ (x @ A.T))
    torch.testing.assert_close(layer.lora_A.grad, s * B.T @ G.T @ x)


@pytest.mark.parametrize("r", [1, 2, 4])
def test_trainable_parameter_count_is_the_closed_form(r):
    C, L, V, T = 16, 2, 13, 8
    model = tiny_gpt()
    full = trainable_parameters(model)
    assert full == V * C + T * C + L * (12 * C * C + 2 * C) + C  # LN gains: 2 a block + ln_f
    apply_lora(model, GPT_LINEAR_LAYERS, r=r)
    shapes = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * L  # (in, out) per block
    assert lora_parameter_count(shapes, r) == L * r * (4 * C + 2 * C + 5 * C + 5 * C)
    assert trainable_parameters(model) == lora_parameter_count(shapes, r)
    assert sum(p.numel() for p in model.parameters()) == full + lora_parameter_count(shapes, r)
    state = lora_state_dict(model)
    assert len(state) == 2 * 4 * L and sum(v.numel() for v in state.values()) == \
        lora_parameter_count(shapes, r)
    small, big = io.BytesIO(), io.BytesIO()
    torch.save(state, small)
    torch.save(model.state_dict(), big)
    assert len(small.getvalue()) < len(big.getvalue())


@pytest.mark.parametrize("kw, error, match", [
    (dict(r=0), ValueError, "rank r must be a positive int"),
    (dict(r=2.5), ValueError, "rank r must be a positive int"),
    (dict(r=9), ValueError, "exceeds min"),
    (dict(alpha=0), ValueError, "alpha must be a positive number"),
    (dict(alpha=float("nan")), ValueError, "alpha must be a positive number"),
    (dict(dropout=1.0), ValueError, "dropout must be in"),
])
def test_bad_arguments_are_clear_errors(kw, error, match):
    with pytest.raises(error, match=match):
        LoRALinear(nn.Linear(8, 16), **{**dict(r=2, alpha=4.0), **kw})


def test_wrong_targets_and_wrong_modules_are_clear_errors():
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1))
    with pytest.raises(ValueError, match="no nn.Linear in the model has a name ending"):
        apply_lora(tiny_gpt(), ("attn.q_proj",))


@pytest.mark.slow  # importing peft imports transformers: seconds
def test_agrees_with_peft_on_the_same_weights():
    """peft (Hugging Face's LoRA library) wraps the same GPT; with A and B copied across,
    the outputs, the merged weights and the trainable counts agree."""
    peft = pytest.importorskip("peft")
    ours, theirs = tiny_gpt(5), tiny_gpt(5)
    targets = ["c_attn", "c_fc"]
    apply_lora(ours, [f".{t}" for t in targets], r=2, alpha=6.0)
    config = peft.LoraConfig(r=2, lora_alpha=6, target_modules=targets, lora_dropout=0.0)
    theirs = peft.inject_adapter_in_model(config, theirs)
    g = torch.Generator().manual_seed(0)
    for name, layer in ours.named_modules():
        if isinstance(layer, LoRALinear):
            other = theirs.get_submodule(name)
            with torch.no_grad():
                layer.lora_B.normal_(generator=g)
                other.lora_A["default"].weight.copy_(layer.lora_A)
                other.lora_B["default"].weight.copy_(layer.lora_B)
            assert other.scaling["default"] == layer.scaling == 3.0
    idx = torch.randint(0, 13, (2, 8), generator=g)
    torch.testing.assert_close(ours(idx)[0], theirs(idx)[0], rtol=1e-5, atol=1e-6)
    assert trainable_parameters(ours) == trainable_parameters(theirs)
    merge_lora(ours)
    for name, layer in ours.named_modules():
        if isinstance(layer, LoRALinear):
            other = theirs.get_submodule(name)
            other.merge()
            torch.testing.assert_close(layer.base.weight, other.base_layer.weight)


def test_unwrap_gives_a_plain_model_with_the_same_outputs():
    model = tiny_gpt(4)
    apply_lora(model, GPT_LINEAR_LAYERS, r=2)
    for i, layer in enumerate(lora_layers(model)):
        randomised(layer, seed=10 + i)
    idx = torch.randint(0, 13, (2, 8))
    before = model(idx)[0]
    unwrap_lora(model)
    assert not lora_layers(model)
    assert isinstance(model.transformer.h[0].attn.c_attn, nn.Linear)
    torch.testing.assert_close(model(idx)[0], before, rtol=1e-5, atol=1e-5)
    assert apply_lora(model, ("c_attn",), r=2)  # adapters can go on again
