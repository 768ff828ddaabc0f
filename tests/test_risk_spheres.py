"""Closed-form risks on the concentric spheres against Monte Carlo (exact binomial intervals) and other routes."""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import scipy.special as sc
import scipy.stats
import sympy
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.risks import risk
from toyrobust.risks.caps import lambdify_risk
from toyrobust.risks.spheres import (
    imhof_expr,
    linear_sphere_risk,
    quadratic_error_normal_approximation,
    weighted_chi2_log_probabilities,
    weighted_chi2_probability,
)

D500 = tr.ConcentricSpheres(500, 1.0, 1.3)


# ------------------------------------------------------------------------------------------------ helpers
def mc_count(dist, n: int, seed: int, event, chunk: int = 25_000) -> int:
    """How many of ``n`` fresh samples satisfy ``event(x, y)`` (a bool tensor), in chunks of bounded memory."""
    gen = torch.Generator().manual_seed(seed)
    total = 0
    for start in range(0, n, chunk):
        x, y = dist.sample(min(chunk, n - start), generator=gen, dtype=torch.float64)
        total += int(event(x, y).sum())
    return total


@pytest.fixture(scope="module")
def d500_sample():
    """40,000 labelled points of the D = 500 spheres, shared by the Monte Carlo checks (sampling dominates)."""
    gen = torch.Generator().manual_seed(2024)
    return D500.sample(40_000, generator=gen, dtype=torch.float64)


def assert_in_ci(k: int, n: int, p: float, level: float = 0.999) -> tuple[float, float]:
    ci = scipy.stats.binomtest(k, n).proportion_ci(level, method="exact")
    assert ci.low <= p <= ci.high, f"closed form {p} outside the {level} Clopper-Pearson interval {ci} ({k}/{n})"
    return ci.low, ci.high


def worst_case(threat, clf, x, y):
    """The ball point that pushes a linear margin furthest toward the wrong label (steepest ascent of -y*margin)."""
    g = -y.to(x.dtype)[:, None] * clf.w.to_tensor(x.device, x.dtype)[None, :]
    return x + threat.steepest_ascent(g)


def random_w(dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim)


# ------------------------------------------------------------------------------------------------ linear, D = 500
@pytest.mark.parametrize("threat", [None, tr.L2(0.03), tr.Linf(0.002, coords=slice(0, 250)), tr.L1(0.05)],
                         ids=["standard", "l2", "linf-coords", "l1"])
def test_linear_ball_risk_vs_monte_carlo_d500(threat, d500_sample):
    x, y = d500_sample
    w = random_w(500, 1)
    clf = tr.Linear(w, -0.05 * np.linalg.norm(w))  # +1 iff <w/|w|, x> >= 0.05: a cap on each sphere
    r = risk(D500, clf, threat)
    x_adv = x if threat is None else worst_case(threat, clf, x, y)  # the threat model's own steepest step
    k = int(tr.is_adversarial("ball", clf, x_adv, y).sum())
    lo, hi = assert_in_ci(k, len(y), float(r))
    # sharp: doubling the inner cap (the factor-2 slip of PITFALLS 12) lands far outside the interval
    inner_cap = 0.5 * sc.betainc(249.5, 0.5, 1 - (0.05 - float(r.details["shift"])) ** 2)
    assert not lo <= float(r) + 0.5 * inner_cap <= hi


def test_linear_prediction_change_vs_monte_carlo_d500(d500_sample):
    x, _ = d500_sample
    w = random_w(500, 2)
    clf = tr.Linear(w, 0.02 * np.linalg.norm(w))
    threat = tr.L2(0.04)
    closed = float(risk(D500, clf, threat, "prediction-change"))
    x_adv = worst_case(threat, clf, x, clf.predict(x))  # push against the current prediction
    assert_in_ci(int(tr.is_adversarial("prediction-change", clf, x_adv, x=x).sum()), len(x), closed)
    assert 0.3 < closed < 0.8  # a band of width 2 eps around the hyperplane, which D = 500 makes thick


