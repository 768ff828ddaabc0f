"""The exact attack's linear fast path (closed-form step, margin from w's columns), the one-pass L2 norm and the
blocked ball test, against independent references: Hoelder's distance rule in numpy float64, the generic
minimal-perturbation path, brute-force norms, and the closed-form spheres risk inside a Clopper-Pearson interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toyrobust as tr
import toyrobust.attacks.exact as exact_mod
import toyrobust.threats as threats_mod
from toyrobust.attacks.exact import _minimal, exact_attack
from toyrobust.attacks.losses import finish
from toyrobust.definitions import is_adversarial
from toyrobust.threats import _scaled_norm, _vector_norm

THREATS = {"l2": (tr.L2, 2), "linf": (tr.Linf, 1), "l1": (tr.L1, math.inf)}  # class, dual exponent q


def _problem(d: int, n: int, seed: int, sparse: bool, dtype: torch.dtype):
    g = np.random.default_rng(seed)
    w = g.normal(size=d)
    if sparse:
        w[g.permutation(d)[: d - max(1, d // 10)]] = 0.0
    b = float(g.normal() * 0.3)
    x = torch.tensor(g.normal(size=(n, d)) / math.sqrt(d), dtype=dtype)
    y = torch.tensor(g.choice([-1, 1], size=n))
    return w, b, x, y


def _dual(w: np.ndarray, q: float, coords) -> float:
    ws = w if coords is None else w[list(coords)]
    return float(np.linalg.norm(ws, ord=q))


@pytest.mark.parametrize("norm", list(THREATS))
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("coords", [None, (0, 2, 3, 7, 11)])
def test_linear_fast_path_is_the_distance_rule_and_verifies(norm, sparse, dtype, coords):
    cls, q = THREATS[norm]
    d, n = 40, 3000
    seed = list(THREATS).index(norm) + 3 * sparse + 7 * (coords is None)
    w, b, x, y = _problem(d, n, seed=seed, sparse=sparse, dtype=dtype)
    threat = cls(0.08, coords=coords)
    clf = tr.Linear(w.tolist(), b)
    res = exact_attack(clf, x, y, threat)
    # reference 1: Hoelder in numpy float64, on the rows not within rounding of the boundary dist = eps
    wq = _dual(w, q, coords)
    m = x.double().numpy() @ w + b
    with np.errstate(divide="ignore"):
        dist = np.where(np.sign(m + (m == 0)) == y.numpy(), np.abs(m) / wq, 0.0)
    clear = np.abs(dist - 0.08) > 1e-4
    assert clear.mean() > 0.9
    assert np.array_equal(res.success.numpy()[clear], (dist <= 0.08)[clear])
    # every returned point lies in the ball, its success is the definition re-evaluated on it, norms are measured
    assert bool(threat.contains(res.x_adv, x).all())
    assert torch.equal(res.success, is_adversarial("ball", clf, res.x_adv, y))
    ref_norms = np.linalg.norm((res.x_adv.double() - x.double()).numpy()[:, list(coords or range(d))], ord=
                               {2: 2, 1: math.inf, math.inf: 1}[q], axis=1)
    np.testing.assert_allclose(res.norms.double().numpy(), ref_norms, rtol=1e-5, atol=1e-12)
    # off coords and off the step's support the point is the clean point, bitwise
    if coords is not None:
        off = [j for j in range(d) if j not in coords]
        assert torch.equal(res.x_adv[:, off], x[:, off])
    # reference 2: the generic minimal-perturbation path followed by the projection (the previous implementation)
    delta, _ = _minimal(clf, x, y, threat)
    ref = finish(clf, x, y, x + delta, threat, "ball", None, 0)
    assert torch.equal(res.success[torch.from_numpy(clear)], ref.success[torch.from_numpy(clear)])
    assert res.x_adv.dtype == dtype and res.grad_evals == 0


def test_linear_fast_path_prediction_change_and_degenerate_weights():
    g = np.random.default_rng(5)
    x = torch.tensor(g.normal(size=(500, 6)))
    y = torch.ones(500, dtype=torch.int64)
    clf = tr.Linear([0.0, 2.0, -1.0, 0.0, 0.0, 0.5], -0.2)
    res = exact_attack(clf, x, y, tr.L1(0.3), definition="prediction-change")
    d = (clf.margin(x).abs() / 2.0).numpy()  # L1 ball: dual norm Linf = 2
    clear = np.abs(d - 0.3) > 1e-9
    assert np.array_equal(res.success.numpy()[clear], (d <= 0.3)[clear])
    assert torch.equal(res.success, is_adversarial("prediction-change", clf, res.x_adv, x=x))
    # the L1 step moves the single largest weight's coordinate only
    moved = (res.x_adv != x).any(0)
    assert moved.tolist() == [False, True, False, False, False, False]
    # no weight on the free coordinates: nothing can be done, the clean point comes back
    res = exact_attack(tr.Linear([1.0, 0.0], 0.0), x[:, :2], torch.where(x[:, 0] >= 0, 1, -1),
                       tr.L2(5.0, coords=(1,)))
    assert not bool(res.success.any()) and torch.equal(res.x_adv, x[:, :2]) and float(res.norms.max()) == 0.0


def test_rows_left_on_the_boundary_are_lengthened(monkeypatch):
    # without the slack, the step lands exactly on the boundary and rounding leaves about half of the +1 rows
    # there: the fallback must still decide every row by the distance rule
    monkeypatch.setattr(exact_mod, "_SLACK_ULPS", 0.0)
    calls = []
    orig = exact_mod._lengthen
    monkeypatch.setattr(exact_mod, "_lengthen", lambda *a: calls.append(int(a[4].sum())) or orig(*a))
    w, b, x, y = _problem(30, 4000, seed=3, sparse=False, dtype=torch.float32)
    clf = tr.Linear(w.tolist(), b)
    res = exact_attack(clf, x, y, tr.L2(0.1))
    assert calls and calls[0] > 10
    m = x.double().numpy() @ w + b
    dist = np.where(np.sign(m + (m == 0)) == y.numpy(), np.abs(m) / np.linalg.norm(w), 0.0)
    clear = np.abs(dist - 0.1) > 1e-4
    assert np.array_equal(res.success.numpy()[clear], (dist <= 0.1)[clear])
    assert bool(tr.L2(0.1).contains(res.x_adv, x).all())
    assert torch.equal(res.success, is_adversarial("ball", clf, res.x_adv, y))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.sampled_from(list(THREATS)), st.floats(0.0, 1.5), st.integers(0, 10**6),
       st.booleans())
def test_linear_fast_path_property(d, norm, eps, seed, f32):
    cls, q = THREATS[norm]
    dtype = torch.float32 if f32 else torch.float64
    w, b, x, y = _problem(d, 64, seed, sparse=False, dtype=dtype)
    w[np.random.default_rng(seed).random(d) < 0.3] = 0.0
    clf, threat = tr.Linear(w.tolist(), b), cls(eps)
    res = exact_attack(clf, x, y, threat)
    assert bool(threat.contains(res.x_adv, x).all())
    assert torch.equal(res.success, is_adversarial("ball", clf, res.x_adv, y))
    m = x.double().numpy() @ w + b
    wq = float(np.linalg.norm(w, ord=q))
    correct = np.sign(m + (m == 0)) == y.numpy()
    dist = np.where(correct, np.abs(m) / wq if wq > 0 else np.inf, 0.0)
    clear = np.abs(dist - eps) > 1e-4 * (1 + np.abs(m).max())
    assert np.array_equal(res.success.numpy()[clear], (dist <= eps)[clear])


@pytest.mark.parametrize("chunk", [None, 3000])
def test_estimate_risk_spheres_cap_matches_closed_form(chunk):
    # the benchmark's case at D = 100: exact L2 attack on sign(x_1 - 0.05), closed form by tr.risk
    sp = tr.ConcentricSpheres(100, 1.0, 1.3)
    cap = tr.Linear([1.0] + [0.0] * 99, -0.05)
    threat = tr.L2(0.1)
    exact = float(tr.risk(sp, cap, threat))
    kw = {} if chunk is None else {"chunk_size": chunk}
    est = tr.estimate_risk(sp, cap, threat, n=12_000, seed=3, attack="exact", level=0.999, dtype=torch.float32,
                           progress=False, **kw)
    assert est.kind == "exact" and est.invalid_claims == 0
    assert est.ci_low <= exact <= est.ci_high, (est, exact)


def test_estimate_risk_count_does_not_depend_on_the_chunk_size(monkeypatch):
    # the estimator attacks a chunk in CPU pieces (here of 3000 rows: 20000 = 6 x 3000 + 2000)
    monkeypatch.setattr(tr.montecarlo, "_CPU_PIECE_BYTES", 3000 * 50 * 8)
    sp = tr.ConcentricSpheres(50, 1.0, 1.3)
    clf = tr.Linear(np.random.default_rng(0).normal(size=50).tolist(), 0.1)
    ests = [tr.estimate_risk(sp, clf, tr.Linf(0.02), n=20000, seed=1, attack="exact", chunk_size=c,
                             progress=False) for c in (20000, 1234, 4096)]
    assert len({e.k for e in ests}) == 1 and all(e.invalid_claims == 0 for e in ests)
    assert 0 < ests[0].k < 20000


def test_one_pass_l2_norm_matches_the_rescaled_norm_and_float64():
    for dt in (torch.float32, torch.float64):
        g = torch.Generator().manual_seed(0)
        v = torch.randn(400, 37, generator=g, dtype=dt)
        v[0] *= 1e-25
        v[1] *= 1e25
        v[2] = 0
        v[3, 0] = math.inf
        v[4, 0] = math.nan
        v[5] *= 1e-160 if dt == torch.float64 else 1e-18
        v[6, :36] = 0
        v[6, 36] = 1e-30
        v[7, 5] = -math.inf
        out = _vector_norm(v, 2)
        ref = _scaled_norm(v)[:, 0]
        torch.testing.assert_close(out, ref, rtol=4 * torch.finfo(dt).eps, atol=0, equal_nan=True)
        fine = torch.isfinite(ref)
        exact = torch.tensor(np.linalg.norm(v.double().numpy()[fine.numpy()] * 1e20, axis=1) / 1e20)
        torch.testing.assert_close(out[fine].double(), exact, rtol=8 * torch.finfo(dt).eps, atol=0)
        assert _vector_norm(v[:3].reshape(3, 1, 37), 2).shape == (3, 1)
        assert _vector_norm(v[0], 2, keepdim=True).shape == (1,)
    # gradients flow through the rescaled rows too
    x = torch.tensor([[1e20, 0.0], [0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    _vector_norm(x, 2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[2].tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize("norm", list(THREATS))
@pytest.mark.parametrize("coords", [None, slice(3, None)])
@pytest.mark.parametrize("block_bytes", [None, 1 << 16, 1])
def test_blocked_contains_matches_brute_force(norm, coords, block_bytes, monkeypatch):
    if block_bytes is not None:  # several CPU row blocks (down to one row each)
        monkeypatch.setattr(threats_mod, "_CPU_BLOCK_BYTES", block_bytes)
    cls, _ = THREATS[norm]
    p = {"l2": 2, "linf": math.inf, "l1": 1}[norm]
    g = np.random.default_rng(1)
    n, d, eps = 2000 if block_bytes != 1 else 300, 300, 0.5
    x0 = g.normal(size=(n, d))
    delta = g.normal(size=(n, d))
    if coords is not None:
        delta[:, :3] = 0.0
        delta[::7, 1] = 1e-3  # off-coordinate moves, some rows
    size = np.linalg.norm(delta[:, 3:] if coords is not None else delta, ord=p, axis=1)
    delta *= (eps * g.uniform(0.5, 1.5, size=n) / size)[:, None]
    delta[::11] *= 1e-30  # tiny perturbations (squares underflow in float32)
    delta[::13] = 0.0
    x = x0 + delta
    threat = cls(eps, coords=coords)
    for dt in (torch.float32, torch.float64):
        xt, x0t = torch.tensor(x, dtype=dt), torch.tensor(x0, dtype=dt)
        got = threat.contains(xt, x0t).numpy()
        dd = (xt.double() - x0t.double()).numpy()
        atol = 128 * torch.finfo(dt).eps * max(1.0, eps)
        sz = np.linalg.norm(dd[:, 3:] if coords is not None else dd, ord=p, axis=1)
        want = sz <= eps + atol
        if coords is not None:
            want &= np.abs(dd[:, :3]).max(axis=1) <= atol
        clear = np.abs(sz - (eps + atol)) > 1e-5
        assert clear.mean() > 0.98
        assert np.array_equal(got[clear], want[clear])
        assert 0.2 < want.mean() < 0.8


@pytest.mark.parametrize("norm", list(THREATS))
def test_linear_fast_path_row_blocks_change_nothing(norm, monkeypatch):
    cls, _ = THREATS[norm]
    w, b, x, y = _problem(40, 1000, seed=9, sparse=False, dtype=torch.float32)
    clf, threat = tr.Linear(w.tolist(), b), cls(0.1)
    whole = exact_attack(clf, x, y, threat)
    monkeypatch.setattr(exact_mod, "_CPU_BLOCK_ENTRIES", 1000)  # blocks of 25 rows, the last one short
    blocked = exact_attack(clf, x, y, threat)
    assert torch.equal(whole.x_adv, blocked.x_adv) and torch.equal(whole.success, blocked.success)
    assert torch.equal(whole.norms, blocked.norms)
