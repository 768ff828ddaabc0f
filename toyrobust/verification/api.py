"""Complete verification of ReLU networks: robust (proven), vulnerable (with a counterexample) or unknown.

:func:`verify` and :func:`minimal_distance` hand a model to the first of :data:`VERIFIERS` that accepts it: a
:class:`~toyrobust.models.QuadraticNet` goes to :mod:`.quadratic` (exact under L2: the trust-region subproblem),
anything else to the ReLU verifier described here.

For each point ``x`` with label ``y`` and ball ``B(x)``, the question is whether some ``x' in B(x)`` is
adversarial. With a label region ``R_l`` (closure of ``{z : Bayes(proj(z)) = l}``, a union of polyhedra, see
:mod:`.regions`), each definition is a set of *sub-problems* ``(l, R)``: "is there ``x' in B(x) ∩ R`` with
``f(x') != l``?"

* ``"ball"``: ``(y, R^d)``;  ``"projection"``: ``(y, R_y)``;  ``"error-region"``: ``(+1, R_+1)`` and ``(-1, R_-1)``.

Pipeline per batch (every stage only sees what the earlier ones left open):

1. forward pass at ``x' = x`` (a misclassified clean point is vulnerable with ``x_adv = x``);
2. a quick attack, by default PGD with the margin loss (:class:`toyrobust.attacks.PGD`; ``attack=`` picks another),
   each candidate re-checked by our own forward pass, ball membership and region test;
3. IBP then CROWN bounds (:mod:`.bounds`, batched, in float64 on the model's device): a sub-problem is robust when
   the lower bound of ``l * m`` over the ball exceeds ``tol``, or when every polyhedron of ``R`` misses the ball
   (one row ``a.x <= b`` with ``min_B a.x > b``);
3'. alpha-CROWN (:mod:`.alpha`, Xu et al. 2021) on the sub-problems CROWN leaves open, batched: the lower ReLU
   slopes of the unstable neurons optimised per point by projected Adam (float32, on the model's device, CROWN's
   intermediate bounds kept), then the bound recomputed with the clamped slopes in float64; robust when that
   exceeds ``tol`` (``alpha_crown=`` sets its iterations, step size and time budget, or turns it off);
3''. for L2 balls, Quad-CROWN (:mod:`.quadcrown`) on what is still open, per point: the first hidden layer's upper
   relaxations quadratic, the bound minimised exactly over the ball (a trust-region subproblem), its parameters
   optimised by projected Adam; robust when its proven bound exceeds ``tol``, and its minimiser is a candidate
   counterexample, checked like the attack's (``quad_crown=`` sets it or turns it off);
3'''. for L2 balls (unless ``method="bounds"``), a branch and bound with Quad-CROWN bounds (:mod:`.quadbab`, the
   splits' constraints by beta multipliers as in beta-CROWN, Wang et al. 2021) per open point, for Quad-CROWN's
   ``branch_share`` of its time limit: robust when every leaf is proven, its leaves' minimisers tried as
   counterexamples;
4. for Linf and L1 balls, the MILP of Tjeng et al. (:mod:`.milp`) with the CROWN pre-activation bounds (stable
   neurons need no binary), per-point time limit: infeasible or a dual bound above ``tol`` proves robustness; a
   solution is accepted only when the forward pass confirms it (else a second program asks for ``l * m <= -tol``
   strictly inside the region); a time-out leaves the point unknown;
5. for L2 balls, branch and bound over the unstable neurons with one second-order-cone program per node
   (:mod:`.l2bab`, Clarabel; Bunel et al. 2020 with the relaxation of Wong & Kolter 2018), from the same CROWN
   bounds, once per polyhedron of the region that meets the ball; same time limit, same tolerances, a node cap.

The tie rule and tolerances (never erring towards "robust"): ``predict`` is +1 when ``m >= 0``. A counterexample
must be adversarial by the model's own forward pass (in its dtype) with that rule, lie in the ball
(``threat.contains``) and lie at least ``1e-9 (1 + |b| + |A||x'|)`` inside a polyhedron of the region; a
certificate needs ``l * m > tol`` on the whole ball, ``tol = max(1e-6, 64 eps_mach(model dtype)) * (1 + max|m|)``
(``max|m|`` from CROWN), which covers HiGHS's feasibility tolerances (1e-6 to 1e-7) and the model's rounding.
Margins within ``tol`` of 0 at the worst point are left unknown.

Networks whose unstable neurons exceed ``max_binaries`` (and ``method="bounds"``) stop after stage 3': sound and
incomplete.

References:
    V. Tjeng, K. Xiao, R. Tedrake, "Evaluating robustness of neural networks with mixed integer programming",
    ICLR 2019. H. Zhang et al., CROWN, NeurIPS 2018. K. Xu et al., "Fast and complete" (alpha-CROWN), ICLR 2021.
    S. Gowal et al., IBP, 2018. R. Bunel et al., "Branch and
    bound for piecewise linear neural network verification", JMLR 2020. E. Wong, J. Z. Kolter, "Provable
    defenses against adversarial examples via the convex outer adversarial polytope", ICML 2018.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..attacks import PGD, Attack
from ..constraints import check_positive_float, check_progress
from ..threats import L1, L2, Linf, ThreatModel
from .alpha import AlphaCrownOptions, alpha_crown_margin, alpha_options
from .bounds import InputBall, LayerBounds, crown_bounds, ibp_bounds
from .common import (
    DEFINITIONS,
    DistanceResult,
    ModelVerifier,
    Polys,
    VerificationResult,
    _attack_points,
    _Ball,
    _check_threat,
    _check_x,
    _check_y,
    _confirm,
    _model_margin,
    _prepass_attack,
    _region_misses,
    _regions,
    _relative_tolerance,
    _sub_problems,
)
from .l2bab import BabProblem, decide, minimise_distance
from .milp import MilpOptions, MilpProblem, build_milp, build_milp_program, solve_milp
from .network import ReluNetwork, extract_network
from .quadbab import branch_and_bound
from .quadcrown import QuadCrownOptions, hair_inside, quad_crown_margin, quad_options
from .quadratic import QUADRATIC

__all__ = ["VerificationResult", "DistanceResult", "verify", "minimal_distance", "VERIFIERS", "verifier_for",
           "ReluVerifier"]

METHODS = ("auto", "milp", "bounds")


# ------------------------------------------------------------------------------------------------ forward pass


def _into_ball(z: np.ndarray, x0: torch.Tensor, eps: float, p: float, mask: np.ndarray) -> torch.Tensor:
    """A solver point pulled exactly into the ball (solver tolerances), in x0's dtype and device."""
    c = x0.detach().to("cpu", torch.float64).numpy()
    delta = np.where(mask, z - c, 0.0)
    if p == math.inf:
        delta = np.clip(delta, -eps, eps)
    else:
        n1 = np.abs(delta).sum()
        if n1 > eps:
            delta *= eps / n1
    out = torch.as_tensor(c + delta, dtype=x0.dtype, device=x0.device)
    return out


# ------------------------------------------------------------------------------------------------------ verify


#: the PGD that searches radii in minimal_distance
_RADIUS_SEARCH = PGD(steps=40, restarts=1, loss="margin")


