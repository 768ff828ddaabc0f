"""Sound bounds on every neuron of a ReLU network over an Lp ball: interval (IBP) and CROWN-style linear bounds.

The input set is ``B = {x : ||x - x0||_p <= eps, x_j = x0_j for j outside coords}`` for p in {inf, 1, 2}. A linear
function over it has the exact range ``c.x0 -+ eps ||c_coords||_q`` (q the dual exponent), which gives the first
layer's pre-activations exactly for every norm.

* **IBP** (Gowal et al. 2018): first layer exact, then interval arithmetic ``W [l, u] + b`` in centre/radius form.
* **CROWN** (Zhang et al. 2018): each layer's pre-activations are bounded by back-substituting a linear function
  through the layers below, with every unstable ReLU (``l < 0 < u``) replaced by linear bounds
  ``alpha z <= relu(z) <= u (z - l) / (u - l)`` (``alpha = 1`` if ``u >= -l`` else 0), and the resulting linear
  function of the input minimised exactly over the ball. Every layer's bounds are intersected with IBP's, so the
  result is never looser than IBP (pure CROWN can be looser on some neurons).

**Cost.** The back-substitution for layer k starts from the rows ``[W_k; -W_k]`` shared by all balls (no
product with an identity), and the first relaxation below it never forms the (N, 2m, n) coefficient tensor: with
``A = B diag(s) + B+ diag(alpha - s)`` (``alpha - s`` is zero on stable neurons) the per-ball diagonals go into the
right-hand factor of a product with the shared weights, or, for large layers, each ball's product runs over its live
neurons only. Deeper steps are one matrix product for all balls and rows, with the relaxation applied as
``A * where(A >= 0, alpha, s)`` (no separate positive and negative parts). ``margin_sign`` asks for one side of the
margin only. Batched over the N balls (chunked to bound memory).

**Precision.** ``dtype=torch.float64`` (the default; what :func:`~toyrobust.verify` uses) computes every bound in
float64; rounding there is far below the verifier's tolerances and is not accounted for, as in other bound
toolkits. ``dtype=torch.float32`` does the large products in single precision and stays *sound*: every computed
bound is lowered (upper bounds raised) by a rigorous bound on all rounding errors, so it holds for the network in
exact arithmetic. The argument, with u = 2^-24 and ``gamma(n) = (n + 8) u / (1 - (n + 8) u)``:

1. The relaxation is valid whatever the float values: any lower slope ``alpha`` in [0, 1] gives
   ``alpha z <= relu(z)`` (CROWN's 0 or 1, or alpha-CROWN's optimised slopes, :mod:`.alpha`), any slope ``s`` gives
   a valid upper line
   once its shift satisfies ``t >= max(-s l, u - s u)`` (the line lies above relu at both ends of [l, u], hence
   on all of it by convexity); t is computed in float64 from the rounded float32 s, raised by 4 ulps of the terms,
   and rounded up to float32.
2. Each back-substitution step replaces an exact identity ``lam . z_k >= A . z_j + c`` by float results. A product
   ``A W_j`` (or ``A b_j``, ``A c0``, ``A W_0``, ``B- t``) of inner length n, its float32 operands rounded from
   float64, has error at most ``gamma(n) |A| |W_j|`` entrywise, whatever the summation order (blocked, threaded,
   fused multiply-adds; Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1); the
   relaxation's product ``B * where(...)`` and float32 copies of float64 weights add at most ``3u |B| |M|``. The
   error is multiplied by the variable it stands in front of, which the (already sound) bounds of the layer below
   bound: ``|relu(z_{j-1})| <= relu(u_{j-1})``, ``|z_j| <= max(|l_j|, |u_j|)``, and at the input eps times the row
   sums of ``|W_0|`` (for every Lp ball, ``||E||_q <= ||E||_1``), plus ``|c0|`` for the centres
   ``c0 = W_0 x0 + b_0`` and their own float64 rounding, ``gamma64(d + 2) (|W_0| |x0| + |b_0|)``. Since
   ``|A| <= |B| max(alpha, s)``, each step's whole error is ``|B| v`` for a nonnegative float64 vector v, computed
   as one matrix-vector product and rounded up (nonnegative terms: multiplying by ``1 + 3 gamma`` covers its own
   rounding).
3. Constants are accumulated in float64; their roundings are covered by lowering the result by ``1e-12`` of the
   magnitudes summed (far above ``(additions) * 2^-53``). The dual norm of the float32 matrix is a sum of d
   nonnegative terms for Linf (float32, raised by ``gamma(d)`` and ``d 2^-126`` for underflow), or is taken in
   float64 (exact conversion; raised by ``(d + 8) 2^-51``); other underflow (flush to zero included) is covered by
   an absolute ``2^-100`` per term.
4. Every bound is intersected with IBP's, whose float64 rounding is covered here too: each IBP layer is widened by
   ``(n + 8) 2^-52`` of its magnitudes ``|W_k| |h| + |b_k|`` plus ``|W_k|`` times the previous layer's widening
   (the first layer likewise), so every bound, not only the back-substitution, holds in exact arithmetic.

The margins are of order ``gamma(n) |W| |h|``: about ``1e-4`` of the bounds' magnitudes at width 64. float32 is used
only when float32 matrix products really are IEEE single precision (``torch.get_float32_matmul_precision() ==
"highest"``, no TF32 on CUDA, and the newer per-backend ``fp32_precision`` settings unset or ``"ieee"``: no TF32 or
bfloat16 products); otherwise the call falls back to float64. The hypothesis tests in
``tests/test_crown.py`` check both precisions against sampled points and vertices of the ball, against a textbook
CROWN written out per neuron, and against the LP (triangle) relaxation, which CROWN can never beat.

References:
    S. Gowal et al., "On the effectiveness of interval bound propagation for training verifiably robust models",
    arXiv:1810.12715, 2018.
    H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient neural network robustness certification
    with general activation functions" (CROWN), NeurIPS 2018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .network import ReluNetwork

__all__ = ["InputBall", "LayerBounds", "ibp_bounds", "crown_bounds", "linear_range", "margin_bound_with_slopes"]

_U64 = 2.0 ** -53  # float64's unit roundoff


@dataclass
class InputBall:
    """N balls ``{x : ||x - x0_i||_p <= eps, x_j = x0_ij outside the mask}`` (float64, on one device).

    Attributes:
        x0: centres, shape (N, d).
        eps: radius, a float >= 0 or a (N, 1) float64 tensor (one radius per ball).
        p: ``math.inf``, 1 or 2.
        mask: bool (d,), True on the perturbed coordinates.
    """

    x0: torch.Tensor
    eps: float | torch.Tensor
    p: float
    mask: torch.Tensor

    def box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The smallest box containing every ball: ``x0 -+ eps`` on the mask (the same for p = inf, 1, 2)."""
        r = self.eps * self.mask.to(self.x0.dtype)
        return self.x0 - r, self.x0 + r

    def chunk(self, sl: slice) -> InputBall:
        eps = self.eps[sl] if isinstance(self.eps, torch.Tensor) else self.eps
        return InputBall(self.x0[sl], eps, self.p, self.mask)


