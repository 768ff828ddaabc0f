"""The closed-form risk registry: one function per (distribution, classifier family, threat, definition).

Like ``torch.distributions.kl.register_kl``: a closed form is registered with a decorator and dispatch picks the
most specific registered match along the classes' method resolution orders. A new distribution is one new module
plus its registrations.

    @register_risk(Tsipras, Linear, Linf, definitions=("ball",))
    def _tsipras_linear_linf(dist, clf, threat, definition) -> RiskResult: ...

``threat=None`` in a registration means the standard risk (no adversary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy

from ..definitions import DEFINITIONS, check_definition

__all__ = ["RiskResult", "OptimalRisk", "register_risk", "find_risk", "registered", "risk", "register_optimal_risk",
           "find_optimal_risk"]


@dataclass(frozen=True)
class RiskResult:
    """An analytic risk: its closed form, its value, and how it was obtained.

    Attributes:
        expr: the risk as a sympy expression of the parameters (numbers substituted where they were numbers).
        value: the risk as a float, computed with scipy special functions (log space for tails), or None when
            some parameter is symbolic.
        log_value: ``log(value)`` computed without underflow (accurate down to 1e-300 and beyond), or None.
        method: how it was obtained, e.g. ``"closed form"`` or ``"exact 1-D integral (scipy.integrate.quad)"``.
        key: the registry key ``(distribution, classifier, threat, definition)`` names that produced it.
        details: extra named quantities (e.g. the worst-case margin drop) for reports.
    """

    expr: sympy.Expr
    value: float | None
    log_value: float | None
    method: str
    key: tuple[str, str, str, str]
    details: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        if self.value is None:
            raise TypeError(f"the risk is symbolic ({self.expr}); substitute numbers for its symbols first")
        return float(self.value)

    def latex(self) -> str:
        """The closed form in LaTeX."""
        return sympy.latex(self.expr)

    def __repr__(self) -> str:
        shown = self.expr if self.value is None else f"{self.value:.6g}"
        return f"RiskResult({shown}, method={self.method!r})"


@dataclass(frozen=True, repr=False)
class OptimalRisk(RiskResult):
    """The smallest ball-definition adversarial risk any classifier can reach (a :class:`RiskResult`).

    Attributes:
        classifier: a classifier reaching it, or None where none is known or the parameters are symbolic.
    """

    classifier: Any = None


OptimalFn = Callable[[Any, Any], OptimalRisk]
_OPTIMAL: dict[type, OptimalFn] = {}


def register_optimal_risk(dist_type: type):
    """Decorator registering ``fn(dist, threat) -> OptimalRisk``, the optimal risk of a distribution family
    (kept beside the family's closed forms, so the bounds layer keeps no list of distributions)."""

    def decorator(fn: OptimalFn) -> OptimalFn:
        _OPTIMAL[dist_type] = fn
        return fn

    return decorator


def find_optimal_risk(dist: Any) -> OptimalFn:
    """The most specific registered optimal-risk function, or NotImplementedError naming the distribution."""
    for cls in type(dist).__mro__:
        if cls in _OPTIMAL:
            return _OPTIMAL[cls]
    raise NotImplementedError(f"no optimal risk known for {type(dist).__name__}")


RiskFn = Callable[[Any, Any, Any, str], RiskResult]
_REGISTRY: dict[tuple[type, type, type | None, str], RiskFn] = {}


def register_risk(dist_type: type, clf_type: type, threat_type: type | None, definitions: Any = DEFINITIONS):
    """Decorator registering a closed form for ``(dist_type, clf_type, threat_type)`` and each definition.

    Args:
        dist_type: a :class:`~toyrobust.distributions.Distribution` subclass.
        clf_type: a :class:`~toyrobust.classifiers.Classifier` subclass.
        threat_type: a :class:`~toyrobust.threats.ThreatModel` subclass (the base class matches every norm), or
            None for the standard risk.
        definitions: a definition name or a tuple of names.
    """
    defs = (definitions,) if isinstance(definitions, str) else tuple(definitions)
    for d in defs:
        check_definition(d)

    def decorator(fn: RiskFn) -> RiskFn:
        for d in defs:
            _REGISTRY[(dist_type, clf_type, threat_type, d)] = fn
        return fn

    return decorator


def _distance(obj: Any, cls: type | None) -> int | None:
    if cls is None:
        return 0 if obj is None else None
    if obj is None or not isinstance(obj, cls):
        return None
    return type(obj).__mro__.index(cls)


def find_risk(dist: Any, clf: Any, threat: Any, definition: str) -> RiskFn:
    """The most specific registered closed form, or NotImplementedError naming the missing combination."""
    best, best_score = None, None
    for (dt, ct, tt, d), fn in _REGISTRY.items():
        if d != definition:
            continue
        scores = (_distance(dist, dt), _distance(clf, ct), _distance(threat, tt))
        if None in scores:
            continue
        if best_score is None or scores < best_score:
            best, best_score = fn, scores
    if best is None:
        threat_name = "no adversary" if threat is None else type(threat).__name__
        raise NotImplementedError(
            f"no closed form registered for ({type(dist).__name__}, {type(clf).__name__}, {threat_name}, "
            f"definition={definition!r}); estimate it with tr.estimate_risk(dist, clf, threat, "
            f"definition={definition!r}) instead"
        )
    return best


def registered() -> list[tuple[str, str, str, str]]:
    """Names of every registered combination (distribution, classifier, threat, definition)."""
    return sorted((d.__name__, c.__name__, "None" if t is None else t.__name__, defn)
                  for (d, c, t, defn) in _REGISTRY)


def risk(dist: Any, clf: Any, threat: Any = None, definition: str = "ball") -> RiskResult:
    """The analytic risk of ``clf`` on ``dist`` against ``threat`` under ``definition``.

    ``threat=None`` is the standard risk ``P[f(x) != y]`` (the definition is then irrelevant for "ball"). With a
    threat, the risk is ``P[exists x' in B(x): x' is adversarial under definition]``.

    Args:
        dist: a distribution (numeric or symbolic parameters).
        clf: a classifier.
        threat: a threat model, or None.
        definition: "ball", "projection", "error-region" or "prediction-change".

    Raises:
        TypeError: ``threat`` is not a ThreatModel or None (e.g. a spec string), or ``clf`` is not a classifier.
        NotImplementedError: no closed form is registered for this combination (use ``tr.estimate_risk``); for a
            torch model with an analytic twin (``LinearModel``, ``QuadraticNet``) the message points to ``.twin()``.
    """
    check_definition(definition)
    _check_query(clf, threat)
    return find_risk(dist, clf, threat, definition)(dist, clf, threat, definition)


def _check_query(clf: Any, threat: Any) -> None:
    """Refuse, with what is expected, a threat that is not a ThreatModel and a torch model in place of an analytic
    classifier (pointing to its analytic twin when it has one)."""
    from ..classifiers import Classifier, TorchClassifier
    from ..threats import ThreatModel

    if threat is not None and not isinstance(threat, ThreatModel):
        hint = f"; toyrobust.threats.make_threat({threat!r}) parses a spec" if isinstance(threat, str) else ""
        raise TypeError(f"threat must be a ThreatModel such as tr.Linf(0.3) (or tr.L2, tr.L1), or None for the "
                        f"standard risk; got {threat!r} of type {type(threat).__name__}{hint}")
    if isinstance(clf, TorchClassifier):  # a wrapped torch model: judge the model itself
        clf = clf.module
    if not isinstance(clf, Classifier):
        if callable(getattr(clf, "twin", None)):
            raise NotImplementedError(
                f"no closed form for the torch model {type(clf).__name__}: tr.risk needs an analytic classifier; "
                f"its analytic twin is model.twin() (or estimate the risk with tr.estimate_risk(dist, model, ...))")
        if callable(clf):
            raise NotImplementedError(
                f"no closed form for the callable {type(clf).__name__}: tr.risk needs an analytic classifier "
                f"(tr.Linear, tr.Radial, tr.Quadratic, dist.bayes_classifier()); estimate it with tr.estimate_risk")
        raise TypeError(f"clf must be a toyrobust classifier (tr.Linear, tr.Radial, tr.Quadratic, ...), got "
                        f"{clf!r} of type {type(clf).__name__}")
