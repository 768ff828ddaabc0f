"""alpha-CROWN (:mod:`toyrobust.verification.alpha`): never below CROWN, never above the true minimum (sampled and
attacked points, a dense grid of a 2-D ball), close to the LP triangle relaxation's optimum, and verify's verdicts
with it never contradicted by an attack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_crown import _lp_margin, _network, _points

import toyrobust as tr
from toyrobust.verification.alpha import AlphaCrownOptions, alpha_crown_margin, alpha_options
from toyrobust.verification.bounds import InputBall, crown_bounds, margin_bound_with_slopes, pure_crown_margin

NORMS = {"linf": math.inf, "l1": 1.0, "l2": 2.0}


def _setup(sizes, seed, n, eps, p, scale=2.0):
    net = _network(sizes, seed, scale=scale)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    ball = InputBall(x0, eps, p, torch.ones(sizes[0], dtype=torch.bool))
    bd = crown_bounds(net, ball)
    sign = torch.where(net.forward(x0) >= 0, 1.0, -1.0).double()
    return net, ball, bd, sign


def _crown_side(net, ball, bd, sign):
    """CROWN's lower bound of ``sign * m`` from the hidden bounds alone (not intersected with IBP)."""
    pl, pu = pure_crown_margin(net, ball, bd)
    return torch.where(sign > 0, pl, -pu)


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_never_below_crown_and_never_above_sampled_or_attacked_points(norm, dtype):
    p = NORMS[norm]
    net, ball, bd, sign = _setup([4, 12, 12, 1], 3, 6, 0.4, p)
    crown = _crown_side(net, ball, bd, sign)
    init = alpha_crown_margin(net, ball, bd, sign, crown, options=AlphaCrownOptions(iterations=0, dtype=dtype))
    # CROWN's own slopes, recomputed: CROWN's bound (float32 only lowers it by its rounding margins)
    assert torch.allclose(init.recomputed, crown, rtol=1e-9, atol=1e-9) or dtype == torch.float32
    assert bool((init.recomputed <= crown + 1e-12).all()) and bool((init.recomputed >= crown - 1e-3).all())
    out = alpha_crown_margin(net, ball, bd, sign, crown, options=AlphaCrownOptions(iterations=60, dtype=dtype))
    assert bool((out.lower >= crown).all()) and bool((out.recomputed >= init.recomputed - 1e-6).all())
    assert float((out.recomputed - crown).max()) > 1e-3  # it does tighten somewhere
    g = torch.Generator().manual_seed(0)
    threat = {"linf": tr.Linf, "l1": tr.L1, "l2": tr.L2}[norm](0.4)
    model = _torch_model(net)
    for i in range(ball.x0.shape[0]):
        pts = _points(net, ball.x0[i], 0.4, p, ball.mask, g)
        x_adv = tr.PGD(steps=60, restarts=2, loss="margin").run(
            model, ball.x0[i:i + 1].expand(8, -1), torch.full((8,), int(sign[i])), threat, generator=g).x_adv
        m = sign[i] * net.forward(torch.cat([pts, x_adv.double()]))
        assert float(out.lower[i]) <= float(m.min()) + 1e-9


def _torch_model(net):
    layers = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin] + ([torch.nn.ReLU()] if k < len(net.weights) - 1 else [])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("norm", list(NORMS))
