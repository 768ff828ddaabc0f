"""Attacks against closed forms and independent references.

* FGSM, PGD and the exact attack on linear classifiers reach the closed-form adversarial risk of a Gaussian
  mixture, ``1/2 Q((w.mu + b - eps ||w||_q) / (sigma ||w||_2)) + 1/2 Q((w.mu - b - eps ||w||_q) / (sigma
  ||w||_2))`` (computed here from the dual norm), inside an exact Clopper-Pearson interval.
* Exact minimal perturbations sit on the boundary and beat every direction of a brute-force line search; the
  quadratic one matches scipy's constrained minimiser.
* Carlini-Wagner's minimum norm matches the exact distance; the projection attack matches a linear program.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

import toyrobust as tr
from toyrobust.attacks import (
    carlini_wagner_l2,
    default_attack,
    exact_attack,
    fgsm,
    minimal_perturbation,
    on_manifold_attack,
    pgd,
    projection_attack,
)

NORMS = {"linf": (tr.Linf, 1.0), "l2": (tr.L2, 2.0), "l1": (tr.L1, math.inf)}  # class, dual exponent q


def _ci(k: int, n: int, level: float = 0.999) -> tuple[float, float]:
    ci = stats.binomtest(int(k), int(n)).proportion_ci(level, method="exact")
    return ci.low, ci.high


def _closed_form_linear_risk(mu: np.ndarray, sigma: float, w: np.ndarray, b: float, eps: float, q: float) -> float:
    """Ball adversarial risk of sign(w.x + b) on N(y mu, sigma^2 I): the margin drops by eps ||w||_q."""
    wq = np.linalg.norm(w, ord=q)
    s = sigma * np.linalg.norm(w)
    wm = float(w @ mu)
    return 0.5 * stats.norm.sf((wm + b - eps * wq) / s) + 0.5 * stats.norm.sf((wm - b - eps * wq) / s)


MU = np.array([1.0, 0.5, -0.4, 0.3, 0.2])
W = np.array([0.9, 0.6, -0.2, 0.5, -0.1])
B = 0.3
EPS = {"linf": 0.25, "l2": 0.5, "l1": 0.7}


@pytest.fixture(scope="module")
def gm_data():
    dist = tr.GaussianMixture(MU.tolist(), sigma=1.0)
    x, y = dist.sample(20_000, generator=11, dtype=torch.float64)
    return dist, x, y


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("attack", ["fgsm", "pgd", "pgd-ce", "exact"])
def test_attacks_reach_closed_form_linear_risk(gm_data, norm, attack):
    dist, x, y = gm_data
    cls, q = NORMS[norm]
    threat = cls(EPS[norm])
    clf = tr.Linear(W.tolist(), B)
    if attack == "fgsm":
        res = fgsm(clf, x, y, threat)
    elif attack == "pgd":
        res = pgd(clf, x, y, threat, steps=30, generator=3)
    elif attack == "pgd-ce":
        res = pgd(clf, x, y, threat, steps=30, loss="ce", generator=4)
    else:
        res = exact_attack(clf, x, y, threat)
    expected = _closed_form_linear_risk(MU, 1.0, W, B, EPS[norm], q)
    lo, hi = _ci(int(res.success.sum()), len(y))
    assert lo <= expected <= hi, (attack, norm, expected, lo, hi)
    assert threat.contains(res.x_adv, x).all()
    assert res.x_adv.dtype == torch.float64


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_exact_attack_is_exactly_the_distance_rule(gm_data, norm):
    # with no attack error, success is exactly "dual-norm margin <= eps" on every sample
    dist, x, y = gm_data
    cls, q = NORMS[norm]
    clf = tr.Linear(W.tolist(), B)
    res = exact_attack(clf, x, y, cls(EPS[norm]))
    m = (x.numpy() @ W + B) * y.numpy()
    rule = m / np.linalg.norm(W, ord=q) <= EPS[norm]
    clear = np.abs(m / np.linalg.norm(W, ord=q) - EPS[norm]) > 1e-9
    assert np.array_equal(res.success.numpy()[clear], rule[clear])


# ------------------------------------------------------------------------------------------------------------
# exact minimal perturbations: on the boundary, and no direction does better (brute-force line search)
# ------------------------------------------------------------------------------------------------------------


def _unit_directions(k: int, d: int, p: float, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((k, d))
    if p == 1.0:  # include signed axes: the L1 sphere's vertices
        v = np.concatenate([v, np.eye(d), -np.eye(d)])
    if p == math.inf:
        v = np.concatenate([v, np.sign(rng.standard_normal((k, d)))])
    return v / np.linalg.norm(v, ord=p, axis=1, keepdims=True)


def _crossing(margin_poly, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest t > 0 where the margin, a polynomial of degree <= 2 in t along x + t v, reaches 0 (per row of v).

    The margin starts on the correct side, so its first positive root is where the label first changes.
    """
    a, b, c = margin_poly(x, v)  # coefficients of t^2, t, 1, each of shape (k,)
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = np.where(b != 0, -c / b, np.inf)
        disc = b * b - 4 * a * c
        sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
        r1, r2 = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
    roots = np.where(a[:, None] == 0, np.stack([lin, lin], 1), np.stack([r1, r2], 1))
    roots = np.where(np.isfinite(roots) & (roots > 0), roots, np.inf)
    return roots.min(axis=1)


