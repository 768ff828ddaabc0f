"""Monte Carlo engine: Clopper-Pearson intervals, streamed sampling, and risk estimates against closed forms.

References are independent of the code under test: scipy.stats.binomtest, binomial tail sums in mpmath, exact
coverage sums with scipy.stats.binom, simulated Bernoulli trials, and closed-form risks of linear classifiers
written out here with scipy's normal CDF (the dual-norm margin drop eps * ||w||_q for the adversarial ones).
"""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.attacks.base import AttackResult
from toyrobust.classifiers import Classifier
from toyrobust.definitions import is_adversarial
from toyrobust.montecarlo import RiskEstimate, clopper_pearson, derive_seed, estimate_risk, iter_samples
from toyrobust.rng import CounterStream

Phi = scipy.stats.norm.cdf
STRICT = 1 - 1e-6  # level for checks repeated over many examples (no false alarms over a whole run)


# ------------------------------------------------------------------------------------------------ test attacks


def steepest_attack(clf, x, y, threat, *, definition="ball", dist=None, generator=None):
    """One full steepest-ascent step against the label: the exact worst case for any affine margin."""
    xr = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tr.as_classifier(clf).margin(xr).sum(), xr)
    step = threat.steepest_ascent(-y.to(x.dtype)[:, None] * g)
    x_adv = (x + step).detach()
    success = is_adversarial(definition, clf, x_adv, y, dist=dist, x=x)
    return AttackResult(x_adv, success, threat.norm(x_adv - x), grad_evals=x.shape[0])


def random_point_attack(clf, x, y, threat, *, definition="ball", dist=None, generator=None):
    """A single uniform point of the ball (randomised, uses only the given generator)."""
    x_adv = threat.random_start(x, generator=generator)
    success = is_adversarial(definition, clf, x_adv, y, dist=dist, x=x)
    return AttackResult(x_adv, success, threat.norm(x_adv - x), grad_evals=0)


def lying_attack(clf, x, y, threat, *, definition="ball", dist=None, generator=None):
    """Pitfall 6: returns points far outside the ball, or zeros, and claims success everywhere."""
    x_adv = x - y.to(x.dtype)[:, None] * 100.0
    x_adv[::2] = 0.0
    return AttackResult(x_adv, torch.ones_like(y, dtype=torch.bool), threat.norm(x_adv - x), grad_evals=0)


# ------------------------------------------------------------------------------------------------ closed forms


def _dual(w: np.ndarray, threat) -> float:
    return float(np.linalg.norm(w, ord=threat.q))


def gm_linear_risk(mean, sigma, w, b, drop=0.0) -> float:
    """GaussianMixture and sign(<w, x> + b), with an adversary that can move the margin by ``drop``."""
    mean, w = np.asarray(mean, float), np.asarray(w, float)
    m, s = float(w @ mean), sigma * float(np.linalg.norm(w))
    return 0.5 * (Phi((drop - m - b) / s) + Phi((drop - m + b) / s))


def tsipras_linear_risk(p, eta, d, w, b, drop=0.0) -> float:
    """Tsipras(p, eta, d) and sign(<w, x> + b): sum over y and x_1 = +-y of a Gaussian tail."""
    w = np.asarray(w, float)
    w1, wr = w[0], w[1:]
    s = float(np.linalg.norm(wr))
    total = 0.0
    for y in (1, -1):
        for x1, px in ((y, p), (-y, 1 - p)):
            mu = w1 * x1 + y * eta * wr.sum() + b
            total += 0.5 * px * (Phi((drop - mu) / s) if y == 1 else Phi((mu + drop) / s))
    return total


def binomial_tail_bound(k: int, n: int, alpha: float, upper: bool) -> float:
    """Clopper-Pearson bound from its definition with exact binomial sums in mpmath (bisection in log space).

    lower L: P[Bin(n, L) >= k] = alpha/2;  upper U: P[Bin(n, U) <= k] = alpha/2. The shorter of the two sums
    (a tail or one minus the other tail) is evaluated at 60 digits.
    """
    mpmath.mp.dps = 60
    target = mpmath.mpf(alpha) / 2
    coef = [mpmath.binomial(n, j) for j in range(n + 1)]

    def cdf(p, m):  # P[Bin(n, p) <= m]
        if m < n / 2:
            return mpmath.fsum(coef[j] * p**j * (1 - p) ** (n - j) for j in range(0, m + 1))
        return 1 - mpmath.fsum(coef[j] * p**j * (1 - p) ** (n - j) for j in range(m + 1, n + 1))

    lo, hi = mpmath.mpf(-400), mpmath.mpf(0)
    for _ in range(80):
        mid = (lo + hi) / 2
        if upper:  # P[Bin <= k] decreases in p; bisect on t = log(1 - U)
            too_small_p = cdf(1 - mpmath.exp(mid), k) > target
            lo, hi = (lo, mid) if too_small_p else (mid, hi)
        else:  # P[Bin >= k] increases in p; bisect on t = log(L)
            too_small_p = 1 - cdf(mpmath.exp(mid), k - 1) < target
            lo, hi = (mid, hi) if too_small_p else (lo, mid)
    t = (lo + hi) / 2
    return float(1 - mpmath.exp(t)) if upper else float(mpmath.exp(t))


