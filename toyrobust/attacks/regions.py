"""Exact attacks for the projection and error-region definitions: feasibility of polyhedral pieces in a ball.

For a linear classifier ``f(z) = sign(<w, z> + b)`` (a zero margin predicts +1) and a distribution whose label
regions ``R_l = {z : Bayes(proj(z)) = l}`` are finite unions of polyhedra, the points of the ball ``B(x, eps)``
that qualify are

* projection (Stutz, seed 000): ``x' in B(x, eps) ∩ R_y ∩ {f != y}``;
* error-region: ``x' in ∪_l B(x, eps) ∩ R_l ∩ {f != l}``;

a finite union of convex pieces ``{z : <a_j, z> <= c_j (or < c_j), j = 1..k} ∩ B(x, eps)`` with ``k <= 3``:

=================  ===========================================================================================
point masses       ``R_+1 = {z <= gap/2}``, ``R_-1 = {z > gap/2}`` (the projection keeps the Bayes label)
Gaussian mixture   ``R_+1 = {<mean, z> >= 0}``, ``R_-1 = {<mean, z> < 0}`` (the support is everything)
Tsipras            ``R_l = ∪_s {z_1 on s's side} x {l (s log(p/(1-p)) + 2 eta sum_j z_j) >= 0 (> 0 for -1)}``
                   with ``s = +1: z_1 >= 0`` (0 rounds to +1) and ``s = -1: z_1 < 0``
Bernoulli          for a ball that keeps every free coordinate's sign (``eps < 1`` around a vertex): the
                   projection of every ball point is the clean vertex, so ``R_l`` holds the whole ball or none
                   of it, and the attack is the minimal perturbation against ``Bayes(proj(x))``
=================  ===========================================================================================

Each piece is decided per sample, exactly:

* L2: the minimum-norm point of the polyhedron is the minimum-norm solution of its active rows (KKT), so the
  candidates of every linearly independent subset of the ``k`` rows (one shared Gram inverse per subset) are
  checked: a closed form, vectorised in torch;
* Linf, L1: cheap decisions first (a row alone infeasible in the ball; the clean point or a steepest-descent
  point of a combination of the rows already feasible), the rest by one block-diagonal linear program
  (``scipy.optimize.linprog``, HiGHS) that maximises the slack of the strict rows.

Strict inequalities (``f(x') = -1`` is ``<w, z> + b < 0``; ``z_1 < 0``; the Bayes label -1) are met with a
positive slack: rows are tightened by ``1e-11`` of their scale (the decision is exact up to a set of that
measure), and the returned point is re-projected into the ball and checked with
:func:`~toyrobust.definitions.is_adversarial` (the success mask is that check, never the solver's claim). Rows
that are exact in floating point (``z_1 >= 0``, reached as ``x_1 + (-x_1) = 0``) are not tightened.

References:
    D. Stutz, "Towards a definition for adversarial examples" (seed 000).
    D. Tsipras et al., "Robustness may be at odds with accuracy", ICLR 2019.
    L. Schmidt et al., "Adversarially robust generalization requires more data", NeurIPS 2018.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..classifiers import Linear
from ..constraints import is_symbolic
from ..threats import L1, L2, Linf, ThreatModel
from .minimal import supports_minimal

__all__ = ["Row", "region_pieces", "supports_region", "solve_pieces"]

#: relative tightening of the strict (and rounding-sensitive) rows
_TIGHT = 1e-11
#: relative slack a linear program must reach to count a piece as feasible (above HiGHS' 1e-7 tolerances)
_LP_SLACK = 1e-9
#: most non-zeros per block-diagonal linear program
_LP_NNZ = 400_000


@dataclass(frozen=True)
class Row:
    """One inequality ``<a, z> <= c`` (``< c`` when ``strict``) of a piece.

    Attributes:
        a: (d,) float64 coefficients.
        c: (N,) float64 right-hand sides (per sample) or a 0-d tensor.
        strict: whether the inequality is strict.
        exact: evaluated exactly in floating point (a single coordinate against a constant): not tightened.
    """

    a: torch.Tensor
    c: torch.Tensor
    strict: bool
    exact: bool = False


def _not_label_rows(clf: Linear, label: int, device: torch.device) -> list[Row]:
    """``f(z) != label`` for ``f = sign(<w, z> + b)``: ``<w, z> + b < 0`` (label +1) or ``>= 0`` (label -1)."""
    w = clf.w.to_tensor(device, torch.float64)
    b = torch.tensor(float(clf.b), dtype=torch.float64, device=device)
    if label == 1:
        return [Row(w, -b, strict=True)]
    return [Row(-w, b, strict=False)]


def _label_pieces(dist: Any, label: int, device: torch.device) -> list[list[Row]]:
    """The distribution's own polyhedral ``R_label`` (:meth:`Distribution.label_region_pieces`) as rows on ``device``;
    a non-strict row on one coordinate against 0 (``z_1 >= 0``) is evaluated exactly, not tightened (a strict one,
    ``z_1 < 0``, is tightened like any other)."""
    out = []
    for piece in dist.label_region_pieces(label):
        rows = []
        for a, c, strict in piece:
            a_t = torch.as_tensor(a, dtype=torch.float64, device=device)
            exact = (not strict and int(torch.count_nonzero(a_t)) == 1 and float(c) == 0.0
                     and float(a_t.abs().max()) == 1.0)
            rows.append(Row(a_t, torch.tensor(float(c), dtype=torch.float64, device=device), strict=bool(strict),
                            exact=exact))
        out.append(rows)
    return out


def region_kind(dist: Any, threat: Any = None) -> str | None:
    """How the qualifying set is decided: ``"pieces"`` (the distribution's polyhedral label regions) or
    ``"fixed"`` (the projection of every ball point is the clean support point: the Bernoulli model below 1)."""
    if dist is None or getattr(dist, "is_symbolic", True):
        return None
    fixed = getattr(dist, "projection_fixed_below", None)
    if fixed is not None and threat is not None and not is_symbolic(threat.eps) and float(threat.eps) < fixed:
        return "fixed"
    if dist.label_region_pieces(1) is not None:
        return "pieces"
    return "fixed-unsupported" if fixed is not None else None


def supports_region(dist: Any, clf: Any, threat: Any) -> bool:
    """Whether :func:`region_pieces` (or the Bernoulli shortcut) decides this triple exactly.

    Point masses, Gaussian mixtures and Tsipras with a numeric :class:`~toyrobust.classifiers.Linear` classifier
    and any numeric threat; the Bernoulli model with ``eps < 1`` and any classifier that has an exact ball attack.
    """
    if not isinstance(threat, ThreatModel) or is_symbolic(threat.eps):
        return False
    kind = region_kind(dist, threat)
    if kind == "fixed":
        return supports_minimal(clf, threat)
    if kind != "pieces":
        return False
    return isinstance(clf, Linear) and clf.w.is_numeric and not is_symbolic(clf.b)


def region_pieces(dist: Any, clf: Linear, definition: str, y: torch.Tensor,
                  device: torch.device) -> list[tuple[list[Row], torch.Tensor]]:
    """The qualifying set as pieces ``(rows, mask)``: sample ``i`` qualifies iff some piece with ``mask[i]`` has a
    point in its ball satisfying every row.

    Args:
        dist: point masses, a Gaussian mixture or Tsipras (numeric).
        clf: a numeric linear classifier.
        definition: ``"projection"`` or ``"error-region"``.
        y: (N,) labels.
        device: where the rows live.
    """
    out = []
    for label in (1, -1):
        regions = _label_pieces(dist, label, device)
        mask = (y == label) if definition == "projection" else torch.ones_like(y, dtype=torch.bool)
        for rows in regions:
            out.append((rows + _not_label_rows(clf, label, device), mask))
    return out


# ------------------------------------------------------------------------------------------ the solver
def _q(threat: ThreatModel) -> float:
    return {"linf": 1.0, "l2": 2.0, "l1": math.inf}[threat.name]


def _prepare(rows: list[Row], x: torch.Tensor, S: torch.Tensor, threat: ThreatModel, eps: float, robust: float):
    """``A`` (k, |S|), right-hand sides in delta ``r`` (N, k) (tightened), raw ``r0`` (N, k), scales (N, k), exact.

    The strict rows are tightened by ``max(1e-11, robust)`` of their scale; with ``robust > 0`` the non-strict ones
    too (except exact coordinate rows), so that the point found survives rounding to the caller's dtype (at the
    price of a boundary of that relative measure)."""
    A_full = torch.stack([r.a for r in rows])  # (k, d)
    c = torch.stack([r.c.expand(x.shape[0]) for r in rows], 1)  # (N, k)
    r0 = c - x @ A_full.T
    A = A_full[:, S]
    dual = torch.linalg.vector_norm(A, ord=_q(threat), dim=1)  # (k,)
    scale = c.abs() + x.abs() @ A_full.abs().T + eps * dual + 1.0
    exact = torch.tensor([r.exact or (not r.strict and robust <= 0) for r in rows], device=x.device)
    r = torch.where(exact, r0, r0 - max(_TIGHT, robust) * scale)
    return A, r, r0, scale, exact, dual


def _check(A: torch.Tensor, r: torch.Tensor, delta: torch.Tensor, tol: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Rows of ``delta`` (N, n) meeting ``A delta <= r + tol``."""
    return (delta @ A.T <= r + tol).all(1)


