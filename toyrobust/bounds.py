"""Bounds on what any classifier can reach: trade-offs, isoperimetry, optimal adversarial risks, safe radii.

* :func:`tsipras_tradeoff_bound` / :func:`check_tsipras_tradeoff`: Tsipras et al. 2019, "Robustness may be at odds
  with accuracy", Theorem 2.1.
* :func:`isoperimetric_expansion` / :func:`isoperimetric_mean_distance`: the spherical isoperimetric inequality
  (Levy) as used by Gilmer et al. 2018, "Adversarial spheres", exact through caps.
* :func:`optimal_risk`: the smallest ball-definition adversarial risk any classifier can reach, with the
  classifier reaching it (Bhagoji, Cullina, Mittal 2019, "Lower bounds on adversarial robustness from optimal
  transport"; Pydi and Jog 2020, "Adversarial risk via optimal transport and optimal couplings").
* :func:`label_invariant_radius` / :func:`distance_statistics`: seed 001's quantitative epsilon.
* :func:`bounds_report`: all of the above for one (distribution, threat), for the command line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.integrate as si
import scipy.special as sc
import sympy
import torch

from .blocks import Blocks
from .classifiers import Linear, Radial, TorchClassifier
from .constraints import is_symbolic
from .distributions import ConcentricSpheres, GaussianMixture, PointMasses, Tsipras
from .risks.caps import cap_angle, cap_fraction
from .risks.registry import OptimalRisk, find_optimal_risk, register_optimal_risk
from .risks.special import Q
from .rng import make_generator
from .threats import L2, Linf, ThreatModel

__all__ = [
    "tsipras_tradeoff_bound",
    "check_tsipras_tradeoff",
    "isoperimetric_expansion",
    "isoperimetric_mean_distance",
    "OptimalRisk",
    "optimal_risk",
    "label_invariant_radius",
    "distance_statistics",
    "bounds_report",
]

_HALF = sympy.Rational(1, 2)


def _numeric(*values: Any) -> bool:
    return not any(is_symbolic(v) for v in values)


# ------------------------------------------------------------------------------------------ Tsipras et al.
def tsipras_tradeoff_bound(p: Any, delta: Any) -> Any:
    """Tsipras et al. 2019, Theorem 2.1: the largest robust accuracy of a classifier with accuracy ``>= 1 - delta``.

    On ``Tsipras(p, eta, d)``, any classifier with standard accuracy at least ``1 - delta`` has Linf robust
    accuracy (``eps >= 2 eta``) at most ``p / (1 - p) * delta`` (capped at 1 here).

    Args:
        p: the reliability of ``x_1``, in (0, 1) (number or sympy expression).
        delta: the standard risk allowed, in [0, 1].

    Returns:
        ``min(1, p delta / (1 - p))``; a sympy expression for symbolic arguments.
    """
    if is_symbolic(p) or is_symbolic(delta):
        return sympy.Min(1, p * delta / (1 - p))
    if not 0 < float(p) < 1:
        raise ValueError(f"p must be in the open interval (0, 1), got {p!r}")
    if not 0 <= float(delta) <= 1:
        raise ValueError(f"delta must be a risk in [0, 1], got {delta!r}")
    return min(1.0, float(p) * float(delta) / (1 - float(p)))


def check_tsipras_tradeoff(dist: Tsipras, clf: Any, threat: ThreatModel) -> dict[str, Any]:
    """Check Tsipras et al.'s Theorem 2.1 for one classifier, with its analytic risks (``tr.risk``).

    Args:
        dist: a numeric :class:`~toyrobust.Tsipras`.
        clf: a classifier with registered closed forms on it (e.g. linear).
        threat: an :class:`~toyrobust.Linf` ball with ``eps >= 2 eta`` on every Gaussian coordinate.

    Returns:
        ``{"standard risk", "robust risk", "bound", "holds"}``: ``holds`` is ``1 - robust <= p/(1-p) * standard``
        (up to 1e-12).
    """
    from .risks.registry import risk

    if not isinstance(dist, Tsipras):
        raise TypeError(f"dist must be a Tsipras distribution, got {type(dist).__name__}")
    if not isinstance(threat, Linf):
        raise ValueError(f"threat must be an Linf ball (Theorem 2.1 is about Linf), got {threat!r}")
    _, k_g = dist.perturbed_coords(threat)
    if float(threat.eps) < 2 * float(dist.eta) or k_g != dist.d:
        raise ValueError(f"Theorem 2.1 needs eps >= 2 eta = {2 * float(dist.eta)} on every Gaussian coordinate, "
                         f"got {threat!r}")
    std = float(risk(dist, clf))
    rob = float(risk(dist, clf, threat))
    bound = tsipras_tradeoff_bound(dist.p, std)
    return {"standard risk": std, "robust risk": rob, "bound": bound, "holds": 1 - rob <= bound + 1e-12}


# ------------------------------------------------------------------------------------------ isoperimetry
def _angle_of(eps: np.ndarray, r: np.ndarray, metric: str) -> np.ndarray:
    """The angle moved on the sphere of radius ``r`` by a step of length ``eps`` (chordal or geodesic)."""
    if metric == "euclidean":
        return 2 * np.arcsin(np.clip(eps / (2 * r), 0.0, 1.0))
    if metric == "geodesic":
        return eps / r
    raise ValueError(f"metric must be 'euclidean' or 'geodesic', got {metric!r}")


def isoperimetric_expansion(n: Any, mu: Any, eps: Any, r: Any = 1.0, metric: str = "euclidean") -> Any:
    """The smallest possible measure of the eps-expansion of a set of measure ``mu`` on a sphere.

    Levy's spherical isoperimetric inequality: among subsets ``E`` of ``S^{n-1}(r)`` of normalised measure ``mu``,
    the expansion ``E_eps = {x : d(x, E) <= eps}`` is smallest for a cap. The cap of measure ``mu`` has angular
    radius ``theta = arccos(h(mu))``; it expands to the cap of radius ``theta + phi`` with ``phi = 2 arcsin(eps /
    (2r))`` (Euclidean distance between points of the sphere; the adversary may also leave the sphere, which only
    helps it) or ``phi = eps / r`` (geodesic). Gilmer et al. 2018, "Adversarial spheres", Section 5: a classifier
    erring on a fraction ``mu`` of the inner sphere has L2 ball-adversarial error at least this on it.

    Args:
        n: ambient dimension (integer >= 2), number or array.
        mu: error measure in [0, 1], number or array.
        eps: expansion radius >= 0, number or array.
        r: sphere radius > 0.
        metric: "euclidean" (chordal, default) or "geodesic".

    Returns:
        The measure (float or array); 0 where ``mu = 0`` (the empty set does not expand).
    """
    n_a, mu_a, eps_a, r_a = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (n, mu, eps, r)))
    if np.any(~(eps_a >= 0)) or np.any(~(r_a > 0)):
        raise ValueError(f"eps must be >= 0 and r > 0, got eps={eps!r}, r={r!r}")
    theta = np.asarray(cap_angle(n_a, mu_a), dtype=float)
    angle = np.minimum(theta + _angle_of(eps_a, r_a, metric), math.pi)
    out = np.where(mu_a > 0, np.asarray(cap_fraction(n_a, angle), dtype=float), 0.0)
    return float(out) if out.ndim == 0 else out


def isoperimetric_mean_distance(n: int, mu: float, r: float = 1.0, metric: str = "euclidean") -> float:
    """The largest possible average distance from a uniform point of a sphere to a set of measure ``mu``.

    ``E_x d(x, E) = int_0^inf (1 - mu(E_eps)) d eps``, and by isoperimetry every ``mu(E_eps)`` is at least that of
    the cap: the cap maximises the average distance (Gilmer et al. 2018, Theorem 5.1 bounds it by
    ``O(Q^{-1}(mu)/sqrt(n))``). Exact: for the cap of angular radius ``theta``, a point at angle ``psi > theta``
    from its pole is at distance ``2 r sin((psi - theta)/2)`` (``r (psi - theta)`` geodesic), and ``psi`` has
    density ``sin^{n-2}(psi) / B(1/2, (n-1)/2)``; the integral is taken with ``scipy.integrate.quad`` in log space.

    Args:
        n: ambient dimension (integer >= 2).
        mu: error measure in (0, 1].
        r: sphere radius > 0.
        metric: "euclidean" (chordal, default) or "geodesic".
    """
    if not 0 < float(mu) <= 1:
        raise ValueError(f"mu must be in (0, 1] (the distance to an empty set is infinite), got {mu!r}")
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if metric not in ("euclidean", "geodesic"):
        raise ValueError(f"metric must be 'euclidean' or 'geodesic', got {metric!r}")
    theta = float(cap_angle(n, mu))
    log_norm = sc.betaln(0.5, (n - 1) / 2)
    # integrated in t = psi - pi/2 (the angle concentrates at t = 0 within O(1/sqrt(n))): sin(psi) = cos(t), and
    # log cos(t) = log1p(-2 sin^2(t/2)) keeps full relative precision as t -> 0 where log(sin(psi)) does not (its
    # rounding, times n - 2 = 10^9, made quad report roundoff: IntegrationWarning); t - t0 is exact-ish too
    t0 = theta - math.pi / 2

    def integrand(t: float) -> float:
        half = 2 * math.sin(t / 2) ** 2  # 1 - cos(t)
        if half >= 1:
            return 0.0
        dist = 2 * r * math.sin((t - t0) / 2) if metric == "euclidean" else r * (t - t0)
        return dist * math.exp((n - 2) * math.log1p(-half) - log_norm)

    width = 8 / math.sqrt(n)
    cuts = sorted({t0, *(c for c in (-width, 0.0, width) if t0 < c < math.pi / 2), math.pi / 2})
    pieces = zip(cuts[:-1], cuts[1:], strict=True)
    total = sum(si.quad(integrand, a, b, epsabs=0, epsrel=1e-12, limit=200)[0] for a, b in pieces)
    return float(total)


# ------------------------------------------------------------------------------------------ optimal risk
def _q_parts(arg: Any, numeric: bool) -> tuple[sympy.Expr, float | None, float | None]:
    if not numeric:
        return Q(arg), None, None
    a = float(arg)
    return Q(sympy.Float(a)), float(sc.ndtr(-a)), float(sc.log_ndtr(-a))


def _key(dist: Any, threat: Any) -> tuple[str, str, str, str]:
    return (type(dist).__name__, "optimal", "None" if threat is None else type(threat).__name__, "ball")


def _pos(v: Any) -> Any:
    return sympy.Max(v, 0) if is_symbolic(v) else max(float(v), 0.0)


def _sqrt(v: Any) -> Any:
    return sympy.sqrt(v) if is_symbolic(v) else math.sqrt(float(v))


def _blocks_add(a: Blocks, b: Blocks) -> Blocks:
    return Blocks((x + y, c) for x, y, c in a._aligned(b))


def _l1_ball_distance(values: np.ndarray, counts: np.ndarray, eps: float) -> tuple[float, float]:
    """``(distance, theta)`` from a vector (blocks of ``|values|`` repeated ``counts``) to the L1 ball of radius eps.

    The projection shrinks every entry by ``theta`` (clipped at 0) with ``sum (|v| - theta)_+ = eps`` (Duchi et al.
    2008), so the distance is ``sqrt(sum min(|v|, theta)^2)``.
    """
    a = np.abs(values)
    if float(np.sum(a * counts)) <= eps:
        return 0.0, 0.0  # the mean is inside the ball: z* = mean
    order = np.argsort(-a)
    a, counts = a[order], counts[order]
    cum_n, cum_s = np.cumsum(counts), np.cumsum(a * counts)
    theta = 0.0
    for j in range(len(a)):
        t = (cum_s[j] - eps) / cum_n[j]
        nxt = a[j + 1] if j + 1 < len(a) else 0.0
        if t >= nxt:
            theta = t
            break
    return float(math.sqrt(np.sum(counts * np.minimum(a, theta) ** 2))), theta


def _soft_threshold(v: Any, eps: Any) -> Any:
    """``sign(v) (|v| - eps)_+``, written without ``sign`` when the sign of ``v`` is known."""
    if not (is_symbolic(v) or is_symbolic(eps)):
        return math.copysign(max(abs(float(v)) - float(eps), 0.0), float(v))
    v = sympy.sympify(v)
    if v.is_nonnegative:
        return sympy.Max(v - eps, 0)
    if v.is_nonpositive:
        return -sympy.Max(-v - eps, 0)
    return sympy.sign(v) * sympy.Max(sympy.Abs(v) - eps, 0)


@register_optimal_risk(GaussianMixture)
def _gaussian_optimal(dist: GaussianMixture, threat: Any) -> OptimalRisk:
    mean, sigma = dist.mean, dist.sigma
    key = _key(dist, threat)
    if threat is None or (not is_symbolic(threat.eps) and float(threat.eps) == 0):
        s = mean.norm(2)
        w = mean
        method = "closed form (the Bayes risk Q(||mean||/sigma))"
    else:
        eps = threat.eps
        if threat.coords is not None and not isinstance(threat.coords, slice) and mean.is_numeric:
            threat.coord_indices(int(mean.dim))
        inside, outside = mean.restrict(threat.coords)
        out2 = outside.norm(2) ** 2
        if isinstance(threat, Linf):
            soft = inside.map(lambda v: _soft_threshold(v, eps))
            shrunk = inside.map(lambda v: sympy.Max(sympy.Abs(v) - eps, 0) if is_symbolic(v) or is_symbolic(eps)
                                else max(abs(float(v)) - float(eps), 0.0))
            s = _sqrt(out2 + shrunk.norm(2) ** 2)
        elif isinstance(threat, L2):
            n_in = inside.norm(2)
            scale = (sympy.Max(1 - eps / n_in, 0) if is_symbolic(n_in) or is_symbolic(eps)
                     else (max(1 - float(eps) / n_in, 0.0) if n_in > 0 else 0.0))
            soft = inside * scale
            s = _sqrt(out2 + _pos(n_in - eps) ** 2)
        else:
            if not inside.is_numeric or is_symbolic(eps):
                raise NotImplementedError("the optimal L1 risk of a Gaussian mixture needs numeric parameters "
                                          "(the L1-ball projection sorts the entries)")
            vals = np.array([float(v) for v, _ in inside.blocks])
            cnts = np.array([float(c) for _, c in inside.blocks])
            dist_in, theta = _l1_ball_distance(vals, cnts, float(eps))
            # z* shrinks every entry by theta, so mean - z* clips every entry at theta
            soft = inside.map(lambda v: math.copysign(min(abs(float(v)), theta), float(v)))
            s = math.sqrt(float(out2) + dist_in**2)
        if threat.coords is None:
            w = soft
        else:
            try:
                w = _blocks_add(soft, outside)
            except ValueError:  # symbolic block sizes that do not line up
                w = None
        method = ("closed form Q(dist_2(mean, eps-ball)/sigma): the translation lower bound met by the linear "
                  "classifier sign(<mean - z*, x>) (Bhagoji et al. 2019)")
    numeric = _numeric(s, sigma)
    expr, value, lv = _q_parts(s / sigma, numeric)
    clf = Linear(w, 0) if w is not None else None
    return OptimalRisk(expr, value, lv, method, key, {"distance": s}, clf)


#: largest dimension for which a dense optimal classifier is built (the risk itself needs no vector)
_DENSE_LIMIT = 10**7


def _tsipras_shifted_mean(dist: Tsipras, threat: Any, shrink: Any) -> np.ndarray:
    """The Gaussian mean ``eta 1`` moved to the nearest point of the threat's ball (shape (d,), numeric)."""
    mu = np.full(int(dist.d), float(dist.eta))
    if threat is not None:
        idx = [i - 1 for i in threat.coord_indices(int(dist.d) + 1) if i >= 1]
        mu[idx] = float(shrink)
    return mu


