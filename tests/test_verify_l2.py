"""Complete L2 verification of ReLU networks (branch and bound with a second-order-cone program per node,
toyrobust.verification.l2bab), checked against independent references: a dense search along 2048 directions
for a 2-D network, the closed form of networks that compute a linear function, forward passes for every
counterexample, monotonicity in the radius, and the agreement of minimal_distance with verify on both sides."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from test_verify import _linear_relu  # the linear ReLU nets of the Linf tests
from torch import nn

import toyrobust as tr
from toyrobust.montecarlo import clopper_pearson
from toyrobust.verification import l2bab, minimal_distance, regions, verify


def _trained(d, hidden, mean, n, seed=0, steps=150):
    """An MLP d-hidden-1 (float64) trained briefly on the Gaussian mixture with this mean, and n test points."""
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


@pytest.fixture(scope="module")
def net2d():
    """2-16-16-1 on a 2-D mixture, 16 points, and their reference L2 distances (dense direction search)."""
    net, x, y = _trained(2, (16, 16), [1.0, 0.5], 16)
    return net, x, y, _direction_search(net, x, y)


def _predict(net, z):
    with torch.no_grad():
        return torch.where(net(z).reshape(-1) >= 0, 1, -1)


def _direction_search(net, x, y, n_dir=2048, reach=4.0, steps=100, dirs=None):
    """Reference: per point, the smallest first crossing along 2048 rays (radii on a grid of ``reach / steps``,
    then 40 bisection steps per ray); inf when no ray crosses within ``reach``. It is an upper bound on the true
    distance, above it by at most about ``d (pi / n_dir)^2 / 2`` (the angular resolution). ``dirs`` (n, d): other
    unit directions than the 2-D circle's."""
    if dirs is None:
        theta = torch.arange(n_dir, dtype=torch.float64) * (2 * math.pi / n_dir)
        dirs = torch.stack([theta.cos(), theta.sin()], 1)
    n_dir, dim = dirs.shape
    radii = torch.arange(1, steps + 1, dtype=torch.float64) * (reach / steps)
    out = []
    for xi, yi in zip(x, y):
        pts = xi + radii[None, :, None] * dirs[:, None, :]
        wrong = (_predict(net, pts.reshape(-1, dim)).reshape(n_dir, steps) != int(yi))
        hit = wrong.any(1)
        if not bool(hit.any()):
            out.append(math.inf)
            continue
        first = wrong[hit].to(torch.int64).argmax(1)
        hi = radii[first]
        lo = hi - reach / steps
        d = dirs[hit]
        for _ in range(40):
            mid = (lo + hi) / 2
            bad = _predict(net, xi + mid[:, None] * d) != int(yi)
            hi, lo = torch.where(bad, mid, hi), torch.where(bad, lo, mid)
        out.append(float(hi.min()))
    return np.array(out)


def test_2d_minimal_l2_distance_equals_dense_direction_search(net2d):
    net, x, y, ref = net2d
    right = (_predict(net, x) == y).numpy()
    idx = [i for i in range(len(x)) if right[i] and math.isfinite(ref[i])][:5]
    res = minimal_distance(net, x[idx], y[idx], "l2", time_limit=30)
    assert res.status == ["optimal"] * len(idx), res.status
    for j, i in enumerate(idx):
        # the reference is an upper bound, at most ~1.2e-6 relative above the truth at this resolution
        assert res.distance[j] <= ref[i] * (1 + 1e-6) + 1e-9, (res.distance[j], ref[i])
        assert ref[i] <= res.distance[j] * (1 + 1e-4), (res.distance[j], ref[i])
        assert res.lower[j] <= res.distance[j] <= res.upper[j]
    # the minimisers are genuine counterexamples at that distance
    assert bool((_predict(net, res.x_adv) != y[idx]).all())
    gap = (res.x_adv - x[idx]).norm(dim=1).numpy()
    assert np.allclose(gap, res.distance, rtol=1e-9, atol=1e-12)


def _check_verdicts(net, x, y, res, eps):
    """Every point decided; counterexamples inside the ball, adversarial by a forward pass."""
    assert res.counts()["unknown"] == 0, (eps, res.counts(), [h for h, u in zip(res.decided_by, res.unknown) if u])
    v = res.vulnerable
    assert bool((_predict(net, res.x_adv[v]) != y[v]).all())
    assert bool(((res.x_adv[v] - x[v]).norm(dim=1) <= eps * (1 + 1e-12)).all())


