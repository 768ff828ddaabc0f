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
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["MilpProblem", "MilpOutcome", "MilpOptions", "build_milp", "build_milp_program", "solve_milp"]


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


class _Program:
    """A program under construction: variable bounds and integrality, sparse constraint rows, neuron counters.

    Rows are ``lo <= sum_j v_j z_{c_j} <= hi``; variables are appended in the order they are created (the input
    ``x`` first), so the column of a variable is its creation index.
    """

    def __init__(self, lb: np.ndarray, ub: np.ndarray) -> None:
        self.lb: list[float] = list(lb)
        self.ub: list[float] = list(ub)
        self.integ: list[int] = [0] * len(self.lb)
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.n_binary = self.n_unstable = self.n_stable = 0

    def new_var(self, lo: float, hi: float, integer: int = 0) -> int:
        """Append a variable with bounds ``[lo, hi]`` (binary when ``integer=1``); returns its column."""
        self.lb.append(lo)
        self.ub.append(hi)
        self.integ.append(integer)
        return len(self.lb) - 1

    def add(self, cols: Any, vals: Any, lo: float, hi: float) -> None:
        """Append the row ``lo <= vals . z[cols] <= hi``."""
        row = len(self.lo)
        self.r.extend([row] * len(cols))
        self.c.extend(np.asarray(cols, dtype=np.int64).tolist())
        self.v.extend(np.asarray(vals, dtype=np.float64).tolist())
        self.lo.append(lo)
        self.hi.append(hi)

    def finish(self, c: np.ndarray, const: float, d: int) -> MilpProblem:
        """The built :class:`MilpProblem` with objective ``c . z + const``; ``d`` input variables."""
        A = sp.csr_matrix((self.v, (self.r, self.c)), shape=(len(self.lo), len(self.lb)))
        return MilpProblem(c, const, np.asarray(self.integ), np.asarray(self.lb), np.asarray(self.ub), A,
                           np.asarray(self.lo), np.asarray(self.hi), d, self.n_binary, self.n_unstable,
                           self.n_stable)


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


@dataclass(frozen=True)
class MilpOptions:
    """What to build for one ball besides the network, the ball and the bounds (see :func:`build_milp`)."""

    label: float
    objective: str = "margin"
    cut: float | None = None
    region: list[tuple[np.ndarray, np.ndarray]] | None = None
    shrink: float = 0.0
    min_distance: float = 0.0
    naive: bool = False


def build_milp(weights: list[np.ndarray], biases: list[np.ndarray], x0: np.ndarray, eps: float, p: float,
               mask: np.ndarray, lower: list[np.ndarray], upper: list[np.ndarray], *, label: float,
               objective: str = "margin", cut: float | None = None,
               region: list[tuple[np.ndarray, np.ndarray]] | None = None, shrink: float = 0.0,
               min_distance: float = 0.0, naive: bool = False) -> MilpProblem | None:
    """Build the program of Tjeng et al. for one ball ``{x : ||x - x0||_p <= eps on mask}``, p = inf or 1.

    ``min label * m(x)`` (or the radius ``e``, see the module docstring) subject to the ball, the region and
    the exact big-M encoding of every unstable ReLU between its pre-activation bounds.

    Args:
        weights, biases: the affine layers (numpy float64); the last has one output (the margin).
        x0: centre (d,); eps: radius (for ``objective="distance"`` the largest radius searched); p: inf or 1.
        mask: bool (d,), the perturbed coordinates.
        lower, upper: pre-activation bounds of the hidden layers over this ball, (n_k,) each.
        label: +1 or -1, the sign the margin must keep (objective ``label * m``).
        objective: ``"margin"`` (min ``label * m``) or ``"distance"`` (min radius with ``label * m <= 0``).
        cut: with ``"margin"``, add ``label * m <= cut`` (prunes the search; infeasible means the minimum > cut).
        region: union of polyhedra ``{A x <= b}`` (A (m, d), b (m,)) the point must lie in (None: no constraint).
        shrink: tighten every region row to ``A x <= b - shrink (1 + |b| + |A| (|x0| + eps))`` (relative to the
            row's scale over the box), to find points strictly inside.
        min_distance: with ``"distance"``, a proven lower bound on the radius (e.g. from CROWN).
        naive: every ReLU gets a binary, big-M = the largest |bound| of its layer (benchmark baseline).

    Returns:
        The :class:`MilpProblem`, or None when the region misses the ball's box (the program is infeasible).
    """
    options = MilpOptions(label=label, objective=objective, cut=cut, region=region, shrink=shrink,
                          min_distance=min_distance, naive=naive)
    return build_milp_program(weights, biases, x0, eps, p, mask, lower, upper, options)


