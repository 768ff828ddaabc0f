"""Closed-form risks on the concentric spheres (Gilmer et al. 2018, "Adversarial spheres"; seed 003).

Registered combinations (``ConcentricSpheres`` with inner radius ``r1`` (label -1), outer radius ``r2`` (label +1),
middle radius ``m = (r1 + r2)/2`` where the Bayes label changes, dimension ``n``):

* **Linear** ``sign(<w, x> + b)``. On the sphere of radius ``r`` the set ``<w, x> >= t`` is a spherical cap of
  height ``t / (r ||w||_2)``, so the standard risk is an exact cap fraction (:mod:`toyrobust.risks.caps`). Over an
  Lp ball on coordinates ``S`` the margin moves by at most ``eps ||w_S||_q`` (Holder), deterministically, so the
  ball risk is again a pair of caps: under L2 the error set grows from the cap of height ``h`` to that of height
  ``h - eps/r``. Exact for every norm, symbolic parameters allowed. The prediction-change risk is the measure of
  the band between two caps. The projection and error-region risks equal the ball risk while the ball cannot reach
  the middle sphere (``eps`` times the largest L2 length of the ball <= ``(r2 - r1)/2``); beyond that they raise
  NotImplementedError.
* **Radial** ``sign(||x||_2 - r)``. A ball around ``x`` reaches exactly the norms ``[lo(x), hi(x)]`` (it is
  connected), and every definition asks whether that interval meets a set of radii. L2 on all coordinates:
  ``lo = (||x|| - eps)_+``, ``hi = ||x|| + eps``, one indicator per sphere (exact, symbolic allowed). L2 on ``k < n``
  coordinates: ``lo`` and ``hi`` are monotone in ``b = ||x_S||``, and ``b^2/r^2 ~ Beta(k/2, (n-k)/2)``: exact
  through ``scipy.special.betaincc``. Linf and L1: ``hi^2 = ||x||^2 + 2 eps ||x_S||_1 + k eps^2`` (Linf), whose
  law over the sphere has no closed form; the risk is exact whenever the answer is the same over the whole range
  of ``lo`` and ``hi`` on the sphere (computed exactly), and otherwise NotImplementedError (use
  ``tr.estimate_risk``).
* **Quadratic** ``sign(sum_i alpha_i x_i^2 - c)``, standard risk only. On the sphere of radius ``r`` write
  ``x = r z / ||z||`` with ``z ~ N(0, I)``: the error is the sign of the weighted chi-square
  ``sum_i (r^2 alpha_i - c) z_i^2`` (PITFALLS 14). Computed exactly by inverting its moment generating function
  along the steepest-descent line through the saddle point (no cancellation, so tails like 1e-300 keep their
  relative precision); the symbolic form is :class:`WeightedChi2Sign` (``.rewrite(sympy.Integral)`` gives Imhof's
  integral). Gilmer et al.'s normal approximation is offered
  beside it (:func:`quadratic_error_normal_approximation`).

Every threat-free registration also answers the other definitions: on the support the Bayes label is the true
label, so projection and error-region risks equal the standard risk and the prediction-change risk is 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.integrate as si
import scipy.optimize as so
import scipy.special as sc
import sympy

from ..classifiers import Linear, Quadratic, Radial
from ..constraints import is_symbolic
from ..distributions import ConcentricSpheres
from ..threats import L1, L2, Linf, ThreatModel
from .caps import CapFraction, _cap_height_arrays
from .registry import RiskResult, register_risk
from .special import register_numeric

__all__ = [
    "linear_sphere_risk",
    "weighted_chi2_log_probabilities",
    "weighted_chi2_probability",
    "quadratic_error_normal_approximation",
    "imhof_expr",
    "WeightedChi2Sign",
]

_HALF = sympy.Rational(1, 2)


# ----------------------------------------------------------------------------------------------- helpers
def _key(dist: Any, clf: Any, threat: Any, definition: str) -> tuple[str, str, str, str]:
    return (type(dist).__name__, type(clf).__name__, "None" if threat is None else type(threat).__name__, definition)


def _numeric(*values: Any) -> bool:
    return not any(is_symbolic(v) for v in values)


def _logdiff(la: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """``log(exp(la) - exp(lb))`` for ``la >= lb`` (``-inf`` when equal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(la > lb, la + np.log1p(-np.exp(lb - la)), -np.inf)


def _log_or_neginf(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def _check_dims(dist: ConcentricSpheres, clf: Any) -> None:
    d = getattr(clf, "dim", None)
    if d is None:
        return
    diff = sympy.sympify(d) - sympy.sympify(dist.dim)
    if diff.is_zero is False:
        raise ValueError(f"clf has dimension {d} but the distribution has dimension {dist.dim}")


def _coords_k(threat: ThreatModel, n: Any) -> Any:
    """Number of perturbed coordinates (validating the indices against a numeric dimension)."""
    if not is_symbolic(n):
        return threat.n_free(int(n))
    if threat.coords is not None and not isinstance(threat.coords, slice):
        raise TypeError(f"coords={threat.coords!r} needs a numeric dimension; use slice(start, None) with dim={n}")
    return threat.n_free(n)


def _l2_reach(threat: ThreatModel, k: Any) -> Any:
    """The radius of the smallest L2 ball containing the threat's ball (Linf: eps sqrt(k); L2, L1: eps)."""
    if isinstance(threat, Linf):
        return threat.eps * (sympy.sqrt(k) if is_symbolic(k) or is_symbolic(threat.eps) else math.sqrt(k))
    return threat.eps


def _is_zero(v: Any) -> bool:
    return (not is_symbolic(v) and float(v) == 0.0) or (is_symbolic(v) and sympy.sympify(v).is_zero is True)


def _decide(cond: Any) -> bool | None:
    cond = sympy.sympify(cond)
    if cond is sympy.true:
        return True
    if cond is sympy.false:
        return False
    return None


# ----------------------------------------------------------------------------------------------- linear
def linear_sphere_risk(n: Any, r_inner: Any, r_outer: Any, offset: Any, shift: Any = 0.0, log: bool = False) -> Any:
    """Vectorised ball risk of a linear classifier on the spheres, for parameter grids.

    With ``w`` normalised to a unit vector, the classifier says +1 iff ``<w, x> >= offset``; an adversary lowers or
    raises the margin by ``shift`` (``eps ||w_S||_q / ||w||_2``; 0 for the standard risk):

        risk = 1/2 P[u >= (offset - shift)/r_inner] + 1/2 P[u <= -(offset + shift)/r_outer]

    with ``u`` the first coordinate of a uniform point of ``S^{n-1}``, both terms cap fractions.

    Args:
        n, r_inner, r_outer, offset, shift: numbers or arrays, broadcast together.
        log: return ``log(risk)`` instead (accurate far below 1e-300).

    Returns:
        A float or an array of the broadcast shape.
    """
    n, r1, r2, t, s = (np.asarray(v, dtype=float) for v in (n, r_inner, r_outer, offset, shift))
    v_in, l_in = _cap_height_arrays(n, (t - s) / r1, want_log=log)
    v_out, l_out = _cap_height_arrays(n, -(t + s) / r2, want_log=log)
    out = math.log(0.5) + np.logaddexp(l_in, l_out) if log else 0.5 * (v_in + v_out)
    return float(out) if out.ndim == 0 else out


def _linear_parts(dist: ConcentricSpheres, clf: Linear, threat: Any) -> tuple[Any, Any, Any, bool]:
    """``(offset t, shift delta, L2 reach, numeric)`` with ``w`` normalised: +1 iff ``<w/||w||, x> >= t``."""
    _check_dims(dist, clf)
    wn = clf.w.norm(2)
    numeric = clf.w.is_numeric and _numeric(clf.b, dist.r_inner, dist.r_outer, dist.dim) and (
        threat is None or _numeric(threat.eps))
    if threat is None:
        return -clf.b / wn, 0, 0, numeric
    k = _coords_k(threat, dist.dim)
    inside, _ = clf.w.restrict(threat.coords)
    shift = threat.eps * inside.norm(threat.q) / wn
    return -clf.b / wn, shift, _l2_reach(threat, k), numeric


def _constant_risk(dist, clf, threat, definition) -> RiskResult:
    # w = 0: the constant classifier sign(b) (+1 when b = 0) is wrong on exactly one sphere, whatever the adversary
    v = 0.0 if definition == "prediction-change" else 0.5
    return RiskResult(sympy.nsimplify(v), v, _log_or_neginf(v), "exact (constant classifier)",
                      _key(dist, clf, threat, definition))


def _linear_ball(dist, clf, threat, definition, t, s, numeric) -> RiskResult:
    r1, r2, n = dist.r_inner, dist.r_outer, dist.dim
    expr = _HALF * CapFraction(n, (t - s) / r1) + _HALF * CapFraction(n, -(t + s) / r2)
    details = {"offset": t, "shift": s}
    if not numeric:
        return RiskResult(expr, None, None, "closed form (spherical caps)", _key(dist, clf, threat, definition),
                          details)
    lv = linear_sphere_risk(n, float(r1), float(r2), float(t), float(s), log=True)
    return RiskResult(expr, math.exp(lv), lv, "closed form (spherical caps, scipy.special.betainc, log space)",
                      _key(dist, clf, threat, definition), details)


def _linear_band(dist, clf, threat, definition, t, s, numeric) -> RiskResult:
    """Prediction change: the margin can cross 0 iff ``<w, x>`` lies within ``shift`` of ``t`` (a band)."""
    n = dist.dim
    radii = (dist.r_inner, dist.r_outer)
    expr = sum(_HALF * (CapFraction(n, (t - s) / r) - CapFraction(n, (t + s) / r)) for r in radii)
    if not numeric:
        return RiskResult(expr, None, None, "closed form (band between two spherical caps)",
                          _key(dist, clf, threat, definition))
    logs = []
    for r in radii:
        _, la = _cap_height_arrays(n, (float(t) - float(s)) / float(r))
        _, lb = _cap_height_arrays(n, (float(t) + float(s)) / float(r))
        logs.append(_logdiff(la, lb))
    lv = float(math.log(0.5) + np.logaddexp(*logs))
    return RiskResult(expr, math.exp(lv), lv, "closed form (band between two spherical caps, log space)",
                      _key(dist, clf, threat, definition))


# The definitions each registration below is valid for, and why.
#: no adversary (x' = x): the point lies on its sphere, the projection is the point itself and the Bayes label of
#: a sphere is its label, so "projection" and "error-region" ask f(x) != y like "ball"; "prediction-change" is 0
_STANDARD_DEFS = ("ball", "projection", "error-region", "prediction-change")
#: a linear classifier against a ball: ball (two shifted caps) and prediction-change (a band) for every radius;
#: projection and error-region equal the ball risk while the ball cannot reach the middle sphere (then every point
#: of the ball projects onto the clean point's sphere, whose Bayes label is y), and raise NotImplementedError beyond
_LINEAR_DEFS = ("ball", "projection", "error-region", "prediction-change")
#: a radial classifier: each definition is its own event on the interval of reachable norms (_radial_clauses)
_RADIAL_DEFS = ("ball", "projection", "error-region", "prediction-change")
#: a quadratic classifier against a ball: only eps = 0 is answered, where the ball is the point (as without an
#: adversary); every eps > 0 raises NotImplementedError
_QUADRATIC_DEFS = ("ball", "projection", "error-region", "prediction-change")


@register_risk(ConcentricSpheres, Linear, None, _STANDARD_DEFS)
def _spheres_linear_standard(dist, clf, threat, definition) -> RiskResult:
    """Standard risk of ``sign(<w, x> + b)``: ``1/2 cap(t/r1) + 1/2 cap(-t/r2)``, ``t = -b/||w||`` (exact)."""
    if _is_zero(clf.w.norm(2)):
        return _constant_risk(dist, clf, threat, definition)
    t, s, _, numeric = _linear_parts(dist, clf, None)
    if definition == "prediction-change":
        return RiskResult(sympy.Integer(0), 0.0, -math.inf, "exact (no adversary: nothing changes)",
                          _key(dist, clf, threat, definition))
    return _linear_ball(dist, clf, threat, definition, t, s, numeric)


@register_risk(ConcentricSpheres, Linear, ThreatModel, _LINEAR_DEFS)
def _spheres_linear_threat(dist, clf, threat, definition) -> RiskResult:
    """Adversarial risk of ``sign(<w, x> + b)`` over an Lp ball: two caps shifted by ``eps ||w_S||_q/||w||_2``."""
    if _is_zero(clf.w.norm(2)):
        return _constant_risk(dist, clf, threat, definition)
    t, s, reach, numeric = _linear_parts(dist, clf, threat)
    if definition == "prediction-change":
        return _linear_band(dist, clf, threat, definition, t, s, numeric)
    if definition in ("projection", "error-region"):
        half_gap = (dist.r_outer - dist.r_inner) / 2
        within = _decide(sympy.Le(reach, half_gap))
        if within is not True:
            raise NotImplementedError(
                f"the {definition!r} risk of a linear classifier on the spheres is registered only while the ball "
                f"cannot cross the middle sphere (L2 reach {reach} <= (r_outer - r_inner)/2 = {half_gap}); "
                f"estimate it with tr.estimate_risk(dist, clf, threat, definition={definition!r})")
    return _linear_ball(dist, clf, threat, definition, t, s, numeric)


# ----------------------------------------------------------------------------------------------- radial
def _radial_clauses(definition: str, rho: Any, y: int, r: Any, m: Any) -> list[list[tuple[str, Any]]]:
    """Adversarial event for a point of norm ``rho`` and label ``y`` as a disjunction of conjunctions of atoms.

    Atoms: ``("const", condition)``, ``("hi", A)`` meaning ``hi >= A``, ``("lo", B)`` meaning ``lo < B``; the
    reachable norms ``[lo, hi]`` meet ``[A, B)`` iff ``A < B``, ``lo < B`` and ``hi >= A``.
    """
    if definition == "ball":  # f(x') != y
        return [[("hi", r)]] if y == -1 else [[("lo", r)]]
    if definition == "projection":  # f(x') != y and the projection keeps the label: [r, m) inside, [m, r) outside
        if y == -1:
            return [[("const", sympy.Lt(r, m)), ("lo", m), ("hi", r)]]
        return [[("const", sympy.Lt(m, r)), ("lo", r), ("hi", m)]]
    if definition == "error-region":  # f(x') != Bayes(x'): radii between r and m
        lo_r, hi_r = sympy.Min(r, m), sympy.Max(r, m)
        return [[("const", sympy.Lt(lo_r, hi_r)), ("lo", hi_r), ("hi", lo_r)]]
    # prediction-change: f(x) = +1 iff rho >= r; it changes iff the ball reaches the other side of r
    return [[("const", sympy.Ge(rho, r)), ("lo", r)], [("const", sympy.Lt(rho, r)), ("hi", r)]]


def _clauses_expr(clauses, lo: Any, hi: Any) -> sympy.Expr:
    """Indicator of the event for a deterministic reach ``[lo, hi]`` (sympy Piecewise, 0/1 for numbers)."""
    terms = []
    for clause in clauses:
        atoms = []
        for kind, v in clause:
            atoms.append(v if kind == "const" else sympy.Ge(hi, v) if kind == "hi" else sympy.Lt(lo, v))
        terms.append(sympy.And(*atoms))
    return sympy.Piecewise((1, sympy.Or(*terms)), (0, True))


def _beta_threshold_hi(a: float, rho: float, eps: float) -> float:
    """``hi >= a`` iff ``b >= beta``: ``hi^2 = rho^2 + 2 b eps + eps^2`` (L2 on k < n coordinates)."""
    if a <= 0:
        return -math.inf
    return (a * a - rho * rho - eps * eps) / (2 * eps)


def _beta_threshold_lo(bound: float, rho: float, eps: float) -> float:
    """``lo < bound`` iff ``b > beta``: ``lo^2 = rho^2 - b^2 + (b - eps)_+^2`` decreases in ``b``."""
    if bound <= 0:
        return math.inf
    if bound * bound > rho * rho:
        return -math.inf
    if bound * bound > rho * rho - eps * eps:  # reached with b < eps
        return math.sqrt(rho * rho - bound * bound)
    return (rho * rho + eps * eps - bound * bound) / (2 * eps)


def _radial_beta_prob(clauses, rho: float, eps: float, n: int, k: int) -> tuple[float, float]:
    """Probability (and its log) of the event when ``b = ||x_S|| = rho sqrt(Beta(k/2, (n-k)/2))``."""
    total, logs = 0.0, []
    for clause in clauses:
        beta, ok = -math.inf, True
        for kind, v in clause:
            if kind == "const":
                ok &= bool(v)
            elif kind == "hi":
                beta = max(beta, _beta_threshold_hi(float(v), rho, eps))
            else:
                beta = max(beta, _beta_threshold_lo(float(v), rho, eps))
        if not ok or beta > rho:
            continue
        if beta <= 0:
            p, lp = 1.0, 0.0
        else:
            # P[Beta(k/2, (n-k)/2) >= beta^2/rho^2] = I_{1 - x}((n-k)/2, k/2)
            x = (beta / rho) ** 2
            p = float(sc.betaincc(k / 2, (n - k) / 2, x))
            lp = _log_or_neginf(p)
        total += p
        logs.append(lp)
    return total, (float(np.logaddexp.reduce(logs)) if logs else -math.inf)


def _reach_ranges(threat: ThreatModel, rho: float, eps: float, n: int, k: int) -> tuple[float, float, float, float]:
    """Exact ``(lo_min, lo_max, hi_min, hi_max)`` of the reachable norms over the sphere of radius ``rho``.

    Linf: ``hi^2 = rho^2 + 2 eps ||x_S||_1 + k eps^2`` with ``||x_S||_1`` in ``[rho (k = n) or 0, rho sqrt(k)]``;
    ``lo`` = distance to the box, in ``[(rho - eps sqrt(k))_+, (rho - eps)_+ (k = n) or rho]``. L1: ``hi^2 = rho^2 +
    2 eps ||x_S||_inf + eps^2`` with ``||x_S||_inf`` in ``[rho/sqrt(n) (k = n) or 0, rho]``; ``lo`` in
    ``[(rho - eps)_+, (rho - eps/sqrt(n))_+ (k = n) or rho]``. L2: ``[(rho - eps)_+, rho + eps]`` exactly (k = n).
    """
    full = k == n
    if isinstance(threat, Linf):
        s1_min = rho if full else 0.0
        hi_min = math.sqrt(rho * rho + 2 * eps * s1_min + k * eps * eps)
        hi_max = rho + eps * math.sqrt(k)
        lo_min = max(rho - eps * math.sqrt(k), 0.0)
        lo_max = max(rho - eps, 0.0) if full else rho
    elif isinstance(threat, L1):
        sinf_min = rho / math.sqrt(n) if full else 0.0
        hi_min = math.sqrt(rho * rho + 2 * eps * sinf_min + eps * eps)
        hi_max = rho + eps
        lo_min = max(rho - eps, 0.0)
        lo_max = max(rho - eps / math.sqrt(n), 0.0) if full else rho
    else:
        hi_min = hi_max = rho + eps
        lo_min = lo_max = max(rho - eps, 0.0)
    return lo_min, lo_max, hi_min, hi_max


def _radial_decided(clauses, ranges) -> bool | None:
    """True/False when the event holds at every / no point of the sphere, None when it depends on the point."""
    lo_min, lo_max, hi_min, hi_max = ranges
    results = []
    for clause in clauses:
        states = []
        for kind, v in clause:
            if kind == "const":
                states.append(bool(v))
            elif kind == "hi":
                v = float(v)
                states.append(True if hi_min >= v else False if hi_max < v else None)
            else:
                v = float(v)
                states.append(True if lo_max < v else False if lo_min >= v else None)
        results.append(False if False in states else True if all(states) else None)
    if True in results:
        return True
    return False if all(r is False for r in results) else None


@register_risk(ConcentricSpheres, Radial, None, _STANDARD_DEFS)
def _spheres_radial_standard(dist, clf, threat, definition) -> RiskResult:
    """Standard risk of ``sign(||x|| - r)``: ``1/2 [r <= r1] + 1/2 [r > r2]`` (exact)."""
    return _spheres_radial(dist, clf, None, definition)


@register_risk(ConcentricSpheres, Radial, ThreatModel, _RADIAL_DEFS)
def _spheres_radial_threat(dist, clf, threat, definition) -> RiskResult:
    """Adversarial risk of ``sign(||x|| - r)``: does the interval of reachable norms meet the critical radii?"""
    return _spheres_radial(dist, clf, threat, definition)


def _symbolic_radial_message(threat: ThreatModel, full: bool) -> str:
    """Why a radial risk with symbolic parameters has no closed form here: part of the coordinates (any norm), or the
    whole Linf or L1 ball (the reachable norms depend on where the point lies on the sphere)."""
    name = type(threat).__name__
    if threat.coords is None or full:
        where = (f"the whole {name} ball (the norms it reaches from a point depend on where the point lies on the "
                 f"sphere, so the risk is decided numerically over their exact range, or has no closed form)")
    else:
        where = f"{name} on part of the coordinates (coords={threat.coords!r})"
    return (f"the radial risk on the spheres under {where} is computed for numeric parameters only; substitute "
            f"numbers (or use tr.estimate_risk)")


def _spheres_radial(dist, clf, threat, definition) -> RiskResult:
    _check_dims(dist, clf)
    r, m, n = clf.r, dist.r_mid, dist.dim
    key = _key(dist, clf, threat, definition)
    eps = 0 if threat is None else threat.eps
    k = n if threat is None else _coords_k(threat, n)
    # with one free coordinate every norm is the same ball (an interval), so Linf and L1 reduce to L2
    l2_like = threat is None or isinstance(threat, L2) or (not is_symbolic(k) and int(k) == 1)
    full = threat is None or (sympy.sympify(k) - sympy.sympify(n)).is_zero is True
    numeric = _numeric(r, dist.r_inner, dist.r_outer, n, eps)
    parts = [(dist.r_inner, -1), (dist.r_outer, 1)]

    if _is_zero(eps) or (l2_like and full):
        exprs = []
        for rho, y in parts:
            lo, hi = (rho, rho) if _is_zero(eps) else (sympy.Max(rho - eps, 0), rho + eps)
            exprs.append(_clauses_expr(_radial_clauses(definition, rho, y, r, m), lo, hi))
        expr = _HALF * exprs[0] + _HALF * exprs[1]
        value = float(expr) if numeric else None
        return RiskResult(expr, value, None if value is None else _log_or_neginf(value),
                          "exact (reachable norms [(|x| - eps)_+, |x| + eps], one indicator per sphere)", key)
    if not numeric:
        raise NotImplementedError(_symbolic_radial_message(threat, full))
    n, k, e = int(n), int(k), float(eps)
    probs, logs = [], []
    if l2_like:
        for rho, y in parts:
            p, lp = _radial_beta_prob(_radial_clauses(definition, rho, y, r, m), float(rho), e, n, k)
            probs.append(p)
            logs.append(lp)
        method = "exact (||x_S||^2/r^2 ~ Beta(k/2, (n-k)/2), scipy.special.betaincc)"
    else:
        for rho, y in parts:
            clauses = _radial_clauses(definition, rho, y, r, m)
            decided = _radial_decided(clauses, _reach_ranges(threat, float(rho), e, n, k))
            if decided is None:
                lo_min, lo_max, hi_min, hi_max = _reach_ranges(threat, float(rho), e, n, k)
                raise NotImplementedError(
                    f"no closed form for the {definition!r} risk of Radial(r={r}) on the sphere of radius {rho} under "
                    f"{type(threat).__name__}(eps={eps}): the reachable norms range over lo in [{lo_min:.6g}, "
                    f"{lo_max:.6g}], hi in [{hi_min:.6g}, {hi_max:.6g}] depending on the point, and the law of "
                    f"||x||_1 (or ||x||_inf) on the sphere has no closed form; estimate it with tr.estimate_risk(dist, "
                    f"clf, threat, definition={definition!r})")
            probs.append(1.0 if decided else 0.0)
            logs.append(0.0 if decided else -math.inf)
        method = "exact (the event is decided over the exact range of reachable norms on each sphere)"
    value = 0.5 * (probs[0] + probs[1])
    lv = float(math.log(0.5) + np.logaddexp(logs[0], logs[1]))
    return RiskResult(sympy.Float(value), value, lv, method, key)


# ----------------------------------------------------------------------------------------------- quadratic
def _chi2_log_tail(lam: np.ndarray, h: np.ndarray) -> float:
    """``log P[sum_j lam_j chi2_{h_j} > 0]`` by saddle-point-line inversion of the moment generating function.

    ``P[Q > 0] = (1/pi) int_0^inf Re[M(c + iy)/(c + iy)] dy`` for any ``0 < c < 1/(2 max lam)``, with
    ``M(s) = prod_j (1 - 2 s lam_j)^(-h_j/2)``; ``c`` solves ``c K'(c) = 1`` (``K = log M``), the saddle point of
    ``M(s)/s``, so the integrand is positive near ``y = 0`` and of the size of the answer: no cancellation.
    """
    keep = lam != 0
    lam, h = lam[keep], h[keep]
    if not np.any(lam > 0):
        return -math.inf
    if not np.any(lam < 0):
        return 0.0
    upper = 1.0 / (2.0 * lam.max())

    def saddle(c: float) -> float:
        return float(np.sum(h * c * lam / (1.0 - 2.0 * c * lam))) - 1.0

    hi = upper * (1 - 1e-15)
    while saddle(hi) <= 0:  # pragma: no cover - only when the weights span many decades
        hi = upper - (upper - hi) / 2
    c = so.brentq(saddle, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    kappa = 2.0 * lam / (1.0 - 2.0 * c * lam)
    log_k = -0.5 * float(np.sum(h * np.log1p(-2.0 * c * lam)))
    tau = 1.0 / math.sqrt(0.5 * float(np.sum(h * kappa**2)) + 1.0 / c**2)

    def integrand(v: float) -> float:
        y = tau * v
        z = -0.5 * np.sum(h * np.log(1.0 - 1j * y * kappa)) - np.log(1.0 + 1j * y / c)
        return float(np.exp(z).real)

    total = 0.0
    for a, b in ((0.0, 4.0), (4.0, 16.0), (16.0, np.inf)):
        part, _ = si.quad(integrand, a, b, epsabs=0.0, epsrel=1e-13, limit=400)
        total += part
    return log_k - math.log(c) + math.log(tau * total / math.pi)


def weighted_chi2_log_probabilities(weights: Any, counts: Any = None) -> tuple[float, float]:
    """``(log P[Q > 0], log P[Q < 0])`` for ``Q = sum_j w_j chi2_{k_j}`` (independent chi-squares).

    Exact (PITFALLS 14): the smaller of the two is computed by inverting the moment generating function along the
    vertical line through its saddle point, the larger as its complement; both stay accurate for probabilities
    far below 1e-300. ``P[Q = 0] = 0`` unless every weight is 0 (then both logs are ``-inf``).

    Args:
        weights: shape (J,), real.
        counts: degrees of freedom ``k_j > 0``, shape (J,) (default: all 1).

    Returns:
        ``(log P[Q > 0], log P[Q < 0])``.
    """
    lam = np.atleast_1d(np.asarray(weights, dtype=float))
    h = np.ones_like(lam) if counts is None else np.broadcast_to(np.asarray(counts, dtype=float), lam.shape).copy()
    if lam.ndim != 1 or not np.all(np.isfinite(lam)):
        raise ValueError(f"weights must be a 1-D array of finite numbers, got {weights!r}")
    if not np.all(h > 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"counts must be finite degrees of freedom > 0, got {counts!r}")
    if not np.any(lam != 0):
        return -math.inf, -math.inf
    lp = _chi2_log_tail(lam, h)
    ln = _chi2_log_tail(-lam, h)
    # the smaller one is the accurate one; the other is its complement
    if lp < ln:
        ln = math.log1p(-math.exp(lp))
    else:
        lp = math.log1p(-math.exp(ln))
    return lp, ln


def weighted_chi2_probability(weights: Any, counts: Any = None) -> float:
    """``P[sum_j w_j chi2_{k_j} > 0]`` (exact; see :func:`weighted_chi2_log_probabilities`).

    Args:
        weights: shape (J,), real.
        counts: degrees of freedom, shape (J,) (default: all 1).
    """
    return math.exp(weighted_chi2_log_probabilities(weights, counts)[0])


def quadratic_error_normal_approximation(weights: Any, counts: Any = None) -> float:
    """Gilmer et al. 2018's normal (central-limit) approximation of ``P[sum_j w_j chi2_{k_j} > 0]``.

    ``Q`` has mean ``sum k_j w_j`` and variance ``2 sum k_j w_j^2``; the approximation is
    ``Phi(mean / sd)``. Not exact (PITFALLS 14): its tiny error rates (1e-20) are off by orders of magnitude;
    compare :func:`weighted_chi2_probability`.

    Args:
        weights: shape (J,), real (for the inner sphere of radius ``r``: ``r^2 alpha_i - c``).
        counts: degrees of freedom, shape (J,) (default: all 1).
    """
    lam = np.atleast_1d(np.asarray(weights, dtype=float))
    h = np.ones_like(lam) if counts is None else np.broadcast_to(np.asarray(counts, dtype=float), lam.shape)
    sd = math.sqrt(2.0 * float(np.sum(h * lam**2)))
    if sd == 0:
        raise ValueError(f"weights must not all be 0, got {weights!r}")
    return float(sc.ndtr(float(np.sum(h * lam)) / sd))


def imhof_expr(blocks: Any) -> sympy.Expr:
    """Imhof's (1961) integral for ``P[sum_j w_j chi2_{k_j} > 0]`` as an unevaluated sympy expression.

    ``1/2 + 1/pi int_0^inf sin(1/2 sum_j k_j atan(w_j u)) / (u prod_j (1 + w_j^2 u^2)^(k_j/4)) du``.

    Args:
        blocks: iterable of ``(w_j, k_j)`` (numbers or sympy expressions).
    """
    u = sympy.Dummy("u", positive=True)
    theta = _HALF * sympy.Add(*[k * sympy.atan(w * u) for w, k in blocks])
    rho = sympy.Mul(*[(1 + w**2 * u**2) ** (sympy.sympify(k) / 4) for w, k in blocks])
    return _HALF + sympy.Integral(sympy.sin(theta) / (u * rho), (u, 0, sympy.oo)) / sympy.pi


class WeightedChi2Sign(sympy.Function):
    """``WeightedChi2Sign(w_1, k_1, ..., w_J, k_J) = P[sum_j w_j chi2_{k_j} > 0]`` (independent chi-squares).

    Unevaluated (also at float arguments, so a risk keeps its structure however many weights it has);
    ``evalf`` and lambdify (:func:`~toyrobust.risks.caps.lambdify_risk`) use
    :func:`weighted_chi2_probability` (double precision), ``.rewrite(sympy.Integral)`` gives Imhof's integral.
    """

    @classmethod
    def _should_evalf(cls, arg):
        return -1

    @classmethod
    def eval(cls, *args):
        if len(args) % 2 or not args:
            raise ValueError(f"WeightedChi2Sign needs pairs (w, k), got {len(args)} arguments")
        ws = args[0::2]
        if all(w.is_nonpositive for w in ws):
            return sympy.S.Zero
        if all(w.is_nonnegative for w in ws):
            return sympy.S.One
        return None

    def _eval_rewrite_as_Integral(self, *args, **kwargs):
        return imhof_expr(list(zip(args[0::2], args[1::2], strict=True)))

    def _eval_evalf(self, prec):
        vals = [a.evalf(prec) for a in self.args]
        if not all(v.is_Number for v in vals):
            return None
        return sympy.Float(weighted_chi2_probability([float(v) for v in vals[0::2]], [float(v) for v in vals[1::2]]),
                           precision=min(prec, 53))

    def _latex(self, printer, exp=None):
        terms = " + ".join(rf"{printer._print(w)} \chi^2_{{{printer._print(k)}}}"
                           for w, k in zip(self.args[0::2], self.args[1::2], strict=True))
        inner = rf"\Pr\left[{terms} > 0\right]"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"


register_numeric("WeightedChi2Sign")(lambda *a: weighted_chi2_probability(a[0::2], a[1::2]))


def _chi2_sign_expr(blocks: list[tuple[Any, Any]]) -> sympy.Expr:
    return WeightedChi2Sign(*[v for pair in blocks for v in pair])


@register_risk(ConcentricSpheres, Quadratic, None, _STANDARD_DEFS)
def _spheres_quadratic_standard(dist, clf, threat, definition) -> RiskResult:
    """Standard risk of ``sign(sum alpha_i x_i^2 - c)``: weighted chi-square sign probabilities (exact)."""
    return _spheres_quadratic(dist, clf, threat, definition)


@register_risk(ConcentricSpheres, Quadratic, ThreatModel, _QUADRATIC_DEFS)
def _spheres_quadratic_threat(dist, clf, threat, definition) -> RiskResult:
    """Only ``eps = 0`` (the standard risk): the worst case over a ball is a trust-region problem per point."""
    if not _is_zero(threat.eps):
        raise NotImplementedError(
            f"no closed form for the adversarial risk of a Quadratic classifier on the spheres (eps = {threat.eps} > "
            f"0): estimate it with tr.estimate_risk(dist, clf, threat, definition={definition!r})")
    return _spheres_quadratic(dist, clf, threat, definition)


def _spheres_quadratic(dist, clf, threat, definition) -> RiskResult:
    _check_dims(dist, clf)
    key = _key(dist, clf, threat, definition)
    if definition == "prediction-change":
        return RiskResult(sympy.Integer(0), 0.0, -math.inf, "exact (no adversary: nothing changes)", key)
    c = clf.c
    lam_in = [(dist.r_inner**2 * v - c, cnt) for v, cnt in clf.alpha.blocks]
    lam_out = [(dist.r_outer**2 * v - c, cnt) for v, cnt in clf.alpha.blocks]
    numeric = clf.alpha.is_numeric and _numeric(c, dist.r_inner, dist.r_outer)
    # inner (y = -1) errs when the margin is >= 0 (probability 1 when it is identically 0), outer when it is < 0
    all_zero = numeric and all(float(v) == 0 for v, _ in lam_in)
    p_in = sympy.S.One if all_zero else _chi2_sign_expr(lam_in)
    expr = _HALF * p_in + _HALF * (1 - _chi2_sign_expr(lam_out))
    if not numeric:
        return RiskResult(expr, None, None, "exact (Imhof's integral of a weighted chi-square)", key)
    w_in = np.array([float(v) for v, _ in lam_in])
    w_out = np.array([float(v) for v, _ in lam_out])
    counts = np.array([float(cnt) for _, cnt in clf.alpha.blocks])
    lp_in, ln_in = weighted_chi2_log_probabilities(w_in, counts)
    lp_out, ln_out = weighted_chi2_log_probabilities(w_out, counts)
    # P[Q >= 0] for the inner sphere: 1 when every weight is 0 (the margin is exactly 0 there, predicted +1)
    l_in = 0.0 if not np.any(w_in != 0) else lp_in
    l_out = -math.inf if not np.any(w_out != 0) else ln_out
    lv = float(math.log(0.5) + np.logaddexp(l_in, l_out))
    details = {"inner error": math.exp(l_in), "outer error": math.exp(l_out),
               "normal approximation": 0.5 * (_normal_or(w_in, counts, 1.0) + 1 - _normal_or(w_out, counts, 1.0))}
    return RiskResult(expr, math.exp(lv), lv,
                      "exact (weighted chi-square sign, saddle-point-line inversion of its MGF, scipy quad)", key,
                      details)


def _normal_or(w: np.ndarray, counts: np.ndarray, default: float) -> float:
    return quadratic_error_normal_approximation(w, counts) if np.any(w != 0) else default
