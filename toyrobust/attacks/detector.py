"""PGD against a detector-plus-classifier: fool the classifier while keeping the detector's statistic below tau.

The detector is an option of the attack (any object with ``statistic(x, generator=, n_noise=)``, a threshold
``_tau()``, ``errors(x, y, generator=)``, ``n_noise`` and the classifier it guards as ``clf``, such as
:class:`toyrobust.defenses.OddsAreOdd`), so this module needs nothing from :mod:`toyrobust.defenses`.

References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML 2018 (adaptive
    attacks on detectors); K. Roth, Y. Kilcher, T. Hofmann, "The odds are odd", ICML 2019.
"""

from __future__ import annotations

from typing import Any

import torch

from ..classifiers import labels_from_margin
from ..constraints import check_int, check_number, nonnegative
from ..rng import make_generator
from .base import SUPPORTED, Attack, AttackResult, Support
from .gradient import _check_flag
from .losses import check_step_size

__all__ = ["DetectorAwarePGD"]

_DETECTOR_METHODS = ("statistic", "errors", "_tau")


class DetectorAwarePGD(Attack):
    """PGD against the detector-plus-classifier: ``L(x') = -y m(x') - lam * relu(g(x') - tau)``.

    Maximised over the ball by steepest-ascent steps and exact projections, with ``g`` estimated from
    ``eot_samples`` fresh noise draws at every step (EOT over the detector's noise: the gradient is the average of
    the per-draw gradients). Each row keeps its best iterate: one that is wrong and not flagged (on that step's
    draw) over any other, then the larger ``L``. The result's ``success`` is "wrong and not flagged" at the returned
    point, with one fresh draw of the detector's noise from the attack's generator (the detector's own generator is
    not advanced); ``grad_evals`` counts one per row per step (each with ``1 + eot_samples`` forward passes).
    It attacks the detector's own classifier (``clf`` must be ``detector.clf``, or the model it wraps).

    Args:
        detector: a fitted detector (e.g. :class:`~toyrobust.defenses.OddsAreOdd`); required to run.
        lam: weight of the detection penalty (>= 0; 0 is the naive, detector-unaware margin attack).
        eot_samples: noise draws per step for ``g`` (None: the detector's ``n_noise``).
        steps: gradient steps (>= 0); step_size: alpha (None: ``2.5 eps / steps``).
        random_start: start uniformly in the ball.
    """

    name = "detector_aware_pgd"
    aliases = ("detector-aware",)
    randomized = True

    def __init__(self, *, detector: Any = None, lam: float = 10.0, eot_samples: int | None = None, steps: int = 40,
                 step_size: float | None = None, random_start: bool = True) -> None:
        if detector is not None and not all(hasattr(detector, m) for m in _DETECTOR_METHODS):
            raise TypeError(f"detector must be a fitted detector with statistic(), errors() and a threshold (e.g. "
                            f"toyrobust.defenses.OddsAreOdd), got {type(detector).__name__}")
        self._set_options(detector=detector, lam=check_number("lam", lam, nonnegative),
                          eot_samples=None if eot_samples is None else check_int("eot_samples", eot_samples, 1),
                          steps=check_int("steps", steps, 0),
                          step_size=None if step_size is None else check_step_size(step_size, 0.0),
                          random_start=_check_flag("random_start", random_start))

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        if self.detector is None:
            return Support(False, "detector_aware_pgd needs the detector: pass detector= (e.g. an OddsAreOdd)")
        if definition != "ball":
            return Support(False, f"the detector-aware attack judges 'wrong and not flagged' (the ball definition "
                                  f"on the defended system), got {definition!r}")
        return SUPPORTED

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        det = self.detector
        tau, k = det._tau(), det.n_noise if self.eot_samples is None else self.eot_samples
        eps = threat.radius
        alpha = check_step_size(self.step_size, 2.5 * eps / max(self.steps, 1))
        gen = make_generator(generator, x.device)
        yf, n = y.to(x.dtype), x.shape[0]
        xc = threat.random_start(x, gen) if (self.random_start and eps > 0) else x.clone()
        best_x = xc.clone()
        best_loss = torch.full((n,), -torch.inf, dtype=x.dtype, device=x.device)
        best_succ = torch.zeros(n, dtype=torch.bool, device=x.device)
        for t in range(self.steps + 1):
            xg = xc.detach().requires_grad_(True)
            with torch.enable_grad():
                g_stat = det.statistic(xg, generator=gen, n_noise=k)
                m = clf.margin(xg)
                loss = -yf * m - self.lam * torch.relu(g_stat - tau)
                grad = torch.autograd.grad(loss.sum(), xg)[0] if t < self.steps else None
            succ = (labels_from_margin(m.detach()) != y) & (g_stat.detach() <= tau)
            lv = loss.detach()
            better = (succ & ~best_succ) | ((succ == best_succ) & (lv > best_loss))
            best_x = torch.where(better[:, None], xc, best_x)
            best_loss = torch.where(better, lv, best_loss)
            best_succ = best_succ | succ
            if grad is not None:
                xc = threat.project(xc + threat.steepest_ascent(grad, alpha), x)
        x_adv = threat.project(best_x.detach(), x)
        with torch.no_grad():
            success = det.errors(x_adv, y, generator=gen)
        return AttackResult(x_adv=x_adv, success=success, norms=threat.norm(x_adv - x), grad_evals=n * self.steps)
