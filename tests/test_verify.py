"""Complete verification of ReLU networks (toyrobust.verification), checked against independent references:
a brute-force grid for the minimal distance, PGD with 100 restarts for "robust", forward passes for
counterexamples, closed-form risks of the linear classifier a ReLU network computes exactly (Clopper-Pearson
intervals), and sampled outputs for the soundness of IBP and CROWN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import toyrobust as tr
from toyrobust.attacks import pgd
from toyrobust.montecarlo import clopper_pearson
from toyrobust.verification import (
    InputBall,
    crown_bounds,
    extract_network,
    ibp_bounds,
    minimal_distance,
    regions,
    verify,
)
from toyrobust.verification.bounds import pure_crown_margin


def _net(sizes, seed, scale=1.0, out=1):
    """A ReLU network with weights drawn from an explicit generator (not the global RNG)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) * scale / math.sqrt(a))
            lin.bias.copy_(torch.randn(b, generator=g) * 0.3)
        layers += [lin, nn.ReLU()]
    lin = nn.Linear(sizes[-1], out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(out, sizes[-1], generator=g) / math.sqrt(sizes[-1]))
        lin.bias.copy_(torch.randn(out, generator=g) * 0.1)
    return nn.Sequential(*layers, lin)


@pytest.fixture(scope="module")
def net2d():
    """2-12-12-1 trained briefly on a 2-D Gaussian mixture (mean (1, 0.5)), float64."""
    net = _net([2, 12, 12], seed=3).double()
    dist = tr.GaussianMixture([1.0, 0.5])
    x, y = dist.sample(512, generator=tr.rng.make_generator(0), dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-y * net(x)[:, 0]).mean()
        loss.backward()
        opt.step()
    xs, ys = dist.sample(50, generator=tr.rng.make_generator(1), dtype=torch.float64)
    return net.eval(), xs, ys


def _grid_distance(net, x, y, lim, n, norm, reach):
    """Brute force: the smallest ||g - x|| over the points g of a regular grid on [-lim, lim]^2 that the
    network classifies differently from y (tie: m >= 0 means +1), searched within ||g - x||_inf <= reach (the
    caller passes a reach above the distance it expects, so a closer grid point would still be found)."""
    t = torch.linspace(-lim, lim, n, dtype=torch.float64)
    h = float(t[1] - t[0])
    gx, gy = torch.meshgrid(t, t, indexing="ij")
    with torch.no_grad():
        pred = torch.where(net(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))[:, 0] >= 0, 1, -1).reshape(n, n)
    out = []
    for xi, yi, r in zip(x, y, reach):
        lo = [max(0, int((float(c) - r + lim) / h) - 1) for c in xi]
        hi = [min(n, int((float(c) + r + lim) / h) + 2) for c in xi]
        win = pred[lo[0]:hi[0], lo[1]:hi[1]] != int(yi)
        dx = (t[lo[0]:hi[0]] - xi[0]).abs()[:, None].expand_as(win)
        dy = (t[lo[1]:hi[1]] - xi[1]).abs()[None, :].expand_as(win)
        dist = torch.maximum(dx, dy) if norm == "linf" else dx + dy
        out.append(float(dist[win].min()) if bool(win.any()) else math.inf)
    return np.array(out), h


def test_minimal_linf_distance_equals_grid_search(net2d):
    net, x, y = net2d
    res = minimal_distance(net, x, y, "linf", time_limit=20.0)
    assert all(s in ("optimal", "misclassified") for s in res.status)
    grid, h = _grid_distance(net, x, y, 6.0, 2401, "linf", res.distance + 0.05)
    inside = res.distance + np.abs(x.numpy()).max(1) < 5.9
    assert inside.sum() >= 45
    d, g = res.distance[inside], grid[inside]
    # grid points are adversarial, so the grid can only overestimate; a grid point lies within h of x*
    assert np.all(g >= d - 1e-6)
    assert np.all(g <= d + 2 * h), np.max(g - d)
    assert np.all(res.lower <= res.distance + 1e-9) and np.all(res.distance <= res.upper + 1e-9)


