"""Randomized smoothing (Cohen, Rosenfeld and Kolter 2019) against exact answers.

For a linear base sign(w.x + b) the vote probability is exactly Phi(m / (sigma ||w||)), so the smoothed class,
the radius |m| / ||w||, and the law of every count are known; decisions are checked against scipy's binomtest,
bounds against root-finding on the binomial tail, guarantees by simulation with exact binomial tests.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.defenses import (
    RandomizedSmoothing,
    certified_accuracy,
    certified_accuracy_curves,
    exact_linear_radius,
    linear_certified_accuracy,
    train_with_noise,
)
from toyrobust.defenses.smoothing import _lower_bound

W = np.array([1.0, 0.5, -0.25])
UNIT = W / np.linalg.norm(W)
ORTH = np.array([0.5, -1.0, 0.0])  # orthogonal to W: moves a point along the hyperplane


def points_at(distances, dtype=torch.float64) -> torch.Tensor:
    """Points at signed L2 distances t from the hyperplane w.x = 0 (plus an orthogonal offset)."""
    t = np.asarray(distances, dtype=np.float64)[:, None]
    return torch.as_tensor(t * UNIT + 0.7 * ORTH, dtype=dtype)


def linear_module(two_logits: bool = False) -> torch.nn.Module:
    lin = torch.nn.Linear(3, 1, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W)[None])
        lin.bias.zero_()
    if not two_logits:
        return lin

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            m = self.lin(x)
            return torch.cat([torch.zeros_like(m), m], dim=1)  # margin = m - 0, bit for bit

    return Two()


def cp_lower_reference(k: int, n: int, alpha: float) -> float:
    """Solve P[Bin(n, p) >= k] = alpha for p by root finding on scipy's binomial tail."""
    if k == 0:
        return 0.0
    return scipy.optimize.brentq(lambda p: scipy.stats.binom.sf(k - 1, n, p) - alpha, 1e-300, 1.0,
                                 xtol=1e-300, rtol=1e-13)


