"""The ``toyrobust`` command line. Bad input prints one line to stderr and exits with status 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import sympy

from .constraints import Constraint
from .distributions import ConcentricSpheres, GaussianMixture, PointMasses, Tsipras

#: distribution names accepted on the command line, with their constructors and parameter constraints
DISTRIBUTIONS: dict[str, tuple[Any, dict[str, Constraint | None]]] = {
    "point-masses": (PointMasses, dict(PointMasses.arg_constraints)),
    "tsipras": (Tsipras, dict(Tsipras.arg_constraints)),
    "gaussian-mixture": (GaussianMixture, {"mean": None, **GaussianMixture.arg_constraints}),
    "robust-nonrobust": (GaussianMixture.robust_nonrobust, {"D": None}),
    "spheres": (ConcentricSpheres, dict(ConcentricSpheres.arg_constraints)),
}

_INTEGER_PARAMS = {"d", "dim", "D"}


class UsageError(Exception):
    """A one-line user error: printed without a traceback, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the whole usage block
        raise UsageError(message)


def _number_or_symbol(name: str, text: str) -> Any:
    """A number, or a sympy symbol (assumptions: positive; integer for dimensions) for a bare name."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        if not text.isidentifier():
            raise UsageError(f"--param {name}: expected a number or a symbol name, got {text!r}") from None
        if name in _INTEGER_PARAMS:
            return sympy.Symbol(text, integer=True, positive=True)
        return sympy.Symbol(text, positive=True)
    if not math.isfinite(value):
        raise UsageError(f"--param {name}: must be finite, got {text!r}")
    if name in _INTEGER_PARAMS:
        if not value.is_integer():
            raise UsageError(f"--param {name}: must be an integer, got {text!r}")
        return int(value)
    return value


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
        if name == "mean":
            out[name] = [_number_or_symbol(name, t) for t in text.split(",")]
        else:
            out[name] = _number_or_symbol(name, text)
    return out


def make_distribution(dist_name: str, items: list[str]) -> Any:
    """Build a distribution from its command-line name and ``NAME=VALUE`` strings."""
    if dist_name not in DISTRIBUTIONS:
        raise UsageError(f"unknown distribution {dist_name!r}; choose from {', '.join(DISTRIBUTIONS)}")
    ctor = DISTRIBUTIONS[dist_name][0]
    kwargs = parse_params(dist_name, items)
    if dist_name == "gaussian-mixture" and "mean" not in kwargs:
        raise UsageError("gaussian-mixture needs --param mean=V1,V2,...")
    if dist_name == "robust-nonrobust" and "D" not in kwargs:
        raise UsageError("robust-nonrobust needs --param D=N (an integer >= 2 or a symbol)")
    try:
        return ctor(**kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


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
