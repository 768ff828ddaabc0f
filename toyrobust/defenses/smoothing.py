"""Randomized smoothing (Cohen, Rosenfeld and Kolter 2019): a certified L2 defense, and its exact linear limit.

The smoothed classifier of a base classifier ``f`` (labels -1/+1) at noise level ``sigma`` is

    g(x) = argmax_c P[f(x + z) = c],    z ~ N(0, sigma^2 I),

and if ``p_A = P[f(x + z) = c_A] > 1/2`` then ``g(x + delta) = c_A`` for every ``||delta||_2 < R`` with
``R = sigma Phi^{-1}(p_A)`` (Cohen et al., Theorem 1; for two classes ``p_B = 1 - p_A``). ``p_A`` is unknown, so
:meth:`RandomizedSmoothing.certify` replaces it by an exact one-sided lower confidence bound from Monte Carlo
draws, and :meth:`RandomizedSmoothing.predict` returns ``g(x)`` only when a binomial test says the vote is
significant. Both abstain (label 0) otherwise; the abstention is never turned into a class.

For a linear base ``f(x) = sign(w.x + b)`` everything is exact: ``w.(x + z) + b ~ N(m, sigma^2 ||w||^2)`` with
``m = w.x + b``, so ``p_A = Phi(|m| / (sigma ||w||))``, the smoothed classifier is ``f`` itself (abstaining on the
hyperplane) and ``R = |m| / ||w||_2``, the distance to the hyperplane, for every ``sigma``
(:func:`exact_linear_radius`). The certified accuracy of that limit on a distribution is then one minus the L2
ball adversarial risk of ``f`` (:func:`linear_certified_accuracy`), which can never beat one minus the optimal
adversarial risk (:func:`certified_accuracy_curves`).

References:
    J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized smoothing", ICML 2019
    (PREDICT and CERTIFY, Section 3.2 and Algorithm/Pseudocode; reference code ``core.py``).
    M. Lecuyer, V. Atlidakis, R. Geambasu, D. Hsu, S. Jana, "Certified robustness to adversarial examples with
    differential privacy", IEEE S&P 2019.
    EPFL CS-433 lecture notes "Adversarial ML" (seed 003): randomized smoothing and its robustness radius.
    C. J. Clopper, E. S. Pearson, Biometrika 26(4), 1934 (the exact binomial bound).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special
import scipy.stats
import torch
from torch import nn

from ..attacks.losses import eval_mode
from ..bounds import optimal_risk
from ..classifiers import Classifier, Linear, TorchClassifier, as_classifier, margin_from_logits
from ..constraints import check_int, check_open_unit_float, check_positive_float, is_symbolic
from ..risks import risk
from ..rng import make_generator
from ..threats import L2
from ..training import TrainResult, train

__all__ = ["RandomizedSmoothing", "certified_accuracy", "certified_accuracy_curves", "exact_linear_radius",
           "linear_certified_accuracy", "train_with_noise", "CertifiedCurves", "DEFAULT_BATCH_SIZE"]

#: noisy rows per base-model call unless ``batch_size`` is given
DEFAULT_BATCH_SIZE = 8192

#: an atom of the margin smaller than this is treated as absent by :func:`linear_certified_accuracy`
_ATOM_TOL = 1e-9


# ---------------------------------------------------------------------------------------------------- statistics
@functools.lru_cache(maxsize=256)
def _predict_threshold(n: int, alpha: float) -> int:
    """Smallest top-class count ``k`` with ``binomtest(k, n, 1/2).pvalue <= alpha`` (``n + 1`` if none).

    The two-sided p-value at ``p = 1/2`` is ``P[X >= k] + P[X <= n - k]`` for ``k > n/2``, decreasing in ``k``,
    so a bisection over ``k`` with ``scipy.stats.binomtest`` itself gives PREDICT's decision for every count
    at the price of ``O(log n)`` tests (each test costs about a millisecond; 10^4 points would take seconds).
    """
    def significant(k: int) -> bool:
        return scipy.stats.binomtest(k, n, 0.5).pvalue <= alpha

    lo, hi = (n + 1) // 2, n  # a count below n/2 is not the top class; at n/2 (a tie) the p-value is 1
    if not significant(hi):
        return n + 1
    while lo < hi:  # invariant: significant(hi), and every k < lo is not
        mid = (lo + hi) // 2
        if significant(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _lower_bound(k: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided exact (Clopper-Pearson) lower bound ``p_lo`` on a binomial proportion, and ``1 - p_lo``.

    ``P[Bin(n, p_lo) >= k] = alpha``, i.e. ``p_lo = I^{-1}_alpha(k, n - k + 1)`` (``p_lo = 0`` at ``k = 0``, where
    the beta quantile is undefined, and ``p_lo = alpha^(1/n)`` at ``k = n``). It is Cohen et al.'s
    ``proportion_confint(k, n, alpha=2*alpha, method="beta")[0]``. The complement ``1 - p_lo`` comes from the
    complemented inverse (``I_{1-x}(b, a) = 1 - I_x(a, b)``), so the radius ``Phi^{-1}(p_lo) = -Phi^{-1}(1 - p_lo)``
    keeps full precision when ``p_lo`` is within rounding of 1.
    """
    k = np.asarray(k, dtype=np.int64)
    kf = k.astype(np.float64)
    pos = k > 0
    a = np.where(pos, kf, 1.0)  # placeholders where k = 0 (overwritten below) keep scipy away from a = 0
    b = n - kf + 1.0
    low = np.where(pos, scipy.special.betaincinv(a, b, alpha), 0.0)
    comp = np.where(pos, scipy.special.betainccinv(b, a, alpha), 1.0)
    return low, comp


