"""The transformer pieces against PyTorch's built-ins and closed forms."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slm_course.attention import padding_mask
from slm_course.seq2seq import IGNORE_INDEX, SOS, VOCAB_SIZE, sequence_loss
from slm_course.transformer import (
    Block,
    LayerNorm,
    MultiHeadAttention,
    TinyTransformer,
    TransformerConfig,
    block_for,
    digit_task_accuracy,
    digit_task_batch,
    layer_norm,
    prompt_and_target,
    sinusoidal_positions,
    train_digit_task,
)


@pytest.fixture(autouse=True)
def float64():
    """Compare in float64, so a tight tolerance separates right from nearly right."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _twin_mha(n_embd=12, n_head=3, seed=0, attention="fast"):
    """Our MultiHeadAttention and nn.MultiheadAttention holding the same random weights."""
    torch.manual_seed(seed)
    ours = MultiHeadAttention(n_embd, n_head, attention=attention)
    theirs = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()  # break PyTorch's zero-bias init so a wrong bias would show
        theirs.in_proj_weight.copy_(ours.c_attn.weight)
        theirs.in_proj_bias.copy_(ours.c_attn.bias)
        theirs.out_proj.weight.copy_(ours.c_proj.weight)
        theirs.out_proj.bias.copy_(ours.c_proj.bias)
    return ours, theirs


def test_multi_head_equals_torch_without_mask():
    ours, theirs = _twin_mha()
    x = torch.randn(2, 5, 12)
    out, weights = ours(x, need_weights=True)
    expected, avg_weights = theirs(x, x, x, need_weights=True, average_attn_weights=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights.mean(dim=1), avg_weights)  # PyTorch averages heads
    assert weights.shape == (2, 3, 5, 5)


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_multi_head_equals_torch_with_causal_mask(attention):
    ours, theirs = _twin_mha(attention=attention)
    x = torch.randn(2, 6, 12)
    out, _ = ours(x, causal=True)
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)  # True = blocked
    expected, _ = theirs(x, x, x, attn_mask=future)
    torch.testing.assert_close(out, expected)
    _, weights = ours(x, causal=True, need_weights=True)
    assert torch.all(weights[..., future] == 0)


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_multi_head_equals_torch_with_padding_mask(attention):
    ours, theirs = _twin_mha(n_embd=16, n_head=4, attention=attention)
    x = torch.randn(3, 5, 16)
    keep = padding_mask(torch.tensor([5, 3, 1]), 5)  # True = real token
    out, _ = ours(x, padding_mask=keep)
    expected, _ = theirs(x, x, x, key_padding_mask=~keep)  # PyTorch: True = padding
    torch.testing.assert_close(out, expected)
    _, weights = ours(x, padding_mask=keep, need_weights=True)
    assert torch.all(weights[1, :, :, 3:] == 0)


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_multi_head_with_both_masks_equals_torch(attention):
    ours, theirs = _twin_mha(attention=attention)
    x = torch.randn(2, 4, 12)
    keep = padding_mask(torch.tensor([4, 2]), 4)
    future = torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)
    out, _ = ours(x, padding_mask=keep, causal=True)
    expected, _ = theirs(x, x, x, key_padding_mask=~keep, attn_mask=future)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("causal,lengths", [(False, None), (True, None), (True, [6, 3])])
def test_fast_and_explicit_paths_are_equal_and_only_explicit_computes_weights(causal, lengths):
    """The fused kernel and the readable maths: the same outputs and gradients."""
    fast, _ = _twin_mha(attention="fast")
    explicit = MultiHeadAttention(12, 3, attention="explicit")
    explicit.load_state_dict(fast.state_dict())
    x = torch.randn(2, 6, 12, requires_grad=True)
    keep = None if lengths is None else padding_mask(torch.tensor(lengths), 6)
    (y_f, w_f), (y_e, w_e) = fast(x, keep, causal), explicit(x, keep, causal)
    assert w_f is None and w_e.shape == (2, 3, 6, 6)  # the fast path skips the weights
    torch.testing.assert_close(y_f, y_e)
    g_f = torch.autograd.grad(y_f.pow(2).sum(), (x, *fast.parameters()))
    g_e = torch.autograd.grad(y_e.pow(2).sum(), (x, *explicit.parameters()))
    for a, b in zip(g_f, g_e, strict=True):
        torch.testing.assert_close(a, b)
    y_w, w = fast(x, keep, causal, need_weights=True)  # weights on request, same output
    torch.testing.assert_close(y_w, y_f)
    torch.testing.assert_close(w, w_e)


