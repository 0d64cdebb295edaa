"""slm_course.probability against PyTorch built-ins, closed forms and statistical bounds.

The last section proves that the stage 03 exercise checks pass the reference and name the
usual mistakes in their hints.
"""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.stage03 import (
    check_cross_entropy,
    check_gaussian_mle,
    check_log_softmax,
)
from slm_course.probability import (
    apply_temperature,
    categorical_mle,
    cross_entropy,
    entropy,
    gaussian_log_likelihood,
    gaussian_mle,
    kl_divergence,
    log_softmax,
    logsumexp,
    perplexity,
    sample_categorical,
    softmax,
)

RNG = np.random.default_rng(1234)
LOGITS = RNG.normal(scale=3.0, size=(7, 11))  # (N, C)
TARGETS = RNG.integers(0, 11, size=7)  # (N,)
HUGE = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1000.0, -1001.0]])  # exp overflows


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _random_distribution(shape, rng, zeros=0):
    p = rng.random(shape)
    if zeros:
        p[..., :zeros] = 0.0
    return p / p.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- softmax family


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_torch(axis, keepdims):
    ours = logsumexp(LOGITS, axis=axis, keepdims=keepdims)
    theirs = torch.logsumexp(_t(LOGITS), dim=axis, keepdim=keepdims).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_logsumexp_is_stable_at_plus_minus_1000():
    ours = logsumexp(HUGE, axis=-1)
    assert np.all(np.isfinite(ours))
    # closed form: 1000 + log(1 + e^-1 + e^-2000) and -1000 + log(2 + e^-1)
    expected = [1000.0 + math.log1p(math.exp(-1.0)), -1000.0 + math.log(2.0 + math.exp(-1.0))]
    np.testing.assert_allclose(ours, expected, rtol=1e-14)
    np.testing.assert_allclose(ours, torch.logsumexp(_t(HUGE), dim=-1).numpy(), rtol=1e-14)


def test_logsumexp_of_all_minus_inf_is_minus_inf_without_warnings():
    with np.errstate(all="raise"):  # any overflow / invalid / divide warning becomes an error
        out = logsumexp(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))
    assert out[0] == -np.inf
    assert out[1] == 0.0


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_and_log_softmax_match_torch(axis):
    np.testing.assert_allclose(softmax(LOGITS, axis=axis),
                               F.softmax(_t(LOGITS), dim=axis).numpy(), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(LOGITS, axis=axis),
                               F.log_softmax(_t(LOGITS), dim=axis).numpy(), rtol=1e-12)


