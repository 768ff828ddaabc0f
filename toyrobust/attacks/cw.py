"""The Carlini-Wagner L2 attack: minimum-norm adversarial examples by penalised optimisation.

For each point it minimises ``||delta||_2^2 + c * max(y m(x + delta) + kappa, 0)`` with Adam (``m`` the margin,
``kappa`` the confidence), and searches the trade-off constant ``c`` per sample: multiplied by 10 until an
adversarial point is found, then bisected. The smallest adversarial perturbation seen is kept, and finally
shortened along its own ray by bisection (forward passes only). With ``bounds = (lo, hi)`` the iterate is
``lo + (hi - lo) (tanh(w) + 1) / 2`` (the box change of variables); toy data need no box, so by default
``x + delta`` is optimised directly.

References:
    N. Carlini, D. Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017 (seed 004).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ..threats import ThreatModel
from .base import AttackResult
from .losses import check_inputs, check_int, check_threat, eval_mode, finish, loss_labels, success_from_margin

__all__ = ["carlini_wagner_l2"]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(float(value)) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def carlini_wagner_l2(
    clf: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None = None,
    *,
    steps: int = 200,
    search_steps: int = 9,
    c_init: float = 1.0,
    lr: float = 0.05,
    confidence: float = 0.0,
    bounds: tuple[float, float] | None = None,
    targeted: bool = False,
    refine_steps: int = 30,
    definition: str = "ball",
    dist: Any = None,
    generator: Any = None,
) -> AttackResult:
    """Carlini-Wagner L2: the smallest L2 perturbation that makes ``f(x + delta) != y``.

    ``min_delta ||delta||_2^2 + c max(y m(x + delta) + kappa, 0)`` by ``steps`` Adam steps (learning rate
    decayed by a cosine schedule) for each of ``search_steps`` values of ``c`` (per sample: ``c <- 10 c``
    until success, then bisection between the largest failing and smallest succeeding ``c``). Success of an
    iterate is judged under ``definition``; the shortest successful perturbation is kept, then shortened along
    its ray by ``refine_steps`` bisection steps.

    Args:
        clf: classifier or torch module (one or two logits).
        x: (N, d) clean points.
        y: (N,) labels in {-1, +1} (target labels with ``targeted``).
        threat: optional ball (positional, as in every attack's calling convention, or keyword); the returned
            points are projected into it and succeed only if still adversarial there (a minimum norm above eps
            fails). Norms are in its norm (L2 without a threat).
        steps: Adam steps per value of c (>= 1).
        search_steps: number of values of c tried (>= 1).
        c_init: first c (> 0).
        lr: Adam learning rate (> 0), in the units of x (or of the tanh variable with bounds).
        confidence: kappa >= 0, the margin beyond the boundary asked for.
        bounds: optional ``(lo, hi)`` box the points must stay in; x must lie in it.
        targeted: move towards the labels ``y``.
        refine_steps: bisection steps shortening the best perturbation along its ray (>= 0).
        definition: adversarial-example definition for success.
        dist: the distribution (projection and error-region definitions).
        generator: unused (deterministic); accepted for the common calling convention.

    Returns:
        :class:`AttackResult`; ``x_raw`` holds the shortest adversarial point found before the projection into
        the threat ball (the clean point where none was found).

    References:
        Carlini & Wagner 2017.
    """
    clf, x, y_true = check_inputs(clf, x, y, definition, dist, targeted)
    threat = check_threat(threat, allow_none=True)
    steps = check_int("steps", steps, 1)
    search_steps = check_int("search_steps", search_steps, 1)
    refine_steps = check_int("refine_steps", refine_steps, 0)
    c_init, lr = _positive("c_init", c_init), _positive("lr", lr)
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not (
            math.isfinite(float(confidence)) and confidence >= 0):
        raise ValueError(f"confidence must be a finite number >= 0, got {confidence!r}")
    if bounds is not None:
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2 and float(bounds[0]) < float(bounds[1])):
            raise ValueError(f"bounds must be None or a pair (lo, hi) with lo < hi, got {bounds!r}")
        lo_b, hi_b = float(bounds[0]), float(bounds[1])
        if x.numel() and (float(x.min()) < lo_b or float(x.max()) > hi_b):
            raise ValueError(f"x must lie inside bounds={bounds!r}, got values in [{float(x.min())}, {float(x.max())}]")
    n = x.shape[0]
    if n == 0:
        return finish(clf, x, y_true, x, threat, definition, dist, 0, x_raw=x)

    if bounds is None:
        w0 = torch.zeros_like(x)

        def to_x(w: torch.Tensor) -> torch.Tensor:
            return x + w
    else:
        half = (hi_b - lo_b) / 2
        w0 = torch.atanh(((x - lo_b) / half - 1).clamp(-1 + 1e-6, 1 - 1e-6))

        def to_x(w: torch.Tensor) -> torch.Tensor:
            return lo_b + half * (torch.tanh(w) + 1)

    with eval_mode(clf):
        y_loss, clean_pred = loss_labels(definition, clf, x, y_true, dist)
        ys = torch.where(y_loss > 0, 1.0, -1.0).to(x.dtype)
        c = torch.full((n,), c_init, dtype=x.dtype, device=x.device)
        c_lo = torch.zeros_like(c)
        c_hi = torch.full_like(c, math.inf)
        best_norm = torch.full_like(c, math.inf)
        best_x = x.clone()
        b1, b2, tiny = 0.9, 0.999, 1e-12
        grad_evals = 0
        for _ in range(search_steps):
            w = w0.clone()
            m1, m2 = torch.zeros_like(w), torch.zeros_like(w)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for it in range(steps):
                wg = w.requires_grad_(True)
                with torch.enable_grad():
                    xa = to_x(wg)
                    margin = clf.margin(xa)
                    l2sq = ((xa - x) ** 2).sum(1)
                    obj = l2sq + c * (ys * margin + confidence).clamp_min(0)
                    (g,) = torch.autograd.grad(obj.sum(), wg)
                grad_evals += n
                xa, margin, l2sq = xa.detach(), margin.detach(), l2sq.detach()
                succ = success_from_margin(definition, margin, xa, y_true, dist, clean_pred)
                if confidence > 0:
                    succ = succ & (ys * margin <= -confidence)
                nrm = l2sq.sqrt()
                improve = succ & (nrm < best_norm)
                best_norm = torch.where(improve, nrm, best_norm)
                best_x = torch.where(improve[:, None], xa, best_x)
                found |= succ
                # Adam with bias correction and a cosine-decayed learning rate
                t = it + 1
                m1 = b1 * m1 + (1 - b1) * g
                m2 = b2 * m2 + (1 - b2) * g * g
                step = lr * 0.5 * (1 + math.cos(math.pi * it / steps))
                w = w.detach() - step * (m1 / (1 - b1**t)) / ((m2 / (1 - b2**t)).sqrt() + tiny)
            c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
            c = torch.where(torch.isfinite(c_hi), (c_lo + c_hi) / 2, c * 10)
        best_x = _shorten(clf, x, best_x, torch.isfinite(best_norm), refine_steps, definition, y_true, dist,
                          clean_pred, confidence, ys)
        return finish(clf, x, y_true, best_x, threat, definition, dist, grad_evals, x_raw=best_x)


def _shorten(clf, x, xb, found, steps, definition, y_true, dist, clean_pred, confidence, ys) -> torch.Tensor:
    """Bisect ``s`` in [0, 1] for the shortest adversarial ``x + s (xb - x)``, rows with a success only."""
    if steps == 0 or not bool(found.any()):
        return xb
    lo = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    d = xb - x
    with torch.no_grad():
        for _ in range(steps):
            mid = (lo + hi) / 2
            z = x + mid[:, None] * d
            margin = clf.margin(z)
            ok = success_from_margin(definition, margin, z, y_true, dist, clean_pred)
            if confidence > 0:
                ok = ok & (ys * margin <= -confidence)
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    return torch.where(found[:, None], x + hi[:, None] * d, xb)
