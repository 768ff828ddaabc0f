"""Tests for toyrobust.threats: Lp-ball projections, steepest ascent, random starts, validation, parsing."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from toyrobust.threats import L1, L2, Linf, ThreatModel, make_threat

CLASSES = [Linf, L2, L1]
DIMS = [1, 2, 50]
DTYPES = [torch.float32, torch.float64]
P = {Linf: np.inf, L2: 2, L1: 1}
Q = {Linf: 1, L2: 2, L1: np.inf}


def _rtol(dtype: torch.dtype) -> float:
    return 2e-5 if dtype == torch.float32 else 1e-11


# ---------------------------------------------------------------------------------------------------------
# independent numpy references (float64)
# ---------------------------------------------------------------------------------------------------------


def _np_norm(v: np.ndarray, p: float) -> np.ndarray:
    v = np.abs(v)
    if p == np.inf:
        return v.max(axis=-1)
    if p == 1:
        return v.sum(axis=-1)
    a = v.max(axis=-1, keepdims=True)  # scaled, so tiny or huge vectors keep full precision
    safe = np.where(a > 0, a, 1.0)
    return safe[..., 0] * np.sqrt(((v / safe) ** 2).sum(axis=-1))


def _np_project_delta(v: np.ndarray, p: float, eps: float) -> np.ndarray:
    """Project one perturbation onto the Lp ball of radius eps (Linf clip, L2 rescale, L1 bisection)."""
    if p == np.inf:
        return np.clip(v, -eps, eps)
    if p == 2:
        n = np.sqrt((v * v).sum())
        return v if n <= eps else v * (eps / n)
    a = np.abs(v)
    if a.sum() <= eps:
        return v
    lo, hi = 0.0, float(a.max())  # soft-threshold level theta: sum(max(|v| - theta, 0)) = eps
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(a - mid, 0.0).sum() > eps:
            lo = mid
        else:
            hi = mid
    return np.sign(v) * np.maximum(a - 0.5 * (lo + hi), 0.0)


def _np_project(x: np.ndarray, x0: np.ndarray, p: float, eps: float, mask: np.ndarray) -> np.ndarray:
    out = x0.copy()
    for i in range(x.shape[0]):
        out[i, mask] = x0[i, mask] + _np_project_delta(x[i, mask] - x0[i, mask], p, eps)
    return out


def _certificate_gap(x: np.ndarray, z: np.ndarray, x0: np.ndarray, cls: type, eps: float, mask: np.ndarray):
    """max over y in the ball of <x - z, y - z>; it is <= 0 exactly when z is the projection of x.

    sup_{||y - x0||_p <= eps} <r, y - x0> = eps * ||r||_q, so the gap is eps * ||r||_q - <r, z - x0>.
    """
    r = (x - z)[:, mask]
    return eps * _np_norm(r, Q[cls]) - (r * (z - x0)[:, mask]).sum(axis=-1)


def _inside_points(
    rng: np.random.Generator, cls: type, n: int, d: int, eps: float, frac: float
) -> np.ndarray:
    """Perturbations with Lp norm equal to frac * eps (frac < 1: strictly inside)."""
    v = rng.standard_normal((n, d))
    v /= _np_norm(v, P[cls])[:, None]
    return v * frac * eps


# ---------------------------------------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cls", CLASSES)
def test_projection_inside_unchanged_outside_on_boundary_idempotent(cls, d, dtype):
    rng = np.random.default_rng(d)
    eps, n = 0.7, 64
    tm = cls(eps)
    # points much smaller than their centres, so that x0 + (x - x0) is usually not bitwise x
    x_in = torch.tensor(rng.normal(size=(n, d)) * 10 ** rng.uniform(-12, 0, size=(n, d)), dtype=dtype)
    x0_near = x_in - torch.tensor(_inside_points(rng, cls, n, d, eps, 0.9), dtype=dtype)
    assert not torch.equal(x0_near + (x_in - x0_near), x_in)
    z_in = tm.project(x_in, x0_near)
    assert z_in.shape == (n, d) and z_in.dtype == dtype
    assert torch.equal(z_in, x_in)  # bitwise

    x0 = torch.tensor(rng.normal(size=(n, d)), dtype=dtype)

    x_out = x0 + torch.tensor(_inside_points(rng, cls, n, d, eps, 3.0), dtype=dtype)
    z_out = tm.project(x_out, x0)
    assert z_out.shape == (n, d) and z_out.dtype == dtype
    torch.testing.assert_close(
        tm.norm(z_out - x0), torch.full((n,), eps, dtype=dtype), rtol=_rtol(dtype), atol=0
    )
    assert tm.contains(z_out, x0).all()
    torch.testing.assert_close(tm.project(z_out, x0), z_out, rtol=_rtol(dtype), atol=_rtol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cls", CLASSES)
def test_projection_is_the_nearest_point(cls, d, dtype):
    rng = np.random.default_rng(100 + d)
    eps, n = 1.3, 32
    tm = cls(eps)
    x0_np = rng.normal(size=(n, d))
    x_np = x0_np + rng.normal(scale=2.0, size=(n, d))
    x0, x = torch.tensor(x0_np, dtype=dtype), torch.tensor(x_np, dtype=dtype)
    z = tm.project(x, x0)
    z_np = z.double().numpy()
    tol = 50 * _rtol(dtype)

    # the same point as an independent reference (L1: bisection on the soft-threshold level)
    ref = _np_project(x.double().numpy(), x0.double().numpy(), P[cls], eps, np.ones(d, bool))
    np.testing.assert_allclose(z_np, ref, rtol=0, atol=tol)
    # optimality certificate of the convex projection: <x - z, y - z> <= 0 for every y in the ball
    gap = _certificate_gap(x.double().numpy(), z_np, x0.double().numpy(), cls, eps, np.ones(d, bool))
    assert np.all(gap <= tol * (1 + np.abs(x_np).sum(axis=1)))
    # never farther from x than any of many random points of the ball
    dist = torch.linalg.vector_norm(x - z, dim=1)
    for seed in range(5):
        y = tm.random_start(x0, generator=seed)
        assert torch.all(dist <= torch.linalg.vector_norm(x - y, dim=1) * (1 + tol) + tol)


@st.composite
def _projection_case(draw):
    cls = draw(st.sampled_from(CLASSES))
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, 4))
    eps = draw(st.one_of(st.just(0.0), st.floats(0.01, 3.0)))
    elems = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)
    x0 = draw(hnp.arrays(np.float64, (n, d), elements=elems))
    dx = draw(hnp.arrays(np.float64, (n, d), elements=elems))
    scale = draw(st.sampled_from([0.01, 0.3, 1.0, 5.0]))
    coords = draw(st.one_of(st.none(), st.lists(st.integers(0, d - 1), min_size=1, unique=True)))
    return cls, eps, x0, x0 + scale * dx, coords


@settings(max_examples=300, deadline=None)
@given(_projection_case())
def test_projection_properties_hypothesis(case):
    cls, eps, x0_np, x_np, coords = case
    tm = cls(eps, coords=coords)
    n, d = x_np.shape
    mask = tm.mask(d, dtype=torch.bool).numpy()
    x0, x = torch.tensor(x0_np), torch.tensor(x_np)
    z = tm.project(x, x0)
    z_np = z.numpy()
    scale = 1.0 + np.abs(x_np).max() + np.abs(x0_np).max()

    assert z.dtype == torch.float64 and z.shape == (n, d)
    assert np.array_equal(z_np[:, ~mask], x0_np[:, ~mask])  # outside coords: exactly x0
    assert np.all(_np_norm((z_np - x0_np)[:, mask], P[cls]) <= eps * (1 + 1e-12) + 1e-12 * scale)
    np.testing.assert_allclose(z_np, _np_project(x_np, x0_np, P[cls], eps, mask), rtol=0, atol=1e-10 * scale)
    assert np.all(_certificate_gap(x_np, z_np, x0_np, cls, eps, mask) <= 1e-9 * scale**2)
    np.testing.assert_allclose(tm.project(z, x0).numpy(), z_np, rtol=0, atol=1e-12 * scale)
    # rows strictly inside the ball (and equal to x0 off coords) do not move at all
    free = _np_norm((x_np - x0_np)[:, mask], P[cls]) < eps * (1 - 1e-9)
    fixed = np.all(x_np[:, ~mask] == x0_np[:, ~mask], axis=1)
    assert np.array_equal(z_np[free & fixed], x_np[free & fixed])


def test_l1_projection_known_value_and_zero_eps():
    x0 = torch.zeros(1, 3, dtype=torch.float64)
    x = torch.tensor([[3.0, -1.0, 0.5]], dtype=torch.float64)
    # soft-threshold at theta = 1: (2, 0, 0) has L1 norm 2; not a rescale (2/4.5 * x)
    torch.testing.assert_close(L1(2.0).project(x, x0), torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64))
    # theta = 0.5: (2.5, -0.5, 0)
    torch.testing.assert_close(L1(3.0).project(x, x0), torch.tensor([[2.5, -0.5, 0.0]], dtype=torch.float64))
    for cls in CLASSES:
        assert torch.equal(cls(0.0).project(x, x0), x0)


def test_projection_keeps_gradient_graph_and_no_nan_for_far_points():
    x0 = torch.zeros(3, 4)
    x = torch.tensor([[1e20, 0, 0, 0], [0, 0, 0, 0], [-1e3, 1e3, 2, 3]], requires_grad=True)
    for cls in CLASSES:
        z = cls(1.0).project(x, x0)
        assert torch.isfinite(z).all()
        z.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None


# ---------------------------------------------------------------------------------------------------------
# steepest ascent
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cls", CLASSES)
def test_steepest_ascent_attains_dual_norm(cls, d, dtype):
    rng = np.random.default_rng(200 + d)
    eps, n = 0.4, 64
    tm = cls(eps)
    g = torch.tensor(rng.normal(size=(n, d)), dtype=dtype)
    step = tm.steepest_ascent(g)
    assert step.shape == (n, d) and step.dtype == dtype
    inner = (step * g).sum(dim=1)
    dual_np = torch.tensor(eps * _np_norm(g.double().numpy(), Q[cls]), dtype=dtype)
    torch.testing.assert_close(inner, eps * tm.dual_norm(g), rtol=_rtol(dtype), atol=0)
    torch.testing.assert_close(inner, dual_np, rtol=_rtol(dtype), atol=0)
    assert torch.all(tm.norm(step) <= eps * (1 + _rtol(dtype)))
    if cls is L1:
        assert torch.all((step != 0).sum(dim=1) == 1)
        idx = g.abs().argmax(dim=1)
        assert torch.equal(step[torch.arange(n), idx], eps * torch.sign(g[torch.arange(n), idx]))
    # a per-row radius
    r = torch.linspace(0.0, 2.0, n, dtype=dtype)
    torch.testing.assert_close(
        (tm.steepest_ascent(g, radius=r) * g).sum(1), r * tm.dual_norm(g), rtol=_rtol(dtype), atol=1e-12
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CLASSES),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=st.floats(-1e3, 1e3)),
    st.one_of(st.just(0.0), st.floats(1e-100, 5.0)),
    st.sampled_from([1e-200, 1e-30, 1.0, 1e30, 1e200]),
)
def test_steepest_ascent_hypothesis(cls, g_np, radius, gscale):
    g_np = g_np * gscale
    g = torch.tensor(g_np)
    step = cls(1.0).steepest_ascent(g, radius=radius)
    assert torch.isfinite(step).all()
    inner = (step * g).sum(1).numpy()
    scale = 1.0 + np.abs(g_np).sum()
    np.testing.assert_allclose(inner, radius * _np_norm(g_np, Q[cls]), rtol=1e-12, atol=1e-12 * scale)
    assert np.all(_np_norm(step.numpy(), P[cls]) <= radius * (1 + 1e-12))


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_l2_tiny_and_huge_vectors_float32(scale):
    # a saturated float32 gradient of size 1e-25 has squared norm 0: the step must still have norm eps
    g = torch.tensor([[3.0, -4.0], [1.0, 0.0]]) * scale
    tm = L2(0.5)
    torch.testing.assert_close(tm.norm(g), torch.tensor([5.0, 1.0]) * scale)
    step = tm.steepest_ascent(g)
    torch.testing.assert_close(step, torch.tensor([[0.3, -0.4], [0.5, 0.0]]))
    x0 = torch.zeros(2, 2)
    z = L2(0.5 * scale).project(g, x0)
    torch.testing.assert_close(z, torch.tensor([[0.3, -0.4], [0.5, 0.0]]) * scale)


def test_steepest_ascent_zero_gradient_and_ties():
    g = torch.zeros(2, 3, dtype=torch.float64)
    for cls in CLASSES:
        step = cls(0.5).steepest_ascent(g)
        assert torch.equal(step, torch.zeros_like(g))  # no NaN from 0/0
    g = torch.tensor([[1.0, -3.0, 3.0], [2.0, 2.0, -2.0]])
    expected = torch.tensor([[0.0, -0.5, 0.0], [0.5, 0.0, 0.0]])  # lowest index wins a tie, with its sign
    assert torch.equal(L1(0.5).steepest_ascent(g), expected)


@pytest.mark.parametrize("d", DIMS)
def test_linear_margin_drop_equals_eps_times_dual_norm(d):
    """PITFALLS 2: one step against w.x removes eps*||w||_q; g/||g||_1 (L1) only eps*||w||_2^2/||w||_1."""
    rng = np.random.default_rng(300 + d)
    w = torch.tensor(rng.normal(size=d), dtype=torch.float64)
    x = torch.tensor(rng.normal(size=(8, d)), dtype=torch.float64)
    eps = 0.3
    g = w.expand(8, d)
    for cls, dual in [(Linf, w.abs().sum()), (L2, w.norm()), (L1, w.abs().max())]:
        tm = cls(eps)
        x_adv = tm.project(x - tm.steepest_ascent(g), x)
        drop = x @ w - x_adv @ w
        torch.testing.assert_close(drop, torch.full((8,), float(eps * dual), dtype=torch.float64))
    naive_l1_drop = eps * float(w.norm() ** 2 / w.abs().sum())
    if d > 1:
        assert naive_l1_drop < eps * float(w.abs().max()) - 1e-9


# ---------------------------------------------------------------------------------------------------------
# random start
# ---------------------------------------------------------------------------------------------------------


def _radii(cls: type, k: int, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    eps = 0.8
    x0 = torch.randn(n, k, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    delta = cls(eps).random_start(x0, generator=seed) - x0
    return (cls(eps).norm(delta) / eps).numpy(), delta.numpy() / eps


@pytest.mark.parametrize("k", [2, 50])
@pytest.mark.parametrize("cls", [L2, L1])
def test_random_start_radius_is_beta_k_1(cls, k):
    """PITFALLS 3: ||delta||_p / eps ~ Beta(k, 1) (mean k/(k+1)), not U(0, 1) (mean 1/2)."""
    r, _ = _radii(cls, k)
    assert r.max() <= 1 + 1e-12
    assert stats.kstest(r, stats.beta(k, 1).cdf).pvalue > 1e-3
    se = stats.beta(k, 1).std() / math.sqrt(r.size)
    assert abs(r.mean() - k / (k + 1)) < 5 * se
    # the same test rejects the U(0, 1)-radius mistake (same directions, radius eps * U)
    wrong = np.random.default_rng(0).uniform(size=r.size)
    assert stats.kstest(wrong, stats.beta(k, 1).cdf).pvalue < 1e-12
    assert abs(wrong.mean() - k / (k + 1)) > 5 * se


@pytest.mark.parametrize("k", [2, 50])
def test_random_start_directions_are_uniform(k):
    # uniform in the k-dim L1 ball: |delta_1| / eps ~ Beta(1, k), symmetric;
    # uniform in the L2 ball: (delta_1 / eps)^2 ~ Beta(1/2, (k+1)/2)
    _, u1 = _radii(L1, k, seed=3)
    assert stats.kstest(np.abs(u1[:, 0]), stats.beta(1, k).cdf).pvalue > 1e-3
    signed = lambda t: 0.5 + 0.5 * np.sign(t) * stats.beta(1, k).cdf(np.abs(t))  # noqa: E731
    assert stats.kstest(u1[:, -1], signed).pvalue > 1e-3
    _, u2 = _radii(L2, k, seed=4)
    assert stats.kstest(u2[:, 0] ** 2, stats.beta(0.5, (k + 1) / 2).cdf).pvalue > 1e-3
    if k == 2:
        angle = np.arctan2(u2[:, 1], u2[:, 0])
        assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3


def test_random_start_linf_is_uniform_in_cube():
    eps, n, d = 0.25, 4000, 50
    x0 = torch.zeros(n, d, dtype=torch.float64)
    u = Linf(eps).random_start(x0, generator=7).numpy()
    assert np.abs(u).max() <= eps
    law = stats.uniform(-eps, 2 * eps).cdf
    assert stats.kstest(u[:, 0], law).pvalue > 1e-3
    assert stats.kstest(u.ravel(), law).pvalue > 1e-3
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cls", CLASSES)
def test_random_start_in_ball_keeps_dtype_and_rng(cls, d, dtype):
    tm = cls(0.5)
    x0 = torch.randn(200, d, generator=torch.Generator().manual_seed(d), dtype=dtype)
    state = torch.get_rng_state()
    a = tm.random_start(x0, generator=torch.Generator().manual_seed(11))
    b = tm.random_start(x0, generator=11)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(a, b)
    assert a.dtype == dtype and a.device == x0.device and a.shape == (200, d)
    assert tm.contains(a, x0).all()
    assert not torch.equal(a, tm.random_start(x0, generator=12))
    if dtype == torch.float64:  # sampled in float64, not float32 cast up
        delta = tm.random_start(torch.zeros_like(x0), generator=3)
        assert (delta.float().double() != delta).double().mean() > 0.9


def test_random_start_without_generator_uses_default_rng_without_reseeding():
    x0 = torch.zeros(4, 3)
    torch.manual_seed(123)
    a = L2(1.0).random_start(x0)
    b = L2(1.0).random_start(x0)
    assert not torch.equal(a, b)  # not reseeded between calls
    with pytest.raises(TypeError, match="generator"):
        L2(1.0).random_start(x0, generator="seed")


# ---------------------------------------------------------------------------------------------------------
# coordinate subsets
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("coords", [[1, 4, 7], (7, 4, 1), slice(2, 5), slice(6, None)])
@pytest.mark.parametrize("cls", CLASSES)
def test_coords_outside_never_move(cls, coords):
    d, n = 9, 50
    tm = cls(0.6, coords=coords)
    idx = tm.coord_indices(d)
    out = [j for j in range(d) if j not in idx]
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    r = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x = x0 + torch.sign(r) * (1 + r.abs())  # every coordinate at least 1 away: outside each ball

    start = tm.random_start(x0, generator=1)
    assert torch.equal(start[:, out], x0[:, out])
    assert (start[:, idx] != x0[:, idx]).all()
    z = tm.project(x, x0)
    assert torch.equal(z[:, out], x0[:, out])
    assert torch.allclose(tm.norm(z - x0), torch.full((n,), 0.6, dtype=torch.float64))
    step = tm.steepest_ascent(x)
    assert torch.equal(step[:, out], torch.zeros(n, len(out), dtype=torch.float64))
    torch.testing.assert_close((step * x).sum(1), 0.6 * tm.dual_norm(x))
    # norms only see coords: huge or infinite values elsewhere do not matter
    y = x.clone()
    y[:, out] = math.inf
    torch.testing.assert_close(tm.norm(y), cls(1.0).norm(x[:, idx]))
    torch.testing.assert_close(tm.dual_norm(y), cls(1.0).dual_norm(x[:, idx]))
    # a point that differs off coords is outside the ball; its projection resets those coordinates
    off = x0.clone()
    off[:, out] += 1e-3
    assert tm.contains(start, x0).all() and not tm.contains(off, x0).any()
    assert tm.contains(z, x0).all()


def test_coords_random_start_radius_uses_number_of_free_coords():
    tm = L2(1.0, coords=[1, 4, 7])
    x0 = torch.zeros(4000, 10, dtype=torch.float64)
    r = tm.norm(tm.random_start(x0, generator=5) - x0).numpy()
    assert stats.kstest(r, stats.beta(3, 1).cdf).pvalue > 1e-3
    assert stats.kstest(r, stats.beta(10, 1).cdf).pvalue < 1e-12


def test_l1_steepest_ascent_picks_inside_coords_only():
    g = torch.tensor([[10.0, -1.0, 2.0, -3.0]])
    assert torch.equal(L1(1.0, coords=[1, 2, 3]).steepest_ascent(g), torch.tensor([[0.0, 0.0, 0.0, -1.0]]))
    assert torch.equal(L1(1.0, coords=slice(1, 3)).steepest_ascent(g), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))


def test_mask_and_coord_indices():
    assert L2(1.0).coord_indices(3) == [0, 1, 2]
    assert L2(1.0, coords=[3, 0]).coord_indices(5) == [0, 3]
    assert L2(1.0, coords=slice(2, None)).coord_indices(5) == [2, 3, 4]
    assert L2(1.0, coords=slice(None, 2)).coord_indices(5) == [0, 1]
    m = Linf(1.0, coords=(0, 3)).mask(5, device="cpu", dtype=torch.float64)
    assert torch.equal(m, torch.tensor([1.0, 0, 0, 1, 0], dtype=torch.float64))
    assert Linf(1.0, coords=slice(1, 3)).mask(4, dtype=torch.bool).tolist() == [False, True, True, False]
    assert Linf(1.0).mask(2).tolist() == [1.0, 1.0]
    d = sympy.Symbol("D", integer=True, positive=True)
    assert L2(1.0, coords=slice(1, None)).n_free(d) == d - 1
    assert L2(1.0, coords=[0, 5]).n_free(d) == 2
    for tm, dim in [
        (L2(1.0, coords=[0, 5]), 5),
        (L2(1.0, coords=slice(0, 6)), 5),
        (L2(1.0, coords=slice(5, None)), 5),
    ]:
        with pytest.raises(ValueError, match="coords"):
            tm.coord_indices(dim)
        with pytest.raises(ValueError, match="coords"):
            tm.project(torch.zeros(2, dim), torch.zeros(2, dim))


# ---------------------------------------------------------------------------------------------------------
# validation, symbols, value semantics
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("eps", [-1.0, -1e-12, math.nan, math.inf, -math.inf])
def test_bad_eps_value(cls, eps):
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0, got") as info:
        cls(eps)
    assert repr(eps) in str(info.value)


@pytest.mark.parametrize("eps", ["0.3", None, True, [0.3], torch.ones(2)])
def test_bad_eps_type(eps):
    with pytest.raises((TypeError, ValueError), match="eps"):
        L2(eps)


@pytest.mark.parametrize(
    "coords",
    [
        [-1],
        [0, 0],
        [0.5],
        [True],
        (),
        [],
        "01",
        {0, 1},
        3,
        slice(0, 4, 2),
        slice(2, 1),
        slice(-1, None),
        slice(0, 2.5),
        slice(3, 3),
    ],
)
def test_bad_coords(coords):
    with pytest.raises((TypeError, ValueError), match="coords"):
        Linf(0.1, coords=coords)


def test_bad_shapes():
    tm = L2(1.0)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        tm.project(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        tm.norm(torch.zeros(2, 1, 1, 1))
    with pytest.raises(ValueError, match="same shape"):
        tm.project(torch.zeros(2, 3), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="Tensor"):
        tm.steepest_ascent(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="radius"):
        tm.steepest_ascent(torch.zeros(2, 3), radius=torch.ones(3))
    with pytest.raises(ValueError, match="radius"):
        tm.steepest_ascent(torch.zeros(2, 3), radius=-1.0)


def test_symbolic_eps():
    e = sympy.Symbol("e", positive=True)
    tm = Linf(e)
    assert tm.eps == e and tm.p == math.inf and tm.q == 1
    assert L2(2 * e).eps == 2 * e
    assert L1(sympy.Integer(2)).eps == 2.0 and isinstance(L1(sympy.Integer(2)).eps, float)
    with pytest.raises(ValueError, match="eps"):
        L2(sympy.Symbol("e", negative=True))
    x = torch.ones(2, 3)
    torch.testing.assert_close(tm.norm(x), torch.ones(2))  # norms need no eps
    for call in [
        lambda: tm.project(x, x),
        lambda: tm.steepest_ascent(x),
        lambda: tm.random_start(x, 0),
        lambda: tm.contains(x, x),
    ]:
        with pytest.raises(TypeError, match="eps must be numeric"):
            call()
    assert tm.steepest_ascent(x, radius=0.5).sum() == 3.0
    assert tm.with_eps(0.5) == Linf(0.5)


def test_attributes_repr_eq_hash_pickle():
    assert (Linf.p, Linf.q, Linf.name) == (math.inf, 1, "linf")
    assert (L2.p, L2.q, L2.name) == (2, 2, "l2")
    assert (L1.p, L1.q, L1.name) == (1, math.inf, "l1")
    a = L2(1, coords=[3, 1])
    assert a == L2(1.0, coords=(1, 3)) and hash(a) == hash(L2(1.0, coords=(1, 3)))
    assert a != L1(1.0, coords=(1, 3)) and a != L2(1.0) and a != L2(2.0, coords=(1, 3))
    assert Linf(0.3) != "linf:0.3"
    s = Linf(0.5, coords=slice(2, None))
    assert s == Linf(0.5, coords=slice(2, None, 1)) and hash(s) == hash(Linf(0.5, coords=slice(2, None)))
    assert len({Linf(0.5), Linf(0.5), s, L2(0.5)}) == 3
    assert repr(Linf(0.3)) == "Linf(eps=0.3)"
    assert repr(a) == "L2(eps=1.0, coords=(1, 3))"
    assert repr(s) == "Linf(eps=0.5, coords=slice(2, None, None))"
    assert pickle.loads(pickle.dumps(s)) == s
    b = a.with_eps(0.25)
    assert type(b) is L2 and b.eps == 0.25 and b.coords == (1, 3) and a.eps == 1.0
    with pytest.raises(AttributeError):
        a.eps = 2.0
    with pytest.raises(TypeError, match="abstract"):
        ThreatModel(1.0)


# ---------------------------------------------------------------------------------------------------------
# make_threat
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("linf:0.3", Linf(0.3)),
        ("l2:1.5", L2(1.5)),
        ("l1:2", L1(2.0)),
        ("LINF:0", Linf(0.0)),
        (" L2 : 1e-1 ", L2(0.1)),
    ],
)
def test_make_threat(spec, expected):
    tm = make_threat(spec)
    assert tm == expected and type(tm) is type(expected)
    assert make_threat(tm) is tm


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "linf",
        "linf:",
        "l3:1",
        "lp:1",
        "linf:abc",
        "linf:-1",
        "linf:nan",
        "linf:inf",
        "l2:1:2",
        "0.3:linf",
        "linf:0.3\nl2:1",
    ],
)
def test_make_threat_rejects(spec):
    with pytest.raises(ValueError) as info:
        make_threat(spec)
    msg = str(info.value)
    assert "\n" not in msg and "linf" in msg.lower()


def test_l2_subnormal_norms_give_finite_steps_and_projections():
    # hypothesis found it: r / ||g|| is NaN (0 / subnormal under flush-to-zero) or inf for a subnormal norm, so
    # the step and the projection divide by the norm first
    g = torch.tensor([[6.45539702e-316], [3e-310]], dtype=torch.float64)
    for radius in (0.0, 1.0):
        step = L2(1.0).steepest_ascent(g, radius=radius)
        assert torch.isfinite(step).all()
        torch.testing.assert_close(step, torch.full_like(g, radius))
    z = L2(1e-320).project(g, torch.zeros_like(g))
    assert torch.isfinite(z).all() and bool((z.abs() <= 1e-320 * (1 + 1e-12)).all())
