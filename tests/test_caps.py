"""Spherical caps against independent references: Archimedes at n = 3, mpmath at 50 digits, log-space quadrature."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.stats
import sympy
from hypothesis import given
from hypothesis import strategies as st

from toyrobust.risks.caps import (
    CapFraction,
    cap_angle,
    cap_fraction,
    cap_fraction_expr,
    cap_fraction_height,
    cap_height,
    gaussian_cap_error,
    gaussian_cap_fraction,
    gaussian_cap_height,
    lambdify_risk,
    log_cap_fraction_height,
)

thetas = st.floats(0.0, math.pi, allow_nan=False)
heights = st.floats(-1.0, 1.0, allow_nan=False)


def _mp_cap_beta(n: int, h: float) -> mpmath.mpf:
    """P[u >= h] = 1/2 I_{1-h^2}((n-1)/2, 1/2) (h >= 0; complement below) with mpmath's betainc at 50 digits."""
    with mpmath.workdps(50):
        half = mpmath.betainc(mpmath.mpf(n - 1) / 2, mpmath.mpf(1) / 2, 0, 1 - mpmath.mpf(h) ** 2, regularized=True) / 2
        return half if h >= 0 else 1 - half


def _mp_log_cap_angle(n: int, h: float) -> mpmath.mpf:
    """log P[u >= h] by quadrature of the angle density sin^(n-2)(phi) / B(1/2, (n-1)/2) on [0, arccos h].

    A second derivation (the area element of the sphere in polar angle), integrated in log space relative to the
    peak at phi = arccos h and split at multiples of the integrand's e-folding length (mpmath's quadrature is
    inaccurate on a sharply peaked integrand left whole).
    """
    with mpmath.workdps(50):
        h = mpmath.mpf(h)
        if h < 0:
            return mpmath.log(1 - mpmath.exp(_mp_log_cap_angle(n, -h)))
        th = mpmath.acos(h)
        m = n - 2
        top = m * mpmath.log(mpmath.sin(th))
        scale = min(abs(mpmath.tan(th)) / max(m, 1), 1 / mpmath.sqrt(max(m, 1)))
        cuts = sorted({mpmath.mpf(0), th, *[th - j * scale for j in (1, 4, 16, 64, 256, 1024) if 0 < th - j * scale]})
        integral = mpmath.quad(lambda p: mpmath.exp(m * mpmath.log(mpmath.sin(p)) - top) if p > 0 else 0 * p, cuts)
        return mpmath.log(integral) + top - mpmath.log(mpmath.beta(mpmath.mpf(1) / 2, mpmath.mpf(n - 1) / 2))


def _mp_log_cap_series(n: int, h: float) -> mpmath.mpf:
    """log P[u >= h] for h > 0 from I_x(a, b) = x^a (1-x)^b / (a B(a, b)) 2F1(a + b, 1; a + 1; x) (A&S 26.5.23)."""
    with mpmath.workdps(50):
        h = mpmath.mpf(h)
        x, a, b = (1 - h) * (1 + h), mpmath.mpf(n - 1) / 2, mpmath.mpf(1) / 2
        return (a * mpmath.log(x) + b * mpmath.log(1 - x) - mpmath.log(a * mpmath.beta(a, b))
                + mpmath.log(mpmath.hyp2f1(a + b, 1, a + 1, x)) - mpmath.log(2))


@given(thetas)
def test_cap_fraction_n3_is_archimedes(theta):
    # on S^2 the cap of angular radius theta has area 2 pi (1 - cos theta) out of 4 pi (PITFALLS 12)
    assert cap_fraction(3, theta) == pytest.approx((1 - math.cos(theta)) / 2, abs=1e-14)


@given(st.integers(2, 10**6), st.floats(-1e-6, 1e-6))
def test_cap_near_the_equator_keeps_the_height(n, h):
    # P[u >= h] = 1/2 - f(0) (h - k h^3/3) + O(k^2 h^5), f(0) = 1/B(1/2, (n-1)/2), k = (n-3)/2: 1 - h^2 rounds to 1
    # in floating point but the answer must keep h
    f0 = math.exp(-float(mpmath.log(mpmath.beta(0.5, (n - 1) / 2))))
    k = (n - 3) / 2
    assert cap_fraction_height(n, h) == pytest.approx(0.5 - f0 * (h - k * h**3 / 3), rel=1e-13)
    c = math.cos(math.acos(h))
    assert cap_fraction(n, math.acos(h)) == pytest.approx(0.5 - f0 * (c - k * c**3 / 3), rel=1e-13)


