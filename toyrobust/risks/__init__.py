"""Closed-form standard and adversarial risks, registered per (distribution, classifier, threat, definition)."""

from .registry import RiskResult, find_risk, register_risk, registered, risk

__all__ = ["RiskResult", "register_risk", "find_risk", "registered", "risk"]
