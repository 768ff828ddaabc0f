"""Closed-form risks of linear classifiers on Gaussian mixtures and on the Tsipras model.

Standard, ball and prediction-change risks hold for every linear classifier ``sign(<w, x> + b)`` and every
Lp ball (p = inf, 2, 1, optionally restricted to coordinates S): over the ball the margin moves by at most
``eps * ||w_S||_q`` (Hoelder, 1/p + 1/q = 1; seed 004, Goodfellow et al. 2015), so each risk is a sum of
normal tails of the margin's Gaussian law.

The projection and error-region definitions read the Bayes label of the perturbed point. They are exact in
closed form when the classifier's Gaussian weights are parallel to the Bayes direction (``w = lambda * mean``
for a mixture, equal weights on ``x_2..x_{d+1}`` for Tsipras; this includes the Bayes classifier, the
"robust" classifier ``sign(x_1)`` on Tsipras, the constant classifiers and every linear classifier of the 2-D
Tsipras model): the attack then acts on one Gaussian scalar and the event is a union of intervals of it. For a
Gaussian mixture and any other w they are an exact one-dimensional integral (numeric parameters only). For
Tsipras with unequal Gaussian weights there is neither (NotImplementedError: use ``tr.estimate_risk``).

References:
    D. Tsipras, S. Santurkar, L. Engstrom, A. Turner, A. Madry, "Robustness may be at odds with accuracy",
    ICLR 2019 (the distribution and the robust/non-robust features model).
    D. Stutz, "Towards a definition for adversarial examples" (seed 000: the projection definition).
    EPFL CS-433 lecture notes "Adversarial ML" (seed 003: the robust/non-robust Gaussian features model).
    I. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015 (seed
    004: the worst case of a linear margin over an Lp ball is ``eps * ||w||_q``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch
from scipy import special as sc

from ..blocks import Blocks
from ..classifiers import Linear
from ..constraints import is_symbolic
from ..distributions import GaussianMixture, Tsipras
from ..threats import L1, L2, Linf, ThreatModel
from .numeric import Form, Interval, Span, Term, _extremum, form_result, get_form, is_number, smax, smin
from .registry import register_risk
from .special import PreciseMax, PreciseMin, SqrtGap, UnitRatio

__all__ = ["gaussian_linear_risk", "tsipras_linear_risk", "margin_reach"]

oo = sympy.oo
_HALF = sympy.S.Half
_METHOD = "closed form (normal tails, evaluated in log space)"
_METHOD_ALIGNED = "closed form (union of intervals of one Gaussian scalar, evaluated in log space)"


def _ph(name: str, **assumptions: Any) -> sympy.Symbol:
    """A placeholder symbol (real and finite unless told otherwise)."""
    assumptions.setdefault("real", True)
    assumptions.setdefault("finite", True)
    return sympy.Symbol(name, **assumptions)


def _key(dist: Any, clf: Any, threat: Any, definition: str) -> tuple[str, str, str, str]:
    return (type(dist).__name__, type(clf).__name__, "None" if threat is None else type(threat).__name__,
            definition)


def _sign(value: Any) -> int | None:
    """+1, -1 or 0 when decidable (numbers, or sympy assumptions), None otherwise."""
    if is_number(value):
        v = float(value)
        return (v > 0) - (v < 0)
    value = sympy.sympify(value)
    if value.is_zero:
        return 0
    if value.is_positive:
        return 1
    if value.is_negative:
        return -1
    return None


def _is_zero_vector(v: Blocks) -> bool:
    return all(not is_symbolic(val) and float(val) == 0.0 for val, _ in v.blocks)


def _check_dims(dist: Any, clf: Linear) -> None:
    a, b = clf.w.dim, dist.dim
    if is_symbolic(a) or is_symbolic(b):
        if sympy.simplify(sympy.sympify(a) - b) != 0:
            raise ValueError(f"clf.w has dimension {a}, but the distribution {dist!r} has dimension {b}")
    elif a != b:
        raise ValueError(f"clf.w has dimension {a}, but the distribution {dist!r} has dimension {b}")


def _norm(arr: np.ndarray, q: float) -> float:
    """``||arr||_q`` without underflow or overflow (entries of 1e-171 have a square of 0 in float64)."""
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(arr / scale, ord=q))


def _dense(v: Blocks) -> np.ndarray:
    """The entries of a numeric vector as float64 (through the vector's cached CPU tensor: repeated risk calls
    on the same classifier do not rebuild it)."""
    return v.to_tensor(device="cpu", dtype=torch.float64).numpy()


def _l2(v: Blocks) -> Any:
    return v.norm(2)  # block by block: O(number of blocks), whatever the dimension


def margin_reach(w: Blocks, threat: ThreatModel | None, dim: Any) -> Any:
    """``eps * ||w_S||_q``: the largest change of ``<w, x>`` over the threat's ball (0 without a threat).

    Maths: ``max_{||delta||_p <= eps, delta_j = 0 (j not in S)} <w, delta> = eps * ||w_S||_q`` with
    ``1/p + 1/q = 1`` (Hoelder's inequality, attained by the dual-norm maximiser).

    Args:
        w: weights, shape (dim,).
        threat: an Lp ball (``coords`` = S), or None.
        dim: the input dimension (an int or a sympy expression).
    """
    if threat is None:
        return 0
    eps = threat.eps
    if not is_symbolic(dim) and w.is_numeric and threat.coords is not None:
        threat.coord_indices(int(dim)) if not isinstance(threat.coords, slice) else None  # validates the indices
    inside = w if threat.coords is None else w.restrict(threat.coords)[0]
    norm = inside.norm(threat.q)  # block by block: O(number of blocks), whatever the dimension
    return eps * norm if is_symbolic(eps) or is_symbolic(norm) else float(eps) * float(norm)


# ============================================================================================ Gaussian mixture
def _gm_scalars(dist: GaussianMixture, clf: Linear, threat: Any) -> tuple[Any, Any, Any, Any]:
    """``(A + b, A - b, s, c)`` with ``A = <w, mean>``, ``s = sigma ||w||_2``, ``c = eps ||w_S||_q``.

    ``A + b`` and ``A - b`` are placeholders of their own so that an exact cancellation (A = -b) stays exact.
    """
    _check_dims(dist, clf)
    if clf.w.is_numeric and dist.mean.is_numeric:
        A = float(clf.w.dot(dist.mean))
        s = dist.sigma * clf.w.norm(2)
    else:
        A, s = clf.w.dot(dist.mean), dist.sigma * clf.w.norm(2)
    return A + clf.b, A - clf.b, s, margin_reach(clf.w, threat, dist.dim)


_GM_LEGEND = {"Ap": "<w, mean> + b", "Am": "<w, mean> - b", "s": "sigma ||w||_2",
              "c": "eps ||w_S||_q (worst-case margin change)"}


def _gm_ball_form(zero_w: bool) -> Form:
    Ap, Am, c = _ph("Ap"), _ph("Am"), _ph("c", nonnegative=True)
    s = _ph("s", positive=True)
    if zero_w:
        return Form((Ap, Am, s, c), (Term(_HALF, (Interval(-oo, oo),)),), _GM_LEGEND)
    return Form((Ap, Am, s, c), (Term(_HALF, (Interval((Ap - c) / s, oo),)),
                                 Term(_HALF, (Interval((Am - c) / s, oo),))), _GM_LEGEND)


def _gm_change_form(zero_w: bool) -> Form:
    Ap, Am, c = _ph("Ap"), _ph("Am"), _ph("c", nonnegative=True)
    s = _ph("s", positive=True)
    if zero_w:
        return Form((Ap, Am, s, c), (Term(0, (Interval(-oo, oo),)),), _GM_LEGEND)
    return Form((Ap, Am, s, c), (Term(_HALF, (Interval((-c - Ap) / s, (c - Ap) / s, mid=-Ap / s, half=c / s),)),
                                 Term(_HALF, (Interval((-c + Am) / s, (c + Am) / s, mid=Am / s, half=c / s),))),
                _GM_LEGEND)


# ============================================================================================ aligned engine
_ALL = Span(-oo, oo, sympy.false, sympy.false)


def _halfline(w1_sign: int, w1: Any, relation: str, K: Any) -> Span:
    """``{delta : w1 * delta (relation) K}`` for a known sign of w1; relation in '<', '>', '>='."""
    if w1_sign == 0:
        holds = {"<": sympy.Lt(0, K), ">": sympy.Gt(0, K), ">=": sympy.Ge(0, K)}[relation]
        return Span(-oo, oo, sympy.false, sympy.false, holds)
    t = K / w1
    closed = sympy.true if relation == ">=" else sympy.false
    upper = (relation == "<") == (w1_sign > 0)  # the set is below t
    return Span(-oo, t, sympy.false, closed) if upper else Span(t, oo, closed, sympy.false)


def _variants(sign: int | None, value: Any) -> list[tuple[int, Any]]:
    if sign is not None:
        return [(sign, sympy.true)]
    return [(1, sympy.Gt(value, 0)), (-1, sympy.Lt(value, 0)), (0, sympy.Eq(value, 0))]


class _Reach:
    """How far the latent scalar can move once the discrete coordinate moved by delta: rho(delta).

    kind "const": rho = R; "l2": rho = sqrt(k) sqrt(eps^2 - delta^2); "l1": rho = eps - |delta|.
    """

    def __init__(self, kind: str, R: Any = 0, eps: Any = 0, k: Any = 0):
        self.kind, self.R, self.eps, self.k = kind, R, eps, k

    def __call__(self, delta: Any) -> Any:
        if self.kind == "const":
            return self.R
        if self.kind == "l2":
            return sympy.sqrt(self.k) * SqrtGap(self.eps, delta)  # no cancellation at delta ~ +-eps
        return self.eps - sympy.Abs(delta, evaluate=False)

    def stationary(self, a: Any) -> list[Any]:
        """Maximisers of ``a * delta + rho(delta)`` besides 0 and the interval ends."""
        if self.kind == "l2":
            return [self.eps * UnitRatio(a, self.k)]
        return []


def _pmax(*args: Any) -> Any:
    """:func:`smax` with a :class:`PreciseMax` (latent thresholds may cancel many digits; see there)."""
    return _extremum(PreciseMax, args, sympy.oo)


def _pmin(*args: Any) -> Any:
    """:func:`smin` with a :class:`PreciseMin`."""
    return _extremum(PreciseMin, args, -sympy.oo)


def _latent_events(target: int, options: list[tuple[Span, Any]], beta: Any, beta_sign: int | None, w1: Any,
                   w1_sign: int | None, s1: Any, b: Any, rho: _Reach) -> list[tuple[Any, Any, Any]]:
    """Intervals of the latent scalar S for which some allowed perturbation gives f(x') = -target and a Bayes
    label ``target`` of the projection.

    Setting: the margin is ``w1 * (s1 + delta_1) + beta * S' + b`` and the Bayes label of the projection is +1
    iff ``S' >= T``, where ``S' = S + c``, ``|c| <= rho(delta_1)`` and ``delta_1`` ranges over an option's set
    I (each option fixes the sign of the projected discrete coordinate, hence T). For fixed delta_1 the good
    S form an interval; as delta_1 varies they sweep an interval (the set is a slice of a convex set), whose
    ends are extrema of concave/convex functions of delta_1, found among the interval ends, the kinks and the
    stationary points (``candidates``).

    Returns:
        ``[(lo, hi, cond)]``: S in (lo, hi) where cond holds, one entry per option and sign case.
    """
    out = []
    for (iv, T) in options:
        for bsgn, bcond in _variants(beta_sign, beta):
            for wsgn, wcond in _variants(w1_sign, w1):
                K = -(w1 * s1 + b) - beta * T
                if bsgn < 0:
                    half = _ALL
                elif target == 1:
                    half = _halfline(wsgn, w1, "<", K)
                else:
                    half = _halfline(wsgn, w1, ">" if bsgn > 0 else ">=", K)
                ip = iv & half
                lo, hi = ip.lo, ip.hi

                def clip(t, lo=lo, hi=hi):
                    return _pmin(_pmax(t, lo), hi)

                max_rho = rho(clip(0))
                if bsgn != 0:
                    slope = -w1 / beta

                    def lin(t, bsgn=bsgn):
                        return -(w1 * (s1 + t) + b) / beta
                    kink = [(-beta * T - b) / w1 - s1] if wsgn != 0 else []
                base = [lo, hi, sympy.S.Zero]
                if bsgn == 0:
                    L, U = (T - max_rho, oo) if target == 1 else (-oo, T + max_rho)
                elif target == 1 and bsgn > 0:
                    cands = base + rho.stationary(slope)
                    L, U = T - max_rho, _pmax(*[lin(clip(t)) + rho(clip(t)) for t in cands])
                elif target == 1:
                    cands = base + kink + rho.stationary(-slope)
                    L, U = _pmin(*[_pmax(T, lin(clip(t))) - rho(clip(t)) for t in cands]), oo
                elif bsgn > 0:
                    cands = base + rho.stationary(-slope)
                    L, U = _pmin(*[lin(clip(t)) - rho(clip(t)) for t in cands]), T + max_rho
                else:
                    cands = base + kink + rho.stationary(slope)
                    L, U = -oo, _pmax(*[_pmin(T, lin(clip(t))) + rho(clip(t)) for t in cands])
                out.append((L, U, sympy.And(bcond, wcond, ip.nonempty())))
    return out


def _to_z(events: list[tuple[Any, Any, Any]], mean: Any, sd: Any) -> tuple[Interval, ...]:
    return tuple(Interval((lo - mean) / sd, (hi - mean) / sd, cond) for lo, hi, cond in events)


# ---------------------------------------------------------------------------------- Gaussian mixture, aligned
def _gm_aligned_form(definition: str, lam_sign: int | None) -> Form:
    lam, b, r = _ph("lambda"), _ph("b"), _ph("r", nonnegative=True)
    m, tau = _ph("m", positive=True), _ph("tau", positive=True)
    legend = {"lambda": "w = lambda * mean", "b": "bias", "m": "||mean||_2^2", "tau": "sigma ||mean||_2",
              "r": "eps ||mean_S||_q (reach of <mean, x>)"}
    options = [(Span(0, 0), sympy.S.Zero)]
    rho = _Reach("const", R=r)

    def ev(target):
        return _latent_events(target, options, lam, lam_sign, 0, 0, 0, b, rho)

    if definition == "projection":
        terms = (Term(_HALF, _to_z(ev(1), m, tau)), Term(_HALF, _to_z(ev(-1), -m, tau)))
    else:
        both = ev(1) + ev(-1)
        terms = (Term(_HALF, _to_z(both, m, tau)), Term(_HALF, _to_z(both, -m, tau)))
    return Form((lam, b, m, tau, r), terms, legend)


def _gm_alignment(w: Blocks, mean: Blocks) -> Any:
    """``lambda`` with ``w = lambda * mean``, or None when w is not (provably) parallel to the mean."""
    if w.is_numeric and mean.is_numeric:
        lam = float(w.dot(mean)) / float(mean.dot(mean))
        triples = w._aligned(mean)
        scale = max(max(abs(float(a)) for a, _, _ in triples), abs(lam) * max(abs(float(m)) for _, m, _ in triples),
                    1e-300)
        return lam if max(abs(float(a) - lam * float(m)) for a, m, _ in triples) <= 1e-12 * scale else None
    try:
        triples = w._aligned(mean)
    except ValueError:
        return None
    lam = None
    for a, m, _ in triples:
        if sympy.sympify(m).is_zero:
            if not sympy.sympify(a).is_zero:
                return None
            continue
        ratio = sympy.simplify(sympy.sympify(a) / m)
        if lam is None:
            lam = ratio
        elif sympy.simplify(ratio - lam) != 0:
            return None
    return 0 if lam is None else lam


# ---------------------------------------------------------------------------------- Gaussian mixture, general w
@dataclass
class _ReachProfile:
    """``g(t) = min {k_u : k in K, k_v >= t}`` for the reachable set K of ``(<w, delta>, <mean, delta>)``.

    g is convex and non-decreasing, ``+inf`` beyond ``t_max``. Linf and L1: piecewise linear through the knots
    ``(ts, gs)`` (constant ``gs[0]`` below ``ts[0]``); L2: the ellipse formula with ``l2`` = (ww, wm, mm).
    """

    eps: float
    t_max: float
    ts: np.ndarray | None = None
    gs: np.ndarray | None = None
    l2: tuple[float, float, float] | None = None

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if self.l2 is None:
            out = np.interp(t, self.ts, self.gs)
        else:
            ww, wm, mm = self.l2
            eps = self.eps
            if mm == 0:
                out = np.full(t.shape, -eps * math.sqrt(ww))
            else:
                perp = math.sqrt(max(ww - wm * wm / mm, 0.0))
                t0 = -eps * wm / math.sqrt(ww) if ww > 0 else -eps * math.sqrt(mm)
                with np.errstate(invalid="ignore"):
                    side = wm / mm * t - perp * np.sqrt(np.maximum(eps * eps - t * t / mm, 0.0))
                out = np.where(t <= t0, -eps * math.sqrt(ww), side)
        return np.where(t > self.t_max * (1 + 1e-15) + 1e-300, np.inf, out)

    def knots(self) -> np.ndarray:
        """Where g changes formula (for the quadrature's break points)."""
        if self.l2 is None:
            return np.append(self.ts, self.t_max)
        ww, wm, mm = self.l2
        t0 = -self.eps * wm / math.sqrt(ww) if ww > 0 and mm > 0 else -self.t_max
        return np.array([t0, self.t_max])

    def scalar(self, t: float) -> float:
        """g at one point (plain floats, for the quadrature)."""
        if t > self.t_max * (1 + 1e-15) + 1e-300:
            return math.inf
        if self.l2 is None:
            return float(np.interp(t, self.ts, self.gs))
        return float(self(np.array([t]))[0])


def _reach_profile(a: np.ndarray, m: np.ndarray, c: np.ndarray, norm: str, eps: float) -> _ReachProfile:
    """The profile of K for generators ``(a_i, m_i)`` of the perturbed coordinates, each with multiplicity c_i.

    Linf: a fractional knapsack (start at ``delta_i = -eps sign(a_i)``, then raise ``k_v`` through the
    coordinates in increasing order of the cost ratio ``|a_i| / |m_i|``); L1: the left chain of the polygon
    ``conv{+-eps (a_i, m_i)}``; L2: ``K`` is the ellipse of the Gram matrix of ``w_S`` and ``mean_S``.
    """
    if norm == "l2":
        ww, wm, mm = float(c @ (a * a)), float(c @ (a * m)), float(c @ (m * m))
        return _ReachProfile(eps, eps * math.sqrt(mm), l2=(ww, wm, mm))
    if norm == "linf":
        start = np.where(a != 0, -np.sign(a), np.sign(m)) * eps
        k_u0, k_v0 = float(c @ (a * start)), float(c @ (m * start))
        movable = (a != 0) & (m != 0) & (np.sign(a) == np.sign(m))
        order = np.argsort(np.abs(a[movable]) / np.abs(m[movable]), kind="stable")
        gains = (2 * eps * c[movable] * np.abs(m[movable]))[order]
        costs = (2 * eps * c[movable] * np.abs(a[movable]))[order]
        ts = k_v0 + np.concatenate([[0.0], np.cumsum(gains)])
        gs = k_u0 + np.concatenate([[0.0], np.cumsum(costs)])
        return _ReachProfile(eps, float(ts[-1]), ts, gs)
    pts = np.concatenate([np.stack([a, m], 1), -np.stack([a, m], 1)]) * eps
    pts = np.concatenate([pts, [[0.0, 0.0]]])
    heights = np.unique(pts[:, 1])
    t_max = float(heights[-1])
    hull = _hull(pts)
    gs = np.array([_polygon_min_u(hull, t) for t in heights])
    return _ReachProfile(eps, t_max, heights, gs)


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull vertices (counter-clockwise; Andrew's monotone chain; collinear inputs give a segment)."""
    p = sorted(set(map(tuple, pts.tolist())))
    if len(p) <= 2:
        return np.array(p)

    def half(points):
        out = []
        for q in points:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _polygon_min_u(hull: np.ndarray, t: float) -> float:
    """``min {u : (u, v) in conv(hull), v >= t}``: a vertex above t or a crossing of an edge with v = t."""
    best = np.inf
    above = hull[:, 1] >= t
    if above.any():
        best = float(hull[above, 0].min())
    n = len(hull)
    for i in range(n):
        (u0, v0), (u1, v1) = hull[i], hull[(i + 1) % n]
        if (v0 - t) * (v1 - t) < 0:
            best = min(best, u0 + (t - v0) * (u1 - u0) / (v1 - v0))
    return best


def _gm_general_risk(dist: GaussianMixture, clf: Linear, threat: ThreatModel | None, definition: str,
                     key: tuple[str, str, str, str]) -> Any:
    """Projection / error-region risk of a linear classifier not parallel to the mean: an exact 1-D integral.

    With ``u = <w, x>`` and ``V = <mean, x>`` (jointly Gaussian; ``u | V = v ~ N(k v, sigma_perp^2)`` with
    ``k = <w, mean>/||mean||^2`` and ``sigma_perp = sigma ||w - k mean||``), some x' in the ball has f(x') = -1
    and Bayes label +1 iff ``u < -b - g(-V)``, and f(x') = +1 with Bayes label -1 iff ``u >= -b + g(V)``, where
    g is the reach profile of K (:class:`_ReachProfile`). Integrating the conditional normal probability over
    V is one ``scipy.integrate.quad`` (split at g's knots) per class.
    """
    from scipy.integrate import quad

    if dist.is_symbolic or not clf.w.is_numeric or is_symbolic(clf.b) or (threat is not None and
                                                                         is_symbolic(threat.eps)):
        raise NotImplementedError(
            f"({key[0]}, Linear, {key[2]}, definition={definition!r}) with w not parallel to the mean is an exact "
            f"1-D integral evaluated numerically: substitute numbers for the symbols, or use tr.estimate_risk")
    dim = int(dist.dim)
    w_full, mu_full = _dense(clf.w), _dense(dist.mean)
    sigma, b = float(dist.sigma), float(clf.b)
    m = float(mu_full @ mu_full)
    k = float(w_full @ mu_full) / m
    sd_perp = sigma * _norm(w_full - k * mu_full, 2)
    tau = sigma * math.sqrt(m)
    eps = 0.0 if threat is None else float(threat.eps)
    norm = "linf" if threat is None else threat.name
    idx = list(range(dim)) if threat is None or threat.coords is None else threat.coord_indices(dim)
    if threat is None or threat.coords is None:
        triples = [(float(a), float(mm), float(cnt)) for a, mm, cnt in clf.w._aligned(dist.mean)]
        a, mv, cnt = (np.array(v) for v in zip(*triples, strict=True))
    else:
        a, mv, cnt = w_full[idx], mu_full[idx], np.ones(len(idx))
    g = _reach_profile(a, mv, cnt, norm, eps)

    inv_sqrt_2pi = 1 / math.sqrt(2 * math.pi)

    def integrand(z: float, y: int) -> float:
        v = y * m + tau * z
        phi = math.exp(-z * z / 2) * inv_sqrt_2pi
        # f(x') = -1 with Bayes label +1 reachable iff u < lo; f(x') = +1 with Bayes label -1 iff u >= hi
        lo, hi = -b - g.scalar(-v), -b + g.scalar(v)
        p_lo = float(sc.ndtr((lo - k * v) / sd_perp)) if lo > -math.inf else 0.0
        p_hi = float(sc.ndtr(-(hi - k * v) / sd_perp)) if hi < math.inf else 0.0
        if definition == "projection":
            return phi * (p_lo if y == 1 else p_hi)
        return phi if lo >= hi else phi * (p_lo + p_hi)

    total, err = 0.0, 0.0
    knots = g.knots()
    for y in (1, -1):
        breaks = np.concatenate([(-knots - y * m) / tau, (knots - y * m) / tau])
        edges = np.unique(np.clip(np.concatenate([[-40.0, 40.0], breaks[np.isfinite(breaks)]]), -40, 40))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if hi - lo <= 1e-9 * max(1.0, abs(lo)):
                # two knots a rounding apart (e.g. eps = 1e-16): quad calls such a piece "extremely bad"; the
                # integrand lies in [0, phi] there, so the midpoint value errs by at most its width / sqrt(2 pi)
                val, e = (hi - lo) * integrand(0.5 * (lo + hi), y), (hi - lo) * inv_sqrt_2pi
            else:
                val, e = quad(integrand, lo, hi, args=(y,), epsabs=1e-15, epsrel=1e-12, limit=200)
            total += 0.5 * val
            err += 0.5 * e
    total = min(max(total, 0.0), 1.0)
    from .registry import RiskResult

    event = "u < -b - g(-V)" if definition == "projection" else "u < -b - g(-V) or u >= -b + g(V)"
    formula = (f"1/2 sum_y int phi(z) P[{event} | V = y m + tau z] dz with u | V ~ N(k V, sigma_perp^2), "
               f"m = {m:.17g}, tau = {tau:.17g}, k = {k:.17g}, sigma_perp = {sd_perp:.17g}, b = {b:.17g}, "
               f"g = min {{k_u : k in K, k_v >= t}} over the reach K of (<w, delta>, <mean, delta>)")
    return RiskResult(sympy.Float(total), total, math.log(total) if total > 0 else -math.inf,
                      "exact 1-D integral (scipy.integrate.quad over the Bayes direction; absolute accuracy "
                      "~1e-13, not log space)", key,
                      {"quad_error": err, "integral": formula, "reach_profile": g})


def _rescale_extreme(clf: Linear) -> Linear:
    """The same classifier with its coefficients scaled by a power of two (exactly) when the largest of ``|w_i|``,
    ``|b|`` lies outside ``[1e-150, 1e150]``; numbers near 1 are left alone.

    ``sign(<w, x> + b)`` does not change under a positive scaling, but the forms multiply and square the
    coefficients: with subnormal ones (``w = (5e-324, 5e-324)``, ``b = 5e-324`` on ``robust_nonrobust(2)``) the ball
    risk came out 0.080 instead of 0.150 and the projection risk exceeded it.
    """
    if not clf.w.is_numeric or is_symbolic(clf.b):
        return clf
    big = max([abs(float(v)) for v, _ in clf.w.blocks] + [abs(float(clf.b))])
    if big == 0.0 or 1e-150 <= big <= 1e150:
        return clf
    e = -math.frexp(big)[1]  # ldexp scales by 2^e exactly (also from and to the subnormal range)
    return Linear(Blocks([(math.ldexp(float(v), e), c) for v, c in clf.w.blocks]), math.ldexp(float(clf.b), e))


def gaussian_linear_risk(dist: GaussianMixture, clf: Linear, threat: ThreatModel | None,
                         definition: str) -> Any:
    """The risk of ``sign(<w, x> + b)`` on ``x ~ N(y mean, sigma^2 I)`` under an Lp ball on coordinates S.

    With ``A = <w, mean>``, ``s = sigma ||w||_2`` and ``c = eps ||w_S||_q`` (q the dual exponent):

    * ball (and standard, c = 0): ``1/2 Q((A + b - c)/s) + 1/2 Q((A - b - c)/s)`` (closed form);
    * prediction-change: ``1/2 P[-c <= A + b + s Z < c] + 1/2 P[-c <= -A + b + s Z < c]`` (closed form);
    * projection and error-region (the projection is the identity; the Bayes label is ``sign(<mean, x'>)``,
      0 going to +1): closed form when ``w = lambda * mean``. The attack moves ``V = <mean, x>`` by at most
      ``r = eps ||mean_S||_q`` and the margin is ``lambda V + b``, so the event is that V lies within r of
      the set where ``sign(lambda v + b)`` and ``sign(v)`` disagree in the right direction: an interval of
      ``V ~ N(y ||mean||^2, sigma^2 ||mean||^2)``. Other w (numbers only): an exact 1-D integral over V of a
      conditional normal probability, the reach of ``(<w, x'>, <mean, x'>)`` over the ball being computed
      exactly (ellipse for L2, knapsack for Linf, polygon for L1); see ``_gm_general_risk``. Symbolic
      parameters with such w: NotImplementedError.

    ``w = 0`` is the constant classifier ``sign(b)`` (risk 1/2 under the ball definition).

    Args:
        dist: the mixture (numbers or sympy; the mean may have a symbolic dimension).
        clf: ``Linear(w, b)`` with ``w`` of shape (D,).
        threat: Linf, L2 or L1 ball (optionally on coordinates), or None for the standard risk.
        definition: "ball", "projection", "error-region" or "prediction-change".

    References:
        Tsipras et al. 2019; seed 003 (robust/non-robust features); seed 004 (dual norm); Stutz (seed 000).
    """
    key = _key(dist, clf, threat, definition)
    clf = _rescale_extreme(clf)
    if definition in ("ball", "prediction-change"):
        Ap, Am, s, c = _gm_scalars(dist, clf, threat)
        zero_w = _is_zero_vector(clf.w)
        builder = _gm_ball_form if definition == "ball" else _gm_change_form
        form = get_form(("gm", definition, zero_w), lambda: builder(zero_w))
        return form_result(form, [Ap, Am, s if not zero_w else 1, c], key, _METHOD)
    _check_dims(dist, clf)
    lam = _gm_alignment(clf.w, dist.mean)
    if lam is None:
        return _gm_general_risk(dist, clf, threat, definition, key)
    tau_unit = _l2(dist.mean)
    m = tau_unit**2
    tau = dist.sigma * tau_unit
    r = margin_reach(dist.mean, threat, dist.dim)
    lam_sign = _sign(lam)
    form = get_form(("gm-aligned", definition, lam_sign), lambda: _gm_aligned_form(definition, lam_sign))
    return form_result(form, [lam, clf.b, m, tau, r], key, _METHOD_ALIGNED, {"lambda": lam})


# ============================================================================================ Tsipras
def _split_first(w: Blocks) -> tuple[Any, list[tuple[Any, Any]]]:
    """``(w_1, blocks of w_2..w_{d+1})``."""
    (v0, c0), rest = w.blocks[0], list(w.blocks[1:])
    if not (not is_symbolic(c0) and c0 == 1):
        rest = [(v0, c0 - 1)] + rest
    return v0, rest


def _lift_tiny_gaussian_weights(clf: Linear) -> Linear:
    """The same classifier with Gaussian weights no smaller than 1e-10 of ``max(|w_1|, |b|)``.

    The projection and error-region forms compare the Gaussian part ``<w_g, x_g>`` with ``w_1 x_1 + b`` and with
    the Bayes boundary: with Gaussian weights below ~1e-16 of the others those comparisons round away (the
    risk of ``w = (1, 1e-17)``, ``b = -1`` came out 0.084 instead of 0.121) or divide by a subnormal norm (NaN).
    Scaling the Gaussian weights up to 1e-10 of the others moves every event boundary by a relative 1e-10 at most
    (exact ties ``w_1 x_1 + b = 0`` are still decided by the sign of the Gaussian part), so the value stays the
    limit of small weights to about 1e-10 absolute instead of collapsing.
    """
    if not clf.w.is_numeric or is_symbolic(clf.b):
        return clf
    w1, rest = _split_first(clf.w)
    big = max(abs(float(w1)), abs(float(clf.b)))
    small = max((abs(float(v)) for v, _ in rest), default=0.0)
    floor = 1e-10 * big
    if small == 0.0 or small >= floor:
        return clf
    # v / small (|.| <= 1) before the product: floor / small overflows for a subnormal ``small`` (5e-324)
    return Linear(Blocks([(w1, 1)] + [(float(v) / small * floor, c) for v, c in rest]), clf.b)


def _tsipras_scalars(dist: Tsipras, clf: Linear) -> tuple[Any, Any, Any, list]:
    """``(w_1, sum_j w_j, ||w_g||_2, blocks of w_g)`` over the Gaussian coordinates j = 2..d+1."""
    _check_dims(dist, clf)
    w1, rest = _split_first(clf.w)
    if clf.w.is_numeric:
        gauss = Blocks([(v, c) for v, c in rest]) if rest else None
        return w1, (float(sum(float(v) * c for v, c in rest)) if rest else 0.0), \
            (gauss.norm(2) if gauss is not None else 0.0), rest
    total = sympy.Add(*[v * c for v, c in rest])
    norm = sympy.sqrt(sympy.Add(*[v**2 * c for v, c in rest]))
    return w1, total, norm, rest


_TS_LEGEND = {"p": "P[x_1 = y]", "u1": "w_1 + b (clean margin part of x_1 = +1)",
              "u2": "-w_1 + b (clean margin part of x_1 = -1)", "G": "eta * sum_{j>=2} w_j",
              "n": "||w_2..w_{d+1}||_2", "c": "eps ||w_S||_q (worst-case margin change)"}
_TS_COMPONENTS = ((1, 1, 0), (1, -1, 1), (-1, -1, 1), (-1, 1, 0))  # (y, x_1, index of u) ; weights below


def _ts_weight(p: Any, y: int, s1: int) -> Any:
    return p / 2 if y == s1 else (1 - p) / 2


def _ts_ball_form(zero_g: bool) -> Form:
    p = _ph("p", positive=True)
    u = (_ph("u1"), _ph("u2"))
    G, c, n = _ph("G"), _ph("c", nonnegative=True), _ph("n", positive=True)
    terms = []
    for y, s1, i in _TS_COMPONENTS:
        # y = +1 errs iff u + G + n Z - c < 0; y = -1 errs iff u - G + n Z + c >= 0 (u = w_1 x_1 + b)
        if zero_g:
            cond = sympy.Lt(u[i] - c, 0) if y == 1 else sympy.Ge(u[i] + c, 0)
            terms.append(Term(_ts_weight(p, y, s1), (Interval(-oo, oo, cond),)))
        else:
            terms.append(Term(_ts_weight(p, y, s1), (Interval((y * u[i] + G - c) / n, oo),)))
    return Form((p, *u, G, n, c), tuple(terms), _TS_LEGEND)


def _ts_change_form(zero_g: bool) -> Form:
    p = _ph("p", positive=True)
    u = (_ph("u1"), _ph("u2"))
    G, c, n = _ph("G"), _ph("c", nonnegative=True), _ph("n", positive=True)
    terms = []
    for y, s1, i in _TS_COMPONENTS:
        mu = u[i] + y * G  # mean of the clean margin; the prediction changes iff -c <= margin < c
        if zero_g:
            terms.append(Term(_ts_weight(p, y, s1), (Interval(-oo, oo, sympy.And(sympy.Le(-c, mu),
                                                                                   sympy.Lt(mu, c))),)))
        else:
            terms.append(Term(_ts_weight(p, y, s1), (Interval((-c - mu) / n, (c - mu) / n, mid=-mu / n,
                                                              half=c / n),)))
    return Form((p, *u, G, n, c), tuple(terms), _TS_LEGEND)


def _ts_aligned_form(definition: str, norm: str, zero_in_s: bool, k_pos: bool, beta_sign: int | None,
                     w1_sign: int | None) -> Form:
    p, eta, d = _ph("p", positive=True), _ph("eta", positive=True), _ph("d", positive=True)
    L, w1, beta, b = _ph("L"), _ph("w1"), _ph("beta"), _ph("b")
    eps, e1, k = _ph("eps", nonnegative=True), _ph("e1", nonnegative=True), _ph("k", nonnegative=True)
    legend = {"p": "P[x_1 = y]", "L": "log(p/(1-p))", "eta": "Gaussian mean shift", "d": "number of Gaussian "
              "features", "w1": "weight of x_1", "beta": "common weight of x_2..x_{d+1}", "b": "bias",
              "eps": "radius", "e1": "how far x_1 may move (eps if coordinate 0 is in S, else 0)",
              "k": "number of Gaussian coordinates in S"}
    if not k_pos:
        rho = _Reach("const", R=0)
    elif norm == "linf":
        rho = _Reach("const", R=k * eps)
    elif norm == "l2":
        rho = _Reach("l2", eps=eps, k=k) if zero_in_s else _Reach("const", R=sympy.sqrt(k) * eps)
    else:
        rho = _Reach("l1", eps=eps) if zero_in_s else _Reach("const", R=eps)

    def T(s2):  # Bayes label of the projection is +1 iff S' >= T(sign of the projected x_1)
        return -L * s2 / (2 * eta)

    def options(s1):
        if s1 == 1:  # x_1' >= 0 keeps the projection at +1; x_1' < 0 flips it
            return [(Span(smax(-1, -e1), e1), T(1)), (Span(-e1, -1, sympy.true, sympy.false), T(-1))]
        return [(Span(-e1, smin(1, e1), sympy.true, sympy.Lt(e1, 1)), T(-1)), (Span(1, e1), T(1))]

    def ev(target, s1):
        return _latent_events(target, options(s1), beta, beta_sign, w1, w1_sign, s1, b, rho)

    comps = [(p / 2, 1, 1), ((1 - p) / 2, 1, -1), (p / 2, -1, -1), ((1 - p) / 2, -1, 1)]
    terms = []
    for weight, y, s1 in comps:
        events = ev(y, s1) if definition == "projection" else ev(1, s1) + ev(-1, s1)
        terms.append(Term(weight, _to_z(events, y * eta * d, sympy.sqrt(d))))
    return Form((p, L, eta, d, w1, beta, b, eps, e1, k), tuple(terms), legend)


def _coords_info(threat: ThreatModel | None, dim: Any) -> tuple[bool, Any]:
    """(is coordinate 0 perturbed, number k of perturbed Gaussian coordinates 1..dim-1)."""
    if threat is None:
        return False, 0
    c = threat.coords
    if not is_symbolic(dim) and c is not None:
        idx = threat.coord_indices(int(dim))
        return 0 in idx, sum(1 for i in idx if i >= 1)
    if c is None:
        return True, dim - 1
    if isinstance(c, slice):
        stop = dim if c.stop is None else c.stop
        return c.start == 0, stop - max(c.start, 1)
    return 0 in c, sum(1 for i in c if i >= 1)


def _common_weight(rest: list[tuple[Any, Any]]) -> tuple[bool, Any]:
    """Whether the Gaussian weights are all equal, and their common value."""
    values = [v for v, _ in rest]
    if all(not is_symbolic(v) for v in values):
        vals = np.array([float(v) for v in values])
        scale = max(np.max(np.abs(vals)), 1e-300)
        ok = bool(np.max(np.abs(vals - vals[0])) <= 1e-12 * scale)
        return ok, float(vals.mean()) if ok else None
    first = values[0]
    ok = all(sympy.simplify(sympy.sympify(v) - first) == 0 for v in values[1:])
    return ok, first


def tsipras_linear_risk(dist: Tsipras, clf: Linear, threat: ThreatModel | None, definition: str) -> Any:
    """The risk of ``sign(<w, x> + b)`` on the Tsipras model under an Lp ball on coordinates S.

    Condition on the label y and on ``x_1 = y`` (probability p) or ``-y``: the Gaussian part of the margin is
    ``N(y * G, n^2)`` with ``G = eta * sum_{j>=2} w_j`` and ``n = ||w_{2..d+1}||_2``. With
    ``c = eps ||w_S||_q``:

    * ball (and standard, c = 0): ``sum over (y, x_1) of P(y, x_1) Q((y (w_1 x_1 + b) + G - c) / n)``; when
      ``n = 0`` (e.g. the robust classifier ``sign(x_1)``) each term is an exact indicator, ties included
      (a zero margin predicts +1; balls are closed). Closed form.
    * prediction-change: ``P[-c <= margin < c]`` per component. Closed form.
    * projection and error-region: the projection rounds ``x_1`` to ``sign(x_1')`` (0 to +1) and keeps the
      Gaussian features, so the Bayes label of the projection is +1 iff
      ``log(p/(1-p)) sign(x_1') + 2 eta sum_j x_j' >= 0``. Moving ``x_1`` across 0 flips that label (for the
      Linf adversary with ``eps >= 2 eta`` of seed 000 this is what makes the "adversarial" examples of
      Tsipras et al. change the true label, and they are not counted). Closed form when
      ``w_2 = ... = w_{d+1} = beta`` (Bayes, ``sign(x_1)``, every classifier when d = 1): the attack acts on
      ``S = sum_j x_j ~ N(y eta d, d)`` and on ``x_1``, and the event is a union of intervals of S (see
      ``_latent_events``). Other w: NotImplementedError.

    Args:
        dist: the Tsipras distribution (p, eta numbers or sympy; d may be a symbol).
        clf: ``Linear(w, b)`` with ``w`` of shape (d + 1,) (``w[0]`` weighs ``x_1``).
        threat: Linf, L2 or L1 ball (optionally on coordinates), or None for the standard risk.
        definition: "ball", "projection", "error-region" or "prediction-change".

    References:
        Tsipras et al. 2019 (the model); Stutz (seed 000, the projection definition); seed 004 (dual norm).
    """
    key = _key(dist, clf, threat, definition)
    clf = _lift_tiny_gaussian_weights(_rescale_extreme(clf))
    w1, total, norm_g, rest = _tsipras_scalars(dist, clf)
    zero_g = all(not is_symbolic(v) and float(v) == 0.0 for v, _ in rest)
    if definition in ("ball", "prediction-change"):
        c = margin_reach(clf.w, threat, dist.dim)
        builder = _ts_ball_form if definition == "ball" else _ts_change_form
        form = get_form(("ts", definition, zero_g), lambda: builder(zero_g))
        values = [dist.p, w1 + clf.b, -w1 + clf.b, dist.eta * total, 1 if zero_g else norm_g, c]
        return form_result(form, values, key, _METHOD)
    ok, beta = _common_weight(rest)
    if not ok:
        raise NotImplementedError(
            f"no closed form registered for (Tsipras, Linear, {key[2]}, definition={definition!r}) when the "
            f"Gaussian weights w_2..w_(d+1) are not all equal (w = {clf.w}); estimate it with "
            f"tr.estimate_risk(dist, clf, threat, definition={definition!r}) instead")
    zero_in_s, k = _coords_info(threat, dist.dim)
    eps = 0 if threat is None else threat.eps
    e1 = eps if zero_in_s else 0
    norm = "linf" if threat is None else threat.name
    k_pos = bool(sympy.sympify(k).is_positive) if is_symbolic(k) else k > 0
    p = dist.p
    L = sympy.log(p / (1 - p)) if is_symbolic(p) else math.log(p / (1 - p))
    beta_sign, w1_sign = _sign(beta), _sign(w1)
    form = get_form(("ts-aligned", definition, norm, zero_in_s, k_pos, beta_sign, w1_sign),
                    lambda: _ts_aligned_form(definition, norm, zero_in_s, k_pos, beta_sign, w1_sign))
    values = [p, L, dist.eta, dist.d, w1, beta, clf.b, eps, e1, k]
    return form_result(form, values, key, _METHOD_ALIGNED, {"beta": beta})


# ============================================================================================ registrations
# Each function computes every definition by its own event (see their docstrings), with or without an adversary:
# ball and prediction-change from the worst-case margin shift; projection and error-region from the Bayes label of
# the projection, which on these supports can differ from y even at x' = x (so without an adversary they are not
# the standard risk). Where a definition has no closed form for some classifiers (Tsipras with unequal Gaussian
# weights) the function raises NotImplementedError itself.
_DEFS = ("ball", "projection", "error-region", "prediction-change")

for _threat in (None, Linf, L2, L1):
    register_risk(GaussianMixture, Linear, _threat, _DEFS)(gaussian_linear_risk)
    register_risk(Tsipras, Linear, _threat, _DEFS)(tsipras_linear_risk)