@given(thetas)
def test_cap_fraction_n2_is_arc_length(theta):
    assert cap_fraction(2, theta) == pytest.approx(theta / math.pi, abs=1e-14)


def test_cap_fraction_n4_closed_form():
    # S^3: fraction (theta - sin theta cos theta) / pi, from integrating sin^2
    th = np.linspace(0, math.pi, 17)
    np.testing.assert_allclose(cap_fraction(4, th), (th - np.sin(th) * np.cos(th)) / math.pi, atol=1e-14)


@given(st.integers(2, 60), heights)
def test_cap_height_fraction_vs_mpmath(n, h):
    assert cap_fraction_height(n, h) == pytest.approx(float(_mp_cap_beta(n, h)), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("n", "h"), [(2, 0.5), (3, 0.3), (8, 0.9999999999999999), (40, -0.6), (60, 0.0),
                                      (60, 0.999)])
def test_cap_moderate_n_three_routes(n, h):
    ref = float(_mp_log_cap_angle(n, h))
    assert math.log(float(_mp_cap_beta(n, h))) == pytest.approx(ref, rel=1e-14, abs=1e-14)
    assert log_cap_fraction_height(n, h) == pytest.approx(ref, rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("h", [0.05, 0.2, 0.5, 0.9, 0.97, 0.99, 0.999])
def test_log_cap_at_D500_vs_log_space_quadrature(h):
    # D = 500: mpmath's betainc struggles here (PITFALLS 13); the references integrate the angle density in log
    # space and sum the hypergeometric series, and agree with each other to 40 digits
    ref = _mp_log_cap_angle(500, h)
    assert abs(ref - _mp_log_cap_series(500, h)) < 1e-30 * abs(ref)
    ref = float(ref)
    got = log_cap_fraction_height(500, h)
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-12)
    value = cap_fraction_height(500, h)
    if ref > math.log(1e-300):
        # the value itself, not only its log, keeps 1e-9 relative accuracy down to 1e-300
        assert value == pytest.approx(math.exp(ref), rel=1e-9)
    else:
        assert value < 1e-300


@pytest.mark.parametrize(("n", "h"), [(5000, 0.5), (10_000, 0.3), (200, 0.9999)])
def test_log_cap_far_tail_large_n(n, h):
    assert log_cap_fraction_height(n, h) == pytest.approx(float(_mp_log_cap_series(n, h)), rel=1e-11)


@given(st.integers(2, 800), heights)
def test_cap_symmetry_and_bounds(n, h):
    a, b = cap_fraction_height(n, h), cap_fraction_height(n, -h)
    assert 0 <= a <= 1
    assert a + b == pytest.approx(1.0, abs=1e-13)


@given(st.integers(2, 800), heights, heights)
def test_cap_monotone_in_height(n, h1, h2):
    lo, hi = min(h1, h2), max(h1, h2)
    assert cap_fraction_height(n, lo) >= cap_fraction_height(n, hi)


def test_heights_outside_the_sphere():
    assert cap_fraction_height(10, 1.5) == 0.0
    assert cap_fraction_height(10, -3.0) == 1.0
    assert log_cap_fraction_height(10, 1.0) == -math.inf


@given(st.floats(0.0, 1.0))
def test_cap_height_n3_closed_form(mu):
    # n = 3: mu = (1 - h)/2, so h = 1 - 2 mu
    assert cap_height(3, mu) == pytest.approx(1 - 2 * mu, abs=1e-12)


@given(st.integers(2, 2000), st.floats(-300, 0))
def test_cap_angle_inverts_the_fraction(n, log10_mu):
    mu = 10.0**log10_mu
    theta = cap_angle(n, mu)
    assert cap_fraction(n, theta) == pytest.approx(mu, rel=1e-9, abs=1e-300)
    if mu < 0.5:
        assert cap_fraction(n, cap_angle(n, 1 - mu)) == pytest.approx(1 - mu, abs=1e-12)
        # the height is the cosine of the angle; near the pole only its absolute precision is meaningful
        assert cap_height(n, mu) == pytest.approx(math.cos(theta), abs=1e-15)


