"""Closed forms as Gaussian set probabilities: one sympy form per structure, lambdified once, evaluated in log space.

Every closed-form risk of this package on the point masses, the Tsipras model and Gaussian mixtures is a
non-negative combination of standard normal set probabilities,

    risk = sum_k c_k * P[Z in U_k],    U_k = union of the intervals (lo_ki, hi_ki) whose condition holds,

with ``c_k``, ``lo_ki``, ``hi_ki`` and the conditions sympy expressions of a few scalar summaries of the problem
(``<w, mean>``, ``||w||_2``, ``eps * ||w_S||_q``, ...). A :class:`Form` holds those expressions on placeholder
symbols. It is built once per structure (cached), lambdified once, and then

* with numbers: evaluated by scipy in log space (``log_ndtr``; disjoint pieces added with ``logaddexp``), so
  risks down to 1e-300 and below keep full relative accuracy, in microseconds;
* with sympy parameters: the placeholders are replaced by the actual expressions, giving the symbolic result.

:func:`risk_function` turns a symbolic risk into a vectorised numeric function of its symbols for grids.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from .special import (
    NormalSetProb,
    Q,
    lambdify,
    log_normal_interval,
    log_normal_interval_mid,
    log_normal_set_prob,
    merge_intervals,
)

__all__ = ["Interval", "Span", "Term", "smax", "smin", "Form", "get_form", "form_result", "risk_function", "is_number"]


def is_number(value: Any) -> bool:
    """True for python/numpy numbers and sympy numbers (not for symbolic expressions)."""
    if isinstance(value, sympy.Basic):
        return bool(value.is_Number) or value in (sympy.oo, -sympy.oo)
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Interval:
    """The interval ``(lo, hi)`` of a standard normal Z, counted only where ``cond`` holds (empty if lo >= hi).

    ``mid`` and ``half`` (optional, ``lo = mid - half``, ``hi = mid + half``) let the numeric route integrate a
    very narrow interval without forming its rounded ends (e.g. a prediction change under a tiny eps).
    """

    lo: Any
    hi: Any
    cond: Any = sympy.true
    mid: Any = None
    half: Any = None


@dataclass(frozen=True)
class Term:
    """``coef * P[Z in union of intervals]`` (``coef >= 0``)."""

    coef: Any
    intervals: tuple[Interval, ...]


def smax(*args: Any) -> Any:
    """``Max`` without sympy's pairwise comparison search (seconds on large piecewise forms): numbers are
    combined, infinite ends dropped, the rest kept unevaluated."""
    return _extremum(sympy.Max, args, sympy.oo)


def smin(*args: Any) -> Any:
    """``Min`` without sympy's pairwise comparison search (see :func:`smax`)."""
    return _extremum(sympy.Min, args, -sympy.oo)


def _extremum(cls: Any, args: Sequence[Any], absorbing: Any) -> Any:
    items: list[Any] = []
    for a in map(sympy.sympify, args):
        items.extend(a.args if isinstance(a, cls) else [a])
    if any(a == absorbing for a in items):
        return absorbing
    items = [a for a in items if a != -absorbing]
    numbers = [a for a in items if a.is_Number]
    others = list(dict.fromkeys(a for a in items if not a.is_Number))
    if numbers:
        others.append(cls(*numbers))
    if not others:
        return -absorbing
    return others[0] if len(others) == 1 else cls(*others, evaluate=False)


@dataclass
class Span:
    """An interval of a perturbation coordinate whose ends may be open or closed (sympy Booleans).

    ``extra`` is a further condition for the span to be non-empty (e.g. ``0 < K`` for ``{t : 0 * t < K}``).
    """

    lo: Any
    hi: Any
    lo_closed: Any = sympy.true
    hi_closed: Any = sympy.true
    extra: Any = sympy.true

    def nonempty(self) -> Any:
        """The condition (a sympy Boolean) under which the span holds a point."""
        return sympy.And(self.extra, sympy.Or(sympy.Lt(self.lo, self.hi),
                                              sympy.And(sympy.Eq(self.lo, self.hi), self.lo_closed, self.hi_closed)))

    def __and__(self, other: Span) -> Span:
        def end(a, ca, b, cb, larger):
            first = sympy.Gt(a, b) if larger else sympy.Lt(a, b)
            second = sympy.Gt(b, a) if larger else sympy.Lt(b, a)
            return sympy.Or(sympy.And(first, ca), sympy.And(second, cb), sympy.And(sympy.Eq(a, b), ca, cb))

        return Span(smax(self.lo, other.lo), smin(self.hi, other.hi),
                    end(self.lo, self.lo_closed, other.lo, other.lo_closed, True),
                    end(self.hi, self.hi_closed, other.hi, other.hi_closed, False),
                    sympy.And(self.extra, other.extra))