def test_2d_every_point_decided_up_to_the_median_distance_and_agrees_with_directions(net2d):
    net, x, y, ref = net2d
    median = float(np.median(ref))
    for frac in (0.25, 0.5, 0.75, 1.0):
        eps = frac * median
        res = verify(net, x, y, tr.L2(eps), time_limit=20)
        _check_verdicts(net, x, y, res, eps)
        # robust exactly when the reference distance exceeds eps (its resolution aside)
        near = np.abs(ref - eps) <= 1e-4 * eps
        assert np.all((res.robust.numpy() == (ref > eps)) | near), (eps, ref, res.status)


def test_20d_every_point_decided_and_verdicts_monotone_in_the_radius():
    """20-64-64-1: at L2 radii 0.2 and 0.5 (below this network's median minimal distance, about 1.3; the radius
    1.1 is tested below), every point is decided, counterexamples are genuine, and a point vulnerable at 0.2 stays
    vulnerable at 0.5. At 0.5 the SOCP branch and bound decides alone (the Quad-CROWN search off)."""
    net, x, y = _trained(20, (64, 64), [0.3] * 20, 12)
    small = verify(net, x, y, tr.L2(0.2), time_limit=60)
    _check_verdicts(net, x, y, small, 0.2)
    big = verify(net, x, y, tr.L2(0.5), time_limit=60, quad_crown={"branch_share": 0})
    _check_verdicts(net, x, y, big, 0.5)
    assert not bool((small.vulnerable & big.robust).any())
    assert big.stats["quad_bab_items"] == 0
    assert big.stats["bab_nodes"] > 0 and int(big.vulnerable.sum()) > int(small.vulnerable.sum())




def _pgd_found(net, x, y, eps, restarts=256, steps=100, seed=0):
    """Reference attack, written here: L2 PGD from ``restarts`` random starts in the ball per point, normalised
    gradient steps decaying from 0.1 eps; True where some iterate (checked by a forward pass) is adversarial."""
    g = torch.Generator().manual_seed(seed)
    n, d = x.shape
    x0 = x.repeat_interleave(restarts, 0)
    yr = y.repeat_interleave(restarts, 0).to(x.dtype)
    delta = torch.randn(x0.shape, generator=g, dtype=x.dtype)
    delta *= eps * torch.rand(x0.shape[0], 1, generator=g, dtype=x.dtype) / delta.norm(dim=1, keepdim=True)
    hit = torch.zeros(x0.shape[0], dtype=torch.bool)
    for step in range(steps + 1):
        delta.requires_grad_(True)
        m = yr * net(x0 + delta).reshape(-1)
        hit |= (_predict(net, (x0 + delta).detach()) != yr).detach()
        if step == steps:
            break
        (grad,) = torch.autograd.grad(m.sum(), delta)
        with torch.no_grad():
            rate = 0.1 * eps * (1 - step / steps) + 1e-3
            delta = delta - rate * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
            delta *= (eps / delta.norm(dim=1, keepdim=True)).clamp(max=1.0)
    return hit.reshape(n, restarts).any(1).numpy()


def test_20d_every_point_decided_near_the_median_minimal_distance():
    """20-64-64-1, 12 points, L2 radius 1.1. The reference attack finds counterexamples at 1.2 on 6 points and at
    1.5 on 7 (so the median minimal distance is at most 1.35) and verify proves 7 robust at 1.1 (so the median
    exceeds 1.1): the radius is above 0.8 of the median. Every point is decided, in seconds each (root tightening,
    then the first layer's hull over the ball: l2bab), each vulnerable verdict has a genuine counterexample, and the
    vulnerable points are exactly those where the independent attack succeeds."""
    torch.set_num_threads(1)
    net, x, y = _trained(20, (64, 64), [0.3] * 20, 12)
    eps = 1.1
    res = verify(net, x, y, tr.L2(eps), time_limit=60)
    _check_verdicts(net, x, y, res, eps)
    assert int(res.robust.sum()) >= 7, res.status
    # the 6th and 7th smallest minimal distances are at most 1.2 and 1.5: the median is at most 1.35
    assert int(_pgd_found(net, x, y, 1.2, restarts=32).sum()) >= 6
    assert int(_pgd_found(net, x, y, 1.5, restarts=32).sum()) >= 7
    found = _pgd_found(net, x, y, eps, restarts=64)
    assert np.array_equal(found, res.vulnerable.numpy()), (found, res.status)