def test_cap_height_vs_mpmath_root():
    with mpmath.workdps(30):
        for n, mu in [(50, 0.01), (50, 0.3), (500, 1e-6)]:
            root = mpmath.findroot(lambda h, n=n, mu=mu: _mp_cap_beta(n, h) - mu, cap_height(n, mu) + 1e-6)
            assert cap_height(n, mu) == pytest.approx(float(root), rel=1e-10)
    assert cap_angle(3, 0.5) == pytest.approx(math.pi / 2)


def test_gaussian_approximation_of_seed_003():
    # the seed's approximation Q^{-1}(mu)/sqrt(D), written with scipy.stats (an independent implementation)
    for n, mu in [(500, 0.01), (500, 1e-6), (50, 0.1)]:
        assert gaussian_cap_height(n, mu) == pytest.approx(scipy.stats.norm.isf(mu) / math.sqrt(n), rel=1e-12)
        assert gaussian_cap_fraction(n, 0.1) == pytest.approx(scipy.stats.norm.sf(0.1 * math.sqrt(n)), rel=1e-12)
    err = gaussian_cap_error(500, 0.01)
    assert err.exact_height == pytest.approx(cap_height(500, 0.01))
    assert err.height_error == pytest.approx(err.gaussian_height - err.exact_height)
    # the approximation is good to ~0.1% at D = 500, mu = 0.01 ...
    assert 1e-4 < err.relative_height_error < 1e-2
    # ... and its error vanishes as the dimension grows (the Gaussian limit of one coordinate)
    rel = [gaussian_cap_error(n, 0.01).relative_height_error for n in (50, 500, 5000, 50000)]
    assert all(a > b for a, b in zip(rel[:-1], rel[1:], strict=True))
    assert rel[-1] < 1e-4
    # the approximate cap's exact measure is mu up to the same small relative error
    assert err.gaussian_cap_measure == pytest.approx(0.01, rel=0.05)


@given(st.integers(2, 40), heights)
def test_symbolic_cap_expr_evaluates_like_the_numbers(n, h):
    # an exact rational height: sympy's 15-digit Float would round 1 - h^2 before evalf raises the precision
    expr = cap_fraction_expr(n, sympy.Rational(h))
    ref = float(_mp_cap_beta(n, h))
    assert float(expr.evalf(30)) == pytest.approx(ref, rel=1e-10, abs=1e-15)
    assert float(CapFraction(n, sympy.Rational(h)).evalf(30)) == pytest.approx(ref, rel=1e-12, abs=1e-300)


def test_symbolic_theta_and_lambdify():
    n, h = sympy.Symbol("n", positive=True), sympy.Symbol("h", real=True)
    fn = lambdify_risk((n, h), cap_fraction_expr(n, h))
    hs = np.array([-0.7, -0.1, 0.0, 0.3, 0.95])
    np.testing.assert_allclose(fn(25.0, hs), [float(_mp_cap_beta(25, v)) for v in hs], rtol=1e-12)
    theta = sympy.Symbol("theta", positive=True)
    assert float(cap_fraction(3, theta).subs(theta, 1.0).evalf()) == pytest.approx((1 - math.cos(1.0)) / 2)


def test_lambdify_keeps_the_parentheses_of_betainc_regularized():
    # sympy's SciPy printer writes 2*betainc_regularized(a, b, x1, x2) as 2*betainc(a,b,x2) - betainc(a,b,x1)
    a, x = sympy.symbols("a x", positive=True)
    expr = 2 * sympy.betainc_regularized(a, sympy.Rational(1, 2), sympy.Rational(1, 10), x)
    ref = 2 * (mpmath.betainc(2, 0.5, 0, 0.5, regularized=True) - mpmath.betainc(2, 0.5, 0, 0.1, regularized=True))
    assert lambdify_risk((a, x), expr)(2.0, 0.5) == pytest.approx(float(ref), rel=1e-13)


def test_vectorised_shapes():
    out = cap_fraction_height(np.array([[3], [500]]), np.linspace(-1, 1, 5))
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out[0], (1 - np.linspace(-1, 1, 5)) / 2, atol=1e-15)


@pytest.mark.parametrize("bad", [
    lambda: cap_fraction(1, 0.3),
    lambda: cap_fraction(2.5, 0.3),
    lambda: cap_fraction(5, -0.1),
    lambda: cap_fraction(5, 4.0),
    lambda: cap_height(5, 1.5),
    lambda: cap_fraction_height(5, float("nan")),
])
def test_invalid_inputs(bad):
    with pytest.raises(ValueError):
        bad()
