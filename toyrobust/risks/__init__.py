"""Closed-form standard and adversarial risks, registered per (distribution, classifier, threat, definition)."""

from . import linear, point_masses, spheres  # noqa: F401  (importing them registers their closed forms)
from .numeric import risk_function
from .registry import RiskResult, find_risk, register_risk, registered, risk
from .robust_loss import robust_logistic_loss, robust_logistic_loss_expr, worst_case_perturbation
from .special import Q, Qinv, logQ

__all__ = ["RiskResult", "register_risk", "find_risk", "registered", "risk", "risk_function",
           "robust_logistic_loss", "robust_logistic_loss_expr", "worst_case_perturbation", "Q", "Qinv", "logQ"]
