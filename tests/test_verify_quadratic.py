"""Quadratic networks decided exactly under L2 (toyrobust.verification.quadratic), against independent references:
a dense search along many directions in 2-D and 3-D, closed forms for diagonal and isotropic matrices (the hard case
included), the closed-form risk of the network's twin on the spheres, and the cross-check's quadratic-network row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import toyrobust as tr
from toyrobust import crosscheck as cc
from toyrobust.models import QuadraticNet
from toyrobust.verification import minimal_distance, verifier_for, verify


def _net(alpha, b, rotation=None, dtype=torch.float64) -> QuadraticNet:
    """``m(x) = x^T Q diag(alpha) Q^T x + b``: W = Q^T (hidden = d), vector read-out ``alpha``."""
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    d = alpha.numel()
    net = QuadraticNet(d, d, readout="vector", dtype=dtype)
    Q = torch.eye(d, dtype=torch.float64) if rotation is None else rotation
    with torch.no_grad():
        net.W.weight.copy_(Q.T)
        net.a.copy_(alpha)
        net.b.fill_(b)
    return net


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


def _directions(d: int, k: int) -> torch.Tensor:
    """k unit vectors: equally spaced angles in 2-D, a Fibonacci lattice on the sphere in 3-D."""
    if d == 2:
        t = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
        return torch.stack([t.cos(), t.sin()], 1)
    i = torch.arange(k, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / k)
    theta = math.pi * (1 + 5**0.5) * i
    return torch.stack([phi.sin() * theta.cos(), phi.sin() * theta.sin(), phi.cos()], 1)


def _dense_distance(net: QuadraticNet, x: torch.Tensor, label: int, reach: float, k: int = 20000) -> float:
    """The smallest ``t`` over many directions ``u`` with ``predict(x + t u) != label``: a grid of 400 radii up to
    ``reach``, then bisection on the first crossing. An upper bound on the distance, tight as k grows."""
    u = _directions(x.numel(), k)
    ts = torch.linspace(0, reach, 401, dtype=torch.float64)[1:]
    with torch.no_grad():
        m = torch.stack([net(x[None, :] + t * u) for t in ts], 1)
    bad = torch.where(m >= 0, 1, -1) != label
    hit = bad.any(1)
    if not bool(hit.any()):
        return math.inf
    first = bad.to(torch.int64).argmax(1)
    hi = ts[first]
    lo = torch.where(first > 0, ts[(first - 1).clamp_min(0)], torch.zeros_like(hi))
    for _ in range(50):
        mid = (lo + hi) / 2
        with torch.no_grad():
            flip = torch.where(net(x[None, :] + mid[:, None] * u) >= 0, 1, -1) != label
        lo, hi = torch.where(flip, lo, mid), torch.where(flip, mid, hi)
    return float(hi[hit].min())


@pytest.mark.parametrize("d, seed", [(2, 0), (2, 1), (3, 2), (3, 3)])
def test_minimal_l2_distance_and_verdicts_match_a_dense_search(d, seed):
    g = torch.Generator().manual_seed(seed)
    net = QuadraticNet(d, 4, readout="vector", seed=seed, dtype=torch.float64)
    with torch.no_grad():
        # an indefinite form (almost surely: read-out weights of both signs)
        net.a.copy_(torch.randn(4, generator=g, dtype=torch.float64).abs() * torch.tensor([1.0, -1.0, 1.0, -1.0]))
        net.b.fill_(-0.3)
    x = torch.randn(12, d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(net(x) >= 0, 1, -1)
    res = minimal_distance(net, x, y, "l2")
    assert set(res.status) == {"optimal"}
    for i in range(x.shape[0]):
        dense = _dense_distance(net, x[i], int(y[i]), reach=4.0, k=20000 if d == 2 else 40000)
        exact = res.distance[i]
        # the dense search only finds adversarial points: never closer than the exact distance
        assert exact <= dense + 1e-9, (i, exact, dense)
        if math.isfinite(dense):
            assert dense - exact <= (2e-3 if d == 2 else 2e-2) * max(1.0, exact), (i, exact, dense)
        else:
            assert exact > 3.9
        if not math.isfinite(exact):
            continue
        # x_adv is adversarial, at the distance (to rounding)
        with torch.no_grad():
            assert (1 if float(net(res.x_adv[i:i + 1])[0]) >= 0 else -1) != int(y[i])
        assert abs(float(torch.linalg.vector_norm(res.x_adv[i] - x[i])) - exact) <= 1e-9 * (1 + exact)
    # verify's verdicts are the distances compared with eps, each confirmed by the dense search's points
    finite = res.distance[np.isfinite(res.distance)]
    for eps in (float(np.median(finite)) * 0.999, float(np.median(finite)) * 1.001, 0.05):
        out = verify(net, x, y, tr.L2(eps))
        assert out.counts()["unknown"] == 0
        assert (out.robust.numpy() == (res.distance > eps)).all()
        assert bool(tr.L2(eps).contains(out.x_adv[out.vulnerable], x[out.vulnerable]).all())
        with torch.no_grad():
            pred = torch.where(net(out.x_adv) >= 0, 1, -1)
        assert bool((pred[out.vulnerable] != y[out.vulnerable]).all())


def test_isotropic_closed_form():
    # m = 2 ||x||^2 - 2: the unit sphere; the distance is | ||x|| - 1 |
    d = 5
    net = _net([2.0] * d, -2.0, _orthogonal(d, 0))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, d, generator=g, dtype=torch.float64) * 0.7
    y = torch.where(x.norm(dim=1) >= 1, 1, -1)
    res = minimal_distance(net, x, y, "l2")
    np.testing.assert_allclose(res.distance, (x.norm(dim=1) - 1).abs().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rotate", [False, True])
def test_diagonal_closed_forms_including_the_hard_case(rotate):
    # ellipse (z1/A)^2 + (z2/B)^2 = 1 with A = 2 > B = 1; a point (t, 0) on the major axis: for |t| <= (A^2-B^2)/A
    # the nearest point leaves the axis (the hard case: x has no component on the largest coefficient's
    # eigenvector), at distance B sqrt(1 - t^2 / (A^2 - B^2)); further out it is A - |t|
    A, B = 2.0, 1.0
    Q = _orthogonal(2, 5) if rotate else torch.eye(2, dtype=torch.float64)
    net = _net([1 / A**2, 1 / B**2], -1.0, Q)
    t = torch.tensor([0.0, 0.3, -1.0, 1.4, 1.6, 1.9], dtype=torch.float64)
    x = torch.stack([t, torch.zeros_like(t)], 1) @ Q.T
    res = minimal_distance(net, x, -torch.ones(6, dtype=torch.int64), "l2")
    c, tn = A**2 - B**2, t.numpy()
    want = np.where(np.abs(tn) <= c / A, B * np.sqrt(np.clip(1 - tn**2 / c, 0, None)), A - np.abs(tn))
    np.testing.assert_allclose(res.distance, want, rtol=1e-9, atol=1e-12)
    # the near-hard case: a component of 1e-17 (or rounding, as after the rotation above) on the largest
    # coefficient's eigenvector puts the secular root within rounding of its pole; the analytic exact attack
    # shares the solver
    from toyrobust.attacks import minimal_perturbation
    xs = torch.tensor([[0.3, 1e-17], [0.3, -1e-30], [-1.0, 1e-13]], dtype=torch.float64)
    _, dist = minimal_perturbation(tr.Quadratic([1 / A**2, 1 / B**2], 1.0), xs, torch.tensor([-1, -1, -1]), "l2")
    np.testing.assert_allclose(dist.numpy(), B * np.sqrt(1 - xs[:, 0].numpy() ** 2 / c), rtol=1e-9)
    # an indefinite diagonal form at x = 0: the extreme coefficients decide (both ends' hard cases)
    net = _net([2.0, -1.0, 0.5], -1.0, _orthogonal(3, 1) if rotate else None)
    assert math.isclose(minimal_distance(net, torch.zeros(1, 3, dtype=torch.float64), [-1], "l2").distance[0],
                        math.sqrt(1 / 2), rel_tol=1e-12)
    net = _net([2.0, -1.0, 0.5], 1.0, _orthogonal(3, 1) if rotate else None)
    assert math.isclose(minimal_distance(net, torch.zeros(1, 3, dtype=torch.float64), [1], "l2").distance[0],
                        1.0, rel_tol=1e-12)
    # verify at the closed form: robust just below, vulnerable just above, with the min of l m on the ball
    for eps, robust in ((0.999 * math.sqrt(0.5), True), (1.001 * math.sqrt(0.5), False)):
        net = _net([2.0, -1.0, 0.5], -1.0, _orthogonal(3, 1) if rotate else None)
        out = verify(net, torch.zeros(1, 3, dtype=torch.float64), [-1], tr.L2(eps))
        assert out.status == ["robust" if robust else "vulnerable"]
        assert out.decided_by == ["trust-region"]


def test_a_positive_definite_form_never_reached_is_infinitely_far():
    net = _net([1.0, 3.0], 0.5)  # m >= 0.5 everywhere: label +1 can never be flipped
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    res = minimal_distance(net, x, [1, 1], "l2")
    assert res.distance.tolist() == [math.inf, math.inf] and res.status == ["optimal", "optimal"]
    out = verify(net, x, torch.tensor([1, 1]), tr.L2(100.0))
    assert bool(out.robust.all())
    capped = minimal_distance(_net([1.0, 3.0], -0.5), x, [-1, 1], "l2", max_eps=0.1)
    assert capped.status == ["beyond-max-eps", "beyond-max-eps"] and capped.lower.tolist() == [0.1, 0.1]


def test_float32_network_counterexamples_pass_its_own_forward_pass():
    net = QuadraticNet(10, 30, readout="vector", seed=4, dtype=torch.float32)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        net.a.copy_(torch.randn(30, generator=g))
    x = torch.randn(300, 10, generator=g)
    with torch.no_grad():
        y = torch.where(net(x) >= 0, 1, -1)
    res = minimal_distance(net, x, y, "l2")
    eps = float(np.median(res.distance))
    out = verify(net, x, y, tr.L2(eps))
    assert out.counts()["unknown"] <= 1
    with torch.no_grad():
        pred = torch.where(net(out.x_adv) >= 0, 1, -1)
    assert bool((pred[out.vulnerable] != y[out.vulnerable]).all())
    assert bool(tr.L2(eps).contains(out.x_adv, x).all())
    decided = ~out.unknown.numpy()
    assert (out.robust.numpy()[decided] == (res.distance > eps)[decided]).all()


def test_linf_is_a_sound_bracket_and_the_dispatch_is_by_model():
    net = QuadraticNet(3, 5, readout="vector", seed=1, dtype=torch.float64)
    assert verifier_for(net).name == "quadratic"
    assert verifier_for(tr.models.MLP(3, (4,))).name == "relu"
    x = torch.randn(60, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(net(x) >= 0, 1, -1)
    out = verify(net, x, y, tr.Linf(0.1))
    assert set(out.decided_by) <= {"bound", "pgd", "clean", "incomplete"}
    # a robust verdict survives a dense search of the Linf box (its corners and a grid)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-0.1, 0.1, 21, dtype=torch.float64)] * 3, indexing="ij"),
                       -1).reshape(-1, 3)
    for i in np.flatnonzero(out.robust.numpy()):
        with torch.no_grad():
            m = net(x[i] + grid)
        assert bool(((m >= 0) == (y[i] > 0)).all())
    # L2 on a subset of coordinates is a bracket too; minimal_distance refuses what it cannot answer exactly
    part = verify(net, x, y, tr.L2(0.1, coords=[0, 1]))
    assert "trust-region" not in part.decided_by
    with pytest.raises(ValueError, match="norm='l2'"):
        minimal_distance(net, x, y, "linf")
    with pytest.raises(ValueError, match="coords"):
        minimal_distance(net, x, y, "l2", coords=[0])


def _sphere_net(dim: int, seed: int) -> QuadraticNet:
    g = torch.Generator().manual_seed(seed)
    alpha = 0.3 + torch.rand(dim, generator=g, dtype=torch.float64)  # around 1/1.15^2 = 0.756: some risk at L2 0.05
    return _net(alpha, -1.0, _orthogonal(dim, seed))


def test_estimate_risk_bracket_closes_on_the_spheres():
    sp = tr.ConcentricSpheres(20, 1.0, 1.3)
    net = _sphere_net(20, 0)
    threat = tr.L2(0.05)
    est = tr.estimate_risk(sp, net, threat, n=4000, seed=0, upper="verify", attack_options={"steps": 10})
    assert est.kind == "bracket" and est.decided == est.n and est.k == est.upper_k
    # no closed form for eps > 0: the reference is the fraction of fresh points within eps of the quadric
    x, y = sp.sample(20000, generator=123, dtype=torch.float64)
    ref = float(np.mean(minimal_distance(net, x, y, "l2").distance <= 0.05))
    lo, hi = tr.montecarlo.clopper_pearson(round(ref * 20000), 20000, 0.999)
    assert est.ci_low <= hi and lo <= est.ci_high, (est, ref)
    assert 0.01 < ref < 0.99  # a case with something to decide
    # projection and error-region definitions need polyhedral label regions, which the spheres do not have
    with pytest.raises(TypeError):
        tr.estimate_risk(sp, net, threat, "projection", n=100, upper="verify")


def test_crosscheck_quadratic_network_row_is_exact():
    sp = tr.ConcentricSpheres(20, 1.0, 1.3)
    net = _sphere_net(20, 1)
    cases = cc._quadratic_net_cases(sp, net, "trained, spheres D=20")
    l2 = [c for c in cases if c.threat is not None]
    assert l2 and all(c.upper == "verify" for c in l2)
    res = cc.run_case(l2[0], n=3000, seed=0)
    assert res.verdict == "exact", res
    assert res.decided == res.n
    assert "decided 3000/3000 (the verifier on this row's points, seed=0)" in res.detail


@pytest.mark.parametrize("definition", ["projection", "error-region"])
def test_region_definitions_are_sound_against_a_dense_search(definition):
    from toyrobust.verification import regions

    gm = tr.GaussianMixture([1.0, 0.0])
    region = regions.gaussian_mixture(gm)
    net = QuadraticNet(2, 4, readout="vector", seed=3, dtype=torch.float64)
    with torch.no_grad():
        net.a.copy_(torch.tensor([1.0, -0.5, 0.8, -1.2], dtype=torch.float64))
        net.b.fill_(-0.2)
    x, y = gm.sample(60, generator=2, dtype=torch.float64)
    eps = 0.4
    out = verify(net, x, y, tr.L2(eps), definition=definition, region=region)
    assert out.counts()["vulnerable"] > 0 and out.counts()["robust"] > 0
    assert set(out.decided_by) <= {"clean", "trust-region", "region", "incomplete"}
    # a dense grid of the ball: no adversarial point of the definition next to a robust verdict
    t = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)[:-1]
    r = torch.linspace(0, eps, 41, dtype=torch.float64)
    disk = (r[:, None, None] * torch.stack([t.cos(), t.sin()], 1)[None]).reshape(-1, 2)
    for i in np.flatnonzero(out.robust.numpy()):
        pts = x[i] + disk
        adv = tr.definitions.is_adversarial(definition, net.classifier(), pts, y[i].expand(pts.shape[0]), dist=gm,
                                            x=x[i].expand_as(pts))
        assert not bool(adv.any()), i
