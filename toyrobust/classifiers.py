"""Classifiers: binary ones with labels -1/+1 (linear, radial, quadratic, torch modules with one or two logits) and
K-class torch modules with K logits and labels 0..K-1.

Every binary classifier gives a real ``margin(x)`` on an (N, d) tensor, positive meaning label +1; ``predict`` is
its sign with a zero margin sent to +1 (the tie rule shared with the support projections of
:mod:`toyrobust.distributions`). Analytic classifiers also give ``margin_expr(x)``, the same margin as a sympy
expression of a symbolic point.

A K-class classifier (``n_classes = K``) gives ``scores(x)`` of shape (N, K) instead, ``predict`` is their argmax
(ties to the lower label), and the margin of a label ``y`` is ``scores_y - max_{j != y} scores_j``
(:func:`label_margin`; for a binary classifier it is ``y * margin``). :func:`check_labels` is the one label check
every entry point runs: -1/+1 for a binary classifier, 0..K-1 for a K-class one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import sympy
import torch

from .blocks import Blocks, as_blocks, point_symbols
from .constraints import check, is_symbolic, real

__all__ = ["Classifier", "Linear", "Radial", "Quadratic", "TorchClassifier", "as_classifier", "labels_from_margin",
           "margin_from_logits", "RotatedQuadratic", "input_dim", "check_input_dim", "labels_from_scores",
           "label_margin", "check_labels", "classes_of", "label_set", "eval_mode"]


def labels_from_margin(margin: torch.Tensor) -> torch.Tensor:
    """Labels -1/+1 (int64) from margins; a zero margin gives +1."""
    return torch.where(margin >= 0, 1, -1).to(torch.int64)


def labels_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """Labels (int64) from a classifier's scores: -1/+1 from margins of shape (N,) (a zero margin gives +1), or the
    argmax 0..K-1 of K-class scores of shape (N, K) (ties to the lower label)."""
    if scores.ndim == 2:
        return scores.argmax(dim=1)
    return labels_from_margin(scores)


def label_margin(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The margin of the labels ``y``, positive where the classifier predicts ``y``: ``y * m`` for binary margins
    ``m`` of shape (N,) (``y`` in -1/+1), ``s_y - max_{j != y} s_j`` for K-class scores ``s`` of shape (N, K)
    (``y`` in 0..K-1; Carlini & Wagner's logit margin).

    Args:
        scores: (N,) margins or (N, K) scores (differentiable).
        y: (N,) labels.

    Returns:
        (N,) margins in the dtype of ``scores``.
    """
    if scores.ndim == 1:
        return y.to(scores.dtype) * scores
    y = y.to(torch.int64)
    own = scores.gather(1, y[:, None])[:, 0]
    others = scores.scatter(1, y[:, None], -torch.inf)
    return own - others.amax(dim=1)


def _allowed_labels(classes: int | None) -> str:
    if classes is None:
        return ("-1 and +1 (a binary classifier: one logit, two logits or an analytic classifier; a classifier with "
                "K logits takes labels 0..K-1)")
    return f"0..{classes - 1} (a classifier with {classes} classes)"


def check_labels(y: Any, n: int, classes: int | None, *, name: str = "y", device: Any = None) -> torch.Tensor:
    """The one label check of every entry point: ``y`` of shape (n,) holding -1/+1 when ``classes`` is None (a
    binary classifier), or integers 0..classes-1 (a K-class classifier).

    Args:
        y: labels (tensor, array or sequence; any numeric dtype holding whole numbers).
        n: the number of points they label.
        classes: None (binary) or the number of classes K.
        name: the parameter's name in messages.
        device: where the returned labels live (default: where ``y`` is).

    Returns:
        ``y`` as an int64 tensor.

    Raises:
        ValueError: wrong shape, or a value outside the allowed labels (the message names ``name``, the first bad
            value, its index and the allowed labels); TypeError: boolean or non-numeric labels.
    """
    if not isinstance(y, torch.Tensor):
        try:
            y = torch.as_tensor(y, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor of labels of shape ({n},), got {type(y).__name__}") from None
    elif device is not None:
        y = y.to(device)
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must hold numeric labels {_allowed_labels(classes)}, got dtype {y.dtype}")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match x, got {tuple(y.shape)}")
    if n == 0:
        return y.to(torch.int64)
    ok = (y == 1) | (y == -1) if classes is None else (y >= 0) & (y < classes) & (y == torch.round(y))
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        value = y[i].item()
        value = int(value) if float(value).is_integer() else value
        raise ValueError(f"{name} must hold the labels {_allowed_labels(classes)}, got {value!r} at index {i}")
    return y.to(torch.int64)