def test_minimal_l1_distance_equals_grid_search(net2d):
    net, x, y = net2d
    res = minimal_distance(net, x[:6], y[:6], "l1", time_limit=20.0)
    grid, h = _grid_distance(net, x[:6], y[:6], 6.0, 2401, "l1", res.distance + 0.05)
    ok = np.array([s == "optimal" for s in res.status]) & (res.distance + np.abs(x[:6].numpy()).max(1) < 5.9)
    assert ok.sum() >= 5
    assert np.all(grid[ok] >= res.distance[ok] - 1e-6)
    assert np.all(grid[ok] <= res.distance[ok] + 2 * h)


def test_robust_points_survive_pgd_and_counterexamples_are_adversarial(net2d):
    net, x, y = net2d
    threat = tr.Linf(0.3)
    res = verify(net, x, y, threat, time_limit=10.0)
    c = res.counts()
    assert c["unknown"] == 0 and c["robust"] >= 5 and c["vulnerable"] >= 5, c
    rob = res.robust
    att = pgd(net, x[rob], y[rob], threat, steps=50, restarts=100, generator=5)
    assert not bool(att.success.any())
    vul = res.vulnerable
    with torch.no_grad():
        m = net(res.x_adv[vul])[:, 0]
    assert bool((torch.where(m >= 0, 1, -1) != y[vul]).all())
    assert bool(threat.contains(res.x_adv[vul], x[vul]).all())
    assert res.x_adv.dtype == x.dtype and res.x_adv.device == x.device
    assert bool((res.x_adv[rob] == x[rob]).all())
    # the worst-case lower bound is positive exactly where robust
    assert bool((res.lower_bound[rob] > 0).all())


@pytest.mark.parametrize("attack,label", [("apgd", "apgd"), (tr.attacks.PGD(steps=5), "pgd")])
def test_pre_pass_takes_an_attack_name_or_object_and_its_counterexamples_are_genuine(net2d, attack, label):
    net, x, y = net2d
    threat = tr.Linf(0.3)
    res = verify(net, x, y, threat, method="bounds", attack=attack)
    default = verify(net, x, y, threat, method="bounds")
    by_attack = torch.tensor([h == label for h in res.decided_by])
    assert int(by_attack.sum()) >= 1, res.decided_by
    assert set(res.decided_by) <= {"clean", label, "ibp", "crown", "alpha-crown", "incomplete"}
    vul = res.vulnerable
    assert bool(vul[by_attack].all())
    with torch.no_grad():
        m = net(res.x_adv[vul])[:, 0]
    assert bool((torch.where(m >= 0, 1, -1) != y[vul]).all())
    assert bool(threat.contains(res.x_adv[vul], x[vul]).all())
    # sound either way: the proofs do not depend on the attack
    assert not bool((res.robust & default.vulnerable).any()) and not bool((res.vulnerable & default.robust).any())
    with pytest.raises(TypeError, match="pre-pass"):
        verify(net, x[:2], y[:2], threat, attack="projection_attack")  # needs the distribution
    with pytest.raises(ValueError):
        verify(net, x[:2], y[:2], threat, attack="no-such-attack")


def _linear_relu(w, b):
    """A ReLU network computing w.x + b exactly: relu(w.x + b) - relu(-w.x - b)."""
    w = torch.as_tensor(w, dtype=torch.float64)
    first = nn.Linear(w.numel(), 2).double()
    last = nn.Linear(2, 1).double()
    with torch.no_grad():
        first.weight.copy_(torch.stack([w, -w]))
        first.bias.copy_(torch.tensor([b, -b], dtype=torch.float64))
        last.weight.copy_(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
        last.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), last)


