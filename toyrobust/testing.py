"""Hypothesis strategies for property tests of toyrobust and of claims built on it.

Parameters are drawn from each constraint's ``typical`` range, with edge values mixed in, so a claim such as
"the Bayes classifier's risk is at most any classifier's risk" becomes::

    from hypothesis import given
    from hypothesis import strategies as st
    from toyrobust.testing import distributions, linear_classifiers

    @given(distributions(kinds=("tsipras",)), st.data())
    def test_claim(dist, data): ...

Needs the ``hypothesis`` package (the ``test`` extra).
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from .classifiers import Linear, Quadratic, Radial
from .constraints import Constraint
from .distributions import (
    ConcentricSpheres,
    Distribution,
    GaussianMixture,
    PointMasses,
    Tsipras,
    registered_distributions,
)
from .threats import THREAT_MODELS

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
    "missing_facts",
]

#: the registered distributions' command-line names (every one has a strategy: a test checks it)
KINDS = tuple(registered_distributions())

#: the maths a distribution must implement (private hooks of :class:`Distribution`) and what each is
REQUIRED_HOOKS = (("_sample", "sampling"), ("_log_likelihood", "class log-likelihoods"), ("_support", "support"),
                  ("_project", "projection onto the support"), ("bayes_classifier", "Bayes classifier"))


def params(constraint: Constraint, edges: bool = True) -> st.SearchStrategy:
    """Valid values of ``constraint`` in its typical range (and, with ``edges``, its typical end points)."""
    return constraint.strategy(edges)


def missing_facts(cls: type[Distribution]) -> list[str]:
    """The facts the distribution class ``cls`` lacks, one sentence each (empty when it owns them all): a hypothesis
    strategy, the maths of :data:`REQUIRED_HOOKS`, a ``projection_rule`` and cross-check examples.

    Nothing is drawn or sampled, so a completeness test can call it for every registered class at no cost.
    """
    gaps = []
    try:
        cls.strategy()
    except NotImplementedError as err:
        gaps.append(f"no hypothesis strategy ({err})")
    for hook, what in REQUIRED_HOOKS:
        if getattr(cls, hook) is getattr(Distribution, hook):
            gaps.append(f"no {what} (implement {cls.__name__}.{hook})")
    if not cls.projection_rule:
        gaps.append(f"no projection_rule (how {cls.__name__}.project breaks ties)")
    if not cls.examples(quick=True):
        gaps.append(f"no cross-check examples ({cls.__name__}.examples)")
    return gaps


def point_masses() -> st.SearchStrategy[PointMasses]:
    """Point masses with a gap in the typical positive range."""
    return PointMasses.strategy()


def tsipras(max_d: int = 5) -> st.SearchStrategy[Tsipras]:
    """Tsipras distributions with p in (0.51, 0.99), eta in (0.05, 5) and 1 <= d <= max_d."""
    return Tsipras.strategy(max_d=max_d)


def gaussian_mixtures(max_dim: int = 5) -> st.SearchStrategy[GaussianMixture]:
    """Gaussian mixtures with a non-zero mean of dimension 1..max_dim, or the robust/non-robust preset."""
    return GaussianMixture.strategy(max_dim=max_dim)


def concentric_spheres(max_dim: int = 50) -> st.SearchStrategy[ConcentricSpheres]:
    """Concentric spheres with 2 <= dim <= max_dim and 0 < r_inner < r_outer."""
    return ConcentricSpheres.strategy(max_dim=max_dim)


def distributions(kinds: tuple[str, ...] | None = None) -> st.SearchStrategy:
    """Any of the registered toy distributions named in ``kinds`` (default: every one that has a strategy), each
    drawn by the strategy its class declares (:meth:`~toyrobust.distributions.Distribution.strategy`).

    The class strategies are built at the first draw, not here, so ``@given(distributions())`` never fails
    when its module is imported: a registered class without a strategy is left out of the default (its
    completeness test, :func:`missing_facts`, names it), and one named in ``kinds`` fails the tests drawing it.
    """
    table = registered_distributions()
    if kinds is not None:
        kinds = tuple(kinds)
        unknown = set(kinds) - set(table)
        if unknown:
            raise ValueError(f"kinds must be drawn from {tuple(table)}, got {sorted(unknown)}")
        return st.deferred(lambda: st.one_of(*[table[k].strategy() for k in kinds]))
    return st.deferred(lambda: st.one_of(*_available_strategies()))


def _available_strategies() -> list[st.SearchStrategy]:
    """The strategies of every registered distribution that has one (at the time of the first draw)."""
    out = []
    for cls in registered_distributions().values():
        try:
            out.append(cls.strategy())
        except NotImplementedError:
            continue  # missing_facts reports it, in one named test per distribution
    if not out:
        raise ValueError("no registered distribution has a hypothesis strategy")
    return out


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
    eps = st.one_of(st.just(0.0), st.floats(0.0, max_eps, allow_nan=False))
    return st.builds(lambda cls, e: cls(e), st.sampled_from([THREAT_MODELS[n] for n in norms]), eps)


def batches(dim: int, max_n: int = 16, scale: float = 5.0) -> st.SearchStrategy[Any]:
    """(N, dim) float64 torch batches with entries in [-scale, scale]."""
    return st.integers(1, max_n).flatmap(
        lambda n: st.lists(st.floats(-scale, scale, allow_nan=False), min_size=n * dim, max_size=n * dim).map(
            lambda v: torch.tensor(v, dtype=torch.float64).reshape(n, dim)))


