"""Exact risks of thresholds on the two point masses (seed 000), against a brute-force search of each ball.

The reference enumerates candidate perturbed points of each closed ball (a dense grid plus the ends, the
midpoint gap/2, the threshold and their float neighbours, which stand for open ends) and asks
``tr.is_adversarial`` (the definitions module, not the closed forms) whether any of them is adversarial.
Parameters are dyadic rationals, so float arithmetic is exact and ties (x' = gap/2, margin exactly 0) occur
often: the tie rules are tested, not avoided.
"""

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.definitions import DEFINITIONS

NORMS = (tr.Linf, tr.L2, tr.L1)


def dyadic(lo, hi, denom=8):
    return st.integers(int(lo * denom), int(hi * denom)).map(lambda k: k / denom)


def brute_force(gap, w, b, eps, definition):
    """1/2 [some x' in [-eps, eps] is adversarial for x = 0] + 1/2 [the same around gap], via tr.is_adversarial."""
    dist, clf = tr.PointMasses(gap), tr.Linear([w], b)
    total = 0.0
    for x0, y in ((0.0, 1), (gap, -1)):
        lo, hi = x0 - eps, x0 + eps
        special = [lo, hi, gap / 2, x0]
        if w != 0:
            special.append(-b / w)
        cands = set(np.linspace(lo, hi, 257).tolist())
        for s in special:
            for c in (s, math.nextafter(s, math.inf), math.nextafter(s, -math.inf)):
                cands.add(c)
        pts = sorted(c for c in cands if lo <= c <= hi)
        xa = torch.tensor(pts, dtype=torch.float64)[:, None]
        xc = torch.full_like(xa, x0)
        yy = torch.full((len(pts),), y)
        adv = tr.is_adversarial(definition, clf, xa, yy, dist=dist, x=xc)
        total += 0.5 * bool(adv.any())
    return total


@given(gap=dyadic(0.125, 4), w=dyadic(-3, 3, 4), b=dyadic(-4, 4), eps=dyadic(0, 5),
       definition=st.sampled_from(DEFINITIONS), norm=st.sampled_from(NORMS))
def test_matches_brute_force_search_ties_included(gap, w, b, eps, definition, norm):
    r = tr.risk(tr.PointMasses(gap), tr.Linear([w], b), norm(eps), definition)
    assert float(r) == brute_force(gap, w, b, eps, definition)


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_documented_values_of_the_max_margin_threshold(definition):
    dist, mm = tr.PointMasses(1.0), tr.Linear([-1.0], 0.5)
    # at eps = gap/2 = 0.5 the point gap reaches x' = 0.5, where the margin is 0 and the prediction +1
    expected = {"ball": 0.5, "projection": 0.0, "error-region": 0.0, "prediction-change": 0.5}[definition]
    assert float(tr.risk(dist, mm, tr.Linf(0.5), definition)) == expected
    # just below, nothing crosses; the standard risk is 0
    assert float(tr.risk(dist, mm, tr.Linf(0.5 - 2**-20), definition)) == 0.0
    assert float(tr.risk(dist, mm, None, definition)) == 0.0


@given(gap=dyadic(0.125, 4), scale=dyadic(0.25, 3, 4), k=st.integers(0, 15), extra=dyadic(0, 4),
       norm=st.sampled_from(NORMS))
def test_seed000_no_accurate_threshold_is_ball_robust_once_eps_reaches_gap(gap, scale, k, extra, norm):
    # every accurate threshold (f(0) = +1, f(gap) = -1) is "x <= t means +1" with 0 <= t < gap
    w, b = -scale, scale * gap * k / 16
    assert b >= 0 and w * gap + b < 0
    clf = tr.Linear([w], b)
    assert float(tr.risk(tr.PointMasses(gap), clf)) == 0.0
    assert float(tr.risk(tr.PointMasses(gap), clf, norm(gap + extra))) >= 0.5
    # ... while below eps = gap some accurate threshold (the max-margin one) is ball-robust
    assert float(tr.risk(tr.PointMasses(gap), tr.Linear([-1.0], gap / 2), norm(gap / 2 * 0.99))) == 0.0