def test_multi_head_is_not_one_wide_head():
    # With one head the same weights give a different answer: the split into heads matters.
    ours, _ = _twin_mha(n_embd=12, n_head=3)
    single = MultiHeadAttention(12, 1)
    single.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 12)
    assert not torch.allclose(ours(x)[0], single(x)[0], atol=1e-4)


def test_layer_norm_equals_torch_values_and_gradients():
    torch.manual_seed(0)
    ours, theirs = LayerNorm(10, explicit=True), nn.LayerNorm(10)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        theirs.weight.copy_(ours.weight)
        theirs.bias.copy_(ours.bias)
    x = (torch.randn(4, 3, 10) * 5 + 2).requires_grad_()
    y1, y2 = ours(x), theirs(x)
    torch.testing.assert_close(y1, y2)
    g1 = torch.autograd.grad((y1 * torch.arange(10.0)).sum(), (x, ours.weight, ours.bias))
    g2 = torch.autograd.grad((y2 * torch.arange(10.0)).sum(), (x, theirs.weight, theirs.bias))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [True, False])
def test_explicit_layer_norm_equals_the_fused_one_values_and_gradients(bias):
    """layer_norm from scratch (explicit=True) against F.layer_norm (the default path)."""
    torch.manual_seed(0)
    fused, explicit = LayerNorm(10, bias=bias), LayerNorm(10, bias=bias, explicit=True)
    with torch.no_grad():
        for p in fused.parameters():
            p.normal_()
    explicit.load_state_dict(fused.state_dict())
    assert (fused.bias is None) == (not bias)
    x = (torch.randn(4, 3, 10) * 5 + 2).requires_grad_()
    y1, y2 = fused(x), explicit(x)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(y2, layer_norm(x, explicit.weight, explicit.bias))
    g1 = torch.autograd.grad((y1 * torch.arange(10.0)).sum(), (x, *fused.parameters()))
    g2 = torch.autograd.grad((y2 * torch.arange(10.0)).sum(), (x, *explicit.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_fused_layer_norm_is_bit_for_bit_torch_layer_norm():
    """What lets stage 14's GPT use this LayerNorm and stay identical to nn.LayerNorm."""
    torch.manual_seed(0)
    ours, theirs = LayerNorm(32, bias=False), nn.LayerNorm(32, bias=False)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(5, 7, 32, dtype=torch.float32)
    ours, theirs = ours.float(), theirs.float()
    assert torch.equal(ours(x), theirs(x))
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_layer_norm_output_has_zero_mean_unit_variance():
    y = LayerNorm(64, explicit=True)(torch.randn(8, 64) * 3 + 7)
    torch.testing.assert_close(y.mean(-1), torch.zeros(8), atol=1e-6, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)


def test_sinusoidal_positions_equal_the_closed_form():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    for p in (0, 1, 7, 49):
        for i in range(8):
            angle = p / 10_000 ** (2 * i / 16)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_sinusoidal_dot_product_depends_only_on_the_offset():
    # sin a sin b + cos a cos b = cos(a - b): PE[p] . PE[p + k] is the same for every p.
    pe = sinusoidal_positions(100, 32).double()
    for k in (1, 5, 20):
        dots = (pe[:-k] * pe[k:]).sum(-1)
        torch.testing.assert_close(dots, dots[0].expand_as(dots), atol=1e-4, rtol=0)


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_block_equals_torch_pre_norm_encoder_layer(attention):
    torch.manual_seed(0)
    for causal in (False, True):
        cfg = TransformerConfig(vocab_size=5, block_size=8, n_head=2, n_embd=8, causal=causal,
                                attention=attention)
        ours = block_for(cfg)
        theirs = nn.TransformerEncoderLayer(8, 2, dim_feedforward=32, dropout=0.0,
                                            activation="gelu", batch_first=True,
                                            norm_first=True)
        with torch.no_grad():
            for p in ours.parameters():
                p.normal_(std=0.3)
            pairs = [(theirs.self_attn.in_proj_weight, ours.attn.c_attn.weight),
                     (theirs.self_attn.in_proj_bias, ours.attn.c_attn.bias),
                     (theirs.self_attn.out_proj.weight, ours.attn.c_proj.weight),
                     (theirs.self_attn.out_proj.bias, ours.attn.c_proj.bias),
                     (theirs.linear1.weight, ours.mlp.c_fc.weight),
                     (theirs.linear1.bias, ours.mlp.c_fc.bias),
                     (theirs.linear2.weight, ours.mlp.c_proj.weight),
                     (theirs.linear2.bias, ours.mlp.c_proj.bias),
                     (theirs.norm1.weight, ours.ln_1.weight), (theirs.norm1.bias, ours.ln_1.bias),
                     (theirs.norm2.weight, ours.ln_2.weight), (theirs.norm2.bias, ours.ln_2.bias)]
            for dst, src in pairs:
                dst.copy_(src)
        theirs.eval()  # the fused fast path must not differ from the maths
        x = torch.randn(2, 6, 8)
        mask = nn.Transformer.generate_square_subsequent_mask(6) if causal else None
        expected = theirs(x, src_mask=mask, is_causal=causal)
        torch.testing.assert_close(ours(x)[0], expected)


def _tiny(causal=True, positions="learned", **kw):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=11, block_size=10, n_layer=2, n_head=2, n_embd=16,
                            causal=causal, positions=positions, **kw)
    return TinyTransformer(cfg).eval()


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_causal_model_never_looks_ahead(positions):
    model = _tiny(positions=positions)
    idx = torch.randint(0, 11, (2, 8))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11  # change the future after position 4
    (a, _), (b, _) = model(idx), model(changed)
    assert a.shape == (2, 8, 11)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_encoder_sees_both_ways_but_not_padding():
    model = _tiny(causal=False)
    idx = torch.randint(0, 11, (2, 6))
    keep = padding_mask(torch.tensor([6, 4]), 6)
    changed = idx.clone()
    changed[1, 4:] = (changed[1, 4:] + 3) % 11  # only sequence 1's padding differs
    a, b = model(idx, padding_mask=keep)[0], model(changed, padding_mask=keep)[0]
    torch.testing.assert_close(a[1, :4], b[1, :4])
    torch.testing.assert_close(a[0], b[0])
    changed[0, 5] = (changed[0, 5] + 1) % 11  # a real last token changes the first output
    assert not torch.allclose(model(changed, padding_mask=keep)[0][0, 0], a[0, 0])


def test_without_positions_attention_is_permutation_equivariant():
    # Attention alone has no idea of order: permuting the tokens permutes the outputs.
    torch.manual_seed(0)
    block = Block(8, 2, causal=False)
    x, perm = torch.randn(1, 6, 8), torch.randperm(6)
    torch.testing.assert_close(block(x[:, perm])[0], block(x)[0][:, perm])


def test_attention_maps_have_one_per_layer_and_sum_to_one():
    model = _tiny()
    idx = torch.randint(0, 11, (3, 7))
    logits, maps = model.run(idx)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 7, 7)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(3, 2, 7))
    torch.testing.assert_close(logits, model(idx)[0])  # the fast forward: the same logits