def test_softmax_family_is_stable_and_exact_at_plus_minus_1000():
    with np.errstate(over="raise", invalid="raise"):
        p = softmax(HUGE)
        logp = log_softmax(HUGE)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(logp))
    np.testing.assert_allclose(p, F.softmax(_t(HUGE), dim=-1).numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(logp, F.log_softmax(_t(HUGE), dim=-1).numpy(), rtol=1e-12)
    # where softmax underflows to 0, log_softmax still gives the exact finite log-probability
    assert p[0, 2] == 0.0 and logp[0, 2] == pytest.approx(-2000.0 - math.log1p(math.exp(-1)))


def test_softmax_is_shift_invariant_and_sums_to_one():
    shifted = softmax(LOGITS + 123.0)
    np.testing.assert_allclose(shifted, softmax(LOGITS), rtol=1e-12)
    np.testing.assert_allclose(shifted.sum(axis=-1), 1.0, rtol=1e-12)


def test_torch_tensors_come_back_as_tensors_of_the_same_dtype():
    x = torch.tensor(HUGE, dtype=torch.float32)
    for fn, oracle in [(softmax, F.softmax), (log_softmax, F.log_softmax)]:
        out = fn(x)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        torch.testing.assert_close(out, oracle(x, dim=-1))
    out = logsumexp(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.logsumexp(x, dim=-1))
    x16 = x.to(torch.bfloat16)  # NumPy has no bfloat16: computed in float32, returned in bf16
    half = softmax(x16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half, F.softmax(x16.float(), dim=-1).to(torch.bfloat16))


# --------------------------------------------------------------------------- temperature


def test_temperature_divides_logits_and_reshapes_the_distribution():
    z = np.array([2.0, 1.0, 0.0, -1.0])
    np.testing.assert_allclose(apply_temperature(z, 0.5), z / 0.5)
    np.testing.assert_allclose(apply_temperature(z, 1.0), z)
    temps = [0.05, 0.5, 1.0, 2.0, 50.0]
    entropies = [entropy(softmax(apply_temperature(z, t))) for t in temps]
    assert np.all(np.diff(entropies) > 0), "a higher temperature must give a flatter distribution"
    np.testing.assert_allclose(softmax(apply_temperature(z, 0.01)), [1, 0, 0, 0], atol=1e-30)
    np.testing.assert_allclose(softmax(apply_temperature(z, 1e6)), 0.25, rtol=1e-5)
    torch.testing.assert_close(apply_temperature(_t(z), 2.0), _t(z) / 2.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        apply_temperature(np.zeros(3), bad)


# --------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    ours = cross_entropy(LOGITS, TARGETS, reduction=reduction)
    theirs = F.cross_entropy(_t(LOGITS), torch.tensor(TARGETS), reduction=reduction).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_cross_entropy_on_sequences_matches_flattened_torch():
    logits = RNG.normal(size=(2, 5, 4))  # (B, T, C)
    targets = RNG.integers(0, 4, size=(2, 5))  # (B, T)
    expected = F.cross_entropy(_t(logits).view(-1, 4), torch.tensor(targets).view(-1))
    assert cross_entropy(logits, targets) == pytest.approx(expected.item(), rel=1e-12)


def test_cross_entropy_is_finite_and_exact_at_plus_minus_1000():
    targets = np.array([2, 0])  # the -1000 logit in row 0: p underflows to 0
    ours = cross_entropy(HUGE, targets, reduction="none")
    assert np.all(np.isfinite(ours))
    theirs = F.cross_entropy(_t(HUGE), torch.tensor(targets), reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[0] == pytest.approx(2000.0 + math.log1p(math.exp(-1.0)), rel=1e-14)


def test_cross_entropy_accepts_torch_and_returns_a_tensor():
    logits = torch.tensor(LOGITS, dtype=torch.float32)
    ours = cross_entropy(logits, torch.tensor(TARGETS))
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, F.cross_entropy(logits, torch.tensor(TARGETS)))


@pytest.mark.parametrize("targets, message", [
    (np.array([0, 1, 2]), "targets have shape"),
    (np.array([0, 1, 2, 3, 4, 5, 11]), r"targets must lie in \[0, 11\)"),
    (np.array([0, 1, 2, 3, 4, 5, -1]), r"targets must lie in \[0, 11\)"),
    (np.zeros(7), "integer class ids"),
])
def test_cross_entropy_bad_targets_are_clear_errors(targets, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy(LOGITS, targets)


def test_cross_entropy_bad_reduction_is_an_error():
    with pytest.raises(ValueError, match="reduction must be"):
        cross_entropy(LOGITS, TARGETS, reduction="avg")


def test_perplexity_closed_forms():
    n_classes = 11
    uniform = np.zeros((5, n_classes))  # every class equally likely
    assert perplexity(uniform, np.arange(5)) == pytest.approx(n_classes, rel=1e-12)
    confident = np.full((3, 4), -1000.0)
    confident[np.arange(3), [1, 2, 3]] = 1000.0  # certain and right
    assert perplexity(confident, np.array([1, 2, 3])) == pytest.approx(1.0, rel=1e-12)
    torch_ppl = torch.exp(F.cross_entropy(_t(LOGITS), torch.tensor(TARGETS))).item()
    assert perplexity(LOGITS, TARGETS) == pytest.approx(torch_ppl, rel=1e-12)


# --------------------------------------------------------------------------- entropy and KL


def test_entropy_closed_forms():
    assert entropy([0.5, 0.5]) == pytest.approx(math.log(2))  # a fair coin: 1 bit
    assert entropy(np.full(26, 1 / 26)) == pytest.approx(math.log(26))  # uniform: log K
    assert entropy([1.0, 0.0, 0.0]) == 0.0  # certainty; 0 log 0 = 0, not nan
    q = 0.3
    assert entropy([q, 1 - q]) == pytest.approx(-q * math.log(q) - (1 - q) * math.log(1 - q))


def test_entropy_matches_torch_on_batches():
    p = _random_distribution((6, 9), RNG, zeros=2)
    expected = torch.distributions.Categorical(probs=_t(p)).entropy().numpy()
    np.testing.assert_allclose(entropy(p), expected, rtol=1e-12)
    np.testing.assert_allclose(entropy(p.T, axis=0), expected, rtol=1e-12)


def test_kl_matches_torch_and_is_non_negative():
    rng = np.random.default_rng(5)
    p = _random_distribution((200, 6), rng, zeros=1)
    q = _random_distribution((200, 6), rng)
    ours = kl_divergence(p, q)
    theirs = torch.distributions.kl_divergence(torch.distributions.Categorical(probs=_t(p)),
                                               torch.distributions.Categorical(probs=_t(q)))
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-14)
    # F.kl_div(log q, p) is the same sum written the other way round
    np.testing.assert_allclose(ours, F.kl_div(_t(np.log(q)), _t(p), reduction="none")
                               .sum(-1).numpy(), rtol=1e-10, atol=1e-14)
    assert np.all(ours >= 0)


def test_kl_is_zero_iff_equal_asymmetric_and_cross_entropy_minus_entropy():
    p = np.array([0.7, 0.2, 0.1])
    q = np.array([0.1, 0.3, 0.6])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert kl_divergence(p, q) > 0 and kl_divergence(q, p) > 0
    assert kl_divergence(p, q) != pytest.approx(kl_divergence(q, p), rel=1e-3)
    cross = -np.sum(p * np.log(q))  # H(p, q)
    assert kl_divergence(p, q) == pytest.approx(cross - entropy(p), rel=1e-12)


def test_kl_is_infinite_where_q_misses_the_support_of_p():
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))


