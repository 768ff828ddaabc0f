"""Peak memory of estimate_risk with n = 10^7 against n = 10^5 at D = 500 (target: within 1.2x).

Each n runs in its own subprocess, which reports its peak resident set size (``ru_maxrss``) and, on CUDA, torch's
peak allocated GPU memory. The baseline is the peak after importing toyrobust and running one warm-up estimate of
a single chunk, so the growth above it is what the estimate itself holds. Setting: the robust/non-robust features
model with D = 500 (float32) and its Bayes (linear) classifier; by default the standard risk (threat=None: sample
and classify, the cheapest run that still touches every point), or with ``--attack exact`` an L2 adversary with
toyrobust's exact attack. A non-streaming run would hold n x 500 float32 values: 20 GB at n = 10^7.

    python benchmarks/bench_memory.py [--device cpu|cuda|auto] [--quick] [--attack none|exact]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
import torch
import toyrobust as tr
n, device, attack = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist = tr.GaussianMixture.robust_nonrobust(500)
clf = dist.bayes_classifier()
kw = {} if attack == "none" else {"threat": tr.L2(0.5), "attack": "exact"}
tr.estimate_risk(dist, clf, n=8192, device=device, progress=False, **kw)  # warm-up: one chunk
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
est = tr.estimate_risk(dist, clf, n=n, device=device, progress=False, **kw)
out = {"n": n, "seconds": time.perf_counter() - t0, "baseline_rss_kib": base,
       "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "value": est.value,
       "ci": [est.ci_low, est.ci_high], "device": est.device}
if est.device.startswith("cuda"):
    out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
print(json.dumps(out))
"""


def run(n: int, device: str, attack: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n), device, attack, str(ROOT)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child with n={n} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    ap.add_argument("--quick", action="store_true", help="n = 10^4 against 10^6 (a smoke run)")
    ap.add_argument("--attack", choices=["none", "exact"], default="none")
    args = ap.parse_args(argv)
    small, large = (10**4, 10**6) if args.quick else (10**5, 10**7)
    a, b = run(small, args.device, args.attack), run(large, args.device, args.attack)
    result = {
        "benchmark": "estimate_memory",
        "attack": args.attack,
        "small": a,
        "large": b,
        "peak_rss_ratio_large_over_small": b["peak_rss_kib"] / a["peak_rss_kib"],
        "growth_above_baseline_mib": {"small": (a["peak_rss_kib"] - a["baseline_rss_kib"]) / 1024,
                                      "large": (b["peak_rss_kib"] - b["baseline_rss_kib"]) / 1024},
        "target": "ratio <= 1.2",
    }
    if "peak_cuda_bytes" in a:
        result["peak_cuda_ratio_large_over_small"] = b["peak_cuda_bytes"] / max(a["peak_cuda_bytes"], 1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