def _snap(delta: torch.Tensor, A: torch.Tensor, r: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Put exact single-coordinate rows back on their bound where rounding left them a few ulps outside."""
    for j in torch.nonzero(exact).flatten().tolist():
        nz = torch.nonzero(A[j]).flatten()
        if nz.numel() != 1:
            continue
        i, a = int(nz[0]), A[j, int(nz[0])]
        over = delta[:, i] * a > r[:, j]
        delta[:, i] = torch.where(over, r[:, j] / a, delta[:, i])
    return delta


def _l2_pieces(A: torch.Tensor, r: torch.Tensor, scale: torch.Tensor, eps: float):
    """Minimum-norm point of ``{A delta <= r}`` by active-set enumeration; feasible when its norm is <= eps."""
    N, n = r.shape[0], A.shape[1]
    k = A.shape[0]
    best = torch.zeros(N, n, dtype=A.dtype, device=A.device)
    best_norm = torch.where(_check(A, r, best), 0.0, math.inf).to(A.dtype)
    tol = 1e-13 * scale
    for size in range(1, min(k, n) + 1):
        for T in itertools.combinations(range(k), size):
            At = A[list(T)]
            G = At @ At.T
            if torch.linalg.matrix_rank(G, rtol=1e-10) < size:
                continue
            cand = r[:, list(T)] @ torch.linalg.solve(G, At)  # (N, n): min-norm solution of A_T delta = r_T
            ok = _check(A, r, cand, tol)
            nrm = torch.where(ok, torch.linalg.vector_norm(cand, dim=1), torch.full_like(best_norm, math.inf))
            take = nrm < best_norm
            best = torch.where(take[:, None], cand, best)
            best_norm = torch.where(take, nrm, best_norm)
    feasible = best_norm <= eps * (1 + 1e-12)
    return feasible, best


def _steepest_descent(v: torch.Tensor, threat: ThreatModel, eps: float) -> torch.Tensor:
    """``argmin_{||delta||_p <= eps} <v, delta>`` per row of ``v`` (M, n) for Linf and L1."""
    if isinstance(threat, Linf):
        return -eps * torch.sign(v)
    j = v.abs().argmax(1, keepdim=True)
    return torch.zeros_like(v).scatter(1, j, -eps * torch.sign(v.gather(1, j)))


def _simplex_grid(k: int, m: int) -> list[tuple[float, ...]]:
    return [tuple(c / m for c in comb) for comb in itertools.product(range(m + 1), repeat=k) if sum(comb) == m]


def _lp(A: np.ndarray, r0: np.ndarray, scale: np.ndarray, exact: np.ndarray, threat: ThreatModel, eps: float):
    """One block-diagonal linear program for M samples: per sample, maximise the slack ``t`` of the non-exact rows
    (``a_j delta + scale_j t <= r0_j``, ``t <= 1``) inside the ball, with a heavily penalised relaxation ``s >= 0``
    of the exact rows so that every block is feasible. Returns (feasible (M,), delta (M, n))."""
    import scipy.optimize
    import scipy.sparse

    M, k = r0.shape
    n = A.shape[1]
    l1 = isinstance(threat, L1)
    nv = 2 * n if l1 else n  # delta variables per sample (u, v for L1)
    per = nv + 2  # + t + s
    big = 1e6
    rows_i, cols_i, vals = [], [], []
    b_ub = []
    blocks = np.arange(M)
    nrow = 0
    Ablk = np.concatenate([A, -A], 1) if l1 else A
    for j in range(k):
        nz = np.nonzero(Ablk[j])[0]
        for col in nz:
            rows_i.append(nrow + blocks)
            cols_i.append(blocks * per + col)
            vals.append(np.full(M, Ablk[j, col]))
        if exact[j]:
            rows_i.append(nrow + blocks)
            cols_i.append(blocks * per + nv + 1)
            vals.append(np.full(M, -1.0))
        else:
            rows_i.append(nrow + blocks)
            cols_i.append(blocks * per + nv)
            vals.append(scale[:, j])
        b_ub.append(r0[:, j])
        nrow += M
    if l1:
        rows_i.append(np.repeat(nrow + blocks, nv))
        cols_i.append((blocks[:, None] * per + np.arange(nv)[None, :]).ravel())
        vals.append(np.ones(M * nv))
        b_ub.append(np.full(M, eps))
        nrow += M
    A_ub = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))),
                                   shape=(nrow, M * per))
    cost = np.zeros(M * per)
    cost[blocks * per + nv] = -1.0
    cost[blocks * per + nv + 1] = big
    lo = np.concatenate([np.zeros(nv) if l1 else np.full(n, -eps), [-np.inf, 0.0]])
    hi = np.concatenate([np.full(nv, eps), [1.0, np.inf]])
    bounds = np.stack([np.tile(lo, M), np.tile(hi, M)], 1)
    res = scipy.optimize.linprog(cost, A_ub=A_ub, b_ub=np.concatenate(b_ub), bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"the exact region attack's linear program failed: {res.message}")
    sol = res.x.reshape(M, per)
    delta = sol[:, :n] - sol[:, n:2 * n] if l1 else sol[:, :n]
    t, s = sol[:, nv], sol[:, nv + 1]
    has_soft = not bool(np.all(exact))
    feasible = (s <= 1e-9) & ((t > _LP_SLACK) if has_soft else True)
    return feasible, delta


def _merged_columns(A: torch.Tensor, q: float) -> torch.Tensor:
    """Distinct directions of the columns of ``A`` (k, n), as the columns of a (k, m) matrix, such that
    ``||A^T lam||_q`` is the same function of ``lam`` (parallel columns merge: summed for q = 1, the longest kept for
    q = inf, since ``|lam.(alpha c)| = |alpha| |lam.c|``)."""
    cols = A.T[A.abs().amax(0) > 0]
    if cols.shape[0] == 0:
        return cols.T
    lead = torch.gather(cols, 1, (cols.abs() > 1e-300).to(torch.int64).argmax(1, keepdim=True))
    unit = cols / torch.linalg.vector_norm(cols, dim=1, keepdim=True) * torch.sign(lead)
    key = torch.round(unit * 1e12) / 1e12
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    size = torch.linalg.vector_norm(cols, dim=1)
    if q == 1.0:
        w = torch.zeros(uniq.shape[0], dtype=A.dtype, device=A.device).index_add_(0, inv, size)
    else:
        w = torch.zeros(uniq.shape[0], dtype=A.dtype, device=A.device).scatter_reduce_(0, inv, size, "amax")
    dirs = torch.zeros_like(uniq).index_copy_(0, inv, unit)  # one representative unit vector per class
    return (dirs * w[:, None]).T


def _dual_candidates(A: torch.Tensor, q: float, limit: int = 4000) -> torch.Tensor | None:
    """Points ``lam`` of the simplex where ``lam -> ||A^T lam||_q`` may break (vertices of its linear pieces on the
    simplex), shape (c, k); None when there would be more than ``limit``.

    ``min_lam <lam, r> + eps ||A^T lam||_q`` over the simplex (a piecewise-linear convex function) is attained at
    one of them. q = 1: the pieces are cut by the hyperplanes ``<lam, c_i> = 0``; q = inf: by
    ``<lam, c_i -+ c_j> = 0`` (where two terms of the max trade places).
    """
    k = A.shape[0]
    C = _merged_columns(A, q)
    m = C.shape[1]
    if q == 1.0:
        planes = C.T
    else:
        if m * m > limit:
            return None
        i, j = torch.triu_indices(m, m, 1, device=A.device)
        planes = torch.cat([(C[:, i] - C[:, j]).T, (C[:, i] + C[:, j]).T, C.T])
    planes = torch.cat([planes, torch.eye(k, dtype=A.dtype, device=A.device)])  # simplex facets lam_j = 0
    subsets = list(itertools.combinations(range(planes.shape[0]), k - 1))
    if len(subsets) > limit:
        return None
    ones = torch.ones(1, k, dtype=A.dtype, device=A.device)
    out = [torch.eye(k, dtype=A.dtype, device=A.device)]
    if k > 1 and subsets:
        idx = torch.tensor(subsets, device=A.device)
        M = torch.cat([planes[idx], ones.expand(len(subsets), 1, k)], 1)  # (s, k, k)
        rhs = torch.zeros(len(subsets), k, dtype=A.dtype, device=A.device)
        rhs[:, -1] = 1.0
        ok = torch.linalg.matrix_rank(M, rtol=1e-10) == k
        if bool(ok.any()):
            lam = torch.linalg.solve(M[ok], rhs[ok])
            out.append(lam[(lam >= -1e-12).all(1)].clamp_min(0))
    return torch.cat(out)


def _polytope_pieces(A, r, r0, scale, exact, dual, threat, eps):
    """Linf / L1: cheap decisions, then the linear program for the rest."""
    N, n = r.shape[0], A.shape[1]
    k = A.shape[0]
    dev = A.device
    delta = torch.zeros(N, n, dtype=A.dtype, device=dev)
    found = _check(A, r, delta)
    # a row alone infeasible in the ball (its minimum over the ball is -eps ||a||_q)
    impossible = (-eps * dual[None, :] > r).any(1)
    undecided = ~found & ~impossible
    # exact infeasibility: min over the simplex of <lam, r> + eps ||A^T lam||_q < 0 (minimax over the ball)
    lams = _dual_candidates(A, _q(threat)) if bool(undecided.any()) and k > 1 else None
    if lams is not None:
        h = torch.linalg.vector_norm(lams @ A, ord=_q(threat), dim=1)  # (c,)
        rows = torch.nonzero(undecided).flatten()
        for start in range(0, rows.numel(), 4096):
            idx = rows[start:start + 4096]
            phi = r[idx] @ lams.T + eps * h[None, :]
            # rounding of phi is ~1e-16 of its terms; the strict rows were tightened by 1e-11 of their scale
            tol = 1e-13 * (r[idx].abs() @ lams.T + eps * h[None, :] + 1)
            impossible[idx] = (phi < -tol).any(1)
        undecided = undecided & ~impossible
    if bool(undecided.any()):
        unit = A / torch.where(dual > 0, dual, 1.0)[:, None]
        for lam in _simplex_grid(k, 8 if k <= 2 else 4):
            if not bool(undecided.any()):
                break
            v = (torch.tensor(lam, dtype=A.dtype, device=dev) @ unit)[None, :].expand(N, n)
            cand = _steepest_descent(v, threat, eps)
            ok = undecided & _check(A, r, cand)
            delta = torch.where(ok[:, None], cand, delta)
            found, undecided = found | ok, undecided & ~ok
    if bool(undecided.any()):
        # the minimum-L2-norm point of the polyhedron (closed form) often lies in the Linf / L1 ball too
        rows = torch.nonzero(undecided).flatten()
        _, cand = _l2_pieces(A, r[rows], scale[rows], math.inf)
        ok = torch.linalg.vector_norm(cand, ord=math.inf if isinstance(threat, Linf) else 1.0, dim=1) \
            <= eps * (1 + 1e-12)
        ok = ok & _check(A, r[rows], cand)
        delta[rows[ok]] = cand[ok]
        found[rows[ok]] = True
        undecided[rows[ok]] = False
    rows = torch.nonzero(undecided).flatten()
    if rows.numel():
        A_np = A.cpu().numpy()
        per_block = max(1, int(np.count_nonzero(A_np)) * (2 if isinstance(threat, L1) else 1) + 3 * n + 4)
        step = max(1, _LP_NNZ // per_block)
        for start in range(0, rows.numel(), step):
            idx = rows[start:start + step]
            ok, d_np = _lp(A_np, r0[idx].cpu().numpy(), scale[idx].cpu().numpy(), exact.cpu().numpy(), threat, eps)
            ok_t = torch.as_tensor(ok, device=dev)
            d_t = torch.as_tensor(d_np, dtype=A.dtype, device=dev)
            delta[idx] = torch.where(ok_t[:, None], d_t, delta[idx])
            found[idx] = ok_t
    return found, delta


def solve_pieces(pieces: list[tuple[list[Row], torch.Tensor]], x: torch.Tensor, threat: ThreatModel,
                 robust: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, whether some piece has a point in ``B(x, eps)``, and such a point's perturbation.

    Args:
        pieces: ``(rows, mask)`` pairs (see :func:`region_pieces`).
        x: (N, d) float64 clean points.
        threat: the ball (Linf, L2 or L1, optionally on a subset of coordinates).
        robust: > 0 tightens the non-strict rows too, by this fraction of their scale (a point a little inside
            every piece, for the caller's dtype; see :func:`_prepare`).

    Returns:
        ``(found (N,) bool, delta (N, d) float64)``; ``delta = 0`` where nothing was found.
    """
    N, d = x.shape
    eps = threat.radius
    S = torch.as_tensor(threat.coord_indices(d), dtype=torch.int64, device=x.device)
    found = torch.zeros(N, dtype=torch.bool, device=x.device)
    delta = torch.zeros_like(x)
    for rows, mask in pieces:
        todo = torch.nonzero(mask & ~found).flatten()
        if todo.numel() == 0:
            continue
        xs = x[todo]
        if not rows:
            found[todo] = True
            continue
        A, r, r0, scale, exact, dual = _prepare(rows, xs, S, threat, eps, robust)
        live = A.abs().amax(1) > 0  # rows with no free coordinate are a fixed check on the clean point
        fixed_ok = (r[:, ~live] >= 0).all(1)
        A, r, r0, scale, exact, dual = A[live], r[:, live], r0[:, live], scale[:, live], exact[live], dual[live]
        if A.shape[0] == 0 or S.numel() == 0:
            ok, dl = fixed_ok & _check(A, r, torch.zeros(xs.shape[0], S.numel(), dtype=x.dtype, device=x.device)), \
                torch.zeros(xs.shape[0], S.numel(), dtype=x.dtype, device=x.device)
        elif isinstance(threat, L2):
            ok, dl = _l2_pieces(A, r, scale, eps)
        else:
            ok, dl = _polytope_pieces(A, r, r0, scale, exact, dual, threat, eps)
        ok = ok & fixed_ok
        dl = _snap(dl, A, r, exact)
        sel = todo[ok]
        found[sel] = True
        full = torch.zeros(int(ok.sum()), d, dtype=x.dtype, device=x.device)
        full[:, S] = dl[ok]
        delta[sel] = full
    return found, delta
