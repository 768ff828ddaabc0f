"""Quadratic networks decided exactly under L2: the trust-region subproblem, by the secular equation.

A :class:`~toyrobust.models.QuadraticNet` computes ``m(x) = x^T M x + b`` (``M`` symmetric, any signature). With
``M = U diag(lam) U^T`` and ``z = U^T x`` the margin is ``sum_i lam_i z_i^2 + b``, and an L2 ball around ``x`` is
the L2 ball of the same radius around ``z`` (rotations keep the norm). For a label ``l`` and a level ``s``, the set
``{l m <= s}`` is closed, so

    min over ||x' - x||_2 <= eps of l m(x')  >  s   iff   l m(x) > s  and  dist(x, {l m = s}) > eps,

and the distance to the quadric ``{sum_i lam_i z_i^2 = l s - b}`` is the trust-region subproblem that
:func:`toyrobust.attacks.minimal.quadric_nearest` solves exactly (the secular equation with the hard case, More
1993). Per point and label (tolerances as for ReLU networks, :mod:`.api`):

* **robust** when the distance to the level ``s = +tol`` exceeds eps (``l m > tol`` on the whole ball);
* **vulnerable** when the nearest point of the level ``s = -tol`` lies in the ball and the model's own forward
  pass (its dtype, the tie rule ``m >= 0`` means +1) confirms it;
* **unknown** (``"boundary"``) otherwise: the minimum of ``l m`` over the ball lies within ``tol`` of 0.

So :func:`~toyrobust.verification.verify` decides every L2 point (up to that band) and
:func:`~toyrobust.verification.minimal_distance` with ``norm="l2"`` is the distance to the quadric ``m = 0``.

Not decided exactly (documented brackets): Linf and L1 balls, and L2 balls on a subset of coordinates. There the
attack pre-pass finds counterexamples and a sound certificate proves robustness,

    l m(x + d) >= l m(x) - eps ||2 M x||_q - r^2 max(0, -lam_min(l M_SS)),   r = max ||d||_2 over the ball,

(``q`` the dual norm, ``S`` the perturbed coordinates, ``r = eps sqrt(|S|)`` for Linf and ``eps`` otherwise);
the rest stays unknown (``"incomplete"``). The projection and error-region definitions use the same answers per
label: a label robust on the whole ball is robust on its region, a counterexample counts when it lies strictly
inside the region, and a region missing the ball is robust; anything else is ``"incomplete"``.

References:
    J. J. More, "Generalizations of the trust region problem", Optimization Methods and Software 2, 1993.
    J. Gilmer et al., "Adversarial spheres", ICLR Workshops 2018 (the quadratic network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..attacks.minimal import quadric_nearest
from ..constraints import check_positive_float, check_progress
from ..models import QuadraticNet
from ..threats import ThreatModel
from .common import (
    DEFINITIONS,
    DistanceResult,
    VerificationResult,
    _attack_points,
    _Ball,
    _check_threat,
    _check_x,
    _check_y,
    _confirm,
    _model_margin,
    _prepass_attack,
    _region_misses,
    _regions,
    _relative_tolerance,
    _sub_problems,
)

__all__ = ["QuadraticVerifier", "QUADRATIC"]


class _Form:
    """``m(x) = sum_i lam_i (x U)_i^2 - c`` (``c = -b``) in float64 on ``device``, from the network's twin."""

    def __init__(self, model: QuadraticNet, device: torch.device) -> None:
        twin = model.twin()
        self.lam = twin.quadratic.alpha.to_tensor(device, torch.float64)
        self.U = twin.rotation.to(device=device, dtype=torch.float64)
        self.c = float(twin.quadratic.c)
        self.M = (self.U * self.lam) @ self.U.T

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) margins of x (N, d) in float64."""
        z = x @ self.U
        return (z * z) @ self.lam - self.c


def _exact_l2(form: _Form, x: torch.Tensor, labels: torch.Tensor, eps: float,
              tol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exact L2 verdicts of the ball problem for labels ``l`` (N,): ``(robust, candidate, found)``.

    ``robust`` (N,): ``l m > tol`` on the ball; ``candidate`` (N, d): the nearest point of ``{l m = -tol}``
    (pulled into the ball) where ``found`` (N,) says it lies within eps (x itself where ``l m(x) <= -tol``).
    x (N, d) and tol (N,) in float64.
    """
    z = x @ form.U
    lm = labels * form.margin(x)
    robust = torch.zeros_like(lm, dtype=torch.bool)
    above = lm > tol
    if bool(above.any()):
        # the level {l m = tol} is the quadric sum lam_i z_i^2 = l tol + c
        _, dist = quadric_nearest(form.lam, labels[above] * tol[above] + form.c, z[above])
        robust[above] = dist > eps
    cand = x.clone()
    found = lm <= -tol
    open_ = ~robust & ~found
    if bool(open_.any()):
        delta, dist = quadric_nearest(form.lam, -labels[open_] * tol[open_] + form.c, z[open_])
        step = delta @ form.U.T
        norm = torch.linalg.vector_norm(step, dim=1)
        step = step * torch.where(norm > eps, eps / torch.where(norm > 0, norm, 1.0), 1.0)[:, None]
        cand[open_] = x[open_] + step
        found[open_] = dist <= eps
    return robust, cand, found


