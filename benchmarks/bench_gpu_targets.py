"""Issue 11's throughput targets: Monte Carlo samples per second of ``tr.estimate_risk`` on the spheres (D = 500).

* standard risk of the quadratic classifier ``sign(1.375 sum_{i<=250} x_i^2 + 0.5 sum_{i>250} x_i^2 - 1)`` (exact
  risk 0.0058299, a weighted chi-square sign): target >= 1e8 samples/s on an H200, and Gilmer et al.'s
  50-million-sample evaluation in < 1 s;
* the exact L2 attack on the linear cap classifier ``sign(x_1 - 0.05)`` at eps = 0.1 (exact risk 0.93157):
  target >= 5e7 samples/s.

Each is timed with the library's default ``chunk_size`` and with GPU-sized chunks (``chunk_size = 2**20``, the
issue's suggestion; at most n), against a bare torch loop measured in the same run
(sample 500 normals per point, normalise to the sphere, classify, count; chunks of 2**20 points; for the attack,
the closed-form margin drop ``eps ||w||_2``). The closed form is checked to lie in every estimate's 99.9%
interval. Runs on CPU too (``--device cpu --quick``), where the absolute targets are not expected to be met.

Prints one JSON object (``rows``: metric, ours, baseline, ratio, target, met); ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import toyrobust as tr

DIM, R_IN, R_OUT = 500, 1.0, 1.3
ALPHA = [1.375] * 250 + [0.5] * 250
GILMER_N = 50_000_000
BIG = 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_quadratic(n: int, device: torch.device, dtype: torch.dtype, seed: int) -> tuple[int, float]:
    """Bare torch: errors of the quadratic classifier on n sphere points, chunks of 2**20; (errors, seconds)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    alpha = torch.tensor(ALPHA, device=device, dtype=dtype)
    _sync(device)
    t0 = time.perf_counter()
    errors = torch.zeros((), dtype=torch.int64, device=device)
    done = 0
    while done < n:
        m = min(BIG, n - done)
        y = torch.randint(0, 2, (m,), generator=gen, device=device) * 2 - 1
        z = torch.randn(m, DIM, generator=gen, device=device, dtype=dtype)
        r = torch.where(y == 1, R_OUT, R_IN).to(dtype)
        x = z * (r / torch.linalg.vector_norm(z, dim=1))[:, None]
        margin = (x * x) @ alpha - 1.0
        errors += (torch.where(margin >= 0, 1, -1) != y).sum()
        done += m
    k = int(errors)
    _sync(device)
    return k, time.perf_counter() - t0


