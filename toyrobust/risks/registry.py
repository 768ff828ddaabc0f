"""The closed-form risk registry: one function per (distribution, classifier family, threat, definition).

Like ``torch.distributions.kl.register_kl``: a closed form is registered with a decorator, naming the definitions
its maths is valid for (there is no default: a formula for the ball risk does not answer the projection risk), and
dispatch picks the most specific registered match: the registration whose types are subclasses of every other
match's types, position by position. Two matches with no such order between them are an error
(:class:`AmbiguousRiskError` naming both), never a silent pick by registration order. Resolutions are memoised per
query types. A new distribution is one new module plus its registrations.

    @register_risk(Tsipras, Linear, Linf, definitions=("ball", "prediction-change"))
    def _tsipras_linear_linf(dist, clf, threat, definition) -> RiskResult: ...

``threat=None`` in a registration means the standard risk (no adversary): the point is not moved, ``x' = x``, and
each definition is evaluated there (on a distribution whose Bayes label can differ from ``y``, the projection and
error-region risks then differ from the standard risk; the prediction-change risk is 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy

from ..definitions import DEFINITIONS, check_definition
from ..registry import _same  # one rule for "the same registration" (a re-imported module's function is)

__all__ = ["RiskResult", "OptimalRisk", "AmbiguousRiskError", "register_risk", "find_risk", "registered", "risk",
           "register_optimal_risk", "find_optimal_risk"]


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

    def _repr_latex_(self) -> str:
        """Jupyter: the closed form and its value, typeset."""
        from ..display import risk_latex

        return risk_latex(self)

    def _repr_html_(self) -> str:
        """Jupyter: value, closed form, method and registry key as a table."""
        from ..display import risk_html

        return risk_html(self)


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
    (kept beside the family's closed forms, so the bounds layer keeps no list of distributions).

    A second, different function for the same family is refused (ValueError), like every registry of the package.
    """
    if not isinstance(dist_type, type):
        raise TypeError(f"dist_type must be a distribution class, got {dist_type!r}")

    def decorator(fn: OptimalFn) -> OptimalFn:
        old = _OPTIMAL.get(dist_type)
        if old is not None and not _same(old, fn):
            raise ValueError(f"the optimal risk of {dist_type.__name__} is already registered (by {_describe(old)})")
        _OPTIMAL[dist_type] = fn
        return fn

    return decorator


def find_optimal_risk(dist: Any) -> OptimalFn:
    """The most specific registered optimal-risk function, or NotImplementedError naming the distribution."""
    for cls in type(dist).__mro__:
        if cls in _OPTIMAL:
            return _OPTIMAL[cls]
    raise NotImplementedError(f"no optimal risk known for {type(dist).__name__}")


# ================================================================================================ closed forms
RiskFn = Callable[[Any, Any, Any, str], RiskResult]
Key = tuple[type, type, type | None, str]
#: the memo's entry for "no registration matches"
_MISSING = object()


class AmbiguousRiskError(RuntimeError):
    """Two registrations match a query and neither is more specific in every position: register the
    combination itself (its most specific key) to settle it."""


class _RiskTable(dict):
    """``(distribution type, classifier type, threat type or None, definition) -> closed form``.

    Refuses a different function under a key already taken; every change (a registration, a test removing or
    restoring keys) clears the memo of :func:`find_risk`, so the memo never answers from a stale table.
    """

    def __init__(self) -> None:
        super().__init__()
        #: (type(dist), type(clf), type(threat) or None, definition) -> closed form (or _MISSING)
        self.memo: dict[tuple[type, type, type | None, str], Any] = {}

    def refuse_taken(self, key: Key, fn: RiskFn) -> None:
        """ValueError when ``key`` is registered to another function than ``fn``."""
        old = dict.get(self, key, None)
        if old is not None and not _same(old, fn):
            raise ValueError(f"a closed form for {_key_name(key)} is already registered (by {_describe(old)}); "
                             f"refusing {_describe(fn)}")

    def __setitem__(self, key: Key, fn: RiskFn) -> None:
        self.refuse_taken(key, fn)
        self.memo.clear()
        dict.__setitem__(self, key, fn)

    def __delitem__(self, key: Key) -> None:
        self.memo.clear()
        dict.__delitem__(self, key)

    def pop(self, *args: Any) -> Any:
        self.memo.clear()
        return dict.pop(self, *args)

    def popitem(self) -> Any:
        self.memo.clear()
        return dict.popitem(self)

    def clear(self) -> None:
        self.memo.clear()
        dict.clear(self)

    def update(self, *args: Any, **kw: Any) -> None:
        for key, fn in dict(*args, **kw).items():
            self[key] = fn

    def setdefault(self, key: Key, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)


_REGISTRY: _RiskTable = _RiskTable()


