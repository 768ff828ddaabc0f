"""benchmarks/run_all.py: option discovery, output parsing of every benchmark format, failures as rows."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ra():
    spec = importlib.util.spec_from_file_location("toyrobust_bench_run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value, target, met", [(0.95, ">= 0.9", True), (0.85, ">= 0.9", False),
                                                (1.21, "ratio <= 1.2", None), (1.2, "<= 1.2", True),
                                                (0.81, "< 0.5 s", False), (2083.0, ">= 1000", True),
                                                (None, ">= 1", None), (1.0, "-", None)])
def test_check_target(ra, value, target, met):
    assert ra.check_target(value, target) is met


def test_json_outputs_of_the_attack_estimate_and_memory_benchmarks(ra):
    pgd = {"benchmark": "pgd_throughput", "batch": 512, "steps": 5, "bare_sample_steps_per_s": 100.0,
           "ours_sample_steps_per_s": 95.0, "ratio_ours_over_bare": 0.95, "ratio_ours_over_bare_min": 0.85,
           "target": ">= 0.9"}
    est = {"benchmark": "estimate_time", "target": "+-0.03 at 95% (width 0.06)",
           "seconds": {"ours": [1.0, 3.0, 2.0], "reference": [4.0, 5.0, 6.0]},
           "speedup_reference_over_ours_median": 2.5, "speedup_target": ">= 1.5"}
    mem = {"benchmark": "estimate_memory", "small": {"n": 10, "peak_rss_kib": 1024 * 300},
           "large": {"n": 1000, "peak_rss_kib": 1024 * 390}, "peak_rss_ratio_large_over_small": 1.3,
           "target": "ratio <= 1.2"}
    # printed after other lines, indented over several lines, as the scripts do
    rows = ra.parse_output("pgd_throughput", "warming up\n" + json.dumps(pgd, indent=1) + "\n")
    assert (rows[0]["ours"], rows[0]["baseline"], rows[0]["ratio"], rows[0]["met"]) == (95.0, 100.0, 0.95, True)
    assert rows[1]["ratio"] == 0.85 and rows[1]["met"] is False
    rows = ra.parse_output("estimate", json.dumps(est, indent=1))
    assert (rows[0]["ours"], rows[0]["baseline"], rows[0]["ratio"], rows[0]["met"]) == (2.0, 5.0, 2.5, True)
    rows = ra.parse_output("memory", json.dumps(mem))
    assert rows[0]["ours"] == 390 and rows[0]["baseline"] == 300 and rows[0]["met"] is False


def test_text_outputs_of_the_grid_and_training_benchmarks(ra):
    training = textwrap.dedent("""\
        Gilmer MLP 500-1000-1000-1 (batch norm True), cpu, 2 threads, batch 128, 20 steps x 2 repeats
          bare torch loop :       1234 samples/s
          toyrobust.train :       1000 samples/s
          ratio train/bare: 0.810 (median; per repeat 0.800, 0.820; target >= 0.9)
        """)
    rows = ra.parse_output("training", training)
    assert (rows[0]["ours"], rows[0]["baseline"], rows[0]["ratio"], rows[0]["met"]) == (1000, 1234, 0.81, False)
    grid = textwrap.dedent("""\
        grid: robust/non-robust Bayes risk under Linf(eps), 1,000,000 points (D in [2, 1e9], eps in [0, 0.5])
          build (symbolic risk + lambdify, once): 1.23 s
          grid evaluation: 0.120 s  (120 ns/point)   target < 0.5 s: PASS
          sympy expression point by point: 2.50 ms/point on 200 grid points
          speed-up per point: 20,833x   target >= 1000x: PASS
        accuracy vs mpmath (50 digits): 30 risks down to 1e-300: max relative error 2.00e-14   target <= 1e-9: PASS
        """)
    rows = ra.parse_output("risk_grid", grid)
    assert [r["met"] for r in rows] == [True, True, True]
    assert rows[0]["ours"] == 0.12 and rows[1]["ratio"] == 20833 and rows[1]["baseline"] == 2.5e6
    spheres = ("lambdify once: 10.0 ms\n"
               "grid of 1,000,000 points (lambdified CapFraction): wall 0.810 s, cpu 0.800 s (810 ns/point)\n"
               "grid of 1,000,000 points (linear_sphere_risk): wall 0.405 s, cpu 0.400 s\n"
               "sympy subs+evalf per point (mpmath): 20.00 ms; ratio 24,691x\n"
               "largest relative error of cap fractions in [1e-300, 0.5] at D = 500 vs mpmath: 4.62e-14\n")
    rows = ra.parse_output("spheres_grid", spheres)
    assert (rows[0]["ours"], rows[0]["baseline"], rows[0]["ratio"], rows[0]["met"]) == (0.81, 0.405, 2.0, False)
    assert rows[1]["ratio"] == 24691 and rows[2]["ours"] == 4.62e-14


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def test_run_one_passes_options_and_reports_failures(ra, tmp_path):
    ok = _script(tmp_path, "bench_ok.py", """\
        import argparse, json, sys
        ap = argparse.ArgumentParser()
        ap.add_argument("--device"); ap.add_argument("--quick", action="store_true"); ap.add_argument("--json")
        a = ap.parse_args()
        obj = {"rows": [{"metric": f"m {a.device} {a.quick}", "ours": 3.0, "baseline": 2.0, "ratio": 1.5,
                         "target": ">= 1.2"}]}
        open(a.json, "w").write(json.dumps(obj))
        """)
    res = ra.run_one(ok, "cuda", True, timeout=60)
    assert res["status"] == "ok" and "--device" in res["command"] and "--quick" in res["command"]
    assert res["rows"][0]["metric"] == "m cuda True" and res["rows"][0]["met"] is True

    plain = _script(tmp_path, "bench_plain.py", "print('speed: 3.0x   target >= 4')\n")
    res = ra.run_one(plain, "cuda", True, timeout=60)
    assert res["command"][-1].endswith("bench_plain.py")  # no parser: no options passed
    assert res["rows"][0]["ours"] == 3.0 and res["rows"][0]["met"] is False and res["notes"]

    fail = _script(tmp_path, "bench_fail.py", "raise SystemExit('no device here')\n")
    res = ra.run_one(fail, "cpu", False, timeout=60)
    assert res["status"] == "failed" and "no device here" in res["rows"][0]["metric"]
    assert res["rows"][0]["met"] is False

    slow = _script(tmp_path, "bench_slow.py", "import time\ntime.sleep(60)\n")
    res = ra.run_one(slow, "cpu", False, timeout=1.5)
    assert res["status"] == "timeout" and "timed out" in res["rows"][0]["metric"]

    silent = _script(tmp_path, "bench_silent.py", "print('nothing to see')\n")
    res = ra.run_one(silent, "cpu", False, timeout=60)
    assert res["status"] == "ok" and "no ratio lines" in res["rows"][0]["metric"]
    table = ra.format_table([r for r in res["rows"]])
    assert table.splitlines()[0].split() == ["benchmark", "metric", "ours", "baseline", "ratio", "target", "met?"]


def test_smoothing_and_sweep_json_become_rows(ra):
    run_all = ra
    smooth = {"models": {"linear": {"measure": "process CPU seconds", "ours_evaluations_per_s": 2.0,
                                    "loop_evaluations_per_s": 1.0, "ratio_ours_over_loop": 2.0}}}
    (row,) = run_all.rows_from_json(smooth)
    assert row["ratio"] == 2.0 and row["met"] is True
    sweep = {"scaling": {"tasks": 16, "seconds_1_worker": [4.0], "seconds_2_workers": [2.5], "speedup_median": 1.6,
                         "target": 1.7}, "overhead": {"in_process_ms_per_task": 0.7, "plain_loop_ms_per_task": 0.5}}
    speed, over = run_all.rows_from_json(sweep)
    assert speed["met"] is False and abs(over["ours"] - 0.2) < 1e-12 and over["met"] is True
