"""CROWN bounds (toyrobust.verification.bounds): against a textbook CROWN written out here, against the LP (triangle)
relaxation solved by scipy, and for soundness (sampled points, vertices, gradient-chosen vertices) in float64 and
in the float32 path with its rounding margins; the verifier's verdicts with the fast bounds equal those with the
textbook ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog

import toyrobust as tr
from toyrobust.verification import api, bounds
from toyrobust.verification.bounds import InputBall, LayerBounds, crown_bounds, pure_crown_margin
from toyrobust.verification.network import ReluNetwork

NORMS = {"linf": math.inf, "l1": 1.0, "l2": 2.0}


def _network(sizes: list[int], seed: int, scale: float = 1.0, bias: float = 0.3) -> ReluNetwork:
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(b, a, generator=g, dtype=torch.float64) * scale / math.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    bs = [torch.randn(b, generator=g, dtype=torch.float64) * bias for b in sizes[1:]]
    return ReluNetwork(ws, bs)


# ---------------------------------------------------------------------------------- textbook CROWN (reference)
def _range(A, c, x0, eps, p, mask):
    """Exact range of ``A x + c`` over the ball (numpy, one ball)."""
    cen = A @ x0 + c
    Am = np.abs(A[:, mask])
    q = Am.sum(1) if p == math.inf else (Am.max(1, initial=0.0) if p == 1 else np.sqrt((Am ** 2).sum(1)))
    return cen - eps * q, cen + eps * q


def _textbook_relax(lo, up):
    alpha, s, t = (lo >= 0).astype(float), (lo >= 0).astype(float), np.zeros_like(lo)
    for i in np.flatnonzero((lo < 0) & (up > 0)):
        s[i] = up[i] / (up[i] - lo[i])
        t[i] = -s[i] * lo[i]
        alpha[i] = 1.0 if up[i] >= -lo[i] else 0.0
    return alpha, s, t


def textbook_crown(W, b, x0, eps, p, mask):
    """CROWN for one ball as in Zhang et al. (2018): per layer, ``Lambda = +-I`` back-substituted with explicit
    positive and negative parts, intersected with interval arithmetic (written independently of the library)."""
    lo, up = _range(W[0], b[0], x0, eps, p, mask)
    lows, ups, ilo, iup = [lo], [up], lo, up
    for k in range(1, len(W)):
        wp, wn = np.clip(W[k], 0, None), np.clip(W[k], None, 0)
        ilo, iup = (wp @ np.maximum(ilo, 0) + wn @ np.maximum(iup, 0) + b[k],
                    wp @ np.maximum(iup, 0) + wn @ np.maximum(ilo, 0) + b[k])
        res = []
        for sign in (1.0, -1.0):
            lam = sign * np.eye(W[k].shape[0])
            const = lam @ b[k]
            lam = lam @ W[k]
            for j in range(k - 1, -1, -1):
                alpha, s, t = _textbook_relax(lows[j], ups[j])
                pos, neg = np.clip(lam, 0, None), np.clip(lam, None, 0)
                const = const + neg @ t
                lam = pos * alpha + neg * s
                const = const + lam @ b[j]
                lam = lam @ W[j]
            res.append(_range(lam, const, x0, eps, p, mask)[0])
        lows.append(np.maximum(res[0], ilo))
        ups.append(np.minimum(-res[1], iup))
    return lows, ups


def _reference_bounds(net: ReluNetwork, ball: InputBall) -> LayerBounds:
    """:func:`textbook_crown` for every ball, as LayerBounds (float64 tensors)."""
    W = [w.numpy() for w in net.weights]
    b = [v.numpy() for v in net.biases]
    mask = ball.mask.numpy()
    per = []
    for i in range(ball.x0.shape[0]):
        eps = float(ball.eps[i, 0]) if isinstance(ball.eps, torch.Tensor) else float(ball.eps)
        per.append(textbook_crown(W, b, ball.x0[i].numpy(), eps, ball.p, mask))
    lows = [torch.as_tensor(np.stack([r[0][k] for r in per])) for k in range(len(W))]
    ups = [torch.as_tensor(np.stack([r[1][k] for r in per])) for k in range(len(W))]
    return LayerBounds(lows, ups)


# ------------------------------------------------------------------------------------------ sampled points
def _points(net: ReluNetwork, x0: torch.Tensor, eps: float, p: float, mask: torch.Tensor, g: torch.Generator):
    """Points of the ball around x0 (d,): random ones, boundary ones and the vertices that a linearisation at x0
    says minimise or maximise each neuron (the adversarial choices)."""
    d = x0.shape[0]
    m = mask.to(torch.float64)
    if p == math.inf:
        rnd = (torch.rand(400, d, generator=g, dtype=torch.float64) * 2 - 1)
        rnd[:200] = rnd[:200].sign()
    else:
        u = torch.randn(400, d, generator=g, dtype=torch.float64) * m
        u = u / u.norm(p=p, dim=1, keepdim=True).clamp_min(1e-300)
        rnd = u * torch.rand(400, 1, generator=g, dtype=torch.float64) ** (1 / max(1, d))
        rnd[:200] = u[:200]
    pts = [x0 + eps * rnd * m]
    x = x0.clone().requires_grad_(True)
    h = x[None]
    for w, b in zip(net.weights, net.biases):
        z = h @ w.T + b
        for r in range(z.shape[1]):
            (grad,) = torch.autograd.grad(z[0, r], x, retain_graph=True)
            grad = grad * m
            if p == math.inf:
                step = grad.sign()
            elif p == 2:
                step = grad / grad.norm().clamp_min(1e-300)
            else:
                step = torch.zeros(d, dtype=torch.float64)
                j = int(grad.abs().argmax())
                step[j] = grad[j].sign()
            pts.append(torch.stack([x0 + eps * step, x0 - eps * step]))
        h = torch.relu(z)
    return torch.cat(pts).detach()


def _assert_contains(net: ReluNetwork, bd: LayerBounds, i: int, pts: torch.Tensor, rtol: float) -> None:
    h = pts
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        h = h @ w.T + b
        slack = rtol * (1 + h.abs())
        assert bool((h >= bd.lower[k][i] - slack).all()), f"layer {k}: below the lower bound"
        assert bool((h <= bd.upper[k][i] + slack).all()), f"layer {k}: above the upper bound"
        h = torch.relu(h)


nets = st.tuples(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 7), st.integers(1, 5))


@given(net=nets, norm=st.sampled_from(sorted(NORMS)), eps=st.floats(0.01, 2.0), partial=st.booleans(),
       per_ball=st.booleans(), dtype=st.sampled_from([torch.float64, torch.float32]),
       path=st.sampled_from(["auto", "shared", "per-ball", "formed"]))
def test_bounds_contain_sampled_points_and_adversarial_vertices(net, norm, eps, partial, per_ball, dtype, path):
    seed, depth, width, d = net
    rn = _network([d] + [width] * depth + [1], seed, scale=2.0)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, d, generator=g, dtype=torch.float64)
    mask = torch.ones(d, dtype=torch.bool)
    if partial:
        mask[1:] = False
    radius = torch.tensor([[eps], [eps / 3], [eps * 1.5]], dtype=torch.float64) if per_ball else eps
    with pytest.MonkeyPatch.context() as mp:
        if path != "auto":
            mp.setattr(bounds, "_choose_path", lambda *args: path)
        bd = crown_bounds(rn, InputBall(x0, radius, NORMS[norm], mask), dtype=dtype)
    for i in range(3):
        r = float(radius[i, 0]) if per_ball else eps
        # float64 evaluation of the network: its own rounding is ~1e-15, the float32 margins are rigorous
        _assert_contains(rn, bd, i, _points(rn, x0[i], r, NORMS[norm], mask, g), 1e-12)


@given(net=nets, norm=st.sampled_from(sorted(NORMS)), eps=st.floats(0.01, 2.0), partial=st.booleans(),
       path=st.sampled_from(["auto", "shared", "per-ball", "formed"]))
def test_float64_bounds_equal_textbook_crown_on_every_path(net, norm, eps, partial, path):
    """The fast bounds are the textbook CROWN's (never looser), whichever way the first relaxation is computed."""
    seed, depth, width, d = net
    rn = _network([d] + [width] * depth + [1], seed, scale=2.0)
    x0 = torch.randn(4, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    mask = torch.ones(d, dtype=torch.bool)
    if partial:
        mask[0] = False
    ball = InputBall(x0, eps, NORMS[norm], mask)
    with pytest.MonkeyPatch.context() as mp:
        if path != "auto":
            mp.setattr(bounds, "_choose_path", lambda *args: path)
        fast = crown_bounds(rn, ball, max_elements=64 if seed % 2 else 2 ** 24)
    ref = _reference_bounds(rn, ball)
    for k in range(len(rn.weights)):
        tol = 1e-12 * (1 + ref.lower[k].abs() + ref.upper[k].abs())
        assert bool(((fast.lower[k] - ref.lower[k]).abs() <= tol).all())
        assert bool(((fast.upper[k] - ref.upper[k]).abs() <= tol).all())
        assert bool((fast.lower[k] >= ref.lower[k] - tol).all()) and bool((fast.upper[k] <= ref.upper[k] + tol).all())
    # one side of the margin only: the same number on that side
    sign = torch.tensor([1.0, -1.0, -1.0, 1.0])
    one = crown_bounds(rn, ball, margin_sign=sign, max_elements=64 if seed % 2 else 2 ** 24)
    lo, up = fast.margin()
    olo, oup = one.margin()
    assert torch.allclose(torch.where(sign > 0, olo, -oup), torch.where(sign > 0, lo, -up), rtol=1e-13, atol=1e-13)
    assert all(torch.allclose(a, b, rtol=1e-13, atol=1e-13) for a, b in zip(one.lower[:-1], fast.lower[:-1]))


def _lp_margin(net: ReluNetwork, bd: LayerBounds, x0: np.ndarray, eps: float, sense: float) -> float:
    """``min sense * margin`` over the Linf ball with every ReLU replaced by its triangle relaxation between the
    given bounds (scipy's HiGHS LP): the tightest bound any single-neuron linear relaxation can give."""
    W = [w.numpy() for w in net.weights]
    b = [v.numpy() for v in net.biases]
    sizes = [x0.size] + [w.shape[0] for w in W[:-1]]
    # variables: x, then per hidden layer z_k and h_k
    offs, n = [0], x0.size
    for s in sizes[1:]:
        offs.append(n)
        n += 2 * s
    bounds = [(x0[j] - eps, x0[j] + eps) for j in range(x0.size)]
    A_eq, b_eq, A_ub, b_ub = [], [], [], []
    for k, s in enumerate(sizes[1:]):
        lo, up = bd.lower[k][0].numpy(), bd.upper[k][0].numpy()
        z, h = offs[k + 1], offs[k + 1] + s
        prev = 0 if k == 0 else offs[k] + sizes[k]  # x, or h_{k-1}
        bounds += [(lo[i], up[i]) for i in range(s)] + [(max(lo[i], 0.0), max(up[i], 0.0)) for i in range(s)]
        for i in range(s):
            row = np.zeros(n)
            row[z + i] = 1.0
            row[prev:prev + sizes[k]] -= W[k][i]
            A_eq.append(row)
            b_eq.append(b[k][i])
            row = np.zeros(n)  # h >= z
            row[z + i], row[h + i] = 1.0, -1.0
            A_ub.append(row)
            b_ub.append(0.0)
            if lo[i] < 0 < up[i]:  # h <= up (z - lo) / (up - lo)
                row = np.zeros(n)
                row[h + i], row[z + i] = 1.0, -up[i] / (up[i] - lo[i])
                A_ub.append(row)
                b_ub.append(-up[i] * lo[i] / (up[i] - lo[i]))
            elif lo[i] >= 0:  # h = z
                row = np.zeros(n)
                row[h + i], row[z + i] = 1.0, -1.0
                A_eq.append(row)
                b_eq.append(0.0)
    c = np.zeros(n)
    last = offs[-1] + sizes[-1]
    c[last:last + sizes[-1]] = sense * W[-1][0]
    res = linprog(c, A_ub=np.array(A_ub), b_ub=np.array(b_ub), A_eq=np.array(A_eq), b_eq=np.array(b_eq),
                  bounds=bounds, method="highs")
    assert res.status == 0
    return float(res.fun + sense * b[-1][0])


@given(seed=st.integers(0, 10_000), depth=st.integers(1, 2), width=st.integers(2, 6), d=st.integers(1, 3),
       eps=st.floats(0.05, 1.0), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_lp_triangle_relaxation_is_never_beaten_and_never_beats_samples(seed, depth, width, d, eps, dtype):
    """CROWN's margin bound with the given hidden-layer bounds is at most the LP triangle relaxation's optimum, which
    is at most every sampled margin (an independent reference: scipy's LP solver)."""
    rn = _network([d] + [width] * depth + [1], seed, scale=2.0)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(1, d, generator=g, dtype=torch.float64)
    mask = torch.ones(d, dtype=torch.bool)
    ball = InputBall(x0, eps, math.inf, mask)
    bd = crown_bounds(rn, ball, dtype=dtype)
    pl, pu = pure_crown_margin(rn, ball, bd)
    lp_lo, lp_hi = _lp_margin(rn, bd, x0[0].numpy(), eps, 1.0), -_lp_margin(rn, bd, x0[0].numpy(), eps, -1.0)
    scale = 1e-7 * (1 + abs(lp_lo) + abs(lp_hi))
    assert float(pl[0]) <= lp_lo + scale and float(pu[0]) >= lp_hi - scale
    assert float(bd.lower[-1][0, 0]) <= lp_lo + scale and float(bd.upper[-1][0, 0]) >= lp_hi - scale
    m = rn.forward(_points(rn, x0[0], eps, math.inf, mask, g))
    assert lp_lo <= float(m.min()) + scale and lp_hi >= float(m.max()) - scale


def test_float32_margins_are_needed_and_enough():
    """On a network that is affine over the balls (every ReLU active), CROWN is exact and the minimum is at a vertex:
    CROWN done naively in float32 claims more than the true minimum on some balls; the float32 path never does,
    and stays within 1e-3 (relative) of float64."""
    rn = _network([20, 64, 64, 1], 3, bias=0.0)
    rn.biases[0] += 200.0  # every ReLU active on the balls: large positive biases, positive weights behind them
    rn.biases[1] += 200.0
    rn.weights[1] = rn.weights[1].abs()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(200, 20, generator=g, dtype=torch.float64) * 30
    eps = 0.01
    ball = InputBall(x0, eps, math.inf, torch.ones(20, dtype=torch.bool))
    b32 = crown_bounds(rn, ball, dtype=torch.float32)
    b64 = crown_bounds(rn, ball)
    assert all(bool((lo > 0).all()) for lo in b64.lower[:-1])  # affine on every ball
    A = (rn.weights[2] @ rn.weights[1] @ rn.weights[0])[0]
    worst = x0 - eps * A.sign()  # the minimising vertex
    best = x0 + eps * A.sign()
    true_lo, true_hi = rn.forward(worst), rn.forward(best)
    with pytest.MonkeyPatch.context() as mp:  # the same computation in float32 without the margins
        mp.setattr(bounds, "_precision", lambda dtype, device: bounds._Precision(torch.float32, 0.0))
        naive_lo, naive_hi = crown_bounds(rn, ball, dtype=torch.float32).margin()
    assert bool((naive_lo > true_lo).any()) and bool((naive_hi < true_hi).any())  # naive float32: unsound
    lo, hi = b32.margin()
    assert bool((lo <= true_lo).all()) and bool((hi >= true_hi).all())
    lo64, hi64 = b64.margin()
    scale = 1 + lo64.abs()
    assert bool(((lo64 - lo) / scale < 1e-3).all()) and bool(((hi - hi64) / scale < 1e-3).all())


def test_float32_falls_back_to_float64_without_ieee_single_products():
    rn = _network([3, 8, 8, 1], 0)
    ball = InputBall(torch.randn(5, 3, dtype=torch.float64), 0.3, math.inf, torch.ones(3, dtype=torch.bool))
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        loose = crown_bounds(rn, ball, dtype=torch.float32)
    finally:
        torch.set_float32_matmul_precision(before)
    exact = crown_bounds(rn, ball)
    assert all(torch.equal(a, b) for a, b in zip(loose.lower + loose.upper, exact.lower + exact.upper))
    # the newer per-backend setting (bf16 products on CPU); set and restored by hand: it is a torch setting behind a
    # property, which monkeypatch cannot always delete again
    matmul = torch.backends.mkldnn.matmul
    old = getattr(matmul, "fp32_precision", None)
    if old is not None:
        try:
            matmul.fp32_precision = "bf16"
            assert bounds._precision(torch.float32, torch.device("cpu")).dtype == torch.float64
        finally:
            matmul.fp32_precision = old
    assert bounds._precision(torch.float32, torch.device("cpu")).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        crown_bounds(rn, ball, dtype=torch.float16)


def test_verify_and_minimal_distance_give_the_same_answers_with_textbook_bounds(monkeypatch):
    """The verifier's verdicts, bounds and distances with the fast bounds equal those with the textbook CROWN."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 1)).double()
    x = torch.randn(24, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = torch.where(model(x)[:, 0] >= 0, 1, -1)
        y[:4] = -y[:4]
    threat = tr.Linf(1.0)

    def run():
        res = tr.verify(model, x, y, threat, method="bounds")
        res_milp = tr.verify(model, x[:8], y[:8], threat)
        dist = tr.minimal_distance(model, x[4:8], y[4:8], norm="linf")
        return res, res_milp, dist

    fast = run()
    monkeypatch.setattr(api, "crown_bounds", lambda net, ball, **kw: _reference_bounds(net, ball))
    slow = run()
    for a, b in zip(fast[:2], slow[:2]):
        assert a.status == b.status and a.decided_by == b.decided_by
        assert torch.allclose(a.lower_bound, b.lower_bound, rtol=1e-9, atol=1e-12)
    assert fast[0].counts()["robust"] > 0 and fast[0].counts()["unknown"] > 0
    assert fast[2].status == slow[2].status
    assert np.allclose(fast[2].distance, slow[2].distance, rtol=1e-6, atol=1e-9)
    assert np.allclose(fast[2].lower, slow[2].lower, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_no_balls_and_zero_radius(dtype):
    """No balls: empty bounds; radius 0: the bounds pinch the network's value (to the float32 margins)."""
    for sizes in ([3, 1], [3, 5, 1], [3, 5, 5, 1]):
        rn = _network(sizes, 0)
        mask = torch.ones(3, dtype=torch.bool)
        empty = crown_bounds(rn, InputBall(torch.zeros(0, 3, dtype=torch.float64), 0.5, math.inf, mask), dtype=dtype)
        assert [tuple(t.shape) for t in empty.lower] == [(0, w.shape[0]) for w in rn.weights]
        x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        bd = crown_bounds(rn, InputBall(x0, 0.0, math.inf, mask), dtype=dtype, margin_sign=torch.ones(4))
        m = rn.forward(x0)
        lo = bd.margin()[0]
        # the reference m is itself a float64 forward pass, off the real value by its own rounding (and float64
        # bounds do not cover theirs): a 1e-12 relative slack for both
        slack = 1e-12 * (1 + m.abs())
        assert bool((lo <= m + slack).all()) and bool((m - lo <= 1e-4 * (1 + m.abs())).all())