def bare_exact_linear(n: int, eps: float, device: torch.device, dtype: torch.dtype, seed: int) -> tuple[int, float]:
    """Bare torch: the exact L2 attack on sign(x_1 - 0.05) (margin drop eps ||w||_2 = eps); (successes, seconds)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    _sync(device)
    t0 = time.perf_counter()
    hits = torch.zeros((), dtype=torch.int64, device=device)
    done = 0
    while done < n:
        m = min(BIG, n - done)
        y = torch.randint(0, 2, (m,), generator=gen, device=device) * 2 - 1
        z = torch.randn(m, DIM, generator=gen, device=device, dtype=dtype)
        r = torch.where(y == 1, R_OUT, R_IN).to(dtype)
        x1 = z[:, 0] * r / torch.linalg.vector_norm(z, dim=1)
        hits += (y * (x1 - 0.05) <= eps).sum()
        done += m
    k = int(hits)
    _sync(device)
    return k, time.perf_counter() - t0


def timed_estimate(dist, clf, threat, n, device, **kw) -> tuple[tr.RiskEstimate, float]:
    _sync(device)
    t0 = time.perf_counter()
    est = tr.estimate_risk(dist, clf, threat, n=n, seed=0, device=device, level=0.999, progress=False, **kw)
    _sync(device)
    return est, time.perf_counter() - t0


def _big(n: int) -> dict:
    """GPU-sized streaming: chunks of 2**20 points (at most n)."""
    return {"chunk_size": min(BIG, n)}


def _row(metric: str, ours: float, baseline: float | None, target: str, met: bool | None, **extra) -> dict:
    return {"metric": metric, "ours": ours, "baseline": baseline,
            "ratio": None if baseline in (None, 0) else ours / baseline, "target": target, "met": met, **extra}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: CUDA when available)")
    ap.add_argument("--quick", action="store_true", help="10x fewer points (a smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the JSON object to PATH")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = tr.rng.resolve_device(args.device)
    gpu = device.type == "cuda"
    scale = 0.1 if args.quick else 1.0
    n_std = int((20_000_000 if gpu else 2_000_000) * scale)
    n_adv = int((5_000_000 if gpu else 500_000) * scale)
    dtype = torch.float32
    sp = tr.ConcentricSpheres(DIM, R_IN, R_OUT)
    quad = tr.Quadratic(ALPHA, 1.0)
    cap = tr.Linear([1.0] + [0.0] * (DIM - 1), -0.05)
    threat = tr.L2(0.1)
    exact_std, exact_adv = float(tr.risk(sp, quad)), float(tr.risk(sp, cap, threat))

    # warm-up: CUDA context, kernels, lazy imports
    timed_estimate(sp, quad, None, 20_000, device, dtype=dtype)
    timed_estimate(sp, cap, threat, 20_000, device, dtype=dtype, attack="exact")
    bare_quadratic(20_000, device, dtype, 0)
    bare_exact_linear(20_000, 0.1, device, dtype, 0)

    rows, runs = [], {}
    k_bare, t_bare = bare_quadratic(n_std, device, dtype, 1)
    bare_rate = n_std / t_bare
    runs["bare quadratic"] = {"n": n_std, "seconds": t_bare, "risk": k_bare / n_std}
    for label, kw in (("defaults", {}), ("chunks 2^20", _big(n_std))):
        est, sec = timed_estimate(sp, quad, None, n_std, device, dtype=dtype, **kw)
        rate = n_std / sec
        runs[f"standard risk, {label}"] = {"n": n_std, "seconds": sec, "estimate": est.value,
                                           "ci": [est.ci_low, est.ci_high], "contains_exact": est.contains(exact_std)}
        rows.append(_row(f"standard-risk MC, spheres D=500 quadratic, {label} (samples/s)", rate, bare_rate,
                         ">= 1e8", rate >= 1e8, contains_exact=est.contains(exact_std)))
        if label == "defaults":
            default_rate = rate
    if gpu and not args.quick:
        est, sec = timed_estimate(sp, quad, None, GILMER_N, device, dtype=dtype)
        runs["gilmer 5e7"] = {"n": GILMER_N, "seconds": sec, "estimate": est.value, "ci": [est.ci_low, est.ci_high],
                              "contains_exact": est.contains(exact_std)}
        rows.append(_row("Gilmer 5e7-sample evaluation, defaults (s, measured)", sec, GILMER_N / bare_rate, "< 1 s",
                         sec < 1.0, contains_exact=est.contains(exact_std)))
    else:
        sec = GILMER_N / default_rate
        rows.append(_row("Gilmer 5e7-sample evaluation, defaults (s, projected from the rate)", sec,
                         GILMER_N / bare_rate, "< 1 s", sec < 1.0))

    k_bare, t_bare = bare_exact_linear(n_adv, 0.1, device, dtype, 1)
    bare_rate = n_adv / t_bare
    runs["bare exact L2 linear"] = {"n": n_adv, "seconds": t_bare, "risk": k_bare / n_adv}
    for label, kw in (("defaults", {}), ("chunks 2^20", _big(n_adv))):
        est, sec = timed_estimate(sp, cap, threat, n_adv, device, dtype=dtype, attack="exact", **kw)
        rate = n_adv / sec
        runs[f"exact L2, {label}"] = {"n": n_adv, "seconds": sec, "estimate": est.value,
                                      "ci": [est.ci_low, est.ci_high], "contains_exact": est.contains(exact_adv)}
        rows.append(_row(f"exact L2 attack, linear, spheres D=500, {label} (samples/s)", rate, bare_rate, ">= 5e7",
                         rate >= 5e7, contains_exact=est.contains(exact_adv)))

    result = {
        "benchmark": "gpu_targets",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if gpu else "cpu",
        "torch_threads": torch.get_num_threads(),
        "dtype": str(dtype).replace("torch.", ""),
        "exact": {"standard risk (quadratic)": exact_std, "L2 0.1 risk (cap)": exact_adv},
        "runs": runs,
        "rows": rows,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
