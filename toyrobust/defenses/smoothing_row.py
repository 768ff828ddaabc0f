"""Randomized smoothing in the defense table (``toyrobust defend``): naive and EOT attacks, and the certified risk.

The defended system is Cohen et al.'s smoothed classifier of an MLP trained on Gaussian-noise inputs, judged by
its ``predict`` (a vote that is not significant abstains, and an abstention counts as an error). The naive attack
runs PGD on the base network without noise; the adaptive one runs PGD on the expectation over the noise (EOT),
which is what the smoothed classifier thresholds. Beside them the table reports the certified risk at the threat's
radius, ``1 - certified accuracy`` from ``certify`` (an upper bound on the smoothed classifier's risk with
probability ``1 - alpha`` per point; an Linf ball of radius eps lies inside the L2 ball of radius
``eps sqrt(d)``), so every attacked risk should lie below it and above the optimal risk.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..attacks.adaptive import EOT
from ..attacks.gradient import pgd
from ..distributions import GaussianMixture
from ..models import MLP
from ..montecarlo import derive_seed
from ..threats import L2, ThreatModel
from .evaluate import AttackSpec, Defense, EvalConfig, Setting, register_defense, register_setting
from .smoothing import RandomizedSmoothing, certified_accuracy, train_with_noise

__all__: list[str] = []


def _sizes(quick: bool) -> dict[str, Any]:
    return {"hidden": (64,), "steps": 300 if quick else 1000, "sigma": 0.5, "n": 1000 if quick else 10_000,
            "n0": 100, "alpha": 0.001, "attack_steps": 20 if quick else 50, "eot": 16}


def _build(dist: Any, threat: ThreatModel, config: EvalConfig) -> RandomizedSmoothing:
    s = _sizes(config.quick)
    model = MLP(int(dist.dim), s["hidden"], seed=derive_seed(config.seed, 1), device=config.device)
    train_with_noise(model, dist, s["sigma"], steps=s["steps"], lr=3e-3, seed=derive_seed(config.seed, 2),
                     eval_n=0, progress=False)
    return RandomizedSmoothing(model, s["sigma"])


def _errors(smooth: RandomizedSmoothing, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
            config: EvalConfig) -> torch.Tensor:
    """The smoothed classifier errs (or abstains) at the attacked point or already at the clean one."""
    s = _sizes(config.quick)
    at_adv = smooth.predict(x_adv, s["n"], s["alpha"], generator=config.generator(611))
    at_clean = smooth.predict(x, s["n"], s["alpha"], generator=config.generator(612))
    return (at_adv != y.to(at_adv.device)) | (at_clean != y.to(at_clean.device))


def _clean(smooth: RandomizedSmoothing, x: torch.Tensor, y: torch.Tensor, config: EvalConfig) -> torch.Tensor:
    s = _sizes(config.quick)
    pred = smooth.predict(x, s["n"], s["alpha"], generator=config.generator(612))
    return pred != y.to(pred.device)


def _naive(smooth: RandomizedSmoothing, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
           config: EvalConfig) -> torch.Tensor:
    res = pgd(smooth.base, x, y, threat, steps=_sizes(config.quick)["attack_steps"], generator=config.generator(601))
    return _errors(smooth, x, y, res.x_adv, config)


def _adaptive(smooth: RandomizedSmoothing, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
              config: EvalConfig) -> torch.Tensor:
    s = _sizes(config.quick)
    eot = EOT(smooth.base, samples=s["eot"], noise=s["sigma"], generator=config.generator(602))
    res = pgd(eot, x, y, threat, steps=s["attack_steps"], generator=config.generator(603))
    return _errors(smooth, x, y, res.x_adv, config) | _naive(smooth, x, y, threat, config)


def _certified(smooth: RandomizedSmoothing, dist: Any, threat: ThreatModel, x: torch.Tensor, y: torch.Tensor,
               config: EvalConfig) -> dict[str, float]:
    s = _sizes(config.quick)
    labels, radii = smooth.certify(x, s["n0"], s["n"], s["alpha"], generator=config.generator(604))
    k = len(threat.coord_indices(int(dist.dim))) if threat.coords is not None else int(dist.dim)
    radius = float(threat.radius) * (1.0 if isinstance(threat, L2) else math.sqrt(k) if threat.name == "linf"
                                     else 1.0)
    # an L1 ball of radius eps lies inside the L2 ball of radius eps; Linf inside eps sqrt(k)
    return {"certified risk (upper)": 1.0 - float(certified_accuracy(labels, radii, y, radius))}


register_defense(Defense(
    name="randomized smoothing (sigma 0.5)",
    build=_build,
    naive=AttackSpec("PGD on the base network", _naive),
    adaptive=AttackSpec("EOT PGD over the noise (+ naive)", _adaptive),
    extras=_certified,
    clean=_clean,
    target=lambda smooth: smooth.base,  # extra attacks see the base network; the smoothed classifier judges
    judge=_errors,
))

# smoothing certifies L2 balls: a setting where its certificate is not vacuous
register_setting(Setting("robust/non-robust D=20 (L2)", lambda quick: (GaussianMixture.robust_nonrobust(20), L2(0.5))))
