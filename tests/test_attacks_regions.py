"""Exact projection and error-region attacks, honest estimate kinds and the cross-check's verdicts.

References (never the attack's own solver):

* brute force: every point of a fine grid over the ball (1-D and 2-D), judged by ``tr.is_adversarial``. A grid
  point that qualifies is a genuine qualifying point, so the attack must find one for that sample; and every
  success of the attack is re-checked on its returned point (inside the ball, adversarial by the definition's
  rule), so "found" means a qualifying point exists. Together: the attack finds a point iff one exists, up to the
  grid's resolution (thin slivers the grid misses are still proven by the returned point);
* the closed forms of ``tr.risk`` against Monte Carlo with exact Clopper-Pearson intervals (the six cases that
  PGD-type attacks could only bound from below, issue 10);
* hand-made estimates for the verdict logic.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import toyrobust as tr
from toyrobust import crosscheck as cc
from toyrobust.attacks import default_attack
from toyrobust.attacks.exact import exact_attack, supports_exact

LEVEL = 0.999


# ------------------------------------------------------------------------------------------ brute force
def _grid(threat, d, m):
    """Offsets on a regular grid over the ball of ``threat`` in R^d (m points per axis over [-eps, eps])."""
    eps = float(threat.eps)
    axis = torch.linspace(-eps, eps, m, dtype=torch.float64)
    free = threat.coord_indices(d)
    pts = torch.zeros(m ** len(free), d, dtype=torch.float64)
    pts[:, free] = torch.cartesian_prod(*([axis] * len(free))).reshape(-1, len(free))
    inside = threat.contains(pts, torch.zeros_like(pts))
    return pts[inside]


def _brute_force(clf, dist, x, y, threat, definition, m):
    """Per sample: does some grid point of its ball qualify?"""
    off = _grid(threat, x.shape[1], m)
    out = torch.zeros(x.shape[0], dtype=torch.bool)
    for i in range(x.shape[0]):
        z = x[i] + off
        yi = y[i].expand(z.shape[0])
        out[i] = bool(tr.is_adversarial(definition, clf, z, yi, dist=dist, x=x[i].expand_as(z)).any())
    return out


def _random_problem(kind, rng):
    if kind == "point-masses":
        dist = tr.PointMasses(float(rng.uniform(0.5, 2.0)))
        clf = tr.Linear([float(rng.choice([-1.0, 1.0]))], float(rng.uniform(-1, 2)))
        x = torch.tensor(rng.uniform(-1.0, 2.5, (40, 1)))
    elif kind == "gaussian":
        dist = tr.GaussianMixture(rng.normal(size=2).tolist(), float(rng.uniform(0.5, 1.5)))
        clf = tr.Linear(rng.normal(size=2).tolist(), float(rng.normal()))
        x = torch.tensor(rng.normal(scale=1.5, size=(40, 2)))
    else:
        dist = tr.Tsipras(float(rng.uniform(0.55, 0.95)), float(rng.uniform(0.2, 2.0)), 1)
        clf = tr.Linear(rng.normal(size=2).tolist(), float(rng.normal(scale=0.5)))
        x, _ = dist.sample(40, generator=int(rng.integers(1 << 30)), dtype=torch.float64)
        x[:20, 0] = torch.tensor(rng.uniform(-1.5, 1.5, 20))  # off the support too: the attack takes any x
    y = torch.tensor(rng.choice([-1, 1], x.shape[0]))
    return dist, clf, x, y


# in 1-D every norm is the same interval: point masses run with Linf only
GRID_CASES = [(k, n) for k in ("gaussian", "tsipras") for n in ("linf", "l2", "l1", "linf:coords")] + [
    ("point-masses", "linf")]


@pytest.mark.parametrize("kind,norm", GRID_CASES)
@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_exact_region_attack_finds_a_point_iff_the_grid_does(kind, definition, norm):
    rng = np.random.default_rng([len(kind), len(definition), len(norm), ord(norm[-1])])
    found_any = 0
    for _ in range(2):
        dist, clf, x, y = _random_problem(kind, rng)
        eps = float(rng.uniform(0.2, 2.5))
        threat = {"linf": tr.Linf(eps), "l2": tr.L2(eps), "l1": tr.L1(eps),
                  "linf:coords": tr.Linf(eps, coords=(x.shape[1] - 1,))}[norm]
        assert supports_exact(clf, threat, definition=definition, dist=dist)
        res = exact_attack(clf, x, y, threat, definition=definition, dist=dist)
        # soundness: every success is a point of the ball that qualifies (independently re-checked)
        assert bool(threat.contains(res.x_adv, x).all())
        again = tr.is_adversarial(definition, clf, res.x_adv, y, dist=dist, x=x)
        assert torch.equal(again, res.success)
        # completeness: whatever the grid finds, the attack finds
        grid = _brute_force(clf, dist, x, y, threat, definition, 161 if x.shape[1] == 1 else 81)
        missed = grid & ~res.success
        assert not bool(missed.any()), (dist, clf, threat, x[missed], y[missed])
        found_any += int(grid.sum())
    assert found_any > 0  # the random problems are not all trivially robust


def test_exact_region_attack_tsipras_boundary_zero_rounds_to_plus_one():
    """x_1 = -1 reaches z_1 = 0 exactly at eps = 1, where the projection gives x_1 = +1 (a closed piece)."""
    t = tr.Tsipras(0.9, 3.0, 1)
    clf = tr.Linear([1.0, 0.0])  # sign(z_1): +1 at z_1 = 0
    x = torch.tensor([[-1.0, -3.0]], dtype=torch.float64)
    y = torch.tensor([-1])
    # error-region: at z = (0, -3) the truth is Bayes(+1, -3) = -1 (2.2 - 18 < 0) and f = +1: qualifies
    for eps, expect in ((1.0, True), (1.0 - 1e-9, False)):
        res = exact_attack(clf, x, y, tr.Linf(eps, coords=(0,)), definition="error-region", dist=t)
        assert bool(res.success[0]) is expect, eps


def test_bernoulli_exact_attack_against_closed_form_and_refusal():
    theta = [1, -1, 1, 1, -1, 1, 1, 1, -1]
    bm = tr.BernoulliModel(9, 0.3, theta)
    clf = tr.Linear([0.8 * t for t in theta], 0.7)
    for threat in (tr.Linf(0.4), tr.L2(0.9), tr.L1(0.95)):
        for definition in ("projection", "error-region"):
            assert default_attack(clf, threat, definition, dist=bm).kind == "exact"
            exact = float(tr.risk(bm, clf, threat, definition))
            est = tr.estimate_risk(bm, clf, threat, definition, n=4000, seed=3, level=LEVEL, dtype=torch.float64)
            assert est.kind == "exact" and est.contains(exact), (threat, definition, est, exact)
    # eps >= 1 lets a coordinate reach 0 (rounded to +1): no exact attack, PGD-type estimates instead
    assert not supports_exact(clf, tr.Linf(1.0), definition="projection", dist=bm)
    assert isinstance(default_attack(clf, tr.Linf(1.0), "projection", dist=bm), tr.attacks.ProjectionAttack)
    x, y = bm.sample(5, generator=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="sign"):
        exact_attack(clf, x * 0.5, y, tr.Linf(0.6), definition="error-region", dist=bm)


def test_exact_region_attack_refuses_what_it_cannot_decide():
    sp = tr.ConcentricSpheres(5, 1.0, 1.3)
    x, y = sp.sample(4, generator=0, dtype=torch.float64)
    with pytest.raises(TypeError, match="no exact projection attack"):
        exact_attack(tr.Linear([1.0] * 5), x, y, tr.L2(0.1), definition="projection", dist=sp)
    assert type(default_attack(tr.Linear([1.0] * 5), tr.L2(0.1), "error-region", dist=sp)) is tr.attacks.PGD
    with pytest.raises(ValueError, match="dist"):
        exact_attack(tr.Linear([1.0] * 5), x, y, tr.L2(0.1), definition="projection")


# ------------------------------------------------------------------------------------------ issue 10's six rows
_D = 100
_A = math.sqrt(math.log(_D) / (_D - 1))
WEAKER_ROWS = [
    (tr.PointMasses(1.0), tr.Linear([-1.0], 0.2), tr.Linf(0.6), "error-region", 1.0),
    (tr.Tsipras(0.9, 3.0, 1), tr.Tsipras(0.9, 3.0, 1).bayes_classifier(), tr.Linf(2.0), "projection", 0.1967),
    (tr.Tsipras(0.9, 3.0, 1), tr.Tsipras(0.9, 3.0, 1).bayes_classifier(), tr.Linf(2.0), "error-region", 0.2907),
    (tr.Tsipras(0.9, 3.0, 1), tr.Linear([1.0, 0.0]), tr.Linf(2.0), "projection", 0.99999820),
    (tr.Tsipras(0.9, 3.0, 1), tr.Linear([1.0, 0.0]), tr.Linf(2.0), "error-region", 1.0),
    (tr.GaussianMixture.robust_nonrobust(_D), tr.Linear([1.0] + [0.0] * (_D - 1)), tr.Linf(2 * _A), "error-region",
     0.9584),
]


@pytest.mark.parametrize("row", range(len(WEAKER_ROWS)))
def test_formerly_attack_weaker_rows_now_agree(row):
    dist, clf, threat, definition, quoted = WEAKER_ROWS[row]
    exact = float(tr.risk(dist, clf, threat, definition))
    assert exact == pytest.approx(quoted, abs=5e-5)  # the values the issue quotes
    est = tr.estimate_risk(dist, clf, threat, definition, n=4000, seed=row, level=LEVEL, dtype=torch.float64)
    assert est.method == "exact_attack" and est.kind == "exact"
    assert est.contains(exact), (est, exact)
    res = cc.run_case(cc.Case("g", "c", dist, clf, threat, definition), n=4000, seed=row)
    assert res.verdict == "agree" and res.kind == "exact", res


# ------------------------------------------------------------------------------------------ estimate kinds
def test_estimate_kinds():
    gm = tr.GaussianMixture([1.0, -0.5], 1.0)
    clf = tr.Linear([1.0, 1.0], 0.1)
    assert tr.estimate_risk(gm, clf, None, n=500).kind == "exact"
    assert tr.estimate_risk(gm, clf, tr.L2(0.3), n=500).kind == "exact"
    assert tr.estimate_risk(gm, clf, tr.L2(0.3), "projection", n=500).kind == "exact"
    low = tr.estimate_risk(gm, clf, tr.L2(0.3), n=500, attack="pgd", attack_options={"steps": 5})
    assert low.kind == "lower bound" and low.upper is None and not low.is_exact
    sp = tr.ConcentricSpheres(5, 1.0, 1.3)
    assert tr.estimate_risk(sp, tr.Linear([1.0] * 5), tr.L2(0.1), "projection", n=50,
                            attack_options={"steps": 5}).kind == "lower bound"
    with pytest.raises(TypeError, match="torch ReLU network"):
        tr.estimate_risk(gm, clf, tr.Linf(0.1), n=10, upper="verify")
    with pytest.raises(ValueError, match="upper"):
        tr.estimate_risk(gm, clf, tr.Linf(0.1), n=10, upper="milp")


def test_bracket_on_a_relu_network_that_computes_a_linear_classifier():
    """relu(w.x + b) - relu(-w.x - b) = w.x + b: the bracket must close on the closed form of the linear rule."""
    gm = tr.GaussianMixture([1.0, -0.5], 1.0)
    w, b = [1.2, 0.4], -0.3
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([w, [-v for v in w]], dtype=torch.float64))
        net[0].bias.copy_(torch.tensor([b, -b], dtype=torch.float64))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
        net[2].bias.zero_()
    threat = tr.Linf(0.3)
    est = tr.estimate_risk(gm, net, threat, n=300, seed=1, level=LEVEL, upper="verify",
                           verify_options={"time_limit": 2.0})
    assert est.kind == "bracket" and est.decided == est.n and est.is_exact
    assert est.k == est.upper_k and est.value <= est.upper
    assert est.contains(float(tr.risk(gm, tr.Linear(w, b), threat)))


def test_bracket_without_the_verifier_says_so(monkeypatch):
    """A copy of toyrobust without the verification package gets a clear error, not a silent lower bound."""
    import sys

    monkeypatch.setitem(sys.modules, "toyrobust.verification", None)  # makes the import fail
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).double()
    with pytest.raises(NotImplementedError, match="toyrobust.verification"):
        tr.estimate_risk(tr.GaussianMixture([1.0, 0.0]), net, tr.Linf(0.1), n=10, upper="verify")


# ------------------------------------------------------------------------------------------ verdicts
def _est(kind, low, high, n=1000, upper_high=None, decided=None):
    return SimpleNamespace(kind=kind, ci_low=low, ci_high=high, n=n, upper_ci_high=upper_high, decided=decided)


def test_verdicts_read_the_estimate_kind():
    judge = cc.judge
    # exact: the closed form must be inside, from either side
    assert judge(_est("exact", 0.2, 0.3), 0.25)[0] == "agree"
    assert judge(_est("exact", 0.2, 0.3), 0.35)[0] == "disagree"  # a closed form too high is caught
    assert judge(_est("exact", 0.2, 0.3), 0.15)[0] == "disagree"
    # lower bound: above is the attack's fault, below is an error
    assert judge(_est("lower bound", 0.2, 0.3), 0.25)[0] == "agree"
    assert judge(_est("lower bound", 0.2, 0.3), 0.35)[0] == "attack weaker"
    assert judge(_est("lower bound", 0.2, 0.3), 0.15)[0] == "disagree"
    # bracket: closed by the verifier -> exact, else the bracket [ci_low, upper_ci_high]
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.3, decided=1000), 0.25)[0] == "exact"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.3, decided=1000), 0.35)[0] == "disagree"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.6, decided=900), 0.5)[0] == "bracket"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.6, decided=900), 0.65)[0] == "disagree"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.6, decided=900), 0.1)[0] == "disagree"
    # no closed form: bounds
    assert judge(_est("lower bound", 0.2, 0.3), None, {"optimal adversarial risk": 0.0})[0] == "vacuous"
    assert judge(_est("lower bound", 0.2, 0.3), None, {"Bayes risk": 0.1})[0] == "bound holds"
    assert judge(_est("lower bound", 0.2, 0.3), None, {"Bayes risk": 0.4})[0] == "bound violated"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.5, decided=1000), None, {"b": 0.55})[0] == "bound violated"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.5, decided=999), None, {"b": 0.4})[0] == "bracket"
    assert judge(_est("bracket", 0.2, 0.3, upper_high=0.3, decided=1000), None, {})[0] == "exact"
    assert judge(_est("lower bound", 0.2, 0.3), None, {})[0] == "estimate only"
    assert judge(_est("exact", 0.2, 0.3), 0.25, twin_differs=True)[0] == "disagree"


def test_table_has_a_legend_of_every_verdict_and_marks_fixed_n():
    assert set(cc.LEGEND) == set(cc.VERDICTS)
    pm = tr.PointMasses(1.0)
    cases = [cc.Case("pm", "t", pm, tr.Linear([-1.0], 0.2), tr.Linf(0.6), "error-region"),
             cc.Case("pm", "t", pm, tr.Linear([-1.0], 0.2), tr.Linf(0.6), "ball", n=300)]
    results = cc.run(cases, n=700)
    assert [r.n for r in results] == [700, 300] and [r.n_fixed for r in results] == [False, True]
    table = cc.format_table(results)
    assert " 300* " in table and "rows fix their own n" in table
    legend = table.split("verdicts (")[1]
    assert all(f"  {v}  " in legend for v in cc.VERDICTS)
    assert "DISAGREE" not in table  # capitals only for a row that disagrees


def test_quick_analytic_cases_use_the_run_n_where_the_attack_is_exact():
    for case in cc.default_cases(quick=True, trained=False):
        if case.threat is None or case.definition in ("ball", "prediction-change"):
            continue
        exact = supports_exact(case.clf, case.threat, definition=case.definition, dist=case.dist)
        assert (case.n is None) == exact, case
