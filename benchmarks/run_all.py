"""Run every benchmark in benchmarks/ and print one table of its ratios against baselines measured in the same run.

    python benchmarks/run_all.py [--device cpu|cuda|auto] [--quick] [--json PATH] [--timeout S] [--only TEXT]

Every ``benchmarks/bench_*.py`` runs as its own subprocess (this checkout first on PYTHONPATH, so no install is
needed) with a wall-clock timeout. ``--device`` and ``--quick`` are passed to the scripts whose argument parser
takes them (read from each script's ``--help``; a script without an argument parser runs as it is, since
``--help`` would run it). Each script's output is parsed as it is printed today: a JSON object (the attack,
estimate and memory benchmarks), or text lines (the risk-grid, spheres-grid and training benchmarks); a script
that accepts ``--json PATH`` writes its object there. A benchmark that fails, times out or prints nothing
recognisable becomes a row saying so, never a crash. The table has one row per metric:

    benchmark | metric | ours | baseline | ratio | target | met?

``ours`` and ``baseline`` are the measured quantities (rates, seconds or sizes, as the metric says), ``ratio``
what the target is about (ours/baseline, or the benchmark's own speed-up), ``met?`` yes / no / ``-`` (no target).
``--json PATH`` writes the table, the commands, the exit statuses and the machine as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COLUMNS = ("benchmark", "metric", "ours", "baseline", "ratio", "target", "met?")
NUM = r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?"


# ------------------------------------------------------------------------------------------ running
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def accepted_options(script: Path, timeout: float = 120.0) -> set[str] | None:
    """Long options the script's argument parser lists in ``--help``; None when it has no parser (``--help``
    would run the whole benchmark) or ``--help`` fails."""
    if "argparse" not in script.read_text():
        return None
    try:
        proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              timeout=timeout, env=_env(), cwd=REPO)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or "usage:" not in proc.stdout:
        return None
    return set(re.findall(r"(--[A-Za-z][A-Za-z0-9-]*)", proc.stdout))


def run_one(script: Path, device: str, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark; returns its command, status, output and parsed rows."""
    opts = accepted_options(script)
    cmd = [sys.executable, str(script)]
    notes = []
    if opts is None:
        notes.append("no argument parser: run without --device/--quick")
    else:
        if "--device" in opts:
            cmd += ["--device", device]
        elif device not in ("auto", "cpu"):
            notes.append(f"takes no --device: ran on its default device, not {device}")
        if quick and "--quick" in opts:
            cmd.append("--quick")
        elif quick:
            notes.append("takes no --quick: full run")
    json_path = None
    if opts is not None and "--json" in opts:
        fd, name = tempfile.mkstemp(suffix=".json", prefix=f"{script.stem}-")
        os.close(fd)
        json_path = Path(name)
        cmd += ["--json", str(json_path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=REPO)
        rc, out, err, status = proc.returncode, proc.stdout, proc.stderr, "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired as exc:
        rc, status = None, "timeout"
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - t0
    obj = None
    if json_path is not None:
        try:
            obj = json.loads(json_path.read_text()) if json_path.stat().st_size else None
        except (OSError, ValueError):
            obj = None
        json_path.unlink(missing_ok=True)
    name = script.stem.removeprefix("bench_")
    rows: list[dict[str, Any]] = []
    if status == "ok":
        try:
            rows = parse_output(name, out, obj)
        except Exception as exc:  # a parser bug must not lose the other benchmarks' rows
            notes.append(f"output not parsed: {type(exc).__name__}: {exc}")
        if not rows:
            rows = [_row("(no ratio lines recognised in the output)", None, None, None, "-", None)]
    elif status == "timeout":
        rows = [_row(f"(timed out after {timeout:g} s)", None, None, None, "-", False)]
    else:
        last = (err.strip().splitlines() or ["?"])[-1][:160]
        rows = [_row(f"(failed: exit status {rc}: {last})", None, None, None, "-", False)]
    for r in rows:
        r["benchmark"] = name
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return {"benchmark": name, "script": shown, "command": cmd, "status": status,
            "returncode": rc, "seconds": seconds, "notes": notes, "rows": rows,
            "stdout_tail": out[-4000:], "stderr_tail": err[-2000:]}


# ------------------------------------------------------------------------------------------ parsing
def _row(metric: str, ours: float | None, baseline: float | None, ratio: float | None, target: str,
         met: bool | None) -> dict[str, Any]:
    return {"metric": metric, "ours": ours, "baseline": baseline, "ratio": ratio, "target": target, "met": met}


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def check_target(value: float | None, target: str) -> bool | None:
    """Whether ``value`` meets a target such as ">= 0.9", "<= 1.2", "< 0.5 s" (None: no value or no target)."""
    m = re.match(rf"\s*(>=|<=|<|>)\s*({NUM})", target or "")
    if value is None or m is None or (isinstance(value, float) and math.isnan(value)):
        return None
    op, thr = m.group(1), _num(m.group(2))
    return {">=": value >= thr, "<=": value <= thr, "<": value < thr, ">": value > thr}[op]


def find_json(text: str) -> dict | None:
    """The first JSON object in ``text`` that starts a line and parses to its end (or to its own end)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"(?m)^\{", text):
        try:
            obj, _ = decoder.raw_decode(text[m.start():])
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _target_of(obj: dict, default: str = "-") -> str:
    for key in ("target", "speedup_target"):
        value = obj.get(key)
        if isinstance(value, str) and re.match(r"\s*(>=|<=|<|>)", value):
            return value.strip()
    return default


def rows_from_json(obj: dict) -> list[dict[str, Any]]:
    """Rows from a benchmark's JSON object (the known shapes first, then any numeric *ratio*/*speedup* key)."""
    if isinstance(obj.get("rows"), list):
        out = []
        for r in obj["rows"]:
            row = _row(str(r.get("metric")), r.get("ours"), r.get("baseline"), r.get("ratio"), r.get("target") or "-",
                       r.get("met"))
            if row["met"] is None:
                row["met"] = check_target(row["ratio"] if row["ratio"] is not None else row["ours"], row["target"])
            out.append(row)
        return out
    kind = obj.get("benchmark")
    if kind == "pgd_throughput":
        t = _target_of(obj, ">= 0.9")
        ratio = obj["ratio_ours_over_bare"]
        rows = [_row(f"PGD sample-steps/s, batch {obj.get('batch')}, {obj.get('steps')} steps (ours / bare loop, "
                     f"median)", obj["ours_sample_steps_per_s"], obj["bare_sample_steps_per_s"], ratio, t,
                     check_target(ratio, t))]
        if "ratio_ours_over_bare_min" in obj:
            r = obj["ratio_ours_over_bare_min"]
            rows.append(_row("PGD (best of repeats)", None, None, r, t, check_target(r, t)))
        return rows
    if kind == "estimate_time":
        t = _target_of(obj, ">= 1.5")
        secs = obj.get("seconds", {})
        ours = statistics.median(secs["ours"]) if secs.get("ours") else None
        ref = statistics.median(secs["reference"]) if secs.get("reference") else None
        ratio = obj["speedup_reference_over_ours_median"]
        rows = [_row(f"time to {obj.get('target', '?')} (s; ratio = reference / ours, median)", ours, ref, ratio, t,
                     check_target(ratio, t))]
        r = obj.get("speedup_reference_over_ours_without_early_stop_min")
        if r is not None:
            rows.append(_row("  same, ours without early stopping (best)", None, None, r, t, check_target(r, t)))
        return rows
    if kind == "estimate_memory":
        t = _target_of(obj, "<= 1.2")
        small, large = obj.get("small", {}), obj.get("large", {})
        ratio = obj["peak_rss_ratio_large_over_small"]
        rows = [_row(f"peak RSS MiB, n={large.get('n', '?')} over n={small.get('n', '?')}",
                     large.get("peak_rss_kib", math.nan) / 1024, small.get("peak_rss_kib", math.nan) / 1024, ratio, t,
                     check_target(ratio, t))]
        if "peak_cuda_ratio_large_over_small" in obj:
            r = obj["peak_cuda_ratio_large_over_small"]
            rows.append(_row("peak CUDA memory, large over small", large.get("peak_cuda_bytes"),
                             small.get("peak_cuda_bytes"), r, t, check_target(r, t)))
        return rows
    if isinstance(obj.get("models"), dict) and all("ratio_ours_over_loop" in m for m in obj["models"].values()):
        t = ">= 0.9"  # bench_smoothing: certification throughput against a plain batched loop
        return [_row(f"certify evaluations/s, {name} base (ours / plain loop, median {m.get('measure', '')})",
                     m.get("ours_evaluations_per_s"), m.get("loop_evaluations_per_s"), m["ratio_ours_over_loop"], t,
                     check_target(m["ratio_ours_over_loop"], t)) for name, m in obj["models"].items()]
    if isinstance(obj.get("scaling"), dict) and isinstance(obj.get("overhead"), dict):
        sc, ov = obj["scaling"], obj["overhead"]  # bench_sweep: 1 -> 2 workers, and per-task overhead
        t = f">= {sc.get('target', 1.7)}"
        rows = [_row(f"sweep speed-up 1 -> 2 workers ({sc.get('tasks')} Monte Carlo tasks, median)",
                     statistics.median(sc["seconds_2_workers"]) if sc.get("seconds_2_workers") else None,
                     statistics.median(sc["seconds_1_worker"]) if sc.get("seconds_1_worker") else None,
                     sc.get("speedup_median"), t, check_target(sc.get("speedup_median"), t))]
        if "in_process_ms_per_task" in ov:  # the output of bench_sweep before issue 20 item 4
            over = ov.get("in_process_ms_per_task", math.nan) - ov.get("plain_loop_ms_per_task", math.nan)
            rows.append(_row("  per-task overhead over a plain loop (ms)", over, None, None, "< 5 ms",
                             check_target(over, "< 5 ms")))
        else:
            over = ov.get("sweep_over_pool_map_ms_per_task", math.nan)
            rows.append(_row("  per-task overhead over ProcessPoolExecutor.map (ms)", ov.get("pool_sweep_ms_per_task"),
                             ov.get("pool_map_ms_per_task"), over, "<= 0.3 ms", check_target(over, "<= 0.3 ms")))
        if isinstance(obj.get("dask"), dict):
            dk = obj["dask"]
            over = dk.get("sweep_over_dask_map_ms_per_task", math.nan)
            rows.append(_row("  per-task overhead over Dask client.map (ms)", dk.get("dask_sweep_ms_per_task"),
                             dk.get("dask_map_ms_per_task"), over, "<= 2 ms", check_target(over, "<= 2 ms")))
        return rows
    rows = []
    target = _target_of(obj)
    for key, value in obj.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and re.search(r"ratio|speedup", key):
            rows.append(_row(key, None, None, float(value), target, check_target(float(value), target)))
    return rows


def rows_from_text(name: str, out: str) -> list[dict[str, Any]]:
    """Rows from the text printed by the risk-grid, spheres-grid and training benchmarks (and a generic rule:
    any line ``label ... NUMBER ... target OP NUMBER``)."""
    rows: list[dict[str, Any]] = []
    if m := re.search(rf"bare torch loop\s*:\s*({NUM}) samples/s", out):
        bare = _num(m.group(1))
        ours = _num(re.search(rf"toyrobust\.train\s*:\s*({NUM}) samples/s", out).group(1))
        ratio_m = re.search(rf"ratio train/bare:\s*({NUM}).*?target\s*((?:>=|<=|<|>)\s*{NUM})", out)
        ratio, t = (_num(ratio_m.group(1)), ratio_m.group(2)) if ratio_m else (ours / bare, ">= 0.9")
        rows.append(_row("training samples/s (toyrobust.train / bare loop, median)", ours, bare, ratio, t,
                         check_target(ratio, t)))
        if m := re.search(rf"ratio in process CPU time.*?:\s*({NUM})", out):
            r = _num(m.group(1))
            rows.append(_row("  same, in process CPU time", None, None, r, t, check_target(r, t)))
        return rows
    if m := re.search(rf"grid evaluation:\s*({NUM}) s.*?target\s*(<\s*{NUM}\s*s)", out):
        sec, t = _num(m.group(1)), m.group(2)
        pts = re.search(rf"({NUM}) points \(D in", out)
        rows.append(_row(f"risk grid, {pts.group(1) if pts else '?'} points (s)", sec, None, None, t,
                         check_target(sec, t)))
        if m := re.search(rf"speed-up per point:\s*({NUM})x\s*target\s*(>=\s*{NUM})", out):
            per_sympy = re.search(rf"point by point:\s*({NUM}) ms/point", out)
            per_grid = re.search(rf"\(({NUM}) ns/point\)", out)
            r, t = _num(m.group(1)), m.group(2)
            rows.append(_row("  per point: grid ns vs sympy ns (ratio = speed-up)",
                             _num(per_grid.group(1)) if per_grid else None,
                             _num(per_sympy.group(1)) * 1e6 if per_sympy else None, r, t, check_target(r, t)))
        if m := re.search(rf"max relative\s+error\s*({NUM})\s*target\s*(<=\s*{NUM})", out):
            err, t = _num(m.group(1)), m.group(2)
            rows.append(_row("  accuracy vs mpmath (max relative error)", err, None, None, t, check_target(err, t)))
        return rows
    if m := re.search(rf"grid of ({NUM}) points \(lambdified CapFraction\): wall ({NUM}) s", out):
        sec = _num(m.group(2))
        t = "< 0.5 s"  # issue 11: the spheres 10^6-point cap grid in < 0.5 s
        direct = re.search(rf"\(linear_sphere_risk\): wall ({NUM}) s", out)
        rows.append(_row(f"spheres cap grid, {m.group(1)} points, lambdified (s; baseline: direct numpy)", sec,
                         _num(direct.group(1)) if direct else None,
                         sec / _num(direct.group(1)) if direct and _num(direct.group(1)) else None, t,
                         check_target(sec, t)))
        if m := re.search(rf"sympy subs\+evalf per point \(mpmath\):\s*({NUM}) ms; ratio\s*({NUM})x", out):
            rows.append(_row("  per point: sympy ms (ratio = speed-up of the grid)", None, _num(m.group(1)),
                             _num(m.group(2)), "-", None))
        if m := re.search(rf"largest relative error.*?:\s*({NUM})", out):
            rows.append(_row("  cap fractions vs mpmath (max relative error)", _num(m.group(1)), None, None, "-",
                             None))
        return rows
    for line in out.splitlines():  # generic: "label: NUMBER ... target OP NUMBER"
        m = re.search(rf"^\s*(.+?):\s*({NUM}).*?target\s*((?:>=|<=|<|>)\s*{NUM})", line)
        if m:
            v, t = _num(m.group(2)), m.group(3)
            rows.append(_row(m.group(1).strip(), v, None, None, t, check_target(v, t)))
    return rows


def parse_output(name: str, out: str, obj: dict | None = None) -> list[dict[str, Any]]:
    """Rows of one benchmark from its JSON file (when it wrote one), else its stdout."""
    obj = obj if obj is not None else find_json(out)
    if obj is not None:
        rows = rows_from_json(obj)
        if rows:
            return rows
    return rows_from_text(name, out)


# ------------------------------------------------------------------------------------------ output
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    """One fixed-width table: benchmark, metric, ours, baseline, ratio, target, met?."""
    cells = [list(COLUMNS)]
    for r in rows:
        met = "-" if r.get("met") is None else ("yes" if r["met"] else "NO")
        cells.append([r["benchmark"], r["metric"], _fmt(r["ours"]), _fmt(r["baseline"]), _fmt(r["ratio"]),
                      r.get("target") or "-", met])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the run happened (CPU count, platform, torch, CUDA device)."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    try:
        load = os.getloadavg()
        info["load_average_1_5_15"] = [round(v, 2) for v in load]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default), passed to each benchmark")
    ap.add_argument("--quick", action="store_true", help="pass --quick to the benchmarks that take it")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the table and run details as JSON")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per benchmark (default 300 with --quick, 1800 otherwise)")
    ap.add_argument("--only", default=None, metavar="TEXT", help="only the scripts whose name contains TEXT")
    args = ap.parse_args(argv)
    if args.device not in ("cpu", "cuda", "auto") and not args.device.startswith("cuda:"):
        ap.error(f"--device must be cpu, cuda, cuda:N or auto, got {args.device!r}")
    timeout = args.timeout or (300.0 if args.quick else 1800.0)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if args.only in s.name]
    results = []
    start = time.perf_counter()
    for i, script in enumerate(scripts, 1):
        print(f"[{i}/{len(scripts)}] {script.name} ...", file=sys.stderr, flush=True)
        res = run_one(script, args.device, args.quick, timeout)
        print(f"[{i}/{len(scripts)}] {script.name}: {res['status']} in {res['seconds']:.1f} s"
              + (f" ({'; '.join(res['notes'])})" if res["notes"] else ""), file=sys.stderr, flush=True)
        results.append(res)
    rows = [r for res in results for r in res["rows"]]
    print(format_table(rows))
    failed = [res["benchmark"] for res in results if res["status"] != "ok"]
    print(f"\n{len(results)} benchmarks in {time.perf_counter() - start:.0f} s, device {args.device}"
          f"{', quick' if args.quick else ''}; {sum(r.get('met') is True for r in rows)} targets met, "
          f"{sum(r.get('met') is False for r in rows)} not met"
          + (f"; failed or timed out: {', '.join(failed)}" if failed else ""))
    if args.json:
        payload = {"device": args.device, "quick": args.quick, "timeout_s": timeout, "machine": machine(),
                   "seconds": time.perf_counter() - start, "rows": rows, "benchmarks": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