def _certificate(form: _Form, x: torch.Tensor, labels: torch.Tensor, ball: _Ball) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, scale)`` (N,): a sound lower bound on ``l m`` over the ball, and a bound on ``|m|`` there.

    ``l m(x + d) = l m(x) + 2 l (M x)_S . d + l d_S^T M_SS d_S >= l m(x) - eps ||2 (M x)_S||_q
    - r^2 max(0, -lam_min(l M_SS))`` with ``r`` the largest L2 norm in the ball (module docstring).
    """
    mask = torch.as_tensor(ball.mask, device=x.device)
    q = {math.inf: 1.0, 1.0: math.inf, 2.0: 2.0}[ball.p]
    grad = 2 * (x @ form.M) * mask
    dual = torch.linalg.vector_norm(grad, ord=q, dim=1)
    idx = torch.nonzero(mask).reshape(-1)
    lam_s = torch.linalg.eigvalsh(form.M[idx][:, idx])
    r = ball.eps * (math.sqrt(idx.numel()) if ball.p == math.inf else 1.0)
    neg = torch.where(labels > 0, (-lam_s.min()).clamp_min(0), lam_s.max().clamp_min(0))
    m = form.margin(x)
    lower = labels * m - ball.eps * dual - r * r * neg
    scale = m.abs() + ball.eps * dual + r * r * float(lam_s.abs().max())
    return lower, scale


@dataclass
class _Run:
    """One :meth:`QuadraticVerifier.verify` call: per point ``i`` and sub-problem ``k`` the state (None open, True
    robust, a tensor the counterexample), what decided it, and a lower bound on ``l m``."""

    model: QuadraticNet
    x: torch.Tensor
    threat: ThreatModel
    ball: _Ball
    subs: list[list[tuple[int, Any]]]
    rel: float

    def __post_init__(self) -> None:
        self.state: list[list[Any]] = [[None] * len(s) for s in self.subs]
        self.how: list[list[str]] = [[""] * len(s) for s in self.subs]
        self.lower = np.full((self.x.shape[0], 2), -math.inf)
        self.exact = self.ball.p == 2 and bool(self.ball.mask.all())

    def items(self) -> list[tuple[int, int]]:
        """Open ``(point, sub-problem)`` pairs of points with no counterexample yet."""
        return [(i, k) for i, s in enumerate(self.subs) for k in range(len(s)) if self.state[i][k] is None
                and not any(isinstance(v, torch.Tensor) for v in self.state[i])]

    def confirm(self, items: list[tuple[int, int]], z: torch.Tensor, how: str) -> None:
        """Record the candidates ``z`` (len(items), d) that the forward pass, the ball and the region accept."""
        z = z.to(device=self.x.device, dtype=self.x.dtype)
        groups: dict[tuple[int, int], list[int]] = {}  # same sub-problem kind and label: the same region
        for j, (i, k) in enumerate(items):
            groups.setdefault((k, self.subs[i][k][0]), []).append(j)
        for (k, lab), js in groups.items():
            rows = [items[j][0] for j in js]
            ok = _confirm(self.model, self.threat, z[js], self.x[rows], np.full(len(js), lab), self.subs[rows[0]][k][1])
            for j, good in zip(js, ok):
                if good:
                    self.state[items[j][0]][k], self.how[items[j][0]][k] = z[j], how

    def attack(self, attack: Any, label: str, generator: Any) -> None:
        """The pre-pass attack per label on the open items (Linf, L1, restricted L2 only)."""
        by_label: dict[int, list[tuple[int, int]]] = {}
        for i, k in self.items():
            by_label.setdefault(self.subs[i][k][0], []).append((i, k))
        for lab, its in by_label.items():
            rows = [i for i, _ in its]
            z = _attack_points(attack, self.model, self.x[rows], np.full(len(rows), lab), self.threat, generator)
            self.confirm(its, z, label)

    def decide(self) -> None:
        """The ball problem per label (exact for L2, the certificate otherwise), then each sub-problem; the
        counterexamples are confirmed in one batch."""
        items = self.items()
        if not items:
            return
        rows = sorted({i for i, _ in items})
        pos = {i: j for j, i in enumerate(rows)}
        p = next(self.model.parameters())
        form = _Form(self.model, p.device)
        x = self.x[rows].to(device=p.device, dtype=torch.float64)
        to_confirm: list[tuple[int, int]] = []
        cands: list[torch.Tensor] = []
        for lab in sorted({self.subs[i][k][0] for i, k in items}):
            labels = torch.full((len(rows),), float(lab), dtype=torch.float64, device=p.device)
            lower, scale = _certificate(form, x, labels, self.ball)
            tol = self.rel * (1 + scale)
            if self.exact:
                robust, cand, found = _exact_l2(form, x, labels, self.ball.eps, tol)
            else:
                robust, cand, found = lower > tol, x, torch.zeros_like(lower, dtype=torch.bool)
            lower = torch.where(robust, torch.maximum(lower, tol), lower).cpu().numpy()
            robust_h, found_h = robust.cpu().numpy(), found.cpu().numpy()  # one transfer, not one per point
            mine = [(i, k) for i, k in items if self.subs[i][k][0] == lab]
            for i, k in mine:
                j = pos[i]
                if self._settle(i, k, bool(robust_h[j]), float(lower[j])) and found_h[j]:
                    to_confirm.append((i, k))
                    cands.append(cand[j])
        if to_confirm:
            self.confirm(to_confirm, torch.stack(cands), "trust-region" if self.exact else "bound")
        for i, k in items:
            if self.state[i][k] is None:
                self.how[i][k] = "boundary" if self.exact and self.subs[i][k][1] is None else "incomplete"

    def _settle(self, i: int, k: int, robust: bool, lower: float) -> bool:
        """Sub-problem ``k`` of point ``i`` from its label's ball verdict; True when it stays open (a counterexample
        of the ball problem may still decide it)."""
        polys = self.subs[i][k][1]
        self.lower[i, k] = lower
        if polys is not None and _region_misses(polys, self.x[i].detach().to("cpu", torch.float64).numpy(),
                                                self.ball):
            self.state[i][k], self.how[i][k], self.lower[i, k] = True, "region", math.inf
        elif robust:
            self.state[i][k], self.how[i][k] = True, "trust-region" if self.exact else "bound"
        return self.state[i][k] is None

    def result(self, stats: dict[str, Any]) -> VerificationResult:
        """Combine the sub-problems: vulnerable with any counterexample, robust when all are proven."""
        x, n = self.x, self.x.shape[0]
        robust, vulnerable = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        x_adv = x.clone()
        status, decided = [], []
        for i in range(n):
            adv = [(s, h) for s, h in zip(self.state[i], self.how[i]) if isinstance(s, torch.Tensor)]
            if adv:
                status.append("vulnerable")
                decided.append(adv[0][1])
                vulnerable[i] = True
                x_adv[i] = adv[0][0]
            elif all(s is True for s in self.state[i]):
                status.append("robust")
                decided.append(next((h for h in self.how[i] if h != "region"), "region"))
                robust[i] = True
            else:
                status.append("unknown")
                decided.append(next(h for s, h in zip(self.state[i], self.how[i]) if s is None))
        lb = np.array([min(self.lower[i, : len(self.subs[i])]) for i in range(n)]) if n else np.zeros(0)
        return VerificationResult(
            robust=torch.as_tensor(robust, device=x.device), vulnerable=torch.as_tensor(vulnerable, device=x.device),
            x_adv=x_adv, lower_bound=torch.as_tensor(lb, dtype=torch.float64), status=status, decided_by=decided,
            stats=stats)


class QuadraticVerifier:
    """The verifier of :class:`~toyrobust.models.QuadraticNet` (see the module docstring): exact under L2."""

    name = "quadratic"

    def accepts(self, model: Any) -> bool:
        """Whether ``model`` is a :class:`~toyrobust.models.QuadraticNet`."""
        return isinstance(model, QuadraticNet)

    def verify(self, model: QuadraticNet, x: torch.Tensor, y: Any, threat: ThreatModel, *,
               definition: str = "ball", region: Any = None, time_limit: float = 5.0, method: str = "auto",
               max_binaries: int = 2000, pgd_steps: int = 40, pgd_restarts: int = 2, generator: Any = 0,
               atol: float | None = None, attack: Any = None, alpha_crown: Any = True, quad_crown: Any = True,
               progress: bool | None = None) -> VerificationResult:
        """:func:`toyrobust.verification.verify` for a quadratic network (arguments as there; ``time_limit``,
        ``method`` and ``max_binaries`` concern the MILP of ReLU networks and are only checked, ``alpha_crown`` and
        ``quad_crown`` concern ReLU networks' bounds and are ignored, ``progress`` is checked: no stage here takes
        long). The attack pre-pass runs only where the answer is not exact (Linf, L1, L2 on a subset of coordinates)."""
        x = _check_x(x, model)
        n, d = x.shape
        yl = _check_y(y, n)
        eps, p, mask = _check_threat(threat, d)
        if definition not in DEFINITIONS:
            raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
        check_positive_float("time_limit", time_limit)
        check_progress(progress)
        if atol is not None:
            atol = check_positive_float("atol", atol)
        regs = _regions(region, definition, d)
        run = _Run(model, x, threat, _Ball(eps, p, mask), _sub_problems(definition, yl, regs),
                   _relative_tolerance(model, atol))
        items = run.items()
        if items:
            run.confirm(items, x[[i for i, _ in items]], "clean")
        prepass, label = _prepass_attack(attack, pgd_steps, pgd_restarts, model, threat)
        if prepass is not None and eps > 0 and not run.exact:
            run.attack(prepass, label, generator)
        run.decide()
        return run.result({"n_points": n, "verifier": self.name, "tol_rel": run.rel, "exact": run.exact})

    def minimal_distance(self, model: QuadraticNet, x: torch.Tensor, y: Any, norm: str = "l2", *,
                         max_eps: float | None = None, time_limit: float = 10.0, coords: Any = None,
                         generator: Any = 0) -> DistanceResult:
        """The exact minimal L2 distance of a quadratic network: the distance to the quadric ``m = 0``.

        ``x_adv`` is the nearest point of the quadric, lengthened by a few ulps where needed so that the model's
        forward pass predicts the other label (:func:`toyrobust.attacks.minimal.minimal_perturbation`'s rule);
        a point the forward pass misclassifies has distance 0; no quadric point at all gives ``inf`` with status
        ``"optimal"`` (no adversarial point exists); beyond ``max_eps``, status ``"beyond-max-eps"``.
        ``time_limit`` and ``generator`` are unused (nothing is searched).
        """
        if norm != "l2" or coords is not None:
            raise ValueError(f"minimal_distance of a QuadraticNet is exact for norm='l2' on every coordinate "
                             f"(coords=None); got norm={norm!r}, coords={coords!r}")
        x = _check_x(x, model)
        n = x.shape[0]
        yl = _check_y(y, n)
        check_positive_float("time_limit", time_limit)
        if max_eps is not None:
            max_eps = check_positive_float("max_eps", max_eps)
        p = next(model.parameters())
        form = _Form(model, p.device)
        x64 = x.to(device=p.device, dtype=torch.float64)
        labels = torch.as_tensor(yl, dtype=torch.float64, device=p.device)
        delta, dist = quadric_nearest(form.lam, form.c, x64 @ form.U)
        x_adv = _past_boundary(model, x64, x64 + delta @ form.U.T, labels, torch.isfinite(dist))
        x_adv = x_adv.to(device=x.device, dtype=x.dtype)
        dist = dist.cpu().numpy()
        wrong = np.where(_model_margin(model, x).cpu().numpy() >= 0, 1, -1) != yl
        res = DistanceResult(np.where(wrong, 0.0, dist), np.where(wrong, 0.0, dist), np.where(wrong, 0.0, dist),
                             torch.where(torch.as_tensor(wrong, device=x.device)[:, None], x, x_adv),
                             ["misclassified" if w else "optimal" for w in wrong])
        for i in np.flatnonzero(~wrong & (dist > (max_eps if max_eps is not None else math.inf))):
            res.distance[i], res.lower[i], res.upper[i], res.status[i] = math.inf, max_eps, math.inf, "beyond-max-eps"
            res.x_adv[i] = x[i]
        return res


def _past_boundary(model: QuadraticNet, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor,
                   left: torch.Tensor) -> torch.Tensor:
    """``z`` (N, d) on the boundary moved ``x + (z - x)(1 + tau)`` with ``tau = 2^-52, 2^-50, ...`` until the
    model's forward pass predicts the other label, for the rows ``left`` (N,) (rows that never get there keep the
    boundary point)."""
    out = z.clone()
    left = left & (torch.where(_model_margin(model, x) >= 0, 1.0, -1.0).to(labels) == labels)
    tau = torch.finfo(torch.float64).eps
    for _ in range(26):
        cand = x + (z - x) * (1 + tau)
        pred = torch.where(_model_margin(model, cand) >= 0, 1.0, -1.0).to(labels)
        ok = left & (pred != labels)
        out[ok] = cand[ok]
        left &= ~ok
        if not bool(left.any()):
            break
        tau *= 4
    return out


#: the quadratic networks' verifier (see :data:`toyrobust.verification.api.VERIFIERS`)
QUADRATIC = QuadraticVerifier()
