"""One meaning of exact on lattices (issue 19, item 4): the Bernoulli closed form, Linear.predict and the exact
attack decide a lattice level's margin on the real numbers of the stored parameters (a zero margin predicts +1).

The float margin ``x @ w + b`` of a vertex depends on the order of the sum (0, or an ulp either way, at one level
K), so the reference here is per level: for every K and several random arrangements of the agreeing coordinates,
the decision must not depend on the arrangement, and the pmf-weighted sum of the decisions must be the closed form.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import toyrobust as tr
from toyrobust.attacks import exact_attack
from toyrobust.threats import make_threat


def _snippet():
    random.seed(0)
    th = [random.choice([-1, 1]) for _ in range(25)]
    return tr.BernoulliModel(25, 0.05, th), tr.Linear([0.1 * t for t in th], 0.5), th


def _level_points(theta: list[int], y: int, k: int, reps: int, seed: int) -> torch.Tensor:
    """``reps`` vertices of class ``y`` with exactly ``k`` coordinates agreeing with ``y theta``, at random places."""
    g = random.Random(seed)
    d = len(theta)
    rows = []
    for _ in range(reps):
        agree = set(g.sample(range(d), k))
        rows.append([y * t * (1 if i in agree else -1) for i, t in enumerate(theta)])
    return torch.tensor(rows, dtype=torch.float64)


def _per_level_risk(dist, clf, theta, threat, definition, reps=6, seed=0):
    """The risk from the decisions per level K (each checked to be the same for every arrangement)."""
    d, q = len(theta), float(dist.q)
    total = 0.0
    for k in range(d + 1):
        for y in (1, -1):
            x = _level_points(theta, y, k, reps, seed + 7 * k + y)
            labels = torch.full((reps,), y)
            if threat is None:
                hit = clf.predict(x) != labels
            else:
                hit = exact_attack(clf, x, labels, threat, definition=definition, dist=dist).success
            assert bool(hit.all()) or not bool(hit.any()), (k, y, hit.tolist())  # one decision per level
            total += 0.5 * stats.binom.pmf(k, d, q) * bool(hit[0])
    return total


def test_the_issue_snippet_closed_form_and_monte_carlo_agree():
    dist, clf, th = _snippet()
    closed = float(tr.risk(dist, clf, None))
    est = tr.estimate_risk(dist, clf, None, n=200_000, seed=1)
    assert est.kind == "exact"
    assert est.ci_low <= closed <= est.ci_high, (closed, est)
    # the tie level of y = +1: S = -5, real margin 5 * (-0.1) + 0.5 = -2.8e-17 with the stored 0.1: label -1 for
    # every arrangement, where the float margin gives 0 or an ulp either way
    assert Fraction(0.1) * -5 + Fraction(0.5) < 0
    x = _level_points(th, 1, 10, 400, seed=3)
    float_labels = torch.where(clf.margin(x) >= 0, 1, -1)
    assert len(set(float_labels.tolist())) == 2  # the problem: the float sum depends on the order
    assert set(clf.predict(x).tolist()) == {-1}
    assert float(tr.risk(dist, clf, None)) == pytest.approx(_per_level_risk(dist, clf, th, None, "ball"), abs=1e-13)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 24), tau=st.floats(0.05, 0.9), cj=st.integers(1, 10), bi=st.integers(-24, 24),
       seed=st.integers(0, 2**16))
def test_standard_risk_with_tenths_equals_the_per_level_decisions(d, tau, cj, bi, seed):
    # weights multiples of 0.1 and thresholds at lattice levels (b = 0.1 i): ties everywhere in decimal
    g = random.Random(seed)
    th = [g.choice([-1, 1]) for _ in range(d)]
    c = 0.1 * cj
    dist = tr.BernoulliModel(d, tau, th)
    clf = tr.Linear([c * t for t in th], 0.1 * bi)
    assert float(tr.risk(dist, clf, None)) == pytest.approx(
        _per_level_risk(dist, clf, th, None, "ball", seed=seed), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 16), tau=st.floats(0.05, 0.9), cj=st.integers(1, 16), bj=st.integers(-16, 16),
       ei=st.integers(0, 15), norm=st.sampled_from(["linf", "l2", "l1"]), definition=st.sampled_from(tr.DEFINITIONS),
       seed=st.integers(0, 2**16))
def test_ball_risks_with_dyadic_parameters_equal_the_exact_attack(d, tau, cj, bj, ei, norm, definition, seed):
    # dyadic weights, eps and thresholds at lattice levels: the float attack points realise the real-arithmetic
    # events exactly (the module docstring of toyrobust.risks.bernoulli says why non-dyadic ones cannot always)
    g = random.Random(seed)
    th = [g.choice([-1, 1]) for _ in range(d)]
    c = cj / 8
    dist = tr.BernoulliModel(d, tau, th)
    clf = tr.Linear([c * t for t in th], c * bj)
    threat = make_threat(f"{norm}:{ei / 16}")
    if norm == "l2" and ei and definition in ("ball", "prediction-change"):
        # eps c sqrt(k) is irrational unless k is a square: the attack reaches it only up to rounding
        return
    want = _per_level_risk(dist, clf, th, threat, definition, reps=4, seed=seed)
    assert float(tr.risk(dist, clf, threat, definition)) == pytest.approx(want, abs=1e-12)


def test_predict_decides_near_ties_exactly_and_keeps_float_decisions_elsewhere():
    clf = tr.Linear([0.1, 0.1, 0.1], -0.3)  # near-ties in decimal; decided on the stored doubles
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0], [5.0, -1.0, 0.0]], dtype=torch.float64)
    exact = [sum(Fraction(0.1) * Fraction(v) for v in row) + Fraction(-0.3) for row in x.tolist()]
    want = [1 if e >= 0 else -1 for e in exact]
    assert clf.predict(x).tolist() == want
    assert clf.predict(x.float()).tolist() == [1 if sum(Fraction(0.1) * Fraction(float(v)) for v in row)
                                               + Fraction(-0.3) >= 0 else -1 for row in x.float().tolist()]
    # far from ties nothing changes (and no exact arithmetic runs)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    assert torch.equal(clf.predict(z), torch.where(clf.margin(z) >= 0, 1, -1))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.integers(1, 600), scale=st.sampled_from([1e-12, 1e-8, 1e-6, 0.0]))
def test_linear_predict_near_the_plane_is_the_real_sign(seed, d, scale):
    """float32 points on (and a hair off) the plane: ``predict`` is the sign of the real margin of the stored
    numbers, computed here independently with fractions (the float32 margin alone gets some of these wrong)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    b = float(torch.randn((), generator=g, dtype=torch.float64))
    x = torch.randn(64, d, generator=g, dtype=torch.float64)
    x = x - ((x @ w + b) / (w @ w))[:, None] * w  # onto the plane, then a little off it
    x = (x + scale * torch.randn(64, d, generator=g, dtype=torch.float64)).to(torch.float32)
    clf = tr.Linear(w.tolist(), b)
    fw = [Fraction(v) for v in w.tolist()]
    want = [1 if sum((fw[i] * Fraction(v) for i, v in enumerate(row)), Fraction(b)) >= 0 else -1
            for row in x.to(torch.float64).tolist()]
    assert clf.predict(x).tolist() == want
    assert clf.predict(x.to(torch.float64)).tolist() == want


