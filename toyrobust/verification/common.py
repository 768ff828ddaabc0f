"""What every verifier shares: the results, the checks of the inputs, the label regions' sub-problems, the
forward-pass confirmation of counterexamples, the pre-pass attack, and the protocol a verifier follows.

:func:`toyrobust.verification.verify` and :func:`~toyrobust.verification.minimal_distance` hand a model to the
first verifier in :data:`toyrobust.verification.api.VERIFIERS` that accepts it (:class:`ModelVerifier`): the
quadratic networks' trust-region verifier (:mod:`.quadratic`), else the ReLU networks' MILP verifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..attacks import PGD, Attack, make_attack
from ..classifiers import as_classifier, check_labels, margin_from_logits
from ..display import verification_html
from ..threats import L1, L2, Linf, ThreatModel

__all__ = ["VerificationResult", "DistanceResult", "ModelVerifier", "DEFINITIONS", "DEFAULT_ATTACK_LABEL"]

DEFINITIONS = ("ball", "projection", "error-region")
Polys = list[tuple[np.ndarray, np.ndarray]]
#: the verifier's default pre-pass label (``decided_by``)
DEFAULT_ATTACK_LABEL = "pgd"


@dataclass
class VerificationResult:
    """Per-point verdicts of :func:`verify`.

    Attributes:
        robust: bool (N,): no adversarial point in the ball (proven).
        vulnerable: bool (N,): ``x_adv`` is adversarial (checked by a forward pass).
        x_adv: (N, d) counterexamples (``x`` where none), on x's device and dtype.
        lower_bound: float64 (N,): a proven lower bound on ``min l * m(x')`` over the ball (and region), the
            minimum over the point's sub-problems (+inf when the region misses the ball).
        status: ``"robust"``, ``"vulnerable"`` or ``"unknown"`` per point.
        decided_by: the stage that decided (``"clean"``, ``"pgd"`` -- or the ``label`` of the pre-pass attack
            given to :func:`verify` --, ``"ibp"``, ``"crown"``, ``"alpha-crown"``, ``"region"``, ``"milp"``,
            ``"bab"``) or why not (``"timeout"``, ``"too-large"``, ``"incomplete"``, ``"boundary"``).
        stats: counts and seconds (see :func:`verify`).
    """

    robust: torch.Tensor
    vulnerable: torch.Tensor
    x_adv: torch.Tensor
    lower_bound: torch.Tensor
    status: list[str]
    decided_by: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def unknown(self) -> torch.Tensor:
        """bool (N,): neither robust nor vulnerable."""
        return ~(self.robust | self.vulnerable)

    def counts(self) -> dict[str, int]:
        """``{"robust": ..., "vulnerable": ..., "unknown": ...}``."""
        return {"robust": int(self.robust.sum()), "vulnerable": int(self.vulnerable.sum()),
                "unknown": int(self.unknown.sum())}

    def _repr_html_(self) -> str:
        """Jupyter: verdict counts, the deciding stages and the time as a table."""
        return verification_html(self)


@dataclass
class DistanceResult:
    """Per-point minimal adversarial distances of :func:`minimal_distance`.

    Attributes:
        distance: float64 (N,): the exact infimum of ``||x' - x||`` over adversarial ``x'`` (HiGHS optimum), 0 for
            a misclassified point, ``inf`` when nothing within ``max_eps`` (then ``lower = max_eps``), NaN when the
            solver stopped first.
        lower, upper: proven bracket (dual bound, primal value).
        x_adv: (N, d) minimisers (on the decision boundary: with ``y = +1`` a point with ``m = 0`` still predicts
            +1 by the tie rule, so the infimum is not attained); ``x`` where none.
        status: ``"optimal"``, ``"misclassified"``, ``"beyond-max-eps"``, ``"timeout"`` (the time limit ended the
            search: ``distance`` NaN, ``[lower, upper]`` what it proved), or ``"boundary"`` (L2 only: the search
            ended with exact leaves whose solver precision left ``[lower, upper]`` wider than its relative
            tolerance 1e-5; ``distance`` NaN).
    """

    distance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    x_adv: torch.Tensor
    status: list[str]


def _check_x(x: Any, model: Any) -> torch.Tensor:
    """x (N, d) checked against the model's input dimension ``model.dim``, detached."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != model.dim:
        raise ValueError(f"x must have shape (N, {model.dim}) for this model, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    return x.detach()


def _check_y(y: Any, n: int) -> np.ndarray:
    y = y.detach().cpu() if isinstance(y, torch.Tensor) else y
    return check_labels(y, n, None).numpy()  # the one label check (the verifier takes one or two logits)


def _check_threat(threat: Any, d: int) -> tuple[float, float, np.ndarray]:
    if not isinstance(threat, (Linf, L1, L2)):
        raise TypeError(f"threat must be a toyrobust Linf, L1 or L2 threat model, got {type(threat).__name__}")
    eps = threat.radius
    if not math.isfinite(eps):
        raise ValueError(f"threat eps must be finite, got {eps!r}")
    mask = np.zeros(d, dtype=bool)
    mask[threat.coord_indices(d)] = True
    return eps, float(threat.p), mask


def _regions(region: Any, definition: str, d: int) -> dict[int, Polys] | None:
    if definition == "ball":
        if region is not None:
            raise ValueError("region is only used by definition='projection' or 'error-region'; got a region with "
                             "definition='ball'")
        return None
    if not callable(region):
        raise TypeError(f"definition {definition!r} needs region: a callable label -> list of (A, b), got "
                        f"{type(region).__name__}")
    out: dict[int, Polys] = {}
    for label in (-1, 1):
        pieces = region(label)
        polys: Polys = []
        for piece in pieces:
            A, b = piece
            A = np.atleast_2d(np.asarray(A, dtype=np.float64))
            b = np.asarray(b, dtype=np.float64).reshape(-1)
            if A.ndim != 2 or A.shape[1] != d or b.shape != (A.shape[0],):
                raise ValueError(f"region({label}) must give pairs (A, b) with A of shape (m, {d}) and b of shape "
                                 f"(m,), got A {A.shape} and b {b.shape}")
            if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
                raise ValueError(f"region({label}) must hold finite numbers")
            polys.append((A, b))
        out[label] = polys
    return out


def _param(model: torch.nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def _model_margin(model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The model's own margin at z, in the model's dtype and on its device."""
    p = _param(model)
    if p is not None:
        z = z.to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        return margin_from_logits(model(z))


def _in_region(z: np.ndarray, polys: Polys | None) -> np.ndarray:
    """bool (N,): z strictly inside (by 1e-9 (1 + |b| + |A||z|)) some polyhedron; all True without a region."""
    if polys is None:
        return np.ones(z.shape[0], dtype=bool)
    inside = np.zeros(z.shape[0], dtype=bool)
    for A, b in polys:
        slack = 1e-9 * (1 + np.abs(b)[None, :] + np.abs(z) @ np.abs(A).T)
        inside |= np.all(z @ A.T <= b[None, :] - slack, axis=1)
    return inside


def _confirm(model, threat, z, x0, labels: np.ndarray, polys: Polys | None) -> np.ndarray:
    """bool (N,): z in the ball around x0, strictly in the region, and ``predict(z) != label`` by a forward pass."""
    if z.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    m = _model_margin(model, z)
    pred = np.where(m.detach().cpu().numpy() >= 0, 1, -1)
    in_ball = threat.contains(z, x0).cpu().numpy()
    zz = z.detach().to("cpu", torch.float64).numpy()
    return (pred != labels) & in_ball & _in_region(zz, polys)


@dataclass(frozen=True)
class _Ball:
    """The threat's ball: radius ``eps``, norm ``p`` (inf, 1 or 2) and the perturbed coordinates ``mask`` (d,)."""

    eps: float
    p: float
    mask: np.ndarray


def _attack_points(attack: Attack, model: Any, x: torch.Tensor, labels: np.ndarray, threat: ThreatModel,
                   generator: Any) -> torch.Tensor:
    """Candidates (N, d) of ``attack`` (ball definition) in the model's dtype and device, returned in x's.

    Args:
        attack: the attack; model: the network; x: (N, d) points; labels: (N,) labels in {-1, +1}.
        threat: the ball; generator: seed or torch.Generator for the attack's randomness.
    """
    p = _param(model)
    xm = x if p is None else x.to(device=p.device, dtype=p.dtype)
    res = attack.run(model, xm, torch.as_tensor(labels, device=xm.device), threat, generator=generator)
    return res.x_adv.to(device=x.device, dtype=x.dtype)


def _prepass_attack(attack: Any, pgd_steps: Any, pgd_restarts: Any, model: Any,
                    threat: ThreatModel) -> tuple[Attack | None, str]:
    """The pre-pass attack and its ``decided_by`` label.

    None: ``PGD(steps=pgd_steps, restarts=pgd_restarts, loss="margin")`` labelled ``"pgd"`` (no pre-pass when
    ``pgd_steps <= 0``); otherwise ``make_attack(attack)`` labelled with its ``label``, checked to apply to the
    model under the threat with the ball definition.
    """
    if attack is None:
        if pgd_steps > 0:
            return PGD(steps=pgd_steps, restarts=pgd_restarts, loss="margin"), DEFAULT_ATTACK_LABEL
        return None, DEFAULT_ATTACK_LABEL
    resolved = make_attack(attack)
    support = resolved.supports(as_classifier(model), threat, "ball")
    if not support:
        raise TypeError(f"attack {resolved.label!r} cannot be the verifier's pre-pass: {support.reason}")
    return resolved, resolved.label


def _relative_tolerance(model: Any, atol: float | None) -> float:
    """``atol``, or ``max(1e-6, 64 eps_mach)`` of the model's dtype (float64 without parameters)."""
    if atol is not None:
        return atol
    p_model = _param(model)
    mdtype = p_model.dtype if p_model is not None else torch.float64
    return max(1e-6, 64 * torch.finfo(mdtype).eps)


def _sub_problems(definition: str, yl: np.ndarray, regs: dict[int, Polys] | None) -> list[list[tuple[int, Any]]]:
    """Per point the sub-problems ``(l, R)`` of the definition (``R`` None for the whole space).

    ``"ball"``: ``(y, R^d)``; ``"projection"``: ``(y, R_y)``; ``"error-region"``: ``(+1, R_+1)``, ``(-1, R_-1)``.
    """
    n = yl.shape[0]
    if definition == "ball":
        return [[(int(yl[i]), None)] for i in range(n)]
    if definition == "projection":
        return [[(int(yl[i]), regs[int(yl[i])])] for i in range(n)]
    return [[(1, regs[1]), (-1, regs[-1])] for _ in range(n)]


def _region_misses(polys: Polys, x0: np.ndarray, ball: _Ball) -> bool:
    """True when every polyhedron has a row ``a.z <= b`` violated on the whole ball (``min_B a.z > b``).

    ``min_B a.z = a.x0 - eps ||a * mask||_q`` with ``q`` the dual norm of ``p``; x0 (d,).
    """
    q = {math.inf: 1, 1: math.inf, 2: 2}[ball.p]
    for A, b in polys:
        dual = np.linalg.norm(A * ball.mask[None, :], ord=q, axis=1)
        if not np.any(A @ x0 - ball.eps * dual > b + 1e-12 * (1 + np.abs(b))):
            return False
    return True


class ModelVerifier(Protocol):
    """A verifier for one family of models (ReLU networks, quadratic networks, ...).

    ``accepts(model)`` says whether the model is of its family; ``verify`` and ``minimal_distance`` take the
    arguments of :func:`toyrobust.verification.verify` and :func:`~toyrobust.verification.minimal_distance`
    (keywords as there) and return a :class:`VerificationResult` and a :class:`DistanceResult`.
    """

    name: str

    def accepts(self, model: Any) -> bool: ...

    def verify(self, model: Any, x: torch.Tensor, y: Any, threat: ThreatModel, **options: Any) -> VerificationResult:
        ...

    def minimal_distance(self, model: Any, x: torch.Tensor, y: Any, norm: str, **options: Any) -> DistanceResult:
        ...
