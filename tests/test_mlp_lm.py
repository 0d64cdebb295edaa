"""The neural language models of names against oracles: a manual embedding lookup and
matmuls with F.cross_entropy, the counting bigram (the same loss at W = log P), makemore's
split sizes, and training that learns through the shared loop."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slm_course.mlp_lm import (
    MLPLanguageModel,
    NeuralBigram,
    context_windows,
    makemore_split,
    sample_name,
)
from slm_course.ngram import bigram_counts, bigram_pairs, mean_nll, names_tokenizer, smoothed_probs
from slm_course.train import TrainConfig, estimate_loss, train

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn",
         "abigail", "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila"]


def test_mlp_forward_is_embedding_lookup_then_two_matmuls():
    torch.manual_seed(0)
    model = MLPLanguageModel(vocab_size=11, block_size=4, n_embd=3, n_hidden=7)
    x = torch.randint(0, 11, (6, 4))
    y = torch.randint(0, 11, (6,))
    logits, loss = model(x, y)
    C = model.wte.weight
    e = torch.stack([torch.cat([C[i] for i in row]) for row in x])  # (6, 12), by hand
    h = torch.tanh(e @ model.hidden.weight.T + model.hidden.bias)
    want = h @ model.out.weight.T + model.out.bias
    assert logits.shape == (6, 11)
    assert torch.allclose(logits, want, atol=1e-6)
    assert torch.allclose(loss, F.cross_entropy(want, y), atol=1e-6)
    assert model(x)[1] is None


def test_context_windows_of_one_name():
    tok = names_tokenizer(["emma"])  # . a e m
    X, Y = context_windows(["emma"], tok, block_size=3)
    decoded = ["".join(tok.chars[i] for i in row) for row in X.tolist()]
    assert decoded == ["...", "..e", ".em", "emm", "mma"]
    assert "".join(tok.chars[i] for i in Y.tolist()) == "emma."


def test_makemore_split_sizes_and_determinism():
    names = [f"n{i}" for i in range(32_033)]
    train_, dev, test = makemore_split(names)
    assert (len(train_), len(dev), len(test)) == (25_626, 3_203, 3_204)
    assert sorted(train_ + dev + test) == sorted(names)
    assert makemore_split(names)[1] == dev and makemore_split(names, seed=1)[1] != dev


def test_neural_bigram_at_log_counts_is_the_counting_model():
    tok = names_tokenizer(NAMES)
    xs, ys = bigram_pairs(NAMES, tok)
    probs = smoothed_probs(bigram_counts(NAMES, tok), k=1.0)
    model = NeuralBigram(tok.vocab_size)
    with torch.no_grad():
        model.W.copy_(torch.tensor(np.log(probs) + 3.0))  # a constant per row changes nothing
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    logits, loss = model(x, y)
    assert torch.allclose(logits, model.W[x])  # one-hot times W picks a row
    assert loss.item() == pytest.approx(mean_nll(probs, xs, ys), rel=1e-6)
    reg = NeuralBigram(tok.vocab_size, reg=0.1)
    with torch.no_grad():
        reg.W.copy_(model.W)
    assert reg(x, y)[1].item() == pytest.approx(loss.item() + 0.1 * (model.W ** 2).mean().item())


def test_gradient_descent_reaches_the_counting_loss(one_thread):
    tok = names_tokenizer(NAMES)
    xs, ys = bigram_pairs(NAMES, tok)
    mle = mean_nll(smoothed_probs(bigram_counts(NAMES, tok), k=0.0), xs, ys)
    model = NeuralBigram(tok.vocab_size)
    batch = (torch.from_numpy(xs), torch.from_numpy(ys))
    cfg = TrainConfig(batch_size=len(xs), max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=0,
                      weight_decay=0.0, grad_clip=0.0, eval_interval=100, progress=False)
    train(model, lambda: batch, cfg)
    assert estimate_loss(model, [batch]) == pytest.approx(mle, abs=1e-3)


def test_the_mlp_learns_through_the_shared_loop(one_thread):
    tok = names_tokenizer(NAMES)
    X, Y = context_windows(NAMES, tok, block_size=3)
    torch.manual_seed(0)
    model = MLPLanguageModel(tok.vocab_size, 3, n_embd=4, n_hidden=32)
    first = estimate_loss(model, [(X, Y)])
    assert first == pytest.approx(np.log(tok.vocab_size), abs=0.15)  # small output weights
    cfg = TrainConfig(batch_size=len(X), max_steps=300, lr=1e-2, min_lr=1e-3, warmup_steps=0,
                      weight_decay=0.0, eval_interval=300, progress=False)
    train(model, lambda: (X, Y), cfg)
    assert estimate_loss(model, [(X, Y)]) < 0.6 * first
    name = sample_name(model, tok, torch.Generator().manual_seed(0))
    assert set(name) <= set(tok.chars[1:]) and model.training


def test_bad_input_is_a_clear_error():
    model = MLPLanguageModel(5, block_size=3)
    with pytest.raises(ValueError, match="block_size=3"):
        model(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_embd must be a positive int"):
        MLPLanguageModel(5, n_embd=0)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        NeuralBigram(5, reg=-1.0)
    with pytest.raises(ValueError, match="unknown character"):
        context_windows(["zed"], names_tokenizer(["ab"]), 3)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        context_windows(["ab"], names_tokenizer(["ab"]), 0)