CASES = [
    ("tsipras-bayes-linf", lambda: tr.Tsipras(0.9, 3.0, d=2), None, tr.Linf(2.0), "ball"),
    ("tsipras-linf-projection", lambda: tr.Tsipras(0.9, 3.0, d=2), tr.Linear([1.0, 3.0, 3.0]), tr.Linf(2.0),
     "projection"),
    ("tsipras-linf-error-region", lambda: tr.Tsipras(0.9, 3.0, d=2), tr.Linear([1.0, 3.0, 3.0]), tr.Linf(2.0),
     "error-region"),
    ("point-masses-threshold-error-region", lambda: tr.PointMasses(1.0), tr.Linear([-1.0], 0.2), tr.Linf(0.6),
     "error-region"),
    ("rnr-bayes-linf", lambda: tr.GaussianMixture.robust_nonrobust(20), None, tr.Linf(0.2), "ball"),
    ("rnr-bayes-l1", lambda: tr.GaussianMixture.robust_nonrobust(20), None, tr.L1(1.0), "ball"),
]


@pytest.mark.parametrize("name,make,clf,threat,definition", CASES, ids=[c[0] for c in CASES])
def test_verified_risk_of_a_linear_network_equals_closed_form(name, make, clf, threat, definition):
    dist = make()
    clf = dist.bayes_classifier() if clf is None else clf
    w = torch.as_tensor(clf.w.to_numpy(), dtype=torch.float64)
    net = _linear_relu(w, float(clf.b))
    n = 400
    x, y = dist.sample(n, generator=tr.rng.make_generator(11), dtype=torch.float64)
    region = None if definition == "ball" else regions.label_regions(dist)
    res = verify(net, x, y, threat, definition=definition, region=region, time_limit=5.0, pgd_steps=10)
    assert res.counts()["unknown"] == 0, res.counts()
    k = int((~res.robust).sum())
    lo, hi = clopper_pearson(k, n, level=0.999)
    exact = float(tr.risk(dist, clf, threat, definition=definition))
    assert lo <= exact <= hi, (k / n, exact, lo, hi)


def test_projection_with_the_bayes_rule_leaves_exact_ties_unknown():
    """f = Bayes: on the face z_1 = +-1 the worst margin is exactly 0 but not attained inside R_y (the tie rule
    puts those points in the other region), so no adversarial point exists there, yet no floating-point method
    can separate "0 not attained" from "slightly negative": such points must be unknown, never vulnerable, and the
    verified risk brackets the closed form."""
    dist = tr.Tsipras(0.9, 3.0, d=2)
    clf = dist.bayes_classifier()
    net = _linear_relu(torch.as_tensor(clf.w.to_numpy()), 0.0)
    n = 300
    x, y = dist.sample(n, generator=tr.rng.make_generator(11), dtype=torch.float64)
    res = verify(net, x, y, tr.Linf(2.0), definition="projection", region=regions.tsipras(dist), pgd_steps=10)
    unk = res.unknown
    assert int(unk.sum()) >= 1
    assert all(res.decided_by[i] == "boundary" for i in np.flatnonzero(unk.numpy()))
    assert bool((res.lower_bound[unk].abs() < 1e-6).all())
    exact = float(tr.risk(dist, clf, tr.Linf(2.0), definition="projection"))
    lo, _ = clopper_pearson(int(res.vulnerable.sum()), n, level=0.999)
    _, hi = clopper_pearson(int((~res.robust).sum()), n, level=0.999)
    assert lo <= exact <= hi


def test_projection_verdicts_agree_with_definition_on_counterexamples():
    dist = tr.Tsipras(0.9, 3.0, d=2)
    clf = dist.bayes_classifier()
    net = _linear_relu(torch.as_tensor(clf.w.to_numpy()), 0.0)
    x, y = dist.sample(100, generator=tr.rng.make_generator(2), dtype=torch.float64)
    res = verify(net, x, y, tr.Linf(2.0), definition="projection", region=regions.tsipras(dist), pgd_steps=10)
    vul = res.vulnerable
    assert int(vul.sum()) >= 3
    # independent check: Bayes label of the projection equals y, prediction differs
    z = res.x_adv[vul]
    assert bool((dist.bayes_label(dist.project(z)) == y[vul]).all())
    with torch.no_grad():
        assert bool((torch.where(net(z)[:, 0] >= 0, 1, -1) != y[vul]).all())


