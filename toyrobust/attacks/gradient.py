"""Gradient attacks on (N, d) batches: the fast gradient method (FGSM) and projected gradient descent (PGD).

Both use the threat model's steepest-ascent step, the maximiser of the linearised loss over the ball:
``eps sign(g)`` for Linf, ``eps g / ||g||_2`` for L2 and ``eps sign(g_i) e_i`` at the largest ``|g_i|`` for L1
(seed 003's exercise; ``<step, g> = eps ||g||_q`` with ``q`` the dual exponent), so on a linear classifier one
step lowers the margin by exactly ``eps ||w||_q`` (seed 004: the inner maximum is ``-eps ||w||_q``).

PGD iterates ``x <- Proj_B(x + alpha * steepest(grad loss))`` from a uniform random start in the ball, with
per-sample early stopping (a row leaves the batch as soon as it is adversarial under the chosen definition,
checked on the forward pass the gradient step needs anyway), the best iterate kept, and restarts that attack
only the rows still robust.

References:
    I. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015.
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards deep learning models resistant to
    adversarial attacks", ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..classifiers import Classifier
from ..rng import make_generator
from ..threats import ThreatModel
from .base import Attack, AttackResult
from .losses import (
    attack_loss,
    check_int,
    check_loss,
    check_step_size,
    eval_mode,
    finish,
    loss_labels,
    success_from_margin,
)

__all__ = ["FGSM", "PGD", "fgsm", "pgd"]

#: ``constrain(z, x0, prev, rows) -> z'``: maps iterates (after the ball projection) into a feasible set; one with a
#: true attribute ``projects_ball`` gets the iterate before the ball projection and returns a point of the ball
Constrain = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _check_flag(name: str, flag: Any) -> bool:
    if not isinstance(flag, bool):
        raise TypeError(f"{name} must be a bool, got {flag!r}")
    return flag


class FGSM(Attack):
    """Fast gradient attack: one steepest-ascent step of size eps from the clean point.

    ``x_adv = Proj_B(x + steepest_B(grad_x L(x, y)))`` with ``L = -y m(x)`` (margin) or ``softplus(-y m(x))``
    (cross-entropy); for Linf this is FGSM, ``x + eps sign(grad)``. Deterministic; ``grad_evals = N``.

    Args:
        loss: ``"margin"`` (default; never saturates) or ``"ce"``.
        targeted: move towards the labels ``y`` instead of away from them.

    References:
        Goodfellow et al. 2015; seed 003 (the locally optimal step per norm).
    """

    name = "fgsm"
    targeted_option = "targeted"
    multiclass = True

    def __init__(self, *, loss: str = "margin", targeted: bool = False) -> None:
        self._set_options(loss=check_loss(loss), targeted=_check_flag("targeted", targeted))

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        y_loss, _ = loss_labels(definition, clf, x, y, dist)
        g = _input_grad(clf, x, y_loss, self.loss)[0]
        x_adv = threat.project(x + threat.steepest_ascent(g), x)
        return finish(clf, x, y, x_adv, threat, definition, dist, x.shape[0])


class PGD(Attack):
    """Projected gradient descent (steepest-ascent PGD) for the Linf, L2 and L1 balls.

    Maximises the per-sample loss ``L = -y m(x')`` (margin) or ``softplus(-y m(x'))`` over the ball by
    ``x' <- Proj_B(x' + steepest_B(grad L, alpha))`` (exact projections: clamp, radial scaling, Duchi et al.'s
    sort-based L1 projection), starting from a point uniform in the ball (``||delta|| / eps ~ Beta(d, 1)`` for
    L2 and L1). Each row keeps its best iterate: an adversarial one (under the definition) over any other, then
    the larger loss. With ``early_stop`` a row stops at its first adversarial iterate; restarts re-attack only
    the rows not yet adversarial. ``grad_evals`` counts one per row per gradient step.

    Args:
        steps: gradient steps per restart (>= 0).
        step_size: alpha; None means ``2.5 eps / steps`` (Madry et al.).
        restarts: number of random restarts (>= 1).
        random_start: start uniformly in the ball (else at the clean point).
        loss: ``"margin"`` (default) or ``"ce"``.
        targeted: move towards the labels ``y``.
        early_stop: stop each row at its first adversarial iterate.

    References:
        Madry et al. 2018; seed 004 (steepest-descent PGD).
    """

    name = "pgd"
    randomized = True
    targeted_option = "targeted"
    multiclass = True
    #: the default step size is ``step_scale * eps / steps``
    step_scale: ClassVar[float] = 2.5

    def __init__(self, *, steps: int = 40, step_size: float | None = None, restarts: int = 1,
                 random_start: bool = True, loss: str = "margin", targeted: bool = False,
                 early_stop: bool = True) -> None:
        self._set_options(**self._pgd_options(steps, step_size, restarts, random_start, loss, targeted, early_stop))

    @staticmethod
    def _pgd_options(steps: Any, step_size: Any, restarts: Any, random_start: Any, loss: Any, targeted: Any,
                     early_stop: Any) -> dict[str, Any]:
        """The shared PGD options, validated (step_size stays None for the per-threat default)."""
        return dict(steps=check_int("steps", steps, 0),
                    step_size=None if step_size is None else check_step_size(step_size, 0.0),
                    restarts=check_int("restarts", restarts, 1),
                    random_start=_check_flag("random_start", random_start), loss=check_loss(loss),
                    targeted=_check_flag("targeted", targeted), early_stop=_check_flag("early_stop", early_stop))

    def crosscheck_settings(self, definition: str, quick: bool) -> tuple[int | None, dict[str, Any] | None]:
        # the definition-aware success check projects every iterate onto the support: fewer points there
        if definition == "projection":
            return (500 if quick else 20_000), None
        if definition == "error-region":
            return (2_000 if quick else 20_000), None
        return None, None

    def _constraint(self, clf: Any, y: torch.Tensor, threat: ThreatModel, dist: Any) -> Constrain | None:
        """The feasible set iterates are kept in beyond the ball (None: the ball only)."""
        return None

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        step_size = self.step_size
        if step_size is None:
            step_size = self.step_scale * threat.radius / max(self.steps, 1) or None
        return pgd_core(clf, x, y, threat, steps=self.steps, step_size=step_size, restarts=self.restarts,
                        random_start=self.random_start, loss=self.loss, early_stop=self.early_stop,
                        definition=definition, dist=dist, generator=generator,
                        constrain=self._constraint(clf, y, threat, dist))


def fgsm(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, loss: str = "margin",
         targeted: bool = False, definition: str = "ball", dist: Any = None, generator: Any = None) -> AttackResult:
    """Fast gradient attack, as a function: ``FGSM(loss=..., targeted=...).run(...)`` (see :class:`FGSM`).

    Args:
        clf: classifier or torch module (one or two logits).
        x: (N, d) clean points; y: (N,) labels in {-1, +1} (with ``targeted`` the target labels).
        threat: the ball (Linf, L2 or L1, optionally on some coordinates).
        loss, targeted: see :class:`FGSM`.
        definition: the adversarial-example definition for the success mask.
        dist: the distribution (projection and error-region definitions).
        generator: unused (FGSM is deterministic); accepted for the common calling convention.
    """
    return FGSM(loss=loss, targeted=targeted).run(clf, x, y, threat, definition=definition, dist=dist,
                                                  generator=generator)


def pgd(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, steps: int = 40,
        step_size: float | None = None, restarts: int = 1, random_start: bool = True, loss: str = "margin",
        targeted: bool = False, early_stop: bool = True, definition: str = "ball", dist: Any = None,
        generator: Any = None) -> AttackResult:
    """Projected gradient descent, as a function: ``PGD(**options).run(...)`` (see :class:`PGD`).

    Args:
        clf: classifier or torch module (one or two logits, or K logits with labels 0..K-1); a module is put in eval
            mode during the attack and every submodule's mode is restored after.
        x: (N, d) clean points (any float dtype, kept).
        y: (N,) labels in {-1, +1} (0..K-1 for K logits); with ``targeted`` the target labels (binary only).
        threat: the ball (Linf, L2 or L1, optionally on some coordinates).
        steps, step_size, restarts, random_start, loss, targeted, early_stop: see :class:`PGD`.
        definition: the adversarial-example definition (success mask and early stopping).
        dist: the distribution (projection and error-region definitions).
        generator: ``torch.Generator`` or int seed for the random starts (None: a fresh generator seeded from
            the OS; the global RNG is never used).

    Returns:
        :class:`AttackResult`; ``grad_evals`` counts one per row per gradient step.
    """
    attack = PGD(steps=steps, step_size=step_size, restarts=restarts, random_start=random_start, loss=loss,
                 targeted=targeted, early_stop=early_stop)
    return attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)


def pgd_core(
    clf: Classifier,
    x: torch.Tensor,
    y_true: torch.Tensor,
    threat: ThreatModel,
    *,
    steps: int,
    step_size: float | None,
    restarts: int,
    random_start: bool,
    loss: str,
    early_stop: bool,
    definition: str,
    dist: Any,
    generator: Any,
    constrain: Constrain | None = None,
) -> AttackResult:
    """PGD on validated inputs and options, with an optional extra constraint applied after every ball projection.

    ``constrain(z, x0, prev, rows)`` receives the current rows' iterates ``z`` (k, d), centres ``x0``, previous
    (feasible) iterates ``prev`` and their indices ``rows`` into the batch, and returns feasible iterates in the
    ball; the definition-aware attacks of :mod:`toyrobust.attacks.manifold` use it.
    """
    eps = threat.radius
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    n = x.shape[0]
    if n == 0:
        return finish(clf, x, y_true, x, threat, definition, dist, 0)
    gen = make_generator(generator, x.device) if random_start and eps > 0 else None

    with eval_mode(clf):
        y_loss, clean_pred = loss_labels(definition, clf, x, y_true, dist)
        out_x = x.clone()
        out_loss = torch.full((n,), -torch.inf, dtype=x.dtype, device=x.device)
        out_succ = torch.zeros(n, dtype=torch.bool, device=x.device)
        grad_evals = 0
        rows = torch.arange(n, device=x.device)
        for restart in range(restarts):
            if restart > 0:
                rows = (~out_succ).nonzero().squeeze(1)
                if rows.numel() == 0:
                    break
            grad_evals += _run(clf, x, y_true, y_loss, clean_pred, threat, rows, steps, alpha, gen, loss,
                               early_stop, definition, dist, constrain, out_x, out_loss, out_succ)
        return finish(clf, x, y_true, out_x, threat, definition, dist, grad_evals)


def _input_grad(
    clf: Classifier, x: torch.Tensor, y_loss: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_x sum L, scores, L)`` by one forward and one backward pass (scores: the margin (N,), or (N, K) for a
    K-class classifier); parameters' grads are untouched."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        margin = clf.scores(xg)  # the margin (N,), or K-class scores (N, K)
        lv = attack_loss(margin, y_loss, loss)
        (g,) = torch.autograd.grad(lv.sum(), xg)
    return g, margin.detach(), lv.detach()


def _run(
    clf: Classifier,
    x: torch.Tensor,
    y_true: torch.Tensor,
    y_loss: torch.Tensor,
    clean_pred: torch.Tensor | None,
    threat: ThreatModel,
    rows: torch.Tensor,
    steps: int,
    alpha: float,
    gen: torch.Generator | None,
    loss: str,
    early_stop: bool,
    definition: str,
    dist: Any,
    constrain: Constrain | None,
    out_x: torch.Tensor,
    out_loss: torch.Tensor,
    out_succ: torch.Tensor,
) -> int:
    """One PGD run on the rows ``rows``; merges each row's best iterate into ``out_*``. Returns grad evals."""
    x0 = x[rows]
    yt, yl = y_true[rows], y_loss[rows]
    cp = clean_pred[rows] if clean_pred is not None else None
    xc = threat.random_start(x0, gen) if gen is not None else x0.clone()
    if constrain is not None:
        xc = constrain(xc, x0, x0, rows)
    delta = xc - x0
    fast = _fast_kind(threat, constrain)
    eps = threat.radius
    best_x = xc.clone()
    best_loss = torch.full((rows.numel(),), -torch.inf, dtype=x.dtype, device=x.device)
    best_succ = torch.zeros(rows.numel(), dtype=torch.bool, device=x.device)
    grad_evals = 0
    # on an accelerator every host sync stalls the queue (PITFALLS 16): look for finished rows every few steps
    sync_every = 1 if x.device.type == "cpu" else _ACCELERATOR_SYNC_EVERY
    for t in range(steps + 1):
        if t < steps:
            g, m, lv = _input_grad(clf, xc, yl, loss)
            grad_evals += xc.shape[0]
        else:  # the last iterate is only evaluated
            with torch.no_grad():
                m = clf.scores(xc)
                lv = attack_loss(m, yl, loss)
        succ = success_from_margin(definition, m, xc, yt, dist, cp)
        # (succ, loss) beats (best_succ, best_loss) lexicographically; updated in place (no fresh buffers per step)
        better = torch.where(succ == best_succ, lv > best_loss, succ)
        torch.where(better[:, None], xc, best_x, out=best_x)
        torch.where(better, lv, best_loss, out=best_loss)
        best_succ |= succ
        if early_stop and t < steps and (t + 1) % sync_every == 0:
            done = best_succ
            if bool(done.any()):  # a host sync: rows that are done leave the batch
                _merge(out_x, out_loss, out_succ, rows[done], best_x[done], best_loss[done], best_succ[done])
                keep = ~done
                rows, x0, xc, delta, g = rows[keep], x0[keep], xc[keep], delta[keep], g[keep]
                yt, yl, best_x, best_loss = yt[keep], yl[keep], best_x[keep], best_loss[keep]
                best_succ = best_succ[keep]
                cp = cp[keep] if cp is not None else None
                if rows.numel() == 0:
                    return grad_evals
        if t < steps:
            if fast is None:
                prev = xc
                xc = xc + threat.steepest_ascent(g, alpha)
                if not getattr(constrain, "projects_ball", False):
                    xc = threat.project(xc, x0)
                if constrain is not None:
                    xc = constrain(xc, x0, prev, rows)
            else:
                delta = _fast_step(fast, delta, g, alpha, eps)
                xc = x0 + delta
    _merge(out_x, out_loss, out_succ, rows, best_x, best_loss, best_succ)
    return grad_evals


