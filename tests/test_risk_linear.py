"""Closed-form risks of linear classifiers on Gaussian mixtures and the Tsipras model, against independent routes.

References used here (never the closed forms themselves):

* an exact attack written in this file: the adversarial event of a linear classifier is the feasibility of a
  few linear inequalities in delta over an Lp ball, decided exactly (vertex enumeration for the Linf and L1
  polytopes, the active-set minimum-norm point for L2); its witnesses are confirmed by ``tr.is_adversarial``;
* an exact 1-D integral of that attack's indicator over the Gaussian scalar the event depends on (breakpoints
  located by bisection), and Monte Carlo estimates with exact Clopper-Pearson intervals;
* mpmath at 50 digits for the normal tails (risks down to 1e-300);
* the dual-norm attack ``x - y * eps * steepest_ascent(w)`` of the threat models for the ball definition.
"""

import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

import toyrobust as tr
from toyrobust.blocks import Blocks
from toyrobust.risks.special import (
    NormalSetProb,
    Q,
    Qinv,
    log_normal_interval,
    log_normal_set_prob,
    logQ,
    normal_interval,
)
from toyrobust.testing import gaussian_mixtures, linear_classifiers, threat_models, tsipras

mpmath.mp.dps = 50
TOL = 1e-9  # strict inequalities of the exact attack hold with this margin


# ================================================================================================ exact attack
def _ball_rows(norm, n):
    if norm == "linf":
        eye = np.eye(n)
        return np.concatenate([eye, -eye])
    if norm == "l1":
        return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    return np.zeros((0, n))


_PLANS = {}


def _plan(A, norm):
    """Per constraint matrix: the linear maps from right-hand sides to candidate points (cached)."""
    key = (A.tobytes(), A.shape, norm)
    if key in _PLANS:
        return _PLANS[key]
    n = A.shape[1]
    if norm == "l2":
        # candidates: min-norm solutions of A_S delta = c_S for every row subset S (S empty: delta = 0)
        maps = [(np.zeros((n, 0)), ())]
        for size in range(1, min(A.shape[0], n) + 1):
            for rows in itertools.combinations(range(A.shape[0]), size):
                M = A[list(rows)]
                G = M @ M.T
                if abs(np.linalg.det(G)) > 1e-12:
                    maps.append((M.T @ np.linalg.inv(G), rows))
        plan = (None, maps)
    else:
        B = _ball_rows(norm, n)
        A_all = np.concatenate([A, B])
        maps = []
        for rows in itertools.combinations(range(A_all.shape[0]), n):
            M = A_all[list(rows)]
            if abs(np.linalg.det(M)) > 1e-12:
                maps.append((np.linalg.inv(M), rows))
        plan = (A_all, maps)
    _PLANS[key] = plan
    return plan


def feasible(A, rhs, norm, eps):
    """Is ``{delta : A delta <= rhs (row by row), ||delta||_p <= eps}`` non-empty?  A (m, n), rhs (N, m).

    Returns (ok (N,), witness (N, n)). Linf/L1: a non-empty bounded polytope has a vertex, an intersection of
    n tight rows; L2: the minimum-norm point of the polyhedron is the min-norm solution of some active subset.
    """
    N, n = rhs.shape[0], A.shape[1]
    slack = 1e-11
    A_all, maps = _plan(A, norm)
    if norm == "l2":
        rhs_all, A_all = rhs, A
    else:
        rhs_all = np.concatenate([rhs, np.full((N, A_all.shape[0] - A.shape[0]), float(eps))], axis=1)
    cands = np.stack([rhs_all[:, list(rows)] @ Minv.T if rows else np.zeros((N, n)) for Minv, rows in maps], 1)
    good = np.all(np.einsum("nkj,mj->nkm", cands, A_all) <= rhs_all[:, None, :] + slack * (1 + np.abs(
        rhs_all[:, None, :])), axis=2)
    if norm == "l2":
        nrm = np.where(good, np.linalg.norm(cands, axis=2), np.inf)
        best = np.argmin(nrm, axis=1)
        ok = nrm[np.arange(N), best] <= eps * (1 + 1e-12) + 1e-15
    else:
        ok = good.any(axis=1)
        best = np.argmax(good, axis=1)
    return ok, cands[np.arange(N), best]


def _free(threat, dim):
    return threat.coord_indices(dim) if threat is not None else []