def _describe(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{name}" if module else name


def _type_name(t: type | None) -> str:
    return "None" if t is None else t.__name__


def _key_name(key: Key) -> str:
    d, c, t, defn = key
    return f"({d.__name__}, {c.__name__}, {_type_name(t)}, definition={defn!r})"


def _check_definitions(definitions: Any) -> tuple[str, ...]:
    if isinstance(definitions, str):
        definitions = (definitions,)
    try:
        defs = tuple(definitions)
    except TypeError:
        raise TypeError(f"definitions must be a definition name or a tuple of names (from {', '.join(DEFINITIONS)}), "
                        f"got {definitions!r}") from None
    if not defs:
        raise ValueError(f"definitions must name at least one of {', '.join(DEFINITIONS)} (those the closed form "
                         f"is valid for), got {definitions!r}")
    out = []
    for d in defs:
        try:
            out.append(check_definition(d))
        except ValueError:
            raise ValueError(f"definitions must be drawn from {', '.join(DEFINITIONS)}, got {d!r} in "
                             f"{definitions!r}") from None
    return tuple(dict.fromkeys(out))


def register_risk(dist_type: type, clf_type: type, threat_type: type | None, definitions: Any):
    """Decorator registering a closed form for ``(dist_type, clf_type, threat_type)`` and each named definition.

    ``definitions`` is required: a closed form is valid for the definitions its maths covers, and the registry
    never assumes it covers the others (a definition left out is answered "no closed form", and
    ``tr.estimate_risk`` takes over). Registering a key that is already taken by a different function is refused.

    Dispatch (:func:`find_risk`) picks, among the registrations matching a query, the one at least as specific as
    every other in all three positions (subclass order); when none is, the query is ambiguous and raises
    :class:`AmbiguousRiskError` naming the competing functions.

    Args:
        dist_type: a :class:`~toyrobust.distributions.Distribution` subclass.
        clf_type: a :class:`~toyrobust.classifiers.Classifier` subclass.
        threat_type: a :class:`~toyrobust.threats.ThreatModel` subclass (the base class matches every norm), or
            None for the standard risk.
        definitions: a definition name or a tuple of names, from :data:`~toyrobust.definitions.DEFINITIONS`.

    Raises:
        TypeError: a type argument is not a class, or ``definitions`` is missing or not names.
        ValueError: ``definitions`` is empty or holds an unknown name; a key is already registered by another
            function.
    """
    for name, t in (("dist_type", dist_type), ("clf_type", clf_type), ("threat_type", threat_type)):
        if not (isinstance(t, type) or (name == "threat_type" and t is None)):
            raise TypeError(f"{name} must be a class{' or None' if name == 'threat_type' else ''}, got {t!r}")
    defs = _check_definitions(definitions)

    def decorator(fn: RiskFn) -> RiskFn:
        if not callable(fn):
            raise TypeError(f"register_risk decorates a function fn(dist, clf, threat, definition), got {fn!r}")
        keys = [(dist_type, clf_type, threat_type, d) for d in defs]
        for key in keys:  # refuse before registering any of them
            _REGISTRY.refuse_taken(key, fn)
        for key in keys:
            _REGISTRY[key] = fn
        return fn

    return decorator


def _at_least_as_specific(a: Key, b: Key) -> bool:
    """Whether registration ``a`` is at least as specific as ``b`` in every position (None only matches None)."""
    return all(x is y or (x is not None and y is not None and issubclass(x, y)) for x, y in zip(a[:3], b[:3]))


def _matches(key: Key, dist_t: type, clf_t: type, threat_t: type | None) -> bool:
    d, c, t, _ = key
    if (t is None) != (threat_t is None):
        return False
    return issubclass(dist_t, d) and issubclass(clf_t, c) and (t is None or issubclass(threat_t, t))


def _resolve(dist_t: type, clf_t: type, threat_t: type | None, definition: str) -> Any:
    """Scan every registration: the most specific match, ``_MISSING``, or AmbiguousRiskError."""
    matches = [(k, fn) for k, fn in _REGISTRY.items() if k[3] == definition and _matches(k, dist_t, clf_t, threat_t)]
    if not matches:
        return _MISSING
    best = [(k, fn) for k, fn in matches
            if not any(o != k and _at_least_as_specific(o, k) for o, _ in matches)]
    fns = list({id(fn): (k, fn) for k, fn in best}.values())
    if len(fns) > 1:
        competing = "; ".join(f"{_describe(fn)} registered for {_key_name(k)}" for k, fn in fns)
        raise AmbiguousRiskError(
            f"ambiguous closed form for ({dist_t.__name__}, {clf_t.__name__}, {_type_name(threat_t)}, "
            f"definition={definition!r}): {competing}; neither is more specific in every position, so register "
            f"the combination itself")
    return best[0][1]


def find_risk(dist: Any, clf: Any, threat: Any, definition: str) -> RiskFn:
    """The most specific registered closed form, or NotImplementedError naming the missing combination.

    The resolution is memoised per ``(type(dist), type(clf), type(threat) or None, definition)``; any change of the
    registry clears the memo.

    Raises:
        NotImplementedError: nothing registered matches.
        AmbiguousRiskError: two matching registrations, neither more specific than the other in every position.
    """
    definition = check_definition(definition)
    query = (type(dist), type(clf), None if threat is None else type(threat), definition)
    fn = _REGISTRY.memo.get(query)
    if fn is None:
        fn = _resolve(*query)
        _REGISTRY.memo[query] = fn
    if fn is _MISSING:
        threat_name = "no adversary" if threat is None else type(threat).__name__
        raise NotImplementedError(
            f"no closed form registered for ({type(dist).__name__}, {type(clf).__name__}, {threat_name}, "
            f"definition={definition!r}); estimate it with tr.estimate_risk(dist, clf, threat, "
            f"definition={definition!r}) instead"
        )
    return fn


def registered() -> list[tuple[str, str, str, str]]:
    """Names of every registered combination (distribution, classifier, threat, definition)."""
    return sorted((d.__name__, c.__name__, _type_name(t), defn) for (d, c, t, defn) in _REGISTRY)


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
    definition = check_definition(definition)
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
