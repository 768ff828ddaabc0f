"""The exact projection onto ball ∩ label region used by the projection attack (toyrobust.attacks.manifold): the
concentric spheres' shells under L2 in closed form (a two-dimensional problem in the plane of x0 and the point),
against Dykstra's alternation (many rounds) as the reference, a dense search of the feasible set, and optimality
conditions; and the attack on top of it against the closed-form risks."""

from __future__ import annotations

import math

import pytest
import torch

import toyrobust as tr
from toyrobust.attacks.manifold import _ball_shell_projection, _box_shell_projection, _dykstra, _exact_projection


def _shell_proj(lo: float, hi: float):
    def proj(v):
        n = torch.linalg.vector_norm(v, dim=1, keepdim=True)
        target = n.clamp(lo, hi)
        return torch.where(n > 0, v * (target / torch.where(n > 0, n, 1.0)), v)
    return proj


def _ball_proj(x0, eps):
    return lambda v: tr.L2(eps).project(v, x0)


def _feasible(z, x0, eps, lo, hi, tol=1e-9):
    n = torch.linalg.vector_norm(z, dim=1)
    return (torch.linalg.vector_norm(z - x0, dim=1) <= eps + tol) & (n >= lo - tol) & (n <= hi + tol)


def _instances(d: int, seed: int, n: int = 200):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, 1.3).to(torch.float64)
    x0 = u / u.norm(dim=1, keepdim=True) * r[:, None]
    v = x0 + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x0, v


@pytest.mark.parametrize("d", [2, 3, 10, 50])
def test_inside_shell_matches_many_dykstra_rounds(d):
    # R = {||z|| <= 1.15}: both sets convex, so Dykstra converges to the projection
    x0, v = _instances(d, d)
    eps, lo, hi = 0.2, 0.0, 1.15
    exact, ok = _ball_shell_projection(v, x0, eps, torch.full((v.shape[0],), lo, dtype=torch.float64),
                                       torch.full((v.shape[0],), hi, dtype=torch.float64))
    ref = _dykstra(_shell_proj(lo, hi), _ball_proj(x0, eps), v, 3000)
    feasible_ref = _feasible(ref, x0, eps, lo, hi, 1e-7)
    assert bool((ok == feasible_ref).all())  # non-empty exactly where Dykstra finds a point
    assert bool(_feasible(exact[ok], x0[ok], eps, lo, hi).all())
    torch.testing.assert_close(exact[ok], ref[ok], atol=1e-6, rtol=0)


@pytest.mark.parametrize("d", [2, 3, 10, 50])
def test_outside_shell_is_feasible_and_never_farther_than_dykstra(d):
    # R = {||z|| >= 1.15}: not convex; the exact projection is feasible, lies in the plane of x0 and v, and is at
    # least as near as whatever feasible point Dykstra's alternation ends at
    x0, v = _instances(d, 100 + d)
    eps, lo, hi = 0.2, 1.15, math.inf
    n = v.shape[0]
    exact, ok = _ball_shell_projection(v, x0, eps, torch.full((n,), lo, dtype=torch.float64),
                                       torch.full((n,), hi, dtype=torch.float64))
    assert bool(_feasible(exact[ok], x0[ok], eps, lo, hi).all())
    ref = _dykstra(_shell_proj(lo, hi), _ball_proj(x0, eps), v, 3000)
    both = ok & _feasible(ref, x0, eps, lo, hi, 1e-7)
    assert int(both.sum()) > n // 3
    gap_exact = torch.linalg.vector_norm(exact - v, dim=1)
    gap_ref = torch.linalg.vector_norm(ref - v, dim=1)
    assert bool((gap_exact[both] <= gap_ref[both] + 1e-9).all())
    if d > 2:  # the plane of x0 and v: the residual of a least-squares fit is zero
        basis = torch.stack([x0, v], 2)  # (n, d, 2)
        coef = torch.linalg.lstsq(basis, exact[:, :, None]).solution
        assert float((basis @ coef - exact[:, :, None]).abs().max()) < 1e-9