@dataclass(frozen=True)
class _VerifyOptions:
    """The checked settings of one :func:`verify` call.

    Attributes:
        method, time_limit, max_binaries, generator: as in :func:`verify`.
        attack: the pre-pass attack (None: no pre-pass); attack_label: its ``decided_by`` label.
        rel: the relative certification tolerance, ``tol = rel (1 + max|m|)`` (see the module docstring).
        alpha: alpha-CROWN's settings (None: off); quad: Quad-CROWN's (None: off).
        progress: whether the per-point solver stages (MILP, branch and bound) show a bar.
    """

    method: str
    time_limit: float
    max_binaries: int
    attack: Attack | None
    attack_label: str
    generator: Any
    rel: float
    alpha: AlphaCrownOptions | None = None
    quad: QuadCrownOptions | None = None
    progress: bool | None = None


def _check_settings(definition: Any, method: Any, p: float, time_limit: Any, atol: Any,
                    max_binaries: Any) -> tuple[float, float | None]:
    """Validate verify's settings (in this order); returns ``(time_limit, atol)`` as floats."""
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "milp" and p == 2:
        raise ValueError("method='milp' needs an Linf or L1 threat (the L2 ball is not polyhedral); got L2: use "
                         "method='auto' (branch and bound with second-order-cone programs) or 'bounds'")
    time_limit = check_positive_float("time_limit", time_limit)
    if atol is not None:
        atol = check_positive_float("atol", atol)
    if isinstance(max_binaries, bool) or not isinstance(max_binaries, int) or max_binaries < 0:
        raise ValueError(f"max_binaries must be an int >= 0, got {max_binaries!r}")
    return time_limit, atol


def verify(model: Any, x: torch.Tensor, y: Any, threat: ThreatModel, *, definition: str = "ball",
           region: Any = None, time_limit: float = 5.0, method: str = "auto", max_binaries: int = 2000,
           pgd_steps: int = 40, pgd_restarts: int = 2, generator: Any = 0,
           atol: float | None = None, attack: Any = None, alpha_crown: Any = True, quad_crown: Any = True,
           progress: bool | None = None) -> VerificationResult:
    """Verify a ReLU or quadratic network on N points: robust (proven), vulnerable (counterexample) or unknown.

    Decides, per point, whether some ``x'`` in the ball ``{||x' - x||_p <= eps}`` (on ``threat.coords``) is
    adversarial under ``definition``: for every sub-problem ``(l, R)``, is ``min {l * m(x') : x' in B(x) ∩ R}``
    ``> tol`` (robust) or is there ``x'`` with ``predict(x') != l`` (vulnerable)? The model goes to the first of
    :data:`VERIFIERS` that accepts it. ReLU networks (see the module docstring for the sub-problems, the pipeline
    and the tolerances): complete for Linf and L1 (mixed-integer programming, Tjeng et al. 2019) and for L2
    (branch and bound with a second-order-cone program per node, :mod:`.l2bab`) up to the time limit. Quadratic
    networks
    (:mod:`.quadratic`): exact for L2 on every coordinate (the trust-region subproblem), a sound certificate plus
    the attack otherwise.

    Args:
        model: a ReLU network (``nn.Sequential`` of Linear/ReLU/Flatten/Identity, eval-mode BatchNorm1d/Dropout,
            toyrobust's ``MLP`` or ``LinearModel``), one logit or two (column 1 is label +1), or a
            :class:`~toyrobust.models.QuadraticNet`.
        x: (N, d) points (any float dtype; ``x_adv`` keeps it).
        y: (N,) labels in {-1, +1}.
        threat: ``Linf``, ``L1`` or ``L2`` (numeric eps, optional coords).
        definition: ``"ball"``, ``"projection"`` or ``"error-region"``.
        region: for the latter two, ``region(label) -> [(A, b), ...]``: the closure of ``R_label`` as a union of
            polyhedra ``{A z <= b}``, A (m, d), b (m,) (see :mod:`toyrobust.verification.regions`).
        time_limit: seconds of MILP (or L2 branch and bound: Quad-CROWN's, then the SOCP one) per point (shared by
            its sub-problems).
        method: ``"auto"`` (MILP for Linf/L1, branch and bound for L2, when the point's unstable neurons are at
            most ``max_binaries``), ``"milp"`` (always for Linf/L1; L2 raises) or ``"bounds"`` (neither: sound,
            incomplete).
        max_binaries: the cap on unstable neurons for ``"auto"``.
        pgd_steps, pgd_restarts: the default PGD pre-pass (margin loss; ``pgd_steps=0`` skips it); ignored when
            ``attack`` is given.
        generator: seed or torch.Generator for the pre-pass attack's randomness (PGD's random starts).
        atol: the certification margin ``tol`` (None: see the module docstring).
        attack: the pre-pass attack: None (PGD as above, its counterexamples labelled ``"pgd"`` in
            ``decided_by``), or an attack name (``toyrobust.attacks.ATTACKS``) or :class:`toyrobust.attacks.Attack`
            (resolved by :func:`~toyrobust.attacks.make_attack`), run with the ball definition on each
            sub-problem's label, its counterexamples labelled with the attack's ``label`` (e.g. ``"apgd"``). Its
            candidates are re-checked like PGD's, so any attack keeps the verdicts sound.
        alpha_crown: the alpha-CROWN stage on what CROWN leaves open (ReLU networks; sound with any settings):
            True (defaults of :class:`~toyrobust.verification.alpha.AlphaCrownOptions`: 40 Adam steps, step size
            0.25, a 60 s budget per call), False or None (off), or a dict with ``iterations``, ``lr``,
            ``time_limit`` (seconds for all points together) and ``dtype`` (of the sound recomputation).
        quad_crown: the Quad-CROWN stage (:mod:`~toyrobust.verification.quadcrown`; ReLU networks, L2 balls; sound
            with any settings): True (defaults of :class:`~toyrobust.verification.quadcrown.QuadCrownOptions`: 40
            Adam steps per point, step size 0.1, at most 5 s per point, at most 2048 perturbed coordinates; then
            its branch and bound, :mod:`~toyrobust.verification.quadbab`, on half of ``time_limit`` per point,
            20 Adam steps per leaf, 256 leaves split per round), False or None (both off), or a dict with those
            fields (``iterations``, ``lr``, ``time_limit``, ``max_dim``, ``branch_share``, ``branch_iterations``,
            ``branch_batch``).
        progress: a tqdm bar on stderr over the points that reach Quad-CROWN (a batch at a time), its branch and
            bound, the MILP or the SOCP branch and bound (seconds to minutes each; the bar counts them and the
            verdicts so far): True, False, or None (shown when stderr is a terminal and at least two points reach
            that stage). The quadratic verifier has no such stage.

    Returns:
        :class:`VerificationResult`; ``stats`` holds ``n_points``, ``hidden_neurons`` (per point), the mean
        number of unstable neurons per point under IBP and under CROWN, ``milp_calls``, ``binaries`` (total over
        the programs solved), ``binaries_naive`` (what every-ReLU-a-binary would have used), ``alpha_items``,
        ``alpha_decided`` and ``alpha_iterations`` (alpha-CROWN's sub-problems, those it proved, its Adam steps),
        ``quad_items``, ``quad_decided``, ``quad_vulnerable`` and ``quad_iterations`` (Quad-CROWN's sub-problems,
        those it proved, those its minimiser broke, its Adam steps), ``quad_bab_items``, ``quad_bab_decided``,
        ``quad_bab_vulnerable`` and ``quad_bab_leaves`` (its branch and bound's points, verdicts and leaves bounded),
        ``bab_nodes`` and ``bab_solves`` (L2 branch and bound: nodes, and programs solved), ``tol_rel`` and
        ``seconds`` per stage (``forward``, ``pgd`` -- the attack pre-pass, whichever attack --, ``bounds``,
        ``alpha``, ``quad``, ``quad_bab``, ``milp``, ``bab``); a
        quadratic network's ``stats`` hold ``n_points``, ``verifier``, ``tol_rel`` and ``exact``.
    """
    return verifier_for(model).verify(model, x, y, threat, definition=definition, region=region,
                                      time_limit=time_limit, method=method, max_binaries=max_binaries,
                                      pgd_steps=pgd_steps, pgd_restarts=pgd_restarts, generator=generator,
                                      atol=atol, attack=attack, alpha_crown=alpha_crown, quad_crown=quad_crown,
                                      progress=progress)