def _ball_points(rng, x0, eps, n):
    """n points of the ball around x0 (d,): half on its sphere, half uniform inside."""
    dirs = rng.normal(size=(n, x0.size))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rad = eps * rng.uniform(size=(n, 1)) ** (1 / x0.size)
    rad[: n // 2] = eps
    return x0 + rad * dirs


def _margins(prob, pts):
    h = pts.T
    for k, (w, b) in enumerate(zip(prob.weights, prob.biases)):
        h = w @ h + b[:, None]
        h = np.maximum(h, 0.0) if k < len(prob.weights) - 1 else h
    return prob.label * h[0]


def _random_node(rng, d, width, eps, label, n_samples, scale=3.0):
    """A random d-width-width-1 network's root problem over the ball of radius eps around a random point, its
    tightened root bounds, and the smallest margin among n_samples points of the ball."""
    ws = [rng.normal(size=(width, d)), rng.normal(size=(width, width)) / scale, rng.normal(size=(1, width))]
    bs = [rng.normal(size=width) * 0.5, rng.normal(size=width) * 0.5, np.zeros(1)]
    x0 = rng.normal(size=d)
    prob = l2bab.BabProblem(ws, bs, x0, np.ones(d, bool), eps, label)
    c, nrm = ws[0] @ x0 + bs[0], np.linalg.norm(ws[0], axis=1)
    lo, up = [c - eps * nrm, np.full(width, -1e6)], [c + eps * nrm, np.full(width, 1e6)]
    l2bab._tighten(prob, lo, up, 0)
    return prob, lo, up, float(_margins(prob, _ball_points(rng, x0, eps, n_samples)).min())


def _assert_sound_at_perturbed_multipliers(rng, dual_bound, prog, z, y, truth):
    """The dual bound stays below the sampled minimum ``truth`` at multipliers perturbed by 1e-6 to 1e-1."""
    for scale in (1e-6, 1e-3, 1e-1):
        for _ in range(5):
            zp = z + scale * rng.normal(size=z.size) * (1 + np.abs(z))
            yp = y + scale * rng.normal(size=y.size) * (1 + np.abs(y))
            assert dual_bound(prog, zp, yp) <= truth + 1e-9


def test_first_layer_hull_is_exact_for_one_unstable_neuron():
    """m = beta z1 - relu(z2) with z1 stable: the hull of relu over the disc makes the relaxation exact (a
    linear objective over the convex hull of the graph), where the triangle is not."""
    rng = np.random.default_rng(3)
    gaps = []
    for trial in range(6):
        w = rng.normal(size=(2, 2))
        x0 = rng.normal(size=2)
        eps = 1.0
        b = np.array([10.0 - w[0] @ x0, rng.uniform(-0.8, 0.8) * np.linalg.norm(w[1]) - w[1] @ x0])
        out = np.array([[rng.normal() * 0.3, -1.0]])  # -relu(z2): the triangle's chord is what it minimises
        prob = l2bab.BabProblem([w, out], [b, np.zeros(1)], x0, np.ones(2, bool), eps, 1)
        c, nrm = w @ x0 + b, np.linalg.norm(w, axis=1)
        lo, up = [c - eps * nrm], [c + eps * nrm]
        theta = np.linspace(0, 2 * np.pi, 20001)
        pts = np.concatenate([x0 + r * np.stack([np.cos(theta), np.sin(theta)], 1) for r in np.linspace(0, eps, 201)])
        exact = float(_margins(prob, pts).min())
        hull = l2bab._solve(l2bab._build(prob, lo, up, False, moments=False), math.inf).lower
        tri = l2bab._solve(l2bab._build(prob, lo, up, False, hull=False, moments=False), math.inf).lower
        assert tri <= hull + 1e-6 * (1 + abs(tri)) and hull <= exact, (trial, tri, hull, exact)
        assert hull >= exact - 1e-4 * (1 + abs(exact)), (trial, hull, exact)  # the grid's resolution
        gaps.append(hull - tri)
    assert max(gaps) > 1e-2  # the triangle alone is visibly looser


def test_node_bounds_with_the_hull_are_sound_even_at_perturbed_multipliers(monkeypatch):
    """On random 4-10-10-1 networks the node bound (hull and triangles, dual-bounded) lies below every sampled
    margin in the ball, above the triangle-only bound, and stays below them when the solver's multipliers are
    perturbed (the dual function is a lower bound at any multipliers once they are put into their cones)."""
    rng = np.random.default_rng(0)
    seen = []
    real = l2bab._dual_bound
    monkeypatch.setattr(l2bab, "_dual_bound", lambda prog, z, y, homogeneous=False: (
        seen.append((prog, z, y)), real(prog, z, y, homogeneous))[1])
    tighter = 0
    for trial in range(4):
        prob, lo, up, truth = _random_node(rng, 4, 10, 0.6 + 0.3 * trial, 1 if trial % 2 else -1, 40000)
        seen.clear()
        hull = l2bab._solve(l2bab._build(prob, lo, up, False, moments=False), math.inf).lower
        tri = l2bab._solve(l2bab._build(prob, lo, up, False, hull=False, moments=False), math.inf).lower
        assert tri <= hull + 1e-6 * (1 + abs(tri)) and hull <= truth, (trial, tri, hull, truth)
        tighter += hull > tri + 1e-3
        prog, z, y = seen[0]
        _assert_sound_at_perturbed_multipliers(rng, real, prog, z, y, truth)
    assert tighter >= 2


@pytest.mark.parametrize("kind", ["relu", "linear-model"])
def test_linear_networks_match_the_closed_form_distance(kind):
    g = torch.Generator().manual_seed(5)
    d = 12
    w, b = torch.randn(d, generator=g, dtype=torch.float64), 0.3
    if kind == "relu":
        net = _linear_relu(w, b)
    else:
        net = tr.models.LinearModel(d, dtype=torch.float64)
        with torch.no_grad():
            net.linear.weight.copy_(w[None, :])
            net.linear.bias.fill_(b)
    x = torch.randn(10, d, generator=g, dtype=torch.float64) * 2
    m = x @ w + b
    y = torch.where(m >= 0, 1, -1)
    exact = (m.abs() / w.norm()).numpy()
    res = minimal_distance(net, x, y, "l2")
    assert res.status == ["optimal"] * 10
    assert np.allclose(res.distance, exact, rtol=1e-5)
    for f in (0.99, 1.01):
        v = verify(net, x, y, tr.L2(float(np.median(exact)) * f))
        _check_verdicts(net, x, y, v, float(np.median(exact)) * f)
        assert np.array_equal(v.robust.numpy(), exact > float(np.median(exact)) * f)
    # a subset of coordinates: the distance is |m| / ||w_S||
    coords = [0, 3, 7]
    part = minimal_distance(net, x, y, "l2", coords=coords)
    assert np.allclose(part.distance, (m.abs() / w[coords].norm()).numpy(), rtol=1e-5)
    assert bool((part.x_adv[:, [1, 2]] == x[:, [1, 2]]).all())


@pytest.mark.parametrize("definition", ["ball", "projection", "error-region"])
def test_verified_l2_risk_of_a_linear_network_equals_closed_form(definition):
    dist = tr.Tsipras(0.9, 3.0, d=2)
    clf = tr.Linear([1.0, 3.0, 3.0])
    net = _linear_relu(torch.as_tensor(clf.w.to_numpy(), dtype=torch.float64), float(clf.b))
    n, threat = 300, tr.L2(2.0)
    x, y = dist.sample(n, generator=tr.rng.make_generator(11), dtype=torch.float64)
    region = None if definition == "ball" else regions.label_regions(dist)
    res = verify(net, x, y, threat, definition=definition, region=region, pgd_steps=10)
    assert res.counts()["unknown"] == 0, res.counts()
    lo, hi = clopper_pearson(int((~res.robust).sum()), n, level=0.999)
    exact = float(tr.risk(dist, clf, threat, definition=definition))
    assert lo <= exact <= hi, (exact, lo, hi)


def test_tie_rule_and_no_false_counterexample():
    # margin x_1: at eps = 0.5 the point x_1 = 0.5 (y = +1) reaches m = 0 at best, which still predicts +1;
    # the point x_1 = -0.5 (y = -1) reaches m = 0, which predicts +1: vulnerable
    net = _linear_relu(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.tensor([[0.5, 0.2], [-0.5, 0.1]], dtype=torch.float64)
    # the only such points lie on the sphere, which no solver hits exactly: both may stay unknown ("boundary")
    res = verify(net, x, torch.tensor([1, -1]), tr.L2(0.5), pgd_steps=0)
    assert res.status[1] in ("vulnerable", "unknown") and res.status[0] in ("robust", "unknown")
    if res.status[1] == "vulnerable":
        assert float(res.x_adv[1, 0]) >= 0
    # a hair either side of the tie decides both
    assert verify(net, x[:1], torch.tensor([1]), tr.L2(0.5 - 1e-5), pgd_steps=0).status == ["robust"]
    assert verify(net, x[1:], torch.tensor([-1]), tr.L2(0.5 + 1e-5), pgd_steps=0).status == ["vulnerable"]


def test_time_limit_leaves_points_unknown_never_wrong(net2d):
    net, x, y, ref = net2d
    eps = float(np.median(ref))
    quick = verify(net, x, y, tr.L2(eps), time_limit=1e-4, pgd_steps=0)
    assert set(quick.decided_by) <= {"clean", "ibp", "crown", "alpha-crown", "quad-crown", "quad-bab", "bab",
                                     "timeout", "node-limit", "leaf-limit", "stuck"}
    wrong = (quick.robust.numpy() & (ref <= eps * (1 - 1e-4))) | (quick.vulnerable.numpy() & (ref > eps * (1 + 1e-4)))
    assert not wrong.any()


def test_estimate_risk_closes_the_l2_bracket(net2d):
    net = net2d[0]
    dist = tr.GaussianMixture([1.0, 0.5])
    e = tr.estimate_risk(dist, net, tr.L2(0.3), n=60, seed=3, upper="verify", attack_options={"steps": 10})
    assert e.kind == "bracket" and e.decided == e.n and e.is_exact
    assert e.k == e.upper_k


_NET = None


def _small_net():
    global _NET
    if _NET is None:
        g = torch.Generator().manual_seed(2)
        _NET = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).double()
        with torch.no_grad():
            for prm in _NET.parameters():
                prm.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float64))
    return _NET


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(point=[-1.0, -1.0, -1.75], frac=0.75)  # an exact leaf whose minimiser's ray leaves it at once
# an exact leaf at distance 0.0022: at the solver's default tolerance its bracket stayed 9e-5 wide ("timeout" in 0 s)
@example(point=[1.5625, -1.71875, -0.3125], frac=0.75)
# distance 0.00038: at 0.999 of it the worst margin is 6.5e-7, inside the certification tolerance ("unknown")
@example(point=[1.56640625, -1.7265625, -0.3203125], frac=0.75)
@given(point=st.lists(st.floats(-2, 2), min_size=3, max_size=3), frac=st.floats(0.1, 0.95))
def test_verdicts_are_monotone_and_agree_with_the_minimal_distance(point, frac):
    assume(abs(2 * frac - 1) > 1e-2)  # eps = 2 frac d: not at the tie eps = d (left unknown, "boundary")
    net = _small_net()
    x = torch.tensor([point], dtype=torch.float64)
    y = _predict(net, x)
    md = minimal_distance(net, x, y, "l2", max_eps=8.0, time_limit=20)
    assert md.status[0] in ("optimal", "beyond-max-eps")
    d = md.distance[0]
    if math.isfinite(d):
        below = verify(net, x, y, tr.L2(d * (1 - 1e-3)), pgd_steps=0)
        above = verify(net, x, y, tr.L2(d * (1 + 1e-3)), pgd_steps=0)
        if d > 1e-2:
            assert below.status == ["robust"] and above.status == ["vulnerable"]
        else:  # within 1e-3 d of the boundary the margin can be below the certification tolerance: never wrong
            assert below.status[0] in ("robust", "unknown") and above.status[0] in ("vulnerable", "unknown")
        eps = d * frac * 2  # on either side of d
    else:
        eps = 8.0 * frac
    big = verify(net, x, y, tr.L2(eps), pgd_steps=0)
    small = verify(net, x, y, tr.L2(eps * frac), pgd_steps=0)
    assert big.counts()["unknown"] == 0 and small.counts()["unknown"] == 0
    if big.status == ["robust"]:
        assert small.status == ["robust"]
    assert big.status == (["robust"] if eps < d else ["vulnerable"])