def _linear_poly(w, b):
    return lambda x, v: (np.zeros(len(v)), v @ w, np.full(len(v), w @ x + b))


def _radial_poly(r):  # ||x + t v||^2 - r^2 has the sign of ||x + t v|| - r
    return lambda x, v: ((v * v).sum(1), 2 * v @ x, np.full(len(v), x @ x - r * r))


def _quadratic_poly(alpha, c):
    return lambda x, v: ((v * v) @ alpha, 2 * v @ (alpha * x), np.full(len(v), alpha @ (x * x) - c))


CASES = {
    "linear": (lambda rng, d: tr.Linear(rng.uniform(-2, 2, d).tolist(), float(rng.uniform(-1, 1))),
               lambda c: _linear_poly(c.w.to_numpy(), float(c.b))),
    "radial": (lambda rng, d: tr.Radial(float(rng.uniform(0.5, 2.0))), lambda c: _radial_poly(float(c.r))),
    "quadratic": (lambda rng, d: tr.Quadratic(rng.uniform(-1.0, 3.0, d).tolist(), float(rng.uniform(0.2, 2.0))),
                  lambda c: _quadratic_poly(c.alpha.to_numpy(), float(c.c))),
}


@settings(max_examples=30)
@given(kind=st.sampled_from(sorted(CASES)), norm=st.sampled_from(["linf", "l2", "l1"]), d=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_minimal_perturbation_beats_every_direction_and_hits_the_boundary(kind, norm, d, seed):
    if kind == "quadratic" and norm == "l1":
        return
    rng = np.random.default_rng(seed)
    make, poly = CASES[kind]
    clf = make(rng, d)
    cls, _ = NORMS[norm]
    p = {"linf": math.inf, "l2": 2.0, "l1": 1.0}[norm]
    x = torch.tensor(rng.uniform(-2, 2, (4, d)))
    m0 = clf.margin(x)
    y = torch.where(m0 >= 0, 1, -1)  # correctly classified points
    delta, dist = minimal_perturbation(clf, x, y, cls(0.0))
    tol = {1: 1e-7, 2: 0.01, 3: 0.06}[d]
    for i in range(len(y)):
        yi = int(y[i])
        best = _crossing(poly(clf), x[i].numpy(), _unit_directions(3000, d, p, rng)).min()
        di = float(dist[i])
        if not math.isfinite(di):
            assert not np.isfinite(best)
            continue
        # no direction reaches the other class sooner, and the sampled directions come close
        assert best >= di * (1 - 1e-7) - 1e-9, (best, di)
        exact_vertex = kind == "linear" and norm != "l2"  # the optimum is a sampled vertex
        assert best <= di * (1 + (1e-7 if exact_vertex else tol)) + 1e-9, (best, di)
        # the perturbation has that size, is misclassified and sits on the boundary
        assert float(cls(0.0).norm(delta[i : i + 1])) == pytest.approx(di, rel=1e-9, abs=1e-12)
        z = x[i : i + 1] + delta[i : i + 1]
        assert int(clf.predict(z)) != yi
        assert abs(float(clf.margin(z))) <= 1e-9 * (1 + float(m0.abs()[i]))


def _box_extreme_flips(alpha, c, x, y, t, free):
    """Whether some delta with |delta_i| <= t on the free coordinates flips label y (brute force, independent of
    the piecewise solver): the margin is separable, so each coordinate's extreme lies at -t, +t or -x_i."""
    best = 0.0
    for i in range(len(x)):
        cands = [x[i]] if not free[i] else [x[i] - t, x[i] + t] + ([0.0] if abs(x[i]) <= t else [])
        vals = [alpha[i] * z * z for z in cands]
        best += min(vals) if y > 0 else max(vals)
    return best - c < 0 if y > 0 else best - c >= 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 5), restrict=st.booleans())
