"""The ``toyrobust`` command line. Bad input prints one line to stderr and exits with status 2.

Layers, lowest first: :mod:`toyrobust.clibase` (the error type, the parser class, the table of commands),
:mod:`toyrobust.clispecs` (the spec parsers the commands share), the commands (this module, ``defend`` in
:mod:`toyrobust.defenses.evaluate`, ``sweep`` in :mod:`toyrobust.sweeps.command`), and on top the console script
:mod:`toyrobust.launcher`. The names below that moved down stay importable from here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from typing import Any

import sympy

from . import __version__
from . import crosscheck as cc
from .bounds import bounds_report
from .clibase import (
    COMMANDS,
    DESCRIPTION,
    MAX_SEED,
    UsageError,
    UsageParser,
    check_output_file,
    check_output_folder,
    one_line,
)
from .clispecs import (
    CLASSIFIER_SPECS,
    DISTRIBUTIONS,
    check_device,
    dim_alias,
    make_classifier,
    make_distribution,
    make_threat_spec,
    parse_params,
    parse_vector,
)
from .constraints import is_symbolic
from .crosspool import run_default
from .defenses.evaluate import add_parser as add_defend_parser
from .definitions import DEFINITIONS
from .epscommand import add_parser as add_eps_parser
from .risks import risk
from .sweeps.command import add_parser as add_sweep_parser

__all__ = ["main", "build_parser", "natural_str", "UsageError", "MAX_SEED", "DISTRIBUTIONS", "CLASSIFIER_SPECS",
           "dim_alias", "parse_params", "make_distribution", "make_classifier", "parse_vector", "make_threat_spec",
           "check_output_file", "check_output_folder"]


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
        try:
            bayes_rule = dist.bayes_classifier().rule()
        except NotImplementedError:  # no closed-form rule (an empirical sample's 1-NN): describe() words it
            bayes_rule = None
        try:
            info["log-odds"] = natural_str(dist.log_odds_expr())
        except NotImplementedError:  # degenerate supports: describe() words it
            pass
        if bayes_rule is not None:
            info["bayes rule"] = f"predict +1 iff {natural_str(bayes_rule)}"
            if args.latex:
                info["bayes rule (latex)"] = sympy.latex(bayes_rule)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as err:
        raise UsageError(one_line(err)) from None
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_risk(args: argparse.Namespace) -> int:
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
    dist = make_distribution(args.dist, args.param)
    threat = make_threat_spec(args.threat, args.coords)
    try:
        report = bounds_report(dist, threat, mu=args.mu)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as err:
        raise UsageError(one_line(err)) from None
    if args.json:
        print(json.dumps({k: (v if isinstance(v, (int, float)) else str(v)) for k, v in report.items()}, indent=2))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    # imported here, not at the top: reproduce loads matplotlib (about a second), which every other command and
    # every `toyrobust COMMAND --help` would otherwise pay for
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
        raise UsageError(one_line(err)) from None
    return 0


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    # every input and output is checked before the (minutes of) work starts
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}")
    if args.workers < 0:
        raise UsageError(f"--workers must be an integer >= 0 (0: the cases run in this process), got {args.workers}")
    if args.no_cache and args.cache_dir is not None:
        raise UsageError("--no-cache and --cache-dir exclude each other: give one")
    device = check_device(args.device)
    if args.csv:
        check_output_file("--csv", args.csv)
    cache = False if args.no_cache else (None if args.cache_dir is None else check_output_folder("--cache-dir",
                                                                                                 args.cache_dir))
    progress = not args.no_progress and bool(getattr(sys.stderr, "isatty", lambda: False)())
    lines = not args.json and not progress  # one line per case where no bar is shown (a log file, a pipe)
    if not args.json:
        print(f"building the cross-check cases ({'quick' if args.quick else 'full'} size"
              f"{', training the networks or loading them from the cache' if not args.no_trained else ''}) ...",
              file=sys.stderr, flush=True)

    def report(i: int, total: int, res: Any) -> None:
        if lines:
            print(f"[{i}/{total}] {res.group} | {res.classifier} | {res.threat} | {res.definition}: {res.verdict} "
                  f"({res.seconds:.1f} s)", file=sys.stderr, flush=True)

    try:
        results = run_default(quick=args.quick, trained=not args.no_trained, only=args.only, n=args.n,
                              seed=args.seed, level=args.level, device=device, cache=cache, workers=args.workers,
                              progress=progress, report=report)
    except ValueError as err:
        if args.only is not None and "matches no case" in str(err):
            raise UsageError(f"--only {args.only!r} matches no case") from None
        raise
    if args.csv:
        with open(args.csv, "w") as fh:
            fh.write(cc.to_csv(results))
    print(cc.to_json(results) if args.json else cc.format_table(results))
    bad = sum(r.verdict in ("disagree", "bound violated") for r in results)
    return 1 if (bad and args.strict) else 0


_PARAM_HELP = "a distribution parameter (repeatable); a name instead of a number makes it symbolic"
_COORDS_HELP = "perturbed coordinates (0-based): '1:' (from 1 on), '0:3', or '0,2'"


def _add_dist_arguments(p: argparse.ArgumentParser, param_help: str = _PARAM_HELP) -> None:
    """The positional DIST and the repeatable --param of the commands that take a distribution."""
    p.add_argument("dist", metavar="DIST", help=f"one of: {', '.join(DISTRIBUTIONS)}")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=param_help)


def _add_describe(sub: Any) -> None:
    p = sub.add_parser(
        "describe",
        help=COMMANDS["describe"],
        description="Print a distribution, its support, the orthogonal projection onto it (with tie rules), its "
                    "log-odds and its Bayes rule as sympy formulas. Parameters may be numbers or symbol names "
                    "(e.g. --param p=p for a symbolic p).",
        epilog="examples: toyrobust describe tsipras --param p=0.9 --param eta=3;  "
               "toyrobust describe robust-nonrobust --param D=D",
    )
    _add_dist_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--latex", action="store_true", help="also print the Bayes rule in LaTeX")
    p.set_defaults(func=_cmd_describe)


def _add_risk(sub: Any) -> None:
    p = sub.add_parser(
        "risk",
        help=COMMANDS["risk"],
        description="Print the analytic standard or adversarial risk of a classifier on a distribution: its "
                    "value (computed in log space), its closed form and how it was obtained. Parameters, weights "
                    "and eps may be numbers or symbol names (the result is then a formula). A combination with "
                    "no closed form is an error (exit status 2) that suggests tr.estimate_risk.",
        epilog="examples: toyrobust risk tsipras --param p=0.9 --param eta=3 --classifier bayes --threat linf:0.5; "
               "toyrobust risk robust-nonrobust --param D=D --classifier robust --threat linf:eps --json",
    )
    _add_dist_arguments(p)
    p.add_argument("--classifier", default="bayes", metavar="SPEC", help=f"{CLASSIFIER_SPECS} (default: bayes)")
    p.add_argument("--threat", default=None, metavar="NORM:EPS",
                   help="linf:EPS, l2:EPS or l1:EPS; omit for the standard risk")
    p.add_argument("--coords", default=None, metavar="COORDS", help=_COORDS_HELP)
    p.add_argument("--definition", default="ball", choices=DEFINITIONS,
                   help="when a perturbed point counts as adversarial (default: ball)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--latex", action="store_true", help="also print the closed form in LaTeX")
    p.set_defaults(func=_cmd_risk)


def _add_bounds(sub: Any) -> None:
    p = sub.add_parser(
        "bounds", help=COMMANDS["bounds"],
        description="Print the analytic bounds: the optimal (best-classifier) adversarial risk, the Bayes risk, the "
                    "label-invariant radius, Tsipras et al.'s trade-off and the spherical isoperimetric bound.",
        epilog="example: toyrobust bounds robust-nonrobust --param D=100 --threat linf:0.3")
    _add_dist_arguments(p, param_help="a distribution parameter")
    p.add_argument("--threat", default=None, metavar="NORM:EPS",
                   help="e.g. linf:0.3, l2:1, l1:2 (EPS may be a symbol name)")
    p.add_argument("--coords", default=None, metavar="COORDS", help=_COORDS_HELP)
    p.add_argument("--mu", type=float, default=0.01, help="error measure for the isoperimetric bound")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bounds)


def _add_reproduce(sub: Any) -> None:
    p = sub.add_parser(
        "reproduce", help=COMMANDS["reproduce"],
        description="Run every analyses/<name>.py script (or those named with --only), writing figures/<name>.png, "
                    ".pdf and the data behind each as CSV (--quick runs write to figures/quick/, ignored by git, so "
                    "the committed figures stay as they are). Needs a source checkout (pip install -e .).")
    p.add_argument("--quick", action="store_true", help="quick sizes (seconds to a minute per figure)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only this figure (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: <repo>/figures for full runs, the "
                                               "git-ignored <repo>/figures/quick for --quick runs)")
    p.set_defaults(func=_cmd_reproduce)


def _add_crosscheck(sub: Any) -> None:
    p = sub.add_parser(
        "crosscheck", help=COMMANDS["crosscheck"],
        description="For each case (distribution, classifier or trained network, threat, definition) print the "
                    "closed-form risk, the Monte Carlo estimate with its exact Clopper-Pearson interval, and a "
                    "verdict: agree, attack weaker (inexact attack below the closed form), DISAGREE, bound holds, "
                    "BOUND VIOLATED. Trained networks are cached on this machine (keyed by their whole "
                    "configuration, never downloaded), so a second run skips their training; --workers N runs the "
                    "cases on N processes.",
        epilog="examples: toyrobust crosscheck --quick;  toyrobust crosscheck --workers 2;  "
               "toyrobust crosscheck --only spheres --no-cache")
    p.add_argument("--quick", action="store_true", help="small dimensions and short trainings")
    p.add_argument("--no-trained", action="store_true", help="skip the trained networks")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run the cases on N worker processes (default 0: one after the other in this process); "
                        "every case keeps its seed, so the rows equal the serial run's")
    p.add_argument("--cache-dir", default=None, metavar="PATH",
                   help="where trained networks are cached (default: $TOYROBUST_CACHE_DIR, else "
                        "$XDG_CACHE_HOME/toyrobust, else ~/.cache/toyrobust)")
    p.add_argument("--no-cache", action="store_true",
                   help="train every network afresh; read and write no cached network")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are shown only when stderr is a terminal; otherwise one line per case)")
    p.add_argument("--only", default=None, metavar="TEXT", help="only cases whose group or name contains TEXT")
    p.add_argument("--n", type=int, default=20_000, help="Monte Carlo samples per case (default 20000)")
    p.add_argument("--level", type=float, default=0.999, help="confidence level (default 0.999)")
    p.add_argument("--seed", type=int, default=0, help=f"master seed, an integer in [0, {MAX_SEED}]")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--csv", default=None, metavar="PATH", help="also write the results as CSV")
    p.add_argument("--strict", action="store_true", help="exit 1 when a case disagrees or a bound fails")
    p.set_defaults(func=_cmd_crosscheck)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``toyrobust`` command: one subparser per entry of :data:`COMMANDS`."""
    parser = UsageParser(prog="toyrobust", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"toyrobust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=UsageParser)
    sub.required = True
    for add in (_add_describe, _add_risk, _add_bounds, _add_reproduce, _add_crosscheck, add_defend_parser,
                add_sweep_parser, add_eps_parser):
        add(sub)
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
              f"{one_line(err)})", file=sys.stderr)
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