class _TsiprasOptimal:
    """``sign(2 <mu', x_{2..}> + log(p/(1-p)) sign(x_1))`` (sign(0) = +1): optimal while x_1 cannot change sign."""

    def __init__(self, mu: np.ndarray, log_odds: float):
        self.mu, self.log_odds = mu, log_odds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mu = torch.as_tensor(self.mu, dtype=x.dtype, device=x.device)
        s = torch.where(x[:, 0] >= 0, 1.0, -1.0).to(x.dtype)
        return 2 * x[:, 1:] @ mu + self.log_odds * s


@register_optimal_risk(Tsipras)
def _tsipras_optimal(dist: Tsipras, threat: Any) -> OptimalRisk:
    p, eta, d = dist.p, dist.eta, dist.d
    key = _key(dist, threat)
    eps = 0 if threat is None else threat.eps
    x1_in, k_g = (False, d) if threat is None else dist.perturbed_coords(threat)
    free = d - k_g
    # squared distance from the Gaussian mean eta*1 to the threat's ball on the perturbed Gaussian coordinates
    if threat is None or isinstance(threat, Linf):
        s2, shrink = k_g * _pos(eta - eps) ** 2 + free * eta**2, _pos(eta - eps)
    elif isinstance(threat, L2):
        s2 = _pos(_sqrt(k_g) * eta - eps) ** 2 + free * eta**2
        shrink = _pos(eta - eps / _sqrt(k_g)) if not _numeric(k_g) or k_g > 0 else eta
    else:
        shrink = _pos(eta - eps / k_g) if not _numeric(k_g) or k_g > 0 else eta
        s2 = k_g * shrink**2 + free * eta**2
    s = _sqrt(s2)
    log_odds = sympy.log(p / (1 - p)) if is_symbolic(p) else math.log(p / (1 - p))
    numeric = _numeric(p, eta, d, eps, s)
    # with x_1 pinned (eps < 1 or x_1 not perturbed) the two slices x_1 = +-1 are separate unequal-prior Gaussian
    # problems; with eps >= 1 an Linf adversary can move every x_1 to 0, leaving the Gaussian part alone
    pinned = _decide(sympy.Lt(eps, 1)) if x1_in else True
    if pinned is not True and not isinstance(threat, Linf):
        raise NotImplementedError(
            f"no exact optimal risk for Tsipras under {type(threat).__name__} unless eps < 1 or x_1 is not perturbed "
            f"(got eps = {eps}): moving x_1 to 0 and shifting the Gaussian features share one budget, so the optimal "
            f"coupling has no closed form")
    # the optimal classifier is a dense vector: built for dimensions that fit in memory, the value for any dimension
    mu = _tsipras_shifted_mean(dist, threat, shrink) if numeric and int(d) <= _DENSE_LIMIT else None
    free_x1 = "Q(s): x_1 moved to 0 by the adversary, the Gaussian part shifted by eps, met by a linear classifier"
    slices = ("p Q(s + L/2s) + (1-p) Q(s - L/2s), L = log(p/(1-p)): per x_1-slice unequal-prior Gaussian problems, "
              "translation lower bound met by sign(2<mu', x> + L sign(x_1))")
    if pinned is False:
        expr, value, lv = _q_parts(s, numeric)
        clf = None if mu is None else Linear(np.concatenate([[0.0], mu]), 0.0)
        return OptimalRisk(expr, value, lv, "closed form " + free_x1, key, {"distance": s}, clf)
    if numeric:
        sf = float(s)
        if sf == 0:
            expr, value, lv = sympy.Float(1 - p), 1 - float(p), math.log1p(-float(p))
        else:
            a_plus, a_minus = sf + log_odds / (2 * sf), sf - log_odds / (2 * sf)
            expr = p * Q(sympy.Float(a_plus)) + (1 - p) * Q(sympy.Float(a_minus))
            lv = float(np.logaddexp(math.log(p) + sc.log_ndtr(-a_plus), math.log1p(-p) + sc.log_ndtr(-a_minus)))
            value = math.exp(lv)
        clf = TorchClassifier(_TsiprasOptimal(mu, log_odds), dim=d + 1) if mu is not None else None
        return OptimalRisk(expr, value, lv, "closed form " + slices, key, {"distance": s}, clf)
    a_plus, a_minus = s + log_odds / (2 * s), s - log_odds / (2 * s)
    expr = sympy.Piecewise((1 - p, sympy.Eq(s, 0)), (p * Q(a_plus) + (1 - p) * Q(a_minus), True))
    method = "closed form " + slices
    if pinned is None:  # Linf with a symbolic eps: both regimes
        expr = sympy.Piecewise((expr, sympy.Lt(eps, 1)), (Q(s), True))
        method += "; for eps >= 1, " + free_x1
    return OptimalRisk(expr, None, None, method, key, {"distance": s}, None)