# ------------------------------------------------------------------------------------------------ Clopper-Pearson


@settings(max_examples=60)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999]))
def test_clopper_pearson_matches_scipy_binomtest(kn, level):
    k, n = kn
    low, high = clopper_pearson(k, n, level)
    ref = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    # scipy finds the bounds with a root finder (relative accuracy ~1e-9); ours inverts the beta function directly
    assert low == pytest.approx(ref.low, rel=1e-8, abs=1e-300)
    assert high == pytest.approx(ref.high, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("k,n,alpha", [
    (0, 1, 0.05), (1, 1, 0.05), (0, 10, 0.05), (10, 10, 0.05), (3, 10, 0.05), (0, 200, 1e-20),
    (200, 200, 1e-20), (1, 200, 1e-20), (199, 200, 1e-12), (57, 120, 1e-15), (0, 1000, 1e-3), (7, 1000, 1e-30),
])
def test_clopper_pearson_against_binomial_sums_in_mpmath(k, n, alpha):
    low, high = clopper_pearson(k, n, alpha=alpha)
    ref_low = 0.0 if k == 0 else binomial_tail_bound(k, n, alpha, upper=False)
    ref_high = 1.0 if k == n else binomial_tail_bound(k, n, alpha, upper=True)
    assert low == pytest.approx(ref_low, rel=1e-9, abs=1e-300)
    assert high == pytest.approx(ref_high, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [1, 7, 1000, 10**6, 10**9])
@pytest.mark.parametrize("alpha", [0.05, 1e-8, 1e-20])
def test_clopper_pearson_edges_closed_form(n, alpha):
    # k = 0: (1 - U)^n = alpha/2;  k = n: L^n = alpha/2
    low0, high0 = clopper_pearson(0, n, alpha=alpha)
    lown, highn = clopper_pearson(n, n, alpha=alpha)
    assert low0 == 0.0 and highn == 1.0
    assert high0 == pytest.approx(-math.expm1(math.log(alpha / 2) / n), rel=1e-10)
    assert lown == pytest.approx(math.exp(math.log(alpha / 2) / n), rel=1e-12)
    assert 0.0 < high0 and 0.0 < lown < 1.0  # (1 - 5e-21 rounds to 1.0 at n = 1)


def test_clopper_pearson_tiny_alpha_is_not_trivial():
    # 1 - alpha/2 rounds to 1 for alpha = 1e-20: a naive beta.ppf(1 - alpha/2, ...) returns 1
    low, high = clopper_pearson(5, 10**6, alpha=1e-20)
    assert 0.0 < low < 5e-6 < high < 1e-3


def test_clopper_pearson_vectorised_equals_scalar():
    k = np.array([0, 3, 10, 50])
    n = np.array([10, 10, 10, 50])
    low, high = clopper_pearson(k, n, 0.9)
    for i in range(4):
        assert (low[i], high[i]) == clopper_pearson(int(k[i]), int(n[i]), 0.9)


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.999])
def test_clopper_pearson_exact_coverage_at_least_level(n, level):
    # exact coverage sum_k Bin(k; n, p) 1[L_k <= p <= U_k] on a grid of p, tiny p included
    ks = np.arange(n + 1)
    low, high = clopper_pearson(ks, np.full(n + 1, n), level)
    grid = np.concatenate([np.logspace(-7, -1, 40), np.linspace(0.1, 0.9, 41), 1 - np.logspace(-7, -1, 40)])
    for p in grid:
        cover = scipy.stats.binom.pmf(ks, n, p)[(low <= p) & (p <= high)].sum()
        assert cover >= level - 1e-10, (p, cover)


@pytest.mark.parametrize("p,n", [(0.5, 20), (0.3, 2000), (0.01, 500), (1e-3, 2000), (1e-4, 50)])
def test_clopper_pearson_simulated_coverage_on_bernoulli(p, n):
    level, reps = 0.95, 4000
    rng = np.random.default_rng(derive_seed(11, n, int(p * 1e6)))
    k = np.array([int((rng.random(n) < p).sum()) for _ in range(reps)])
    low, high = clopper_pearson(k, np.full(reps, n), level)
    covered = float(np.mean((low <= p) & (p <= high)))
    se = math.sqrt(level * (1 - level) / reps)
    assert covered >= level - 4 * se
    if n * p * (1 - p) > 100:  # in the normal regime CP is only mildly conservative: catches a [0, 1] interval
        assert covered <= 0.975


