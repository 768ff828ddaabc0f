"""Exact risks of linear classifiers parallel to theta on Schmidt et al.'s Bernoulli model: binomial tails.

Write a sample as ``x_i = y theta_i z_i`` with ``z_i = +1`` w.p. ``q = (1 + tau)/2``, and ``S = sum_i z_i = 2K - d``
with ``K ~ Binomial(d, q)``. For ``w = c theta`` (``c > 0``) the margin is ``m(x) = c y S + b``, and an Lp ball of
radius eps on the coordinates ``S_c`` (``k`` of them) lowers or raises it by at most
``delta = eps c ||theta_{S_c}||_q*`` (``k``, ``sqrt(k)``, 1 for Linf, L2, L1), attained in the closed ball. With the
toolkit's tie rule (a zero margin predicts +1):

* ball: ``1/2 P(c S + b - delta < 0) + 1/2 P(c S - b - delta <= 0)``;
* prediction-change: ``1/2 P(-delta <= c S + b < delta) + 1/2 P(-delta <= -c S + b < delta)``;
* projection and error-region, for ``eps < 1``: no coordinate of a vertex can reach 0, so the projection of every
  point of the ball is the clean vertex and its Bayes label is ``sign(y S)`` (``S = 0`` gives +1): the events
  above intersected with ``{S >= 0}`` (``y = +1``) or ``{S > 0}`` (``y = -1``), and for error-region the label
  compared with is the Bayes label of the vertex.

One meaning of exact on the lattice: every event is decided on the *real* margin ``c S + b`` (and shift
``delta``) of the classifier's numbers as stored -- ``c = 0.1`` is the double nearest 0.1, so ``c (-5) + 0.5`` is
``-2.8e-17``, a -1, not a tie -- in rational arithmetic (:func:`_predicates`). The floating-point margin
``x @ w + b`` cannot serve: it rounds such a level to 0 or to an ulp either way depending on the order of the sum,
so points of one level K would get both labels. :meth:`toyrobust.classifiers.Linear.predict` decides near-ties
exactly, so the Monte Carlo estimate (exact attack and standard risk) counts the same events. With a ball, a float
attack point can realise these events except where ``c S + b -+ delta`` is within rounding of 0 without being 0
(parameters that are not dyadic, e.g. ``eps = 0.1`` with ``c = 0.1``); with dyadic parameters they coincide.

Every event is ``{lo <= K <= hi}`` with integer ends from ``floor``/``ceiling``, so each risk is exact: a sum of
:class:`BinomialProb` terms, evaluated in log space (scipy's binomial CDF where it is representable, a summed
tail series of log-pmf terms below 1e-280).

Reference: L. Schmidt et al., "Adversarially robust generalization requires more data", NeurIPS 2018, Sec. 2.2.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy
from scipy import special as sc
from scipy import stats

from ..classifiers import Linear
from ..constraints import is_symbolic
from ..distributions.bernoulli import BernoulliModel
from ..threats import L1, L2, Linf, ThreatModel
from .registry import RiskResult, register_risk
from .special import prec_to_dps, register_numeric

__all__ = ["BinomialProb", "log_binomial_interval", "bernoulli_linear_risk"]

_TINY = 1e-280


def _log_tail_series(k: int, n: int, q: float, upper: bool) -> float:
    """``log P(K <= k)`` (or ``log P(K >= k)`` when ``upper``) by summing log-pmf terms away from ``k``; used deep
    in a tail, where consecutive terms shrink at least geometrically."""
    total, start, step = -math.inf, k, 256
    while True:
        js = np.arange(start, start + step) if upper else np.arange(start, start - step, -1)
        js = js[(js >= 0) & (js <= n)]
        if js.size == 0:
            return total
        terms = stats.binom.logpmf(js, n, q)
        total = float(np.logaddexp(total, sc.logsumexp(terms)))
        if terms[-1] < total - 45:  # the rest is below e^-45 of the sum
            return total
        start = int(js[-1]) + (1 if upper else -1)


def _log_cdf(k: float, n: int, q: float) -> float:
    """``log P(K <= k)`` for ``K ~ Binomial(n, q)``."""
    if k < 0:
        return -math.inf
    if k >= n:
        return 0.0
    v = float(stats.binom.cdf(k, n, q))
    return math.log(v) if v > _TINY else _log_tail_series(int(k), n, q, upper=False)


def _log_sf_from(k: float, n: int, q: float) -> float:
    """``log P(K >= k)``."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    v = float(stats.binom.sf(k - 1, n, q))
    return math.log(v) if v > _TINY else _log_tail_series(int(k), n, q, upper=True)


