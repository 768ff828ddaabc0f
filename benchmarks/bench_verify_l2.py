"""Complete L2 verification (branch and bound, one Clarabel SOCP per node) against the Linf MILP, per point.

Same networks as ``tests/test_verify_l2.py``: a 2 -> 16 -> 16 -> 1 MLP on a 2-D Gaussian mixture (mean (1, 0.5)) and a
20 -> 64 -> 64 -> 1 MLP on a 20-D mixture (mean 0.3 on every coordinate), float64, trained 150 Adam steps. For each
L2 radius ``eps`` the same points are verified under ``L2(eps)`` (``tr.verify``: forward pass, PGD, IBP/CROWN, then
:mod:`toyrobust.verification.l2bab`) and under the two Linf balls that sandwich it, ``Linf(eps / sqrt(d))``
(inscribed) and ``Linf(eps)`` (circumscribed) (PGD, IBP/CROWN, then the MILP of Tjeng et al. with HiGHS). Reported:
seconds per point and the verdict counts; on the 2-D network also ``minimal_distance`` per point, ``"l2"`` against
``"linf"``. No target: the table says what an exact L2 answer costs next to the Linf one.

    python benchmarks/bench_verify_l2.py [--quick] [--points N] [--time-limit S] [--threads T] [--json PATH]
        [--radii-20d R,R,...] [--only 2-16-16-1|20-64-64-1] [--no-linf] [--per-point] [--moments-baseline]

``--radii-20d 0.76,1.1,1.33`` reaches the 20-64-64-1 network's median minimal distance (about 1.33 for the 12
points: PGD's distances, benchmarks/README.md); ``--no-linf`` skips the Linf MILPs (slow on the circumscribed ball
at such radii); ``--per-point`` verifies one point at a time and reports each point's seconds, nodes and verdict;
``--moments-baseline`` adds, per point, the same without the first layer's moment rows (and the ratio of the times).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

import toyrobust as tr
from toyrobust.verification import minimal_distance, moments, verify


def _trained(d, hidden, mean, n, seed=0, steps=150):
    net = tr.models.MLP(d, hidden, seed=seed, dtype=torch.float64)
    dist = tr.GaussianMixture(mean)
    x, y = dist.sample(1024, generator=tr.rng.make_generator(seed), dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.softplus(-y * net(x).reshape(-1)).mean().backward()
        opt.step()
    xs, ys = dist.sample(n, generator=tr.rng.make_generator(seed + 1), dtype=torch.float64)
    return net.eval(), xs, ys


def _timed_verify(net, x, y, threat, time_limit):
    t0 = time.perf_counter()
    res = verify(net, x, y, threat, time_limit=time_limit)
    return (time.perf_counter() - t0) / x.shape[0], res.counts(), res.stats


def _per_point(net, x, y, threat, time_limit, baseline=False):
    """Each point on its own: (status, how decided, seconds, branch-and-bound nodes); with ``baseline`` also
    without the first layer's moment rows (``moments.max_dim = 0``: single-neuron relaxations only)."""
    out = []
    for i in range(x.shape[0]):
        row = {}
        for tag, dim in ([("", moments.max_dim)] + ([("_no_moments", 0)] if baseline else [])):
            saved, moments.max_dim = moments.max_dim, dim
            try:
                t0 = time.perf_counter()
                res = verify(net, x[i:i + 1], y[i:i + 1], threat, time_limit=time_limit)
                row.update({f"status{tag}": res.status[0], f"by{tag}": res.decided_by[0],
                            f"seconds{tag}": round(time.perf_counter() - t0, 3),
                            f"bab_nodes{tag}": res.stats["bab_nodes"]})
            finally:
                moments.max_dim = saved
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer points")
    ap.add_argument("--points", type=int, default=None, help="points per network (default 20, quick 8)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds per point, both methods (default 60, quick 10)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--radii-20d", default=None, help="L2 radii for the 20-64-64-1 network (default 0.2,0.5)")
    ap.add_argument("--only", default=None, choices=["2-16-16-1", "20-64-64-1"], help="one network only")
    ap.add_argument("--no-linf", action="store_true", help="skip the Linf MILP comparisons")
    ap.add_argument("--per-point", action="store_true", help="also verify point by point (seconds, nodes)")
    ap.add_argument("--moments-baseline", action="store_true",
                    help="with --per-point: each point also without the first layer's moment rows, and the ratio")
    ap.add_argument("--json", default=None, help="also write the result object here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.points or (8 if args.quick else 20)
    if args.time_limit is None:
        args.time_limit = 10.0 if args.quick else 60.0
    setups = [("2-16-16-1", 2, (16, 16), [1.0, 0.5], (0.5, 1.5)),
              ("20-64-64-1", 20, (64, 64), [0.3] * 20, (0.2, 0.5))]
    if args.radii_20d:
        setups[1] = setups[1][:4] + (tuple(float(r) for r in args.radii_20d.split(",")),)
    setups = [s for s in setups if args.only in (None, s[0])]
    rows, detail = [], []
    for name, d, hidden, mean, radii in setups:
        net, x, y = _trained(d, hidden, mean, n)
        for eps in radii:
            l2 = _timed_verify(net, x, y, tr.L2(eps), args.time_limit)
            if args.per_point:
                pp = _per_point(net, x, y, tr.L2(eps), args.time_limit, args.moments_baseline)
                detail.append({"network": name, "eps": eps, "per_point": pp})
                if args.moments_baseline:
                    ours, base = sum(p["seconds"] for p in pp), sum(p["seconds_no_moments"] for p in pp)
                    rows.append({"metric": f"{name} L2 {eps:g}: s per point, per-point B&B (decided "
                                           f"{sum(p['status'] != 'unknown' for p in pp)}/{len(pp)}, without the "
                                           f"moment rows {sum(p['status_no_moments'] != 'unknown' for p in pp)})",
                                 "ours": ours / len(pp), "baseline": base / len(pp), "ratio": base / ours,
                                 "target": "-"})
            if args.no_linf:
                detail.append({"network": name, "eps": eps, "points": n,
                               "l2": {"s_per_point": l2[0], "counts": l2[1], "bab_nodes": l2[2]["bab_nodes"],
                                      "bab_solves": l2[2]["bab_solves"]}})
                rows.append({"metric": f"{name} L2 {eps:g}: s/point, L2 B&B (L2 {l2[1]})", "ours": l2[0],
                             "baseline": None, "ratio": None, "target": "-"})
                continue
            inner = _timed_verify(net, x, y, tr.Linf(eps / math.sqrt(d)), args.time_limit)
            outer = _timed_verify(net, x, y, tr.Linf(eps), args.time_limit)
            detail.append({"network": name, "eps": eps, "points": n,
                           "l2": {"s_per_point": l2[0], "counts": l2[1], "bab_nodes": l2[2]["bab_nodes"],
                                  "bab_solves": l2[2]["bab_solves"]},
                           "linf_inscribed": {"eps": eps / math.sqrt(d), "s_per_point": inner[0], "counts": inner[1]},
                           "linf_circumscribed": {"eps": eps, "s_per_point": outer[0], "counts": outer[1]}})
            rows.append({"metric": f"{name} L2 {eps:g}: s/point, L2 B&B vs Linf {eps / math.sqrt(d):.3g} MILP "
                                   f"(L2 {l2[1]}; Linf {inner[1]})",
                         "ours": l2[0], "baseline": inner[0], "ratio": l2[0] / max(inner[0], 1e-12), "target": "-"})
            rows.append({"metric": f"  same, vs Linf {eps:g} MILP (Linf {outer[1]})",
                         "ours": l2[0], "baseline": outer[0], "ratio": l2[0] / max(outer[0], 1e-12), "target": "-"})
        if d == 2 and not args.no_linf:
            k = min(n, 6)
            t0 = time.perf_counter()
            md2 = minimal_distance(net, x[:k], y[:k], "l2", time_limit=args.time_limit)
            t2 = (time.perf_counter() - t0) / k
            t0 = time.perf_counter()
            mdi = minimal_distance(net, x[:k], y[:k], "linf", time_limit=args.time_limit)
            ti = (time.perf_counter() - t0) / k
            detail.append({"network": name, "minimal_distance": {"l2_s_per_point": t2, "linf_s_per_point": ti,
                                                                 "l2_status": md2.status, "linf_status": mdi.status,
                                                                 "l2": np.round(md2.distance, 6).tolist()}})
            rows.append({"metric": f"{name} minimal_distance s/point, l2 vs linf ({k} points; l2 optimal "
                                   f"{md2.status.count('optimal')}, linf optimal {mdi.status.count('optimal')})",
                         "ours": t2, "baseline": ti, "ratio": t2 / max(ti, 1e-12), "target": "-"})
    obj = {"benchmark": "verify_l2", "rows": rows, "detail": detail, "threads": args.threads,
           "time_limit": args.time_limit}
    text = json.dumps(obj, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
