"""``toyrobust eps-analysis``: seed 001's eps analysis (``analyses/choosing_eps_digits.py``) on a user's images.

The images come from MNIST-format IDX files (or an ``.npz`` archive) already on disk (:func:`toyrobust.datasets.
load_idx`), or from scikit-learn's bundled 8x8 digits; nothing is downloaded. Every input and the output folder are
checked before the work starts; a progress bar on stderr follows the stages (distances, training, the attacks at
each eps); the figure and its CSV tables are written to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .clibase import COMMANDS, UsageError, check_output_folder, one_line

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register the ``eps-analysis`` subcommand."""
    p = sub.add_parser(
        "eps-analysis", help=COMMANDS["eps-analysis"],
        description="Seed 001's analysis of eps on real images: mean L2/Linf distances between classes, the "
                    "label-invariant radius per class, the crafted images x0 + eps sign(x1), condition (2), and a "
                    "trained network's PGD/APGD adversarial examples judged by the projection definition (nearest "
                    "training image). Writes NAME.png, NAME.pdf and NAME-*.csv to --out.",
        epilog="examples: toyrobust eps-analysis --digits --quick;  toyrobust eps-analysis --idx "
               "train-images-idx3-ubyte --test-idx t10k-images-idx3-ubyte --n 20000 --device cuda")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--idx", metavar="PATH", help="training images: an IDX file (gzipped or not) or an .npz")
    src.add_argument("--digits", action="store_true", help="scikit-learn's bundled 8x8 digits")
    p.add_argument("--labels", metavar="PATH", help="the labels IDX file (default: beside --idx, MNIST's names)")
    p.add_argument("--test-idx", metavar="PATH", help="test images (default: 20%% of the training images, seeded)")
    p.add_argument("--test-labels", metavar="PATH", help="the test labels IDX file (default: beside --test-idx)")
    p.add_argument("--n", type=int, default=None, help="use the first N training images")
    p.add_argument("--max-per-class", type=int, default=None,
                   help="images per class for the distance tables (default: 100 with --idx as seed 001, all with "
                        "--digits)")
    p.add_argument("--max-test", type=int, default=None, help="test images attacked (default: 500 with --idx)")
    p.add_argument("--quick", action="store_true", help="a smaller network, fewer attack steps and eps values")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the subsample and the network")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--out", default="eps-analysis", help="output folder (default: ./eps-analysis)")
    p.add_argument("--name", default=None, help="file stem (default: choosing_eps_digits or the file's name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def _positive(flag: str, value: Any) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be an integer >= 1, got {value}")


def _check(args: argparse.Namespace) -> tuple[Any, Path]:
    from .clispecs import check_device

    for flag, value in (("--n", args.n), ("--max-per-class", args.max_per_class), ("--max-test", args.max_test)):
        _positive(flag, value)
    if not 0 <= args.seed < 2**63:
        raise UsageError(f"--seed must be an integer in [0, 2^63), got {args.seed}")
    for flag in ("idx", "labels", "test_idx", "test_labels"):
        path = getattr(args, flag)
        if path is not None and not Path(path).expanduser().is_file():
            raise UsageError(f"--{flag.replace('_', '-')} {path!r} is not a file")
    if args.test_labels and not args.test_idx:
        raise UsageError("--test-labels needs --test-idx")
    return check_device(args.device), check_output_folder("--out", args.out)


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, str, str]:
    """``(X, y, test or None, title, name)`` from the arguments."""
    from . import datasets

    if args.digits:
        X, y = datasets.digits(n=args.n)
        return X, y, None, "8x8 digits", args.name or "choosing_eps_digits"
    X, y = datasets.load_idx(args.idx, args.labels, n=args.n)
    test = None
    if args.test_idx:
        test = datasets.load_idx(args.test_idx, args.test_labels, n=args.max_test or 500)
    stem = Path(args.idx).name.split(".")[0]
    return X, y, test, stem, args.name or f"eps_analysis_{stem}"


def _cmd(args: argparse.Namespace) -> int:
    device, out = _check(args)
    from . import reproduce

    try:
        X, y, test, title, name = _load(args)
        module = reproduce.load("choosing_eps_digits")
    except (OSError, ValueError, ImportError) as err:
        raise UsageError(one_line(err)) from None
    per_class = args.max_per_class if args.max_per_class is not None else (None if args.digits else 100)
    max_test = args.max_test if args.max_test is not None else (None if args.digits else 500)
    try:
        paths = module.run(X, y, quick=args.quick, out=out, name=name, title=title, progress=not args.no_progress,
                           seed=args.seed, max_per_class=per_class, test=test, max_test=max_test, device=device)
    except (ValueError, TypeError) as err:
        raise UsageError(one_line(err)) from None
    for path in paths:
        print(path)  # noqa: T201 (command-line output)
    return 0
