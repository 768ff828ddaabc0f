"""Quad-CROWN (toyrobust/verification/quadcrown.py): the trust-region bound against dense and sampled references,
soundness of the bound for any parameters in their ranges, and verdicts against the complete L2 branch and bound."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import toyrobust as tr
from toyrobust.verification import quadcrown as qc
from toyrobust.verification.bounds import InputBall, crown_bounds
from toyrobust.verification.network import extract_network


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), scale=st.floats(1e-3, 1e3), eps=st.floats(1e-3, 10.0),
       hard=st.booleans())
def test_trust_region_bound_is_below_the_dense_circle_and_tight(seed, scale, eps, hard):
    # 2-D: a concave quadratic's minimum over the disc is on its circle, searched densely (an independent reference);
    # "hard": g orthogonal to H's top eigenvector (the secular equation's hard case)
    g_ = torch.Generator().manual_seed(seed)
    R = torch.randn(2, 2, generator=g_, dtype=torch.float64)
    H = scale * (R @ R.T)
    g = scale * torch.randn(2, generator=g_, dtype=torch.float64)
    if hard:
        top = torch.linalg.eigh(H)[1][:, -1]
        g = g - (g @ top) * top
    bound, d = qc.trust_region_lower(g, H, eps)
    th = torch.linspace(0, 2 * math.pi, 200_001, dtype=torch.float64)
    pts = eps * torch.stack([th.cos(), th.sin()], 1)
    vals = pts @ g - ((pts @ H) * pts).sum(1)
    ref = float(vals.min())
    assert bound <= ref + 1e-12 * (1 + abs(ref))
    assert bound >= ref - 1e-6 * (1 + abs(ref))  # tight: the grid's error is ~ (2 pi / 2e5)^2 relative
    assert float(d.norm()) <= eps * (1 + 1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10 ** 6), m=st.integers(1, 60), eps=st.floats(1e-2, 3.0))
def test_trust_region_bound_is_below_random_points_and_attained(seed, m, eps):
    g_ = torch.Generator().manual_seed(seed)
    R = torch.randn(m, m, generator=g_, dtype=torch.float64)
    H = R @ R.T / m
    g = torch.randn(m, generator=g_, dtype=torch.float64)
    bound, d = qc.trust_region_lower(g, H, eps)
    z = torch.randn(20_000, m, generator=g_, dtype=torch.float64)
    z = eps * z / z.norm(dim=1, keepdim=True)
    vals = z @ g - ((z @ H) * z).sum(1)
    at_d = float(g @ d - d @ H @ d)
    assert bound <= float(vals.min()) + 1e-12
    assert bound <= at_d + 1e-12 and at_d - bound <= 1e-7 * (1 + abs(at_d))


def _net(sizes, seed, neg_out=False):
    g_ = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).double()
    with torch.no_grad():
        for lin in net[::2]:
            w = torch.randn(lin.weight.shape, generator=g_, dtype=torch.float64)
            lin.weight.copy_(w / math.sqrt(lin.in_features))
            lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g_, dtype=torch.float64))
        if neg_out:  # every output weight negative: every first-layer neuron needs its upper relaxation
            net[-1].weight.copy_(-net[-1].weight.abs())
            net[-1].bias.fill_(float(net[-1].weight.abs().sum()) * 0.35)
    return net


def _labelled(sizes, neg_out, n=40):
    """A :func:`_net` (seed 3) and n standard normal points (seed 0) labelled by it."""
    net = _net(sizes, seed=3, neg_out=neg_out)
    x = torch.randn(n, sizes[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(net(x).reshape(-1) >= 0, 1, -1)
    return net, x, y


def _min_sampled(net, x0, eps, mask, sign, n=40_000, seed=0):
    """The smallest ``sign * m`` over n points of the ball (half on its sphere) and a PGD descent from the best."""
    g_ = torch.Generator().manual_seed(seed)
    d = torch.randn(n, x0.shape[0], generator=g_, dtype=torch.float64) * mask
    d = d / d.norm(dim=1, keepdim=True)
    r = torch.rand(n, 1, generator=g_, dtype=torch.float64) ** (1 / int(mask.sum()))
    r[: n // 2] = 1.0
    z = x0 + eps * r * d
    with torch.no_grad():
        vals = sign * net(z).reshape(-1)
    best = z[vals.argmin()].clone()
    for _ in range(200):  # projected gradient descent on the margin
        best.requires_grad_(True)
        v = sign * net(best[None])[0, 0]
        (grad,) = torch.autograd.grad(v, best)
        with torch.no_grad():
            step = best - 0.01 * eps * grad * mask / (grad * mask).norm().clamp_min(1e-300)
            delta = (step - x0) * mask
            best = x0 + delta * min(1.0, eps / float(delta.norm()))
    with torch.no_grad():
        return min(float(vals.min()), float(sign * net(best[None])[0, 0]))


@pytest.mark.parametrize("sizes,neg_out,masked", [((8, 40, 1), True, False), ((6, 24, 16, 1), False, False),
                                                   ((10, 32, 24, 12, 1), False, True)])
def test_the_bound_is_sound_for_its_parameters_and_for_random_ones(sizes, neg_out, masked):
    # below the sampled and PGD margins in every ball: the optimised bound, and the certificate at random parameters
    # in their ranges (any of them is a valid relaxation)
    net = _net(sizes, seed=len(sizes), neg_out=neg_out)
    rn = extract_network(net)
    d = sizes[0]
    mask = torch.ones(d, dtype=torch.bool)
    if masked:
        mask[::3] = False
    g_ = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, d, generator=g_, dtype=torch.float64)
    eps = 0.6
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    ball = InputBall(x0, eps, 2.0, mask)
    cb = crown_bounds(rn, ball, margin_sign=sign)
    out = qc.quad_crown_margin(rn, ball, cb, sign, torch.full((4,), math.inf, dtype=torch.float64),
                               qc.QuadCrownOptions(iterations=30))
    gains = []
    for i in range(4):
        ref = _min_sampled(net, x0[i], eps, mask.double(), float(sign[i]))
        assert float(out.lower[i]) <= ref + 1e-9
        crown_i = float(cb.lower[-1][i, 0])
        gains.append(float(out.lower[i]) - crown_i)
    # random parameters in their ranges, all balls at once: each certificate is a valid bound
    bt = qc._Batch(cb.lower[:-1], cb.upper[:-1], x0 @ rn.weights[0].T + rn.biases[0], sign[:, None] * rn.weights[-1][0],
                   sign * rn.biases[-1][0], torch.full((4,), eps, dtype=torch.float64), rn.weights[0][:, mask],
                   rn.weights, rn.biases)
    refs = torch.tensor([_min_sampled(net, x0[i], eps, mask.double(), float(sign[i])) for i in range(4)])
    for _ in range(5):
        params = [torch.rand(p.shape, generator=g_, dtype=torch.float64) for p in qc._start(bt)]
        params[-2] = 6 * params[-2] - 3  # log tau in [-3, 3]
        bound, _ = qc._certify(bt, params, chunk=2)
        assert bool((bound <= refs + 1e-9).all())
    if neg_out:  # sign +1 is the case the quadratic relaxations are for (every upper relaxation): above CROWN
        assert min(gains[0], gains[2]) > 0.1, gains


@pytest.mark.parametrize("sizes,neg_out,eps", [((20, 64, 1), True, 0.8), ((12, 32, 16, 1), False, 0.5)])
def test_verdicts_never_contradict_the_complete_l2_branch_and_bound(sizes, neg_out, eps):
    # Quad-CROWN's "robust" points are never the complete branch and bound's "vulnerable" ones (and vice versa);
    # on the 20-64-1 network (every output weight negative) it proves points CROWN and alpha-CROWN leave open, and
    # its minimisers break points with no attack pre-pass
    net, x, y = _labelled(sizes, neg_out)
    quad = tr.verify(net, x, y, tr.L2(eps), method="bounds", pgd_steps=0)
    plain = tr.verify(net, x, y, tr.L2(eps), method="bounds", pgd_steps=0, quad_crown=False)
    exact = tr.verify(net, x, y, tr.L2(eps), pgd_steps=0, quad_crown=False, time_limit=30)
    assert exact.counts()["unknown"] == 0
    assert not np.any(quad.robust.numpy() & exact.vulnerable.numpy())
    assert not np.any(quad.vulnerable.numpy() & exact.robust.numpy())
    assert np.all(quad.robust.numpy() >= plain.robust.numpy())
    assert quad.stats["quad_items"] == plain.counts()["unknown"]
    if neg_out:
        assert int(quad.robust.sum()) >= int(plain.robust.sum()) + 2
        assert quad.stats["quad_vulnerable"] >= 20 and plain.counts()["vulnerable"] == 0
        assert quad.stats["quad_decided"] == int(quad.robust.sum() - plain.robust.sum())


def test_quad_crown_options_are_checked():
    x = torch.zeros(1, 2, dtype=torch.float64)
    net = _net((2, 4, 1), seed=0)
    for bad, err in (({"iterations": -1}, ValueError), ({"lr": float("nan")}, ValueError),
                     ({"steps": 3}, ValueError), ("yes", TypeError), ({"max_dim": 1.5}, ValueError)):
        with pytest.raises(err, match="quad_crown"):
            tr.verify(net, x, torch.tensor([1]), tr.L2(0.1), quad_crown=bad)
    # an Linf ball (the stage is for L2 only), or more perturbed coordinates than max_dim: no items
    r = tr.verify(net, x, torch.tensor([1]), tr.Linf(0.1), quad_crown=True)
    assert r.stats["quad_items"] == 0
    wide, xs, ys = _labelled((30, 64, 1), True)
    on = tr.verify(wide, xs, ys, tr.L2(0.8), method="bounds", pgd_steps=0)
    off = tr.verify(wide, xs, ys, tr.L2(0.8), method="bounds", pgd_steps=0, quad_crown={"max_dim": 29})
    assert on.stats["quad_items"] > 0 and off.stats["quad_items"] == 0
