"""Attack losses, and the plumbing every attack shares: input checks, model mode, success masks, results.

A binary classifier is seen through its margin ``m(x)`` (positive means +1; a torch module with one logit
gives that logit, one with two logits gives ``logit_+1 - logit_-1``). For a label ``y`` in {-1, +1} the losses
an untargeted attack *maximises* are

* ``"margin"``: ``-y m(x)``, the logit difference (Carlini & Wagner 2017). Its gradient never vanishes, so a
  confident (saturated) model is still attacked (PITFALLS 1).
* ``"ce"``: the cross-entropy ``log(1 + exp(-y m(x)))``. With two logits the 2-class cross-entropy
  ``logsumexp(l) - l_y`` equals ``softplus(l_-y - l_y) = softplus(-y m)`` exactly, so one formula serves both.
  In float32 (and float64) its gradient is exactly 0 once ``y m`` exceeds about 90 (resp. 750).

A K-class classifier (K logits ``l``, labels 0..K-1) is seen through its scores: the margin loss is
``-(l_y - max_{j != y} l_j)`` and the cross-entropy ``logsumexp(l) - l_y``; for K = 2 with labels -1/+1 these are
the binary formulas above.

References:
    N. Carlini, D. Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017.
    A. Madry et al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F

from ..classifiers import (
    Classifier,
    as_classifier,
    check_labels,
    classes_of,
    eval_mode,
    label_margin,
    labels_from_scores,
)
from ..constraints import check_int
from ..definitions import check_definition, check_label_space, get_definition, is_adversarial, needs_distribution
from ..threats import L2, ThreatModel
from .result import AttackResult

__all__ = [
    "LOSSES",
    "check_loss",
    "attack_loss",
    "eval_mode",
    "check_inputs",
    "check_threat",
    "check_int",
    "check_step_size",
    "loss_labels",
    "success_from_margin",
    "finish",
]

#: accepted loss names (``"cross-entropy"`` is an alias of ``"ce"``)
LOSSES: tuple[str, ...] = ("margin", "ce")
_ALIASES = {"margin": "margin", "ce": "ce", "cross-entropy": "ce", "cross_entropy": "ce"}


def check_loss(loss: Any) -> str:
    """Return the canonical loss name; ValueError naming the allowed ones otherwise."""
    if not isinstance(loss, str) or loss.lower() not in _ALIASES:
        raise ValueError(f"loss must be one of 'margin', 'ce' (or 'cross-entropy'), got {loss!r}")
    return _ALIASES[loss.lower()]


def attack_loss(margin: torch.Tensor, y: torch.Tensor, loss: str = "margin") -> torch.Tensor:
    """Per-sample loss an untargeted attack maximises: ``-y m`` (margin) or ``softplus(-y m)`` (cross-entropy); for
    K-class scores ``l`` (N, K), ``-(l_y - max_{j != y} l_j)`` or ``logsumexp(l) - l_y``.

    Args:
        margin: (N,) margins ``m(x)``, or (N, K) scores of a K-class classifier.
        y: (N,) labels in {-1, +1} (any dtype), or 0..K-1 with K-class scores.
        loss: ``"margin"`` or ``"ce"``.

    Returns:
        (N,) losses, dtype of ``margin``.
    """
    z = -label_margin(margin, y)
    if check_loss(loss) == "margin":
        return z
    if margin.ndim == 2:
        return F.cross_entropy(margin, y.to(torch.int64), reduction="none")
    return F.softplus(z)


def check_step_size(step_size: Any, default: float) -> float:
    """``step_size`` as a finite float > 0, or ``default`` when None."""
    if step_size is None:
        return float(default)
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(f"step_size must be a positive number or None, got {step_size!r}")
    if not (math.isfinite(float(step_size)) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0 or None, got {step_size!r}")
    return float(step_size)


def check_threat(threat: Any, *, allow_none: bool = False) -> ThreatModel | None:
    """A numeric threat model (or None when allowed)."""
    if threat is None and allow_none:
        return None
    if not isinstance(threat, ThreatModel):
        allowed = "a ThreatModel (Linf, L2, L1)" + (" or None" if allow_none else "")
        raise TypeError(f"threat must be {allowed}, got {type(threat).__name__}")
    threat.radius  # noqa: B018  (raises TypeError for a symbolic eps)
    return threat


def check_inputs(
    clf: Any, x: Any, y: Any, definition: Any, dist: Any, targeted: bool = False
) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """Validate an attack's inputs.

    Args:
        clf: a toyrobust classifier or a torch module (one or two logits).
        x: (N, d) floating tensor.
        y: (N,) labels: -1/+1 for a binary classifier, 0..K-1 for a K-class one (any numeric dtype; the one check
            of :func:`~toyrobust.classifiers.check_labels`); with ``targeted`` they are the target labels.
        definition: one of :data:`toyrobust.definitions.DEFINITIONS`.
        dist: the distribution, required by the projection and error-region definitions.
        targeted: whether ``y`` holds target labels.

    Returns:
        ``(clf, x, y_true)``: the classifier, ``x`` and the true labels as int64 on ``x.device``. A binary
        targeted attack towards ``t`` is the untargeted attack on the label ``-t``, so ``y_true = -y`` then
        (targeted attacks take binary classifiers only).
    """
    clf = as_classifier(clf)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, d), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        row = int((~torch.isfinite(x)).any(1).nonzero()[0])
        raise ValueError(f"x must be finite (an attack of a NaN or infinite point means nothing), got "
                         f"{x[row].tolist()[:8]} in row {row}")
    check_definition(definition)
    classes = classes_of(clf, x)
    y = check_labels(y, x.shape[0], classes, device=x.device)
    if needs_distribution(definition):
        if dist is None:
            raise ValueError(f"definition {definition!r} needs the distribution: pass dist=")
        check_label_space(classes, dist)
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be a bool, got {targeted!r}")
    if targeted and classes is not None:
        raise ValueError(f"targeted=True takes a binary classifier (labels -1/+1), got one with {classes} classes")
    return clf, x.detach(), (-y if targeted else y)


def loss_labels(
    definition: Any, clf: Classifier, x: torch.Tensor, y_true: torch.Tensor, dist: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The labels the loss pushes away from, and the clean predictions (prediction-change only): the
    definition's own :meth:`~toyrobust.definitions.Definition.loss_labels`."""
    return get_definition(definition).loss_labels(clf, x, y_true, dist)