@pytest.mark.parametrize("args,kwargs,match", [
    ((11, 10), {}, "k must"), ((-1, 10), {}, "k must"), ((0, 0), {}, "n must"), ((1, 10), {"level": 1.0}, "level"),
    ((1, 10), {"level": 0.0}, "level"), ((1, 10), {"alpha": 2.0}, "alpha"), ((1.5, 10), {}, "k must hold"),
])
def test_clopper_pearson_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clopper_pearson(*args, **kwargs)
    with pytest.raises(TypeError, match="level"):
        clopper_pearson(1, 10, level=True)


# ------------------------------------------------------------------------------------------------ streaming


def test_iter_samples_independent_of_chunk_size():
    dist = tr.Tsipras(0.8, 1.0, d=3)
    ref_x, ref_y = tr.Tsipras(0.8, 1.0, d=3).sample(0)  # empty, for cat
    chunks = {}
    for cs in (1, 999, 4096, 5000, 20000):
        parts = list(iter_samples(dist, 10_003, seed=5, chunk_size=cs, device="cpu"))
        assert all(x.shape[0] <= cs for x, _ in parts)
        chunks[cs] = (torch.cat([ref_x] + [x for x, _ in parts]), torch.cat([ref_y] + [y for _, y in parts]))
    x0, y0 = chunks[20000]
    assert x0.shape == (10_003, 4)
    for x, y in chunks.values():
        assert torch.equal(x, x0) and torch.equal(y, y0)
    # the stream really is the documented one: rows of the counter-based stream (seed, 0)
    xb, yb = dist.draw(CounterStream(5, 0).rows(4000, 96), torch.get_default_dtype())
    assert torch.equal(xb, x0[4000:4096]) and torch.equal(yb, y0[4000:4096])
    # a prefix of a longer stream is the shorter stream; another seed gives other points
    xs, _ = next(iter_samples(dist, 100, seed=5, device="cpu"))
    assert torch.equal(xs, x0[:100])
    xo, _ = next(iter_samples(dist, 100, seed=6, device="cpu"))
    assert not torch.equal(xo, xs)


def test_derive_seed_distinct_streams():
    seeds = {derive_seed(0, s, b) for s in (0, 1) for b in range(1000)}
    assert len(seeds) == 2000
    assert derive_seed(3, 0, 7) == derive_seed(3, 0, 7) != derive_seed(4, 0, 7)
    assert all(0 <= s < 2**63 for s in seeds)


# ------------------------------------------------------------------------------------------------ standard risk


def test_standard_risk_gaussian_mixture_linear_matches_closed_form():
    dist = tr.GaussianMixture([1.0, -0.5, 0.25], sigma=1.3)
    w, b = [0.7, -1.0, 2.0], 0.4
    est = estimate_risk(dist, tr.Linear(w, b), n=200_000, seed=1, level=0.999)
    exact = gm_linear_risk([1.0, -0.5, 0.25], 1.3, w, b)
    assert est.contains(exact), (est, exact)
    assert est.width < 0.01 and est.n == 200_000 and est.method == "none (standard risk)"


def test_standard_risk_tsipras_linear_matches_closed_form():
    dist = tr.Tsipras(p=0.9, eta=0.7, d=2)
    w, b = [0.8, 1.0, 0.5], -0.3
    est = estimate_risk(dist, tr.Linear(w, b), n=200_000, seed=2, level=0.999)
    assert est.contains(tsipras_linear_risk(0.9, 0.7, 2, w, b)), est


@settings(max_examples=15)
@given(st.lists(st.floats(-2, 2).filter(lambda v: abs(v) > 0.05), min_size=1, max_size=4),
       st.floats(0.3, 2.0), st.data())
def test_standard_risk_hypothesis_linear(mean, sigma, data):
    d = len(mean)
    w = data.draw(st.lists(st.floats(-2, 2).filter(lambda v: abs(v) > 0.05), min_size=d, max_size=d))
    b = data.draw(st.floats(-1, 1))
    est = estimate_risk(tr.GaussianMixture(mean, sigma), tr.Linear(w, b), n=20_000, seed=3, level=STRICT)
    assert est.contains(gm_linear_risk(mean, sigma, w, b))


