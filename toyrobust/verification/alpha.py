"""alpha-CROWN: CROWN's lower ReLU slopes optimised per point for a tighter bound on the margin.

CROWN (:mod:`.bounds`) bounds ``sign * m(x)`` over the ball ``B`` by back-substituting the row ``lam = sign W_L``
through the layers, relaxing each unstable ReLU (``l < 0 < u``) by ``alpha z <= relu(z) <= s (z - l)``,
``s = u / (u - l)``, and minimising the resulting linear function of the input exactly over the ball::

    g(alpha) = c(alpha) + A_0(alpha) c_0 - eps ||A_0(alpha) W_0 restricted to the perturbed coordinates||_q,

with ``A_j = B_j+ diag(alpha_j) + B_j- diag(s_j)``, ``B_j = A_{j+1} W_{j+1}``, ``c`` collecting ``A_j b_j`` and
``B_j- t_j`` (``t_j = -s_j l_j``), ``c_0 = W_0 x_0 + b_0`` and q the dual exponent of the ball's p (``||.||_1`` for
Linf, ``||.||_2`` for L2, ``||.||_inf`` for L1). CROWN fixes ``alpha`` at 1 where ``u >= -l`` and 0 otherwise.
alpha-CROWN (Xu et al. 2021) treats every unstable neuron's ``alpha`` as a free variable in [0, 1] and maximises
``g`` by projected gradient ascent (Adam, then clipping to [0, 1]), separately for every point (the points share
nothing, so the sum of their bounds is ascended in one batch), keeping the hidden layers' bounds ``[l, u]`` that
CROWN computed. For one output and fixed intermediate bounds, ``max_alpha g`` equals the optimum of the LP with
the triangle relaxation (Salman et al. 2019): the lower slopes are that LP's dual variables.

**Soundness.** For ``l < 0 < u`` and any ``alpha`` in [0, 1], ``alpha z <= relu(z)`` for every real z (z >= 0:
``alpha z <= z``; z < 0: ``alpha z <= 0``), so CROWN's argument gives a valid lower bound for *every* such
``alpha``, given valid bounds [l, u] on the hidden layers, which are CROWN's own and unchanged. The optimisation
itself runs in float32 without rounding control (it only *chooses* slopes; its value is never used). After it, the
chosen slopes are made finite and clamped to [0, 1] (exact in floating point) and the bound is recomputed by
:func:`.bounds.margin_bound_with_slopes`, in float64 (what :func:`~toyrobust.verify` uses everywhere) or in float32
with its rigorous rounding margins; only that recomputed value, maximised with CROWN's own (both are lower
bounds), may certify a point.

**Cost.** One output row per point: each iteration is a forward and a backward pass through a chain of
(N, n_j) x (n_j, n_{j-1}) products, about three times a forward pass of the network on N points. Points whose
bound already exceeds their target leave the batch (as in Xu et al.), and the loop stops at a time budget.

References:
    K. Xu, H. Zhang, S. Wang, Y. Wang, S. Jana, X. Lin, C.-J. Hsieh, "Fast and complete: enabling complete
    neural network verification with rapid and massively parallel incomplete verifiers", ICLR 2021.
    H. Salman, G. Yang, H. Zhang, C.-J. Hsieh, P. Zhang, "A convex relaxation barrier to tight robustness
    verification of neural networks", NeurIPS 2019.
    D. P. Kingma, J. Ba, "Adam: a method for stochastic optimization", ICLR 2015.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from .bounds import InputBall, LayerBounds, margin_bound_with_slopes
from .network import ReluNetwork

__all__ = ["AlphaCrownOptions", "AlphaCrownResult", "alpha_crown_margin", "alpha_options"]


@dataclass(frozen=True)
class AlphaCrownOptions:
    """Settings of alpha-CROWN.

    Attributes:
        iterations: Adam steps at most (0: CROWN's slopes only, recomputed).
        lr: Adam's step size on the slopes (they live in [0, 1]).
        time_limit: seconds for the optimisation of one call (all points together); checked every iteration.
        dtype: of the sound recomputation (``torch.float64``, or ``torch.float32`` with rounding margins).
    """

    iterations: int = 40
    lr: float = 0.25
    time_limit: float = 60.0
    dtype: torch.dtype = torch.float64


def stage_options(value: Any, cls: type, name: str) -> Any:
    """A bound stage's options from :func:`~toyrobust.verify`'s argument ``name``: True (``cls()``), False or None
    (None: the stage is off), a dict of ``cls``'s fields, or a ``cls``; unknown keys and other types raise."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        allowed = [f.name for f in fields(cls)]
        unknown = set(value) - set(allowed)
        if unknown:
            raise ValueError(f"{name}: unknown options {sorted(unknown)}; allowed: {', '.join(allowed)}")
        return cls(**value)
    raise TypeError(f"{name} must be True, False, None, a dict or {cls.__name__}, got {value!r}")


def alpha_options(value: Any) -> AlphaCrownOptions | None:
    """:func:`~toyrobust.verify`'s ``alpha_crown``: True (defaults), False or None (off), a dict of
    :class:`AlphaCrownOptions` fields, or an :class:`AlphaCrownOptions`."""
    opts = stage_options(value, AlphaCrownOptions, "alpha_crown")
    if opts is None:
        return None
    it, lr, tl = opts.iterations, opts.lr, opts.time_limit
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"alpha_crown iterations must be an int >= 0, got {it!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"alpha_crown lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(tl, (int, float)) and tl >= 0):
        raise ValueError(f"alpha_crown time_limit must be a number >= 0, got {tl!r}")
    if opts.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"alpha_crown dtype must be torch.float32 or torch.float64, got {opts.dtype}")
    return opts