@pytest.mark.parametrize("p, message", [
    ([0.5, 0.4], "must sum to 1"),
    ([[0.5, 0.5], [0.9, 0.3]], "must sum to 1"),
    ([1.5, -0.5], "negative entries"),
    ([0.5, np.nan], "NaN or inf"),
    ([], "at least one category"),
])
def test_not_a_distribution_is_a_clear_error(p, message):
    with pytest.raises(ValueError, match=message):
        entropy(np.array(p))
    with pytest.raises(ValueError, match=message):
        kl_divergence(np.array(p), np.array(p))


def test_kl_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same categories"):
        kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])


# --------------------------------------------------------------------------- maximum likelihood


def test_gaussian_mle_matches_closed_form_and_torch():
    x = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=500)
    mean, var = gaussian_mle(x)
    assert mean == pytest.approx(x.sum() / x.size, rel=1e-12)
    assert var == pytest.approx(torch.var(_t(x), unbiased=False).item(), rel=1e-12)
    assert var == pytest.approx(np.var(x, ddof=1) * (x.size - 1) / x.size, rel=1e-12)  # not N-1


def test_gaussian_mle_maximizes_the_likelihood():
    x = np.random.default_rng(1).normal(loc=-1.0, scale=0.5, size=200)
    mean, var = gaussian_mle(x)
    best = gaussian_log_likelihood(x, mean, var)
    h = 1e-5  # finite differences: the gradient of the log-likelihood vanishes at the MLE
    d_mean = (gaussian_log_likelihood(x, mean + h, var)
              - gaussian_log_likelihood(x, mean - h, var)) / (2 * h)
    d_var = (gaussian_log_likelihood(x, mean, var + h)
             - gaussian_log_likelihood(x, mean, var - h)) / (2 * h)
    assert abs(d_mean) < 1e-4 and abs(d_var) < 1e-4
    for dm, dv in [(0.05, 0), (-0.05, 0), (0, 0.02), (0, -0.02), (0.03, 0.03)]:
        assert gaussian_log_likelihood(x, mean + dm, var + dv) < best