def _interval_prob(lo: Any, hi: Any) -> sympy.Expr:
    """``P[lo < Z < hi]`` written with Q: ``Q(lo)``, ``Q(-hi)`` or ``Q(lo) - Q(hi)``."""
    if hi == sympy.oo:
        return Q(lo)
    if lo == -sympy.oo:
        return Q(-hi)
    return Q(lo) - Q(hi)


def _simplify_args(expr: sympy.Expr, max_ops: int = 40) -> sympy.Expr:
    """Simplify the (small) arguments of Q: ``(2 + 2 log D) / sqrt(4 + 4 log D)`` becomes ``sqrt(log(D) + 1)``.

    Larger arguments (the piecewise ends of unions of intervals) are left as built: simplify would take seconds.
    """

    def simp(e: sympy.Expr) -> sympy.Expr:
        if sympy.count_ops(e) > max_ops or e.has(sympy.Piecewise, sympy.Max, sympy.Min):
            return e
        try:
            out = sympy.simplify(sympy.factor_terms(e))
        except Exception:  # noqa: BLE001 (simplification is cosmetic; keep the exact input on any failure)
            return e
        return out if sympy.count_ops(out) <= sympy.count_ops(e) else e

    return expr.replace(lambda e: isinstance(e, Q), lambda e: Q(simp(e.args[0])))