def exact_attack(dist, clf, x, y, threat, definition, strict_all=False):
    """Exact adversarial search for a linear classifier: (success (N,), x_adv (N, d)).

    Each event is a set of linear inequalities in the free coordinates of delta (strict ones tightened by TOL),
    one set per (target label t, sign s of the projected x_1 for Tsipras); the event holds iff one set is
    feasible inside the ball. ``strict_all`` tightens the non-strict ones too, so that the witnesses survive
    float rounding (for Monte Carlo; it moves the decision only on a set of measure ~TOL).
    """
    tight = TOL if strict_all else 0.0
    x = np.asarray(x, float)
    N, dim = x.shape
    F = _free(threat, dim)
    eps = 0.0 if threat is None else float(threat.eps)
    norm = "linf" if threat is None else threat.name
    w = clf.w.to_numpy()
    b = float(clf.b)
    m0 = x @ w + b
    ok_all, adv = np.zeros(N, bool), x.copy()
    if not F:  # no perturbation: check the clean point against the same inequalities with delta = 0
        F_idx = []
    else:
        F_idx = list(F)

    def rows_margin(t):
        # f(x') = -t
        if t == 1:
            return w[F_idx][None, :], (-m0 - TOL)[:, None]
        return -w[F_idx][None, :], (m0 - tight)[:, None]

    def rows_bayes(t):
        out = []
        if isinstance(dist, tr.GaussianMixture):
            mu = dist.mean.to_numpy()
            v0 = x @ mu
            out.append((mu[F_idx][None, :] * -t, (v0 - tight if t == 1 else -v0 - TOL)[:, None]))
            return [out]
        L = math.log(dist.p / (1 - dist.p))
        eta = float(dist.eta)
        e0 = np.array([1.0 if i == 0 else 0.0 for i in F_idx])
        g = np.array([1.0 if i >= 1 else 0.0 for i in F_idx])
        S = x[:, 1:].sum(axis=1)
        options = []
        for s in (1, -1):
            sign_row = (-e0[None, :], x[:, :1] - tight) if s == 1 else (e0[None, :], -x[:, :1] - TOL)
            score = L * s + 2 * eta * S
            bayes_row = (-2 * eta * g[None, :], (score - tight)[:, None]) if t == 1 else (2 * eta * g[None, :],
                                                                                (-score - TOL)[:, None])
            options.append([sign_row, bayes_row])
        return options

    def run(row_sets, mask):
        nonlocal ok_all, adv
        A = np.concatenate([r[0] for r in row_sets]) if F_idx else np.zeros((len(row_sets), 0))
        rhs = np.concatenate([r[1] for r in row_sets], axis=1)
        if not F_idx:
            good = np.all(rhs >= 0, axis=1)
            wit = np.zeros((N, 0))
        else:
            good, wit = feasible(A, rhs, norm, eps)
        good &= mask & ~ok_all
        delta = np.zeros((N, dim))
        if F_idx:
            delta[:, F_idx] = np.nan_to_num(wit)
        adv[good] = x[good] + delta[good]
        ok_all |= good

    pred = np.where(m0 >= 0, 1, -1)
    for t in (1, -1):
        if definition == "ball":
            run([rows_margin(t)], y == t)
        elif definition == "prediction-change":
            run([rows_margin(t)], pred == t)
        else:
            mask = (y == t) if definition == "projection" else np.ones(N, bool)
            for option in rows_bayes(t):
                run([rows_margin(t)] + option, mask)
    return ok_all, adv


# ================================================================================================ references
def latent_points(dist, comp, z):
    """Clean points whose latent scalar is at standard score z, for the component ``comp``."""
    if isinstance(dist, tr.GaussianMixture):
        y = comp
        mu = dist.mean.to_numpy()
        m, tau = mu @ mu, float(dist.sigma) * np.linalg.norm(mu)
        V = y * m + tau * z
        return np.outer(V / m, mu)
    y, s1 = comp
    d = dist.d
    S = y * dist.eta * d + math.sqrt(d) * z
    return np.concatenate([np.full((len(z), 1), float(s1)), np.repeat((S / d)[:, None], d, axis=1)], axis=1)


def components(dist):
    if isinstance(dist, tr.GaussianMixture):
        return [(0.5, 1, 1), (0.5, -1, -1)]
    p = dist.p
    return [(p / 2, 1, (1, 1)), ((1 - p) / 2, 1, (1, -1)), (p / 2, -1, (-1, -1)), ((1 - p) / 2, -1, (-1, 1))]


def integral_reference(dist, clf, threat, definition, step=1e-2, zmax=12.0):
    """sum over components of P[attack succeeds], integrating the exact attack's indicator over the latent
    standard score z (valid when the event depends on the latent scalar only: aligned classifiers)."""
    total = mpmath.mpf(0)
    z = np.arange(-zmax, zmax + step / 2, step)
    for weight, y, comp in components(dist):

        def ind(zz, y=y, comp=comp):
            pts = latent_points(dist, comp, np.asarray(zz, float))
            return exact_attack(dist, clf, pts, np.full(len(pts), y), threat, definition)[0]

        v = ind(z)
        change = np.nonzero(v[1:] != v[:-1])[0]
        lo, hi = z[change], z[change + 1]
        for _ in range(32):
            mid = (lo + hi) / 2
            same = ind(mid) == v[change]
            lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
        edges = np.concatenate([[-np.inf], (lo + hi) / 2, [np.inf]])
        states = np.concatenate([[v[0]], v[change + 1]])
        prob = mpmath.mpf(0)
        for a, bnd, s in zip(edges[:-1], edges[1:], states, strict=True):
            if s:
                prob += mpmath.ncdf(bnd) - mpmath.ncdf(a)
        total += weight * prob
    return float(total)


def mc_check(dist, clf, threat, definition, value, n=20_000, seed=0):
    """Monte Carlo with the exact attack; witnesses must satisfy tr.is_adversarial; 99.9% Clopper-Pearson."""
    x, y = dist.sample(n, generator=seed, dtype=torch.float64)
    ok, adv = exact_attack(dist, clf, x.numpy(), y.numpy(), threat, definition, strict_all=True)
    if ok.any():
        xa = torch.as_tensor(adv[ok])
        assert threat is None or bool(threat.contains(xa, x[torch.as_tensor(ok)], atol=1e-9).all())
        confirmed = tr.is_adversarial(definition, clf, xa, y[torch.as_tensor(ok)], dist=dist,
                                      x=x[torch.as_tensor(ok)])
        assert bool(confirmed.all()), "the exact attack produced a point the definition rejects"
    ci = binomtest(int(ok.sum()), n).proportion_ci(confidence_level=0.999, method="exact")
    assert ci.low <= value <= ci.high, (value, ok.mean(), ci)


def dual_norm_attack_success(dist, clf, threat, definition, n, seed):
    """Ball / prediction-change via the dual-norm maximiser of the threat model (threats.py)."""
    x, y = dist.sample(n, generator=seed, dtype=torch.float64)
    w = clf.w.to_tensor(dtype=torch.float64)[None, :].expand_as(x)
    pred = clf.predict(x)
    direction = y if definition == "ball" else pred
    x_adv = x if threat is None else x - direction[:, None].to(x.dtype) * threat.steepest_ascent(w)
    return tr.is_adversarial(definition, clf, x_adv, y, dist=dist, x=x).sum().item()


