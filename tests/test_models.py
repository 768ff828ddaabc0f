"""Models and their analytic twins: LinearModel -> Linear, QuadraticNet -> RotatedQuadratic, MLP.

References are independent of the code under test: margins recomputed with mpmath at 50 digits from the raw
parameters, and the exact error of a quadratic rule on spheres from Imhof's inversion formula for a weighted
chi-square (scipy quad), checked against a Monte Carlo estimate of the *network* with an exact binomial interval.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import binomtest

import toyrobust as tr
from toyrobust.classifiers import Linear, Quadratic
from toyrobust.models import MLP, LinearModel, QuadraticNet, RotatedQuadratic


def _mp_quadratic_logit(net: QuadraticNet, x: np.ndarray) -> list:
    """sum_j a_j (sum_i W_ji x_i)^2 + b at 50 digits, straight from the parameters."""
    mpmath.mp.dps = 50
    W = net.W.weight.detach().double().numpy()
    a = net.a.detach().double().numpy()
    a = np.full(net.hidden, float(a)) if a.ndim == 0 else a
    b = mpmath.mpf(float(net.b.detach()))
    out = []
    for row in x:
        s = mpmath.mpf(0)
        for j in range(net.hidden):
            h = mpmath.fsum(mpmath.mpf(float(W[j, i])) * mpmath.mpf(float(row[i])) for i in range(net.dim))
            s += mpmath.mpf(float(a[j])) * h * h
        out.append(s + b)
    return out


quad_cases = st.tuples(st.integers(1, 7), st.integers(1, 9), st.sampled_from(["scalar", "vector"]),
                       st.floats(-3, 3), st.integers(0, 2**16))


@given(quad_cases)
def test_quadratic_twin_margin_equals_network(case):
    dim, hidden, readout, bias, seed = case
    net = QuadraticNet(dim, hidden, readout=readout, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        net.b.fill_(bias)
        if readout == "vector":  # mixed signs: an indefinite form
            net.a.copy_(torch.randn(hidden, generator=gen, dtype=torch.float64))
    x = torch.randn(6, dim, generator=gen, dtype=torch.float64) * 2
    twin = net.twin()
    assert isinstance(twin, RotatedQuadratic) and isinstance(twin.quadratic, Quadratic)
    ref = torch.tensor([float(v) for v in _mp_quadratic_logit(net, x.numpy())], dtype=torch.float64)
    scale = 1 + float((x * x).sum(1).max()) * float(net.matrix().abs().max()) * dim + abs(bias)
    torch.testing.assert_close(twin.margin(x), ref, atol=1e-12 * scale, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref, atol=1e-12 * scale, rtol=0)
    # the Quadratic in rotated coordinates: margin(x) = quadratic.margin(U^T x)
    torch.testing.assert_close(twin.quadratic.margin(x @ twin.rotation), ref, atol=1e-12 * scale, rtol=0)


def test_quadratic_twin_tests_have_power():
    """A twin that dropped the bias or the rotation would be caught by the margin comparison above."""
    net = QuadraticNet(6, 9, seed=3, dtype=torch.float64)
    with torch.no_grad():
        net.b.fill_(-1.7)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    twin = net.twin()
    ref = net(x).detach()
    no_bias = RotatedQuadratic(Quadratic(twin.quadratic.alpha, 0.0), twin.rotation)
    no_rotation = twin.quadratic
    assert float((twin.margin(x) - ref).abs().max()) < 1e-12
    assert float((no_bias.margin(x) - ref).abs().min()) > 1.0
    assert float((no_rotation.margin(x) - ref).abs().max()) > 0.1


def test_quadratic_twin_structure():
    """U orthogonal, M = U diag(lambda) U^T, zero eigenvalues for h < d, Gilmer's alpha = -lambda / b."""
    net = QuadraticNet(8, 3, seed=1, dtype=torch.float64)
    with torch.no_grad():
        net.b.fill_(-2.0)
    twin = net.twin()
    U = twin.rotation
    torch.testing.assert_close(U.T @ U, torch.eye(8, dtype=torch.float64), atol=1e-12, rtol=0)
    W = net.W.weight.detach()
    M_ref = float(net.a.detach()) * W.T @ W  # w * W^T W, the paper's scalar read-out
    torch.testing.assert_close(twin.matrix(), M_ref, atol=1e-12, rtol=0)
    lam = torch.tensor(twin.quadratic.alpha.to_list(), dtype=torch.float64)
    assert int((lam == 0).sum()) == 8 - 3  # rank h: the rest are exactly zero
    assert float(twin.quadratic.c) == 2.0  # c = -b
    torch.testing.assert_close(net.gilmer_alpha(), lam / 2.0)
    # scalar read-out with w > 0: positive semidefinite
    assert float(lam.min()) >= 0


