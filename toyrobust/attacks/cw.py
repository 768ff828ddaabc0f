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
from typing import Any

import torch

from ..constraints import check_number, check_positive_float, nonnegative
from ..threats import ThreatModel
from .base import Attack, AttackResult
from .losses import check_int, finish, loss_labels, success_from_margin

__all__ = ["CarliniWagnerL2", "carlini_wagner_l2"]


def _check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2 and float(bounds[0]) < float(bounds[1])):
        raise ValueError(f"bounds must be None or a pair (lo, hi) with lo < hi, got {bounds!r}")
    return float(bounds[0]), float(bounds[1])


class CarliniWagnerL2(Attack):
    """Carlini-Wagner L2: the smallest L2 perturbation that makes ``f(x + delta) != y``.

    ``min_delta ||delta||_2^2 + c max(y m(x + delta) + kappa, 0)`` by ``steps`` Adam steps (learning rate
    decayed by a cosine schedule) for each of ``search_steps`` values of ``c`` (per sample: ``c <- 10 c``
    until success, then bisection between the largest failing and smallest succeeding ``c``). Success of an
    iterate is judged under the definition; the shortest successful perturbation is kept, then shortened along
    its ray by ``refine_steps`` bisection steps. With a threat, the returned points are projected into it and
    succeed only if still adversarial there (a minimum norm above eps fails); without one (``threat=None``) the
    norms are L2. ``x_raw`` holds the shortest adversarial point found before the projection (the clean point
    where none was found).

    Args:
        steps: Adam steps per value of c (>= 1).
        search_steps: number of values of c tried (>= 1).
        c_init: first c (> 0).
        lr: Adam learning rate (> 0), in the units of x (or of the tanh variable with bounds).
        confidence: kappa >= 0, the margin beyond the boundary asked for.
        bounds: optional ``(lo, hi)`` box the points must stay in; x must lie in it.
        targeted: move towards the labels ``y``.
        refine_steps: bisection steps shortening the best perturbation along its ray (>= 0).

    References:
        N. Carlini, D. Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017.
    """

    name = "carlini_wagner_l2"
    aliases = ("cw", "carlini-wagner")
    targeted_option = "targeted"
    needs_threat = False

    def __init__(self, *, steps: int = 200, search_steps: int = 9, c_init: float = 1.0, lr: float = 0.05,
                 confidence: float = 0.0, bounds: tuple[float, float] | None = None, targeted: bool = False,
                 refine_steps: int = 30) -> None:
        if not isinstance(targeted, bool):
            raise TypeError(f"targeted must be a bool, got {targeted!r}")
        self._set_options(steps=check_int("steps", steps, 1), search_steps=check_int("search_steps", search_steps, 1),
                          c_init=check_positive_float("c_init", c_init), lr=check_positive_float("lr", lr),
                          confidence=check_number("confidence", confidence, nonnegative),
                          bounds=_check_bounds(bounds), targeted=targeted,
                          refine_steps=check_int("refine_steps", refine_steps, 0))

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        if self.bounds is not None:
            lo_b, hi_b = self.bounds
            if float(x.min()) < lo_b or float(x.max()) > hi_b:
                raise ValueError(f"x must lie inside bounds={self.bounds!r}, got values in "
                                 f"[{float(x.min())}, {float(x.max())}]")
        y_loss, clean_pred = loss_labels(definition, clf, x, y, dist)
        ys = torch.where(y_loss > 0, 1.0, -1.0).to(x.dtype)
        succeeds = _success_test(clf, definition, y, dist, clean_pred, self.confidence, ys)
        best_x, best_norm, grad_evals = self._search(clf, x, ys, succeeds)
        best_x = _shorten(clf, x, best_x, torch.isfinite(best_norm), self.refine_steps, succeeds)
        return finish(clf, x, y, best_x, threat, definition, dist, grad_evals, x_raw=best_x)

    def _search(self, clf, x, ys, succeeds):
        """The search over c with Adam inside: (shortest adversarial points, their norms, gradient evaluations)."""
        n = x.shape[0]
        to_x, w0 = _change_of_variables(x, self.bounds)
        c = torch.full((n,), self.c_init, dtype=x.dtype, device=x.device)
        c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, math.inf)
        best_norm, best_x = torch.full_like(c, math.inf), x.clone()
        b1, b2, tiny = 0.9, 0.999, 1e-12
        grad_evals = 0
        for _ in range(self.search_steps):
            w = w0.clone()
            m1, m2 = torch.zeros_like(w), torch.zeros_like(w)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for it in range(self.steps):
                wg = w.requires_grad_(True)
                with torch.enable_grad():
                    xa = to_x(wg)
                    margin = clf.margin(xa)
                    l2sq = ((xa - x) ** 2).sum(1)
                    obj = l2sq + c * (ys * margin + self.confidence).clamp_min(0)
                    (g,) = torch.autograd.grad(obj.sum(), wg)
                grad_evals += n
                xa, margin, nrm = xa.detach(), margin.detach(), l2sq.detach().sqrt()
                succ = succeeds(margin, xa)
                improve = succ & (nrm < best_norm)
                best_norm = torch.where(improve, nrm, best_norm)
                best_x = torch.where(improve[:, None], xa, best_x)
                found |= succ
                # Adam with bias correction and a cosine-decayed learning rate
                t = it + 1
                m1 = b1 * m1 + (1 - b1) * g
                m2 = b2 * m2 + (1 - b2) * g * g
                step = self.lr * 0.5 * (1 + math.cos(math.pi * it / self.steps))
                w = w.detach() - step * (m1 / (1 - b1**t)) / ((m2 / (1 - b2**t)).sqrt() + tiny)
            c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
            c = torch.where(torch.isfinite(c_hi), (c_lo + c_hi) / 2, c * 10)
        return best_x, best_norm, grad_evals


