"""The GPT against oracles: PyTorch's own transformer layer, closed-form parameter counts,
the explicit attention path, causality, and the loss of an untrained model (ln V)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import slm_course.transformer as stage13
from slm_course.gpt import GPT, GPTConfig, check_vocab, parameter_counts
from slm_course.seq2seq import IGNORE_INDEX


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    return GPTConfig(**{**base, **kw})


@pytest.mark.parametrize("kw, match", [
    (dict(n_embd=30, n_head=4), "not divisible by n_head"),
    (dict(block_size=0), "block_size must be a positive int"),
    (dict(vocab_size=-1), "vocab_size must be a positive int"),
    (dict(dropout=1.0), "dropout"),
    (dict(attention="slow"), "attention must be one of"),
])
def test_bad_configs_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_vocab_mismatch_is_a_clear_error():
    check_vocab(tiny(), 11)  # matching: fine
    with pytest.raises(ValueError, match="vocab_size=11 but the tokenizer has 65 tokens"):
        check_vocab(tiny(), 65)


def test_config_round_trips_and_rejects_unknown_keys():
    cfg = tiny(dropout=0.1, bias=True)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown GPTConfig keys.*n_layers"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_layers": 3})


def test_input_longer_than_block_size_is_an_error():
    model = GPT(tiny())
    model(torch.zeros(1, 8, dtype=torch.long))  # exactly block_size: fine
    with pytest.raises(ValueError, match="9 tokens but the model's block_size is 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_output_shapes_and_loss_is_cross_entropy():
    torch.manual_seed(0)
    model = GPT(tiny())
    idx = torch.randint(11, (3, 5))
    targets = torch.randint(11, (3, 5))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 5, 11)
    expected = F.cross_entropy(logits.reshape(15, 11), targets.reshape(15))
    assert torch.allclose(loss, expected)
    assert model(idx)[1] is None
    targets[:, :2] = IGNORE_INDEX  # no target at these positions
    _, partial = model(idx, targets)
    assert torch.allclose(partial, F.cross_entropy(logits[:, 2:].reshape(9, 11),
                                                   targets[:, 2:].reshape(9)))


def test_untrained_loss_is_ln_vocab():
    """GPT-2 init gives nearly uniform predictions: loss ~ ln V (ln 65 = 4.17 for chars)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32))
    idx = torch.randint(65, (8, 32))
    _, loss = model(idx, torch.randint(65, (8, 32)))
    assert abs(loss.item() - math.log(65)) < 0.05


def closed_form_params(cfg: GPTConfig) -> int:
    """V C (tied) + T C + L (12 C^2 + 2 C) + C without biases; biases add L 13 C + C."""
    V, T, L, C = cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_embd
    n = V * C + T * C + L * (12 * C * C + 2 * C) + C
    if cfg.bias:
        n += L * (2 * C + 3 * C + C + 4 * C + C) + C
    return n


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count_matches_closed_form(bias):
    cfg = tiny(bias=bias)
    model = GPT(cfg)
    assert model.num_params(non_embedding=False) == closed_form_params(cfg)
    assert model.num_params() == closed_form_params(cfg) - cfg.block_size * cfg.n_embd
    counts = parameter_counts(model)
    assert sum(counts.values()) == model.num_params(non_embedding=False)
    assert counts["attention"] == cfg.n_layer * (4 * cfg.n_embd ** 2 + (4 * cfg.n_embd if bias
                                                                         else 0))


def test_nanogpt_shakespeare_char_is_10_65_million():
    """nanoGPT reports 10.65M parameters for its Shakespeare-char model."""
    cfg = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    assert round(GPT(cfg).num_params() / 1e6, 2) == 10.65


def test_weights_are_tied():
    model = GPT(tiny())
    assert model.lm_head.weight is model.transformer.wte.weight
    model.lm_head.weight.data[0, 0] = 123.0
    assert model.transformer.wte.weight[0, 0] == 123.0


def test_gpt2_initialisation_statistics():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=500, block_size=64, n_layer=8, n_head=4, n_embd=256, bias=True)
    model = GPT(cfg)
    block = model.transformer.h[0]
    assert abs(block.attn.c_attn.weight.std().item() - 0.02) < 0.001
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.001
    residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)  # 0.005
    for proj in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
        assert abs(proj.std().item() - residual_std) < 0.0005
    assert torch.all(block.attn.c_attn.bias == 0)
    assert torch.all(block.ln_1.weight == 1)