def test_quadratic_linf_distance_is_the_smallest_box_that_flips(seed, d, restrict):
    # mixed signs and zeros in alpha, a coordinate subset, unreachable boundaries (dist = inf): the exact Linf
    # distance is the smallest box size whose extreme (per-coordinate enumeration) flips the label
    rng = np.random.default_rng(seed)
    alpha = rng.choice([-2.0, -0.5, 0.0, 0.7, 1.5, 3.0], d) * rng.uniform(0.5, 1.5, d)
    c = float(rng.uniform(-1.5, 2.0))
    clf = tr.Quadratic(alpha.tolist(), c)
    coords = tuple(sorted(rng.choice(d, int(rng.integers(1, d + 1)), replace=False).tolist())) if restrict else None
    threat = tr.Linf(0.0, coords=coords)
    free = np.zeros(d, bool)
    free[list(coords) if coords else slice(None)] = True
    x = torch.tensor(rng.uniform(-2, 2, (6, d)))
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    delta, dist = minimal_perturbation(clf, x, y, threat)
    flipped = clf.predict(x + delta) != y  # the batch the attack evaluated (a row alone may round a tie otherwise)
    for i in range(len(y)):
        xi, yi, di = x[i].numpy(), int(y[i]), float(dist[i])
        assert not delta[i][~torch.as_tensor(free)].any()
        if not math.isfinite(di):  # no box flips it, however large
            assert not _box_extreme_flips(alpha, c, xi, yi, 1e3, free)
            continue
        assert flipped[i]
        assert float(delta[i].abs().max()) == pytest.approx(di, rel=1e-9, abs=1e-12)
        assert not _box_extreme_flips(alpha, c, xi, yi, di * (1 - 1e-7) - 1e-12, free)
        assert _box_extreme_flips(alpha, c, xi, yi, di * (1 + 1e-7) + 1e-12, free)


