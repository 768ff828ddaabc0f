"""The spec parsers every command shares: a distribution, a classifier, a weight vector, a threat model and a
device from their command-line text (``tsipras`` with ``--param p=0.9``, ``linear:1,0*``, ``linf:0.5``, ``cuda:0``).

Bad text raises :class:`toyrobust.clibase.UsageError` (one line, naming the flag, the value and what is allowed). The
commands (:mod:`toyrobust.cli`) and the sweep tasks (:mod:`toyrobust.sweeps.tasks`, which take the same specs in a
grid) sit above this module.
"""

from __future__ import annotations

import ast
import decimal
import functools
import inspect
import math
import re
from typing import Any

import sympy
import torch

from .attacks import make_attack
from .blocks import Blocks
from .classifiers import Linear, Quadratic, Radial
from .clibase import UsageError, one_line
from .constraints import Constraint, is_symbolic
from .distributions import cli_constructors
from .rng import resolve_device
from .threats import parse_threat

__all__ = ["DISTRIBUTIONS", "CLASSIFIER_SPECS", "dim_alias", "parse_params", "make_distribution", "make_classifier",
           "parse_vector", "make_threat_spec", "check_device", "parse_attack_spec"]

#: distribution names accepted on the command line (read from the registry of distributions), with their
#: constructors and parameter constraints (None: a comma-separated list)
DISTRIBUTIONS: dict[str, tuple[Any, dict[str, Constraint | None]]] = cli_constructors()


def _number_or_symbol(name: str, text: str, constraint: Constraint | None) -> Any:
    """A number, or a sympy symbol (assumptions: positive; integer for integer parameters) for a bare name.

    Integer parameters are exact: ``10**300``, ``2**64`` (see :func:`_integer_expression`), or 10**300 written out,
    or ``1e300``, are that integer, not the nearest float's."""
    integer = constraint is not None and constraint.integer
    value = _spec_value(f"--param {name}", text, positive=True, **({"integer": True} if integer else {}))
    if isinstance(value, sympy.Symbol):
        return value
    if integer:
        try:
            exact = decimal.Decimal(text.strip())  # a literal: 10**300 written out, or 1e300
        except decimal.InvalidOperation:
            return value  # an integer expression (10**300), evaluated exactly
        if exact != exact.to_integral_value():
            raise UsageError(f"--param {name}: must be an integer, got {text.strip()!r}")
        return int(exact)
    return float(value)


#: what an integer expression may contain (digits, + - * **, parentheses, spaces): no names, no calls, no floats
_INTEGER_EXPRESSION = re.compile(r"[0-9+\-*() ]{1,100}")
#: the largest integer an expression may build (2**4000 ~ 1.3e1204; the toolkit's dimensions go to 10**300)
MAX_INTEGER_BITS = 4000


def _integer_expression(what: str, text: str) -> int | None:
    """The exact value of an integer expression such as ``10**300``, ``2**64`` or ``3*10**6 + 1``; None when ``text``
    is not one. Parsed with :mod:`ast` and evaluated node by node (integer literals, unary -, +, binary + - * and
    ** with an exponent >= 0): never ``eval``; a result above 2**MAX_INTEGER_BITS is refused before it is computed."""
    if not _INTEGER_EXPRESSION.fullmatch(text):
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    too_big = UsageError(f"{what}: {text!r} is too large (at most 2**{MAX_INTEGER_BITS})")

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Pow)):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow):
                if b < 0:
                    raise UsageError(f"{what}: {text!r} has a negative exponent; write the number instead")
                if abs(a) > 1 and b * (abs(a).bit_length() - 1) > MAX_INTEGER_BITS:
                    raise too_big
                return a**b
            if isinstance(node.op, ast.Mult):
                if a.bit_length() + b.bit_length() > MAX_INTEGER_BITS + 1:
                    raise too_big
                return a * b
            return a + b if isinstance(node.op, ast.Add) else a - b
        raise UsageError(f"{what}: expected a number or a symbol name (or an integer expression such as 10**300), "
                         f"got {text!r}")

    out = value(tree)
    if out.bit_length() > MAX_INTEGER_BITS:
        raise too_big
    return out


