"""Complete verification with bound tightening (``toyrobust.verification.verify``) against a naive big-M MILP.

Same network, same points, same threat: a 2 -> 64 -> 64 -> 1 ReLU MLP trained briefly (Adam, logistic loss, fresh
samples) on a 2-D Gaussian mixture (``--net 2d``, default) or a 20 -> 64 -> 64 -> 1 MLP on the robust/non-robust
features model (``--net d20``, D = 20), Linf ball. Ours: forward pass, PGD pre-pass, IBP and
CROWN bounds (stable neurons get no binary), then the MILP of Tjeng et al. (2019) on the points left. The naive
baseline: one MILP per point with every ReLU given a binary variable and one loose big-M per layer (the largest
|IBP bound| of the layer), no PGD, no CROWN (same objective and cut, same HiGHS). Reported: binary variables summed
over the programs solved (target >= 10x fewer), wall time (target >= 5x faster), and whether the verdicts agree.
A second part times the certificate-only path (IBP + CROWN, no MILP) on Gilmer et al.'s 500 -> 1000 -> 1000 -> 1 MLP
on the concentric spheres (trained briefly) for small Linf radii.

    python benchmarks/bench_verify.py [--quick] [--net 2d|d20] [--device cpu|cuda|auto] [--points N] [--eps E]
        [--time-limit S] [--threads T] [--no-large]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import toyrobust as tr
from toyrobust.models import MLP
from toyrobust.verification import InputBall, extract_network, ibp_bounds, verify
from toyrobust.verification.milp import build_milp, solve_milp


def _train(model, dist, steps, batch, lr, device, seed):
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        x, y = dist.sample(batch, generator=gen, device=device)
        opt.zero_grad(set_to_none=True)
        F.softplus(-y.to(x.dtype) * model(x)).mean().backward()
        opt.step()
    return model.eval()


def naive_verify(model, x, y, threat, time_limit):
    """Every point through one MILP: every ReLU a binary, big-M = max |IBP bound| per layer, no PGD, no CROWN."""
    net = extract_network(model)
    eps = float(threat.eps)
    mask = np.ones(x.shape[1], dtype=bool)
    ball = InputBall(x.to(net.device, torch.float64), eps, math.inf, torch.as_tensor(mask, device=net.device))
    ibp = ibp_bounds(net, ball)
    weights = [w.cpu().numpy() for w in net.weights]
    biases = [b.cpu().numpy() for b in net.biases]
    status, binaries = [], 0
    tol = 1e-5
    for i in range(x.shape[0]):
        x0 = x[i].detach().to("cpu", torch.float64).numpy()
        lo = [t[i].cpu().numpy() for t in ibp.lower[:-1]]
        up = [t[i].cpu().numpy() for t in ibp.upper[:-1]]
        lab = int(y[i])
        prob = build_milp(weights, biases, x0, eps, math.inf, mask, lo, up, label=lab, cut=tol, naive=True)
        binaries += prob.n_binary
        out = solve_milp(prob, time_limit)
        if out.status == "infeasible" or out.dual_bound > tol:
            status.append("robust")
        elif out.x is not None:
            z = torch.as_tensor(np.clip(out.x, x0 - eps, x0 + eps), dtype=x.dtype, device=x.device)[None]
            with torch.no_grad():
                m = float(model(z.to(next(model.parameters()).dtype)).reshape(-1)[0])
            status.append("vulnerable" if (1 if m >= 0 else -1) != lab else "unknown")
        else:
            status.append("unknown")
    return status, binaries


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (CUDA when available)")
    parser.add_argument("--quick", action="store_true", help="20 points, smaller large-MLP part (a smoke run)")
    parser.add_argument("--points", type=int, default=None)
    parser.add_argument("--net", choices=["2d", "d20"], default="2d", help="2-64-64-1 on 2-D data, or 20-64-64-1")
    parser.add_argument("--eps", type=float, default=None, help="Linf radius (default 0.3 for 2d, 0.2 for d20)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="our MILP seconds per point")
    parser.add_argument("--naive-time-limit", type=float, default=120.0, help="the naive MILP's seconds per point")
    parser.add_argument("--large-only", action="store_true", help="only the 500-1000-1000-1 certificate part")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-large", action="store_true", help="skip the 500-1000-1000-1 certificate part")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    n = args.points or (20 if args.quick else 100)
    if args.net == "d20":
        dist, name = tr.GaussianMixture.robust_nonrobust(20), "20-64-64-1 MLP, robust/non-robust features D=20"
        eps = 0.2 if args.eps is None else args.eps
    else:
        dist, name = tr.GaussianMixture([1.0, 0.5]), "2-64-64-1 MLP, Gaussian mixture mean (1, 0.5)"
        eps = 0.3 if args.eps is None else args.eps
    model = MLP(dist.dim, (64, 64), seed=0, device=device)
    _train(model, dist, 300, 256, 1e-3, device, seed=1)
    x, y = dist.sample(n, generator=tr.rng.make_generator(2, device), device=device)
    threat = tr.Linf(eps)
    out: dict = {"network": name, "device": str(device), "points": n, "threat": repr(threat),
                 "time_limit_per_point": args.time_limit,
                 "naive_time_limit_per_point": args.naive_time_limit}

    if args.large_only:
        out = {"device": str(device)}
    else:
        out.update(_compare(model, x, y, threat, n, args))
    if not args.no_large:
        out["large_mlp_certificate"] = _large(args, device)
    print(json.dumps(out, indent=1))
    return out


def _compare(model, x, y, threat, n, args) -> dict:
    t0 = time.perf_counter()
    res = verify(model, x, y, threat, time_limit=args.time_limit)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_status, naive_bin = naive_verify(model, x, y, threat, args.naive_time_limit)
    t_naive = time.perf_counter() - t0
    agree = [a == b for a, b in zip(res.status, naive_status)]
    decided_both = [a != "unknown" and b != "unknown" for a, b in zip(res.status, naive_status)]
    return {
        "ours": {"seconds": round(t_ours, 3), "binaries": res.stats["binaries"], "milp_calls": res.stats["milp_calls"],
                 "counts": res.counts(), "decided_by": {k: res.decided_by.count(k) for k in set(res.decided_by)},
                 "unstable_ibp_mean": res.stats["unstable_ibp_mean"],
                 "unstable_crown_mean": res.stats["unstable_crown_mean"],
                 "stage_seconds": {k: round(v, 3) for k, v in res.stats["seconds"].items()}},
        "naive": {"seconds": round(t_naive, 3), "binaries": naive_bin,
                  "counts": {k: naive_status.count(k) for k in ("robust", "vulnerable", "unknown")}},
        "binary_ratio": round(naive_bin / max(res.stats["binaries"], 1), 1),
        "binaries_per_program": {"ours": round(res.stats["binaries"] / max(res.stats["milp_calls"], 1), 1),
                                 "naive": round(naive_bin / max(n, 1), 1)},
        "speedup": round(t_naive / t_ours, 2),
        "verdicts_agree": all(agree),
        "disagreements_where_both_decided": sum(1 for a, dd in zip(agree, decided_both) if dd and not a),
    }


def _large(args, device) -> dict:
    """Certificate-only verification (IBP + CROWN, no MILP) of a briefly trained Gilmer-style MLP."""
    spheres = tr.ConcentricSpheres(dim=500, r_inner=1.0, r_outer=1.3)
    big = MLP(500, (1000, 1000), seed=0, device=device)
    _train(big, spheres, 20 if args.quick else 100, 256, 1e-3, device, seed=3)
    m = 20 if args.quick else 100
    xb, yb = spheres.sample(m, generator=tr.rng.make_generator(4, device), device=device)
    rows = []
    for eps in ([1e-4, 1e-3] if args.quick else [1e-4, 1e-3, 3e-3, 1e-2]):
        t0 = time.perf_counter()
        r = verify(big, xb, yb, tr.Linf(eps), method="bounds")
        rows.append({"eps": eps, "seconds": round(time.perf_counter() - t0, 3), "counts": r.counts(),
                     "certified_fraction": round(float(r.robust.double().mean()), 3),
                     "unstable_crown_mean": r.stats["unstable_crown_mean"],
                     "bounds_seconds": round(r.stats["seconds"]["bounds"], 3)})
    return {"network": "500-1000-1000-1 MLP, concentric spheres", "points": m, "rows": rows}


if __name__ == "__main__":
    main()
