"""Hypothesis strategies for property tests of toyrobust and of claims built on it.

Parameters are drawn from each constraint's ``typical`` range, with edge values mixed in, so a claim such as
"the Bayes classifier's risk is at most any classifier's risk" becomes::

    from hypothesis import given
    from toyrobust.testing import distributions, linear_classifiers

    @given(distributions(kinds=("tsipras",)), st.data())
    def test_claim(dist, data): ...

Needs the ``hypothesis`` package (the ``test`` extra).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .classifiers import Linear, Quadratic, Radial
from .constraints import Constraint, positive, unit_interval_open
from .distributions import ConcentricSpheres, GaussianMixture, PointMasses, Tsipras
from .threats import L1, L2, Linf

__all__ = [
    "params",
    "point_masses",
    "tsipras",
    "gaussian_mixtures",
    "concentric_spheres",
    "distributions",
    "linear_classifiers",
    "radial_classifiers",
    "quadratic_classifiers",
    "threat_models",
    "batches",
]

KINDS = ("point-masses", "tsipras", "gaussian-mixture", "spheres")


def params(constraint: Constraint, edges: bool = True) -> st.SearchStrategy:
    """Valid values of ``constraint`` in its typical range (and, with ``edges``, its typical end points)."""
    low, high = constraint.typical
    if constraint.integer:
        return st.integers(int(low), int(high))
    base = st.floats(low, high, allow_nan=False, allow_infinity=False)
    if edges:
        base = st.one_of(base, st.sampled_from([low, high]))
    return base


def point_masses() -> st.SearchStrategy[PointMasses]:
    """Point masses with a gap in the typical positive range."""
    return st.builds(PointMasses, gap=params(positive))


def tsipras(max_d: int = 5) -> st.SearchStrategy[Tsipras]:
    """Tsipras distributions with p in (0.51, 0.99), eta in (0.05, 5) and 1 <= d <= max_d."""
    return st.builds(Tsipras, p=params(unit_interval_open), eta=params(positive), d=st.integers(1, max_d))


def gaussian_mixtures(max_dim: int = 5) -> st.SearchStrategy[GaussianMixture]:
    """Gaussian mixtures with a non-zero mean of dimension 1..max_dim, or the robust/non-robust preset."""
    entry = st.floats(-3, 3, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
    free = st.builds(GaussianMixture, mean=st.lists(entry, min_size=1, max_size=max_dim),
                     sigma=st.floats(0.2, 3.0))
    preset = st.integers(2, 200).map(GaussianMixture.robust_nonrobust)
    return st.one_of(free, preset)


def concentric_spheres(max_dim: int = 50) -> st.SearchStrategy[ConcentricSpheres]:
    """Concentric spheres with 2 <= dim <= max_dim and 0 < r_inner < r_outer."""

    @st.composite
    def build(draw):
        r_inner = draw(st.floats(0.1, 3.0))
        ratio = draw(st.floats(1.05, 3.0))
        return ConcentricSpheres(draw(st.integers(2, max_dim)), r_inner, r_inner * ratio)

    return build()


def distributions(kinds: tuple[str, ...] = KINDS) -> st.SearchStrategy:
    """Any of the toy distributions named in ``kinds``."""
    table = {"point-masses": point_masses(), "tsipras": tsipras(), "gaussian-mixture": gaussian_mixtures(),
             "spheres": concentric_spheres()}
    unknown = set(kinds) - set(table)
    if unknown:
        raise ValueError(f"kinds must be drawn from {KINDS}, got {sorted(unknown)}")
    return st.one_of(*[table[k] for k in kinds])


def linear_classifiers(dim: int) -> st.SearchStrategy[Linear]:
    """Linear classifiers ``sign(<w, x> + b)`` in dimension ``dim`` with a non-zero weight vector."""
    w = st.lists(st.floats(-3, 3, allow_nan=False), min_size=dim, max_size=dim).filter(
        lambda v: max(abs(a) for a in v) > 1e-2)
    return st.builds(Linear, w, st.floats(-3, 3, allow_nan=False))


def radial_classifiers(low: float = 0.1, high: float = 4.0) -> st.SearchStrategy[Radial]:
    """Radial classifiers ``sign(||x|| - r)`` with r in [low, high]."""
    return st.builds(Radial, st.floats(low, high))


def quadratic_classifiers(dim: int) -> st.SearchStrategy[Quadratic]:
    """Quadratic classifiers ``sign(sum alpha_i x_i^2 - c)`` with positive alpha."""
    return st.builds(Quadratic, st.lists(st.floats(0.1, 3.0), min_size=dim, max_size=dim), st.floats(0.1, 3.0))


def threat_models(norms: tuple[str, ...] = ("linf", "l2", "l1"), max_eps: float = 2.0) -> st.SearchStrategy:
    """Lp-ball threat models with eps in [0, max_eps] (0 included as an edge value)."""
    table = {"linf": Linf, "l2": L2, "l1": L1}
    eps = st.one_of(st.just(0.0), st.floats(0.0, max_eps, allow_nan=False))
    return st.builds(lambda cls, e: cls(e), st.sampled_from([table[n] for n in norms]), eps)


def batches(dim: int, max_n: int = 16, scale: float = 5.0) -> st.SearchStrategy[Any]:
    """(N, dim) float64 torch batches with entries in [-scale, scale]."""
    import torch

    return st.integers(1, max_n).flatmap(
        lambda n: st.lists(st.floats(-scale, scale, allow_nan=False), min_size=n * dim, max_size=n * dim).map(
            lambda v: torch.tensor(v, dtype=torch.float64).reshape(n, dim)))


