"""Issue 3 performance and accuracy targets for the analytic risk engine.

1. A closed-form risk over a grid of 10^6 parameter points in under 0.5 s (``tr.risk_function``: the symbolic
   risk's scalars lambdified once, then the cached form evaluated in log space), and at least 1000x faster per
   point than evaluating the sympy expression point by point (measured in the same run on a sample of the grid).
2. Relative error <= 1e-9 against mpmath (50 digits) on risks down to 1e-300.
3. ``tr.risk`` on numbers for d = 500 in a few milliseconds per call.

Run from the repository root:  python benchmarks/bench_risk_grid.py  (add --quick for a smaller run)
"""

from __future__ import annotations

import argparse
import math
import time

import mpmath
import numpy as np
import sympy

import toyrobust as tr


def grid_benchmark(n_side: int, n_sample: int) -> dict:
    D, eps = sympy.Symbol("D", integer=True, positive=True), sympy.Symbol("eps", nonnegative=True)
    dist = tr.GaussianMixture.robust_nonrobust(D)
    clf, threat = dist.bayes_classifier(), tr.Linf(eps)
    t0 = time.perf_counter()
    f = tr.risk_function(dist, clf, threat, symbols=(D, eps))
    build = time.perf_counter() - t0
    Ds = np.geomspace(2, 1e9, n_side)
    es = np.linspace(0, 0.5, n_side)
    DD, EE = np.meshgrid(Ds, es, indexing="ij")
    f(DD[:2, :2], EE[:2, :2])  # warm-up (first numpy calls)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        values = f(DD, EE)
        times.append(time.perf_counter() - t0)
    grid_time = min(times)
    expr = tr.risk(dist, clf, threat).expr
    rng = np.random.default_rng(0)
    idx = rng.choice(DD.size, size=n_sample, replace=False)
    t0 = time.perf_counter()
    sym_vals = [float(expr.subs({D: int(round(DD.flat[i])), eps: EE.flat[i]}).evalf()) for i in idx]
    sym_per_point = (time.perf_counter() - t0) / n_sample
    # the sympy route at the same (integer) D: the grid function agrees
    grid_at = f(np.round(DD.flat[idx]), EE.flat[idx])
    agree = float(np.max(np.abs(np.array(sym_vals) - grid_at) / np.maximum(np.array(sym_vals), 1e-300)))
    per_point = grid_time / DD.size
    return {"points": DD.size, "build_s": build, "grid_s": grid_time, "per_point_ns": per_point * 1e9,
            "sympy_per_point_ms": sym_per_point * 1e3, "speedup": sym_per_point / per_point,
            "max_rel_diff_vs_sympy": agree, "min": float(values.min()), "max": float(values.max())}


def projection_grid(n_side: int) -> dict:
    """A heavier form: the projection risk of the 2-D Tsipras Bayes classifier over (eta, eps)."""
    eta, eps = sympy.Symbol("eta", positive=True), sympy.Symbol("eps", nonnegative=True)
    dist = tr.Tsipras(0.9, eta, 1)
    t0 = time.perf_counter()
    f = tr.risk_function(dist, tr.Linear([math.log(9), 6.0]), tr.Linf(eps), "projection", symbols=(eta, eps))
    build = time.perf_counter() - t0
    E1, E2 = np.meshgrid(np.linspace(0.1, 5, n_side), np.linspace(0, 3, n_side), indexing="ij")
    f(E1[:2, :2], E2[:2, :2])
    t0 = time.perf_counter()
    f(E1, E2)
    return {"points": E1.size, "build_s": build, "grid_s": time.perf_counter() - t0}


def accuracy_benchmark() -> dict:
    """Risks from 0.5 down to below 1e-300 against mpmath at 50 digits."""
    mpmath.mp.dps = 50
    worst, smallest, count = 0.0, 1.0, 0

    def tail(x):
        return mpmath.erfc(mpmath.mpf(x) / mpmath.sqrt(2)) / 2

    for m in np.linspace(0.05, 37.5, 151):
        g = tr.GaussianMixture([0.6 * m, 0.8 * m], 1.0)  # ||mean|| = m: Bayes risk Q(m)
        bayes = g.bayes_classifier()
        mm = float(m)
        cases = [(tr.risk(g, bayes), tail(mm)),
                 (tr.risk(g, bayes, tr.L2(0.25)), tail(mm - 0.25)),
                 (tr.risk(g, bayes, tr.L2(0.25), "prediction-change"), tail(mm - 0.25) - tail(mm + 0.25))]
        for r, ref in cases:
            if ref < mpmath.mpf("1e-300"):
                continue
            rel = abs(mpmath.mpf(r.value) - ref) / ref
            worst = max(worst, float(rel))
            smallest = min(smallest, float(ref))
            count += 1
    # the log value keeps going below the double range
    r = tr.risk(tr.GaussianMixture([40.0], 1.0), tr.GaussianMixture([40.0], 1.0).bayes_classifier())
    log_err = abs(r.log_value - float(mpmath.log(tail(40)))) / abs(float(mpmath.log(tail(40))))
    return {"cases": count, "max_rel_err": worst, "smallest_risk": smallest, "log_rel_err_at_Q(40)": log_err}