def _decide(cond: Any) -> bool | None:
    cond = sympy.sympify(cond)
    return True if cond is sympy.true else False if cond is sympy.false else None


def _threshold_result(dist, threat, safe_below: Any, half_from: Any, robust_clf, method: str,
                      constant_clf: Any = None) -> OptimalRisk:
    """0 when ``eps < safe_below`` (``robust_clf`` is robust), 1/2 when ``eps >= half_from`` (reached by
    ``constant_clf``, default the constant +1 linear rule); otherwise unknown."""
    eps = threat.eps
    key = _key(dist, threat)
    safe, half = _decide(sympy.Lt(eps, safe_below)), _decide(sympy.Ge(eps, half_from))
    if safe is True:
        return OptimalRisk(sympy.Integer(0), 0.0, -math.inf, method, key, {}, robust_clf)
    if half is True:
        return OptimalRisk(_HALF, 0.5, math.log(0.5), method, key, {},
                           constant_clf if constant_clf is not None else Linear([0.0], 1.0))
    if sympy.simplify(sympy.sympify(safe_below) - half_from) == 0:
        expr = sympy.Piecewise((0, sympy.Lt(eps, safe_below)), (_HALF, True))
        return OptimalRisk(expr, None, None, method, key, {}, None)
    raise NotImplementedError(
        f"the optimal {type(threat).__name__} risk on {dist!r} at eps = {eps} lies in [0, 1/2] and has no closed form "
        f"here (0 below eps = {safe_below}, 1/2 from eps = {half_from})")