def log_binomial_interval(lo: Any, hi: Any, n: Any, q: Any) -> float:
    """``log P(lo <= K <= hi)`` for ``K ~ Binomial(n, q)``, without underflow or cancellation in the tails.

    Args:
        lo, hi: integer ends (inclusive; +-inf allowed).
        n: number of trials (integer >= 0).
        q: success probability in [0, 1].
    """
    lo, hi, n, q = float(lo), float(hi), int(n), float(q)
    lo, hi = max(lo, 0.0), min(hi, float(n))
    if lo > hi:
        return -math.inf
    if q >= 1.0 or q <= 0.0:
        k = n if q >= 1.0 else 0
        return 0.0 if lo <= k <= hi else -math.inf
    mean = n * q
    if hi < mean:  # the lower side: P(K <= hi) - P(K <= lo - 1)
        top, bottom = _log_cdf(hi, n, q), _log_cdf(lo - 1, n, q)
    elif lo > mean:  # the upper side: P(K >= lo) - P(K >= hi + 1)
        top, bottom = _log_sf_from(lo, n, q), _log_sf_from(hi + 1, n, q)
    else:  # the bulk: 1 - P(K <= lo - 1) - P(K >= hi + 1)
        out = math.exp(_log_cdf(lo - 1, n, q)) + math.exp(_log_sf_from(hi + 1, n, q))
        return math.log1p(-out) if out < 1 else -math.inf
    if bottom == -math.inf:
        return top
    return top + math.log1p(-math.exp(min(bottom - top, 0.0))) if bottom < top else -math.inf


@register_numeric("BinomialProb")
def _binomial_prob_numeric(lo: Any, hi: Any, n: Any, q: Any) -> np.ndarray:
    fn = np.vectorize(lambda a, b, m, p: math.exp(log_binomial_interval(a, b, m, p)), otypes=[float])
    return fn(lo, hi, n, q)


class BinomialProb(sympy.Function):
    """``P(lo <= K <= hi)`` for ``K ~ Binomial(n, q)`` (integer ends), kept unevaluated like ``Q``: ``evalf`` sums
    the binomial terms with mpmath at the requested precision (up to 5000 terms; beyond, the double-precision
    :func:`log_binomial_interval`), lambdify uses :func:`log_binomial_interval`."""

    @classmethod
    def eval(cls, lo, hi, n, q):
        if all(a.is_Number for a in (lo, hi, n)) and (lo > hi or lo > n or hi < 0):
            return sympy.Integer(0)
        if all(a.is_Number for a in (lo, hi, n)) and lo <= 0 and hi >= n:
            return sympy.Integer(1)
        return None

    def _eval_evalf(self, prec):
        lo, hi, n, q = self.args
        if not all(a.is_Number for a in (lo, hi, n, q)):
            return None
        with mpmath.workdps(prec_to_dps(prec) + 10):
            n_i = int(n)
            lo_i = 0 if lo == -sympy.oo else max(int(sympy.ceiling(lo)), 0)
            hi_i = n_i if hi == sympy.oo else min(int(sympy.floor(hi)), n_i)
            if hi_i - lo_i > 5000:  # too many terms to sum: the double-precision log-space evaluation
                return sympy.Float(math.exp(log_binomial_interval(lo_i, hi_i, n_i, float(q))), 15)
            qq = mpmath.mpf(str(sympy.Float(q, prec_to_dps(prec) + 10)))
            total = mpmath.fsum(mpmath.binomial(n_i, k) * qq**k * (1 - qq) ** (n_i - k) for k in range(lo_i, hi_i + 1))
            return sympy.Float(total, prec_to_dps(prec))

    def _eval_is_real(self):
        return True

    def _latex(self, printer, exp=None):
        lo, hi, n, q = (printer._print(a) for a in self.args)
        out = rf"P_{{K \sim \mathrm{{Bin}}({n}, {q})}}\left[{lo} \le K \le {hi}\right]"
        return out if exp is None else rf"\left({out}\right)^{{{exp}}}"


