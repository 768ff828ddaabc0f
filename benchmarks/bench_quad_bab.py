"""Quad-CROWN's branch and bound against the SOCP branch and bound alone, on the cross-check's D=20 spheres row.

The network of the cross-check row "trained, spheres D=20 | ReLU MLP | l2:0.2 | ball" (20-100-100-1, the
cross-check's cached network, trained once like the cross-check's: seconds), 300 points of
``tr.ConcentricSpheres(20, 1.0, 1.3)`` (``--points``, generator seed 170, the full row's sample), L2 radius 0.2
(``--eps``), ``tr.verify(..., time_limit=30)``:

* baseline: ``quad_crown={"branch_share": 0}`` (Quad-CROWN's bounds, then the SOCP branch and bound on 30 s a point);
* default: Quad-CROWN's branch and bound on 15 s a point (its bounds first tightened, :func:`quadbab.tighten`),
  then the SOCP one on what is left of the 30 s;
* no tightening: the default with :func:`quadbab.tighten` skipped (the search from CROWN's intermediate bounds).

It prints per setting the verdicts, the seconds of the two search stages and in all, and the ratios against the
baseline; the three settings see the same points and the same attack pre-pass.

    python benchmarks/bench_quad_bab.py [--quick] [--points 300] [--eps 0.2] [--threads 1] [--json PATH]

``--quick``: the first 100 of those points. ``--json`` writes the settings' results and ``rows`` for
``benchmarks/run_all.py`` (ratio = the baseline's seconds over the default's, and the points each leaves open).
"""

from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import torch

import toyrobust as tr
from toyrobust.verification import quadbab


def _network() -> torch.nn.Module:
    """The full cross-check's 20-100-100-1 spheres MLP (from the network cache, trained on a miss)."""
    from toyrobust.crosscheck import default_cases

    case = next(c for c in default_cases(quick=False, trained=True, progress=False)
                if c.name == "ReLU MLP" and c.group == "trained, spheres D=20" and c.threat is not None)
    return case.clf.eval()


def _run(mlp: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, quad: dict) -> dict:
    t0 = time.perf_counter()
    res = tr.verify(mlp, x, y, tr.L2(eps), time_limit=30.0, quad_crown=quad)
    st = res.stats
    return {"robust": int(res.robust.sum()), "vulnerable": int(res.vulnerable.sum()),
            "unknown": int((~res.robust & ~res.vulnerable).sum()), "quad_bab_items": st["quad_bab_items"],
            "quad_bab_decided": st["quad_bab_decided"], "quad_bab_leaves": st["quad_bab_leaves"],
            "bab_nodes": st["bab_nodes"], "quad_bab_s": st["seconds"]["quad_bab"], "bab_s": st["seconds"]["bab"],
            "total_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first 100 points")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mlp = _network()
    points = args.points or (100 if args.quick else 300)
    x, y = tr.ConcentricSpheres(20, 1.0, 1.3).sample(300, generator=170, dtype=torch.float32)
    x, y = x[:points], y[:points]
    out = {"baseline (SOCP only)": _run(mlp, x, y, args.eps, {"branch_share": 0})}
    out["quad-bab (default)"] = _run(mlp, x, y, args.eps, {})
    with mock.patch.object(quadbab, "tighten", lambda net, x0, mask, eps, lo, up, *a: (lo, up)):
        out["quad-bab, no tightening"] = _run(mlp, x, y, args.eps, {})
    base = out["baseline (SOCP only)"]
    print(f"20-100-100-1 spheres MLP, {points} points, L2 {args.eps}, time_limit 30 s, "
          f"{args.threads} thread(s)")
    print(f"{'setting':26s} {'robust':>6s} {'vuln':>5s} {'open':>5s} {'leaves':>7s} {'nodes':>6s} "
          f"{'quad-bab s':>10s} {'socp s':>7s} {'total s':>8s} {'x faster':>8s}")
    for name, r in out.items():
        print(f"{name:26s} {r['robust']:6d} {r['vulnerable']:5d} {r['unknown']:5d} {r['quad_bab_leaves']:7d} "
              f"{r['bab_nodes']:6d} {r['quad_bab_s']:10.1f} {r['bab_s']:7.1f} {r['total_s']:8.1f} "
              f"{base['total_s'] / r['total_s']:8.2f}")
    if args.json:
        ours = out["quad-bab (default)"]
        out["rows"] = [
            {"metric": f"L2 verification of {points} points, D=20 row (s; ratio = SOCP only / with the search)",
             "ours": ours["total_s"], "baseline": base["total_s"], "ratio": base["total_s"] / ours["total_s"],
             "target": ">= 2"},
            {"metric": "  points left open (ours: with the search; baseline: SOCP only)", "ours": ours["unknown"],
             "baseline": base["unknown"], "ratio": None, "target": "<= 0"},
        ]
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
