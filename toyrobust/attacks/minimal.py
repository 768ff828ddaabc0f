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
  Linf: the margin is separable, so over the box ``|delta_i| <= t`` its extreme value moves each coordinate on
  its own (towards 0 where the coefficient should shrink it, away from 0 where it should grow it); that value is
  monotone and piecewise quadratic in ``t``, and the distance is its crossing of ``c``, solved piece by piece.

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

from ..classifiers import Classifier, Linear, Quadratic, Radial, as_classifier
from ..constraints import is_symbolic
from ..threats import L1, L2, Linf, ThreatModel, make_threat
from .losses import check_inputs

__all__ = ["minimal_perturbation", "supports_minimal", "quadric_nearest"]

_NORMS: dict[Any, type[ThreatModel]] = {
    "linf": Linf, "inf": Linf, math.inf: Linf, "l2": L2, "2": L2, 2: L2, "l1": L1, "1": L1, 1: L1,
}


def _geometry(norm: Any) -> ThreatModel:
    """A threat model giving the norm (and coordinates) of the minimal perturbation."""
    if isinstance(norm, ThreatModel):
        return norm
    key = norm.lower().strip() if isinstance(norm, str) else norm
    if isinstance(key, str) and ":" in key:
        return make_threat(key)
    if not isinstance(key, bool) and key in _NORMS:
        return _NORMS[key](0.0)
    raise ValueError(f"norm must be a ThreatModel or one of 'linf', 'l2', 'l1' (or inf, 2, 1), got {norm!r}")


def supports_minimal(clf: Any, threat: Any) -> bool:
    """Whether :func:`minimal_perturbation` has a closed form for this classifier and norm: Linear (any norm),
    Radial (Linf, L2, L1), Quadratic (L2, Linf), with numeric parameters."""
    clf = as_classifier(clf) if not isinstance(clf, Classifier) else clf
    if isinstance(clf, Linear):
        return clf.w.is_numeric and not is_symbolic(clf.b)
    if isinstance(clf, Radial):
        return not is_symbolic(clf.r)
    if isinstance(clf, Quadratic):
        return isinstance(threat, (L2, Linf)) and clf.alpha.is_numeric and not is_symbolic(clf.c)
    return False


