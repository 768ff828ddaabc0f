"""The Tsipras et al. distribution: one robust but unreliable feature and d reliable but non-robust ones."""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch

from ..blocks import Blocks
from ..classifiers import Linear
from ..constraints import integer_at_least, is_symbolic, positive, unit_interval_open
from ..rng import Draws
from ..threats import L1, L2, Linf, ThreatModel
from .base import Distribution, ExampleSet, IntOrExpr, NumberOrExpr, Support, keep_nan, on_value, rounding_margin

__all__ = ["Tsipras"]


def _log(v: Any) -> Any:
    return sympy.log(v) if is_symbolic(v) else math.log(v)


class Tsipras(Distribution):
    """``y`` uniform in {-1, +1}; ``x_1 = y`` w.p. ``p`` else ``-y``; ``x_2..x_{d+1}`` i.i.d. ``N(eta*y, 1)``.

    Tsipras et al. 2019, "Robustness may be at odds with accuracy" (with ``eta`` of order ``1/sqrt(d)``);
    ``d = 1`` is the two-dimensional version of Stutz's blog post (seed 000, Figure 2: ``p = 0.9, eta = 3``).
    The log-odds are linear: ``x_1 log(p/(1-p)) + 2 eta sum_{j>=2} x_j`` on the support.

    Args:
        p: reliability of x_1, in (0, 1).
        eta: mean shift of the Gaussian features (> 0).
        d: number of Gaussian features (integer >= 1; may be a sympy symbol).
    """

    # d's typical range (1..5) is what the hypothesis strategy draws: Tsipras.strategy(max_d=k) widens it
    arg_constraints = {"p": unit_interval_open, "eta": positive, "d": integer_at_least(1, typical_high=5)}
    cli_name = "tsipras"
    cli_order = 1
    projection_rule = "x_1 -> sign(x_1) with x_1 = 0 -> +1; x_2..x_{d+1} unchanged"
    # the support {-1, 1} x R^d and its projection read no parameter
    symbolic_ok = frozenset({"project", "support.contains"})

    def __init__(self, p: NumberOrExpr = 0.9, eta: NumberOrExpr = 3.0, d: IntOrExpr = 1):
        self._init_params(p=p, eta=eta, d=d)
        self.dim = self.d + 1

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        flip = draws.uniform(1, torch.float64)[:, 0] >= self.p
        x1 = torch.where(flip, -y, y).to(dtype)
        rest = draws.normal(self.d, dtype)
        rest.add_(float(self.eta) * y.to(dtype)[:, None])
        return torch.cat([x1[:, None], rest], dim=1)

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``log P(x_1 | y) + sum_j log N(x_j; eta y, 1)``; -inf when ``x_1`` is not in {-1, 1}."""
        y = torch.as_tensor(y, device=x.device, dtype=x.dtype)
        x1 = x[:, 0]
        on = on_value(x1, 1.0) | on_value(x1, -1.0)
        lp1 = torch.where(torch.sign(x1) == y, x.new_tensor(math.log(self.p)), x.new_tensor(math.log1p(-self.p)))
        lp1 = torch.where(on, lp1, -torch.inf)
        z = x[:, 1:] - float(self.eta) * y.reshape(-1, 1) if y.ndim else x[:, 1:] - float(self.eta) * y
        gauss = -0.5 * (z * z).sum(dim=1) - 0.5 * self.d * math.log(2 * math.pi)
        return lp1 + gauss

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``x_1 log(p/(1-p)) + 2 eta sum_j x_j`` on the support, NaN when ``x_1`` is not in {-1, 1}."""
        x1 = x[:, 0]
        on = on_value(x1, 1.0) | on_value(x1, -1.0)
        value = self.bayes_classifier().margin(x)
        return torch.where(on, value, torch.nan)

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        """The same with ``x_1`` in {-1, 1} encoded as ``(1 + x_1 y)/2 log p + (1 - x_1 y)/2 log(1 - p)``."""
        x1 = x[1] if isinstance(x, sympy.IndexedBase) else x[0]
        lp1 = (1 + x1 * y) / 2 * sympy.log(self.p) + (1 - x1 * y) / 2 * sympy.log(1 - self.p)
        sq = Blocks([(1, self.d)]).square_dot_expr(_shifted(x, self.d, -self.eta * y))
        return lp1 - sq / 2 - self.d / 2 * sympy.log(2 * sympy.pi)

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        return self.bayes_classifier().margin_expr(x)

    def _support(self) -> Support:
        def contains(x: torch.Tensor) -> torch.Tensor:
            return on_value(x[:, 0], 1.0) | on_value(x[:, 0], -1.0)

        return Support(f"{{-1, 1}} x R^{self.d}", contains)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Round ``x_1`` to the nearer of -1 and +1 (0 goes to +1; NaN stays NaN); the Gaussian features are kept."""
        x1 = keep_nan(x[:, :1], torch.where(x[:, :1] >= 0, 1.0, -1.0).to(x.dtype))  # NaN stays NaN
        return torch.cat([x1, x[:, 1:]], dim=1)

    def bayes_classifier(self) -> Linear:
        """``sign(x_1 log(p/(1-p)) + 2 eta sum_j x_j)``: the log-odds as a linear classifier."""
        return Linear(Blocks([(_log(self.p / (1 - self.p)), 1), (2 * self.eta, self.d)]), 0)

    def perturbed_coords(self, threat: ThreatModel) -> tuple[bool, Any]:
        """``(x_1 perturbed?, number of perturbed Gaussian coordinates)`` (indices 1..d are the Gaussian ones)."""
        c = threat.coords
        if c is None:
            return True, self.d
        if isinstance(c, slice):
            stop = self.d + 1 if c.stop is None else c.stop
            if not is_symbolic(self.d):
                threat.coord_indices(self.d + 1)
            return c.start == 0, stop - max(c.start, 1)
        if is_symbolic(self.d):
            raise TypeError(f"coords={c!r} needs a numeric d; use slice(start, None) with d={self.d}")
        idx = threat.coord_indices(self.d + 1)
        return 0 in idx, sum(1 for i in idx if i >= 1)

    def _label_region_projection(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``proj`` rounds ``z_1`` to ``s = ±1`` (0 to +1), so ``R_y`` is the union over ``s`` of ``{z_1 on s's
        side} x {y (s log(p/(1-p)) + 2 eta sum_j z_j) >= 0}``; each piece is a product, its projection a product
        of projections, and the nearer piece wins."""
        ys = torch.where(y > 0, 1.0, -1.0).to(z.dtype)
        lg = math.log(self.p / (1 - self.p))
        eta, k = float(self.eta), int(self.d)
        rest = z[:, 1:]
        total = rest.sum(1)
        best, best_d2 = z, torch.full_like(total, math.inf)
        for s in (1.0, -1.0):
            z1 = z[:, :1].clamp_min(0) if s > 0 else z[:, :1].clamp_max(-rounding_margin(z, torch.ones(())).item())
            v = ys * (s * lg + 2 * eta * total)
            tau = rounding_margin(z, 2 * eta * (rest.abs().sum(1) + abs(lg) + 1))
            shift = torch.where(v < tau, (tau - v) / (2 * eta * k) * ys, torch.zeros_like(v))
            cand = torch.cat([z1, rest + shift[:, None]], dim=1)
            d2 = ((cand - z) ** 2).sum(1)
            take = d2 < best_d2
            best = torch.where(take[:, None], cand, best)
            best_d2 = torch.where(take, d2, best_d2)
        return best

    def _label_region_pieces(self, label: int) -> list[list[tuple[Any, float, bool]]]:
        """Two pieces, one per rounded sign ``s`` of ``z_1``: ``{s z_1 >= 0}`` (``z_1 < 0`` strictly for ``s = -1``)
        and the Bayes rule ``s log(p/(1-p)) + 2 eta sum_{j>=2} z_j >= 0`` (label +1) or ``< 0`` (label -1)."""
        import numpy as np

        d = int(self.d)
        lg = math.log(float(self.p) / (1 - float(self.p)))
        e1 = np.zeros(d + 1)
        e1[0] = 1.0
        g = np.full(d + 1, 2 * float(self.eta))
        g[0] = 0.0
        pieces = []
        for s in (1.0, -1.0):
            side = (-e1, 0.0, False) if s > 0 else (e1, 0.0, True)
            bayes = (-g, s * lg, False) if label == 1 else (g, -s * lg, True)
            pieces.append([side, bayes])
        return pieces

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """0 if a Gaussian coordinate is perturbed (points next to the Bayes boundary cross it), else 1 (only
        ``x_1`` moves, and it keeps its sign below 1)."""
        _, k_g = self.perturbed_coords(L2(0, coords=coords))
        return 1 if sympy.Eq(k_g, 0) is sympy.true else 0

    def named_classifiers(self) -> dict[str, Linear]:
        """``bayes`` and ``robust`` (``sign(x_1)``, Tsipras et al.'s robust feature)."""
        return {"bayes": self.bayes_classifier(), "robust": Linear(Blocks([(1, 1), (0, self.d)]), 0)}

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        ts = cls(0.9, 3.0, 1)
        return [ExampleSet("tsipras p=0.9 eta=3", ts,
                           (("bayes", ts.bayes_classifier()), ("robust sign(x1)", Linear([1.0, 0.0]))),
                           (Linf(2.0), L2(2.0), L1(2.0), Linf(6.0)))]


class _Shifted:
    """A symbolic point whose coordinates 2.. are shifted by a constant (for the Gaussian part)."""

    def __init__(self, x: Any, shift: Any):
        self.x, self.shift = x, shift

    def __len__(self) -> int:
        return len(self.x) - 1

    def __iter__(self):
        return (xi + self.shift for xi in list(self.x)[1:])


def _shifted(x: Any, d: Any, shift: Any) -> Any:
    if isinstance(x, sympy.IndexedBase):
        # x[i + 1] for i = 1..d: a shifted IndexedBase view is awkward in sympy, so use a Lambda-free trick:
        # an IndexedBase named after x whose entries are x[i+1] + shift
        return _IndexedShift(x, shift)
    return _Shifted(x, shift)


class _IndexedShift(sympy.IndexedBase):
    """``z[i] = x[i + 1] + shift``: lets Blocks sums run over the Gaussian coordinates of a symbolic point."""

    def __new__(cls, x: sympy.IndexedBase, shift: Any):
        obj = super().__new__(cls, x.label)
        obj._x, obj._shift = x, shift
        return obj

    def __getitem__(self, i: Any) -> Any:
        return self._x[i + 1] + self._shift
