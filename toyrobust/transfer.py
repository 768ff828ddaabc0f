"""Substitute-model transfer attack: learn the victim from its labels, attack the copy, transfer.

It trains a model, so it sits above :mod:`toyrobust.training` and :mod:`toyrobust.montecarlo` (the white-box attacks
of :mod:`toyrobust.attacks` sit below both).

References:
    N. Papernot et al., "Practical black-box attacks against machine learning", AsiaCCS 2017; seed 003 (substitute
    models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .attacks.base import AttackResult
from .attacks.gradient import pgd
from .attacks.losses import check_inputs, check_int, check_threat
from .classifiers import as_classifier, labels_from_margin
from .models import MLP
from .montecarlo import clopper_pearson, derive_seed
from .rng import make_generator
from .threats import ThreatModel
from .training import train

__all__ = ["TransferResult", "transfer_attack"]


@dataclass
class TransferResult:
    """The outcome of a substitute-model transfer attack.

    Attributes:
        substitute: the trained substitute network (one logit).
        result: the white-box attack on the substitute, re-checked on the victim: ``result.success`` is
            "the victim misclassifies ``x_adv``".
        clean_correct: (N,) bool, the victim is right on the clean point.
        transfer_rate: fraction of the clean-correct points whose transferred ``x_adv`` fools the victim.
        ci_low, ci_high: its exact Clopper-Pearson interval at ``level``.
        adversarial_risk: fraction of all points misclassified by the victim at ``x_adv`` or at ``x``.
        agreement: fraction of the attacked clean points where substitute and victim agree.
        label_queries: label queries spent to train the substitute.
        level: the confidence level.
    """

    substitute: torch.nn.Module
    result: AttackResult
    clean_correct: torch.Tensor
    transfer_rate: float
    ci_low: float
    ci_high: float
    adversarial_risk: float
    agreement: float
    label_queries: int
    level: float


def transfer_attack(
    victim: Any,
    dist: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    label_queries: int = 2000,
    x_pool: torch.Tensor | None = None,
    hidden: Any = (64,),
    train_steps: int = 500,
    lr: float = 3e-3,
    attack_options: dict | None = None,
    seed: int = 0,
    level: float = 0.95,
) -> TransferResult:
    """Substitute-model transfer attack: learn the victim from its labels, attack the copy, transfer.

    1. Draw ``label_queries`` unlabeled points from ``dist`` (or take ``x_pool``) and query the victim's labels
       ``f(x_j)`` (no scores).
    2. Train a fresh :class:`~toyrobust.models.MLP` (``hidden`` widths) on them with :func:`toyrobust.train`
       (logistic loss, Adam).
    3. Attack the substitute with white-box :func:`~toyrobust.attacks.pgd` (margin loss; ``attack_options``).
    4. Evaluate the victim at the resulting points; the transfer rate counts the clean-correct points it
       fools, with its Clopper-Pearson interval.

    Args:
        victim: classifier or torch module (only its labels are used).
        dist: the distribution the unlabeled points come from.
        x: (N, d) points to attack; y: (N,) labels.
        threat: the ball.
        label_queries: number of label queries (>= 1) when ``x_pool`` is None.
        x_pool: (M, d) unlabeled points to query instead (then ``label_queries = M``).
        hidden: substitute widths.
        train_steps: optimisation steps of the substitute.
        lr: Adam learning rate.
        attack_options: keyword options of :func:`~toyrobust.attacks.pgd` (default ``steps=40``).
        seed: int >= 0 (pool, substitute initialisation, training, attack).
        level: confidence level of the interval.

    References:
        Papernot et al. 2017; seed 003 (substitute models).
    """
    victim = as_classifier(victim)
    _, x, y = check_inputs(victim, x, y, "ball", None)
    threat = check_threat(threat)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if x_pool is None:
        m = check_int("label_queries", label_queries, 1)
        x_pool, _ = dist.sample(m, generator=make_generator(derive_seed(seed, 1), x.device), device=x.device)
        x_pool = x_pool.to(x.dtype)
    elif not isinstance(x_pool, torch.Tensor) or x_pool.ndim != 2 or x_pool.shape[1] != x.shape[1]:
        raise ValueError(f"x_pool must be a tensor of shape (M, {x.shape[1]}), got "
                         f"{getattr(x_pool, 'shape', type(x_pool).__name__)}")
    with torch.no_grad():
        labels = victim.predict(x_pool)
    sub = MLP(x.shape[1], hidden, seed=derive_seed(seed, 2), device=x.device, dtype=x.dtype)
    train(sub, dist, steps=train_steps, lr=lr, dataset=(x_pool, labels), seed=derive_seed(seed, 3), eval_n=0,
          progress=False)
    opts = {"steps": 40, **(attack_options or {})}
    res = pgd(sub, x, y, threat, generator=derive_seed(seed, 4), **opts)
    with torch.no_grad():
        pred_adv = victim.predict(res.x_adv)
        pred_clean = victim.predict(x)
        sub_clean = labels_from_margin(sub(x))
    clean_correct = pred_clean == y
    fooled = (pred_adv != y) & clean_correct
    k, n = int(fooled.sum()), int(clean_correct.sum())
    lo, hi = clopper_pearson(k, n, level) if n > 0 else (0.0, 1.0)
    on_victim = AttackResult(x_adv=res.x_adv, success=pred_adv != y, norms=res.norms, grad_evals=res.grad_evals)
    return TransferResult(
        substitute=sub, result=on_victim, clean_correct=clean_correct, transfer_rate=k / n if n else float("nan"),
        ci_low=float(lo), ci_high=float(hi),
        adversarial_risk=float(((pred_adv != y) | ~clean_correct).to(torch.float64).mean()),
        agreement=float((sub_clean == pred_clean).to(torch.float64).mean()), label_queries=int(x_pool.shape[0]),
        level=float(level))