def minimal_perturbation(
    clf: Any, x: torch.Tensor, y: torch.Tensor, norm: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest perturbation that makes an analytic classifier misclassify each point, and its size.

    Solves ``min ||delta||_p  s.t.  f(x + delta) != y`` (zero margin predicts +1). For a point already
    misclassified ``delta = 0`` and ``dist = 0``; where no perturbation works (e.g. a zero weight on every free
    coordinate) ``dist = inf`` and ``delta`` is the perturbation that pushes the margin furthest towards the
    boundary (unbounded in size; an attack projects it into its ball).

    Args:
        clf: a numeric ``Linear`` (any norm), ``Radial`` (Linf, L2, L1) or ``Quadratic`` (L2, Linf).
        x: (N, d) points.
        y: (N,) labels in {-1, +1}.
        norm: a threat model (its norm and ``coords``; eps is ignored) or ``"linf"``, ``"l2"``, ``"l1"``.

    Returns:
        ``(delta, dist)``: ``delta`` (N, d) in the dtype of ``x``, lengthened by a few ulps where needed so that
        ``f(x + delta) != y`` holds in floating point; ``dist`` (N,) the exact distance to the boundary
        (computed in float64, returned in the dtype of ``x``).

    Raises:
        TypeError: another classifier type (named), or a norm the classifier has no exact solution for.

    References:
        Hoelder's inequality for the linear case (seed 004: the inner maximum is ``-eps ||w||_q``); More 1993 and
        More & Sorensen 1983 for the quadratic (trust-region) case.
    """
    geo = _geometry(norm)
    clf, x, y_true = check_inputs(clf, x, y, "ball", None)
    return _minimal(clf, x, y_true, geo)


def _minimal(clf: Classifier, x: torch.Tensor, y_eff: torch.Tensor, geo: ThreatModel):
    if not supports_minimal(clf, geo):
        kind = type(clf).__name__
        if isinstance(clf, Quadratic):
            raise TypeError(f"Quadratic classifiers have an exact attack for L2 and Linf only, got norm {geo.name}")
        raise TypeError(
            f"no exact attack for classifier type {kind}: supported are Linear (any norm), Radial (Linf, L2, L1) "
            f"and Quadratic (L2, Linf) with numeric parameters; use pgd"
        )
    d = x.shape[1]
    geo.coord_indices(d)  # validates coords against d
    x64 = x.detach().to(torch.float64)
    msk = geo.mask(d, device=x.device, dtype=torch.bool)
    y1 = y_eff > 0
    margin = clf.margin(x64)
    correct = (margin >= 0) == y1
    if isinstance(clf, Linear):
        delta, dist = _linear(clf, x64, y1, margin, geo)
    elif isinstance(clf, Radial):
        delta, dist = _radial(float(clf.r), x64, y1, correct, geo, msk)
    elif isinstance(geo, Linf):
        alpha = clf.alpha.to_tensor(x.device, torch.float64)
        delta, dist = _quadratic_linf(alpha, float(clf.c), x64, y1, msk)
    else:
        alpha = clf.alpha.to_tensor(x.device, torch.float64)
        delta, dist = _quadratic(alpha, float(clf.c), x64, msk)
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    dist = torch.where(correct, dist, zero)
    delta = torch.where(correct[:, None], delta, zero)
    delta = _nudge(clf, x, delta.to(x.dtype), dist, correct, y_eff, geo)
    return delta, dist.to(x.dtype)


def _linear(clf: Linear, x: torch.Tensor, y1: torch.Tensor, margin: torch.Tensor, geo: ThreatModel):
    """``dist = |m| / ||w_S||_q``; ``delta = -y * steepest_ascent(w, dist)``, so ``<delta, w> = -y dist ||w_S||_q``."""
    w0 = clf.w.to_tensor(x.device, torch.float64)
    w = w0.expand_as(x)
    wq = geo.dual_norm(w0[None])[0]
    sgn = torch.where(y1, -1.0, 1.0).to(torch.float64)
    u = sgn[:, None] * geo.steepest_ascent(w, 1.0)  # unit p-norm direction lowering y * margin fastest
    if float(wq) == 0:
        return torch.zeros_like(x), torch.full_like(margin, math.inf)
    dist = margin.abs() / wq
    return u * dist[:, None], dist


def _radial(r: float, x: torch.Tensor, y1: torch.Tensor, correct: torch.Tensor, geo: ThreatModel, msk: torch.Tensor):
    """Distance to the sphere ``||x||_2 = r`` moving only the free coordinates S, in the norm of ``geo``.

    With ``R2 = r^2 - ||x_{not S}||^2`` the free part must reach squared norm ``R2``: inwards (label +1) it is
    impossible when ``r <= 0`` or ``R2 <= 0``.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    xs = torch.where(msk, x, zero)
    a = xs.abs()
    R2 = r * r - ((x - xs) ** 2).sum(1)
    target = R2.clamp_min(0).sqrt()
    inward = y1  # rows labelled +1 must get inside
    feasible_in = (R2 > 0) & (r > 0)
    k = int(msk.sum())
    sgn = torch.where(xs >= 0, 1.0, -1.0).to(x.dtype) * msk
    s1, s2 = a.sum(1), (a * a).sum(1)
    first = msk.to(torch.int64).argmax()
    e_first = torch.zeros_like(x[0]).index_fill(0, first, 1.0)
    if isinstance(geo, L2):
        ns = s2.sqrt()
        d_in = ns - target
        dir_in = -xs / torch.where(ns > 0, ns, 1.0)[:, None]
        dir_out = torch.where((ns > 0)[:, None], xs / torch.where(ns > 0, ns, 1.0)[:, None], e_first)
        d_out = target - ns
        delta_in = torch.where(feasible_in[:, None], dir_in * d_in[:, None], -xs)
        delta_out = dir_out * d_out[:, None]
        dist_in, dist_out = d_in, d_out
    elif isinstance(geo, Linf):
        # inwards: z = sign(x) (|x| - t)_+ with sum (a_i - t)_+^2 = R2; on [a_(k+1), a_(k)] it is a quadratic
        srt = a.sort(dim=1, descending=True).values
        kk = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
        c1, c2 = srt.cumsum(1), (srt * srt).cumsum(1)
        disc = (c1 * c1 - kk * (c2 - R2[:, None])).clamp_min(0)
        tk = (c1 - disc.sqrt()) / kk
        nxt = torch.cat([srt[:, 1:], torch.zeros_like(srt[:, :1])], dim=1)
        t_in = _pick(tk, srt, nxt)
        delta_in = torch.where(feasible_in[:, None], -sgn * torch.minimum(a, t_in[:, None]), -xs)
        dist_in = t_in
        # outwards: z = x + t sgn(x) on S, k t^2 + 2 t s1 + s2 = R2
        t_out = (-s1 + (s1 * s1 - k * (s2 - R2)).clamp_min(0).sqrt()) / k
        delta_out = sgn * t_out[:, None]
        dist_out = t_out
    else:  # L1
        # inwards: z = sign(x) min(|x|, lam) with sum min(a_i, lam)^2 = R2 (water-filling), dist = sum (a - lam)_+
        srt = a.sort(dim=1, descending=True).values
        kk = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
        tail = s2[:, None] - (srt * srt).cumsum(1)
        lam_k = ((R2[:, None] - tail).clamp_min(0) / kk).sqrt()
        nxt = torch.cat([srt[:, 1:], torch.zeros_like(srt[:, :1])], dim=1)
        lam = _pick(lam_k, srt, nxt)
        cut = (a - lam[:, None]).clamp_min(0)
        delta_in = torch.where(feasible_in[:, None], -sgn * cut, -xs)
        dist_in = cut.sum(1)
        # outwards: all the budget on the largest free coordinate
        j = torch.where(msk, a, torch.full_like(a, -1.0)).argmax(dim=1, keepdim=True)
        aj = a.gather(1, j)[:, 0]
        t_out = (R2 - s2 + aj * aj).clamp_min(0).sqrt() - aj
        delta_out = torch.zeros_like(x).scatter(1, j, (sgn.gather(1, j)[:, 0] * t_out)[:, None])
        dist_out = t_out
    dist_in = torch.where(feasible_in, dist_in.clamp_min(0), torch.full_like(dist_in, math.inf))
    delta = torch.where(inward[:, None], delta_in, delta_out)
    dist = torch.where(inward, dist_in, dist_out.clamp_min(0))
    return delta, dist


def _quadratic_linf(alpha: torch.Tensor, c: float, x: torch.Tensor, y1: torch.Tensor, msk: torch.Tensor):
    """Linf distance to the quadric ``sum_i alpha_i z_i^2 = c`` moving only S, for rows labelled ``y1`` (+1: the
    margin must fall below 0; -1: rise to 0).

    With ``a = alpha`` for label +1 and ``a = -alpha``, ``c' = -c`` for label -1, the task is the smallest ``t``
    with ``G(t) = min over |delta_i| <= t (i in S) of sum_i a_i (x_i + delta_i)^2 <= c'``. The minimum is separable:
    a coordinate with ``a_i > 0`` moves towards 0 (``a_i (|x_i| - t)_+^2``), one with ``a_i < 0`` away from 0
    (``a_i (|x_i| + t)^2``). ``G`` is continuous and non-increasing; between consecutive breakpoints ``|x_i|``
    (``a_i > 0``) it is the quadratic ``A_k t^2 + B_k t + C_k`` of the ``k`` coordinates still above ``t``, so
    ``t`` is the smallest root lying in its piece. No root (``G`` stays above ``c'``: no coordinate with
    ``a_i < 0`` in S and the fixed part too large) gives ``dist = inf`` and the push that lowers ``G`` the most.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    sgn = torch.where(y1, 1.0, -1.0).to(x.dtype)[:, None]
    a = sgn * alpha[None, :]  # (N, d)
    fixed = (torch.where(msk, zero, a) * x * x).sum(1)
    a = torch.where(msk, a, zero)
    ax = x.abs()
    shrink, grow = a > 0, a < 0
    # sums over the growing coordinates, then the shrinking ones sorted by |x| (largest first: they leave last)
    qa, qb, qc = (torch.where(grow, v, zero).sum(1) for v in (a, a * ax, a * ax * ax))
    key = torch.where(shrink, ax, torch.full_like(ax, -1.0))
    key, order = key.sort(dim=1, descending=True)
    pa = a.gather(1, order) * (key >= 0)
    px = ax.gather(1, order) * (key >= 0)
    def cum0(v: torch.Tensor) -> torch.Tensor:  # sums over the top k shrinking coordinates, k = 0..d
        return torch.nn.functional.pad(v.cumsum(1), (1, 0))

    A = cum0(pa) + qa[:, None]  # piece k: the top k shrinking coordinates still move
    B = 2 * (qb[:, None] - cum0(pa * px))
    C = fixed[:, None] + cum0(pa * px * px) + qc[:, None] - sgn * c
    brk = key.clamp_min(0)
    hi = torch.nn.functional.pad(brk, (1, 0), value=math.inf)
    lo = torch.nn.functional.pad(brk, (0, 1), value=0.0)
    roots = _quadratic_roots(A, B, C)  # (N, d + 1, 2)
    slack = 1e-12 * (torch.where(torch.isfinite(hi), hi, lo) + 1.0)
    ok = (roots >= (lo - slack)[..., None]) & (roots <= (hi + slack)[..., None]) & (roots >= 0)
    t = torch.where(ok, roots, torch.full_like(roots, math.inf)).flatten(1).amin(1)
    found = torch.isfinite(t)
    t = torch.where(found, t.clamp_min(0), torch.where(msk, ax, zero).amax(1))
    tt = t[:, None]
    sx = torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
    delta = torch.where(shrink, -sx * torch.minimum(ax, tt), torch.where(grow, sx * tt, zero))
    dist = torch.where(found, t, torch.full_like(t, math.inf))
    return delta, dist


def _quadratic_roots(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Both real roots of ``A t^2 + B t + C`` elementwise (stable form; ``A = 0``: the linear root twice; no real
    root, or ``A = B = 0``: NaN), stacked on a last axis of 2."""
    disc = B * B - 4 * A * C
    sq = disc.clamp_min(0).sqrt()
    q = -0.5 * (B + torch.where(B >= 0, sq, -sq))
    r1 = torch.where(A != 0, q / torch.where(A != 0, A, 1.0), -C / torch.where(B != 0, B, 1.0))
    r1 = torch.where((A == 0) & (B == 0), math.nan, r1)  # a constant piece: its crossing lies in another piece
    r2 = torch.where(q != 0, C / torch.where(q != 0, q, 1.0), r1)
    nan = torch.full_like(r1, math.nan)
    real = disc >= 0
    lin = (A == 0) & (B != 0)
    r1 = torch.where(real | lin, r1, nan)
    r2 = torch.where(lin, r1, torch.where(real, r2, nan))
    return torch.stack([r1, r2], -1)


def _pick(cand: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """Per row, the candidate ``cand[:, k]`` lying in its piece ``[lo[:, k], hi[:, k]]`` (the first such k).

    Falls back to the candidate with the smallest violation (rounding at a breakpoint).
    """
    viol = (cand - hi).clamp_min(0) + (lo - cand).clamp_min(0)
    k = viol.argmin(dim=1, keepdim=True)  # argmin returns the first minimum
    return cand.gather(1, k)[:, 0]


class _Secular:
    """The secular function ``h(lam) = sum_i alpha_i x_i^2 / (1 + lam alpha_i)^2`` of a batch, on the interval
    ``(lam_lo, lam_hi)`` where every ``1 + lam alpha_i > 0``, and a bounded parametrisation ``t in (0, 1)`` of it."""

    def __init__(self, a: torch.Tensor, x: torch.Tensor, lam_lo: float, lam_hi: float) -> None:
        self.a, self.lam_lo, self.lam_hi = a, lam_lo, lam_hi
        self.zero = torch.zeros((), dtype=x.dtype, device=x.device)
        self.x2 = x * x
        self.ax2 = a * self.x2

    def lam_of(self, t: torch.Tensor) -> torch.Tensor:
        lo, hi = self.lam_lo, self.lam_hi
        if math.isfinite(lo) and math.isfinite(hi):
            return lo + t * (hi - lo)
        if math.isfinite(lo):
            return lo + t / (1 - t)
        if math.isfinite(hi):
            return hi - (1 - t) / t
        raise AssertionError  # unreachable: some alpha is non-zero

    def t_of(self, lam: torch.Tensor) -> torch.Tensor:
        lo, hi = self.lam_lo, self.lam_hi
        if math.isfinite(lo) and math.isfinite(hi):
            return (lam - lo) / (hi - lo)
        if math.isfinite(lo):
            s = lam - lo
            return s / (1 + s)
        return 1 / (1 + (hi - lam))

    def h(self, lam: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        den = 1 + lam[:, None] * self.a
        terms = torch.where(self.x2 > 0, self.ax2 / torch.where(den != 0, den, 1.0) ** 2, self.zero)
        if skip is not None:
            terms = torch.where(skip, self.zero, terms)
        return terms.sum(1)

    def h_dh(self, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv = 1 / (1 + lam[:, None] * self.a)
        nz = self.x2 > 0  # 0 * inf at a rounded end of the interval counts as 0
        term = torch.where(nz, self.ax2 * inv * inv, self.zero)
        return term.sum(1), -2 * torch.where(nz, term * self.a * inv, self.zero).sum(1)

    def root(self, c_s: torch.Tensor, interior: torch.Tensor) -> torch.Tensor:
        """``lam`` with ``h(lam) = c_s`` on the interior rows: safeguarded Newton. h decreases on the interval, the
        bracket [t_lo, t_hi] (in the bounded parametrisation t) always holds the root, and a Newton step leaving
        it is replaced by bisection."""
        t_lo, t_hi = torch.zeros_like(c_s), torch.ones_like(c_s)
        t = torch.full_like(c_s, 0.5)
        tol = 8 * torch.finfo(c_s.dtype).eps
        scale = c_s.abs() + self.ax2.abs().sum(1) + 1
        for _ in range(200):
            lam = self.lam_of(t)
            hv, dh = self.h_dh(lam)
            above = hv > c_s
            t_lo, t_hi = torch.where(above, t, t_lo), torch.where(above, t_hi, t)
            t_new = self.t_of(lam - (hv - c_s) / torch.where(dh != 0, dh, -1.0))
            ok = torch.isfinite(t_new) & (t_new > t_lo) & (t_new < t_hi)
            t_next = torch.where(ok, t_new, (t_lo + t_hi) / 2)
            done = ~interior | ((hv - c_s).abs() <= tol * scale) | (t_next == t)
            t = torch.where(done, t, t_next)
            if bool(done.all()):
                break
        return self.lam_of(t)


def quadric_nearest(alpha: torch.Tensor, c: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest point (L2) of the quadric ``{z : sum_i alpha_i z_i^2 = c}`` to each row of ``x``.

    The secular equation of :func:`_quadratic` (More 1993), hard case included, on every coordinate: the global
    minimiser of ``||z - x||_2`` on the quadric. A verifier turns any quadratic form into this one by an
    eigendecomposition (the L2 norm is rotation invariant).

    Args:
        alpha: (d,) coefficients (float64).
        c: the level, a float or a (N,) tensor (one level per row).
        x: (N, d) points (float64).

    Returns:
        ``(delta, dist)``: ``delta`` (N, d) with ``x + delta`` on the quadric and ``dist = ||delta||_2`` (N,);
        ``dist = inf`` and ``delta = 0`` where the quadric is empty (e.g. every ``alpha_i <= 0`` and ``c > 0``).
    """
    msk = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
    c_t = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    return _quadratic(alpha.to(device=x.device, dtype=x.dtype), c_t, x, msk)


def _quadratic(alpha: torch.Tensor, c: Any, x: torch.Tensor, msk: torch.Tensor):
    """Nearest point of the quadric ``sum_i alpha_i z_i^2 = c`` moving only S (L2): the secular equation.

    ``z_i = x_i / (1 + lam alpha_i)`` with ``lam`` in the interval where every ``1 + lam alpha_i > 0``;
    ``h(lam) = sum alpha_i x_i^2 / (1 + lam alpha_i)^2`` decreases there, so the root of ``h = c_S`` is found by
    Newton's method safeguarded by bisection on a bounded reparametrisation of the interval. When the root would
    lie at an end of the interval (no component of ``x`` on the extreme coefficient's coordinates: the hard
    case) the missing length goes on that coordinate.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    a = torch.where(msk, alpha, zero)  # fixed coordinates act like alpha = 0
    c_s = c - (torch.where(msk, zero, alpha) * x * x).sum(1)  # (N,)
    pos, neg = a > 0, a < 0
    if not (bool(pos.any()) or bool(neg.any())):
        return -torch.zeros_like(x), torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
    a_max = float(a.max()) if bool(pos.any()) else 0.0
    a_min = float(a.min()) if bool(neg.any()) else 0.0
    sec = _Secular(a, x, -1.0 / a_max if a_max > 0 else -math.inf, -1.0 / a_min if a_min < 0 else math.inf)
    # limits of h at both ends of the interval
    top, bot = (a == a_max) & pos, (a == a_min) & neg
    on_top, on_bot = ((sec.x2 > 0) & top).any(1), ((sec.x2 > 0) & bot).any(1)
    lo_lim = torch.where(on_top, torch.full_like(c_s, math.inf), sec.h(torch.full_like(c_s, sec.lam_lo), top)
                         if math.isfinite(sec.lam_lo) else torch.zeros_like(c_s))
    hi_lim = torch.where(on_bot, torch.full_like(c_s, -math.inf), sec.h(torch.full_like(c_s, sec.lam_hi), bot)
                         if math.isfinite(sec.lam_hi) else torch.zeros_like(c_s))
    interior = (lo_lim > c_s) & (c_s > hi_lim)
    lam = sec.root(c_s, interior)
    z = _near_hard(a, x, x / (1 + lam[:, None] * a), lam, c_s, interior & ~(
        (sec.h(lam) - c_s).abs() <= 1e-10 * (c_s.abs() + sec.ax2.abs().sum(1) + 1)), ((top, a_max), (bot, a_min)))
    # hard cases: lam at an end, the rest of the constraint met along the extreme coefficient's first coordinate
    hard_lo = ~interior & (c_s >= lo_lim) & math.isfinite(sec.lam_lo)
    hard_hi = ~interior & (c_s <= hi_lim) & math.isfinite(sec.lam_hi)
    for hard, lam_end, ext, a_end in ((hard_lo, sec.lam_lo, top, a_max), (hard_hi, sec.lam_hi, bot, a_min)):
        if not bool(hard.any()):
            continue
        den = 1 + lam_end * a
        z_end = torch.where(ext, zero, x / torch.where(ext, 1.0, den))
        rest = (a * z_end * z_end).sum(1)
        j = ext.to(torch.int64).argmax()
        zj = ((c_s - rest) / a_end).clamp_min(0).sqrt()
        z_end = z_end.index_copy(1, j.reshape(1), zj[:, None])
        z = torch.where(hard[:, None], z_end, z)
    possible = interior | hard_lo | hard_hi
    delta = z - x
    dist = torch.where(possible, torch.linalg.vector_norm(delta, dim=1), torch.full_like(c_s, math.inf))
    return torch.where(possible[:, None], delta, torch.zeros_like(delta)), dist


def _near_hard(a: torch.Tensor, x: torch.Tensor, z: torch.Tensor, lam: torch.Tensor, c_s: torch.Tensor,
               rows: torch.Tensor, ends: Any) -> torch.Tensor:
    """Repair the rows where the secular root is not representable: the near-hard case.

    When ``x`` has a tiny component on the extreme coefficient's eigenvector, the root lies within rounding of
    ``-1 / a_end`` and ``x_i / (1 + lam a_i)`` divides a tiny number by a rounded one (inf, or far off). On those
    ``rows`` (where the constraint is not met) the extreme block keeps the direction of ``x``'s block, with its
    length from the constraint ``sum_i a_i z_i^2 = c_s`` (the other coordinates are accurate: their
    denominators are not small). ``ends``: ``((mask, a_end), ...)`` of the two extreme blocks.
    """
    if not bool(rows.any()):
        return z
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    dens = [(1 + lam * a_end).abs() if bool(ext.any()) else torch.full_like(lam, math.inf) for ext, a_end in ends]
    for k, (ext, a_end) in enumerate(ends):
        use = rows & (dens[k] <= dens[1 - k]) & bool(ext.any())
        if not bool(use.any()):
            continue
        rest = torch.where(ext, zero, a * z * z)
        rest = torch.where(torch.isfinite(rest), rest, zero).sum(1)
        length = ((c_s - rest) / a_end).clamp_min(0).sqrt()
        xb = torch.where(ext, x, zero)
        nb = torch.linalg.vector_norm(xb, dim=1, keepdim=True)
        block = xb / torch.where(nb > 0, nb, 1.0) * length[:, None]
        z = torch.where(use[:, None] & ext, block, z)
    return z


def _nudge(
    clf: Classifier,
    x: torch.Tensor,
    delta: torch.Tensor,
    dist: torch.Tensor,
    correct: torch.Tensor,
    y_eff: torch.Tensor,
    geo: ThreatModel,
) -> torch.Tensor:
    """Lengthen ``delta`` by a few ulps where rounding left ``x + delta`` on the boundary or on y's side.

    Tries ``delta`` itself, then ``delta (1 + tau) + tau s u`` for ``tau = ulp, 4 ulp, 16 ulp, ...``, where ``u``
    is the unit steepest-descent direction of ``y * margin`` at ``x`` (it moves rows sitting on the boundary).
    """
    todo = correct & torch.isfinite(dist)
    if not bool(todo.any()):
        return delta
    y_sign = torch.where(y_eff > 0, 1.0, -1.0).to(x.dtype)
    with torch.no_grad():  # predict: the classifier's own decision (exact near ties for Linear)
        todo = todo & (clf.predict(x + delta) == y_eff)
    if not bool(todo.any()):  # rounding left every row across: the common case
        return delta
    rows = todo.nonzero().squeeze(1)
    xr, dr = x[rows], delta[rows]
    xg = xr.detach().requires_grad_(True)
    with torch.enable_grad():
        (gm,) = torch.autograd.grad(clf.margin(xg).sum(), xg)
    u = geo.steepest_ascent(-y_sign[rows, None] * gm, 1.0)
    scale = xr.abs().amax(dim=1, keepdim=True).clamp_min(1.0)
    ulp = torch.finfo(x.dtype).eps
    fixed = dr
    left = torch.ones(rows.numel(), dtype=torch.bool, device=x.device)
    tau = ulp
    for _ in range(30):
        cand = dr * (1 + tau) + tau * scale * u
        with torch.no_grad():
            ok = clf.predict(xr + cand) != y_eff[rows]
        fixed = torch.where(left[:, None], cand, fixed)
        left = left & ~ok
        if not bool(left.any()):
            break
        tau *= 4
    out = delta.clone()
    out[rows] = fixed
    return out


