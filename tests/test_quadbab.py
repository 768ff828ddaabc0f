"""The branch and bound with Quad-CROWN bounds (toyrobust/verification/quadbab.py): every leaf's bound below the
sampled margins of the points on that leaf (any multipliers), verdicts against the SOCP branch and bound, and its
budgets."""

import math
import time

import numpy as np
import pytest
import torch
from test_quadcrown import _labelled, _min_sampled, _net

import toyrobust as tr
from toyrobust.verification import quadbab as qb
from toyrobust.verification import quadcrown as qc
from toyrobust.verification.bounds import InputBall, crown_bounds
from toyrobust.verification.network import extract_network


def _setup(sizes, neg_out, eps, seed=1, sign=1.0):
    net = _net(sizes, seed=len(sizes), neg_out=neg_out)
    rn = extract_network(net)
    x0 = torch.randn(1, sizes[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    mask = torch.ones(sizes[0], dtype=torch.bool)
    cb = crown_bounds(rn, InputBall(x0, eps, 2.0, mask), margin_sign=torch.tensor([sign], dtype=torch.float64))
    return net, rn, x0, mask, cb


def _random_leaves(rn, x0, mask, eps, cb, g_, depth=3):
    """Split the ball ``depth`` times on random unstable neurons (any layer): 2^depth leaves covering it."""
    root = qb._root(rn, x0, mask, eps, 1.0, cb.lower[:-1], cb.upper[:-1])
    leaves = qb._Leaves(root, qc._start(root), torch.zeros(1, int(mask.sum()), dtype=torch.float64),
                        torch.zeros(1, dtype=torch.float64))
    for _ in range(depth):
        n = leaves.d.shape[0]
        layer, neuron = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
        for r in range(n):
            cands = [(j, int(i)) for j in range(len(root.lo))
                     for i in torch.nonzero((leaves.bt.lo[j][r] < 0) & (leaves.bt.up[j][r] > 0)).flatten()]
            layer[r], neuron[r] = cands[int(torch.randint(len(cands), (1,), generator=g_))]
        bt, params = qb._children(leaves, layer, neuron)
        leaves = qb._Leaves(bt, params, leaves.d.repeat(2, 1), leaves.bound.repeat(2))
    return leaves


def _ball_points(rn, x0, eps, n, g_):
    d = torch.randn(n, x0.shape[1], generator=g_, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    r = torch.rand(n, 1, generator=g_, dtype=torch.float64) ** (1 / x0.shape[1])
    r[: n // 2] = 1.0
    x = x0 + eps * r * d
    zs, h = [], x
    for w, b in zip(rn.weights[:-1], rn.biases[:-1]):
        zs.append(h @ w.T + b)
        h = torch.relu(zs[-1])
    return zs, rn.forward(x)


@pytest.mark.parametrize("sizes,neg_out,eps", [((8, 40, 1), True, 0.6), ((6, 24, 16, 1), False, 0.6),
                                               ((5, 16, 12, 8, 1), False, 0.8)])
def test_every_leaf_bound_holds_on_its_leaf_for_any_multipliers(sizes, neg_out, eps):
    # the leaves' constraints enter by weak duality (beta >= 0): random parameters in their ranges, multipliers up to
    # 5, and the optimised ones; each leaf's certificate is below the margin of every sampled point of that leaf
    # (a sign error in the split term would lift it above the points deep inside the leaf)
    g_ = torch.Generator().manual_seed(7)
    net, rn, x0, mask, cb = _setup(sizes, neg_out, eps)
    leaves = _random_leaves(rn, x0, mask, eps, cb, g_)
    zs, margin = _ball_points(rn, x0, eps, 40_000, g_)
    n_layers = len(leaves.bt.lo)
    on_leaf = torch.ones(leaves.d.shape[0], zs[0].shape[0], dtype=torch.bool)
    for j in range(n_layers):
        s = leaves.bt.split[j]  # (L, n_j)
        on_leaf &= ((s[:, None, :] * zs[j][None]) >= 0).all(2)
    assert bool(on_leaf.any(0).all())  # the leaves cover the ball
    assert int((on_leaf.sum(1) > 100).sum()) >= 3  # (random splits can leave a leaf empty)
    least = torch.where(on_leaf, margin[None], torch.tensor(math.inf, dtype=torch.float64)).amin(1)
    for trial in range(6):
        params = [torch.rand(p.shape, generator=g_, dtype=torch.float64) for p in leaves.params]
        params[n_layers + 2] = 6 * params[n_layers + 2] - 3  # log tau in [-3, 3]
        for j in range(n_layers):
            params[n_layers + 4 + j] *= 5.0 * trial
        bound, _ = qc._certify(leaves.bt, params, chunk=4)
        assert bool((bound <= least + 1e-9).all()), (bound - least)
    target = torch.full((leaves.d.shape[0],), math.inf, dtype=torch.float64)
    bound, _, _, _ = qc._optimise(leaves.bt, target, 40, 0.1, time.perf_counter() + 60, leaves.params)
    assert bool((bound <= least + 1e-9).all())


def _sampled(net, x0, eps, mask, sign):
    return _min_sampled(net, x0[0], eps, mask.double(), sign)


def test_branch_and_bound_budgets_leave_a_proven_lower_bound():
    net, rn, x0, mask, cb = _setup((20, 64, 1), True, 0.8, seed=3)
    ref = _sampled(net, x0, 0.8, mask, 1.0)

    def never(z):
        return False

    args = (rn, x0, mask, 0.8, 1.0, cb.lower[:-1], cb.upper[:-1], 1e-6)
    late = qb.branch_and_bound(*args, time.perf_counter(), never)
    tiny = qb.branch_and_bound(*args, time.perf_counter() + 30, never, max_floats=1)
    assert late.verdict == "timeout" and late.leaves == 1
    assert tiny.verdict in ("leaf-limit", "robust")
    for out in (late, tiny):
        assert out.lower <= ref + 1e-9


def test_a_leaf_minimiser_is_a_counterexample_only_when_confirmed():
    # a ball that holds adversarial points: with every candidate refused, the search never says "robust"; with the
    # forward pass as the judge, it says "vulnerable" with a genuine counterexample
    net, rn, x0, mask, cb = _setup((12, 32, 16, 1), False, 2.0, seed=5)
    with torch.no_grad():
        sign = 1.0 if float(net(x0)[0, 0]) >= 0 else -1.0
    cb = crown_bounds(rn, InputBall(x0, 2.0, 2.0, mask), margin_sign=torch.tensor([sign], dtype=torch.float64))
    assert _sampled(net, x0, 2.0, mask, sign) < 0
    seen = []

    def judge(z):
        with torch.no_grad():
            ok = bool(sign * float(net(z[None])[0, 0]) < 0) and float((z - x0[0]).norm()) <= 2.0
        seen.append(ok)
        return ok

    args = (rn, x0, mask, 2.0, sign, cb.lower[:-1], cb.upper[:-1], 1e-6)
    out = qb.branch_and_bound(*args, time.perf_counter() + 30, judge)
    assert out.verdict == "vulnerable" and seen[-1] and out.lower < 0
    refused = qb.branch_and_bound(*args, time.perf_counter() + 2, lambda z: False)
    assert refused.verdict != "robust" and refused.lower < 0


@pytest.mark.parametrize("sizes,neg_out,eps", [((20, 64, 1), True, 0.8), ((12, 32, 16, 1), False, 0.5)])
def test_verdicts_agree_with_the_socp_branch_and_bound(sizes, neg_out, eps):
    # the default pipeline (Quad-CROWN, then its branch and bound) against the SOCP branch and bound alone: no
    # contradiction, every point decided, and the search proves points Quad-CROWN leaves open
    net, x, y = _labelled(sizes, neg_out)
    ours = tr.verify(net, x, y, tr.L2(eps), pgd_steps=0, time_limit=30)
    socp = tr.verify(net, x, y, tr.L2(eps), pgd_steps=0, quad_crown=False, time_limit=30)
    assert socp.counts()["unknown"] == 0 and ours.counts()["unknown"] == 0
    assert np.array_equal(ours.robust.numpy(), socp.robust.numpy())
    assert ours.stats["quad_bab_items"] > 0
    assert ours.stats["quad_bab_decided"] + ours.stats["quad_bab_vulnerable"] > 0
    assert ours.stats["bab_nodes"] == 0 or ours.stats["quad_bab_decided"] < ours.stats["quad_bab_items"]
    by = set(ours.decided_by)
    assert "quad-bab" in by


def test_branch_options_are_checked_and_share_zero_turns_it_off():
    x = torch.zeros(1, 2, dtype=torch.float64)
    net = _net((2, 4, 1), seed=0)
    for bad in ({"branch_share": 1.5}, {"branch_share": -0.1}, {"branch_share": True}, {"branch_batch": 0},
                {"branch_iterations": -2}, {"branch_iterations": 2.0}):
        with pytest.raises(ValueError, match="quad_crown branch_"):
            tr.verify(net, x, torch.tensor([1]), tr.L2(0.1), quad_crown=bad)
    wide, xs, ys = _labelled((20, 64, 1), True)
    off = tr.verify(wide, xs, ys, tr.L2(0.8), pgd_steps=0, quad_crown={"branch_share": 0})
    bounds = tr.verify(wide, xs, ys, tr.L2(0.8), pgd_steps=0, method="bounds")
    assert off.stats["quad_bab_items"] == 0 and bounds.stats["quad_bab_items"] == 0
    assert off.stats["seconds"]["quad_bab"] < 0.05


@pytest.mark.parametrize("sizes,eps", [((6, 24, 16, 1), 0.6), ((5, 16, 12, 8, 1), 0.8)])
def test_tightened_intermediate_bounds_contain_every_sampled_pre_activation(sizes, eps):
    # Quad-CROWN on the network cut after each hidden layer: inside CROWN's bounds, containing the pre-activations of
    # 40,000 points of the ball (half on its sphere), and strictly tighter somewhere
    g_ = torch.Generator().manual_seed(11)
    net, rn, x0, mask, cb = _setup(sizes, False, eps, seed=2)
    lo, up = qb.tighten(rn, x0, mask, eps, cb.lower[:-1], cb.upper[:-1], 40, 0.1, time.perf_counter() + 60)
    zs, _ = _ball_points(rn, x0, eps, 40_000, g_)
    gained = 0.0
    for j, z in enumerate(zs):
        assert bool((lo[j] >= cb.lower[j]).all() and (up[j] <= cb.upper[j]).all())
        assert bool((z >= lo[j] - 1e-9).all() and (z <= up[j] + 1e-9).all())
        gained += float(((cb.upper[j] - cb.lower[j]) - (up[j] - lo[j])).sum())
    assert torch.equal(lo[0], cb.lower[0]) and torch.equal(up[0], cb.upper[0])  # the first layer is exact already
    assert gained > 0.1
    late = qb.tighten(rn, x0, mask, eps, cb.lower[:-1], cb.upper[:-1], 40, 0.1, time.perf_counter())
    assert all(torch.equal(a, b) for a, b in zip(late[0] + late[1], cb.lower[:-1] + cb.upper[:-1]))


def test_a_nan_bound_never_closes_a_leaf(monkeypatch):
    # whatever goes wrong numerically, a leaf is closed only by a bound above the tolerance
    net, rn, x0, mask, cb = _setup((8, 40, 1), True, 0.6)
    real = qc._certify

    def broken(bt, params, chunk):
        bound, d = real(bt, params, chunk)
        return torch.full_like(bound, math.nan), d

    monkeypatch.setattr(qc, "_certify", broken)
    out = qb.branch_and_bound(rn, x0, mask, 0.6, 1.0, cb.lower[:-1], cb.upper[:-1], 1e-6, time.perf_counter() + 2,
                              lambda z: False)
    assert out.verdict != "robust" and not out.lower > 1e-6


def test_nan_bounds_leave_the_intermediate_bounds_as_they_were(monkeypatch):
    net, rn, x0, mask, cb = _setup((6, 24, 16, 1), False, 0.6)

    def broken(bt, target, *args, **kwargs):
        return torch.full_like(target, math.nan), None, 0, None

    monkeypatch.setattr(qb, "_optimise", broken)
    lo, up = qb.tighten(rn, x0, mask, 0.6, cb.lower[:-1], cb.upper[:-1], 10, 0.1, time.perf_counter() + 10)
    assert all(torch.equal(a, b) for a, b in zip(lo + up, cb.lower[:-1] + cb.upper[:-1]))
