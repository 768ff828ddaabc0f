"""Torch models with one logit (positive means +1) and the analytic twins of the linear and quadratic ones.

* :class:`LinearModel` -- ``w.x + b``; its twin is the analytic :class:`~toyrobust.classifiers.Linear`.
* :class:`QuadraticNet` -- Gilmer et al. (2018)'s quadratic network ``w * 1^T (W x)^2 + b``; its twin is the
  rotation ``z = U^T x`` followed by the analytic :class:`~toyrobust.classifiers.Quadratic`
  ``sum_i lambda_i z_i^2 + b`` (:class:`RotatedQuadratic`).
* :class:`MLP` -- ReLU network (Gilmer et al.'s setting: 500 -> 1000 -> 1000 -> 1, optional batch norm).

Every model returns a tensor of shape (N,) for an (N, d) input, is initialised from an explicit seed (the
global RNG is never touched), and gives a :class:`~toyrobust.classifiers.TorchClassifier` through
``.classifier()``.

References:
    J. Gilmer, L. Metz, F. Faghri, S. S. Schoenholz, M. Raghu, M. Wattenberg, I. Goodfellow, "Adversarial
    spheres", ICLR Workshops 2018 (arXiv:1801.02774), section 4 and appendix.
    K. He, X. Zhang, S. Ren, J. Sun, "Delving deep into rectifiers", ICCV 2015 (the ReLU initialisation).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .classifiers import Linear, Quadratic, RotatedQuadratic, TorchClassifier
from .constraints import check, integer_at_least
from .rng import make_generator

__all__ = ["LinearModel", "QuadraticNet", "MLP", "RotatedQuadratic"]


def _check_dim(name: str, value: Any) -> int:
    return int(check(name, value, integer_at_least(1)))  # the constraint's message names the parameter


def _generator(seed: Any) -> torch.Generator:
    """A CPU generator for initialisation (weights are drawn on CPU, then moved, so a seed means the same
    weights on every device)."""
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ValueError(f"seed must be an int or a CPU torch.Generator, got a generator on {seed.device}")
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int >= 0 or a CPU torch.Generator, got {seed!r}")
    return make_generator(seed, "cpu")


def _uniform_(param: torch.Tensor, bound: float, gen: torch.Generator) -> None:
    with torch.no_grad():
        draw = torch.rand(param.shape, generator=gen, dtype=torch.float64) * (2 * bound) - bound
        param.copy_(draw.to(dtype=param.dtype, device=param.device))


def _linear(d_in: int, d_out: int, bias: bool, device: Any, dtype: Any) -> nn.Linear:
    # skip_init builds on the meta device: no default initialisation, so the global RNG is not used
    device = torch.empty(0).device if device is None else device  # torch's default device
    return torch.nn.utils.skip_init(nn.Linear, d_in, d_out, bias=bias, device=device, dtype=dtype)


class _OneLogit(nn.Module):
    """Shared helpers: input dimension, the classifier view."""

    dim: int
    #: None: one logit (labels -1/+1); K: K logits (labels 0..K-1), read by the classifier view and the attacks
    n_classes: int | None = None

    def classifier(self) -> TorchClassifier:
        """This module as a :class:`~toyrobust.classifiers.TorchClassifier` (input dimension checked)."""
        return TorchClassifier(self, dim=self.dim, n_classes=self.n_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")


class LinearModel(_OneLogit):
    """One logit ``w.x + b``: logistic regression as a torch module.

    Args:
        dim: input dimension d (int >= 1).
        bias: whether to learn ``b`` (otherwise ``b = 0``).
        init: ``"zeros"`` (the logistic loss is convex, so zero is a fine start) or ``"uniform"``
            (``U(-1/sqrt(d), 1/sqrt(d))``, torch's default scale).
        seed: int or CPU ``torch.Generator`` for ``init="uniform"``.
        device, dtype: where the parameters live (torch defaults when None).
    """

    def __init__(self, dim: int, *, bias: bool = True, init: str = "zeros", seed: Any = 0, device: Any = None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.dim = _check_dim("dim", dim)
        self.linear = _linear(self.dim, 1, bias, device, dtype)
        if init == "zeros":
            with torch.no_grad():
                for p in self.linear.parameters():
                    p.zero_()
        elif init == "uniform":
            gen = _generator(seed)
            for p in self.linear.parameters():
                _uniform_(p, 1 / math.sqrt(self.dim), gen)
        else:
            raise ValueError(f"init must be 'zeros' or 'uniform', got {init!r}")

    @classmethod
    def from_weights(cls, w: Any, b: float = 0.0, *, device: Any = None,
                     dtype: torch.dtype | None = None) -> LinearModel:
        """A model with weights ``w`` (shape (d,)) and bias ``b``; ``from_weights(*twin)`` inverts :meth:`twin`.

        ``w`` may also be a numeric :class:`~toyrobust.classifiers.Linear` (then ``b`` is taken from it).
        """
        if isinstance(w, Linear):
            w, b = w.w.to_numpy(), float(w.b)
        w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
        if w.numel() == 0 or not bool(torch.isfinite(w).all()) or not math.isfinite(float(b)):
            raise ValueError(f"w must be a non-empty vector of finite numbers and b finite, got w={w}, b={b!r}")
        model = cls(w.numel(), device=device, dtype=dtype)
        with torch.no_grad():
            model.linear.weight.copy_(w.reshape(1, -1))
            model.linear.bias.fill_(float(b))
        return model

    @property
    def weight(self) -> torch.Tensor:
        """The weights ``w``, shape (d,) (a view of the parameter)."""
        return self.linear.weight[0]

    @property
    def bias(self) -> torch.Tensor:
        """The bias ``b`` as a 0-d tensor (zero when the model has no bias)."""
        b = self.linear.bias
        return b[0] if b is not None else torch.zeros((), dtype=self.linear.weight.dtype,
                                                        device=self.linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``x @ w + b`` of shape (N,) for x of shape (N, d)."""
        return self.linear(x)[:, 0]

    def twin(self) -> Linear:
        """The analytic classifier ``Linear(w, b)`` with the current weights (float64 copies)."""
        w = self.weight.detach().to("cpu", torch.float64)
        return Linear(w, float(self.bias.detach()))


class QuadraticNet(_OneLogit):
    """Gilmer et al. (2018)'s quadratic network: one hidden layer with square activation, linear read-out.

    The paper's parametrisation (``readout="scalar"``, the default) is

        logit(x) = w * sum_j (W x)_j^2 + b,   W in R^{h x d},  w, b learned scalars,

    (no hidden bias; d*h + 2 parameters; stored as ``W`` (an ``nn.Linear`` without bias), ``a`` (= w) and
    ``b``). ``readout="vector"`` learns one read-out weight per hidden unit,
    ``logit(x) = sum_j a_j (W x)_j^2 + b``, which can also give indefinite forms. Either way
    ``logit(x) = x^T M x + b`` with ``M = W^T diag(a) W`` (``a = w 1`` for the scalar read-out), and the
    eigendecomposition ``M = U diag(lambda) U^T`` turns the network into the analytic rule
    ``sum_i lambda_i z_i^2 + b`` in the rotated coordinates ``z = U^T x`` (:meth:`twin`). Dividing by
    ``-b > 0`` gives the paper's normal form ``sum_i alpha_i z_i^2 - 1`` with ``alpha_i = -lambda_i / b``
    (:meth:`gilmer_alpha`); on the spheres of radii 1 and 1.3 the network is perfect iff every
    ``alpha_i`` lies in ``(1/1.3^2, 1)``.

    Initialisation: ``W`` entries ``N(0, 1/d)``; ``w = d / h`` so that ``w * ||W x||^2 ~ ||x||^2`` at the
    start; ``b = -b0`` with ``b0 = 1`` by default (set ``init_bias`` to the squared radius to be separated, e.g.
    ``(1 + 1.3)^2 / 4`` for the spheres, to start near the decision boundary).

    Args:
        dim: input dimension d.
        hidden: number of hidden units h (1000 in the paper, with d = 500).
        readout: ``"scalar"`` (the paper) or ``"vector"``.
        init_bias: ``b0 > 0``, the initial threshold (see above).
        seed: int or CPU ``torch.Generator`` for the initial ``W``.
        device, dtype: where the parameters live.
    """

    def __init__(self, dim: int, hidden: int = 1000, *, readout: str = "scalar", init_bias: float = 1.0,
                 seed: Any = 0, device: Any = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.dim = _check_dim("dim", dim)
        self.hidden = _check_dim("hidden", hidden)
        if readout not in ("scalar", "vector"):
            raise ValueError(f"readout must be 'scalar' or 'vector', got {readout!r}")
        if not (isinstance(init_bias, (int, float)) and math.isfinite(init_bias)):
            raise ValueError(f"init_bias must be a finite number, got {init_bias!r}")
        self.readout = readout
        self.W = _linear(self.dim, self.hidden, False, device, dtype)
        gen = _generator(seed)
        with torch.no_grad():
            draw = torch.randn(self.hidden, self.dim, generator=gen, dtype=torch.float64) / math.sqrt(self.dim)
            self.W.weight.copy_(draw.to(self.W.weight))
        factory = {"device": self.W.weight.device, "dtype": self.W.weight.dtype}
        shape = () if readout == "scalar" else (self.hidden,)
        self.a = nn.Parameter(torch.full(shape, self.dim / self.hidden, **factory))
        self.b = nn.Parameter(torch.full((), -float(init_bias), **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N,) for x of shape (N, d)."""
        h = self.W(x)
        sq = h * h
        if self.readout == "scalar":
            return self.a * sq.sum(dim=1) + self.b
        return sq @ self.a + self.b

    def matrix(self) -> torch.Tensor:
        """``M = W^T diag(a) W`` (float64, CPU), so that ``logit(x) = x^T M x + b``."""
        W = self.W.weight.detach().to("cpu", torch.float64)
        a = self.a.detach().to("cpu", torch.float64)
        a = a.expand(self.hidden) if a.ndim == 0 else a
        return W.T @ (a[:, None] * W)

    def twin(self) -> RotatedQuadratic:
        """The analytic reduction: ``RotatedQuadratic(Quadratic(lambda, c=-b), U)`` with ``M = U diag(lambda) U^T``.

        Its margin equals the network's logit at every x (up to float64 rounding of the eigendecomposition);
        eigenvalues below ``d * 2^-52 * max|lambda|`` in size (the rank deficit when h < d) are set to 0.
        """
        M = self.matrix()
        M = (M + M.T) / 2
        lam, U = torch.linalg.eigh(M)
        tol = self.dim * torch.finfo(torch.float64).eps * float(lam.abs().max())
        lam = torch.where(lam.abs() <= tol, torch.zeros_like(lam), lam)
        return RotatedQuadratic(Quadratic(lam, -float(self.b.detach())), U)

    def gilmer_alpha(self) -> torch.Tensor:
        """The paper's ``alpha_i = -lambda_i / b`` (rule ``sum_i alpha_i z_i^2 >= 1``); needs ``b < 0``."""
        b = float(self.b.detach())
        if not b < 0:
            raise ValueError(f"the normal form sum alpha_i z_i^2 - 1 needs b < 0, got b = {b!r}")
        return self.twin().quadratic.alpha.to_tensor(dtype=torch.float64) / -b


class MLP(_OneLogit):
    """A ReLU network with one logit: ``d -> hidden[0] -> ... -> hidden[-1] -> 1`` (or K logits, ``n_classes=K``).

    Gilmer et al. (2018) use two hidden layers of 1000 units with batch norm on d = 500 inputs. Each hidden
    layer is ``Linear -> [BatchNorm1d] -> ReLU``. Initialisation: He-uniform weights
    ``U(+-sqrt(6 / fan_in))`` for the hidden layers, ``U(+-1 / sqrt(fan_in))`` for the read-out, zero biases.

    Args:
        dim: input dimension d.
        hidden: widths of the hidden layers (a non-empty sequence of ints >= 1).
        batch_norm: add batch normalisation after each hidden linear layer.
        seed: int or CPU ``torch.Generator`` for the initial weights.
        device, dtype: where the parameters live.
        n_classes: None (one logit, labels -1/+1) or K >= 2: K logits, labels 0..K-1 (attacked by fgsm, pgd, apgd;
            the one-logit trainer and the verifier take binary networks only).
    """

    def __init__(self, dim: int, hidden: Any = (1000, 1000), *, batch_norm: bool = False, seed: Any = 0,
                 device: Any = None, dtype: torch.dtype | None = None, n_classes: int | None = None):
        super().__init__()
        self.dim = _check_dim("dim", dim)
        if n_classes is not None:
            n_classes = int(check("n_classes", n_classes, integer_at_least(2)))
        self.n_classes = n_classes
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            widths = tuple(hidden)
        except TypeError:
            raise TypeError(f"hidden must be a sequence of ints >= 1, got {hidden!r}") from None
        if not widths or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in widths):
            raise ValueError(f"hidden must be a non-empty sequence of ints >= 1, got {hidden!r}")
        self.hidden = widths
        self.batch_norm = bool(batch_norm)
        gen = _generator(seed)
        layers: list[nn.Module] = []
        prev = self.dim
        for width in widths:
            lin = _linear(prev, width, True, device, dtype)
            _uniform_(lin.weight, math.sqrt(6 / prev), gen)
            with torch.no_grad():
                lin.bias.zero_()
            layers.append(lin)
            if self.batch_norm:
                layers.append(nn.BatchNorm1d(width, device=device, dtype=dtype))
            layers.append(nn.ReLU())
            prev = width
        out = _linear(prev, n_classes or 1, True, device, dtype)
        _uniform_(out.weight, 1 / math.sqrt(prev), gen)
        with torch.no_grad():
            out.bias.zero_()
        layers.append(out)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N,) for x of shape (N, d) (shape (N, K) with ``n_classes=K``)."""
        out = self.net(x)
        return out[:, 0] if self.n_classes is None else out