def test_standard_risk_other_definitions_at_x():
    tsi = tr.Tsipras(p=0.9, eta=1.0, d=2)
    bayes = tsi.bayes_classifier()
    for definition in ("projection", "error-region", "prediction-change"):  # the Bayes rule on its own support
        assert estimate_risk(tsi, bayes, definition=definition, n=20_000).k == 0
    # error-region of a non-Bayes linear rule on a Gaussian mixture: P[sign(u) != sign(v)], (u, v) bivariate normal
    mean, w = np.array([1.0, 1.0]), np.array([1.0, 0.0])
    dist = tr.GaussianMixture(mean.tolist(), 1.0)
    est = estimate_risk(dist, tr.Linear(w.tolist(), 0.0), definition="error-region", n=200_000, seed=4,
                        level=0.999)
    wb = 2 * mean  # Bayes weights
    cov = np.array([[w @ w, w @ wb], [w @ wb, wb @ wb]])
    exact = 0.0
    for y in (1, -1):
        mu = y * np.array([w @ mean, wb @ mean])
        both_neg = scipy.stats.multivariate_normal(mu, cov).cdf([0.0, 0.0])
        u_neg, v_neg = Phi(-mu[0] / math.sqrt(cov[0, 0])), Phi(-mu[1] / math.sqrt(cov[1, 1]))
        exact += 0.5 * ((u_neg - both_neg) + (v_neg - both_neg))  # P[u < 0 <= v] + P[v < 0 <= u]
    assert est.contains(exact), (est, exact)
    # projection at x' = x on a Gaussian mixture: f(x) != y and Bayes(x) == y, with f = -Bayes that is P[Bayes ok]
    est = estimate_risk(dist, tr.Linear((-wb).tolist(), 0.0), definition="projection", n=50_000, seed=4,
                        level=0.999)
    assert est.contains(Phi(math.sqrt(2.0)))  # the Bayes risk is Q(||mean||) = Q(sqrt 2)


# ------------------------------------------------------------------------------------------------ adversarial risk


@pytest.mark.parametrize("threat", [tr.Linf(0.2), tr.L2(0.5), tr.L1(0.6), tr.Linf(0.3, coords=(1, 2))],
                         ids=["linf", "l2", "l1", "linf-coords"])
def test_adversarial_risk_linear_exact_attack_matches_dual_norm(threat):
    mean, w, b = [1.0, 0.5, -0.5, 0.2], np.array([1.0, 0.8, -0.3, 0.1]), 0.1
    est = estimate_risk(tr.GaussianMixture(mean, 1.0), tr.Linear(w.tolist(), b), threat, attack=steepest_attack,
                        n=100_000, seed=7, level=0.999)
    wc = w if threat.coords is None else w[list(threat.coords)]
    exact = gm_linear_risk(mean, 1.0, w, b, drop=threat.eps * _dual(wc, threat))
    assert est.contains(exact), (est, exact)
    assert est.invalid_claims == 0 and est.grad_evals == 100_000 and est.method == "steepest_attack"
    # the wrong L1 geometry (g / ||g||_1 rescaled) would only remove eps ||w||_2^2 / ||w||_1: far outside
    if isinstance(threat, tr.L1):
        wrong = gm_linear_risk(mean, 1.0, w, b, drop=threat.eps * (w @ w) / np.abs(w).sum())
        assert not est.contains(wrong)


def test_adversarial_risk_tsipras_linear_matches_closed_form():
    dist, threat = tr.Tsipras(p=0.9, eta=0.5, d=3), tr.L2(0.4)
    w, b = [0.5, 1.0, 1.0, 1.0], 0.0
    est = estimate_risk(dist, tr.Linear(w, b), threat, attack=steepest_attack, n=100_000, seed=8, level=0.999)
    assert est.contains(tsipras_linear_risk(0.9, 0.5, 3, w, b, drop=0.4 * np.linalg.norm(w))), est


@pytest.mark.parametrize("threat", [tr.Linf(0.2), tr.L2(0.5), tr.L1(0.6)], ids=["linf", "l2", "l1"])
@pytest.mark.parametrize("attack,n", [(None, 100_000), ("exact", 100_000), ("fgsm", 100_000), ("pgd", 10_000)])
def test_library_attacks_reach_dual_norm_closed_form(threat, attack, n):
    # toyrobust.attacks through the estimator: the default (exact for Linear), FGSM and PGD are all exact on a
    # linear margin, so each must reach the closed form
    mean, w, b = [1.0, 0.5, -0.5, 0.2], np.array([1.0, 0.8, -0.3, 0.1]), 0.1
    est = estimate_risk(tr.GaussianMixture(mean, 1.0), tr.Linear(w.tolist(), b), threat, attack=attack, n=n,
                        seed=22, level=0.999)
    assert est.contains(gm_linear_risk(mean, 1.0, w, b, drop=threat.eps * _dual(w, threat))), est
    assert est.invalid_claims == 0
    assert est.method == {None: "exact_attack", "exact": "exact_attack"}.get(attack, attack)