@functools.cache
def dim_alias(dist_name: str) -> tuple[str, int] | None:
    """``(parameter, offset)`` such that ``dim = parameter + offset`` for the distribution's own dimension parameter
    (its one integer parameter, e.g. ``D`` of robust-nonrobust, ``d`` of tsipras with ``dim = d + 1``), read from
    the registry by building a probe instance; None when it has no such parameter (``dim`` itself included)."""
    ctor, allowed = DISTRIBUTIONS[dist_name]
    if "dim" in allowed:
        return None
    integer = [name for name, c in allowed.items() if c is not None and c.integer]
    if len(integer) != 1:
        return None
    name = integer[0]
    low = int(allowed[name].typical[0])
    try:
        probe = ctor(**{name: low + 3})
    except (TypeError, ValueError):
        return None
    return (name, int(probe.dim) - (low + 3)) if isinstance(probe.dim, int) else None


def _dim_to_param(dist_name: str, text: str) -> tuple[str, Any]:
    """``--param dim=N`` as the distribution's own parameter (N - offset)."""
    alias = dim_alias(dist_name)
    allowed = DISTRIBUTIONS[dist_name][1]
    if alias is None:
        how = ", ".join(n for n, c in allowed.items() if c is None) or "its definition"
        raise UsageError(f"{dist_name} has no dimension parameter (its dimension is set by {how}); allowed: "
                         f"{', '.join(allowed)}")
    name, offset = alias
    value = _number_or_symbol("dim", text, allowed[name])
    low = int(allowed[name].typical[0])
    if not is_symbolic(value) and value - offset < low:
        raise UsageError(f"--param dim: {dist_name} needs dim >= {low + offset} (dim = {name}"
                         f"{f' + {offset}' if offset else ''}), got {text.strip()!r}")
    return name, value - offset


def parse_params(dist_name: str, items: list[str]) -> dict[str, Any]:
    """Turn ``["p=0.9", "eta=3"]`` into keyword arguments for the distribution ``dist_name``.

    ``dim`` is accepted for every distribution with a dimension parameter, as an alias of its own name (``D`` for
    robust-nonrobust, ``d`` for bernoulli; for tsipras ``dim = d + 1``, d being the number of Gaussian features);
    giving both is an error.
    """
    allowed = DISTRIBUTIONS[dist_name][1]
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--param must look like NAME=VALUE, got {item!r}")
        name, text = (s.strip() for s in item.split("=", 1))
        shown = name
        if name == "dim" and "dim" not in allowed:
            name, value = _dim_to_param(dist_name, text)
        elif name not in allowed:
            extra = ", dim" if dim_alias(dist_name) else ""
            raise UsageError(f"{dist_name} has no parameter {name!r}; allowed: {', '.join(allowed)}{extra}")
        elif allowed[name] is None:
            value = [_number_or_symbol(name, t, None) for t in text.split(",")]
        else:
            value = _number_or_symbol(name, text, allowed[name])
        if name in given:
            alias = f"; dim is an alias of {name}" if "dim" in (given[name], shown) and name != "dim" else ""
            raise UsageError(f"--param {shown} given twice for {dist_name} (as {given[name]} and {shown}{alias})")
        given[name] = shown
        out[name] = value
    return out


