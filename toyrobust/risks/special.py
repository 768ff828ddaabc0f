"""The standard normal tail and its relatives, as sympy functions with accurate scipy evaluations.

Closed-form risks on Gaussian toy models are sums of normal tail probabilities ``Q(x) = P[Z > x]``. Symbolic
results keep ``Q`` unevaluated (``Q(sqrt(log(D) + 1))``), while numbers are evaluated with scipy in log space
(``scipy.special.log_ndtr``), so a risk of 1e-300 is returned as 1e-300, never 0.

=====================  ===================================  ==========================================
sympy                  maths                                numpy / scipy (``SCIPY_FUNCS``)
=====================  ===================================  ==========================================
``Q(x)``               ``P[Z > x] = erfc(x / sqrt 2) / 2``  ``ndtr(-x)``
``logQ(x)``            ``log Q(x)``                         ``log_ndtr(-x)``
``Qinv(u)``            ``Q^{-1}(u)``, ``0 < u < 1``         ``-ndtri(u)``
``NormalSetProb``      ``P[Z in (l1, h1) u (l2, h2) ...]``  :func:`normal_set_prob`
``UnitRatio(a, c)``    ``a / sqrt(a^2 + c)``                :func:`unit_ratio` (``hypot``: no overflow)
=====================  ===================================  ==========================================

Use :func:`lambdify` (the table :data:`NUMERIC_FUNCS`, extended with :func:`register_numeric`) to evaluate an
expression holding these functions on arrays. :func:`log_normal_interval` (from the ends),
:func:`log_normal_interval_mid` (from centre and half-width, for very narrow intervals) and
:func:`log_normal_set_prob` (a union of intervals) give log-probabilities without cancellation or underflow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np
import sympy
from scipy import special as sc

from ..registry import Registry

__all__ = [
    "Q",
    "logQ",
    "Qinv",
    "NormalSetProb",
    "UnitRatio",
    "SqrtGap",
    "PreciseMax",
    "PreciseMin",
    "SCIPY_FUNCS",
    "NUMERIC_FUNCS",
    "register_numeric",
    "lambdify",
    "normal_sf",
    "log_normal_sf",
    "normal_isf",
    "normal_interval",
    "log_normal_interval",
    "log_normal_interval_mid",
    "log_normal_set_prob",
    "normal_set_prob",
    "merge_intervals",
    "unit_ratio",
    "sqrt_gap",
]

_SQRT2 = np.sqrt(2.0)


# ---------------------------------------------------------------------------------------------------- numeric
def normal_sf(x: Any) -> np.ndarray:
    """``Q(x) = P[Z > x]`` for a standard normal Z, elementwise (``scipy.special.ndtr(-x)``)."""
    return sc.ndtr(-np.asarray(x, dtype=float))


def log_normal_sf(x: Any) -> np.ndarray:
    """``log Q(x)`` elementwise, accurate far in the tail (``scipy.special.log_ndtr(-x)``)."""
    return sc.log_ndtr(-np.asarray(x, dtype=float))


def normal_isf(u: Any) -> np.ndarray:
    """``Q^{-1}(u)``: the ``x`` with ``Q(x) = u``, elementwise; ``-ndtri(u)`` is accurate for tiny ``u``."""
    return -sc.ndtri(np.asarray(u, dtype=float))


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(20)
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _log_tail_drop(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``log Q(lo) - log Q(hi) = int_lo^hi phi(t) / Q(t) dt`` for 0 <= lo < hi, accurate for narrow intervals.

    The hazard ``phi/Q`` is smooth, so 20-point Gauss-Legendre on intervals shorter than 1 is exact to rounding;
    wider intervals use the difference of the two log tails (no cancellation there).
    """
    narrow = (hi - lo) < 1.0
    out = log_normal_sf(lo) - log_normal_sf(hi)
    if np.any(narrow):
        a, b = lo[narrow], hi[narrow]
        mid, half = (a + b) / 2, (b - a) / 2
        t = mid[None, :] + half[None, :] * _GL_NODES[:, None]
        hazard = np.exp(-t * t / 2 - _LOG_SQRT_2PI - log_normal_sf(t))
        out[narrow] = half * (_GL_WEIGHTS @ hazard)
    return out