@pytest.mark.parametrize("make,builder", [(lambda: tr.Tsipras(0.8, 1.5, d=3), regions.tsipras),
                                          (lambda: tr.PointMasses(1.0), regions.point_masses),
                                          (lambda: tr.GaussianMixture([1.0, -0.5]), regions.gaussian_mixture)])
def test_region_builders_match_bayes_of_projection(make, builder):
    dist = make()
    region = builder(dist)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5000, dist.dim, generator=g, dtype=torch.float64) * 2
    z[:50, 0] = 0.0  # the tie of the rounding
    truth = dist.bayes_label(dist.project(z)).numpy()
    for label in (-1, 1):
        inside = np.zeros(len(z), dtype=bool)
        for A, b in region(label):
            inside |= np.all(z.numpy() @ A.T <= b + 1e-12, axis=1)
        # closures: every point with this label is inside; points inside with the other label lie on a boundary
        assert np.all(inside[truth == label])
        wrong = inside & (truth != label)
        assert wrong.sum() <= 50


# ------------------------------------------------------------------------------------------------ bounds


@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(1, 6), d=st.integers(1, 4),
       norm=st.sampled_from(["linf", "l1", "l2"]), eps=st.floats(0.01, 2.0), partial=st.booleans())
def test_ibp_and_crown_bounds_contain_sampled_outputs(seed, depth, width, d, norm, eps, partial):
    net = _net([d] + [width] * depth, seed, scale=2.0).double()
    rn = extract_network(net)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, d, generator=g, dtype=torch.float64)
    coords = [0] if partial else None
    threat = {"linf": tr.Linf, "l1": tr.L1, "l2": tr.L2}[norm](eps, coords=coords)
    mask = threat.mask(d).bool()
    ball = InputBall(x0, eps, threat.p, mask)
    ibp = ibp_bounds(rn, ball)
    crown = crown_bounds(rn, ball, ibp=ibp)
    pl, pu = pure_crown_margin(rn, ball, crown)
    for i in range(3):
        z = threat.random_start(x0[i].expand(10_000, d), generator=seed)
        if norm == "linf":  # corners too
            signs = torch.randint(0, 2, (2000, d), generator=g).double() * 2 - 1
            z[:2000] = x0[i] + eps * signs * mask
        assert bool(threat.contains(z, x0[i].expand(len(z), d)).all())
        h = z
        for k, (w, b) in enumerate(zip(rn.weights, rn.biases)):
            h = h @ w.T + b
            for bd in (ibp, crown):
                slack = 1e-9 * (1 + h.abs())
                assert bool((h >= bd.lower[k][i] - slack).all()) and bool((h <= bd.upper[k][i] + slack).all())
            if k < len(rn.weights) - 1:
                h = torch.relu(h)
        with torch.no_grad():
            m = net(z)[:, 0]
        slack = 1e-9 * (1 + m.abs())
        assert bool((m >= pl[i] - slack).all()) and bool((m <= pu[i] + slack).all())
    # the returned bounds are never looser than IBP's
    assert bool((crown.lower[-1] >= ibp.lower[-1]).all()) and bool((crown.upper[-1] <= ibp.upper[-1]).all())