@dataclass
class AlphaCrownResult:
    """What :func:`alpha_crown_margin` returns.

    Attributes:
        lower: (N,) float64 sound lower bounds on ``sign * margin`` (the recomputed ones, at least CROWN's).
        recomputed: (N,) float64 the sound recomputation with the optimised slopes alone.
        alphas: per hidden layer, (N, n_j) the slopes used (clamped to [0, 1]).
        iterations: Adam steps taken; seconds: wall time of the whole call.
    """

    lower: torch.Tensor
    recomputed: torch.Tensor
    alphas: list[torch.Tensor]
    iterations: int
    seconds: float


@dataclass
class _Problem:
    """The float32 data of the optimisation on the model's device: per hidden layer j the upper slope ``s[j]`` and
    shift ``t[j]``, the unstable mask ``free[j]`` and CROWN's slopes ``alpha0[j]`` (N, n_j); the weights and
    biases, the centres ``c0`` (N, n_0), ``W_0`` on the perturbed coordinates ``w0m``; the rows ``lam`` (N, n_{L-1})
    and constants ``cl`` (N,) of ``sign * margin``; the radius (float or (N, 1)) and p."""

    s: list[torch.Tensor]
    t: list[torch.Tensor]
    free: list[torch.Tensor]
    alpha0: list[torch.Tensor]
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    c0: torch.Tensor
    w0m: torch.Tensor
    lam: torch.Tensor
    cl: torch.Tensor
    eps: float | torch.Tensor
    p: float

    @classmethod
    def build(cls, net: ReluNetwork, ball: InputBall, bounds: LayerBounds, sign: torch.Tensor) -> _Problem:
        f = torch.float32
        s, t, free, alpha0 = [], [], [], []
        for lo, up in zip(bounds.lower[:-1], bounds.upper[:-1]):
            unst = (lo < 0) & (up > 0)
            sl = torch.where(unst, up / torch.where(unst, up - lo, torch.ones_like(up)), (lo >= 0).to(up.dtype))
            s.append(sl.to(f))
            t.append(torch.where(unst, -sl * lo, torch.zeros_like(lo)).to(f))
            free.append(unst)
            alpha0.append(torch.where(unst, (up >= -lo).to(f), (lo >= 0).to(f)))
        sg = sign.to(device=net.device, dtype=torch.float64).reshape(-1, 1)
        eps = ball.eps.to(f) if isinstance(ball.eps, torch.Tensor) else float(ball.eps)
        w0 = net.weights[0][:, ball.mask] if bool(ball.mask.any()) else net.weights[0][:, :1] * 0
        return cls(s, t, free, alpha0, [w.to(f) for w in net.weights], [b.to(f) for b in net.biases],
                   (ball.x0 @ net.weights[0].T + net.biases[0]).to(f), w0.to(f), (sg * net.weights[-1]).to(f),
                   (sg[:, 0] * net.biases[-1][0]).to(f), eps, ball.p)

    def take(self, rows: torch.Tensor) -> _Problem:
        """The sub-problem of the points ``rows``."""
        eps = self.eps[rows] if isinstance(self.eps, torch.Tensor) else self.eps
        return _Problem([v[rows] for v in self.s], [v[rows] for v in self.t], [v[rows] for v in self.free],
                        [v[rows] for v in self.alpha0], self.weights, self.biases, self.c0[rows], self.w0m,
                        self.lam[rows], self.cl[rows], eps, self.p)


