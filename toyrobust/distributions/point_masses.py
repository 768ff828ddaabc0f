"""Two point masses on the real line (Stutz, "towards a definition for adversarial examples", seed 000)."""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch

from ..classifiers import Linear
from ..constraints import positive
from ..rng import Draws
from ..threats import L2, Linf
from .base import (
    Distribution,
    ExampleSet,
    LinearBayesRegions,
    NumberOrExpr,
    Support,
    keep_nan,
    on_value,
)

__all__ = ["PointMasses"]


class PointMasses(LinearBayesRegions, Distribution):
    """``x = 0`` with label +1 and ``x = gap`` with label -1, each with probability 1/2 (dimension 1).

    No accurate classifier is robust to an eps-ball adversary once ``eps >= gap`` (every accurate threshold is
    crossed from 0), which motivates the projection definition: the label of a perturbed point is that of its
    nearest support point, ``pi(x) = gap if |x - gap| < |x| else 0``.

    Args:
        gap: distance between the two points (> 0, number or sympy symbol).
    """

    arg_constraints = {"gap": positive}
    cli_name = "point-masses"
    cli_order = 0
    projection_rule = "x -> gap if |x - gap| < |x| else 0 (the midpoint x = gap/2 goes to 0, label +1)"

    def __init__(self, gap: NumberOrExpr = 1.0):
        self._init_params(gap=gap)
        self.dim = 1

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        gap = torch.tensor(float(self.gap), dtype=dtype, device=y.device)
        return torch.where(y == 1, torch.zeros_like(gap), gap).unsqueeze(1)

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """0 at the point of class ``y`` (counting measure), -inf elsewhere."""
        gap = x.new_tensor(float(self.gap))
        point = torch.where(torch.as_tensor(y, device=x.device) == 1, torch.zeros_like(gap), gap)
        at = on_value(x[:, 0] - point, 0.0)
        return torch.where(at, 0.0, -torch.inf).to(x.dtype)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """+inf at 0, -inf at ``gap``, NaN elsewhere (no data there)."""
        out = torch.full_like(x[:, 0], torch.nan)
        out = torch.where(on_value(x[:, 0], 0.0), torch.inf, out)
        return torch.where(on_value(x[:, 0], float(self.gap)), -torch.inf, out)

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        x = x[0]
        point = 0 if y == 1 else self.gap
        return sympy.Piecewise((0, sympy.Eq(x, point)), (-sympy.oo, True))

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        x = x[0]
        return sympy.Piecewise((sympy.oo, sympy.Eq(x, 0)), (-sympy.oo, sympy.Eq(x, self.gap)), (sympy.nan, True))

    def _support(self) -> Support:
        def contains(x: torch.Tensor) -> torch.Tensor:
            return on_value(x[:, 0], 0.0) | on_value(x[:, 0], float(self.gap))

        return Support(f"{{0, {self.gap}}}", contains)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest of the two points; the midpoint goes to 0 (NaN stays NaN)."""
        gap = float(self.gap)
        gap_t = x.new_tensor(gap)
        return keep_nan(x, torch.where((x - gap).abs() < x.abs(), gap_t, torch.zeros_like(gap_t)))  # NaN stays NaN

    def bayes_classifier(self) -> Linear:
        """The max-margin threshold ``x <= gap/2 -> +1``: the Bayes label of the projection."""
        return Linear([-1], self.gap / 2)

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """``gap/2`` in every norm (1-D); infinite when the only coordinate is not perturbed."""
        return self.gap / 2 if 0 in L2(0, coords=coords).coord_indices(1) else math.inf

    def named_classifiers(self) -> dict[str, Linear]:
        """``bayes`` and ``maxmargin``: both the threshold ``x <= gap/2 -> +1``."""
        return {"bayes": self.bayes_classifier(), "maxmargin": Linear([-1], self.gap / 2)}

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        pm = cls(1.0)
        return [ExampleSet("point masses gap=1", pm,
                           (("max-margin", pm.bayes_classifier()), ("threshold 0.2", Linear([-1.0], 0.2))),
                           (Linf(0.3), Linf(0.6)) if not quick else (Linf(0.6), Linf(0.3)), every_definition=True)]
