"""The moment relaxation of the first layer (toyrobust.verification.moments) and its use by the L2 branch and
bound: the rows hold (with equality in the neurons' cones) at every true point, the solver reads the packed
semidefinite cone as we pack it, lifted multipliers are positive semidefinite, node bounds stay below sampled
margins at any multipliers, and the spheres point that stayed open after 600 s is decided."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verify_l2 import _assert_sound_at_perturbed_multipliers, _random_node  # the hull's soundness test's

import toyrobust as tr
from toyrobust import crosscheck as cc
from toyrobust.verification import l2bab, moments


def _true_point(W, c, delta, radius, distance):
    """The columns (delta, a, X, t) of the true point ``X = delta delta^T``, ``a = relu(W delta + c)``."""
    n, dm = W.shape
    x_col = dm + n
    n_var = x_col + moments.n_columns(dm) + (1 if distance else 0)
    v = np.zeros(n_var)
    v[:dm] = delta
    v[dm:dm + n] = np.maximum(W @ delta + c, 0.0)
    iu, ju = np.triu_indices(dm)
    idx = moments._x_index(dm)
    v[x_col + idx[iu, ju]] = np.outer(delta, delta)[iu, ju]
    if distance:
        v[-1] = np.linalg.norm(delta)
    return v, x_col, n_var


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2 ** 32 - 1), st.floats(1e-3, 10.0),
       st.floats(0.0, 1.0), st.booleans())
def test_moment_rows_hold_at_every_true_point_with_equality_in_the_neurons_cones(dm, n, seed, radius, frac,
                                                                                 distance):
    rng = np.random.default_rng(seed)
    W, c = rng.normal(size=(n, dm)) * rng.uniform(0.1, 10), rng.normal(size=n)
    delta = rng.normal(size=dm)
    delta *= frac * radius / np.linalg.norm(delta)
    v, x_col, n_var = _true_point(W, c, delta, radius, distance)
    reach = radius * np.linalg.norm(W, axis=1)
    rows = moments.moment_rows(W, c, dm + np.arange(n), c - reach, c + reach, radius, x_col, n_var,
                               t_col=n_var - 1 if distance else None)
    scale = 1 + radius ** 2 + np.abs(v).max() ** 2
    A, b = rows.trace
    assert float((A @ v)[0]) <= b[0] + 1e-12 * scale
    G, h, dims = rows.soc
    s = h - G @ v
    assert dims == [3] * n
    heads, tails = s[0::3], np.hypot(s[1::3], s[2::3])
    assert np.all(heads >= 0)
    # a^2 = a z at a true point: each cone is tight, head == ||tail|| (up to rounding of its scale)
    np.testing.assert_allclose(heads, tails, rtol=1e-9, atol=1e-9 * scale)
    Gp, hp, m = rows.psd
    M = moments.unpack(hp - Gp @ v, m)
    ref = np.outer(np.r_[1.0, delta], np.r_[1.0, delta])
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-15)
    xs = v[x_col:x_col + moments.n_columns(dm)]
    assert np.all(xs >= rows.box_lo - 1e-15) and np.all(xs <= rows.box_hi + 1e-15)


def test_moment_rows_at_a_point_off_the_graph_break_a_cone():
    # a neuron lifted above its graph at the centre with no variance (X = delta delta^T) violates its cone
    W, c = np.array([[1.0, 0.0]]), np.array([0.0])
    v, x_col, n_var = _true_point(W, c, np.zeros(2), 1.0, False)
    v[2] = 0.5  # a = 0.5 at z = 0
    rows = moments.moment_rows(W, c, np.array([2]), np.array([-1.0]), np.array([1.0]), 1.0, x_col, n_var)
    G, h, _ = rows.soc
    s = h - G @ v
    assert s[0] < math.hypot(s[1], s[2]) - 0.1
    v[x_col] = 1.0  # ... and is allowed once X carries variance along w: (a - 0)^2 <= X_00 / 4
    s = h - G @ v
    assert s[0] >= math.hypot(s[1], s[2]) - 1e-12


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 7), st.integers(0, 2 ** 32 - 1), st.floats(-12, 12))
def test_lift_is_positive_semidefinite_and_pack_unpack_round_trip(m, seed, log_scale):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(m, m)) * 10.0 ** log_scale
    Y = (B + B.T) / 2
    np.testing.assert_allclose(moments.unpack(moments.pack(Y), m), Y, rtol=1e-15, atol=0)
    L = moments.unpack(moments.lift(moments.pack(Y), m), m)
    lam = np.linalg.eigvalsh(L)
    assert lam.min() >= 0.0
    lam_y, V = np.linalg.eigh(Y)
    proj = (V * np.maximum(lam_y, 0)) @ V.T
    np.testing.assert_allclose(L, proj, atol=1e-9 * max(1.0, np.abs(lam_y).max()), rtol=0)


def test_lift_of_a_non_finite_multiplier_is_zero():
    y = moments.pack(np.eye(3))
    y[1] = np.nan
    assert np.array_equal(moments.lift(y, 3), np.zeros(6))


def test_clarabel_reads_the_semidefinite_cone_in_our_packing():
    # min -2 X_02 - X_11 / 2 subject to trace X = 1 on 3x3 PSD matrices: X = [[.5, 0, .5], [0, 0, 0], [.5, 0, .5]]
    # with value -1; a packing that swapped (0, 2) and (1, 1), or their scales, would find another matrix
    clarabel = pytest.importorskip("clarabel")
    m = 3
    iu = np.triu_indices(m)
    order = np.lexsort((iu[0], iu[1]))
    r, c = iu[0][order], iu[1][order]
    n = r.size
    q = np.zeros(n)
    q[(r == 0) & (c == 2)] = -2.0
    q[(r == 1) & (c == 1)] = -0.5
    G = sp.diags(np.where(r == c, -1.0, -math.sqrt(2.0))).tocsc()
    A = sp.vstack([sp.csc_matrix((r == c).astype(float)[None, :]), G]).tocsc()
    s = clarabel.DefaultSettings()
    s.verbose = False
    sol = clarabel.DefaultSolver(sp.csc_matrix((n, n)), q, A, np.r_[1.0, np.zeros(n)],
                                 [clarabel.ZeroConeT(1), clarabel.PSDTriangleConeT(m)], s).solve()
    X = moments.unpack(np.asarray(sol.s[1:]), m)
    np.testing.assert_allclose(X, [[0.5, 0, 0.5], [0, 0, 0], [0.5, 0, 0.5]], atol=1e-6)
    assert abs(sol.obj_val + 1.0) < 1e-6


def test_node_bounds_with_the_moment_rows_are_sound_tighter_and_sound_at_perturbed_multipliers(monkeypatch):
    """Random 5-24-24-1 networks: the node bound with the moment rows lies below every sampled margin in the ball
    (half the samples on the sphere), at or above the bound without them, and stays below the samples when
    every multiplier (the semidefinite cone's included) is perturbed."""
    rng = np.random.default_rng(1)
    seen = []
    real = l2bab._dual_bound
    monkeypatch.setattr(l2bab, "_dual_bound", lambda prog, z, y, homogeneous=False: (
        seen.append((prog, z, y)), real(prog, z, y, homogeneous))[1])
    gains = []
    for trial in range(5):
        prob, lo, up, truth = _random_node(rng, 5, 24, 0.5 + 0.25 * trial, 1 if trial % 2 else -1, 60000, 4.0)
        single = l2bab._solve(l2bab._build(prob, lo, up, False, moments=False), math.inf).lower
        seen.clear()
        prog = l2bab._build(prob, lo, up, False)
        assert prog.psd is not None and prog.psd[2] == 6
        joint = l2bab._solve(prog, math.inf).lower
        assert single - 1e-6 * (1 + abs(single)) <= joint <= truth, (trial, single, joint, truth)
        gains.append(joint - single)
        _, z, y = seen[0]
        _assert_sound_at_perturbed_multipliers(rng, real, prog, z, y, truth)
    assert max(gains) > 0.05  # the rows bind on some of these networks


def test_the_moment_rows_are_left_out_above_their_dimension():
    rng = np.random.default_rng(0)
    dm = moments.max_dim + 1
    ws = [rng.normal(size=(6, dm)), rng.normal(size=(1, 6))]
    bs = [np.zeros(6), np.zeros(1)]
    prob = l2bab.BabProblem(ws, bs, np.zeros(dm), np.ones(dm, bool), 1.0, 1)
    nrm = np.linalg.norm(ws[0], axis=1)
    assert l2bab._build(prob, [-nrm], [nrm], False).psd is None
    assert not l2bab._has_moments(prob, [-nrm], [nrm])


# a point of the quick cross-check's spheres row (inner sphere, label -1) that no single-neuron relaxation decides at
# L2 0.2: its tightened root bound was -6.4 and the branch and bound left it open after 600 s and 16,707 nodes
_HARD_POINT = [0.19468605518341064, -0.23762823641300201, -0.30270740389823914, -0.051696572452783585,
               -0.17010022699832916, 0.09432957321405411, -0.22325944900512695, -0.0067497664131224155,
               0.22629401087760925, -0.2847598195075989, 0.4159564673900604, -0.1035575121641159,
               -0.36596596240997314, 0.3106834888458252, 0.06420224905014038, 0.07999563962221146,
               -0.0742989182472229, -0.3434700071811676, 0.19563911855220795, 0.0694207027554512]


def test_the_spheres_point_open_after_600_s_is_decided_robust_by_the_moment_rows(tmp_path, monkeypatch):
    sp_ = tr.ConcentricSpheres(20, 1.0, 1.3)
    mlp = tr.models.MLP(20, (100, 100), seed=0, dtype=torch.float32)
    build = {"seed": 0, "device": "cpu", "progress": False, "cache": tmp_path, "trained": 0, "cached": 0}
    cc._fit(mlp, sp_, "mlp", True, build)
    x = torch.tensor([_HARD_POINT], dtype=torch.float32)
    y = torch.tensor([-1])
    assert int(tr.classifiers.as_classifier(mlp).predict(x)[0]) == -1
    roots = []
    real = l2bab.decide

    def spy(prob, lo, up, tol, confirm, deadline, *args, **kwargs):
        plo, pup = [a.copy() for a in lo], [b.copy() for b in up]
        l2bab.tighten_by_programs(prob, plo, pup, math.inf)
        roots.append(l2bab._solve(l2bab._build(prob, plo, pup, False, moments=False), math.inf).lower)
        return real(prob, lo, up, tol, confirm, deadline, *args, **kwargs)

    # Quad-CROWN's branch and bound (on by default) decides it before the SOCP search: off here, to test the latter
    searched = tr.verify(mlp, x, y, tr.L2(0.2), time_limit=60.0)
    assert searched.status == ["robust"] and searched.decided_by[0] in ("quad-crown", "quad-bab")
    monkeypatch.setattr(tr.verification.api, "decide", spy)
    res = tr.verify(mlp, x, y, tr.L2(0.2), time_limit=60.0, quad_crown={"branch_share": 0})
    assert res.status[0] == "robust"
    assert roots and roots[0] < -3.0  # without the moment rows the root is far from deciding it