def _bound(prob: _Problem, alphas: list[torch.Tensor]) -> torch.Tensor:
    """The CROWN lower bound ``g(alpha)`` (N,) in float32, differentiable in the slopes (the module docstring):
    going down, ``c += B- . t_j``, ``A = B * where(B >= 0, alpha_j, s_j)``, ``c += A . b_j``, ``B = A W_j``;
    at the input ``c + A . c0 - eps ||A W_0m||_q``."""
    B, c = prob.lam, prob.cl
    for j in range(len(alphas) - 1, -1, -1):
        a = torch.where(prob.free[j], alphas[j], prob.alpha0[j])
        c = c + (B.clamp_max(0) * prob.t[j]).sum(1)
        A = B * torch.where(B >= 0, a, prob.s[j])
        if j > 0:
            c = c + A @ prob.biases[j]
            B = A @ prob.weights[j]
        else:
            c = c + (A * prob.c0).sum(1)
            B = A @ prob.w0m
    if prob.p == math.inf:
        nrm = B.abs().sum(1)
    elif prob.p == 1:
        nrm = B.abs().amax(1)
    else:
        nrm = torch.linalg.vector_norm(B, dim=1)
    eps = prob.eps[:, 0] if isinstance(prob.eps, torch.Tensor) else prob.eps
    return c - eps * nrm


def _optimise(prob: _Problem, target: torch.Tensor, opts: AlphaCrownOptions) -> tuple[list[torch.Tensor], int]:
    """Projected Adam ascent of ``sum_i g_i(alpha)`` from CROWN's slopes (Kingma & Ba 2015, beta = (0.9, 0.999)),
    each point keeping its best slopes; a point leaves the batch once its float32 bound exceeds ``target_i``.
    Returns the best slopes per hidden layer (N, n_j) and the number of steps."""
    deadline = time.perf_counter() + opts.time_limit
    best = [a.clone() for a in prob.alpha0]
    with torch.no_grad():
        best_val = _bound(prob, best)
    live = torch.nonzero(best_val <= target).squeeze(1)
    cur, sub = [a[live].clone() for a in best], prob.take(live)
    adam = ProjectedAdam(cur, opts.lr, lambda ps: [p.clamp_(0.0, 1.0) for p in ps])
    steps = 0
    while steps < opts.iterations and live.numel() and time.perf_counter() < deadline:
        steps += 1
        for a in cur:
            a.requires_grad_(True)
        val = _bound(sub, cur)
        grads = torch.autograd.grad(val.sum(), cur)
        with torch.no_grad():
            better = val > best_val[live]
            best_val[live] = torch.where(better, val, best_val[live])
            for j, a in enumerate(cur):
                best[j][live] = torch.where(better[:, None], a, best[j][live])
            cur = [a.detach() for a in cur]
            adam.step(cur, grads)
            keep = torch.nonzero(best_val[live] <= target[live]).squeeze(1)
            if keep.numel() < live.numel():
                live, sub = live[keep], sub.take(keep)
                cur = [v[keep] for v in cur]
                adam.keep(keep)
    if live.numel():  # the last step's slopes were never evaluated
        with torch.no_grad():
            val = _bound(sub, cur)
            better = val > best_val[live]
            for j, a in enumerate(cur):
                best[j][live] = torch.where(better[:, None], a, best[j][live])
    return best, steps


