"""The distribution base class: parameter checks, sampling plumbing, and the posterior from the log-odds."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import sympy
import torch

from ..blocks import point_symbols
from ..classifiers import Classifier
from ..constraints import Constraint, check, is_symbolic
from ..rng import make_generator, resolve_device, resolve_dtype

__all__ = ["Distribution", "Support", "LABELS"]

#: the two labels, in the order used for class-indexed results
LABELS = (-1, 1)


@dataclass(frozen=True)
class Support:
    """The support of a distribution: a description and a membership test.

    Args:
        description: the set in words and symbols, e.g. ``"{-1, 1} x R^d"``.
        contains: maps an (N, d) tensor to a bool tensor of shape (N,) (tolerance for float rounding).
    """

    description: str
    contains: Callable[[torch.Tensor], torch.Tensor]

    def __str__(self) -> str:
        return self.description


def _check_label(y: Any) -> Any:
    if isinstance(y, torch.Tensor):
        if not bool(torch.all((y == 1) | (y == -1))):
            raise ValueError("y must contain only the labels -1 and +1")
        return y
    if y not in (-1, 1):
        raise ValueError(f"y must be -1 or +1, got {y!r}")
    return y


class Distribution:
    """A binary toy distribution with labels -1/+1 and equal priors.

    Subclasses declare ``arg_constraints`` (parameter name -> :class:`~toyrobust.constraints.Constraint`) and
    implement ``_sample``, ``log_likelihood``, ``log_odds``, their ``*_expr`` twins, ``support``, ``project``
    and ``bayes_classifier``. Parameters may be numbers or sympy expressions; numeric methods (sampling, torch
    maths) need numbers.
    """

    arg_constraints: ClassVar[dict[str, Constraint]] = {}
    #: name on the command line
    cli_name: ClassVar[str] = ""
    #: how ``project`` works, ties included (shown by ``toyrobust describe``)
    projection_rule: ClassVar[str] = ""

    def _init_params(self, **params: Any) -> None:
        self._params = {}
        for name, value in params.items():
            value = check(name, value, self.arg_constraints[name])
            setattr(self, name, value)
            self._params[name] = value

    @property
    def params(self) -> dict[str, Any]:
        """Parameter names and values."""
        return dict(self._params)

    @property
    def is_symbolic(self) -> bool:
        """True when some parameter is a sympy expression (numeric methods are then unavailable)."""
        return any(is_symbolic(v) for v in self._params.values())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    dim: Any

    # ------------------------------------------------------------------ sampling
    def sample(
        self, n: int, generator: Any = None, device: Any = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` labelled points.

        Args:
            n: number of points (int >= 0).
            generator: a ``torch.Generator`` (its device is where the draws happen), an int seed, or None.
            device: where the result lives (default: the generator's device, CPU for a seed).
            dtype: float32 or float64 (default: torch's default dtype).

        Returns:
            ``(x, y)``: x of shape (n, dim) and dtype ``dtype``, y of shape (n,) int64 in {-1, +1}.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        self._require_numeric("sample")
        dtype = resolve_dtype(dtype)
        gen_device = generator.device if isinstance(generator, torch.Generator) else (
            resolve_device(device) if device is not None else torch.device("cpu"))
        gen = make_generator(generator, gen_device)
        y = torch.randint(0, 2, (n,), generator=gen, device=gen.device) * 2 - 1
        x = self._sample(y, gen, dtype)
        target = torch.device(device) if device is not None else gen.device
        return x.to(target), y.to(target)

    def _sample(self, y: torch.Tensor, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def _require_numeric(self, what: str) -> None:
        if self.is_symbolic:
            raise TypeError(f"{what} needs numeric parameters, got {self!r}; substitute numbers first")

    # ------------------------------------------------------------------ densities
    def log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``log p(x | y)`` of shape (N,) (density w.r.t. the support's natural measure; -inf off it)."""
        raise NotImplementedError

    def log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(y=+1 | x) - log p(y=-1 | x)`` of shape (N,); NaN where both likelihoods vanish."""
        return self.log_likelihood(x, 1) - self.log_likelihood(x, -1)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """``p(y=+1 | x)`` of shape (N,) (equal priors): ``sigmoid(log_odds)``; NaN off the support."""
        return torch.sigmoid(self.log_odds(x))

    def log_likelihood_expr(self, y: int, x: Any = None) -> sympy.Expr:
        """``log p(x | y)`` as a sympy expression of a symbolic point (default: :func:`point_symbols`)."""
        raise NotImplementedError

    def log_odds_expr(self, x: Any = None) -> sympy.Expr:
        """The log-odds as a sympy expression of a symbolic point."""
        x = self._point(x)
        return self.log_likelihood_expr(1, x) - self.log_likelihood_expr(-1, x)

    def posterior_expr(self, x: Any = None) -> sympy.Expr:
        """``p(y=+1 | x) = 1 / (1 + exp(-log_odds))`` as a sympy expression."""
        return 1 / (1 + sympy.exp(-self.log_odds_expr(x)))

    def _point(self, x: Any) -> Any:
        return point_symbols(self.dim) if x is None else x

    # ------------------------------------------------------------------ geometry
    @property
    def support(self) -> Support:
        """The support of the data (both classes)."""
        raise NotImplementedError

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The orthogonal (Euclidean) projection of each row of ``x`` (N, d) onto the support."""
        raise NotImplementedError

    def bayes_classifier(self) -> Classifier:
        """The Bayes-optimal classifier (sign of the log-odds; on degenerate supports, the label of the
        projection)."""
        raise NotImplementedError

    def bayes_label(self, x: torch.Tensor) -> torch.Tensor:
        """Labels -1/+1 of the Bayes classifier at the rows of ``x``."""
        return self.bayes_classifier().predict(x)

    def describe(self) -> dict[str, str]:
        """Human-readable facts: parameters, dimension, support, projection rule, Bayes rule, log-odds."""
        clf = self.bayes_classifier()
        try:
            log_odds = str(self.log_odds_expr())
        except NotImplementedError:
            log_odds = "(degenerate: +oo on the y=+1 support, -oo on the y=-1 support)"
        return {
            "distribution": repr(self),
            "dimension": str(self.dim),
            "support": self.support.description,
            "projection": self.projection_rule,
            "log-odds": log_odds,
            "bayes rule": f"predict +1 iff {clf.rule()}",
        }

    def _check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (N, {self.dim}), got {type(x).__name__}")
        if x.ndim != 2 or (not is_symbolic(self.dim) and x.shape[1] != self.dim):
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")


def on_value(x: torch.Tensor, value: float) -> torch.Tensor:
    """Elementwise ``x == value`` up to float rounding of the dtype."""
    tol = 16 * torch.finfo(x.dtype).eps * max(1.0, abs(value))
    return (x - value).abs() <= tol


def log_sphere_area(dim: Any, r: Any) -> Any:
    """``log`` of the surface area of the sphere of radius ``r`` in R^dim: ``log(2 pi^(D/2) r^(D-1) / Gamma(D/2))``."""
    if is_symbolic(dim) or is_symbolic(r):
        return sympy.log(2) + dim / 2 * sympy.log(sympy.pi) - sympy.loggamma(sympy.Rational(1, 2) * dim) \
            + (dim - 1) * sympy.log(r)
    return math.log(2) + dim / 2 * math.log(math.pi) - math.lgamma(dim / 2) + (dim - 1) * math.log(r)