def make_distribution(dist_name: str, items: list[str]) -> Any:
    """Build a distribution from its command-line name and ``NAME=VALUE`` strings."""
    if dist_name not in DISTRIBUTIONS:
        raise UsageError(f"unknown distribution {dist_name!r}; choose from {', '.join(DISTRIBUTIONS)}")
    ctor = DISTRIBUTIONS[dist_name][0]
    kwargs = parse_params(dist_name, items)
    for name in _required_params(ctor):
        if name not in kwargs:
            constraint = DISTRIBUTIONS[dist_name][1].get(name)
            what = "V1,V2,..." if constraint is None else f"VALUE ({constraint.name}, or a symbol name)"
            raise UsageError(f"{dist_name} needs --param {name}={what}")
    try:
        return ctor(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as err:
        raise UsageError(one_line(err)) from None


def _required_params(ctor: Any) -> list[str]:
    """The constructor's parameters without a default value."""
    return [p.name for p in inspect.signature(ctor).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _spec_value(what: str, text: str, **assumptions: Any) -> Any:
    """A finite number, an exact int for an integer expression such as ``10**300`` (:func:`_integer_expression`), or
    a sympy symbol for a bare name (real unless ``assumptions`` say otherwise)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        exact = _integer_expression(what, text)
        if exact is not None:
            if not assumptions.get("integer"):  # a real parameter: its float must exist
                try:
                    float(exact)
                except OverflowError:
                    raise UsageError(f"{what}: must be finite (below about 1.8e308), got {text!r}") from None
            return exact
        if not text.isidentifier():
            raise UsageError(f"{what}: expected a number or a symbol name (or an integer expression such as 10**300), "
                             f"got {text!r}") from None
        return sympy.Symbol(text, **(assumptions or {"real": True}))
    if not math.isfinite(value):
        raise UsageError(f"{what}: must be finite, got {text!r}")
    return int(value) if value.is_integer() else value


CLASSIFIER_SPECS = ("bayes | robust | maxmargin | linear:W1,W2,..[:B] | radial:R | quadratic:A1,A2,..:C; a weight list "
                    "may use VALUE*COUNT runs (linear:1,0*499), VALUE* for the rest (linear:1,0*) or eK, the K-th unit "
                    "vector (linear:e1)")
#: classifier names a distribution may define (Distribution.named_classifiers)
_NAMED = {"bayes": "the Bayes classifier",
          "robust": "sign(x_1), which needs a distribution of dimension >= 2 with a robust first feature",
          "maxmargin": "the max-margin rule of a separable distribution"}


def make_classifier(spec: str, dist: Any) -> Any:
    """Build a classifier from its command-line spec (see :data:`CLASSIFIER_SPECS`) for the distribution.

    ``bayes`` is the distribution's Bayes classifier; ``robust`` is ``sign(x_1)`` (Tsipras et al.'s robust
    feature); ``maxmargin`` is the max-margin threshold ``x <= gap/2`` of the point masses (or the middle sphere).
    """
    head, _, rest = spec.strip().partition(":")
    head = head.lower()
    named = dist.named_classifiers()
    if head in _NAMED and not rest:
        if head not in named:
            raise UsageError(f"--classifier {head} ({_NAMED[head]}) is not defined for {dist.cli_name}; named "
                             f"classifiers here: {', '.join(named)}")
        return named[head]
    if head == "e1" and not rest:  # shorthand for linear:e1
        head, rest = "linear", "e1"
    try:
        if head == "linear" and rest:
            weights, _, bias = rest.partition(":")
            w = parse_vector("--classifier linear weights", weights, dist.dim)
            clf: Any = Linear(w, _spec_value("--classifier linear bias", bias) if bias else 0)
        elif head == "radial" and rest:
            return Radial(_spec_value("--classifier radial radius", rest), dim=dist.dim)
        elif head == "quadratic" and rest and ":" in rest:
            alphas, _, c = rest.partition(":")
            clf = Quadratic(parse_vector("--classifier quadratic alphas", alphas, dist.dim),
                            _spec_value("--classifier quadratic c", c))
        else:
            raise UsageError(f"--classifier {spec!r} not understood; expected {CLASSIFIER_SPECS}")
    except (ValueError, TypeError) as err:
        raise UsageError(one_line(err)) from None
    _check_same_dim(clf.dim, dist)
    return clf


def _check_same_dim(dim: Any, dist: Any) -> None:
    """The classifier's dimension must be the distribution's (exactly, or provably for symbols)."""
    if is_symbolic(dim) or is_symbolic(dist.dim):
        if sympy.simplify(sympy.sympify(dim) - dist.dim) != 0:
            raise UsageError(f"--classifier has dimension {dim}, {dist.cli_name} has dimension {dist.dim}")
    elif int(dim) != int(dist.dim):
        raise UsageError(f"--classifier has {dim} weights, {dist.cli_name} has dimension {dist.dim} (write runs as "
                         f"VALUE*COUNT, e.g. 1,0*{max(int(dist.dim) - 1, 1)})")


_UNIT = re.compile(r"e(\d+)")


def parse_vector(what: str, text: str, dim: Any) -> Blocks:
    """A weight vector from ``V1,V2,...`` where an entry may be a run ``VALUE*COUNT`` (COUNT a positive integer or
    a symbol name, for a symbolic dimension) or the whole text ``eK``, the K-th unit vector (1-based) of dimension
    ``dim``; kept as blocks, so a dimension of 10**9 costs nothing."""
    text = text.strip()
    unit = _UNIT.fullmatch(text)
    if unit:
        k = int(unit.group(1))
        if k < 1 or (not is_symbolic(dim) and k > int(dim)):
            raise UsageError(f"{what}: {text!r} needs 1 <= K <= dim = {dim}")
        return Blocks([(0, k - 1), (1, 1), (0, sympy.sympify(dim) - k if is_symbolic(dim) else int(dim) - k)])
    blocks: list[tuple[Any, Any]] = []
    fill = None
    for item in text.split(","):
        value, star, count = item.partition("*")
        if not star:
            blocks.append((_spec_value(what, value), 1))
            continue
        count = count.strip()
        if not count:  # VALUE* fills the rest of the dimension
            if fill is not None:
                raise UsageError(f"{what}: at most one run VALUE* may fill the rest, got {text!r}")
            fill = len(blocks)
            blocks.append((_spec_value(what, value), 0))
            continue
        if count.isdigit() and int(count) >= 1:
            n: Any = int(count)
        elif count.isidentifier():
            n = sympy.Symbol(count, integer=True, positive=True)
        else:
            raise UsageError(f"{what}: run {item.strip()!r} must be VALUE*COUNT with COUNT an integer >= 1 or a "
                             "symbol name, or VALUE* for the rest")
        blocks.append((_spec_value(what, value), n))
    if fill is not None:
        rest = sympy.sympify(dim) - sum(c for _, c in blocks)
        if rest.is_positive is False or (rest.is_number and rest < 1):
            raise UsageError(f"{what}: nothing left for the run {blocks[fill][0]}* in dimension {dim}")
        blocks[fill] = (blocks[fill][0], int(rest) if rest.is_Integer else rest)
    return Blocks(blocks)


def make_threat_spec(spec: str | None, coords: str | None) -> Any:
    """A threat model from ``NORM:EPS`` (eps a number >= 0 or a symbol name) and an optional coords string, by
    the package's one parser (:func:`toyrobust.threats.parse_threat`)."""
    try:
        return parse_threat(spec, coords, symbols=True)
    except (ValueError, TypeError) as err:
        message = str(err)
        if spec is None:
            raise UsageError("--coords needs --threat") from None
        if message.startswith("coords must"):
            raise UsageError(f"--{message}") from None
        raise UsageError(f"--threat {message.removeprefix('threat spec ')}") from None


def check_device(text: str) -> Any:
    """``--device``: cpu, cuda[:N] or auto; a CUDA device must exist on this machine (checked before any work)."""
    try:
        device = resolve_device(text)
    except ValueError:
        raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {text!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text!r}: no CUDA device is available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {text!r}")
    return device


def parse_attack_spec(text: str, flag: str = "--attack") -> Any:
    """``NAME[:OPTION=VALUE,...]`` -> a :class:`toyrobust.attacks.Attack` (its constructor validates the options;
    values are Python literals, e.g. ``apgd:steps=50,loss='ce'``; a bare word is a string)."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise UsageError(f"{flag} options must be OPTION=VALUE separated by commas, got {item!r} in {text!r}")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    try:
        return make_attack(name.strip(), options)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{flag} {text!r}: {one_line(err)}") from None
