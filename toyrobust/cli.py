"""The ``toyrobust`` command line. Bad input prints one line to stderr and exits with status 2."""

from __future__ import annotations

import argparse
import decimal
import functools
import inspect
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import sympy

from .blocks import Blocks
from .classifiers import Linear, Quadratic, Radial
from .constraints import Constraint, is_symbolic
from .definitions import DEFINITIONS
from .distributions import cli_constructors
from .threats import parse_threat

#: distribution names accepted on the command line (read from the registry of distributions), with their
#: constructors and parameter constraints (None: a comma-separated list)
DISTRIBUTIONS: dict[str, tuple[Any, dict[str, Constraint | None]]] = cli_constructors()


#: the largest --seed (cases derive seeds by adding small offsets; torch seeds are 64-bit)
MAX_SEED = 2**62


class UsageError(Exception):
    """A one-line user error: printed without a traceback, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the whole usage block
        raise UsageError(message)


def _number_or_symbol(name: str, text: str, constraint: Constraint | None) -> Any:
    """A number, or a sympy symbol (assumptions: positive; integer for integer parameters) for a bare name."""
    integer = constraint is not None and constraint.integer
    value = _spec_value(f"--param {name}", text, positive=True, **({"integer": True} if integer else {}))
    if isinstance(value, sympy.Symbol):
        return value
    if integer:
        # exact: 10**300 written out (or as 1e300) is that integer, not the nearest float's
        exact = decimal.Decimal(text.strip())
        if exact != exact.to_integral_value():
            raise UsageError(f"--param {name}: must be an integer, got {text.strip()!r}")
        return int(exact)
    return float(value)


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
        raise UsageError(_one_line(err)) from None


def _one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def _required_params(ctor: Any) -> list[str]:
    """The constructor's parameters without a default value."""
    return [p.name for p in inspect.signature(ctor).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def natural_str(expr: Any) -> str:
    """``str`` of a sympy expression with the terms of every sum in coordinate order (``x_1, x_2, ..., x_10``,
    ``x[1]`` before ``Sum(x[i], (i, 2, D))``) and a bound summation index printed as ``i``."""
    if not isinstance(expr, sympy.Basic):
        return str(expr)

    def first_index(term: sympy.Basic) -> tuple[float, str]:
        found: list[float] = []
        for atom in sympy.preorder_traversal(term):
            if isinstance(atom, sympy.Indexed) and atom.indices and atom.indices[0].is_Integer:
                found.append(int(atom.indices[0]))
            elif isinstance(atom, sympy.Symbol):
                m = re.fullmatch(r"[A-Za-z]+_(\d+)", atom.name)
                if m:
                    found.append(int(m.group(1)))
            elif isinstance(atom, sympy.Sum) and atom.limits[0][1].is_Integer:
                found.append(int(atom.limits[0][1]))
        return min(found) if found else math.inf

    names = {str(sym) for sym in expr.free_symbols}
    if "i" not in names:  # a bound index prints as i, not _i, unless the formula has its own i
        expr = expr.xreplace({d: sympy.Symbol("i", integer=True) for d in expr.atoms(sympy.Dummy) if d.name == "i"})
    ordered = expr.replace(lambda e: isinstance(e, sympy.Add),
                           lambda e: sympy.Add(*sorted(e.as_ordered_terms(), key=first_index), evaluate=False))
    return sympy.sstr(ordered, order="none")


def _cmd_describe(args: argparse.Namespace) -> int:
    dist = make_distribution(args.dist, args.param)
    try:
        info = dist.describe()
        bayes_rule = dist.bayes_classifier().rule()
        try:
            info["log-odds"] = natural_str(dist.log_odds_expr())
        except NotImplementedError:  # degenerate supports: describe() words it
            pass
        info["bayes rule"] = f"predict +1 iff {natural_str(bayes_rule)}"
        if args.latex:
            info["bayes rule (latex)"] = sympy.latex(bayes_rule)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as err:
        raise UsageError(_one_line(err)) from None
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _spec_value(what: str, text: str, **assumptions: Any) -> Any:
    """A finite number, or a sympy symbol for a bare name (real unless ``assumptions`` say otherwise)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        if not text.isidentifier():
            raise UsageError(f"{what}: expected a number or a symbol name, got {text!r}") from None
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
        raise UsageError(_one_line(err)) from None
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


def _cmd_risk(args: argparse.Namespace) -> int:
    from .risks import risk

    dist = make_distribution(args.dist, args.param)
    clf = make_classifier(args.classifier, dist)
    threat = make_threat_spec(args.threat, args.coords)
    try:
        result = risk(dist, clf, threat, args.definition)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as err:
        raise UsageError(" ".join(str(err).split())) from None
    info: dict[str, Any] = {
        "distribution": repr(dist),
        "classifier": repr(clf),
        "threat": "none (standard risk)" if threat is None else repr(threat),
        "definition": args.definition,
        "value": result.value,
        "log_value": result.log_value,
        "closed form": str(result.expr),
        "method": result.method,
    }
    form = result.details.get("form")
    if form is not None and len(str(form.formula)) <= 400:  # large piecewise structures stay in the API
        info["formula"] = str(form.formula)
        info["where"] = {name: (str(v) if is_symbolic(v) else float(v))
                         for name, v in result.details.get("scalars", {}).items()}
    if args.latex:
        info["latex"] = result.latex()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    shown = dict(info)
    shown["value"] = "symbolic (numbers for every parameter give a float)" if result.value is None else \
        f"{result.value:.17g}"
    shown["log_value"] = "-" if result.log_value is None else f"{result.log_value:.17g}"
    if "where" in shown:
        shown["where"] = ", ".join(f"{k} = {v}" for k, v in shown["where"].items())
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_bounds(args: argparse.Namespace) -> int:
    from .bounds import bounds_report

    dist = make_distribution(args.dist, args.param)
    threat = make_threat_spec(args.threat, args.coords)
    try:
        report = bounds_report(dist, threat, mu=args.mu)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as err:
        raise UsageError(_one_line(err)) from None
    if args.json:
        print(json.dumps({k: (v if isinstance(v, (int, float)) else str(v)) for k, v in report.items()}, indent=2))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


def check_output_file(flag: str, path: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: its folder must exist and the file must
    open for writing (a file created by the probe is removed again)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UsageError(f"{flag} {path!r} is a folder; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{flag} {path!r}: folder {str(folder)!r} does not exist")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be written: {err.strerror or err}") from None
    if not existed:
        target.unlink()
    return target


def check_output_folder(flag: str, path: str | Path) -> Path:
    """Refuse, before any work, an output folder that cannot be created or written to."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {str(path)!r} cannot be created: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {str(path)!r} is not writable")
    return folder


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from . import reproduce

    try:
        names = reproduce.available()
        only = args.only or None
        for name in only or []:
            if name not in names:
                raise UsageError(f"unknown figure {name!r}; choose from {', '.join(names)}")
        out = check_output_folder("--out", args.out if args.out is not None else reproduce.default_out(args.quick))
        reproduce.run(only=only, quick=args.quick, out=out, report=lambda line: print(line, flush=True))
    except FileNotFoundError as err:
        raise UsageError(_one_line(err)) from None
    return 0