def build_milp_program(weights: list[np.ndarray], biases: list[np.ndarray], x0: np.ndarray, eps: float, p: float,
                       mask: np.ndarray, lower: list[np.ndarray], upper: list[np.ndarray],
                       options: MilpOptions) -> MilpProblem | None:
    """:func:`build_milp` with its keyword options gathered in a :class:`MilpOptions` (same arguments).

    Variables in order: the input ``x`` (d), the radius ``e`` (distance objective), ``t`` (L1), the region's
    ``q`` (K > 1 polyhedra), then per hidden layer the live neurons' ``a`` (and ``s`` when unstable).
    """
    if options.objective not in ("margin", "distance"):
        raise ValueError(f"objective must be 'margin' or 'distance', got {options.objective!r}")
    d = x0.shape[0]
    r = eps * mask.astype(np.float64)
    prog = _Program(x0 - r, x0 + r)
    e_var = None
    if options.objective == "distance":
        e_var = prog.new_var(min(max(options.min_distance, 0.0), eps), eps)
    _add_ball(prog, x0, eps, p, mask, e_var)
    if options.region is not None and not _add_region(prog, options.region, x0, r, options.shrink):
        return None
    h_cols, h_keep = _add_hidden_layers(prog, weights, biases, lower, upper, d, options.naive)
    wl = weights[-1][0, h_keep]
    bias = float(biases[-1][0])
    c = np.zeros(len(prog.lb))
    const = 0.0
    nz = np.flatnonzero(wl)
    if options.objective == "margin":
        c[h_cols] = options.label * wl
        const = float(options.label * bias)
        if options.cut is not None:
            prog.add(h_cols[nz], options.label * wl[nz], -np.inf, options.cut - const)
    else:
        c[e_var] = 1.0
        prog.add(h_cols[nz], options.label * wl[nz], -np.inf, -float(options.label * bias))
    return prog.finish(c, const, d)


def _add_ball(prog: _Program, x0: np.ndarray, eps: float, p: float, mask: np.ndarray, e_var: int | None) -> None:
    """The ball beyond the box bounds of ``x``: for L1, ``t_i >= |x_i - x0_i|`` and ``sum t_i <= eps`` (or
    ``<= e``); for Linf with a radius variable ``e``, ``|x_i - x0_i| <= e``. Arguments as :func:`build_milp`."""
    free = np.flatnonzero(mask)
    if p == 1:
        t = [prog.new_var(0.0, eps) for _ in free]
        for ti, i in zip(t, free):
            prog.add([i, ti], [1.0, -1.0], -np.inf, x0[i])
            prog.add([i, ti], [-1.0, -1.0], -np.inf, -x0[i])
        if e_var is None:
            prog.add(t, np.ones(len(t)), -np.inf, eps)
        else:
            prog.add(t + [e_var], np.r_[np.ones(len(t)), -1.0], -np.inf, 0.0)
    elif p == math.inf:
        if e_var is not None:
            for i in free:
                prog.add([i, e_var], [1.0, -1.0], -np.inf, x0[i])
                prog.add([i, e_var], [-1.0, -1.0], -np.inf, -x0[i])
    else:
        raise ValueError(f"the MILP needs an Linf or L1 ball, got p={p!r}")


