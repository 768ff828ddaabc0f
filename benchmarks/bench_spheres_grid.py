"""Benchmark: closed-form sphere risks on a 10^6-point grid, vs sympy point by point, and accuracy vs mpmath."""
import math
import time

import mpmath
import numpy as np
import sympy

import toyrobust as tr
from toyrobust.risks import risk
from toyrobust.risks.caps import cap_fraction_height, lambdify_risk
from toyrobust.risks.spheres import linear_sphere_risk

# symbolic risk of sign(<w, x> + b) on the D = 500 spheres under an L2 ball, in (b, eps)
b, eps = sympy.Symbol("b", real=True), sympy.Symbol("epsilon", positive=True)
dist = tr.ConcentricSpheres(500, 1, sympy.Rational(13, 10))
expr = risk(dist, tr.Linear(tr.Blocks([(1, 1), (0, 499)]), b), tr.L2(eps)).expr
t0 = time.perf_counter()
fn = lambdify_risk((b, eps), expr)
t_lambdify = time.perf_counter() - t0

B, E = np.meshgrid(np.linspace(-0.3, 0.3, 1000), np.linspace(0.0, 0.2, 1000))
fn(B[:2, :2], E[:2, :2])  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
grid = fn(B, E)
t_grid, c_grid = time.perf_counter() - t0, time.process_time() - c0
t0, c0 = time.perf_counter(), time.process_time()
direct = linear_sphere_risk(500, 1.0, 1.3, -B, E)
t_direct, c_direct = time.perf_counter() - t0, time.process_time() - c0
assert np.allclose(grid, direct, rtol=1e-12)

idx = np.random.default_rng(0).choice(B.size, 100, replace=False)
t0 = time.perf_counter()
for i in idx:
    v = float(expr.subs({b: float(B.flat[i]), eps: float(E.flat[i])}).evalf(15))
    assert math.isclose(v, grid.flat[i], rel_tol=1e-9)
t_sympy = (time.perf_counter() - t0) / len(idx)
per_point = t_grid / B.size
print(f"lambdify once: {t_lambdify * 1e3:.1f} ms")
print(f"grid of {B.size:,} points (lambdified CapFraction): wall {t_grid:.3f} s, cpu {c_grid:.3f} s "
      f"({per_point * 1e9:.0f} ns/point)")
print(f"grid of {B.size:,} points (linear_sphere_risk): wall {t_direct:.3f} s, cpu {c_direct:.3f} s")
print(f"sympy subs+evalf per point (mpmath): {t_sympy * 1e3:.2f} ms; ratio {t_sympy / per_point:,.0f}x")

# accuracy: cap fractions from 1e-1 down to below 1e-300 against mpmath's hypergeometric series at 50 digits
mpmath.mp.dps = 50
worst = 0.0
for h in np.linspace(0.05, 0.97, 60):
    x, a = (1 - mpmath.mpf(h)) * (1 + mpmath.mpf(h)), mpmath.mpf(499) / 2
    ref = x**a * mpmath.sqrt(1 - x) / (a * mpmath.beta(a, 0.5)) * mpmath.hyp2f1(a + 0.5, 1, a + 1, x) / 2
    if ref < mpmath.mpf(1e-300):
        continue
    worst = max(worst, float(abs(cap_fraction_height(500, float(h)) / ref - 1)))
print(f"largest relative error of cap fractions in [1e-300, 0.5] at D = 500 vs mpmath: {worst:.2e}")