def test_a_small_distance_in_an_exact_leaf_is_closed_to_rtol_and_its_lower_end_is_proven():
    # found by hypothesis: the search ended in 0 s with [0.0021805, 0.0021807] (the leaf's program at tolerance 1e-6)
    # and reported "timeout"; the leaf's precise program closes it, and the lower end is what was proven, not the
    # best distance: dense rays from x (an independent search) never find the boundary nearer than it
    net = _small_net()
    x = torch.tensor([[1.5625, -1.71875, -0.3125]], dtype=torch.float64)
    y = _predict(net, x)
    md = minimal_distance(net, x, y, "l2", max_eps=8.0, time_limit=20)
    assert md.status == ["optimal"]
    lo, hi = md.lower[0], md.upper[0]
    assert lo <= md.distance[0] == hi and hi - lo <= 1e-5 * hi
    assert _predict(net, md.x_adv) != y
    dirs = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    nearest = _direction_search(net, x, y, reach=2 * hi, steps=20, dirs=dirs / dirs.norm(dim=1, keepdim=True))[0]
    assert lo <= nearest <= hi * 1.01  # never nearer than the proven end; the rays do reach the boundary near it


def test_node_programs_use_the_single_threaded_factorisation():
    # Clarabel's "auto" chose faer's multithreaded factorisation for the 20-100-100-1 spheres network's node programs:
    # 230-670 ms a program against 26-52 ms with QDLDL, same bounds (benchmarks/README.md, second session of
    # 2026-12-07); the settings must keep asking for QDLDL
    settings = l2bab._settings(math.inf)
    assert settings.direct_solve_method == "qdldl"
    assert settings.tol_gap_abs == settings.tol_feas == 1e-6


