"""A joint relaxation of a ReLU network's first layer over an L2 ball: one small semidefinite cone that couples
every unstable first-layer neuron (the rows the L2 branch and bound, :mod:`.l2bab`, adds to each node).

The single-neuron relaxations (the triangle, and the convex hull of the graph of one neuron over the ball) let
every neuron take its largest relaxed value at the same input: near the ball's centre each ``a_j`` may sit on its
neuron's concave envelope at once, although no single input puts them all there. On the 20-100-100-1 spheres
network at L2 0.2 that costs 11 of the 11.3 units between the relaxed and the true margin at the relaxed
minimiser (the second layer's triangles cost 0.1).

**The relaxation** (a first-moment/second-moment, or Shor, relaxation of the first layer). Lift the input to the
matrix ``M = [[1, delta^T], [delta, X]]`` with ``X`` standing for ``delta delta^T``; then ``M >= 0`` (positive
semidefinite) and ``trace X <= eps^2`` (from ``||delta||^2 <= eps^2``). For a neuron ``a = relu(z)``,
``z = w.delta + c``, the identity ``a^2 = a z`` reads ``(a - w.delta / 2)^2 = a c + (w.delta)^2 / 4``, and
``(w.delta)^2 = w^T (delta delta^T) w``, so

    ``(a - w.delta / 2)^2 <= a c + w^T X w / 4``

holds at every true point (with equality) and is convex in ``(delta, a, X)``: one three-dimensional second-order
cone per neuron. Every neuron's cone reads the *same* ``X``, whose trace the ball bounds: that is the coupling.

Read as moments (``delta`` a random input with mean ``m`` and covariance ``Sigma = X - m m^T``), the cone says
``E relu(z) <= (mu + sqrt(mu^2 + sigma^2)) / 2`` with ``mu = w.m + c`` and ``sigma^2 = w^T Sigma w`` (Scarf's
bound), while ``trace Sigma <= eps^2 - ||m||^2`` is shared: a relaxation that lifts many neurons above their
graph needs variance along many weight vectors, and the ball has too little for all of them. It equals the
Schur complement of the per-neuron lifted matrix ``[[1, delta^T, a], [delta, X, x], [a, x^T, a z]] >= 0`` of
Raghunathan, Steinhardt and Liang (2018) (maximised over ``x``), whose full joint version it matches on that
network's hard points, at a cone of size ``dm + 1`` instead of ``dm + n + 1``.

In the minimal-distance program (``||delta|| <= t <= R``) the trace row is ``trace X <= R t``, valid since
``||delta||^2 <= t^2 <= R t``.

**Soundness.** The dual of the semidefinite cone is itself; :func:`lift` projects the solver's multiplier onto
it (eigenvalues clipped at 0) and then adds ``tau I`` with ``tau`` above the eigensolver's error, so the
Lagrangian bound of :mod:`.l2bab` stays a bound for the multiplier it evaluates.

Reference:
    A. Raghunathan, J. Steinhardt, P. Liang, "Semidefinite relaxations for certifying robustness to adversarial
    examples", NeurIPS 2018. H. Scarf, "A min-max solution of an inventory problem", 1958 (the bound
    ``E max(Z, 0) <= (mu + sqrt(mu^2 + sigma^2)) / 2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["MomentRows", "moment_rows", "lift", "max_dim", "applies"]

#: the largest number of perturbed coordinates that gets the moment rows: the cone has ``(dm + 1) (dm + 2) / 2``
#: entries and the interior-point method factorises a dense block of that size squared. Measured on random
#: d-100-100-1 networks (one root program, 1 thread): 0.09 s against 0.03 s without the rows at d = 20, 0.22 s at
#: 24, 0.54 s at 30, 4.1 s at 40
max_dim = 24

_SQRT2 = math.sqrt(2.0)


@dataclass
class MomentRows:
    """The moment relaxation's rows over a node's columns.

    Attributes:
        trace: one ``<=`` row ``(A (1, n_var), b (1,))``.
        soc: the neurons' cones ``(G, h, dims)``: ``h - G v`` in the second-order cones of sizes ``dims`` (3 each).
        psd: ``(G, h, n)``: ``h - G v`` is the scaled upper triangle (column-major, off-diagonal entries times
            sqrt 2, Clarabel's ``PSDTriangleConeT``) of the ``n x n`` matrix ``M``.
        box_lo, box_hi: boxes of the ``X`` columns that every feasible point satisfies (for the dual bound).
    """

    trace: tuple[np.ndarray, np.ndarray]
    soc: tuple[sp.csr_matrix, np.ndarray, list[int]]
    psd: tuple[sp.csr_matrix, np.ndarray, int]
    box_lo: np.ndarray
    box_hi: np.ndarray


def applies(dm: int) -> bool:
    """Whether an input with ``dm`` perturbed coordinates gets the moment rows (``dm <= max_dim``, read at call
    time so that a caller may change :data:`max_dim`)."""
    return 0 < dm <= max_dim


def n_columns(dm: int) -> int:
    """The number of ``X`` columns (the upper triangle of a ``dm x dm`` matrix)."""
    return dm * (dm + 1) // 2


def _upper(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``i`` and columns ``j >= i`` of an ``m x m`` upper triangle in column-major order (column ``j``,
    then its rows ``0..j``: entry ``(i, j)`` at offset ``j (j + 1) / 2 + i``), the order of Clarabel's packing and
    of the ``X`` columns."""
    i, j = np.triu_indices(m)
    order = np.lexsort((i, j))
    return i[order], j[order]


def _x_index(dm: int) -> np.ndarray:
    """``idx[i, j]``: the offset of ``X_ij`` among the ``X`` columns (symmetric)."""
    i, j = np.indices((dm, dm))
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return hi * (hi + 1) // 2 + lo


def moment_rows(W: np.ndarray, c: np.ndarray, a_cols: np.ndarray, lo: np.ndarray, up: np.ndarray,
                radius: float, x_col: int, n_var: int, t_col: int | None = None) -> MomentRows:
    """The rows of the moment relaxation for the neurons ``a = relu(W delta + c)`` (see the module docstring).

    Args:
        W: (n, dm) the neurons' weights on the perturbed coordinates (``delta`` is columns ``0..dm-1``).
        c: (n,) their values at the centre.
        a_cols: (n,) the neurons' ``a`` columns.
        lo, up: (n,) bounds of their pre-activations over the node (scale only: the rows hold without them).
        radius: the ball's radius (the search radius ``R`` with ``t_col``).
        x_col: the first of the :func:`n_columns` ``X`` columns; n_var: the number of columns.
        t_col: the distance program's ``t`` column (the trace row becomes ``trace X <= R t``), or None.
    """
    n, dm = W.shape
    iu, ju = _upper(dm)  # the X columns' entries, in their order
    diag = iu == ju
    # w^T X w / 4 as coefficients on the X columns: w_i^2 / 4 on the diagonal, w_i w_j / 2 off it
    quad = np.where(diag, 0.25, 0.5)[None, :] * W[:, iu] * W[:, ju]
    xcols = x_col + np.arange(iu.size)
    s = np.maximum(np.maximum(-lo, up), 1e-12)  # each cone's scale: the neuron's reach
    rows = np.arange(n)
    # (q / s + s, 2 a - w.delta, q / s - s) in SOC(3) with q = a c + w^T X w / 4
    r0, r1, r2 = 3 * rows, 3 * rows + 1, 3 * rows + 2
    qx = -(quad / s[:, None])
    qa = -(c / s)
    r_idx = np.concatenate([np.repeat(r0, xcols.size), np.repeat(r2, xcols.size), r0, r2, r1,
                            np.repeat(r1, dm)])
    c_idx = np.concatenate([np.tile(xcols, n), np.tile(xcols, n), a_cols, a_cols, a_cols, np.tile(np.arange(dm), n)])
    vals = np.concatenate([qx.ravel(), qx.ravel(), qa, qa, -2.0 * np.ones(n), W.ravel()])
    G_soc = sp.csr_matrix((vals, (r_idx, c_idx)), shape=(3 * n, n_var))
    h_soc = np.zeros(3 * n)
    h_soc[r0], h_soc[r2] = s, -s
    # M = [[1, delta^T], [delta, X]] as the scaled upper triangle: M_00 = 1, M_0j = delta_(j-1), M_ij = X_(i-1, j-1)
    m = dm + 1
    mi, mj = _upper(m)
    h_psd = (mj == 0).astype(np.float64)
    top, inner = (mi == 0) & (mj > 0), mi > 0
    pr = np.concatenate([np.flatnonzero(top), np.flatnonzero(inner)])
    pc = np.concatenate([mj[top] - 1, x_col + (mj[inner] - 1) * mj[inner] // 2 + mi[inner] - 1])
    pv = np.concatenate([np.full(int(top.sum()), -_SQRT2), np.where(mi[inner] == mj[inner], -1.0, -_SQRT2)])
    G_psd = sp.csr_matrix((pv, (pr, pc)), shape=(h_psd.size, n_var))
    A_tr = np.zeros((1, n_var))
    A_tr[0, xcols[diag]] = 1.0
    if t_col is None:
        b_tr = np.array([radius ** 2])
    else:
        A_tr[0, t_col] = -radius
        b_tr = np.zeros(1)
    # |X_ij| <= sqrt(X_ii X_jj) <= trace X <= R^2 (X >= delta delta^T >= 0), the diagonal in [0, R^2]
    r2max = radius ** 2
    box_lo = np.where(diag, 0.0, -r2max)
    return MomentRows((A_tr, b_tr), (G_soc, h_soc, [3] * n), (G_psd, h_psd, m), box_lo, np.full(iu.size, r2max))


def unpack(y: np.ndarray, m: int) -> np.ndarray:
    """The symmetric ``m x m`` matrix of a scaled upper triangle ``y`` (column-major)."""
    Y = np.zeros((m, m))
    rows, cols = _upper(m)
    vals = np.where(rows == cols, y, y / _SQRT2)
    Y[rows, cols] = vals
    Y[cols, rows] = vals
    return Y


def pack(Y: np.ndarray) -> np.ndarray:
    """The scaled upper triangle (column-major) of the symmetric matrix Y (m, m)."""
    rows, cols = _upper(Y.shape[0])
    return np.where(rows == cols, Y[rows, cols], _SQRT2 * Y[rows, cols])


def lift(y: np.ndarray, m: int) -> np.ndarray:
    """A multiplier in the semidefinite cone near ``y`` (scaled upper triangle of an ``m x m`` matrix):
    negative eigenvalues clipped to 0, then ``tau I`` added with ``tau`` well above the rounding of the
    eigendecomposition and of the reassembly (``m`` times the unit roundoff times the largest eigenvalue, times
    1e3), so the matrix is positive semidefinite in exact arithmetic."""
    Y = unpack(np.asarray(y, dtype=np.float64), m)
    if not np.all(np.isfinite(Y)):  # 0 is in the cone: a weaker bound, never a wrong one
        return np.zeros(m * (m + 1) // 2)
    lam, V = np.linalg.eigh(Y)
    top = float(np.abs(lam).max(initial=0.0))
    Yp = (V * np.maximum(lam, 0.0)) @ V.T
    tau = 1e3 * m * np.finfo(np.float64).eps * max(top, np.finfo(np.float64).tiny)
    return pack(Yp + tau * np.eye(m))