def test_linear_projection_and_error_region_equal_ball_below_half_gap():
    clf = tr.Linear(random_w(500, 3), 0.1)
    for threat in (tr.L2(0.1), tr.Linf(0.005), tr.L1(0.15)):
        ball = float(risk(D500, clf, threat))
        assert float(risk(D500, clf, threat, "projection")) == ball
        assert float(risk(D500, clf, threat, "error-region")) == ball
    with pytest.raises(NotImplementedError, match="estimate_risk"):
        risk(D500, clf, tr.L2(0.2), "projection")
    with pytest.raises(NotImplementedError, match="middle sphere"):
        risk(D500, clf, tr.Linf(0.01), "error-region")  # 0.01 * sqrt(500) > 0.15


def test_linear_exact_values_by_hand():
    # n = 3: u is uniform on [-1, 1] (Archimedes), so every cap fraction is linear in its height
    dist = tr.ConcentricSpheres(3, 1.0, 2.0)
    clf = tr.Linear([0.0, 0.0, 2.0], -0.5)  # +1 iff z >= 0.25
    # inner errs when z >= 0.25: (1 - 0.25)/2; outer errs when z/2 < 0.25: (1 + 0.125)/2
    assert float(risk(dist, clf)) == pytest.approx(0.5 * 0.375 + 0.5 * 0.5625, abs=1e-14)
    # L2 eps = 0.1: heights move by 0.1/r on each sphere
    assert float(risk(dist, clf, tr.L2(0.1))) == pytest.approx(0.5 * (1 - 0.15) / 2 + 0.5 * (1 + 0.175) / 2,
                                                               abs=1e-14)
    # Linf on coordinates (0, 1) cannot move z: the standard risk
    assert float(risk(dist, clf, tr.Linf(0.3, coords=(0, 1)))) == pytest.approx(float(risk(dist, clf)), abs=1e-15)
    # prediction change: the band 0.15 <= z < 0.35 on the inner sphere, 0.075 <= z/2 < 0.175 on the outer
    assert float(risk(dist, clf, tr.L2(0.1), "prediction-change")) == pytest.approx(
        0.5 * 0.2 / 2 + 0.5 * 0.1 / 2, abs=1e-14)


def _mp_cap(n: int, h: float) -> mpmath.mpf:
    """P[u >= h], h > 0, from the hypergeometric series of the incomplete beta at 50 digits."""
    with mpmath.workdps(50):
        h = mpmath.mpf(h)
        x, a, b = (1 - h) * (1 + h), mpmath.mpf(n - 1) / 2, mpmath.mpf(1) / 2
        return x**a * (1 - x) ** b / (a * mpmath.beta(a, b)) * mpmath.hyp2f1(a + b, 1, a + 1, x) / 2


def test_tiny_band_risk_stays_accurate():
    # a prediction-change band near the pole: ~1e-14 on the outer sphere, ~1e-383 on the inner (below floats)
    dist = tr.ConcentricSpheres(500, 1.0, 3.0)
    clf = tr.Linear([1.0] + [0.0] * 499, -0.99)
    r = risk(dist, clf, tr.L2(0.005), "prediction-change")
    with mpmath.workdps(50):
        ref = (_mp_cap(500, 0.985) - _mp_cap(500, 0.995) + _mp_cap(500, 0.985 / 3) - _mp_cap(500, 0.995 / 3)) / 2
        assert ref < 1e-13
        assert r.log_value == pytest.approx(float(mpmath.log(ref)), rel=1e-10)
        assert r.value == pytest.approx(float(ref), rel=1e-9)
    close = tr.ConcentricSpheres(500, 1.0, 1.001)  # both bands near the pole: the risk is ~1e-383
    r = risk(close, clf, tr.L2(0.005), "prediction-change")
    with mpmath.workdps(50):
        ref = (_mp_cap(500, 0.985) - _mp_cap(500, 0.995) + _mp_cap(500, 0.985 / 1.001)
               - _mp_cap(500, 0.995 / 1.001)) / 2
        assert ref < mpmath.mpf(10) ** -370
        assert r.log_value == pytest.approx(float(mpmath.log(ref)), rel=1e-10)
    assert r.value == 0.0  # underflows as a float, but log_value carries it


