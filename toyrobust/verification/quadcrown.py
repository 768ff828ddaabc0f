"""Quad-CROWN: CROWN with quadratic relaxations of the first hidden layer, minimised exactly over an L2 ball.

CROWN (:mod:`.bounds`) and alpha-CROWN (:mod:`.alpha`) bound ``sign * m(x0 + delta)`` over ``||delta||_2 <= eps``
by one *linear* relaxation per unstable ReLU. On a wide first layer that is loose by construction: at the
minimiser every unstable neuron sits on its upper chord at the same input, near the centre of its range, which no
input can do (in D = 500 a direction of length eps moves each ``w_i . delta`` by about ``eps ||w_i|| / sqrt(D)``,
not ``eps ||w_i||``). On the cross-check's 500-1000-1000-1 spheres network the bound stays about 35 below the
margins sampled in the balls, whatever the slopes.

Here the first hidden layer's upper relaxations are *quadratic*. With the rows of the later layers
back-substituted by CROWN (lower slopes ``alpha`` in [0, 1], upper chords), the margin is bounded below by
``K + sum_i nu_i relu(z_i)``, ``z = c + W delta`` (``c = W x0 + b``; only the perturbed coordinates' columns of
``W``). For ``nu_i >= 0`` the lower relaxation ``alpha_i z <= relu(z)`` stays; for ``nu_i < 0`` (an upper bound on
``relu`` is needed) ``relu(z) <= U_i(z)`` with the convex combination, weight ``theta_i`` in [0, 1], of

* ``s (z - l) - rho (z - l)(u - z)``, ``s = u / (u - l)``, ``0 <= rho <= min(u, -l) / (u - l)^2``: the chord
  minus a parabola, above relu on ``[l, u]`` (it is 0 and u at the ends, where its slopes are >= 0 and <= 1);
* ``A z^2 + B z + max(B^2, (B - 1)^2) / (4 A)``, ``A > 0``, ``0 <= B <= 1``: above relu on all of R (its
  discriminants against 0 and against z are <= 0); with ``B = 1/2``, ``A = 1 / (4 tau)`` it is
  ``relu(z) + (|z| - tau)^2 / (4 tau)``, tangent at ``|z| = tau``.

The bound is then ``K' + g . t - sum_i h_i t_i^2`` in ``t = W delta`` with ``h >= 0``: a concave quadratic
``g' . delta - delta^T H delta``, ``H = W^T diag(h) W``, whose minimum over the ball is a trust-region subproblem,
solved exactly (eigendecomposition of H and the secular equation). The coupling lives in H: the neurons share
``delta``, so ``sum_i h_i t_i^2 <= eps^2 lambda_max(H)``, not ``eps^2 sum_i h_i ||w_i||^2``. This is the
Lagrangian form of the moment (Shor) relaxation of the first layer (:mod:`.moments` builds it as a semidefinite
cone for the small dimensions of the branch and bound); here it scales to D = 500, one eigendecomposition at a
time. Chiu et al. (2025, SDP-CROWN) add such l2 coupling to bound propagation with one scalar per layer; the
quadratic relaxations here are per neuron and the ball is handled exactly.

**Optimisation.** Every parameter (``alpha`` of every hidden layer, and ``theta, rho, A, B`` of the first layer's
neurons) is chosen per point by projected Adam ascent of the bound at the subproblem's minimiser (Danskin: the
gradient of a minimum over a fixed set is the objective's gradient at the minimiser), started from CROWN's slopes
and tangency at each neuron's centre (``tau = |c_i|``). Between steps the minimiser is followed by the fixed-point
iteration ``delta <- -eps grad / ||grad||`` (each step decreases a concave objective on the sphere); only the
final certificate decomposes H.

**Soundness.** Every relaxation above holds for any parameters in their ranges; the final parameters are made
finite and clamped into them (``rho`` and the constant of the second family carry a relative ``1e-12`` of room for
their rounding), with valid pre-activation bounds (CROWN's, unchanged). The subproblem's value is bounded below by
weak duality: for ``lambda > lambda_max(H)``, ``min_{||d|| <= eps} g.d - d^T H d >= Q(d) - ||r||^2 / (4 (lambda -
lambda_max(H)))`` for *any* d, with ``Q(d) = g.d + d^T (lambda I - H) d - lambda eps^2`` and ``r = grad Q(d)``
evaluated with H itself (not its eigenvectors), and ``lambda_max(H)`` taken as the computed one plus the
eigensolver's backward error ``8 m 2^-52 max|eig|``. All of it runs in float64 (as CROWN does for
:func:`~toyrobust.verify`); a relative ``1e-9`` of the terms' magnitude is subtracted for the rounding of the sums.

References:
    H.-M. Chiu, H. Chen, H. Zhang, R. Y. Zhang, "SDP-CROWN: efficient bound propagation for neural network
    verification with tightness of semidefinite programming", ICML 2025.
    A. Raghunathan, J. Steinhardt, P. Liang, "Semidefinite relaxations for certifying robustness to adversarial
    examples", NeurIPS 2018.
    H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient neural network robustness certification
    with general activation functions" (CROWN), NeurIPS 2018.
    J. J. More, D. C. Sorensen, "Computing a trust region step", SIAM J. Sci. Stat. Comput. 4(3), 1983.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from .alpha import ProjectedAdam, stage_options
from .bounds import InputBall, LayerBounds
from .network import ReluNetwork

__all__ = ["QuadCrownOptions", "QuadCrownResult", "hair_inside", "quad_crown_margin", "quad_options",
           "trust_region_lower"]


@dataclass(frozen=True)
class QuadCrownOptions:
    """Settings of Quad-CROWN.

    Attributes:
        iterations: Adam steps at most per point (0: the starting parameters only).
        lr: Adam's step size (on ``alpha``, ``theta``, ``rho`` / its maximum and ``B`` in [0, 1]; on ``log tau``).
        time_limit: seconds per point (checked before each Adam step).
        max_dim: the most perturbed coordinates (H is max_dim x max_dim and decomposed once per point).
        branch_share: the share of :func:`~toyrobust.verify`'s per-point ``time_limit`` given to the branch and
            bound with Quad-CROWN bounds (:mod:`.quadbab`) on what the stage leaves open, before the SOCP branch
            and bound gets the rest (0: off; it never runs with ``method="bounds"``).
        branch_iterations: Adam steps per leaf of that branch and bound; branch_batch: leaves split per round.
    """

    iterations: int = 40
    lr: float = 0.1
    time_limit: float = 5.0
    max_dim: int = 2048
    branch_share: float = 0.5
    branch_iterations: int = 20
    branch_batch: int = 256


def quad_options(value: Any) -> QuadCrownOptions | None:
    """:func:`~toyrobust.verify`'s ``quad_crown``: True (defaults), False or None (off), a dict of
    :class:`QuadCrownOptions` fields, or a :class:`QuadCrownOptions`."""
    opts = stage_options(value, QuadCrownOptions, "quad_crown")
    if opts is None:
        return None
    for name, least in (("iterations", 0), ("max_dim", 0), ("branch_iterations", 0), ("branch_batch", 1)):
        v = getattr(opts, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"quad_crown {name} must be an int >= {least}, got {v!r}")
    share = opts.branch_share
    if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 <= share <= 1):
        raise ValueError(f"quad_crown branch_share must be a number in [0, 1], got {share!r}")
    if not (isinstance(opts.lr, (int, float)) and math.isfinite(opts.lr) and opts.lr > 0):
        raise ValueError(f"quad_crown lr must be a finite number > 0, got {opts.lr!r}")
    if not (isinstance(opts.time_limit, (int, float)) and opts.time_limit >= 0):
        raise ValueError(f"quad_crown time_limit must be a number >= 0, got {opts.time_limit!r}")
    return opts


@dataclass
class QuadCrownResult:
    """What :func:`quad_crown_margin` returns.

    Attributes:
        lower: (N,) float64 proven lower bounds on ``sign * margin``.
        x_min: (N, d) float64 the subproblems' minimisers ``x0 + delta`` (candidate counterexamples; ``x0`` where
            none).
        iterations: Adam steps taken, summed over the points; seconds: wall time of the call.
    """

    lower: torch.Tensor
    x_min: torch.Tensor
    iterations: int
    seconds: float


def trust_region_lower(g: torch.Tensor, H: torch.Tensor, eps: float) -> tuple[float, torch.Tensor]:
    """A proven lower bound on ``min {g . d - d^T H d : ||d||_2 <= eps}`` and a minimiser (the module docstring).

    Args:
        g: (m,) float64; H: (m, m) float64 symmetric positive semidefinite; eps: the radius (>= 0).

    Returns:
        ``(bound, d)``: the weak-duality bound at the secular equation's root (More & Sorensen 1983) and the
        point d (m,) on the sphere (inside it in the hard case).
    """
    eps_t = torch.tensor([float(eps)], dtype=torch.float64, device=g.device)
    bound, d = _trust_region_batch(g[None], H[None], eps_t)
    return float(bound[0]), d[0]


def _trust_region_batch(g: torch.Tensor, H: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`trust_region_lower` for a batch: g (B, m), H (B, m, m), eps (B,); returns bounds (B,) and d (B, m)."""
    m = g.shape[1]
    a, V = torch.linalg.eigh(H)
    a_max = a[:, -1]
    err = 8 * m * 2.0 ** -52 * a.abs().amax(1) + 1e-300  # eigh's backward error moves eigenvalues this much
    gh = (V.transpose(1, 2) @ g[:, :, None])[:, :, 0]
    gap = a_max[:, None] - a  # >= 0

    def norm_at(s: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(gh / (2 * (gap + s[:, None])), dim=1)

    lo = 2 * err + 1e-12 * a_max.abs() + 1e-300
    hi = lo + torch.linalg.vector_norm(g, dim=1) / (2 * eps.clamp_min(1e-300))
    inside = norm_at(lo) <= eps  # the hard case (or eps = 0): lambda at lambda_max
    for _ in range(80):  # bisection in log scale: ||d(s)|| decreases in s
        mid = torch.sqrt(lo * hi)
        far = norm_at(mid) > eps
        lo, hi = torch.where(far, mid, lo), torch.where(far, hi, mid)
    s = torch.where(inside, 2 * err + 1e-12 * a_max.abs() + 1e-300, hi)
    lam = a_max + s
    d = -(V @ (gh / (2 * (gap + s[:, None])))[:, :, None])[:, :, 0]
    Md = lam[:, None] * d - (H @ d[:, :, None])[:, :, 0]
    q = (g * d).sum(1) + (d * Md).sum(1) - lam * eps ** 2
    r = g + 2 * Md
    return q - (r * r).sum(1) / (4 * (lam - a_max - err)), d


def hair_inside(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """``delta`` (N, m) scaled into ``||delta|| <= eps (1 - 1e-6)`` (a minimiser on the sphere, pulled a hair
    inside so that the model's dtype keeps it in the ball; eps a float or (N, 1))."""
    n = torch.linalg.vector_norm(delta, dim=1, keepdim=True).clamp_min(1e-300)
    return delta * (eps * (1 - 1e-6) / n).clamp_max(1.0)


@dataclass
class _Batch:
    """B points' data (float64): per hidden layer the bounds ``lo``/``up`` (B, n_j); the first layer's centres
    ``c`` (B, n_0); the rows ``lam`` (B, n_{L-1}) and constants ``cl`` (B,) of ``sign * margin``; the radii
    ``eps`` (B,); shared: the first layer's weights on the perturbed coordinates ``w0m`` (n_0, m), the weights and
    biases. ``split`` (the branch and bound's leaves, :mod:`.quadbab`): per hidden layer (B, n_j) signs ``s`` in
    {-1, 0, 1}, the leaf being the part of the ball where ``s z >= 0`` (its ``lo``/``up`` already cut at 0); the
    parameters then end with one multiplier ``beta >= 0`` per neuron and layer."""

    lo: list[torch.Tensor]
    up: list[torch.Tensor]
    c: torch.Tensor
    lam: torch.Tensor
    cl: torch.Tensor
    eps: torch.Tensor
    w0m: torch.Tensor
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    split: list[torch.Tensor] | None = None

    def take(self, rows: torch.Tensor) -> _Batch:
        return _Batch([t[rows] for t in self.lo], [t[rows] for t in self.up], self.c[rows], self.lam[rows],
                      self.cl[rows], self.eps[rows], self.w0m, self.weights, self.biases,
                      None if self.split is None else [t[rows] for t in self.split])

    def cat(self, other: _Batch) -> _Batch:
        """These rows, then ``other``'s (the same network; both with ``split`` or both without)."""
        return _Batch([torch.cat(t) for t in zip(self.lo, other.lo)], [torch.cat(t) for t in zip(self.up, other.up)],
                      torch.cat([self.c, other.c]), torch.cat([self.lam, other.lam]), torch.cat([self.cl, other.cl]),
                      torch.cat([self.eps, other.eps]), self.w0m, self.weights, self.biases,
                      None if self.split is None else [torch.cat(t) for t in zip(self.split, other.split)])


def _start(bt: _Batch) -> list[torch.Tensor]:
    """CROWN's lower slopes per hidden layer, then the first layer's ``theta = 0``, ``rho = 1`` (of its maximum),
    ``log tau = log |c|`` (tangent at the centre) and ``B = 1/2``, each (B, n_j); with ``split``, ``beta = 0``."""
    alphas = [(u >= -lo).to(torch.float64) for lo, u in zip(bt.lo, bt.up)]
    tau = torch.maximum(bt.c.abs(), 1e-3 * (bt.up[0] - bt.lo[0]) + 1e-12)
    one = torch.ones_like(bt.c)
    betas = [] if bt.split is None else [torch.zeros_like(t) for t in bt.split]
    return alphas + [0 * one, one.clone(), torch.log(tau), 0.5 * one] + betas


def _project(params: list[torch.Tensor], layers: int) -> None:
    """Clamp every parameter into its range in place (NaN to the range's start); ``layers`` hidden layers."""
    for n, p in enumerate(params):
        p = torch.nan_to_num_(p, nan=0.0)
        if n == layers + 2:  # log tau
            p.clamp_(-60.0, 60.0)
        elif n >= layers + 4:  # the multipliers of the splits
            p.clamp_(min=0.0)
        else:
            p.clamp_(0.0, 1.0)


def _pieces(bt: _Batch, params: list[torch.Tensor], trace: list[Any] | None = None) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bound ``K + g . t - sum h t^2`` in ``t = W0m delta`` (module docstring): ``(K, g, h, mag)``, (B,),
    (B, n_0), (B, n_0), (B,), ``mag`` the magnitude of the terms summed (for the rounding allowance).
    Differentiable in ``params``. With ``split``, each leaf adds ``-beta s z`` (>= 0 dropped, by weak duality) to
    the coefficients of its pre-activations. ``trace`` (a list) receives per hidden layer the coefficients of its
    ReLU outputs (B, n_j), then the first layer's upper relaxation ``(q2, q1, q0, upper, lin)`` (for branching)."""
    n_layers = len(bt.lo)
    alphas, (th, r, lt, bb) = params[:n_layers], params[n_layers:n_layers + 4]
    betas = params[n_layers + 4:]
    B, k, mag = bt.lam, bt.cl, bt.cl.abs()
    coefs = [B] * n_layers
    for j in range(n_layers - 1, 0, -1):  # the later layers: CROWN's linear relaxations
        lo, up = bt.lo[j], bt.up[j]
        coefs[j] = B
        unst = (lo < 0) & (up > 0)
        s = torch.where(unst, up / torch.where(unst, up - lo, torch.ones_like(up)), (lo >= 0).to(up.dtype))
        a = torch.where(unst, alphas[j], (lo >= 0).to(up.dtype))
        shift = torch.where(unst & (B < 0), -B * s * lo, torch.zeros_like(B))
        A = B * torch.where(B >= 0, a, s)
        if betas:
            A = A - betas[j] * bt.split[j]
        k = k + shift.sum(1) + A @ bt.biases[j]
        mag = mag + shift.abs().sum(1) + (A * bt.biases[j]).abs().sum(1)
        B = A @ bt.weights[j]
    nu, lo, up, c = B, bt.lo[0], bt.up[0], bt.c
    coefs[0] = nu
    unst = (lo < 0) & (up > 0)
    upper = unst & (nu < 0)
    width = torch.where(unst, up - lo, torch.ones_like(up))
    s = torch.where(unst, up / width, torch.zeros_like(up))
    rho = torch.minimum(up, -lo).clamp_min(0) / width ** 2 * r * (1 - 1e-12)
    qa = torch.exp(-lt) / 4
    qc = torch.maximum(bb ** 2, (bb - 1) ** 2) / (4 * qa) * (1 + 1e-12)
    # U(z) = q2 z^2 + q1 z + q0 on the upper neurons; -(z - l)(u - z) = z^2 - (u + l) z + u l
    q2 = th * rho + (1 - th) * qa
    q1 = th * (s - rho * (up + lo)) + (1 - th) * bb
    q0 = th * (-s * lo + rho * up * lo) + (1 - th) * qc
    lin = torch.where(lo >= 0, torch.ones_like(lo), torch.where(unst, alphas[0], torch.zeros_like(lo)))
    # in t = z - c: U = q2 t^2 + (2 q2 c + q1) t + (q2 c^2 + q1 c + q0)
    g = torch.where(upper, nu * (2 * q2 * c + q1), nu * lin)
    const = torch.where(upper, nu * (q2 * c ** 2 + q1 * c + q0), nu * lin * c)
    h = torch.where(upper, -nu * q2, torch.zeros_like(nu))
    mag = mag + (nu.abs() * (q2 * c ** 2 + q1.abs() * c.abs() + q0.abs() + lin * c.abs())).sum(1)
    if betas:
        bs = betas[0] * bt.split[0]
        g, const, mag = g - bs, const - bs * c, mag + (bs * c).abs().sum(1)
    if trace is not None:
        trace += [*coefs, (q2, q1, q0, upper, lin)]
    return k + const.sum(1), g, h, mag


def _follow(bt: _Batch, g: torch.Tensor, h: torch.Tensor, d: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """A few fixed-point steps ``d <- -eps grad / ||grad||`` of the concave ``g . Wd - sum h (Wd)^2`` on the
    sphere (each one decreases it), from d (B, m)."""
    W = bt.w0m
    for _ in range(steps):
        grad = (g - 2 * h * (d @ W.T)) @ W
        n = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
        d = torch.where(n > 0, -bt.eps[:, None] * grad / n.clamp_min(1e-300), d)
    return d


def _certify(bt: _Batch, params: list[torch.Tensor], chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The proven lower bounds (B,) at ``params`` (projected first) and the subproblems' minimisers (B, m); H is
    formed for ``chunk`` points at a time."""
    with torch.no_grad():
        params = [p.detach().clone() for p in params]
        _project(params, len(bt.lo))
        k, g, h, mag = _pieces(bt, params)
        W = bt.w0m
        gw = g @ W
        vals, ds = [], []
        for a in range(0, g.shape[0], chunk):
            sl = slice(a, a + chunk)
            H = W.T[None] @ (h[sl, :, None] * W[None])
            v, d = _trust_region_batch(gw[sl], H, bt.eps[sl])
            vals.append(v)
            ds.append(d)
        val = torch.cat(vals)
        slack = 1e-9 * (mag + bt.eps * torch.linalg.vector_norm(gw, dim=1) + val.abs())
        return k + val - slack, torch.cat(ds)


def _optimise(bt: _Batch, target: torch.Tensor, iterations: int, lr: float, deadline: float,
              start: list[torch.Tensor] | None = None,
              certify_start: bool = True) -> tuple[torch.Tensor, torch.Tensor, int, list[torch.Tensor]]:
    """Projected Adam ascent of every point's bound (module docstring) from ``start`` (None: :func:`_start`);
    returns the best certified bounds (B,), their minimisers (B, m), the Adam steps taken (summed over the points)
    and the parameters reached (those of the points certified above their targets on the way are left as they
    were). A point is certified at the start (unless ``certify_start`` is False and there are steps to take: the
    followed minimiser then starts against the linear term's gradient), when its followed value first passes its
    target (then every 10 steps while the certificate stays below: the followed minimiser is not exact; it leaves
    the batch once certified above), and at the end."""
    chunk = max(1, 2 ** 24 // max(1, bt.w0m.shape[1] ** 2))
    params = _start(bt) if start is None else [p.clone() for p in start]
    if certify_start or iterations == 0:
        bound, d_best = _certify(bt, params, chunk)
    else:  # one eigendecomposition fewer per point: the end's certificate is the only one
        with torch.no_grad():
            gw = _pieces(bt, params)[1] @ bt.w0m
            n = torch.linalg.vector_norm(gw, dim=1, keepdim=True)
            d_best = -bt.eps[:, None] * gw / n.clamp_min(1e-300)
        bound = torch.full_like(bt.eps, -math.inf)
    live = torch.nonzero(bound <= target).squeeze(1)
    if iterations == 0 or live.numel() == 0:
        return bound, d_best, 0, params
    sub, cur = bt.take(live), [p[live] for p in params]
    d, adam = d_best[live], ProjectedAdam(cur, lr, functools.partial(_project, layers=len(bt.lo)))
    best, best_val = [p.clone() for p in cur], torch.full((live.numel(),), -math.inf, dtype=torch.float64)
    next_check = torch.zeros(live.numel(), dtype=torch.long)
    steps = work = 0
    while steps < iterations and live.numel() and time.perf_counter() < deadline:
        steps += 1
        work += live.numel()
        for p in cur:
            p.requires_grad_(True)
        k, g, h, _ = _pieces(sub, cur)
        with torch.no_grad():
            d = _follow(sub, g, h, d)
        t = d @ sub.w0m.T
        val = k + (g * t).sum(1) - (h * t * t).sum(1)
        grads = torch.autograd.grad(val.sum(), cur)
        with torch.no_grad():
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best = [torch.where(better[:, None], p, b) for p, b in zip(cur, best)]
            cur = [p.detach() for p in cur]
            adam.step(cur, grads)
            check = (best_val > target[live]) & (next_check <= steps)
            if bool(check.any()) or steps == iterations:
                rows = torch.nonzero(check | (steps == iterations)).squeeze(1)
                got, d_got = _certify(sub.take(rows), [b[rows] for b in best], chunk)
                up = got > bound[live[rows]]
                bound[live[rows]] = torch.where(up, got, bound[live[rows]])
                d_best[live[rows]] = torch.where(up[:, None], d_got, d_best[live[rows]])
                next_check[rows] = steps + 10
                keep = bound[live] <= target[live]
                if not bool(keep.all()):
                    idx = torch.nonzero(keep).squeeze(1)
                    live, sub, d, best_val = live[idx], sub.take(idx), d[idx], best_val[idx]
                    next_check = next_check[idx]
                    cur, best = [p[idx] for p in cur], [b[idx] for b in best]
                    adam.keep(idx)
    if live.numel() and steps < iterations:  # stopped by the deadline: certify what is left
        got, d_got = _certify(sub, best, chunk)
        up = got > bound[live]
        bound[live] = torch.where(up, got, bound[live])
        d_best[live] = torch.where(up[:, None], d_got, d_best[live])
    for p, b in zip(params, best):
        p[live] = b
    return bound, d_best, work, params


def quad_crown_margin(net: ReluNetwork, ball: InputBall, bounds: LayerBounds, sign: torch.Tensor,
                      target: torch.Tensor, options: QuadCrownOptions | None = None) -> QuadCrownResult:
    """Proven lower bounds on ``sign_i * margin`` over L2 balls by Quad-CROWN (module docstring), in batches.

    Args:
        net: the network (at least one hidden layer).
        ball: N L2 balls (``p = 2``) with at most ``options.max_dim`` perturbed coordinates.
        bounds: sound pre-activation bounds of the hidden layers over the same balls (CROWN's).
        sign: (N,) signs +-1; target: (N,) a point stops optimising once its bound exceeds its target.
        options: :class:`QuadCrownOptions` (defaults when None).

    Returns:
        :class:`QuadCrownResult`.
    """
    opts = options or QuadCrownOptions()
    t0 = time.perf_counter()
    n, k = ball.x0.shape[0], len(net.weights) - 1
    if ball.p != 2 or k == 0:
        raise ValueError(f"Quad-CROWN needs an L2 ball and a hidden layer, got p={ball.p} and {k} hidden layers")
    lower = torch.full((n,), -math.inf, dtype=torch.float64)
    x_min = ball.x0.detach().to("cpu", torch.float64).clone()
    mask = ball.mask.to(net.device)
    m = int(mask.sum())
    if not 0 < m <= opts.max_dim:  # nothing perturbed (CROWN is exact), or H too large
        return QuadCrownResult(lower, x_min, 0, time.perf_counter() - t0)
    dev = net.device
    x0 = ball.x0.to(dev, torch.float64)
    eps = (ball.eps.reshape(-1).to(dev, torch.float64) if isinstance(ball.eps, torch.Tensor)
           else torch.full((n,), float(ball.eps), dtype=torch.float64, device=dev))
    sg = sign.to(dev, torch.float64)
    full = _Batch([t.to(dev) for t in bounds.lower[:-1]], [t.to(dev) for t in bounds.upper[:-1]],
                  x0 @ net.weights[0].T + net.biases[0], sg[:, None] * net.weights[-1][0][None],
                  sg * net.biases[-1][0], eps, net.weights[0][:, mask], net.weights, net.biases)
    target = target.to(dev, torch.float64)
    size = max(1, min(256, 2 ** 22 // max(1, max(max(w.shape) for w in net.weights) * 8)))
    total = 0
    for a in range(0, n, size):
        rows = torch.arange(a, min(n, a + size), device=dev)
        deadline = time.perf_counter() + opts.time_limit * rows.numel()
        val, d, work, _ = _optimise(full.take(rows), target[rows], opts.iterations, opts.lr, deadline)
        total += work
        lower[a:a + rows.numel()] = val.cpu()
        x_min[a:a + rows.numel(), mask.cpu()] += d.cpu()
    return QuadCrownResult(lower, x_min, total, time.perf_counter() - t0)
