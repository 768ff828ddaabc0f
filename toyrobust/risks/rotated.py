"""Closed forms of :class:`~toyrobust.classifiers.RotatedQuadratic` (the analytic twin of a trained
:class:`~toyrobust.models.QuadraticNet`) by rotation invariance: its risks are those of its Quadratic.

Registered on :class:`~toyrobust.distributions.ConcentricSpheres` only. The same argument holds on a
:class:`~toyrobust.distributions.GaussianMixture` (``U^T x ~ N(y U^T mu, sigma^2 I)``, so the twin's risk is its
Quadratic's on the mixture with mean ``U^T mu``), but no closed form of a Quadratic on a Gaussian mixture is
registered, so such a delegation would answer nothing: register it beside that closed form when one exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..classifiers import RotatedQuadratic
from ..distributions import ConcentricSpheres
from ..threats import L2
from .registry import find_risk, register_risk

__all__: list[str] = []

#: every definition the Quadratic's closed form answers (see risks/spheres.py): the uniform laws on the spheres,
#: the projection onto them (radial), their Bayes labels (radial), the L2 ball and the clean prediction are all
#: invariant under x -> U^T x, so each definition's event for the twin at x is the Quadratic's event at U^T x
_DEFINITIONS = ("ball", "projection", "error-region", "prediction-change")


def _rotation_invariant_threat(threat: Any) -> None:
    if threat is not None and threat.coords is not None:
        raise NotImplementedError(
            f"no closed form for a RotatedQuadratic against {threat!r}: an L2 ball on a subset of coordinates is "
            "not rotation invariant; use tr.estimate_risk")


@register_risk(ConcentricSpheres, RotatedQuadratic, None, _DEFINITIONS)
@register_risk(ConcentricSpheres, RotatedQuadratic, L2, _DEFINITIONS)
def _spheres_rotated_quadratic(dist, clf, threat, definition):
    # uniform laws on spheres, their projection and the L2 ball are invariant under x -> U^T x
    _rotation_invariant_threat(threat)
    return _delegate(dist, dist, clf, threat, definition, "uniform law on spheres")


def _delegate(dist, rotated, clf, threat, definition, why):
    q = clf.quadratic
    result = find_risk(rotated, q, threat, definition)(rotated, q, threat, definition)
    key = (type(dist).__name__, "RotatedQuadratic", "None" if threat is None else type(threat).__name__, definition)
    return dataclasses.replace(result, key=key,
                               method=f"{result.method}; rotation invariance ({why}): the risk of the Quadratic")