@settings(max_examples=80, deadline=None)
@given(data=st.data(), d=st.integers(1, 40))
def test_exact_fsum_signs_equal_fractions(data, d):
    """The TwoProduct + fsum sign equals the rational sign, ties (exact zeros) included, on doubles spanning many
    binades; outside its magnitude window it declines (None) and the caller uses fractions."""
    import numpy as np

    from toyrobust.classifiers import _exact_signs_fsum

    doubles = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    w = data.draw(st.lists(doubles.filter(lambda v: v == 0 or abs(v) > 1e-30), min_size=d, max_size=d))
    rows = data.draw(st.lists(st.lists(doubles.filter(lambda v: v == 0 or abs(v) > 1e-30), min_size=d, max_size=d),
                              min_size=1, max_size=6))
    x = np.array(rows, dtype=np.float64)
    # the bias that makes the first row an exact tie, when that bias is a double
    tie = -sum(Fraction(a) * Fraction(v) for a, v in zip(rows[0], w))
    b = tie if Fraction(float(tie)) == tie else Fraction(data.draw(doubles))
    ws = [Fraction(v) for v in w]
    want = [1 if sum((ws[i] * Fraction(v) for i, v in enumerate(r)), b) >= 0 else -1 for r in rows]
    assert _exact_signs_fsum(x, ws, b) == want
    if np.abs(x).max() > 1e-20:  # then some entry of x * 2^300 leaves the window
        assert _exact_signs_fsum(x * 2.0**300, ws, b) is None
    assert _exact_signs_fsum(x, [Fraction(1, 10)] * d, b) is None  # 1/10 is not a double
