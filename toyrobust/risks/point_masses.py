"""Exact risks of 1-D thresholds on the two point masses (Stutz, seed 000), under all four definitions.

The data are ``x = 0`` (label +1) and ``x = gap`` (label -1), each with probability 1/2. A threshold is
``Linear([w], b)``: it predicts +1 iff ``w x + b >= 0`` (ties go to +1), so ``w < 0`` is "x <= -b/|w| means +1"
and ``w > 0`` the other orientation; ``w = 0`` is the constant classifier ``sign(b)``. In one dimension every
Lp ball is the closed interval ``[x - eps, x + eps]``. The projection sends ``x'`` to the nearer point, the
midpoint to 0, so the Bayes label of the projection is +1 iff ``x' <= gap/2``.

Each risk is ``1/2 [event at 0] + 1/2 [event at gap]``, and every event has the form "some x' in an interval
(with open or closed ends) has ``w x' + b < 0``" (or ``>= 0``): exact, ties and interval ends included.
"""

from __future__ import annotations

from typing import Any

import sympy

from ..classifiers import Linear
from ..distributions import PointMasses
from ..threats import L1, L2, Linf, ThreatModel
from .numeric import Form, Interval, Span, Term, form_result, get_form
from .registry import register_risk

__all__ = ["point_masses_risk"]

oo = sympy.oo


def _exists_negative(w: Any, b: Any, span: Span) -> Any:
    """Some x in the span has ``w x + b < 0`` (the infimum is below 0; open ends do not matter)."""
    return sympy.And(span.nonempty(), sympy.Or(
        sympy.And(sympy.Gt(w, 0), sympy.Lt(w * span.lo + b, 0)),
        sympy.And(sympy.Lt(w, 0), sympy.Lt(w * span.hi + b, 0)),
        sympy.And(sympy.Eq(w, 0), sympy.Lt(b, 0))))


def _exists_nonnegative(w: Any, b: Any, span: Span) -> Any:
    """Some x in the span has ``w x + b >= 0`` (the supremum must be attained at a closed end, or exceed 0)."""
    def at(end, closed):
        value = w * end + b
        return sympy.Or(sympy.And(closed, sympy.Ge(value, 0)), sympy.And(sympy.Not(closed), sympy.Gt(value, 0)))

    return sympy.And(span.nonempty(), sympy.Or(
        sympy.And(sympy.Gt(w, 0), at(span.hi, span.hi_closed)),
        sympy.And(sympy.Lt(w, 0), at(span.lo, span.lo_closed)),
        sympy.And(sympy.Eq(w, 0), sympy.Ge(b, 0))))


def _point_masses_form(definition: str) -> Form:
    gap = sympy.Symbol("gap", positive=True, finite=True)
    w, b = sympy.Symbol("w", real=True, finite=True), sympy.Symbol("b", real=True, finite=True)
    eps = sympy.Symbol("eps", nonnegative=True, finite=True)
    ball0, ballg = Span(-eps, eps), Span(gap - eps, gap + eps)
    left = Span(-oo, gap / 2, sympy.false, sympy.true)  # Bayes label of the projection +1 (midpoint included)
    right = Span(gap / 2, oo, sympy.false, sympy.false)  # Bayes label -1
    if definition == "ball":
        at0, atg = _exists_negative(w, b, ball0), _exists_nonnegative(w, b, ballg)
    elif definition == "projection":
        at0, atg = _exists_negative(w, b, ball0 & left), _exists_nonnegative(w, b, ballg & right)
    elif definition == "error-region":
        at0 = sympy.Or(_exists_negative(w, b, ball0 & left), _exists_nonnegative(w, b, ball0 & right))
        atg = sympy.Or(_exists_nonnegative(w, b, ballg & right), _exists_negative(w, b, ballg & left))
    else:  # prediction-change: the prediction at the clean point is +1 iff its margin is >= 0
        def change(x0, ball):
            m0 = w * x0 + b
            return sympy.Or(sympy.And(sympy.Ge(m0, 0), _exists_negative(w, b, ball)),
                            sympy.And(sympy.Lt(m0, 0), _exists_nonnegative(w, b, ball)))

        at0, atg = change(0, ball0), change(gap, ballg)
    terms = (Term(sympy.S.Half, (Interval(-oo, oo, at0),)), Term(sympy.S.Half, (Interval(-oo, oo, atg),)))
    legend = {"gap": "distance between the points", "w": "threshold weight", "b": "threshold bias",
              "eps": "radius"}
    return Form((gap, w, b, eps), terms, legend)


def point_masses_risk(dist: PointMasses, clf: Linear, threat: ThreatModel | None, definition: str) -> Any:
    """The exact risk of the threshold ``Linear([w], b)`` on the point masses ``{0: +1, gap: -1}``.

    Maths (each bracket is 1 or 0; ``B(x) = [x - eps, x + eps]``, ``L = (-oo, gap/2]``, ``R = (gap/2, oo)``):

    * ball: ``1/2 [b - eps|w| < 0] + 1/2 [w gap + b + eps|w| >= 0]``;
    * projection: ``1/2 [exists x' in B(0) n L: w x' + b < 0] + 1/2 [exists x' in B(gap) n R: w x' + b >= 0]``;
    * error-region: at each point, some ``x'`` in its ball with ``f(x') != Bayes(pi(x'))`` (the first event or
      the mirror event on the other half-line);
    * prediction-change: ``1/2 [-eps|w| <= b < eps|w|] + 1/2 [-eps|w| <= w gap + b < eps|w|]``.

    Seed 000's claims follow: no threshold classifying both points correctly has ball risk below 1/2 once
    ``eps >= gap``, and the max-margin threshold ``Linear([-1], gap/2)`` has projection risk 0 for every eps.

    Args:
        dist: the point masses (gap a number or a sympy symbol).
        clf: a threshold ``Linear([w], b)`` (w, b numbers or sympy).
        threat: any Lp ball (they coincide in 1-D), or None for the standard risk.
        definition: "ball", "projection", "error-region" or "prediction-change".

    References:
        D. Stutz, "Towards a definition for adversarial examples" (seed 000).
    """
    if clf.dim != 1:
        raise ValueError(f"clf must be a 1-D threshold Linear([w], b) on the point masses, got w = {clf.w}")
    if threat is not None:
        threat.coord_indices(1)  # a ball on no valid coordinate is an error, not "no attack"
    (w, _), = clf.w.blocks
    eps = 0 if threat is None else threat.eps
    key = (type(dist).__name__, type(clf).__name__, "None" if threat is None else type(threat).__name__,
           definition)
    form = get_form(("point-masses", definition), lambda: _point_masses_form(definition))
    return form_result(form, [dist.gap, w, clf.b, eps], key, "exact (indicator events, ties included)")


# every definition is its own indicator event (_point_masses_form), with or without an adversary
for _threat in (None, Linf, L2, L1):
    register_risk(PointMasses, Linear, _threat, ("ball", "projection", "error-region", "prediction-change"))(
        point_masses_risk)