def test_quadratic_linf_distance_matches_a_dense_grid_in_2d():
    # a second derivation: the smallest Linf norm among the grid points (step 0.005) that change the prediction
    clf = tr.Quadratic([1.5, -0.8], 0.6)
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.uniform(-1.5, 1.5, (12, 2)))
    y = clf.predict(x)
    _, dist = minimal_perturbation(clf, x, y, "linf")
    g = torch.linspace(-2, 2, 801, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    norms = grid.abs().amax(1)
    for i in range(len(y)):
        flips = clf.predict(x[i] + grid) != y[i]
        assert float(dist[i]) <= float(norms[flips].min()) <= float(dist[i]) + 0.005 + 1e-12


def test_minimal_perturbation_of_misclassified_points_is_zero_and_impossible_is_inf():
    clf = tr.Linear([1.0, 0.0], 0.0)
    x = torch.tensor([[1.0, 2.0], [-1.0, 2.0]], dtype=torch.float64)
    delta, dist = minimal_perturbation(clf, x, torch.tensor([-1, -1]), "l2")
    assert dist.tolist() == [0.0, 1.0]  # row 0 is already misclassified
    assert torch.equal(delta[0], torch.zeros(2, dtype=torch.float64))
    # a threat on the zero-weight coordinate cannot move the margin
    delta, dist = minimal_perturbation(clf, x, torch.tensor([1, -1]), tr.L2(1.0, coords=(1,)))
    assert torch.isinf(dist).all()
    res = exact_attack(clf, x, torch.tensor([1, -1]), tr.L2(1.0, coords=(1,)))
    assert not res.success.any()


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_linear_minimal_perturbation_on_restricted_coordinates(norm):
    cls, q = NORMS[norm]
    w = np.array([0.5, -2.0, 1.0, 3.0])
    clf = tr.Linear(w.tolist(), -0.2)
    threat = cls(0.0, coords=(0, 2))
    x = torch.tensor(np.random.default_rng(0).normal(size=(50, 4)))
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    delta, dist = minimal_perturbation(clf, x, y, threat)
    expected = np.abs(x.numpy() @ w - 0.2) / np.linalg.norm(w[[0, 2]], ord=q)
    np.testing.assert_allclose(dist.numpy(), expected, rtol=1e-12)
    assert torch.all(delta[:, [1, 3]] == 0)
    assert (clf.predict(x + delta) != y).all()


# the quadratic secular equation against scipy's constrained minimiser (multi-start)
QUAD_CASES = [
    ([0.5, 1.0, 2.0], 1.0, [0.3, -0.2, 0.4]),  # inside, moves out
    ([0.5, 1.0, 2.0], 1.0, [1.5, 1.0, -0.2]),  # outside, moves in
    ([3.0, 1.0, 1.0], 1.0, [0.0, 0.3, 0.2]),  # hard case: no component on the largest coefficient
    ([1.0, -1.0, 0.5], 0.5, [0.4, 0.8, 0.1]),  # indefinite: a hyperboloid
    ([1.0, -1.0, 0.5], 0.5, [1.4, 0.2, -0.3]),
    ([2.0, -0.5, 1.0], -0.3, [0.1, 0.2, 0.0]),  # negative threshold, hard case on the negative coefficient
]


@pytest.mark.parametrize("alpha,c,point", QUAD_CASES)
def test_quadratic_exact_matches_scipy(alpha, c, point):
    a, x = np.array(alpha), np.array(point)
    clf = tr.Quadratic(alpha, c)
    xt = torch.tensor([point], dtype=torch.float64)
    y = torch.where(clf.margin(xt) >= 0, 1, -1)
    delta, dist = minimal_perturbation(clf, xt, y, "l2")
    cons = {"type": "eq", "fun": lambda z: a @ (z * z) - c, "jac": lambda z: 2 * a * z}
    rng = np.random.default_rng(0)
    best = math.inf
    for _ in range(30):
        z0 = x + rng.normal(scale=1.0, size=3)
        r = optimize.minimize(lambda z: np.sum((z - x) ** 2), z0, jac=lambda z: 2 * (z - x), constraints=[cons],
                              method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
        if r.success and abs(a @ (r.x * r.x) - c) < 1e-8:
            best = min(best, math.sqrt(r.fun))
    assert math.isfinite(best)
    assert float(dist[0]) == pytest.approx(best, rel=1e-6, abs=1e-9)
    assert int(clf.predict(xt + delta)) != int(y[0])


def _extreme_norm(xi: np.ndarray, t: float, p: float, largest: bool, rng: np.random.Generator) -> float:
    """min (or max) of ||x + d||_2 over ||d||_p <= t by SLSQP (multi-start), smooth reformulations per p."""
    d = len(xi)
    sign = -1.0 if largest else 1.0
    vals = []
    for k in range(8):
        start = rng.uniform(-1, 1, d) * t / d
        if k == 0 and largest:
            start = np.sign(xi + 1e-300) * t / (d if p == 1 else 1)
        if p == 1:  # d = u - v with u, v >= 0 and sum(u + v) <= t
            fun = lambda uv: sign * np.linalg.norm(xi + uv[:d] - uv[d:])  # noqa: E731
            cons = [{"type": "ineq", "fun": lambda uv: t - uv.sum()}]
            r = optimize.minimize(fun, np.concatenate([start.clip(0), (-start).clip(0)]), method="SLSQP",
                                  bounds=[(0, None)] * (2 * d), constraints=cons, options={"ftol": 1e-13})
        elif p == 2:
            r = optimize.minimize(lambda dd: sign * np.linalg.norm(xi + dd), start * 0.5, method="SLSQP",
                                  constraints=[{"type": "ineq", "fun": lambda dd: t * t - dd @ dd}],
                                  options={"ftol": 1e-13})
        else:
            r = optimize.minimize(lambda dd: sign * np.linalg.norm(xi + dd), start, method="SLSQP",
                                  bounds=[(-t, t)] * d, options={"ftol": 1e-13})
        vals.append(sign * r.fun)
    return max(vals) if largest else min(vals)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_radial_exact_matches_scipy_in_higher_dimension(norm):
    """The radius ``dist`` is exactly where the extreme norm over the Lp ball of radius t reaches r."""
    cls, _ = NORMS[norm]
    p = {"linf": math.inf, "l2": 2, "l1": 1}[norm]
    rng = np.random.default_rng(5)
    r = 1.5
    clf = tr.Radial(r)
    x = torch.tensor(rng.normal(size=(6, 5)) * 0.7)
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    assert len(set(y.tolist())) == 2
    _, dist = minimal_perturbation(clf, x, y, cls(0.0))
    for i in range(len(y)):
        xi, yi, di = x[i].numpy(), int(y[i]), float(dist[i])
        outward = yi < 0  # -1 rows (inside) must get out: maximise the norm
        beyond = _extreme_norm(xi, di * 1.002, p, outward, rng)
        short = _extreme_norm(xi, di * 0.998, p, outward, rng)
        if outward:
            assert beyond > r > short, (i, di, beyond, short)
        else:
            assert beyond < r < short, (i, di, beyond, short)


def test_exact_attack_rejects_other_classifiers_and_definitions():
    net = torch.nn.Linear(3, 1)
    x, y = torch.zeros(2, 3), torch.tensor([1, -1])
    with pytest.raises(TypeError, match="TorchClassifier"):
        exact_attack(net, x, y, tr.L2(0.1))
    with pytest.raises(TypeError, match="L2 and Linf only"):
        exact_attack(tr.Quadratic([1.0, 1.0, 1.0]), x, y, tr.L1(0.1))
    with pytest.raises(ValueError, match="definition"):
        exact_attack(tr.Linear([1.0, 0, 0]), x, y, tr.L2(0.1), definition="projection", dist=None)


def test_exact_attack_prediction_change_definition():
    clf = tr.Linear([1.0, -1.0], 0.5)
    x = torch.tensor(np.random.default_rng(1).normal(size=(200, 2)))
    y = torch.ones(200, dtype=torch.int64)  # labels irrelevant for prediction-change
    res = exact_attack(clf, x, y, tr.L2(0.4), definition="prediction-change")
    d = (clf.margin(x).abs() / math.sqrt(2)).numpy()
    clear = np.abs(d - 0.4) > 1e-9
    assert np.array_equal(res.success.numpy()[clear], (d <= 0.4)[clear])


def test_default_attack_routing():
    # default_attack returns attack objects: the exact one (kind "exact"), PGD, or the projection attack
    A = tr.attacks
    assert default_attack(tr.Linear([1.0, 2.0]), tr.L1(0.1)) == A.ExactAttack()
    assert default_attack(tr.Radial(1.0), tr.Linf(0.1)) == A.ExactAttack()
    assert default_attack(tr.Quadratic([1.0, 2.0]), tr.L2(0.1)).kind == "exact"
    assert default_attack(tr.Quadratic([1.0, 2.0]), tr.Linf(0.1)) == A.ExactAttack()
    assert default_attack(tr.Quadratic([1.0, 2.0]), tr.L1(0.1)) == A.PGD()
    assert default_attack(torch.nn.Linear(2, 1), tr.L2(0.1)) == A.PGD()
    assert default_attack(tr.Linear([1.0, 2.0]), tr.L2(0.1), "projection") == A.ProjectionAttack()
    assert default_attack(tr.Linear([1.0, 2.0]), tr.L2(0.1), "error-region") == A.PGD()
    assert A.PGD().kind == "lower bound" and A.ExactAttack().kind == "exact"
    with pytest.raises(ValueError, match="definition"):
        default_attack(tr.Linear([1.0]), tr.L2(0.1), "nope")


# ------------------------------------------------------------------------------------------------------------
# Carlini-Wagner: minimum norm = exact distance
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clf", [tr.Linear([0.8, -0.6, 0.3], 0.2), tr.Quadratic([0.5, 1.0, 2.0], 1.0),
                                 tr.Radial(1.2)])
