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
from typing import Any

import torch

from .classifiers import Classifier, as_classifier

__all__ = ["DEFINITIONS", "is_adversarial", "check_definition", "needs_distribution"]


def _ball(clf: Classifier, dist: Any, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return clf.predict(x_adv) != y


def _projection(clf, dist, x, y, x_adv):
    return (clf.predict(x_adv) != y) & (dist.bayes_label(dist.project(x_adv)) == y)


def _error_region(clf, dist, x, y, x_adv):
    return clf.predict(x_adv) != dist.bayes_label(dist.project(x_adv))


def _prediction_change(clf, dist, x, y, x_adv):
    return clf.predict(x_adv) != clf.predict(x)


_RULES: dict[str, Callable[..., torch.Tensor]] = {
    "ball": _ball,
    "projection": _projection,
    "error-region": _error_region,
    "prediction-change": _prediction_change,
}

#: the names of the definitions, in a fixed order
DEFINITIONS: tuple[str, ...] = tuple(_RULES)


def check_definition(definition: Any) -> str:
    """Return ``definition`` if it names a definition; raise ValueError naming the allowed ones otherwise."""
    if definition not in _RULES:
        raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}, got {definition!r}")
    return definition


def needs_distribution(definition: str) -> bool:
    """Whether the definition reads the Bayes label of the projection (and so needs the distribution)."""
    return check_definition(definition) in ("projection", "error-region")


def is_adversarial(
    definition: str,
    clf: Any,
    x_adv: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    dist: Any = None,
    x: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample mask: is ``x_adv`` an adversarial example under ``definition``?

    Args:
        definition: one of :data:`DEFINITIONS`.
        clf: a classifier (or torch module).
        x_adv: perturbed points, shape (N, d).
        y: labels -1/+1 of the original points, shape (N,) (needed by "ball" and "projection").
        dist: the distribution (needed by "projection" and "error-region").
        x: the original points, shape (N, d) (needed by "prediction-change").

    Returns:
        bool tensor of shape (N,).
    """
    check_definition(definition)
    clf = as_classifier(clf)
    if definition in ("ball", "projection") and y is None:
        raise ValueError(f"definition {definition!r} needs the labels y")
    if needs_distribution(definition) and dist is None:
        raise ValueError(f"definition {definition!r} needs the distribution dist (for its projection)")
    if definition == "prediction-change" and x is None:
        raise ValueError("definition 'prediction-change' needs the original points x")
    if y is not None:
        y = torch.as_tensor(y, device=x_adv.device)
        if y.shape != (x_adv.shape[0],):
            raise ValueError(f"y must have shape ({x_adv.shape[0]},), got {tuple(y.shape)}")
    if x is not None and x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    return _RULES[definition](clf, dist, x, y, x_adv)