def _add_region(prog: _Program, region: list[tuple[np.ndarray, np.ndarray]], x0: np.ndarray, r: np.ndarray,
                shrink: float) -> bool:
    """Constrain ``x`` to a union of polyhedra ``{A_k x <= b_k}`` within the box ``x0 -+ r`` (r (d,)).

    Polyhedra with a row ``min_box A x > b`` are dropped; one left is added directly, K > 1 by the disjunction
    ``sum q_k = 1``, ``A_k x <= b_k + M_k (1 - q_k)`` with ``M_k = max_box A_k x - b_k`` (rows with
    ``M_k <= 0`` hold on the whole box and are skipped). Returns False when every polyhedron misses the box.
    """
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
        return False
    if len(kept) == 1:
        A, b, _ = kept[0]
        for j in range(A.shape[0]):
            nz = np.flatnonzero(A[j])
            prog.add(nz, A[j, nz], -np.inf, b[j])
        return True
    qs = [prog.new_var(0.0, 1.0, 1) for _ in kept]
    prog.n_binary += len(qs)
    prog.add(qs, np.ones(len(qs)), 1.0, 1.0)
    for q, (A, b, big) in zip(qs, kept):
        for j in range(A.shape[0]):
            if big[j] <= 0:
                continue  # the row holds on the whole box
            nz = np.flatnonzero(A[j])
            prog.add(np.r_[nz, q], np.r_[A[j, nz], big[j]], -np.inf, b[j] + big[j])
    return True


def _add_hidden_layers(prog: _Program, weights: list[np.ndarray], biases: list[np.ndarray],
                       lower: list[np.ndarray], upper: list[np.ndarray], d: int,
                       naive: bool) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``a = relu(W h + b)`` layer by layer from the input's ``d`` columns.

    Returns ``(h_cols, h_keep)`` of the last hidden layer: the columns of its live outputs and the bool mask
    (n_L,) of the neurons that are not stably inactive (whose weights the output layer keeps).
    """
    h_cols = np.arange(d)
    h_keep = np.ones(d, dtype=bool)
    for k in range(len(weights) - 1):
        lo, up = lower[k], upper[k]
        if naive:
            big = float(max(np.abs(lo).max(), np.abs(up).max(), 1.0))
            lo, up = np.full_like(lo, -big), np.full_like(up, big)
        Wl = weights[k][:, h_keep]
        cols = np.empty(Wl.shape[0], dtype=np.int64)
        keep = np.zeros(Wl.shape[0], dtype=bool)
        for j in range(Wl.shape[0]):
            nz = np.flatnonzero(Wl[j])
            col = _add_relu(prog, h_cols[nz], Wl[j, nz], float(biases[k][j]), lo[j], up[j], naive)
            if col is not None:
                keep[j], cols[j] = True, col
        h_cols, h_keep = cols[keep], keep
    return h_cols, h_keep


def _add_relu(prog: _Program, wc: np.ndarray, wv: np.ndarray, bias: float, lo: float, up: float,
              naive: bool) -> int | None:
    """One neuron ``a = relu(z)``, ``z = wv . h[wc] + bias`` with ``lo <= z <= up``: None when stably inactive
    (``up <= 0``), ``a = z`` when stably active (``lo >= 0``), else the big-M rows with a binary ``s``
    (``a >= z``, ``a <= up s``, ``a <= z - lo (1 - s)``, ``0 <= a <= up``). ``naive``: always the binary form."""
    if up <= 0 and not naive:
        prog.n_stable += 1
        return None
    if lo >= 0 and not naive:
        prog.n_stable += 1
        a = prog.new_var(float(lo), float(up))
        prog.add(np.r_[a, wc], np.r_[1.0, -wv], bias, bias)
        return a
    prog.n_unstable += 1
    prog.n_binary += 1
    a = prog.new_var(0.0, float(up))
    s = prog.new_var(0.0, 1.0, 1)
    prog.add(np.r_[wc, a], np.r_[wv, -1.0], -np.inf, -bias)
    prog.add([a, s], [1.0, -float(up)], -np.inf, 0.0)
    prog.add(np.r_[a, wc, s], np.r_[1.0, -wv, -float(lo)], -np.inf, bias - lo)
    return a


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