def test_crown_is_tighter_than_ibp_on_a_deep_network():
    net = _net([4, 32, 32, 32], 0).double()
    rn = extract_network(net)
    x0 = torch.randn(20, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ball = InputBall(x0, 0.1, math.inf, torch.ones(4, dtype=torch.bool))
    ibp = ibp_bounds(rn, ball)
    crown = crown_bounds(rn, ball, ibp=ibp)
    pl, pu = pure_crown_margin(rn, ball, crown)
    width_ibp = (ibp.upper[-1] - ibp.lower[-1])[:, 0]
    assert bool(((pu - pl) < 0.8 * width_ibp).all())
    assert sum(int(u.sum()) for u in crown.unstable()) < sum(int(u.sum()) for u in ibp.unstable())


# ------------------------------------------------------------------------------------------- inputs, twins


def test_unsupported_layers_raise_type_error_naming_them():
    x = torch.zeros(2, 2)
    y = torch.tensor([1, -1])
    for layer, name in [(nn.Sigmoid(), "Sigmoid"), (nn.Tanh(), "Tanh")]:
        model = nn.Sequential(nn.Linear(2, 3), layer, nn.Linear(3, 1))
        with pytest.raises(TypeError, match=name):
            verify(model, x, y, tr.Linf(0.1))
    drop = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1))
    with pytest.raises(TypeError, match="Dropout"):
        verify(drop, x, y, tr.Linf(0.1))
    # a QuadraticNet has its own verifier (tests/test_verify_quadratic.py); a square activation in a Sequential not
    quad = nn.Sequential(nn.Linear(2, 3), nn.Bilinear(3, 3, 1))
    with pytest.raises(TypeError, match="Bilinear"):
        verify(quad, x, y, tr.L2(0.1))
    bn = tr.models.MLP(2, (4,), batch_norm=True)
    with pytest.raises(TypeError, match="BatchNorm1d"):
        verify(bn, x, y, tr.Linf(0.1))
    with pytest.raises(TypeError, match="outputs"):
        verify(nn.Sequential(nn.Linear(2, 3)), x, y, tr.Linf(0.1))


def test_bad_arguments_name_the_parameter():
    net = _net([2, 4], 0)
    x = torch.zeros(3, 2)
    y = torch.tensor([1, -1, 1])
    with pytest.raises(TypeError, match="threat"):
        verify(net, x, y, 0.1)
    with pytest.raises(ValueError, match="x must have shape"):
        verify(net, torch.zeros(3, 5), y, tr.Linf(0.1))
    with pytest.raises(TypeError, match="x must"):
        verify(net, np.zeros((3, 2)), y, tr.Linf(0.1))
    with pytest.raises(ValueError, match="y must"):
        verify(net, x, torch.tensor([1, 0, 1]), tr.Linf(0.1))
    with pytest.raises(ValueError, match="y must"):
        verify(net, x, torch.tensor([1, -1]), tr.Linf(0.1))
    with pytest.raises(ValueError, match="definition"):
        verify(net, x, y, tr.Linf(0.1), definition="prediction-change")
    with pytest.raises(TypeError, match="region"):
        verify(net, x, y, tr.Linf(0.1), definition="projection")
    with pytest.raises(ValueError, match="region"):
        verify(net, x, y, tr.Linf(0.1), definition="projection", region=lambda label: [(np.ones((1, 3)), [0.0])])
    with pytest.raises(ValueError, match="time_limit"):
        verify(net, x, y, tr.Linf(0.1), time_limit=0)
    with pytest.raises(ValueError, match="method"):
        verify(net, x, y, tr.L2(0.1), method="milp")
    with pytest.raises(ValueError, match="coords"):
        verify(net, x, y, tr.Linf(0.1, coords=[5]))
    with pytest.raises(ValueError, match="norm"):
        minimal_distance(net, x, y, "l3")