def _change_of_variables(x: torch.Tensor, bounds: tuple[float, float] | None):
    """``(to_x, w0)``: the map from the optimised variable to points, and its value at ``x`` (tanh in a box)."""
    if bounds is None:
        return (lambda w: x + w), torch.zeros_like(x)
    lo_b, hi_b = bounds
    half = (hi_b - lo_b) / 2
    w0 = torch.atanh(((x - lo_b) / half - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    return (lambda w: lo_b + half * (torch.tanh(w) + 1)), w0


def _success_test(clf, definition, y_true, dist, clean_pred, confidence, ys):
    """``succeeds(margin, z)``: adversarial under the definition, with the requested confidence beyond it."""

    def succeeds(margin: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ok = success_from_margin(definition, margin, z, y_true, dist, clean_pred)
        return ok & (ys * margin <= -confidence) if confidence > 0 else ok

    return succeeds


def carlini_wagner_l2(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel | None = None, *,
                      steps: int = 200, search_steps: int = 9, c_init: float = 1.0, lr: float = 0.05,
                      confidence: float = 0.0, bounds: tuple[float, float] | None = None, targeted: bool = False,
                      refine_steps: int = 30, definition: str = "ball", dist: Any = None,
                      generator: Any = None) -> AttackResult:
    """Carlini-Wagner L2 as a function: ``CarliniWagnerL2(**options).run(...)`` (see :class:`CarliniWagnerL2`).

    Args:
        clf: classifier or torch module (one or two logits).
        x: (N, d) clean points; y: (N,) labels in {-1, +1} (target labels with ``targeted``).
        threat: optional ball (positional, as in every attack's calling convention, or keyword).
        steps, search_steps, c_init, lr, confidence, bounds, targeted, refine_steps: see :class:`CarliniWagnerL2`.
        definition: adversarial-example definition for success.
        dist: the distribution (projection and error-region definitions).
        generator: unused (deterministic); accepted for the common calling convention.
    """
    attack = CarliniWagnerL2(steps=steps, search_steps=search_steps, c_init=c_init, lr=lr, confidence=confidence,
                             bounds=bounds, targeted=targeted, refine_steps=refine_steps)
    return attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)


def _shorten(clf, x, xb, found, steps, succeeds) -> torch.Tensor:
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
            ok = succeeds(clf.margin(z), z)
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    return torch.where(found[:, None], x + hi[:, None] * d, xb)