def predict_threshold_reference(n: int, alpha: float) -> int:
    """Smallest top count k with a significant two-sided test, by scanning every k with binomtest."""
    for k in range((n + 1) // 2, n + 1):
        if scipy.stats.binomtest(k, n, 0.5).pvalue <= alpha:
            return k
    return n + 1


# ------------------------------------------------------------------------------------------- certify
def test_certify_radius_approaches_distance_to_hyperplane():
    sigma, n, alpha = 0.5, 100_000, 0.001
    dist = np.array([-1.2, -0.6, -0.2, 0.1, 0.4, 0.8, 1.2])
    x = points_at(dist)
    s = RandomizedSmoothing(tr.Linear(W), sigma)
    labels, radii = s.certify(x, 100, n, alpha, generator=3)
    exact = exact_linear_radius(tr.Linear(W), x).numpy()
    np.testing.assert_allclose(exact, np.abs(dist), rtol=1e-12)
    assert labels.tolist() == np.sign(dist).astype(int).tolist()
    p = scipy.stats.norm.cdf(np.abs(dist) / sigma)
    # the lower bound sits at most z_{1-alpha} + 4 standard errors below p (a Clopper-Pearson width plus noise)
    p_far = p - (scipy.stats.norm.isf(alpha) + 4.0) * np.sqrt(p * (1 - p) / n) - 5.0 / n
    r_far = sigma * scipy.stats.norm.ppf(p_far)
    radii = radii.numpy()
    assert np.all(radii <= exact)  # each with probability >= 1 - alpha; a fixed seed
    assert np.all(radii >= r_far), (radii, r_far)
    assert np.all(exact - radii < 0.06)


def test_certify_matches_reference_algorithm_on_the_same_draws():
    """Same generator stream: n0 selection draws then n estimation draws, Cohen's rule applied by hand."""
    sigma, n0, n, alpha = 0.8, 30, 400, 0.01
    x = points_at([-0.9, -0.1, 0.0, 0.05, 0.3, 2.5, 6.0])
    s = RandomizedSmoothing(tr.Linear(W), sigma)
    gen = torch.Generator().manual_seed(11)
    plus0 = s.sample_counts(x, n0, generator=gen, batch_size=97).numpy()
    plus = s.sample_counts(x, n, generator=gen, batch_size=97).numpy()
    labels, radii = s.certify(x, n0, n, alpha, generator=11, batch_size=97)
    for i in range(x.shape[0]):
        c_a = 1 if plus0[i] >= n0 - plus0[i] else -1
        n_a = plus[i] if c_a == 1 else n - plus[i]
        low = cp_lower_reference(int(n_a), n, alpha)
        if low < 0.5:
            assert (labels[i].item(), radii[i].item()) == (0, 0.0)
        else:
            assert labels[i].item() == c_a
            assert radii[i].item() == pytest.approx(sigma * scipy.stats.norm.ppf(low), rel=1e-9, abs=1e-12)


def test_certify_guarantee_by_simulation():
    """P[radius > exact radius or wrong label] <= alpha, and equals its exact value, over 3000 repetitions."""
    sigma, n0, n, alpha, reps = 0.5, 50, 500, 0.01, 3000
    t = 0.42  # p = Phi(0.84) ~ 0.80
    x = points_at([t] * reps)
    labels, radii = RandomizedSmoothing(tr.Linear(W), sigma).certify(x, n0, n, alpha, generator=5)
    labels, radii = labels.numpy(), radii.numpy()
    fail = (labels == -1) | ((labels == 1) & (radii > t))
    k = int(fail.sum())
    assert scipy.stats.binomtest(k, reps, alpha, alternative="greater").pvalue > 1e-3
    # exact failure probability: Cohen's bound beta.ppf(alpha, n_A, n - n_A + 1) exceeds p (selection errs ~never)
    p = scipy.stats.norm.cdf(t / sigma)
    ks = np.arange(1, n + 1)
    over = scipy.stats.beta.ppf(alpha, ks, n - ks + 1) > p
    q = float(scipy.stats.binom.pmf(ks[over], n, p).sum())
    assert 0.001 < q <= alpha
    assert scipy.stats.binomtest(k, reps, q).pvalue > 1e-3


def test_selection_and_estimation_draws_are_separate():
    """On the hyperplane (p = 1/2) a certificate is issued w.p. exactly q = P[Bin(n, 1/2) >= k*] <= alpha.

    k* is the smallest count whose lower bound reaches 1/2, i.e. with P[Bin(n, 1/2) >= k] <= alpha. Choosing the
    top class from the estimation draws themselves (PITFALLS 9) would certify either side, w.p. 2q > alpha.
    """
    n0, n, alpha, reps = 10, 100, 0.05, 20_000
    labels, _ = RandomizedSmoothing(tr.Linear(W), 0.5).certify(points_at([0.0] * reps), n0, n, alpha, generator=6)
    issued = int((labels != 0).sum())
    k_star = next(k for k in range(n + 1) if scipy.stats.binom.sf(k - 1, n, 0.5) <= alpha)
    q = scipy.stats.binom.sf(k_star - 1, n, 0.5)
    assert 0.02 < q <= alpha
    assert scipy.stats.binomtest(issued, reps, q).pvalue > 1e-3


def test_lower_bound_at_zero_and_n_with_tiny_alpha():
    for n in (1, 10, 1000, 10**6):
        for alpha in (0.3, 1e-3, 1e-12, 1e-300):
            low, comp = _lower_bound(np.array([0, n]), n, alpha)
            assert low[0] == 0.0 and comp[0] == 1.0
            exact = mpmath.power(mpmath.mpf(alpha), mpmath.mpf(1) / n)  # P[Bin(n, p) >= n] = p^n = alpha
            assert low[1] == pytest.approx(float(exact), rel=1e-12)
            assert comp[1] == pytest.approx(float(1 - exact), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5000), frac=st.floats(0, 1), alpha=st.sampled_from([0.4, 0.05, 1e-3, 1e-9]))
def test_lower_bound_solves_the_binomial_tail(n, frac, alpha):
    k = int(round(frac * n))
    low, comp = _lower_bound(np.array([k]), n, alpha)
    assert low[0] == pytest.approx(cp_lower_reference(k, n, alpha), rel=1e-7, abs=1e-300)
    assert low[0] + comp[0] == pytest.approx(1.0, abs=1e-12)
    assert low[0] <= k / n