def test_sound_against_a_dense_grid_of_a_2d_ball(norm):
    """A 2-D network: the bound is at most the minimum of ``sign * m`` over a dense grid of the ball (every grid
    point lies in the ball, so that minimum is at least the true one)."""
    p = NORMS[norm]
    net, ball, bd, sign = _setup([2, 16, 16, 1], 11, 4, 0.5, p)
    crown = _crown_side(net, ball, bd, sign)
    out = alpha_crown_margin(net, ball, bd, sign, crown, options=AlphaCrownOptions(iterations=100, lr=0.2))
    u = torch.linspace(-1, 1, 301, dtype=torch.float64)
    grid = torch.cartesian_prod(u, u)
    grid = grid[torch.linalg.vector_norm(grid, ord=p, dim=1) <= 1] * 0.5
    for i in range(ball.x0.shape[0]):
        true_min = float((sign[i] * net.forward(ball.x0[i] + grid)).min())
        assert float(out.lower[i]) <= true_min + 1e-9
        assert float(out.lower[i]) >= float(crown[i])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_reaches_the_lp_triangle_relaxation_optimum(seed):
    """With fixed hidden-layer bounds the optimal slopes give the LP's optimum (Salman et al. 2019): never above
    it, and within a small tolerance of it after the optimisation (Linf)."""
    net, ball, bd, sign = _setup([3, 8, 8, 1], seed, 1, 0.6, math.inf)
    crown = _crown_side(net, ball, bd, sign)
    out = alpha_crown_margin(net, ball, bd, sign, crown, options=AlphaCrownOptions(iterations=300, lr=0.05))
    row = type(bd)([t[:1] for t in bd.lower], [t[:1] for t in bd.upper])
    lp = _lp_margin(net, row, ball.x0[0].numpy(), 0.6, float(sign[0]))
    tol = 1e-7 * (1 + abs(lp))
    assert float(out.recomputed[0]) <= lp + tol
    assert float(out.recomputed[0]) >= lp - 2e-3 * (1 + abs(lp))
    assert float(crown[0]) <= float(out.recomputed[0]) + tol


def test_any_slopes_give_a_sound_bound_and_nan_is_harmless():
    """Random, out-of-range and NaN slopes: the recomputation clamps them to [0, 1]; still below the samples."""
    net, ball, bd, sign = _setup([3, 10, 10, 1], 5, 3, 0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    alphas = [torch.rand(3, 10, generator=g, dtype=torch.float64) * 3 - 1 for _ in range(2)]
    alphas[0][0, :4] = math.nan
    low = margin_bound_with_slopes(net, ball, bd, sign, alphas)
    assert bool(torch.isfinite(low).all())
    for i in range(3):
        m = sign[i] * net.forward(_points(net, ball.x0[i], 0.5, 2.0, ball.mask, g))
        assert float(low[i]) <= float(m.min()) + 1e-9


def test_time_budget_and_options():
    net, ball, bd, sign = _setup([3, 10, 10, 1], 5, 3, 0.5, 2.0)
    crown = _crown_side(net, ball, bd, sign)
    out = alpha_crown_margin(net, ball, bd, sign, crown, options=AlphaCrownOptions(iterations=10 ** 6, time_limit=0.0))
    assert out.iterations == 0 and bool((out.lower >= crown).all())
    assert alpha_options(False) is None and alpha_options(None) is None
    assert alpha_options({"iterations": 5, "lr": 0.1}).iterations == 5
    with pytest.raises(ValueError, match="iterations"):
        alpha_options({"iterations": -1})
    with pytest.raises(ValueError, match="unknown"):
        alpha_options({"steps": 5})
    with pytest.raises(TypeError, match="alpha_crown"):
        alpha_options("yes")


@pytest.mark.parametrize("norm", list(NORMS))
def test_verify_with_alpha_crown_is_never_contradicted_by_an_attack(norm):
    """verify(method="bounds") proves at least what it proves without alpha-CROWN, and no point it calls robust
    falls to a strong PGD."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 24), torch.nn.ReLU(), torch.nn.Linear(24, 24), torch.nn.ReLU(),
                                torch.nn.Linear(24, 1)).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(model(x)[:, 0] >= 0, 1, -1)
    eps = {"linf": 0.5, "l1": 0.8, "l2": 0.8}[norm]
    threat = {"linf": tr.Linf, "l1": tr.L1, "l2": tr.L2}[norm](eps)
    plain = tr.verify(model, x, y, threat, method="bounds", alpha_crown=False)
    res = tr.verify(model, x, y, threat, method="bounds", alpha_crown={"iterations": 50})
    assert bool((res.robust >= plain.robust).all()) and "alpha-crown" in res.decided_by
    assert res.stats["alpha_decided"] == res.decided_by.count("alpha-crown") > 0
    assert bool((res.lower_bound >= plain.lower_bound - 1e-12).all())
    rob = np.flatnonzero(res.robust.numpy())
    adv = tr.PGD(steps=100, restarts=4, loss="margin").run(model, x[rob], y[rob], threat, generator=g).x_adv
    with torch.no_grad():
        assert bool((y[rob] * model(adv)[:, 0] > 0).all())