@dataclass
class Form:
    """A risk as ``sum_k coef_k P[Z in U_k]`` on placeholder symbols (see the module docstring).

    Args:
        symbols: the placeholder symbols, in the order the numeric function takes them.
        terms: the terms.
        legend: what each placeholder stands for, for reports (``{"A": "<w, mean>"}``).
    """

    symbols: tuple[sympy.Symbol, ...]
    terms: tuple[Term, ...]
    legend: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        flat: list[Any] = []
        for t in self.terms:
            flat.append(t.coef)
            for iv in t.intervals:
                flat += [iv.lo, iv.hi, iv.cond]
                if iv.mid is not None:
                    flat += [iv.mid, iv.half]
        self._flat = flat
        self._fn = lambdify(self.symbols, list(flat))

    # ------------------------------------------------------------------------------------------ numeric
    def raw(self, *values: Any) -> list[np.ndarray]:
        """The coefficients, interval ends and conditions at ``values``, broadcast to one shape."""
        values = tuple(np.asarray(v, dtype=float) for v in values)  # numpy division: 1/0 is inf, not an error
        with np.errstate(all="ignore"):
            outs = self._fn(*values)
        shape = np.broadcast_shapes(*[np.shape(v) for v in values]) if values else ()
        return [np.broadcast_to(np.asarray(o, dtype=bool if _is_bool(o) else float), shape) for o in outs]

    def log_from_raw(self, raw: Sequence[np.ndarray]) -> np.ndarray:
        """``log(risk)`` from :meth:`raw`'s output (NaN where an active interval end is NaN)."""
        with np.errstate(all="ignore"):  # -inf logs of empty terms are expected
            return self._log_from_raw(raw)

    def _log_from_raw(self, raw: Sequence[np.ndarray]) -> np.ndarray:
        pos, logs, bad = 0, [], None
        for t in self.terms:
            coef = raw[pos]
            pos += 1
            los, his, mid_half = [], [], None
            for iv in t.intervals:
                lo, hi, cond = raw[pos], raw[pos + 1], raw[pos + 2]
                pos += 3
                if iv.mid is not None:
                    mid_half = (raw[pos], raw[pos + 1], cond)
                    pos += 2
                nan = cond & (np.isnan(lo) | np.isnan(hi))
                bad = nan if bad is None else bad | nan
                los.append(np.where(cond, lo, np.inf))
                his.append(np.where(cond, hi, np.inf))
            with np.errstate(divide="ignore"):
                lc = np.log(coef)
            if len(los) == 1 and mid_half is not None:
                mid, half, cond = mid_half
                lp = np.where(cond, log_normal_interval_mid(mid, half), -np.inf)
            elif len(los) == 1:
                lp = log_normal_interval(los[0], his[0])
            else:
                lp = log_normal_set_prob(los, his)
            logs.append(np.where(coef > 0, lc + lp, -np.inf))
        out = logs[0] if len(logs) == 1 else np.logaddexp.reduce(np.stack(logs), axis=0)
        # a risk never exceeds 1: clip the last-ulp excess of sums of probabilities
        out = np.minimum(out, 0.0)
        return np.where(bad, np.nan, out) if bad is not None else out

    def log_evaluate(self, *values: Any) -> np.ndarray:
        """``log(risk)`` at numeric ``values`` (arrays broadcast together), accurate far below 1e-300."""
        return self.log_from_raw(self.raw(*values))

    def evaluate(self, *values: Any) -> np.ndarray:
        """The risk at numeric ``values`` (arrays broadcast together)."""
        return np.exp(self.log_evaluate(*values))

    # ------------------------------------------------------------------------------------------ symbolic
    @property
    def formula(self) -> sympy.Expr:
        """The risk as a sympy expression of the placeholders."""
        return self.expr({})

    def expr(self, subs: dict[Any, Any]) -> sympy.Expr:
        """The risk with the placeholders replaced by ``subs`` (sympy expressions or numbers)."""
        total = sympy.S.Zero
        for t in self.terms:
            coef = sympy.sympify(t.coef).xreplace(subs)
            if coef == 0:
                continue
            ivs = [(sympy.sympify(iv.lo).xreplace(subs), sympy.sympify(iv.hi).xreplace(subs),
                    sympy.sympify(iv.cond).xreplace(subs)) for iv in t.intervals]
            ivs = [iv for iv in ivs if iv[2] is not sympy.false]
            if not ivs:
                continue
            if len(ivs) == 1:
                lo, hi, cond = ivs[0]
                prob = sympy.Piecewise((_interval_prob(lo, hi), cond), (0, True))
            else:
                args = []
                for lo, hi, cond in ivs:
                    if cond is sympy.true:
                        args += [lo, hi]
                    else:
                        args += [sympy.Piecewise((lo, cond), (sympy.oo, True)),
                                 sympy.Piecewise((hi, cond), (sympy.oo, True))]
                prob = NormalSetProb(*args)
            total += coef * prob
        return total

    def numeric_expr(self, raw: Sequence[np.ndarray]) -> sympy.Expr:
        """The risk at one numeric point written as a sum of ``Q`` values (from :meth:`raw`'s output).

        Built unevaluated (``evaluate=False``): sympy's arithmetic on floats would cost milliseconds.
        """
        pieces, pos = [], 0
        for t in self.terms:
            coef = float(raw[pos])
            pos += 1
            pairs = []
            for iv in t.intervals:
                lo, hi, cond = float(raw[pos]), float(raw[pos + 1]), bool(raw[pos + 2])
                pos += 3 if iv.mid is None else 5
                if cond:
                    pairs.append((lo, hi))
            if coef == 0:
                continue
            for lo, hi in merge_intervals(pairs):
                if hi == math.inf:
                    prob = Q(_num(lo)) if lo != -math.inf else sympy.S.One
                elif lo == -math.inf:
                    prob = Q(_num(-hi))
                else:
                    prob = sympy.Add(Q(_num(lo)), sympy.Mul(-1, Q(_num(hi)), evaluate=False), evaluate=False)
                if prob == 1:
                    pieces.append(_num(coef))
                else:
                    pieces.append(prob if coef == 1 else sympy.Mul(_num(coef), prob, evaluate=False))
        numbers = [p for p in pieces if p.is_Number]
        pieces = [p for p in pieces if not p.is_Number]
        if numbers:
            pieces.append(sympy.Add(*numbers))
        if not pieces:
            return sympy.S.Zero
        return pieces[0] if len(pieces) == 1 else sympy.Add(*pieces, evaluate=False)


def _is_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, np.ndarray) and value.dtype == bool


def _num(value: float) -> sympy.Expr:
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    if float(value).is_integer() and abs(value) < 2**53:
        return sympy.Integer(int(value))
    return sympy.S.Half if value == 0.5 else sympy.Float(value)


def _exact(value: Any) -> sympy.Expr:
    """Integer-valued floats become sympy integers, so ``1.0`` and ``1`` combine in symbolic results."""
    if isinstance(value, float) and value.is_integer():
        return sympy.Integer(int(value))
    if isinstance(value, sympy.Float) and float(value).is_integer():
        return sympy.Integer(int(value))
    return sympy.sympify(value)