def test_estimator_verifies_claims_of_a_lying_attack():
    dist, clf, threat = tr.GaussianMixture([2.0, 0.0], 1.0), tr.Linear([1.0, 0.0]), tr.Linf(0.1)
    est = estimate_risk(dist, clf, threat, attack=lying_attack, n=20_000, seed=9, level=0.999)
    # nothing returned lies in the ball, so only the clean errors count: the standard risk Q(2)
    assert est.contains(Phi(-2.0)) and est.k < 0.05 * est.n
    assert est.n - est.k <= est.invalid_claims <= est.n  # every unverified claim is reported


def test_projection_definition_rejects_label_changing_points():
    # Tsipras with eta small: a big L2 step moves x_1 across 0, which changes the Bayes label of the projection
    dist, threat = tr.Tsipras(p=0.9, eta=0.1, d=1), tr.L2(2.5)
    clf = tr.Linear([1.0, 0.0])  # sign(x_1)
    ball = estimate_risk(dist, clf, threat, attack=steepest_attack, n=20_000, seed=10)
    proj = estimate_risk(dist, clf, threat, "projection", attack=steepest_attack, n=20_000, seed=10)
    assert ball.k == ball.n  # every x_1 is flipped by a step of 2.5 along e_1
    # under the projection definition a flip of x_1 flips the Bayes label too: only the clean errors remain
    # (f(x) != y with x on the support, where Bayes(x) == y): P[x_1 = -y, Bayes = y] = 0 here since
    # Bayes = sign(x_1 log 9 + 0.2 x_2) is dominated by x_1 except for |x_2| > log(9) / 0.2 ~ 11
    assert proj.k == 0


def collapsing_attack(clf, x, y, threat, *, definition="ball", dist=None, generator=None):
    """Pitfall 8: 'on-manifold' by projecting onto the inner (unit) sphere, which changes outer points' labels."""
    x_adv = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return AttackResult(x_adv, is_adversarial(definition, clf, x_adv, y, dist=dist, x=x), threat.norm(x_adv - x), 0)


def test_spheres_label_changing_points_rejected_by_projection_definition():
    dist, clf, threat = tr.ConcentricSpheres(10, 1.0, 1.3), tr.Radial(1.15), tr.L2(0.3)
    ball = estimate_risk(dist, clf, threat, attack=collapsing_attack, n=6000, seed=23)
    proj = estimate_risk(dist, clf, threat, "projection", attack=collapsing_attack, n=6000, seed=23)
    # under "ball" exactly the outer points count (moved onto the inner sphere); the same stream tells how many
    outer = sum(int((y > 0).sum()) for _, y in iter_samples(dist, 6000, seed=23))
    assert ball.k == outer and 2700 < outer < 3300
    assert proj.k == 0  # their true label changed: not adversarial examples
    # the library's on-manifold attack keeps each radius: the radial classifier is then never fooled
    assert estimate_risk(dist, clf, threat, "projection", attack="on-manifold", n=1000, seed=23).k == 0


# ------------------------------------------------------------------------------------------------ reproducibility


def test_same_seed_same_result_different_seed_differs():
    dist, clf, threat = tr.GaussianMixture([1.0, 1.0], 1.0), tr.Linear([1.0, 1.0]), tr.L2(0.3)
    a = estimate_risk(dist, clf, threat, attack=random_point_attack, n=30_000, seed=12)
    b = estimate_risk(dist, clf, threat, attack=random_point_attack, n=30_000, seed=12)
    c = estimate_risk(dist, clf, threat, attack=random_point_attack, n=30_000, seed=13)
    assert (a.k, a.ci_low, a.ci_high) == (b.k, b.ci_low, b.ci_high)
    assert c.k != a.k


def test_chunk_size_gives_identical_count_for_deterministic_attack():
    dist, clf, threat = tr.GaussianMixture([1.0, -1.0, 0.5], 1.0), tr.Linear([1.0, -1.0, 0.5]), tr.Linf(0.25)
    ks = {cs: estimate_risk(dist, clf, threat, attack=steepest_attack, n=25_000, seed=14, chunk_size=cs).k
          for cs in (1000, 4096, 7777, 25_000)}
    assert len(set(ks.values())) == 1, ks
    std = {cs: estimate_risk(dist, clf, n=25_000, seed=14, chunk_size=cs).k for cs in (333, 8192)}
    assert len(set(std.values())) == 1, std


def test_chunk_size_statistically_equal_for_randomised_attack():
    # random starts are drawn per chunk, so counts differ by sampling noise only: a two-proportion z-test
    dist, clf, threat = tr.GaussianMixture([0.5, 0.5], 1.0), tr.Linear([1.0, 1.0]), tr.Linf(0.4)
    a = estimate_risk(dist, clf, threat, attack=random_point_attack, n=40_000, seed=15, chunk_size=1000)
    b = estimate_risk(dist, clf, threat, attack=random_point_attack, n=40_000, seed=15, chunk_size=40_000)
    p = (a.k + b.k) / (a.n + b.n)
    z = (a.value - b.value) / math.sqrt(p * (1 - p) * (1 / a.n + 1 / b.n))
    assert abs(z) < 4
    # and the same clean points were used: the standard part (clean errors) is identical
    assert estimate_risk(dist, clf, n=40_000, seed=15, chunk_size=1000).k == \
        estimate_risk(dist, clf, n=40_000, seed=15, chunk_size=40_000).k


