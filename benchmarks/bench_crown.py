"""CROWN bound propagation (``toyrobust.verification.crown_bounds``) against the previous implementation (issue 20).

Three networks as in the issue: 2 -> 64 -> 64 -> 1 on a 2-D Gaussian mixture and 20 -> 64 -> 64 -> 1 on the
robust/non-robust features model (1000 points each), and Gilmer et al.'s 500 -> 1000 -> 1000 -> 1 on the concentric
spheres (10 points); toyrobust's MLP, trained for a few Adam steps (``--train-steps``, 0 for the initialisation),
Linf balls. Timed per network, in alternating repeats (median, so load from other processes hits every method
alike): the previous implementation (its back-substitution copied below: float64, ``[I; -I]`` rows, positive and
negative parts formed per layer), ours in float64 and ours in float32 (sound: rounding margins). Reported: time
ratios old / ours, the largest difference between ours (float64) and the old bounds, whether ours is ever looser,
and how much looser the float32 bounds are. When ``auto_LiRPA`` is importable its CROWN (float32 and float64,
``bound_lower`` and ``bound_upper``) is timed too; otherwise a note says so (see benchmarks/README.md).

Targets: the issue measured the old implementation at 0.53-0.62x auto_LiRPA float64 and 0.21-0.25x float32, so
reaching auto_LiRPA needs ours >= 1.9x the old speed in float64 and >= 4.8x in float32.

    python benchmarks/bench_crown.py [--quick] [--device cpu|cuda|auto] [--threads T] [--repeats R] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import toyrobust as tr
from toyrobust.models import MLP
from toyrobust.verification import InputBall, LayerBounds, crown_bounds, extract_network, ibp_bounds
from toyrobust.verification.bounds import _relaxation as _old_relaxation  # the relaxation itself did not change
from toyrobust.verification.bounds import linear_range
from toyrobust.verification.network import ReluNetwork

TARGETS = {"float64": 1.9, "float32": 4.8}


# ------------------------------------------------------------------------- the previous implementation (baseline)
def _old_backsub(net, k, lam, relax, ball):
    const = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
    A = lam
    for j in range(k, 0, -1):
        const = const + A @ net.biases[j]
        A = A @ net.weights[j]
        alpha, s, t = relax[j - 1]
        pos, neg = A.clamp_min(0), A.clamp_max(0)
        const = const + torch.einsum("nmk,nk->nm", neg, t)
        A = pos * alpha[:, None, :] + neg * s[:, None, :]
    const = const + A @ net.biases[0]
    A = A @ net.weights[0]
    low, _ = linear_range(A, const, ball)
    return low


def old_crown_bounds(net: ReluNetwork, ball: InputBall, ibp: LayerBounds, max_elements: int = 2 ** 24):
    """toyrobust's CROWN before issue 20 (git main at deb9dc5), verbatim but for names."""
    n = ball.x0.shape[0]
    widest = max(max(w.shape) for w in net.weights)
    step = max(1, max_elements // (2 * widest * widest))
    lowers, uppers = [ibp.lower[0].clone()], [ibp.upper[0].clone()]
    for k in range(1, len(net.weights)):
        m = net.weights[k].shape[0]
        lo_k = torch.empty(n, m, dtype=torch.float64, device=ball.x0.device)
        up_k = torch.empty_like(lo_k)
        eye = torch.eye(m, dtype=torch.float64, device=ball.x0.device)
        lam0 = torch.cat([eye, -eye], dim=0)
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            relax = [_old_relaxation(lowers[j][sl], uppers[j][sl]) for j in range(k)]
            sub = ball.chunk(sl)
            low = _old_backsub(net, k, lam0.expand(sub.x0.shape[0], -1, -1), relax, sub)
            lo_k[sl], up_k[sl] = low[:, :m], -low[:, m:]
        lowers.append(torch.maximum(lo_k, ibp.lower[k]))
        uppers.append(torch.minimum(up_k, ibp.upper[k]))
    return LayerBounds(lowers, uppers)


# ------------------------------------------------------------------------------------------------- auto_LiRPA
def _lirpa_runner(model, x, eps, dtype):
    """A callable returning auto_LiRPA's CROWN bounds, a list of (lower, upper) per layer (the pre-activations of
    every ReLU, then the margin), or None when auto_LiRPA is not importable (auto_LiRPA 0.3 needs numpy < 2 and,
    with torch >= 2.9, a patch: benchmarks/README.md)."""
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor
        from auto_LiRPA.perturbations import PerturbationLpNorm
    except Exception:  # not installed, or broken by numpy 2 / a newer torch
        return None
    # the Sequential inside the MLP: its (N, 1) output, not the MLP's out[:, 0] (a Gather auto_LiRPA 0.3 mis-bounds)
    net = copy.deepcopy(model.net).to(dtype).eval().requires_grad_(False)
    xd = x.to(dtype)
    bounded = BoundedModule(net, torch.zeros_like(xd[:1]), device=str(x.device))
    bx = BoundedTensor(xd, PerturbationLpNorm(norm=math.inf, eps=eps))

    def run():
        with torch.no_grad():  # as ours: no autograd graph (auto_LiRPA builds one when its inputs need grad)
            lo, up = bounded.compute_bounds(x=(bx,), method="CROWN")
        return [(r.inputs[0].lower, r.inputs[0].upper) for r in bounded.relus] + [(lo, up)]
    return run


def _bounds_diff(theirs: list, ours: LayerBounds) -> dict:
    """Bounds ``theirs`` (a list of (lower, upper) per layer: auto_LiRPA's, or any) against ``ours``: the largest
    absolute difference, and by how much ours are tighter or looser at most (every layer)."""
    pairs = [(a.double(), b.double(), c, d) for (a, b), c, d in zip(theirs, ours.lower, ours.upper)]
    diff = max(float(torch.maximum((a - c).abs(), (b - d).abs()).max()) for a, b, c, d in pairs)
    tighter = max(float(torch.maximum(c - a, b - d).max()) for a, b, c, d in pairs)
    looser = max(float(torch.maximum(a - c, d - b).max()) for a, b, c, d in pairs)
    return {"max_abs_diff": diff, "ours_tighter_by_at_most": max(tighter, 0.0),
            "ours_looser_by_at_most": max(looser, 0.0)}


# ------------------------------------------------------------------------------------------------- the runs
def _train(model, dist, steps, device, seed):
    gen = tr.rng.make_generator(seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x, y = dist.sample(256, generator=gen, device=device)
        opt.zero_grad(set_to_none=True)
        F.softplus(-y.to(x.dtype) * model(x).reshape(-1)).mean().backward()
        opt.step()
    return model.eval()


def _setups(quick: bool):
    n_small, n_big = (200, 4) if quick else (1000, 10)
    return [("2-64-64-1", tr.GaussianMixture([1.0, 0.5]), (64, 64), n_small, (0.1,)),
            ("20-64-64-1", tr.GaussianMixture.robust_nonrobust(20), (64, 64), n_small, (0.05,)),
            ("500-1000-1000-1", tr.ConcentricSpheres(dim=500, r_inner=1.0, r_outer=1.3), (1000, 1000), n_big,
             (1e-3, 1e-2))]


def _time(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, run in alternating order (after one warm-up call each)."""
    for f in fns.values():
        f()
    secs: dict = {k: [] for k in fns}
    for r in range(repeats):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            secs[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in secs.items()}


def _compare_bounds(old: LayerBounds, new64: LayerBounds, new32: LayerBounds) -> dict:
    diff = max(float((a - b).abs().max()) for a, b in zip(old.lower + old.upper, new64.lower + new64.upper))
    looser = max(max(float((a - b).max()) for a, b in zip(new64.lower, old.lower)),
                 max(float((b - a).max()) for a, b in zip(new64.upper, old.upper)))
    lo32, up32 = new32.margin()
    lo64, up64 = new64.margin()
    scale = 1 + torch.maximum(lo64.abs(), up64.abs())
    rel32 = float(torch.maximum((lo64 - lo32) / scale, (up32 - up64) / scale).max())
    return {"max_abs_diff_float64_vs_old": diff, "float64_looser_than_old_by_at_most": max(looser, 0.0),
            "float32_margin_looser_relative_max": rel32}


def run_setup(name, dist, hidden, n, radii, args, device) -> list:
    """One network, trained briefly; one result per radius."""
    model = MLP(dist.dim, hidden, seed=0, device=device)
    _train(model, dist, args.train_steps if not args.quick else min(args.train_steps, 20), device, seed=1)
    x, _ = dist.sample(n, generator=tr.rng.make_generator(2, device), device=device)
    return [_run_radius(name, model, x, eps, args) for eps in radii]


def _run_radius(name, model, x, eps, args) -> dict:
    net = extract_network(model)
    n, device, dim = x.shape[0], x.device, x.shape[1]
    ball = InputBall(x.to(torch.float64), eps, math.inf, torch.ones(dim, dtype=torch.bool, device=device))
    ibp = ibp_bounds(net, ball)
    fns = {"old": lambda: old_crown_bounds(net, ball, ibp),
           "float64": lambda: crown_bounds(net, ball, ibp=ibp),
           "float32": lambda: crown_bounds(net, ball, ibp=ibp, dtype=torch.float32)}
    lirpa = {}
    for dt in (torch.float32, torch.float64):
        run = _lirpa_runner(model, x, eps, dt)
        if run is not None:
            lirpa[f"auto_LiRPA {str(dt)[6:]}"] = run
    fns.update(lirpa)
    secs = _time(fns, args.repeats)
    res = {"network": name, "points": n, "eps": eps, "seconds": secs,
           "unstable_fraction": [float(u.double().mean()) for u in crown_bounds(net, ball, ibp=ibp).unstable()],
           "speedup_vs_old": {k: secs["old"] / secs[k] for k in ("float64", "float32")},
           **_compare_bounds(fns["old"](), fns["float64"](), fns["float32"]())}
    # float32 soundness: by how much a float32 result is tighter than the same CROWN in float64 (> 0: it cuts
    # inside the bound it approximates). Ours: rounding margins, so never; auto_LiRPA's: plain float32 products.
    ours64, ours32 = fns["float64"](), fns["float32"]()
    res["ours_float32_tighter_than_ours_float64_by_at_most"] = _bounds_diff(
        list(zip(ours32.lower, ours32.upper)), ours64)["ours_looser_by_at_most"]
    if lirpa:
        res["ratio_vs_auto_LiRPA"] = {k: secs[f"auto_LiRPA {k}"] / secs[k] for k in ("float64", "float32")
                                      if f"auto_LiRPA {k}" in secs}
        if "auto_LiRPA float64" in lirpa:  # identical bounds? (theirs: pure CROWN; ours: intersected with IBP)
            res["auto_LiRPA_float64_vs_ours_float64"] = _bounds_diff(lirpa["auto_LiRPA float64"](), ours64)
        if "auto_LiRPA float32" in lirpa and "auto_LiRPA float64" in lirpa:
            th32, th64 = lirpa["auto_LiRPA float32"](), lirpa["auto_LiRPA float64"]()
            res["auto_LiRPA_float32_tighter_than_auto_LiRPA_float64_by_at_most"] = _bounds_diff(
                th32, LayerBounds([a.double() for a, _ in th64], [b.double() for _, b in th64]))[
                "ours_looser_by_at_most"]  # (the first argument tighter than the second)
            lo32, up32 = ours32.margin()
            tlo, tup = (t.reshape(-1).double() for t in th32[-1])
            scale = 1 + torch.maximum(tlo.abs(), tup.abs())
            res["ours_float32_margin_looser_than_auto_LiRPA_float32_relative_max"] = float(
                torch.maximum((tlo - lo32) / scale, (up32 - tup) / scale).max())
    return res


def _rows(results: list) -> list:
    rows = []
    for r in results:
        for k, target in TARGETS.items():
            rows.append({"metric": f"CROWN {r['network']} ({r['points']} points, eps {r['eps']:g}, unstable "
                                   f"{r['unstable_fraction'][0]:.0%}), ours {k} vs old float64 "
                                   f"(speed-up, median)", "ours": r["seconds"][k], "baseline": r["seconds"]["old"],
                         "ratio": r["speedup_vs_old"][k], "target": f">= {target}"})
        rows.append({"metric": "  float64 bounds looser than old by at most", "ours": r[
            "float64_looser_than_old_by_at_most"], "baseline": None, "ratio": None, "target": "<= 1e-12"})
        rows[-1]["met"] = rows[-1]["ours"] <= 1e-12
        c32 = r["ours_float32_tighter_than_ours_float64_by_at_most"]
        rows.append({"metric": "  float32 bounds tighter than float64 by at most, every layer (> 0: unsound)",
                     "ours": c32, "baseline": None, "ratio": None, "target": "0", "met": c32 <= 0})
        for k, ratio in r.get("ratio_vs_auto_LiRPA", {}).items():
            rows.append({"metric": f"  ours {k} vs auto_LiRPA {k} (speed-up, median)", "ours": r["seconds"][k],
                         "baseline": r["seconds"][f"auto_LiRPA {k}"], "ratio": ratio, "target": ">= 1.0",
                         "met": ratio >= 1.0})
        if "auto_LiRPA_float64_vs_ours_float64" in r:
            cmp = r["auto_LiRPA_float64_vs_ours_float64"]
            d = cmp["ours_looser_by_at_most"]  # tighter is allowed: ours intersects every layer with IBP
            rows.append({"metric": f"  float64 bounds looser than auto_LiRPA by at most, every layer (max |diff| "
                                   f"{cmp['max_abs_diff']:.1e}: ours tighter where IBP is)", "ours": d,
                         "baseline": None, "ratio": None, "target": "<= 1e-12", "met": d <= 1e-12})
    return rows


def _summary(results: list, note: str | None) -> str:
    """The auto_LiRPA ratios as a short table (or the one-line note when auto_LiRPA is not importable)."""
    if note:
        return f"note: {note}"
    lines = ["auto_LiRPA median time / ours (>= 1.0: ours faster); float64 bounds: max |theirs - ours|; float32 "
             "bounds tighter than the same CROWN in float64 by at most (> 0: not sound), ours / auto_LiRPA's",
             f"{'network':<18}{'points':>7}{'eps':>8}{'float64':>9}{'float32':>9}{'max diff':>11}"
             f"{'f32 ours':>11}{'f32 theirs':>11}"]
    for r in results:
        q = r.get("ratio_vs_auto_LiRPA", {})
        d = r.get("auto_LiRPA_float64_vs_ours_float64", {}).get("max_abs_diff", math.nan)
        c32 = [r.get(f"{w}_float32_tighter_than_{w}_float64_by_at_most", math.nan) for w in ("ours", "auto_LiRPA")]
        lines.append(f"{r['network']:<18}{r['points']:>7}{r['eps']:>8g}{q.get('float64', math.nan):>8.2f}x"
                     f"{q.get('float32', math.nan):>8.2f}x{d:>11.1e}{c32[0]:>11.1e}{c32[1]:>11.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto (CUDA when available)")
    parser.add_argument("--quick", action="store_true", help="200 / 4 points, 3 repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: on a loaded "
                        "2-core machine two threads are up to 30x slower for these tensor sizes)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 5, quick 3)")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--json", default=None, help="also write the JSON object here")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    results = [r for s in _setups(args.quick) for r in run_setup(*s, args, device)]
    note = None
    if not any("ratio_vs_auto_LiRPA" in r for r in results):
        note = ("auto_LiRPA not importable: skipped (compared with the old implementation only; "
                "benchmarks/README.md has the separate-environment recipe)")
    out = {"benchmark": "crown", "device": str(device), "threads": args.threads,
           "load_average": list(os.getloadavg()), "results": results, "auto_LiRPA_note": note,
           "rows": _rows(results)}
    text = json.dumps(out, indent=1)
    print(text)
    print(_summary(results, note), file=sys.stderr)  # stdout stays one JSON object
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    return out


if __name__ == "__main__":
    main()
