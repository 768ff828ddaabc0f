"""Closed-form standard and adversarial risks, registered per (distribution, classifier, threat, definition).

Every module of this package is imported here, so the closed forms of a new distribution (a new module that calls
:func:`register_risk` and :func:`register_optimal_risk`) are found without editing a list.
"""

import importlib
import pkgutil

from .numeric import risk_function
from .registry import (
    AmbiguousRiskError,
    OptimalRisk,
    RiskResult,
    find_optimal_risk,
    find_risk,
    register_optimal_risk,
    register_risk,
    registered,
    risk,
)
from .robust_loss import robust_logistic_loss, robust_logistic_loss_expr, worst_case_perturbation
from .special import Q, Qinv, logQ

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["RiskResult", "OptimalRisk", "AmbiguousRiskError", "register_risk", "find_risk", "registered", "risk",
           "risk_function", "register_optimal_risk", "find_optimal_risk", "robust_logistic_loss",
           "robust_logistic_loss_expr", "worst_case_perturbation", "Q", "Qinv", "logQ"]
