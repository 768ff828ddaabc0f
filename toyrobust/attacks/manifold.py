"""Definition-aware attacks: label-preserving PGD for the projection definition, and on-manifold PGD for spheres.

Under the projection definition (Stutz, seed 000) a perturbed point ``x'`` is adversarial when ``f(x') != y``
*and* the Bayes label of its projection onto the support is still ``y``: the adversary may not change the true
label. :func:`projection_attack` runs PGD inside ``B(x, eps) ∩ R_y`` with ``R_y = {z : Bayes(proj(z)) = y}``:
after each ball projection the iterate is projected onto the intersection, exactly in closed form where the
geometry allows (:func:`_exact_projection`: a half-space ``R_y`` -- the Gaussian mixture, the point masses --
under any norm; a radial shell -- the outside / inside of the middle sphere of the concentric spheres -- under an
L2 ball on every coordinate, a two-dimensional problem in the plane of ``x`` and the iterate, and under an Linf
ball, a box, by one multiplier on ``||z||^2``), and otherwise by Dykstra's algorithm from the exact projections onto
the ball and onto ``R_y`` (Tsipras' union of two products of half-spaces, L1 balls on the spheres); a bisection
towards the previous feasible iterate guarantees feasibility (which is all an unknown distribution gets).

:func:`on_manifold_attack` keeps every iterate on the sphere of its own clean radius ``||x||`` (PITFALLS 8: an
attack that projects onto the *unit* sphere moves outer-sphere points onto the inner sphere and changes their
true label). For L2 the projection onto ``sphere ∩ ball`` (a spherical cap) is exact.

References:
    D. Stutz, "Towards a definition for adversarial examples" (seed 000).
    J. Gilmer et al., "Adversarial spheres", 2018.
"""

from __future__ import annotations

from typing import Any

import torch

from ..threats import L2, Linf, ThreatModel
from .base import SUPPORTED, AttackResult, Support
from .gradient import PGD
from .losses import check_int

__all__ = ["projection_attack", "on_manifold_attack", "label_region_projection", "sphere_projection"]