def log_normal_interval(lo: Any, hi: Any) -> np.ndarray:
    """``log P[lo < Z < hi]`` elementwise, for a standard normal Z; ``-inf`` where ``lo >= hi``.

    Maths: both ends on one side of 0 use ``Q(a) - Q(b) = Q(a) (1 - exp(-(log Q(a) - log Q(b))))`` (the mirror
    image for negative ends), with the log-tail drop integrated by Gauss-Legendre on narrow intervals, so tails
    keep their relative accuracy down to ``1e-300`` and below and narrow intervals do not cancel; intervals
    around 0 use ``(erf(hi / sqrt 2) - erf(lo / sqrt 2)) / 2``, a sum of two positive terms.

    Args:
        lo, hi: arrays (broadcast together); ``-inf`` and ``inf`` allowed.
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    out = np.full(lo.shape, -np.inf)
    with np.errstate(all="ignore"):
        valid = lo < hi
        right = valid & (lo >= 0)
        left = valid & (hi <= 0) & ~right
        mid = valid & ~right & ~left
        for sel, a, b in ((right, lo[right], hi[right]), (left, -hi[left], -lo[left])):
            la = log_normal_sf(a)
            rest = np.where(np.isinf(b), 0.0, np.log(-np.expm1(-_log_tail_drop(a, b))))
            # beyond the double range of log Q (|a| > 1e154) the log-probability is -inf, not NaN
            out[sel] = np.where(la == -np.inf, -np.inf, la + rest)
        out[mid] = np.log((sc.erf(hi[mid] / _SQRT2) - sc.erf(lo[mid] / _SQRT2)) / 2)
    return out


def log_normal_interval_mid(mid: Any, half: Any) -> np.ndarray:
    """``log P[mid - half < Z < mid + half]``, accurate even when the interval is far narrower than ``|mid|``.

    Given by its centre and half-width, a narrow interval is integrated directly (20-point Gauss-Legendre of the
    density, summed in log space), so no precision is lost forming ``mid +- half``; half-widths >= 1/2 go
    through :func:`log_normal_interval`.

    Args:
        mid, half: arrays (broadcast together), ``half >= 0``.
    """
    mid, half = np.broadcast_arrays(np.asarray(mid, dtype=float), np.asarray(half, dtype=float))
    with np.errstate(all="ignore"):
        out = log_normal_interval(mid - half, mid + half)
        narrow = (half < 0.5) & (half > 0) & np.isfinite(mid)
        if np.any(narrow):
            m, h = mid[narrow], half[narrow]
            t = m[None, :] + h[None, :] * _GL_NODES[:, None]
            logs = np.log(_GL_WEIGHTS)[:, None] - t * t / 2 - _LOG_SQRT_2PI
            top = logs.max(axis=0)
            out[narrow] = np.log(h) + top + np.log(np.exp(logs - top).sum(axis=0))
    return out


def normal_interval(lo: Any, hi: Any) -> np.ndarray:
    """``P[lo < Z < hi]`` elementwise (0 where ``lo >= hi``); see :func:`log_normal_interval`."""
    return np.exp(log_normal_interval(lo, hi))


def log_normal_set_prob(los: Sequence[Any], his: Sequence[Any]) -> np.ndarray:
    """``log P[Z in (lo_1, hi_1) u ... u (lo_k, hi_k)]`` elementwise; empty intervals (lo >= hi) are ignored.

    The intervals are sorted by their lower ends and merged where they overlap, then the disjoint pieces are
    added in log space (``logaddexp``), so the result is accurate for tiny probabilities.

    Args:
        los, his: k arrays each (all broadcast together).
    """
    if len(los) != len(his) or not los:
        raise ValueError(f"los and his must be non-empty and of equal length, got {len(los)} and {len(his)}")
    arrs = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in (*los, *his)])
    k = len(los)
    lo, hi = np.stack(arrs[:k]), np.stack(arrs[k:])
    with np.errstate(invalid="ignore"):
        empty = ~(lo < hi)
    lo, hi = np.where(empty, np.inf, lo), np.where(empty, np.inf, hi)
    order = np.argsort(lo, axis=0, kind="stable")
    lo, hi = np.take_along_axis(lo, order, 0), np.take_along_axis(hi, order, 0)
    acc = np.full(lo.shape[1:], -np.inf)
    cur_lo, cur_hi = lo[0], hi[0]
    for j in range(1, k):
        overlap = lo[j] <= cur_hi
        acc = np.where(overlap, acc, np.logaddexp(acc, log_normal_interval(cur_lo, cur_hi)))
        cur_lo = np.where(overlap, cur_lo, lo[j])
        cur_hi = np.where(overlap, np.maximum(cur_hi, hi[j]), hi[j])
    return np.logaddexp(acc, log_normal_interval(cur_lo, cur_hi))


def normal_set_prob(*bounds: Any) -> np.ndarray:
    """``P[Z in (l1, h1) u (l2, h2) u ...]`` from the flat argument list ``l1, h1, l2, h2, ...``."""
    if len(bounds) % 2 or not bounds:
        raise ValueError(f"normal_set_prob needs pairs (lo, hi), got {len(bounds)} arguments")
    return np.exp(log_normal_set_prob(bounds[0::2], bounds[1::2]))


def merge_intervals(pairs: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted disjoint intervals covering the union of the non-empty ``(lo, hi)`` pairs (plain floats)."""
    items = sorted((lo, hi) for lo, hi in pairs if lo < hi)
    out: list[list[float]] = []
    for lo, hi in items:
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


