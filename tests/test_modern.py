"""The modern parts (slm_course.modern) against PyTorch's built-ins and their defining
properties: RMSNorm = nn.RMSNorm, RoPE's scores depend only on m - n, SwiGLU costs what the
GELU MLP costs, grouped-query attention = PyTorch's GQA and = full attention when G = H."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slm_course.modern import (
    RMSNorm,
    SwiGLU,
    apply_rotary,
    check_modern_options,
    repeat_kv,
    rms_norm,
    rotary_tables,
    swiglu_hidden_width,
)
from slm_course.transformer import MLP


@pytest.mark.parametrize("explicit", [True, False])
def test_rmsnorm_equals_nn_rmsnorm(explicit):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4 + 1
    ours = RMSNorm(16, eps=1e-6, explicit=explicit)
    theirs = nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
        theirs.weight.copy_(ours.weight)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    y = rms_norm(x, torch.ones(16))
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4), "unit RMS"


def test_rmsnorm_gradient_equals_nn_rmsnorm():
    torch.manual_seed(1)
    x1 = torch.randn(4, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    ours, theirs = RMSNorm(8, explicit=True), nn.RMSNorm(8, eps=1e-6)
    (ours(x1) * torch.arange(8.0)).sum().backward()
    (theirs(x2) * torch.arange(8.0)).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert torch.allclose(ours.weight.grad, theirs.weight.grad, atol=1e-5)


def rotated(vec: torch.Tensor, position: int) -> torch.Tensor:
    """One head vector (D,) rotated as if it stood at ``position``."""
    cos, sin = rotary_tables(1, vec.shape[-1], offset=position)
    return apply_rotary(vec[None, :], cos, sin)[0]


def test_rope_scores_depend_only_on_the_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(32), torch.randn(32)
    for distance in (0, 1, 5, 17):
        scores = [rotated(q, m) @ rotated(k, m - distance) for m in (distance, 20, 63, 500)]
        assert torch.allclose(torch.stack(scores), scores[0].expand(4), atol=1e-3), \
            f"q_m . k_n changed with m at fixed m - n = {distance}: {scores}"
    near, far = rotated(q, 10) @ rotated(k, 9), rotated(q, 10) @ rotated(k, 2)
    assert not torch.isclose(near, far, atol=1e-2), "scores must still depend on m - n"


def test_rope_keeps_lengths_and_position_zero_is_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 8)  # (B, H, T, D)
    cos, sin = rotary_tables(12, 8)
    y = apply_rotary(x, cos, sin)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5), "a rotation keeps norms"
    assert torch.allclose(y[:, :, 0], x[:, :, 0]), "position 0 is not rotated"


def test_rope_is_a_2d_rotation_of_each_channel_pair():
    """Pair i = channels (i, i + D/2) rotated by position * base^(-2i/D), checked by hand."""
    x = torch.randn(1, 1, 5, 6)
    cos, sin = rotary_tables(5, 6, base=100.0)
    y = apply_rotary(x, cos, sin)
    for m in range(5):
        for i in range(3):
            angle = torch.tensor(m * 100.0 ** (-2 * i / 6))
            R = torch.tensor([[torch.cos(angle), -torch.sin(angle)],
                              [torch.sin(angle), torch.cos(angle)]])
            pair = R @ torch.stack([x[0, 0, m, i], x[0, 0, m, i + 3]])
            assert torch.allclose(torch.stack([y[0, 0, m, i], y[0, 0, m, i + 3]]), pair,
                                  atol=1e-5)


def test_rotary_tables_with_an_offset_are_a_slice_of_the_long_table():
    cos, sin = rotary_tables(20, 8)
    cos5, sin5 = rotary_tables(4, 8, offset=7)
    assert torch.allclose(cos5, cos[7:11]) and torch.allclose(sin5, sin[7:11])


def test_rope_rejects_an_odd_head_width():
    with pytest.raises(ValueError, match="even"):
        rotary_tables(4, 7)


@pytest.mark.parametrize(("n_embd", "bias"), [(96, False), (128, False), (64, True),
                                              (48, True)])
def test_swiglu_costs_what_the_gelu_mlp_costs(n_embd, bias):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    gelu, swiglu = MLP(n_embd, bias=bias), SwiGLU(n_embd, bias=bias)
    per_unit = 3 * n_embd + 2 * bias  # one hidden unit more or less
    assert abs(count(swiglu) - count(gelu)) <= per_unit / 2, (count(swiglu), count(gelu))
    if n_embd == 96 and not bias:
        assert swiglu.hidden == 256 and count(swiglu) == count(gelu)  # 8 * 96 / 3 exactly


def test_swiglu_equals_its_equation():
    torch.manual_seed(0)
    mlp = SwiGLU(8, hidden=12)
    x = torch.randn(2, 3, 8)
    W_gate, W_up = mlp.c_fc.weight[:12].T, mlp.c_fc.weight[12:].T  # (C, h) each
    W_down = mlp.c_proj.weight.T  # (h, C)
    expected = (F.silu(x @ W_gate) * (x @ W_up)) @ W_down
    assert torch.allclose(mlp(x), expected, atol=1e-6)
    assert swiglu_hidden_width(8) == 21  # 2 * 4 * 8 / 3 = 21.3


def test_repeat_kv_matches_repeat_interleave_and_pytorch_gqa():
    torch.manual_seed(0)
    B, H, G, T, D = 2, 6, 2, 5, 4
    q = torch.randn(B, H, T, D)
    k, v = torch.randn(B, G, T, D), torch.randn(B, G, T, D)
    assert torch.equal(repeat_kv(k, 3), k.repeat_interleave(3, dim=1))
    ours = F.scaled_dot_product_attention(q, repeat_kv(k, 3), repeat_kv(v, 3), is_causal=True)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert repeat_kv(k, 1) is k


def test_check_modern_options_names_the_choices():
    with pytest.raises(ValueError, match="rmsnorm"):
        check_modern_options("batchnorm", "rope", "gelu", 4, None, 8)
    with pytest.raises(ValueError, match="divide"):
        check_modern_options("rmsnorm", "rope", "gelu", 4, 3, 8)
    with pytest.raises(ValueError, match="even"):
        check_modern_options("rmsnorm", "rope", "gelu", 4, 2, 7)
    check_modern_options("rmsnorm", "rope", "swiglu", 4, 2, 8)  # fine: no error


# ---------------------------------------------------------------------------------------------
# The options in the course's transformer and GPT
# ---------------------------------------------------------------------------------------------

MODERN = dict(norm="rmsnorm", position="rope", mlp="swiglu", n_kv_head=2)


def small_gpt(**options):
    from slm_course.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=32,
                         **options)).eval()


def test_the_defaults_are_gpt2s():
    from slm_course.gpt import GPTConfig

    config = GPTConfig()
    assert (config.norm, config.position, config.mlp, config.n_kv_head) == \
        ("layernorm", "learned", "gelu", None)
    model = small_gpt()
    keys = set(model.state_dict())
    assert "transformer.wpe.weight" in keys and "transformer.h.0.ln_1.weight" in keys
    assert model.transformer.h[0].attn.c_attn.weight.shape == (3 * 32, 32)
    assert not any("rope" in k for k in keys), "old checkpoints must load unchanged"


def test_a_modern_gpt_has_no_position_table_and_the_same_mlp_size():
    old, new = small_gpt(), small_gpt(**MODERN)
    assert "wpe" not in new.transformer
    mlp = lambda m: sum(p.numel() for p in m.transformer.h[0].mlp.parameters())  # noqa: E731
    assert abs(mlp(new) - mlp(old)) <= (3 * 32) / 2
    assert isinstance(new.transformer.ln_f, RMSNorm)
    G, D = 2, 32 // 4
    assert new.transformer.h[0].attn.c_attn.weight.shape == (32 + 2 * G * D, 32)
    assert new.num_params() == new.num_params(non_embedding=False)


@pytest.mark.parametrize("options", [MODERN, dict(position="rope"), dict(n_kv_head=1),
                                     dict(norm="rmsnorm", mlp="swiglu")])
def test_cached_generation_equals_uncached_for_the_modern_options(options):
    """With the KV cache, RoPE must rotate new tokens at their absolute positions and GQA must
    store only n_kv_head heads; the logits must match a full forward pass."""
    from slm_course.transformer import KVCache

    model = small_gpt(**options)
    idx = torch.randint(0, 13, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(16)
        first, _ = model(idx[:, :5], cache=cache)  # a prompt of 5, then one token at a time
        steps = [first] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 12)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert cache.keys[0].shape[1] == (options.get("n_kv_head") or 4), "cache G heads"


def test_gqa_equals_full_attention_with_shared_key_value_weights():
    """Grouped-query attention with G groups = multi-head attention whose H key (and value)
    heads are G distinct heads, each repeated H / G times; and with G = H it is MHA itself."""
    from slm_course.transformer import MultiHeadAttention

    torch.manual_seed(0)
    C, H, G = 24, 6, 2
    D = C // H
    gqa = MultiHeadAttention(C, H, bias=True, n_kv_head=G)
    full = MultiHeadAttention(C, H, bias=True)
    Wq, Wk, Wv = gqa.c_attn.weight.split([C, G * D, G * D])  # nn.Linear: (out, in)
    bq, bk, bv = gqa.c_attn.bias.split([C, G * D, G * D])
    spread = lambda w: w.view(G, D, *w.shape[1:]).repeat_interleave(H // G, 0).reshape(  # noqa
        C, *w.shape[1:])
    with torch.no_grad():
        full.c_attn.weight.copy_(torch.cat([Wq, spread(Wk), spread(Wv)]))
        full.c_attn.bias.copy_(torch.cat([bq, spread(bk), spread(bv)]))
        full.c_proj.load_state_dict(gqa.c_proj.state_dict())
    x = torch.randn(3, 7, C)
    assert torch.allclose(gqa(x, causal=True)[0], full(x, causal=True)[0], atol=1e-5)
    same = MultiHeadAttention(C, H, bias=True, n_kv_head=H)
    same.load_state_dict(full.state_dict())  # G = H: the very same weights and shapes
    assert torch.allclose(same(x, causal=True)[0], full(x, causal=True)[0], atol=1e-6)
    ref = nn.MultiheadAttention(C, H, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(full.c_attn.weight)
        ref.in_proj_bias.copy_(full.c_attn.bias)
        ref.out_proj.load_state_dict(full.c_proj.state_dict())
    mask = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1)
    assert torch.allclose(same(x, causal=True)[0], ref(x, x, x, attn_mask=mask)[0], atol=1e-5)


def test_the_explicit_attention_path_agrees_with_rope_and_gqa():
    fast = small_gpt(**MODERN)
    slow = small_gpt(**MODERN, attention="explicit")
    slow.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 13, (2, 16), generator=torch.Generator().manual_seed(2))
    assert torch.allclose(fast(idx)[0], slow(idx)[0], atol=1e-5)


def test_bad_modern_options_are_clear_errors():
    from slm_course.gpt import GPTConfig

    with pytest.raises(ValueError, match="even"):
        GPTConfig(n_embd=12, n_head=4, position="rope")  # head width 3
    with pytest.raises(ValueError, match="divide"):
        GPTConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="swiglu"):
        GPTConfig(mlp="relu")


def test_presets_parse_the_new_options():
    from slm_course.cli.presets import apply_overrides, get_preset

    preset = apply_overrides(get_preset("tiny"), {"n_kv_head": "1", "position": "rope"})
    assert preset.model["n_kv_head"] == 1 and preset.model["position"] == "rope"
    assert apply_overrides(get_preset("tiny"), {"n_kv_head": "none"}).model["n_kv_head"] is None


def test_the_speedrun_preset_is_the_modern_gpt_with_muon_and_trains(tmp_path):
    from dataclasses import replace

    from slm_course.cli.presets import get_preset
    from slm_course.cli.runs import run_training
    from slm_course.lm_data import LMData
    from slm_course.muon import Muon
    from slm_course.tokenizers import CharTokenizer

    preset = get_preset("shakespeare-char-cpu-speedrun")
    assert (preset.model["norm"], preset.model["position"], preset.model["mlp"]) == \
        ("rmsnorm", "rope", "swiglu") and preset.train.optimizer == "muon"
    assert preset.train.min_lr == 0.0 and preset.train.num_threads == 2
    text = "ROMEO: what light through yonder window breaks? " * 30
    data = LMData.from_text(text, CharTokenizer.from_text(text))
    cfg = replace(preset.train, max_steps=4, warmup_steps=1, eval_interval=4, eval_batches=1,
                  batch_size=2, progress=False, num_threads=0)
    seen = []
    model, state, _ = run_training({**preset.model, "block_size": 16}, cfg, data=data,
                                   callbacks=[lambda kind, s: seen.append(kind)])
    assert state.step == 4 and "wpe" not in model.transformer
    assert torch.isfinite(state.losses).all() and seen.count("eval") == 2
    from slm_course.train import make_optimizer
    assert isinstance(make_optimizer(model, cfg), Muon)