# ================================================================================================ special functions
@pytest.mark.parametrize("x", [-40.0, -5.0, -1.0, 0.0, 0.3, 1.0, 8.0, 20.0, 37.0, 37.5, 38.4])
def test_normal_tail_and_log_tail_against_mpmath(x):
    ref = mpmath.erfc(mpmath.mpf(x) / mpmath.sqrt(2)) / 2
    assert float(Q(sympy.Float(x)).evalf(30)) == pytest.approx(float(ref), rel=1e-25)
    lv = float(log_normal_interval(x, np.inf))
    assert lv == pytest.approx(float(mpmath.log(ref)), rel=1e-13, abs=1e-15)
    assert float(logQ(sympy.Float(x)).evalf(30)) == pytest.approx(float(mpmath.log(ref)), rel=1e-25, abs=1e-30)
    if 1e-300 < ref < 1:  # the inverse: Q(Qinv(u)) = u at 30 digits, and the scipy route agrees where well-posed
        u = sympy.Float(float(ref), 30)
        assert float(Q(Qinv(u).evalf(30)).evalf(30)) == pytest.approx(float(ref), rel=1e-20)
        if ref < 0.5:
            assert float(sympy.lambdify([], Qinv(u), modules=[tr.risks.special.SCIPY_FUNCS])()) == pytest.approx(
                x, rel=1e-12)


@pytest.mark.parametrize("lo,hi", [(-1, 2), (30, 30.001), (-30.001, -30), (1e-8, 2e-8), (-1e-9, 1e-9), (35, 38),
                                   (-np.inf, -36), (3, 3), (4, 2), (-np.inf, np.inf)])
def test_normal_interval_against_mpmath(lo, hi):
    ref = mpmath.ncdf(hi) - mpmath.ncdf(lo) if lo < hi else mpmath.mpf(0)
    if lo >= 8:  # mpmath.ncdf rounds to 1 in the upper tail at 50 digits: use the tails
        ref = (mpmath.erfc(mpmath.mpf(lo) / mpmath.sqrt(2)) - mpmath.erfc(mpmath.mpf(hi) / mpmath.sqrt(2))) / 2
    if hi <= -8:
        ref = (mpmath.erfc(-mpmath.mpf(hi) / mpmath.sqrt(2)) - mpmath.erfc(-mpmath.mpf(lo) / mpmath.sqrt(2))) / 2
    got = float(normal_interval(lo, hi))
    assert got == pytest.approx(float(ref), rel=1e-9, abs=0 if ref > 0 else 1e-320)


def test_union_of_intervals_merges_overlaps():
    los, his = [0.5, -1.0, 3.0, 2.5, 10.0], [2.0, 1.0, 4.0, 3.5, 9.0]  # (10, 9) is empty
    ref = mpmath.ncdf(2.0) - mpmath.ncdf(-1.0) + mpmath.ncdf(4.0) - mpmath.ncdf(2.5)
    assert float(np.exp(log_normal_set_prob(los, his))) == pytest.approx(float(ref), rel=1e-13)
    expr = NormalSetProb(*[v for pair in zip(los, his, strict=True) for v in pair])
    assert float(expr.evalf(30)) == pytest.approx(float(ref), rel=1e-20)
    far = float(log_normal_set_prob([37.0, 37.5], [37.6, np.inf]))
    assert far == pytest.approx(float(mpmath.log(mpmath.erfc(37 / mpmath.sqrt(2)) / 2)), rel=1e-12)


# ================================================================================================ seed claims
D = sympy.Symbol("D", integer=True, positive=True)


def test_seed003_bayes_risk_of_robust_nonrobust_is_Q_sqrt_1_plus_log_D():
    g = tr.GaussianMixture.robust_nonrobust(D)
    r = tr.risk(g, g.bayes_classifier())
    assert r.value is None
    assert sympy.simplify(r.expr - Q(sympy.sqrt(1 + sympy.log(D)))) == 0
    for n in (2, 10, 1000):
        num = tr.risk(tr.GaussianMixture.robust_nonrobust(n), tr.GaussianMixture.robust_nonrobust(n)
                      .bayes_classifier())
        ref = mpmath.erfc(mpmath.sqrt(1 + mpmath.log(n)) / mpmath.sqrt(2)) / 2
        assert float(num) == pytest.approx(float(ref), rel=1e-12)


def test_seed003_linf_risk_of_bayes_at_eps_2a_tends_to_one():
    g = tr.GaussianMixture.robust_nonrobust(D)
    eps = 2 * sympy.sqrt(sympy.log(D) / (D - 1))
    r = tr.risk(g, g.bayes_classifier(), tr.Linf(eps))
    assert r.value is None and r.expr.free_symbols == {D}
    values = [float(r.expr.subs(D, n).evalf(30)) for n in (10**3, 10**6, 10**12)]
    assert values[0] < values[1] < values[2] and values[2] > 0.999
    # independent value: the margin drop is eps ||w||_1 = 2a * 2(1 + (D-1) a) with a^2 = log D / (D - 1)
    n = mpmath.mpf(10**6)
    a = mpmath.sqrt(mpmath.log(n) / (n - 1))
    arg = (2 * (1 + mpmath.log(n)) - 2 * a * 2 * (1 + (n - 1) * a)) / (2 * mpmath.sqrt(1 + mpmath.log(n)))
    assert values[1] == pytest.approx(float(mpmath.erfc(arg / mpmath.sqrt(2)) / 2), rel=1e-12)
    assert isinstance(r.expr, Q)  # one tail whose argument tends to -oo, so the risk tends to Q(-oo) = 1
    assert sympy.limit(r.expr.args[0], D, sympy.oo) == -sympy.oo


def test_seed003_robust_feature_classifier_keeps_risk_near_Q1():
    g = tr.GaussianMixture.robust_nonrobust(D)
    sign_x1 = tr.Linear(Blocks([(1, 1), (0, D - 1)]))
    eps = 2 * sympy.sqrt(sympy.log(D) / (D - 1))
    assert sympy.simplify(tr.risk(g, sign_x1).expr - Q(1)) == 0
    r = tr.risk(g, sign_x1, tr.Linf(eps))
    assert sympy.simplify(r.expr - Q(1 - eps)) == 0
    assert float(tr.risk(g, sign_x1).expr.evalf()) == pytest.approx(0.15865525393145707, rel=1e-14)
    vals = [float(r.expr.subs(D, n).evalf()) for n in (10**3, 10**6, 10**12)]
    q1 = 0.15865525393145707
    assert vals[0] > vals[1] > vals[2] > q1 and vals[2] - q1 < 1e-5 and vals[0] < 0.21


