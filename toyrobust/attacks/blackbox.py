"""Black-box attacks (seed 003): finite-difference gradient estimates from scores with a counted query budget, and
the substitute-model transfer attack.

* **Score-based** (Chen et al. 2017's ZOO; Ilyas et al. 2018's NES): only the margin ``m(x)`` is observed. The
  gradient of the loss ``L(x) = -y m(x)`` is estimated by central differences along ``n`` directions,

      g_hat = (1/n) sum_i (L(x + h u_i) - L(x - h u_i)) / (2h) * u_i,      u_i ~ N(0, I)   ("gaussian"),
      g_hat = (d/n) sum_{i in S} (L(x + h e_i) - L(x - h e_i)) / (2h) * e_i,  S random, |S| = n  ("coordinate"),

  both unbiased for ``grad L`` up to the O(h^2) error of the central difference (exact for a linear ``L``,
  where the Gaussian estimate's error is only its sampling error, O(||grad L|| sqrt(d / n))), at ``2n`` queries
  per point. :func:`blackbox_pgd` runs PGD on that estimate until the budget is spent.
* **Transfer** (Papernot et al. 2017): label queries on unlabeled points train a substitute network, which is
  attacked with white-box PGD; the adversarial points are then shown to the victim.

References:
    P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh, "ZOO: zeroth order optimization based black-box attacks
    to deep neural networks without training substitute models", AISec 2017.
    A. Ilyas, L. Engstrom, A. Athalye, J. Lin, "Black-box adversarial attacks with limited queries and
    information", ICML 2018.
    N. Papernot, P. McDaniel, I. Goodfellow, S. Jha, Z. B. Celik, A. Swami, "Practical black-box attacks against
    machine learning", AsiaCCS 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..classifiers import labels_from_margin
from ..constraints import check_positive_float
from ..rng import make_generator
from ..threats import ThreatModel
from .base import SUPPORTED, Attack, AttackResult, Support
from .losses import check_int, check_step_size, eval_mode, finish

__all__ = ["finite_difference_gradient", "BlackBoxPGD", "blackbox_pgd", "DIRECTIONS"]

#: direction families of the finite-difference estimator
DIRECTIONS: tuple[str, ...] = ("gaussian", "coordinate")


def _check_directions(directions: Any) -> str:
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {', '.join(map(repr, DIRECTIONS))}, got {directions!r}")
    return directions


def finite_difference_gradient(
    score: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    n_directions: int = 20,
    step: float = 1e-3,
    directions: str = "gaussian",
    generator: Any = None,
) -> tuple[torch.Tensor, int]:
    """Central finite-difference estimate of ``grad score`` at each row of ``x``, from score queries only.

    ``g_hat = (1/n) sum_i (s(x + h u_i) - s(x - h u_i)) / (2h) u_i`` with ``u_i ~ N(0, I)`` (``"gaussian"``) or
    ``(d/n) sum_{i in S} (s(x + h e_i) - s(x - h e_i)) / (2h) e_i`` with ``S`` a uniformly random set of ``n``
    coordinates (``"coordinate"``; ``n = d`` is the plain central difference). Directions are drawn
    independently for each row. The score is evaluated without gradients, in batches of ``2 n N`` rows.

    Args:
        score: maps (M, d) to (M,) (e.g. a classifier's margin, or an attack loss).
        x: (N, d) points.
        n_directions: n >= 1 (at most d for ``"coordinate"``).
        step: h > 0.
        directions: ``"gaussian"`` or ``"coordinate"``.
        generator: ``torch.Generator`` or int seed (on ``x``'s device).

    Returns:
        ``(g_hat, queries)``: the (N, d) estimate and the number of score evaluations per row, ``2 n``.

    References:
        Chen et al. 2017 (coordinates); Ilyas et al. 2018 (Gaussian directions); seed 003.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating tensor of shape (N, d), got {getattr(x, 'shape', type(x).__name__)}")
    n_dir = check_int("n_directions", n_directions, 1)
    h = check_positive_float("step", step)
    directions = _check_directions(directions)
    N, d = x.shape
    if directions == "coordinate" and n_dir > d:
        raise ValueError(f"n_directions must be <= d = {d} for coordinate directions, got {n_dir}")
    gen = make_generator(generator, x.device)
    if directions == "gaussian":
        u = torch.randn((N, n_dir, d), generator=gen, device=x.device, dtype=x.dtype)
        scale = 1.0 / n_dir
    else:
        idx = torch.argsort(torch.rand((N, d), generator=gen, device=x.device), dim=1)[:, :n_dir]
        u = torch.zeros((N, n_dir, d), device=x.device, dtype=x.dtype)
        u.scatter_(2, idx[:, :, None], 1.0)
        scale = d / n_dir
    pts = torch.cat([x[:, None, :] + h * u, x[:, None, :] - h * u], dim=1).reshape(N * 2 * n_dir, d)
    with torch.no_grad():
        s = score(pts).reshape(N, 2, n_dir)
    diff = (s[:, 0] - s[:, 1]) / (2 * h)  # (N, n)
    return scale * torch.einsum("nk,nkd->nd", diff, u), 2 * n_dir


class BlackBoxPGD(Attack):
    """Score-based black-box PGD: steepest-ascent steps on the finite-difference gradient of ``-y m(x')``.

    Each iteration queries the margin at the current iterate (1 query per row: the success check and the best
    iterate) and, if the row is not yet adversarial and at least ``2 n + 1`` queries remain, estimates the
    gradient with :func:`finite_difference_gradient` (``2 n`` queries) and takes the step
    ``x' <- Proj_B(x' + steepest_B(g_hat, alpha))``; a row stops at its first adversarial iterate or when its
    budget cannot pay for another step and its check. Every call of the model made by the attack is counted
    (``AttackResult.queries``); the final success mask (computed on the returned, re-projected points, as for
    every attack) is the evaluator's check and is not. Ball definition only.

    Args:
        queries: budget of score queries per point (>= 0; 0 returns the clean points).
        n_directions: directions per gradient estimate.
        fd_step: the finite-difference step h.
        directions: ``"gaussian"`` or ``"coordinate"``.
        step_size: alpha; None means ``2.5 eps / T`` with ``T`` the number of steps the budget allows.
        random_start: start uniformly in the ball (else at the clean point).

    References:
        Seed 003 (black-box attacks by finite differences); Ilyas et al. 2018.
    """

    name = "blackbox_pgd"
    aliases = ("blackbox", "black-box")
    randomized = True

    def __init__(self, *, queries: int = 1000, n_directions: int = 20, fd_step: float = 1e-3,
                 directions: str = "gaussian", step_size: float | None = None, random_start: bool = False) -> None:
        if not isinstance(random_start, bool):
            raise TypeError(f"random_start must be a bool, got {random_start!r}")
        self._set_options(queries=check_int("queries", queries, 0),
                          n_directions=check_int("n_directions", n_directions, 1),
                          fd_step=check_positive_float("fd_step", fd_step), directions=_check_directions(directions),
                          step_size=None if step_size is None else check_step_size(step_size, 0.0),
                          random_start=random_start)

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        if definition != "ball":
            return Support(False, f"black-box PGD judges success under the ball definition only, got {definition!r}")
        return SUPPORTED

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        budget, n_dir, fd_step, directions = self.queries, self.n_directions, self.fd_step, self.directions
        step_size, random_start = self.step_size, self.random_start
        per_step = 2 * n_dir + 1
        n_steps = max((budget - 1) // per_step, 0)
        eps = threat.radius
        alpha = check_step_size(step_size, 2.5 * eps / max(n_steps, 1))
        gen = make_generator(generator, x.device)
        N = x.shape[0]
        used = torch.zeros(N, dtype=torch.int64, device=x.device)
        yf = y.to(x.dtype)

        def loss_fn(z: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
            return -yy.repeat_interleave(z.shape[0] // yy.shape[0]) * clf.margin(z)

        with eval_mode(clf), torch.no_grad():
            xc = threat.random_start(x, gen) if (random_start and eps > 0) else x.clone()
            best_x, best_loss = xc.clone(), torch.full((N,), -torch.inf, dtype=x.dtype, device=x.device)
            active = torch.arange(N, device=x.device)
            grad_evals = 0
            spent = 0  # queries of each still-active row (they all advance together)
            while active.numel() > 0 and budget - spent >= 1:
                xa = xc[active]
                m = clf.margin(xa)  # the check of the current iterate: 1 query
                used[active] += 1
                spent += 1
                lv = -yf[active] * m
                better = lv > best_loss[active]
                best_x[active] = torch.where(better[:, None], xa, best_x[active])
                best_loss[active] = torch.where(better, lv, best_loss[active])
                active = active[labels_from_margin(m) == y[active]]  # adversarial rows stop here
                if active.numel() == 0 or budget - spent < per_step:  # a step costs 2n, the next check 1
                    break
                xa, ya = xc[active], yf[active]
                g, q = finite_difference_gradient(lambda z, ya=ya: loss_fn(z, ya), xa, n_directions=n_dir,
                                                  step=fd_step, directions=directions, generator=gen)
                used[active] += q
                spent += q
                grad_evals += active.numel()
                xc[active] = threat.project(xa + threat.steepest_ascent(g, alpha), x[active])
            result = finish(clf, x, y, best_x, threat, "ball", None, grad_evals)
            result.queries = used
            return result




def blackbox_pgd(model: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, queries: int = 1000,
                 n_directions: int = 20, fd_step: float = 1e-3, directions: str = "gaussian",
                 step_size: float | None = None, random_start: bool = False,
                 generator: Any = None) -> tuple[AttackResult, torch.Tensor]:
    """Score-based black-box PGD as a function (see :class:`BlackBoxPGD`).

    Args:
        model: classifier or torch module (only its scores are used).
        x: (N, d) clean points; y: (N,) labels in {-1, +1}.
        threat: the ball.
        queries, n_directions, fd_step, directions, step_size, random_start: see :class:`BlackBoxPGD`.
        generator: seed or generator (random start and directions).

    Returns:
        ``(result, used)``: an :class:`AttackResult` (``grad_evals`` = gradient estimates made, summed over rows)
        and the (N,) int64 tensor of queries each point used (``used.sum()`` is the total).
    """
    attack = BlackBoxPGD(queries=queries, n_directions=n_directions, fd_step=fd_step, directions=directions,
                         step_size=step_size, random_start=random_start)
    res = attack.run(model, x, y, threat, generator=generator)
    used = res.queries if res.queries is not None else torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    return res, used
