"""toyrobust: analytic and Monte Carlo adversarial robustness on toy distributions.

Distributions (point masses, Tsipras, Gaussian mixtures, concentric spheres) know their data law exactly, so
their Bayes classifiers, support projections and adversarial risks can be written in closed form, symbolically
with sympy or numerically, and checked against real attacks.
"""

from . import bounds as bounds  # the bounds namespace, tr.bounds
from .attacks import carlini_wagner_l2 as carlini_wagner_l2  # the attacks at top level: tr.pgd, ...
from .attacks import default_attack as default_attack
from .attacks import exact_attack as exact_attack
from .attacks import fgsm as fgsm
from .attacks import pgd as pgd
from .blocks import Blocks
from .bounds import optimal_risk as optimal_risk
from .classifiers import Classifier, Linear, Quadratic, Radial, RotatedQuadratic, TorchClassifier, as_classifier
from .definitions import DEFINITIONS, is_adversarial
from .distributions import (
                            ConcentricSpheres,
                            Distribution,
                            GaussianMixture,
                            PointMasses,
                            Tsipras,
                            registered_distributions,
)
from .models import MLP, LinearModel, QuadraticNet
from .montecarlo import RiskEstimate, clopper_pearson, estimate_risk
from .risks import (
                    Q,
                    Qinv,
                    RiskResult,
                    logQ,
                    register_risk,
                    risk,
                    risk_function,
                    robust_logistic_loss,
                    robust_logistic_loss_expr,
)
from .threats import L1, L2, Linf, ThreatModel
from .training import TrainResult, train

__version__ = "0.1.0"

# every registered distribution at top level (tr.BernoulliModel, ...), so a new one needs no line here
globals().update({cls.__name__: cls for cls in registered_distributions().values()})

__all__ = [
    "risk",
    "RiskResult",
    "register_risk",
    "risk_function",
    "robust_logistic_loss",
    "robust_logistic_loss_expr",
    "Q",
    "Qinv",
    "logQ",
    "LinearModel",
    "QuadraticNet",
    "MLP",
    "RotatedQuadratic",
    "TrainResult",
    "train",
    "RiskEstimate",
    "clopper_pearson",
    "estimate_risk",
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
    "registered_distributions",
    "ThreatModel",
    "Linf",
    "L2",
    "L1",
]
__all__ += [cls.__name__ for cls in registered_distributions().values() if cls.__name__ not in __all__]
