"""slm_course.rnn against PyTorch: the cell and the unrolled loop equal ``nn.RNNCell`` and
``nn.RNN`` (outputs and autograd gradients, in float64), with and without ``lengths`` (which
must equal ``nn.RNN`` on a packed sequence); the classifier's packing lets no padding in.
"""

import warnings

import pytest
import torch
import torch.nn as nn
from helpers import rel_err

from slm_course.rnn import (
    PAD,
    UNK,
    NameClassifier,
    ScratchRNN,
    build_char_vocab,
    encode_names,
    name_probabilities,
    predict_language,
    rnn_cell,
    rnn_forward,
)

B, T, I, H = 4, 6, 3, 5
LENGTHS = torch.tensor([6, 2, 4, 1])  # unsorted, with the longest = T


def _torch_rnn(seed=0):
    torch.manual_seed(seed)
    return nn.RNN(I, H, batch_first=True).double()


def _weights(rnn):
    return rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0


def test_rnn_cell_equals_nn_rnncell():
    torch.manual_seed(0)
    cell = nn.RNNCell(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    want = cell(x, h)
    got = rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert rel_err(got, want) < 1e-12
    no_tanh = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    assert rel_err(no_tanh, want) > 1e-2  # the comparison would notice a missing tanh


@pytest.mark.parametrize("with_h0", [False, True])
def test_rnn_forward_equals_nn_rnn_values_and_gradients(with_h0):
    rnn = _torch_rnn()
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=torch.float64) if with_h0 else None
    G = torch.randn(B, T, H, dtype=torch.float64)  # L = sum(outputs * G) + sum(h_T)
    out_ref, h_ref = rnn(x, h0)
    (out_ref * G).sum().add(h_ref.sum()).backward()
    want = [x.grad.clone()] + [p.grad.clone() for p in _weights(rnn)]
    x.grad = None
    for p in rnn.parameters():
        p.grad = None
    out, h = rnn_forward(x, *_weights(rnn), h0=None if h0 is None else h0[0])
    (out * G).sum().add(h.sum()).backward()
    assert rel_err(out, out_ref) < 1e-12 and rel_err(h, h_ref[0]) < 1e-12
    got = [x.grad] + [p.grad for p in _weights(rnn)]
    for name, g, w in zip(["x", "W_ih", "W_hh", "b_ih", "b_hh"], got, want, strict=True):
        assert rel_err(g, w) < 1e-10, name


def test_rnn_forward_with_lengths_equals_nn_rnn_on_a_packed_batch():
    rnn = _torch_rnn(1)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    G = torch.randn(B, T, H, dtype=torch.float64)
    packed = nn.utils.rnn.pack_padded_sequence(x, LENGTHS, batch_first=True,
                                               enforce_sorted=False)
    out_packed, h_ref = rnn(packed)
    out_ref, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=T)
    (out_ref * G).sum().add(h_ref.pow(2).sum()).backward()
    want = [x.grad.clone()] + [p.grad.clone() for p in _weights(rnn)]
    x.grad = None
    for p in rnn.parameters():
        p.grad = None
    out, h = rnn_forward(x, *_weights(rnn), lengths=LENGTHS)
    (out * G).sum().add(h.pow(2).sum()).backward()
    assert rel_err(out, out_ref) < 1e-12 and rel_err(h, h_ref[0]) < 1e-12
    for g, w in zip([x.grad] + [p.grad for p in _weights(rnn)], want, strict=True):
        assert rel_err(g, w) < 1e-10
    assert torch.all(x.grad[1, 2:] == 0)  # padding after a name's end gets no gradient
    unmasked = rnn_forward(x.detach(), *_weights(rnn))[1]
    assert rel_err(unmasked, h_ref[0]) > 1e-2  # without the mask, padding changes h


