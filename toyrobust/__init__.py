"""toyrobust: analytic and Monte Carlo adversarial robustness on toy distributions.

Distributions (point masses, Tsipras, Gaussian mixtures, concentric spheres, Schmidt et al.'s Bernoulli model) know
their data law exactly, so their Bayes classifiers, support projections and adversarial risks can be written in
closed form, symbolically with sympy or numerically, and checked against real attacks.

The public names below are loaded on first use (PEP 562), so ``import toyrobust`` costs no sympy, scipy or torch
until something needs them; ``tr.<Name>`` also finds every registered distribution class.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

#: public name -> (submodule, attribute or None for the submodule itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "bounds": ("bounds", None),
    "risks": ("risks", None),
    "threats": ("threats", None),
    "attacks": ("attacks", None),
    "testing": ("testing", None),
    "hardpoints": ("hardpoints", None),
    "defenses": ("defenses", None),
    "sweeps": ("sweeps", None),
    "verification": ("verification", None),
    "verify": ("verification", "verify"),
    "minimal_distance": ("verification", "minimal_distance"),
    "VerificationResult": ("verification", "VerificationResult"),
    "DistanceResult": ("verification", "DistanceResult"),
    "sweep": ("sweeps", "sweep"),
    "KWTA": ("defenses", "KWTA"),
    "RandomizedSmoothing": ("defenses", "RandomizedSmoothing"),
    "certified_accuracy": ("defenses", "certified_accuracy"),
    "certified_accuracy_curves": ("defenses", "certified_accuracy_curves"),
    "exact_linear_radius": ("defenses", "exact_linear_radius"),
    "linear_certified_accuracy": ("defenses", "linear_certified_accuracy"),
    "train_with_noise": ("defenses", "train_with_noise"),
    "OddsAreOdd": ("defenses", "OddsAreOdd"),
    "kwta_mlp": ("defenses", "kwta_mlp"),
    "EOT": ("attacks", "EOT"),
    "bpda": ("attacks", "bpda"),
    "blackbox_pgd": ("attacks", "blackbox_pgd"),
    "transfer_attack": ("transfer", "transfer_attack"),
    "Attack": ("attacks", "Attack"),
    "AttackResult": ("attacks", "AttackResult"),
    "ATTACKS": ("attacks", "ATTACKS"),
    "make_attack": ("attacks", "make_attack"),
    "APGD": ("attacks", "APGD"),
    "optimal_risk": ("bounds", "optimal_risk"),
    "carlini_wagner_l2": ("attacks", "carlini_wagner_l2"),
    "default_attack": ("attacks", "default_attack"),
    "exact_attack": ("attacks", "exact_attack"),
    "fgsm": ("attacks", "fgsm"),
    "pgd": ("attacks", "pgd"),
    "Blocks": ("blocks", "Blocks"),
    "Classifier": ("classifiers", "Classifier"),
    "Linear": ("classifiers", "Linear"),
    "Quadratic": ("classifiers", "Quadratic"),
    "Radial": ("classifiers", "Radial"),
    "RotatedQuadratic": ("classifiers", "RotatedQuadratic"),
    "TorchClassifier": ("classifiers", "TorchClassifier"),
    "as_classifier": ("classifiers", "as_classifier"),
    "DEFINITIONS": ("definitions", "DEFINITIONS"),
    "Definition": ("definitions", "Definition"),
    "is_adversarial": ("definitions", "is_adversarial"),
    "Distribution": ("distributions", "Distribution"),
    "PointMasses": ("distributions", "PointMasses"),
    "Tsipras": ("distributions", "Tsipras"),
    "GaussianMixture": ("distributions", "GaussianMixture"),
    "ConcentricSpheres": ("distributions", "ConcentricSpheres"),
    "BernoulliModel": ("distributions", "BernoulliModel"),
    "registered_distributions": ("distributions", "registered_distributions"),
    "MLP": ("models", "MLP"),
    "LinearModel": ("models", "LinearModel"),
    "QuadraticNet": ("models", "QuadraticNet"),
    "RiskEstimate": ("montecarlo", "RiskEstimate"),
    "ESTIMATE_KINDS": ("montecarlo", "ESTIMATE_KINDS"),
    "clopper_pearson": ("montecarlo", "clopper_pearson"),
    "estimate_risk": ("montecarlo", "estimate_risk"),
    "Q": ("risks", "Q"),
    "Qinv": ("risks", "Qinv"),
    "logQ": ("risks", "logQ"),
    "RiskResult": ("risks", "RiskResult"),
    "register_risk": ("risks", "register_risk"),
    "risk": ("risks", "risk"),
    "risk_function": ("risks", "risk_function"),
    "robust_logistic_loss": ("risks", "robust_logistic_loss"),
    "robust_logistic_loss_expr": ("risks", "robust_logistic_loss_expr"),
    "ThreatModel": ("threats", "ThreatModel"),
    "Linf": ("threats", "Linf"),
    "L2": ("threats", "L2"),
    "L1": ("threats", "L1"),
    "TrainResult": ("training", "TrainResult"),
    "train": ("training", "train"),
}

__all__ = sorted(n for n in _LAZY if n not in ("testing",))  # testing needs hypothesis (the test extra)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        module = importlib.import_module(f".{name}", __name__)  # any submodule: tr.montecarlo, tr.crosscheck, ...
        globals()[name] = module
        return module
    if name[:1].isupper():  # a distribution or an attack registered by a module of its own (no line needed here)
        registry = list(importlib.import_module(".distributions", __name__).registered_distributions().values())
        registry += list(importlib.import_module(".attacks", __name__).ATTACKS.values())
        for cls in registry:
            if cls.__name__ == name:
                globals()[name] = cls
                return cls
    raise AttributeError(f"module 'toyrobust' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
