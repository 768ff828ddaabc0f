"""The Bernoulli (hypercube) model of Schmidt et al. 2018, "Adversarially robust generalization requires more data".

``y`` is uniform in {-1, +1} and, independently for each coordinate, ``x_i = y theta_i`` with probability
``(1 + tau) / 2`` and ``-y theta_i`` otherwise, for a fixed sign vector ``theta`` in {-1, +1}^d. The data live on
the vertices of the hypercube; the log-odds are linear, ``log((1 + tau)/(1 - tau)) <theta, x>``, so the Bayes
classifier is ``sign(<theta, x>)`` (a tie, possible for even d, predicts +1 like every zero margin here).
"""

from __future__ import annotations

import math
from typing import Any

import sympy
import torch
from sympy.core.logic import fuzzy_and

from ..blocks import Blocks, as_blocks
from ..classifiers import Linear
from ..constraints import Constraint, integer_at_least, is_symbolic
from ..rng import Draws
from ..threats import L1, L2, Linf
from .base import Distribution, ExampleSet, Support, on_value

__all__ = ["BernoulliModel"]

#: tau in (0, 1]: tau = 1 is the noiseless model x = y theta
unit_interval_left_open = Constraint(
    "a number in the half-open interval (0, 1]",
    lambda v: (0 < v) & (v <= 1),  # elementwise: arrays are checked at once
    lambda e: fuzzy_and([e.is_positive, (1 - e).is_nonnegative]),
    (0.05, 0.95),
)


def _log(v: Any) -> Any:
    return sympy.log(v) if is_symbolic(v) else math.log(v)