def test_gaussian_log_likelihood_matches_torch():
    x = RNG.normal(size=50)
    expected = torch.distributions.Normal(_t(0.3), _t(1.7).sqrt()).log_prob(_t(x)).sum().item()
    assert gaussian_log_likelihood(x, 0.3, 1.7) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="variance must be > 0"):
        gaussian_log_likelihood(x, 0.0, 0.0)


def test_gaussian_mle_per_column_and_edge_cases():
    x = RNG.normal(size=(100, 3)) * [1.0, 2.0, 3.0]
    mean, var = gaussian_mle(x)  # one Gaussian per column
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-12)
    assert gaussian_mle(np.array([4.0])) == (4.0, 0.0)  # one sample: zero variance
    with pytest.raises(ValueError, match="at least one sample"):
        gaussian_mle(np.array([]))
    with pytest.raises(ValueError, match="NaN or inf"):
        gaussian_mle(np.array([1.0, np.nan]))


def test_categorical_mle_counts_and_coin():
    samples = np.array([0, 2, 2, 3, 2, 0])
    np.testing.assert_array_equal(categorical_mle(samples, 5), [2 / 6, 0, 3 / 6, 1 / 6, 0])
    flips = np.random.default_rng(2).random(10_000) < 0.3  # a biased coin, as 0/1 ids
    p_heads = categorical_mle(flips.astype(int), 2)[1]
    assert p_heads == flips.mean()
    assert abs(p_heads - 0.3) < 5 * math.sqrt(0.3 * 0.7 / flips.size)  # 5-sigma bound


@pytest.mark.parametrize("samples, k, message", [
    (np.array([0, 1, 5]), 5, r"must lie in \[0, 5\)"),
    (np.array([0, -1]), 5, r"must lie in \[0, 5\)"),
    (np.array([0.0, 1.0]), 5, "integer class ids"),
    (np.array([], dtype=int), 5, "at least one sample"),
])
def test_categorical_mle_bad_input_is_a_clear_error(samples, k, message):
    with pytest.raises(ValueError, match=message):
        categorical_mle(samples, k)


# --------------------------------------------------------------------------- sampling


def test_sample_categorical_is_the_inverse_cdf_of_the_same_uniforms():
    p = np.array([0.1, 0.0, 0.45, 0.25, 0.2])
    ids = sample_categorical(p, 1000, np.random.default_rng(7))
    u = np.random.default_rng(7).random(1000)  # the same uniforms, replayed
    edges = np.cumsum(p)
    expected = [next(k for k in range(len(p)) if ui < edges[k]) for ui in u]
    np.testing.assert_array_equal(ids, expected)


class FixedUniforms(np.random.Generator):
    """A Generator whose ``random`` returns chosen uniforms, to test the edges exactly."""

    def __init__(self, u):
        super().__init__(np.random.PCG64(0))
        self.u = np.asarray(u, dtype=np.float64)

    def random(self, size=None):
        return np.broadcast_to(self.u, size).copy()


def test_sample_categorical_edges_never_pick_a_zero_probability_class():
    largest_below_one = np.nextafter(1.0, 0.0)
    rng = FixedUniforms([0.0, 0.5, largest_below_one])
    # u on an edge belongs to the interval that starts there: [F_{k-1}, F_k)
    ids = sample_categorical(np.array([0.0, 0.5, 0.0, 0.5, 0.0]), 3, rng)
    np.testing.assert_array_equal(ids, [1, 3, 3])
    # 0.1 summed ten times is 0.9999999999999999 < u: still a valid id, the last one
    ids = sample_categorical(np.full(10, 0.1), 3, rng)
    np.testing.assert_array_equal(ids, [0, 4, 9])


