"""The ablation ladder: each rung is a causal language model with the parts it claims."""

import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.gpt_ladder import LADDER, LadderConfig, LadderLM
from slm_course.transformer import MLP, LayerNorm


def make(rung, **kw):
    torch.manual_seed(0)
    return LadderLM(LadderConfig(vocab_size=11, block_size=8, rung=rung, n_layer=2, n_head=2,
                                 n_embd=16, **kw))


@pytest.mark.parametrize("rung", range(len(LADDER)))
def test_every_rung_is_causal_and_its_loss_is_the_cross_entropy(rung):
    model = make(rung).eval()
    x = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(2))
    logits, loss = model(x, y)
    assert logits.shape == (3, 8, 11)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1)))
    changed = x.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11      # the future changes ...
    assert torch.allclose(model(changed)[0][:, :5], logits[:, :5], atol=1e-6)  # ... the past not


def test_the_bigram_rung_sees_only_the_current_token():
    model = make(0)
    assert torch.all(model.table.weight == 0)       # starts uniform: loss ln V
    torch.nn.init.normal_(model.table.weight)
    a = model(torch.tensor([[1, 2, 3]]))[0]
    b = model(torch.tensor([[7, 9, 3]]))[0]
    assert torch.equal(a[0, 2], b[0, 2]) and not torch.equal(a[0, 0], b[0, 0])


def test_each_rung_adds_its_part():
    parts = [make(r) for r in range(len(LADDER))]
    heads = [m.attn[0].n_head if r else None for r, m in enumerate(parts)]
    assert heads[1:] == [1, 2, 2, 2, 2]
    has = [{type(x) for x in m.modules()} for m in parts]
    assert [MLP in kinds for kinds in has] == [False] * 3 + [True] * 3
    assert [LayerNorm in kinds for kinds in has] == [False] * 4 + [True] * 2
    drop = parts[5].train()
    x = torch.randint(0, 11, (2, 8))
    assert not torch.equal(drop(x)[0], drop(x)[0])            # dropout only on the last rung
    assert torch.equal(parts[4].train()(x)[0], parts[4](x)[0])


def test_untrained_rungs_start_near_uniform_and_bad_settings_are_refused():
    x = torch.randint(0, 11, (4, 8))
    for rung in range(1, len(LADDER)):
        loss = make(rung).eval()(x, x)[1].item()
        assert abs(loss - math.log(11)) < 0.5
    with pytest.raises(ValueError, match="rung must be"):
        LadderConfig(vocab_size=5, block_size=4, rung=6)
    with pytest.raises(ValueError, match="multiple of n_head"):
        LadderConfig(vocab_size=5, block_size=4, rung=2, n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="longer than block_size"):
        make(3)(torch.zeros(1, 9, dtype=torch.long))