# ---------------------------------------------------------------------------------------------------- sympy
def _erfc_tail(x: sympy.Expr) -> sympy.Expr:
    return sympy.erfc(x / sympy.sqrt(2)) / 2


def _mp_tail(x: Any) -> Any:
    """``Q(x)`` in mpmath at the current precision; for |x| > 1e6 the asymptotic series (mpmath's erfc fails to
    convert huge arguments), whose truncation error ``(2k+1)!! / x^(2k+2)`` is below 1e-80 there."""
    if abs(x) <= 10**6:
        return mpmath.erfc(x / mpmath.sqrt(2)) / 2
    if x < 0:
        return 1 - _mp_tail(-x)
    series, term = mpmath.mpf(1), mpmath.mpf(1)
    for k in range(1, 15):
        term *= -(2 * k - 1) / (x * x)
        series += term
    return mpmath.npdf(x) / x * series


def _power(inner: str, exp: Any) -> str:
    return inner if exp is None else r"\left(" + inner + r"\right)^{" + str(exp) + "}"


class _Unevaluated(sympy.Function):
    """A sympy function that stays unevaluated at float arguments (``Q(1.5)`` is shown, not rounded)."""

    @classmethod
    def _should_evalf(cls, arg):
        return -1


class Q(_Unevaluated):
    """The standard normal tail ``Q(x) = P[Z > x] = erfc(x / sqrt(2)) / 2`` (kept unevaluated).

    ``Q(0) = 1/2``, ``Q(oo) = 0``, ``Q(-oo) = 1``; ``.evalf`` goes through mpmath's ``erfc`` at the requested
    precision, ``.rewrite(sympy.erfc)`` gives the erfc form (for limits and series), and lambdify with
    :data:`SCIPY_FUNCS` maps it to ``scipy.special.ndtr(-x)``.
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.S.Half
        if x is sympy.S.Infinity:
            return sympy.S.Zero
        if x is sympy.S.NegativeInfinity:
            return sympy.S.One
        return None

    def fdiff(self, argindex=1):
        x = self.args[0]
        return -sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)

    def _eval_rewrite_as_erfc(self, x, **kwargs):
        return _erfc_tail(x)

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is None or not x.is_Number:
            return None
        with mpmath.workprec(prec + 20):
            value = _mp_tail(mpmath.mpf(x._to_mpmath(prec + 20)))
        return sympy.Float(value, precision=prec)

    def _eval_is_real(self):
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        if self.args[0].is_finite and self.args[0].is_real:
            return True
        return None

    def _latex(self, printer, exp=None):
        inner = r"Q\left(" + printer._print(self.args[0]) + r"\right)"
        return inner if exp is None else inner + "^{" + str(exp) + "}"


class logQ(_Unevaluated):  # noqa: N801 (a maths name)
    """``log Q(x)``, the log normal tail, evaluated without underflow (``scipy.special.log_ndtr(-x)``)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return -sympy.log(2)
        if x is sympy.S.NegativeInfinity:
            return sympy.S.Zero
        if x is sympy.S.Infinity:
            return sympy.S.NegativeInfinity
        return None

    def fdiff(self, argindex=1):
        x = self.args[0]
        return Q(x).fdiff() / Q(x)

    def _eval_rewrite_as_erfc(self, x, **kwargs):
        return sympy.log(_erfc_tail(x))

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is None or not x.is_Number:
            return None
        with mpmath.workprec(prec + 20):
            value = mpmath.log(_mp_tail(mpmath.mpf(x._to_mpmath(prec + 20))))
        return sympy.Float(value, precision=prec)

    def _latex(self, printer, exp=None):
        inner = r"\log Q\left(" + printer._print(self.args[0]) + r"\right)"
        return _power(inner, exp)