# ------------------------------------------------------------------------------------------------ target width


@pytest.mark.parametrize("target", [0.05, 0.02])
def test_target_width_stops_near_smallest_sufficient_n(target):
    dist, clf = tr.GaussianMixture([0.3], 1.0), tr.Linear([1.0])  # risk Q(0.3) ~ 0.38
    est = estimate_risk(dist, clf, target_width=target, seed=16, chunk_size=4096)
    assert est.converged is True and est.width <= target
    # the smallest n whose interval at the observed proportion is that narrow, found by bisection
    p = est.value

    def width(m):
        lo, hi = clopper_pearson(round(p * m), m)
        return hi - lo

    lo_n, hi_n = 1, 10**7
    while hi_n - lo_n > 1:
        mid = (lo_n + hi_n) // 2
        lo_n, hi_n = (lo_n, mid) if width(mid) <= target else (mid, hi_n)
    assert hi_n * 0.9 <= est.n <= hi_n * 1.15 + 300
    assert est.contains(Phi(-0.3))


def test_target_width_capped_by_max_n_and_minimum_n():
    dist, clf = tr.GaussianMixture([0.3], 1.0), tr.Linear([1.0])
    capped = estimate_risk(dist, clf, target_width=1e-4, max_n=5000, seed=17)
    assert capped.n == 5000 and capped.converged is False and capped.width > 1e-4
    loose = estimate_risk(dist, clf, target_width=0.5, n=3000, seed=17)
    assert loose.n >= 3000 and loose.converged is True


# ------------------------------------------------------------------------------------------------ torch models


def _twin_modules(w: torch.Tensor, b: float):
    one = torch.nn.Linear(w.numel(), 1)
    two = torch.nn.Linear(w.numel(), 2)
    with torch.no_grad():
        one.weight.copy_(w[None])
        one.bias.fill_(b)
        two.weight.zero_()
        two.weight[1] = w
        two.bias.copy_(torch.tensor([0.0, b]))
    return one, two


@pytest.mark.parametrize("threat,attack", [(None, None), (tr.Linf(0.2), steepest_attack),
                                           (tr.L1(0.5), steepest_attack), (tr.L2(0.4), None)],
                         ids=["standard", "linf", "l1", "l2-default"])
@pytest.mark.parametrize("scale", [1.0, 1e3], ids=["plain", "saturated"])
def test_one_logit_and_two_logit_models_agree_with_closed_form(threat, attack, scale):
    # scale 1e3: logits that saturate a cross-entropy loss in float32 (pitfall 1) must still be attacked
    mean, w, b = [1.0, 0.5, -0.25], torch.tensor([1.0, 1.0, -1.0]), 0.2
    one, two = _twin_modules(w * scale, b * scale)
    kw = {} if threat is None else {"attack": attack}
    n = 4000 if attack is None and threat is not None else 50_000  # the default for a module is PGD
    e1 = estimate_risk(tr.GaussianMixture(mean, 1.0), one, threat, n=n, seed=18, level=0.999, **kw)
    e2 = estimate_risk(tr.GaussianMixture(mean, 1.0), two, threat, n=n, seed=18, level=0.999, **kw)
    assert abs(e1.k - e2.k) <= 2  # equal up to rounding of margins within 1 ulp of zero
    drop = 0.0 if threat is None else threat.eps * _dual(w.numpy(), threat)
    assert e1.contains(gm_linear_risk(mean, 1.0, w.numpy(), b, drop))


