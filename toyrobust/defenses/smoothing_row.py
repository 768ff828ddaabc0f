"""Randomized smoothing in the defense table (``toyrobust defend``): naive and EOT attacks, and the certified risk.

The defended system is Cohen et al.'s smoothed classifier of an MLP trained on Gaussian-noise inputs, judged by
its ``predict`` (a vote that is not significant abstains, and an abstention counts as an error). The naive attack
runs PGD on the base network without noise; the adaptive one runs PGD on the expectation over the noise (EOT),
which is what the smoothed classifier thresholds. Beside them the table reports the certified risk at the threat's
radius, ``1 - certified accuracy`` from ``certify`` (an upper bound on the smoothed classifier's risk with
probability ``1 - alpha`` per point), so every attacked risk should lie below it and above the optimal risk.

The certificate is about L2 balls. An L1 ball of radius eps lies inside the L2 ball of the same radius, so under an
L1 threat the column is the L2 certificate at eps (sound, and tight at the L1 ball's corners). An Linf ball of
radius eps on k coordinates is held only by the L2 ball of radius ``eps sqrt(k)`` (its corners are that far out):
the certificate at that radius is still a valid upper bound, but it says nothing useful about the Linf ball (no
radius beyond ``sigma Phi^{-1}(alpha^(1/n))`` can be certified with ``n`` votes, 1.23 for the table's sizes, so in
the table's Linf settings it is 1). Under Linf the column ``certified risk (upper)`` is therefore NaN (printed
``n/a``), the honest implication is kept as ``certified risk (enclosing L2 ball)``, and a note on the row says why.
"""

from __future__ import annotations

import math
from statistics import NormalDist
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


def _enclosing_l2_radius(dist: Any, threat: ThreatModel) -> float:
    """Radius of the smallest L2 ball about x that holds the threat's ball: eps for L2 and L1, eps sqrt(k) for Linf on
    k coordinates."""
    if threat.name == "linf":
        return float(threat.radius) * math.sqrt(threat.n_free(int(dist.dim)))
    return float(threat.radius)


def _certified(smooth: RandomizedSmoothing, dist: Any, threat: ThreatModel, x: torch.Tensor, y: torch.Tensor,
               config: EvalConfig) -> dict[str, float]:
    """``1 - certified accuracy`` at the radius of the L2 ball that holds the threat's ball (see the module
    docstring: under Linf the column is n/a and the implication is kept under its own name)."""
    s = _sizes(config.quick)
    labels, radii = smooth.certify(x, s["n0"], s["n"], s["alpha"], generator=config.generator(604))
    risk = 1.0 - float(certified_accuracy(labels, radii, y, _enclosing_l2_radius(dist, threat)))
    if threat.name != "linf":
        return {"certified risk (upper)": risk}
    return {"certified risk (upper)": math.nan, "certified risk (enclosing L2 ball)": risk}


def _notes(dist: Any, threat: ThreatModel, config: EvalConfig) -> dict[str, str]:
    """Why the certified risk reads as it does under an L1 or an Linf threat (nothing to say under L2)."""
    if threat.name == "l1":
        return {"certified risk (upper)": "the L2 certificate at eps (the L1 ball lies inside the L2 ball of radius "
                                          "eps)"}
    if threat.name != "linf":
        return {}
    s = _sizes(config.quick)
    k = threat.n_free(int(dist.dim))
    enclosing, cap = _enclosing_l2_radius(dist, threat), s["sigma"] * NormalDist().inv_cdf(s["alpha"] ** (1 / s["n"]))
    limit = f"the largest radius n = {s['n']} votes can certify is sigma Phi^-1(alpha^(1/n)) = {cap:.3f}"
    there = ("so the certificate there is 1 whatever the model" if enclosing > cap else
             "so the certificate there is valid but loose by up to sqrt(k) in radius")
    return {"certified risk (upper)": (
        f"n/a (L2 certificate vs Linf ball): smoothing certifies L2 balls; this Linf ball (radius "
        f"{float(threat.radius):g}, {k} coordinates) fits only in the L2 ball of radius {float(threat.radius):g} "
        f"sqrt({k}) = {enclosing:.3f}; {limit}, {there} (kept as 'certified risk (enclosing L2 ball)')")}


register_defense(Defense(
    name="randomized smoothing (sigma 0.5)",
    build=_build,
    naive=AttackSpec("PGD on the base network", _naive),
    adaptive=AttackSpec("EOT PGD over the noise (+ naive)", _adaptive),
    extras=_certified,
    clean=_clean,
    target=lambda smooth: smooth.base,  # extra attacks see the base network; the smoothed classifier judges
    judge=_errors,
    notes=_notes,
))

# smoothing certifies L2 balls: a setting where its certificate is not vacuous
register_setting(Setting("robust/non-robust D=20 (L2)", lambda quick: (GaussianMixture.robust_nonrobust(20), L2(0.5))))