class Qinv(_Unevaluated):
    """The inverse normal tail ``Q^{-1}(u)`` for ``0 < u < 1`` (``sqrt(2) erfcinv(2u)``; scipy: ``-ndtri(u)``)."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u == sympy.S.Half:
            return sympy.S.Zero
        if u.is_zero:
            return sympy.S.Infinity
        if u == 1:
            return sympy.S.NegativeInfinity
        return None

    def fdiff(self, argindex=1):
        u = self.args[0]
        x = Qinv(u)
        return -sympy.sqrt(2 * sympy.pi) * sympy.exp(x**2 / 2)

    def _eval_rewrite_as_erfcinv(self, u, **kwargs):
        return sympy.sqrt(2) * sympy.erfcinv(2 * u)

    def _eval_evalf(self, prec):
        u = self.args[0]._eval_evalf(prec)
        if u is None or not u.is_Number:
            return None
        with mpmath.workprec(prec + 20):
            uu = mpmath.mpf(u._to_mpmath(prec + 20))
            # mpmath has no erfcinv: Newton on log Q(x) = log u from the scipy value (well-conditioned in the tail)
            x = mpmath.mpf(float(normal_isf(float(uu)))) if 0 < float(uu) < 1 else mpmath.mpf(0)
            log_u = mpmath.log(uu)
            for _ in range(200):
                tail = mpmath.erfc(x / mpmath.sqrt(2)) / 2
                step = (mpmath.log(tail) - log_u) / (-mpmath.npdf(x) / tail)
                x -= step
                if abs(step) <= (1 + abs(x)) * mpmath.mpf(2) ** (-(prec + 10)):
                    break
        return sympy.Float(x, precision=prec)

    def _latex(self, printer, exp=None):
        inner = r"Q^{-1}\left(" + printer._print(self.args[0]) + r"\right)"
        return _power(inner, exp)


class NormalSetProb(_Unevaluated):
    """``P[Z in (l1, h1) u (l2, h2) u ...]`` for a standard normal Z; arguments ``l1, h1, l2, h2, ...``.

    Used where a risk is the probability of a union of intervals that may overlap; pairs with ``l >= h`` are
    empty. Evaluated by sorting and merging the intervals (mpmath for ``evalf``, numpy for lambdify).
    """

    @classmethod
    def eval(cls, *args):
        if len(args) % 2 or not args:
            raise ValueError(f"NormalSetProb needs pairs (lo, hi), got {len(args)} arguments")
        if all(a.is_Number or a in (sympy.oo, -sympy.oo) for a in args):
            pairs = merge_intervals([(float(args[i]), float(args[i + 1])) for i in range(0, len(args), 2)])
            if not pairs:
                return sympy.S.Zero
        return None

    def _eval_evalf(self, prec):
        vals = [a._eval_evalf(prec) if not a.is_infinite else a for a in self.args]
        if any(v is None or not (v.is_Number or v.is_infinite) for v in vals):
            return None
        pairs = sorted((vals[i], vals[i + 1]) for i in range(0, len(vals), 2) if vals[i] < vals[i + 1])
        merged: list[list[Any]] = []
        for lo, hi in pairs:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        total = sum((Q(lo) - Q(hi) for lo, hi in merged), sympy.S.Zero)
        return sympy.sympify(total).evalf(prec_to_dps(prec))

    def _latex(self, printer, exp=None):
        pieces = [r"\left(" + printer._print(self.args[i]) + ", " + printer._print(self.args[i + 1]) + r"\right)"
                  for i in range(0, len(self.args), 2)]
        inner = r"\Pr\left[Z \in " + r" \cup ".join(pieces) + r"\right]"
        return _power(inner, exp)


class UnitRatio(_Unevaluated):
    """``a / sqrt(a^2 + c)`` (``c > 0``), evaluated as ``a / hypot(a, sqrt(c))`` so that huge ``a`` gives +-1.

    The stationary point ``eps * a / sqrt(a^2 + k)`` of ``a t + sqrt(k) sqrt(eps^2 - t^2)`` is written with it:
    sympy would otherwise rewrite it as ``a / sqrt(k + w^2/beta^2)``, which overflows for tiny ``beta``.
    """

    nargs = 2

    def _eval_rewrite_as_sqrt(self, a, c, **kwargs):
        return a / sympy.sqrt(a**2 + c)

    # a real ratio in [-1, 1]: Max / Min / Piecewise need to know it is comparable once its arguments are numbers
    # (without these, "1 - UnitRatio(1.4e167, 1)**2 is not comparable" broke the symbolic route, issue 10)
    def _eval_is_extended_real(self):
        a, c = self.args
        if a.is_extended_real and c.is_positive:
            return True
        return None

    def _eval_is_finite(self):
        a, c = self.args
        if a.is_extended_real and c.is_positive:
            return True
        return None

    def _eval_evalf(self, prec):
        # the arguments are exact binary numbers: evaluate at the requested precision, not at theirs (the sqrt
        # rewrite evaluated at the 53 bits of a float argument, so 1 - UnitRatio(1e10, 1)**2 came out as 0 with no
        # significant digit, and Max/Min then found it "not comparable", issue 10)
        vals = [arg._eval_evalf(prec + 20) if not arg.is_Number else arg for arg in self.args]
        if any(v is None or not v.is_Number for v in vals):
            return None
        with mpmath.workprec(prec + 20):
            a, c = (mpmath.mpf(v._to_mpmath(prec + 20)) for v in vals)
            value = a / mpmath.hypot(a, mpmath.sqrt(c))
        return sympy.Float(value, precision=prec)


class SqrtGap(_Unevaluated):
    """``sqrt(max(e^2 - d^2, 0))``, evaluated without losing the digits that ``e^2 - d^2`` cancels.

    The L2 reach ``sqrt(k) sqrt(eps^2 - delta^2)`` at the stationary point ``delta = eps UnitRatio(a, k)`` is
    ``eps sqrt(k / (a^2 + k))``: for ``a = 1e167`` the difference cancels 670 digits, beyond the precision sympy's
    ``evalf`` grants a sum (about 100 digits), which left ``Max``/``Min`` with a "not comparable" zero of no
    significant digit (issue 10). Here ``delta`` is evaluated at a precision raised until the gap has the
    requested number of significant bits (or is 0).
    """

    nargs = 2

    @classmethod
    def eval(cls, e, d):
        if d.is_zero:
            return sympy.sqrt(e**2)
        return None

    def _eval_rewrite_as_sqrt(self, e, d, **kwargs):
        return sympy.sqrt(sympy.Max(e**2 - d**2, 0))

    def _eval_is_extended_real(self):
        e, d = self.args
        return True if (e.is_extended_real and d.is_extended_real) else None

    def _eval_is_nonnegative(self):
        return self._eval_is_extended_real()

    def _eval_evalf(self, prec):
        work = prec + 20
        while work <= 8 * 4096:
            dps = prec_to_dps(work)
            vals = [arg.evalf(dps) for arg in self.args]
            if any(not v.is_Number for v in vals):
                return None
            with mpmath.workprec(work):
                e, d = (mpmath.mpf(v._to_mpmath(work)) for v in vals)
                gap = (abs(e) - abs(d)) * (abs(e) + abs(d))
                if gap <= 0:
                    return sympy.S.Zero
                # enough significant bits left after the cancellation?
                if gap > e * e * mpmath.ldexp(1, -(work - prec - 10)):
                    return sympy.Float(mpmath.sqrt(gap), precision=prec)
            work *= 2
        return sympy.S.Zero  # the gap is below 2^-32000 of e^2: 0 at any precision asked for


class _PreciseExtremum(sympy.Function):
    """``Max`` / ``Min`` whose numeric value is found with as many digits as its arguments need.

    sympy's ``Max`` checks at construction that its arguments are comparable, evaluating each with at most 100
    digits; the latent thresholds of a nearly degenerate classifier (``w = (-1.4, 1e-167)`` on Tsipras) are sums
    of terms near 1e167 that cancel to 1e-168, so ``Max`` raised "not comparable" (issue 10). Here the arguments
    are evaluated with up to 2000 working digits (``evalf(maxn=2000)``), and numbers are combined only when
    they are plain numbers. Printed (and lambdified, see :data:`NUMERIC_FUNCS`) as ``Max`` / ``Min``.
    """

    _pick: Any = max
    _name = "Max"

    @classmethod
    def eval(cls, *args):
        if args and all(a.is_Number for a in args):
            return cls._pick(args)
        return None

    def _eval_evalf(self, prec):
        vals = [a.evalf(prec_to_dps(prec), maxn=2000) for a in self.args]
        if any(not v.is_Number for v in vals):
            return None
        return type(self)._pick(vals)

    def _eval_is_extended_real(self):
        return sympy.core.logic.fuzzy_and(a.is_extended_real for a in self.args)

    def _sympystr(self, printer):
        return f"{self._name}({', '.join(printer._print(a) for a in self.args)})"

    def _latex(self, printer, exp=None):
        inner = rf"\{self._name.lower()}\left(" + ", ".join(printer._print(a) for a in self.args) + r"\right)"
        return _power(inner, exp)


class PreciseMax(_PreciseExtremum):
    """``Max`` evaluated with the digits its arguments need (see :class:`_PreciseExtremum`)."""

    _pick = max
    _name = "Max"


class PreciseMin(_PreciseExtremum):
    """``Min`` evaluated with the digits its arguments need (see :class:`_PreciseExtremum`)."""

    _pick = min
    _name = "Min"


def _reduce(fn: Any) -> Any:
    def numeric(*args: Any) -> np.ndarray:
        out = np.asarray(args[0], dtype=float)
        for a in args[1:]:
            out = fn(out, np.asarray(a, dtype=float))
        return out

    return numeric


def sqrt_gap(e: Any, d: Any) -> np.ndarray:
    """Numeric :class:`SqrtGap`: ``sqrt(max((|e| - |d|)(|e| + |d|), 0))``."""
    e, d = np.abs(np.asarray(e, dtype=float)), np.abs(np.asarray(d, dtype=float))
    return np.sqrt(np.maximum((e - d) * (e + d), 0.0))


def unit_ratio(a: Any, c: Any) -> np.ndarray:
    """Numeric :class:`UnitRatio`: ``a / hypot(a, sqrt(c))``."""
    a = np.asarray(a, dtype=float)
    return a / np.hypot(a, np.sqrt(np.asarray(c, dtype=float)))


def prec_to_dps(prec: int) -> int:
    """Decimal digits for a binary precision (sympy's own conversion)."""
    return sympy.core.evalf.prec_to_dps(prec)


#: the one lambdify namespace: every special function of the package mapped to its vectorised numpy/scipy
#: evaluation (modules add theirs with :func:`register_numeric`); a :class:`toyrobust.registry.Registry` with
#: case-sensitive names (``Q`` and ``q`` are different sympy functions), refusing a second evaluation for a name
NUMERIC_FUNCS: Registry[Callable[..., Any]] = Registry("numeric function", normalize=lambda s: s)
for _name, _fn in (
    ("Q", normal_sf),
    ("logQ", log_normal_sf),
    ("Qinv", normal_isf),
    ("NormalSetProb", normal_set_prob),
    ("UnitRatio", unit_ratio),
    ("SqrtGap", sqrt_gap),
    ("PreciseMax", _reduce(np.maximum)),
    ("PreciseMin", _reduce(np.minimum)),
    ("erfc", sc.erfc),
    ("erf", sc.erf),
):
    NUMERIC_FUNCS.register(_name, _fn)


#: the former name of :data:`NUMERIC_FUNCS` (the same registry)
SCIPY_FUNCS = NUMERIC_FUNCS


def register_numeric(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering the vectorised numeric evaluation of the sympy function called ``name``.

    Every symbolic-to-numeric conversion of the package (:func:`lambdify`, the closed-form grids of
    :func:`~toyrobust.risks.numeric.risk_function`) reads this one table, so a special function is registered
    once, beside its definition; a second, different evaluation for a name is refused (ValueError).
    """
    return NUMERIC_FUNCS.decorator(name)


@functools.lru_cache(maxsize=512)
def _lambdify_cached(args: tuple[sympy.Symbol, ...], expr: Any) -> Callable[..., Any]:
    fn = sympy.lambdify(args, expr, modules=[NUMERIC_FUNCS, "numpy"])
    if not any(e.has(sympy.Piecewise) for e in (expr if isinstance(expr, tuple) else (expr,))):
        return fn

    @functools.wraps(fn)
    def piecewise(*values: Any) -> Any:
        # numpy.select computes every branch of a Piecewise, also where it is not chosen: a branch dividing by
        # Max(0, eta - eps) divides by zero exactly where the condition selects another branch (Tsipras' optimal
        # risk at eps >= eta). Those values are discarded, so their divide/invalid warnings say nothing; a chosen
        # branch's inf or NaN still shows in the result
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(*values)

    return piecewise


def lambdify(args: Any, expr: Any) -> Callable[..., Any]:
    """A vectorised numpy function of ``args`` computing ``expr``: the package's one symbolic-to-numeric path.

    Special functions go to their registered scipy evaluations (:data:`NUMERIC_FUNCS`), the rest to numpy; the
    compiled function is cached per (arguments, expression).

    Args:
        args: a symbol or a sequence of symbols.
        expr: a sympy expression (or a list of them) in those symbols.
    """
    args = (args,) if isinstance(args, sympy.Symbol) else tuple(args)
    expr = tuple(expr) if isinstance(expr, list) else sympy.sympify(expr)
    return _lambdify_cached(args, expr)
