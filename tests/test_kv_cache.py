"""The KV cache (stage 17) against the uncached model: the same logits, the same tokens
(greedy and sampled from the same generator), past the block_size window too; plus the
cache's memory in closed form, its errors, and GPT-2's tanh GELU against its formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.generate import generate, generate_stream, supports_cache
from slm_course.gpt import GPT, GPTConfig
from slm_course.transformer import MLP, KVCache, MultiHeadAttention


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=True)
    return GPTConfig(**{**base, **kw})


def trained_ish(seed: int = 0, **kw) -> GPT:
    """A random GPT whose greedy tokens vary: larger weights than the init, larger position
    embeddings, and an untied output layer (tied, a random model mostly repeats a token)."""
    torch.manual_seed(seed)
    model = GPT(tiny(**kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        model.transformer.wpe.weight.mul_(3)
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))
    return model


@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_cached_logits_equal_the_full_forward(attention):
    model = trained_ish(attention=attention)
    idx = torch.randint(13, (3, 12))
    full, _ = model(idx)  # (3, 12, V)
    cache = KVCache(16)
    pieces = [model(idx[:, :5], cache=cache)[0]]  # a prompt of 5, then 1, then 2, then 4
    for a, b in [(5, 6), (6, 8), (8, 12)]:
        pieces.append(model(idx[:, a:b], cache=cache)[0])
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_attention_with_a_cache_matches_attention_over_the_whole_sequence():
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 7, 16)
    full, _ = mha(x, causal=True)
    cache = KVCache(10)
    a, _ = mha(x[:, :4], causal=True, cache=cache)
    cache.advance(4)
    b, _ = mha(x[:, 4:], causal=True, cache=cache)
    torch.testing.assert_close(torch.cat([a, b], dim=1), full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("prompt_len, new", [(3, 10), (1, 40), (16, 5)])
def test_greedy_tokens_are_identical_with_and_without_the_cache(prompt_len, new):
    model = trained_ish(1)
    prompt = torch.randint(13, (2, prompt_len))
    plain = generate(model, prompt, new, temperature=0, use_cache=False)
    cached = generate(model, prompt, new, temperature=0, use_cache=True)
    assert torch.equal(plain, cached)
    new_tokens = set(plain[:, prompt_len:].flatten().tolist())
    assert len(new_tokens) >= 3, f"a model that repeats a token proves little: {new_tokens}"


def test_sampled_tokens_are_identical_with_the_same_generator():
    model = trained_ish(2)
    prompt = torch.randint(13, (3, 4))
    runs = [generate(model, prompt, 30, temperature=1.0, top_k=8,
                     generator=torch.Generator().manual_seed(7), use_cache=c)
            for c in (False, True)]
    assert torch.equal(*runs)


def test_the_cache_is_on_by_default_for_the_gpt_and_calls_are_fewer_tokens():
    model = trained_ish(3)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    list(generate_stream(model, torch.zeros(1, 4, dtype=torch.long), 5, temperature=0))
    assert supports_cache(model)
    assert seen == [4, 1, 1, 1, 1], "cached: the prompt once, then one token per step"
    seen.clear()
    list(generate_stream(model, torch.zeros(1, 15, dtype=torch.long), 3, temperature=0))
    assert seen == [15, 1, 16], "the window is full at 16 (block_size): recompute it"


def test_use_cache_on_a_model_without_cache_support_is_a_clear_error():
    class NoCache(torch.nn.Module):
        config = tiny()

        def forward(self, idx):
            return torch.zeros(idx.shape[0], idx.shape[1], 13), None

    assert not supports_cache(NoCache())
    with pytest.raises(ValueError, match="takes no `cache`"):
        generate(NoCache(), torch.zeros(1, 1, dtype=torch.long), 2, use_cache=True)
    assert generate(NoCache(), torch.zeros(1, 1, dtype=torch.long), 2).shape == (1, 3)


def test_cache_memory_is_two_n_layer_b_t_c_bytes():
    model = trained_ish(4, n_layer=3, n_embd=24, n_head=3)
    cache = KVCache(16)
    model(torch.zeros(5, 2, dtype=torch.long), cache=cache)
    assert len(cache.keys) == 3 and cache.keys[0].shape == (5, 3, 16, 8)
    assert cache.nbytes() == 2 * 3 * 5 * 16 * 24 * 4


def test_cache_errors_are_clear():
    model = trained_ish(5)
    cache = KVCache(16)
    model(torch.zeros(1, 10, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="block_size 16"):
        model(torch.zeros(1, 7, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="new KVCache for a new batch"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="positive int"):
        KVCache(0)
    with pytest.raises(ValueError, match="pass its max_len"):
        KVCache(2).update(0, torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="must update the cache in order"):
        KVCache(4).update(1, torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))
    mha = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match="padding_mask is not supported"):
        mha(torch.zeros(1, 2, 16), torch.ones(1, 2, dtype=torch.bool), causal=True,
            cache=KVCache(4))
    cache.reset()
    assert cache.length == 0


def test_gelu_tanh_is_gpt2s_formula_and_differs_from_exact_gelu():
    x = torch.linspace(-6, 6, 1001)
    new = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))
    mlp = MLP(4, activation="gelu_tanh")
    torch.testing.assert_close(mlp.gelu(x), new, atol=1e-6, rtol=1e-6)
    assert (MLP(4).gelu(x) - F.gelu(x)).abs().max() == 0
    assert (mlp.gelu(x) - F.gelu(x)).abs().max() > 1e-4, "the two GELUs are not the same"
    model = GPT(tiny(activation="gelu_tanh"))
    assert model.transformer.h[0].mlp.gelu.approximate == "tanh"
    assert GPTConfig.from_dict(tiny(activation="gelu_tanh").to_dict()).activation == "gelu_tanh"
    with pytest.raises(ValueError, match="activation must be one of"):
        tiny(activation="relu")