@register_optimal_risk(PointMasses)
def _point_masses_optimal(dist: PointMasses, threat: Any) -> OptimalRisk:
    gap = dist.gap
    bayes = Linear([-1.0], gap / 2)
    if threat is None:
        return OptimalRisk(sympy.Integer(0), 0.0, -math.inf, "exact (separable)", _key(dist, threat), {}, bayes)
    threat.coord_indices(1)  # in 1-D the only coordinate is 0
    return _threshold_result(dist, threat, gap / 2, gap / 2, bayes,
                             "exact: 0 below gap/2 (max-margin threshold), 1/2 from gap/2 (closed balls meet)")


@register_optimal_risk(ConcentricSpheres)
def _spheres_optimal(dist: ConcentricSpheres, threat: Any) -> OptimalRisk:
    bayes = dist.bayes_classifier()
    if threat is None:
        return OptimalRisk(sympy.Integer(0), 0.0, -math.inf, "exact (separable)", _key(dist, threat), {}, bayes)
    n = dist.dim
    k = threat.n_free(n)
    full = (sympy.sympify(k) - n).is_zero is True
    half_gap = (dist.r_outer - dist.r_inner) / 2
    root_k = sympy.sqrt(k) if is_symbolic(k) else math.sqrt(k)
    root_n = sympy.sqrt(n) if is_symbolic(n) else math.sqrt(n)
    safe = half_gap / root_k if isinstance(threat, Linf) else half_gap
    half = (half_gap if isinstance(threat, (L2, Linf)) else half_gap * root_n) if full else sympy.oo
    return _threshold_result(dist, threat, safe, half, bayes,
                             "exact: Radial(r_mid) is robust below the safe radius; at and beyond (r2 - r1)/2 in "
                             "L2 every inner point meets the outer point in its direction on the middle sphere",
                             constant_clf=Radial(0.0))


