"""Bounds: Tsipras' trade-off, spherical isoperimetry, optimal adversarial risks, label-invariant radii."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special as sc
import scipy.stats
import sympy
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.bounds import (
    bounds_report,
    check_tsipras_tradeoff,
    distance_statistics,
    isoperimetric_expansion,
    isoperimetric_mean_distance,
    label_invariant_radius,
    optimal_risk,
    tsipras_tradeoff_bound,
)
from toyrobust.risks import risk
from toyrobust.risks.caps import cap_fraction_height, lambdify_risk
from toyrobust.testing import gaussian_mixtures, tsipras


def Q(x: float) -> float:
    return float(scipy.stats.norm.sf(x))


# ------------------------------------------------------------------------------------------------ inline risks
def gaussian_linear_ball_risk(dist, w: np.ndarray, threat) -> float:
    """Q((<w, mean> - eps ||w_S||_q) / (sigma ||w||_2)) for sign(<w, x>) (b = 0), derived here from Holder."""
    mean = dist.mean.to_numpy()
    eps = 0.0 if threat is None else float(threat.eps)
    q = 2 if threat is None else threat.q
    ws = w if threat is None else w * threat.mask(len(w), dtype=torch.float64).numpy()
    drop = eps * np.linalg.norm(ws, ord=q)
    return Q((w @ mean - drop) / (float(dist.sigma) * np.linalg.norm(w)))


def tsipras_linear_risks(p, eta, d, w1, wg, b, eps) -> tuple[float, float]:
    """(standard risk, Linf robust risk) of sign(w1 x1 + <wg, x_g> + b) on Tsipras(p, eta, d), derived inline.

    Given y and x1, the margin y(w1 x1 + <wg, g> + b) is Gaussian with mean y(w1 x1 + b) + eta sum(wg) and sd
    ||wg||; an Linf adversary removes eps (|w1| + ||wg||_1) from it. y = +1 errs on margin < 0, y = -1 on >= 0
    (a zero margin predicts +1), which matters only when wg = 0.
    """
    scale = max(abs(w1), abs(b), float(np.max(np.abs(wg))))  # the classifier is scale-free; avoid underflow
    if scale > 0:
        w1, b, wg = w1 / scale, b / scale, np.asarray(wg) / scale
    sd, mean_g = float(np.linalg.norm(wg)), eta * float(np.sum(wg))
    out = []
    for drop in (0.0, eps * (abs(w1) + float(np.sum(np.abs(wg))))):
        total = 0.0
        for y in (1, -1):
            for x1, px in ((y, p), (-y, 1 - p)):
                m = y * (w1 * x1 + b) + mean_g - drop  # mean of the (worst-case) signed margin
                if sd == 0:
                    err = float(m < 0) if y == 1 else float(m <= 0)
                else:
                    err = Q(m / sd)
                total += 0.5 * px * err
        out.append(total)
    return out[0], out[1]


def tsipras_bayes_risk(p, eta, d) -> float:
    """P[y (L x1 + 2 eta sum g) < 0] for the Bayes classifier, L = log(p/(1-p)): x1 = y gives Q((L + 2 eta^2 d)/
    (2 eta sqrt d)), x1 = -y gives Q((2 eta^2 d - L)/(2 eta sqrt d))."""
    L = math.log(p / (1 - p))
    s = 2 * eta * math.sqrt(d)
    return p * Q((L + 2 * eta**2 * d) / s) + (1 - p) * Q((2 * eta**2 * d - L) / s)


# ------------------------------------------------------------------------------------------------ Tsipras 2.1
@given(tsipras(max_d=6), st.data())
def test_tsipras_tradeoff_holds_for_linear_classifiers(dist, data):
    p, eta, d = float(dist.p), float(dist.eta), int(dist.d)
    w1 = data.draw(st.floats(-3, 3))
    wg = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=d, max_size=d)))
    b = data.draw(st.floats(-3, 3))
    eps = 2 * eta * data.draw(st.floats(1.0, 2.0))
    std, rob = tsipras_linear_risks(p, eta, d, w1, wg, b, eps)
    bound = tsipras_tradeoff_bound(p, std)
    assert 1 - rob <= bound + 1e-9
    assert bound == pytest.approx(min(1.0, p * std / (1 - p)))


def test_tsipras_bound_is_attained_by_sign_x1_and_rules_out_accurate_robust_classifiers():
    # sign(x1): standard risk 1 - p, robust accuracy p (x1 cannot cross 0 for eps < 1): the bound p/(1-p)(1-p) = p
    p, eta = 0.9, 0.3
    std, rob = tsipras_linear_risks(p, eta, 4, 1.0, np.zeros(4), 0.0, 0.7)
    assert std == pytest.approx(1 - p) and 1 - rob == pytest.approx(tsipras_tradeoff_bound(p, std))
    # the Bayes classifier is accurate (small delta), so its robust accuracy must be small
    L = math.log(p / (1 - p))
    std, rob = tsipras_linear_risks(p, eta, 200, L, np.full(200, 2 * eta), 0.0, 2 * eta)
    assert std < 0.01 and 1 - rob <= tsipras_tradeoff_bound(p, std) < 0.1
    sym = tsipras_tradeoff_bound(sympy.Symbol("p", positive=True), sympy.Symbol("delta", positive=True))
    assert isinstance(sym, sympy.Basic)
    with pytest.raises(ValueError, match="delta"):
        tsipras_tradeoff_bound(0.9, 1.5)


def test_check_tsipras_tradeoff_uses_the_analytic_risks():
    dist = tr.Tsipras(0.9, 0.5, 3)
    clf = dist.bayes_classifier()
    out = check_tsipras_tradeoff(dist, clf, tr.Linf(1.0))  # a lost registration fails here, it does not skip
    std, rob = tsipras_linear_risks(0.9, 0.5, 3, math.log(9), np.full(3, 1.0), 0.0, 1.0)
    assert out["standard risk"] == pytest.approx(std, rel=1e-9)
    assert out["robust risk"] == pytest.approx(rob, rel=1e-9)
    assert out["holds"]
    with pytest.raises(ValueError, match="2 eta"):
        check_tsipras_tradeoff(dist, clf, tr.Linf(0.5))


# ------------------------------------------------------------------------------------------------ isoperimetry
@given(st.floats(1e-6, 1 - 1e-6), st.floats(0.0, 2.5), st.floats(0.5, 2.0))
def test_isoperimetric_expansion_n3_closed_form(mu, eps, r):
    # S^2: the cap of measure mu has cos(theta) = 1 - 2 mu; a chord eps adds the angle 2 arcsin(eps / 2r)
    theta = math.acos(1 - 2 * mu) + 2 * math.asin(min(1.0, eps / (2 * r)))
    expected = (1 - math.cos(min(theta, math.pi))) / 2
    assert isoperimetric_expansion(3, mu, eps, r) == pytest.approx(expected, abs=1e-12)
    assert isoperimetric_expansion(3, mu, eps * r, r, metric="geodesic") == pytest.approx(
        (1 - math.cos(min(math.acos(1 - 2 * mu) + eps, math.pi))) / 2, abs=1e-12)


@given(st.integers(2, 600), st.floats(-0.99, 0.99), st.floats(0.0, 0.5), st.floats(0.5, 2.0))
def test_no_linear_cap_expands_less_than_the_bound(n, h, eps, r):
    # a linear classifier's error set on the sphere of radius r is the cap u >= h; an L2 ball of radius eps reaches
    # the half-space from every point with u >= h - eps/r, which must be at least Levy's smallest expansion
    mu = cap_fraction_height(n, h)
    assume(mu > 1e-300)
    attacked = cap_fraction_height(n, h - eps / r)
    assert attacked >= isoperimetric_expansion(n, mu, eps, r) - 1e-12


def test_radial_error_sets_and_the_bound():
    # a radial classifier errs on all or none of a sphere: expansions of measure 0 and 1, the bound's end points
    dist = tr.ConcentricSpheres(50, 1.0, 1.3)
    for r_clf in (0.9, 1.1, 1.4):
        mu_inner = float(risk(dist, tr.Radial(r_clf))) * 2 if r_clf <= 1.0 else 0.0
        attacked = 2 * float(risk(dist, tr.Radial(r_clf), tr.L2(0.05))) if r_clf <= 1.05 else 0.0
        assert attacked >= isoperimetric_expansion(50, mu_inner, 0.05) - 1e-12
    assert isoperimetric_expansion(50, 0.0, 0.3) == 0.0
    assert isoperimetric_expansion(50, 1.0, 0.3) == 1.0


def test_isoperimetric_expansion_vs_monte_carlo_d500():
    # the expansion of a cap, measured on samples: a point is within chord eps of the cap {u >= h} iff its angle to
    # the pole is at most theta + 2 arcsin(eps/2)
    n, mu, eps = 500, 0.01, 0.1
    bound = isoperimetric_expansion(n, mu, eps)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(40_000, n, generator=gen, dtype=torch.float64)
    x = z / torch.linalg.vector_norm(z, dim=1, keepdim=True)
    h = float(np.cos(float(scipy.optimize.brentq(lambda t: cap_fraction_height(n, math.cos(t)) - mu, 0, math.pi))))
    # nearest cap point to x: itself if inside, else the boundary point in the plane of x and the pole
    u = x[:, 0]
    perp = torch.sqrt(torch.clamp(1 - u * u, min=0))
    boundary = torch.stack([torch.full_like(u, h), torch.full_like(u, math.sqrt(1 - h * h))], dim=1)
    dist = torch.where(u >= h, 0.0, torch.linalg.vector_norm(torch.stack([u, perp], 1) - boundary, dim=1))
    k = int((dist <= eps).sum())
    ci = scipy.stats.binomtest(k, len(u)).proportion_ci(0.999, method="exact")
    assert ci.low <= bound <= ci.high


@pytest.mark.parametrize(("n", "mu", "metric"), [(3, 0.2, "euclidean"), (10, 0.05, "geodesic"),
                                                 (500, 0.01, "euclidean"), (500, 1e-6, "euclidean")])
def test_mean_distance_two_routes(n, mu, metric):
    # layer cake: E d(x, C) = int_0^inf P[d(x, C) > eps] d eps = int (1 - expansion(eps)) d eps
    direct = isoperimetric_mean_distance(n, mu, metric=metric)
    top = 2.0 if metric == "euclidean" else math.pi
    theta = float(scipy.optimize.brentq(lambda t: cap_fraction_height(n, math.cos(t)) - mu, 0, math.pi))
    width = 5 / math.sqrt(n)  # the expansion jumps from ~0 to ~1 as theta + phi crosses pi/2 +- width
    pts = []
    for angle in (math.pi / 2 - theta - width, math.pi / 2 - theta, math.pi / 2 - theta + width):
        e = 2 * math.sin(angle / 2) if metric == "euclidean" else angle
        if 0 < e < top:
            pts.append(e)
    layer = scipy.integrate.quad(lambda e: 1 - isoperimetric_expansion(n, mu, e, metric=metric), 0, top,
                                 points=pts, limit=400, epsabs=1e-13)[0]
    assert direct == pytest.approx(layer, rel=1e-7)


def test_mean_distance_n3_mpmath():
    # S^2, geodesic: int_theta^pi (psi - theta) sin(psi)/2 d psi = (sin(theta) ... ) by mpmath at 30 digits
    mu = 0.2
    theta = mpmath.acos(1 - 2 * mpmath.mpf(mu))
    ref = mpmath.quad(lambda psi: (psi - theta) * mpmath.sin(psi) / 2, [theta, mpmath.pi])
    assert isoperimetric_mean_distance(3, mu, metric="geodesic") == pytest.approx(float(ref), rel=1e-10)
    ref_e = mpmath.quad(lambda psi: 2 * mpmath.sin((psi - theta) / 2) * mpmath.sin(psi) / 2, [theta, mpmath.pi])
    assert isoperimetric_mean_distance(3, mu, r=2.0) == pytest.approx(2 * float(ref_e), rel=1e-10)
    # seed 003: in high dimension the cap of any fixed measure comes within O(1/sqrt(D)) of a typical point
    assert isoperimetric_mean_distance(500, 0.01) < 3 / math.sqrt(500)
    with pytest.raises(ValueError, match="mu"):
        isoperimetric_mean_distance(10, 0.0)


# ------------------------------------------------------------------------------------------------ optimal risk
norms = st.sampled_from([tr.Linf, tr.L2, tr.L1])


@given(gaussian_mixtures(max_dim=4).filter(lambda g: g.mean.is_numeric and g.dim <= 4), norms,
       st.floats(0, 2.0), st.data())
def test_optimal_risk_below_every_linear_classifier_gaussian(dist, cls, eps, data):
    threat = cls(eps)
    opt = optimal_risk(dist, threat)
    w = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=dist.dim, max_size=dist.dim)))
    assume(np.linalg.norm(w) > 1e-3)
    assert 0 <= float(opt) <= 0.5
    assert float(opt) <= gaussian_linear_ball_risk(dist, w, threat) + 1e-12
    # and the classifier it names reaches it
    w_opt = opt.classifier.w.to_numpy()
    if np.linalg.norm(w_opt) > 0:
        assert gaussian_linear_ball_risk(dist, w_opt, threat) == pytest.approx(float(opt), rel=1e-9, abs=1e-15)
    else:
        assert float(opt) == 0.5


@settings(max_examples=15)
@given(st.lists(st.floats(-3, 3).filter(lambda v: abs(v) > 1e-2), min_size=1, max_size=3), st.floats(0.3, 2.0),
       st.floats(0, 3.0), st.sampled_from([tr.L2, tr.Linf]))
def test_optimal_risk_gaussian_matches_numerical_minimum(mean, sigma, eps, cls):
    dist = tr.GaussianMixture(mean, sigma)
    threat = cls(eps)
    opt = optimal_risk(dist, threat)
    m = np.array(mean)

    def log_risk(w):  # log Q((<w, m> - eps ||w||_q) / (sigma ||w||)) for sign(<w, x>), inline
        n = np.linalg.norm(w)
        return sc.log_ndtr(-(w @ m - eps * np.linalg.norm(w, ord=threat.q)) / (sigma * n)) if n > 0 else 0.0

    # the smallest risk among linear classifiers, found by scipy from several starts, or the constant classifier
    starts = [m, np.sign(m), *np.random.default_rng(0).standard_normal((2, len(m)))]
    best = min(min(scipy.optimize.minimize(log_risk, s0, method="Nelder-Mead",
                                           options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 1500}).fun
                   for s0 in starts), math.log(0.5))
    assert opt.log_value <= best + 1e-9
    assert opt.log_value == pytest.approx(best, abs=1e-6)
    # the translation lower bound: the Bayes risk once the means move toward each other by the nearest z of the ball
    cons = {"type": "ineq", "fun": lambda z: eps - np.linalg.norm(z, ord=threat.p)}
    # (at eps = 0 the ball is {0}; SLSQP cannot start on the non-smooth norm's kink there)
    # (the Linf ball is a box: given to SLSQP as smooth bounds, its max-norm constraint would stall the solver)
    box = [(-eps, eps)] * len(m) if threat.p == math.inf else None
    z = np.zeros_like(m) if eps == 0 else scipy.optimize.minimize(
        lambda z: np.sum((m - z) ** 2), np.zeros_like(m), constraints=[] if box else [cons], bounds=box,
        method="SLSQP", options={"ftol": 1e-14, "maxiter": 300}).x
    assert float(opt) == pytest.approx(Q(np.linalg.norm(m - z) / sigma), abs=1e-6)


def test_optimal_risk_gaussian_l1_and_coords():
    dist = tr.GaussianMixture([3.0, -1.0, 0.5, 0.0], 1.0)
    # L1 eps = 2.5: the L1-ball projection of |mean| = (3, 1, .5, 0) shrinks by theta = 0.75: (2.25, .25, 0, 0)
    opt = optimal_risk(dist, tr.L1(2.5))
    assert float(opt) == pytest.approx(Q(math.sqrt(0.75**2 * 2 + 0.5**2)), rel=1e-12)
    # Linf on coordinates 1..3 only: the first mean entry is untouched
    opt = optimal_risk(dist, tr.Linf(0.6, coords=slice(1, None)))
    assert float(opt) == pytest.approx(Q(math.sqrt(9 + 0.4**2)), rel=1e-12)
    assert opt.classifier.w.to_numpy() == pytest.approx([3.0, -0.4, 0.0, 0.0])


def test_optimal_risk_seed_003_symbolic():
    D = sympy.Symbol("D", integer=True, positive=True)
    dist = tr.GaussianMixture.robust_nonrobust(D)
    a = sympy.sqrt(sympy.log(D) / (D - 1))
    opt = optimal_risk(dist, tr.Linf(2 * a))
    assert opt.value is None
    fn = lambdify_risk(D, opt.expr)
    for d in (10, 1000, 10**6):
        num = optimal_risk(tr.GaussianMixture.robust_nonrobust(d), tr.Linf(2 * math.sqrt(math.log(d) / (d - 1))))
        assert float(fn(d)) == pytest.approx(float(num), rel=1e-12)
        assert float(num) == pytest.approx(Q(max(0.0, 1 - 2 * math.sqrt(math.log(d) / (d - 1)))), rel=1e-12)
    # the best robust classifier ends near sign(x1), with risk Q(1) ~ 0.16 (seed 003)
    assert float(fn(10**12)) == pytest.approx(Q(1.0), abs=1e-4)
    # without an adversary, the Bayes risk Q(sqrt(1 + log D)) (seed 003)
    bayes = optimal_risk(dist).expr
    assert float(lambdify_risk(D, bayes)(1000)) == pytest.approx(Q(math.sqrt(1 + math.log(1000))), rel=1e-12)


@given(st.floats(0.1, 5.0), st.floats(0.0, 10.0), st.floats(-2.0, 7.0), st.sampled_from([tr.Linf, tr.L2, tr.L1]))
def test_optimal_risk_point_masses(gap, eps, t, cls):
    opt = float(optimal_risk(tr.PointMasses(gap), cls(eps)))
    assert opt == (0.0 if eps < gap / 2 else 0.5)
    # inline ball risk of the threshold "x <= t means +1": 0 is lost iff eps > t, gap iff gap - eps <= t
    ball = 0.5 * (eps > t) + 0.5 * (gap - eps <= t)
    assert opt <= ball


def test_optimal_risk_point_masses_tie_and_symbols():
    assert float(optimal_risk(tr.PointMasses(1.0), tr.L2(0.5))) == 0.5  # the closed balls share x = 1/2
    clf = optimal_risk(tr.PointMasses(1.0), tr.L2(0.4999)).classifier
    x = torch.tensor([[0.4999], [-0.4999], [0.5001], [1.4999]], dtype=torch.float64)
    assert clf.predict(x).tolist() == [1, 1, -1, -1]
    g, e = sympy.symbols("g epsilon", positive=True)
    expr = optimal_risk(tr.PointMasses(g), tr.Linf(e)).expr
    assert expr.subs({g: 2, e: 0.9}) == 0 and expr.subs({g: 2, e: 1}) == sympy.Rational(1, 2)


@given(tsipras(max_d=5), st.floats(0.0, 0.999), st.data())
def test_optimal_risk_tsipras_linf(dist, eps, data):
    p, eta, d = float(dist.p), float(dist.eta), int(dist.d)
    opt = float(optimal_risk(dist, tr.Linf(eps)))
    # below every linear classifier (x1 pinned: eps < 1) and below sign(x1), whose robust risk is 1 - p
    w1 = data.draw(st.floats(-3, 3))
    wg = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=d, max_size=d)))
    b = data.draw(st.floats(-3, 3))
    assert opt <= tsipras_linear_risks(p, eta, d, w1, wg, b, eps)[1] + 1e-12
    assert opt <= 1 - p + 1e-12
    if eps >= eta:  # the Gaussian features can be swapped between the classes: only x1 is left (Theorem 2.1)
        assert opt == pytest.approx(1 - p, rel=1e-12)
    if eps == 0:
        assert opt == pytest.approx(tsipras_bayes_risk(p, eta, d), rel=1e-9)


def test_optimal_risk_tsipras_regimes_and_attainment():
    dist = tr.Tsipras(0.8, 0.6, 4)
    assert float(optimal_risk(dist)) == pytest.approx(tsipras_bayes_risk(0.8, 0.6, 4), rel=1e-12)
    # eps >= 1: x1 can be moved to 0, so only the Gaussian part is left: Q(sqrt(d) (eta - eps)_+)
    assert float(optimal_risk(tr.Tsipras(0.8, 1.5, 4), tr.Linf(1.2))) == pytest.approx(Q(2 * 0.3), rel=1e-12)
    assert float(optimal_risk(dist, tr.Linf(1.0))) == 0.5
    with pytest.raises(NotImplementedError, match="budget"):
        optimal_risk(dist, tr.L2(1.5))
    # eps < 1: the optimal classifier sign(2 <mu', g> + L sign(x1)) reaches the closed form under its worst attack
    eps = 0.25
    opt = optimal_risk(dist, tr.Linf(eps))
    clf = opt.classifier
    gen = torch.Generator().manual_seed(4)
    x, y = dist.sample(200_000, generator=gen, dtype=torch.float64)
    x_adv = x.clone()
    x_adv[:, 1:] -= eps * y[:, None].to(x.dtype)  # every Gaussian coordinate pushed toward the other class
    x_adv[:, 0] -= 0.99 * eps * x[:, 0]  # x1 moved toward 0 (cannot cross it)
    k = int((clf.predict(x_adv) != y).sum())
    ci = scipy.stats.binomtest(k, len(y)).proportion_ci(0.999, method="exact")
    assert ci.low <= float(opt) <= ci.high
    # symbolic: one expression for both regimes
    p, eta, d, e = sympy.symbols("p eta d epsilon", positive=True)
    expr = optimal_risk(tr.Tsipras(p, eta, d), tr.Linf(e)).expr
    f = lambdify_risk((p, eta, d, e), expr)
    for ev in (0.0, 0.25, 0.7, 1.2):
        assert float(f(0.8, 0.6, 4, ev)) == pytest.approx(float(optimal_risk(dist, tr.Linf(ev))), rel=1e-10)


def test_optimal_risk_spheres():
    dist = tr.ConcentricSpheres(500, 1.0, 1.3)
    assert float(optimal_risk(dist, tr.L2(0.149))) == 0.0
    assert float(optimal_risk(dist, tr.L2(0.151))) == 0.5
    assert float(optimal_risk(dist, tr.Linf(0.006))) == 0.0  # 0.006 sqrt(500) = 0.134 < 0.15
    assert float(optimal_risk(dist, tr.Linf(0.2))) == 0.5
    with pytest.raises(NotImplementedError, match="no closed form"):
        optimal_risk(dist, tr.Linf(0.01))
    # below every registered classifier's ball risk
    for clf in (tr.Radial(1.1), tr.Radial(1.15), tr.Linear(np.random.default_rng(0).standard_normal(500), 0.1)):
        for threat in (tr.L2(0.1), tr.L2(0.2), tr.Linf(0.001)):
            assert float(optimal_risk(dist, threat)) <= float(risk(dist, clf, threat)) + 1e-15
    r1, r2, e = sympy.symbols("r_1 r_2 epsilon", positive=True)
    expr = optimal_risk(tr.ConcentricSpheres(500, r1, r2), tr.L2(e)).expr
    assert expr.subs({r1: 1, r2: 2, e: 0.4}) == 0 and expr.subs({r1: 1, r2: 2, e: 0.6}) == sympy.Rational(1, 2)


# ------------------------------------------------------------------------------------------------ seed 001
def test_label_invariant_radius_values():
    assert label_invariant_radius(tr.PointMasses(2.0), "l2") == 1.0
    spheres = tr.ConcentricSpheres(500, 1.0, 1.3)
    assert label_invariant_radius(spheres, "l2") == pytest.approx(0.15)
    assert label_invariant_radius(spheres, "l1") == pytest.approx(0.15)
    assert label_invariant_radius(spheres, "linf") == pytest.approx(0.15 / math.sqrt(500))
    assert label_invariant_radius(spheres, tr.Linf(1.0, coords=slice(0, 25))) == pytest.approx(0.15 / 5)
    assert label_invariant_radius(tr.GaussianMixture([1.0, 2.0]), "l2") == 0
    assert label_invariant_radius(tr.GaussianMixture([1.0, 0.0]), tr.L2(1.0, coords=(1,))) == math.inf
    assert label_invariant_radius(tr.Tsipras(0.9, 3.0, 2), "linf") == 0
    assert label_invariant_radius(tr.Tsipras(0.9, 3.0, 2), tr.Linf(1.0, coords=(0,))) == 1
    with pytest.raises(ValueError, match="norm"):
        label_invariant_radius(spheres, "l3")


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_label_invariant_radius_by_brute_force(norm):
    # just below the radius no ball point changes its projected Bayes label; just above, the extreme direction does
    dist = tr.ConcentricSpheres(20, 1.0, 1.5)
    rad = label_invariant_radius(dist, norm)
    threat_cls = {"l2": tr.L2, "linf": tr.Linf, "l1": tr.L1}[norm]
    gen = torch.Generator().manual_seed(5)
    x, y = dist.sample(4000, generator=gen, dtype=torch.float64)
    inside = threat_cls(rad * 0.999)
    pts = [inside.random_start(x, gen) for _ in range(5)]
    pts += [x + inside.steepest_ascent(s * x) for s in (1.0, -1.0)]  # straight out and in (L2-norm extremes)
    for p in pts:
        assert bool((dist.bayes_label(dist.project(p)) == y).all())
    # the extreme direction: e1 (L1), the diagonal (Linf), radial (L2), from an inner point toward the middle sphere
    direction = {"l2": torch.ones(20), "linf": torch.ones(20), "l1": torch.eye(20)[0]}[norm].to(torch.float64)
    x0 = (direction / torch.linalg.vector_norm(direction))[None, :]
    step = threat_cls(rad * 1.001).steepest_ascent(x0)
    assert dist.bayes_label(dist.project(x0 + step)).item() == 1  # the inner point's label flipped


def test_distance_statistics():
    pm = distance_statistics(tr.PointMasses(2.0), n=200, generator=0)
    assert pm["within_nn_min"] == 0.0 and pm["between_nn_min"] == pytest.approx(2.0)
    assert pm["empirical_radius"] == pytest.approx(label_invariant_radius(tr.PointMasses(2.0)))
    spheres = tr.ConcentricSpheres(50, 1.0, 1.3)
    a = distance_statistics(spheres, n=600, generator=1, chunk_elements=600 * 7)  # 7 rows at a time
    b = distance_statistics(spheres, n=600, generator=1)
    assert a == pytest.approx(b, rel=1e-12)
    assert a["between_nn_min"] >= 0.3 - 1e-12  # no two points of different spheres are closer than the gap
    assert a["empirical_radius"] >= label_invariant_radius(spheres, "l2") - 1e-12
    # the same sample in Linf: every distance shrinks (||v||_inf <= ||v||_2)
    inf_stats = distance_statistics(spheres, n=600, generator=1, norm="linf")
    assert inf_stats["between_nn_min"] < a["between_nn_min"] and inf_stats["within_mean"] < a["within_mean"]
    with pytest.raises(ValueError, match="n must"):
        distance_statistics(spheres, n=2)


def test_bounds_report():
    rep = bounds_report(tr.ConcentricSpheres(500, 1.0, 1.3), tr.L2(0.1))
    assert rep["optimal risk"] == 0.0 and rep["label-invariant radius"] == pytest.approx(0.15)
    assert 0 < rep["isoperimetric: smallest L2 eps-expansion on the inner sphere"] < 1
    assert all(isinstance(v, (str, float)) for v in rep.values())
    rep = bounds_report(tr.Tsipras(0.9, 3.0, 1), tr.Linf(6.0))
    assert rep["optimal risk"] == 0.5 and "Tsipras Theorem 2.1" in rep
    rep = bounds_report(tr.ConcentricSpheres(500, 1.0, 1.3), tr.Linf(0.01))
    assert rep["optimal risk"].startswith("no closed form")