def test_certify_far_points_with_tiny_alpha():
    """Every vote for the top class: p_lo = alpha^(1/n) exactly; abstain when that is below 1/2."""
    sigma, alpha = 0.25, 1e-12
    x = points_at([-20.0, 20.0])
    s = RandomizedSmoothing(tr.Linear(W), sigma)
    labels, radii = s.certify(x, 10, 10, alpha, generator=0)  # 1e-12^(1/10) = 0.063 < 1/2
    assert labels.tolist() == [0, 0] and radii.tolist() == [0.0, 0.0]
    labels, radii = s.certify(x, 10, 100, alpha, generator=0)  # 1e-12^(1/100) = 0.759
    assert labels.tolist() == [-1, 1]
    r = sigma * float(mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.power(alpha, mpmath.mpf(1) / 100) - 1))
    np.testing.assert_allclose(radii.numpy(), [r, r], rtol=1e-10)


def test_on_the_hyperplane_certify_abstains_and_abstention_is_a_failure():
    x = points_at([0.0] * 200)
    labels, radii = RandomizedSmoothing(tr.Linear(W), 0.5).certify(x, 100, 2000, 1e-6, generator=1)
    assert labels.dtype == torch.int64 and set(labels.tolist()) == {0}  # P[any certificate] <= 200 * 1e-6
    assert set(radii.tolist()) == {0.0}
    for y in (-1, 1):
        assert certified_accuracy(labels, radii, torch.full((200,), y), 0.0) == 0.0