def test_one_and_two_logit_twins_and_mlp_wrappers_agree():
    one = _net([3, 8, 8], 4).double()
    last = one[-1]
    two_last = nn.Linear(8, 2).double()
    with torch.no_grad():
        two_last.weight.copy_(torch.cat([-last.weight / 2, last.weight / 2]))
        two_last.bias.copy_(torch.cat([-last.bias / 2, last.bias / 2]))
    two = nn.Sequential(*list(one)[:-1], two_last)
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(x[:, 0] >= 0, 1, -1)
    for threat in (tr.Linf(0.3), tr.L1(0.5), tr.L2(0.3)):
        a = verify(one, x, y, threat)
        b = verify(two, x, y, threat)
        assert a.status == b.status
    # toyrobust's own MLP with eval-mode batch norm (folded) verifies like its plain twin
    mlp = tr.models.MLP(3, (6, 6), batch_norm=True, dtype=torch.float64)
    mlp.train()
    with torch.no_grad():
        mlp(torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    mlp.eval()
    rn = extract_network(mlp)
    with torch.no_grad():
        assert torch.allclose(rn.forward(x), mlp(x), atol=1e-10)
    res = verify(mlp, x, y, tr.Linf(0.2, coords=[0, 2]))
    assert res.counts()["unknown"] == 0


def test_coords_are_honoured():
    net = _linear_relu(torch.tensor([1.0, 0.0]), 0.0)  # margin x_1
    x = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, -1])
    assert bool(verify(net, x, y, tr.Linf(1.0, coords=[1])).robust.all())
    res = verify(net, x, y, tr.Linf(1.0, coords=[0]))
    assert bool(res.vulnerable.all())
    assert bool((res.x_adv[:, 1] == 0).all())


def test_tie_rule_margin_zero_predicts_plus_one():
    # margin x_1: at eps = 0.5 the point x_1 = 0.5 (y = +1) reaches m = 0 at best, which still predicts +1;
    # the point x_1 = -0.5 (y = -1) reaches m = 0, which predicts +1: vulnerable
    net = _linear_relu(torch.tensor([1.0]), 0.0)
    x = torch.tensor([[0.5], [-0.5]], dtype=torch.float64)
    res = verify(net, x, torch.tensor([1, -1]), tr.Linf(0.5), pgd_steps=0)
    assert res.status[1] == "vulnerable"
    assert res.status[0] in ("robust", "unknown")  # never a false counterexample
    assert float(res.x_adv[1, 0]) >= 0


def test_l2_bounds_only_is_a_certificate_and_large_networks_skip_the_milp():
    net = _net([5, 16, 16], 2).double()
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(net(x)[:, 0] >= 0, 1, -1)
    res = verify(net, x, y, tr.L2(0.5), method="bounds")
    assert res.stats["milp_calls"] == 0 and res.stats["bab_nodes"] == 0
    assert set(res.decided_by) <= {"ibp", "crown", "alpha-crown", "quad-crown", "pgd", "incomplete"}
    complete = verify(net, x, y, tr.L2(0.5))  # branch and bound decides the rest (tests/test_verify_l2.py)
    assert complete.counts()["unknown"] == 0
    assert not bool((res.robust & complete.vulnerable).any()) and not bool((res.vulnerable & complete.robust).any())
    cap = verify(net, x, y, tr.Linf(0.5), max_binaries=0)
    assert cap.stats["milp_calls"] == 0
    full = verify(net, x, y, tr.Linf(0.5))
    assert full.counts()["unknown"] == 0
    # the cheaper runs never contradict the complete one
    assert not bool((cap.robust & full.vulnerable).any()) and not bool((cap.vulnerable & full.robust).any())


def test_extracted_network_equals_the_module_on_odd_layer_orders():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 4), nn.Linear(4, 5), nn.ReLU(), nn.ReLU(), nn.Identity(),
                          nn.Flatten(), nn.Dropout(0.3), nn.Linear(5, 2), nn.ReLU()).double().eval()
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float64))
    rn = extract_network(model)
    x = torch.randn(100, 3, generator=g, dtype=torch.float64) * 3
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(rn.forward(x), out[:, 1] - out[:, 0], atol=1e-12)
    assert len(rn.weights) == 4  # identity on the input, merged Linear pair, Linear, identity after the ReLU