def success_from_margin(
    definition: Any,
    margin: torch.Tensor,
    x_adv: torch.Tensor,
    y_true: torch.Tensor,
    dist: Any,
    clean_pred: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`toyrobust.definitions.is_adversarial` from an already computed margin (no extra forward pass).

    The definition's one rule with the same tie rule (a zero margin predicts +1); used inside attack loops for
    early stopping, while the returned mask of every attack is recomputed with ``is_adversarial`` on the returned
    points.
    """
    rule = get_definition(definition)
    pred = labels_from_scores(margin)
    # iterates are finite (projected into the ball around finite points): no NaN check, no host sync per step
    truth = dist.projected_bayes_label(x_adv, check=False) if rule.needs_truth else None
    return rule.rule(pred, y_true, truth, clean_pred)


def finish(
    clf: Classifier,
    x: torch.Tensor,
    y_true: torch.Tensor,
    x_cand: torch.Tensor,
    threat: ThreatModel | None,
    definition: str,
    dist: Any,
    grad_evals: int,
    x_raw: torch.Tensor | None = None,
) -> AttackResult:
    """Re-project candidates into the ball, compute the success mask on them, and package the result.

    The mask is :func:`~toyrobust.definitions.is_adversarial` on the returned points themselves, never a flag
    carried over from an iterate (PITFALLS 6). Norms are in the threat's norm (L2 when ``threat`` is None).
    """
    x_cand = x_cand.detach()
    x_adv = threat.project(x_cand, x) if threat is not None else x_cand
    with torch.no_grad():
        success = is_adversarial(definition, clf, x_adv, y_true, dist=dist, x=x)
    norms = (threat if threat is not None else L2(0.0)).norm(x_adv - x)
    return AttackResult(x_adv=x_adv, success=success, norms=norms, grad_evals=int(grad_evals), x_raw=x_raw)