def test_seed000_projection_discards_the_label_changing_moves_of_tsipras():
    """2-D Tsipras (p = 0.9, eta = 3), the adversary of Tsipras et al. moving x_2 by up to 2 eta: the Bayes
    classifier's ball risk is near 1, but every such move that fools it changes the Bayes label of the
    projection, so its projection risk is exactly 0 (Stutz, seed 000)."""
    t = tr.Tsipras(0.9, 3.0, 1)
    bayes, threat = t.bayes_classifier(), tr.Linf(6.0, coords=(1,))
    assert float(tr.risk(t, bayes, threat)) > 0.99
    assert float(tr.risk(t, bayes, threat, "projection")) == 0.0
    assert integral_reference(t, bayes, threat, "projection") == 0.0
    # sign(x_1) keeps exactly its standard errors (x_1 = -y, probability 1 - p: moving x_2 can make the Bayes
    # label of each of them y), and an adversary that may also move x_1 off {-1, 1} fools even the Bayes rule's
    # linear extension under the projection definition: the off-support behaviour of a classifier matters
    robust = tr.Linear([1.0, 0.0])
    assert float(tr.risk(t, robust, threat, "projection")) == pytest.approx(0.1, abs=1e-12)
    assert float(tr.risk(t, robust, None, "projection")) < 0.1
    full = float(tr.risk(t, bayes, tr.Linf(6.0), "projection"))
    assert full == pytest.approx(integral_reference(t, bayes, tr.Linf(6.0), "projection"), abs=1e-10)
    assert full > 0.99


# ================================================================================================ exact checks
ALIGNED_CASES = [
    (tr.Tsipras(0.9, 3.0, 1), tr.Tsipras(0.9, 3.0, 1).bayes_classifier()),
    (tr.Tsipras(0.9, 3.0, 1), tr.Linear([1.0, 0.0])),
    (tr.Tsipras(0.8, 1.0, 1), tr.Linear([-0.7, 0.9], 0.4)),
    (tr.Tsipras(0.7, 0.6, 1), tr.Linear([1.3, -0.5], -0.2)),
    (tr.Tsipras(0.3, 0.8, 2), tr.Linear([0.5, 0.7, 0.7], 0.3)),
    (tr.GaussianMixture([1.0, -0.5], 0.8), tr.Linear([2.0, -1.0], 0.7)),
    (tr.GaussianMixture([1.0, -0.5], 0.8), tr.Linear([-1.0, 0.5], 0.3)),
    (tr.GaussianMixture([0.6, 0.9], 1.1), tr.Linear([0.0, 0.0], -0.2)),
]
THREATS = [tr.Linf(0.4), tr.L2(1.3), tr.L1(1.6), tr.Linf(1.0), tr.L2(0.7, coords=(1,)), tr.L1(2.5, coords=(0,)), None]
# the whole product runs in CI (112 independent checks, about 11 s on one core): these are exact references,
# not long Monte Carlo runs, so none of them is left to the slow tier
ALIGNED_PARAMS = [pytest.param(c, t) for c in range(len(ALIGNED_CASES)) for t in range(len(THREATS))]


@pytest.mark.parametrize("case,threat_index", ALIGNED_PARAMS)
@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_aligned_projection_and_error_region_equal_exact_integral_of_exact_attack(case, threat_index, definition):
    dist, clf = ALIGNED_CASES[case]
    threat = THREATS[threat_index]
    if threat is not None and threat.coords is not None and max(threat.coords) >= dist.dim:
        threat = type(threat)(threat.eps)
    got = float(tr.risk(dist, clf, threat, definition))
    ref = integral_reference(dist, clf, threat, definition)
    assert got == pytest.approx(ref, rel=1e-8, abs=1e-11), (threat, got, ref)


CROSSING = [0.5, 0.999, 1.0, 1.25, 2.0, 6.5]  # all in CI (under a second each)


@pytest.mark.parametrize("eps", CROSSING)
def test_tsipras_discrete_coordinate_crossings_exact(eps):
    """x_1 = 1 needs eps > 1 to reach x_1' < 0; x_1 = -1 reaches x_1' = 0 (projected to +1) at eps = 1."""
    t = tr.Tsipras(0.9, 3.0, 1)
    for clf in (tr.Linear([1.0, 0.0]), tr.Linear([2.0, 0.4], -0.1), t.bayes_classifier()):
        for d in ("projection", "error-region", "ball", "prediction-change"):
            got = float(tr.risk(t, clf, tr.Linf(eps), d))
            assert got == pytest.approx(integral_reference(t, clf, tr.Linf(eps), d), rel=1e-8, abs=1e-11)


@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_aligned_monte_carlo_with_exact_attack(definition):
    t = tr.Tsipras(0.9, 3.0, 1)
    for clf, threat in [(t.bayes_classifier(), tr.Linf(1.5)), (tr.Linear([0.0, 1.0], 0.5), tr.L2(2.0))]:
        mc_check(t, clf, threat, definition, float(tr.risk(t, clf, threat, definition)))
    g = tr.GaussianMixture([0.5, 1.0, -0.5], 1.0)
    clf = tr.Linear([-1.0, -2.0, 1.0], 0.4)
    mc_check(g, clf, tr.L1(0.8), definition, float(tr.risk(g, clf, tr.L1(0.8), definition)))


BALL_CASES = [
    (tr.GaussianMixture([0.4, -1.2, 0.7], 1.3), tr.Linear([1.0, -0.5, 2.0], 0.3)),
    (tr.Tsipras(0.85, 0.7, 3), tr.Linear([0.6, 1.0, -0.3, 0.2], -0.4)),
    (tr.Tsipras(0.9, 3.0, 1), tr.Linear([1.0, 0.0])),
]