def test_sample_categorical_frequencies_within_5_sigma_and_chi_square():
    p = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0])
    n = 200_000
    ids = sample_categorical(p, n, np.random.default_rng(0))
    counts = np.bincount(ids, minlength=p.size)
    assert counts[-1] == 0, "a category with probability 0 must never be drawn"
    sigma = np.sqrt(n * p * (1 - p))  # binomial standard deviation of each count
    assert np.all(np.abs(counts - n * p) <= 5 * sigma + 1e-12)
    # Pearson chi-square goodness of fit over the categories with p > 0 (4 degrees of freedom)
    keep = p > 0
    chi2 = np.sum((counts[keep] - n * p[keep]) ** 2 / (n * p[keep]))
    dof = keep.sum() - 1
    p_value = torch.special.gammaincc(torch.tensor(dof / 2), torch.tensor(chi2 / 2)).item()
    assert p_value > 1e-3, f"chi-square {chi2:.1f} on {dof} dof, p = {p_value:.2g}"


def test_sample_categorical_rows_and_determinism_and_tensors():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    ids = sample_categorical(p, 400, np.random.default_rng(3))
    assert ids.shape == (3, 400)
    assert np.all(ids[0] == 0) and np.all(ids[1] == 2) and set(np.unique(ids[2])) == {0, 1}
    again = sample_categorical(p, 400, np.random.default_rng(3))
    np.testing.assert_array_equal(ids, again)
    out = sample_categorical(torch.tensor(p[2]), 10, np.random.default_rng(0))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.long


def test_sample_categorical_bad_input_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="must sum to 1"):
        sample_categorical(np.array([0.2, 0.2]), 5, rng)
    with pytest.raises(ValueError, match="negative entries"):
        sample_categorical(np.array([1.2, -0.2]), 5, rng)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        sample_categorical(np.array([0.5, 0.5]), 5, 0)
    with pytest.raises(ValueError, match="num_samples"):
        sample_categorical(np.array([0.5, 0.5]), -1, rng)
    with pytest.raises(ValueError, match=r"shape \(K,\) or \(B, K\)"):
        sample_categorical(np.full((2, 2, 2), 0.5), 5, rng)


# --------------------------------------------------------------------------- stage 03 checks


def _stub(*args):
    raise NotImplementedError()


def _naive_log_softmax(x):
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))  # overflows at 1000


def _log_of_softmax(x):
    return np.log(softmax(x))  # softmax is stable, but its 0 at -1000 gives log 0 = -inf


@pytest.mark.parametrize("fn, hint", [
    (_stub, "not implemented yet"),
    (_naive_log_softmax, "overflow"),
    (_log_of_softmax, "log(0)"),
    (lambda x: log_softmax(x, axis=0) if x.ndim > 1 else log_softmax(x), "each ROW"),
    (softmax, "that is softmax itself"),
])
def test_check_log_softmax_names_the_mistake(fn, hint):
    assert check_log_softmax(log_softmax) is True
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        check_log_softmax(fn)


@pytest.mark.parametrize("fn, hint", [
    (_stub, "not implemented yet"),
    (lambda z, y: cross_entropy(z, y, reduction="sum"), "you summed"),
    (lambda z, y: cross_entropy(z, y, reduction="none"), "MEAN over the batch"),
    (lambda z, y: -cross_entropy(z, y), "sign"),
    (lambda z, y: -z[np.arange(len(y)), y].mean(), "apply log_softmax"),
    (lambda z, y: -log_softmax(z)[:, y].mean(), "ONE log-probability per row"),
    (lambda z, y: -np.log(softmax(z)[np.arange(len(y)), y]).mean(), "not finite"),
])
def test_check_cross_entropy_names_the_mistake(fn, hint):
    assert check_cross_entropy(cross_entropy) is True
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        check_cross_entropy(fn)


@pytest.mark.parametrize("fn, hint", [
    (_stub, "not implemented yet"),
    (lambda x: (x.mean(), x.var(ddof=1)), "not N - 1"),
    (lambda x: (x.mean(), x.std()), "not the standard deviation"),
    (lambda x: (x.mean(), np.mean(x**2)), "subtract the mean"),
    (lambda x: (np.median(x), x.var()), "sample average"),
    (lambda x: x.var(), "expected a pair"),
])
def test_check_gaussian_mle_names_the_mistake(fn, hint):
    assert check_gaussian_mle(gaussian_mle) is True
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        check_gaussian_mle(fn)