def _imhof_positive(c: np.ndarray) -> float:
    """P[sum_i c_i g_i^2 > 0], g standard normal (Imhof 1961: exact inversion of the characteristic function)."""
    c = c[c != 0]
    if np.all(c > 0):
        return 1.0
    if np.all(c < 0):
        return 0.0

    def integrand(u):
        theta = 0.5 * np.sum(np.arctan(c * u))
        rho = np.prod((1 + (c * u) ** 2) ** 0.25)
        return math.sin(theta) / (u * rho)

    val, err = integrate.quad(integrand, 0, np.inf, limit=500, epsabs=1e-11)
    return 0.5 + val / math.pi


def _sphere_error(lam: np.ndarray, b: float, r_in: float, r_out: float) -> float:
    """Exact error of sign(sum lam_i z_i^2 + b) on the spheres: x = r g/|g| turns it into a chi-square sign."""
    err_inner = _imhof_positive(r_in**2 * lam + b)  # inner sphere (y = -1) predicted +1 (zero margin: +1)
    err_outer = 1 - _imhof_positive(r_out**2 * lam + b)  # outer sphere predicted -1
    return 0.5 * (err_inner + err_outer)


def test_quadratic_twin_exact_error_matches_network_monte_carlo():
    """The twin's weighted chi-square error equals the network's Monte Carlo error on the spheres (exact CI)."""
    dim = 10
    dist = tr.ConcentricSpheres(dim, 1.0, 1.3)
    net = QuadraticNet(dim, 14, seed=5, dtype=torch.float64)
    with torch.no_grad():
        net.b.fill_(-1.3)
    twin = net.twin()
    lam = np.array(twin.quadratic.alpha.to_list(), dtype=float)
    exact = _sphere_error(lam, float(net.b.detach()), 1.0, 1.3)
    assert 0.05 < exact < 0.45  # a rate Monte Carlo can pin down
    n = 200_000
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with torch.no_grad():
        pred = torch.where(net(x) >= 0, 1, -1)
    k = int((pred != y).sum())
    ci = binomtest(k, n).proportion_ci(0.999, method="exact")
    assert ci.low <= exact <= ci.high
    # the test has power: a twin without the bias, or with the rotation's effect on the law assumed wrong, fails
    wrong = _sphere_error(lam, 0.0, 1.0, 1.3)
    assert not ci.low <= wrong <= ci.high


def test_engine_risk_of_quadratic_twin_matches_imhof():
    """The analytic engine, through the RotatedQuadratic twin, gives the weighted chi-square error."""
    dist = tr.ConcentricSpheres(10, 1.0, 1.3)
    net = QuadraticNet(10, 14, seed=5, dtype=torch.float64)
    with torch.no_grad():
        net.b.fill_(-1.3)
    twin = net.twin()
    r = tr.risks.risk(dist, twin)  # a lost registration fails here, it does not skip
    lam = np.array(twin.quadratic.alpha.to_list(), dtype=float)
    assert float(r) == pytest.approx(_sphere_error(lam, -1.3, 1.0, 1.3), abs=1e-6)


@given(st.integers(1, 6), st.floats(-2, 2), st.integers(0, 1000))
def test_linear_twin_equals_model(dim, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    model = LinearModel.from_weights(w, bias, dtype=torch.float64)
    twin = model.twin()
    assert isinstance(twin, Linear)
    assert twin.w.to_list() == w.tolist() and float(twin.b) == bias
    x = torch.randn(5, dim, generator=gen, dtype=torch.float64) * 3
    mpmath.mp.dps = 50
    mp = mpmath.mpf
    ref = torch.tensor([float(mpmath.fsum(mp(float(wi)) * mp(float(xi)) for wi, xi in zip(w, row, strict=True))
                              + mp(bias)) for row in x], dtype=torch.float64)
    torch.testing.assert_close(twin.margin(x), ref, atol=1e-13 * (1 + float(x.abs().sum())), rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-13 * (1 + float(x.abs().sum())), rtol=0)
    back = LinearModel.from_weights(twin, dtype=torch.float64)
    assert back.twin().w == twin.w and float(back.twin().b) == float(twin.b)


def test_linear_model_init_and_bias_free():
    zero = LinearModel(4)
    assert float(zero.weight.detach().abs().max()) == 0 and float(zero.bias.detach()) == 0
    unif = LinearModel(400, init="uniform", seed=2, dtype=torch.float64)
    w = unif.weight.detach()
    assert float(w.abs().max()) <= 1 / math.sqrt(400)
    # U(-1/20, 1/20) has variance 1/1200: 400 draws within 25 %
    assert abs(float(w.var()) * 1200 - 1) < 0.25
    nb = LinearModel(3, bias=False, init="uniform")
    assert float(nb.bias.detach()) == 0 and nb.linear.bias is None
    assert float(nb.twin().b) == 0.0


@pytest.mark.parametrize("dim", [1, 2, 50])
def test_models_map_batches_to_one_logit(dim):
    x = torch.randn(7, dim, generator=torch.Generator().manual_seed(dim))
    for model in (LinearModel(dim), QuadraticNet(dim, 5), MLP(dim, (8, 4)), MLP(dim, 6, batch_norm=True)):
        out = model(x)
        assert out.shape == (7,)
        clf = model.classifier()
        assert clf.margin(x).shape == (7,)
        with pytest.raises(ValueError, match="columns"):
            clf.margin(torch.zeros(2, dim + 1))


def test_mlp_architecture_and_init():
    mlp = MLP(500, batch_norm=True, seed=4)  # Gilmer et al.: 500 -> 1000 -> 1000 -> 1 with batch norm
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(500, 1000), (1000, 1000), (1000, 1)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in mlp.modules()) == 2
    assert sum(isinstance(m, torch.nn.ReLU) for m in mlp.modules()) == 2
    w0 = linears[0].weight.detach().double()
    bound = math.sqrt(6 / 500)
    assert float(w0.abs().max()) <= bound
    assert abs(float(w0.var()) / (bound**2 / 3) - 1) < 0.01  # He-uniform variance 2 / fan_in
    assert all(float(m.bias.detach().abs().max()) == 0 for m in linears)
    assert float(linears[2].weight.detach().abs().max()) <= 1 / math.sqrt(1000)