@pytest.mark.parametrize("case", range(len(BALL_CASES)))
@pytest.mark.parametrize("definition", ["ball", "prediction-change"])
@pytest.mark.parametrize("threat", [None, tr.Linf(0.35), tr.L2(0.8, coords=slice(1, None)), tr.L1(1.2),
                                    tr.Linf(1.0, coords=(0, 2))])
def test_ball_and_prediction_change_monte_carlo_with_dual_norm_attack(case, definition, threat):
    dist, clf = BALL_CASES[case]
    if threat is not None and isinstance(threat.coords, tuple) and max(threat.coords) >= dist.dim:
        threat = threat.with_eps(threat.eps)  # same norm on all coordinates for the 2-D model
        threat = type(threat)(threat.eps)
    value = float(tr.risk(dist, clf, threat, definition))
    n = 100_000
    k = dual_norm_attack_success(dist, clf, threat, definition, n, seed=case)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.999, method="exact")
    assert ci.low <= value <= ci.high, (value, k / n, ci)


GENERAL_CASES = [
    (tr.GaussianMixture([1.0, -0.5], 0.8), tr.Linear([1.0, 1.0], 0.2)),
    (tr.GaussianMixture([0.7, 0.4, -0.6], 1.2), tr.Linear([1.0, 0.0, 0.5], -0.3)),
]


@pytest.mark.parametrize("case", range(len(GENERAL_CASES)))
@pytest.mark.parametrize("threat", [tr.Linf(0.4), tr.L2(0.9), tr.L1(1.1), tr.L2(0.6, coords=(1,))])
@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_general_w_integral_against_monte_carlo_with_exact_attack(case, threat, definition):
    dist, clf = GENERAL_CASES[case]
    r = tr.risk(dist, clf, threat, definition)
    assert r.method.startswith("exact 1-D integral")
    mc_check(dist, clf, threat, definition, r.value, n=20_000, seed=case)


@pytest.mark.parametrize("definition", ["projection", "error-region"])
@pytest.mark.parametrize("norm", [tr.Linf, tr.L2, tr.L1])
def test_general_w_integral_tends_to_the_aligned_closed_form(definition, norm):
    """Two derivations meet: w = lambda * mean + tiny * e (1-D integral) against w = lambda * mean (intervals)."""
    dist = tr.GaussianMixture([0.8, -0.6, 0.3], 1.0)
    aligned = tr.Linear([-1.6, 1.2, -0.6], 0.5)
    near = tr.Linear([-1.6, 1.2 + 1e-7, -0.6], 0.5)
    a = tr.risk(dist, aligned, norm(0.7), definition)
    b = tr.risk(dist, near, norm(0.7), definition)
    assert a.method.startswith("closed form") and b.method.startswith("exact 1-D integral")
    assert b.value == pytest.approx(a.value, abs=1e-6)


@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_general_w_single_coordinate_threats_coincide_across_norms(definition):
    """On one coordinate every Lp ball is the same interval: the three reach profiles must agree."""
    dist, clf = tr.GaussianMixture([0.7, 0.4, -0.6], 1.2), tr.Linear([1.0, 0.0, 0.5], -0.3)
    vals = [tr.risk(dist, clf, norm(0.8, coords=(2,)), definition).value for norm in (tr.Linf, tr.L2, tr.L1)]
    assert vals[0] == pytest.approx(vals[1], abs=1e-11) and vals[0] == pytest.approx(vals[2], abs=1e-11)


def test_general_w_on_the_robust_nonrobust_model_uses_blocks():
    g = tr.GaussianMixture.robust_nonrobust(10**6)
    sign_x1 = tr.Linear(Blocks([(1, 1), (0, 10**6 - 1)]))
    eps = 2 * math.sqrt(math.log(10**6) / (10**6 - 1))
    proj = tr.risk(g, sign_x1, tr.Linf(eps), "projection").value
    ball = tr.risk(g, sign_x1, tr.Linf(eps)).value
    std = tr.risk(g, sign_x1, None, "projection").value
    assert 0 < std <= proj <= ball < 0.17


def test_not_covered_definitions_raise_not_implemented():
    with pytest.raises(NotImplementedError, match="estimate_risk"):
        tr.risk(tr.Tsipras(0.9, 1.0, 2), tr.Linear([1.0, 0.5, 0.2]), tr.L2(0.3), "error-region")
    sig = sympy.Symbol("s", positive=True)
    with pytest.raises(NotImplementedError, match="substitute numbers"):
        tr.risk(tr.GaussianMixture([1.0, 1.0], sig), tr.Linear([1.0, 0.0]), tr.Linf(0.3), "projection")


# ================================================================================================ tails
@pytest.mark.parametrize("m", [1.0, 8.0, 20.0, 30.0, 37.0, 37.5])
def test_tiny_risks_keep_relative_accuracy_against_mpmath(m):
    g = tr.GaussianMixture([m * 0.6, m * 0.8], 1.0)
    r = tr.risk(g, g.bayes_classifier())
    ref = mpmath.erfc(mpmath.mpf(m) / mpmath.sqrt(2)) / 2
    assert r.value == pytest.approx(float(ref), rel=1e-9) and r.value > 0
    assert r.log_value == pytest.approx(float(mpmath.log(ref)), rel=1e-12)
    # an adversary (L2, all coordinates) lowers the margin by eps ||w||_2: Q(m - eps)
    r = tr.risk(g, g.bayes_classifier(), tr.L2(0.25))
    assert r.value == pytest.approx(float(mpmath.erfc((m - mpmath.mpf(0.25)) / mpmath.sqrt(2)) / 2), rel=1e-9)
    # prediction change: P[|margin| < c] for c = eps ||w||_2 / (sigma ||w||_2) = 0.25 in standard units
    r = tr.risk(g, g.bayes_classifier(), tr.L2(0.25), "prediction-change")
    quarter, root2 = mpmath.mpf(0.25), mpmath.sqrt(2)
    ref = (mpmath.erfc((m - quarter) / root2) - mpmath.erfc((m + quarter) / root2)) / 2
    assert r.value == pytest.approx(float(ref), rel=1e-9)


