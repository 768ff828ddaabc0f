"""The Tsipras et al. distribution: one robust but unreliable feature and d reliable but non-robust ones."""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch

from ..blocks import Blocks
from ..classifiers import Linear
from ..constraints import integer_at_least, is_symbolic, positive, unit_interval_open
from .base import Distribution, Support, _check_label, on_value

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

    arg_constraints = {"p": unit_interval_open, "eta": positive, "d": integer_at_least(1)}
    cli_name = "tsipras"
    projection_rule = "x_1 -> sign(x_1) with x_1 = 0 -> +1; x_2..x_{d+1} unchanged"

    def __init__(self, p: Any = 0.9, eta: Any = 3.0, d: Any = 1):
        self._init_params(p=p, eta=eta, d=d)
        self.dim = self.d + 1

    def _sample(self, y: torch.Tensor, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        n = y.shape[0]
        flip = torch.rand(n, generator=gen, device=y.device, dtype=torch.float64) >= self.p
        x1 = torch.where(flip, -y, y).to(dtype)
        rest = torch.randn(n, self.d, generator=gen, device=y.device, dtype=dtype)
        rest.add_(float(self.eta) * y.to(dtype)[:, None])
        return torch.cat([x1[:, None], rest], dim=1)

    def log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``log P(x_1 | y) + sum_j log N(x_j; eta y, 1)``; -inf when ``x_1`` is not in {-1, 1}."""
        self._check_x(x)
        self._require_numeric("log_likelihood")
        y = _check_label(y)
        y = torch.as_tensor(y, device=x.device, dtype=x.dtype)
        x1 = x[:, 0]
        on = on_value(x1, 1.0) | on_value(x1, -1.0)
        lp1 = torch.where(torch.sign(x1) == y, x.new_tensor(math.log(self.p)), x.new_tensor(math.log1p(-self.p)))
        lp1 = torch.where(on, lp1, -torch.inf)
        z = x[:, 1:] - float(self.eta) * y.reshape(-1, 1) if y.ndim else x[:, 1:] - float(self.eta) * y
        gauss = -0.5 * (z * z).sum(dim=1) - 0.5 * self.d * math.log(2 * math.pi)
        return lp1 + gauss

    def log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``x_1 log(p/(1-p)) + 2 eta sum_j x_j`` on the support, NaN when ``x_1`` is not in {-1, 1}."""
        self._check_x(x)
        self._require_numeric("log_odds")
        x1 = x[:, 0]
        on = on_value(x1, 1.0) | on_value(x1, -1.0)
        value = self.bayes_classifier().margin(x)
        return torch.where(on, value, torch.nan)

    def log_likelihood_expr(self, y: int, x: Any = None) -> sympy.Expr:
        """The same with ``x_1`` in {-1, 1} encoded as ``(1 + x_1 y)/2 log p + (1 - x_1 y)/2 log(1 - p)``."""
        x = self._point(x)
        y = _check_label(y)
        x1 = x[1] if isinstance(x, sympy.IndexedBase) else x[0]
        lp1 = (1 + x1 * y) / 2 * sympy.log(self.p) + (1 - x1 * y) / 2 * sympy.log(1 - self.p)
        sq = Blocks([(1, self.d)]).square_dot_expr(_shifted(x, self.d, -self.eta * y))
        return lp1 - sq / 2 - self.d / 2 * sympy.log(2 * sympy.pi)

    def log_odds_expr(self, x: Any = None) -> sympy.Expr:
        return self.bayes_classifier().margin_expr(self._point(x))

    @property
    def support(self) -> Support:
        def contains(x: torch.Tensor) -> torch.Tensor:
            return on_value(x[:, 0], 1.0) | on_value(x[:, 0], -1.0)

        return Support(f"{{-1, 1}} x R^{self.d}", contains)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Round ``x_1`` to the nearer of -1 and +1 (0 goes to +1); the Gaussian features are kept."""
        self._check_x(x)
        x1 = torch.where(x[:, :1] >= 0, 1.0, -1.0).to(x.dtype)
        return torch.cat([x1, x[:, 1:]], dim=1)

    def bayes_classifier(self) -> Linear:
        """``sign(x_1 log(p/(1-p)) + 2 eta sum_j x_j)``: the log-odds as a linear classifier."""
        return Linear(Blocks([(_log(self.p / (1 - self.p)), 1), (2 * self.eta, self.d)]), 0)


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