@given(st.integers(2, 40), st.floats(0.2, 2.0), st.floats(1.05, 3.0), st.floats(-2, 2), st.floats(0, 0.5),
       st.floats(0, 0.5), st.sampled_from(["l2", "linf", "l1"]))
def test_linear_properties(n, r1, ratio, b, e1, e2, norm):
    dist = tr.ConcentricSpheres(n, r1, r1 * ratio)
    clf = tr.Linear(random_w(n, n), b)
    cls = {"l2": tr.L2, "linf": tr.Linf, "l1": tr.L1}[norm]
    std = float(risk(dist, clf))
    lo, hi = float(risk(dist, clf, cls(min(e1, e2)))), float(risk(dist, clf, cls(max(e1, e2))))
    assert 0 <= std <= lo + 1e-15 <= hi + 2e-15 <= 1 + 2e-15
    assert float(risk(dist, clf, cls(0.0))) == pytest.approx(std, abs=1e-15)
    assert std >= float(risk(dist, dist.bayes_classifier()))
    pc = float(risk(dist, clf, cls(max(e1, e2)), "prediction-change"))
    assert 0 <= pc <= 1


_SYMBOLIC_CASES = ((None, "ball"), ("l2", "ball"), ("linf", "prediction-change"), ("l1", "ball"))


@functools.cache
def _symbolic_linear(n: int, threat: str | None, definition: str):
    """The lambdified symbolic risk of sign(2 x_1 + beta) on spheres with symbolic radii and eps (built once)."""
    r1, r2, eps = sympy.symbols("r_1 r_2 epsilon", positive=True)
    beta = sympy.Symbol("beta", real=True)
    cls = {None: None, "l2": tr.L2, "linf": tr.Linf, "l1": tr.L1}[threat]
    w = tr.Blocks([(2, 1), (0, n - 1)])
    expr = risk(tr.ConcentricSpheres(n, r1, r2), tr.Linear(w, beta), None if cls is None else cls(eps), definition).expr
    return lambdify_risk((r1, r2, beta, eps), expr), cls, w


@given(st.sampled_from([2, 3, 7, 30]), st.floats(0.3, 2.0), st.floats(1.05, 2.0), st.floats(-1.5, 1.5),
       st.floats(0, 0.6), st.sampled_from(_SYMBOLIC_CASES))
def test_linear_symbolic_matches_numeric(n, r1, ratio, b, e, case):
    fn, cls, w = _symbolic_linear(n, *case)
    value = float(risk(tr.ConcentricSpheres(n, r1, r1 * ratio), tr.Linear(w, b), None if cls is None else cls(e),
                       case[1]))
    assert float(fn(r1, r1 * ratio, b, e)) == pytest.approx(value, rel=1e-10, abs=1e-15)


def test_linear_symbolic_dimension():
    D, eps = sympy.Symbol("D", integer=True, positive=True), sympy.Symbol("epsilon", positive=True)
    w = tr.Blocks([(1, 1), (0, D - 1)])
    expr = risk(tr.ConcentricSpheres(D, 1, sympy.Rational(13, 10)), tr.Linear(w, -sympy.Rational(1, 20)),
                tr.L2(eps)).expr
    assert expr.free_symbols == {D, eps}
    num = float(risk(D500, tr.Linear([1.0] + [0.0] * 499, -0.05), tr.L2(0.02)))
    assert float(expr.subs({D: 500, eps: sympy.Rational(1, 50)}).evalf(30)) == pytest.approx(num, rel=1e-10)


def test_linear_sphere_risk_grid_matches_scalar():
    offsets, shifts = np.linspace(-0.2, 0.2, 7), np.array([0.0, 0.01, 0.05])
    grid = linear_sphere_risk(500, 1.0, 1.3, offsets[:, None], shifts[None, :])
    assert grid.shape == (7, 3)
    for i, t in enumerate(offsets):
        for j, s in enumerate(shifts):
            threat = None if s == 0 else tr.L2(s)
            assert grid[i, j] == pytest.approx(float(risk(D500, tr.Linear([1.0] + [0.0] * 499, -t), threat)),
                                               rel=1e-12)