def test_carlini_wagner_finds_the_minimal_l2_norm(clf):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    res = carlini_wagner_l2(clf, x, y, steps=150)
    _, dist = minimal_perturbation(clf, x, y, "l2")
    assert res.success.all()
    assert torch.all(res.norms >= dist * (1 - 1e-9))
    rel = (res.norms - dist) / dist.clamp_min(1e-3)
    assert float(rel.max()) < 0.02 and float(rel.median()) < 1e-3


def test_carlini_wagner_with_threat_and_bounds():
    clf = tr.Linear([1.0, 1.0], -1.0)
    gen = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(400, 2, generator=gen, dtype=torch.float64)
    y = torch.where(clf.margin(x) >= 0, 1, -1)
    threat = tr.L2(0.15)
    res = carlini_wagner_l2(clf, x, y, threat=threat, bounds=(0.0, 1.0), steps=100)
    dist = clf.margin(x).abs() / math.sqrt(2)
    assert threat.contains(res.x_adv, x).all()
    assert (res.x_adv >= 0).all() and (res.x_adv <= 1).all()
    clear = (dist - 0.15).abs() > 2e-3
    assert torch.equal(res.success[clear], (dist <= 0.15)[clear])
    assert torch.equal(res.success, tr.is_adversarial("ball", clf, res.x_adv, y))


