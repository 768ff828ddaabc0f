"""Label regions after projection as unions of polyhedra, for the projection and error-region definitions.

``region(label)`` returns a list of ``(A, b)`` (numpy float64, A of shape (m, d), b of shape (m,)) whose union of
closed polyhedra ``{z : A z <= b}`` is the closure of ``R_label = {z : Bayes(proj(z)) = label}``. The verifier
certifies against the closures (a larger set, so a certificate stays sound) and accepts a counterexample only
strictly inside a polyhedron (so the strict sides of the tie rules never matter).

Written as functions of a distribution so that a distribution can later own them (e.g. a ``label_regions``
method).

References:
    D. Stutz, M. Hein, B. Schiele, "Disentangling adversarial robustness and generalization", CVPR 2019 (the
    projection onto the data manifold); D. Tsipras et al., "Robustness may be at odds with accuracy", ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..distributions import GaussianMixture, PointMasses, Tsipras

__all__ = ["Region", "point_masses", "tsipras", "gaussian_mixture", "label_regions", "from_pieces"]

#: ``region(label) -> [(A, b), ...]``: the closure of R_label as a union of polyhedra {A z <= b}
Region = Callable[[int], list[tuple[np.ndarray, np.ndarray]]]


def _check_label(label: int) -> int:
    if label not in (-1, 1):
        raise ValueError(f"label must be -1 or +1, got {label!r}")
    return int(label)


def point_masses(dist: PointMasses) -> Region:
    """Point masses at 0 (+1) and gap (-1): projection to the nearer point (the midpoint to 0), so
    ``R_+1 = {z <= gap/2}`` and ``R_-1 = {z > gap/2}`` (closure ``z >= gap/2``)."""
    if not isinstance(dist, PointMasses) or dist.is_symbolic:
        raise TypeError(f"dist must be a numeric PointMasses, got {dist!r}")
    half = float(dist.gap) / 2

    def region(label: int) -> list[tuple[np.ndarray, np.ndarray]]:
        s = _check_label(label)
        return [(np.array([[float(s)]]), np.array([s * half]))]

    return region


def tsipras(dist: Tsipras) -> Region:
    """Tsipras et al.'s model: ``proj`` rounds ``z_1`` to ``s = sign(z_1)`` (0 to +1), then the Bayes rule
    ``s log(p/(1-p)) + 2 eta sum_{j>=2} z_j >= 0`` means +1, so

        R_y = union over s in {+1, -1} of {s z_1 >= 0} ∩ {y (s log(p/(1-p)) + 2 eta sum_{j>=2} z_j) >= 0}

    (closures of the strict sides)."""
    if not isinstance(dist, Tsipras) or dist.is_symbolic:
        raise TypeError(f"dist must be a numeric Tsipras, got {dist!r}")
    lg = math.log(float(dist.p) / (1 - float(dist.p)))
    eta, k = float(dist.eta), int(dist.d)

    def region(label: int) -> list[tuple[np.ndarray, np.ndarray]]:
        y = _check_label(label)
        pieces = []
        for s in (1.0, -1.0):
            A = np.zeros((2, k + 1))
            A[0, 0] = -s  # s z_1 >= 0
            A[1, 1:] = -y * 2 * eta  # -y 2 eta sum z_j <= y s lg
            pieces.append((A, np.array([0.0, y * s * lg])))
        return pieces

    return region


def gaussian_mixture(dist: GaussianMixture) -> Region:
    """A Gaussian mixture's support is all of R^d (projection = identity): ``R_y = {y (w.z + b) >= 0}`` for
    its linear Bayes rule."""
    if not isinstance(dist, GaussianMixture) or dist.is_symbolic:
        raise TypeError(f"dist must be a numeric GaussianMixture, got {dist!r}")
    bayes = dist.bayes_classifier()
    w = np.asarray(bayes.w.to_numpy(), dtype=np.float64)
    b = float(bayes.b)

    def region(label: int) -> list[tuple[np.ndarray, np.ndarray]]:
        y = _check_label(label)
        return [(-y * w[None, :], np.array([y * b]))]

    return region


def from_pieces(dist: object) -> Region:
    """The closure of ``dist``'s own polyhedral label regions (:meth:`Distribution.label_region_pieces`, strict rows
    closed) as a region builder."""
    pieces = getattr(dist, "label_region_pieces", None)
    if pieces is None or getattr(dist, "is_symbolic", True) or pieces(1) is None:
        raise TypeError(f"no polyhedral label regions for {type(dist).__name__}: its label_region_pieces gives None")

    def region(label: int) -> list[tuple[np.ndarray, np.ndarray]]:
        y = _check_label(label)
        return [(np.stack([np.asarray(a, dtype=np.float64) for a, _, _ in piece]),
                 np.array([float(c) for _, c, _ in piece])) for piece in pieces(y)]

    return region


def label_regions(dist: object) -> Region:
    """The region builder for ``dist``: the closure of the label regions the distribution declares
    (point masses, Tsipras, Gaussian mixtures, and any distribution whose ``label_region_pieces`` is polyhedral)."""
    return from_pieces(dist)
