"""Start-up time: ``python -c "import toyrobust"`` and ``toyrobust --help`` against a bare ``python -c pass``.

Each command runs as a fresh subprocess ``--repeats`` times (default 5) with this checkout first on PYTHONPATH;
the median wall time is reported. Targets (issue 11): ``import toyrobust`` < 1 s, ``toyrobust --help`` < 0.5 s
(absolute wall times; the bare interpreter's start-up is the baseline measured in the same run, and the ratio
says how many interpreter start-ups the command costs). ``toyrobust --help`` is run as
``python -m toyrobust --help`` (the console script's entry point, :mod:`toyrobust.launcher`) so that it
works from a plain checkout without the console script. The run also
says whether ``import toyrobust`` loads sympy and scipy (the issue asks that only commands needing them do).

Prints one JSON object (``rows``: metric, ours, baseline, ratio, target, met); ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def wall_times(cmd: list[str], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` fresh runs of ``cmd`` (output discarded; a failing run raises)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=REPO)
        out.append(time.perf_counter() - t0)
    return out


def loaded_modules() -> dict[str, bool]:
    """Which heavy libraries ``import toyrobust`` pulls in."""
    code = ("import sys, toyrobust; print(__import__('json').dumps({m: m in sys.modules for m in "
            "('sympy', 'scipy', 'matplotlib', 'torch', 'tqdm')}))")
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=_env(),
                          cwd=REPO)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="accepted for run_all.py; start-up does not use a device")
    ap.add_argument("--quick", action="store_true", help="3 runs per command instead of 5")
    ap.add_argument("--repeats", type=int, default=None, help="runs per command (default 5, quick 3)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the JSON object to PATH")
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    py = sys.executable
    wall_times([py, "-c", "import toyrobust"], 1)  # warm the file-system cache and .pyc files
    times = {}
    # alternate the three commands so that load from other processes hits all alike
    for _ in range(repeats):
        for key, cmd in (("python -c pass", [py, "-c", "pass"]),
                         ("import toyrobust", [py, "-c", "import toyrobust"]),
                         ("toyrobust --help", [py, "-m", "toyrobust", "--help"])):
            times.setdefault(key, []).extend(wall_times(cmd, 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["python -c pass"]
    rows = []
    for key, target in (("import toyrobust", 1.0), ("toyrobust --help", 0.5)):
        rows.append({"metric": f"{key} wall time (s, median of {repeats})", "ours": med[key], "baseline": base,
                     "ratio": med[key] / base, "target": f"< {target:g} s", "met": med[key] < target})
    result = {
        "benchmark": "startup",
        "python": sys.version.split()[0],
        "commands": {"import toyrobust": f"{py} -c 'import toyrobust'",
                     "toyrobust --help": f"{py} -m toyrobust --help", "python -c pass": f"{py} -c pass"},
        "seconds": times,
        "median_seconds": med,
        "loaded_by_import_toyrobust": loaded_modules(),
        "rows": rows,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