# ------------------------------------------------------------------------------------------------------------
# definition-aware attacks
# ------------------------------------------------------------------------------------------------------------


def test_projection_attack_matches_linear_program():
    """Gaussian mixture, linear f, Linf: adversarial under the projection definition iff the LP
    ``min y(w.(x+d) + b)  s.t.  |d| <= eps, y wB.(x+d) >= 0`` has a negative value (wB: the Bayes direction)."""
    dist = tr.GaussianMixture([1.0, 0.5, 0.2], 1.0)
    w, b, eps = np.array([0.3, 1.0, -0.5]), 0.1, 0.5
    clf = tr.Linear(w.tolist(), b)
    x, y = dist.sample(300, generator=7, dtype=torch.float64)
    res = projection_attack(clf, x, y, tr.Linf(eps), dist=dist, generator=0)
    wb = 2 * np.array([1.0, 0.5, 0.2])
    values = []
    for xi, yi in zip(x.numpy(), y.numpy(), strict=True):
        lp = optimize.linprog(yi * w, A_ub=[-yi * wb], b_ub=[yi * wb @ xi], bounds=[(-eps, eps)] * 3,
                              method="highs")
        values.append(yi * (w @ (xi + lp.x) + b) if lp.status == 0 else math.inf)
    values = np.array(values)
    found = res.success.numpy()
    assert not np.any(found & (values > 1e-9))  # never claims an impossible point
    assert np.all(found[values < -0.03])  # finds every clearly feasible one
    assert found.sum() >= 0.4 * len(found)
    # the returned points keep their true label and lie in the ball
    assert tr.is_adversarial("projection", clf, res.x_adv, y, dist=dist).equal(res.success)
    assert tr.Linf(eps).contains(res.x_adv, x).all()


@pytest.mark.parametrize("make", [lambda: tr.Tsipras(0.9, 3.0, 1), lambda: tr.PointMasses(1.0),
                                  lambda: tr.ConcentricSpheres(5, 1.0, 1.3)])