def _dual_norm(c: torch.Tensor, p: float) -> torch.Tensor:
    """``||c||_q`` over the last axis with ``1/p + 1/q = 1``."""
    if p == math.inf:
        return c.abs().sum(-1)
    if p == 1:
        return c.abs().amax(-1)
    return torch.linalg.vector_norm(c, dim=-1)


def linear_range(A: torch.Tensor, c0: torch.Tensor, ball: InputBall) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact min and max of ``A_i x + c0_i`` over ball i.

    ``min = A x0 + c0 - eps ||A restricted to coords||_q`` and ``max = A x0 + c0 + eps ||.||_q``.

    Args:
        A: (N, m, d) or (m, d) coefficients.
        c0: (N, m) constants.
        ball: N balls.

    Returns:
        (low, high), each (N, m).
    """
    if A.ndim == 2:
        centre = ball.x0 @ A.T + c0
        spread = ball.eps * _dual_norm(A * ball.mask.to(A.dtype), ball.p)[None, :]
    else:
        centre = torch.einsum("nmd,nd->nm", A, ball.x0) + c0
        spread = ball.eps * _dual_norm(A * ball.mask.to(A.dtype), ball.p)
    return centre - spread, centre + spread


@dataclass
class LayerBounds:
    """Pre-activation bounds ``lower[k] <= z_k <= upper[k]`` for every layer k (the last is the margin).

    Attributes:
        lower, upper: lists of (N, n_k) float64 tensors; ``lower[-1][:, 0]``, ``upper[-1][:, 0]`` bound the margin.
    """

    lower: list[torch.Tensor]
    upper: list[torch.Tensor]

    def margin(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds on the margin, each (N,)."""
        return self.lower[-1][:, 0], self.upper[-1][:, 0]

    def unstable(self) -> list[torch.Tensor]:
        """Per hidden layer, bool (N, n_k): ``l < 0 < u`` (the neurons that need a binary variable)."""
        return [(lo < 0) & (up > 0) for lo, up in zip(self.lower[:-1], self.upper[:-1])]