_FORMS: dict[Any, Form] = {}
_LOCK = threading.Lock()


def get_form(key: Any, builder: Callable[[], Form]) -> Form:
    """The cached :class:`Form` for ``key`` (a hashable structure description), built on first use."""
    form = _FORMS.get(key)
    if form is None:
        form = builder()
        with _LOCK:
            form = _FORMS.setdefault(key, form)
    return form


def form_result(form: Form, values: Sequence[Any], key: tuple[str, str, str, str], method: str,
                details: dict[str, Any] | None = None) -> Any:
    """A :class:`~toyrobust.risks.registry.RiskResult` from a form and the scalar values of its placeholders.

    All numbers: the value is computed by scipy in log space and ``expr`` is the sum of ``Q`` values at those
    numbers. Any symbol: ``expr`` is the form with the placeholders replaced (Q arguments simplified), and
    ``value`` is None.
    """
    from .registry import RiskResult

    details = dict(details or {})
    details["form"] = form
    details["scalars"] = dict(zip((str(s) for s in form.symbols), values, strict=True))
    if all(is_number(v) for v in values):
        raw = form.raw(*[float(v) for v in values])
        log_value = float(form.log_from_raw(raw))
        if math.isnan(log_value):
            raise ArithmeticError(f"the closed form {form.formula} evaluated to NaN at {details['scalars']}")
        return RiskResult(form.numeric_expr(raw), math.exp(log_value), log_value, method, key, details)
    subs = {s: _exact(v) for s, v in zip(form.symbols, values, strict=True)}
    expr = _simplify_args(form.expr(subs))
    return RiskResult(expr, None, None, method, key, details)


# ---------------------------------------------------------------------------------------------------- grids
_GRID_CACHE: dict[Any, Callable[..., np.ndarray]] = {}


def risk_function(dist: Any, clf: Any, threat: Any = None, definition: str = "ball",
                  symbols: Sequence[sympy.Symbol] | None = None, log: bool = False) -> Callable[..., np.ndarray]:
    """A vectorised numeric function of the symbols of a symbolic closed-form risk, for parameter grids.

    The risk is built once with sympy parameters; its scalar summaries are lambdified (numpy) once and fed
    to the cached form's log-space evaluator, so ``f(D_grid, eps_grid)`` costs a few numpy passes.

    Example::

        D, eps = sympy.symbols("D eps", positive=True)
        f = risk_function(GaussianMixture.robust_nonrobust(D), clf, Linf(eps), symbols=(D, eps))
        f(np.array([10.0, 1e6]), 0.1)

    Args:
        dist, clf, threat, definition: as for :func:`toyrobust.risk`, with sympy symbols among the parameters.
        symbols: the argument order (default: the free symbols of the risk, sorted by name).
        log: return ``log(risk)`` instead of the risk (accurate where the risk underflows).

    Returns:
        ``f(*arrays) -> ndarray`` (arrays broadcast together). The function is cached per query. With no free
        symbol it is the constant function ``f() -> 0-d array``.

    Raises:
        ValueError: (when called) an argument is not finite or outside its parameter's allowed set (a negative
            eps, p = 1 for Tsipras, ...); the message names the parameter and the offending values. Grids are
            validated like the scalar path, never answered with NaN.
    """
    from .registry import risk

    key = (repr(dist), repr(clf), repr(threat), definition, None if symbols is None else tuple(symbols), log)
    fn = _GRID_CACHE.get(key)
    if fn is not None:
        return fn
    result = risk(dist, clf, threat, definition)
    form: Form | None = result.details.get("form")
    if form is None:
        fn = _expression_function(result, symbols, log, (dist, clf, threat))
        _GRID_CACHE[key] = fn
        return fn
    scalars = [sympy.sympify(v) for v in result.details["scalars"].values()]
    free = set().union(*[s.free_symbols for s in scalars])
    if symbols is None:
        symbols = tuple(sorted(free, key=str))
    missing = free - set(symbols)
    if missing:
        raise ValueError(f"symbols must include every free symbol of the risk; missing {sorted(map(str, missing))}")
    scalar_fn = lambdify(tuple(symbols), list(scalars))
    checks = _grid_checks(dist, clf, threat, symbols)

    def fn(*args: Any) -> np.ndarray:
        arrays = _grid_arrays(symbols, args, checks)
        shape = arrays[0].shape if arrays else ()
        with np.errstate(all="ignore"):
            vals = [np.broadcast_to(np.asarray(v, dtype=float), shape) for v in scalar_fn(*arrays)]
        out = form.log_evaluate(*vals)
        _refuse_nan(out, symbols, arrays)
        return out if log else np.exp(out)

    fn.__doc__ = f"risk {result.key} as a function of ({', '.join(map(str, symbols))})"
    fn.symbols = tuple(symbols)  # type: ignore[attr-defined]
    _GRID_CACHE[key] = fn
    return fn


