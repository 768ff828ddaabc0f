"""Exact decisions on an empirical sample's label regions: Voronoi cells as polyhedra, distances to them in an Lp norm.

Under the L2 nearest-sample projection, the points whose nearest sample is ``u_j`` form the Voronoi cell
``V_j = {z : 2 <u_k - u_j, z> <= ||u_k||^2 - ||u_j||^2 for every k != j}``, a polyhedron. Whether a ball
``B_p(x, eps)`` meets a polyhedron ``P = {z : A z <= c}`` is decided exactly by its Lp distance:

* L2: the least-distance problem ``min ||u|| s.t. -A u >= A x - c`` solved through non-negative least squares
  (Lawson and Hanson, "Solving Least Squares Problems", 1974, chapter 23: ``min ||E w - f||, w >= 0`` with
  ``E = [G^T; h^T]``, ``f = e_{d+1}``; the residual gives the minimiser, a zero residual means P is empty);
* Linf and L1: one linear program (HiGHS through ``scipy.optimize.linprog``).

Cells are tightened by a relative ``1e-9`` (strictly inside, so float rounding never puts a returned point on a tie
between two labels); a decision at an eps within that much of the distance may go either way.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog, nnls

__all__ = ["TIGHTEN", "voronoi_cell", "halfspace_not", "polyhedron_distance"]

#: relative tightening of every row (cells and classifier half-spaces)
TIGHTEN = 1e-9


def voronoi_cell(U: np.ndarray, sq: np.ndarray, j: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(A, c)`` of the L2 Voronoi cell of ``U[j]`` among the distinct points ``U`` (m, d), tightened inside
    (``sq`` the squared norms, ``scale`` the data's size for the tightening)."""
    A = 2.0 * (np.delete(U, j, axis=0) - U[j])
    c = np.delete(sq, j) - sq[j]
    return A, c - TIGHTEN * scale * np.linalg.norm(A, axis=1)


def halfspace_not(w: np.ndarray, b: float, label: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The row where ``sign(<w, z> + b)`` (a zero margin predicts +1) differs from ``label`` (+1: ``<w, z> + b < 0``;
    -1: ``>= 0``), tightened inside."""
    slack = TIGHTEN * scale * max(float(np.linalg.norm(w)), 1.0)
    if label == 1:
        return w[None, :], np.array([-b - slack])
    return -w[None, :], np.array([b - slack])


def polyhedron_distance(x: np.ndarray, A: np.ndarray, c: np.ndarray, p: float) -> tuple[float, np.ndarray | None]:
    """``min ||z - x||_p`` over ``{z : A z <= c}`` and a minimiser: ``(distance, z)``, or ``(inf, None)`` when the
    polyhedron is empty (``p`` in 1, 2, inf)."""
    if A.shape[0] == 0:
        return 0.0, x.copy()
    if p == 2:
        return _l2_distance(x, A, c)
    return _lp_distance(x, A, c, p)


def _l2_distance(x: np.ndarray, A: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Lawson and Hanson's LDP: ``min ||u||`` s.t. ``G u >= h`` with ``G = -A``, ``h = A x - c``."""
    h = A @ x - c
    if np.all(h <= 0):
        return 0.0, x.copy()  # x is inside
    d = x.shape[0]
    E = np.vstack([-A.T, h[None, :]])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    w, _ = nnls(E, f, maxiter=50 * (A.shape[0] + d + 1))
    r = E @ w - f
    if np.linalg.norm(r) <= 1e-12 or r[-1] >= 0:
        return math.inf, None
    z = x - r[:d] / r[-1]
    return float(np.linalg.norm(z - x)), z


def _lp_distance(x: np.ndarray, A: np.ndarray, c: np.ndarray, p: float) -> tuple[float, np.ndarray | None]:
    """Linf: variables ``(z, t)``, ``min t`` s.t. ``|z - x| <= t``; L1: ``(z, s)``, ``min sum s`` s.t.
    ``|z - x| <= s``."""
    d, m = x.shape[0], A.shape[0]
    eye = np.eye(d)
    if p == math.inf:
        cost = np.r_[np.zeros(d), 1.0]
        box = np.block([[eye, -np.ones((d, 1))], [-eye, -np.ones((d, 1))]])
        rows = np.vstack([np.hstack([A, np.zeros((m, 1))]), box])
    else:
        cost = np.r_[np.zeros(d), np.ones(d)]
        box = np.block([[eye, -eye], [-eye, -eye]])
        rows = np.vstack([np.hstack([A, np.zeros((m, d))]), box])
    rhs = np.r_[c, x, -x]
    bounds = [(None, None)] * d + [(0, None)] * (cost.shape[0] - d)
    res = linprog(cost, A_ub=rows, b_ub=rhs, bounds=bounds, method="highs")
    if res.status == 2:
        return math.inf, None
    if res.status != 0:
        raise RuntimeError(f"linprog failed deciding a cell ({res.message})")
    z = res.x[:d]
    dist = float(np.max(np.abs(z - x))) if p == math.inf else float(np.sum(np.abs(z - x)))
    return dist, z
