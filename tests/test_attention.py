"""Scaled dot-product attention against PyTorch's fused kernel and against the loop version."""

import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.attention import (
    attention_loops,
    attention_weights,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)


def _qkv(*batch, t_q=5, t_k=5, d_k=8, d_v=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, t_q, d_k, generator=g, dtype=torch.float64)
    k = torch.randn(*batch, t_k, d_k, generator=g, dtype=torch.float64)
    v = torch.randn(*batch, t_k, d_v, generator=g, dtype=torch.float64)
    return q, k, v


def test_equals_torch_without_mask():
    q, k, v = _qkv(2, 3)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))


@pytest.mark.parametrize("t_q,t_k", [(5, 5), (3, 7)])
def test_equals_torch_with_causal_mask(t_q, t_k):
    q, k, v = _qkv(2, 3, t_q=t_q, t_k=t_k)
    out, weights = scaled_dot_product_attention(q, k, v, causal=True)
    # PyTorch's is_causal aligns the mask top-left; ours aligns the last query with the last
    # key (the convention a KV cache needs). Give PyTorch our mask explicitly ...
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(t_q, t_k))
    torch.testing.assert_close(out, expected)
    # ... and for square inputs the two conventions agree.
    if t_q == t_k:
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    # query i (absolute position i + t_k - t_q) gives exactly zero weight to later keys
    future = ~causal_mask(t_q, t_k)
    assert future.any()
    assert torch.all(weights[..., future] == 0)


def test_equals_torch_with_padding_mask():
    q, k, v = _qkv(3, t_q=6, t_k=6)
    keep = padding_mask(torch.tensor([6, 4, 1]), 6)  # (B, T) True = real token
    mask = keep[:, None, :]  # (B, 1, T_k): every query may see only the real keys
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(weights[1, :, 4:] == 0) and torch.all(weights[2, :, 1:] == 0)
    torch.testing.assert_close(weights[2, :, 0], torch.ones(6, dtype=torch.float64))


def test_padding_and_causal_masks_combine():
    q, k, v = _qkv(2, t_q=5, t_k=5)
    keep = padding_mask(torch.tensor([5, 3]))[:, None, :]  # (B, 1, T)
    out, weights = scaled_dot_product_attention(q, k, v, mask=keep, causal=True)
    both = keep & causal_mask(5)  # (B, T, T)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=both))
    assert torch.all(weights[~both] == 0)


def test_weights_are_softmax_of_scaled_scores():
    q, k, _ = _qkv(t_q=4, t_k=3)
    scores = q @ k.T / math.sqrt(q.shape[-1])
    torch.testing.assert_close(attention_weights(q, k), torch.softmax(scores, dim=-1))


def test_scaling_by_sqrt_dk_keeps_scores_unit_variance():
    # For q, k with independent unit-variance entries, q . k has variance d_k; dividing by
    # sqrt(d_k) brings it back to 1 whatever the width (the reason for the scale).
    g = torch.Generator().manual_seed(0)
    for d_k in (4, 64, 512):
        q, k = torch.randn(20_000, d_k, generator=g), torch.randn(20_000, d_k, generator=g)
        scaled = (q * k).sum(-1) / math.sqrt(d_k)
        assert abs(scaled.var().item() - 1.0) < 0.05


def test_loop_version_equals_matrix_version():
    q, k, v = _qkv(t_q=4, t_k=6, d_k=3, d_v=2)
    mask = causal_mask(4, 6)
    for m in (None, mask):
        out_loop, w_loop = attention_loops(q, k, v, m)
        out, w = scaled_dot_product_attention(q, k, v, mask=m)
        torch.testing.assert_close(out_loop, out)
        torch.testing.assert_close(w_loop, w)


def test_loop_version_rejects_a_row_with_nothing_to_attend():
    q, k, v = _qkv(t_q=2, t_k=2)
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match="query 1 attend to no key"):
        attention_loops(q, k, v, mask)


def test_causal_mask_shape_and_alignment():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False],
                                       [True, True, True]]
    # two new queries after three cached keys: they sit at positions 3 and 4
    assert causal_mask(2, 5).tolist() == [[True, True, True, True, False],
                                          [True, True, True, True, True]]


def test_padding_mask_values_and_errors():
    assert padding_mask(torch.tensor([2, 0, 3]), 4).tolist() == [
        [True, True, False, False], [False, False, False, False], [True, True, True, False]]
    assert padding_mask(torch.tensor([1, 2])).shape == (2, 2)
    with pytest.raises(ValueError, match="shorter than the longest"):
        padding_mask(torch.tensor([5]), 3)
    with pytest.raises(ValueError, match="1-D"):
        padding_mask(torch.tensor([[1]]))


def test_mismatched_widths_are_a_clear_error():
    with pytest.raises(ValueError, match="query width 4 != key width 5"):
        attention_weights(torch.zeros(2, 4), torch.zeros(3, 5))


def test_gradients_match_torch():
    q, k, v = (t.requires_grad_() for t in _qkv(2, t_q=4, t_k=4))
    out, _ = scaled_dot_product_attention(q, k, v, causal=True)
    ours = torch.autograd.grad(out.square().sum(), (q, k, v))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    theirs = torch.autograd.grad(expected.square().sum(), (q, k, v))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


# ---- the stage 12 exercise check: passes on a right answer, names the likely mistake ----

def test_check_attention_weights_passes_a_right_answer_and_names_mistakes():
    from slm_course.exercises.checking import CheckFailed
    from slm_course.exercises.stage12 import check_attention_weights

    def fused(q, k, mask=None):  # an independent right answer: PyTorch's own kernel
        eye = torch.eye(k.shape[-2], dtype=q.dtype).expand(*k.shape[:-2], -1, -1)
        return F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)

    assert check_attention_weights(fused)

    def unscaled(q, k, mask=None):
        scores = q @ k.transpose(-2, -1)
        return torch.softmax(scores if mask is None else scores.masked_fill(~mask, -math.inf),
                             dim=-1)

    def overflowing(q, k, mask=None):
        e = torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
        e = e if mask is None else e * mask
        return e / e.sum(-1, keepdim=True)

    def stub(q, k, mask=None):
        raise NotImplementedError()

    for wrong, hint in ((unscaled, "divide the scores by sqrt"), (overflowing, "overflows"),
                        (stub, "not implemented")):
        with pytest.raises(CheckFailed, match=hint):
            check_attention_weights(wrong)