@pytest.mark.parametrize("d, lo, hi", [(2, 1.15, math.inf), (2, 0.0, 1.15), (3, 1.15, math.inf), (3, 1.05, 1.25)])
def test_no_feasible_point_of_a_dense_search_is_nearer(d, lo, hi):
    x0, v = _instances(d, 7 + d, n=40)
    eps = 0.25
    n = v.shape[0]
    exact, ok = _ball_shell_projection(v, x0, eps, torch.full((n,), lo, dtype=torch.float64),
                                       torch.full((n,), hi, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    k = 200_000 if d == 2 else 400_000
    for i in range(n):
        u = torch.randn(k, d, generator=g, dtype=torch.float64)
        u = u / u.norm(dim=1, keepdim=True) * torch.rand(k, 1, generator=g, dtype=torch.float64) ** (1 / d) * eps
        pts = x0[i] + u
        pts = pts[_feasible(pts, x0[i].expand_as(pts), eps, lo, hi, 0.0)]
        if not ok[i]:
            assert pts.shape[0] == 0
            continue
        best = float(torch.linalg.vector_norm(pts - v[i], dim=1).min()) if pts.shape[0] else math.inf
        mine = float(torch.linalg.vector_norm(exact[i] - v[i]))
        assert mine <= best + 1e-12, (i, mine, best)
        assert best - mine < (2e-2 if d == 2 else 6e-2)  # and the search comes close to it


def test_degenerate_rows():
    eps = 0.2
    lo = torch.tensor([1.15, 1.15, 0.0, 1.15, 0.0], dtype=torch.float64)
    hi = torch.tensor([math.inf, math.inf, 1.15, math.inf, 1.15], dtype=torch.float64)
    x0 = torch.tensor([[1.3, 0.0, 0.0], [0.9, 0.0, 0.0], [1.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 0.0, 0.0]],
                      dtype=torch.float64)
    v = torch.tensor([[1.3, 0.0, 0.0],   # v = x0, feasible: unchanged
                      [0.8, 0.0, 0.0],   # the ball around 0.9 e1 misses ||z|| >= 1.15: empty
                      [1.3, 0.0, 0.0],   # on the axis, inside shell wanted: radial projection 1.15
                      [-1.0, 0.0, 0.0],  # on the axis, opposite, outside wanted: where the circles meet
                      [0.5, 0.5, 0.0]],  # x0 = 0: a ball about the origin
                     dtype=torch.float64)
    z, ok = _ball_shell_projection(v, x0, eps, lo, hi)
    assert ok.tolist() == [True, False, True, True, True]
    torch.testing.assert_close(z[0], v[0])
    torch.testing.assert_close(z[2], torch.tensor([1.15, 0.0, 0.0], dtype=torch.float64))
    # row 3: |W| = 1.15 and |W - (1.1, 0)| = 0.2: p = (1.15^2 - 0.04 + 1.21) / 2.2
    p = (1.15**2 - eps**2 + 1.1**2) / 2.2
    assert math.isclose(float(z[3, 0]), p, rel_tol=1e-12)
    assert math.isclose(float(z[3].norm()), 1.15, rel_tol=1e-12)
    torch.testing.assert_close(z[4], v[4] / v[4].norm() * 0.2 * (1 - 16 * 2.0**-52))


def test_exact_projection_dispatch_reads_the_distribution():
    sp = tr.ConcentricSpheres(5, 1.0, 1.3)
    x0, y = sp.sample(50, generator=0, dtype=torch.float64)
    v = x0 + 0.2 * torch.randn(50, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = _exact_projection(sp, tr.L2(0.1), v, x0, y)
    assert out is not None
    z, inside = out
    assert inside and bool((sp.bayes_label(sp.project(z)) == y).all())
    assert bool(tr.L2(0.1).contains(z, x0).all())
    assert _exact_projection(sp, tr.L1(0.1), v, x0, y) is None  # Dykstra's turn
    assert _exact_projection(sp, tr.L2(0.1, coords=[0, 1]), v, x0, y) is None
    assert _exact_projection(tr.Tsipras(0.9, 3.0, 1), tr.L2(0.1), torch.zeros(3, 2, dtype=torch.float64),
                             torch.zeros(3, 2, dtype=torch.float64), torch.tensor([1, -1, 1])) is None


@pytest.mark.parametrize("name, clf", [("radial 1.05", tr.Radial(1.05)), ("radial 1.25", tr.Radial(1.25))])
def test_projection_attack_on_the_spheres_reaches_the_closed_form(name, clf):
    sp = tr.ConcentricSpheres(20, 1.0, 1.3)
    threat = tr.L2(0.2)
    closed = float(tr.risk(sp, clf, threat, "projection"))
    est = tr.estimate_risk(sp, clf, threat, "projection", n=2000, seed=0, attack="projection")
    assert est.kind == "lower bound"
    assert est.ci_low <= closed <= est.ci_high, (name, closed, est)


# -- Linf balls (boxes) and the radial shells ---------------------------------------------------------------


def _box_instances(d: int, seed: int, eps: float, n: int = 200):
    x0, v = _instances(d, seed, n)
    return x0, v, x0 - eps, x0 + eps


def _box_feasible(z, low, up, lo, hi, tol=1e-9):
    n = torch.linalg.vector_norm(z, dim=1)
    return ((z >= low - tol) & (z <= up + tol)).all(1) & (n >= lo - tol) & (n <= hi + tol)


def _full(n, value):
    return torch.full((n,), value, dtype=torch.float64)


@pytest.mark.parametrize("d", [2, 3, 10, 50])
def test_box_inside_shell_matches_many_dykstra_rounds(d):
    # R = {||z|| <= 1.15} and a box: both convex, so Dykstra's alternation converges to the projection
    eps, lo, hi = 0.2 / math.sqrt(d) * 1.5, 0.0, 1.15
    x0, v, low, up = _box_instances(d, 300 + d, eps)
    n = v.shape[0]
    exact, ok = _box_shell_projection(v, x0, torch.full((d,), eps, dtype=torch.float64), _full(n, lo), _full(n, hi))
    ref = _dykstra(_shell_proj(lo, hi), lambda w: tr.Linf(eps).project(w, x0), v, 3000)
    feasible_ref = _box_feasible(ref, low, up, lo, hi, 1e-7)
    assert bool((ok == feasible_ref).all())
    assert int(ok.sum()) > n // 2 and int((torch.linalg.vector_norm(torch.clamp(v, low, up), dim=1) > hi).sum()) > 10
    assert bool(_box_feasible(exact[ok], low[ok], up[ok], lo, hi).all())
    torch.testing.assert_close(exact[ok], ref[ok], atol=1e-6, rtol=0)


@pytest.mark.parametrize("d, lo, hi", [(2, 1.15, math.inf), (2, 0.0, 1.15), (3, 1.15, math.inf), (3, 0.0, 1.15)])
def test_box_shell_no_feasible_point_of_a_dense_search_is_nearer(d, lo, hi):
    # the outside of a ball is not convex: the multiplier argument says the result is the global minimiser;
    # a dense search of the box never finds a feasible point nearer, and comes close to it
    eps = 0.2
    x0, v, low, up = _box_instances(d, 40 + d, eps, n=40)
    n = v.shape[0]
    exact, ok = _box_shell_projection(v, x0, torch.full((d,), eps, dtype=torch.float64), _full(n, lo), _full(n, hi))
    g = torch.Generator().manual_seed(1)
    k = 200_000 if d == 2 else 400_000
    for i in range(n):
        pts = low[i] + (up[i] - low[i]) * torch.rand(k, d, generator=g, dtype=torch.float64)
        pts = pts[_box_feasible(pts, low[i], up[i], lo, hi, 0.0)]
        if not ok[i]:
            # not solved: empty, or the corner case the multiplier argument does not reach
            corner = torch.where(v[i] > 0, up[i], low[i])
            assert pts.shape[0] == 0 or float(corner.norm()) < lo
            continue
        assert bool(_box_feasible(exact[i:i + 1], low[i], up[i], lo, hi).all())
        best = float(torch.linalg.vector_norm(pts - v[i], dim=1).min()) if pts.shape[0] else math.inf
        mine = float(torch.linalg.vector_norm(exact[i] - v[i]))
        assert mine <= best + 1e-12, (i, mine, best)
        assert best - mine < (2e-2 if d == 2 else 6e-2)


def test_box_shell_rows_already_inside_are_the_box_projection():
    sp = tr.ConcentricSpheres(50, 1.0, 1.3)
    x0, y = sp.sample(64, generator=3, dtype=torch.float64)
    v = x0 + 0.01 * torch.randn(64, 50, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    threat = tr.Linf(0.002)  # far from the middle sphere: the shell constraint never binds
    z, inside = _exact_projection(sp, threat, v, x0, y)
    assert inside
    torch.testing.assert_close(z, torch.minimum(torch.maximum(v, x0 - 0.002), x0 + 0.002), rtol=0, atol=1e-15)


def test_box_shell_pinned_coordinates_stay_put():
    sp = tr.ConcentricSpheres(6, 1.0, 1.3)
    x0, y = sp.sample(40, generator=5, dtype=torch.float64)
    v = x0 + 0.3 * torch.randn(40, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    threat = tr.Linf(0.2, coords=[0, 2, 3])
    z, _ = _exact_projection(sp, threat, v, x0, y)
    assert torch.equal(z[:, [1, 4, 5]], x0[:, [1, 4, 5]])
    assert bool(threat.contains(z, x0).all())


@pytest.mark.parametrize("r, eps", [(1.02, 0.02), (1.28, 0.03)])
def test_projection_attack_under_linf_on_the_spheres_reaches_the_closed_form(r, eps):
    # where the Linf closed form exists (every point of a sphere decided alike): half the points are broken
    sp = tr.ConcentricSpheres(20, 1.0, 1.3)
    clf, threat = tr.Radial(r), tr.Linf(eps)
    closed = float(tr.risk(sp, clf, threat, "projection"))
    assert closed == 0.5
    est = tr.estimate_risk(sp, clf, threat, "projection", n=2000, seed=0, attack="projection")
    assert est.ci_low <= closed <= est.ci_high, (r, eps, closed, est)
