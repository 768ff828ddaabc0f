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

All computations are in float64 on the network's device and batched over the N balls (chunked to bound memory).
Rounding in float64 is far below the verifier's tolerances.

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

__all__ = ["InputBall", "LayerBounds", "ibp_bounds", "crown_bounds", "linear_range"]


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


def _relaxation(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear bounds ``lo_slope z <= relu(z) <= up_slope z + up_shift`` valid on [lo, up]."""
    active = lo >= 0
    unstable = (lo < 0) & (up > 0)
    denom = torch.where(unstable, up - lo, torch.ones_like(up))
    s = torch.where(unstable, up / denom, active.to(up.dtype))
    t = torch.where(unstable, -s * lo, torch.zeros_like(up))
    alpha = torch.where(unstable, (up >= -lo).to(up.dtype), active.to(up.dtype))
    return alpha, s, t


def _backsub(net: ReluNetwork, k: int, lam: torch.Tensor, relax: list, ball: InputBall) -> torch.Tensor:
    """Lower bound of ``lam_i . z_k`` over ball i (lam: (N, m, n_k)); relax[j] relaxes layer j's ReLU."""
    const = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
    A = lam
    for j in range(k, 0, -1):
        const = const + A @ net.biases[j]
        A = A @ net.weights[j]
        alpha, s, t = relax[j - 1]
        pos, neg = A.clamp_min(0), A.clamp_max(0)
        const = const + torch.einsum("nmk,nk->nm", neg, t)
        A = pos * alpha[:, None, :] + neg * s[:, None, :]
    const = const + A @ net.biases[0]
    A = A @ net.weights[0]
    low, _ = linear_range(A, const, ball)
    return low


def crown_bounds(net: ReluNetwork, ball: InputBall, *, ibp: LayerBounds | None = None,
                 max_elements: int = 2 ** 24) -> LayerBounds:
    """CROWN bounds on every layer (intersected with IBP's); see the module docstring.

    Args:
        net: the network.
        ball: N input balls.
        ibp: IBP bounds for the same balls (computed when None).
        max_elements: memory cap on the back-substitution matrices (rows of the batch are chunked to fit).
    """
    _check(net, ball)
    if ibp is None:
        ibp = ibp_bounds(net, ball)
    n = ball.x0.shape[0]
    widest = max(max(w.shape) for w in net.weights)
    step = max(1, max_elements // (2 * widest * widest))
    lowers = [ibp.lower[0].clone()]
    uppers = [ibp.upper[0].clone()]
    for k in range(1, len(net.weights)):
        m = net.weights[k].shape[0]
        lo_k = torch.empty(n, m, dtype=torch.float64, device=ball.x0.device)
        up_k = torch.empty_like(lo_k)
        eye = torch.eye(m, dtype=torch.float64, device=ball.x0.device)
        lam0 = torch.cat([eye, -eye], dim=0)
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            relax = [_relaxation(lowers[j][sl], uppers[j][sl]) for j in range(k)]
            sub = ball.chunk(sl)
            lam = lam0.expand(sub.x0.shape[0], -1, -1)
            low = _backsub(net, k, lam, relax, sub)
            lo_k[sl], up_k[sl] = low[:, :m], -low[:, m:]
        lowers.append(torch.maximum(lo_k, ibp.lower[k]))
        uppers.append(torch.minimum(up_k, ibp.upper[k]))
    return LayerBounds(lowers, uppers)


def pure_crown_margin(net: ReluNetwork, ball: InputBall, bounds: LayerBounds) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's CROWN bounds alone (not intersected with IBP), from given hidden-layer bounds (tests)."""
    k = len(net.weights) - 1
    relax = [_relaxation(bounds.lower[j], bounds.upper[j]) for j in range(k)]
    eye = torch.eye(1, dtype=torch.float64, device=ball.x0.device)
    lam = torch.cat([eye, -eye], dim=0).expand(ball.x0.shape[0], -1, -1)
    if k == 0:
        low, high = linear_range(net.weights[0], net.biases[0][None, :].expand(ball.x0.shape[0], -1), ball)
        return low[:, 0], high[:, 0]
    low = _backsub(net, k, lam, relax, ball)
    return low[:, 0], -low[:, 1]
