"""The maths behind :class:`~toyrobust.distributions.empirical.EmpiricalDistribution`: exact nearest samples,
distance statistics, and exact decisions cell by cell (kept apart from the class, which holds the facts)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..classifiers import Linear
from ..threats import ThreatModel
from ._cells import halfspace_not, polyhedron_distance, voronoi_cell

__all__ = ["nearest_brute", "nearest_kdtree", "distance_statistics", "supports_cells", "attack_cells",
           "DistanceStatistics", "EXACT_MAX_POINTS"]

#: largest number of distinct points for the exact (cell-by-cell) attack and closed forms
EXACT_MAX_POINTS = 64
#: distances held in memory at once (32 MiB of float32 screen)
BUDGET = 1 << 23
#: (rows, columns) of the exact re-ranking held at once
_PAIR_BUDGET = 1 << 20


def _p(norm: str) -> float:
    return {"l2": 2.0, "linf": math.inf, "l1": 1.0}[norm]


def _screen_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for the L2 screen unless matrix products may run in reduced precision (TF32 on a GPU)."""
    if x.device.type != "cpu" and torch.get_float32_matmul_precision() != "highest":
        return torch.float64
    return torch.float32


def nearest_brute(dist: Any, x: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distances float64 (N,), indices (N,))`` by chunked brute force on ``x``'s device (ties: lower index).

    L2: a float32 matrix-product screen with float64 re-ranking (:func:`_l2_chunk`); Linf and L1: chunked
    ``torch.cdist`` (Linf distances are exact in floating point: a maximum of rounded differences). Pruning Linf by the
    L2 screen (``||v||_inf >= ||v||_2 / sqrt(d)``) was tried and dropped: on the digits it keeps most samples."""
    X, _ = dist._data(x.device, torch.float64)
    q = x.to(torch.float64)
    rows = max(1, BUDGET // max(1, X.shape[0]))
    out_d, out_i = [], []
    if norm == "l2":
        key = ("screen", str(x.device), _screen_dtype(x))
        if key not in dist._cache:
            dist._cache[key] = (X.to(key[2]), (X * X).sum(1))
        Xs, sq = dist._cache[key]
        for i in range(0, q.shape[0], rows):
            d, j = _l2_chunk(q[i:i + rows], X, Xs, sq)
            out_d.append(d)
            out_i.append(j)
    else:
        for i in range(0, q.shape[0], rows):
            d, j = torch.cdist(q[i:i + rows], X, p=_p(norm)).min(1)
            out_d.append(d)
            out_i.append(j)
    return torch.cat(out_d), torch.cat(out_i)


def _screen(q: torch.Tensor, Xs: torch.Tensor, sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``s = ||x||^2 - 2 <q, x>`` (c, n) in ``Xs.dtype`` by one fused matrix product, and a bound on its rounding
    error per row: ``(d + 8) u (||q||^2 + max ||x||^2)`` (``u`` the unit roundoff: the casts of q and x, the dot
    product's accumulation, the squared norm and the subtraction), so ``||q - x||^2 = ||q||^2 + s +- bound``."""
    s = torch.addmm(sq.to(Xs.dtype)[None, :], q.to(Xs.dtype), Xs.T, beta=1.0, alpha=-2.0)
    u = torch.finfo(Xs.dtype).eps / 2
    return s, (q.shape[1] + 8) * u * ((q * q).sum(1) + sq.max())