def optimal_risk(dist: Any, threat: Any = None) -> OptimalRisk:
    """The smallest ball-definition adversarial risk any classifier can reach, and a classifier reaching it.

    ``R*(eps) = inf_f P[exists x' in B_eps(x): f(x') != y]``. Lower bounds come from couplings of the two classes
    (a point of each class within ``2 eps`` of each other: one of them is lost; Pydi and Jog 2020) or from
    translating each class toward the other; the upper bounds are explicit classifiers. What is exact:

    * ``PointMasses(gap)``: 0 for ``eps < gap/2`` (the max-margin threshold), else 1/2 (the two closed balls share
      the point ``gap/2``; a constant classifier reaches 1/2). Every norm (1-D).
    * ``GaussianMixture(mean, sigma)``: ``Q(dist_2(mean, B)/sigma)`` with ``B`` the threat's eps-ball (Bhagoji et
      al. 2019): L2 ``(||mean_S|| - eps)_+``, Linf the soft-thresholded mean ``||(|mean_S| - eps)_+||``, L1 through
      the L1-ball projection (numeric). Reached by ``sign(<mean - z*, x>)``, ``z*`` the nearest point of ``B``.
    * ``Tsipras(p, eta, d)``: with ``x_1`` pinned (``eps < 1`` or ``x_1`` unperturbed), ``p Q(s + L/(2s)) + (1-p)
      Q(s - L/(2s))`` with ``L = log(p/(1-p))`` and ``s`` the distance from ``eta 1`` to the ball on the Gaussian
      coordinates (``1 - p`` when ``s = 0``, e.g. Linf with ``eps >= eta``, so Theorem 2.1's ``eps >= 2 eta`` regime
      gives ``1 - p``, reached by ``sign(x_1)``); Linf with ``eps >= 1``: ``Q(s)``. L2/L1 with ``eps >= 1`` and
      ``x_1`` perturbed: NotImplementedError.
    * ``ConcentricSpheres``: 0 while the Bayes classifier ``Radial(r_mid)`` is robust (L2 ``eps < (r2 - r1)/2``,
      Linf ``eps sqrt(k) < (r2 - r1)/2``), 1/2 once an L2 ball of radius ``(r2 - r1)/2`` fits in the threat's ball
      (every inner point and the outer point in its direction reach one point of the middle sphere); in between
      (Linf, L1, or part of the coordinates) NotImplementedError.

    ``threat=None`` (or eps = 0) gives the Bayes risk.

    Args:
        dist: a distribution (numbers or sympy symbols).
        threat: a threat model or None.

    Returns:
        An :class:`OptimalRisk` (``float(result)``, ``.expr``, ``.classifier``).
    """
    if threat is not None and not isinstance(threat, ThreatModel):
        raise TypeError(f"threat must be a ThreatModel or None, got {type(threat).__name__}")
    return find_optimal_risk(dist)(dist, threat)