@given(gap=dyadic(0.125, 4), eps=dyadic(0, 20), norm=st.sampled_from(NORMS))
def test_seed000_max_margin_threshold_has_projection_risk_zero_for_every_eps(gap, eps, norm):
    dist = tr.PointMasses(gap)
    assert float(tr.risk(dist, dist.bayes_classifier(), norm(eps), "projection")) == 0.0
    assert float(tr.risk(dist, tr.Linear([-1.0], gap / 2), norm(eps), "error-region")) == 0.0


def test_seed000_symbolic_max_margin_projection_risk_is_zero():
    gap, eps = sympy.symbols("gap eps", positive=True)
    dist = tr.PointMasses(gap)
    r = tr.risk(dist, dist.bayes_classifier(), tr.Linf(eps), "projection")
    assert r.value is None
    for g, e in [(1, 0.2), (1, 0.5), (2, 7), (0.3, 0.15)]:
        assert r.expr.subs({gap: g, eps: e}) == 0


@given(gap=dyadic(0.125, 4), w=dyadic(-3, 3, 4), b=dyadic(-4, 4), e1=dyadic(0, 5), e2=dyadic(0, 5),
       norm=st.sampled_from(NORMS))
def test_properties_bounds_monotone_eps0_and_ball_dominates_projection(gap, w, b, e1, e2, norm):
    dist, clf = tr.PointMasses(gap), tr.Linear([w], b)
    small, large = sorted((e1, e2))
    for d in DEFINITIONS:
        lo, hi = float(tr.risk(dist, clf, norm(small), d)), float(tr.risk(dist, clf, norm(large), d))
        assert 0.0 <= lo <= hi <= 1.0
        assert float(tr.risk(dist, clf, norm(0.0), d)) == float(tr.risk(dist, clf, None, d))
    assert float(tr.risk(dist, clf, norm(large), "ball")) >= float(tr.risk(dist, clf, norm(large), "projection"))


@given(gap=dyadic(0.125, 4), w=dyadic(-3, 3, 4), b=dyadic(-4, 4), eps=dyadic(0, 5),
       definition=st.sampled_from(DEFINITIONS))
def test_symbolic_route_equals_numeric_route(gap, w, b, eps, definition):
    g, e = sympy.Symbol("g", positive=True), sympy.Symbol("e", nonnegative=True)
    sym = tr.risk(tr.PointMasses(g), tr.Linear([w], b), tr.L2(e), definition)
    assert sym.value is None and sym.expr.free_symbols <= {g, e}
    num = tr.risk(tr.PointMasses(gap), tr.Linear([w], b), tr.L2(eps), definition)
    assert float(sym.expr.subs({g: sympy.Rational(gap), e: sympy.Rational(eps)})) == float(num)


def test_result_carries_value_log_value_expr_and_latex():
    r = tr.risk(tr.PointMasses(1.0), tr.Linear([-1.0], 0.2), tr.Linf(0.3))
    assert r.value == 0.5 and r.log_value == pytest.approx(math.log(0.5)) and r.expr == sympy.S.Half
    assert r.key == ("PointMasses", "Linear", "Linf", "ball") and isinstance(r.latex(), str)
    zero = tr.risk(tr.PointMasses(1.0), tr.Linear([-1.0], 0.5))
    assert zero.value == 0.0 and zero.log_value == -math.inf


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="1-D threshold"):
        tr.risk(tr.PointMasses(1.0), tr.Linear([1.0, 2.0]), tr.Linf(0.1))
    with pytest.raises(ValueError, match="coords"):
        tr.risk(tr.PointMasses(1.0), tr.Linear([1.0]), tr.Linf(0.1, coords=(1,)))
    with pytest.raises(NotImplementedError, match="estimate_risk"):
        tr.risk(tr.PointMasses(1.0), tr.Radial(0.5), tr.Linf(0.1))