# ---------------------------------------------------------------------------------------------------- smoothing
class RandomizedSmoothing:
    """The Gaussian-smoothed classifier ``g(x) = argmax_c P[f(x + z) = c]``, ``z ~ N(0, sigma^2 I)``.

    Binary labels -1/+1: ``f(x + z) = +1`` where the base margin is ``>= 0`` (the toolkit's tie rule). Noise is
    drawn on the base model's device (the device of its first parameter or buffer; the input's device for an
    analytic classifier) from an explicit generator, in chunks of ``batch_size`` rows, and the votes are
    accumulated there as integers; the base module is put in eval mode and every submodule's mode is restored
    afterwards. The points are cast to the base module's floating dtype (the dtype it computes in; radii are
    float64 whatever it is). Results are reproducible for the same generator seed, ``batch_size``, device and
    dtype.

    Args:
        base: a toyrobust :class:`~toyrobust.classifiers.Classifier`, or a torch module (or callable) mapping
            (N, d) to one logit (N,) / (N, 1) (positive means +1) or two logits (N, 2) (column 1 is +1).
        sigma: noise standard deviation, a finite number > 0.

    References:
        Cohen, Rosenfeld and Kolter, ICML 2019; seed 003 (randomized smoothing).
    """

    def __init__(self, base: Any, sigma: float):
        self.sigma = check_positive_float("sigma", sigma)
        if isinstance(base, RandomizedSmoothing):
            raise TypeError("base must be a base classifier, got a RandomizedSmoothing (smoothing twice is not "
                            "supported)")
        try:
            self._clf: Classifier = as_classifier(base)
        except TypeError as err:
            raise TypeError(f"base must be a toyrobust classifier or a torch module, got {type(base).__name__}") \
                from err
        self.base = base

    def __repr__(self) -> str:
        return f"RandomizedSmoothing({self._clf!r}, sigma={self.sigma})"

    # ------------------------------------------------------------------ internals
    @property
    def _module(self) -> nn.Module | None:
        module = self._clf.module if isinstance(self._clf, TorchClassifier) else None
        return module if isinstance(module, nn.Module) else None

    def _placement(self, x: torch.Tensor) -> tuple[torch.device, torch.dtype]:
        """Device and dtype of the noisy inputs: the base module's, else the input's (float default)."""
        module = self._module
        if module is not None:
            for t in (*module.parameters(), *module.buffers()):
                dtype = t.dtype if t.is_floating_point() else None
                return t.device, dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype())
        return x.device, x.dtype if x.is_floating_point() else torch.get_default_dtype()

    def _margin(self, rows: torch.Tensor) -> torch.Tensor:
        if isinstance(self._clf, TorchClassifier):
            out = self._clf.module(rows)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"base must return a torch.Tensor of logits, got {type(out).__name__}")
            try:
                margin = margin_from_logits(out)
            except ValueError:
                raise ValueError(
                    f"base must output one logit, shape (N,) or (N, 1), or two logits, shape (N, 2), for N = "
                    f"{rows.shape[0]} inputs; got shape {tuple(out.shape)} (a multi-class model is not a binary "
                    f"-1/+1 classifier)") from None
        else:
            margin = self._clf.margin(rows)
        if margin.shape != (rows.shape[0],):
            raise ValueError(f"base must return one margin per input, shape ({rows.shape[0]},); got shape "
                             f"{tuple(margin.shape)}")
        return margin

    def _prepare(self, x: Any, batch_size: Any) -> tuple[torch.Tensor, int]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, d) (one point per row), got shape {tuple(x.shape)}")
        batch_size = check_int("batch_size", batch_size, 1, what="noisy rows per base-model call")
        device, dtype = self._placement(x)
        dim = self._clf.dim if self._clf.dim is not None else getattr(self._module, "dim", None)
        if isinstance(dim, int) and not is_symbolic(dim) and x.shape[1] != dim:
            raise ValueError(f"x must have {dim} columns for this base classifier, got shape {tuple(x.shape)}")
        x = x.detach().to(device=device, dtype=dtype)
        if x.shape[0] and not bool(torch.isfinite(x).all()):
            raise ValueError("x must be finite (it contains NaN or infinite entries)")
        if x.shape[0]:
            with torch.no_grad(), eval_mode(self._clf):  # probe one row: a wrong input or output shape fails here
                try:
                    self._margin(x[:1])
                except RuntimeError as err:
                    raise ValueError(f"x of shape {tuple(x.shape)} does not fit the base model: {err}") from err
        return x, batch_size

    def _generator(self, generator: Any, device: torch.device) -> torch.Generator:
        gen = make_generator(generator, device)
        if gen.device.type != device.type or (device.index is not None and gen.device.index not in (None,
                                                                                                    device.index)):
            raise ValueError(f"generator must live on the base model's device {device}, got a generator on "
                             f"{gen.device}")
        return gen

    @torch.no_grad()
    def _count_plus(self, x: torch.Tensor, num: int, gen: torch.Generator, batch_size: int) -> torch.Tensor:
        """Votes for +1 among ``num`` noisy copies of each row of ``x``: int64 tensor (N,) on ``x``'s device.

        Whole points are packed into a chunk when ``num <= batch_size`` (``batch_size // num`` points at a time);
        otherwise each point's draws are cut into chunks of ``batch_size``. No host synchronisation per chunk.
        """
        n_pts, d = x.shape
        counts = torch.zeros(n_pts, dtype=torch.int64, device=x.device)
        bad = torch.zeros((), dtype=torch.int64, device=x.device)
        sigma = self.sigma

        def votes(rows: torch.Tensor) -> torch.Tensor:
            nonlocal bad
            margin = self._margin(rows)
            bad = bad + torch.isnan(margin).sum()
            return margin >= 0

        # one noise buffer for every chunk: no fresh pages (CPU) or allocator traffic (CUDA) per chunk; the draws are
        # scaled by normal_ itself and shifted in place, two passes over the rows
        with eval_mode(self._clf):
            if num <= batch_size:
                per = max(1, min(batch_size // num, n_pts))
                buf = torch.empty((per, num, d), device=x.device, dtype=x.dtype)
                for start in range(0, n_pts, per):
                    xs = x[start:start + per]
                    k = xs.shape[0]
                    noisy = buf[:k]
                    noisy.normal_(0.0, sigma, generator=gen).add_(xs[:, None, :])
                    counts[start:start + k] = votes(noisy.view(k * num, d)).view(k, num).sum(1)
            else:
                buf = torch.empty((batch_size, d), device=x.device, dtype=x.dtype)
                for i in range(n_pts):
                    xi = x[i]
                    for start in range(0, num, batch_size):
                        noisy = buf[:min(batch_size, num - start)]
                        noisy.normal_(0.0, sigma, generator=gen).add_(xi)
                        counts[i] += votes(noisy).sum()
        if int(bad):
            raise ValueError(f"base returned NaN margins on {int(bad)} noisy inputs; a NaN vote is neither class")
        return counts

    # ------------------------------------------------------------------ public
    def sample_counts(self, x: torch.Tensor, n: int, *, generator: Any = 0,
                      batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """Votes ``#{j : f(x + sigma z_j) = +1}`` over ``n`` noise draws per point (Cohen's ``_sample_noise``).

        :meth:`predict` uses exactly these draws; :meth:`certify` draws ``n0`` then ``n`` of them from the same
        generator, so a caller holding the generator can reproduce and audit every decision.

        Args:
            x: (N, d) points.
            n: draws per point (positive int).
            generator: int seed or ``torch.Generator`` on the base model's device (never the global RNG).
            batch_size: noisy rows per base-model call.

        Returns:
            int64 tensor (N,) on ``x``'s device.
        """
        n = check_int("n", n, 1, what="number of noise draws")
        x_dev = x.device if isinstance(x, torch.Tensor) else None
        x, batch_size = self._prepare(x, batch_size)
        gen = self._generator(generator, x.device)
        return self._count_plus(x, n, gen, batch_size).to(x_dev)

    def predict(self, x: torch.Tensor, n: int, alpha: float, *, generator: Any = 0,
                batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """Cohen et al.'s PREDICT: the smoothed label, or 0 (abstain) when the vote is not significant.

        Draws ``n`` noisy copies of each point, counts the two classes ``n_A >= n_B`` (``n_A + n_B = n``) and
        returns the top class iff the two-sided binomial test of ``n_A`` successes in ``n_A + n_B`` trials at
        ``p = 1/2`` (``scipy.stats.binomtest``) has p-value ``<= alpha``; a tie always abstains. Guarantee
        (Cohen et al., Proposition 1): the probability of returning a class other than ``g(x)`` is at most
        ``alpha``. With ``n`` draws the smallest possible p-value is ``2^(1-n)``, so ``alpha < 2^(1-n)`` abstains
        always.

        Args:
            x: (N, d) points.
            n: noise draws per point (positive int).
            alpha: test level in (0, 1).
            generator: int seed or ``torch.Generator`` on the base model's device.
            batch_size: noisy rows per base-model call.

        Returns:
            int64 tensor (N,) on ``x``'s device with values -1, +1 and 0 (abstain).
        """
        n = check_int("n", n, 1, what="number of noise draws")
        alpha = check_open_unit_float("alpha", alpha)
        x_dev = x.device if isinstance(x, torch.Tensor) else None
        x, batch_size = self._prepare(x, batch_size)
        gen = self._generator(generator, x.device)
        plus = self._count_plus(x, n, gen, batch_size).cpu().numpy()
        minus = n - plus
        n_a = np.maximum(plus, minus)
        top = np.where(plus > minus, 1, -1)
        labels = np.where((plus != minus) & (n_a >= _predict_threshold(n, alpha)), top, 0)
        return torch.as_tensor(labels, dtype=torch.int64).to(x_dev)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, *, generator: Any = 0,
                batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
        """Cohen et al.'s CERTIFY: a label and an L2 radius within which ``g`` provably keeps it, or abstain.

        1. Selection: ``n0`` noisy copies; ``c_A`` = the majority class (+1 on a tie).
        2. Estimation: ``n`` *separate* copies; ``n_A`` = votes for ``c_A`` (reusing the selection draws would bias
           the bound, PITFALLS 9).
        3. ``p_lo`` = the one-sided exact (Clopper-Pearson) lower confidence bound on ``P[f(x + z) = c_A]`` at
           level ``1 - alpha``: ``P[Bin(n, p_lo) >= n_A] = alpha`` (0 when ``n_A = 0``, ``alpha^(1/n)`` when
           ``n_A = n``).
        4. ``p_lo < 1/2``: abstain (label 0, radius 0); else label ``c_A`` and radius ``sigma Phi^{-1}(p_lo)``.

        Guarantee: with probability at least ``1 - alpha`` over the draws, a returned label equals ``g(x)`` and
        ``g`` is constant on the open ball of that radius (Cohen et al., Proposition 2 and Theorem 1).

        Args:
            x: (N, d) points.
            n0: selection draws per point (positive int, ``<= n``).
            n: estimation draws per point (positive int).
            alpha: one minus the confidence level, in (0, 1).
            generator: int seed or ``torch.Generator`` on the base model's device.
            batch_size: noisy rows per base-model call.

        Returns:
            ``(labels, radii)``: int64 (N,) with -1, +1 and 0 (abstain), and float64 (N,) radii (0 where
            abstaining), both on ``x``'s device.
        """
        n0 = check_int("n0", n0, 1, what="number of noise draws")
        n = check_int("n", n, 1, what="number of noise draws")
        if n0 > n:
            raise ValueError(f"n0 (selection draws) must be <= n (estimation draws), got n0={n0}, n={n}")
        alpha = check_open_unit_float("alpha", alpha)
        x_dev = x.device if isinstance(x, torch.Tensor) else None
        x, batch_size = self._prepare(x, batch_size)
        gen = self._generator(generator, x.device)
        plus0 = self._count_plus(x, n0, gen, batch_size).cpu().numpy()
        plus = self._count_plus(x, n, gen, batch_size).cpu().numpy()
        c_a = np.where(2 * plus0 >= n0, 1, -1)
        n_a = np.where(c_a == 1, plus, n - plus)
        low, comp = _lower_bound(n_a, n, alpha)
        certified = low >= 0.5  # Cohen: abstain iff pABar < 1/2
        radii = np.where(certified, self.sigma * -scipy.special.ndtri(np.where(certified, comp, 0.5)), 0.0)
        labels = np.where(certified, c_a, 0)
        return (torch.as_tensor(labels, dtype=torch.int64).to(x_dev),
                torch.as_tensor(np.maximum(radii, 0.0), dtype=torch.float64).to(x_dev))


# ---------------------------------------------------------------------------------------------------- curves
def _to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, shape (N,), got shape {arr.shape}")
    return arr


def _radius_grid(r: Any) -> tuple[np.ndarray, bool]:
    scalar = np.ndim(r) == 0
    grid = np.atleast_1d(np.asarray(r.detach().cpu() if isinstance(r, torch.Tensor) else r, dtype=np.float64))
    if grid.ndim != 1 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError(f"r must be a finite radius >= 0 or a 1-D grid of them, got {r!r}")
    return grid, scalar


def certified_accuracy(labels: Any, radii: Any, y: Any, r: Any) -> float | np.ndarray:
    """Certified accuracy: the fraction of points labelled correctly with a certified radius above ``r``.

    ``CA(r) = (1/N) #{i : labels_i = y_i and radii_i > r}``. An abstention (label 0) never equals a label -1/+1,
    so it counts as a failure at every radius (PITFALLS 10). The inequality is strict because Cohen's guarantee
    covers the open ball ``||delta|| < R`` while a threat ``L2(r)`` is the closed ball (Cohen's analysis scripts
    use ``>=``; the two differ only when a radius equals ``r`` exactly).

    Args:
        labels: (N,) labels from :meth:`RandomizedSmoothing.certify` (-1, +1, 0 = abstain).
        radii: (N,) certified radii (>= 0).
        y: (N,) true labels -1/+1.
        r: a radius >= 0 or a 1-D grid of radii.

    Returns:
        A float for a scalar ``r``, a float64 array (len(r),) for a grid.
    """
    labels, radii, y = _to_numpy("labels", labels), _to_numpy("radii", radii), _to_numpy("y", y)
    if not (labels.shape == radii.shape == y.shape):
        raise ValueError(f"labels, radii and y must have the same shape (N,), got {labels.shape}, {radii.shape}, "
                         f"{y.shape}")
    if not np.all(np.isin(labels, (-1, 0, 1))):
        raise ValueError("labels must be -1, +1 or 0 (abstain)")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("y must hold true labels -1 or +1")
    radii = radii.astype(np.float64)
    if np.any(np.isnan(radii)) or np.any(radii < 0):
        raise ValueError("radii must be >= 0 (and not NaN)")
    grid, scalar = _radius_grid(r)
    if labels.size == 0:
        raise ValueError("labels must hold at least one point")
    correct = labels == y
    out = (correct[None, :] & (radii[None, :] > grid[:, None])).mean(axis=1)
    return float(out[0]) if scalar else out


def _linear_wb(clf: Any) -> tuple[np.ndarray, float]:
    if not isinstance(clf, Linear):
        raise TypeError(f"clf must be a toyrobust Linear classifier sign(w.x + b), got {type(clf).__name__}")
    if not clf.w.is_numeric or is_symbolic(clf.b):
        raise TypeError(f"clf must have numeric weights, got {clf!r}")
    return clf.w.to_numpy(), float(clf.b)


def exact_linear_radius(clf: Linear, x: torch.Tensor) -> torch.Tensor:
    """The certified radius of a smoothed linear classifier in the limit of infinitely many draws.

    For ``f(x) = sign(w.x + b)``: ``P[f(x + z) = sign(m)] = Phi(|m| / (sigma ||w||_2))`` with ``m = w.x + b``, so
    ``R = sigma Phi^{-1}(p_A) = |m| / ||w||_2``: the L2 distance to the hyperplane, whatever ``sigma``. It is the
    largest radius any certificate can give, since the hyperplane's nearest point flips ``f``. With ``n``
    draws, :meth:`RandomizedSmoothing.certify` returns a radius below it with probability ``>= 1 - alpha``.
    On the hyperplane (``m = 0``) the smoothed classifier abstains and the radius is 0.

    Args:
        clf: a numeric :class:`~toyrobust.classifiers.Linear` with ``w != 0``.
        x: (N, d) points.

    Returns:
        float64 tensor (N,) on ``x``'s device.
    """
    w, b = _linear_wb(clf)
    norm = float(np.linalg.norm(w))
    if norm == 0:
        raise ValueError("clf must have w != 0 (a constant classifier has no hyperplane)")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != w.size:
        raise ValueError(f"x must be a tensor of shape (N, {w.size}), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    xd = x.detach().to(torch.float64)
    m = xd @ torch.as_tensor(w, dtype=torch.float64, device=x.device) + b
    return m.abs() / norm


def linear_certified_accuracy(dist: Any, clf: Linear, r: Any) -> float | np.ndarray:
    """Exact certified accuracy of a smoothed linear classifier (infinitely many draws) on a distribution.

    With ``R(x) = |m(x)| / ||w||_2`` and the smoothed label ``sign(m(x))`` (abstaining at ``m = 0``), for any
    ``sigma``:

        CA(r) = P[y m(x) / ||w||_2 > r] = 1 - R_ball(f, L2(r)) - P[y = +1, m(x) = r ||w||_2],

    where ``R_ball(f, L2(r)) = P[exists ||delta||_2 <= r: f(x + delta) != y]`` is the closed-form adversarial
    risk ``tr.risk(dist, clf, L2(r))`` (so every distribution with a registered Linear/L2 closed form works). The
    last term is the tie: the base classifier gives +1 on the hyperplane, so a +1 point at distance exactly ``r``
    survives the ball, but its certificate (an open ball) does not reach ``r``. It vanishes when the margin has
    no atom (Gaussian mixtures, Tsipras with weight on a Gaussian coordinate); where it does not (Tsipras with
    ``w`` on ``x_1`` only, point masses) it is found as ``CA(r) = lim_{s -> r+} (1 - R_ball(f, L2(s)))``,
    evaluated at ``s = r + 1e-9 max(1, r)`` and used only when it differs from the value at ``r`` (by more than
    1e-9), so continuous margins get the closed form unchanged.

    Args:
        dist: a numeric distribution with a Linear/L2 closed-form risk (GaussianMixture, Tsipras, PointMasses).
        clf: a numeric :class:`~toyrobust.classifiers.Linear` with ``w != 0``.
        r: a radius >= 0 or a 1-D grid.

    Returns:
        A float for scalar ``r``, else a float64 array (len(r),).

    References:
        Cohen et al. 2019 (Section 3.1, the linear case); seed 003.
    """
    w, _ = _linear_wb(clf)
    if float(np.linalg.norm(w)) == 0:
        raise ValueError("clf must have w != 0 (a constant classifier has no hyperplane)")
    grid, scalar = _radius_grid(r)
    out = np.empty_like(grid)
    for i, radius in enumerate(grid):
        at = 1.0 - float(risk(dist, clf, L2(float(radius))))
        above = 1.0 - float(risk(dist, clf, L2(float(radius) + 1e-9 * max(1.0, float(radius)))))
        out[i] = min(1.0, max(0.0, above if at - above > _ATOM_TOL else at))  # rounding of 1 - risk
    return float(out[0]) if scalar else out


@dataclass(frozen=True)
class CertifiedCurves:
    """Exact certified accuracy of a smoothed linear classifier next to the best any classifier can do.

    Attributes:
        radii: (R,) radius grid.
        certified: (R,) :func:`linear_certified_accuracy`.
        optimal: (R,) ``1 - tr.optimal_risk(dist, L2(r))``: no classifier, smoothed or not, certified or only
            empirically robust, has a higher robust accuracy in the closed L2 ball of radius r; NaN where the
            optimal risk has no closed form (e.g. Tsipras for r >= 1).
    """

    radii: np.ndarray
    certified: np.ndarray
    optimal: np.ndarray


def certified_accuracy_curves(dist: Any, clf: Linear, radii: Sequence[float] | np.ndarray) -> CertifiedCurves:
    """The exact certified-accuracy curve of a smoothed linear base and the optimal robust accuracy ``1 - R*``.

    ``certified(r) <= optimal(r)`` always: the smoothed classifier is one classifier, and a certificate above
    ``r`` makes it correct on the whole closed ball, so its ball risk at ``r`` is at most ``1 - certified(r)``.

    Args:
        dist: a numeric distribution (GaussianMixture, Tsipras, ...).
        clf: a numeric :class:`~toyrobust.classifiers.Linear`.
        radii: 1-D grid of radii >= 0.

    Returns:
        :class:`CertifiedCurves`.

    References:
        Cohen et al. 2019; Bhagoji et al. 2019 and Tsipras et al. 2019 through :func:`toyrobust.optimal_risk`.
    """
    grid, _ = _radius_grid(radii)
    certified = np.atleast_1d(linear_certified_accuracy(dist, clf, grid))
    optimal = np.empty_like(grid)
    for i, radius in enumerate(grid):
        try:
            optimal[i] = 1.0 - float(optimal_risk(dist, L2(float(radius))))
        except NotImplementedError:
            optimal[i] = math.nan
    return CertifiedCurves(radii=grid, certified=certified, optimal=optimal)


# ---------------------------------------------------------------------------------------------------- training
class _NoisyInputs:
    """``dist`` with Gaussian noise added to every sampled input: ``(x + sigma z, y)``, ``z ~ N(0, I)``."""

    is_symbolic = False

    def __init__(self, dist: Any, sigma: float):
        self.dist = dist
        self.sigma = sigma
        self.dim = dist.dim

    def __repr__(self) -> str:
        return f"GaussianNoise({self.dist!r}, sigma={self.sigma})"

    def sample(self, n: int, generator: Any = None, device: Any = None,
               dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        gen_device = generator.device if isinstance(generator, torch.Generator) else (
            torch.device(device) if device is not None else torch.device("cpu"))
        gen = make_generator(generator, gen_device)
        x, y = self.dist.sample(n, generator=gen, device=gen.device, dtype=dtype)
        x = x + self.sigma * torch.randn(x.shape, generator=gen, device=gen.device, dtype=x.dtype)
        target = torch.device(device) if device is not None else gen.device
        return x.to(target), y.to(target)


def train_with_noise(model: nn.Module, dist: Any, sigma: float, *, steps: int, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, device: Any = None, **options: Any) -> TrainResult:
    """Train a base model for smoothing on Gaussian-augmented fresh samples (Cohen et al., Section 4).

    Minimises ``E softplus(-y m(x + sigma z))`` over fresh ``(x, y) ~ dist`` and ``z ~ N(0, I)``, the training
    that makes ``f`` accurate under the noise its smoothed classifier averages over. It is
    :func:`toyrobust.training.train` run on the distribution of the noisy inputs (data and noise from the
    run's seeded data stream), so checkpoints, schedules and resumption work as there. The evaluation records
    (``history[i]["risk"]``) are the base model's error on noisy inputs, ``P[f(x + sigma z) != y]``; for a
    Gaussian mixture ``N(y mu, s^2 I)`` that is the standard risk on ``N(y mu, (s^2 + sigma^2) I)``.

    Args:
        model: torch module (one or two logits), trained in place.
        dist: a numeric distribution.
        sigma: noise standard deviation (finite, > 0), the one the smoothed classifier will use.
        steps, batch_size, lr, seed, device: as in :func:`toyrobust.training.train`.
        **options: other keyword options of :func:`toyrobust.training.train` (optimizer, schedule, eval_every,
            eval_n, checkpoint, ...), except adversarial training.

    Returns:
        The :class:`~toyrobust.training.TrainResult` of the run.
    """
    sigma = check_positive_float("sigma", sigma)
    if options.get("adversarial") is not None or options.get("threat") is not None:
        raise ValueError("train_with_noise does Gaussian data augmentation only; adversarial and threat are not "
                         f"accepted, got adversarial={options.get('adversarial')!r}, threat={options.get('threat')!r}")
    if getattr(dist, "is_symbolic", True) or not hasattr(dist, "sample"):
        raise TypeError(f"dist must be a toyrobust distribution with numeric parameters, got {dist!r}")
    return train(model, _NoisyInputs(dist, sigma), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                 device=device, **options)