class BernoulliModel(Distribution):
    """Schmidt et al.'s Bernoulli model on the hypercube {-1, +1}^d.

    ``P(x_i = y theta_i) = (1 + tau)/2`` independently per coordinate. The projection onto the support is the
    coordinatewise sign (0 goes to +1), and the Bayes label of a vertex ``v`` is ``sign(<theta, v>)``.

    Reference: L. Schmidt, S. Santurkar, D. Tsipras, K. Talwar, A. Madry, "Adversarially robust generalization
    requires more data", NeurIPS 2018, Section 2.2 (Bernoulli model).

    Args:
        d: dimension (integer >= 1, or a sympy symbol when ``theta`` is left at its default).
        tau: the correlation of each coordinate with the label, in (0, 1].
        theta: the sign vector in {-1, +1}^d (sequence, array, tensor or Blocks); all ones by default.
    """

    arg_constraints = {"d": integer_at_least(1, typical_high=40), "tau": unit_interval_left_open}
    cli_name = "bernoulli"
    cli_order = 4
    projection_rule = "x_i -> sign(x_i) for every coordinate, with 0 -> +1"
    # a vertex coordinate keeps its sign until it has moved by 1: below that the projection is the clean vertex
    projection_fixed_below = 1
    # the vertices {-1, 1}^d and the coordinatewise sign read no parameter
    symbolic_ok = frozenset({"project", "support.contains"})

    def __init__(self, d: Any = 101, tau: Any = 0.2, theta: Any = None):
        self._init_params(d=d, tau=tau)
        if theta is None:
            self.theta = Blocks([(1, self.d)])
        else:
            self.theta = as_blocks(theta, "theta")
            if any(is_symbolic(v) or v not in (-1, 1) for v, _ in self.theta.blocks):
                raise ValueError(f"theta must have entries -1 or +1 only, got {theta!r}")
            if self.theta.dim != self.d:
                raise ValueError(f"theta must have length d = {self.d}, got length {self.theta.dim}")
        self._params = {"d": self.d, "tau": self.tau, "theta": self.theta}
        self.dim = self.d

    @property
    def q(self) -> Any:
        """``(1 + tau)/2``: the probability that a coordinate agrees with ``y theta_i``."""
        return (1 + self.tau) / 2

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        theta = self.theta.to_tensor(y.device, dtype)
        agree = draws.uniform(self.d, torch.float64) < float(self.q)
        sign = torch.where(agree, 1.0, -1.0).to(dtype)
        return sign.mul_(y.to(dtype)[:, None]).mul_(theta[None, :])

    def _on_support(self, x: torch.Tensor) -> torch.Tensor:
        return (on_value(x, 1.0) | on_value(x, -1.0)).all(dim=1)

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``k log q + (d - k) log(1 - q)`` with ``k`` the coordinates equal to ``y theta_i`` (counting measure);
        -inf off the vertices."""
        y = torch.as_tensor(y, device=x.device, dtype=x.dtype)
        theta = self.theta.to_tensor(x.device, x.dtype)
        target = (y.reshape(-1, 1) if y.ndim else y) * theta
        agree = (torch.sign(x) == target).sum(dim=1).to(x.dtype)
        q = float(self.q)
        log_1mq = math.log1p(-q) if q < 1 else -math.inf
        value = torch.where(agree == self.d, agree * math.log(q),
                            agree * math.log(q) + (self.d - agree) * log_1mq)
        return torch.where(self._on_support(x), value, -torch.inf)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``log((1 + tau)/(1 - tau)) <theta, x>`` on the vertices (+-inf for tau = 1), NaN elsewhere."""
        s = x @ self.theta.to_tensor(x.device, x.dtype)
        if float(self.tau) == 1:
            value = torch.where(s > 0, torch.inf, torch.where(s < 0, -torch.inf, torch.nan)).to(x.dtype)
        else:
            value = s * math.log(float(self.q) / (1 - float(self.q)))
        return torch.where(self._on_support(x), value, torch.nan)

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        """``sum_i [(1 + y theta_i x_i)/2 log q + (1 - y theta_i x_i)/2 log(1 - q)]`` for ``x`` in {-1, 1}^d."""
        agreement = y * self.theta.dot_expr(x)  # sum_i y theta_i x_i = 2 k - d on the vertices
        return (self.d + agreement) / 2 * sympy.log(self.q) + (self.d - agreement) / 2 * sympy.log(1 - self.q)

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        return self.bayes_classifier().margin_expr(x)

    def _support(self) -> Support:
        return Support(f"{{-1, 1}}^{self.d}", self._on_support)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinatewise sign, 0 -> +1 (NaN stays NaN)."""
        return torch.where(x >= 0, 1.0, torch.where(x < 0, -1.0, x)).to(x.dtype)

    def bayes_classifier(self) -> Linear:
        """``sign(log((1+tau)/(1-tau)) <theta, x>)``: the log-odds as a linear classifier (``sign(<theta, x>)`` for
        tau = 1, where the log-odds are infinite)."""
        if not is_symbolic(self.tau) and float(self.tau) == 1:
            return Linear(self.theta, 0)
        return Linear(self.theta * _log(self.q / (1 - self.q)), 0)

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """1 in every norm: a coordinate keeps its sign until it has moved by 1 (and reaching 0 rounds to +1,
        which flips the Bayes label of some vertex next to the boundary); infinite when nothing is perturbed."""
        probe = L2(0, coords=coords)
        k = probe.n_free(self.d)
        return math.inf if sympy.Eq(k, 0) is sympy.true else 1

    @classmethod
    def strategy(cls, **overrides: Any) -> Any:
        """Bernoulli models with d and tau from their constraints (1 <= d <= 40, tau in [0.05, 0.95]; ``max_d=k``
        and the other :meth:`param_strategies` arguments change them) and theta all ones or a random sign vector.

        Refines the default only by theta, a vector whose length depends on d.
        """
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        params = cls.param_strategies(**overrides)

        @st.composite
        def build(draw):
            d = draw(params["d"])
            tau = draw(params["tau"])
            theta = draw(st.one_of(st.none(), st.lists(st.sampled_from([-1, 1]), min_size=d, max_size=d)))
            return cls(d, tau, theta)

        return build()

    #: constructor arguments that must work, and ones that must fail naming the parameter (completeness tests)
    valid_params = (dict(), dict(d=1, tau=1.0), dict(d=4, tau=0.5, theta=[1, -1, -1, 1]),
                    dict(d=sympy.Symbol("d", integer=True, positive=True), tau=sympy.Symbol("tau", positive=True)))
    invalid_params = ((dict(d=0), "d"), (dict(d=2.5), "d"), (dict(tau=0.0), "tau"), (dict(tau=1.5), "tau"),
                      (dict(tau=math.nan), "tau"), (dict(d=3, theta=[1, 0, 1]), "theta"),
                      (dict(d=3, theta=[1, 1]), "theta"), (dict(tau="0.2"), "tau"))

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        d = 25 if quick else 101
        bm = cls(d, 0.2)
        ones = [1.0] * d
        return [ExampleSet(f"bernoulli d={d} tau=0.2", bm,
                           (("bayes", bm.bayes_classifier()), ("parallel, bias 2", Linear(ones, 2.0))),
                           (Linf(0.1), L2(0.5), L1(0.9)))]
