"""Odds-are-odd detection of adversarial examples (Roth, Kilcher and Hofmann 2019), in the binary case.

Roth et al. compare the logit differences ``Delta_{t,i}(x) = l_i(x) - l_t(x)`` (``t`` the predicted class) with
and without random noise, ``Dbar_{t,i}(x) = E_u[Delta_{t,i}(x + u) - Delta_{t,i}(x)]``, and flag ``x`` when
``Dbar_{t,i}(x) >= tau_{t,i}`` for some ``i != t`` (seed 004, section 6). With two classes and one margin
``m = l_{+1} - l_{-1}`` there is one other class, ``Delta_{t,-t}(x) = -t m(x)`` with ``t = sign m(x)``, so the
statistic is

    g(x) = E_{u ~ N(0, sigma^2 I)} [ -t (m(x + u) - m(x)) ],   t = sign m(x) (a zero margin predicts +1),

the expected shift of the logit difference toward the other class under noise. Roth et al.'s argument: an
attack pushes ``x`` just across the boundary into a thin, "odd" region, and noise tends to pull it back, so
``g`` is large on adversarial points. To second order ``g(x) ~ -t sigma^2 / 2 * tr(Hessian m(x))``: for a
linear (or nearly linear) classifier ``E g = 0`` everywhere and the detector flags adversarial and clean points
alike, at the false-positive rate -- on toy distributions whose best classifier is linear there is nothing to
detect, which the evaluation shows. ``g`` is estimated with ``n_noise`` draws. In the binary case Roth et al.'s
class-pair thresholds become the thresholds of the two predicted classes; one pooled threshold is used here
(the pooled false-positive rate is the one controlled), and the paper's z-scoring is a monotone map of ``g``
per class that a pooled threshold does not need.

The threshold is the conformal quantile of the statistic on ``n`` clean points: the ``ceil((n + 1)(1 - fpr))``-th
smallest value, so that a fresh clean point (with fresh noise) is flagged with probability at most ``fpr``
(and at least ``fpr - 1/(n + 1)``) when ``g`` has a continuous law.

The detector-plus-classifier counts a point as an error when the classifier is wrong **and** the detector does
not flag it (a flagged point is rejected, not misclassified).

References:
    K. Roth, Y. Kilcher, T. Hofmann, "The odds are odd: a statistical test for detecting adversarial
    examples", ICML 2019.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..attacks.base import AttackResult
from ..attacks.detector import DetectorAwarePGD
from ..attacks.losses import check_int, eval_mode
from ..classifiers import Classifier, as_classifier, labels_from_margin
from ..constraints import check_open_unit_float, check_positive_float
from ..montecarlo import clopper_pearson
from ..rng import make_generator
from ..threats import ThreatModel

__all__ = ["OddsAreOdd", "detector_aware_pgd"]


def check_sigma(sigma: Any, name: str = "sigma") -> float:
    """A finite number > 0 (:func:`toyrobust.constraints.check_positive_float`)."""
    return check_positive_float(name, sigma)


def check_fpr(fpr: Any) -> float:
    """The false-positive rate as a float in (0, 1) (:func:`toyrobust.constraints.check_open_unit_float`)."""
    return check_open_unit_float("fpr", fpr)


class OddsAreOdd:
    """The odds-are-odd detector for a binary classifier (one or two logits), with its classifier.

    Args:
        model: the classifier (a torch module or toyrobust classifier; its margin is the logit difference).
        sigma: standard deviation of the Gaussian test noise (> 0).
        n_noise: noise draws per point for the statistic (>= 1).
        fpr: target false-positive rate on clean points, in (0, 1).
        generator: ``torch.Generator`` or int seed for the noise (None: fresh OS entropy); it advances with
            every call, and every method also takes a ``generator=`` of its own.

    Attributes:
        threshold: the fitted threshold tau (None before :meth:`fit`).

    References:
        Roth, Kilcher and Hofmann, ICML 2019; seed 004, section 6.
    """

    def __init__(self, model: Any, sigma: float = 0.5, n_noise: int = 64, fpr: float = 0.05, generator: Any = None):
        self.clf: Classifier = as_classifier(model)
        self.sigma = check_sigma(sigma)
        self.n_noise = check_int("n_noise", n_noise, 1)
        self.fpr = check_fpr(fpr)
        if generator is not None and not isinstance(generator, torch.Generator):
            make_generator(generator)  # validate the seed now
        self._gen_spec = generator
        self._gens: dict[str, torch.Generator] = {}
        self.threshold: float | None = None

    def __repr__(self) -> str:
        return (f"OddsAreOdd(sigma={self.sigma}, n_noise={self.n_noise}, fpr={self.fpr}, "
                f"threshold={self.threshold})")

    def _generator(self, generator: Any, device: torch.device) -> torch.Generator:
        if generator is not None:
            return make_generator(generator, device)
        key = str(device)
        if key not in self._gens:
            if isinstance(self._gen_spec, torch.Generator):
                if self._gen_spec.device.type != torch.device(device).type:
                    raise ValueError(f"the detector's generator lives on {self._gen_spec.device}, inputs on {device}")
                self._gens[key] = self._gen_spec
            else:
                self._gens[key] = make_generator(self._gen_spec, device)
        return self._gens[key]

    def _check_x(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
        if x.ndim != 2 or not x.dtype.is_floating_point:
            raise ValueError(f"x must be a floating tensor of shape (N, d), got shape {tuple(x.shape)}, "
                             f"dtype {x.dtype}")
        return x

    def statistic(self, x: torch.Tensor, *, generator: Any = None, n_noise: int | None = None) -> torch.Tensor:
        """``g(x) = mean_j -t(x) (m(x + sigma u_j) - m(x))`` with ``t(x)`` the prediction, shape (N,).

        Differentiable in ``x`` (``t`` is held constant), so an attack can descend on it; with fresh draws at every
        call its gradient is the EOT estimate of ``grad E_u g``.

        Args:
            x: (N, d) points.
            generator: overrides the detector's generator for this call.
            n_noise: overrides the number of draws for this call.
        """
        x = self._check_x(x)
        k = self.n_noise if n_noise is None else check_int("n_noise", n_noise, 1)
        gen = self._generator(generator, x.device)
        n = x.shape[0]
        with eval_mode(self.clf):  # the deployed model (no dropout, batch-norm running statistics), mode restored
            m0 = self.clf.margin(x)
            t = labels_from_margin(m0.detach()).to(x.dtype)
            u = torch.randn((k * n, x.shape[1]), generator=gen, device=x.device, dtype=x.dtype)
            mk = self.clf.margin(x.repeat(k, 1) + self.sigma * u).reshape(k, n)
        return -t * (mk.mean(dim=0) - m0)

    def fit(self, x_clean: torch.Tensor, *, generator: Any = None) -> OddsAreOdd:
        """Set the threshold to the conformal ``(1 - fpr)`` quantile of ``g`` on clean points; returns self.

        ``tau = g_(r)``, the r-th smallest of the ``n`` clean statistics, ``r = ceil((n + 1)(1 - fpr))``; needs
        ``n >= (1 - fpr) / fpr`` so that ``r <= n``.
        """
        x_clean = self._check_x(x_clean)
        n = x_clean.shape[0]
        r = math.ceil((n + 1) * (1 - self.fpr) - 1e-9)
        if r > n:
            raise ValueError(f"x_clean must hold at least {math.ceil((1 - self.fpr) / self.fpr)} points for "
                             f"fpr={self.fpr}, got {n}")
        with torch.no_grad():
            g = self.statistic(x_clean, generator=generator)
        self.threshold = float(torch.sort(g).values[r - 1])
        return self

    def _tau(self) -> float:
        if self.threshold is None:
            raise RuntimeError("the detector has no threshold yet: call fit(x_clean) first")
        return self.threshold

    def detect(self, x: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        """Flags, bool (N,): ``g(x) > tau`` (fresh noise)."""
        tau = self._tau()
        with torch.no_grad():
            return self.statistic(x, generator=generator) > tau

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's labels -1/+1 (the detector does not change them)."""
        return self.clf.predict(x)

    def errors(self, x: torch.Tensor, y: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        """Errors of the detector-plus-classifier, bool (N,): wrong label **and** not flagged."""
        y = torch.as_tensor(y, device=x.device)
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        return (self.predict(x) != y) & ~self.detect(x, generator=generator)


    def detection_rate(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, level: float = 0.95,
                       generator: Any = None) -> tuple[float, float, float]:
        """Fraction of the points (those where ``mask`` is True, e.g. the attacked points that fool the
        classifier) that are flagged, with its exact Clopper-Pearson interval: ``(rate, low, high)``."""
        flags = self.detect(x, generator=generator)
        if mask is not None:
            mask = torch.as_tensor(mask, device=flags.device)
            if mask.shape != flags.shape or mask.dtype != torch.bool:
                raise ValueError(f"mask must be a bool tensor of shape {tuple(flags.shape)}, got "
                                 f"{mask.dtype} {tuple(mask.shape)}")
            flags = flags[mask]
        return _rate(int(flags.sum()), flags.numel(), level)

    def combined_risk(self, x: torch.Tensor, y: torch.Tensor, *, level: float = 0.95,
                      generator: Any = None) -> tuple[float, float, float]:
        """Risk of the detector-plus-classifier on the points ``x`` (clean or attacked): the fraction that are
        misclassified and not flagged, with its exact Clopper-Pearson interval: ``(risk, low, high)``."""
        err = self.errors(x, y, generator=generator)
        return _rate(int(err.sum()), err.numel(), level)


def _rate(k: int, n: int, level: float) -> tuple[float, float, float]:
    if n == 0:
        return math.nan, 0.0, 1.0
    lo, hi = clopper_pearson(k, n, level)
    return k / n, float(lo), float(hi)


def detector_aware_pgd(detector: OddsAreOdd, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
                       lam: float = 10.0, eot_samples: int | None = None, steps: int = 40,
                       step_size: float | None = None, random_start: bool = True,
                       generator: Any = None) -> AttackResult:
    """PGD against the detector-plus-classifier, as a function: ``DetectorAwarePGD(detector=detector, ...)`` run on
    ``detector.clf`` (see :class:`toyrobust.attacks.detector.DetectorAwarePGD`).

    Args:
        detector: a fitted :class:`OddsAreOdd`.
        x: (N, d) clean points; y: (N,) labels in {-1, +1}.
        threat: the ball.
        lam, eot_samples, steps, step_size, random_start: see :class:`~toyrobust.attacks.detector.DetectorAwarePGD`.
        generator: seed or generator for the random start and the attack's noise draws.

    Returns:
        :class:`~toyrobust.attacks.AttackResult` whose ``success`` is "wrong and not flagged" at the returned point.
    """
    if not isinstance(detector, OddsAreOdd):
        raise TypeError(f"detector must be an OddsAreOdd, got {type(detector).__name__}")
    attack = DetectorAwarePGD(detector=detector, lam=lam, eot_samples=eot_samples, steps=steps, step_size=step_size,
                              random_start=random_start)
    return attack.run(detector.clf, x, y, threat, generator=generator)