# ------------------------------------------------------------------------------------------ seed 001
def _norm_p(norm: Any) -> tuple[float, Any]:
    """``(p, coords)`` from "l1"/"l2"/"linf", 1/2/inf, or a ThreatModel (its norm and coordinates)."""
    if isinstance(norm, ThreatModel):
        return norm.p, norm.coords
    table = {"l1": 1, "l2": 2, "linf": math.inf, 1: 1, 2: 2, math.inf: math.inf}
    key = norm.lower() if isinstance(norm, str) else norm
    if key not in table:
        raise ValueError(f"norm must be 'l1', 'l2', 'linf', 1, 2, inf or a ThreatModel, got {norm!r}")
    return table[key], None


def label_invariant_radius(dist: Any, norm: Any = "l2") -> Any:
    """Seed 001's quantitative epsilon: the largest eps for which no support point can change its projected label.

    The supremum of the eps such that, for every support point ``x`` and every ``x'`` in its eps-ball, the Bayes
    label of the projection ``pi(x')`` equals that of ``x`` (balls of any smaller radius are safe; at the radius
    itself ties may already change the label):

    * point masses: ``gap/2`` (every norm: 1-D);
    * concentric spheres: ``(r2 - r1)/2`` in L2 and L1, ``(r2 - r1)/(2 sqrt(k))`` in Linf on ``k`` coordinates
      (the diagonal direction reaches furthest);
    * Gaussian mixtures: 0 (the classes overlap: points next to the Bayes boundary cross it), infinite if the
      mean vanishes on the perturbed coordinates; Tsipras: 0 if a Gaussian coordinate is perturbed, else 1 (only
      ``x_1`` moves, and it keeps its sign below 1).

    Args:
        dist: a distribution.
        norm: "l1", "l2", "linf" (or 1, 2, inf), or a ThreatModel whose norm and coordinates are used.
    """
    p, coords = _norm_p(norm)
    return dist.label_invariant_radius(p, coords)