def label_set(classes: int | None) -> str:
    """The labels of a classifier or distribution in words: ``"-1/+1"`` or ``"0..K-1"``."""
    return "-1/+1" if classes is None else f"0..{classes - 1}"


@contextlib.contextmanager
def eval_mode(clf: Any) -> Iterator[None]:
    """Put a wrapped torch module (and each submodule) in eval mode, and restore every submodule's mode after.

    Attacks then see the deterministic model (no dropout, batch-norm running statistics) without the side
    effect of leaving the caller's model switched (PITFALLS 7).
    """
    module = clf.module if isinstance(clf, TorchClassifier) else clf
    if not isinstance(module, torch.nn.Module):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield
    finally:
        for m, training in modes:
            m.training = training


def _check_batch(x: torch.Tensor, dim: Any, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got shape {tuple(x.shape)}")
    if dim is not None and not is_symbolic(dim) and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns for this classifier, got shape {tuple(x.shape)}")


class Classifier:
    """Base class: subclasses implement ``margin`` (and ``margin_expr`` when a closed form exists).

    Randomized classifiers (e.g. a defense that adds noise) set ``randomized = True`` and implement
    :meth:`sample_margin`, which takes an explicit generator: callers that need reproducible randomness (the Monte
    Carlo engine, EOT attacks) pass one, and nothing touches the global RNG. For a deterministic classifier
    ``sample_margin`` is ``margin``.
    """

    #: input dimension (int, sympy expression, or None when any dimension is accepted)
    dim: Any = None
    #: whether ``margin`` depends on randomness (then use ``sample_margin`` with an explicit generator)
    randomized: bool = False
    #: None for a binary classifier (labels -1/+1, ``margin``), K for a K-class one (labels 0..K-1, ``scores``)
    n_classes: int | None = None

    def sample_margin(self, x: torch.Tensor, generator: Any = None) -> torch.Tensor:
        """One draw of the margin, shape (N,), with the classifier's randomness taken from ``generator`` (a
        ``torch.Generator`` or an int seed; None: a fresh OS-seeded generator). Deterministic classifiers ignore
        it."""
        if self.randomized:
            raise NotImplementedError(f"{type(self).__name__} is randomized but does not implement sample_margin")
        return self.margin(x)
    #: whether ``margin_expr`` accepts an IndexedBase point (then large dimensions print as sums over blocks)
    indexed_point: bool = False

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """Real score of shape (N,); positive means +1. Differentiable in ``x``."""
        raise NotImplementedError

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """What attacks differentiate: the margin (N,) of a binary classifier, the K scores (N, K) of a K-class
        one (its labels are their argmax)."""
        return self.margin(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels (int64, shape (N,)): -1/+1 with a zero margin giving +1, or 0..K-1 for a K-class classifier."""
        with torch.no_grad():
            return labels_from_scores(self.scores(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        """The margin as a sympy expression of the point ``x`` (default: symbols ``x_1..x_d``)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form margin")

    def rule(self, x: Any = None) -> sympy.Expr:
        """The decision rule ``margin(x) >= 0`` (label +1) as a sympy relational."""
        return sympy.Ge(self.margin_expr(x), 0)

    def _point(self, x: Any) -> Any:
        if x is None:
            if self.dim is None:
                raise ValueError("this classifier accepts any dimension: pass a symbolic point x")
            return point_symbols(self.dim) if self.indexed_point else point_symbols(self.dim, max_expanded=10**9)
        return x


class Linear(Classifier):
    """The linear classifier ``sign(<w, x> + b)``.

    In one dimension it is a threshold: ``Linear([-1.0], t)`` says +1 for ``x <= t`` (``x < t`` strictly, with
    the tie at ``x = t`` going to +1). ``w`` may be a sequence, array, tensor, or :class:`Blocks` (entries may be
    sympy expressions and the dimension may be symbolic).

    Args:
        w: weights, shape (d,).
        b: bias (number or sympy expression).
    """

    indexed_point = True

    def __init__(self, w: Any, b: Any = 0.0):
        self.w: Blocks = as_blocks(w, "w")
        self.b = check("b", b, real)
        self.dim = self.w.dim

    def __repr__(self) -> str:
        return f"Linear(w={self.w}, b={self.b})"

    def _wb(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.w.is_numeric or is_symbolic(self.b):
            raise TypeError("a classifier with symbolic parameters has no numeric margin; substitute numbers")
        return self.w.to_tensor(x.device, x.dtype), torch.as_tensor(float(self.b), dtype=x.dtype, device=x.device)

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, self.dim)
        w, b = self._wb(x)
        return x @ w + b

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels -1/+1 (int64, shape (N,)): the sign of the *real* number ``<w, x> + b``, a zero giving +1.

        The floating-point margin ``x @ w + b`` rounds a real margin of exactly 0 (a tie, common on lattices such
        as the Bernoulli model's vertices with weights like 0.1) to 0 or to an ulp either way, depending on the
        order of the sum: the same lattice level would get both labels. So the rows whose float margin lies within
        its rounding bound ``(d + 4) eps_dtype (||x||_inf ||w||_1 + |b|)`` of 0 are decided in rational arithmetic
        from the weights and bias as stored (floats exactly, sympy rationals exactly) and the point as given. The
        closed forms on lattices (:mod:`toyrobust.risks.bernoulli`) and the exact attacks use this same meaning.
        Parameters that are not rational numbers (a sympy ``sqrt(2)``) keep the float decision.
        """
        with torch.no_grad():
            m = self.margin(x)
            labels = labels_from_margin(m)
            exact = self._exact_parameters()
            if exact is None or x.shape[0] == 0:
                return labels
            w_l1 = float(sum(abs(v) for v in exact[0]))
            rows = _near_zero(m, x, w_l1, abs(float(self.b)))
            if rows.numel() and x.dtype != torch.float64:
                # float32 points are exact in float64, and so are the stored weights: a float64 margin has a
                # rounding bound 2^29 times smaller, so only true ties (and margins within it) stay undecided
                x64 = x[rows].detach().to(torch.float64)
                m64 = x64 @ self.w.to_tensor(x.device, torch.float64) + float(self.b)
                labels = labels.clone()
                labels[rows] = labels_from_margin(m64)
                rows = rows[_near_zero(m64, x64, w_l1, abs(float(self.b)))]
            if not rows.numel():
                return labels
            x_np = x[rows].detach().to("cpu", torch.float64).numpy()  # float32 -> float64 is exact
            cols, ws, b = exact[1], exact[0], exact[2]
            signs = _exact_signs_fsum(x_np[:, cols], ws, b)
            if signs is None:  # parameters that are not doubles, or magnitudes where a product could round
                xs = x_np.tolist()
                signs = [1 if sum((ws[j] * Fraction(row[i]) for j, i in enumerate(cols)), b) >= 0 else -1
                         for row in xs]
            labels = labels.clone()
            labels[rows] = torch.tensor(signs, dtype=labels.dtype, device=labels.device)
            return labels

    def _exact_parameters(self) -> tuple[list[Fraction], list[int], Fraction] | None:
        """The non-zero weights as fractions, their columns, and the bias as a fraction (None when some parameter
        is not a rational number); cached."""
        if not hasattr(self, "_exact_cache"):
            try:
                b = _fraction(self.b)
                ws, cols, i = [], [], 0
                for v, count in self.w.blocks:
                    fv = _fraction(v)
                    if fv != 0:
                        ws += [fv] * int(count)
                        cols += list(range(i, i + int(count)))
                    i += int(count)
                self._exact_cache = (ws, cols, b)
            except (TypeError, ValueError):
                self._exact_cache = None
        return self._exact_cache

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        return self.w.dot_expr(self._point(x)) + self.b


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitting constant for doubles


def _exact_signs_fsum(x: np.ndarray, ws: list[Fraction], b: Fraction) -> list[int] | None:
    """Signs (+1 for >= 0) of the real numbers ``x_i . w + b``, without fractions; None where it cannot.

    Each product of two doubles is split exactly into ``p + e`` (Dekker's TwoProduct with Veltkamp's splitting:
    exact when nothing overflows or underflows, which the magnitude window below guarantees), and ``math.fsum`` of
    all ``p``, ``e`` and ``b`` is the correctly rounded sum of those exact terms (Shewchuk), so its sign is the real
    sign, and it is 0 only for a true tie. Needs weights and bias that are doubles exactly.

    Args:
        x: (k, d) float64 points (the columns of the non-zero weights).
        ws: the d weights as fractions; b: the bias as a fraction.
    """
    w = np.array([float(v) for v in ws], dtype=np.float64)
    if any(Fraction(float(v)) != v for v in ws) or Fraction(float(b)) != b:
        return None
    nonzero = np.concatenate([np.abs(x[x != 0]), np.abs(w[w != 0])])
    if nonzero.size and (nonzero.max() > 2.0**200 or nonzero.min() < 2.0**-200):
        return None  # keep every product and its error term far from overflow and underflow
    p = x * w
    xh = _SPLIT * x
    xh = xh - (xh - x)
    xl = x - xh
    wh = _SPLIT * w
    wh = wh - (wh - w)
    wl = w - wh
    e = ((xh * wh - p) + xh * wl + xl * wh) + xl * wl  # p + e == x * w exactly
    terms = np.concatenate([p, e], axis=1).tolist()
    fb = float(b)
    return [1 if math.fsum(row + [fb]) >= 0 else -1 for row in terms]


def _near_zero(m: torch.Tensor, x: torch.Tensor, w_l1: float, b_abs: float) -> torch.Tensor:
    """Indices of the rows whose float margin ``m`` (computed as ``x @ w + b`` in x's dtype) lies within its
    rounding bound ``(d + 4) eps (||x||_inf ||w||_1 + |b|)`` of 0: only there can the sign differ from the real
    margin's (Higham's bound for a dot product, gamma_d <= (d + 4) eps for any summation order)."""
    bound = (x.shape[1] + 4) * torch.finfo(x.dtype).eps * (
        torch.linalg.vector_norm(x, ord=math.inf, dim=1) * w_l1 + b_abs)
    return (m.abs() <= bound).nonzero()[:, 0]


def _fraction(v: Any) -> Fraction:
    """``v`` as an exact fraction: a float or int exactly, a sympy rational exactly, a sympy float at its binary
    value; TypeError for anything else (an irrational or symbolic number)."""
    if isinstance(v, bool):
        raise TypeError("not a number")
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            raise ValueError("not finite")
        return Fraction(v)
    if isinstance(v, sympy.Rational):
        return Fraction(int(v.p), int(v.q))
    if isinstance(v, sympy.Float):
        return Fraction(float(v))
    raise TypeError(f"not a rational number: {v!r}")


class Radial(Classifier):
    """The radial classifier ``sign(||x||_2 - r)``: +1 outside the sphere of radius ``r``.

    Args:
        r: radius (> 0 is not required; any finite real, a symbol allowed).
        dim: optional input dimension (needed only for ``margin_expr`` without a point).
    """

    indexed_point = True

    def __init__(self, r: Any, dim: Any = None):
        self.r = check("r", r, real)
        self.dim = dim

    def __repr__(self) -> str:
        return f"Radial(r={self.r})"

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, self.dim)
        if is_symbolic(self.r):
            raise TypeError("a classifier with symbolic parameters has no numeric margin; substitute numbers")
        return torch.linalg.vector_norm(x, dim=1) - float(self.r)

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        x = self._point(x)
        if isinstance(x, sympy.IndexedBase):
            i = sympy.Dummy("i", integer=True)
            return sympy.sqrt(sympy.Sum(x[i] ** 2, (i, 1, self.dim))) - self.r
        return sympy.sqrt(sum(xi**2 for xi in x)) - self.r


class Quadratic(Classifier):
    """The quadratic classifier ``sign(sum_i alpha_i x_i^2 - c)`` (Gilmer et al. 2018, "Adversarial spheres").

    Args:
        alpha: coefficients, shape (d,) (sequence, array, tensor or :class:`Blocks`).
        c: threshold.
    """

    indexed_point = True

    def __init__(self, alpha: Any, c: Any = 1.0):
        self.alpha: Blocks = as_blocks(alpha, "alpha")
        self.c = check("c", c, real)
        self.dim = self.alpha.dim

    def __repr__(self) -> str:
        return f"Quadratic(alpha={self.alpha}, c={self.c})"

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, self.dim)
        if not self.alpha.is_numeric or is_symbolic(self.c):
            raise TypeError("a classifier with symbolic parameters has no numeric margin; substitute numbers")
        return (x * x) @ self.alpha.to_tensor(x.device, x.dtype) - float(self.c)

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        return self.alpha.square_dot_expr(self._point(x)) - self.c


class TorchClassifier(Classifier):
    """Any torch module (or callable) as a classifier.

    A module with one output (shape (N,) or (N, 1)) gives its logit as the margin; one with two outputs
    (N, 2) gives ``logit[:, 1] - logit[:, 0]``, i.e. column 1 is label +1 and column 0 is label -1. A module with
    K >= 3 outputs (N, K), or one declared K-class (``n_classes=K``, also read from the module's own
    ``n_classes`` attribute or that of a toyrobust model it wraps), is a K-class classifier: labels 0..K-1,
    ``scores`` are its logits. A module that declares nothing (and is not an ``nn.Sequential`` ending in an
    ``nn.Linear``) is run once on one row, where its number of classes is first needed.

    Args:
        module: maps (N, d) to (N,), (N, 1), (N, 2) or (N, K).
        dim: optional input dimension, checked on every call.
        n_classes: None (read from the module: its ``n_classes`` attribute, else its output's shape), or K >= 2
            to treat K outputs as K classes with labels 0..K-1 (so two logits may mean the labels 0/1).
    """

    def __init__(self, module: Any, dim: int | None = None, n_classes: int | None = None):
        if not callable(module):
            raise TypeError(f"module must be a torch.nn.Module or a callable, got {type(module).__name__}")
        if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, int)
                                      or n_classes < 2):
            raise ValueError(f"n_classes must be None or an integer >= 2, got {n_classes!r}")
        self.module = module
        self.dim = dim
        self._known, self._classes = (True, n_classes) if n_classes is not None else _declared_classes(module)

    @property
    def n_classes(self) -> int | None:  # type: ignore[override]
        """None (binary) or K; for a module that does not say, known after the first forward pass."""
        return self._classes

    @property
    def classes_known(self) -> bool:
        """Whether :attr:`n_classes` is known (declared, read from the module, or seen on a forward pass)."""
        return self._known

    def __repr__(self) -> str:
        return f"TorchClassifier({type(self.module).__name__})"

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw module output."""
        _check_batch(x, self.dim)
        return self.module(x)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        if self._known and self._classes is None:
            return margin_from_logits(out)
        if self._known or (out.ndim == 2 and out.shape[1] >= 3):
            k = self._classes if self._known else out.shape[1]
            if out.ndim != 2 or out.shape[1] != k:
                raise ValueError(f"module output must have shape (N, {k}) for a classifier with {k} classes, got "
                                 f"{tuple(out.shape)}")
            self._classes, self._known = k, True
            return out
        self._known = True
        return margin_from_logits(out)

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scores(x)
        if out.ndim == 2:
            raise ValueError(f"the module's output has {out.shape[1]} columns, i.e. {out.shape[1]} classes (labels "
                             f"0..{out.shape[1] - 1}): a K-class classifier has no binary margin; use scores(x), "
                             "predict(x) or label_margin(scores, y)")
        return out

    def classes(self, x: torch.Tensor | None = None) -> int | None:
        """None (binary) or K; a module that does not say is run once on the first row of ``x`` (in eval mode)."""
        if not self._known and x is not None and x.ndim == 2 and x.shape[0] > 0:
            with torch.no_grad(), eval_mode(self):
                self.scores(x[:1])
        return self._classes


def _declared_classes(module: Any) -> tuple[bool, int | None]:
    """``(known, K)`` without running ``module``: its own ``n_classes`` attribute, else that of the outermost
    submodule declaring one (a toyrobust model inside a wrapper), else the ``out_features`` of a final
    ``nn.Linear`` of an ``nn.Sequential`` (one or two: binary); ``(False, None)`` when nothing says."""
    holders = [module] + (list(module.modules())[1:] if isinstance(module, torch.nn.Module) else [])
    for m in holders:
        if hasattr(m, "n_classes"):
            k = m.n_classes
            if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
                raise ValueError(f"the module's n_classes must be None or an integer >= 2, got {k!r}")
            return True, k
    if isinstance(module, torch.nn.Sequential) and len(module) and isinstance(module[-1], torch.nn.Linear):
        k = module[-1].out_features
        return True, (k if k >= 3 else None)
    return False, None


def classes_of(clf: Any, x: torch.Tensor | None = None) -> int | None:
    """The number of classes K of a classifier (None: binary, labels -1/+1); a torch module that declares nothing
    is run once on the first row of ``x`` to see its output's shape."""
    if isinstance(clf, TorchClassifier):
        return clf.classes(x)
    return getattr(clf, "n_classes", None)


def margin_from_logits(out: torch.Tensor) -> torch.Tensor:
    """The margin (N,) of a one-logit output (N,) or (N, 1), or of two logits (N, 2): ``out[:, 1] - out[:, 0]``."""
    if out.ndim == 1:
        return out
    if out.ndim == 2 and out.shape[1] == 1:
        return out[:, 0]
    if out.ndim == 2 and out.shape[1] == 2:
        return out[:, 1] - out[:, 0]
    raise ValueError(f"module output must have shape (N,), (N, 1) or (N, 2), got {tuple(out.shape)}")


def as_classifier(obj: Any) -> Classifier:
    """Return ``obj`` if it is a :class:`Classifier`, wrap a torch module or callable otherwise."""
    if isinstance(obj, Classifier):
        return obj
    if isinstance(obj, torch.nn.Module) or callable(obj):
        return TorchClassifier(obj)
    raise TypeError(f"clf must be a toyrobust classifier or a torch module, got {type(obj).__name__}")


def input_dim(clf: Any) -> int | None:
    """The input dimension a classifier or torch module expects, when it says: a classifier's numeric ``dim``,
    a module's ``dim`` attribute, or the ``in_features`` of its first ``nn.Linear``; None when unknown."""
    if isinstance(clf, TorchClassifier):
        return clf.dim if isinstance(clf.dim, int) else input_dim(clf.module)
    if isinstance(clf, Classifier):
        return clf.dim if isinstance(clf.dim, int) else None
    dim = getattr(clf, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(clf, torch.nn.Module):
        for module in clf.modules():
            if isinstance(module, torch.nn.Linear):
                return module.in_features
    return None


def check_input_dim(clf: Any, dim: Any, what: str = "the data") -> None:
    """Raise ValueError naming both dimensions when ``clf`` expects inputs of another dimension than ``dim``."""
    expected = input_dim(clf)
    if expected is not None and not is_symbolic(dim) and dim is not None and int(dim) != expected:
        name = type(clf.module if isinstance(clf, TorchClassifier) else clf).__name__
        raise ValueError(f"clf ({name}) expects inputs of dimension {expected}, but {what} has dimension {dim}")


class RotatedQuadratic(Classifier):
    """The quadratic rule in rotated coordinates: ``margin(x) = quadratic.margin(x @ U)``.

    With ``quadratic = Quadratic(alpha, c)`` this is ``sum_i alpha_i (U^T x)_i^2 - c = x^T U diag(alpha) U^T x - c``.
    It is the analytic twin of a trained :class:`QuadraticNet`. On rotation-invariant problems the rotation
    changes nothing: on :class:`~toyrobust.distributions.ConcentricSpheres` (uniform on spheres) with no
    adversary or an L2 ball, every risk of this classifier equals that of ``quadratic`` (registered below, for
    all four definitions); on a :class:`~toyrobust.distributions.GaussianMixture` ``N(y mu, sigma^2 I)`` it
    equals that of ``quadratic`` on the mixture with mean ``U^T mu``. Linf and L1 balls are not rotation
    invariant: no closed form is claimed for them.

    Args:
        quadratic: the rule in rotated coordinates.
        rotation: orthogonal matrix U of shape (d, d); column i is the direction of ``z_i``.
    """

    def __init__(self, quadratic: Quadratic, rotation: Any):
        if not isinstance(quadratic, Quadratic):
            raise TypeError(f"quadratic must be a toyrobust Quadratic, got {type(quadratic).__name__}")
        U = torch.as_tensor(rotation, dtype=torch.float64).detach().cpu()
        d = quadratic.dim
        if U.shape != (d, d):
            raise ValueError(f"rotation must have shape ({d}, {d}) to match quadratic, got {tuple(U.shape)}")
        err = float((U.T @ U - torch.eye(d, dtype=torch.float64)).abs().max())
        if err > 1e-8:
            raise ValueError(f"rotation must be orthogonal (U^T U = I), got max |U^T U - I| = {err:.3g}")
        self.quadratic = quadratic
        self.rotation = U
        self.dim = d
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"RotatedQuadratic({self.quadratic!r}, rotation=<{self.dim}x{self.dim}>)"

    def _U(self, x: torch.Tensor) -> torch.Tensor:
        key = (str(x.device), x.dtype)
        if key not in self._cache:
            self._cache[key] = self.rotation.to(device=x.device, dtype=x.dtype)
        return self._cache[key]

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_i alpha_i (x U)_i^2 - c``, shape (N,) for x of shape (N, d)."""
        _check_batch(x, self.dim)
        return self.quadratic.margin(x @ self._U(x))

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        """The margin in the original coordinates, ``sum_i alpha_i (U^T x)_i^2 - c`` (numeric U, float entries)."""
        x = sympy.Matrix(self._point(x))
        U = sympy.Matrix(self.rotation.tolist())
        return self.quadratic.margin_expr(list(U.T * x))

    def matrix(self) -> torch.Tensor:
        """``U diag(alpha) U^T`` (float64)."""
        alpha = self.quadratic.alpha.to_tensor(dtype=torch.float64)
        return self.rotation @ (alpha[:, None] * self.rotation.T)