def test_scratch_rnn_swaps_weights_with_nn_rnn():
    rnn = _torch_rnn(2)
    torch.manual_seed(2)
    scratch = ScratchRNN(I, H).double()
    assert all(torch.equal(a, b) for a, b in zip(scratch.parameters(), rnn.parameters(),
                                                  strict=True))  # the same initialisation
    scratch.load_state_dict(rnn.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    out, h = scratch(x, h0=h0)
    out_ref, h_ref = rnn(x, h0)
    assert h.shape == (1, B, H) and rel_err(out, out_ref) < 1e-12 and rel_err(h, h_ref) < 1e-12


def test_rnn_forward_rejects_bad_input():
    W = _weights(_torch_rnn())
    with pytest.raises(ValueError, match=r"\(B, T, I\)"):
        rnn_forward(torch.randn(T, I, dtype=torch.float64), *W)
    with pytest.raises(ValueError, match="features per step"):
        rnn_forward(torch.randn(B, T, I + 1, dtype=torch.float64), *W)
    with pytest.raises(ValueError, match="lengths"):
        rnn_forward(torch.randn(B, T, I, dtype=torch.float64), *W,
                    lengths=torch.tensor([7, 1, 1, 1]))


# ---------------------------------------------------------------------------------------
# Characters, the classifier, predictions
# ---------------------------------------------------------------------------------------

NAMES = ["Abe", "Li", "Nakamura", "Ó"]
LANGS = ["A", "B", "C"]


def test_char_vocab_and_encoding():
    vocab = build_char_vocab(NAMES)
    assert vocab[PAD] == 0 and vocab[UNK] == 1 and len(vocab) == 2 + len(set("".join(NAMES)))
    ids, lengths = encode_names(["Li", "Abe", "Lx"], vocab)
    assert lengths.tolist() == [2, 3, 2] and ids.shape == (3, 3)
    assert ids[0].tolist() == [vocab["L"], vocab["i"], 0]  # padded with <pad> = 0
    assert ids[2, 1] == vocab[UNK]  # "x" was never seen
    decomposed = "O\u0301"  # O + combining accent: NFC makes it the one character Ó
    assert encode_names([decomposed], vocab)[0].tolist() == [[vocab["Ó"]]]
    with pytest.raises(ValueError, match="non-empty"):
        encode_names(["Li", ""], vocab)


def _classifier(cell, seed=0):
    torch.manual_seed(seed)
    return NameClassifier(build_char_vocab(NAMES), LANGS, cell=cell, embed_dim=4,
                          hidden_size=6).double()


def test_classifier_from_scratch_equals_the_nn_rnn_one():
    scratch, builtin = _classifier("scratch"), _classifier("rnn")
    assert scratch.state_dict().keys() == builtin.state_dict().keys()
    builtin.load_state_dict(scratch.state_dict())
    ids, lengths = encode_names(NAMES, scratch.vocab)
    y = torch.tensor([0, 1, 2, 0])
    (logits_a, loss_a), (logits_b, loss_b) = scratch(ids, lengths, y), builtin(ids, lengths, y)
    loss_a.backward()
    loss_b.backward()
    assert rel_err(logits_a, logits_b) < 1e-12
    for (name, pa), pb in zip(scratch.named_parameters(), builtin.parameters(), strict=True):
        assert rel_err(pa.grad, pb.grad) < 1e-10, name


@pytest.mark.parametrize("cell", ["scratch", "rnn", "gru"])
def test_padding_does_not_change_a_name_s_prediction(cell):
    model = _classifier(cell).eval()
    batch = name_probabilities(model, NAMES)  # padded to "Nakamura"'s 8 characters
    alone = torch.cat([name_probabilities(model, [n]) for n in NAMES])
    assert batch.shape == (4, 3) and rel_err(batch, alone) < 1e-12
    torch.testing.assert_close(batch.sum(1), torch.ones(4, dtype=torch.float64))


def test_class_weights_weigh_the_loss():
    model = _classifier("gru")
    weights = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    weighted = NameClassifier(model.vocab, LANGS, "gru", 4, 6, class_weights=weights).double()
    weighted.load_state_dict(model.state_dict())
    ids, lengths = encode_names(NAMES, model.vocab)
    y = torch.tensor([2, 2, 0, 1])
    logits, _ = model(ids, lengths)
    want = torch.nn.functional.cross_entropy(logits, y, weight=weights)
    assert rel_err(weighted(ids, lengths, y)[1], want) < 1e-12
    assert rel_err(model(ids, lengths, y)[1], want) > 1e-3


def test_predict_language_returns_sorted_top_k_and_warns_on_unknown_characters():
    model = _classifier("gru")
    top = predict_language(model, "Abe", k=3)
    assert [lang for lang, _ in top] != [] and {lang for lang, _ in top} == set(LANGS)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1)
    assert len(predict_language(model, "Li", k=1)) == 1
    with pytest.warns(UserWarning, match=r"never saw the character\(s\) \['x', 'z'\]"):
        predict_language(model, "Lxz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known characters: no warning
        predict_language(model, " Abe ")


def test_predict_language_and_the_classifier_reject_bad_input():
    model = _classifier("gru")
    with pytest.raises(ValueError, match="non-empty name"):
        predict_language(model, "   ")
    with pytest.raises(ValueError, match="k must lie"):
        predict_language(model, "Abe", k=4)
    with pytest.raises(ValueError, match="cell must be one of"):
        NameClassifier(model.vocab, LANGS, cell="lstm")


# ---------------------------------------------------------------------------------------
# The exercise checks pass on the reference and fail on the likely mistakes
# ---------------------------------------------------------------------------------------


def test_rnn_checks_pass_on_the_reference_and_fail_on_mistakes():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage10 import check_rnn_cell, check_rnn_unroll

    assert check_rnn_cell(rnn_cell)
    with pytest.raises(CheckFailed, match="pre-activation"):
        check_rnn_cell(lambda x, h, Wi, Wh, bi, bh: x @ Wi.T + bi + h @ Wh.T + bh)
    with pytest.raises(CheckFailed):
        check_rnn_cell(lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi + bi + h @ Wh + bh))
    assert check_rnn_unroll(lambda x, *w: rnn_forward(x, *w))

    def forgets_h(x, W_ih, W_hh, b_ih, b_hh):  # every step from h = 0
        h0 = torch.zeros(x.shape[0], W_hh.shape[0], dtype=x.dtype)
        hs = [rnn_cell(x[:, t], h0, W_ih, W_hh, b_ih, b_hh) for t in range(x.shape[1])]
        return torch.stack(hs, 1), hs[-1]

    with pytest.raises(CheckFailed, match="starts again from h = 0"):
        check_rnn_unroll(forgets_h)
    with pytest.raises(CheckFailed, match="pair"):
        check_rnn_unroll(lambda x, *w: rnn_forward(x, *w)[0])
