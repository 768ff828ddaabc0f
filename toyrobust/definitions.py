"""When is a perturbed point an adversarial example? Four definitions, as functions on batches.

For a point ``x`` with label ``y``, a classifier ``f`` and a perturbed point ``x'``:

============================  ==========================================================================
``"ball"``                    ``f(x') != y`` (the usual Lp-ball definition)
``"projection"``              ``f(x') != y`` and ``Bayes(pi(x')) == y``, with ``pi`` the orthogonal
                              projection onto the support (Stutz, seed 000): the true label must not change
``"error-region"``            ``f(x') != Bayes(pi(x'))``: ``x'`` lies where ``f`` disagrees with the truth
``"prediction-change"``       ``f(x') != f(x)``: the prediction moved, whatever the label
============================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .classifiers import Classifier, as_classifier, check_labels, classes_of, label_set

__all__ = ["DEFINITIONS", "Definition", "get_definition", "is_adversarial", "check_definition",
           "needs_distribution", "check_label_space"]

Rule = Callable[[torch.Tensor, Any, Any, Any], torch.Tensor]


@dataclass(frozen=True)
class Definition:
    """When a perturbed point counts as adversarial: a name, what the rule needs, and the rule itself.

    The rule maps the prediction at the perturbed point (``pred``, labels -1/+1, shape (N,)) and whatever the
    definition needs (the labels ``y``, the Bayes label of the projection ``truth``, the clean prediction
    ``clean``) to a bool mask of shape (N,). :func:`is_adversarial`, the attacks' success tests and the
    closed-form registry all use this one rule.

    Attributes:
        name: e.g. ``"projection"``.
        needs_label: the rule reads ``y``.
        needs_truth: the rule reads ``truth = Bayes(proj(x'))`` (so the distribution is needed).
        needs_clean: the rule reads the clean prediction ``f(x)``.
        summary: the rule in words.
    """

    name: str
    needs_label: bool
    needs_truth: bool
    needs_clean: bool
    summary: str
    _rule: Rule

    def rule(self, pred: torch.Tensor, y: Any = None, truth: Any = None, clean: Any = None) -> torch.Tensor:
        """The adversarial mask from the predictions at the perturbed points (see the class docstring)."""
        return self._rule(pred, y, truth, clean)

    def loss_labels(self, clf: Classifier, x: torch.Tensor, y: torch.Tensor, dist: Any) -> tuple[torch.Tensor, Any]:
        """The labels an attack's loss pushes away from, and the clean predictions when the rule needs them.

        ``ball`` and ``projection``: the true label; ``prediction-change``: the clean prediction ``f(x)``;
        ``error-region``: the Bayes label of the projection of the clean point (the truth near ``x``).
        """
        if self.needs_clean:
            clean = clf.predict(x)
            return clean, clean
        if self.needs_truth and not self.needs_label:
            return dist.projected_bayes_label(x).to(torch.int64), None
        return y, None

    def __str__(self) -> str:
        return self.name


def _ball(pred, y, truth, clean):
    return pred != y


def _projection(pred, y, truth, clean):
    return (pred != y) & (truth == y)


def _error_region(pred, y, truth, clean):
    return pred != truth


def _prediction_change(pred, y, truth, clean):
    return pred != clean


_OBJECTS: dict[str, Definition] = {d.name: d for d in (
    Definition("ball", True, False, False, "f(x') != y", _ball),
    Definition("projection", True, True, False, "f(x') != y and Bayes(proj(x')) == y", _projection),
    Definition("error-region", False, True, False, "f(x') != Bayes(proj(x'))", _error_region),
    Definition("prediction-change", False, False, True, "f(x') != f(x)", _prediction_change),
)}

#: the names of the definitions, in a fixed order
DEFINITIONS: tuple[str, ...] = tuple(_OBJECTS)


def get_definition(definition: Any) -> Definition:
    """The :class:`Definition` named by ``definition`` (a name or a Definition); ValueError naming the allowed
    ones otherwise."""
    if isinstance(definition, Definition):
        return definition
    if not isinstance(definition, str) or definition not in _OBJECTS:
        raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}, got {definition!r}")
    return _OBJECTS[definition]


def check_definition(definition: Any) -> str:
    """The name of ``definition`` (a name or a Definition); ValueError naming the allowed ones otherwise."""
    return get_definition(definition).name


def needs_distribution(definition: Any) -> bool:
    """Whether the definition reads the Bayes label of the projection (and so needs the distribution)."""
    return get_definition(definition).needs_truth


def check_label_space(classes: int | None, dist: Any) -> None:
    """Refuse a distribution whose labels a classifier cannot predict: a binary classifier (``classes`` None) needs
    labels -1/+1, a K-class one labels within 0..K-1 (``dist.n_classes`` <= K).

    Raises:
        ValueError: naming both label sets.
    """
    own = getattr(dist, "n_classes", None)
    if (classes is None) != (own is None) or (own is not None and own > classes):
        kind = "a binary classifier" if classes is None else f"a classifier with {classes} classes"
        raise ValueError(f"dist has labels {label_set(own)} but clf is {kind} (labels {label_set(classes)}); pass "
                         f"a classifier with {'one or two logits' if own is None else f'{own} logits'} for {dist!r}")


def is_adversarial(
    definition: Any,
    clf: Any,
    x_adv: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    dist: Any = None,
    x: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample mask: is ``x_adv`` an adversarial example under ``definition``?

    Args:
        definition: one of :data:`DEFINITIONS` (or a :class:`Definition`).
        clf: a classifier (or torch module).
        x_adv: perturbed points, shape (N, d).
        y: labels of the original points, shape (N,) (needed by "ball" and "projection"): -1/+1 for a binary
            classifier, 0..K-1 for a K-class one (checked: anything else is a ValueError).
        dist: the distribution (needed by "projection" and "error-region").
        x: the original points, shape (N, d) (needed by "prediction-change").

    Returns:
        bool tensor of shape (N,).
    """
    rule = get_definition(definition)
    clf = as_classifier(clf)
    if rule.needs_label and y is None:
        raise ValueError(f"definition {rule.name!r} needs the labels y")
    if rule.needs_truth and dist is None:
        raise ValueError(f"definition {rule.name!r} needs the distribution dist (for its projection)")
    if rule.needs_clean and x is None:
        raise ValueError(f"definition {rule.name!r} needs the original points x")
    if not isinstance(x_adv, torch.Tensor) or x_adv.ndim != 2:
        got = tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__
        raise ValueError(f"x_adv must be a tensor of shape (N, d), got {got}")
    classes = classes_of(clf, x_adv) if y is not None or rule.needs_truth else None
    if y is not None:
        y = check_labels(y, x_adv.shape[0], classes, device=x_adv.device)
    if rule.needs_truth:
        check_label_space(classes, dist)
    if x is not None and x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    truth = dist.projected_bayes_label(x_adv) if rule.needs_truth else None
    clean = clf.predict(x) if rule.needs_clean else None
    return rule.rule(clf.predict(x_adv), y, truth, clean)
