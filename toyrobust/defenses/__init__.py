"""Defenses (randomized smoothing, k-winners-take-all, odds-are-odd detection) and their adaptive evaluation
against the toy distributions' exact and optimal risks."""

from . import smoothing_row  # noqa: F401,E402  (registers the smoothing row of the defense table)
from .detection import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403
from .kwta import *  # noqa: F401,F403
from .smoothing import (  # noqa: F401
                        RandomizedSmoothing,
                        certified_accuracy,
                        certified_accuracy_curves,
                        exact_linear_radius,
                        linear_certified_accuracy,
                        train_with_noise,
)