#: steps between early-stopping checks on CUDA and other accelerators (each check synchronises with the host)
_ACCELERATOR_SYNC_EVERY = 8


def _fast_kind(threat: ThreatModel, constrain: Constrain | None) -> str | None:
    """``"linf"`` or ``"l2"`` when the step and projection can be done in place on the perturbation."""
    if constrain is not None or threat.coords is not None:
        return None
    return {"linf": "linf", "l2": "l2"}.get(threat.name)


def _fast_step(kind: str, delta: torch.Tensor, g: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """In-place steepest-ascent step and projection of the perturbation (all coordinates free).

    Linf: ``delta <- clamp(delta + alpha sign(g), -eps, eps)``. L2: ``delta <- delta + alpha g / ||g||``, then
    scaled back to norm eps if longer (``g`` is first divided by ``max |g_i|`` so its norm neither underflows
    nor overflows: a saturated loss's 1e-25 gradient still gives a full step). Same maths as
    :meth:`ThreatModel.steepest_ascent` and :meth:`ThreatModel.project`, without their fresh (N, d) buffers.
    """
    if kind == "linf":
        return delta.add_(g.sign_(), alpha=alpha).clamp_(-eps, eps)
    scale = g.abs().amax(dim=1, keepdim=True)
    g.div_(torch.where(scale > 0, scale, 1.0))
    n = torch.linalg.vector_norm(g, dim=1, keepdim=True)
    delta.addcmul_(g, alpha / torch.where(n > 0, n, 1.0))
    nd = torch.linalg.vector_norm(delta, dim=1, keepdim=True)
    return delta.mul_(torch.where(nd > eps, eps / torch.where(nd > 0, nd, 1.0), 1.0))


def _merge(
    out_x: torch.Tensor,
    out_loss: torch.Tensor,
    out_succ: torch.Tensor,
    rows: torch.Tensor,
    bx: torch.Tensor,
    bl: torch.Tensor,
    bs: torch.Tensor,
) -> None:
    """Write a run's best iterates into the outputs where they beat what an earlier restart found."""
    os, ol = out_succ[rows], out_loss[rows]
    better = (bs & ~os) | ((bs == os) & (bl > ol))
    out_x[rows] = torch.where(better[:, None], bx, out_x[rows])
    out_loss[rows] = torch.where(better, bl, ol)
    out_succ[rows] = os | bs
