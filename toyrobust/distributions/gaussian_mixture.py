"""Two Gaussians with opposite means, and the robust/non-robust features preset (seed 003)."""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch

from ..blocks import Blocks, as_blocks
from ..classifiers import Linear
from ..constraints import check, integer_at_least, is_symbolic, positive
from ..rng import Draws
from ..threats import L1, L2, Linf
from .base import (
    Distribution,
    ExampleSet,
    IntOrExpr,
    LinearBayesRegions,
    NumberOrExpr,
    Support,
    VectorLike,
)

__all__ = ["GaussianMixture"]


class GaussianMixture(LinearBayesRegions, Distribution):
    """``y`` uniform in {-1, +1}, ``x ~ N(y * mean, sigma^2 I)``.

    The log-odds are ``2 <mean, x> / sigma^2``, so the Bayes classifier is ``sign(<mean, x>)`` with risk
    ``Q(||mean||_2 / sigma)``. Means with many equal entries are stored as :class:`~toyrobust.blocks.Blocks`
    so that the dimension may be a sympy symbol.

    Args:
        mean: the class-(+1) mean, shape (D,) (sequence, array, tensor or Blocks).
        sigma: noise standard deviation (> 0).
    """

    arg_constraints = {"sigma": positive}
    cli_name = "gaussian-mixture"
    cli_order = 2
    projection_rule = "identity (the support is all of R^D)"
    cli_presets = {"robust-nonrobust": ("robust_nonrobust", {"D": integer_at_least(2)})}
    # the support R^D and its projection (the identity) read no parameter
    symbolic_ok = frozenset({"project", "support.contains"})

    @classmethod
    def cli_params(cls) -> dict[str, Any]:
        return {"mean": None, **cls.arg_constraints}

    def __init__(self, mean: VectorLike, sigma: NumberOrExpr = 1.0):
        self.mean: Blocks = as_blocks(mean, "mean")
        self._init_params(sigma=sigma)
        if not is_symbolic(self.sigma) and self.mean.is_numeric:
            top = max(abs(float(v)) for v, _ in self.mean.blocks)
            # the log-odds 2 <mean, x> / sigma^2 must be a float: refuse a sigma so small that its weights overflow
            if not math.isfinite(2 / float(self.sigma) / float(self.sigma) * max(top, 1.0)):
                raise ValueError(f"sigma must be large enough for the log-odds 2 <mean, x> / sigma^2 to be finite "
                                 f"floats, got sigma={self.sigma!r}")
        self._params = {"mean": self.mean, "sigma": self.sigma}
        self.dim = self.mean.dim

    @property
    def is_symbolic(self) -> bool:
        return is_symbolic(self.sigma) or not self.mean.is_numeric

    @classmethod
    def robust_nonrobust(cls, D: IntOrExpr) -> GaussianMixture:
        """The robust/non-robust features model of seed 003 (after Tsipras et al. 2019).

        ``mean = (1, a, ..., a)`` with ``a = sqrt(log D / (D - 1))`` and unit noise on every coordinate: the
        Bayes risk is ``Q(sqrt(1 + log D))`` while an Linf adversary with ``eps = 2a`` flips the non-robust
        features.

        Args:
            D: dimension (integer >= 2, or a sympy symbol).
        """
        D = check("D", D, integer_at_least(2))
        a = sympy.sqrt(sympy.log(D) / (D - 1)) if is_symbolic(D) else math.sqrt(math.log(D) / (D - 1))
        return cls(Blocks([(1, 1), (a, D - 1)]), 1)

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        x = draws.normal(self.dim, dtype)
        # in place: no second (n, D) temporary for y * mean
        return x.mul_(float(self.sigma)).addcmul_(y.to(dtype)[:, None], self.mean.to_tensor(y.device, dtype)[None, :])

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``-||x - y mean||^2 / (2 sigma^2) - D/2 log(2 pi sigma^2)``."""
        y = torch.as_tensor(y, device=x.device, dtype=x.dtype)
        mean = self.mean.to_tensor(x.device, x.dtype)
        z = x - (y.reshape(-1, 1) if y.ndim else y) * mean
        s2 = float(self.sigma) ** 2
        return -(z * z).sum(dim=1) / (2 * s2) - 0.5 * self.dim * math.log(2 * math.pi * s2)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``2 <mean, x> / sigma^2``."""
        return self.bayes_classifier().margin(x)

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        s2 = sympy.sympify(self.sigma) ** 2
        if isinstance(x, sympy.IndexedBase):
            i = sympy.Dummy("i", integer=True)
            sq = sympy.Add(*[(x[s + 1] - y * v) ** 2 if c == 1 else sympy.Sum((x[i] - y * v) ** 2, (i, s + 1, s + c))
                             for (v, c), s in zip(self.mean.blocks, self.mean.starts())])
        else:
            sq = sympy.Add(*[(xi - y * v) ** 2 for xi, v in zip(x, self.mean.to_list())])
        return -sq / (2 * s2) - self.dim / 2 * sympy.log(2 * sympy.pi * s2)

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        return self.bayes_classifier().margin_expr(x)

    def _support(self) -> Support:
        return Support(f"R^{self.dim}", lambda x: torch.ones(x.shape[0], dtype=torch.bool, device=x.device))

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """The identity: every point is in the support."""
        return x

    def bayes_classifier(self) -> Linear:
        """``sign(2 <mean, x> / sigma^2)``: the log-odds as a linear classifier."""
        scale = 2 / sympy.sympify(self.sigma) ** 2 if self.is_symbolic else 2 / float(self.sigma) ** 2
        return Linear(self.mean * scale, 0)

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """0 (the classes overlap: points next to the Bayes boundary cross it); infinite if the mean vanishes on
        the perturbed coordinates."""
        if self.mean.is_numeric and coords is not None and not isinstance(coords, slice):
            L2(0, coords=coords).coord_indices(int(self.mean.dim))
        inside, _ = self.mean.restrict(coords)
        return math.inf if sympy.Eq(inside.norm(2), 0) is sympy.true else 0

    def named_classifiers(self) -> dict[str, Linear]:
        """``bayes`` and ``robust`` (``sign(x_1)``, the robust feature of seed 003)."""
        return {"bayes": self.bayes_classifier(), "robust": Linear(Blocks([(1, 1), (0, self.dim - 1)]), 0)}

    @classmethod
    def strategy(cls, max_dim: int = 5, **overrides: Any) -> Any:
        """Gaussian mixtures with a non-zero mean of dimension 1..max_dim, or the robust/non-robust preset.

        Refines the default: the mean is a vector that ``arg_constraints`` does not describe, and sigma stays in
        [0.2, 3] (``sigma=...`` or ``max_sigma=...`` choose otherwise).
        """
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        entry = st.floats(-3, 3, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
        if "sigma" not in overrides and "max_sigma" not in overrides:
            overrides["sigma"] = st.floats(0.2, 3.0)
        free = st.builds(cls, mean=st.lists(entry, min_size=1, max_size=max_dim), **cls.param_strategies(**overrides))
        preset = st.integers(2, 200).map(cls.robust_nonrobust)
        return st.one_of(free, preset)

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        D = 100 if quick else 1000
        gm = cls.robust_nonrobust(D)
        a = math.sqrt(math.log(D) / (D - 1))
        return [ExampleSet(f"robust/non-robust D={D}", gm,
                           (("bayes", gm.bayes_classifier()), ("robust sign(x1)", Linear([1.0] + [0.0] * (D - 1)))),
                           (Linf(2 * a), L2(0.5), L1(1.0)))]