class ProjectedAdam:
    """Projected Adam ascent (Kingma & Ba 2015, beta = (0.9, 0.999)) on per-point parameters (one row per point)
    whose batch shrinks as points leave (:meth:`keep`); ``project(params)`` puts them back in their ranges in place
    after each step."""

    def __init__(self, params: list[torch.Tensor], lr: float, project: Callable[[list[torch.Tensor]], Any]) -> None:
        self.m1 = [torch.zeros_like(p) for p in params]
        self.m2 = [torch.zeros_like(p) for p in params]
        self.lr, self.project, self.t = lr, project, 0

    def step(self, params: list[torch.Tensor], grads: tuple[torch.Tensor, ...]) -> None:
        """One ascent step on ``params`` (detached, updated in place) along ``grads``."""
        self.t += 1
        c1, c2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        for p, g, m1, m2 in zip(params, grads, self.m1, self.m2):
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            p.add_(self.lr * (m1 / c1) / ((m2 / c2).sqrt() + 1e-8))
        self.project(params)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the moments of the points ``rows`` only."""
        self.m1 = [m[rows] for m in self.m1]
        self.m2 = [m[rows] for m in self.m2]


def alpha_crown_margin(net: ReluNetwork, ball: InputBall, bounds: LayerBounds, sign: torch.Tensor,
                       crown_lower: torch.Tensor, *, options: AlphaCrownOptions | None = None,
                       target: torch.Tensor | None = None) -> AlphaCrownResult:
    """A sound lower bound on ``sign_i * m(x)`` over ball i, CROWN's slopes optimised (the module docstring).

    Args:
        net: a ReLU network with at least one hidden layer.
        ball: N balls (p = inf, 1 or 2; float64 centres on the network's device).
        bounds: sound bounds of every hidden layer over the same balls (CROWN's; kept fixed).
        sign: (N,) +-1: which side of the margin is bounded from below.
        crown_lower: (N,) CROWN's lower bound of ``sign * m`` (the result is never below it).
        options: :class:`AlphaCrownOptions` (None: the defaults).
        target: (N,) a point stops being optimised once its float32 bound exceeds this (None: never).

    Returns:
        :class:`AlphaCrownResult`; ``lower`` is the only value that may certify.
    """
    t0 = time.perf_counter()
    opts = options or AlphaCrownOptions()
    if not net.hidden_sizes:
        raise ValueError("alpha-CROWN needs a network with at least one hidden layer")
    n = ball.x0.shape[0]
    if target is None:
        target = torch.full((n,), math.inf, device=net.device)
    prob = _Problem.build(net, ball, bounds, sign)
    alphas, steps = _optimise(prob, target.to(device=net.device, dtype=torch.float32), opts)
    alphas = [a.clamp(0.0, 1.0) for a in alphas]
    again = margin_bound_with_slopes(net, ball, bounds, sign, alphas, dtype=opts.dtype)
    lower = torch.maximum(again, crown_lower.to(again))
    return AlphaCrownResult(lower, again, alphas, steps, time.perf_counter() - t0)