def test_zero_weights_is_a_constant_classifier():
    clf = tr.Linear([0.0] * 500, 1.0)
    assert float(risk(D500, clf)) == 0.5
    assert float(risk(D500, clf, tr.L2(1.0))) == 0.5
    assert float(risk(D500, clf, tr.L2(1.0), "prediction-change")) == 0.0


# ------------------------------------------------------------------------------------------------ radial
def _norm_points(x, direction, targets, lo_tau, hi_tau, rho2, b):
    """Points x + tau * direction whose norm is each target (clipped to the segment [lo_tau, hi_tau])."""
    out = []
    for t in targets:
        # ||x + tau u||^2 = rho^2 + 2 tau b + tau^2 = t^2  ->  tau = -b + sqrt(b^2 - rho^2 + t^2)
        disc = torch.clamp(b * b - rho2 + t * t, min=0.0)
        tau = torch.clamp(-b + torch.sqrt(disc), lo_tau, hi_tau)
        out.append(x + tau[:, None] * direction)
    return out


def _radial_candidates(dist, clf, threat, x):
    """Points of the (L2, coordinate-restricted) ball around each row of x: its two extreme points along x_S and
    the points whose norm is each critical radius (and just below it). Along that segment the norm runs
    monotonically over every reachable norm, so these points decide every definition."""
    m = torch.zeros(x.shape[1], dtype=torch.bool)
    m[threat.coord_indices(x.shape[1])] = True
    xs = torch.where(m, x, torch.zeros_like(x))
    b = torch.linalg.vector_norm(xs, dim=1)
    u = xs / b[:, None]
    rho2 = (x * x).sum(dim=1)
    eps = float(threat.eps)
    lo_tau, hi_tau = -torch.minimum(b, torch.full_like(b, eps)), torch.full_like(b, eps)
    crit = [float(clf.r), float(dist.r_mid)]
    targets = crit + [c * (1 - 1e-9) for c in crit]
    cands = [x + lo_tau[:, None] * u, x + hi_tau[:, None] * u, x]
    cands += _norm_points(x, u, targets, lo_tau, hi_tau, rho2, b)
    for c in cands:
        assert bool(threat.contains(c, x, atol=1e-9).all())
    return cands


def _radial_event(dist, clf, threat, definition, x, y, cands=None):
    """Is some point of the ball adversarial? tr.is_adversarial on the deciding candidates."""
    cands = _radial_candidates(dist, clf, threat, x) if cands is None else cands
    hit = torch.zeros(x.shape[0], dtype=torch.bool)
    for c in cands:
        hit |= tr.is_adversarial(definition, clf, c, y, dist=dist, x=x)
    return hit


def test_radial_l2_coords_vs_monte_carlo():
    # L2 on 10 of 50 coordinates: the reach depends on ||x_S||, whose square is Beta(5, 20) on the unit sphere
    dist = tr.ConcentricSpheres(50, 1.0, 1.3)
    threat = tr.L2(0.35, coords=slice(0, 10))
    gen = torch.Generator().manual_seed(12)
    x, y = dist.sample(6_000, generator=gen, dtype=torch.float64)
    for r in (1.1, 1.19):
        clf = tr.Radial(r)
        cands = _radial_candidates(dist, clf, threat, x)
        for definition in tr.DEFINITIONS:
            closed = float(risk(dist, clf, threat, definition))
            assert_in_ci(int(_radial_event(dist, clf, threat, definition, x, y, cands).sum()), len(y), closed)
            assert 0 < closed < 1


@given(st.integers(2, 8), st.floats(0.5, 2.0), st.floats(1.1, 2.0), st.floats(0.3, 3.0), st.floats(0.0, 1.0),
       st.integers(1, 8), st.sampled_from(tr.DEFINITIONS))
