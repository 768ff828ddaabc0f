"""The robust logistic loss of a linear model: the inner maximum of adversarial training in closed form.

For ``f(x) = <w, x> + b`` and labels y in {-1, +1}, the logistic loss ``log(1 + exp(-y f(x)))`` increases as
``y <w, delta>`` decreases, and ``min_{||delta||_p <= eps} y <w, delta> = -eps ||w_S||_q`` (Hoelder, attained
by the dual-norm maximiser ``delta* = -y * steepest_ascent(w)``). Hence

    max_{||delta||_p <= eps} log(1 + exp(-y (<w, x + delta> + b))) = log(1 + exp(-y (<w, x> + b) + eps ||w_S||_q)),

so adversarial training of a linear model needs no attack (seed 004, "an excursion into adversarial
robustness"; Goodfellow et al. 2015, section 5).
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
import torch.nn.functional as F

from ..blocks import as_blocks, point_symbols
from ..constraints import is_symbolic
from ..threats import ThreatModel

__all__ = ["robust_logistic_loss", "robust_logistic_loss_expr", "worst_case_perturbation"]


def _check_threat(threat: Any) -> None:
    if threat is not None and not isinstance(threat, ThreatModel):
        raise TypeError(f"threat must be a toyrobust threat model (Linf, L2, L1) or None, got {threat!r}")


def robust_logistic_loss(w: torch.Tensor, b: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel | None,
                         reduction: str = "mean") -> torch.Tensor:
    """``log(1 + exp(-y (<w, x> + b) + eps ||w_S||_q))``: the worst-case logistic loss over the threat's ball.

    Differentiable in ``w``, ``b`` and ``x`` (softplus, so large margins neither overflow nor saturate to an
    exactly zero gradient before float rounding does). ``threat=None`` gives the plain logistic loss.

    Args:
        w: weights, shape (d,).
        b: bias, a number or a 0-d tensor.
        x: inputs, shape (N, d), same device as ``w``.
        y: labels in {-1, +1}, shape (N,).
        threat: Linf, L2 or L1 ball (optionally on coordinates S; the dual norm is taken over S), or None.
        reduction: "mean", "sum" or "none" (per-sample losses of shape (N,)).

    Returns:
        the loss (0-d tensor, or shape (N,) for ``reduction="none"``).

    References:
        Seed 004 ("an excursion into adversarial robustness", the closed-form inner max); Goodfellow et al.,
        "Explaining and harnessing adversarial examples", ICLR 2015.
    """
    _check_threat(threat)
    if not isinstance(w, torch.Tensor) or w.ndim != 1:
        raise ValueError(f"w must be a 1-D torch tensor of shape (d,), got {getattr(w, 'shape', type(w))}")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"x must be a torch tensor of shape (N, {w.shape[0]}), got {getattr(x, 'shape', type(x))}")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a torch tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', type(y))}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    y = y.to(dtype=x.dtype)
    z = -y * (x @ w + b)
    if threat is not None:
        eps = threat.radius
        z = z + eps * threat.dual_norm(w.unsqueeze(0))[0]
    loss = F.softplus(z)
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def worst_case_perturbation(w: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """The maximiser ``delta* = -y * argmax_{||d||_p <= eps, d_S^c = 0} <d, w>`` of the inner problem, (N, d).

    ``<w, delta*> = -y eps ||w_S||_q`` row by row (the dual-norm maximiser of the threat model).

    Args:
        w: weights, shape (d,).
        y: labels in {-1, +1}, shape (N,).
        threat: the threat model.
    """
    _check_threat(threat)
    step = threat.steepest_ascent(w.detach().unsqueeze(0))
    return -y.to(dtype=w.dtype).unsqueeze(1) * step


def robust_logistic_loss_expr(w: Any, b: Any = 0, y: Any = 1, threat: ThreatModel | None = None,
                              x: Any = None) -> sympy.Expr:
    """The robust logistic loss as a sympy expression: ``log(1 + exp(-y (<w, x> + b) + eps ||w_S||_q))``.

    Args:
        w: weights (sequence or :class:`~toyrobust.blocks.Blocks`; entries and dimension may be symbolic).
        b: bias.
        y: the label (+1, -1 or a symbol).
        threat: the threat model (``eps`` may be a symbol), or None.
        x: a symbolic point (default: symbols ``x_1..x_d``, or an IndexedBase for a symbolic dimension).
    """
    _check_threat(threat)
    wb = as_blocks(w, "w")
    x = point_symbols(wb.dim) if x is None else x
    z = -y * (wb.dot_expr(x) + b)
    if threat is not None:
        inside = wb if threat.coords is None else wb.restrict(threat.coords)[0]
        norm = inside.norm(threat.q)
        z = z + threat.eps * (sympy.sympify(norm) if not is_symbolic(norm) else norm)
    return sympy.log(1 + sympy.exp(z))
