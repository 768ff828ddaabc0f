"""Exact attacks: the minimal adversarial perturbation of an analytic classifier, in closed form.

For a point ``x`` correctly labelled ``y`` the minimal perturbation solves ``min ||delta||_p  s.t.
f(x + delta) != y``; its size is the distance from ``x`` to the decision boundary in the Lp norm. With it
the ball-definition adversarial risk is ``P[dist(x) <= eps]`` with no attack error.

* ``Linear`` ``sign(<w, x> + b)``, any norm and coordinate subset: ``dist = |<w, x> + b| / ||w_S||_q`` (Hoelder;
  seed 004), reached by the steepest-ascent step of the threat model.
* ``Radial`` ``sign(||x||_2 - r)``: L2 moves radially; Linf and L1 are exact too (the extreme values of
  ``||x + delta||_2`` over an Linf or L1 ball: ``x + t sign(x)`` and a soft-threshold / water-filling for Linf,
  one coordinate and the L1 soft-threshold for L1).
* ``Quadratic`` ``sign(sum_i alpha_i x_i^2 - c)``, L2: the nearest point of the quadric is
  ``z = (I + lambda A)^-1 x`` with ``I + lambda A`` positive semi-definite and ``lambda`` the root of the
  secular equation ``sum_i alpha_i x_i^2 / (1 + lambda alpha_i)^2 = c`` (More 1993, the trust-region
  characterisation); the "hard case", where ``x`` has no component on the extreme eigenvector, is handled.
  Linf: the margin is separable, so its extreme value over the box moves each coordinate on its own; the distance
  is the crossing of that piecewise quadratic, monotone function of the box's size (:mod:`.minimal`).

A restricted threat (``coords``) keeps the other coordinates fixed; each formula then runs on the free
coordinates with the fixed ones folded into the threshold.

References:
    J. J. More, "Generalizations of the trust region problem", Optimization Methods and Software 2, 1993.
    J. J. More, D. C. Sorensen, "Computing a trust region step", SIAM J. Sci. Stat. Comput. 4, 1983.
    J. Gilmer et al., "Adversarial spheres", 2018 (the quadratic classifier).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..classifiers import Classifier, Linear, Quadratic, as_classifier
from ..definitions import check_definition, get_definition, is_adversarial
from ..threats import ThreatModel, _vector_norm
from .base import SUPPORTED, Attack, AttackResult, Support
from .gradient import PGD
from .manifold import ProjectionAttack
from .minimal import _minimal, minimal_perturbation, supports_minimal
from .regions import region_kind, region_pieces, solve_pieces, supports_region

__all__ = ["ExactAttack", "exact_attack", "minimal_perturbation", "default_attack", "supports_exact"]

_EXACT_DEFINITIONS = ("ball", "prediction-change")
_REGION_DEFINITIONS = ("projection", "error-region")


def supports_exact(clf: Any, threat: Any, *, definition: str = "ball", dist: Any = None) -> bool:
    """Whether :class:`ExactAttack` decides every sample exactly for this classifier, threat and definition.

    Ball and prediction-change: Linear (any norm), Radial (Linf, L2, L1), Quadratic (L2, Linf). Projection and
    error-region (the distribution is needed): a linear classifier on point masses, a Gaussian mixture or
    Tsipras (any norm), and the Bernoulli model with ``eps < 1`` for every classifier of the first list (see
    :mod:`toyrobust.attacks.regions`). Classifiers with symbolic parameters are excluded. A distribution may decide
    further cases itself (``dist.supports_exact_attack``/``dist.exact_attack``: a small empirical sample's 1-NN
    classifier, and linear classifiers on its Voronoi cells).
    """
    return bool(ExactAttack().supports(clf, threat, definition, dist))


#: CPU row blocks of the dense linear attack hold this many entries: a float64 copy of a block (4 MiB) is reused
#: from the heap and stays in the cache (see toyrobust.threats._CPU_BLOCK_BYTES)
_CPU_BLOCK_ENTRIES = 1 << 19
#: and at most this many rows (torch's parallel grain is 32768 elements)
_CPU_BLOCK_ROWS = 1 << 15
#: the linear attack steps this many rounding errors of the margin (in units of (sqrt(nnz(w)) + 2) ulp sum |w_i x_i|)
#: past the boundary, so that rounding rarely leaves a point on it
_SLACK_ULPS = 4.0


def _linear_attack(clf: Linear, x: torch.Tensor, y_true: torch.Tensor, threat: ThreatModel,
                   definition: str) -> AttackResult:
    """The exact attack on ``sign(<w, x> + b)`` (ball, prediction-change) in two passes over ``x``.

    Every perturbation is a multiple of one direction: ``x_adv = x + c v`` with ``v`` the unit steepest-ascent
    direction of ``w`` in the threat's norm (``<v, w> = ||w_S||_q``, supported on ``coords``) and
    ``c = -y min(dist + slack, eps)``, ``dist = |m| / ||w_S||_q``: the boundary crossed where ``dist <= eps``, the
    point of the ball pushed furthest towards it otherwise (what :func:`minimal_perturbation` followed by the
    projection gives). ``slack`` (a few ulps of ``sum |w_i x_i|``) pushes past the boundary so that rounding rarely
    leaves a point on it; rows that rounding still leaves on y's side are lengthened as in :func:`_nudge`.

    Only the margin (float64, read from the columns where ``w != 0``), the step (the columns where ``v != 0``) and
    the norms are computed, in row blocks that stay in the cache on a CPU; ``success`` is
    :func:`~toyrobust.definitions.is_adversarial`'s rule evaluated with ``clf.margin`` on the returned points, and
    ``norms`` are measured on them, as :func:`~toyrobust.attacks.losses.finish` does.
    """
    n, d = x.shape
    dev, dt = x.device, x.dtype
    w = clf.w.to_tensor(dev, torch.float64)
    b = float(clf.b)
    eps = threat.radius
    v64 = threat.steepest_ascent(w[None], 1.0)[0]  # validates coords against d; 0 off coords
    wq = float(threat.dual_norm(w[None])[0])
    v = v64.to(dt)
    read = (w != 0).nonzero()[:, 0]  # the margin's columns
    move = (v != 0).nonzero()[:, 0]  # the step's columns
    w_read = w[read]
    sparse_read, sparse_move = 4 * read.numel() <= d, 4 * move.numel() <= d
    v_move = v[move]
    rule = get_definition(definition)
    y_eff = clf.predict(x) if rule.needs_clean else y_true
    ulp = torch.finfo(dt).eps
    slack_factor = _SLACK_ULPS * (math.sqrt(read.numel()) + 2) * ulp
    x_adv = torch.empty((n, d), dtype=dt, device=dev)
    norms = torch.empty(n, dtype=dt, device=dev)
    dist = torch.empty(n, dtype=torch.float64, device=dev)
    correct = torch.empty(n, dtype=torch.bool, device=dev)
    # one block on a GPU (launches, not bandwidth, cost there); on a CPU row blocks keep the dense float64 margin in
    # the cache, and at most _CPU_BLOCK_ROWS rows keep the per-row arithmetic in one thread (below torch's parallel
    # grain: each parallel region costs a scheduler time slice on a busy CPU, more than the arithmetic itself)
    if dev.type != "cpu":
        step = n
    else:
        step = _CPU_BLOCK_ROWS if sparse_read and sparse_move else max(16, _CPU_BLOCK_ENTRIES // max(1, d))
        step = min(step, _CPU_BLOCK_ROWS)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        xb = x[lo:hi]
        xr = (xb.index_select(1, read) if sparse_read else xb).to(torch.float64)
        wr = w_read if sparse_read else w
        m = xr @ wr + b
        up = y_eff[lo:hi] > 0
        ok = (m >= 0) == up
        dist_b = m.abs() / wq if wq > 0 else torch.full_like(m, math.inf)
        dist[lo:hi], correct[lo:hi] = dist_b, ok
        slack = (xr.abs() @ wr.abs() + abs(b)) * (slack_factor / wq) if wq > 0 else 0.0
        r = (dist_b + slack).clamp(max=eps)
        c = torch.where(ok & (wq > 0), torch.where(up, -r, r), 0.0).to(dt)
        out = x_adv[lo:hi]
        if sparse_move:
            out.copy_(xb)
            part = xb.index_select(1, move)
            out.index_copy_(1, move, part + c[:, None] * v_move)
            # the other columns of out are bitwise those of xb: the norm of the moved columns is the norm
            norms[lo:hi] = _norm_p(out.index_select(1, move) - part, threat.p)
        else:
            torch.addr(xb, c, v, out=out)
            norms[lo:hi] = threat.norm(out - xb)
    with torch.no_grad():
        success = rule.rule(clf.predict(x_adv), y_true, None, y_eff)
    todo = correct & (dist <= eps) & ~success
    if bool(todo.any()):
        _lengthen(clf, x, x_adv, norms, todo, dist, y_eff, v, threat)
        with torch.no_grad():  # the claim is re-evaluated on the whole batch, as the estimator will
            success = rule.rule(clf.predict(x_adv), y_true, None, y_eff)
    return AttackResult(x_adv=x_adv, success=success, norms=norms, grad_evals=0)


def _norm_p(delta: torch.Tensor, p: float) -> torch.Tensor:
    """Lp norms of the rows of ``delta`` (0 for rows of no columns)."""
    return _vector_norm(delta, p) if delta.shape[1] else torch.zeros(delta.shape[0], dtype=delta.dtype,
                                                                        device=delta.device)


def _lengthen(clf: Linear, x: torch.Tensor, x_adv: torch.Tensor, norms: torch.Tensor, todo: torch.Tensor,
              dist: torch.Tensor, y_eff: torch.Tensor, v: torch.Tensor, threat: ThreatModel) -> None:
    """Rows of the linear attack that rounding left on y's side: ``c = -y min(dist (1 + tau) + tau s, eps)`` for
    ``tau = ulp, 4 ulp, 16 ulp, ...`` (``s = max(1, max_i |x_i|)``), as :func:`_nudge` does; updates in place."""
    rows = todo.nonzero()[:, 0]
    xr, dr, yr = x[rows], dist[rows], y_eff[rows]
    sgn = torch.where(yr > 0, -1.0, 1.0).to(torch.float64)
    scale = xr.abs().amax(dim=1).to(torch.float64).clamp_min(1.0)
    eps = threat.radius
    best = x_adv[rows]
    left = torch.ones(rows.numel(), dtype=torch.bool, device=x.device)
    tau = torch.finfo(x.dtype).eps
    for _ in range(30):
        c = (sgn * (dr * (1 + tau) + tau * scale).clamp(max=eps)).to(x.dtype)
        cand = xr + c[:, None] * v
        with torch.no_grad():
            crossed = clf.predict(cand) != yr
        best = torch.where(left[:, None], cand, best)
        left = left & ~crossed
        if not bool(left.any()):
            break
        tau *= 4
    x_adv[rows] = best
    norms[rows] = threat.norm(best - xr)


def _region_delta(clf: Classifier, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, definition: str,
                  dist: Any) -> torch.Tensor:
    """A qualifying perturbation per row (0 where none exists) for the projection and error-region definitions."""
    x64 = x.detach().to(torch.float64)
    if region_kind(dist, threat) in ("fixed", "fixed-unsupported"):
        # the projection of every ball point is the clean support point (the Bernoulli model's vertex) when no free
        # coordinate can change its sign (x_i >= 0 must stay >= 0, x_i < 0 must stay < 0; every norm moves one
        # coordinate by at most eps)
        eps = threat.radius
        free = threat.mask(x.shape[1], device=x.device, dtype=torch.bool)
        keeps = torch.where(x64 >= 0, x64 - eps >= 0, x64 + eps < 0) | ~free
        if not bool(keeps.all()):
            bad = int((~keeps.all(1)).nonzero()[0])
            raise ValueError(f"the exact attack on {type(dist).__name__} needs balls that keep every free coordinate's "
                             f"sign (eps < {dist.projection_fixed_below} around the support); row {bad} of x can "
                             f"cross 0 with eps={eps:g}")
        truth = dist.projected_bayes_label(x64).to(torch.int64)
        delta, _ = _minimal(clf, x, truth, threat)
        if definition == "projection":
            delta = torch.where((truth == y)[:, None], delta, torch.zeros_like(delta))
        return delta
    pieces = region_pieces(dist, clf, definition, y, x.device)
    found, delta = solve_pieces(pieces, x64, threat)
    delta = delta.to(x.dtype)
    # a point on a non-strict boundary (exact in the maths) may round to the wrong side: those rows get a point a
    # little inside every piece instead, where one exists
    with torch.no_grad():
        cand = threat.project(x + delta, x)
        bad = found & ~is_adversarial(definition, clf, cand, y, dist=dist, x=x)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        sub = [(r, m[rows]) for r, m in pieces]
        ok, d2 = solve_pieces(sub, x64[rows], threat, robust=max(1e-11, 256 * torch.finfo(x.dtype).eps))
        delta[rows[ok]] = d2[ok].to(x.dtype)
    return delta


def _by_distribution(dist: Any, clf: Any, threat: Any, definition: str) -> bool:
    """Whether the distribution decides this case itself (``dist.supports_exact_attack``, e.g. an empirical sample's
    Voronoi cells)."""
    hook = getattr(dist, "supports_exact_attack", None)
    return bool(hook is not None and isinstance(threat, ThreatModel) and hook(clf, threat, definition))


class ExactAttack(Attack):
    """The exact worst case in the ball for an analytic classifier: a point of the ball that qualifies whenever one
    exists (``kind = "exact"``: a Monte Carlo count with it is the risk itself).

    Ball and prediction-change: ``x_adv = Proj_B(x + delta*)`` with ``delta*`` from :func:`minimal_perturbation`,
    adversarial exactly when the distance to the boundary is at most eps (up to ulps at ``dist = eps``). Where it is
    larger the projection gives the point of the ball pushed furthest towards the boundary (linear and radial
    classifiers) or towards the nearest boundary point (quadratic), so a failed row is a genuine point of the ball.

    Projection and error-region: the qualifying set ``B(x, eps) ∩ R_l ∩ {f != l}`` is a finite union of polyhedra
    in the ball (point masses, Gaussian mixtures, Tsipras with a linear classifier; the Bernoulli model for
    ``eps < 1``); each piece is decided exactly and a point of it returned (:mod:`toyrobust.attacks.regions`:
    closed forms for L2, a linear program for Linf and L1 where cheap checks do not decide). Where nothing
    qualifies, the clean point is returned. ``grad_evals = 0``; it has no options.

    References:
        See :func:`minimal_perturbation`; Gilmer et al. 2018 for the quadratic classifier on the spheres; Stutz
        (seed 000) for the projection definition.
    """

    name = "exact_attack"
    aliases = ("exact",)
    kind = "exact"

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        clf = as_classifier(clf) if not isinstance(clf, Classifier) else clf
        if _by_distribution(dist, clf, threat, definition):
            return SUPPORTED
        if definition in _REGION_DEFINITIONS:
            if supports_region(dist, clf, threat):
                return SUPPORTED
            return Support(False, f"no exact {definition} attack for {type(clf).__name__} on {type(dist).__name__} "
                                  f"with {threat!r}: supported are a numeric Linear classifier on PointMasses, "
                                  f"GaussianMixture or Tsipras (any norm), and the BernoulliModel with eps < 1; use "
                                  f"default_attack(clf, threat, definition, dist=dist)")
        if definition not in _EXACT_DEFINITIONS:
            return Support(False, f"exact_attack supports definition 'ball', 'prediction-change', 'projection' or "
                                  f"'error-region', got {definition!r}")
        if supports_minimal(clf, threat):
            return SUPPORTED
        if isinstance(clf, Quadratic):
            return Support(False, f"Quadratic classifiers have an exact attack for L2 and Linf only, got norm "
                                  f"{getattr(threat, 'name', threat)}")
        return Support(False, f"no exact attack for classifier type {type(clf).__name__}: supported are Linear "
                              f"(any norm), Radial (Linf, L2, L1) and Quadratic (L2, Linf) with numeric parameters; "
                              f"use pgd")

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        if _by_distribution(dist, clf, threat, definition):
            return dist.exact_attack(clf, x, y, threat, definition)
        if definition in _REGION_DEFINITIONS:
            return x + _region_delta(clf, x, y, threat, definition, dist)
        if isinstance(clf, Linear):
            return _linear_attack(clf, x, y, threat, definition)
        y_eff = clf.predict(x) if definition == "prediction-change" else y
        delta, _ = _minimal(clf, x, y_eff, threat)
        return x + delta


def exact_attack(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, definition: str = "ball",
                 dist: Any = None, generator: Any = None) -> AttackResult:
    """The exact attack as a function: ``ExactAttack().run(...)`` (see :class:`ExactAttack`).

    Args:
        clf: ``Linear`` (any norm, restricted coordinates too), ``Radial`` (Linf, L2, L1), ``Quadratic`` (L2,
            Linf);
            for projection / error-region see :func:`supports_exact`.
        x: (N, d) clean points.
        y: (N,) labels in {-1, +1}.
        threat: the ball.
        definition: ``"ball"``, ``"prediction-change"``, ``"projection"`` or ``"error-region"``.
        dist: the distribution (needed by the projection and error-region definitions).
        generator: unused (deterministic); accepted for the common calling convention.

    Returns:
        :class:`AttackResult` with ``grad_evals = 0``; ``success`` is
        :func:`~toyrobust.definitions.is_adversarial` on the returned points.

    Raises:
        TypeError: a classifier type (named), norm or distribution without an exact solution.
        ValueError: an unknown definition, a missing ``dist``, or (Bernoulli) a ball that lets a coordinate change
            its sign.
    """
    return ExactAttack().run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)


def default_attack(clf: Any, threat: Any, definition: str = "ball", *, dist: Any = None) -> Attack:
    """The attack an estimator should use for this classifier, threat and definition.

    * an exact solution (see :func:`supports_exact`; the projection and error-region definitions need ``dist``):
      :class:`ExactAttack` (no attack error);
    * projection definition otherwise: :class:`~toyrobust.attacks.manifold.ProjectionAttack` (PGD that keeps the
      Bayes label of the projection, i.e. stays in the label-preserving region);
    * otherwise: :class:`~toyrobust.attacks.gradient.PGD` (margin loss, early stopping, definition-aware success).

    Returns:
        an :class:`~toyrobust.attacks.base.Attack` with its default options.
    """
    check_definition(definition)
    clf_c = as_classifier(clf)
    exact = ExactAttack()
    if isinstance(threat, ThreatModel) and exact.supports(clf_c, threat, definition, dist):
        return exact
    if definition == "projection":
        return ProjectionAttack()
    return PGD()
