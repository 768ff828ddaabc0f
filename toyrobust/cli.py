"""The ``toyrobust`` command line. Bad input prints one line to stderr and exits with status 2."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from typing import Any

import sympy

from .classifiers import Linear, Quadratic, Radial
from .constraints import Constraint, is_symbolic
from .definitions import DEFINITIONS
from .distributions import cli_constructors
from .threats import parse_threat

#: distribution names accepted on the command line (read from the registry of distributions), with their
#: constructors and parameter constraints (None: a comma-separated list)
DISTRIBUTIONS: dict[str, tuple[Any, dict[str, Constraint | None]]] = cli_constructors()


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
        if not float(value).is_integer():
            raise UsageError(f"--param {name}: must be an integer, got {text.strip()!r}")
        return int(value)
    return float(value)


def parse_params(dist_name: str, items: list[str]) -> dict[str, Any]:
    """Turn ``["p=0.9", "eta=3"]`` into keyword arguments for the distribution ``dist_name``."""
    allowed = DISTRIBUTIONS[dist_name][1]
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--param must look like NAME=VALUE, got {item!r}")
        name, text = (s.strip() for s in item.split("=", 1))
        if name not in allowed:
            raise UsageError(f"{dist_name} has no parameter {name!r}; allowed: {', '.join(allowed)}")
        if allowed[name] is None:
            out[name] = [_number_or_symbol(name, t, None) for t in text.split(",")]
        else:
            out[name] = _number_or_symbol(name, text, allowed[name])
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
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def _required_params(ctor: Any) -> list[str]:
    """The constructor's parameters without a default value."""
    return [p.name for p in inspect.signature(ctor).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _cmd_describe(args: argparse.Namespace) -> int:
    dist = make_distribution(args.dist, args.param)
    info = dist.describe()
    if args.latex:
        info["bayes rule (latex)"] = sympy.latex(dist.bayes_classifier().rule())
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


CLASSIFIER_SPECS = "bayes | robust | maxmargin | linear:W1,W2,..[:B] | radial:R | quadratic:A1,A2,..:C"
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
    try:
        if head == "linear" and rest:
            weights, _, bias = rest.partition(":")
            w = [_spec_value("--classifier linear weight", t) for t in weights.split(",")]
            return Linear(w, _spec_value("--classifier linear bias", bias) if bias else 0)
        if head == "radial" and rest:
            return Radial(_spec_value("--classifier radial radius", rest), dim=dist.dim)
        if head == "quadratic" and rest and ":" in rest:
            alphas, _, c = rest.partition(":")
            return Quadratic([_spec_value("--classifier quadratic alpha", t) for t in alphas.split(",")],
                             _spec_value("--classifier quadratic c", c))
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    raise UsageError(f"--classifier {spec!r} not understood; expected {CLASSIFIER_SPECS}")


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
        raise UsageError(f"--threat {message}") from None


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
    except (ValueError, TypeError, NotImplementedError) as err:
        raise UsageError(str(err).splitlines()[0]) from None
    if args.json:
        print(json.dumps({k: (v if isinstance(v, (int, float)) else str(v)) for k, v in report.items()}, indent=2))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from . import reproduce

    try:
        names = reproduce.available()
        only = args.only or None
        for name in only or []:
            if name not in names:
                raise UsageError(f"unknown figure {name!r}; choose from {', '.join(names)}")
        reproduce.run(only=only, quick=args.quick, out=args.out, report=lambda line: print(line, flush=True))
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    return 0


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    from . import crosscheck as cc
    from .rng import resolve_device

    if not 0 < args.level < 1:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        raise UsageError(str(err)) from None
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
    parser = _Parser(prog="toyrobust", description="Analytic and Monte Carlo adversarial robustness on toy "
                                                   "distributions.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    describe = sub.add_parser(
        "describe",
        help="print a distribution, its support, its projection rule and its Bayes rule",
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
        help="print the closed-form risk of a classifier (value, formula, method)",
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
        "bounds", help="print the analytic bounds for a distribution and threat",
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
        "reproduce", help="rebuild the figures from the analyses/ scripts",
        description="Run every analyses/<name>.py script (or those named with --only), writing figures/<name>.png, "
                    ".pdf and the data behind each as CSV. Needs a source checkout (pip install -e .).")
    reproduce.add_argument("--quick", action="store_true", help="quick sizes (seconds to a minute per figure)")
    reproduce.add_argument("--only", action="append", metavar="NAME", help="run only this figure (repeatable)")
    reproduce.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    reproduce.set_defaults(func=_cmd_reproduce)

    crosscheck = sub.add_parser(
        "crosscheck", help="analytic risks next to Monte Carlo estimates from real attacks, with verdicts",
        description="For each case (distribution, classifier or trained network, threat, definition) print the "
                    "closed-form risk, the Monte Carlo estimate with its exact Clopper-Pearson interval, and a "
                    "verdict: agree, attack weaker (inexact attack below the closed form), DISAGREE, bound holds, "
                    "BOUND VIOLATED.")
    crosscheck.add_argument("--quick", action="store_true", help="small dimensions and trainings (minutes on a CPU)")
    crosscheck.add_argument("--no-trained", action="store_true", help="skip the trained networks")
    crosscheck.add_argument("--only", default=None, metavar="TEXT", help="only cases whose group or name contains TEXT")
    crosscheck.add_argument("--n", type=int, default=20_000, help="Monte Carlo samples per case (default 20000)")
    crosscheck.add_argument("--level", type=float, default=0.999, help="confidence level (default 0.999)")
    crosscheck.add_argument("--seed", type=int, default=0, help="master seed")
    crosscheck.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    crosscheck.add_argument("--json", action="store_true", help="print JSON instead of the table")
    crosscheck.add_argument("--csv", default=None, metavar="PATH", help="also write the results as CSV")
    crosscheck.add_argument("--strict", action="store_true", help="exit 1 when a case disagrees or a bound fails")
    crosscheck.set_defaults(func=_cmd_crosscheck)
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


if __name__ == "__main__":
    sys.exit(main())
