"""Closed-form standard and adversarial risks, registered per (distribution, classifier, threat, definition)."""

from . import spheres  # noqa: F401  (registers the concentric-spheres closed forms)
from . import linear, point_masses  # noqa: F401  (register the Gaussian/Tsipras linear and point-mass forms)
from .numeric import risk_function
from .robust_loss import robust_logistic_loss, robust_logistic_loss_expr, worst_case_perturbation
from .special import Q, Qinv, logQ
from .registry import RiskResult, find_risk, register_risk, registered, risk

__all__ = ["RiskResult", "register_risk", "find_risk", "registered", "risk"]