class _ModeSpy(torch.nn.Module):
    """A float64 model with dropout that records the mode it is called in."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                                       torch.nn.Linear(8, 1)).double()
        self.modes = set()

    def forward(self, x):
        self.modes.add(self.net[2].training)
        return self.net(x)


@pytest.mark.parametrize("attack", [steepest_attack, None], ids=["inline", "default"])
def test_model_evaluated_in_eval_mode_and_left_untouched(attack):
    model = _ModeSpy().train()
    before = [p.detach().clone() for p in model.parameters()]
    dist = tr.GaussianMixture([1.0, 0.0])
    a = estimate_risk(dist, model, tr.Linf(0.1), attack=attack, n=3000, seed=1)
    b = estimate_risk(dist, model, tr.Linf(0.1), attack=attack, n=3000, seed=1)
    assert a.k == b.k  # dropout off: deterministic
    assert model.modes == {False} and model.training and model.net[2].training
    assert a.dtype == "float64"  # inferred from the model
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(q, p) for q, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="dtype"):
        estimate_risk(dist, model, n=10, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------ devices


def test_device_cpu_and_auto():
    dist, clf = tr.GaussianMixture([1.0, 0.5]), tr.Linear([1.0, 0.5])
    cpu = estimate_risk(dist, clf, tr.L2(0.2), attack=steepest_attack, n=10_000, seed=19, device="cpu")
    auto = estimate_risk(dist, clf, tr.L2(0.2), attack=steepest_attack, n=10_000, seed=19, device="auto")
    assert cpu.device == "cpu"
    assert auto.device == str(tr.rng.resolve_device("auto"))
    if auto.device == "cpu":
        assert auto.k == cpu.k


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_cuda_matches_closed_form():
    mean, w = [1.0, 0.5, -0.5], [1.0, 1.0, 0.5]
    threat = tr.Linf(0.15)
    est = estimate_risk(tr.GaussianMixture(mean), tr.Linear(w), threat, attack=steepest_attack, n=200_000,
                        seed=20, device="cuda", level=0.999)
    assert est.device.startswith("cuda")
    assert est.contains(gm_linear_risk(mean, 1.0, w, 0.0, drop=0.15 * np.abs(w).sum()))
    again = estimate_risk(tr.GaussianMixture(mean), tr.Linear(w), threat, attack=steepest_attack, n=200_000,
                          seed=20, device="cuda", level=0.999, chunk_size=3000)
    assert again.k == est.k


# ------------------------------------------------------------------------------------------------ memory


def _live_tensor_elements() -> int:
    # type() rather than isinstance(): isinstance on some lazy torch objects emits deprecation warnings
    return sum(o.numel() for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


class _Recorder(Classifier):
    """A linear classifier that records the rows it sees and the tensor memory alive at each call."""

    def __init__(self, w):
        self.inner = tr.Linear(w)
        self.dim = self.inner.dim
        self.rows, self.live = [], []

    def margin(self, x):
        self.rows.append(x.shape[0])
        if len(self.rows) % 40 == 3:  # a few scans only: each walks every Python object
            self.live.append(_live_tensor_elements())
        return self.inner.margin(x)


def test_memory_independent_of_n():
    dist = tr.GaussianMixture([0.1] * 50)
    peaks = {}
    for n in (20_000, 200_000):
        rec = _Recorder([1.0] * 50)
        gc.collect()
        base = _live_tensor_elements()
        estimate_risk(dist, rec, n=n, seed=21, chunk_size=2048)
        assert max(rec.rows) <= 2048 and sum(rec.rows) == n
        peaks[n] = max(rec.live) - base
    # only O(chunk) rows of 50 floats (and the stream's chunk-sized scratch) are alive, whatever n
    assert peaks[200_000] <= peaks[20_000] * 1.05 + 1000
    assert peaks[200_000] < 4 * 2048 * 51


@pytest.mark.slow
def test_peak_rss_independent_of_n_subprocess():
    code = textwrap.dedent("""
        import resource, sys, toyrobust as tr
        from toyrobust.montecarlo import estimate_risk
        n = int(sys.argv[1])
        d = tr.GaussianMixture.robust_nonrobust(200)
        estimate_risk(d, d.bayes_classifier(), n=1000, chunk_size=8192)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        estimate_risk(d, d.bayes_classifier(), n=n, chunk_size=8192)
        print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    growth = {}
    for n in (10_000, 2_000_000):  # 2e6 x 200 float32 would be 1.6 GB if not streamed
        out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True)
        base, peak = map(int, out.stdout.split())
        growth[n] = peak - base
    assert growth[2_000_000] < 200_000  # KiB: far below the 1.6 GB of a non-streamed run


# ------------------------------------------------------------------------------------------------ plumbing


def test_no_global_rng_touched_and_no_output(capsys):
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    dist, clf = tr.GaussianMixture([1.0]), tr.Linear([1.0])
    estimate_risk(dist, clf, tr.Linf(0.3), attack=random_point_attack, n=5000, progress=False)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_on_request(capsys):
    estimate_risk(tr.GaussianMixture([1.0]), tr.Linear([1.0]), n=5000, progress=True)
    assert "estimate_risk" in capsys.readouterr().err


