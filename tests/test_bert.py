"""Stage 15: BERT against oracles (binomial proportions, F.cross_entropy, an unpadded run,
a causal block)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.bert import (
    BERT,
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    BertCharTokenizer,
    BertClassifier,
    BertConfig,
    causal_fill_accuracy,
    mask_tokens,
    masked_windows,
    mlm_batches,
    mlm_metrics,
    predict_classes,
    speaker_lines,
    unigram_baseline,
)
from slm_course.seq2seq import IGNORE_INDEX
from slm_course.transformer import Block

V = 30


def small_bert(**kw) -> BERT:
    torch.manual_seed(0)
    return BERT(BertConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16,
                           dropout=0.0, **kw)).eval()


def random_ids(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(len(SPECIAL_TOKENS), V, (B, T), generator=g)


def within_binomial(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """|count - n p| <= z sigma with sigma = sqrt(n p (1 - p)): false alarm < 1e-6."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


def test_tokenizer_specials_first_and_unknown_is_unk():
    tok = BertCharTokenizer("abc")
    assert tok.vocab_size == 5 + 3
    assert SPECIAL_TOKENS[:5] == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    assert tok.encode("cab?") == [7, 5, 6, UNK_ID]
    assert tok.decode([CLS_ID, 5, MASK_ID, SEP_ID]) == "[CLS]a[MASK][SEP]"


def test_encode_batch_pads_and_marks_real_tokens():
    tok = BertCharTokenizer("abc")
    ids, mask = tok.encode_batch(["ab", "c"], max_len=10)
    assert ids.tolist() == [[CLS_ID, 5, 6, SEP_ID], [CLS_ID, 7, SEP_ID, PAD_ID]]
    assert mask.tolist() == [[True] * 4, [True, True, True, False]]
    ids, _ = tok.encode_batch(["abcabc"], max_len=4)  # cut to max_len
    assert ids.tolist() == [[CLS_ID, 5, 6, SEP_ID]]
    with pytest.raises(ValueError, match="max_len"):
        tok.encode_batch(["a"], max_len=2)


# ---------------------------------------------------------------------------------------
# The 80/10/10 rule
# ---------------------------------------------------------------------------------------


def test_masking_proportions_match_the_rule():
    ids = random_ids(200, 100)  # 20,000 ordinary tokens
    inputs, targets = mask_tokens(ids, V, generator=torch.Generator().manual_seed(1))
    selected = targets != IGNORE_INDEX
    n, k = ids.numel(), int(selected.sum())
    assert within_binomial(k, n, 0.15)
    to_mask = int((inputs[selected] == MASK_ID).sum())
    unchanged = int((inputs[selected] == ids[selected]).sum())
    # a random replacement equals the original with probability 1 / 25: part of "unchanged"
    p_same = 0.1 + 0.1 / (V - len(SPECIAL_TOKENS))
    assert within_binomial(to_mask, k, 0.8)
    assert within_binomial(unchanged, k, p_same)
    assert within_binomial(k - to_mask - unchanged, k, 0.1 - 0.1 / (V - len(SPECIAL_TOKENS)))
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected: untouched
    assert torch.equal(targets[selected], ids[selected])  # the target is the original token
    assert (inputs >= len(SPECIAL_TOKENS)).sum() + (inputs == MASK_ID).sum() == n  # no
    # random replacement is a special token


def test_masking_proportions_fail_for_a_wrong_rule():
    """The binomial test has power: 20% instead of 15% is far outside 5 sigma."""
    ids = random_ids(200, 100)
    _, targets = mask_tokens(ids, V, mask_prob=0.2, generator=torch.Generator().manual_seed(1))
    assert not within_binomial(int((targets != IGNORE_INDEX).sum()), ids.numel(), 0.15)


def test_special_tokens_are_never_selected():
    ids = random_ids(50, 40)
    ids[:, 0], ids[:, -1], ids[:, 20:] = CLS_ID, SEP_ID, PAD_ID
    ids[:, 5] = UNK_ID
    inputs, targets = mask_tokens(ids, V, mask_prob=0.9,
                                  generator=torch.Generator().manual_seed(0))
    special = ids < len(SPECIAL_TOKENS)
    assert (targets[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])
    assert (targets[~special] != IGNORE_INDEX).float().mean() > 0.8  # the rest do get chosen