def test_models_are_seeded_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = [MLP(5, (7,), seed=3), QuadraticNet(5, 4, seed=3), LinearModel(5, init="uniform", seed=3)]
    b = [MLP(5, (7,), seed=3), QuadraticNet(5, 4, seed=3), LinearModel(5, init="uniform", seed=3)]
    c = [MLP(5, (7,), seed=4), QuadraticNet(5, 4, seed=4), LinearModel(5, init="uniform", seed=4)]
    assert torch.equal(state, torch.random.get_rng_state())
    for m1, m2, m3 in zip(a, b, c, strict=True):
        p1, p2, p3 = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (m1, m2, m3))
        assert torch.equal(p1, p2)
        assert not torch.equal(p1, p3)


def test_rotated_quadratic_risk_by_rotation_invariance():
    """On spheres the registered risk of the twin is that of its (unrotated) Quadratic, by rotation invariance:
    the standard risk equals Imhof's weighted chi-square error of the network's spectrum; the L2 adversarial risk
    has no closed form for either (the twin delegates, and says so with the Quadratic's message); Linf and
    coordinate subsets are refused (the rotation does not preserve them)."""
    dist = tr.ConcentricSpheres(6, 1.0, 1.3)
    net = QuadraticNet(6, 8, seed=2, dtype=torch.float64)
    twin = net.twin()
    got = tr.risks.risk(dist, twin)
    assert got.key[1] == "RotatedQuadratic"
    lam = np.array(twin.quadratic.alpha.to_list(), dtype=float)
    assert float(got) == pytest.approx(_sphere_error(lam, float(net.b.detach()), 1.0, 1.3), abs=1e-6)
    assert float(got) == pytest.approx(float(tr.risks.risk(dist, twin.quadratic)), rel=1e-12, abs=1e-15)
    with pytest.raises(NotImplementedError) as own:
        tr.risks.risk(dist, twin.quadratic, tr.L2(0.05))
    with pytest.raises(NotImplementedError) as delegated:
        tr.risks.risk(dist, twin, tr.L2(0.05))
    assert "Quadratic" in str(own.value) and str(delegated.value) == str(own.value)
    with pytest.raises(NotImplementedError):
        tr.risks.risk(dist, twin, tr.Linf(0.05))
    with pytest.raises(NotImplementedError, match="subset"):
        tr.risks.risk(dist, twin, tr.L2(0.05, coords=(0, 1)))


def test_rotated_quadratic_margin_expr_and_checks():
    net = QuadraticNet(2, 3, seed=0, dtype=torch.float64)
    twin = net.twin()
    expr = twin.margin_expr()
    x = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    assert float(expr.subs({syms[0]: 0.3, syms[1]: -1.2})) == pytest.approx(float(net(x).detach()), abs=1e-12)
    with pytest.raises(ValueError, match="rotation"):
        RotatedQuadratic(Quadratic([1.0, 2.0], 1.0), torch.ones(2, 2))
    with pytest.raises(ValueError, match="rotation"):
        RotatedQuadratic(Quadratic([1.0, 2.0], 1.0), torch.eye(3))
    with pytest.raises(TypeError, match="quadratic"):
        RotatedQuadratic(Linear([1.0, 2.0]), torch.eye(2))


@pytest.mark.parametrize("build, match", [
    (lambda: LinearModel(0), "dim"),
    (lambda: LinearModel(3, init="normal"), "init"),
    (lambda: QuadraticNet(3, 0), "hidden"),
    (lambda: QuadraticNet(3, 2, readout="matrix"), "readout"),
    (lambda: QuadraticNet(3, 2, seed="a"), "seed"),
    (lambda: MLP(3, ()), "hidden"),
    (lambda: MLP(3, (4, 0)), "hidden"),
    (lambda: MLP(-1), "dim"),
    (lambda: LinearModel.from_weights([1.0, float("nan")]), "w"),
])
def test_errors_name_the_parameter(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_gilmer_alpha_needs_negative_bias():
    net = QuadraticNet(3, 2)
    with torch.no_grad():
        net.b.fill_(0.5)
    with pytest.raises(ValueError, match="b < 0"):
        net.gilmer_alpha()
