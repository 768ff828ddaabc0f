"""Closed forms of :class:`~toyrobust.classifiers.RotatedQuadratic` (the analytic twin of a trained
:class:`~toyrobust.models.QuadraticNet`) by rotation invariance: its risks are those of its Quadratic."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..blocks import as_blocks
from ..classifiers import RotatedQuadratic
from ..distributions import ConcentricSpheres, GaussianMixture
from ..threats import L2
from .registry import find_risk, register_risk

__all__: list[str] = []




def _rotation_invariant_threat(threat: Any) -> None:
    if threat is not None and threat.coords is not None:
        raise NotImplementedError(
            f"no closed form for a RotatedQuadratic against {threat!r}: an L2 ball on a subset of coordinates is "
            "not rotation invariant; use tr.estimate_risk")


@register_risk(ConcentricSpheres, RotatedQuadratic, None)
@register_risk(ConcentricSpheres, RotatedQuadratic, L2)
def _spheres_rotated_quadratic(dist, clf, threat, definition):
    # uniform laws on spheres, their projection and the L2 ball are invariant under x -> U^T x
    _rotation_invariant_threat(threat)
    return _delegate(dist, dist, clf, threat, definition, "uniform law on spheres")


@register_risk(GaussianMixture, RotatedQuadratic, None)
@register_risk(GaussianMixture, RotatedQuadratic, L2)
def _mixture_rotated_quadratic(dist, clf, threat, definition):
    # U^T x ~ N(y U^T mu, sigma^2 I); the L2 ball and the (identity) projection commute with the rotation
    _rotation_invariant_threat(threat)
    if not dist.mean.is_numeric:
        raise NotImplementedError("a RotatedQuadratic needs a numeric mean to rotate")
    mean = clf.rotation.T @ torch.as_tensor(dist.mean.to_numpy(), dtype=torch.float64)
    rotated = GaussianMixture(as_blocks(mean, "mean"), dist.sigma)
    return _delegate(dist, rotated, clf, threat, definition, "Gaussian mixture with rotated mean U^T mu")


def _delegate(dist, rotated, clf, threat, definition, why):
    q = clf.quadratic
    result = find_risk(rotated, q, threat, definition)(rotated, q, threat, definition)
    key = (type(dist).__name__, "RotatedQuadratic", "None" if threat is None else type(threat).__name__, definition)
    return dataclasses.replace(result, key=key,
                               method=f"{result.method}; rotation invariance ({why}): the risk of the Quadratic")