def test_progress_bar_over_the_solver_stage(net2d, capsys):
    # a bar over the points that reach the branch and bound, with the verdicts so far; progress=False or a
    # non-terminal stderr (None) shows nothing; anything else than a bool or None is refused by name
    net, xs, ys, _ = net2d
    res = verify(net, xs, ys, tr.L2(1.5), progress=True, pgd_steps=0, quad_crown={"branch_share": 0})
    err = capsys.readouterr().err
    reached = sum(by == "bab" or st == "unknown" for by, st in zip(res.decided_by, res.status))
    assert res.stats["bab_nodes"] > 0 and reached >= 2
    assert f"verify[branch and bound]:   0%|          | 0/{reached} " in err
    # and one over the points that reach Quad-CROWN (before the branch and bound), a batch at a time
    assert res.stats["quad_items"] >= 2
    assert f"verify[quad-crown]:   0%|          | 0/{res.stats['quad_items']} " in err
    again = verify(net, xs, ys, tr.L2(1.5), progress=None, pgd_steps=0, quad_crown={"branch_share": 0})
    assert capsys.readouterr().err == "" and again.status == res.status
    # the Quad-CROWN search (on by default) has its bar over the points it reaches
    searched = verify(net, xs, ys, tr.L2(1.5), progress=True, pgd_steps=0)
    reached = searched.stats["quad_bab_items"]
    assert reached >= 2 and f"verify[quad-bab]:   0%|          | 0/{reached} " in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress must be True, False or None, got 'yes'"):
        verify(net, xs, ys, tr.L2(1.5), progress="yes")
    # the bar advances once per point (after its last sub-problem) and counts the verdicts
    from toyrobust.verification import api

    class Stub:
        def _verdict(self, i):
            return ("robust", "vulnerable", "unknown")[i], "", None

    with api._StageBar(Stub(), [(0, 0), (0, 1), (1, 0), (2, 0)], "test", True) as bar:
        assert list(bar) == [(0, 0), (0, 1), (1, 0), (2, 0)]
        assert bar.bar.n == 3 and bar.counts == {"robust": 1, "vulnerable": 1, "unknown": 1}
    capsys.readouterr()
    quad = tr.models.QuadraticNet(2, 3, seed=0, dtype=torch.float64)
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        verify(quad, xs, ys, tr.L2(0.1), progress=1)