def _check_device(text: str) -> Any:
    """``--device``: cpu, cuda[:N] or auto; a CUDA device must exist on this machine (checked before any work)."""
    import torch

    from .rng import resolve_device

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


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    from . import crosscheck as cc

    # every input and output is checked before the (minutes of) work starts
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}")
    device = _check_device(args.device)
    if args.csv:
        check_output_file("--csv", args.csv)
    quiet = args.json
    if not quiet:
        print(f"building the cross-check cases ({'quick' if args.quick else 'full'} size"
              f"{', training networks' if not args.no_trained else ''}) ...", file=sys.stderr, flush=True)
    cases = cc.default_cases(quick=args.quick, trained=not args.no_trained, seed=args.seed, device=device)
    if args.only:
        cases = [c for c in cases if args.only.lower() in f"{c.group} {c.name}".lower()]
        if not cases:
            raise UsageError(f"--only {args.only!r} matches no case")

    def report(i: int, total: int, res: Any) -> None:
        if not quiet:
            print(f"[{i}/{total}] {res.group} | {res.classifier} | {res.threat} | {res.definition}: {res.verdict} "
                  f"({res.seconds:.1f} s)", file=sys.stderr, flush=True)

    results = cc.run(cases, n=args.n, seed=args.seed, level=args.level, device=device, report=report)
    if args.csv:
        with open(args.csv, "w") as fh:
            fh.write(cc.to_csv(results))
    print(cc.to_json(results) if args.json else cc.format_table(results))
    bad = sum(r.verdict in ("disagree", "bound violated") for r in results)
    return 1 if (bad and args.strict) else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``toyrobust`` command."""
    from . import __version__
    from .launcher import COMMANDS, DESCRIPTION

    parser = _Parser(prog="toyrobust", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"toyrobust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    describe = sub.add_parser(
        "describe",
        help=COMMANDS["describe"],
        description="Print a distribution, its support, the orthogonal projection onto it (with tie rules), its "
                    "log-odds and its Bayes rule as sympy formulas. Parameters may be numbers or symbol names "
                    "(e.g. --param p=p for a symbolic p).",
        epilog="examples: toyrobust describe tsipras --param p=0.9 --param eta=3;  "
               "toyrobust describe robust-nonrobust --param D=D",
    )
    describe.add_argument("dist", metavar="DIST", help=f"one of: {', '.join(DISTRIBUTIONS)}")
    describe.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          help="a distribution parameter (repeatable); a name instead of a number makes it symbolic")
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    describe.add_argument("--latex", action="store_true", help="also print the Bayes rule in LaTeX")
    describe.set_defaults(func=_cmd_describe)

    risk = sub.add_parser(
        "risk",
        help=COMMANDS["risk"],
        description="Print the analytic standard or adversarial risk of a classifier on a distribution: its "
                    "value (computed in log space), its closed form and how it was obtained. Parameters, weights "
                    "and eps may be numbers or symbol names (the result is then a formula). A combination with "
                    "no closed form is an error (exit status 2) that suggests tr.estimate_risk.",
        epilog="examples: toyrobust risk tsipras --param p=0.9 --param eta=3 --classifier bayes --threat linf:0.5; "
               "toyrobust risk robust-nonrobust --param D=D --classifier robust --threat linf:eps --json",
    )
    risk.add_argument("dist", metavar="DIST", help=f"one of: {', '.join(DISTRIBUTIONS)}")
    risk.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a distribution parameter (repeatable); a name instead of a number makes it symbolic")
    risk.add_argument("--classifier", default="bayes", metavar="SPEC", help=f"{CLASSIFIER_SPECS} (default: bayes)")
    risk.add_argument("--threat", default=None, metavar="NORM:EPS",
                      help="linf:EPS, l2:EPS or l1:EPS; omit for the standard risk")
    risk.add_argument("--coords", default=None, metavar="COORDS",
                      help="perturbed coordinates (0-based): '1:' (from 1 on), '0:3', or '0,2'")
    risk.add_argument("--definition", default="ball", choices=DEFINITIONS,
                      help="when a perturbed point counts as adversarial (default: ball)")
    risk.add_argument("--json", action="store_true", help="print JSON")
    risk.add_argument("--latex", action="store_true", help="also print the closed form in LaTeX")
    risk.set_defaults(func=_cmd_risk)

    bounds = sub.add_parser(
        "bounds", help=COMMANDS["bounds"],
        description="Print the analytic bounds: the optimal (best-classifier) adversarial risk, the Bayes risk, the "
                    "label-invariant radius, Tsipras et al.'s trade-off and the spherical isoperimetric bound.",
        epilog="example: toyrobust bounds robust-nonrobust --param D=100 --threat linf:0.3")
    bounds.add_argument("dist", metavar="DIST", help=f"one of: {', '.join(DISTRIBUTIONS)}")
    bounds.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a distribution parameter")
    bounds.add_argument("--threat", default=None, metavar="NORM:EPS",
                        help="e.g. linf:0.3, l2:1, l1:2 (EPS may be a symbol name)")
    bounds.add_argument("--coords", default=None, metavar="COORDS",
                        help="perturbed coordinates (0-based): '1:' (from 1 on), '0:3', or '0,2'")
    bounds.add_argument("--mu", type=float, default=0.01, help="error measure for the isoperimetric bound")
    bounds.add_argument("--json", action="store_true", help="print JSON")
    bounds.set_defaults(func=_cmd_bounds)

    reproduce = sub.add_parser(
        "reproduce", help=COMMANDS["reproduce"],
        description="Run every analyses/<name>.py script (or those named with --only), writing figures/<name>.png, "
                    ".pdf and the data behind each as CSV (--quick runs write to figures/quick/, ignored by git, so "
                    "the committed figures stay as they are). Needs a source checkout (pip install -e .).")
    reproduce.add_argument("--quick", action="store_true", help="quick sizes (seconds to a minute per figure)")
    reproduce.add_argument("--only", action="append", metavar="NAME", help="run only this figure (repeatable)")
    reproduce.add_argument("--out", default=None, help="output folder (default: <repo>/figures for full runs, the "
                                                       "git-ignored <repo>/figures/quick for --quick runs)")
    reproduce.set_defaults(func=_cmd_reproduce)

    crosscheck = sub.add_parser(
        "crosscheck", help=COMMANDS["crosscheck"],
        description="For each case (distribution, classifier or trained network, threat, definition) print the "
                    "closed-form risk, the Monte Carlo estimate with its exact Clopper-Pearson interval, and a "
                    "verdict: agree, attack weaker (inexact attack below the closed form), DISAGREE, bound holds, "
                    "BOUND VIOLATED.")
    crosscheck.add_argument("--quick", action="store_true", help="small dimensions and trainings (minutes on a CPU)")
    crosscheck.add_argument("--no-trained", action="store_true", help="skip the trained networks")
    crosscheck.add_argument("--only", default=None, metavar="TEXT", help="only cases whose group or name contains TEXT")
    crosscheck.add_argument("--n", type=int, default=20_000, help="Monte Carlo samples per case (default 20000)")
    crosscheck.add_argument("--level", type=float, default=0.999, help="confidence level (default 0.999)")
    crosscheck.add_argument("--seed", type=int, default=0, help=f"master seed, an integer in [0, {MAX_SEED}]")
    crosscheck.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    crosscheck.add_argument("--json", action="store_true", help="print JSON instead of the table")
    crosscheck.add_argument("--csv", default=None, metavar="PATH", help="also write the results as CSV")
    crosscheck.add_argument("--strict", action="store_true", help="exit 1 when a case disagrees or a bound fails")
    crosscheck.set_defaults(func=_cmd_crosscheck)

    # commands whose modules sit above this one in the layering: imported here, when the parser is built
    from .defenses.evaluate import add_parser as add_defend_parser
    from .sweeps.command import add_parser as add_sweep_parser

    add_defend_parser(sub)
    add_sweep_parser(sub, UsageError)  # the class itself: under `python -m toyrobust.cli` this module is __main__
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``toyrobust`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as err:
        print(f"toyrobust: error: {err}", file=sys.stderr)
        return 2
    except ArithmeticError as err:  # an overflow or division by zero from extreme numbers: one line as well
        print(f"toyrobust: error: the numbers are out of floating-point range ({type(err).__name__}: "
              f"{_one_line(err)})", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (toyrobust describe ... | head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python docs' recipe for SIGPIPE
        return 1
    except MemoryError:  # e.g. under a memory limit: still one line, not a traceback
        print("toyrobust: error: out of memory: this query needs more memory than is available here (a closed "
              "form that is not yet written in blocks for huge dimensions)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