# ------------------------------------------------------------------------------------------ the closed forms
def _parallel_scale(dist: BernoulliModel, clf: Linear) -> Any:
    """``c > 0`` with ``w = c theta``; NotImplementedError for any other direction."""
    w, theta = clf.w, dist.theta
    if not (is_symbolic(w.dim) or is_symbolic(theta.dim)) and w.dim != theta.dim:
        raise ValueError(f"the classifier has dimension {w.dim}, the distribution {theta.dim}")
    c = None
    for wi, ti, _ in w._aligned(theta):
        ratio = sympy.simplify(sympy.sympify(wi) / ti)
        if c is None:
            c = ratio
        elif sympy.simplify(ratio - c) != 0:
            c = None
            break
    if c is not None and sympy.sympify(c).is_positive is None:
        # the Bayes direction: c = log(q / (1 - q)) > 0 because the constraint on tau keeps q in (1/2, 1)
        if sympy.simplify(c - sympy.log(dist.q / (1 - dist.q))) == 0:
            return c
    if c is None or sympy.sympify(c).is_positive is not True:
        raise NotImplementedError(
            f"closed forms on the Bernoulli model are known for classifiers w = c theta with c > 0 only, got "
            f"{clf!r}; estimate it with tr.estimate_risk")
    return float(c) if sympy.sympify(c).is_Number else c


def _shift(dist: BernoulliModel, clf_c: Any, threat: ThreatModel | None) -> Any:
    """``delta = eps c ||theta_S||_dual``: the largest change of the margin in the ball."""
    if threat is None:
        return 0
    k = threat.n_free(dist.d)
    if isinstance(threat, Linf):
        dual = k
    elif isinstance(threat, L2):
        dual = sympy.sqrt(k) if is_symbolic(k) else math.sqrt(k)
    elif isinstance(threat, L1):
        dual = sympy.Piecewise((1, sympy.Ge(k, 1)), (0, True)) if is_symbolic(k) else (1 if k >= 1 else 0)
    else:
        raise NotImplementedError(f"no Bernoulli closed form for the threat {threat!r}")
    return threat.eps * clf_c * dual


def _floor(v: Any) -> Any:
    return sympy.floor(v) if is_symbolic(v) else math.floor(v)


def _ceil(v: Any) -> Any:
    return sympy.ceiling(v) if is_symbolic(v) else math.ceil(v)


def _k_of(dist: BernoulliModel, s: Any) -> Any:
    """The value of K at which ``S = 2K - d`` equals ``s``."""
    return (dist.d + s) / 2


def _halves(dist: BernoulliModel) -> tuple[Any, Any]:
    """``ceil(d/2)`` and ``floor(d/2)``: the smallest K with ``S >= 0`` and the largest with ``S <= 0``."""
    half = sympy.Rational(1, 2) * dist.d if is_symbolic(dist.d) else dist.d / 2
    return _ceil(half), _floor(half)


# Each event list gives, per class and per Bayes label of the clean vertex, the K-interval (lo, hi) (inclusive)
# where a point of the ball qualifies; each is weighted 1/2. y = +1: m = c S + b; y = -1: m = -c S + b.
def _pos_wrong(dist: BernoulliModel, c: Any, b: Any, delta: Any) -> Any:
    return _ceil(_k_of(dist, (delta - b) / c)) - 1  # largest K with c S + b - delta < 0


def _neg_wrong(dist: BernoulliModel, c: Any, b: Any, delta: Any) -> Any:
    return _floor(_k_of(dist, (delta + b) / c))  # largest K with -c S + b + delta >= 0


def _ball_events(dist, c, b, delta):
    return [(-sympy.oo, _pos_wrong(dist, c, b, delta)), (-sympy.oo, _neg_wrong(dist, c, b, delta))]


def _change_events(dist, c, b, delta):
    # -delta <= m < delta for each class
    return [(_ceil(_k_of(dist, (-delta - b) / c)), _ceil(_k_of(dist, (delta - b) / c)) - 1),
            (_floor(_k_of(dist, (b - delta) / c)) + 1, _floor(_k_of(dist, (b + delta) / c)))]


