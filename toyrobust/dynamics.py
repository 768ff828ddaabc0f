"""Training dynamics from the source documents as library functions (data for tests and figures).

:func:`adversarial_training_dynamics` -- seed 003's adversarial-training fixed point on the robust/non-robust
features model: a linear model trained with the closed-form robust logistic loss at ``eps = 2a`` sends the
weights of the non-robust features to 0.

The analytic fixed point. On ``GaussianMixture.robust_nonrobust(D)`` (``x = y mu + z``, ``mu = (1, a, ..., a)``,
``a = sqrt(log D / (D - 1))``, ``z ~ N(0, I)``) the population robust logistic loss of ``sign(w.x + b)`` under an
Linf ball of radius eps is

    L(w, b) = E softplus(-y (w.x + b) + eps ||w||_1),

convex in (w, b). At ``w* = (c, 0, ..., 0)``, ``b* = 0``:

* the robust coordinate sees ``y x_1 - eps = (1 - eps) + z_1``: a one-dimensional logistic regression on the
  well-specified model ``N(+-(1 - eps), 1)``, whose minimiser is the true log-odds slope ``c = 2 (1 - eps)``
  (for ``eps < 1``; ``c = 0`` when ``eps >= 1``);
* each non-robust coordinate has smooth partial derivative ``-a E[s]`` (``s`` the logistic weight, independent
  of ``z_i``) and the subdifferential of ``eps |w_i|`` contributes ``eps E[s] [-1, 1]``, so 0 is optimal for
  ``w_i`` exactly when ``a <= eps``.

Hence for ``a <= eps < 1`` the global minimiser is ``w* = (2 (1 - eps), 0, ..., 0)``, ``b* = 0``: the
non-robust features are dropped. At seed 003's ``eps = 2a`` this holds whenever ``2a < 1``, i.e. D >= 11
(``a`` decreases with D); for smaller D the minimiser is ``w* = 0``. Below ``eps = a`` the non-robust
weights stay non-zero. (Seed 003 argues with a margin loss and a norm penalty; the logistic loss gives the same
fixed point with a closed-form scale.)

References:
    EPFL CS-433 lecture notes "Adversarial ML" (seed 003), "Constructing a robust classifier from scratch".
    D. Tsipras, S. Santurkar, L. Engstrom, A. Turner, A. Madry, "Robustness may be at odds with accuracy",
    ICLR 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .classifiers import Linear
from .constraints import check, integer_at_least
from .distributions import GaussianMixture
from .models import LinearModel
from .risks import risk
from .threats import Linf
from .training import TrainResult, train

__all__ = ["AdversarialTrainingDynamics", "adversarial_training_dynamics", "robust_fixed_point"]


def robust_fixed_point(D: int, eps: float) -> dict[str, Any]:
    """The minimiser of the population Linf-robust logistic loss on ``robust_nonrobust(D)`` (see module doc).

    Returns:
        ``{"w_robust": 2 max(1 - eps, 0), "w_nonrobust": 0.0 or None, "b": 0.0, "drops_nonrobust": a <= eps,
        "a": a}``; ``w_nonrobust`` is None when ``eps < a`` (the minimiser then keeps non-robust weights and has
        no closed form here).
    """
    D = int(check("D", D, integer_at_least(2)))
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    a = math.sqrt(math.log(D) / (D - 1))
    drops = a <= eps
    return {"w_robust": 2 * max(1 - eps, 0.0) if drops else None, "w_nonrobust": 0.0 if drops else None,
            "b": 0.0, "drops_nonrobust": drops, "a": a}


@dataclass
class AdversarialTrainingDynamics:
    """The trajectory of a linear model trained with the closed-form robust loss on ``robust_nonrobust(D)``.

    Attributes:
        D, eps, a: dimension, Linf radius, non-robust mean ``sqrt(log D / (D - 1))``.
        steps: recorded steps, shape (T,).
        weights: weights at those steps, shape (T, D); ``bias``: shape (T,).
        w_robust: ``w_1``, shape (T,); ``w_nonrobust_mean`` and ``w_nonrobust_absmax``: mean and max |.| of
            ``w_2..w_D``, shape (T,).
        standard_risk, adversarial_risk: closed-form risks of the model at each record (Gaussian formula,
            Linf drop ``eps ||w||_1``), shape (T,).
        fixed_point: :func:`robust_fixed_point` for (D, eps).
        train_result: the :class:`~toyrobust.training.TrainResult`.
    """

    D: int
    eps: float
    a: float
    steps: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    w_robust: np.ndarray
    w_nonrobust_mean: np.ndarray
    w_nonrobust_absmax: np.ndarray
    standard_risk: np.ndarray
    adversarial_risk: np.ndarray
    fixed_point: dict[str, Any]
    train_result: TrainResult = field(repr=False)


def adversarial_training_dynamics(
    D: int,
    eps: float | None = None,
    *,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 0.03,
    optimizer: str = "adam",
    schedule: str = "cosine",
    init: str = "bayes",
    record_every: int | None = None,
    seed: int = 0,
    device: Any = None,
    dtype: torch.dtype = torch.float64,
    progress: bool | None = False,
) -> AdversarialTrainingDynamics:
    """Seed 003's adversarial training of a linear model on the robust/non-robust features model.

    Trains ``LinearModel(D)`` with the closed-form Linf-robust logistic loss
    ``softplus(-y (w.x + b) + eps ||w||_1)`` on fresh samples of ``GaussianMixture.robust_nonrobust(D)`` and
    records the weights. Starting from the standard optimum (``init="bayes"``: the log-odds weights ``2 mu``,
    seed 003's starting point) the non-robust weights fall to 0 and ``w_1`` tends to ``2 (1 - eps)``
    (:func:`robust_fixed_point`).

    Args:
        D: dimension (int >= 2).
        eps: Linf radius; None means seed 003's ``2 sqrt(log D / (D - 1))``.
        steps, batch_size, lr, optimizer, schedule, seed, device, progress: as in :func:`toyrobust.train`
            (a cosine schedule lets the non-smooth ``|w_i|`` settle at 0; ``optimizer="sgd"`` with ``lr=0.5``
            follows seed 003's plain gradient steps).
        init: ``"bayes"`` (``w = 2 mu``, ``b = 0``) or ``"zeros"``.
        record_every: steps between records (None: ``max(1, steps // 100)``).
        dtype: parameter dtype (float64 by default).

    Returns:
        :class:`AdversarialTrainingDynamics`.
    """
    D = int(check("D", D, integer_at_least(2)))
    dist = GaussianMixture.robust_nonrobust(D)
    a = math.sqrt(math.log(D) / (D - 1))
    eps = 2 * a if eps is None else eps
    fixed = robust_fixed_point(D, eps)
    if init == "bayes":
        model = LinearModel.from_weights(2 * dist.mean.to_numpy(), 0.0, device=device, dtype=dtype)
    elif init == "zeros":
        model = LinearModel(D, device=device, dtype=dtype)
    else:
        raise ValueError(f"init must be 'bayes' or 'zeros', got {init!r}")
    record_every = max(1, steps // 100) if record_every is None else record_every
    result = train(model, dist, steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
                   adversarial="closed-form", threat=Linf(eps), seed=seed, device=device, eval_every=record_every,
                   eval_n=0, progress=progress)
    W = np.array(result.series("w"), dtype=float)
    bias = np.array(result.series("b"), dtype=float)
    # the closed forms of tr.risk (one home for the Gaussian linear risk)
    std = np.array([float(risk(dist, Linear(w.tolist(), float(b)))) for w, b in zip(W, bias, strict=True)])
    adv = np.array([float(risk(dist, Linear(w.tolist(), float(b)), Linf(eps))) for w, b in zip(W, bias, strict=True)])
    return AdversarialTrainingDynamics(
        D=D, eps=float(eps), a=a, steps=np.array(result.series("step")), weights=W, bias=bias,
        w_robust=W[:, 0], w_nonrobust_mean=W[:, 1:].mean(axis=1), w_nonrobust_absmax=np.abs(W[:, 1:]).max(axis=1),
        standard_risk=std, adversarial_risk=adv, fixed_point=fixed, train_result=result,
    )