def test_projection_attack_never_changes_the_true_label(make):
    dist = make()
    x, y = dist.sample(500, generator=1, dtype=torch.float64)
    d = x.shape[1]
    clf = tr.Linear(np.random.default_rng(3).normal(size=d).tolist(), 0.1)
    threat = tr.L2(1.2)
    res = projection_attack(clf, x, y, threat, dist=dist, generator=2, steps=30)
    ball = exact_attack(clf, x, y, threat)  # every projection-adversarial point is ball-adversarial
    truth = dist.bayes_label(dist.project(res.x_adv))
    assert torch.all(truth[res.success] == y[res.success])
    assert torch.all(ball.success[res.success])
    assert res.success.any()
    if not isinstance(dist, tr.Tsipras):  # there the linear Bayes rule differs from Bayes(proj(x)) off the support
        bayes = projection_attack(dist.bayes_classifier(), x, y, threat, dist=dist, generator=2, steps=30)
        assert not bayes.success.any()


def test_on_manifold_attack_beats_nothing_but_keeps_radius():
    dist = tr.ConcentricSpheres(8, 1.0, 1.3)
    x, y = dist.sample(400, generator=5, dtype=torch.float64)
    clf = tr.Linear(np.random.default_rng(0).normal(size=8).tolist(), 0.0)
    for threat in (tr.L2(0.6), tr.Linf(0.25), tr.L1(0.8)):
        res = on_manifold_attack(clf, x, y, threat, generator=1)
        assert torch.allclose(res.x_adv.norm(dim=1), x.norm(dim=1), rtol=1e-12, atol=0)
        assert threat.contains(res.x_adv, x).all()
        assert 0.3 < res.success.double().mean() <= pgd(clf, x, y, threat, generator=1).success.double().mean()


# ------------------------------------------------------------------------------------------------------------
# mechanics: targeted, early stopping, restarts, determinism, grad_evals, validation
# ------------------------------------------------------------------------------------------------------------


class _Counting(torch.nn.Module):
    """Records the batch size of every forward pass that builds a graph (gradient evaluations)."""

    def __init__(self, w: list[float], b: float):
        super().__init__()
        self.lin = torch.nn.Linear(len(w), 1).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w]))
            self.lin.bias.fill_(b)
        self.sizes: list[int] = []

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.sizes.append(x.shape[0])
        return self.lin(x)


def test_early_stopping_and_restarts_attack_only_robust_rows():
    x, y = tr.GaussianMixture([1.0, -0.5]).sample(500, generator=4, dtype=torch.float64)
    threat = tr.Linf(0.4)
    margin = (x @ torch.tensor([1.0, -0.5], dtype=torch.float64) + 0.1) * y
    # from the clean point, the misclassified rows cost one gradient evaluation each and leave
    net = _Counting([1.0, -0.5], 0.1)
    pgd(net, x, y, threat, steps=10, random_start=False)
    assert net.sizes[0] == 500 and net.sizes[1] == int((margin >= 0).sum()) - int((margin == 0).sum() * 0)
    assert all(a >= b for a, b in zip(net.sizes[:-1], net.sizes[1:], strict=True))
    # restarts attack only the rows still robust
    net = _Counting([1.0, -0.5], 0.1)
    first = pgd(_Counting([1.0, -0.5], 0.1), x, y, threat, steps=10, restarts=1, generator=0)
    res = pgd(net, x, y, threat, steps=10, restarts=3, generator=0)
    assert net.sizes[10] == 500 - int(first.success.sum())
    assert res.grad_evals == sum(net.sizes)
    exact = exact_attack(tr.Linear([1.0, -0.5], 0.1), x, y, threat)
    assert torch.equal(res.success, exact.success)


def test_early_stop_off_keeps_successes_and_best_iterate():
    net = _Counting([1.0, -0.5], 0.1)
    x, y = tr.GaussianMixture([1.0, -0.5]).sample(300, generator=4, dtype=torch.float64)
    res = pgd(net, x, y, tr.L2(0.5), steps=8, early_stop=False, generator=0)
    assert net.sizes == [300] * 8 and res.grad_evals == 2400
    _, dist = minimal_perturbation(tr.Linear([1.0, -0.5], 0.1), x, y, "l2")
    clear = (dist - 0.5).abs() > 0.01
    assert torch.equal(res.success[clear], (dist <= 0.5)[clear])
    # the returned point is the best iterate: for a linear model, as deep as the ball allows
    m_adv = (res.x_adv @ torch.tensor([1.0, -0.5], dtype=torch.float64) + 0.1) * y
    drop = ((x @ torch.tensor([1.0, -0.5], dtype=torch.float64) + 0.1) * y - m_adv) / (0.5 * math.sqrt(1.25))
    assert float(drop.min()) > 0.9 and float(drop.median()) > 0.99 and float(drop.max()) <= 1 + 1e-12