def _copy_block_into_torch_layer(block, layer):
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.c_attn.weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.c_attn.bias)
        layer.self_attn.out_proj.weight.copy_(block.attn.c_proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.attn.c_proj.bias)
        layer.linear1.weight.copy_(block.mlp.c_fc.weight)
        layer.linear1.bias.copy_(block.mlp.c_fc.bias)
        layer.linear2.weight.copy_(block.mlp.c_proj.weight)
        layer.linear2.bias.copy_(block.mlp.c_proj.bias)
        for ours, theirs in ((block.ln_1, layer.norm1), (block.ln_2, layer.norm2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_block_equals_pytorch_pre_norm_transformer_layer(attention):
    """Oracle: nn.TransformerEncoderLayer(norm_first=True, gelu) with a causal mask."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_embd=32, bias=True,
                    attention=attention)
    block = GPT(cfg).transformer.h[0].eval()
    for p in block.parameters():  # move away from the init so LayerNorm's affine matters
        nn.init.normal_(p, std=0.3)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=128, dropout=0.0,
                                       activation="gelu", batch_first=True,
                                       norm_first=True).eval()
    _copy_block_into_torch_layer(block, layer)
    x = torch.randn(2, 7, 32)
    mask = nn.Transformer.generate_square_subsequent_mask(7)
    expected = layer(x, src_mask=mask, is_causal=True)
    assert torch.allclose(block(x)[0], expected, atol=1e-5)


def test_explicit_attention_path_equals_fused_path():
    torch.manual_seed(0)
    fast = GPT(tiny(attention="fast"))
    explicit = GPT(tiny(attention="explicit"))
    explicit.load_state_dict(fast.state_dict())
    idx, targets = torch.randint(11, (4, 8)), torch.randint(11, (4, 8))
    logits_f, loss_f = fast(idx, targets)
    logits_e, loss_e = explicit(idx, targets)
    assert torch.allclose(logits_f, logits_e, atol=1e-5)
    loss_f.backward()
    loss_e.backward()
    for (name, p_f), p_e in zip(fast.named_parameters(), explicit.parameters(), strict=True):
        assert torch.allclose(p_f.grad, p_e.grad, atol=1e-5), name


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_future_tokens_do_not_change_past_logits(attention):
    torch.manual_seed(0)
    model = GPT(tiny(attention=attention)).eval()
    idx = torch.randint(11, (1, 8))
    changed = idx.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 11
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = GPT(tiny(dropout=0.5, attention="explicit"))
    idx = torch.randint(11, (2, 8))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


def test_a_small_gpt_memorises_a_sequence():
    """The whole model can learn: 60 Adam steps fit one fixed batch almost perfectly."""
    torch.manual_seed(0)
    model = GPT(tiny(n_layer=1))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    x = torch.randint(11, (4, 8))
    y = torch.roll(x, -1, dims=1)
    for _ in range(60):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1  # from ln 11 = 2.4


def test_ignore_index_is_cross_entropys_default_and_skips_positions():
    """One ignore index for every model: -100, F.cross_entropy's default."""
    assert IGNORE_INDEX == -100 == nn.CrossEntropyLoss().ignore_index
    torch.manual_seed(0)
    model = GPT(tiny())
    idx, targets = torch.randint(11, (2, 8)), torch.randint(11, (2, 8))
    _, full = model(idx, targets)
    targets[1] = IGNORE_INDEX  # the whole second row: the loss is the first row's
    _, first_row = model(idx[:1], targets[:1])
    assert torch.allclose(model(idx, targets)[1], first_row)
    assert not torch.allclose(full, first_row)


def test_the_gpt_is_built_from_stage_13s_parts():
    """Lesson 13's parts are lesson 14's parts: the very classes, not look-alikes."""
    model = GPT(tiny(bias=True))
    for block in model.transformer.h:
        assert type(block) is stage13.Block
        assert type(block.attn) is stage13.MultiHeadAttention
        assert type(block.mlp) is stage13.MLP
        assert type(block.ln_1) is type(block.ln_2) is stage13.LayerNorm
        assert block.causal
    assert type(model.transformer.ln_f) is stage13.LayerNorm


def test_parameter_names_are_gpt2s():
    """The keys of Hugging Face's GPT2LMHeadModel (without its causal-mask buffers), so
    loading and exporting GPT-2 weights (stage 17) is a one-to-one key map."""
    names = list(GPT(tiny(n_layer=1, bias=True)).state_dict())
    layer = [f"transformer.h.0.{n}" for n in (
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]
    assert names == ["transformer.wte.weight", "transformer.wpe.weight", *layer,
                     "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