def test_masking_is_reproducible_with_a_seed():
    ids = random_ids(8, 30)
    a = mask_tokens(ids, V, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, V, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("bad", [
    dict(ids=torch.zeros(2, 3)),  # float ids
    dict(ids=torch.zeros(6, dtype=torch.long)),  # not (B, T)
    dict(ids=torch.full((2, 3), V, dtype=torch.long)),  # outside the vocabulary
    dict(mask_prob=0.0), dict(mask_prob=1.5),
    dict(replace_probs=(0.8, 0.3)), dict(replace_probs=(-0.1, 0.1)),
])
def test_masking_rejects_bad_input(bad):
    kw = dict(ids=random_ids(2, 3), vocab_size=V) | bad
    with pytest.raises(ValueError):
        mask_tokens(kw.pop("ids"), kw.pop("vocab_size"), **kw)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def test_mlm_loss_is_cross_entropy_over_masked_positions_only():
    model = small_bert()
    ids = random_ids(4, 16)
    inputs, targets = mask_tokens(ids, V, generator=torch.Generator().manual_seed(0))
    logits, loss = model(inputs, targets)
    scored = targets != IGNORE_INDEX
    oracle = F.cross_entropy(logits[scored], ids[scored])
    assert torch.allclose(loss, oracle, atol=1e-6)
    everywhere = F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1))
    assert not torch.allclose(loss, everywhere, atol=1e-3)  # not the loss over all tokens


def test_mlm_head_is_tied_to_the_token_embeddings():
    model = small_bert()
    hidden = torch.randn(2, 3, 16)
    expected = model.mlm_transform(hidden) @ model.wte.weight.T + model.mlm_bias
    assert torch.allclose(model.mlm_logits(hidden), expected)
    model.wte.weight.data[7] += 1.0  # changing an embedding changes that token's logit
    assert not torch.allclose(model.mlm_logits(hidden)[..., 7], expected[..., 7])
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(p.numel() for p in set(model.parameters()))  # no second (V, C)


def test_padding_does_not_change_the_real_tokens():
    model = small_bert()
    tok = BertCharTokenizer("abcdefghijklmnopqrstuvwxy")
    ids, mask = tok.encode_batch(["abcdefgh", "xyz"], max_len=16)
    padded, _ = model(ids, padding_mask=mask)
    alone, _ = model(ids[1:, :5])  # "xyz" with [CLS], [SEP] and no padding
    assert torch.allclose(padded[1, :5], alone[0], atol=1e-5)
    ignored, _ = model(ids)  # without the mask the padding leaks in
    assert not torch.allclose(ignored[1, :5], alone[0], atol=1e-3)


def test_encoder_is_bidirectional_and_a_causal_block_is_not():
    model = small_bert()
    ids = random_ids(1, 10)
    later = ids.clone()
    later[0, 8] = (later[0, 8] + 1 - 5) % (V - 5) + 5  # another ordinary token at t = 8
    a, _ = model(ids)
    b, _ = model(later)
    assert not torch.allclose(a[0, :8], b[0, :8], atol=1e-4)  # earlier outputs change
    torch.manual_seed(0)
    causal = Block(16, 2, causal=True).eval()
    x = torch.randn(1, 10, 16)
    y = x.clone()
    y[0, 8] = 3 * torch.randn(16)  # (adding a constant would vanish in the LayerNorm)
    assert torch.allclose(causal(x)[0][0, :8], causal(y)[0][0, :8], atol=1e-6)
    encoder = Block(16, 2, causal=False).eval()
    assert not torch.allclose(encoder(x)[0][0, :8], encoder(y)[0][0, :8], atol=1e-4)


def test_attention_maps_are_distributions_with_weight_on_later_tokens():
    model = small_bert()
    _, maps = model.encode(random_ids(2, 12), need_weights=True)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 12, 12)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 12), atol=1e-5)
    assert maps[0].triu(1).sum() > 0  # queries attend to later keys


def test_segment_embeddings():
    model = small_bert(n_segments=2)
    ids = random_ids(1, 6)
    h0, _ = model.encode(ids)
    h1, _ = model.encode(ids, segments=torch.ones_like(ids))
    assert not torch.allclose(h0, h1)
    with pytest.raises(ValueError, match="n_segments"):
        small_bert().encode(ids, segments=torch.ones_like(ids))