@pytest.mark.parametrize("eps", [1e-16, 1e-9, 1e-3])
@pytest.mark.parametrize("center", [0.4, 9.0, 30.0])
def test_narrow_prediction_change_intervals_keep_relative_accuracy(eps, center):
    """P[-c <= margin < c] for a tiny c: the interval is integrated from its centre and half-width."""
    g = tr.GaussianMixture([center], 0.5)
    r = tr.risk(g, tr.Linear([1.0]), tr.L2(eps), "prediction-change")
    mp_eps, mp_mid = mpmath.mpf(eps) / mpmath.mpf(0.5), mpmath.mpf(center) / mpmath.mpf(0.5)
    ref = mpmath.quad(mpmath.npdf, [mp_mid - mp_eps, mp_mid + mp_eps])  # both classes give the same value
    assert r.value == pytest.approx(float(ref), rel=1e-9)


def test_below_double_precision_the_log_value_stays_exact():
    g = tr.GaussianMixture([40.0], 1.0)
    r = tr.risk(g, g.bayes_classifier())
    ref = mpmath.log(mpmath.erfc(mpmath.mpf(40) / mpmath.sqrt(2)) / 2)  # ~ -804: Q(40) underflows a double
    assert r.value == 0.0 and r.log_value == pytest.approx(float(ref), rel=1e-12)


def test_tsipras_standard_risk_against_an_independent_quadrature():
    from scipy.integrate import quad

    t = tr.Tsipras(0.8, 0.5, 4)
    clf = tr.Linear([0.3, 1.0, -0.5, 0.25, 2.0], -0.2)
    w = clf.w.to_numpy()
    total = 0.0
    for y, s1, wt in [(1, 1, 0.4), (1, -1, 0.1), (-1, -1, 0.4), (-1, 1, 0.1)]:
        # the Gaussian part sum_j w_j x_j is N(y eta sum w_j, ||w_g||^2): integrate its density over the error set
        mean, sd = y * 0.5 * w[1:].sum(), np.linalg.norm(w[1:])
        cut = -(w[0] * s1 - 0.2)
        dens = lambda u, mean=mean, sd=sd: np.exp(-((u - mean) / sd) ** 2 / 2) / (sd * np.sqrt(2 * np.pi))  # noqa: E731
        err = quad(dens, -np.inf, cut, epsabs=1e-14)[0] if y == 1 else quad(dens, cut, np.inf, epsabs=1e-14)[0]
        total += wt * err
    assert float(tr.risk(t, clf)) == pytest.approx(total, rel=1e-9)


# ================================================================================================ properties
@st.composite
def gaussian_problem(draw):
    dist = draw(st.one_of(gaussian_mixtures(max_dim=4).filter(lambda g: g.mean.is_numeric and g.dim <= 4),
                          tsipras(max_d=3)))
    clf = draw(linear_classifiers(dist.dim))
    return dist, clf


@given(gaussian_problem(), threat_models(), st.floats(0, 2), st.sampled_from(["ball", "prediction-change"]))
def test_risk_in_unit_interval_monotone_in_eps_and_eps0_is_standard(problem, threat, extra, definition):
    dist, clf = problem
    r1 = float(tr.risk(dist, clf, threat, definition))
    r2 = float(tr.risk(dist, clf, threat.with_eps(threat.eps + extra), definition))
    assert 0.0 <= r1 <= r2 + 1e-15 <= 1.0 + 1e-15
    assert float(tr.risk(dist, clf, threat.with_eps(0.0), definition)) == float(tr.risk(dist, clf, None, definition))
    if definition == "prediction-change":
        assert float(tr.risk(dist, clf, None, definition)) == 0.0


@given(gaussian_problem())
def test_bayes_standard_risk_is_smallest(problem):
    dist, clf = problem
    assert float(tr.risk(dist, dist.bayes_classifier())) <= float(tr.risk(dist, clf)) * (1 + 1e-12) + 1e-300


@st.composite
def aligned_problem(draw):
    if draw(st.booleans()):
        dist = draw(tsipras(max_d=3))
        w1, beta = draw(st.floats(-3, 3)), draw(st.floats(-3, 3))
        clf = tr.Linear(Blocks([(w1, 1), (beta, dist.d)]), draw(st.floats(-3, 3)))
    else:
        dist = draw(gaussian_mixtures(max_dim=4).filter(lambda g: g.mean.is_numeric))
        clf = tr.Linear(dist.mean * draw(st.floats(-3, 3)), draw(st.floats(-3, 3)))
    return dist, clf


@given(aligned_problem(), threat_models(), st.floats(0, 2))
def test_aligned_properties_ball_dominates_projection_monotone(problem, threat, extra):
    dist, clf = problem
    bigger = threat.with_eps(threat.eps + extra)
    ball = float(tr.risk(dist, clf, threat, "ball"))
    for d in ("projection", "error-region"):
        small, large = float(tr.risk(dist, clf, threat, d)), float(tr.risk(dist, clf, bigger, d))
        assert 0.0 <= small <= large + 1e-12 <= 1.0 + 1e-12
        assert float(tr.risk(dist, clf, threat.with_eps(0.0), d)) == pytest.approx(
            float(tr.risk(dist, clf, None, d)), abs=1e-15)
    assert ball + 1e-12 >= float(tr.risk(dist, clf, threat, "projection"))


@given(tsipras(max_d=5), st.data(), st.floats(0, 2))
def test_tsipras_theorem_2_1_bound_holds_for_every_linear_classifier(dist, data, extra):
    """Tsipras et al. 2019, Thm 2.1: standard accuracy >= 1 - delta implies Linf robust accuracy
    <= p/(1-p) delta at eps >= 2 eta."""
    clf = data.draw(linear_classifiers(dist.dim))
    delta = float(tr.risk(dist, clf))
    robust_acc = 1 - float(tr.risk(dist, clf, tr.Linf(2 * dist.eta + extra)))
    assert robust_acc <= dist.p / (1 - dist.p) * delta + 1e-12


