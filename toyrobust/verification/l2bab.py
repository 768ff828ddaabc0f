"""Complete L2 verification of ReLU networks: branch and bound over the unstable neurons, one convex
second-order-cone program (SOCP) per node, solved by Clarabel.

The input set is the ball ``B = {x0 + S delta : ||delta||_2 <= eps}`` (``S`` selects the perturbed coordinates)
intersected, for the projection and error-region definitions, with one polyhedron ``{A x <= b}`` of the label
region. Each hidden neuron ``a = relu(z)`` has pre-activation bounds ``l <= z <= u`` over the ball (CROWN at the
root, :mod:`.bounds`). A *node* fixes some unstable neurons (a *split*: ``z >= 0`` and ``a = z``, or ``z <= 0``
and ``a = 0``); its convex relaxation is

* stably or split inactive (``u <= 0``): ``a = 0``, ``z <= 0``;
* stably or split active (``l >= 0``): ``a = z``, ``z >= 0``;
* unstable: the triangle ``a >= 0``, ``a >= z``, ``a <= u (z - l) / (u - l)`` (Wong & Kolter 2018; the LP
  relaxation of Ehlers 2017);
* unstable in the *first* layer, instead of the triangle: the convex hull of the graph ``{(delta, relu(w.delta +
  c)) : ||delta||_2 <= eps}`` (:func:`_hull_rows`: a disjunctive, perspective form of the two halves of the ball,
  Balas 1979, Ceria & Soares 1999, in five scalars and three small cones per neuron). The triangle only knows
  ``l <= z <= u`` and is loosest on the sphere, where a linear objective's minimiser lies; the hull is exact
  there. On the 20-64-64-1 network of ``benchmarks/bench_verify_l2.py`` at L2 0.76 it lifts the root bound
  (after tightening) from -15.0 to -4.9, and the point that stayed open after 400 s is decided in about 300 nodes;
* ``||delta||_2 <= eps``: one second-order cone;
* where at most :data:`.moments.max_dim` coordinates are perturbed and the single-neuron bound leaves a node open:
  the moment rows of :mod:`.moments`, one small semidefinite cone that couples all unstable first-layer neurons
  (the single-neuron relaxations let them all sit on their envelopes at the same input). They cost ~8x a program,
  so :meth:`_Search.root` adds them at the root and keeps them for the nodes (and a second round of bound
  tightening) only when they closed :data:`moment_gain` of the root's gap. On the 20-100-100-1 spheres network at
  L2 0.2 they lift a root bound from -6.4 to +0.28, deciding a point left open after 600 s without them.

**Decision** (:func:`decide`), for a label ``lab`` (+1 or -1): the node's SOCP minimises ``lab * m`` (``m`` the
margin). Its optimum lower-bounds ``lab * m`` on the node's part of the ball; the node is *robust* when that bound
exceeds ``tol``. Otherwise the minimiser goes through the real network: when it is adversarial (and the caller's
forward-pass check, ball and region included, confirms it) the answer is *vulnerable*; else the node's
minimiser's activation pattern is fixed (a convex program, exact on that linear region) and its minimiser is tried
too; else the node is split on the unstable neuron whose triangle is most violated at the minimiser (largest
``a - relu(z)``, ties by the triangle's height ``-l u / (u - l)``: a BaBSR-like score, Bunel et al. 2020) and the
children's later-layer bounds are tightened by interval arithmetic from the split. Nodes are taken best first
(lowest bound); a child keeps its parent's bound where its own program gives less (its part lies in the parent's).
When the root is open, the unstable neurons after the first layer get their bounds from the programs themselves
(:func:`tighten_by_programs`), except last-layer neurons whose triangle the margin never uses. The pattern program
(above) costs a node and finds nothing on a robust point, so it is rationed to 2 sqrt(nodes) in all. A node without
unstable neurons is exact: its minimum is the minimum of ``lab * m`` on its region,
so when it lies in ``(-tol, tol]`` and no counterexample confirms, the node stays *boundary* (undecided). The
whole search has a node limit and a deadline; what is left open is *undecided*, never robust.

**Minimal distance** (:func:`minimise_distance`): the same tree with the objective ``min t`` subject to
``||delta||_2 <= t <= R``, ``lab * m <= 0`` (the closure of the adversarial set) and the relaxation over the
ball of radius ``R`` (a distance known to be reachable). Every node's bound is a lower bound on the distance in
its part; every minimiser that the real network confirms adversarial (moved out along its ray by a few ulps past
the boundary) is an upper bound. The search stops when the best upper bound is within ``rtol`` of the smallest
open lower bound.

**Soundness.** The solver's answer is never trusted as such. Each node's lower bound is the Lagrangian dual
function evaluated, in float64, at the solver's multipliers of the linear rows (inequality multipliers clipped
to ``>= 0``) and of the hull's cones (each lifted into its cone, ``y0 >= ||y_rest||``, which is self-dual):
``g(mu) = c0 - mu.h + min over (delta in the ball, a in its box [max(l, 0), max(u, 0)], the hull's auxiliary
variables in the boxes their cones imply; the moment cone's multiplier projected into the semidefinite cone with a
margin, :func:`.moments.lift`) of (c + G^T mu).(delta, a, aux)``, whose inner minimum is exact
(``-eps ||r_delta||_2`` plus box terms). Weak duality makes ``g(mu)`` a lower bound for *any* multipliers in the
dual cones, however inaccurate the interior-point iterate; infeasibility
is accepted only when the solver's certificate gives ``g > 0`` for the homogeneous problem (Farkas). So a
"robust" needs a float64 dual bound above ``tol`` (:mod:`.api`'s tolerance, >= 1e-6 relative), far above
float64 rounding, and a "vulnerable" needs a point that the model's own forward pass confirms.

**Solver choice.** Clarabel (Goulart & Chen 2024): an interior-point solver for conic programs, with second-order
cones and quadratic objectives natively, accurate dual variables (needed for the dual bound above), and a small
wheel (numpy, scipy, cffi). HiGHS's QP solver (``highspy``) handles a convex quadratic *objective* with linear
constraints only: no second-order cone and no quadratic constraint, so the ball ``||delta|| <= eps`` of the
decision problem would need an outer polyhedral approximation (looser, more rows). OSQP is a first-order (ADMM)
QP solver with the same restriction and low-accuracy duals.

References:
    E. Wong, J. Z. Kolter, "Provable defenses against adversarial examples via the convex outer adversarial
    polytope", ICML 2018. R. Ehlers, "Formal verification of piece-wise linear feed-forward neural networks",
    ATVA 2017. R. Bunel, J. Lu, I. Turkaslan, P. H. S. Torr, P. Kohli, M. P. Kumar, "Branch and bound for
    piecewise linear neural network verification", JMLR 2020. P. J. Goulart, Y. Chen, "Clarabel: an
    interior-point solver for conic programs with quadratic objectives", arXiv:2405.12762, 2024. E. Balas,
    "Disjunctive programming", Annals of Discrete Mathematics 5, 1979. S. Ceria, J. Soares, "Convex programming for
    disjunctive convex optimization", Mathematical Programming 86, 1999.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .moments import applies as _moments_apply
from .moments import lift as _lift
from .moments import moment_rows as _moment_rows
from .moments import n_columns as _moment_columns

__all__ = ["BabProblem", "BabOutcome", "DistanceOutcome", "decide", "minimise_distance", "node_count_limit"]

#: the default cap on the nodes of one search (each node is one or two SOCPs)
node_count_limit = 20_000

#: the share of the root's gap (to the target) the moment rows must close for the search to keep them: on the
#: 20-64-64-1 network at L2 1.33 they closed 12% on the point that then took 220 s instead of 121 s, 26-35% on
#: the two that went from 45 and 291 s to 29 and 193 s
moment_gain = 0.25

#: the share they must close at the untightened root for a second round of bound tightening with them (~100
#: programs at ~8x the cost): on the spheres network's open points they closed 80-90% there and that round decided
#: 2 of 5; on the 20-64-64-1 network at L2 1.1 they closed 15-27%, and the round made easy points up to 6x slower
moment_tighten_gain = 0.5

#: the solver tolerance of an exact leaf's program (no unstable neuron: its optimum is the true minimum over the
#: leaf). At the default 1e-6 a minimiser can miss the margin's zero set by ~3e-7 and its bound the optimum by ~2e-7,
#: a relative 1e-4 of a distance of 2e-3 that the search's rtol of 1e-5 could not close; 1e-10 brought that 3-8-8-1
#: network's leaf bracket from [0.0021805, 0.0021809] to [0.00218072071, 0.00218072088]
leaf_tol = 1e-10


@dataclass(frozen=True)
class BabProblem:
    """One sub-problem of :func:`decide` or :func:`minimise_distance`.

    Attributes:
        weights, biases: the affine layers (float64 numpy), ``W_k`` (n_k, n_{k-1}); the last has one row (margin).
        x0: the centre (d,).
        mask: bool (d,), the perturbed coordinates.
        eps: the ball's radius (the search radius ``R`` for the distance).
        label: +1 or -1: the sign the margin must keep.
        poly: one polyhedron ``(A, b)`` (A (r, d), b (r,)) the points must lie in, or None.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    x0: np.ndarray
    mask: np.ndarray
    eps: float
    label: int
    poly: tuple[np.ndarray, np.ndarray] | None = None

    def margin(self, x: np.ndarray) -> float:
        """The network's margin at x (d,) in float64."""
        h = x
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = w @ h + b
            if k < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return float(h[0])

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """The hidden layers' pre-activations ``z_k`` at x (d,)."""
        out, h = [], x
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = w @ h + b
            out.append(z)
            h = np.maximum(z, 0.0)
        return out