def _check(net: ReluNetwork, ball: InputBall) -> None:
    if ball.x0.ndim != 2 or ball.x0.shape[1] != net.dim:
        raise ValueError(f"x0 must have shape (N, {net.dim}), got {tuple(ball.x0.shape)}")


def ibp_bounds(net: ReluNetwork, ball: InputBall) -> LayerBounds:
    """Interval bound propagation; the first layer exact over the ball (see the module docstring)."""
    _check(net, ball)
    lo, up = linear_range(net.weights[0], net.biases[0][None, :].expand(ball.x0.shape[0], -1), ball)
    lowers, uppers = [lo], [up]
    for w, b in zip(net.weights[1:], net.biases[1:]):
        a_lo, a_up = lo.clamp_min(0), up.clamp_min(0)
        mid, rad = (a_up + a_lo) / 2, (a_up - a_lo) / 2
        c, r = mid @ w.T + b, rad @ w.abs().T
        lo, up = c - r, c + r
        lowers.append(lo)
        uppers.append(up)
    return LayerBounds(lowers, uppers)


def _widen_ibp(net: ReluNetwork, ball: InputBall, ibp: LayerBounds) -> LayerBounds:
    """IBP's bounds widened by a bound on their float64 rounding errors (the module docstring, item 4)."""
    x_abs = ball.x0.abs() + ball.eps * ball.mask.to(ball.x0.dtype)
    mag = x_abs @ net.weights[0].abs().T + net.biases[0].abs()
    wid = (net.dim + 8) * 2 * _U64 * mag + 2.0 ** -1000
    lowers, uppers = [ibp.lower[0] - wid], [ibp.upper[0] + wid]
    for k in range(1, len(net.weights)):
        wa = net.weights[k].abs()
        mag = ibp.upper[k - 1].clamp_min(0) @ wa.T + net.biases[k].abs()
        wid = (wa.shape[1] + 8) * 2 * _U64 * mag + wid @ wa.T + 2.0 ** -1000
        lowers.append(ibp.lower[k] - wid)
        uppers.append(ibp.upper[k] + wid)
    return LayerBounds(lowers, uppers)


