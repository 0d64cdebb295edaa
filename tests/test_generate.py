"""Sampling: filters equal their definitions, frequencies match, the context is cropped."""

from types import SimpleNamespace

import pytest
import torch

from slm_course.generate import generate, sample_next, top_k_filter, top_p_filter


def _top_p_by_loops(logits, p):
    """The definition, one row at a time: keep tokens in order until their mass reaches p."""
    out = torch.full_like(logits, float("-inf"))
    for r, row in enumerate(logits):
        probs = torch.softmax(row, dim=-1)
        mass = 0.0
        for i in torch.argsort(row, descending=True).tolist():
            out[r, i] = row[i]
            mass += probs[i].item()
            if mass >= p:
                break
    return out


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    kept = torch.isfinite(top_k_filter(logits, 7))
    assert kept.sum(dim=-1).tolist() == [7] * 4
    for row, mask in zip(logits, kept, strict=True):
        assert set(torch.topk(row, 7).indices.tolist()) == set(mask.nonzero().flatten().tolist())


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9, 1.0])
def test_top_p_equals_the_definition(p):
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(torch.isfinite(top_p_filter(logits, p)),
                       torch.isfinite(_top_p_by_loops(logits, p)))


def test_temperature_zero_is_greedy_and_bad_arguments_raise():
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    assert sample_next(logits, temperature=0).item() == 1
    for kwargs in ({"temperature": -1}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError):
            sample_next(logits, **kwargs)


def test_sampling_frequencies_match_the_filtered_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    n = 20_000
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_next(logits.expand(1000, 4), top_k=2, generator=g)
                       for _ in range(n // 1000)]).flatten()
    freq = torch.bincount(draws, minlength=4).double() / n
    expected = torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64)
    sigma = (expected * (1 - expected) / n).sqrt()
    assert torch.all((freq - expected).abs() <= 5 * sigma + 1e-12), freq


class _Recorder(torch.nn.Module):
    """A fake model that prefers token (last + 1) % V and records its input lengths."""

    def __init__(self, vocab=5, block_size=3):
        super().__init__()
        self.config = SimpleNamespace(block_size=block_size)
        self.vocab, self.seen = vocab, []

    def forward(self, idx):
        self.seen.append(idx.shape[1])
        logits = torch.full((*idx.shape, self.vocab), -10.0)
        nxt = (idx + 1) % self.vocab
        logits.scatter_(-1, nxt.unsqueeze(-1), 10.0)
        return logits, None


def test_generate_crops_the_context_and_restores_mode():
    model = _Recorder().train()
    out = generate(model, torch.tensor([[0]]), 6, temperature=0)
    assert out.tolist() == [[0, 1, 2, 3, 4, 0, 1]]
    assert max(model.seen) == 3 and model.training
    with pytest.raises(ValueError, match="empty"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 1)


def test_generate_is_reproducible_with_a_seeded_generator():
    model = _Recorder()
    a = generate(model, torch.tensor([[0]]), 5, generator=torch.Generator().manual_seed(3))
    b = generate(model, torch.tensor([[0]]), 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