def test_result_fields_and_threat_spec():
    est = estimate_risk(tr.GaussianMixture([1.0]), tr.Linear([1.0]), "l2:0.5", attack=steepest_attack, n=1000,
                        seed=3, level=0.9)
    assert isinstance(est, RiskEstimate) and est.threat == "L2(eps=0.5)" and est.level == 0.9
    assert est.attack == est.method == "steepest_attack" and est.seconds > 0 and est.seed == 3
    assert (est.ci_low, est.ci_high) == clopper_pearson(est.k, est.n, 0.9) and float(est) == est.k / est.n
    assert est.as_dict()["k"] == est.k and "RiskEstimate(" in repr(est)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"n": 0}, ValueError, "n must"), ({"level": 1.5}, ValueError, "level"), ({"chunk_size": 0}, ValueError,
                                                                              "chunk_size"),
    ({"target_width": 0.0}, ValueError, "target_width"), ({"seed": -1}, ValueError, "seed"),
    ({"attack": steepest_attack}, ValueError, "needs a threat"), ({"definition": "bal"}, ValueError, "definition"),
    ({"device": "tpu"}, ValueError, "device"), ({"progress": "yes"}, TypeError, "progress"),
    ({"n": 10, "target_width": 0.1, "max_n": 5}, ValueError, "max_n"),
])
def test_estimate_risk_rejects_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        estimate_risk(tr.GaussianMixture([1.0]), tr.Linear([1.0]), **kwargs)


def test_estimate_risk_rejects_bad_attack_arguments():
    dist, clf = tr.GaussianMixture([1.0]), tr.Linear([1.0])
    with pytest.raises(ValueError, match="attack="):
        estimate_risk(dist, clf, tr.Linf(0.1), attack="no-such-attack", n=10)
    with pytest.raises(ValueError, match="attack_options"):
        estimate_risk(dist, clf, tr.Linf(0.1), attack=steepest_attack, attack_options={"generator": 1}, n=10)
    with pytest.raises(TypeError, match="dist"):
        estimate_risk("gauss", clf, n=10)
    with pytest.raises(TypeError, match="threat"):
        estimate_risk(dist, clf, 0.3, n=10)


def test_device_chunk_size_from_free_memory():
    from toyrobust.montecarlo import DEFAULT_CHUNK, device_chunk_size

    assert device_chunk_size("cpu", 500) == DEFAULT_CHUNK  # the CPU keeps its cache-sized chunks
    big = device_chunk_size("cuda", 500, 4, free_bytes=140 * 2**30)  # an H200: at least 2^20 points
    assert big >= 1 << 20 and big & (big - 1) == 0 and big <= 1 << 22
    # the working set fits in a quarter of the free memory, and a small card still gets a useful chunk
    assert big * 500 * 4 * 16 <= 140 * 2**30 / 4
    assert device_chunk_size("cuda", 500, 8, free_bytes=2**30) == 1 << 14
    assert device_chunk_size("cuda", 2, 4, attacked=False, free_bytes=80 * 2**30) == 1 << 22


def test_offsets_split_one_run_into_shards():
    """Runs at offsets 0, n1, n1 + n2 draw exactly the points of one run: standard and exact-attack counts add up,
    and so do randomised PGD counts when the shards end on chunk boundaries (attack randomness is keyed by the
    chunk's first point); the points themselves are the single stream's slices."""
    dist = tr.GaussianMixture([0.4] * 6, 1.0)
    clf = tr.Linear([1.0, -0.5, 0.3, 0.0, 0.2, 1.0], 0.1)
    sizes, offsets = [700, 1300, 1000], [0, 700, 2000]
    for threat, attack in ((None, None), (tr.L2(0.3), "exact")):
        one = estimate_risk(dist, clf, threat, attack=attack, n=3000, seed=4, chunk_size=256)
        parts = [estimate_risk(dist, clf, threat, attack=attack, n=m, seed=4, offset=o, chunk_size=256)
                 for m, o in zip(sizes, offsets)]
        assert sum(p.k for p in parts) == one.k and [p.offset for p in parts] == offsets
    torch.manual_seed(0)  # the test's own network weights only; estimate_risk never touches the global RNG
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opts = {"steps": 5, "random_start": True}
    one = estimate_risk(dist, net, tr.Linf(0.3), attack="pgd", n=3000, seed=9, chunk_size=500, attack_options=opts)
    parts = [estimate_risk(dist, net, tr.Linf(0.3), attack="pgd", n=1500, seed=9, offset=o, chunk_size=500,
                           attack_options=opts) for o in (0, 1500)]
    assert sum(p.k for p in parts) == one.k
    x_all, _ = next(iter_samples(dist, 3000, seed=4, chunk_size=3000, device="cpu"))
    x_mid, _ = next(iter_samples(dist, 100, seed=4, offset=2000, device="cpu"))
    assert torch.equal(x_mid, x_all[2000:2100])
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        estimate_risk(dist, clf, n=10, offset=-1)
    with pytest.raises(TypeError, match="offset"):
        next(iter_samples(dist, 10, offset=1.5))
    with pytest.raises(ValueError, match=r"at most 2\^53"):
        estimate_risk(dist, clf, n=10, offset=2**53 - 5)
    x_end, _ = next(iter_samples(dist, 5, seed=4, offset=2**53 - 5, device="cpu"))  # the last points exist
    assert x_end.shape == (5, 6) and bool(torch.isfinite(x_end).all())