def _relaxation(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear bounds ``lo_slope z <= relu(z) <= up_slope z + up_shift`` valid on [lo, up]."""
    active = lo >= 0
    unstable = (lo < 0) & (up > 0)
    denom = torch.where(unstable, up - lo, torch.ones_like(up))
    s = torch.where(unstable, up / denom, active.to(up.dtype))
    t = torch.where(unstable, -s * lo, torch.zeros_like(up))
    alpha = torch.where(unstable, (up >= -lo).to(up.dtype), active.to(up.dtype))
    return alpha, s, t


# ------------------------------------------------------------------------------------ precision and margins
#: the first relaxation below a layer of m neurons is applied through products with the shared weights when the
#: right-hand factor has at most max(m, _SHARED_MAX_D) columns (else the coefficients are formed for all balls) ...
_SHARED_MAX_D = 32
#: ... and per ball, over its live and unstable neurons only, when a ball's product has at least this many
#: multiply-adds and fewer than 3/4 of the neurons are live-or-unstable on average (:func:`_choose_path`)
_PER_BALL_MIN_WORK = 2 ** 22


@dataclass(frozen=True)
class _Precision:
    """The arithmetic of the back-substitution: ``dtype`` of its large tensors and ``u``, the unit roundoff its
    margins are computed for (0 in float64: no margins, as in every float64 bound toolkit)."""

    dtype: torch.dtype
    u: float

    @property
    def sound32(self) -> bool:
        return self.u > 0

    def gamma(self, n: int) -> float:
        """``gamma_{n+8} = k u / (1 - k u)``, k = n + 8: bounds the relative error of an inner product of n terms
        (any summation order, fused multiply-adds or not) whose terms carry up to 8 more roundings (operands rounded
        into ``dtype``, the slope multiplied in, two partial products added)."""
        k = (n + 8) * self.u
        if k >= 0.5:
            raise ValueError(f"float32 bounds need (n + 8) u < 1/2, got n = {n}")
        return k / (1 - k)


def _precision(dtype: torch.dtype, device: torch.device) -> _Precision:
    """float64, or float32 with margins for u = 2^-24 when float32 products really are IEEE single precision
    (:func:`_ieee_float32_products`); otherwise float64."""
    if dtype == torch.float64:
        return _Precision(torch.float64, 0.0)
    if dtype != torch.float32:
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    if not _ieee_float32_products(device):
        return _Precision(torch.float64, 0.0)
    return _Precision(torch.float32, 2.0 ** -24)


def _ieee_float32_products(device: torch.device) -> bool:
    """Whether float32 matrix products on ``device`` are IEEE single precision: the legacy setting is
    ``"highest"`` and no TF32 on CUDA, and the newer per-backend settings (``torch.backends.fp32_precision``,
    ``torch.backends.{cuda,mkldnn}.matmul.fp32_precision``) are unset or ``"ieee"``."""
    try:
        legacy = torch.get_float32_matmul_precision()
    except RuntimeError:  # legacy and new settings mixed: torch refuses to answer
        return False
    backend = torch.backends.cuda if device.type == "cuda" else torch.backends.mkldnn
    settings = [getattr(torch.backends, "fp32_precision", "none"),
                getattr(getattr(backend, "matmul", None), "fp32_precision", "none"),
                getattr(backend, "fp32_precision", "none")]
    tf32 = device.type == "cuda" and bool(torch.backends.cuda.matmul.allow_tf32)
    return legacy == "highest" and not tf32 and all(v in ("none", "ieee") for v in settings)


def _relax(lo: torch.Tensor, up: torch.Tensor, prec: _Precision) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_relaxation` in ``prec.dtype``. In float32 the slope ``s`` is rounded (any slope gives a valid line)
    and the shift is recomputed for the rounded slope, ``t >= max(-s lo, up - s up)`` (so the line lies above
    relu at both ends of [lo, up], hence on all of it), with float64's rounding covered and rounded up to float32."""
    alpha, s, t = _relaxation(lo, up)
    if not prec.sound32:  # float64 (or float32 without margins: only the tests' naive comparison)
        return alpha.to(prec.dtype), s.to(prec.dtype), t.to(prec.dtype)
    s32 = s.to(prec.dtype)
    s64 = s32.double()
    need = torch.maximum(-s64 * lo, up - s64 * up)
    need = need + 4 * _U64 * (s64 * lo.abs() + up.abs() + s64 * up.abs())
    need = torch.where((lo < 0) & (up > 0), need, torch.zeros_like(need))
    t32 = need.to(prec.dtype)
    t32 = torch.where(t32.double() < need, torch.nextafter(t32, torch.full_like(t32, math.inf)), t32)
    return alpha.to(prec.dtype), s32, t32


@dataclass
class _Context:
    """What every back-substitution over the same balls shares: the layers in ``prec.dtype``, the centres
    ``c0 = W_0 x0 + b_0`` (N, n_0), ``W_0`` on the perturbed coordinates (n_0, d'); in float32, per layer j the
    float64 weights ``e[j]`` (N, n_j) of a step's rounding error ``|B| e[j]`` (module docstring, item 2) and the
    underflow term ``uf[j]`` (N, 1), built from ``v[j]``, which bounds the operands of the product at layer j
    (``|W_j| relu(u_{j-1}) + |b_j|``, or ``|c0| + eps |W_0m| 1`` at the input)."""

    prec: _Precision
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    c0: torch.Tensor
    w0m: torch.Tensor
    v: list[torch.Tensor]
    e: list[torch.Tensor]
    uf: list[torch.Tensor]

    @classmethod
    def build(cls, net: ReluNetwork, ball: InputBall, prec: _Precision) -> _Context:
        w0m = net.weights[0][:, ball.mask] if bool(ball.mask.any()) else net.weights[0][:, :1] * 0
        c0 = ball.x0 @ net.weights[0].T + net.biases[0]
        v0 = []
        if prec.sound32:  # |c0|, eps times the row sums of |W_0m| (the spread), and c0's own float64 rounding
            n0, d = net.weights[0].shape
            f64 = 2 * (d + 2) * _U64 / prec.gamma(n0)  # gamma64(d + 2) as a fraction of float32's gamma(n0)
            mag0 = ball.x0.abs() @ net.weights[0].abs().T + net.biases[0].abs()
            v0 = [c0.abs() + ball.eps * w0m.abs().sum(1) + f64 * mag0]
        dt = prec.dtype
        return cls(prec, [w.to(dt) for w in net.weights], [b.to(dt) for b in net.biases], c0.to(dt), w0m.to(dt),
                   v0, [], [])

    def add_layer(self, net: ReluNetwork, j: int, lo: torch.Tensor, up: torch.Tensor, relax: tuple) -> None:
        """Record layer j's bounds and relaxation (float32 margins only)."""
        if not self.prec.sound32:
            return
        alpha, s, t = relax
        zabs, mu = torch.maximum(lo.abs(), up.abs()), torch.maximum(alpha, s).double()
        g = self.prec.gamma(lo.shape[1])
        self.e.append(g * (t.double() + mu * self.v[j]) + 3 * self.prec.u * mu * zabs)
        self.uf.append(2.0 ** -100 * (1 + self.v[j] + zabs).sum(-1, keepdim=True))  # underflow
        if j + 1 < len(net.weights):
            self.v.append(up.clamp_min(0) @ net.weights[j + 1].abs().T + net.biases[j + 1].abs())

    def chunk(self, sl: slice) -> _Context:
        return _Context(self.prec, self.weights, self.biases, self.c0[sl], self.w0m, [], [e[sl] for e in self.e],
                        [u[sl] for u in self.uf])


def _abs_mv(B: torch.Tensor, x: torch.Tensor, prec: _Precision) -> torch.Tensor:
    """An upper bound on ``|B| x`` (x >= 0, float64 (N, n)) per row: (N, R) float64; B shared (R, n) or (N, R, n)."""
    if B.ndim == 2:  # B rounded from float64 to float32: the exact |B| is at most (1 + u) times larger
        y = x @ B.abs().double().T
    else:
        y = torch.bmm(B.abs(), x.to(B.dtype)[..., None])[..., 0].double()
    return y * (1 + 3 * prec.gamma(B.shape[-1]))


def _mv(A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A_i x_i`` for A (N, R, n), x (N, n) -> (N, R)."""
    return torch.bmm(A, x[..., None])[..., 0]


def _spread(G: torch.Tensor, eps: float | torch.Tensor, p: float, prec: _Precision) -> torch.Tensor:
    """``eps ||G_r||_q`` (float64; rounded up in float32 mode) for G (..., d') on the perturbed coordinates: in
    float64, or for p = inf in G's float32 (a sum of d' nonnegative terms, rounded up by ``gamma(d')`` and, for
    underflow, ``d' 2^-126``)."""
    if not prec.sound32:
        return eps * _dual_norm(G, p)
    d = G.shape[-1]
    if p == math.inf:
        nrm = G.abs().sum(-1).double() * (1 + prec.gamma(d)) + d * 2.0 ** -126
    else:
        nrm = _dual_norm(G.double(), p)
    return eps * nrm * (1 + (d + 8) * 4 * _U64)


def _choose_path(m: int, n: int, nn: int, cols: int, live_plus_unstable: int) -> str:
    """How :func:`_shared_step` computes (m rows per sign, n balls, nn neurons, cols columns on the right):
    ``"per-ball"`` for large per-ball products with fewer than 3/4 of the neurons live or unstable (on average),
    ``"formed"`` when the right-hand factor is much wider than m, else ``"shared"``."""
    if m * nn * cols >= _PER_BALL_MIN_WORK and live_plus_unstable < 1.5 * nn * n:
        return "per-ball"
    return "formed" if cols > max(m, _SHARED_MAX_D) else "shared"


def _shared_step(B: torch.Tensor, alpha: torch.Tensor, s: torch.Tensor, right: torch.Tensor,
                 vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A vec, A right)`` per ball for the first relaxation ``A = B+ diag(alpha) + B- diag(s)`` of the shared rows
    ``B = [W; -W]`` (2m, n), mostly without forming the (N, 2m, n) tensor A.

    In centre/radius form ``A = [P + Q; Q - P] / 2`` with ``P = W diag(alpha + s)`` and ``Q = |W| diag(alpha - s)``
    (``alpha - s`` is zero on stable neurons, ``alpha + s`` on dead ones). So ``A right`` takes two products with the
    shared W, |W| whose right-hand factors carry the per-ball diagonals (one product for all balls), or, for large
    layers with mostly stable neurons, per ball over its live and unstable neurons only; A is formed only when
    ``right`` is much wider than m.

    Args:
        B: (2m, n) shared rows; alpha, s: (N, n) slopes; right: (n, c) (W_j, or W_0 on the perturbed coordinates);
        vec: (n,) or (N, n) (b_j, or the centres c0).

    Returns:
        (N, 2m) and (N, 2m, c).
    """
    m = B.shape[0] // 2
    n, nn = s.shape
    cols = right.shape[1]
    w, wa, sig, delta = B[:m], B[:m].abs(), alpha + s, alpha - s
    live, unst = sig != 0, delta != 0
    path = _choose_path(m, n, nn, cols, int(live.sum() + unst.sum()))
    if path == "formed":
        A = torch.where(B >= 0, alpha[:, None, :], s[:, None, :]).mul_(B)
        return (A @ vec if vec.ndim == 1 else _mv(A, vec)), A @ right
    per_ball = path == "per-ball"
    P, Q = (sig * vec) @ w.T, (delta * vec) @ wa.T
    cv = torch.cat([P + Q, Q - P], dim=1) * 0.5
    out = torch.empty(n, 2 * m, cols, dtype=B.dtype, device=B.device)
    if not per_ball:
        xs = (sig.T[:, :, None] * right[:, None, :]).reshape(nn, n * cols)
        xd = (delta.T[:, :, None] * right[:, None, :]).reshape(nn, n * cols)
        P, Q = (w @ xs).reshape(m, n, cols).transpose(0, 1), (wa @ xd).reshape(m, n, cols).transpose(0, 1)
        torch.add(P, Q, out=out[:, :m])
        torch.sub(Q, P, out=out[:, m:])
        return cv, out.mul_(0.5)
    for i in range(n):
        li, ui = torch.nonzero(live[i]).squeeze(1), torch.nonzero(unst[i]).squeeze(1)
        P = w[:, li] @ (sig[i, li, None] * right[li])
        Q = wa[:, ui] @ (delta[i, ui, None] * right[ui])
        torch.add(P, Q, out=out[i, :m])
        torch.sub(Q, P, out=out[i, m:])
    return cv, out.mul_(0.5)


def _acc(c: torch.Tensor, mag: torch.Tensor | None, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``c + delta`` in float64, and the running sum of magnitudes (float32 margins)."""
    delta = delta.double()
    return c + delta, None if mag is None else mag + delta.abs()


def _backsub(k: int, B: torch.Tensor, c: torch.Tensor, relax: list, ctx: _Context, ball: InputBall) -> torch.Tensor:
    """A lower bound of ``lam_r . z_k`` over ball i for rows with ``lam_r W_k = B_r`` and ``lam_r . b_k = c_ir``.

    B: shared (R, n_{k-1}) or per ball (N, R, n_{k-1}) in ``ctx.prec.dtype``; c: (N, R) float64; relax[j] relaxes
    layer j's ReLU. Going down, at each layer j the relaxation ``A = B+ diag(alpha) + B- diag(s)``,
    ``c += B- t`` (with ``A = B * where(B >= 0, alpha, s)``, never forming B+ and B-, or not even A for the
    shared first rows: :func:`_shared_step`), then ``c += A b_j`` and ``B = A W_j`` (one matrix product for all
    balls and rows); at the input ``c + A c0 - eps ||A W_0m||_q``. In
    float32 the result is lowered by a bound on every rounding error (the module docstring).
    """
    prec = ctx.prec
    err = torch.zeros_like(c) if prec.sound32 else None
    mag = c.abs() if prec.sound32 else None
    for j in range(k - 1, -1, -1):
        alpha, s, t = relax[j]
        if err is not None:
            err = err + _abs_mv(B, ctx.e[j], prec) + ctx.uf[j]
        right, vec = (ctx.weights[j], ctx.biases[j]) if j > 0 else (ctx.w0m, ctx.c0)
        if B.ndim == 2:
            c, mag = _acc(c, mag, t @ B.clamp_max(0).T)
            cv, B = _shared_step(B, alpha, s, right, vec)
        else:
            c, mag = _acc(c, mag, _mv(B.clamp_max(0), t))
            A = torch.where(B >= 0, alpha[:, None, :], s[:, None, :]).mul_(B)
            cv, B = (A @ vec if j > 0 else _mv(A, vec)), A @ right
        if j > 0:
            c, mag = _acc(c, mag, cv)
    return _finish(c, mag, err, cv, _spread(B, ball.eps, ball.p, prec))


def _finish(c: torch.Tensor, mag: torch.Tensor | None, err: torch.Tensor | None, cen: torch.Tensor,
            spread: torch.Tensor) -> torch.Tensor:
    """``c + cen - spread``, lowered in float32 mode by ``err`` and by float64's own rounding (``1e-12`` of the
    magnitudes summed, far above ``(number of additions) * 2^-53``)."""
    low = c + cen.double() - spread
    if err is None:
        return low
    return low - err * (1 + 1e-9) - 1e-12 * (mag + cen.double().abs() + spread) - 1e-300


def crown_bounds(net: ReluNetwork, ball: InputBall, *, ibp: LayerBounds | None = None,
                 max_elements: int = 2 ** 24, dtype: torch.dtype = torch.float64,
                 margin_sign: torch.Tensor | None = None) -> LayerBounds:
    """CROWN bounds on every layer (intersected with IBP's); see the module docstring.

    Args:
        net: the network.
        ball: N input balls.
        ibp: IBP bounds for the same balls (computed when None).
        max_elements: memory cap on the back-substitution tensors (the balls are chunked to fit).
        dtype: ``torch.float64`` (default) or ``torch.float32``: the large tensors in single precision, every bound
            lowered (raised) by a rigorous bound on its rounding errors, so still sound (the module docstring).
            float32 falls back to float64 when float32 matrix products are not IEEE single precision
            (TF32 or bfloat16 products allowed by torch's matmul precision settings).
        margin_sign: optional (N,) signs: CROWN then bounds only ``sign_i * margin`` from below (the lower bound of
            the margin where the sign is positive, its upper bound where negative); the other side is IBP's.
            Hidden layers always get both bounds.

    Returns:
        float64 bounds (whatever ``dtype``).
    """
    _check(net, ball)
    if ibp is None:
        ibp = ibp_bounds(net, ball)
    prec = _precision(dtype, ball.x0.device)
    if prec.sound32:
        ibp = _widen_ibp(net, ball, ibp)
    ctx = _Context.build(net, ball, prec)
    n = ball.x0.shape[0]
    widest = max(max(w.shape) for w in net.weights)
    step = max(1, max_elements // (2 * widest * widest))
    lowers, uppers = [ibp.lower[0].clone()], [ibp.upper[0].clone()]
    relax: list = []
    for k in range(1, len(net.weights)):
        relax.append(_relax(lowers[k - 1], uppers[k - 1], prec))
        ctx.add_layer(net, k - 1, lowers[k - 1], uppers[k - 1], relax[-1])
        sign = margin_sign if k == len(net.weights) - 1 else None
        B, c = _rows(net, k, ctx, sign, n)
        low = torch.empty(c.shape, dtype=torch.float64, device=c.device)
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            Bs = B if B.ndim == 2 else B[sl]
            low[sl] = _backsub(k, Bs, c[sl], [tuple(r[sl] for r in rl) for rl in relax], ctx.chunk(sl),
                               ball.chunk(sl))
        lo_k, up_k = _split_rows(low, sign, net.weights[k].shape[0])
        lowers.append(torch.maximum(lo_k, ibp.lower[k]))
        uppers.append(torch.minimum(up_k, ibp.upper[k]))
    return LayerBounds(lowers, uppers)


def _rows(net: ReluNetwork, k: int, ctx: _Context, sign: torch.Tensor | None,
          n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``lam W_k`` and ``lam . b_k`` for layer k: ``lam = [I; -I]`` (shared, both bounds of every
    neuron), or ``lam_i = sign_i`` (one output, per ball)."""
    w, b = ctx.weights[k], net.biases[k]
    if sign is None:
        return torch.cat([w, -w]), torch.cat([b, -b])[None, :].expand(n, -1)
    sg = sign.to(device=b.device, dtype=torch.float64).reshape(n, 1)
    return sg.to(w.dtype)[:, :, None] * w[None], sg * b[None, :]


def _split_rows(low: torch.Tensor, sign: torch.Tensor | None, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) from the rows of :func:`_rows` (-inf / +inf where a sign asked for the other side)."""
    if sign is None:
        return low[:, :m], -low[:, m:]
    pos = sign.to(low.device).reshape(-1, 1) > 0
    inf = torch.full_like(low, math.inf)
    return torch.where(pos, low, -inf), torch.where(pos, inf, -low)


def pure_crown_margin(net: ReluNetwork, ball: InputBall, bounds: LayerBounds) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's CROWN bounds alone (not intersected with IBP), from given hidden-layer bounds (tests)."""
    k = len(net.weights) - 1
    if k == 0:
        low, high = linear_range(net.weights[0], net.biases[0][None, :].expand(ball.x0.shape[0], -1), ball)
        return low[:, 0], high[:, 0]
    prec = _precision(torch.float64, ball.x0.device)
    ctx = _Context.build(net, ball, prec)
    relax = [_relax(bounds.lower[j], bounds.upper[j], prec) for j in range(k)]
    B, c = _rows(net, k, ctx, None, ball.x0.shape[0])
    low = _backsub(k, B, c, relax, ctx, ball)
    return low[:, 0], -low[:, 1]


def margin_bound_with_slopes(net: ReluNetwork, ball: InputBall, bounds: LayerBounds, sign: torch.Tensor,
                             alphas: list[torch.Tensor], *, dtype: torch.dtype = torch.float64,
                             max_elements: int = 2 ** 24) -> torch.Tensor:
    """A sound lower bound on ``sign_i * margin`` over ball i with given lower slopes on the unstable neurons.

    The back-substitution of :func:`crown_bounds` for the last layer (rows ``lam_i = sign_i``), from the
    hidden-layer bounds ``bounds`` (kept as they are), with the lower relaxation ``alpha_j z <= relu(z)`` of each
    unstable neuron taken from ``alphas`` instead of CROWN's 0 or 1. Valid for any slopes: the values are made
    finite (NaN to 0) and clamped to [0, 1], where ``alpha z <= relu(z)`` holds on all of R, so the result is a
    lower bound whatever produced them (alpha-CROWN's optimiser, :mod:`.alpha`); stable neurons keep their exact
    slopes. In float32 (``dtype``) the rounding margins of the module docstring apply unchanged (they use
    ``max(alpha, s)``, valid for any alpha in [0, 1]).

    Args:
        net: the network (at least one hidden layer).
        ball: N balls.
        bounds: sound pre-activation bounds of every hidden layer over the same balls (e.g. :func:`crown_bounds`).
        sign: (N,) signs +-1 (which side of the margin).
        alphas: per hidden layer j, (N, n_j) lower slopes (only the unstable neurons' entries are used).
        dtype: ``torch.float64`` (default) or ``torch.float32`` (sound, with margins; as in :func:`crown_bounds`).
        max_elements: memory cap (the balls are chunked to fit).

    Returns:
        (N,) float64 lower bounds.
    """
    _check(net, ball)
    k = len(net.weights) - 1
    if k == 0 or len(alphas) != k:
        raise ValueError(f"need one slope tensor per hidden layer ({k}), got {len(alphas)}")
    prec = _precision(dtype, ball.x0.device)
    ctx = _Context.build(net, ball, prec)
    relax: list = []
    for j in range(k):
        lo, up = bounds.lower[j], bounds.upper[j]
        a0, s, t = _relax(lo, up, prec)
        a = torch.nan_to_num(alphas[j].to(device=a0.device, dtype=prec.dtype), nan=0.0).clamp(0.0, 1.0)
        relax.append((torch.where((lo < 0) & (up > 0), a, a0), s, t))
        ctx.add_layer(net, j, lo, up, relax[-1])
    n = ball.x0.shape[0]
    B, c = _rows(net, k, ctx, sign, n)
    step = max(1, max_elements // (4 * max(max(w.shape) for w in net.weights)))
    low = torch.empty(n, dtype=torch.float64, device=c.device)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        low[sl] = _backsub(k, B[sl], c[sl], [tuple(r[sl] for r in rl) for rl in relax], ctx.chunk(sl),
                           ball.chunk(sl))[:, 0]
    return low