def label_region_projection(dist: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Euclidean projection of each row of ``z`` onto ``R_y = {z : Bayes(proj(z)) = y}``, or None if unknown.

    The distribution owns its label regions (:meth:`~toyrobust.distributions.Distribution.label_region_projection`);
    this is the attacks' entry point.

    Args:
        dist: the distribution.
        z: (N, d) points.
        y: (N,) labels in {-1, +1}.
    """
    return dist.label_region_projection(z, y)


def _ball_halfspace_projection(
    threat: ThreatModel, v: torch.Tensor, x0: torch.Tensor, a: torch.Tensor, beta: torch.Tensor, iters: int = 60
) -> torch.Tensor:
    """Exact Euclidean projection onto ``B(x0, eps) ∩ {<a, z> >= beta}``.

    By the KKT conditions it is ``Proj_B(v + mu a)`` for the multiplier ``mu >= 0``, and ``<a, Proj_B(v + mu a)>``
    is non-decreasing in ``mu`` (projections are monotone), so ``mu`` is found by doubling then bisection. Rows
    whose intersection is empty get the last (most feasible) point tried.
    """
    z = threat.project(v, x0)
    need = (a * z).sum(1) < beta
    if not bool(need.any()):
        return z
    a2 = (a * a).sum(1).clamp_min(torch.finfo(v.dtype).tiny)
    hi = (beta - (a * v).sum(1)).clamp_min(0) / a2 + torch.finfo(v.dtype).eps

    def at(mu: torch.Tensor) -> torch.Tensor:
        return threat.project(v + mu[:, None] * a, x0)

    for _ in range(60):  # doubling until feasible
        short = need & ((a * at(hi)).sum(1) < beta)
        if not bool(short.any()):
            break
        hi = torch.where(short, 2 * hi, hi)
    lo = torch.zeros_like(hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = (a * at(mid)).sum(1) >= beta
        lo, hi = torch.where(ok, lo, mid), torch.where(ok, mid, hi)
    return torch.where(need[:, None], at(hi), z)


def _unit_pair(v: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The plane of ``x0`` and ``v`` per row: ``(e, w, a, b, c)`` with ``e`` the unit vector along ``x0``
    (``c = ||x0||``), ``v``'s coordinates ``a = <v, e>`` and ``b = ||v - a e|| >= 0``, and ``w`` a vector along
    ``v - a e`` of length ``b``
    (of length 1 where ``b = 0``), so that ``(p, q)`` is the point ``p e + (q / max(b, 1 if b = 0)) w``.
    Degenerate rows get some valid choice (``e`` along ``v`` or a basis vector where ``x0 = 0``; where ``v`` lies
    on ``e``'s line, ``w`` is a unit vector orthogonal to ``e``)."""
    tiny = torch.finfo(v.dtype).tiny
    c = torch.linalg.vector_norm(x0, dim=1, keepdim=True)
    e = x0 / c.clamp_min(tiny)
    if bool((c == 0).any()):
        nv = torch.linalg.vector_norm(v, dim=1, keepdim=True)
        basis = torch.zeros_like(v[:1])
        basis[0, 0] = 1.0
        e = torch.where(c > 0, e, torch.where(nv > 0, v / nv.clamp_min(tiny), basis))
    a = torch.linalg.vecdot(v, e)[:, None]
    w = torch.addcmul(v, a, e, value=-1.0)
    b = torch.linalg.vector_norm(w, dim=1, keepdim=True)
    if bool((b == 0).any()):
        # the basis vector least aligned with e, made orthogonal to it
        u = torch.zeros_like(v).scatter_(1, e.abs().argmin(dim=1, keepdim=True), 1.0)
        u = u - (u * e).sum(1, keepdim=True) * e
        w = torch.where(b > 0, w, u / torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(tiny))
    return e, w, a[:, 0], b[:, 0], c[:, 0]


def _plane_candidates(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, eps: float, lo: torch.Tensor,
                      hi: torch.Tensor) -> torch.Tensor:
    """The candidates (N, 8, 2) for the nearest point of ``{|W - (c, 0)| <= eps, lo <= |W| <= hi}`` to ``(a, b)``
    in the half-plane: the point itself, its projections onto the circle ``|W - (c, 0)| = eps`` and onto the
    circles ``|W| = lo`` and ``|W| = hi``, and the points where the ball's circle meets each of those (both signs
    of the second coordinate). NaN marks a candidate that does not exist."""
    tiny = torch.finfo(a.dtype).tiny
    nan = torch.full_like(a, torch.nan)
    V = torch.stack([a, b], 1)
    X = torch.stack([c, torch.zeros_like(c)], 1)
    dv = V - X
    ndv = torch.linalg.vector_norm(dv, dim=1, keepdim=True)
    out_dir = torch.where(ndv > 0, dv / ndv.clamp_min(tiny), torch.tensor([1.0, 0.0], dtype=a.dtype, device=a.device))
    nV = torch.linalg.vector_norm(V, dim=1, keepdim=True)
    radial = torch.where(nV > 0, V / nV.clamp_min(tiny), torch.tensor([1.0, 0.0], dtype=a.dtype, device=a.device))
    cands = [V, X + eps * out_dir]
    for r in (lo, hi):
        ok = torch.isfinite(r) & (r > 0)
        rr = torch.where(ok, r, nan)
        cands.append(rr[:, None] * radial)
        # |W| = r and |W - X| = eps: p = (r^2 - eps^2 + c^2) / (2c), q = +-sqrt(r^2 - p^2)
        p = (rr * rr - eps * eps + c * c) / (2 * torch.where(c > 0, c, nan))
        q = (rr * rr - p * p).sqrt()  # NaN where the circles do not meet
        cands += [torch.stack([p, q], 1), torch.stack([p, -q], 1)]
    return torch.stack(cands, 1)


def _ball_shell_projection(v: torch.Tensor, x0: torch.Tensor, eps: float, lo: torch.Tensor,
                           hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean projection of each row of ``v`` onto ``B_2(x0, eps) ∩ {lo <= ||z|| <= hi}``, in closed form.

    The set is invariant under the rotations about the line through 0 and ``x0``, and such a rotation that brings a
    point into the half-plane of ``v`` (spanned by ``x0`` and ``v``'s part orthogonal to it) only brings it nearer
    to ``v``: the nearest point lies in that half-plane, a two-dimensional problem. There it is ``v`` itself, or on
    one of the set's boundary arcs (pieces of the circles ``|W - x0| = eps``, ``|W| = lo``, ``|W| = hi``), either
    at the nearest point of a whole circle or at an arc's end, where two circles meet; the nearest feasible
    candidate (:func:`_plane_candidates`) is the projection. This holds for the non-convex shell
    ``{||z|| >= lo}`` too, where alternating projections (Dykstra) need not converge to the nearest point.

    Args:
        v: (N, d) points; x0: (N, d) ball centres; eps: the radius.
        lo, hi: (N,) the shell's radii (``lo = 0`` and ``hi = inf`` drop a side).

    The ball's radius is taken 16 ulps smaller, so that the result lies in the ball despite rounding.

    Returns:
        ``(z, ok)``: the projections (N, d) and whether the intersection is non-empty (N,) (else ``z`` is ``v``).
    """
    e, w, a, b, c = _unit_pair(v, x0)
    eps = eps * (1 - 16 * torch.finfo(v.dtype).eps)  # so that rounding leaves the result inside the ball
    cands = _plane_candidates(a, b, c, eps, lo, hi)
    slack = 64 * torch.finfo(v.dtype).eps
    rad = torch.linalg.vector_norm(cands, dim=2)
    to_x = torch.linalg.vector_norm(cands - torch.stack([c, torch.zeros_like(c)], 1)[:, None, :], dim=2)
    feasible = ((to_x <= eps * (1 + slack) + slack * c[:, None]) & (rad >= lo[:, None] * (1 - slack))
                & (rad <= hi[:, None] * (1 + slack)))
    gap = torch.linalg.vector_norm(cands - torch.stack([a, b], 1)[:, None, :], dim=2)
    gap = torch.where(feasible, gap, torch.inf)
    best = gap.argmin(dim=1)
    pq = cands[torch.arange(v.shape[0], device=v.device), best]
    ok = torch.isfinite(gap.gather(1, best[:, None])[:, 0])
    z = torch.addcmul(pq[:, :1] * e, (pq[:, 1] / torch.where(b > 0, b, 1.0))[:, None], w)
    return (z if bool(ok.all()) else torch.where(ok[:, None], z, v)), ok


def _box_shell_projection(v: torch.Tensor, x0: torch.Tensor, reach: torch.Tensor, lo: torch.Tensor,
                          hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean projection of each row of ``v`` onto the box ``[low, up] = [x0 - reach, x0 + reach]``
    intersected with the radial shell ``{lo <= ||z||_2 <= hi}`` (an Linf ball, some coordinates possibly pinned by
    ``reach = 0``).

    With a multiplier ``lambda`` on ``||z||^2`` the problem separates by coordinate, and the minimiser of
    ``(z_i - v_i)^2 + lambda z_i^2`` over ``[low_i, up_i]`` is ``clip(s v_i)`` with ``s = 1 / (1 + lambda)``;
    ``N(s) = ||clip(s v)||`` is non-decreasing in ``s > 0``. So:

    * ``lo <= N(1) <= hi``: the box projection ``clip(v)`` is the answer;
    * ``N(1) > hi`` (the convex case, ``lambda > 0``): the ``s`` in ``[0, 1)`` with ``N(s) = hi`` (KKT are
      sufficient for a convex problem); empty when ``N(0) = ||clip(0)|| > hi``;
    * ``N(1) < lo`` (the non-convex outside of a ball, ``-1 < lambda < 0``): the ``s > 1`` with ``N(s) = lo``.
      It is the global minimiser: for every feasible ``z``, ``||z - v||^2 - mu ||z||^2 >= ||z* - v||^2 -
      mu ||z*||^2`` with ``mu = -lambda in (0, 1)`` (``z*`` minimises the convex separable left side over the box)
      and ``||z|| >= lo = ||z*||``. When even ``s -> inf`` (``clip`` towards the corner in ``v``'s signs) stays
      below ``lo``, the minimiser needs ``mu >= 1`` (a combinatorial choice of corners): the row is reported
      not solved.

    ``s`` is found by bisection to the dtype's precision, keeping the feasible end, so the result lies in the
    shell up to rounding of the norm (the caller checks the label region).

    Args:
        v: (N, d) points; x0: (N, d) the box's centres; reach: (d,) its half-widths; lo, hi: (N,) the shell's radii
            (``lo = 0``, ``hi = inf`` drop a side).

    Returns:
        ``(z, ok)``: (N, d) projections (rows not solved get ``clip(v)``) and (N,) whether each row was solved.
    """
    z = (v - x0).clamp_(-reach, reach).add_(x0)  # clip(v) in three passes (the box itself only where needed)
    norm = torch.linalg.vector_norm(z, dim=1)
    shrink, grow = norm > hi, norm < lo
    ok = torch.ones_like(norm, dtype=torch.bool)
    if not bool((shrink | grow).any()):
        return z, ok
    bits = 56 if v.dtype == torch.float64 else 27  # the mantissa and a few more
    rows = (shrink | grow).nonzero()[:, 0]
    vr = v[rows]
    lr, ur = x0[rows] - reach, x0[rows] + reach
    grow_r = grow[rows][:, None]
    # grow: clip(v / t) for t in (0, 1], t -> 0 the corner in v's signs; shrink: clip(s v) for s in [0, 1]
    inf_pt = torch.where(vr > 0, ur, torch.where(vr < 0, lr, torch.zeros_like(vr).clamp_(lr, ur)))

    def at(t: torch.Tensor) -> torch.Tensor:
        tt = t[:, None]
        scaled = torch.where(grow_r, vr / torch.where(tt > 0, tt, 1.0), vr * tt)
        return torch.where(grow_r & (tt == 0), inf_pt, scaled.clamp(lr, ur))

    def feasible(t: torch.Tensor) -> torch.Tensor:
        n = torch.linalg.vector_norm(at(t), dim=1)
        return torch.where(grow_r[:, 0], n >= lo[rows], n <= hi[rows])

    good = torch.zeros(rows.shape[0], dtype=v.dtype, device=v.device)  # t = 0 / s = 0: the feasible end
    bad = torch.ones_like(good)
    solvable = feasible(good)
    for _ in range(bits):
        mid = (good + bad) / 2
        f = feasible(mid)
        good, bad = torch.where(f, mid, good), torch.where(f, bad, mid)
    z[rows] = torch.where(solvable[:, None], at(good), z[rows])
    ok[rows] = solvable
    return z, ok


def _l2_shell_projection(v: torch.Tensor, x0: torch.Tensor, threat: ThreatModel, lo: torch.Tensor,
                         hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_ball_shell_projection`, with the ball's own projection first: where it lies in the shell it is the
    answer (the nearest point of the ball is the nearest of any subset holding it), so only the other rows go
    through the plane's candidates (most steps of an attack that the shell does not stop)."""
    z = threat.project(v, x0)
    norm = torch.linalg.vector_norm(z, dim=1)
    out = ~((norm >= lo) & (norm <= hi))
    ok = torch.ones_like(out)
    if not bool(out.any()):
        return z, ok
    rows = out.nonzero()[:, 0]
    z[rows], ok[rows] = _ball_shell_projection(v[rows], x0[rows], threat.radius, lo[rows], hi[rows])
    return z, ok


def _exact_projection(dist: Any, threat: ThreatModel, z: torch.Tensor, x0: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, bool] | None:
    """The exact projection of the rows of ``z`` onto ``B(x0, eps) ∩ R_y`` where the geometry allows, else None.

    A half-space ``R_y`` (:meth:`~toyrobust.distributions.Distribution.label_halfspace`), any norm:
    :func:`_ball_halfspace_projection`. A radial shell ``R_y``
    (:meth:`~toyrobust.distributions.Distribution.label_shell`) and an L2 ball on every coordinate:
    :func:`_l2_shell_projection`; an Linf ball (some coordinates possibly fixed): :func:`_box_shell_projection`
    (rows whose intersection is empty, or the box's corner case, get the ball projection; the feasibility repair
    takes them). Returns ``(projection, inside)``, ``inside`` True when every row is checked to lie in the
    shell (so in ``R_y``, which holds it: the repair has nothing to do).
    """
    half = dist.label_halfspace(z, y)
    if half is not None:
        return _ball_halfspace_projection(threat, z, x0, *half), False
    box = isinstance(threat, Linf)
    if not (box or (isinstance(threat, L2) and threat.coords is None)):
        return None
    shell = dist.label_shell(z, y)
    if shell is None:
        return None
    if box:
        reach = threat._bool_mask(z).to(z.dtype) * threat.radius  # in z's dtype (a float32 eps is not the radius)
        out, ok = _box_shell_projection(z, x0, reach, *shell)
    else:
        out, ok = _l2_shell_projection(z, x0, threat, *shell)
    if not bool(ok.all()):
        return torch.where(ok[:, None], out, threat.project(z, x0)), False
    norm = torch.linalg.vector_norm(out, dim=1)
    return out, bool(((norm >= shell[0]) & (norm <= shell[1])).all())


def _dykstra(proj_a: Any, proj_b: Any, z: torch.Tensor, iters: int) -> torch.Tensor:
    """Dykstra's algorithm: the Euclidean projection of ``z`` onto ``A ∩ B`` from the projections onto each.

    Unlike plain alternating projections (which stop at some point of the intersection), the correction terms
    make the iterates converge to the nearest point of the intersection of two convex sets, so PGD can slide
    along the boundary of the label-preserving region. Ends with ``proj_b`` (the ball). ``proj_a`` returning
    None (an unknown region) skips the loop.
    """
    p = torch.zeros_like(z)
    q = torch.zeros_like(z)
    for _ in range(iters):
        a = proj_a(z + p)
        if a is None:
            break
        p = z + p - a
        b = proj_b(a + q)
        q = a + q - b
        z = b
    return z


def _in_region(dist: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return dist.projected_bayes_label(z) == y


def _repair(
    inside: Any, z: torch.Tensor, prev: torch.Tensor, ok_prev: Any, steps: int, along: Any = None
) -> torch.Tensor:
    """Rows of ``z`` failing ``inside`` are pulled back towards ``prev`` (feasible) by bisection on the segment.

    Keeps, per row, the furthest fraction ``s`` in ``[0, 1]`` found feasible (``s = 0`` is ``prev`` itself).
    ``along(prev, z, s)`` maps a fraction to a point (default: the straight segment). ``ok_prev``: which rows of
    ``prev`` are feasible (N,), or a callable giving it (evaluated only when some row of ``z`` fails).
    """
    ok = inside(z)
    if bool(ok.all()):
        return z
    bad = ~ok & (ok_prev() if callable(ok_prev) else ok_prev)
    if not bool(bad.any()):
        return z
    along = along or (lambda a, b, s: a + s[:, None] * (b - a))
    lo = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    hi = torch.ones_like(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        good = inside(along(prev, z, mid))
        lo, hi = torch.where(good, mid, lo), torch.where(good, hi, mid)
    return torch.where(bad[:, None], along(prev, z, lo), z)


class ProjectionAttack(PGD):
    """PGD restricted to the label-preserving part of the ball, for the projection definition.

    Maximises the loss of :class:`~toyrobust.attacks.gradient.PGD` over ``B(x, eps) ∩ R_y`` with
    ``R_y = {z : Bayes(proj(z)) = y}``: after every step, ``alternations`` rounds of Dykstra's algorithm
    with the exact projections onto the ball and onto ``R_y`` (see :func:`label_region_projection`) give the
    projection onto the intersection; where ``R_y`` is a half-space (Gaussian mixture, point masses) the
    projection onto ``B ∩ R_y`` is exact (``Proj_B(z + mu a)`` with the multiplier ``mu`` found by bisection), and
    where it is a radial shell (concentric spheres) under an L2 ball on every coordinate it is exact in closed form
    (:func:`_ball_shell_projection`), and under an Linf ball exact by a one-dimensional search
    (:func:`_box_shell_projection`); ``alternations`` then does not apply. A
    bisection towards the previous iterate then repairs any row still outside ``R_y``. Every iterate thus stays
    where the true label is ``y``, so a found point is adversarial under the projection definition, not a label
    change. It needs the distribution.

    Args:
        steps, step_size, restarts, random_start, loss, targeted, early_stop: as in
            :class:`~toyrobust.attacks.gradient.PGD`, but 100 steps of ``4 eps / steps`` by default: sliding
            along the boundary of ``R_y`` needs a longer path than plain PGD.
        alternations: Dykstra rounds per step (>= 0).
        bisection_steps: bisection steps of the feasibility repair (>= 0).

    References:
        Stutz (seed 000); Madry et al. 2018.
    """

    name = "projection_attack"
    aliases = ("projection",)
    step_scale = 4.0

    def __init__(self, *, steps: int = 100, step_size: float | None = None, restarts: int = 1,
                 random_start: bool = True, loss: str = "margin", targeted: bool = False, early_stop: bool = True,
                 alternations: int = 25, bisection_steps: int = 20) -> None:
        self._set_options(**self._pgd_options(steps, step_size, restarts, random_start, loss, targeted, early_stop),
                          alternations=check_int("alternations", alternations, 0),
                          bisection_steps=check_int("bisection_steps", bisection_steps, 0))

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        if dist is None:
            return Support(False, "projection_attack needs the distribution: pass dist=")
        return SUPPORTED

    def crosscheck_settings(self, definition: str, quick: bool) -> tuple[int | None, dict[str, Any] | None]:
        n, _ = super().crosscheck_settings(definition, quick)
        if not quick and definition == "projection":
            # 100 steps over (n, d) float64 points are memory-bound (about 20 passes per step): 10,000 points keep a
            # D = 500 row near 5 s on two cores (20,000: 10-12 s), the interval about 1.4x as wide
            n = 10_000
        # Dykstra alternations inside every step dominate its time: fewer rounds keep a quick run fast
        quick_options = {"steps": 30, "alternations": 6, "bisection_steps": 10}
        return n, (quick_options if quick and definition == "projection" else None)

    def _constraint(self, clf: Any, y: torch.Tensor, threat: ThreatModel, dist: Any):
        alternations, bisection_steps = self.alternations, self.bisection_steps

        def constrain(z: torch.Tensor, x0: torch.Tensor, prev: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            yy = y[rows]
            exact = _exact_projection(dist, threat, z, x0, yy)
            if exact is not None:
                z, inside = exact
                if inside:
                    return z
            else:
                z = threat.project(z, x0)
                z = _dykstra(lambda v: label_region_projection(dist, v, yy), lambda v: threat.project(v, x0), z,
                             alternations)
            return _repair(lambda v: _in_region(dist, v, yy), z, prev, lambda: _in_region(dist, prev, yy),
                           bisection_steps)

        # the exact projections and the Dykstra branch (which starts with it) project onto the ball themselves
        constrain.projects_ball = True
        return constrain


def projection_attack(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, dist: Any = None,
                      steps: int = 100, step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                      loss: str = "margin", targeted: bool = False, early_stop: bool = True,
                      definition: str = "projection", generator: Any = None, alternations: int = 25,
                      bisection_steps: int = 20) -> AttackResult:
    """The projection attack as a function: ``ProjectionAttack(**options).run(...)`` (see
    :class:`ProjectionAttack`); ``definition`` defaults to ``"projection"`` and ``dist`` is required."""
    if dist is None:
        raise ValueError("projection_attack needs the distribution: pass dist=")
    attack = ProjectionAttack(steps=steps, step_size=step_size, restarts=restarts, random_start=random_start,
                              loss=loss, targeted=targeted, early_stop=early_stop, alternations=alternations,
                              bisection_steps=bisection_steps)
    return attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)


def sphere_projection(z: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Radial projection onto the sphere through ``x0`` (radius ``||x0||``), moving only the masked coordinates.

    The free part is scaled to norm ``sqrt(||x0||^2 - ||x0_fixed||^2)``; the fixed coordinates are ``x0``'s.
    A zero free part goes to ``x0``'s free part.
    """
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    zs = torch.where(mask, z, zero)
    x0s = torch.where(mask, x0, zero)
    rho = torch.linalg.vector_norm(x0s, dim=1, keepdim=True)
    ns = torch.linalg.vector_norm(zs, dim=1, keepdim=True)
    proj = torch.where(ns > 0, zs * (rho / torch.where(ns > 0, ns, 1.0)), x0s)
    return torch.where(mask, proj, x0)


def _cap_projection(z: torch.Tensor, x0: torch.Tensor, eps: float, mask: torch.Tensor) -> torch.Tensor:
    """Exact L2 projection onto ``{||u|| = ||x0||, ||u - x0||_2 <= eps}`` (free coordinates only).

    Radial projection first; if that leaves the ball, the nearest cap point lies on the cap's rim in the plane
    of ``x0`` and ``z``, at the angle ``theta = 2 arcsin(eps / (2 rho))`` from ``x0``.
    """
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    u = sphere_projection(z, x0, mask)
    x0s = torch.where(mask, x0, zero)
    rho = torch.linalg.vector_norm(x0s, dim=1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    outside = torch.linalg.vector_norm(u - x0, dim=1, keepdim=True) > eps
    if not bool(outside.any()):
        return u
    e0 = x0s / rho
    zs = torch.where(mask, z, zero)
    v = zs - (zs * e0).sum(1, keepdim=True) * e0
    nv = torch.linalg.vector_norm(v, dim=1, keepdim=True)
    v = v / torch.where(nv > 0, nv, 1.0)
    theta = 2 * torch.asin((eps / (2 * rho)).clamp(max=1.0))
    rim = rho * (torch.cos(theta) * e0 + torch.sin(theta) * v)
    rim = torch.where(mask, rim, x0)
    return torch.where(outside, rim, u)


class OnManifoldPGD(PGD):
    """PGD on the sphere through each clean point: every iterate keeps the radius ``||x_i||`` (PITFALLS 8).

    For data on concentric spheres the true label depends only on the radius, so these points keep their label.
    L2: exact projection onto the cap ``sphere ∩ ball``. Linf, L1: ``alternations`` rounds of
    ``Proj_sphere ∘ Proj_B`` ending on the sphere, then a bisection along the great circle towards the
    previous iterate for rows outside the ball. With a restricted threat only the free coordinates move;
    ``||x_adv_i|| = ||x_i||`` up to rounding.

    Args:
        steps, step_size, restarts, random_start, loss, targeted, early_stop: as in
            :class:`~toyrobust.attacks.gradient.PGD`.
        alternations: rounds of alternating projections per step for Linf and L1 (>= 0).
        bisection_steps: bisection steps of the ball repair (>= 0).

    References:
        Gilmer et al. 2018; seed 003 (the concentric spheres, D = 500, radii 1 and 1.3).
    """

    name = "on_manifold_attack"
    aliases = ("on-manifold",)

    def __init__(self, *, steps: int = 40, step_size: float | None = None, restarts: int = 1,
                 random_start: bool = True, loss: str = "margin", targeted: bool = False, early_stop: bool = True,
                 alternations: int = 3, bisection_steps: int = 20) -> None:
        self._set_options(**self._pgd_options(steps, step_size, restarts, random_start, loss, targeted, early_stop),
                          alternations=check_int("alternations", alternations, 0),
                          bisection_steps=check_int("bisection_steps", bisection_steps, 0))

    def _constraint(self, clf: Any, y: torch.Tensor, threat: ThreatModel, dist: Any):
        alternations, bisection_steps, eps = self.alternations, self.bisection_steps, threat.radius
        masks: dict[int, torch.Tensor] = {}

        def constrain(z: torch.Tensor, x0: torch.Tensor, prev: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            mask = masks.get(z.shape[1])
            if mask is None:
                mask = masks[z.shape[1]] = threat.mask(z.shape[1], device=z.device, dtype=torch.bool)
            if isinstance(threat, L2):
                z = _cap_projection(z, x0, eps, mask)
            else:
                for _ in range(alternations):
                    z = threat.project(sphere_projection(z, x0, mask), x0)
                z = sphere_projection(z, x0, mask)
            prev = sphere_projection(prev, x0, mask)
            return _repair(lambda v: threat.contains(v, x0), z, prev, threat.contains(prev, x0), bisection_steps,
                           along=lambda a, b, s: sphere_projection(a + s[:, None] * (b - a), x0, mask))

        return constrain


def on_manifold_attack(clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, steps: int = 40,
                       step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                       loss: str = "margin", targeted: bool = False, early_stop: bool = True,
                       definition: str = "ball", dist: Any = None, generator: Any = None, alternations: int = 3,
                       bisection_steps: int = 20) -> AttackResult:
    """The on-manifold attack as a function: ``OnManifoldPGD(**options).run(...)`` (see :class:`OnManifoldPGD`)."""
    attack = OnManifoldPGD(steps=steps, step_size=step_size, restarts=restarts, random_start=random_start,
                           loss=loss, targeted=targeted, early_stop=early_stop, alternations=alternations,
                           bisection_steps=bisection_steps)
    return attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)
