"""Auto-PGD (APGD): PGD with momentum and a step size halved at checkpoints where progress stalls.

Written as one file against the attack protocol (:class:`~toyrobust.attacks.base.Attack`): defining the class
registers it as ``"apgd"``, so :func:`toyrobust.estimate_risk`, the cross-check, sweeps and training accept it by name.

The iteration (Croce & Hein 2020, Algorithm 1), with ``P`` the projection onto the ball and ``s`` the threat's
steepest-ascent direction (``sign`` for Linf, ``g / ||g||_2`` for L2)::

    x1 = P(x0 + eta s(grad f(x0)))
    z_{k+1} = P(x_k + eta s(grad f(x_k)))
    x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1}))        alpha = 0.75

starting from ``eta = 2 eps``. At the checkpoints ``w_j = ceil(p_j N)``, ``p_0 = 0``, ``p_1 = 0.22``,
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, a row halves its step size and restarts from its best point
when (1) the loss increased in fewer than ``rho = 0.75`` of the steps since the last checkpoint, or (2) neither its
step size nor its best loss changed since the last checkpoint. Everything is per row; a row stops at its first
point that is adversarial under the definition (a definition-aware success, as for PGD).

References:
    F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML 2020.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..rng import make_generator
from .base import Attack
from .gradient import _check_flag, _input_grad
from .losses import check_int, check_loss, finish, loss_labels, success_from_margin

__all__ = ["APGD", "apgd", "checkpoints"]

_MOMENTUM = 0.75
_RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """The iterations ``w_j = ceil(p_j N)`` at which APGD may halve its step size (Croce & Hein 2020, eq. 4)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # a tolerance keeps p_j N = 57.000000001 at 57 (the p_j are sums of decimals)
    return sorted({math.ceil(q * steps - 1e-9) for q in p if q <= 1 + 1e-12} - {0})


class APGD(Attack):
    """Auto-PGD with the margin loss (default, never saturates) or the cross-entropy loss.

    Args:
        steps: iterations N per restart (>= 1); one gradient evaluation per row per iteration.
        restarts: random restarts (>= 1); later ones attack only the rows not yet adversarial.
        loss: ``"margin"`` (the logit margin ``-y m(x)``) or ``"ce"`` (``softplus(-y m(x))``).
        random_start: start uniformly in the ball (else at the clean point).

    References:
        Croce & Hein, ICML 2020.
    """

    name = "apgd"
    aliases = ("auto-pgd",)
    randomized = True
    multiclass = True

    def __init__(self, *, steps: int = 100, restarts: int = 1, loss: str = "margin",
                 random_start: bool = True) -> None:
        self._set_options(steps=check_int("steps", steps, 1), restarts=check_int("restarts", restarts, 1),
                          loss=check_loss(loss), random_start=_check_flag("random_start", random_start))

    def crosscheck_settings(self, definition: str, quick: bool) -> tuple[int | None, dict[str, Any] | None]:
        if definition in ("projection", "error-region"):
            return (500 if quick else 20_000), None
        return None, None

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        gen = make_generator(generator, x.device) if self.random_start and threat.radius > 0 else None
        y_loss, clean_pred = loss_labels(definition, clf, x, y, dist)
        best_x, best_succ = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        best_loss = torch.full((x.shape[0],), -torch.inf, dtype=x.dtype, device=x.device)
        evals = 0
        for _ in range(self.restarts):
            rows = (~best_succ).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            state = _Rows(self, clf, x[rows], y[rows], y_loss[rows], None if clean_pred is None else clean_pred[rows],
                          threat, definition, dist, gen)
            evals += state.run()
            better = (state.out_succ & ~best_succ[rows]) | (
                (state.out_succ == best_succ[rows]) & (state.out_loss > best_loss[rows]))
            best_x[rows] = torch.where(better[:, None], state.out_x, best_x[rows])
            best_loss[rows] = torch.where(better, state.out_loss, best_loss[rows])
            best_succ[rows] |= state.out_succ
        return finish(clf, x, y, best_x, threat, definition, dist, evals)