def _relu_verify(model: Any, x: torch.Tensor, y: Any, threat: ThreatModel, *, definition: str = "ball",
                 region: Any = None, time_limit: float = 5.0, method: str = "auto", max_binaries: int = 2000,
                 pgd_steps: int = 40, pgd_restarts: int = 2, generator: Any = 0,
                 atol: float | None = None, attack: Any = None, alpha_crown: Any = True,
                 quad_crown: Any = True, progress: bool | None = None) -> VerificationResult:
    """:func:`verify` for a ReLU network (the module docstring's pipeline)."""
    net = extract_network(model)
    x = _check_x(x, net)
    n, d = x.shape
    yl = _check_y(y, n)
    eps, p, mask = _check_threat(threat, d)
    time_limit, atol = _check_settings(definition, method, p, time_limit, atol, max_binaries)
    check_progress(progress)
    regs = _regions(region, definition, d)
    alpha = alpha_options(alpha_crown)
    quad = quad_options(quad_crown)
    prepass, label = _prepass_attack(attack, pgd_steps, pgd_restarts, model, threat)
    options = _VerifyOptions(method=method, time_limit=time_limit, max_binaries=max_binaries, attack=prepass,
                             attack_label=label, generator=generator, rel=_relative_tolerance(model, atol),
                             alpha=alpha, quad=quad, progress=progress)
    run = _Verification(model, net, x, threat, _Ball(eps, p, mask), _sub_problems(definition, yl, regs), options)
    return run.run()


class _StageBar:
    """The points of a per-point solver stage, iterated as ``(point, sub-problem)`` items, with a tqdm bar (when
    ``show``) that advances after each point's last item and counts the verdicts so far."""

    def __init__(self, run: Any, items: list[tuple[int, int]], stage: str, show: bool) -> None:
        self.run, self.items, self.bar = run, items, None
        self.last = {i: j for j, (i, _) in enumerate(items)}
        self.counts: dict[str, int] = {}
        if show:
            from tqdm.auto import tqdm  # loaded only when a bar is shown

            self.bar = tqdm(total=len(self.last), unit="pt", desc=f"verify[{stage}]", file=sys.stderr, leave=False,
                            dynamic_ncols=True)

    def __enter__(self) -> _StageBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def __iter__(self):
        for j, (i, k) in enumerate(self.items):
            yield i, k
            if self.bar is not None and self.last[i] == j:
                verdict = self.run._verdict(i)[0]
                self.counts[verdict] = self.counts.get(verdict, 0) + 1
                self.bar.update(1)
                self.bar.set_postfix(robust=self.counts.get("robust", 0),
                                     vulnerable=self.counts.get("vulnerable", 0), refresh=False)


