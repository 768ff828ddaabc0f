"""Spherical caps: exact fractions, their inverse, log-space tails, and seed 003's Gaussian approximation.

A cap of the unit sphere ``S^{n-1}`` in ``R^n`` is ``{x : <x, e> >= h}`` (height ``h`` in [-1, 1], angular radius
``theta = arccos h``). With ``u = <x, e>`` for ``x`` uniform on the sphere, ``u^2 ~ Beta(1/2, (n-1)/2)``, so

    mu(theta) = 1/2 I_{sin^2 theta}((n-1)/2, 1/2)          for theta <= pi/2,
    mu(theta) = 1 - 1/2 I_{sin^2 theta}((n-1)/2, 1/2)      for theta >  pi/2,

with ``I`` the regularized incomplete beta function (at n = 3 this is ``(1 - cos theta)/2``, Archimedes). sympy
gives the structure (``betainc_regularized``); numbers are evaluated with ``scipy.special.betainc`` and, where the
fraction would underflow, with the continued fraction of ``I`` in log space (PITFALLS 12-13: sympy's and
mpmath's incomplete beta are slow or imprecise at the parameters of D = 500).

Seed 003 (EPFL CS-433 notes, after Gilmer et al. 2018, "Adversarial spheres") approximates a uniform point of
the sphere by a Gaussian vector with variance ``1/n`` per coordinate, so that the cap of measure ``mu`` has
height ``Q^{-1}(mu) / sqrt(n)``; :func:`gaussian_cap_height` gives that value and :func:`gaussian_cap_error`
measures how far it is from the exact one.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import mpmath
import numpy as np
import scipy.special as sc
import sympy

from ..constraints import is_symbolic
from .special import lambdify, register_numeric

__all__ = [
    "cap_fraction",
    "cap_fraction_height",
    "log_cap_fraction_height",
    "cap_fraction_expr",
    "CapFraction",
    "cap_height",
    "cap_angle",
    "gaussian_cap_height",
    "gaussian_cap_fraction",
    "gaussian_cap_error",
    "CapApproximation",
    "lambdify_risk",
]

# below this a float64 betainc result has lost relative precision (subnormal range), so use the log-space route
_UNDERFLOW = 1e-280
# below this sin^2 theta is close to the subnormal range, where a float keeps too few digits
_SUBNORMAL = 1e-290


def _check_n(n: Any) -> Any:
    """Validate the ambient dimension (``n >= 2``), numbers elementwise, symbols when provably false."""
    if is_symbolic(n):
        if (sympy.sympify(n) - 2).is_negative:
            raise ValueError(f"n must be an integer >= 2 (the sphere S^(n-1) in R^n), got {n!r}")
        return n
    arr = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 2) or np.any(arr != np.floor(arr)):
        raise ValueError(f"n must be an integer >= 2 (the sphere S^(n-1) in R^n), got {n!r}")
    return arr


def _log_betainc_cf(a: np.ndarray, b: np.ndarray, x: np.ndarray, max_iter: int = 20000,
                    log_x: np.ndarray | None = None) -> np.ndarray:
    """``log I_x(a, b)`` by the continued fraction (modified Lentz), for ``x < (a + 1)/(a + b + 2)``.

    ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 1/(1 + d_1/(1 + d_2/(1 + ...)))`` (Abramowitz-Stegun 26.5.8), the
    prefactor taken in logs so that results far below the float range (1e-300 and smaller) stay exact.
    """
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1.0 / d
    h = d.copy()
    active = np.ones(x.shape, dtype=bool)
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        h = np.where(active, h * d * c, h)
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        delta = d * c
        h = np.where(active, h * delta, h)
        active &= np.abs(delta - 1.0) > 1e-16
        if not active.any():
            break
    log_x = np.log(x) if log_x is None else log_x  # given when x is subnormal and has lost its digits
    return a * log_x + b * np.log1p(-x) - np.log(a) - sc.betaln(a, b) + np.log(h)


def _half_tail(a: Any, s2: np.ndarray, c2: np.ndarray, want_log: bool = True,
               log_s2: Any = None) -> tuple[np.ndarray, Any]:
    """``(v, log v)`` for ``v = 1/2 I_{s2}(a, 1/2) = 1/2 (1 - I_{c2}(1/2, a))``, ``s2 = sin^2``, ``c2 = cos^2 theta``.

    Within about half a standard deviation of the equator (``c2 (n - 1) < 0.4``, where ``I_{c2}(1/2, a) < 1/2``)
    the complement form keeps the distance to 1/2 (``1 - h^2`` rounds to 1 for ``|h| < 1e-8``); elsewhere the
    direct form keeps the relative precision of small caps. One ``betainc`` per point. (scipy's
    ``betaincc(1/2, a, 5e-22)`` returns exactly 1.0, so the complement is taken by hand.) Below 1e-280, or when
    ``s2`` is subnormal (``log_s2`` then carries its digits), the continued fraction in log space takes over.
    ``a`` is a scalar (one dimension for all points) or an array of the shape of ``s2``.
    """
    shape = np.shape(s2)
    s2, c2 = np.ravel(s2), np.ravel(c2)  # 1-D so that masked assignment works for scalars too
    if np.ndim(a):
        a = np.ravel(a)
    log_s2 = None if log_s2 is None else np.ravel(log_s2)
    v = np.empty(s2.shape)
    with np.errstate(all="ignore"):
        near = c2 * (2 * a) < 0.4
        if np.any(near):
            # the ufuncs' where= evaluates each form only on its own points (no gathered copies, no scatter)
            sc.betainc(a, 0.5, s2, out=v, where=~near)
            sc.betainc(0.5, a, c2, out=v, where=near)
            np.subtract(1.0, v, out=v, where=near)
        else:
            sc.betainc(a, 0.5, s2, out=v)
        v *= 0.5
        positive = (s2 > 0) if log_s2 is None else (log_s2 > -np.inf)  # sin^2 may underflow to 0, its log not
        subnormal = s2 < _SUBNORMAL
        if not want_log and not np.any(subnormal & positive):
            return v.reshape(shape), None
        tiny = positive & ((v < _UNDERFLOW) | subnormal)
        logv = np.log(v)
    if np.any(tiny):
        lx = None if log_s2 is None else log_s2[tiny]
        a_tiny = np.broadcast_to(a, s2.shape)[tiny]
        logv[tiny] = math.log(0.5) + _log_betainc_cf(a_tiny, np.full(a_tiny.shape, 0.5), s2[tiny], log_x=lx)
        v[tiny] = np.exp(logv[tiny])
    return v.reshape(shape), (logv.reshape(shape) if want_log else None)


def _cap_from(n: Any, s2: Any, c2: Any, upper: Any, want_log: bool = True,
              log_s2: Any = None) -> tuple[np.ndarray, Any]:
    """Fraction and its log from ``sin^2 theta``, ``cos^2 theta`` and whether the cap exceeds a hemisphere."""
    a = (np.asarray(n, dtype=float) - 1.0) / 2.0
    arrays = [np.asarray(s2, dtype=float), np.asarray(c2, dtype=float), np.asarray(upper, dtype=bool)]
    if log_s2 is not None:
        arrays.append(np.asarray(log_s2, dtype=float))
    shape = np.broadcast_shapes(a.shape, *(x.shape for x in arrays))
    s2, c2, upper, *rest = (np.broadcast_to(x, shape) for x in arrays)
    if a.ndim:  # one dimension for all points stays a scalar: no array of copies of it
        a = np.broadcast_to(a, shape)
    v, logv = _half_tail(a, np.clip(s2, 0.0, 1.0), np.clip(c2, 0.0, 1.0), want_log, rest[0] if rest else None)
    log_value = None
    if want_log:
        with np.errstate(divide="ignore"):
            log_value = np.where(upper, np.log1p(0.0 - v), logv)  # 0.0 - v: log 1 is +0.0, not -0.0
    np.subtract(1.0, v, out=v, where=upper)  # v is a fresh array: the cap beyond a hemisphere in place
    return v, log_value


def _out(value: np.ndarray) -> Any:
    return float(value) if np.ndim(value) == 0 else value


def cap_fraction(n: Any, theta: Any) -> Any:
    """The fraction of the sphere ``S^{n-1}`` within angle ``theta`` of a pole.

    ``mu = 1/2 I_{sin^2 theta}((n-1)/2, 1/2)`` for ``theta <= pi/2`` and ``1 - 1/2 I_{sin^2 theta}((n-1)/2, 1/2)``
    beyond (Li 2011, "Concise formulas for the area and volume of a hyperspherical cap"; PITFALLS 12: not the
    restatement that drops the factor 2 in the sphere's area).

    Args:
        n: ambient dimension (integer >= 2), a number, an array broadcasting with ``theta``, or a sympy expression.
        theta: angular radius in [0, pi] (array or sympy expression).

    Returns:
        A float or an array of the broadcast shape; a sympy expression when an argument is symbolic.
    """
    if is_symbolic(n) or is_symbolic(theta):
        _check_n(n)
        return CapFraction(n, sympy.cos(theta))
    n = _check_n(n)
    theta = np.asarray(theta, dtype=float)
    if np.any(~(theta >= 0) | ~(theta <= math.pi)):
        raise ValueError(f"theta must lie in [0, pi], got {theta!r}")
    with np.errstate(divide="ignore"):
        log_s2 = 2 * np.log(np.sin(theta))
    return _out(_cap_from(n, np.sin(theta) ** 2, np.cos(theta) ** 2, theta > math.pi / 2, want_log=False,
                          log_s2=log_s2)[0])


#: arrays of heights at least this long are probed for repeated values (see :func:`_distinct`)
_DISTINCT_MIN_SIZE = 1 << 14
#: how many heights the probe looks at
_DISTINCT_SAMPLE = 1024


def _distinct(h: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, inverse)`` with ``values[inverse] == h`` when ``h`` repeats its values enough to pay off, else None.

    A closed-form grid over ``(b, eps)`` meets each cap height ``(t -+ s)/r`` many times (a 1000 x 1000 grid of the
    spheres benchmark has 2e4 distinct heights); each ``betainc`` (about 0.2 us) is then evaluated once per distinct
    height. The probe: 1024 heights at golden-ratio spaced positions (no random numbers), sorted; more repeats
    among them than if every height appeared about three times means sorting all of ``h`` costs less than it
    saves. The stable sort is a merge of sorted runs, fast on grids, whose rows are monotone.
    """
    size = h.size
    if size < _DISTINCT_MIN_SIZE:
        return None
    m = _DISTINCT_SAMPLE
    probe = np.sort(h[np.unique((np.arange(m) * 0.6180339887498949 % 1.0 * size).astype(np.intp))])
    repeats = np.count_nonzero(probe[1:] == probe[:-1])
    if repeats < max(8, m * m / size):
        return None
    order = np.argsort(h, kind="stable")
    ordered = h[order]
    new = np.empty(size, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])  # -0.0 == 0.0: one value, the same cap fraction
    inverse = np.empty(size, dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _cap_height_arrays(n: Any, h: Any, want_log: bool = True) -> tuple[np.ndarray, Any]:
    n = _check_n(n)
    h = np.asarray(h, dtype=float)
    if np.any(np.isnan(h)):
        raise ValueError(f"h must be a real number (not NaN), got {h!r}")
    found = _distinct(h.ravel()) if n.ndim == 0 else None
    if found is None:
        return _cap_height_values(n, h, want_log)
    values, inverse = found
    value, log_value = _cap_height_values(n, values, want_log)
    return value[inverse].reshape(h.shape), None if log_value is None else log_value[inverse].reshape(h.shape)


def _cap_height_values(n: np.ndarray, h: np.ndarray, want_log: bool) -> tuple[np.ndarray, Any]:
    # |h| >= 1 needs no special case: the clipped height gives sin^2 = 0, so the fraction is exactly 0 or 1
    # (its log -inf or 0)
    hc = np.clip(h, -1.0, 1.0)
    return _cap_from(n, (1.0 - hc) * (1.0 + hc), hc * hc, hc < 0, want_log)


def cap_fraction_height(n: Any, h: Any) -> Any:
    """``P[<x, e> >= h]`` for ``x`` uniform on ``S^{n-1}``: the fraction of the cap of height ``h``.

    ``h = cos theta``; heights above 1 give 0 and below -1 give 1, so a hyperplane ``<w, x> >= t`` cuts the sphere
    of radius ``r`` in the cap of height ``t / (r ||w||)`` whatever ``t``.

    Args:
        n: ambient dimension (integer >= 2; number, array or sympy expression).
        h: height (number, array, or sympy expression).

    Returns:
        A float or array (scipy ``betainc``, log-space continued fraction below 1e-280), or a sympy expression.
        A long array that repeats its heights (a grid over offsets and radii) is evaluated once per distinct
        height, with the same result.
    """
    if is_symbolic(n) or is_symbolic(h):
        _check_n(n)
        return CapFraction(n, h)
    return _out(_cap_height_arrays(n, h, want_log=False)[0])


def log_cap_fraction_height(n: Any, h: Any) -> Any:
    """``log P[<x, e> >= h]``, accurate where the fraction itself underflows (1e-300 and far below).

    Args:
        n: ambient dimension (integer >= 2), number or array.
        h: height, number or array.

    Returns:
        A float or array; ``-inf`` for ``h >= 1``.
    """
    return _out(_cap_height_arrays(n, h)[1])


def cap_fraction_expr(n: Any, h: Any) -> sympy.Expr:
    """The cap fraction ``P[<x, e> >= h]`` written out with ``betainc_regularized`` inside a Piecewise.

    The explicit structure; risks hold the compact :class:`CapFraction` instead, whose numeric evaluation
    (``evalf`` and lambdify) is accurate everywhere, and which ``.rewrite(sympy.betainc_regularized)`` turns into
    this form.

    Args:
        n: ambient dimension (number or sympy expression).
        h: height (number or sympy expression).
    """
    n, h = sympy.sympify(n), sympy.sympify(h)
    half = sympy.Rational(1, 2)
    tail = half * sympy.betainc_regularized((n - 1) / 2, half, 0, 1 - h**2)
    return sympy.Piecewise((0, h >= 1), (tail, h >= 0), (1 - tail, h > -1), (1, True))


def _mp_cap_fraction(n: Any, h: Any) -> Any:
    """``P[<x, e> >= h]`` with mpmath at the working precision (the hypergeometric series for small caps)."""
    if h >= 1:
        return mpmath.mpf(0)
    if h <= -1:
        return mpmath.mpf(1)
    a, b, g = mpmath.mpf(n - 1) / 2, mpmath.mpf(1) / 2, abs(h)
    x = (1 - g) * (1 + g)
    if x < (a + 1) / (a + b + 2):
        # I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) 2F1(a + b, 1; a + 1; x) (A&S 26.5.23): no cancellation
        v = x**a * (1 - x) ** b / (a * mpmath.beta(a, b)) * mpmath.hyp2f1(a + b, 1, a + 1, x) / 2
    else:
        v = (1 - mpmath.betainc(b, a, 0, g * g, regularized=True)) / 2
    return 1 - v if h < 0 else v


class CapFraction(sympy.Function):
    """``CapFraction(n, h) = P[<x, e> >= h]`` for ``x`` uniform on ``S^{n-1}``: the fraction of a spherical cap.

    Stays unevaluated (also at float arguments) so risks keep their structure; ``evalf`` uses mpmath at the
    requested precision, lambdify (:func:`lambdify_risk`) maps it to :func:`cap_fraction_height`, and
    ``.rewrite(sympy.betainc_regularized)`` gives :func:`cap_fraction_expr`. ``n = 3`` gives ``(1 - h)/2``.
    """

    nargs = 2

    @classmethod
    def _should_evalf(cls, arg):
        return -1

    @classmethod
    def eval(cls, n, h):
        if (h - 1).is_nonnegative:
            return sympy.S.Zero
        if (h + 1).is_nonpositive:
            return sympy.S.One
        if h.is_zero:
            return sympy.S.Half
        if n == 3 and (1 - h).is_positive and (1 + h).is_positive:
            return (1 - h) / 2
        return None

    def _eval_rewrite_as_betainc_regularized(self, n, h, **kwargs):
        return cap_fraction_expr(n, h)

    def _eval_evalf(self, prec):
        n, h = (a._eval_evalf(prec) if not a.is_Integer else a for a in self.args)
        if n is None or h is None or not (n.is_Number and h.is_Number):
            return None
        with mpmath.workprec(prec + 30):
            value = _mp_cap_fraction(int(n) if n.is_Integer else mpmath.mpf(n._to_mpmath(prec + 30)),
                                     mpmath.mpf(h._to_mpmath(prec + 30)))
        return sympy.Float(value, precision=prec)

    def _eval_is_real(self):
        return True

    def _latex(self, printer, exp=None):
        n, h = printer._print(self.args[0]), printer._print(self.args[1])
        inner = rf"\operatorname{{cap}}_{{{n}}}\left({h}\right)"
        return inner if exp is None else rf"{inner}^{{{exp}}}"


def _check_mu(mu: Any) -> np.ndarray:
    given = mu
    mu = np.asarray(mu, dtype=float)
    bad = ~(mu >= 0) | ~(mu <= 1)
    if np.any(bad):
        # name the offending values as the user wrote them (a scalar as a number, not as array(-1.))
        shown = given if mu.ndim == 0 else mu[bad][:5].tolist()
        raise ValueError(f"mu must be a measure in [0, 1], got {shown!r}")
    return mu


def _polish_angle(n: np.ndarray, mu: np.ndarray, theta: np.ndarray, steps: int = 2) -> np.ndarray:
    """Newton steps on ``log cap(theta) = log mu`` (``betaincinv`` alone can be off by 1e-8 in the far tail)."""
    a = (n - 1.0) / 2.0
    log_norm = sc.betaln(0.5, a)
    ok = (mu > 0) & (theta > 0) & (theta < math.pi / 2)
    for _ in range(steps):
        if not np.any(ok):
            break
        t = theta[ok]
        _, log_f = _cap_from(n[ok], np.sin(t) ** 2, np.cos(t) ** 2, np.zeros(t.shape, dtype=bool),
                             log_s2=2 * np.log(np.sin(t)))
        # d log F / d theta = density / F, density = sin^(n-2) theta / B(1/2, (n-1)/2)
        with np.errstate(all="ignore"):
            slope = np.exp((n[ok] - 2) * np.log(np.sin(t)) - log_norm[ok] - log_f)
            step = (log_f - np.log(mu[ok])) / slope
        theta[ok] = np.where(np.isfinite(step), np.clip(t - step, t / 2, (t + math.pi / 2) / 2), t)
    return theta


def cap_angle(n: Any, mu: Any) -> Any:
    """The angular radius ``theta`` of the cap of measure ``mu`` (``cos theta`` is :func:`cap_height`).

    ``sin^2 theta = I^{-1}_{2 mu}((n-1)/2, 1/2)`` (``scipy.special.betaincinv``) for caps below a quarter of the
    sphere, polished by Newton steps on the log of :func:`cap_fraction` so that tiny caps keep their relative
    precision; ``cos^2 theta = I^{-1}_{1 - 2 mu}(1/2, (n-1)/2)`` near the equator; ``theta(1 - mu) = pi -
    theta(mu)``.

    Args:
        n: ambient dimension (integer >= 2), number or array.
        mu: cap measure in [0, 1], number or array.
    """
    n = _check_n(n)
    mu = _check_mu(mu)
    n, mu = (np.array(v, dtype=float) for v in np.broadcast_arrays(n, mu))
    shape = n.shape
    n, mu = n.ravel(), mu.ravel()
    a = (n - 1.0) / 2.0
    m = np.minimum(mu, 1.0 - mu)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_small = sc.betaincinv(a, 0.5, np.clip(2 * m, 0, 1))
        t_small = np.arcsin(np.sqrt(np.clip(x_small, 0, 1)))
        # sin^2 theta below the normal floats: start from mu ~ theta^(n-1) / ((n-1) B(1/2, (n-1)/2))
        t_tiny = np.exp((np.log(m) + np.log(n - 1.0) + sc.betaln(0.5, a)) / (n - 1.0))
        t_small = np.where((x_small < _SUBNORMAL) & (m > 0), t_tiny, t_small)
        t_mid = np.arccos(np.sqrt(np.clip(sc.betaincinv(0.5, a, np.clip(1.0 - 2 * m, 0, 1)), 0, 1)))
    small = m < 0.25
    theta = np.where(small, t_small, t_mid)
    theta[small] = _polish_angle(n[small], m[small], theta[small])
    theta = np.where(m <= 0, 0.0, theta)
    return _out(np.where(mu > 0.5, math.pi - theta, theta).reshape(shape))


def cap_height(n: Any, mu: Any) -> Any:
    """The height ``h = cos theta`` of the cap of measure ``mu``: the inverse of :func:`cap_fraction_height`.

    Near the pole a height is ``1 - O(theta^2)``: its absolute error is tiny but ``1 - h`` has few correct digits;
    use :func:`cap_angle` there.

    Args:
        n: ambient dimension (integer >= 2), number or array.
        mu: cap measure in [0, 1], number or array.

    Returns:
        Height(s) in [-1, 1].
    """
    return _out(np.cos(np.asarray(cap_angle(n, mu), dtype=float)))


def gaussian_cap_height(n: Any, mu: Any) -> Any:
    """Seed 003's approximate cap height ``Q^{-1}(mu) / sqrt(n)`` (a uniform point as N(0, I/n)).

    Args:
        n: ambient dimension, number or array.
        mu: cap measure in [0, 1], number or array.

    Returns:
        The approximate height (``-ndtri(mu)/sqrt(n)``; infinite at mu in {0, 1}).
    """
    n = _check_n(n)
    mu = _check_mu(mu)
    with np.errstate(divide="ignore"):
        return _out(-sc.ndtri(mu) / np.sqrt(n))


def gaussian_cap_fraction(n: Any, h: Any) -> Any:
    """Seed 003's approximate cap fraction ``Q(h sqrt(n))`` (a uniform point as N(0, I/n)).

    Args:
        n: ambient dimension, number or array.
        h: height, number or array.
    """
    n = _check_n(n)
    return _out(sc.ndtr(-np.asarray(h, dtype=float) * np.sqrt(n)))


class CapApproximation(NamedTuple):
    """How good seed 003's Gaussian cap approximation is at a given measure (all fields broadcast arrays).

    Attributes:
        exact_height: the exact height of the cap of measure ``mu``.
        gaussian_height: ``Q^{-1}(mu)/sqrt(n)``.
        height_error: ``gaussian_height - exact_height``.
        relative_height_error: ``height_error / |exact_height|`` (inf where the exact height is 0 and the error not).
        gaussian_cap_measure: the exact measure of the cap at the approximate height (to compare with ``mu``).
    """

    exact_height: Any
    gaussian_height: Any
    height_error: Any
    relative_height_error: Any
    gaussian_cap_measure: Any


def gaussian_cap_error(n: Any, mu: Any) -> CapApproximation:
    """Compare seed 003's cap height ``Q^{-1}(mu)/sqrt(n)`` with the exact one.

    Args:
        n: ambient dimension, number or array.
        mu: cap measure in (0, 1), number or array.

    Returns:
        A :class:`CapApproximation`.
    """
    exact = np.asarray(cap_height(n, mu), dtype=float)
    approx = np.asarray(gaussian_cap_height(n, mu), dtype=float)
    err = approx - exact
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err == 0, 0.0, np.abs(err) / np.abs(exact))
    measure = np.asarray(cap_fraction_height(n, approx), dtype=float)
    return CapApproximation(*(_out(v) for v in (exact, approx, err, rel, measure)))