def test_forward_returns_logits_and_the_loss_that_skips_ignore_index():
    model = _tiny()
    idx, targets = torch.randint(0, 11, (2, 6)), torch.randint(0, 11, (2, 6))
    assert model(idx)[1] is None
    logits, loss = model(idx, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(12, 11), targets.reshape(12)))
    targets[:, :3] = IGNORE_INDEX
    _, partial = model(idx, targets)
    torch.testing.assert_close(partial, F.cross_entropy(logits[:, 3:].reshape(6, 11),
                                                        targets[:, 3:].reshape(6)))
    torch.testing.assert_close(partial, sequence_loss(logits, targets))


def test_greedy_decoding_and_accuracy_restore_the_training_mode():
    model = _tiny(dropout=0.5).train()
    model.generate_greedy(torch.zeros(1, 2, dtype=torch.long), 3)
    digit_model = TinyTransformer(TransformerConfig(vocab_size=VOCAB_SIZE, block_size=8,
                                                    n_layer=1, n_head=2, n_embd=8)).train()
    digit_task_accuracy(digit_model, length=4, n=8)
    assert model.training and digit_model.training
    model.eval()
    model.generate_greedy(torch.zeros(1, 2, dtype=torch.long), 3)
    assert not model.training


def test_sinusoidal_positions_are_not_trained():
    model = _tiny(positions="sinusoidal")
    names = {n for n, _ in model.named_parameters()}
    assert "wpe" not in names
    torch.testing.assert_close(model.wpe, sinusoidal_positions(10, 16))