def distance_statistics(dist: Any, n: int = 2000, generator: Any = 0, norm: Any = "l2",
                        chunk_elements: int = 1 << 22) -> dict[str, float]:
    """Within- and between-class nearest-neighbour distances of a sample (seed 001's MNIST distance analysis).

    Draws ``n`` labelled points and, for each, the distance to its nearest other point of the same class and of the
    other class, plus the mean pairwise distances within and between classes. Distances are computed with
    ``torch.cdist`` on blocks of rows so that at most ``chunk_elements`` distances are held at once (memory bounded
    for any ``n``). Half the smallest between-class distance is an empirical upper estimate of
    :func:`label_invariant_radius`.

    Args:
        dist: a numeric distribution.
        n: number of sampled points (>= 4).
        generator: a ``torch.Generator`` or an int seed (the sample's device is the generator's).
        norm: "l1", "l2" or "linf" (or 1, 2, inf).
        chunk_elements: the most pairwise distances held in memory at once.

    Returns:
        ``within_nn_{min,median,mean}``, ``between_nn_{min,median,mean}``, ``within_mean``, ``between_mean`` and
        ``empirical_radius`` (half the smallest between-class distance).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) or chunk_elements < 1:
        raise ValueError(f"chunk_elements must be a positive integer, got {chunk_elements!r}")
    p, _ = _norm_p(norm)
    gen = make_generator(generator)
    x, y = dist.sample(n, generator=gen, dtype=torch.float64)
    rows = max(1, chunk_elements // n)
    within = torch.empty(n, dtype=x.dtype, device=x.device)
    between = torch.empty(n, dtype=x.dtype, device=x.device)
    sums = torch.zeros(2, dtype=x.dtype, device=x.device)
    counts = torch.zeros(2, dtype=x.dtype, device=x.device)
    inf = torch.tensor(math.inf, dtype=x.dtype, device=x.device)
    for i in range(0, n, rows):
        block = torch.cdist(x[i:i + rows], x, p=p)
        same = y[i:i + rows, None] == y[None, :]
        idx = torch.arange(i, min(i + rows, n), device=x.device)
        self_mask = torch.zeros_like(same)
        self_mask[torch.arange(len(idx), device=x.device), idx] = True
        w_mask = same & ~self_mask
        within[i:i + rows] = torch.where(w_mask, block, inf).amin(dim=1)
        between[i:i + rows] = torch.where(~same, block, inf).amin(dim=1)
        sums += torch.stack([(block * w_mask).sum(), (block * ~same).sum()])
        counts += torch.stack([w_mask.sum(), (~same).sum()]).to(x.dtype)
    stats = {}
    for name, v in (("within_nn", within), ("between_nn", between)):
        v = v[torch.isfinite(v)]
        stats[f"{name}_min"] = float(v.min()) if v.numel() else math.inf
        stats[f"{name}_median"] = float(v.median()) if v.numel() else math.inf
        stats[f"{name}_mean"] = float(v.mean()) if v.numel() else math.inf
    stats["within_mean"] = float(sums[0] / counts[0]) if counts[0] > 0 else math.nan
    stats["between_mean"] = float(sums[1] / counts[1]) if counts[1] > 0 else math.nan
    stats["empirical_radius"] = stats["between_nn_min"] / 2
    return stats


# ------------------------------------------------------------------------------------------ report
def bounds_report(dist: Any, threat: Any = None, *, mu: float = 0.01) -> dict[str, str | float]:
    """Everything :mod:`toyrobust.bounds` knows about ``(dist, threat)``, as printable name/value pairs.

    Args:
        dist: a distribution.
        threat: a threat model or None.
        mu: for the spheres, the error measure on the inner sphere used for the isoperimetric lines.

    Returns:
        An ordered dict: label-invariant radius, optimal risk (value, closed form, method, classifier), and per
        distribution the Tsipras trade-off bound or the isoperimetric expansion and mean distance.
    """
    out: dict[str, str | float] = {"distribution": repr(dist), "threat": repr(threat)}
    norm = threat if threat is not None else "l2"
    try:
        r = label_invariant_radius(dist, norm)
        out["label-invariant radius"] = float(r) if _numeric(r) else str(r)
    except (NotImplementedError, TypeError) as err:
        out["label-invariant radius"] = f"unknown ({err})"
    try:
        opt = optimal_risk(dist, threat)
        out["optimal risk"] = float(opt.value) if opt.value is not None else str(opt.expr)
        out["optimal risk (closed form)"] = str(opt.expr)
        out["optimal risk (latex)"] = opt.latex()
        out["optimal risk method"] = opt.method
        out["optimal classifier"] = repr(opt.classifier)
    except NotImplementedError as err:
        out["optimal risk"] = f"no closed form ({err})"
    if isinstance(dist, Tsipras):
        p = dist.p
        out["Tsipras Theorem 2.1"] = (f"accuracy >= 1 - delta implies Linf robust accuracy <= {p}/(1 - {p}) * delta "
                                      f"for eps >= 2 eta = {2 * dist.eta}")
        if _numeric(p):
            out["Tsipras bound at delta = 0.01"] = tsipras_tradeoff_bound(p, 0.01)
    if isinstance(dist, ConcentricSpheres) and not dist.is_symbolic:
        n, r1 = int(dist.dim), float(dist.r_inner)
        out["isoperimetric: error measure mu"] = mu
        out["isoperimetric: cap angle (rad)"] = float(cap_angle(n, mu))
        if isinstance(threat, L2) and threat.coords is None:
            out["isoperimetric: smallest L2 eps-expansion on the inner sphere"] = isoperimetric_expansion(
                n, mu, float(threat.eps), r1)
        out["isoperimetric: largest mean distance to the error set"] = isoperimetric_mean_distance(n, mu, r1)
    return out
