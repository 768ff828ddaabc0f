"""toyrobust: analytic and Monte Carlo adversarial robustness on toy distributions.

Distributions (point masses, Tsipras, Gaussian mixtures, concentric spheres) know their data law exactly, so
their Bayes classifiers, support projections and adversarial risks can be written in closed form, symbolically
with sympy or numerically, and checked against real attacks.
"""

from .blocks import Blocks
from .classifiers import Classifier, Linear, Quadratic, Radial, TorchClassifier, as_classifier
from .definitions import DEFINITIONS, is_adversarial
from .distributions import ConcentricSpheres, Distribution, GaussianMixture, PointMasses, Tsipras
from .threats import L1, L2, Linf, ThreatModel

__version__ = "0.1.0"

__all__ = [
    "Blocks",
    "Classifier",
    "Linear",
    "Quadratic",
    "Radial",
    "TorchClassifier",
    "as_classifier",
    "DEFINITIONS",
    "is_adversarial",
    "Distribution",
    "PointMasses",
    "Tsipras",
    "GaussianMixture",
    "ConcentricSpheres",
    "ThreatModel",
    "Linf",
    "L2",
    "L1",
]