def _projection_events(dist, c, b, delta):
    # the clean vertex keeps the Bayes label y: S >= 0 (y = +1), S > 0 (y = -1)
    up, down = _halves(dist)
    return [(up, _pos_wrong(dist, c, b, delta)), (down + 1, _neg_wrong(dist, c, b, delta))]


def _error_region_events(dist, c, b, delta):
    # f(x') differs from the Bayes label of the clean vertex
    up, down = _halves(dist)
    return [(up, _pos_wrong(dist, c, b, delta)),                         # y = +1, Bayes +1
            (_ceil(_k_of(dist, -(b + delta) / c)), up - 1),              # y = +1, Bayes -1
            (_floor(_k_of(dist, (b - delta) / c)) + 1, down),            # y = -1, Bayes +1
            (down + 1, _neg_wrong(dist, c, b, delta))]                   # y = -1, Bayes -1


_EVENTS = {"ball": _ball_events, "prediction-change": _change_events, "projection": _projection_events,
           "error-region": _error_region_events}


def _exact_shift(dist: BernoulliModel, c: float, threat: ThreatModel | None) -> tuple[Fraction, int]:
    """``delta = eps c ||theta_S||_dual`` as ``(e, r)`` with ``delta = e sqrt(r)`` exactly (``e`` a fraction of the
    stored numbers eps and c; ``r`` = 1, or the number of free coordinates for L2)."""
    if threat is None:
        return Fraction(0), 1
    k = int(threat.n_free(dist.d))
    e = Fraction(float(threat.eps)) * Fraction(c)
    if isinstance(threat, Linf):
        return e * k, 1
    if isinstance(threat, L2):
        return e, k
    return (e if k >= 1 else Fraction(0)), 1


def _sign_shifted(a: Fraction, s: int, shift: tuple[Fraction, int]) -> int:
    """The exact sign of ``a + s e sqrt(r)`` (``s`` = +-1, ``e >= 0``), without rounding the square root."""
    e, r = shift
    if e == 0 or r == 0:
        return (a > 0) - (a < 0)
    if s > 0 and a >= 0 or s < 0 and a <= 0:
        return s  # both terms on one side, the shift non-zero
    gap = a * a - e * e * r  # |a| against e sqrt(r)
    return ((gap > 0) - (gap < 0)) * (1 if a > 0 else -1)


def _predicates(definition: str, d: int, c: float, b: float, shift: tuple[Fraction, int]) -> list[Any]:
    """The same events as predicates of K, decided in exact rational arithmetic of the classifier's stored numbers.

    One meaning of exact on the lattice: the margin of a vertex with K agreeing coordinates is the real number
    ``c (2K - d) + b`` for the weights and bias as stored (``c = 0.1`` is the double nearest 0.1, so
    ``5 c - 0.5`` is ``2.8e-17``, not a tie), and the ball moves it by exactly ``delta = e sqrt(r)``
    (:func:`_exact_shift`): the events are decided on these reals, a zero margin predicting +1. This is what
    :meth:`toyrobust.classifiers.Linear.predict` decides (its float margin ``x @ w + b`` could round such a tie
    either way, depending on the order of the sum, so it decides near-ties exactly), hence what the exact attack
    and the Monte Carlo estimate count. The floor/ceiling ends of the events are computed in floats first; these
    predicates settle them (:func:`_polish`)."""
    cf, bf = Fraction(c), Fraction(b)

    def mp(k):  # margin of a y = +1 point with K agreeing coordinates
        return cf * (2 * k - d) + bf

    def mn(k):  # margin of a y = -1 point
        return -cf * (2 * k - d) + bf

    def lt(a, s):  # a + s delta < 0
        return _sign_shifted(a, s, shift) < 0

    def ge(a, s):  # a + s delta >= 0
        return _sign_shifted(a, s, shift) >= 0

    def s(k):
        return 2 * k - d

    table = {
        "ball": [lambda k: lt(mp(k), -1), lambda k: ge(mn(k), 1)],
        "prediction-change": [lambda k: lt(mp(k), -1) if mp(k) >= 0 else ge(mp(k), 1),
                              lambda k: lt(mn(k), -1) if mn(k) >= 0 else ge(mn(k), 1)],
        "projection": [lambda k: s(k) >= 0 and lt(mp(k), -1), lambda k: s(k) > 0 and ge(mn(k), 1)],
        "error-region": [lambda k: s(k) >= 0 and lt(mp(k), -1), lambda k: s(k) < 0 and ge(mp(k), 1),
                         lambda k: s(k) <= 0 and lt(mn(k), -1), lambda k: s(k) > 0 and ge(mn(k), 1)],
    }
    return table[definition]