def call_benchmark(repeat: int) -> dict:
    rng = np.random.default_rng(1)
    g = tr.GaussianMixture(rng.normal(size=500), 1.3)
    clf = tr.Linear(rng.normal(size=500), 0.2)
    t = tr.Tsipras(0.9, 0.1, 499)
    out = {}
    for name, dist, c, threat, d in [("gm d=500 linf ball", g, clf, tr.Linf(0.01), "ball"),
                                     ("gm d=500 l2 prediction-change", g, clf, tr.L2(0.1), "prediction-change"),
                                     ("tsipras d=500 bayes linf projection", t, t.bayes_classifier(), tr.Linf(0.05),
                                      "projection")]:
        tr.risk(dist, c, threat, d)
        t0 = time.perf_counter()
        for _ in range(repeat):
            tr.risk(dist, c, threat, d)
        out[name] = (time.perf_counter() - t0) / repeat * 1e3
    return out


def validated_grid(n: int) -> dict:
    """Issue 20: a grid whose argument is a constrained parameter (eps >= 0) is validated at numpy speed.

    The grid of ``10^6`` eps values (robust/non-robust D = 100, Linf) against its target (< 0.3 s idle), and the
    vectorised validation (``Constraint.check_array``) against the per-value scalar check it replaced, in the same
    run on the same values."""
    from toyrobust.constraints import nonnegative

    eps = sympy.Symbol("eps", nonnegative=True)
    dist = tr.GaussianMixture.robust_nonrobust(100)
    f = tr.risk_function(dist, dist.bayes_classifier(), tr.Linf(eps), symbols=(eps,))
    values = np.linspace(0, 0.5, n)
    f(values[:10])
    grid = min(_timed(lambda: f(values)) for _ in range(3))
    vec = min(_timed(lambda: nonnegative.check_array(values)) for _ in range(3))
    m = min(n, 100_000)
    loop = _timed(lambda: [nonnegative.check(float(v)) for v in values[:m]]) * n / m
    return {"points": n, "grid_s": grid, "check_array_s": vec, "per_value_check_s": loop, "ratio": loop / vec}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10^4-point grid and fewer repetitions")
    args = parser.parse_args()
    n_side, n_sample, repeat = (100, 20, 20) if args.quick else (1000, 200, 100)
    g = grid_benchmark(n_side, n_sample)
    print(f"grid: robust/non-robust Bayes risk under Linf(eps), {g['points']:,} points (D in [2, 1e9], eps in "
          f"[0, 0.5])")
    print(f"  build (symbolic risk + lambdify, once): {g['build_s']:.2f} s")
    print(f"  grid evaluation: {g['grid_s']:.3f} s  ({g['per_point_ns']:.0f} ns/point)   target < 0.5 s: "
          f"{'PASS' if g['grid_s'] < 0.5 or args.quick else 'FAIL'}")
    print(f"  sympy expression point by point: {g['sympy_per_point_ms']:.2f} ms/point on {n_sample} grid points")
    print(f"  speed-up per point: {g['speedup']:,.0f}x   target >= 1000x: {'PASS' if g['speedup'] >= 1000 else 'FAIL'}")
    print(f"  max relative difference grid vs sympy on the sample: {g['max_rel_diff_vs_sympy']:.2e}")
    v = validated_grid(10**6 if not args.quick else 10**5)
    print(f"grid: robust/non-robust D=100 Bayes risk under Linf(eps), {v['points']:,} validated eps values: "
          f"{v['grid_s']:.3f} s ({v['grid_s'] / v['points'] * 1e9:.0f} ns/point)   target < 0.3 s per 10^6: "
          f"{'PASS' if v['grid_s'] * 10**6 / v['points'] < 0.3 else 'FAIL'}")
    print(f"  validation: check_array {v['check_array_s'] * 1e3:.1f} ms vs per-value check "
          f"{v['per_value_check_s'] * 1e3:.0f} ms: {v['ratio']:.0f}x")
    p = projection_grid(n_side // 2)
    print(f"grid: 2-D Tsipras projection risk of the Bayes rule over (eta, eps), {p['points']:,} points: "
          f"{p['grid_s']:.3f} s (build {p['build_s']:.2f} s)")
    a = accuracy_benchmark()
    print(f"accuracy vs mpmath (50 digits): {a['cases']} risks down to {a['smallest_risk']:.3g}: max relative "
          f"error {a['max_rel_err']:.2e}   target <= 1e-9: {'PASS' if a['max_rel_err'] <= 1e-9 else 'FAIL'}")
    print(f"  log value of Q(40) ~ 1e-350 (below double range): relative error {a['log_rel_err_at_Q(40)']:.1e}")
    for name, ms in call_benchmark(repeat).items():
        print(f"tr.risk on numbers, {name}: {ms:.2f} ms/call")


if __name__ == "__main__":
    main()