class _Verification:
    """The state of one :func:`verify` call, advanced stage by stage (clean, attack, bounds, alpha-CROWN, MILP or
    branch and bound).

    Per point ``i`` and sub-problem ``k`` (``subs[i][k] = (l, R)``): ``state[i][k]`` is None (open), True
    (robust) or a counterexample (d,); ``how[i][k]`` what decided it (or why not); ``lower[i, k]`` a proven lower
    bound on ``min l * m`` over ``B(x_i) ∩ R``. A point with a counterexample in any sub-problem is closed.
    """

    def __init__(self, model: Any, net: ReluNetwork, x: torch.Tensor, threat: ThreatModel, ball: _Ball,
                 subs: list[list[tuple[int, Any]]], options: _VerifyOptions) -> None:
        n = x.shape[0]
        self.model, self.net, self.x, self.threat, self.ball, self.subs = model, net, x, threat, ball, subs
        self.options = options
        self.state: list[list[Any]] = [[None] * len(s) for s in subs]
        self.how: list[list[str]] = [[""] * len(s) for s in subs]
        self.lower = np.full((n, 2), -math.inf)
        self.tols = np.zeros(n)
        self.crown: LayerBounds | None = None
        self.xb: torch.Tensor | None = None
        self.row_pos: dict[int, int] = {}
        self.seconds = {"forward": 0.0, "pgd": 0.0, "bounds": 0.0, "alpha": 0.0, "quad": 0.0, "quad_bab": 0.0,
                        "milp": 0.0, "bab": 0.0}
        self.spent: dict[int, float] = {}  # per point, seconds of its time limit used by the Quad-CROWN search
        self.stats: dict[str, Any] = {"n_points": n, "hidden_neurons": sum(net.hidden_sizes), "milp_calls": 0,
                                      "binaries": 0, "binaries_naive": 0, "bab_nodes": 0, "bab_solves": 0,
                                      "alpha_items": 0, "alpha_decided": 0, "alpha_iterations": 0,
                                      "quad_items": 0, "quad_decided": 0, "quad_vulnerable": 0,
                                      "quad_iterations": 0, "quad_bab_items": 0, "quad_bab_decided": 0,
                                      "quad_bab_vulnerable": 0, "quad_bab_leaves": 0,
                                      "unstable_ibp_mean": float("nan"),
                                      "unstable_crown_mean": float("nan"), "tol_rel": options.rel}

    def run(self) -> VerificationResult:
        """Run the stages (timed) and combine the sub-problems' verdicts."""
        stages = (("forward", self.clean_stage), ("pgd", self.attack_stage), ("bounds", self.bounds_stage),
                  ("alpha", self.alpha_stage), ("quad", self.quad_stage), ("quad_bab", self.quad_bab_stage),
                  ("milp", self.milp_stage),
                  ("bab", self.bab_stage))
        for key, stage in stages:
            t0 = time.perf_counter()
            stage()
            self.seconds[key] = time.perf_counter() - t0
        self.stats["seconds"] = self.seconds
        return self.result()

    def _vulnerable(self, i: int) -> bool:
        """Whether point ``i`` has a counterexample in some sub-problem."""
        return any(isinstance(s, torch.Tensor) for s in self.state[i])

    def open_items(self) -> list[tuple[int, int]]:
        """The open ``(point, sub-problem)`` pairs of points without a counterexample."""
        return [(i, k) for i in range(len(self.subs)) for k in range(len(self.subs[i]))
                if self.state[i][k] is None and not self._vulnerable(i)]

    def confirm_batch(self, items: list[tuple[int, int]], zs: torch.Tensor, how: str) -> None:
        """Record the candidates ``zs`` (len(items), d) that :func:`_confirm` accepts, decided by ``how``."""
        # group by sub-problem kind so the region test is vectorised
        groups: dict[tuple[int, int], list[int]] = {}
        for j, (i, k) in enumerate(items):
            groups.setdefault((k, self.subs[i][k][0]), []).append(j)
        for (k, lab), js in groups.items():
            rows = [items[j][0] for j in js]
            polys = self.subs[rows[0]][k][1]
            ok = _confirm(self.model, self.threat, zs[js], self.x[rows], np.full(len(rows), lab), polys)
            for j, good in zip(js, ok):
                if good:
                    i, kk = items[j]
                    self.state[i][kk], self.how[i][kk] = zs[j], how

    def clean_stage(self) -> None:
        """1. A misclassified clean point is its own counterexample."""
        items = self.open_items()
        if items:
            self.confirm_batch(items, self.x[[i for i, _ in items]], "clean")

    def attack_stage(self) -> None:
        """2. The pre-pass attack on the open sub-problems, one batch per label ``l``."""
        attack = self.options.attack
        if attack is None or not self.ball.eps > 0:
            return
        by_label: dict[int, list[tuple[int, int]]] = {}
        for i, k in self.open_items():
            by_label.setdefault(self.subs[i][k][0], []).append((i, k))
        for lab, its in by_label.items():
            rows = [i for i, _ in its]
            z = _attack_points(attack, self.model, self.x[rows], np.full(len(rows), lab), self.threat,
                               self.options.generator)
            self.confirm_batch(its, z.to(dtype=self.x.dtype, device=self.x.device), self.options.attack_label)

    def bounds_stage(self) -> None:
        """3. IBP and CROWN on the points still open: robust when ``l * m > tol`` on the ball, or when the region
        misses the ball; sets each point's ``tol = rel (1 + max|m|)``."""
        items = self.open_items()
        rows_open = sorted({i for i, _ in items})
        if not rows_open:
            return
        net, ball = self.net, self.ball
        self.row_pos = {i: j for j, i in enumerate(rows_open)}
        self.xb = xb = self.x[rows_open].to(device=net.device, dtype=torch.float64)
        input_ball = InputBall(xb, ball.eps, ball.p, torch.as_tensor(ball.mask, device=net.device))
        ibp = ibp_bounds(net, input_ball)
        self.crown = crown = crown_bounds(net, input_ball, ibp=ibp)
        if net.hidden_sizes:
            self.stats["unstable_ibp_mean"] = float(sum(u.sum(1) for u in ibp.unstable()).double().mean())
            self.stats["unstable_crown_mean"] = float(sum(u.sum(1) for u in crown.unstable()).double().mean())
        ml, mu = (t.cpu().numpy() for t in crown.margin())
        il, iu = (t.cpu().numpy() for t in ibp.margin())
        scale = 1 + np.maximum(np.abs(ml), np.abs(mu))
        for i, k in items:
            j = self.row_pos[i]
            self.tols[i] = tol = self.options.rel * scale[j]
            lab, polys = self.subs[i][k]
            lb_c = ml[j] if lab > 0 else -mu[j]
            lb_i = il[j] if lab > 0 else -iu[j]
            self.lower[i, k] = lb_c
            if polys is not None and _region_misses(polys, xb[j].cpu().numpy(), ball):
                self.state[i][k], self.how[i][k], self.lower[i, k] = True, "region", math.inf
            elif lb_c > tol:
                self.state[i][k], self.how[i][k] = True, "ibp" if lb_i > tol else "crown"

    def alpha_stage(self) -> None:
        """3'. alpha-CROWN (:mod:`.alpha`) on the open sub-problems, one batch: robust when its recomputed sound
        bound on ``l * m`` exceeds ``tol``; a point leaves the optimisation once its float32 bound passes
        ``tol + 1e-4 (1 + |bound|)`` (room for the recomputation's rounding)."""
        items = self.open_items()
        opts = self.options.alpha
        if opts is None or not items or self.crown is None or not self.net.hidden_sizes:
            return
        net, ball, crown = self.net, self.ball, self.crown
        rows = torch.as_tensor([self.row_pos[i] for i, _ in items], device=net.device)
        sign = torch.as_tensor([float(self.subs[i][k][0]) for i, k in items], dtype=torch.float64,
                               device=net.device)
        sub = LayerBounds([t[rows] for t in crown.lower], [t[rows] for t in crown.upper])
        ml, mu = sub.margin()
        crown_lower = torch.where(sign > 0, ml, -mu)
        tols = torch.as_tensor([self.tols[i] for i, _ in items], dtype=torch.float64, device=net.device)
        target = tols + 1e-4 * (1 + crown_lower.abs())
        input_ball = InputBall(self.xb[rows], ball.eps, ball.p, torch.as_tensor(ball.mask, device=net.device))
        out = alpha_crown_margin(net, input_ball, sub, sign, crown_lower, options=opts, target=target)
        lower = out.lower.cpu().numpy()
        self.stats["alpha_items"] += len(items)
        self.stats["alpha_iterations"] += out.iterations
        for n, (i, k) in enumerate(items):
            self.lower[i, k] = max(self.lower[i, k], float(lower[n]))
            if lower[n] > self.tols[i]:
                self.state[i][k], self.how[i][k] = True, "alpha-crown"
                self.stats["alpha_decided"] += 1

    def _quad_applies(self, items: list[tuple[int, int]]) -> bool:
        """Whether the Quad-CROWN stages run on ``items``: on, some open, an L2 ball, a hidden layer, CROWN's bounds,
        and 1 to ``max_dim`` perturbed coordinates (H would be too large, or CROWN is exact)."""
        opts = self.options.quad
        return (opts is not None and bool(items) and self.crown is not None and bool(self.net.hidden_sizes)
                and self.ball.p == 2 and 0 < int(np.sum(self.ball.mask)) <= opts.max_dim)

    def quad_stage(self) -> None:
        """3''. Quad-CROWN (:mod:`.quadcrown`) on the open sub-problems of L2 balls, in batches of 256 (a tqdm bar
        over them as for the solver stages): robust when its proven bound on ``l * m`` exceeds ``tol``; its
        minimiser, when the forward pass confirms it, is a counterexample."""
        items = self.open_items()
        opts = self.options.quad
        if not self._quad_applies(items):
            return
        bar = None
        if self._show(items):
            from tqdm.auto import tqdm  # loaded only when a bar is shown

            bar = tqdm(total=len(items), unit="pt", desc="verify[quad-crown]", file=sys.stderr, leave=False,
                       dynamic_ncols=True)
        try:
            for a in range(0, len(items), 256):
                batch = items[a:a + 256]
                self._quad_batch(batch, opts)
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix(robust=self.stats["quad_decided"], vulnerable=self.stats["quad_vulnerable"],
                                    refresh=False)
        finally:
            if bar is not None:
                bar.close()

    def _quad_batch(self, items: list[tuple[int, int]], opts: QuadCrownOptions) -> None:
        """Quad-CROWN on the sub-problems ``items``, their verdicts and counterexamples recorded."""
        net, crown = self.net, self.crown
        rows = torch.as_tensor([self.row_pos[i] for i, _ in items], device=net.device)
        sign = torch.as_tensor([float(self.subs[i][k][0]) for i, k in items], dtype=torch.float64)
        sub = LayerBounds([t[rows] for t in crown.lower], [t[rows] for t in crown.upper])
        tols = torch.as_tensor([self.tols[i] for i, _ in items], dtype=torch.float64)
        input_ball = InputBall(self.xb[rows], self.ball.eps, 2.0, torch.as_tensor(self.ball.mask, device=net.device))
        out = quad_crown_margin(net, input_ball, sub, sign, tols, options=opts)
        self.stats["quad_items"] += len(items)
        self.stats["quad_iterations"] += out.iterations
        lower = out.lower.numpy()
        for n, (i, k) in enumerate(items):
            self.lower[i, k] = max(self.lower[i, k], float(lower[n]))
            if lower[n] > self.tols[i]:
                self.state[i][k], self.how[i][k] = True, "quad-crown"
                self.stats["quad_decided"] += 1
        left = [(n, it) for n, it in enumerate(items) if self.state[it[0]][it[1]] is None]
        if left:
            x0 = self.x[[i for _, (i, _) in left]].detach().to("cpu", torch.float64)
            delta = hair_inside(out.x_min[[n for n, _ in left]] - x0, self.ball.eps)
            zs = (x0 + delta).to(dtype=self.x.dtype, device=self.x.device)
            self.confirm_batch([it for _, it in left], zs, "quad-crown")
            self.stats["quad_vulnerable"] += sum(isinstance(self.state[i][k], torch.Tensor) for _, (i, k) in left)

    def quad_bab_stage(self) -> None:
        """4''. L2 balls: branch and bound with Quad-CROWN bounds (:mod:`.quadbab`) per open sub-problem, unless
        ``method="bounds"``, for Quad-CROWN's ``branch_share`` of the per-point time limit (a tqdm bar as for the
        solver stages): robust when every leaf is proven, vulnerable when a leaf's minimiser is confirmed."""
        items = self.open_items()
        opts = self.options.quad
        if (not self._quad_applies(items) or self.options.method == "bounds" or opts.branch_share == 0
                or not self.ball.eps > 0):
            return
        budget = opts.branch_share * self.options.time_limit
        started: dict[int, float] = {}
        with self._bar(items, "quad-bab") as bar:
            for i, k in bar:
                if self._vulnerable(i):
                    continue
                t0 = time.perf_counter()
                self._quad_bab_item(i, k, started.setdefault(i, t0) + budget, opts)
                self.spent[i] = self.spent.get(i, 0.0) + time.perf_counter() - t0

    def _quad_bab_item(self, i: int, k: int, deadline: float, opts: QuadCrownOptions) -> None:
        """Sub-problem ``k`` of point ``i`` by :func:`.quadbab.branch_and_bound` (over the whole ball: sound for
        its region too), its verdict and counterexample recorded."""
        lab, polys = self.subs[i][k]
        net, crown, j, xi = self.net, self.crown, self.row_pos[i], self.x[i:i + 1]

        def confirm(z: torch.Tensor) -> bool:
            zt = z.to(dtype=self.x.dtype, device=self.x.device)[None, :]
            if _confirm(self.model, self.threat, zt, xi, np.array([lab]), polys)[0]:
                self.state[i][k], self.how[i][k] = zt[0], "quad-bab"
                return True
            return False

        out = branch_and_bound(net, self.xb[j:j + 1], torch.as_tensor(self.ball.mask, device=net.device),
                               float(self.ball.eps), float(lab), [t[j:j + 1] for t in crown.lower[:-1]],
                               [t[j:j + 1] for t in crown.upper[:-1]], float(self.tols[i]), deadline, confirm,
                               iterations=opts.branch_iterations, lr=opts.lr, batch=opts.branch_batch)
        self.stats["quad_bab_items"] += 1
        self.stats["quad_bab_leaves"] += out.leaves
        self.lower[i, k] = max(self.lower[i, k], out.lower)
        if out.verdict == "robust":
            self.state[i][k], self.how[i][k] = True, "quad-bab"
            self.stats["quad_bab_decided"] += 1
        elif out.verdict == "vulnerable":
            self.stats["quad_bab_vulnerable"] += 1
        else:
            self.how[i][k] = out.verdict

    def milp_stage(self) -> None:
        """4. The MILP per open sub-problem (Linf and L1, unless ``method="bounds"``), with a per-point deadline."""
        items = self.open_items()
        if not items or self.ball.p == 2 or self.options.method == "bounds":
            return
        weights = [w.cpu().numpy() for w in self.net.weights]
        biases = [b.cpu().numpy() for b in self.net.biases]
        deadline: dict[int, float] = {}
        with self._bar(items, "milp") as bar:
            for i, k in bar:
                if not self._vulnerable(i):  # else already vulnerable through another sub-problem
                    self._milp_item(i, k, weights, biases, deadline)

    def _milp_item(self, i: int, k: int, weights: list[np.ndarray], biases: list[np.ndarray],
                   deadline: dict[int, float]) -> None:
        """Sub-problem ``k`` of point ``i`` by MILP with the CROWN pre-activation bounds of its ball."""
        lo, up = self._pre_bounds_or_too_large(i, k)
        if lo is None:
            return
        deadline.setdefault(i, time.perf_counter() + self.options.time_limit)
        lab, polys = self.subs[i][k]
        x0 = self.x[i].detach().to("cpu", torch.float64).numpy()
        task = _MilpTask(weights, biases, x0, self.ball, lo, up, lab, polys, float(self.tols[i]), deadline[i])
        verdict, lb, z = _milp_subproblem(task, self.stats)
        self.lower[i, k] = max(self.lower[i, k], lb)
        if verdict == "robust":
            self.state[i][k], self.how[i][k] = True, "milp"
        elif z is None:
            self.how[i][k] = verdict
        elif not self._accept_solver_point(i, k, z):
            z2 = _milp_counterexample(task, self.stats)
            if z2 is None or not self._accept_solver_point(i, k, z2):
                self.how[i][k] = "boundary"

    def _pre_bounds_or_too_large(self, i: int, k: int) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
        """Point ``i``'s CROWN pre-activation bounds per hidden layer, or ``(None, None)`` (sub-problem ``k``
        marked "too-large") when ``method="auto"`` and it has more unstable neurons than ``max_binaries``."""
        j = self.row_pos[i]
        lo = [t[j].cpu().numpy() for t in self.crown.lower[:-1]]
        up = [t[j].cpu().numpy() for t in self.crown.upper[:-1]]
        n_unst = int(sum(((a < 0) & (b > 0)).sum() for a, b in zip(lo, up)))
        if self.options.method == "auto" and n_unst > self.options.max_binaries:
            self.how[i][k] = "too-large"
            return None, None
        return lo, up

    def bab_stage(self) -> None:
        """4'. L2 balls: branch and bound with one SOCP per node (:mod:`.l2bab`) per open sub-problem, unless
        ``method="bounds"``, with a per-point deadline."""
        items = self.open_items()
        if not items or self.ball.p != 2 or self.options.method == "bounds":
            return
        weights = [w.cpu().numpy() for w in self.net.weights]
        biases = [b.cpu().numpy() for b in self.net.biases]
        deadline: dict[int, float] = {}
        with self._bar(items, "branch and bound") as bar:
            for i, k in bar:
                lo, up = (None, None) if self._vulnerable(i) else self._pre_bounds_or_too_large(i, k)
                if lo is not None:  # what the Quad-CROWN search left of the point's time limit
                    deadline.setdefault(i, time.perf_counter() + self.options.time_limit - self.spent.get(i, 0.0))
                    self._bab_item(i, k, weights, biases, lo, up, deadline[i])

    def _show(self, items: list[tuple[int, int]]) -> bool:
        """Whether a stage over ``items`` shows a progress bar (see :func:`verify`'s ``progress``)."""
        show = self.options.progress
        if show is None:
            show = len({i for i, _ in items}) >= 2 and bool(getattr(sys.stderr, "isatty", lambda: False)())
        return bool(show)

    def _bar(self, items: list[tuple[int, int]], stage: str) -> _StageBar:
        """The progress bar of a per-point solver stage over ``items``."""
        return _StageBar(self, items, stage, self._show(items))

    def _bab_item(self, i: int, k: int, weights: list[np.ndarray], biases: list[np.ndarray], lo: list[np.ndarray],
                  up: list[np.ndarray], deadline: float) -> None:
        """Sub-problem ``k`` of point ``i`` by :func:`.l2bab.decide`, once per polyhedron of its region that meets
        the ball: robust when every one is, vulnerable with any confirmed counterexample."""
        lab, polys = self.subs[i][k]
        x0 = self.x[i].detach().to("cpu", torch.float64).numpy()
        pieces = [None] if polys is None else [(A, b) for A, b in polys if not _region_misses([(A, b)], x0, self.ball)]
        xi = self.x[i:i + 1]

        def confirm(z: np.ndarray) -> bool:
            zt = torch.as_tensor(z, dtype=self.x.dtype, device=self.x.device)[None, :]
            if _confirm(self.model, self.threat, zt, xi, np.array([lab]), polys)[0]:
                self.state[i][k], self.how[i][k] = zt[0], "bab"
                return True
            return False

        lower, verdicts = math.inf, []
        for poly in pieces:
            prob = BabProblem(weights, biases, x0, self.ball.mask, self.ball.eps, lab, poly)
            out = decide(prob, lo, up, float(self.tols[i]), confirm, deadline)
            self.stats["bab_nodes"] += out.nodes
            self.stats["bab_solves"] += out.solves
            lower = min(lower, out.lower)
            verdicts.append(out.verdict)
            if out.verdict == "vulnerable":
                return
        self.lower[i, k] = max(self.lower[i, k], lower)
        if all(v == "robust" for v in verdicts):
            self.state[i][k], self.how[i][k] = True, "bab"
        else:
            self.how[i][k] = next(v for v in verdicts if v != "robust")

    def _accept_solver_point(self, i: int, k: int, z: np.ndarray) -> bool:
        """Pull a solver point (d,) into the ball and keep it when :func:`_confirm` accepts it."""
        lab, polys = self.subs[i][k]
        x = self.x
        zt = _into_ball(z, x[i], self.ball.eps, self.ball.p, self.ball.mask)[None, :]
        if _confirm(self.model, self.threat, zt, x[i:i + 1], np.array([lab]), polys)[0]:
            self.state[i][k], self.how[i][k] = zt[0], "milp"
            return True
        return False

    def _verdict(self, i: int) -> tuple[str, str, torch.Tensor | None]:
        """``(status, decided_by, counterexample or None)`` of point ``i`` from its sub-problems."""
        adv = [(s, h) for s, h in zip(self.state[i], self.how[i]) if isinstance(s, torch.Tensor)]
        if adv:
            return "vulnerable", adv[0][1], adv[0][0]
        if all(s is True for s in self.state[i]):
            order = ["milp", "bab", "quad-bab", "quad-crown", "alpha-crown", "crown", "ibp", "region"]
            return "robust", min(self.how[i], key=lambda h: order.index(h) if h in order else 9), None
        reasons = [h for s, h in zip(self.state[i], self.how[i]) if s is None]
        return "unknown", (reasons[0] if reasons and reasons[0] else "incomplete"), None

    def result(self) -> VerificationResult:
        """Combine: vulnerable when a sub-problem has a counterexample, robust when all are proven."""
        x, n = self.x, self.x.shape[0]
        robust = np.zeros(n, dtype=bool)
        vulnerable = np.zeros(n, dtype=bool)
        x_adv = x.clone()
        status, decided = [], []
        for i in range(n):
            s, h, z = self._verdict(i)
            status.append(s)
            decided.append(h)
            robust[i] = s == "robust"
            if z is not None:
                vulnerable[i] = True
                x_adv[i] = z.to(dtype=x.dtype, device=x.device)
        lb = np.array([min(self.lower[i, : len(self.subs[i])]) for i in range(n)]) if n else np.zeros(0)
        return VerificationResult(
            robust=torch.as_tensor(robust, device=x.device), vulnerable=torch.as_tensor(vulnerable, device=x.device),
            x_adv=x_adv, lower_bound=torch.as_tensor(lb, dtype=torch.float64), status=status, decided_by=decided,
            stats=self.stats)


