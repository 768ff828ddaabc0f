"""The toy distributions: one module each, all sharing :class:`~toyrobust.distributions.base.Distribution`."""

from .base import LABELS, Distribution, Support
from .gaussian_mixture import GaussianMixture
from .point_masses import PointMasses
from .spheres import ConcentricSpheres
from .tsipras import Tsipras

#: every distribution class, by command-line name
REGISTRY = {cls.cli_name: cls for cls in (PointMasses, Tsipras, GaussianMixture, ConcentricSpheres)}

__all__ = ["LABELS", "Distribution", "Support", "PointMasses", "Tsipras", "GaussianMixture", "ConcentricSpheres",
           "REGISTRY"]