@dataclass
class _Program:
    """A node's conic program: ``min q.v + c0`` s.t. ``A_lin v + s = b_lin`` (the first ``n_eq`` rows equalities,
    the rest ``s >= 0``), the cone rows (ball, or ``||delta|| <= t`` for the distance) and the further second-order
    cones ``h - G v in K`` of the first layer's hull (:func:`_hull_rows`).

    Columns: ``delta`` (dm), then the hidden layers' ``a`` blocks and the hull's auxiliary variables
    (``box_lo``/``box_hi`` their boxes, implied by the constraints), then ``t`` (distance only).
    """

    q: np.ndarray
    c0: float
    A_lin: np.ndarray
    b_lin: np.ndarray
    n_eq: int
    dm: int
    box_lo: np.ndarray
    box_hi: np.ndarray
    radius: float
    distance: bool
    sizes: list[int]
    tri: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]
    cones: tuple[sp.csr_matrix, np.ndarray, list[int]]
    psd: tuple[sp.csr_matrix, np.ndarray, int] | None = None


def _affine_maps(prob: BabProblem, sizes: list[int], n_var: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer k (hidden ones and the output) ``(Z_k, c_k)`` with ``z_k = Z_k v + c_k`` in the node's columns
    (dense: the networks are small, and dense rows build far faster than sparse ones)."""
    S = np.flatnonzero(prob.mask)
    dm = S.size
    starts = np.cumsum([dm] + sizes)
    maps = []
    for k, (w, b) in enumerate(zip(prob.weights, prob.biases)):
        Z = np.zeros((w.shape[0], n_var))
        if k == 0:
            Z[:, :dm], const = w[:, S], w @ prob.x0 + b
        else:
            Z[:, starts[k - 1]:starts[k]], const = w, b.copy()
        maps.append((Z, const))
    return maps


def _build(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray], distance: bool,
           shrink: float = 0.0, neuron: tuple[int, int, float] | None = None, hull: bool = True,
           strict: float = 0.0, moments: bool = True) -> _Program:
    """The node's program (see the module docstring) for the pre-activation bounds ``lo``/``up`` (splits included).

    ``shrink`` tightens the region rows to ``A x <= b - shrink (1 + |b| + |A| (|x0| + eps))`` (points strictly
    inside, for counterexamples). ``neuron = (k, j, sign)`` replaces the objective by ``sign * z_kj`` (bound
    tightening). ``hull=False`` leaves the first layer with the triangle only, ``moments=False`` without the
    moment rows of :mod:`.moments` (used up to :data:`.moments.max_dim` perturbed coordinates; for comparisons).
    ``strict`` moves the split rows ``z <= 0``, ``z >= 0`` and the distance's margin row inside by
    ``strict (1 + |const|)``.
    """
    dm = int(prob.mask.sum())
    sizes = [w.shape[0] for w in prob.weights[:-1]]
    # the first layer's unstable neurons get the convex hull of relu over the ball (_hull_rows): 5 columns each
    unstable0 = np.flatnonzero((lo[0] < 0) & (up[0] > 0)) if sizes else np.zeros(0, dtype=np.int64)
    first = unstable0 if hull else unstable0[:0]
    # ... and all of them share the moment rows (one small semidefinite cone) where the input is small enough
    joint = unstable0 if moments and _has_moments(prob, lo, up) else unstable0[:0]
    x_col = dm + sum(sizes) + 5 * first.size
    n_var = x_col + (_moment_columns(dm) if joint.size else 0) + (1 if distance else 0)
    maps = _affine_maps(prob, sizes, n_var)
    eq_rows, eq_b, in_rows, in_b = [], [], [], []
    tri, n_in = [], 0  # per layer: the unstable neurons, their rows a <= s (z - l), and the intercepts -s l
    start = dm
    for k, n_k in enumerate(sizes):
        Z, c = maps[k]
        E = np.zeros((n_k, n_var))
        E[np.arange(n_k), start + np.arange(n_k)] = 1.0
        start += n_k
        low, u = lo[k], up[k]
        ina = u <= 0
        act = (low >= 0) & ~ina
        uns = ~(ina | act)
        if k == 0 and first.size:  # the hull implies the triangle (and the box of a): no rows for it
            uns = np.zeros(n_k, dtype=bool)
        s = u[uns] / (u[uns] - low[uns])
        eq_rows += [E[ina], E[act] - Z[act]]
        eq_b += [np.zeros(int(ina.sum())), c[act]]
        # z <= 0 (z >= 0) is implied where the bound is strict; a split sets it to exactly 0
        off, on = ina & (u == 0), act & (low == 0)
        in_rows += [Z[off], -Z[on], -E[uns], Z[uns] - E[uns], E[uns] - s[:, None] * Z[uns]]
        in_b += [-c[off] - strict * (1 + np.abs(c[off])), c[on] - strict * (1 + np.abs(c[on])),
                 np.zeros(int(uns.sum())), -c[uns], s * (c[uns] - low[uns])]
        n_u = int(uns.sum())
        n_in += int(off.sum()) + int(on.sum()) + 2 * n_u
        tri.append((k, np.flatnonzero(uns), n_in + np.arange(n_u), -s * low[uns]))
        n_in += n_u
    h_eq, h_in, cones, aux_lo, aux_hi = _hull_rows(prob, first, dm + sum(sizes), n_var)
    eq_rows.append(h_eq[0])
    eq_b.append(h_eq[1])
    in_rows.append(h_in[0])
    in_b.append(h_in[1])
    psd = None
    if joint.size:
        S = np.flatnonzero(prob.mask)
        c_first = prob.weights[0][joint] @ prob.x0 + prob.biases[0][joint]
        mom = _moment_rows(prob.weights[0][joint][:, S], c_first, dm + joint, lo[0][joint], up[0][joint], prob.eps,
                           x_col, n_var, t_col=n_var - 1 if distance else None)
        in_rows.append(mom.trace[0])
        in_b.append(mom.trace[1])
        cones = (sp.vstack([cones[0], mom.soc[0]], format="csr"), np.r_[cones[1], mom.soc[1]], cones[2] + mom.soc[2])
        aux_lo, aux_hi = np.r_[aux_lo, mom.box_lo], np.r_[aux_hi, mom.box_hi]
        psd = mom.psd
    if prob.poly is not None:
        A, b = prob.poly
        b = b - shrink * (1 + np.abs(b) + np.abs(A) @ (np.abs(prob.x0) + prob.eps))
        rows = np.zeros((A.shape[0], n_var))
        rows[:, :dm] = A[:, np.flatnonzero(prob.mask)]
        in_rows.append(rows)
        in_b.append(b - A @ prob.x0)
    Zm, cm = maps[-1]
    lab = float(prob.label)
    if distance:
        q = np.zeros(n_var)
        q[-1] = 1.0
        c0 = 0.0
        t_row = np.zeros((1, n_var))
        t_row[0, -1] = 1.0
        in_rows += [lab * Zm, t_row, -t_row]
        in_b += [np.array([-lab * cm[0] - strict * (1 + abs(cm[0]))]), np.array([prob.eps]), np.zeros(1)]
    else:
        q = lab * Zm[0]
        c0 = lab * float(cm[0])
    if neuron is not None:
        k, j, sign = neuron
        q, c0 = sign * maps[k][0][j], sign * float(maps[k][1][j])
    A_lin = np.concatenate(eq_rows + in_rows) if eq_rows + in_rows else np.zeros((0, n_var))
    b_lin = np.concatenate(eq_b + in_b) if eq_b + in_b else np.zeros(0)
    box_lo = np.concatenate([np.maximum(x, 0.0) for x in lo] + [aux_lo])
    box_hi = np.concatenate([np.maximum(x, 0.0) for x in up] + [aux_hi])
    n_eq = int(sum(r.shape[0] for r in eq_rows))
    tri = [(k, idx, n_eq + rows, gain) for k, idx, rows, gain in tri]
    return _Program(q, c0, A_lin, b_lin, n_eq, dm, box_lo, np.maximum(box_hi, box_lo), prob.eps, distance, sizes,
                    tri, cones, psd)


def _hull_rows(prob: BabProblem, idx: np.ndarray, col: int, n_var: int):
    """The convex hull of ``{(delta, relu(w.delta + c)) : ||delta||_2 <= eps}`` for each first-layer neuron in
    ``idx`` (unstable), as rows over the node's columns; its auxiliary columns start at ``col``.

    The graph is the union of ``G+ = {z >= 0, a = z}`` and ``G- = {z <= 0, a = 0}`` over the ball, so its hull is
    ``delta = delta1 + delta2``, ``delta1 in lam B+``, ``delta2 in (1 - lam) B-`` (Balas 1979; Ceria & Soares 1999
    for the conic perspective). Writing ``w = nu w_hat``, ``tau = w_hat.delta`` and ``delta1 = t1 w_hat + p1``, the
    orthogonal parts can be taken parallel, leaving five scalars ``(t1, lam, r1, r2, tau)``:
    ``a = nu t1 + c lam``, ``nu t1 + c lam >= 0``, ``nu (tau - t1) + c (1 - lam) <= 0``,
    ``||(t1, r1)|| <= eps lam``, ``||(tau - t1, r2)|| <= eps (1 - lam)``, ``||delta - tau w_hat|| <= r1 + r2``.
    Unlike the triangle, which is loosest on the sphere where a linear objective's minimiser lies, the hull is exact
    there. Returns ``(A_eq, b_eq)``, ``(A_in, b_in)`` (rows ``<=``), the cones ``(G, h, dims)`` (``h - G v`` in
    the second-order cones of sizes ``dims``) and the auxiliary columns' implied boxes.
    """
    dm, eps, n = int(prob.mask.sum()), prob.eps, idx.size
    S = np.flatnonzero(prob.mask)
    W, c = prob.weights[0][idx][:, S], (prob.weights[0] @ prob.x0 + prob.biases[0])[idx]
    nu = np.linalg.norm(W, axis=1)
    wh = W / nu[:, None]
    t1, lam, r1, r2, tau = (col + 5 * np.arange(n) + i for i in range(5))
    rows = np.arange(n)
    A_eq = np.zeros((2 * n, n_var))
    A_eq[rows, dm + idx] = 1.0
    A_eq[rows, t1], A_eq[rows, lam] = -nu, -c
    A_eq[n + rows, :dm], A_eq[n + rows, tau] = wh, -1.0  # tau = w_hat.delta: keeps the cones' rows sparse
    A_in = np.zeros((2 * n, n_var))
    A_in[rows, t1], A_in[rows, lam] = -nu, -c
    A_in[n + rows, tau], A_in[n + rows, t1], A_in[n + rows, lam] = nu, -nu, -c
    # the cones per neuron, in blocks of dm + 7 rows (sparse: dense rows would dominate the node's cost):
    # (eps lam, t1, r1); (eps (1 - lam), tau - t1, r2); (r1 + r2, delta - tau w_hat)
    blk = dm + 7
    head_r = np.array([0, 1, 2, 3, 4, 4, 5, 6, 6])
    head_c = np.stack([lam, t1, r1, lam, tau, t1, r2, r1, r2])
    head_v = np.array([-eps, -1.0, -1.0, eps, -1.0, 1.0, -1.0, -1.0, -1.0])
    body_r = 7 + np.arange(dm)
    r_idx = np.concatenate([(blk * rows[None, :] + head_r[:, None]).ravel(), (blk * rows[:, None] + body_r).ravel(),
                            (blk * rows[:, None] + body_r).ravel()])
    c_idx = np.concatenate([head_c.ravel(), np.tile(np.arange(dm), n), np.repeat(tau, dm)])
    vals = np.concatenate([np.repeat(head_v, n), -np.ones(n * dm), wh.ravel()])
    G = sp.csr_matrix((vals, (r_idx, c_idx)), shape=(blk * n, n_var))
    h = np.zeros((n, blk))
    h[:, 3] = eps
    box = np.array([[-eps, 0.0, -eps, -eps, -eps], [eps, 1.0, eps, eps, eps]])
    return ((A_eq, np.zeros(2 * n)), (A_in, np.r_[np.zeros(n), -c]),
            (G, h.reshape(-1), [3, 3, dm + 1] * n), np.tile(box[0], n), np.tile(box[1], n))


def _clarabel():
    """The solver module, imported on first use (a core dependency; the rest of the verifier works without it)."""
    try:
        import clarabel
    except ImportError as err:  # pragma: no cover - clarabel is a core dependency
        raise ImportError("L2 verification of ReLU networks needs the clarabel package (pip install clarabel)") from err
    return clarabel


def _settings(deadline: float, tol: float = 1e-6):
    clarabel = _clarabel()
    s = clarabel.DefaultSettings()
    s.verbose = False
    s.max_iter = 200
    # the bound comes from the multipliers (_dual_bound), so a 1e-6 gap is as sound as 1e-8 and faster: ~8% less
    # solver time than 1e-7 on the 20-64-64-1 network's nodes, the bounds lower by at most ~7e-5
    s.tol_gap_abs = s.tol_gap_rel = s.tol_feas = tol
    # "auto" picks faer's multithreaded factorisation for the larger programs: on the 20-100-100-1 spheres network's
    # nodes it took 230-670 ms a program against 26-52 ms for QDLDL (single-threaded; 10x, more when another
    # process holds a core), and the same as QDLDL on the 20-64-64-1 network's
    s.direct_solve_method = "qdldl"
    s.time_limit = max(1e-3, deadline - time.perf_counter())
    return s


_SOLVED = ("Solved", "AlmostSolved")
_INFEASIBLE = ("PrimalInfeasible", "AlmostPrimalInfeasible")


def _dual_bound(prog: _Program, z: np.ndarray, y: np.ndarray, homogeneous: bool = False) -> float:
    """The Lagrangian dual function at the multipliers ``z`` of the linear rows (inequalities clipped to >= 0) and
    ``y`` of the hull's and the moment rows' cones (each lifted into its cone, which is its own dual:
    ``y0 >= ||y_rest||``; the semidefinite cone's multiplier, last in ``y``, by :func:`.moments.lift`), minimised
    exactly over the ball (or ``||delta|| <= t <= R``) and the boxes; ``homogeneous`` drops the objective (an
    infeasibility certificate when > 0)."""
    z = z.copy()
    z[prog.n_eq:] = np.maximum(z[prog.n_eq:], 0.0)
    r = prog.A_lin.T @ z
    val = -float(prog.b_lin @ z)
    G, h, dims = prog.cones
    if prog.psd is not None:  # the moment cone's multiplier comes last in y: put it into the (self-dual) cone
        Gp, hp, m = prog.psd
        yp = _lift(y[y.size - hp.size:], m)
        y = y[:y.size - hp.size]
        r = r + Gp.T @ yp
        val -= float(hp @ yp)
    if dims:
        y = y.copy()
        heads = np.cumsum([0] + dims[:-1])
        sq = y * y
        sq[heads] = 0.0
        tails = np.sqrt(np.add.reduceat(sq, heads))
        y[heads] = np.maximum(y[heads], tails * (1 + 1e-12))  # the rounding of the norm must not leave the cone
        r = r + G.T @ y
        val -= float(h @ y)
    if not homogeneous:
        r = r + prog.q
        val += prog.c0
    dm, na = prog.dm, prog.box_lo.size
    ra = r[dm:dm + na]
    val += float(np.minimum(ra * prog.box_lo, ra * prog.box_hi).sum())
    rd = float(np.linalg.norm(r[:dm]))
    if prog.distance:
        val += min(0.0, prog.radius * (float(r[-1]) - rd))
    else:
        val -= prog.radius * rd
    return val


@dataclass
class _Solved:
    """A node's SOCP: a proven lower bound (+inf when infeasible) and the minimiser's ``(delta, a, t)`` or None."""

    lower: float
    v: np.ndarray | None
    score: list[np.ndarray] | None = None


def _solve(prog: _Program, deadline: float, tol: float = 1e-6) -> _Solved:
    """Solve with Clarabel to the tolerance ``tol`` and turn the answer into a proven bound (:func:`_dual_bound`)."""
    n_var, dm = prog.q.size, prog.dm
    soc = np.zeros((dm + 1, n_var))
    soc[1 + np.arange(dm), np.arange(dm)] = -1.0
    soc_b = np.zeros(dm + 1)
    if prog.distance:
        soc[0, n_var - 1] = -1.0
    else:
        soc_b[0] = prog.radius
    G, h, dims = prog.cones
    blocks, b = [sp.csr_matrix(prog.A_lin), sp.csr_matrix(soc), G], np.r_[prog.b_lin, soc_b, h]
    if prog.psd is not None:
        blocks.append(prog.psd[0])
        b = np.r_[b, prog.psd[1]]
    A = sp.vstack(blocks, format="csc")
    clarabel = _clarabel()
    cones = []
    if prog.n_eq:
        cones.append(clarabel.ZeroConeT(prog.n_eq))
    if prog.A_lin.shape[0] > prog.n_eq:
        cones.append(clarabel.NonnegativeConeT(prog.A_lin.shape[0] - prog.n_eq))
    cones += [clarabel.SecondOrderConeT(m) for m in [dm + 1] + dims]
    if prog.psd is not None:
        cones.append(clarabel.PSDTriangleConeT(prog.psd[2]))
    P = sp.csc_matrix((n_var, n_var))
    sol = clarabel.DefaultSolver(P, prog.q, A, b, cones, _settings(deadline, tol)).solve()
    n_lin = prog.A_lin.shape[0]
    z_all = np.asarray(sol.z, dtype=np.float64)
    z, y = z_all[:n_lin], z_all[n_lin + dm + 1:]
    status = str(sol.status)
    if status in _INFEASIBLE:
        scale = float(max(np.abs(z).max(initial=0.0), np.abs(y).max(initial=0.0)))
        if scale > 0 and _dual_bound(prog, z / scale, y / scale, homogeneous=True) > 1e-9:
            return _Solved(math.inf, None)
        return _Solved(-math.inf, None)
    v = np.asarray(sol.x, dtype=np.float64)
    if not np.all(np.isfinite(v)) or not np.all(np.isfinite(z_all)):
        return _Solved(-math.inf, None)
    lower = _dual_bound(prog, z, y)
    score = [np.zeros(n) for n in prog.sizes]
    for k, idx, rows, gain in prog.tri:
        score[k][idx] = np.maximum(z[rows], 0.0) * gain
    return _Solved(lower if math.isfinite(lower) else -math.inf, v if status in _SOLVED else None, score)


def _relax(low: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CROWN's linear bounds ``alpha z <= relu(z) <= s z + t`` on ``[low, up]`` (split neurons are stable: exact)."""
    act, uns = low >= 0, (low < 0) & (up > 0)
    s = np.where(uns, up / np.where(uns, up - low, 1.0), act.astype(np.float64))
    t = np.where(uns, -s * low, 0.0)
    alpha = np.where(uns, (up >= -low).astype(np.float64), act.astype(np.float64))
    return alpha, s, t


def _backsub(prob: BabProblem, k: int, lam: np.ndarray, lo: list[np.ndarray],
             up: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lower bounds of ``lam . z_k`` (lam (m, n_k)) over the ball, with the node's relaxations (CROWN, Zhang et
    al. 2018), and per hidden layer below k the coefficients (m, n_j) on its post-activations."""
    const = np.zeros(lam.shape[0])
    A, coeffs = lam, []
    for j in range(k, 0, -1):
        const = const + A @ prob.biases[j]
        A = A @ prob.weights[j]
        coeffs.append(A)
        alpha, s, t = _relax(lo[j - 1], up[j - 1])
        neg = np.minimum(A, 0.0)
        const = const + neg @ t
        A = np.maximum(A, 0.0) * alpha + neg * s
    S = np.flatnonzero(prob.mask)
    low = A @ (prob.weights[0] @ prob.x0 + prob.biases[0]) + const
    low -= prob.eps * np.linalg.norm(A @ prob.weights[0][:, S], axis=1)
    return low, coeffs[::-1]


def _tighten(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray], k: int) -> None:
    """Layers after ``k`` (just split): interval arithmetic, then CROWN with the node's relaxations (sound on the
    node: a split neuron is linear there), intersected with the bounds (in place)."""
    for j in range(k + 1, len(lo)):
        a_lo, a_up = np.maximum(lo[j - 1], 0.0), np.maximum(up[j - 1], 0.0)
        w, b = prob.weights[j], prob.biases[j]
        c = w @ ((a_lo + a_up) / 2) + b
        r = np.abs(w) @ ((a_up - a_lo) / 2)
        lo[j] = np.maximum(lo[j], c - r)
        up[j] = np.minimum(up[j], c + r)
        n = lo[j].size
        low, _ = _backsub(prob, j, np.concatenate([np.eye(n), -np.eye(n)]), lo, up)
        lo[j] = np.maximum(lo[j], low[:n])
        up[j] = np.minimum(up[j], -low[n:])
        lo[j] = np.minimum(lo[j], up[j])


def _crown_margin(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray]) -> float:
    """CROWN's lower bound on ``lab * m`` over the ball with the node's relaxations (no program)."""
    low, _ = _backsub(prob, len(lo), float(prob.label) * np.eye(1), lo, up)
    return float(low[0])


def tighten_by_programs(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray], deadline: float,
                        moments: bool = False) -> int:
    """Tighten the bounds of every unstable neuron after the first layer (whose bounds over the ball are exact)
    by minimising and maximising its pre-activation over the relaxation (one SOCP each, dual-bounded, so sound;
    layer by layer, each using the bounds tightened before it), in place; returns the programs solved.

    This is the LP-based bound tightening of Ehlers (2017) with the L2 ball: the triangle relaxation is the
    tightest convex one for given bounds, so the bounds are what the per-node relaxations' quality rests on.
    ``moments`` adds the moment rows (:mod:`.moments`) to these programs: ~8x their cost, for bounds that on the
    20-100-100-1 spheres network's open points lift the root bound from -0.63 to -0.11 (-0.21 to +0.42).
    """
    solves = 0
    # the last hidden layer feeds the margin only: where the objective's coefficient on its ``a`` is >= 0 the
    # program takes the lowest ``a`` allowed, ``max(0, z)``, which no bound moves (a bound that makes the neuron
    # stable adds ``z <= 0`` or ``z >= 0``, already implied), so those neurons are not worth a program
    useful = [np.ones(n, dtype=bool) for n in (x.size for x in lo[:-1])]
    useful.append(prob.label * prob.weights[-1][0] < 0)
    for k in range(1, len(lo)):
        for j in np.flatnonzero((lo[k] < 0) & (up[k] > 0) & useful[k]):
            for sign in (1.0, -1.0):
                if time.perf_counter() > deadline or not (lo[k][j] < 0 < up[k][j]):
                    break
                got = _solve(_build(prob, lo, up, False, neuron=(k, int(j), sign), moments=moments), deadline)
                solves += 1
                if sign > 0 and got.lower > lo[k][j]:
                    lo[k][j] = min(got.lower, up[k][j])
                elif sign < 0 and -got.lower < up[k][j]:
                    up[k][j] = max(-got.lower, lo[k][j])
        if k + 1 < len(lo):
            _tighten(prob, lo, up, k)
    return solves


def _has_moments(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray]) -> bool:
    """Whether the node programs carry the moment rows (:mod:`.moments`): an unstable first-layer neuron and at
    most :data:`.moments.max_dim` perturbed coordinates."""
    return len(lo) > 0 and bool(((lo[0] < 0) & (up[0] > 0)).any()) and _moments_apply(int(prob.mask.sum()))


def _unstable(lo: list[np.ndarray], up: list[np.ndarray]) -> list[np.ndarray]:
    return [(a < 0) & (b > 0) for a, b in zip(lo, up)]


def _branch_neuron(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray],
                   got: _Solved) -> tuple[int, int] | None:
    """The unstable neuron ``(layer, index)`` to split, or None when none is unstable.

    The score estimates what the node's bound loses to the neuron's triangle (BaBSR, Bunel et al. 2020): the
    solver's multiplier of the row ``a <= s (z - l)`` times its intercept ``-s l``, plus the same with CROWN's
    coefficient (the negative part of the coefficient on ``a`` in CROWN's bound on ``lab * m``), plus the
    triangle's violation ``a - relu(z)`` at the node's minimiser, plus a thousandth of the triangle's height
    ``-l u / (u - l)`` (ties).
    """
    n_hidden = len(lo)
    if n_hidden == 0:
        return None
    _, coeffs = _backsub(prob, n_hidden, float(prob.label) * np.eye(1), lo, up)
    best, best_score = None, -math.inf
    start = int(prob.mask.sum())
    v = got.v
    for k, uns in enumerate(_unstable(lo, up)):
        n_k = uns.size
        if uns.any():
            low, u = lo[k], up[k]
            height = np.where(uns, -low * u / np.where(uns, u - low, 1.0), 0.0)
            score = (np.maximum(-coeffs[k][0], 0.0) + 1e-3) * height
            if got.score is not None:
                score = score + got.score[k]
            if v is not None:
                score = score + np.maximum(v[start:start + n_k] - np.maximum(_layer_z(prob, v, k, start), 0.0), 0.0)
            score = np.where(uns, score, -math.inf)
            j = int(np.argmax(score))
            if score[j] > best_score:
                best, best_score = (k, j), float(score[j])
        start += n_k
    return best


def _layer_z(prob: BabProblem, v: np.ndarray, k: int, start: int) -> np.ndarray:
    """Layer k's pre-activations from the program's variables (``start``: the column of layer k's ``a``)."""
    if k == 0:
        S = np.flatnonzero(prob.mask)
        return prob.weights[0][:, S] @ v[:S.size] + prob.weights[0] @ prob.x0 + prob.biases[0]
    n_prev = prob.weights[k].shape[1]
    return prob.weights[k] @ v[start - n_prev:start] + prob.biases[k]


def _point(prob: BabProblem, v: np.ndarray, radius: float) -> np.ndarray:
    """The input ``x0 + S delta`` of a solution, ``delta`` pulled into the ball of ``radius`` (solver slack)."""
    S = np.flatnonzero(prob.mask)
    delta = v[:S.size].copy()
    nrm = float(np.linalg.norm(delta))
    if nrm > radius:
        delta *= radius / nrm
    x = prob.x0.copy()
    x[S] += delta
    return x


def _pattern_bounds(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray],
                    x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The node's bounds with every unstable neuron fixed to its state at x (d,): one linear region."""
    plo, pup = [a.copy() for a in lo], [b.copy() for b in up]
    for k, z in enumerate(prob.pre_activations(x)):
        uns = (plo[k] < 0) & (pup[k] > 0)
        on = uns & (z >= 0)
        plo[k][on] = 0.0
        pup[k][uns & ~on] = 0.0
    return plo, pup


@dataclass
class BabOutcome:
    """What :func:`decide` found.

    Attributes:
        verdict: ``"robust"`` (every node's bound above ``tol``), ``"vulnerable"`` (``x`` confirmed by the
            caller), ``"boundary"`` (exact leaves whose minimum lies in ``(-tol, tol]``, nothing else open),
            ``"timeout"`` or ``"node-limit"``.
        lower: a proven lower bound on ``min lab * m`` over the ball (and polyhedron).
        x: the counterexample (d,), or None.
        nodes: nodes evaluated (SOCPs solved, the pattern programs included: ``solves``).
    """

    verdict: str
    lower: float
    x: np.ndarray | None
    nodes: int
    solves: int


class _Search:
    """A best-first tree over splits: a heap of ``(bound, tie, lo, up, v)``, the counters and the deadline."""

    def __init__(self, prob: BabProblem, deadline: float, max_nodes: int, distance: bool) -> None:
        self.prob, self.deadline, self.max_nodes, self.distance = prob, deadline, max_nodes, distance
        self.heap: list[tuple[float, int, list[np.ndarray], list[np.ndarray], np.ndarray | None]] = []
        self.nodes = self.solves = self.tie = self.patterns = 0
        self.moments = True  # whether node programs carry the moment rows (set by :meth:`root`)
        self.gain = 0.0  # the share of the root's gap the moment rows closed (set by :meth:`root`)
        self.closest = math.inf  # the smallest label * margin at a node minimiser so far

    def solve(self, lo: list[np.ndarray], up: list[np.ndarray], shrink: float = 0.0,
              moments: bool | None = None, tol: float = 1e-6) -> _Solved:
        self.solves += 1
        moments = self.moments if moments is None else moments
        return _solve(_build(self.prob, lo, up, self.distance, shrink, moments=moments), self.deadline, tol)

    def root(self, lo: list[np.ndarray], up: list[np.ndarray], target: float) -> _Solved:
        """The node's program without, then (when that bound stays below ``target`` and the moment rows apply)
        with the moment rows (:mod:`.moments`); the rest of the search keeps them when they closed at least
        :data:`moment_gain` of the gap between the first bound and ``target``, and the better answer is returned.

        The rows cost ~8x a program (0.26 s against 0.03 s on the 20-100-100-1 spheres network), and they help
        where the first layer's single-neuron relaxations are what is loose: there they lift the root bound of
        the point that stayed open after 600 s from -6.4 to +0.28, while on other points of the same network
        they move it by less than 0.01 (the second layer is what is loose there)."""
        base = self.solve(lo, up, moments=False)
        if base.lower >= target or not _has_moments(self.prob, lo, up):
            self.moments, self.gain = False, 0.0
            return base
        joint = self.solve(lo, up, moments=True)
        self.gain = (joint.lower - base.lower) / (target - base.lower)
        self.moments = self.gain >= moment_gain
        return joint if joint.lower >= base.lower else base

    def push(self, lower: float, lo: list[np.ndarray], up: list[np.ndarray], got: _Solved) -> None:
        self.tie += 1
        heapq.heappush(self.heap, (lower, self.tie, lo, up, got))

    def children(self, lo: list[np.ndarray], up: list[np.ndarray], got: _Solved):
        """The two children of a node (active first), with tightened later-layer bounds; [] for a leaf."""
        pick = _branch_neuron(self.prob, lo, up, got)
        if pick is None:
            return []
        k, j = pick
        out = []
        for active in (True, False):
            clo, cup = [x.copy() for x in lo], [x.copy() for x in up]
            if active:
                clo[k][j] = 0.0
            else:
                cup[k][j] = 0.0
            _tighten(self.prob, clo, cup, k)
            out.append((clo, cup))
        return out

    def stopped(self) -> str | None:
        if time.perf_counter() > self.deadline:
            return "timeout"
        if self.nodes >= self.max_nodes:
            return "node-limit"
        return None


def decide(prob: BabProblem, lo: list[np.ndarray], up: list[np.ndarray], tol: float,
           confirm: Callable[[np.ndarray], bool], deadline: float,
           max_nodes: int = node_count_limit) -> BabOutcome:
    """Decide ``min {lab * m(x) : x in ball ∩ poly} > tol`` by branch and bound (module docstring).

    Args:
        prob: the sub-problem (``prob.eps`` the ball's radius).
        lo, up: sound pre-activation bounds of the hidden layers over the ball, (n_k,) each.
        tol: the certification margin (> 0).
        confirm: ``confirm(x) -> bool`` for a candidate x (d,): adversarial by the model's own forward pass, in the
            ball and strictly in the region (the caller's check; nothing else makes a counterexample).
        deadline: ``time.perf_counter()`` seconds; max_nodes: the node cap.
    """
    run = _Search(prob, deadline, max_nodes, distance=False)
    boundary = math.inf
    root = run.root(lo, up, tol)
    first_gain = run.gain  # before any tightening: how much of the gap is the first layer's
    run.nodes = 1
    if root.lower > tol:
        return BabOutcome("robust", root.lower, None, run.nodes, run.solves)
    x = _counterexample(run, lo, up, root.v, root.lower, tol, confirm)
    if x is not None:
        return BabOutcome("vulnerable", root.lower, x, run.nodes, run.solves)
    if len(lo) > 1:  # the root is open: tighten the deeper layers' bounds by programs, once
        lo, up = [a.copy() for a in lo], [b.copy() for b in up]
        run.solves += tighten_by_programs(prob, lo, up, deadline)
        root = run.root(lo, up, tol)
        if root.lower <= tol and first_gain >= moment_tighten_gain:  # they count here: tighten again with them
            run.solves += tighten_by_programs(prob, lo, up, deadline, moments=True)
            root = run.solve(lo, up)
        if root.lower > tol:
            return BabOutcome("robust", root.lower, None, run.nodes, run.solves)
    run.push(root.lower, lo, up, root)
    while run.heap:
        why = run.stopped()
        if why:
            return BabOutcome(why, min(run.heap[0][0], boundary), None, run.nodes, run.solves)
        lower, _, nlo, nup, node = heapq.heappop(run.heap)
        x = _counterexample(run, nlo, nup, node.v, lower, tol, confirm)
        if x is not None:
            return BabOutcome("vulnerable", min(lower, boundary), x, run.nodes, run.solves)
        kids = run.children(nlo, nup, node)
        if not kids:  # exact: its precise optimum decides it, unless that lies within the band
            run.nodes += 1
            got = run.solve(nlo, nup, tol=leaf_tol)
            x = _counterexample(run, nlo, nup, got.v, got.lower, tol, confirm)
            if x is not None:
                return BabOutcome("vulnerable", min(lower, boundary), x, run.nodes, run.solves)
            if max(got.lower, lower) <= tol:
                boundary = min(boundary, max(got.lower, lower))
            continue
        for clo, cup in kids:
            run.nodes += 1
            if _crown_margin(prob, clo, cup) > tol:  # the cheap bound suffices: no program
                continue
            got = run.solve(clo, cup)
            # the child's part lies in the parent's, so the parent's bound holds there too (a solve cut short by
            # the deadline, or inaccurate multipliers, may give less)
            if max(got.lower, lower) <= tol:
                run.push(max(got.lower, lower), clo, cup, got)
    if math.isfinite(boundary):
        return BabOutcome("boundary", boundary, None, run.nodes, run.solves)
    return BabOutcome("robust", tol, None, run.nodes, run.solves)


def _counterexample(run: _Search, lo: list[np.ndarray], up: list[np.ndarray], v: np.ndarray | None, lower: float,
                    tol: float, confirm: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """A confirmed counterexample from a node: its relaxation's minimiser, else (when the bound is below
    ``-tol``) the minimiser over the linear region of that point's activation pattern (region rows shrunk).

    The pattern program costs as much as a node and finds nothing on a robust point, so after the first 8 it is
    rationed to ``2 sqrt(nodes)`` in all (one per 4 nodes at 64 nodes, one per 25 at 2,500), except where the
    minimiser comes closer to the boundary than any before it."""
    if v is None:
        return None
    prob = run.prob
    x = _point(prob, v, prob.eps)
    here = prob.label * prob.margin(x)
    if here < 0 and confirm(x):
        return x
    closer, run.closest = here < run.closest, min(run.closest, here)
    if lower > -tol or (run.patterns >= 8 and run.patterns ** 2 > 4 * run.nodes and not closer):
        return None
    run.patterns += 1
    plo, pup = _pattern_bounds(prob, lo, up, x)
    got = run.solve(plo, pup, shrink=1e-6 if prob.poly is not None else 0.0)
    if got.v is None:
        return None
    x2 = _point(prob, got.v, prob.eps * (1 - 1e-12))
    if prob.label * prob.margin(x2) < 0 and confirm(x2):
        return x2
    return None


@dataclass
class DistanceOutcome:
    """What :func:`minimise_distance` found.

    Attributes:
        status: ``"optimal"`` (``upper - lower <= rtol upper``), ``"beyond"`` (nothing adversarial within the
            search radius: every node infeasible), ``"timeout"`` or ``"node-limit"``.
        lower, upper: proven bounds on the distance (upper: the norm of ``x``'s perturbation; inf when none).
        x: the best confirmed adversarial point (d,), or None.
        nodes, solves: as :class:`BabOutcome`.
    """

    status: str
    lower: float
    upper: float
    x: np.ndarray | None
    nodes: int
    solves: int


def minimise_distance(prob: BabProblem, bounds: Callable[[float], tuple[list[np.ndarray], list[np.ndarray]]],
                      adversarial: Callable[[np.ndarray], np.ndarray | None], deadline: float, *,
                      upper: float = math.inf, x_upper: np.ndarray | None = None, rtol: float = 1e-5,
                      max_nodes: int = node_count_limit) -> DistanceOutcome:
    """The minimal L2 distance from ``x0`` to ``{lab * m <= 0}`` within radius ``prob.eps`` (module docstring).

    Whenever the best distance found drops below 0.9 of the radius the bounds were computed for, the search radius
    shrinks to it: the root bounds are recomputed for the smaller ball and every open node's bounds are intersected
    with them (only points closer than the best one matter).

    Args:
        prob: the sub-problem (``prob.eps`` the search radius R; ``poly`` must be None).
        bounds: ``bounds(r) -> (lo, up)``: sound pre-activation bounds of the hidden layers over the ball of
            radius r, (n_k,) each.
        adversarial: ``adversarial(x) -> x' or None``: for a point x (d,) on or near the boundary, a point on its
            ray from x0 (moved out by a few ulps) that the model's forward pass confirms adversarial, or None.
        deadline: ``time.perf_counter()`` seconds.
        upper, x_upper: a known adversarial point and its distance (e.g. from an attack).
        rtol: the relative gap at which the search stops.
        max_nodes: the node cap.
    """
    run = _Search(prob, deadline, max_nodes, distance=True)
    best, best_x = upper, x_upper
    if best < 0.9 * prob.eps:
        run.prob = prob = _with_radius(prob, best)
    root_lo, root_up = bounds(prob.eps)
    # the least bound of the nodes closed without a split: dropped within rtol of the best distance, or exact leaves
    # (with no confirmed point: it stays below that); with the open nodes' bounds, the proven lower end
    closed = math.inf
    root = run.root(root_lo, root_up, min(best, prob.eps))
    run.nodes = 1
    if root.lower == math.inf:
        return DistanceOutcome("beyond", prob.eps, best, best_x, run.nodes, run.solves)
    run.push(root.lower, root_lo, root_up, root)
    while run.heap and run.heap[0][0] < best * (1 - rtol):
        why = run.stopped()
        if why:
            return DistanceOutcome(why, min(run.heap[0][0], closed, best), best, best_x, run.nodes, run.solves)
        lower, _, nlo, nup, node = heapq.heappop(run.heap)
        for z in _distance_candidates(run, nlo, nup, node.v):
            if prob.label * prob.margin(prob.x0 + (z - prob.x0) * (1 + 2.0 ** -10)) >= 0:
                continue  # not even past the boundary by 1e-3: skip the model's forward pass
            xa = adversarial(z)
            if xa is not None and float(np.linalg.norm(xa - prob.x0)) < best:
                best, best_x = float(np.linalg.norm(xa - prob.x0)), xa
        if best < 0.9 * prob.eps:
            run.prob = prob = _with_radius(prob, best)
            root_lo, root_up = bounds(prob.eps)
        if lower >= best * (1 - rtol):
            closed = min(closed, lower)
            continue
        tlo = [np.minimum(np.maximum(a, b), c) for a, b, c in zip(nlo, root_lo, nup)]
        tup = [np.minimum(a, b) for a, b in zip(nup, root_up)]
        tlo = [np.minimum(a, b) for a, b in zip(tlo, tup)]
        if any(np.any(a != b) for a, b in zip(tlo + tup, nlo + nup)):  # the radius shrank: solve again
            run.nodes += 1
            got = run.solve(tlo, tup)
            if got.lower < best * (1 - rtol):
                run.push(got.lower, tlo, tup, got)
            else:
                closed = min(closed, got.lower)
            continue
        kids = run.children(nlo, nup, node)
        if not kids:
            lower, xa = _distance_leaf(run, nlo, nup, lower, rtol, adversarial)
            if xa is not None and float(np.linalg.norm(xa - prob.x0)) < best:
                best, best_x = float(np.linalg.norm(xa - prob.x0)), xa
            closed = min(closed, lower)
            continue
        for clo, cup in kids:
            run.nodes += 1
            got = run.solve(clo, cup)
            if max(got.lower, lower) < best * (1 - rtol):  # the parent's bound holds in the child (decide)
                run.push(max(got.lower, lower), clo, cup, got)
            else:
                closed = min(closed, max(got.lower, lower))
    low = min(run.heap[0][0] if run.heap else math.inf, closed, best)
    if not math.isfinite(best):  # then only exact leaves were closed: one is a leaf no point confirmed
        return DistanceOutcome("beyond" if not math.isfinite(closed) else "boundary", prob.eps, best, None,
                               run.nodes, run.solves)
    status = "optimal" if best - low <= rtol * best + 1e-12 else "boundary"
    return DistanceOutcome(status, max(low, 0.0), best, best_x, run.nodes, run.solves)


def _distance_leaf(run: _Search, lo: list[np.ndarray], up: list[np.ndarray], lower: float, rtol: float,
                   adversarial: Callable[[np.ndarray], np.ndarray | None]) -> tuple[float, np.ndarray | None]:
    """An exact leaf of the distance search: its bound from the precise program (:data:`leaf_tol`, at least
    ``lower``) and a confirmed adversarial point of the leaf (or None): the precise minimiser's, else (or when
    that one is not within ``rtol`` of the bound) the nearer of it and :func:`_inside_leaf`'s."""
    run.nodes += 1
    got = run.solve(lo, up, tol=leaf_tol)
    lower = max(lower, got.lower)

    def dist(p: np.ndarray | None) -> float:
        return math.inf if p is None else float(np.linalg.norm(p - run.prob.x0))

    xa = None if got.v is None else adversarial(_point(run.prob, got.v, math.inf))
    if lower < dist(xa) * (1 - rtol):
        inside = _inside_leaf(run, lo, up, adversarial)
        xa = inside if dist(inside) < dist(xa) else xa
    return lower, xa


def _inside_leaf(run: _Search, lo: list[np.ndarray], up: list[np.ndarray],
                 adversarial: Callable[[np.ndarray], np.ndarray | None]) -> np.ndarray | None:
    """A confirmed adversarial point of an exact leaf (no unstable neuron) whose own minimiser was not confirmed.

    That minimiser can sit where the margin's zero set meets the leaf's split faces, so that the ray out of it
    leaves the leaf at once (into a region where the margin keeps its sign): the leaf's program again with its
    split rows and its margin row moved strictly inside (by ``1e-9`` and ``1e-7`` relative, in two tries) has a
    minimiser in the leaf's interior, a hair farther, which the forward pass can confirm."""
    for strict in (1e-9, 1e-7):
        run.solves += 1
        got = _solve(_build(run.prob, lo, up, True, strict=strict), run.deadline)
        if got.v is not None:
            xa = adversarial(_point(run.prob, got.v, math.inf))
            if xa is not None:
                return xa
    return None


def _with_radius(prob: BabProblem, radius: float) -> BabProblem:
    """``prob`` with the search radius ``radius`` (a hair above, for the rounding of the best distance)."""
    return BabProblem(prob.weights, prob.biases, prob.x0, prob.mask, radius * (1 + 1e-9) + 1e-12, prob.label,
                      prob.poly)


def _distance_candidates(run: _Search, lo: list[np.ndarray], up: list[np.ndarray],
                         v: np.ndarray | None) -> list[np.ndarray]:
    """Points to try as upper bounds: the relaxation's minimiser and the minimiser over its pattern's region."""
    if v is None:
        return []
    prob = run.prob
    x = _point(prob, v, math.inf)
    out = [x]
    plo, pup = _pattern_bounds(prob, lo, up, x)
    got = run.solve(plo, pup)
    if got.v is not None:
        out.append(_point(prob, got.v, math.inf))
    return out
