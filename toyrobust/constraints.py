"""Valid parameter sets, checked for numbers and for sympy symbols alike.

A constraint answers three ways, like ``sympy.stats``: ``True`` (valid), ``False`` (provably invalid) and
``None`` (a symbol whose assumptions neither prove nor refute it). Only ``False`` is an error, so
``sympy.Symbol("p", positive=True)`` passes ``positive`` while ``sympy.Symbol("p", negative=True)`` does not.
Each constraint carries a ``typical`` range that the hypothesis strategies of :mod:`toyrobust.testing` draw from.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from sympy.core.logic import fuzzy_and

__all__ = [
    "check_int",
    "check_number",
    "check_positive_float",
    "check_open_unit_float",
    "check_progress",
    "Constraint",
    "real",
    "positive",
    "nonnegative",
    "unit_interval_open",
    "integer_at_least",
    "is_symbolic",
    "as_param",
    "check",
    "check_less",
]


def is_symbolic(value: Any) -> bool:
    """True when ``value`` is a sympy expression that is not a plain number."""
    return isinstance(value, sympy.Basic) and not value.is_Number


def _truth(value: Any) -> bool | None:
    """Turn a sympy fuzzy boolean (True/False/None) or a sympy relational into a fuzzy bool."""
    if value is None or isinstance(value, bool):
        return value
    if value is sympy.true:
        return True
    if value is sympy.false:
        return False
    return None


@dataclass(frozen=True)
class Constraint:
    """A set of allowed values.

    Args:
        name: words that complete "must be ...", used in error messages.
        numeric: predicate on a finite float.
        symbolic: fuzzy predicate on a sympy expression (True, False or None = undecided).
        typical: (low, high) range for drawing examples in property tests.
        integer: whether values must be integers.
    """

    name: str
    numeric: Callable[[float], bool]
    symbolic: Callable[[sympy.Expr], bool | None]
    typical: tuple[float, float]
    integer: bool = False

    def check(self, value: Any) -> bool | None:
        """True if valid, False if provably invalid, None if a symbol leaves it undecided."""
        if is_symbolic(value):
            if value.is_real is False or value.is_finite is False:
                return False
            if self.integer and value.is_integer is False:
                return False
            return _truth(self.symbolic(value))
        if isinstance(value, sympy.Basic):
            value = int(value) if value.is_Integer else float(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if isinstance(value, numbers.Integral):
            # exact integer comparison: 10**300 is a valid dimension even though float(10**300) is not an integer
            return bool(self.numeric(int(value)))
        if not math.isfinite(float(value)):
            return False
        if self.integer and not float(value).is_integer():
            return False
        return bool(self.numeric(float(value)))

    def check_array(self, values: Any) -> np.ndarray:
        """:meth:`check` for every entry of a float array at once (vectorised; the same answers as the scalar path).

        The numeric predicate is applied to the whole array (the predicates are elementwise comparisons); a
        predicate that cannot take an array (a chained comparison such as ``0 < v < 1`` raises on one) is applied
        entry by entry instead.
        """
        arr = np.asarray(values, dtype=float)
        ok = np.isfinite(arr)
        if self.integer:
            ok &= arr == np.round(arr)
        safe = np.where(ok, arr, 0.0)
        try:
            res = np.asarray(self.numeric(safe), dtype=bool)
            if res.shape != arr.shape:
                res = np.broadcast_to(res, arr.shape)
        except (ValueError, TypeError):
            res = np.fromiter((bool(self.numeric(float(v))) for v in safe.ravel()), dtype=bool,
                              count=safe.size).reshape(arr.shape)
        return ok & res

    def strategy(self, edges: bool = True) -> Any:
        """A hypothesis strategy of valid values in the typical range (with its end points when ``edges``)."""
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        low, high = self.typical
        if self.integer:
            return st.integers(int(low), int(high))
        base = st.floats(low, high, allow_nan=False, allow_infinity=False)
        return st.one_of(base, st.sampled_from([low, high])) if edges else base


real = Constraint("a finite real number", lambda v: True, lambda e: True, (-5.0, 5.0))
positive = Constraint("a finite number > 0", lambda v: v > 0, lambda e: e.is_positive, (0.05, 5.0))
nonnegative = Constraint(
    "a finite number >= 0", lambda v: v >= 0, lambda e: e.is_nonnegative, (0.0, 3.0)
)
unit_interval_open = Constraint(
    "a number in the open interval (0, 1)",
    lambda v: (0 < v) & (v < 1),  # elementwise, so arrays are checked at once (check_array)
    lambda e: fuzzy_and([e.is_positive, (1 - e).is_positive]),
    (0.51, 0.99),
)


def integer_at_least(k: int, typical_high: int = 50) -> Constraint:
    """Integers ``n >= k`` (symbols need ``integer=True`` not to be refuted by ``integer=False``)."""
    return Constraint(
        f"an integer >= {k}",
        lambda v: v >= k,
        lambda e: (e - k).is_nonnegative,
        (k, max(k, typical_high)),
        integer=True,
    )


def _kind(value: Any) -> str:
    return type(value).__name__


def as_param(value: Any) -> Any:
    """Normalise a parameter: python/numpy numbers and 0-d tensors to float/int, sympy kept as sympy."""
    if isinstance(value, sympy.Basic):
        if value.is_Integer:
            return int(value)
        if value.is_Number:
            return float(value)
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    return value


def check(name: str, value: Any, constraint: Constraint) -> Any:
    """Validate one parameter and return it normalised.

    Raises:
        TypeError: the value is not a number or a sympy expression.
        ValueError: the value is provably outside ``constraint``; the message names ``name``, the value and
            the allowed set.
    """
    value = as_param(value)
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, sympy.Basic)):
        raise TypeError(
            f"{name} must be {constraint.name} (a number or a sympy expression), got {value!r} of type "
            f"{_kind(value)}"
        )
    if constraint.check(value) is False:
        raise ValueError(f"{name} must be {constraint.name}, got {value!r}")
    if constraint.integer and not is_symbolic(value):
        value = int(value)
    return value


def check_int(name: str, value: Any, low: int, *, what: str = "") -> int:
    """An integer ``>= low`` (Python or numpy; not a bool): the package's one integer validator for counts,
    sizes and seeds. TypeError for a non-integer, ValueError below ``low``; both name ``name`` and the value
    (and ``what`` it counts, e.g. ``"number of noise draws"``, when given)."""
    allowed = f"an int >= {low}" + (f" ({what})" if what else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, constraint: Constraint) -> float:
    """A plain number (Python or numpy, not a bool or a sympy symbol) inside ``constraint``, as a float: the one
    validator for numeric-only settings (radii, noise levels, confidence levels), where :func:`check` would also
    let symbols through. TypeError for a non-number, ValueError outside the set (NaN and infinities included);
    both name ``name``, the value and the allowed set."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {constraint.name}, got {value!r} of type {_kind(value)}")
    if not constraint.check(value):
        raise ValueError(f"{name} must be {constraint.name}, got {value!r}")
    return float(value)


def check_progress(value: Any) -> bool | None:
    """A ``progress`` argument: True, False or None (None: the caller decides, e.g. a bar when stderr is a
    terminal); anything else raises TypeError."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"progress must be True, False or None, got {value!r}")
    return value


def check_positive_float(name: str, value: Any) -> float:
    """A finite number ``> 0`` as a float (:func:`check_number` with :data:`positive`)."""
    return check_number(name, value, positive)


def check_open_unit_float(name: str, value: Any) -> float:
    """A number in the open interval (0, 1) as a float, e.g. a confidence level alpha (:func:`check_number`
    with :data:`unit_interval_open`)."""
    return check_number(name, value, unit_interval_open)


def check_less(name_low: str, low: Any, name_high: str, high: Any) -> None:
    """Raise ValueError when ``low < high`` is provably false (numbers, or symbols with assumptions)."""
    diff = sympy.sympify(high) - sympy.sympify(low)
    if diff.is_positive is False:
        raise ValueError(f"{name_low} must be < {name_high}, got {name_low}={low!r} and {name_high}={high!r}")
