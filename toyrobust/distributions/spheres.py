"""Two concentric spheres (Gilmer et al. 2018, "Adversarial spheres"; seed 003 with D = 500)."""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch

from ..classifiers import Linear, Quadratic, Radial
from ..constraints import check_less, integer_at_least, is_symbolic, positive
from ..rng import Draws
from ..threats import L2, Linf
from .base import Distribution, ExampleSet, IntOrExpr, NumberOrExpr, Support, log_sphere_area, rounding_margin

__all__ = ["ConcentricSpheres"]


class ConcentricSpheres(Distribution):
    """``y = -1``: uniform on the sphere of radius ``r_inner``; ``y = +1``: uniform on radius ``r_outer``.

    The Bayes classifier is perfect; the label of any point is read off its projection, the nearer sphere,
    which is the radial classifier at the middle radius ``(r_inner + r_outer) / 2``.

    Args:
        dim: dimension D (integer >= 2; 500 in the source).
        r_inner: inner radius (> 0).
        r_outer: outer radius (> r_inner).
    """

    arg_constraints = {"dim": integer_at_least(2), "r_inner": positive, "r_outer": positive}
    cli_name = "spheres"
    cli_order = 3
    projection_rule = ("x -> r x/||x|| with r the nearer radius; the middle shell ||x|| = (r_inner + r_outer)/2 "
                       "goes to the outer sphere (label +1), the origin to r_inner e_1")

    def __init__(self, dim: IntOrExpr = 500, r_inner: NumberOrExpr = 1.0, r_outer: NumberOrExpr = 1.3):
        self._init_params(dim=dim, r_inner=r_inner, r_outer=r_outer)
        check_less("r_inner", self.r_inner, "r_outer", self.r_outer)

    @property
    def r_mid(self) -> Any:
        """The middle radius, where the Bayes label changes."""
        return (self.r_inner + self.r_outer) / 2

    def _radius(self, y: Any) -> Any:
        return self.r_outer if y == 1 else self.r_inner

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        z = draws.normal(self.dim, dtype)
        r = torch.where(y == 1, torch.tensor(float(self.r_outer), dtype=dtype, device=y.device),
                        torch.tensor(float(self.r_inner), dtype=dtype, device=y.device))
        return z.mul_((r / torch.linalg.vector_norm(z, dim=1))[:, None])  # in place: z is ours, a fresh draw

    def _on_sphere(self, x: torch.Tensor, r: float) -> torch.Tensor:
        tol = 64 * torch.finfo(x.dtype).eps * math.sqrt(self.dim) * r
        return (torch.linalg.vector_norm(x, dim=1) - r).abs() <= tol

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``-log(area of the sphere of class y)`` on that sphere (surface measure), -inf elsewhere."""
        if isinstance(y, torch.Tensor) and y.ndim:
            return torch.where(y == 1, self._log_likelihood(x, 1), self._log_likelihood(x, -1))
        r = float(self._radius(int(y)))
        # the area as a tensor of x's dtype: a Python float here would make torch.where compute in float32
        return torch.where(self._on_sphere(x, r), x.new_tensor(-log_sphere_area(self.dim, r)), -torch.inf)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """+inf on the outer sphere, -inf on the inner one, NaN elsewhere (no data there)."""
        out = torch.full_like(x[:, 0], torch.nan)
        out = torch.where(self._on_sphere(x, float(self.r_outer)), torch.inf, out)
        return torch.where(self._on_sphere(x, float(self.r_inner)), -torch.inf, out)

    def _norm_expr(self, x: Any) -> sympy.Expr:
        if isinstance(x, sympy.IndexedBase):
            i = sympy.Dummy("i", integer=True)
            return sympy.sqrt(sympy.Sum(x[i] ** 2, (i, 1, self.dim)))
        return sympy.sqrt(sum(xi**2 for xi in x))

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        r = self._radius(y)
        area = log_sphere_area(sympy.sympify(self.dim), sympy.sympify(r))
        return sympy.Piecewise((-area, sympy.Eq(self._norm_expr(x), r)), (-sympy.oo, True))

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        norm = self._norm_expr(x)
        return sympy.Piecewise((sympy.oo, sympy.Eq(norm, self.r_outer)), (-sympy.oo, sympy.Eq(norm, self.r_inner)),
                               (sympy.nan, True))

    def _support(self) -> Support:
        def contains(x: torch.Tensor) -> torch.Tensor:
            return self._on_sphere(x, float(self.r_inner)) | self._on_sphere(x, float(self.r_outer))

        return Support(f"{{||x|| = {self.r_inner}}} u {{||x|| = {self.r_outer}}} in R^{self.dim}", contains)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Radial projection onto the nearer sphere (middle shell to the outer one, origin to ``r_inner e_1``;
        a row with NaN stays NaN)."""
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        r = torch.where(norm >= float(self.r_mid), x.new_tensor(float(self.r_outer)), x.new_tensor(float(self.r_inner)))
        # points already on their sphere stay bitwise unchanged (scale 1), so projecting twice changes nothing; a
        # NaN row has a NaN norm, so it stays NaN; three passes over x (this runs in every step of some attacks)
        tol = 64 * torch.finfo(x.dtype).eps * math.sqrt(self.dim) * r
        scale = torch.where((norm - r).abs() <= tol, torch.ones_like(norm), r / torch.where(norm > 0, norm, 1.0))
        e1 = torch.zeros_like(x[:1])
        e1[0, 0] = 1.0
        return torch.where(norm == 0, e1 * r, x * scale)

    def _projected_bayes_label(self, x: torch.Tensor) -> torch.Tensor:
        """``+1`` where ``||x|| >= r_mid`` (:meth:`_project` sends the row to the outer sphere), else ``-1``
        (the inner sphere, the origin included): the labels of ``bayes_label(project(x))`` from one norm, without
        the projected points (attack loops ask this every step)."""
        norm = torch.linalg.vector_norm(x, dim=1)
        return torch.where(norm >= float(self.r_mid), 1, -1).to(torch.int64)

    def bayes_classifier(self) -> Radial:
        """``sign(||x|| - (r_inner + r_outer)/2)``, i.e. the label of the projection (zero margin: +1)."""
        return Radial(self.r_mid, dim=self.dim)

    def _label_region_projection(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``R_+1 = {||z|| >= r_mid}``, ``R_-1 = {||z|| < r_mid}``: radial scaling (the origin moves along e_1)."""
        ys = torch.where(y > 0, 1.0, -1.0).to(z.dtype)
        r_mid = float(self.r_mid)
        nrm = torch.linalg.vector_norm(z, dim=1)
        e1 = torch.zeros_like(z)
        e1[:, 0] = 1.0
        direction = torch.where((nrm > 0)[:, None], z / torch.where(nrm > 0, nrm, 1.0)[:, None], e1)
        tau = rounding_margin(z, torch.full_like(nrm, r_mid))
        out_in = (ys > 0) & (nrm < r_mid + tau)
        in_out = (ys < 0) & (nrm >= r_mid - tau)
        target = torch.where(ys > 0, r_mid + tau, r_mid - tau)
        return torch.where((out_in | in_out)[:, None], direction * target[:, None], z)

    def _label_shell(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``R_+1 = {||z|| >= r_mid}``, ``R_-1 = {||z|| <= r_mid}``, each ``tau`` (the rounding margin of
        :meth:`_label_region_projection`) inside."""
        r_mid = float(self.r_mid)
        tau = float(rounding_margin(z, torch.tensor(r_mid, dtype=z.dtype)))
        pos = y > 0
        lo = torch.where(pos, r_mid + tau, 0.0).to(z.dtype)
        hi = torch.where(pos, torch.inf, r_mid - tau).to(z.dtype)
        return lo, hi

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """``(r2 - r1)/2`` in L2 and L1, ``(r2 - r1)/(2 sqrt(k))`` in Linf on ``k`` coordinates (the diagonal
        direction reaches furthest)."""
        probe = L2(0, coords=coords)
        n = self.dim
        k = probe.n_free(n)
        half_gap = (self.r_outer - self.r_inner) / 2
        if p == math.inf:
            return half_gap / (sympy.sqrt(k) if is_symbolic(k) else math.sqrt(k))
        return half_gap

    def named_classifiers(self) -> dict[str, Radial]:
        """``bayes`` and ``maxmargin``: both the middle sphere ``Radial(r_mid)``."""
        return {"bayes": self.bayes_classifier(), "maxmargin": Radial(self.r_mid, dim=self.dim)}

    @classmethod
    def strategy(cls, max_dim: int = 50) -> Any:
        """Concentric spheres with 2 <= dim <= max_dim and 0 < r_inner < r_outer.

        Refines the default, which would draw the radii independently: ``r_outer = ratio * r_inner`` with the
        ratio in [1.05, 3] keeps the shells apart; ``dim`` comes from its constraint (``max_dim`` caps it).
        """
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        dim = cls.param_strategies(max_dim=max_dim)["dim"]

        @st.composite
        def build(draw):
            r_inner = draw(st.floats(0.1, 3.0))
            ratio = draw(st.floats(1.05, 3.0))
            return cls(draw(dim), r_inner, r_inner * ratio)

        return build()

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        sp = cls(500, 1.0, 1.3)
        e1 = [1.0] + [0.0] * 499
        return [ExampleSet("spheres D=500", sp,
                           (("bayes radial 1.15", sp.bayes_classifier()), ("radial 1.05", Radial(1.05)),
                            ("linear cap x1 >= 0.05", Linear(e1, -0.05)),
                            ("quadratic", Quadratic([1.0 / 1.3**2 * 1.02] * 250 + [0.98] * 250, 1.0))),
                           (L2(0.1), Linf(0.005)), skip_quick=("projection",))]