def test_radial_l2_all_definitions_vs_monte_carlo_small(n, r1, ratio, r_frac, e, k, definition):
    dist = tr.ConcentricSpheres(n, r1, r1 * ratio)
    clf = tr.Radial(r1 * (0.5 + r_frac * ratio / 2))
    # a classifier radius within rounding of the middle radius leaves an ulp-wide sliver that the exact answer
    # counts and sampling cannot hit: a tie, not a test of the formula
    assume(abs(clf.r - float(dist.r_mid)) > 1e-9)
    # likewise a classifier radius on a data sphere: the exact answer puts the whole sphere on the +1 side (zero
    # margin), sampled points sit an ulp either side of it
    assume(min(abs(clf.r - float(r)) for r in (dist.r_inner, dist.r_outer)) > 1e-9)
    threat = tr.L2(e * r1, coords=slice(0, min(k, n)))
    # and a ball whose edge reaches the classifier's or the middle radius exactly from a data sphere (e.g. r = 2,
    # eps = 0.5, classifier radius 2.5): the exact answer decides the edge point, sampled points round either side
    reach = [float(r) + sgn * e * r1 for r in (dist.r_inner, dist.r_outer) for sgn in (1, -1)]
    assume(all(min(abs(v - clf.r), abs(v - float(dist.r_mid))) > 1e-9 for v in reach))
    closed = float(risk(dist, clf, threat, definition))
    nn = 4000
    kk = mc_count(dist, nn, seed=13, event=lambda x, y: _radial_event(dist, clf, threat, definition, x, y))
    assert_in_ci(kk, nn, closed, level=1 - 1e-7)  # many draws: a strict level keeps false alarms away


@given(st.floats(0.2, 2.0), st.floats(1.05, 3.0), st.floats(0.0, 4.0), st.floats(0, 1.0), st.floats(0, 1.0))
def test_radial_l2_full_properties(r1, ratio, r, e1, e2):
    dist = tr.ConcentricSpheres(50, r1, r1 * ratio)
    clf = tr.Radial(r)
    std = float(risk(dist, clf))
    assert std == 0.5 * (r <= r1) + 0.5 * (r > r1 * ratio)
    lo, hi = sorted((e1, e2))
    for definition in tr.DEFINITIONS:
        a, b = float(risk(dist, clf, tr.L2(lo), definition)), float(risk(dist, clf, tr.L2(hi), definition))
        assert 0 <= a <= b <= 1
        assert float(risk(dist, clf, tr.L2(0.0), definition)) == float(risk(dist, clf, None, definition))
    assert float(risk(dist, clf, tr.L2(hi))) >= float(risk(dist, clf, tr.L2(hi), "projection"))
    assert float(risk(dist, dist.bayes_classifier())) == 0.0 <= std


def test_radial_by_hand():
    dist = tr.ConcentricSpheres(10, 1.0, 2.0)  # middle radius 1.5
    # Bayes classifier: robust until eps reaches 1/2 in L2, then every inner point reaches the middle sphere
    bayes = dist.bayes_classifier()
    assert float(risk(dist, bayes, tr.L2(0.49))) == 0.0
    assert float(risk(dist, bayes, tr.L2(0.5))) == 0.5
    assert float(risk(dist, bayes, tr.L2(0.5), "projection")) == 0.0  # reaching the middle flips the true label
    assert float(risk(dist, bayes, tr.L2(0.6), "error-region")) == 0.0  # f agrees with Bayes everywhere
    assert float(risk(dist, bayes, tr.L2(0.6), "prediction-change")) == 1.0
    # a radius between the inner sphere and the middle: inner points reach it at eps = 0.2
    clf = tr.Radial(1.2)
    assert float(risk(dist, clf, tr.L2(0.19))) == 0.0
    assert float(risk(dist, clf, tr.L2(0.2))) == 0.5
    assert float(risk(dist, clf, tr.L2(0.2), "projection")) == 0.5
    assert float(risk(dist, clf, tr.L2(0.19), "error-region")) == 0.0
    assert float(risk(dist, clf, tr.L2(0.8), "error-region")) == 1.0  # outer points reach [1.2, 1.5) at 0.5+


