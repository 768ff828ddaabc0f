"""Cap fractions on large grids of repeated heights (each distinct height evaluated once, issue 11).

References: Student's t (``u sqrt(n-1)/sqrt(1-u^2)`` of a uniform point of ``S^{n-1}`` is t-distributed with
``n - 1`` degrees of freedom, ``scipy.stats.t``), mpmath's hypergeometric series at 50 digits, exact values.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import scipy.stats
import sympy

from toyrobust.risks.caps import (
    CapFraction,
    _distinct,
    cap_fraction_height,
    lambdify_risk,
    log_cap_fraction_height,
)
from toyrobust.risks.spheres import linear_sphere_risk

N = 500
B, E = np.meshgrid(np.linspace(-0.3, 0.3, 160), np.linspace(0.0, 0.2, 160))  # heights -(b + eps) repeat


def _student_t(n: int, h: np.ndarray) -> np.ndarray:
    """P[u >= h] = P[T_{n-1} >= h sqrt(n-1) / sqrt(1-h^2)] for |h| < 1."""
    return scipy.stats.t.sf(h * math.sqrt(n - 1) / np.sqrt((1 - h) * (1 + h)), n - 1)


def _mp_log_cap(n: int, h: float) -> mpmath.mpf:
    """log P[u >= h] at 50 digits (log1p below the equator).

    I_x(a, 1/2) = x^a (1-x)^(1/2) / (a B(a, 1/2)) 2F1(a + 1/2, 1; a + 1; x) (A&S 26.5.23), x = 1 - h^2.
    """
    with mpmath.workdps(50):
        a, g = mpmath.mpf(n - 1) / 2, abs(mpmath.mpf(h))
        x = (1 - g) * (1 + g)
        tail = x**a * mpmath.sqrt(1 - x) / (a * mpmath.beta(a, 0.5)) * mpmath.hyp2f1(a + 0.5, 1, a + 1, x) / 2
        return mpmath.log(tail) if h >= 0 else mpmath.log1p(-tail)


def test_grid_heights_take_the_distinct_path_and_match_student_t():
    h = -1.0 * B - 1.0 * E
    found = _distinct(h.ravel())
    assert found is not None and found[0].size < h.size / 5  # the probe saw the repeats
    got = cap_fraction_height(N, h)
    assert got.shape == h.shape
    np.testing.assert_allclose(got, _student_t(N, h), rtol=1e-12, atol=0)


def test_distinct_path_is_an_exact_rewrite():
    h = 0.769230769230769 * B - 0.769230769230769 * E
    assert _distinct(h.ravel()) is not None
    whole = cap_fraction_height(N, h)
    rows = np.stack([cap_fraction_height(N, row) for row in h])  # 160 heights per call: below the probe size
    assert np.array_equal(whole, rows)


def test_distinct_heights_are_not_sorted():
    rng = np.random.default_rng(0)
    assert _distinct(rng.uniform(-1, 1, 100_000)) is None
    assert _distinct(np.linspace(-1, 1, 100_000)) is None
    assert _distinct(np.linspace(-1, 1, 1000)) is None  # too short to probe
    heights = rng.choice(rng.uniform(-1, 1, 300), 50_000)
    values, inverse = _distinct(heights)
    assert np.array_equal(values[inverse], heights) and np.all(np.diff(values) > 0)


def test_log_grid_far_tails_against_mpmath():
    # heights to 0.97: fractions far below 1e-300 (log space), and near -1: fractions 1 - tiny
    h = np.tile(np.round(np.linspace(-0.999, 0.97, 400), 6), 60)
    assert _distinct(h) is not None
    logs = log_cap_fraction_height(N, h)
    for i in range(0, 400, 9):
        ref = _mp_log_cap(N, float(h[i]))
        assert math.isclose(logs[i], float(ref), rel_tol=1e-12), (h[i], logs[i], ref)
        assert logs[i] == logs[i + 400 * 37]
    vals = cap_fraction_height(N, h)
    for i in range(0, 400, 23):
        assert math.isclose(vals[i], float(mpmath.exp(_mp_log_cap(N, float(h[i])))), rel_tol=1e-12), h[i]


def test_grid_edges_are_exact():
    edges = np.array([-np.inf, -2.0, -1.0, -0.0, 0.0, 1.0, 2.0, np.inf])
    h = np.tile(edges, 4000)
    assert _distinct(h) is not None
    want = np.tile([1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0], 4000)
    assert np.array_equal(cap_fraction_height(N, h), want)
    with np.errstate(divide="ignore"):
        assert np.array_equal(log_cap_fraction_height(N, h), np.log(want))


def test_lambdified_grid_matches_direct_and_student_t():
    b, eps = sympy.Symbol("b", real=True), sympy.Symbol("epsilon", positive=True)
    r1, r2 = 1.0, 1.3
    expr = CapFraction(N, (-b - eps) / r1) / 2 + CapFraction(N, -(-b + eps) / r2) / 2
    grid = lambdify_risk((b, eps), expr)(B, E)
    direct = linear_sphere_risk(N, r1, r2, -B, E)
    np.testing.assert_allclose(grid, direct, rtol=1e-12, atol=0)
    ref = 0.5 * _student_t(N, (-B - E) / r1) + 0.5 * _student_t(N, (B - E) / r2)
    np.testing.assert_allclose(grid, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.exp(linear_sphere_risk(N, r1, r2, -B, E, log=True)), ref, rtol=1e-12, atol=0)