def test_classifier_head_shape_loss_and_cls_reading():
    tok = BertCharTokenizer("abcdefghijklmnopqrstuvwxy")
    ids, mask = tok.encode_batch(["abc", "de", "fghij"], max_len=16)
    torch.manual_seed(0)
    clf = BertClassifier(small_bert(), num_classes=4).eval()
    logits, loss = clf(ids, mask, torch.tensor([0, 3, 1]))
    assert logits.shape == (3, 4)
    assert torch.allclose(loss, F.cross_entropy(logits, torch.tensor([0, 3, 1])))
    hidden, _ = clf.bert.encode(ids, mask)
    assert torch.allclose(logits, clf.head(hidden[:, 0]), atol=1e-6)  # reads [CLS]
    assert predict_classes(clf, ids, mask, batch_size=2).tolist() == logits.argmax(-1).tolist()
    with pytest.raises(ValueError, match="CLS"):
        clf(ids[:, 1:], mask[:, 1:])
    with pytest.raises(ValueError, match="num_classes"):
        BertClassifier(small_bert(), num_classes=1)


def test_model_rejects_bad_input():
    model = small_bert()
    with pytest.raises(ValueError, match="block_size"):
        model(random_ids(1, 17))
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="padding_mask"):
        model(random_ids(1, 4), padding_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(vocab_size=V, n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="special"):
        BertConfig(vocab_size=5)
    with pytest.raises(TypeError):
        BERT({"vocab_size": V})


# ---------------------------------------------------------------------------------------
# Data and evaluation
# ---------------------------------------------------------------------------------------


def test_masked_windows_are_deterministic_and_cover_the_split():
    tokens = random_ids(1, 103)[0]
    clean, inputs, targets = masked_windows(tokens, 10, V, seed=5)
    assert clean.shape == (10, 10) and torch.equal(clean.reshape(-1), tokens[:100])
    again = masked_windows(tokens, 10, V, seed=5)
    assert torch.equal(inputs, again[1]) and torch.equal(targets, again[2])
    with pytest.raises(ValueError, match="block_size"):
        masked_windows(tokens[:5], 10, V)


def test_mlm_metrics_match_a_direct_computation():
    model = small_bert()
    tokens = random_ids(1, 160)[0]
    _, inputs, targets = masked_windows(tokens, 16, V, seed=0)
    m = mlm_metrics(model, inputs, targets, batch_size=3)
    with torch.no_grad():
        logits, loss = model(inputs, targets)
    scored = targets != IGNORE_INDEX
    assert m["n_masked"] == int(scored.sum())
    assert m["loss"] == pytest.approx(float(loss), rel=1e-5)
    acc = (logits[scored].argmax(-1) == targets[scored]).float().mean()
    assert m["accuracy"] == pytest.approx(float(acc))


def test_unigram_baseline_closed_form():
    train_tokens = torch.tensor([5, 5, 5, 6])
    targets = torch.tensor([[5, IGNORE_INDEX, 6]])
    out = unigram_baseline(train_tokens, targets, vocab_size=7)
    p5, p6 = 4 / 11, 2 / 11  # add-one over 7 tokens: counts 1,1,1,1,1,4,2
    assert out["loss"] == pytest.approx(-(math.log(p5) + math.log(p6)) / 2)
    assert out["accuracy"] == pytest.approx(0.5)


def test_causal_fill_accuracy_reads_only_the_left_context():
    class Copycat(torch.nn.Module):  # predicts the previous token again
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.one_hot(x, V).float(), None

    clean = torch.tensor([[5, 5, 6, 6]])
    targets = torch.tensor([[5, 5, 6, IGNORE_INDEX]])  # position 0: no left context
    # position 1 (5 after 5): right; position 2 (6 after 5): wrong
    assert causal_fill_accuracy(Copycat(), clean, targets) == pytest.approx(1 / 3)


def test_mlm_batches_shapes_and_targets():
    tokens = random_ids(1, 500)[0]
    x, y = mlm_batches(tokens, 20, 8, V, seed=0)()
    assert x.shape == y.shape == (8, 20)
    scored = y != IGNORE_INDEX
    assert scored.any() and (x[~scored] != MASK_ID).all()  # [MASK] only where chosen


def test_speaker_lines_parses_headers():
    text = "A:\nline one\nline two\n\nB:\nhello\n\nA:\nagain\n\nC:\nx\n"
    lines, labels, speakers = speaker_lines(text, n_speakers=2)
    assert speakers[labels[0]] == "A" and len(speakers) == 2
    assert "again" in lines and "x" not in lines and len(lines) == 4
    with pytest.raises(ValueError, match="speakers"):
        speaker_lines(text, n_speakers=5)