def test_radial_linf_decided_cases_vs_samples():
    # Linf: hi^2 = |x|^2 + 2 eps |x|_1 + n eps^2 varies over the sphere; decided only when the whole range agrees
    eps = 0.001
    for r, expected in ((1.15, 0.0), (1.1, 0.0), (1.0, 0.5), (1.3, 0.5)):
        assert float(risk(D500, tr.Radial(r), tr.Linf(eps))) == expected
    gen = torch.Generator().manual_seed(14)
    x, y = D500.sample(5000, generator=gen, dtype=torch.float64)
    hi = torch.linalg.vector_norm(x.abs() + eps, dim=1)
    lo = torch.linalg.vector_norm((x.abs() - eps).clamp(min=0), dim=1)
    inner = y == -1
    assert bool((hi[inner] < 1.15).all()) and bool((lo[~inner] >= 1.15).all())  # Radial(1.15) is robust
    with pytest.raises(NotImplementedError, match="estimate_risk"):
        risk(D500, tr.Radial(1.15), tr.Linf(0.01))
    # with one free coordinate every norm is the same segment: Linf = L2
    one = tr.Linf(0.2, coords=(7,))
    assert float(risk(D500, tr.Radial(1.1), one)) == float(risk(D500, tr.Radial(1.1), tr.L2(0.2, coords=(7,))))


def test_radial_symbolic():
    r1, r2, eps = sympy.symbols("r_1 r_2 epsilon", positive=True)
    dist = tr.ConcentricSpheres(500, r1, r2)
    expr = risk(dist, tr.Radial((r1 + r2) / 2), tr.L2(eps)).expr
    assert float(expr.subs({r1: 1, r2: 2, eps: 0.4})) == 0.0
    assert float(expr.subs({r1: 1, r2: 2, eps: 0.5})) == 0.5


# ------------------------------------------------------------------------------------------------ quadratic
def _mp_imhof(weights, counts) -> mpmath.mpf:
    """Imhof (1961) at 30 digits: P[sum w chi2_k > 0] = 1/2 + 1/pi int sin(theta(u)) / (u rho(u)) du."""
    with mpmath.workdps(30):
        ws = [mpmath.mpf(w) for w in weights]

        def f(u):
            theta = sum(k * mpmath.atan(w * u) for w, k in zip(ws, counts, strict=True)) / 2
            rho = mpmath.fprod((1 + w * w * u * u) ** (mpmath.mpf(k) / 4) for w, k in zip(ws, counts, strict=True))
            return mpmath.sin(theta) / (u * rho)

        return mpmath.mpf(1) / 2 + mpmath.quad(f, [0, 1, 10, 100, mpmath.inf]) / mpmath.pi


@pytest.mark.parametrize(("weights", "counts"), [
    ([1.0, -2.0], [1, 1]), ([0.3, -0.1, 0.7, -1.2], [2, 3, 1, 4]), ([1.0, -1.0, 0.5], [5, 5, 2]),
    ([-0.05, 0.2, -0.4, 0.01, 0.3], [1, 1, 1, 1, 1]),
])
def test_weighted_chi2_vs_mpmath_imhof(weights, counts):
    ref = float(_mp_imhof(weights, counts))
    assert weighted_chi2_probability(weights, counts) == pytest.approx(ref, rel=1e-10)
    lp, ln = weighted_chi2_log_probabilities(weights, counts)
    assert math.exp(lp) + math.exp(ln) == pytest.approx(1.0, abs=1e-13)


@given(st.floats(1e-6, 1e6))
def test_weighted_chi2_cauchy_closed_form(b):
    # z1^2 > b z2^2 iff |z1/z2| > sqrt(b), and z1/z2 is Cauchy
    assert weighted_chi2_probability([1.0, -b]) == pytest.approx(1 - 2 / math.pi * math.atan(math.sqrt(b)),
                                                                 rel=1e-10)


@pytest.mark.parametrize(("a", "k", "m"), [(0.1, 5, 7), (0.3, 250, 250), (0.01, 250, 250), (2.0, 3, 497),
                                           (0.05, 50, 450), (1e-3, 10, 490)])