# --------------------------------------------------------------------------------------------- lambdify
def _betainc_regularized(a: Any, b: Any, x1: Any, x2: Any) -> Any:
    # sympy's SciPyPrinter prints betainc_regularized(a, b, x1, x2) as "betainc(a,b,x2) - betainc(a,b,x1)" with no
    # parentheses, so 2*betainc_regularized(...) lambdifies wrongly; map it by name instead
    return sc.betainc(a, b, x2) - sc.betainc(a, b, x1)


register_numeric("betainc_regularized")(_betainc_regularized)
register_numeric("CapFraction")(lambda n, h: cap_fraction_height(n, h))
register_numeric("loggamma")(sc.gammaln)
register_numeric("gamma")(sc.gamma)


def lambdify_risk(args: Any, expr: sympy.Expr):
    """A vectorised numpy function of ``args`` computing ``expr`` (compiled once per expression, cached).

    The package's one path, :func:`toyrobust.risks.special.lambdify`: ``betainc_regularized`` goes to
    ``scipy.special.betainc`` (avoiding a sympy printer bug that drops the parentheses around the difference of
    two ``betainc``), :class:`CapFraction` to :func:`cap_fraction_height`, ``Q`` and the other special functions
    to their scipy forms.

    Args:
        args: a symbol or a sequence of symbols.
        expr: a sympy expression in them.
    """
    return lambdify(args, expr)