def _rerank(q: torch.Tensor, X: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 squared L2 distances of the candidate pairs ``cand`` (c, n) bool, and each row's nearest candidate
    (ties: the lower index); rows without candidates get index n."""
    r, j = cand.nonzero(as_tuple=True)
    dd = torch.empty(r.shape[0], dtype=torch.float64, device=q.device)
    step = max(1, _PAIR_BUDGET // max(1, q.shape[1]))
    for a in range(0, r.shape[0], step):
        diff = q[r[a:a + step]] - X[j[a:a + step]]
        dd[a:a + step] = (diff * diff).sum(1)
    low = torch.full((q.shape[0],), math.inf, dtype=torch.float64, device=q.device).scatter_reduce(
        0, r, dd, "amin")
    j_best = torch.where(dd == low[r], j, X.shape[0])
    first = torch.full((q.shape[0],), X.shape[0], dtype=torch.int64, device=q.device).scatter_reduce(
        0, r, j_best, "amin")
    return low, first


def _l2_chunk(q: torch.Tensor, X: torch.Tensor, Xs: torch.Tensor,
              sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest samples of the rows ``q`` (float64) in L2: the screen's two smallest values per row; where the second
    lies within twice the rounding bound of the first, every candidate that close is re-ranked in float64."""
    s, bound = _screen(q, Xs, sq)
    two = s.topk(min(2, s.shape[1]), dim=1, largest=False)
    idx = two.indices[:, 0].clone()
    if s.shape[1] > 1:
        close = two.values[:, 1].to(torch.float64) <= two.values[:, 0].to(torch.float64) + 2 * bound
        if bool(close.any()):
            sub = close.nonzero()[:, 0]
            limit = (two.values[sub, 0].to(torch.float64) + 2 * bound[sub]).to(s.dtype)
            _, idx[sub] = _rerank(q[sub], X, s[sub] <= limit[:, None])
    diff = q - X[idx]
    return torch.sqrt((diff * diff).sum(1)), idx


def nearest_kdtree(dist: Any, x: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distances float64 (N,), indices (N,))`` from a ``scipy.spatial.cKDTree`` (built once; all CPU cores)."""
    from scipy.spatial import cKDTree

    if "kdtree" not in dist._cache:
        dist._cache["kdtree"] = cKDTree(dist.X.numpy())
    d, i = dist._cache["kdtree"].query(x.detach().to("cpu", torch.float64).numpy(), k=1, p=_p(norm), workers=-1)
    return torch.from_numpy(np.asarray(d, dtype=np.float64)).to(x.device), \
        torch.from_numpy(np.asarray(i, dtype=np.int64)).to(x.device)


# ---------------------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class DistanceStatistics:
    """Seed 001's distance analysis of a sample in one norm.

    Attributes:
        norm: ``"l2"``, ``"linf"`` or ``"l1"``.
        labels: the class labels, in the order of the matrices' rows and columns.
        counts: samples per class.
        mean: (K, K) mean distance between a sample of class a and one of class b (a == b: distinct samples).
        nearest_mean: (K, K) mean over the samples of class a of the distance to the nearest sample of class b
            (itself excluded).
        nearest_min: (K, K) the smallest such distance.
        nearest_same: (n,) each sample's distance to the nearest other sample of its class (inf when alone).
        nearest_other: (n,) each sample's distance to the nearest sample of another class (inf when none).
        y: (n,) the labels of the samples (the rows of ``nearest_same``, ``nearest_other``).
    """

    norm: str
    labels: tuple[int, ...]
    counts: np.ndarray
    mean: np.ndarray
    nearest_mean: np.ndarray
    nearest_min: np.ndarray
    nearest_same: np.ndarray
    nearest_other: np.ndarray
    y: np.ndarray

    @property
    def radius(self) -> float:
        """The label-invariant radius: half the smallest distance between samples of different classes."""
        return float(self.nearest_other.min()) / 2 if self.nearest_other.size else math.inf

    def class_radius(self) -> dict[int, float]:
        """Per class: half the smallest distance from one of its samples to a sample of another class."""
        return {lab: float(self.nearest_other[self.y == lab].min()) / 2 if (self.y == lab).any() else math.inf
                for lab in self.labels}

    def nearer_elsewhere(self) -> list[tuple[int, int]]:
        """Seed 001's surprise: the pairs ``(a, b)``, ``b != a``, whose mean distance ``mean[a, b]`` is smaller than
        the within-class mean ``mean[a, a]`` (class a is nearer class b than itself)."""
        out = []
        for i, a in enumerate(self.labels):
            for j, b in enumerate(self.labels):
                if i != j and self.mean[i, j] < self.mean[i, i]:
                    out.append((a, b))
        return out


def _pairwise(a: torch.Tensor, X: torch.Tensor, norm: str) -> torch.Tensor:
    """Distances of the rows ``a`` to every sample (L2 without the matrix-product shortcut for small samples: its
    cancellation would blur near-duplicates)."""
    if norm == "l2" and X.shape[0] <= 20_000:
        return torch.cdist(a, X, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.cdist(a, X, p=_p(norm))


def distance_statistics(dist: Any, norm: str) -> Any:
    """:class:`~toyrobust.distributions.empirical.DistanceStatistics` of ``dist`` in ``norm`` (row blocks)."""
    X, idx, K, n = dist.X, dist._index, len(dist.labels), dist.n
    onehot = torch.nn.functional.one_hot(idx, K).to(torch.float64)
    sums = torch.zeros(K, K, dtype=torch.float64)
    near = torch.empty(n, K, dtype=torch.float64)
    masks = [idx == k for k in range(K)]
    rows = max(1, BUDGET // n)
    for i in range(0, n, rows):
        D = _pairwise(X[i:i + rows], X, norm)
        b = D.shape[0]
        sums.index_add_(0, idx[i:i + rows], D @ onehot)
        D[torch.arange(b), torch.arange(i, i + b)] = math.inf  # not its own neighbour
        for k in range(K):
            near[i:i + b, k] = D[:, masks[k]].amin(1) if bool(masks[k].any()) else math.inf
    counts = dist.counts.to(torch.float64)
    pairs = counts[:, None] * counts[None, :] - torch.diag(counts)
    mean = torch.where(pairs > 0, sums / pairs.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64))
    near_mean = torch.full((K, K), math.nan, dtype=torch.float64)
    near_min = torch.full((K, K), math.nan, dtype=torch.float64)
    for a in range(K):
        if bool(masks[a].any()):
            near_mean[a] = near[masks[a]].mean(0)
            near_min[a] = near[masks[a]].amin(0)
    same = near.gather(1, idx[:, None])[:, 0]
    other = near.scatter(1, idx[:, None], math.inf).amin(1) if K > 1 else torch.full((n,), math.inf)
    return DistanceStatistics(norm=norm, labels=dist.labels, counts=dist.counts.numpy(), mean=mean.numpy(),
                              nearest_mean=near_mean.numpy(), nearest_min=near_min.numpy(), nearest_same=same.numpy(),
                              nearest_other=other.numpy(), y=dist.y.numpy())


# ---------------------------------------------------------------------------------------------------- exact cells
def supports_cells(dist: Any, clf: Any, own: bool, threat: Any, definition: str) -> bool:
    """See :meth:`EmpiricalDistribution.supports_exact_attack` (``own``: ``clf`` is this sample's 1-NN classifier)."""
    if dist.norm != "l2" or not isinstance(threat, ThreatModel) or threat.coords is not None:
        return False
    if int(torch.unique(dist._canon).numel()) > EXACT_MAX_POINTS:
        return False
    if own:
        return True
    return (isinstance(clf, Linear) and definition in ("projection", "error-region") and dist.n_classes is None
            and clf.w.is_numeric and isinstance(clf.b, (int, float)) and clf.dim == dist.dim)


def _cells(dist: Any) -> dict[str, Any]:
    """The distinct points, their labels and their tightened Voronoi cells (cached)."""
    if "cells" not in dist._cache:
        keep = torch.unique(dist._canon)
        U = dist.X[keep].numpy()
        sq = (U * U).sum(1)
        scale = 1.0 + float(np.abs(U).max())
        dist._cache["cells"] = {"U": U, "labels": dist.y[keep].numpy(), "scale": scale,
                                "cells": [voronoi_cell(U, sq, j, scale) for j in range(U.shape[0])]}
    return dist._cache["cells"]


def _targets(dist: Any, clf: Any, definition: str, point: np.ndarray,
             label: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The polyhedra whose points qualify for ``(point, label)``: other-label cells for the 1-NN classifier (ball;
    prediction-change: other than its clean prediction), a cell intersected with ``{f != cell label}`` for a linear
    classifier (projection: the cells of ``label``; error-region: every cell)."""
    c = _cells(dist)
    if isinstance(clf, Linear):
        w = np.asarray(clf.w.to_numpy(), dtype=np.float64)
        out = []
        for j, (A, rhs) in enumerate(c["cells"]):
            lab = int(c["labels"][j])
            if definition == "projection" and lab != label:
                continue
            a2, c2 = halfspace_not(w, float(clf.b), lab, c["scale"])
            out.append((np.vstack([A, a2]), np.r_[rhs, c2]))
        return out
    if definition in ("projection", "error-region"):
        return []  # the 1-NN classifier is Bayes(proj(x)) itself: nothing qualifies
    if definition == "prediction-change":
        x = torch.from_numpy(point[None, :]).to(torch.float64)
        label = int(dist.bayes_label(x)[0])
    return [cell for cell, lab in zip(c["cells"], c["labels"], strict=True) if int(lab) != label]


def _decide(dist: Any, clf: Any, definition: str, point: np.ndarray, label: int, p: float,
            eps: float) -> np.ndarray | None:
    """A qualifying point of the ball around ``point`` (the nearest one in the threat's norm), or None."""
    best, z_best = math.inf, None
    for A, rhs in _targets(dist, clf, definition, point, label):
        # the L2 distance to the farthest violated row's half-space bounds the distance from below (L1 >= L2, and
        # Linf >= L2 / sqrt(d)): most cells are skipped without a solver
        norms, viol = np.linalg.norm(A, axis=1), A @ point - rhs
        if np.any((norms == 0) & (viol > 0)):
            continue  # an impossible row (a zero classifier against its own sign)
        lower = float(np.max(viol[norms > 0] / norms[norms > 0], initial=0.0))
        lower = lower / math.sqrt(point.shape[0]) if p == math.inf else lower
        if lower * (1 - 1e-9) > min(eps, best):
            continue
        d, z = polyhedron_distance(point, A, rhs, p)
        if d < best:
            best, z_best = d, z
    return z_best if best <= eps else None


def attack_cells(dist: Any, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 definition: str) -> torch.Tensor:
    """Exact candidates for every row (the clean point where nothing qualifies); rows repeating a (point, label)
    pair are decided once (a Monte Carlo chunk of an empirical sample holds few distinct pairs)."""
    x64 = x.detach().to("cpu", torch.float64)
    pairs = torch.cat([x64, y.detach().to("cpu", torch.float64)[:, None]], 1)
    uniq, inverse = torch.unique(pairs, dim=0, return_inverse=True)
    out = uniq[:, :-1].clone()
    eps = float(threat.radius)
    for k in range(uniq.shape[0]):
        z = _decide(dist, clf, definition, uniq[k, :-1].numpy(), int(uniq[k, -1]), threat.p, eps)
        if z is not None:
            out[k] = torch.from_numpy(z)
    return out[inverse].to(device=x.device, dtype=x.dtype)