def _polish(lo: float, hi: float, d: int, inside: Any) -> tuple[int, int]:
    """Clamp ``[lo, hi]`` to ``[0, d]`` and move each end by at most a few steps until ``inside`` holds at the ends
    and fails just beyond them (each event is an interval of K; an empty result has ``lo > hi``)."""
    lo = int(min(max(lo, 0), d + 1))
    hi = int(min(max(hi, -1), d))
    if hi < lo:  # an empty guess: look for a member next to it
        near = [k for k in range(min(lo, hi) - 3, max(lo, hi) + 4) if 0 <= k <= d and inside(k)]
        if not near:
            return lo, hi
        lo = hi = near[0]
    for _ in range(4):
        if hi + 1 <= d and inside(hi + 1):
            hi += 1
        elif hi >= lo and not inside(hi):
            hi -= 1
        if lo - 1 >= 0 and inside(lo - 1):
            lo -= 1
        elif lo <= hi and not inside(lo):
            lo += 1
    return lo, hi


def bernoulli_linear_risk(dist: BernoulliModel, clf: Linear, threat: ThreatModel | None,
                          definition: str) -> RiskResult:
    """The exact risk of ``sign(c <theta, x> + b)`` (c > 0) on the Bernoulli model (see the module docstring).

    Args:
        dist: a Bernoulli model (numbers or symbols; theta must be numeric where the dimension is).
        clf: a linear classifier parallel to theta.
        threat: Linf, L2 or L1 ball (optionally on part of the coordinates), or None.
        definition: one of the four definitions; projection and error-region need ``eps < 1``.
    """
    c = _parallel_scale(dist, clf)
    b = clf.b
    delta = _shift(dist, c, threat)
    if definition in ("projection", "error-region") and threat is not None:
        below = sympy.Lt(threat.eps, 1)
        if below is not sympy.true:
            raise NotImplementedError(
                f"the {definition} risk on the Bernoulli model is known in closed form for eps < 1 (no coordinate "
                f"can reach 0, so the projection is the clean vertex), got eps = {threat.eps}; estimate it with "
                f"tr.estimate_risk")
    pieces = _EVENTS[definition](dist, c, b, delta)
    key = (type(dist).__name__, type(clf).__name__, "None" if threat is None else type(threat).__name__, definition)
    n, q = dist.d, dist.q
    method = "exact (binomial tails of K ~ Bin(d, (1 + tau)/2), log space)"
    numeric = not any(is_symbolic(v) for v in (n, q, b, delta, c))
    if numeric:
        inside = _predicates(definition, int(n), float(c), float(b), _exact_shift(dist, float(c), threat))
        pieces = [_polish(lo, hi, int(n), ok) for (lo, hi), ok in zip(pieces, inside, strict=True)]
    half = sympy.Rational(1, 2)
    expr = sympy.Add(*[half * BinomialProb(sympy.sympify(lo), sympy.sympify(hi), n, q) for lo, hi in pieces])
    if not numeric:
        return RiskResult(expr, None, None, method, key, {"pieces": pieces})
    logs = [log_binomial_interval(lo, hi, n, q) for lo, hi in pieces]
    log_value = float(sc.logsumexp(logs)) + math.log(0.5) if max(logs) > -math.inf else -math.inf
    return RiskResult(expr, math.exp(log_value), log_value, method, key, {"pieces": pieces})


# exactly the definitions with an event list above (projection and error-region raise NotImplementedError for eps >= 1)
register_risk(BernoulliModel, Linear, None, tuple(_EVENTS))(bernoulli_linear_risk)
register_risk(BernoulliModel, Linear, ThreatModel, tuple(_EVENTS))(bernoulli_linear_risk)