@settings(max_examples=15)
@given(gaussian_mixtures(max_dim=3).filter(lambda g: g.mean.is_numeric and 2 <= g.dim <= 3), st.data(), threat_models(),
       st.floats(0, 1.5))
def test_general_w_properties(dist, data, threat, extra):
    clf = data.draw(linear_classifiers(dist.dim))
    bigger = threat.with_eps(threat.eps + extra)
    for d in ("projection", "error-region"):
        small, large = tr.risk(dist, clf, threat, d).value, tr.risk(dist, clf, bigger, d).value
        assert 0.0 <= small <= large + 1e-9 <= 1.0 + 1e-9
    assert tr.risk(dist, clf, threat).value + 1e-9 >= tr.risk(dist, clf, threat, "projection").value


@pytest.mark.parametrize("eps", [2.220446049250313e-16, 4.440892098500626e-16, 1e-13])
def test_general_w_pieces_a_rounding_wide_integrate_quietly(eps):
    # hypothesis found this in CI: two knots of the integral a rounding apart (width 7e-16 at Linf eps = 2.2e-16),
    # where scipy's quad warns of "extremely bad integrand behavior" (an error under the suite's warning filter);
    # such a piece contributes at most its width / sqrt(2 pi), so the risk stays that of eps = 0
    dist, clf = tr.GaussianMixture([2.0, 2.5], 1.0), tr.Linear([0.0, 1.0], 0.0)
    for d in ("ball", "projection", "error-region"):
        got = float(tr.risk(dist, clf, tr.Linf(eps), d))
        assert got == pytest.approx(float(tr.risk(dist, clf, tr.Linf(0.0), d)), abs=1e-11)


P, ETA, SIG = sympy.symbols("p eta sigma", positive=True)
EPS = sympy.Symbol("eps", nonnegative=True)  # eps = 0 is allowed (a positive symbol would decide -eps < 0)


def _symbolic_equals_numeric(problem, norm, eps, definition):
    dist, clf = problem
    if isinstance(dist, tr.Tsipras):
        sym_dist, subs = tr.Tsipras(P, ETA, dist.d), {P: dist.p, ETA: dist.eta}
    else:
        sym_dist, subs = tr.GaussianMixture(dist.mean, SIG), {SIG: dist.sigma}
    subs[EPS] = eps
    try:
        num = tr.risk(dist, clf, norm(eps), definition)
    except NotImplementedError:
        assume(False)
    sym = tr.risk(sym_dist, clf, norm(EPS), definition)
    assert sym.value is None
    # mpmath at 30 digits through the sympy expression (subs inside evalf: no rounding of the substituted sums)
    value = complex(sym.expr.evalf(30, subs={k: sympy.Float(v, 30) for k, v in subs.items()}))
    assert value.imag == 0
    # abs: a risk that is exactly 0 comes out of the 30-digit evaluation of Q(a) - Q(a') as ~1e-166 cancellation
    # residue; tiny tails themselves are checked against mpmath at 50 digits in the accuracy tests
    assert value.real == pytest.approx(num.value, rel=1e-9, abs=1e-120)


@given(gaussian_problem(), st.sampled_from([tr.Linf, tr.L2, tr.L1]), st.floats(0, 2),
       st.sampled_from(["ball", "prediction-change"]))
def test_symbolic_route_equals_numeric_route(problem, norm, eps, definition):
    _symbolic_equals_numeric(problem, norm, eps, definition)


@pytest.mark.parametrize("problem,norm,eps,definition", [
    ((tr.Tsipras(0.8, 0.7, 2), tr.Linear([0.5, -1.0, -1.0], 0.3)), tr.L2, 1.2, "projection"),
    ((tr.GaussianMixture([0.5, -1.0], 1.3), tr.Linear([-1.0, 2.0], 0.4)), tr.Linf, 0.6, "error-region"),
])
def test_symbolic_route_equals_numeric_route_projection(problem, norm, eps, definition):
    _symbolic_equals_numeric(problem, norm, eps, definition)


def _double_resolves(problem):
    """Whether the Gaussian weight of a Tsipras classifier is visible next to its x_1 weight and bias in double
    precision: below that, the numeric route (thresholds in double) cannot see events that hinge on the Gaussian
    part once x_1' lands exactly on -b/w_1 (see the test below); the symbolic route evaluates them exactly."""
    dist, clf = problem
    if not isinstance(dist, tr.Tsipras):
        return True
    w = clf.w.to_list()
    return w[1] == 0 or abs(w[1]) > 1e-12 * (abs(w[0]) + abs(float(clf.b)) + 1)


@pytest.mark.slow
@settings(max_examples=20)
@given(aligned_problem(), st.sampled_from([tr.Linf, tr.L2, tr.L1]), st.floats(0, 2),
       st.sampled_from(["projection", "error-region"]))
def test_symbolic_route_equals_numeric_route_projection_drawn(problem, norm, eps, definition):
    assume(_double_resolves(problem))
    _symbolic_equals_numeric(problem, norm, eps, definition)