def test_certified_accuracy_counts_abstentions_as_failures():
    labels = torch.tensor([0, 1, -1, 1, 0, -1])
    radii = torch.tensor([0.0, 0.5, 0.2, 0.3, 0.0, 1.0], dtype=torch.float64)
    y = torch.tensor([1, 1, -1, -1, -1, -1])
    # correct: indices 1 (r .5), 2 (r .2), 5 (r 1.0); index 3 is wrong; 0 and 4 abstain
    got = certified_accuracy(labels, radii, y, [0.0, 0.2, 0.3, 0.5, 0.99, 1.0])
    np.testing.assert_array_equal(got, np.array([3, 2, 2, 1, 1, 0]) / 6)  # strict: radius 0.2 is not > 0.2
    assert certified_accuracy(labels, radii, y, 0.1) == 0.5
    with pytest.raises(ValueError, match="labels"):
        certified_accuracy(torch.tensor([2]), torch.tensor([0.0]), torch.tensor([1]), 0.0)
    with pytest.raises(ValueError, match="y must"):
        certified_accuracy(torch.tensor([0]), torch.tensor([0.0]), torch.tensor([0]), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        certified_accuracy(torch.tensor([0, 1]), torch.tensor([0.0]), torch.tensor([1]), 0.0)
    with pytest.raises(ValueError, match="r must"):
        certified_accuracy(labels, radii, y, -0.1)


# ------------------------------------------------------------------------------------------- predict
def test_predict_with_ten_draws_at_alpha_1e3_always_abstains():
    # Ten draws: the most lopsided vote is 10-0, whose two-sided p-value is 2 * 2^-10 = 2^-9 = 0.00195 > 0.001,
    # so no vote can ever be significant; at alpha = 2^-9 exactly the 10-0 votes are.
    x = points_at(np.linspace(-30, 30, 41))
    s = RandomizedSmoothing(tr.Linear(W), 0.5)
    assert set(s.predict(x, 10, 0.001, generator=0).tolist()) == {0}
    labels = s.predict(x, 10, 2.0**-9, generator=0)
    far = np.abs(np.linspace(-30, 30, 41)) > 5
    assert labels.numpy()[far].tolist() == np.sign(np.linspace(-30, 30, 41))[far].astype(int).tolist()


def test_predict_decisions_match_binomtest_on_the_same_draws():
    sigma, n, alpha = 0.5, 60, 0.05
    x = points_at(np.linspace(-0.4, 0.4, 33))
    s = RandomizedSmoothing(tr.Linear(W), sigma)
    plus = s.sample_counts(x, n, generator=9, batch_size=128).numpy()
    labels = s.predict(x, n, alpha, generator=9, batch_size=128).numpy()
    decided = 0
    for c, label in zip(plus, labels):
        n_a, top = max(c, n - c), (1 if c > n - c else -1)
        want = top if c != n - c and scipy.stats.binomtest(int(n_a), n, 0.5).pvalue <= alpha else 0
        assert label == want
        decided += want != 0
    assert 0 < decided < len(labels)  # both branches exercised


def test_predict_guarantee_by_simulation():
    """P[predict returns the wrong class] <= alpha (Cohen's Proposition 1), and equals its exact value."""
    sigma, n, alpha, reps = 0.5, 100, 0.05, 4000
    p = 0.52  # the smoothed classifier's true class is +1, barely
    t = sigma * scipy.stats.norm.ppf(p)
    labels = RandomizedSmoothing(tr.Linear(W), sigma).predict(points_at([t] * reps), n, alpha, generator=2).numpy()
    wrong, right = int((labels == -1).sum()), int((labels == 1).sum())
    assert scipy.stats.binomtest(wrong, reps, alpha, alternative="greater").pvalue > 1e-3
    k_min = predict_threshold_reference(n, alpha)
    q_wrong = scipy.stats.binom.sf(k_min - 1, n, 1 - p)  # ~0.005; a plain majority vote would err ~30% here
    q_right = scipy.stats.binom.sf(k_min - 1, n, p)
    assert scipy.stats.binomtest(wrong, reps, q_wrong).pvalue > 1e-3
    assert scipy.stats.binomtest(right, reps, q_right).pvalue > 1e-3


@pytest.mark.parametrize("batch_size", [64, 300, 4096])
def test_vote_counts_follow_the_binomial_law_for_every_chunking(batch_size):
    """n = 300 draws in chunks of 64 (with a remainder), one point per chunk, or 13 points per chunk."""
    sigma, n, pts = 0.5, 300, 200
    p = 0.7
    x = points_at([sigma * scipy.stats.norm.ppf(p)] * pts)
    plus = RandomizedSmoothing(tr.Linear(W), sigma).sample_counts(x, n, generator=4, batch_size=batch_size)
    assert plus.dtype == torch.int64 and int(plus.min()) >= 0 and int(plus.max()) <= n
    assert scipy.stats.binomtest(int(plus.sum()), n * pts, p).pvalue > 1e-3
    # the per-point counts are Bin(n, p): their variance as well
    var = float(plus.double().var())
    assert 0.75 * n * p * (1 - p) < var < 1.3 * n * p * (1 - p)


# ------------------------------------------------------------------------------------------- conventions
def test_one_and_two_logit_twins_agree_exactly():
    x = points_at(np.linspace(-0.5, 0.5, 21))
    one = RandomizedSmoothing(linear_module(False), 0.5)
    two = RandomizedSmoothing(linear_module(True), 0.5)
    assert torch.equal(one.predict(x, 200, 0.01, generator=8), two.predict(x, 200, 0.01, generator=8))
    l1, r1 = one.certify(x, 20, 300, 0.01, generator=8)
    l2, r2 = two.certify(x, 20, 300, 0.01, generator=8)
    assert torch.equal(l1, l2) and torch.equal(r1, r2)
    assert set(l1.tolist()) == {-1, 0, 1}


def test_same_seed_reproduces_and_seeds_differ():
    x = points_at(np.linspace(-0.5, 0.5, 11))
    s = RandomizedSmoothing(tr.Linear(W), 0.5)
    a = s.certify(x, 20, 500, 0.01, generator=123)
    b = s.certify(x, 20, 500, 0.01, generator=torch.Generator().manual_seed(123))
    c = s.certify(x, 20, 500, 0.01, generator=124)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_global_rng_untouched_and_module_mode_restored():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = linear_module(False)
            self.drop = torch.nn.Dropout(0.9)  # in train mode it would scramble the votes

        def forward(self, x):
            seen.append(self.training)
            return self.drop(self.lin(x))

    model = Probe().train()
    model.lin.eval()  # mixed modes must come back as they were
    x = points_at(np.linspace(-0.5, 0.5, 9))
    state = torch.random.get_rng_state()
    s = RandomizedSmoothing(model, 0.5)
    got = s.certify(x, 20, 300, 0.01, generator=1)
    s.predict(x, 100, 0.01, generator=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.training and model.drop.training and not model.lin.training
    assert seen and not any(seen)
    want = RandomizedSmoothing(linear_module(False), 0.5).certify(x, 20, 300, 0.01, generator=1)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_float32_module_and_device_of_results():
    model = torch.nn.Linear(3, 2)  # float32, two logits
    x = points_at([0.3, -0.3])  # float64 in, cast to the module's dtype
    labels, radii = RandomizedSmoothing(model, 0.5).certify(x, 10, 100, 0.1, generator=0)
    assert labels.device == x.device and labels.dtype == torch.int64 and radii.dtype == torch.float64
    assert RandomizedSmoothing(model, 0.5).predict(x[:0], 10, 0.1).shape == (0,)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"sigma": 0.0}, ValueError, "sigma"),
    ({"sigma": -1.0}, ValueError, "sigma"),
    ({"sigma": math.nan}, ValueError, "sigma"),
    ({"sigma": math.inf}, ValueError, "sigma"),
    ({"sigma": "1"}, TypeError, "sigma"),
    ({"n0": 101, "n": 100}, ValueError, "n0=101, n=100"),
    ({"n0": 0}, ValueError, "n0"),
    ({"n": 0}, ValueError, "n must"),
    ({"n": 10.0}, TypeError, "n must"),
    ({"alpha": 0.0}, ValueError, "alpha"),
    ({"alpha": 1.0}, ValueError, "alpha"),
    ({"alpha": -0.1}, ValueError, "alpha"),
    ({"alpha": math.nan}, ValueError, "alpha"),
    ({"x": torch.tensor([[0.0, math.nan, 1.0]])}, ValueError, "finite"),
    ({"x": torch.zeros(3)}, ValueError, r"shape \(N, d\)"),
    ({"x": torch.zeros(2, 4)}, ValueError, "3 columns"),
    ({"x": [[0.0, 0.0, 0.0]]}, TypeError, "torch.Tensor"),
    ({"base": torch.nn.Linear(3, 3)}, ValueError, r"got shape \(1, 3\)"),
    ({"base": torch.nn.Linear(4, 1)}, ValueError, "does not fit"),
    ({"base": "linear"}, TypeError, "base"),
    ({"batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_inputs_raise_one_clear_error(kwargs, err, match):
    args = {"base": tr.Linear(W), "sigma": 0.5, "x": points_at([0.1]), "n0": 10, "n": 100, "alpha": 0.01,
            "batch_size": 64}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        s = RandomizedSmoothing(args["base"], args["sigma"])
        s.certify(args["x"], args["n0"], args["n"], args["alpha"], batch_size=args["batch_size"])
    if "n0" not in kwargs:  # predict validates the same way
        with pytest.raises(err, match=match):
            s = RandomizedSmoothing(args["base"], args["sigma"])
            s.predict(args["x"], args["n"], args["alpha"], batch_size=args["batch_size"])


# ------------------------------------------------------------------------------------------- exact curves
def _mc_certified(dist, clf, r, n, seed):
    """Monte Carlo P[y m / ||w|| > r] by sampling (independent of tr.risk)."""
    x, y = dist.sample(n, generator=seed, dtype=torch.float64)
    w = torch.as_tensor(clf.w.to_numpy())
    s = y.double() * (x @ w + float(clf.b)) / w.norm()
    return [int((s > ri).sum()) for ri in r]


@pytest.mark.parametrize("dist, clf", [
    (tr.GaussianMixture([1.0, 0.5]), tr.Linear([1.0, 0.5])),
    (tr.GaussianMixture([1.0, 0.5], sigma=0.7), tr.Linear([1.0, -0.2], b=0.3)),
    (tr.Tsipras(p=0.9, eta=1.0, d=2), tr.Linear([1.0, 0.3, 0.3], b=-0.1)),
    (tr.Tsipras(p=0.8, eta=0.5, d=1), tr.Linear([1.0, 0.0])),  # margin with atoms: ties decide
])
def test_linear_certified_accuracy_matches_monte_carlo(dist, clf):
    r = [0.0, 0.3, 0.7, 1.0, 1.5]
    exact = linear_certified_accuracy(dist, clf, r)
    n = 200_000
    for k, e in zip(_mc_certified(dist, clf, r, n, 0), exact):
        lo, hi = tr.clopper_pearson(k, n, alpha=1e-4)
        assert lo - 1e-12 <= e <= hi + 1e-12, (k / n, e)


def test_linear_certified_accuracy_ties_on_tsipras_robust_feature():
    """sign(x_1): y x_1 = +1 w.p. p, so the certified accuracy is p below radius 1 and 0 from 1 on (open ball)."""
    dist = tr.Tsipras(p=0.8, eta=0.5, d=1)
    got = linear_certified_accuracy(dist, tr.Linear([1.0, 0.0]), [0.0, 0.5, 0.999, 1.0, 2.0])
    np.testing.assert_allclose(got, [0.8, 0.8, 0.8, 0.0, 0.0], atol=1e-12)
    # and the L2 ball risk at 1 still lets the +1 points at distance exactly 1 survive: the two differ there
    assert 1 - float(tr.risk(dist, tr.Linear([1.0, 0.0]), tr.L2(1.0))) == pytest.approx(0.4)
    # point masses at 0 (+1) and 1 (-1), threshold at 1/2: both at distance 1/2, certified below 1/2 only
    got = linear_certified_accuracy(tr.PointMasses(gap=1.0), tr.Linear([-1.0], 0.5), [0.0, 0.4999, 0.5, 0.6])
    np.testing.assert_allclose(got, [1.0, 1.0, 0.0, 0.0], atol=1e-12)


def test_certify_curve_approaches_exact_curve_and_never_beats_optimal():
    dist = tr.GaussianMixture([1.0, 0.5])
    clf = tr.Linear([1.0, 0.5])
    sigma, n0, n, alpha, pts = 0.5, 64, 10_000, 0.001, 1000
    x, y = dist.sample(pts, generator=21, dtype=torch.float64)
    labels, radii = RandomizedSmoothing(clf, sigma).certify(x, n0, n, alpha, generator=22)
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    got = certified_accuracy(labels, radii, y, grid)
    curves = certified_accuracy_curves(dist, clf, grid)
    limit_labels = torch.sign(x @ torch.tensor([1.0, 0.5], dtype=torch.float64)).long()
    exact_here = certified_accuracy(limit_labels, exact_linear_radius(clf, x), y, grid)  # n -> oo, same points
    # finite n certifies less (radius below the distance w.p. >= 1 - alpha), but not much less at n = 10^4
    assert np.all(got <= exact_here + 3 * alpha)
    shifted = certified_accuracy(limit_labels, exact_linear_radius(clf, x), y, grid + 0.1)
    assert np.all(got >= shifted)
    # against the exact curve of the distribution: between the limit at r + 0.1 and the limit at r (CP interval)
    ahead = linear_certified_accuracy(dist, clf, grid + 0.1)
    for k, e, e_ahead in zip(np.rint(got * pts).astype(int), curves.certified, ahead):
        lo, hi = tr.clopper_pearson(int(k), pts, alpha=1e-3)
        assert lo <= e + 3 * alpha and hi >= e_ahead
    # a smoothed Bayes (linear) rule is optimal on a Gaussian mixture in L2 (Bhagoji et al.): the curves coincide
    np.testing.assert_allclose(curves.certified, curves.optimal, rtol=1e-9)
    assert np.all(got <= curves.optimal + 0.05)
    other = certified_accuracy_curves(dist, tr.Linear([1.0, 0.0]), grid)
    assert np.all(other.certified < other.optimal - 0.01)


def test_curves_on_tsipras_below_optimal_with_nan_where_unknown():
    dist = tr.Tsipras(p=0.9, eta=1.0, d=3)
    curves = certified_accuracy_curves(dist, tr.Linear([1.0, 0.4, 0.4, 0.4]), [0.0, 0.3, 0.6, 0.9, 1.2])
    known = ~np.isnan(curves.optimal)
    assert known[:4].all() and not known[4]
    assert np.all(curves.certified[known] <= curves.optimal[known] + 1e-12)
    assert np.all(np.diff(curves.certified) <= 0)


def test_exact_linear_radius_checks():
    with pytest.raises(TypeError, match="Linear"):
        exact_linear_radius(tr.Radial(1.0), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="w != 0"):
        exact_linear_radius(tr.Linear([0.0, 0.0]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="shape"):
        exact_linear_radius(tr.Linear(W), torch.zeros(1, 2))


# ------------------------------------------------------------------------------------------- noise training
def test_train_with_noise_learns_the_noisy_bayes_rule():
    mean, sigma = [1.0, 0.5], 0.6
    dist = tr.GaussianMixture(mean)
    state = torch.random.get_rng_state()
    model = tr.LinearModel(2, dtype=torch.float64)
    res = train_with_noise(model, dist, sigma, steps=300, batch_size=256, lr=0.05, seed=3, eval_n=20_000,
                           eval_every=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    w = model.linear.weight.detach()[0].numpy()
    b = float(model.linear.bias.detach()[0])
    assert w @ np.array(mean) / np.linalg.norm(w) / np.linalg.norm(mean) > 0.99
    # the recorded risk is the error on noisy inputs, i.e. on N(y mean, (1 + sigma^2) I): checked in closed form
    noisy = tr.GaussianMixture(mean, sigma=math.sqrt(1 + sigma**2))
    want = float(tr.risk(noisy, tr.Linear(w, b)))
    k = round(res.history[-1]["risk"] * 20_000)
    lo, hi = tr.clopper_pearson(k, 20_000, alpha=1e-3)
    assert lo <= want <= hi
    assert want > float(tr.risk(dist, tr.Linear(w, b))) + 0.03  # the noise is really there
    again = train_with_noise(tr.LinearModel(2, dtype=torch.float64), dist, sigma, steps=300, batch_size=256,
                             lr=0.05, seed=3, eval_n=0, eval_every=0)
    assert torch.equal(again.model.linear.weight, model.linear.weight)
    with pytest.raises(ValueError, match="adversarial"):
        train_with_noise(tr.LinearModel(2), dist, sigma, steps=1, adversarial="pgd", threat=tr.L2(0.1))
    with pytest.raises(ValueError, match="sigma"):
        train_with_noise(tr.LinearModel(2), dist, 0.0, steps=1)


def test_nan_votes_are_an_error_not_a_class():
    def nan_far_right(x):  # a callable base: NaN logits right of x_1 = 1, else the linear margin
        m = x @ torch.as_tensor(W, dtype=x.dtype)
        return torch.where(x[:, 0] > 1.0, torch.nan, m)

    s = RandomizedSmoothing(nan_far_right, 0.5)
    assert s.predict(points_at([-3.0]), 100, 0.01).tolist() == [-1]  # no draw reaches x_1 > 1 (6.5 sigma)
    with pytest.raises(ValueError, match="NaN"):
        s.certify(points_at([0.9]), 10, 100, 0.01)


def test_certified_radius_converges_to_the_distance_as_n_grows():
    """PITFALLS 11: the gap to |m| / ||w|| shrinks like n^(-1/2) and the radius stays below the distance."""
    sigma, t = 0.5, 0.5
    s = RandomizedSmoothing(tr.Linear(W), sigma)
    gaps = []
    for n in (10**3, 10**4, 10**5, 10**6):
        labels, radii = s.certify(points_at([t, -t]), 100, n, 0.001, generator=n)
        assert labels.tolist() == [1, -1]
        gaps.append(float((t - radii).max()))
    assert all(g >= 0 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    # at n = 10^6 the bound is within z_{0.999} + 4 standard errors of p: 7.1 * sqrt(p (1 - p) / n) / phi(1)
    p = scipy.stats.norm.cdf(t / sigma)
    assert gaps[3] < sigma * 7.1 * math.sqrt(p * (1 - p) / 10**6) / scipy.stats.norm.pdf(t / sigma)


def test_smoothing_row_of_the_defense_table():
    from toyrobust.defenses import evaluate as ev

    rows = ev.evaluate_defenses(defenses=["randomized smoothing (sigma 0.5)"],
                                settings=["robust/non-robust D=20 (L2)"], config=ev.EvalConfig(quick=True, n=200))
    (row,) = rows
    assert row.naive_verdict == row.adaptive_verdict == "ok"  # nothing below the optimal risk
    assert row.naive_risk <= row.adaptive_risk <= 1  # the adaptive attack keeps the naive points too
    cert = row.extras["certified risk (upper)"]
    assert 0 <= cert <= 1 and cert >= row.optimal - 0.1  # a certificate cannot beat the optimum (up to sampling)
