"""Exact risks on an empirical sample: finite averages over its points, each point decided exactly.

The risk of a classifier on :class:`~toyrobust.distributions.EmpiricalDistribution` is ``k / n``, with ``k`` the
sample points that have a qualifying point in their ball:

* no adversary: the definition evaluated at the clean points (any numeric classifier);
* a linear classifier, ball and prediction-change: the closed form of the margin, ``min_{ball} y (<w, x'> + b) =
  y (<w, x> + b) - eps ||w||_q`` (Hoelder; seed 004);
* the 1-NN classifier (any definition) and a linear classifier under the projection and error-region definitions:
  each Voronoi cell of the sample decided exactly in the ball (least-distance problems for L2, linear programs
  for Linf and L1; :mod:`toyrobust.distributions._cells`), for the L2 nearest-sample projection and samples of at
  most 64 distinct points. Under the projection and error-region definitions the 1-NN classifier is
  ``Bayes(proj(x))`` itself, so those risks are 0.
"""

from __future__ import annotations

import sympy
import torch

from ..classifiers import Linear
from ..definitions import DEFINITIONS, is_adversarial
from ..distributions.empirical import EmpiricalDistribution, NearestSample
from ..threats import ThreatModel
from .registry import RiskResult, register_risk

__all__ = ["empirical_risk"]


def _result(dist: EmpiricalDistribution, k: int, clf: object, threat: object, definition: str,
            method: str) -> RiskResult:
    value = k / dist.n
    expr = sympy.Rational(k, dist.n)
    key = (type(dist).__name__, type(clf).__name__, "None" if threat is None else type(threat).__name__, definition)
    return RiskResult(expr=expr, value=value, log_value=float(sympy.log(expr)) if k else -float("inf"),
                      method=method, key=key, details={"k": k, "n": dist.n})


def _numeric(clf: object) -> None:
    if isinstance(clf, Linear) and (not clf.w.is_numeric or isinstance(clf.b, sympy.Basic)):
        raise NotImplementedError("the risk on an empirical sample needs a numeric classifier; substitute numbers")


@register_risk(EmpiricalDistribution, Linear, None, definitions=DEFINITIONS)
@register_risk(EmpiricalDistribution, NearestSample, None, definitions=DEFINITIONS)
def _clean_risk(dist: EmpiricalDistribution, clf: object, threat: None, definition: str) -> RiskResult:
    _numeric(clf)
    X, y = dist._data("cpu", torch.float64)
    k = int(is_adversarial(definition, clf, X, y, dist=dist, x=X).sum())
    return _result(dist, k, clf, threat, definition, "exact count over the sample (no adversary)")


@register_risk(EmpiricalDistribution, Linear, ThreatModel, definitions=DEFINITIONS)
@register_risk(EmpiricalDistribution, NearestSample, ThreatModel, definitions=DEFINITIONS)
def empirical_risk(dist: EmpiricalDistribution, clf: object, threat: ThreatModel, definition: str) -> RiskResult:
    """The exact adversarial risk on the sample (see the module docstring)."""
    _numeric(clf)
    threat.radius  # noqa: B018  (a symbolic eps has no numeric count)
    if isinstance(clf, Linear) and definition in ("ball", "prediction-change"):
        X, y = dist._data("cpu", torch.float64)
        w = clf.w.to_tensor("cpu", torch.float64)
        if threat.coords is not None:
            w = w * threat.mask(dist.dim, dtype=torch.float64)
        reach = float(threat.radius) * float(torch.linalg.vector_norm(w, ord=_dual(threat.p)))
        m = X @ clf.w.to_tensor("cpu", torch.float64) + float(clf.b)
        ref = y if definition == "ball" else torch.where(m >= 0, 1, -1)
        k = int(torch.where(ref == 1, m - reach < 0, m + reach >= 0).sum())
        return _result(dist, k, clf, threat, definition, "exact count over the sample (linear margin, Hoelder)")
    if not dist.supports_exact_attack(clf, threat, definition):
        raise NotImplementedError(
            f"no exact {definition} risk for {type(clf).__name__} on {dist!r} with {threat!r}: the cell-by-cell "
            f"decision needs the L2 projection, a ball on every coordinate and at most 64 distinct points; estimate it "
            f"with tr.estimate_risk(dist, clf, threat, {definition!r}, attack='pgd')")
    k = int(dist.vulnerable(clf, threat, definition).sum())
    return _result(dist, k, clf, threat, definition, "exact count over the sample (Voronoi cells decided exactly)")


def _dual(p: float) -> float:
    return {1: float("inf"), 2: 2.0}.get(p, 1.0)