def test_symbolic_route_of_a_nearly_degenerate_classifier_against_a_hand_derivation():
    """Issue 10: w = (-1.417, 1.01e-167) on Tsipras(p=0.51, eta=3.0057, d=1), L2(1), projection. The symbolic
    route raised "1 - UnitRatio(1.4e167, 1)**2 is not comparable" (its terms cancel 335 digits). By hand, with
    a = -log(p/(1-p)) / (2 eta) the Bayes threshold on x_2 after rounding x_1 to +1:

    * y = +1, x_1 = +1: f = -1 already, the whole budget moves x_2 up to a: ``p Phi(eta + 1 - a)``;
    * y = +1, x_1 = -1: only delta_1 = 1 reaches x_1' = 0 (rounded to +1), where f = sign(1e-167 x_2): x_2 in
      [a, 0): ``(1 - p) (Phi(-eta) - Phi(a - eta))`` -- the window a double-precision threshold cannot see;
    * y = -1, x_1 = -1: f = +1 already, x_2 below -a within reach: ``p Phi(eta + 1 - a)``; x_1 = +1: impossible.
    """
    p, eta = mpmath.mpf("0.51"), mpmath.mpf("3.0057")
    a = -mpmath.log(p / (1 - p)) / (2 * eta)
    exact = p * mpmath.ncdf(eta + 1 - a) + (1 - p) / 2 * (mpmath.ncdf(-eta) - mpmath.ncdf(a - eta))
    clf = tr.Linear([-1.417, 1.01e-167], 0)
    sym = tr.risk(tr.Tsipras(P, ETA, 1), clf, tr.L2(EPS), "projection")
    value = complex(sym.expr.evalf(30, subs={P: sympy.Float("0.51", 30), ETA: sympy.Float("3.0057", 30),
                                             EPS: sympy.Float(1, 30)}))
    assert value.imag == 0 and value.real == pytest.approx(float(exact), rel=1e-12)
    # the numeric route sees the window too (7e-6): Gaussian weights below 1e-10 of the others are lifted to 1e-10,
    # so the tie at x_1' = 0 is still decided by the sign of x_2 instead of rounding away
    num = float(tr.risk(tr.Tsipras(0.51, 3.0057, 1), clf, tr.L2(1.0), "projection"))
    window = float((1 - p) / 2 * (mpmath.ncdf(-eta) - mpmath.ncdf(a - eta)))
    assert window > 1e-6 and num == pytest.approx(float(exact), rel=1e-12)


# ================================================================================================ grids, loss
def test_risk_function_on_a_grid_matches_pointwise_risks():
    Dsym, e = sympy.Symbol("D", integer=True, positive=True), sympy.Symbol("e", nonnegative=True)
    g = tr.GaussianMixture.robust_nonrobust(Dsym)
    f = tr.risk_function(g, g.bayes_classifier(), tr.Linf(e), symbols=(Dsym, e))
    Ds, es = np.array([2.0, 10.0, 1000.0]), np.array([0.0, 0.01, 0.05])
    grid = f(Ds[:, None], es[None, :])
    assert grid.shape == (3, 3)
    for i, n in enumerate(Ds):
        for j, ee in enumerate(es):
            gn = tr.GaussianMixture.robust_nonrobust(int(n))
            assert grid[i, j] == pytest.approx(float(tr.risk(gn, gn.bayes_classifier(), tr.Linf(ee))), rel=1e-12)
    assert tr.risk_function(g, g.bayes_classifier(), tr.Linf(e), symbols=(Dsym, e)) is f
    logf = tr.risk_function(tr.GaussianMixture([Dsym], 1), tr.Linear([1.0]), log=True)
    assert float(logf(40.0)) == pytest.approx(float(mpmath.log(mpmath.erfc(40 / mpmath.sqrt(2)) / 2)), rel=1e-12)


@pytest.mark.parametrize("threat", [tr.Linf(0.3), tr.L2(0.5, coords=(0, 2)), tr.L1(0.7)])
def test_robust_logistic_loss_is_the_inner_maximum(threat):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    y = torch.where(torch.rand(64, generator=gen) < 0.5, 1, -1)
    w = torch.tensor([0.7, -1.2, 0.4], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    loss = tr.robust_logistic_loss(w, b, x, y, threat, reduction="none")
    # the maximiser reaches it ...
    delta = tr.risks.worst_case_perturbation(w, y, threat)
    assert bool(threat.contains(x + delta, x, atol=1e-12).all())
    at_max = torch.nn.functional.softplus(-y * ((x + delta) @ w + b))
    torch.testing.assert_close(loss, at_max, rtol=1e-12, atol=1e-12)
    # ... and no point of the ball does better (random points, including the ball's boundary)
    for seed in range(5):
        pts = threat.random_start(x, generator=seed)
        other = torch.nn.functional.softplus(-y * (pts @ w + b))
        assert bool((other <= loss + 1e-12).all())
    assert torch.autograd.gradcheck(
        lambda ww, bb: tr.robust_logistic_loss(ww, bb, x, y, threat), (w, b), eps=1e-6, atol=1e-8)
    # the sympy form at one point agrees
    expr = tr.robust_logistic_loss_expr([0.7, -1.2, 0.4], 0.1, int(y[0]), threat)
    pt = dict(zip(sympy.symbols("x_1:4", real=True), x[0].tolist(), strict=True))
    assert float(expr.subs(pt)) == pytest.approx(float(loss[0].detach()), rel=1e-12)


def test_robust_loss_does_not_saturate_for_huge_margins():
    x = torch.tensor([[1e3, 0.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    loss = tr.robust_logistic_loss(w, 0.0, x, torch.tensor([-1]), tr.Linf(0.5))
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(1e3 + 1.0)
    loss.backward()
    assert torch.isfinite(w.grad).all()


@pytest.mark.parametrize("definition", ["ball", "projection", "error-region"])
def test_subnormal_gaussian_weight_is_the_small_weight_limit(definition):
    """w = (0, 5e-324) on Tsipras (found by hypothesis: the lift of tiny Gaussian weights overflowed to inf): the
    risk is the one of a small ordinary weight (1e-9, not lifted), not an error."""
    dist = tr.Tsipras(0.8, 1.0, d=1)
    tiny = tr.risk(dist, tr.Linear(Blocks([(0.0, 1), (5e-324, 1)]), 0.5), tr.Linf(0.3), definition=definition)
    small = tr.risk(dist, tr.Linear(Blocks([(0.0, 1), (1e-9, 1)]), 0.5), tr.Linf(0.3), definition=definition)
    assert float(tiny) == pytest.approx(float(small), abs=1e-8)