def test_weighted_chi2_beta_closed_form_and_tails(a, k, m):
    # a chi2_k > chi2_m iff chi2_k/(chi2_k + chi2_m) > 1/(1 + a), a Beta(k/2, m/2) upper tail; the reference is
    # the hypergeometric series of the incomplete beta at 50 digits (tails down to 1e-700)
    with mpmath.workdps(50):
        x, p_, q_ = 1 - 1 / (1 + mpmath.mpf(a)), mpmath.mpf(m) / 2, mpmath.mpf(k) / 2
        ref = (p_ * mpmath.log(x) + q_ * mpmath.log(1 - x) - mpmath.log(p_ * mpmath.beta(p_, q_))
               + mpmath.log(mpmath.hyp2f1(p_ + q_, 1, p_ + 1, x)))
    lp, _ = weighted_chi2_log_probabilities([a, -1.0], [k, m])
    assert lp == pytest.approx(float(ref), rel=1e-9, abs=1e-12)
    if float(ref) < math.log(1e-20):
        # PITFALLS 14: the normal approximation of such tails is off by orders of magnitude
        approx = quadratic_error_normal_approximation([a, -1.0], [k, m])
        assert abs(math.log(max(approx, 1e-320)) - float(ref)) > math.log(10)


def test_weighted_chi2_vs_monte_carlo():
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, 12)
    z = rng.standard_normal((400_000, 12))
    k = int(((z * z) @ w > 0).sum())
    assert_in_ci(k, 400_000, weighted_chi2_probability(w))


def test_weighted_chi2_degenerate():
    assert weighted_chi2_log_probabilities([1.0, 2.0]) == (0.0, -math.inf)
    assert weighted_chi2_log_probabilities([-1.0, 0.0]) == (-math.inf, 0.0)
    assert weighted_chi2_log_probabilities([0.0]) == (-math.inf, -math.inf)
    with pytest.raises(ValueError, match="counts"):
        weighted_chi2_log_probabilities([1.0, -1.0], [1, 0])


def test_quadratic_standard_risk_vs_monte_carlo_d500(d500_sample):
    x, y = d500_sample
    rng = np.random.default_rng(6)
    alpha = rng.uniform(0.9, 1.095, 500)
    clf = tr.Quadratic(alpha, 1.0)
    r = risk(D500, clf)
    assert_in_ci(int((clf.predict(x) != y).sum()), len(y), float(r))
    assert 0.01 < float(r) < 0.4
    # the inner error is P[sum (alpha_i - 1) z_i^2 >= 0]; the outer sphere (1.69 alpha_i > 1) never errs
    assert r.details["outer error"] == 0.0
    assert r.details["inner error"] == pytest.approx(weighted_chi2_probability(alpha - 1.0))


def test_quadratic_blocks_and_imhof_expression():
    dist = tr.ConcentricSpheres(6, 1.0, 1.5)
    clf = tr.Quadratic([0.8, 0.8, 1.3, 1.3, 1.3, 0.5], 1.0)
    r = risk(dist, clf)
    # inner: weights alpha - 1 = (-0.2 x2, 0.3 x3, -0.5); outer: 2.25 alpha - 1 = (0.8 x2, 1.925 x3, 0.125)
    assert float(r) == pytest.approx(0.5 * float(_mp_imhof([-0.2, 0.3, -0.5], [2, 3, 1])), rel=1e-10)
    blocks = [(-0.2, 2), (0.3, 3), (-0.5, 1)]
    assert float(imhof_expr(blocks).evalf(20)) == pytest.approx(float(_mp_imhof([-0.2, 0.3, -0.5], [2, 3, 1])),
                                                                rel=1e-8)
    assert float(risk(dist, clf, tr.L2(0.0))) == float(r)
    with pytest.raises(NotImplementedError, match="estimate_risk"):
        risk(dist, clf, tr.L2(0.1))


def test_quadratic_symbolic_is_imhof():
    c = sympy.Symbol("c", positive=True)
    r = risk(tr.ConcentricSpheres(4, 1, 2), tr.Quadratic([1, 1, 2, 2], c))
    assert r.value is None and c in r.expr.free_symbols


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="dimension"):
        risk(D500, tr.Linear([1.0, 2.0]))