def test_prompt_and_target_layout():
    src = torch.tensor([[5, 6, 7]])
    tgt = torch.tensor([[7, 6, 5]])
    inputs, targets = prompt_and_target(src, tgt, sep=1)
    assert inputs.tolist() == [[5, 6, 7, 1, 7, 6]]
    assert targets.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 7, 6, 5]]


def test_digit_task_batch_is_sorted_and_deterministic():
    src, inputs, targets = digit_task_batch(4, 6, task="sort", generator=3)
    assert inputs.shape == targets.shape == (4, 12)
    assert torch.all(inputs[:, 6] == SOS)
    torch.testing.assert_close(targets[:, 6:], src.sort(dim=1).values)
    again = digit_task_batch(4, 6, task="sort", generator=3)
    assert all(torch.equal(a, b) for a, b in zip((src, inputs, targets), again, strict=True))


@pytest.mark.parametrize("kwargs,message", [
    ({"n_embd": 10, "n_head": 4}, "not divisible by n_head"),
    ({"n_embd": 0}, "n_embd must be a positive int"),
    ({"positions": "rotary"}, "choose one of"),
    ({"positions": "sinusoidal", "n_embd": 9, "n_head": 3}, "must be even"),
    ({"dropout": 1.0}, "dropout"),
    ({"attention": "flash"}, "attention must be one of"),
])
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerConfig(vocab_size=5, block_size=4, **kwargs)


def test_bad_inputs_are_clear_errors():
    model = _tiny()
    with pytest.raises(ValueError, match="longer than block_size=10"):
        model(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="padding_mask must be a bool"):
        MultiHeadAttention(8, 2)(torch.zeros(1, 3, 8), padding_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="causal"):
        _tiny(causal=False).generate_greedy(torch.zeros(1, 2, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="even d_model"):
        sinusoidal_positions(4, 7)




def test_tiny_transformer_learns_to_reverse_short_strings(one_thread):
    torch.set_default_dtype(torch.float32)  # training speed; the fixture resets it anyway
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=VOCAB_SIZE, block_size=8, n_layer=1, n_head=2,
                            n_embd=32)
    model = TinyTransformer(cfg)
    losses = train_digit_task(model, steps=100, batch_size=64, length=4, task="reverse",
                              lr=1e-2, warmup=10)
    assert sum(losses[-10:]) / 10 < 0.2 * sum(losses[:10]) / 10
    assert digit_task_accuracy(model, length=4, task="reverse", n=200)["token"] > 0.9


# ---- the stage 13 exercise checks: pass on a right answer, name the likely mistake ----

def _torch_mha(x, w_qkv, b_qkv, w_out, b_out, n_head, causal=False):
    """An independent right answer: nn.MultiheadAttention holding the given weights."""
    C = x.shape[-1]
    mha = nn.MultiheadAttention(C, n_head, batch_first=True, dtype=x.dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(w_qkv)
        mha.in_proj_bias.copy_(b_qkv)
        mha.out_proj.weight.copy_(w_out)
        mha.out_proj.bias.copy_(b_out)
        T = x.shape[1]
        blocked = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
        return mha(x, x, x, attn_mask=blocked, need_weights=False)[0]


def test_check_multi_head_attention_passes_torch_and_names_mistakes():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage13 import check_multi_head_attention

    torch.set_default_dtype(torch.float32)  # the check builds float32 cases
    assert check_multi_head_attention(_torch_mha)
    mistakes = {
        "without the causal mask": lambda *a: _torch_mha(*a[:-1], causal=False),
        "one wide head": lambda *a: _torch_mha(*a[:5], 1, a[6]),
    }
    for hint, wrong in mistakes.items():
        with pytest.raises(CheckFailed, match=hint):
            check_multi_head_attention(wrong)


def test_check_sinusoidal_positions_passes_and_names_mistakes():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage13 import check_sinusoidal_positions

    torch.set_default_dtype(torch.float32)

    def blocks(n, d):  # all sines, then all cosines
        pe = sinusoidal_positions(n, d)
        return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)

    assert check_sinusoidal_positions(sinusoidal_positions)
    with pytest.raises(CheckFailed, match="interleave"):
        check_sinusoidal_positions(blocks)


def test_check_layer_norm_passes_torch_and_names_the_unbiased_variance():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage13 import check_layer_norm

    torch.set_default_dtype(torch.float32)

    def torch_ln(x, gamma, beta, eps):
        return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)

    def unbiased(x, gamma, beta, eps):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * gamma + beta

    assert check_layer_norm(torch_ln)
    with pytest.raises(CheckFailed, match="biased variance"):
        check_layer_norm(unbiased)