@dataclass(frozen=True)
class _MilpTask:
    """One sub-problem's MILP: the network's layers, the ball around ``x0`` (d,), the CROWN pre-activation bounds
    ``lo``/``up`` of its hidden layers, the label ``l`` and region, the tolerance ``tol`` and the point's
    deadline (``time.perf_counter()`` seconds)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    x0: np.ndarray
    ball: _Ball
    lo: list[np.ndarray]
    up: list[np.ndarray]
    label: int
    polys: Polys | None
    tol: float
    deadline: float

    def build(self, cut: float, shrink: float = 0.0) -> MilpProblem | None:
        """The program ``min l * m`` over ball ∩ region with ``l * m <= cut`` (:func:`.milp.build_milp`)."""
        options = MilpOptions(label=self.label, cut=cut, region=self.polys, shrink=shrink)
        return build_milp_program(self.weights, self.biases, self.x0, self.ball.eps, self.ball.p, self.ball.mask,
                                  self.lo, self.up, options)


def _milp_subproblem(task: _MilpTask, stats: dict[str, Any]) -> tuple[str, float, np.ndarray | None]:
    """``min l * m`` over ball ∩ region with the cut ``l * m <= tol``: (verdict, lower bound, point (d,) or None).

    The verdict is ``"robust"`` (infeasible, or dual bound > tol), ``"candidate"`` (a point to confirm),
    ``"timeout"`` or ``"error"``; ``stats`` counts the call and its binaries.
    """
    prob = task.build(cut=task.tol)
    if prob is None:
        return "robust", math.inf, None
    stats["milp_calls"] += 1
    stats["binaries"] += prob.n_binary
    stats["binaries_naive"] += sum(w.shape[0] for w in task.weights[:-1])
    remaining = task.deadline - time.perf_counter()
    if remaining <= 0:
        return "timeout", -math.inf, None
    out = solve_milp(prob, remaining)
    if out.status == "infeasible":
        return "robust", task.tol, None
    if out.dual_bound > task.tol:
        return "robust", out.dual_bound, None
    if out.x is not None:
        return "candidate", out.dual_bound, out.x
    return ("timeout" if out.status == "time_limit" else "error"), out.dual_bound, None


def _milp_counterexample(task: _MilpTask, stats: dict[str, Any]) -> np.ndarray | None:
    """A point (d,) with ``l * m <= -2 tol`` at least ``1e-6`` (relative) inside the region, or None."""
    prob = task.build(cut=-2 * task.tol, shrink=1e-6)
    if prob is None:
        return None
    stats["milp_calls"] += 1
    stats["binaries"] += prob.n_binary
    remaining = task.deadline - time.perf_counter()
    if remaining <= 0:
        return None
    out = solve_milp(prob, remaining)
    return out.x


# --------------------------------------------------------------------------------------------- minimal distance


def minimal_distance(model: Any, x: torch.Tensor, y: Any, norm: str = "linf", *, max_eps: float | None = None,
                     time_limit: float = 10.0, coords: Any = None, generator: Any = 0) -> DistanceResult:
    """The exact minimal adversarial distance ``inf {||x' - x||_p : predict(x') != y}``.

    The model goes to the first of :data:`VERIFIERS` that accepts it. A ReLU network: by MILP, p = inf or 1:
    ``min e`` subject to the network's MILP encoding (Tjeng et al. 2019), ``|x'_i - x_i| <= e`` (Linf) or
    ``sum_i |x'_i - x_i| <= e`` (L1), and ``y m(x') <= 0`` (the closure of the adversarial set, so the optimum is
    the infimum). p = 2: branch and bound over the unstable neurons (:func:`.l2bab.minimise_distance`), each node
    the second-order-cone program ``min t`` s.t. ``||x' - x||_2 <= t``, ``y m(x') <= 0`` and the triangle
    relaxation of its unstable ReLUs (Wong & Kolter 2018; Bunel et al. 2020), until the best confirmed
    counterexample is within a relative 1e-5 of the smallest proven lower bound (``distance`` is then that
    counterexample's norm, ``lower`` the bound). The search ball has radius ``max_eps``; None means the norm of
    the first counterexample PGD finds with radii 2^k / 16 (k = 0..24), whose own distance is an upper bound.
    Pre-activation bounds come from CROWN over that ball (for L2 recomputed whenever a closer counterexample
    shrinks it). A :class:`~toyrobust.models.QuadraticNet`: p = 2 (``norm="l2"``, every coordinate), the distance
    to the quadric ``m = 0`` by the secular equation (:mod:`.quadratic`).

    Args:
        model: a ReLU or quadratic network (see :func:`verify`).
        x: (N, d) points; y: (N,) labels in {-1, +1}.
        norm: ``"linf"``, ``"l1"`` or ``"l2"`` (ReLU networks), ``"l2"`` (quadratic networks).
        max_eps: the largest radius searched (None: found by PGD as above; a quadratic network needs no search).
        time_limit: seconds of MILP (or L2 branch and bound) per point.
        coords: perturb only these coordinates (as in the threat models).
        generator: seed or torch.Generator for PGD.

    Returns:
        :class:`DistanceResult`.
    """
    return verifier_for(model).minimal_distance(model, x, y, norm, max_eps=max_eps, time_limit=time_limit,
                                                coords=coords, generator=generator)


def _relu_minimal_distance(model: Any, x: torch.Tensor, y: Any, norm: str = "linf", *,
                           max_eps: float | None = None, time_limit: float = 10.0, coords: Any = None,
                           generator: Any = 0) -> DistanceResult:
    """:func:`minimal_distance` for a ReLU network (MILP for Linf and L1, branch and bound for L2)."""
    net = extract_network(model)
    x = _check_x(x, net)
    n, d = x.shape
    yl = _check_y(y, n)
    if norm not in ("linf", "l1", "l2"):
        raise ValueError(f"norm must be 'linf', 'l1' or 'l2', got {norm!r}")
    time_limit = check_positive_float("time_limit", time_limit)
    if max_eps is not None:
        max_eps = check_positive_float("max_eps", max_eps)
    res = DistanceResult(np.full(n, math.nan), np.zeros(n), np.full(n, math.inf), x.clone(), ["timeout"] * n)
    m0 = _model_margin(model, x).cpu().numpy()
    pred = np.where(m0 >= 0, 1, -1)
    radius = np.full(n, math.nan)
    for i in np.flatnonzero(pred != yl):
        res.distance[i], res.lower[i], res.upper[i], res.status[i] = 0.0, 0.0, 0.0, "misclassified"
    todo = [i for i in range(n) if res.status[i] != "misclassified"]
    found: dict[int, torch.Tensor] = {}
    if max_eps is not None:
        radius[todo] = max_eps
    else:
        _search_radius(model, x, yl, todo, norm, coords, generator, radius, res, found)
    todo = [i for i in todo if math.isfinite(radius[i])]
    if todo and norm == "l2":
        _bab_distances(model, net, x, yl, todo, radius, coords, time_limit, res, found)
    elif todo:
        _milp_distances(net, x, yl, todo, radius, norm, coords, time_limit, res)
    return res


def _threat_class(norm: str) -> type[ThreatModel]:
    """The threat model class of ``norm`` (``"linf"``, ``"l1"`` or ``"l2"``)."""
    return {"linf": Linf, "l1": L1, "l2": L2}[norm]


def _search_radius(model: Any, x: torch.Tensor, yl: np.ndarray, todo: list[int], norm: str, coords: Any,
                   generator: Any, radius: np.ndarray, res: DistanceResult,
                   found: dict[int, torch.Tensor] | None = None) -> None:
    """Set ``radius[i]`` (N,) for the points ``todo`` to the norm of a counterexample that PGD finds with radii
    ``2^k / 16`` (k = 0..24), shortened along the segment from ``x_i``; points with none are marked
    ``"beyond-max-eps"`` in ``res`` (distance inf, lower bound ``2^24 / 16``); ``found[i]`` (when given) gets
    the adversarial point on the segment."""
    cls = _threat_class(norm)
    left = list(todo)
    for k in range(25):
        if not left:
            break
        threat = cls(2.0 ** k / 16, coords=coords)
        z = _attack_points(_RADIUS_SEARCH, model, x[left], yl[left], threat, generator)
        z = z.to(dtype=x.dtype, device=x.device)
        ok = _confirm(model, threat, z, x[left], yl[left], None)
        delta = (z - x[left]).detach().to("cpu", torch.float64)
        nrm = torch.linalg.vector_norm(delta, ord={"linf": math.inf, "l1": 1, "l2": 2}[norm], dim=1)
        for j in np.flatnonzero(ok):
            i = left[j]
            # shorten along the segment x -> z: the last sign change found by bisection
            t = _segment_crossing(model, x[i], z[j], int(yl[i]))
            radius[i] = float(nrm[j]) * t * (1 + 1e-9) + 1e-12
            if found is not None:
                found[i] = x[i] + t * (z[j] - x[i])
        left = [i for j, i in enumerate(left) if not ok[j]]
    for i in left:
        res.status[i] = "beyond-max-eps"
        res.distance[i], res.lower[i] = math.inf, 2.0 ** 24 / 16


def _milp_distances(net: ReluNetwork, x: torch.Tensor, yl: np.ndarray, todo: list[int], radius: np.ndarray,
                    norm: str, coords: Any, time_limit: float, res: DistanceResult) -> None:
    """Solve the distance MILP of each point in ``todo`` within its box of radius ``radius[i]``, into ``res``.

    The radius variable starts at the CROWN-certified radius (:func:`_certified_radius`); pre-activation bounds
    are CROWN's over the box. ``x`` (N, d), ``yl`` (N,) labels, ``radius`` (N,).
    """
    d = x.shape[1]
    cls = _threat_class(norm)
    mask = np.zeros(d, dtype=bool)
    mask[cls(1.0, coords=coords).coord_indices(d)] = True
    p = math.inf if norm == "linf" else 1.0
    xb = x[todo].to(device=net.device, dtype=torch.float64)
    weights = [w.cpu().numpy() for w in net.weights]
    biases = [b.cpu().numpy() for b in net.biases]
    tmask = torch.as_tensor(mask, device=net.device)
    r_lo = _certified_radius(net, xb, yl[todo], radius[todo], p, tmask)
    for j, i in enumerate(todo):
        ball = InputBall(xb[j:j + 1], float(radius[i]), p, tmask)
        cb = crown_bounds(net, ball)
        lo = [t[0].cpu().numpy() for t in cb.lower[:-1]]
        up = [t[0].cpu().numpy() for t in cb.upper[:-1]]
        x0 = xb[j].cpu().numpy()
        prob = build_milp(weights, biases, x0, float(radius[i]), p, mask, lo, up, label=int(yl[i]),
                          objective="distance", min_distance=float(r_lo[j]))
        out = solve_milp(prob, time_limit)
        if out.status == "infeasible":
            res.status[i], res.distance[i], res.lower[i] = "beyond-max-eps", math.inf, float(radius[i])
            continue
        res.lower[i] = max(out.dual_bound, 0.0)
        if out.x is not None:
            res.upper[i] = out.value
            res.x_adv[i] = torch.as_tensor(out.x, dtype=x.dtype, device=x.device)
        if out.status == "optimal":
            res.status[i], res.distance[i] = "optimal", out.value


def _bab_distances(model: Any, net: ReluNetwork, x: torch.Tensor, yl: np.ndarray, todo: list[int],
                   radius: np.ndarray, coords: Any, time_limit: float, res: DistanceResult,
                   found: dict[int, torch.Tensor]) -> None:
    """The L2 distance of each point in ``todo`` by :func:`.l2bab.minimise_distance` within radius ``radius[i]``,
    starting from the adversarial points ``found[i]`` of the radius search (upper bounds) where there are some.

    Pre-activation bounds are CROWN's over the L2 ball of that radius; a solver point counts as an upper bound
    once moved out along its ray from ``x_i`` by ``(1 + tau)``, ``tau = 0, 2^-52, 2^-50, ..., 2^-10``, until the
    model's own forward pass (its dtype) predicts the other label.
    """
    d = x.shape[1]
    mask = np.zeros(d, dtype=bool)
    mask[L2(1.0, coords=coords).coord_indices(d)] = True
    tmask = torch.as_tensor(mask, device=net.device)
    weights = [w.cpu().numpy() for w in net.weights]
    biases = [b.cpu().numpy() for b in net.biases]
    taus = torch.as_tensor([0.0] + [2.0 ** -k for k in range(52, 9, -2)], dtype=torch.float64)
    for i in todo:
        x0 = x[i].detach().to("cpu", torch.float64)
        lab = int(yl[i])

        def adversarial(z: np.ndarray, x0: torch.Tensor = x0, lab: int = lab) -> np.ndarray | None:
            cand = x0[None, :] + (torch.as_tensor(z) - x0)[None, :] * (1 + taus[:, None])
            cand = cand.to(dtype=x.dtype, device=x.device)
            wrong = np.flatnonzero(np.where(_model_margin(model, cand).cpu().numpy() >= 0, 1, -1) != lab)
            return None if wrong.size == 0 else cand[wrong[0]].to("cpu", torch.float64).numpy()


        def bounds(r: float, x0: torch.Tensor = x0) -> tuple[list[np.ndarray], list[np.ndarray]]:
            cb = crown_bounds(net, InputBall(x0[None, :].to(net.device), r, 2.0, tmask))
            return [t[0].cpu().numpy() for t in cb.lower[:-1]], [t[0].cpu().numpy() for t in cb.upper[:-1]]

        prob = BabProblem(weights, biases, x0.numpy(), mask, float(radius[i]), lab)
        upper, x_upper = math.inf, None
        if i in found:
            x_upper = found[i].detach().to("cpu", torch.float64).numpy()
            upper = float(np.linalg.norm(x_upper - x0.numpy()))
        out = minimise_distance(prob, bounds, adversarial, time.perf_counter() + time_limit, upper=upper,
                                x_upper=x_upper)
        res.lower[i], res.upper[i] = out.lower, out.upper
        if out.x is not None:
            res.x_adv[i] = torch.as_tensor(out.x, dtype=x.dtype, device=x.device)
        if out.status == "optimal":
            res.status[i], res.distance[i] = "optimal", out.upper
        elif out.status == "beyond":
            res.status[i], res.distance[i], res.lower[i] = "beyond-max-eps", math.inf, float(radius[i])
        elif out.status == "boundary":  # ended, not cut short: the solver's precision left [lower, upper] open
            res.status[i] = "boundary"


def _segment_crossing(model: Any, x0: torch.Tensor, z: torch.Tensor, label: int, iters: int = 40) -> float:
    """The smallest ``t`` in (0, 1] found by bisection with ``x0 + t (z - x0)`` adversarial (z is adversarial)."""
    ts = torch.linspace(0, 1, 65, dtype=torch.float64)[1:]
    pts = x0[None, :] + ts.to(x0)[:, None] * (z - x0)[None, :]
    pred = np.where(_model_margin(model, pts).cpu().numpy() >= 0, 1, -1)
    first = int(np.flatnonzero(pred != label)[0])
    hi = float(ts[first])
    lo = float(ts[first - 1]) if first > 0 else 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        m = _model_margin(model, (x0 + mid * (z - x0))[None, :]).cpu().numpy()[0]
        if (1 if m >= 0 else -1) != label:
            hi = mid
        else:
            lo = mid
    return hi


def _certified_radius(net: ReluNetwork, xb: torch.Tensor, labels: np.ndarray, r_hi: np.ndarray, p: float,
                      mask: torch.Tensor, iters: int = 12) -> np.ndarray:
    """A radius below which CROWN proves ``label * m > 0`` (bisection, batched); a lower bound on the distance."""
    lab = torch.as_tensor(labels, dtype=torch.float64, device=xb.device)
    lo = torch.zeros(xb.shape[0], dtype=torch.float64, device=xb.device)
    hi = torch.as_tensor(r_hi, dtype=torch.float64, device=xb.device)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ball = InputBall(xb, mid[:, None], p, mask)
        ml, mu = crown_bounds(net, ball, margin_sign=lab).margin()  # only the side the label needs
        ok = torch.where(lab > 0, ml, -mu) > 0
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return lo.cpu().numpy() * (1 - 1e-9)


# -------------------------------------------------------------------------------------------------- dispatch


class ReluVerifier:
    """The verifier of ReLU networks (:func:`_relu_verify`, :func:`_relu_minimal_distance`): the fallback, since
    :func:`~toyrobust.verification.network.extract_network` names any layer it cannot read."""

    name = "relu"

    def accepts(self, model: Any) -> bool:
        """Every model (the last verifier tried)."""
        return True

    def verify(self, model: Any, x: torch.Tensor, y: Any, threat: ThreatModel, **options: Any) -> VerificationResult:
        return _relu_verify(model, x, y, threat, **options)

    def minimal_distance(self, model: Any, x: torch.Tensor, y: Any, norm: str, **options: Any) -> DistanceResult:
        return _relu_minimal_distance(model, x, y, norm, **options)


#: the verifiers, tried in order (:class:`~toyrobust.verification.common.ModelVerifier`); the first that accepts a
#: model answers :func:`verify` and :func:`minimal_distance`
VERIFIERS: list[ModelVerifier] = [QUADRATIC, ReluVerifier()]


def verifier_for(model: Any) -> ModelVerifier:
    """The first of :data:`VERIFIERS` that accepts ``model``."""
    return next(v for v in VERIFIERS if v.accepts(model))