def _expression_function(result: Any, symbols: Sequence[sympy.Symbol] | None, log: bool,
                         query: tuple[Any, Any, Any]) -> Callable[..., np.ndarray]:
    """A grid function of a closed form that is not a Gaussian set form (e.g. spherical caps): its expression
    lambdified through the package's one path (special functions to their scipy evaluations)."""
    expr = sympy.sympify(result.expr)
    free = expr.free_symbols
    if symbols is None:
        symbols = tuple(sorted(free, key=str))
    missing = free - set(symbols)
    if missing:
        raise ValueError(f"symbols must include every free symbol of the risk; missing {sorted(map(str, missing))}")
    compiled = lambdify(tuple(symbols), expr)
    checks = _grid_checks(*query, symbols)

    def fn(*args: Any) -> np.ndarray:
        arrays = _grid_arrays(symbols, args, checks)
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(compiled(*arrays), dtype=float), arrays[0].shape if arrays else ())
            out = np.log(out) if log else np.array(out)
        _refuse_nan(out, symbols, arrays)
        return out

    fn.__doc__ = f"risk {result.key} as a function of ({', '.join(map(str, symbols))})"
    fn.symbols = tuple(symbols)  # type: ignore[attr-defined]
    return fn


def _grid_checks(dist: Any, clf: Any, threat: Any, symbols: Sequence[sympy.Symbol]) -> list[tuple[str, Any]]:
    """Per symbol: (the parameter it stands for, its constraint or None for "finite"), read from the query."""
    from ..constraints import nonnegative

    owners: dict[Any, tuple[str, Any]] = {}
    constraints = getattr(dist, "arg_constraints", {})
    for name, value in getattr(dist, "params", {}).items():
        if isinstance(value, sympy.Symbol) and name in constraints:
            owners.setdefault(value, (name, constraints[name]))
    if threat is not None and isinstance(getattr(threat, "eps", None), sympy.Symbol):
        owners.setdefault(threat.eps, ("eps", nonnegative))
    return [owners.get(s, (str(s), None)) for s in symbols]


def _grid_arrays(symbols: Sequence[sympy.Symbol], args: Sequence[Any],
                 checks: list[tuple[str, Any]]) -> list[np.ndarray]:
    """Broadcast the grid arguments and validate them like the scalar path (vectorised)."""
    if len(args) != len(symbols):
        raise TypeError(f"expected {len(symbols)} arguments ({', '.join(map(str, symbols))}), got {len(args)}")
    arrays = []
    for sym, arg, (name, constraint) in zip(symbols, args, checks, strict=True):
        try:
            arr = np.asarray(arg, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{name} (symbol {sym}) must be numbers or an array of numbers, got {arg!r}") from None
        bad = ~np.isfinite(arr) if constraint is None else ~constraint.check_array(arr)
        if bad.any():
            allowed = constraint.name if constraint is not None else "a finite real number"
            shown = np.unique(arr[bad])[:5].tolist()
            raise ValueError(f"{name} (symbol {sym}) must be {allowed}; got {int(bad.sum())} invalid value(s), "
                             f"e.g. {shown}")
        arrays.append(arr)
    return list(np.broadcast_arrays(*arrays)) if arrays else []


def _refuse_nan(out: np.ndarray, symbols: Sequence[sympy.Symbol], arrays: Sequence[np.ndarray]) -> None:
    """A NaN risk is never an answer: name the arguments where it appeared."""
    nan = np.isnan(out)
    if nan.any():
        idx = tuple(np.argwhere(nan)[0]) if np.ndim(out) else ()
        at = ", ".join(f"{s}={a[idx]!r}" for s, a in zip(symbols, arrays, strict=True)) or "no arguments"
        raise ValueError(f"the risk is undefined (NaN) at {int(nan.sum())} grid point(s), e.g. {at}")
