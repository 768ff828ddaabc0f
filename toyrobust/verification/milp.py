"""The mixed-integer linear program of Tjeng, Xiao and Tedrake (2019) for one input ball, solved by HiGHS.

Variables: the input ``x`` (box ``x0 -+ eps`` on the perturbed coordinates, the others fixed), for the L1 ball
``t_i >= |x_i - x0_i|`` with ``sum t_i <= eps``, and per hidden neuron with pre-activation bounds ``l <= z <= u``:

* ``u <= 0`` (stably inactive): ``relu(z) = 0``, no variable;
* ``l >= 0`` (stably active): ``a = z``, one continuous variable, no binary;
* ``l < 0 < u`` (unstable): ``a >= z, a >= 0, a <= u s, a <= z - l (1 - s)``, ``s`` binary -- exact for
  ``z in [l, u]`` (s = 1: a = z >= 0; s = 0: a = 0 >= z).

The margin ``m = W_L a_{L-1} + b_L`` is linear in the variables. The objective is ``label * m`` (minimised: the
worst case over the ball), or, for the minimal distance, the radius variable ``e`` with ``|x_i - x0_i| <= e``
(Linf) or ``sum t_i <= e`` (L1) and ``label * m <= 0``. A label region given as a union of K polyhedra
``{A_k x <= b_k}`` is added directly when K = 1 and by the disjunctive big-M formulation with K binaries
``q_k`` (``sum q_k = 1``, ``A_k x <= b_k + M_k (1 - q_k)``, ``M_k`` the rows' maxima over the box) otherwise;
polyhedra that miss the box are dropped first.

The naive formulation of the benchmark (``naive=True``) gives every ReLU a binary with one loose big-M per layer.

References:
    V. Tjeng, K. Xiao, R. Tedrake, "Evaluating robustness of neural networks with mixed integer programming",
    ICLR 2019.
    Q. Huangfu, J. A. J. Hall, "Parallelizing the dual revised simplex method", Math. Prog. Comp. 2018 (HiGHS).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["MilpProblem", "MilpOutcome", "build_milp", "solve_milp"]


@dataclass
class MilpOutcome:
    """What HiGHS returned.

    Attributes:
        status: ``"optimal"``, ``"infeasible"``, ``"time_limit"`` (with or without a solution) or ``"error"``.
        x: the input part of the best solution found (d,), or None.
        value: its objective (constant included), or None.
        dual_bound: a lower bound on the optimum (constant included; +inf when infeasible, -inf when unknown).
        seconds: solver wall time.
    """

    status: str
    x: np.ndarray | None
    value: float | None
    dual_bound: float
    seconds: float


class _Rows:
    def __init__(self) -> None:
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        row = len(self.lo)
        self.r.extend([row] * len(cols))
        self.c.extend(np.asarray(cols, dtype=np.int64).tolist())
        self.v.extend(np.asarray(vals, dtype=np.float64).tolist())
        self.lo.append(lo)
        self.hi.append(hi)


@dataclass
class MilpProblem:
    """A built program (see the module docstring); ``None`` from :func:`build_milp` means infeasible."""

    c: np.ndarray
    const: float
    integrality: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    d: int
    n_binary: int
    n_unstable: int
    n_stable: int


def build_milp(weights: list[np.ndarray], biases: list[np.ndarray], x0: np.ndarray, eps: float, p: float,
               mask: np.ndarray, lower: list[np.ndarray], upper: list[np.ndarray], *, label: float,
               objective: str = "margin", cut: float | None = None,
               region: list[tuple[np.ndarray, np.ndarray]] | None = None, shrink: float = 0.0,
               min_distance: float = 0.0, naive: bool = False) -> MilpProblem | None:
    """Build the program for one ball.

    Args:
        weights, biases: the affine layers (numpy float64); the last has one output (the margin).
        x0: centre (d,); eps: radius (for ``objective="distance"`` the largest radius searched); p: inf or 1.
        mask: bool (d,), the perturbed coordinates.
        lower, upper: pre-activation bounds of the hidden layers over this ball, (n_k,) each.
        label: +1 or -1, the sign the margin must keep (objective ``label * m``).
        objective: ``"margin"`` (min ``label * m``) or ``"distance"`` (min radius with ``label * m <= 0``).
        cut: with ``"margin"``, add ``label * m <= cut`` (prunes the search; infeasible means the minimum > cut).
        region: union of polyhedra ``{A x <= b}`` the point must lie in (None: no constraint).
        shrink: tighten every region row to ``A x <= b - shrink (1 + |b| + |A| (|x0| + eps))`` (relative to the
            row's scale over the box), to find points strictly inside.
        min_distance: with ``"distance"``, a proven lower bound on the radius (e.g. from CROWN).
        naive: every ReLU gets a binary, big-M = the largest |bound| of its layer (benchmark baseline).

    Returns:
        The :class:`MilpProblem`, or None when the region misses the ball's box (the program is infeasible).
    """
    d = x0.shape[0]
    r = eps * mask.astype(np.float64)
    box_lo, box_hi = x0 - r, x0 + r
    lb: list[float] = list(box_lo)
    ub: list[float] = list(box_hi)
    integ: list[int] = [0] * d
    rows = _Rows()
    free = np.flatnonzero(mask)

    def new_var(lo: float, hi: float, integer: int = 0) -> int:
        lb.append(lo)
        ub.append(hi)
        integ.append(integer)
        return len(lb) - 1

    e_var = None
    if objective == "distance":
        e_var = new_var(min(max(min_distance, 0.0), eps), eps)
    elif objective != "margin":
        raise ValueError(f"objective must be 'margin' or 'distance', got {objective!r}")
    if p == 1:
        t = [new_var(0.0, eps) for _ in free]
        for ti, i in zip(t, free):
            rows.add([i, ti], [1.0, -1.0], -np.inf, x0[i])
            rows.add([i, ti], [-1.0, -1.0], -np.inf, -x0[i])
        if e_var is None:
            rows.add(t, np.ones(len(t)), -np.inf, eps)
        else:
            rows.add(t + [e_var], np.r_[np.ones(len(t)), -1.0], -np.inf, 0.0)
    elif p == math.inf:
        if e_var is not None:
            for i in free:
                rows.add([i, e_var], [1.0, -1.0], -np.inf, x0[i])
                rows.add([i, e_var], [-1.0, -1.0], -np.inf, -x0[i])
    else:
        raise ValueError(f"the MILP needs an Linf or L1 ball, got p={p!r}")

    # region constraints
    n_binary = n_unstable = n_stable = 0
    if region is not None:
        kept = []
        for A, b in region:
            A = np.atleast_2d(np.asarray(A, dtype=np.float64))
            b = np.asarray(b, dtype=np.float64).reshape(-1)
            b = b - shrink * (1 + np.abs(b) + np.abs(A) @ (np.abs(x0) + r))
            row_min = A @ x0 - np.abs(A) @ r
            if np.any(row_min > b):
                continue  # misses the box
            kept.append((A, b, A @ x0 + np.abs(A) @ r - b))
        if not kept:
            return None
        if len(kept) == 1:
            A, b, _ = kept[0]
            for j in range(A.shape[0]):
                nz = np.flatnonzero(A[j])
                rows.add(nz, A[j, nz], -np.inf, b[j])
        else:
            qs = [new_var(0.0, 1.0, 1) for _ in kept]
            n_binary += len(qs)
            rows.add(qs, np.ones(len(qs)), 1.0, 1.0)
            for q, (A, b, big) in zip(qs, kept):
                for j in range(A.shape[0]):
                    if big[j] <= 0:
                        continue  # the row holds on the whole box
                    nz = np.flatnonzero(A[j])
                    rows.add(np.r_[nz, q], np.r_[A[j, nz], big[j]], -np.inf, b[j] + big[j])

    # hidden layers: h holds (column indices, i.e. variables) of the previous layer's live outputs
    h_cols = np.arange(d)
    h_keep = np.ones(d, dtype=bool)
    for k in range(len(weights) - 1):
        W, bias = weights[k], biases[k]
        lo, up = lower[k], upper[k]
        if naive:
            big = float(max(np.abs(lo).max(), np.abs(up).max(), 1.0))
            lo, up = np.full_like(lo, -big), np.full_like(up, big)
        Wl = W[:, h_keep]
        cols = np.empty(W.shape[0], dtype=np.int64)
        keep = np.zeros(W.shape[0], dtype=bool)
        for j in range(W.shape[0]):
            nz = np.flatnonzero(Wl[j])
            wc, wv = h_cols[nz], Wl[j, nz]
            if up[j] <= 0 and not naive:
                n_stable += 1
                continue
            keep[j] = True
            if lo[j] >= 0 and not naive:
                n_stable += 1
                a = new_var(float(lo[j]), float(up[j]))
                rows.add(np.r_[a, wc], np.r_[1.0, -wv], bias[j], bias[j])
            else:
                n_unstable += 1
                n_binary += 1
                a = new_var(0.0, float(up[j]))
                s = new_var(0.0, 1.0, 1)
                rows.add(np.r_[wc, a], np.r_[wv, -1.0], -np.inf, -bias[j])
                rows.add([a, s], [1.0, -float(up[j])], -np.inf, 0.0)
                rows.add(np.r_[a, wc, s], np.r_[1.0, -wv, -float(lo[j])], -np.inf, bias[j] - lo[j])
            cols[j] = a
        h_cols, h_keep = cols[keep], keep
    W, bias = weights[-1], biases[-1]
    wl = W[0, h_keep]
    n = len(lb)
    c = np.zeros(n)
    const = 0.0
    if objective == "margin":
        c[h_cols] = label * wl
        const = float(label * bias[0])
        if cut is not None:
            nz = np.flatnonzero(wl)
            rows.add(h_cols[nz], label * wl[nz], -np.inf, cut - const)
    else:
        c[e_var] = 1.0
        nz = np.flatnonzero(wl)
        rows.add(h_cols[nz], label * wl[nz], -np.inf, -float(label * bias[0]))
    n_rows = len(rows.lo)
    A = sp.csr_matrix((rows.v, (rows.r, rows.c)), shape=(n_rows, n))
    return MilpProblem(c, const, np.asarray(integ), np.asarray(lb), np.asarray(ub), A, np.asarray(rows.lo),
                       np.asarray(rows.hi), d, n_binary,
                       n_unstable, n_stable)


def solve_milp(problem: MilpProblem, time_limit: float) -> MilpOutcome:
    """Solve with HiGHS (``scipy.optimize.milp``) under a wall-clock limit (seconds)."""
    start = time.perf_counter()
    cons = [LinearConstraint(problem.A, problem.row_lo, problem.row_hi)] if problem.A.shape[0] else []
    res = milp(problem.c, integrality=problem.integrality, bounds=Bounds(problem.lb, problem.ub),
               constraints=cons, options={"time_limit": max(float(time_limit), 1e-3), "presolve": True})
    seconds = time.perf_counter() - start
    x = None if res.x is None else np.asarray(res.x[: problem.d], dtype=np.float64)
    value = None if res.x is None else float(res.fun) + problem.const
    dual = getattr(res, "mip_dual_bound", None)
    dual = -math.inf if dual is None or not np.isfinite(dual) else float(dual) + problem.const
    if res.status == 0:
        return MilpOutcome("optimal", x, value, min(dual, value) if value is not None else dual, seconds)
    if res.status == 2:
        return MilpOutcome("infeasible", None, None, math.inf, seconds)
    if res.status == 1:
        return MilpOutcome("time_limit", x, value, dual, seconds)
    return MilpOutcome("error", x, value, -math.inf, seconds)