class _Rows:
    """One APGD run on a batch; rows leave the working set at their first adversarial iterate."""

    def __init__(self, attack: APGD, clf, x0, y, y_loss, clean_pred, threat, definition, dist, gen) -> None:
        self.a, self.clf, self.threat, self.definition, self.dist = attack, clf, threat, definition, dist
        n = x0.shape[0]
        self.out_x, self.out_loss = x0.clone(), torch.full((n,), -torch.inf, dtype=x0.dtype, device=x0.device)
        self.out_succ = torch.zeros(n, dtype=torch.bool, device=x0.device)
        start = threat.random_start(x0, gen) if gen is not None else x0.clone()
        eta = torch.full((n,), 2 * threat.radius, dtype=x0.dtype, device=x0.device)
        # the working set: every per-row tensor, indexed together when rows leave
        self.w = dict(idx=torch.arange(n, device=x0.device), x0=x0, y=y, yl=y_loss, cp=clean_pred, x=start,
                      x_prev=start, eta=eta, f_max=_neg_inf(n, x0), x_max=start.clone(), f_prev=_neg_inf(n, x0),
                      n_up=torch.zeros(n, dtype=torch.long, device=x0.device), eta_ck=eta.clone(),
                      f_max_ck=_neg_inf(n, x0))

    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradient, loss and success at the current iterates; records the best points."""
        w = self.w
        g, m, f = _input_grad(self.clf, w["x"], w["yl"], self.a.loss)
        succ = success_from_margin(self.definition, m, w["x"], w["y"], self.dist, w["cp"])
        up = f > w["f_max"]
        w["x_max"] = torch.where(up[:, None], w["x"], w["x_max"])
        w["f_max"] = torch.where(up, f, w["f_max"])
        idx = w["idx"]
        better = succ | (~self.out_succ[idx] & (f > self.out_loss[idx]))
        self.out_x[idx[better]] = w["x"][better]
        self.out_loss[idx] = torch.where(better, f, self.out_loss[idx])
        self.out_succ[idx] |= succ
        return g, f, succ

    def _drop(self, keep: torch.Tensor) -> None:
        self.w = {k: (v[keep] if isinstance(v, torch.Tensor) else v) for k, v in self.w.items()}

    def _step(self, g: torch.Tensor, first: bool) -> None:
        w, t = self.w, self.threat
        x, eta = w["x"], w["eta"]
        z = t.project(x + eta[:, None] * t.steepest_ascent(g, 1.0), w["x0"])
        if not first:
            z = t.project(x + _MOMENTUM * (z - x) + (1 - _MOMENTUM) * (x - w["x_prev"]), w["x0"])
        w["x_prev"], w["x"] = x, z

    def _checkpoint(self, since: int) -> None:
        """Halve the step size (and restart from the best point) where progress stalled since the last one."""
        w = self.w
        stalled = (w["n_up"] < _RHO * since) | ((w["eta_ck"] == w["eta"]) & (w["f_max_ck"] == w["f_max"]))
        w["eta_ck"], w["f_max_ck"] = w["eta"].clone(), w["f_max"].clone()
        w["eta"] = torch.where(stalled, w["eta"] / 2, w["eta"])
        w["x"] = torch.where(stalled[:, None], w["x_max"], w["x"])
        w["x_prev"] = torch.where(stalled[:, None], w["x"], w["x_prev"])  # no momentum across a restart
        w["n_up"] = torch.zeros_like(w["n_up"])

    def run(self) -> int:
        """The iterations; returns the gradient evaluations spent."""
        steps, marks, last, evals = self.a.steps, set(checkpoints(self.a.steps)), 0, 0
        for k in range(steps + 1):
            g, f, succ = self._evaluate()
            if k == steps:
                break
            evals += int(f.shape[0])
            if k > 0:
                self.w["n_up"] += (f > self.w["f_prev"]).long()
            self.w["f_prev"] = f
            if bool(succ.any()):
                keep = ~succ
                self._drop(keep)
                g = g[keep]
                if self.w["idx"].numel() == 0:
                    break
            self._step(g, first=k == 0)
            if k + 1 in marks:
                self._checkpoint(k + 1 - last)
                last = k + 1
        return evals


def _neg_inf(n: int, like: torch.Tensor) -> torch.Tensor:
    """An (n,) tensor of -inf in the dtype and on the device of ``like``."""
    return torch.full((n,), -torch.inf, dtype=like.dtype, device=like.device)


def apgd(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, *, steps: int = 100, restarts: int = 1,
         loss: str = "margin", random_start: bool = True, definition: str = "ball", dist: Any = None,
         generator: Any = None):
    """APGD as a function: ``APGD(steps=..., restarts=..., loss=..., random_start=...).run(...)``.

    Args:
        clf: classifier or torch module (one or two logits, or K logits with labels 0..K-1).
        x: (N, d) clean points; y: (N,) labels in {-1, +1} (0..K-1 for K logits).
        threat: the ball (Linf, L2 or L1).
        steps, restarts, loss, random_start: see :class:`APGD`.
        definition: the adversarial-example definition; dist: the distribution it may need.
        generator: seed or ``torch.Generator`` for the random starts.
    """
    return APGD(steps=steps, restarts=restarts, loss=loss, random_start=random_start).run(
        clf, x, y, threat, definition=definition, dist=dist, generator=generator)