@pytest.mark.parametrize("r,expected_norm,succeeds", [(0.05, 0.3, False), (0.35, 0.3, True)])
def test_best_iterate_is_kept_when_pgd_overshoots(r, expected_norm, succeeds):
    """Radial margin ||x|| - r from (1, 0), label +1, steps of 0.7 towards the origin: iterates at radius 0.3 then
    0.4 (overshooting past 0). The best iterate (radius 0.3, adversarial when r = 0.35) must be returned."""
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    res = pgd(tr.Radial(r), x, y, tr.L2(2.0), steps=2, step_size=0.7, random_start=False, early_stop=False)
    assert float(res.x_adv.norm()) == pytest.approx(expected_norm, abs=1e-12)
    assert bool(res.success[0]) == succeeds


def test_targeted_is_untargeted_on_the_other_label():
    clf = tr.Linear([1.0, 2.0], 0.0)
    x, y = tr.GaussianMixture([1.0, 1.0]).sample(400, generator=9, dtype=torch.float64)
    a = pgd(clf, x, -y, tr.L2(0.5), targeted=True, generator=0)
    b = pgd(clf, x, y, tr.L2(0.5), generator=0)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    assert torch.all(clf.predict(a.x_adv)[a.success] == -y[a.success])  # reached the target


def test_same_seed_same_result_and_dtype_kept():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    x, y = tr.GaussianMixture([1.0, 0.5, 0.0, -0.5]).sample(200, generator=1)
    r1 = pgd(net, x, y, tr.L1(1.0), generator=5, steps=15)
    r2 = pgd(net, x, y, tr.L1(1.0), generator=torch.Generator().manual_seed(5), steps=15)
    assert torch.equal(r1.x_adv, r2.x_adv) and torch.equal(r1.success, r2.success)
    assert r1.x_adv.dtype == torch.float32


@pytest.mark.parametrize("call,match", [
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), loss="hinge"), "loss"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), steps=-1), "steps"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), restarts=0), "restarts"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), step_size=-0.1), "step_size"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y * 2, tr.L2(1.0)), "labels"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x[0], y, tr.L2(1.0)), "shape"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y[:1], tr.L2(1.0)), "y must have shape"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, None), "threat"),
    (lambda x, y: pgd(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), definition="projection"), "dist"),
    (lambda x, y: fgsm(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0), definition="bogus"), "definition"),
    (lambda x, y: carlini_wagner_l2(tr.Linear([1.0, 1.0]), x, y, bounds=(1.0, 0.0)), "bounds"),
    (lambda x, y: carlini_wagner_l2(tr.Linear([1.0, 1.0]), x, y, c_init=0), "c_init"),
    (lambda x, y: projection_attack(tr.Linear([1.0, 1.0]), x, y, tr.L2(1.0)), "dist"),
    (lambda x, y: minimal_perturbation(tr.Linear([1.0, 1.0]), x, y, "l3"), "norm"),
])
def test_invalid_inputs_are_rejected_with_named_parameters(call, match):
    x, y = torch.zeros(3, 2), torch.tensor([1, -1, 1])
    with pytest.raises((TypeError, ValueError), match=match):
        call(x, y)


def test_empty_batch():
    x, y = torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64)
    for res in (pgd(tr.Linear([1.0, 1.0, 1.0]), x, y, tr.L2(0.1)), fgsm(tr.Linear([1.0, 1.0, 1.0]), x, y, tr.L2(0.1)),
                exact_attack(tr.Linear([1.0, 1.0, 1.0]), x, y, tr.L2(0.1))):
        assert res.x_adv.shape == (0, 3) and res.success.shape == (0,) and res.grad_evals == 0
