"""Nearest-sample projection of EmpiricalDistribution against brute-force ``torch.cdist`` in the same run.

10^5 queries against the 1797 bundled 8x8 digits (``tr.datasets.digits``, 64 pixels in [0, 1]): each query is a
digit moved by a uniform perturbation in [-0.3, 0.3] per pixel and clipped to [0, 1] (what an Linf attack at eps
0.3 produces), so the nearest sample is often another image. For L2, Linf and L1, ``dist.nearest`` (the ``auto``
method: L2 by a float32 matrix-product screen with float64 re-ranking, Linf and L1 by a kd-tree on a CPU) is timed
against the plain baseline, chunked ``torch.cdist(q, X, p).min(1)`` in float64 with the same chunk budget, each
median of ``--repeats`` alternating runs. Both answers are checked to be the same nearest distances. A second set
of queries uniform in [0, 1]^64 (far from every digit: the kd-tree's worst case) is timed too, for honesty.

Target: under 1 s for 10^5 queries in L2 and Linf on the 2-core CPU.

    python benchmarks/bench_empirical.py [--device cpu|cuda|auto] [--quick] [--repeats R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toyrobust as tr  # noqa: E402
from toyrobust.rng import resolve_device  # noqa: E402

BUDGET = 1 << 22  # distances held at once, as the library's own search


def brute(q: torch.Tensor, X: torch.Tensor, p: float) -> torch.Tensor:
    """The baseline: chunked ``torch.cdist`` in float64, minimum per row."""
    rows = max(1, BUDGET // X.shape[0])
    return torch.cat([torch.cdist(q[i:i + rows], X, p=p).min(1).values for i in range(0, q.shape[0], rows)])


def queries(X: torch.Tensor, n: int, far: bool, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if far:
        return torch.rand(n, X.shape[1], generator=gen, dtype=torch.float64)
    idx = torch.randint(0, X.shape[0], (n,), generator=gen)
    noise = (2 * torch.rand(n, X.shape[1], generator=gen, dtype=torch.float64) - 1) * 0.3
    return (X[idx] + noise).clamp(0, 1)


def timed(fn, repeats: int, device: torch.device) -> tuple[list[float], object]:
    out, result = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out, result


def run(device: torch.device, n: int, repeats: int) -> dict:
    X, y = tr.datasets.digits(dtype=torch.float64)
    rows, details = [], {}
    for far in (False, True):
        q = queries(X, n if not far else max(1, n // 10), far).to(device)
        Xd = X.to(device)
        for norm, p in (("l2", 2.0), ("linf", float("inf")), ("l1", 1.0)):
            dist = tr.EmpiricalDistribution(X, y, norm=norm)
            dist.nearest(q[:10])  # builds the kd-tree / the float32 copy once (reported apart)
            ours, base = [], []
            for _ in range(repeats):  # alternate, so load from other processes hits both alike
                t, (d_ours, _) = timed(lambda dist=dist, q=q: dist.nearest(q), 1, device)
                ours += t
                t, d_ref = timed(lambda q=q, p=p, Xd=Xd: brute(q, Xd, p), 1, device)
                base += t
            exact = bool(torch.allclose(d_ours.cpu(), d_ref.cpu(), rtol=1e-12, atol=1e-12))
            o, b = statistics.median(ours), statistics.median(base)
            what = "uniform queries (far from the data)" if far else "perturbed digits"
            row = {"metric": f"nearest sample {norm}, {q.shape[0]:,} {what} vs 1797 digits (s; ratio cdist/ours)",
                   "ours": o, "baseline": b, "ratio": b / o, "target": "-" if far or norm == "l1" else "ours < 1 s",
                   "met": None if far or norm == "l1" else bool(o < 1.0), "exact": exact}
            rows.append(row)
            details[f"{norm}{'-far' if far else ''}"] = {"ours_s": ours, "cdist_s": base, "exact": exact}
    return {"benchmark": "empirical_nearest", "device": str(device), "threads": torch.get_num_threads(),
            "rows": rows, "details": details}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    ap.add_argument("--quick", action="store_true", help="10^4 queries, one repeat")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats (median reported)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the result here")
    args = ap.parse_args()
    device = resolve_device(args.device)
    out = run(device, 10_000 if args.quick else 100_000, 1 if args.quick else args.repeats)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    for r in out["rows"]:
        print(f"# {r['metric']}: ours {r['ours']:.3f} s, cdist {r['baseline']:.3f} s, x{r['ratio']:.1f}, "
              f"exact={r['exact']}, target {r['target']}", file=sys.stderr)


if __name__ == "__main__":
    main()
