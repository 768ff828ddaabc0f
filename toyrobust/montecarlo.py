"""Monte Carlo risk estimates: streamed samples, white-box attacks, exact (Clopper-Pearson) confidence intervals.

The adversarial risk of a classifier ``f`` under a definition ``A`` (see :mod:`toyrobust.definitions`) is

    R(f) = P_{(x, y) ~ D}[ exists x' in B(x): x' is adversarial for (x, y) under A ],

estimated by drawing ``n`` labelled points, attacking each one, and counting the points ``k`` for which an
adversarial ``x'`` was found and *verified* (inside the ball, adversarial under ``A`` when re-evaluated here). The
estimate ``k / n`` is a lower bound in expectation (an attack can miss); with an exact attack it is unbiased.
Its confidence interval is the exact binomial (Clopper-Pearson) one, and :attr:`RiskEstimate.kind` says which of
the two it is (``"exact"`` or ``"lower bound"``). On a ReLU or quadratic network, ``upper="verify"`` adds a verified
upper count (points the complete verifier does not prove robust), making the estimate a ``"bracket"``.

Stopping on a width: with ``target_width``, chunks are drawn until ``ci_high - ci_low <= target_width`` (so "+-0.01"
is ``target_width=0.02``) or ``max_n`` points were drawn, after at least ``n`` points; the chunk sizes are planned from
the running estimate so the run stops near the smallest sufficient ``n``. Stopping on the width (not on the estimate)
keeps the interval's coverage close to nominal.

Models: a torch model is evaluated in eval mode (the deployed, deterministic model, as the attacks see it), and every
submodule's mode is restored afterwards; it is never moved or converted, and its parameters' gradients are not
touched. Nothing touches the global RNG; the same ``seed`` gives the same result on the same device type and dtype.

Streaming: the points come from a counter-based stream (:class:`toyrobust.rng.CounterStream`, SplitMix64 of a
counter): the random numbers of point ``i`` are a pure function of ``(seed, i)``, so any range of points is drawn
directly, chunk by chunk, on the device that attacks it. The ``i``-th point depends only on ``(seed, i, device type,
dtype)``, never on ``chunk_size``: memory is O(chunk_size) whatever ``n`` is, and a deterministic attack gives the
same count for every chunk size (CPU and CUDA draw the same integers; their floats differ in the last bits only).
A randomised attack (random starts) draws its randomness per chunk, so its count agrees across chunk sizes up to
sampling noise only.

References:
    C. J. Clopper, E. S. Pearson, "The use of confidence or fiducial limits illustrated in the case of the
    binomial", Biometrika 26(4), 1934.
    Seed 003 (EPFL CS-433 notes, "Adversarial ML"): the adversarial risk R(f, eps).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.special
import torch

from .attacks import Attack, default_attack, make_attack
from .attacks.losses import eval_mode
from .classifiers import Classifier, TorchClassifier, as_classifier, check_input_dim, classes_of
from .constraints import check_int, check_progress, is_symbolic
from .definitions import check_definition, check_label_space, is_adversarial
from .display import estimate_html, estimate_latex
from .distributions import Distribution
from .distributions.base import check_draw_size
from .rng import STREAM_ROWS, CounterStream, derive_seed, resolve_device, resolve_dtype
from .threats import ThreatModel, make_threat

__all__ = [
    "RiskEstimate",
    "ESTIMATE_KINDS",
    "clopper_pearson",
    "estimate_risk",
    "iter_samples",
    "derive_seed",
    "DEFAULT_CHUNK",
    "device_chunk_size",
]

#: what a :class:`RiskEstimate` is: the risk itself, a lower bound on it, or a lower and a verified upper bound
ESTIMATE_KINDS = ("exact", "lower bound", "bracket")
#: names accepted for ``upper=`` in :func:`estimate_risk`
UPPER_METHODS = ("verify",)

#: rows attacked at once by default
DEFAULT_CHUNK = 8192

#: on a CPU the exact attack works on pieces of a chunk of about this many bytes of points (cache-sized)
_CPU_PIECE_BYTES = 1 << 23

# stream tags for derive_seed: sampling and attack randomness never share a stream
_SAMPLE_STREAM = 0
_ATTACK_STREAM = 1

# ---------------------------------------------------------------------------------------------------- intervals


def device_chunk_size(device: Any, dim: int, itemsize: int = 4, *, attacked: bool = True,
                      free_bytes: int | None = None) -> int:
    """Points per chunk for ``estimate_risk`` on ``device``: :data:`DEFAULT_CHUNK` on a CPU (caches, not memory,
    bound it there); on a GPU the largest power of two whose working set (about 16 copies of an (N, dim) batch when
    attacked, 4 otherwise) fits in a quarter of the free memory, between 2^14 and 2^22 (2^20 and more on a large
    card: launches, not bandwidth, bound small chunks there; PITFALLS 16).

    Args:
        device: the torch device.
        dim: input dimension.
        itemsize: bytes per entry (4 for float32, 8 for float64).
        attacked: whether the chunk is attacked (gradients, iterates and best points are kept).
        free_bytes: free device memory (default: ``torch.cuda.mem_get_info``); for tests.
    """
    device = torch.device(device)
    if device.type != "cuda" and free_bytes is None:
        return DEFAULT_CHUNK
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    per_point = max(1, dim) * itemsize * (16 if attacked else 4)
    fit = max(1, (free_bytes // 4) // per_point)
    return int(min(max(1 << (fit.bit_length() - 1), 1 << 14), 1 << 22))


def _check_level(level: Any, name: str = "level") -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number in (0, 1), got {level!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {level!r}")
    return level


def _as_counts(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be an integer or an array of integers, got {value!r}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold whole numbers, got {value!r}")
    return arr.astype(np.int64)


def clopper_pearson(k: Any, n: Any, level: float = 0.95, *, alpha: float | None = None) -> tuple[Any, Any]:
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial proportion.

    With ``a = 1 - level`` (or ``alpha``), the bounds solve ``P[Bin(n, L) >= k] = a/2`` and
    ``P[Bin(n, U) <= k] = a/2``, i.e. ``L = I^{-1}_{a/2}(k, n - k + 1)`` (L = 0 when k = 0) and
    ``U = 1 - I^{-1}_{a/2}(n - k, k + 1)`` (U = 1 when k = n), with ``I`` the regularised incomplete beta
    function. The upper bound is computed with the complemented inverse ``scipy.special.betainccinv`` so that
    a tiny ``alpha`` (1e-20, where ``1 - alpha/2`` rounds to 1) keeps full precision. The coverage is at least
    ``level`` for every true proportion.

    Args:
        k: successes, an int or an integer array, ``0 <= k <= n``.
        n: trials, an int or an integer array (broadcast with ``k``), ``n >= 1``.
        level: confidence level in (0, 1).
        alpha: instead of ``level``, the error probability ``1 - level`` in (0, 1) (use it for tiny alphas,
            which ``1 - level`` cannot represent).

    Returns:
        ``(low, high)``: floats for scalar inputs, numpy arrays of the broadcast shape otherwise.

    References:
        Clopper and Pearson, Biometrika 1934.
    """
    a = 1.0 - _check_level(level) if alpha is None else _check_level(alpha, "alpha")
    k_arr, n_arr = _as_counts(k, "k"), _as_counts(n, "n")
    if np.any(n_arr < 1):
        raise ValueError(f"n must be >= 1, got {n!r}")
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k!r}, n={n!r}")
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    kf, nf = k_arr.astype(np.float64), n_arr.astype(np.float64)
    # evaluate on safe arguments and overwrite the edges, so no invalid beta parameters reach scipy
    low = scipy.special.betaincinv(np.maximum(kf, 1.0), nf - kf + 1.0, a / 2)
    low = np.where(k_arr == 0, 0.0, low)
    high = scipy.special.betainccinv(kf + 1.0, np.maximum(nf - kf, 1.0), a / 2)
    high = np.where(k_arr == n_arr, 1.0, high)
    if np.ndim(k) == 0 and np.ndim(n) == 0:
        return float(low), float(high)
    return low, high


# ---------------------------------------------------------------------------------------------------- sampling


def _check_stream_end(offset: int, n: int) -> None:
    if offset + n > STREAM_ROWS:
        raise ValueError(f"offset + n must be at most 2^53 (the points of one seed's stream), got offset={offset}, "
                         f"n={n}; use another seed for more points")


def _check_seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy) & (2**63 - 1)  # fresh OS entropy, reported back
    return check_int("seed", seed, 0)


class _SampleStream:
    """Points ``i = 0, 1, 2, ...`` of a seeded counter-based stream, taken in consecutive pieces of any size."""

    def __init__(self, dist: Distribution, seed: int, device: torch.device, dtype: torch.dtype, offset: int = 0):
        self.dist, self.dtype = dist, dtype
        self.stream = CounterStream(seed, _SAMPLE_STREAM, device=device)
        self.next = offset

    def take(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dist.draw(self.stream.rows(self.next, m), self.dtype)
        self.next += m
        return x, y


def iter_samples(
    dist: Distribution,
    n: int,
    *,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    device: Any = None,
    dtype: torch.dtype | None = None,
    offset: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stream ``n`` labelled points of ``dist`` in chunks, with memory independent of ``n``.

    The ``i``-th point depends only on ``(seed, i, device type, dtype)``: concatenating the chunks gives bitwise
    the same points for every ``chunk_size`` (a counter-based stream; see the module docstring), and the points
    ``offset .. offset + n - 1`` are drawn directly (so runs with offsets ``0, n_1, n_1 + n_2, ...`` together
    draw exactly the points of one run).

    Args:
        dist: a distribution with numeric parameters.
        n: number of points (int >= 0).
        seed: master seed (int >= 0).
        chunk_size: rows per yielded chunk (the last one may be shorter).
        device: where to draw ("auto"/None: CUDA when available, CPU otherwise).
        dtype: float32 or float64 (None: torch's default dtype).
        offset: index of the first point (int >= 0).

    Yields:
        ``(x, y)``: x of shape (m, dim), y of shape (m,) int64 in {-1, +1}, m <= chunk_size.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a toyrobust distribution, got {type(dist).__name__}")
    n = check_int("n", n, 0)
    seed = _check_seed(seed)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    offset = check_int("offset", offset, 0)
    _check_stream_end(offset, n)
    dist.require_numeric("iter_samples")
    stream = _SampleStream(dist, seed, resolve_device(device), resolve_dtype(dtype), offset)
    done = 0
    while done < n:
        m = min(chunk_size, n - done)
        yield stream.take(m)
        done += m


# ---------------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class RiskEstimate:
    """A Monte Carlo risk estimate with its exact binomial confidence interval.

    Attributes:
        value: ``k / n``.
        ci_low, ci_high: the Clopper-Pearson interval at ``level``.
        k: points counted as adversarial (verified on the returned points); n: points drawn.
        level: confidence level of the interval.
        method: the attack's name, or ``"none (standard risk)"`` without a threat.
        definition: the definition of an adversarial example used.
        threat: ``repr`` of the threat model, or None.
        seconds: wall-clock time of the estimate.
        device, dtype: where and in which precision the points were drawn and attacked.
        seed: the master seed (reproduces the estimate on the same device type and dtype).
        chunk_size: points attacked at once (the points drawn do not depend on it).
        grad_evals: gradient evaluations reported by the attack, summed over chunks.
        invalid_claims: points the attack flagged as successes that failed verification (an attack bug if > 0).
        target_width: the requested interval width, or None.
        converged: with ``target_width``, whether the width was reached before ``max_n``; None otherwise.
        kind: what ``k / n`` is (see :data:`ESTIMATE_KINDS`): ``"exact"`` (the attack decides every point
            exactly, or the standard risk: the interval covers the risk), ``"lower bound"`` (an attack that may
            miss: the risk may lie above the interval), ``"bracket"`` (a lower bound plus a verified upper bound).
        upper_k: with a verifier, the points not proven robust (each counts as an error); else None.
        upper, upper_ci_low, upper_ci_high: ``upper_k / n`` and its Clopper-Pearson interval at ``level``.
        decided: with a verifier, the points it decided (proven robust, or a confirmed adversarial example);
            ``decided == n`` closes the bracket (``k == upper_k``).
        offset: index of the first point in the seed's stream (the points are ``offset .. offset + n - 1``).
    """

    value: float
    ci_low: float
    ci_high: float
    k: int
    n: int
    level: float
    method: str
    definition: str
    threat: str | None
    seconds: float
    device: str
    dtype: str
    seed: int
    chunk_size: int
    grad_evals: int = 0
    invalid_claims: int = 0
    target_width: float | None = None
    converged: bool | None = None
    kind: str = "lower bound"
    upper_k: int | None = None
    upper: float | None = None
    upper_ci_low: float | None = None
    upper_ci_high: float | None = None
    decided: int | None = None
    offset: int = 0

    @property
    def attack(self) -> str:
        """The attack's name (same as ``method``)."""
        return self.method

    @property
    def width(self) -> float:
        """``ci_high - ci_low``."""
        return self.ci_high - self.ci_low

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the confidence interval (for a bracket: in ``[ci_low, upper_ci_high]``)."""
        high = self.upper_ci_high if self.upper_ci_high is not None else self.ci_high
        return self.ci_low <= float(value) <= high

    @property
    def is_exact(self) -> bool:
        """Whether the interval covers the risk itself: an exact attack, or a bracket the verifier closed."""
        return self.kind == "exact" or (self.kind == "bracket" and self.decided == self.n)

    def as_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return asdict(self)

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        upper = "" if self.upper is None else (
            f", upper {self.upper:.6g} in [{self.upper_ci_low:.6g}, {self.upper_ci_high:.6g}], "
            f"decided={self.decided}")
        return (f"RiskEstimate({self.kind}: {self.value:.6g} in [{self.ci_low:.6g}, {self.ci_high:.6g}] at "
                f"{self.level:g}, k={self.k}, n={self.n}{upper}, method={self.method!r}, "
                f"definition={self.definition!r})")

    def _repr_latex_(self) -> str:
        """Jupyter: the estimate, its interval and its kind, typeset."""
        return estimate_latex(self)

    def _repr_html_(self) -> str:
        """Jupyter: kind (and what it means), interval, counts, attack and run as a table."""
        return estimate_html(self)


# ---------------------------------------------------------------------------------------------------- estimation


def _module_tensor(clf: Classifier) -> torch.Tensor | None:
    """A floating parameter or buffer of a wrapped torch module (gives its device and dtype), or None."""
    if isinstance(clf, TorchClassifier) and isinstance(clf.module, torch.nn.Module):
        for t in list(clf.module.parameters()) + list(clf.module.buffers()):
            if t.is_floating_point():
                return t
    return None


def _resolve_placement(clf: Classifier, device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    ref = _module_tensor(clf)
    if device is None or device == "auto":
        dev = ref.device if ref is not None else resolve_device(None)
    else:
        dev = resolve_device(device)
        if ref is not None and (ref.device.type != dev.type or (dev.index is not None and ref.device != dev)):
            raise ValueError(f"device={device!r} differs from the model's device {ref.device}; move the model "
                             f"first (estimate_risk never moves a model) or pass device=None")
    if dtype is None:
        dt = ref.dtype if ref is not None and ref.dtype in (torch.float32, torch.float64) else resolve_dtype(None)
    else:
        dt = resolve_dtype(dtype)
        if ref is not None and ref.dtype != dt:
            raise ValueError(f"dtype={dtype!r} differs from the model's dtype {ref.dtype}; convert the model "
                             f"first or pass dtype=None")
    return dev, dt


def _resolve_attack(attack: Any, attack_options: Any, clf: Classifier, threat: ThreatModel | None,
                    definition: str, dist: Distribution) -> Attack | None:
    """The attack object (None for the standard risk), with its options, after checking that it applies."""
    if threat is None:
        if attack is not None:
            raise ValueError(f"attack={attack!r} needs a threat model; pass threat= (None means the standard risk)")
        return None  # attack_options are unused: a case list may give them to its standard-risk rows too
    if attack_options is not None and not isinstance(attack_options, dict):
        raise TypeError(f"attack_options must be a dict of keyword arguments, got {type(attack_options).__name__}")
    clash = set(attack_options or {}) & {"definition", "dist", "generator"}
    if clash:
        raise ValueError(f"attack_options must not set {sorted(clash)}: estimate_risk passes them itself")
    if attack is None:
        attack = default_attack(clf, threat, definition, dist=dist)
    resolved = make_attack(attack, attack_options)
    support = resolved.supports(clf, threat, definition, dist)
    if not support:
        raise TypeError(f"attack {resolved.label!r} cannot run here: {support.reason}")
    return resolved


def _wald_n(k: int, n: int, level: float, width: float) -> int:
    """Sample size at which a Wald interval around the smoothed proportion reaches ``width`` (a planning guess)."""
    p = (k + 0.5) / (n + 1.0)
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    return math.ceil((2 * z) ** 2 * p * (1 - p) / width**2)


def _planned_chunk(k: int, done: int, n_min: int, level: float, width: float, chunk_size: int) -> int:
    """Next chunk size when stopping on the interval width: up to the planned total, at least 256 points."""
    # at the start, an eighth of the worst case p = 1/2; later, the running estimate
    guess = _wald_n(k, done, level, width) if done > 0 else _wald_n(1, 2, level, width) // 8
    return max(math.ceil(1.05 * guess) - done, n_min - done, min(256, chunk_size))


def _attack_chunk(attack: Attack, clf: Classifier, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                  definition: str, dist: Distribution, generator: Any) -> tuple[torch.Tensor, int, int]:
    """Attack one chunk; returns (per-point verified adversarial mask, gradient evaluations, unverified claims).

    A point counts when the returned ``x_adv`` lies in the ball and is adversarial when re-checked here, or when
    the clean point itself is adversarial (it lies in its own ball).
    """
    with torch.enable_grad():
        res = attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)
    x_adv = getattr(res, "x_adv", None)
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
        raise ValueError(f"the attack {attack.label!r} must return an AttackResult whose x_adv has shape "
                         f"{tuple(x.shape)}, got {type(res).__name__}")
    x_adv = x_adv.detach().to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        found = threat.contains(x_adv, x) & is_adversarial(definition, clf, x_adv, y, dist=dist, x=x)
        rest = ~found  # the clean point needs checking only where the attack's point does not count
        if bool(rest.any()):
            xr = x[rest]
            found = found.clone()
            found[rest] = is_adversarial(definition, clf, xr, y[rest], dist=dist, x=xr)
    claimed = getattr(res, "success", None)
    wrong = int((claimed.to(found.device).bool() & rest).sum()) if isinstance(claimed, torch.Tensor) else 0
    return found, int(getattr(res, "grad_evals", 0) or 0), wrong


def _upper_setup(upper: Any, clf: Classifier, threat: ThreatModel | None, definition: str, dist: Distribution,
                 verify_options: dict[str, Any] | None) -> Callable | None:
    """The verifier call for ``upper="verify"`` (None without), after checking that it applies."""
    if upper is None:
        if verify_options:
            raise ValueError("verify_options needs upper='verify'")
        return None
    if upper not in UPPER_METHODS:
        raise ValueError(f"upper must be None or one of {', '.join(repr(u) for u in UPPER_METHODS)}, got {upper!r}")
    if threat is None:
        raise ValueError("upper='verify' needs a threat model (the standard risk is computed exactly anyway)")
    if not isinstance(clf, TorchClassifier) or not isinstance(clf.module, torch.nn.Module):
        raise TypeError(f"upper='verify' needs a torch ReLU network or a QuadraticNet, got {type(clf).__name__}")
    if definition not in ("ball", "projection", "error-region"):
        raise ValueError(f"upper='verify' supports the definitions 'ball', 'projection' and 'error-region', "
                         f"got {definition!r}")
    if verify_options is not None and not isinstance(verify_options, dict):
        raise TypeError(f"verify_options must be a dict of keyword arguments, got {type(verify_options).__name__}")
    try:  # imported here: a copy of toyrobust without the verifier still estimates (and says what upper needs)
        from .verification import verify
        from .verification.regions import label_regions
    except ImportError as err:
        raise NotImplementedError("upper='verify' needs toyrobust.verification (complete verification of ReLU "
                                  "networks), which is not installed in this copy of toyrobust") from err
    options = dict(verify_options or {})
    if definition != "ball" and "region" not in options:
        options["region"] = label_regions(dist)
    module = clf.module

    def run(x: torch.Tensor, y: torch.Tensor) -> Any:
        return verify(module, x, y, threat, definition=definition, **options)

    return run


def _verify_chunk(run: Callable, clf: Classifier, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                  definition: str, dist: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """(proven robust (N,), confirmed adversarial (N,)): the verifier's counterexamples are re-checked here."""
    res = run(x, y)
    robust = res.robust.to(x.device).bool()
    x_adv = res.x_adv.detach().to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        confirmed = res.vulnerable.to(x.device).bool() & threat.contains(x_adv, x) & is_adversarial(
            definition, clf, x_adv, y, dist=dist, x=x)
    return robust, confirmed


def estimate_risk(
    dist: Distribution,
    clf: Any,
    threat: Any = None,
    definition: str = "ball",
    *,
    attack: Any = None,
    n: int | None = None,
    seed: int | None = 0,
    device: Any = None,
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    offset: int = 0,
    level: float = 0.95,
    target_width: float | None = None,
    max_n: int = 10_000_000,
    progress: bool | None = None,
    attack_options: dict[str, Any] | None = None,
    upper: str | None = None,
    verify_options: dict[str, Any] | None = None,
) -> RiskEstimate:
    """Monte Carlo estimate of a standard or adversarial risk, with an exact confidence interval.

    Estimates ``R = P[exists x' in B(x): x' adversarial for (x, y) under definition]`` (``B(x) = {x}`` when
    ``threat`` is None: the standard risk, ``P[f(x) != y]`` for "ball"; the other definitions are evaluated at
    ``x' = x``). Each chunk of streamed points is attacked with ``attack(clf, x, y, threat, definition=...,
    dist=..., generator=...)`` (an :class:`toyrobust.attacks.Attack` built with ``attack_options``); a point
    counts when the returned ``x_adv`` lies in the ball and is adversarial under ``definition`` when checked
    here, or when the clean point itself is (it lies in its own ball). The interval is
    :func:`clopper_pearson` at ``level``.

    See the module docstring for stopping on ``target_width`` and for how torch models are treated (eval mode,
    never moved, converted or given gradients; the global RNG untouched).

    Args:
        dist: the data distribution (numeric parameters).
        clf: a toyrobust classifier or a torch module with one logit (positive means +1) or two (column 1 is +1);
            K logits on a distribution with labels 0..K-1 (an ``EmpiricalDistribution``; fgsm, pgd, apgd).
        threat: a threat model, a spec such as ``"linf:0.3"``, or None for the standard risk.
        definition: "ball", "projection", "error-region" or "prediction-change".
        attack: None (``toyrobust.attacks.default_attack(clf, threat, definition)``), a registered name
            (``toyrobust.attacks.ATTACKS``: "pgd", "apgd", "fgsm", "exact", "cw", "projection", "on-manifold", ...),
            an :class:`toyrobust.attacks.Attack` object or class, or a plain function following the attack calling
            convention (reported as a "lower bound"). The estimate's ``kind`` is the attack's ``kind``.
        n: number of points (default 100_000); with ``target_width``, the minimum number (default 0).
        seed: master seed (int >= 0), or None for fresh OS entropy (reported in the result).
        device: "cpu", "cuda", "auto" or None (the model's device for a torch module, else CUDA when available).
        dtype: float32 or float64 (None: the model's dtype for a torch module, else torch's default).
        chunk_size: points attacked at once (memory is proportional to it, not to ``n``); None:
            :func:`device_chunk_size` (8192 on a CPU, sized from the free memory on a GPU, up to 2^22).
        offset: index of the first point drawn from the seed's stream (int >= 0). Runs with the same seed and
            offsets ``0, n_1, n_1 + n_2, ...`` attack exactly the points of one run of ``n_1 + n_2 + ...``: with a
            deterministic attack their counts add up to its count (how :func:`toyrobust.sweep` shards).
        level: confidence level of the interval, in (0, 1).
        target_width: stop once the interval is at most this wide, in (0, 1]; None draws exactly ``n`` points.
        max_n: with ``target_width``, the most points to draw.
        progress: show a tqdm bar on stderr; None shows it for long runs when stderr is a terminal.
        attack_options: options for the attack, validated by its constructor (e.g. ``{"steps": 100}``).
        upper: ``"verify"`` (ReLU network or QuadraticNet; ball, projection, error-region): beside the attack's count,
            :func:`toyrobust.verification.verify` decides every point, and the points it does not prove robust
            count as errors of a verified upper bound (``upper_k``); its confirmed counterexamples join the
            attack's successes. The estimate is then a ``"bracket"``. None: no upper bound.
        verify_options: keyword arguments for the verifier (e.g. ``{"time_limit": 2.0}``; the label regions of
            ``dist`` are passed for the projection and error-region definitions).

    Returns:
        a :class:`RiskEstimate` whose ``kind`` says what the interval is: ``"exact"`` (standard risk, or an attack
        whose ``kind`` is "exact"), ``"lower bound"`` (another attack), ``"bracket"`` (with ``upper="verify"``).

    References:
        Seed 003 (EPFL CS-433 notes): the adversarial risk ``R(f, eps)``; Clopper and Pearson, Biometrika 1934.
    """
    start_time = time.perf_counter()
    request = _Request(attack=attack, n=n, seed=seed, device=device, dtype=dtype, chunk_size=chunk_size,
                       offset=offset, level=level, target_width=target_width, max_n=max_n, progress=progress,
                       attack_options=attack_options, upper=upper, verify_options=verify_options)
    plan = _plan(dist, clf, threat, definition, request)
    counts = _count(plan)
    return _result(plan, counts, time.perf_counter() - start_time)


@dataclass
class _Plan:
    """The validated settings of one :func:`estimate_risk` call, with the attack and the verifier resolved."""

    dist: Distribution
    clf: Classifier
    threat: ThreatModel | None
    definition: str
    seed: int
    device: torch.device
    dtype: torch.dtype
    chunk_size: int
    offset: int
    level: float
    target_width: float | None
    n_min: int
    n_max: int
    progress: bool
    attack: Attack | None
    method: str
    verify_run: Callable | None


@dataclass
class _Counts:
    """What the loop counted: successes ``k`` among ``done`` points, and the verifier's upper count."""

    k: int = 0
    done: int = 0
    grad_evals: int = 0
    invalid: int = 0
    upper_k: int = 0
    decided: int = 0
    converged: bool | None = None


@dataclass(frozen=True)
class _Request:
    """The keyword options of one :func:`estimate_risk` call, as given (validated by :func:`_plan`)."""

    attack: Any
    n: Any
    seed: Any
    device: Any
    dtype: Any
    chunk_size: Any
    offset: Any
    level: Any
    target_width: Any
    max_n: Any
    progress: Any
    attack_options: Any
    upper: Any
    verify_options: Any


def _sizes(request: _Request) -> tuple[int, int, float | None]:
    """``(n_min, n_max, target_width)``: exactly ``n`` points, or between ``n`` and ``max_n`` with a target width."""
    n, target_width = request.n, request.target_width
    if target_width is None:
        n = 100_000 if n is None else check_int("n", n, 1)
        return n, n, None
    if isinstance(target_width, bool) or not isinstance(target_width, (int, float)) \
            or not 0.0 < float(target_width) <= 1.0:
        raise ValueError(f"target_width must be a number in (0, 1], got {target_width!r}")
    n_max = check_int("max_n", request.max_n, 1)
    n_min = 0 if n is None else check_int("n", n, 0)
    if n_min > n_max:
        raise ValueError(f"n must be <= max_n with target_width, got n={n}, max_n={n_max}")
    return n_min, n_max, float(target_width)


def _plan(dist: Any, clf: Any, threat: Any, definition: Any, request: _Request) -> _Plan:
    """Validate every argument (before any sampling) and resolve the placement, the attack and the verifier."""
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a toyrobust distribution, got {type(dist).__name__}")
    definition = check_definition(definition)
    clf = as_classifier(clf)
    check_input_dim(clf, dist.dim, f"dist ({type(dist).__name__})")  # before any sampling
    if threat is not None:
        if not isinstance(threat, (ThreatModel, str)):
            raise TypeError(f"threat must be a ThreatModel, a spec like 'linf:0.3', or None, got {threat!r}")
        threat = make_threat(threat)
        if is_symbolic(threat.eps):
            raise TypeError(f"threat must have a numeric eps to be attacked, got {threat!r}")
    level = _check_level(request.level)
    seed = _check_seed(request.seed)
    chunk_size = None if request.chunk_size is None else check_int("chunk_size", request.chunk_size, 1)
    offset = check_int("offset", request.offset, 0)
    n_min, n_max, target_width = _sizes(request)
    _check_stream_end(offset, n_max)
    check_progress(request.progress)
    dev, dt = _resolve_placement(clf, request.device, request.dtype)
    probe = None
    if isinstance(clf, TorchClassifier) and not clf.classes_known and not is_symbolic(dist.dim):
        probe = torch.zeros(1, int(dist.dim), device=dev, dtype=dt)  # one forward pass shows the number of logits
    with eval_mode(clf):
        check_label_space(classes_of(clf, probe), dist)  # before any sampling
    if chunk_size is None:
        chunk_size = device_chunk_size(dev, int(dist.dim) if not is_symbolic(dist.dim) else 1,
                                       torch.finfo(dt).bits // 8, attacked=threat is not None)
    check_draw_size(min(chunk_size, n_max), dist.dim, dev, dt, what="estimate_risk", advice=(
        f"pass a smaller chunk_size (now {chunk_size}; the points drawn do not depend on it), or use the closed "
        f"form tr.risk(dist, clf, threat), which draws nothing"))  # before any sampling, not from the allocator
    verify_run = _upper_setup(request.upper, clf, threat, definition, dist, request.verify_options)
    attack = _resolve_attack(request.attack, request.attack_options, clf, threat, definition, dist)
    method = "none (standard risk)" if attack is None else attack.label
    show = request.progress if request.progress is not None else (
        sys.stderr.isatty() and (n_max >= 1_000_000 or (attack is not None and n_max >= 100_000)))
    return _Plan(dist=dist, clf=clf, threat=threat, definition=definition, seed=seed, device=dev, dtype=dt,
                 chunk_size=chunk_size, offset=offset, level=level, target_width=target_width, n_min=n_min,
                 n_max=n_max, progress=bool(show), attack=attack, method=method, verify_run=verify_run)


def _next_chunk(plan: _Plan, c: _Counts) -> int:
    """How many points to draw next (0: stop, with ``c.converged`` set)."""
    if plan.target_width is not None and c.done >= max(plan.n_min, 1):
        low, high = clopper_pearson(c.k, c.done, plan.level)
        if high - low <= plan.target_width:
            c.converged = True
            return 0
    if c.done >= plan.n_max:
        c.converged = None if plan.target_width is None else False
        return 0
    m = min(plan.chunk_size, plan.n_max - c.done)
    if plan.target_width is not None:
        m = min(m, _planned_chunk(c.k, c.done, plan.n_min, plan.level, plan.target_width, plan.chunk_size))
    return m


def _count_chunk(plan: _Plan, c: _Counts, x: torch.Tensor, y: torch.Tensor, first: int,
                 attack_gen: torch.Generator | None) -> None:
    """Attack (or just classify) one chunk and add what it found to ``c``; the verifier adds its upper count."""
    if plan.attack is None:
        with torch.no_grad():
            c.k += int(is_adversarial(plan.definition, plan.clf, x, y, dist=plan.dist, x=x).sum())
        return
    gen = None
    if plan.attack.randomized:
        # keyed by the chunk's first point: shards at offsets that end on chunk boundaries repeat one run's randomness
        gen = attack_gen.manual_seed(derive_seed(plan.seed, _ATTACK_STREAM, first))
    step = x.shape[0]
    if x.device.type == "cpu" and plan.attack.kind == "exact":
        # on a CPU an exact attack (per point: the same count for any split) and its check run on pieces of about
        # _CPU_PIECE_BYTES: a GPU-sized chunk then costs no more per point (no page-faulting temporaries)
        step = max(1, _CPU_PIECE_BYTES // max(1, x.shape[1] * x.element_size()))
    parts = [_attack_chunk(plan.attack, plan.clf, x[i:i + step], y[i:i + step], plan.threat, plan.definition,
                           plan.dist, gen) for i in range(0, x.shape[0], step)]
    found = parts[0][0] if len(parts) == 1 else torch.cat([p[0] for p in parts])
    evals, wrong = sum(p[1] for p in parts), sum(p[2] for p in parts)
    if plan.verify_run is not None:
        robust, confirmed = _verify_chunk(plan.verify_run, plan.clf, x, y, plan.threat, plan.definition, plan.dist)
        if bool((robust & found).any()):
            raise RuntimeError(f"the verifier proved {int((robust & found).sum())} points robust for which the "
                               f"attack {plan.method!r} found verified adversarial examples: a verifier bug")
        found = found | confirmed
        c.upper_k += int((~robust).sum())
        c.decided += int((robust | found).sum())
    c.k, c.grad_evals, c.invalid = c.k + int(found.sum()), c.grad_evals + evals, c.invalid + wrong


def _count(plan: _Plan) -> _Counts:
    """The streaming loop: draw a chunk, count it, until ``n`` points (or the target width) are reached."""
    c = _Counts()
    attack_gen = torch.Generator(device=plan.device) if plan.attack is not None else None
    stream = _SampleStream(plan.dist, plan.seed, plan.device, plan.dtype, plan.offset)
    bar = None
    if plan.progress:
        from tqdm.auto import tqdm  # loaded only when a bar is shown

        bar = tqdm(total=plan.n_max, unit="pt", unit_scale=True, desc=f"estimate_risk[{plan.method}]",
                   file=sys.stderr, leave=False, dynamic_ncols=True)
    with eval_mode(plan.clf):
        try:
            while (m := _next_chunk(plan, c)) > 0:
                x, y = stream.take(m)
                _count_chunk(plan, c, x, y, plan.offset + c.done, attack_gen)
                c.done += m
                del x, y
                if bar is not None:
                    bar.update(m)
                    bar.set_postfix(risk=f"{c.k / c.done:.4g}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
    return c


def _result(plan: _Plan, c: _Counts, seconds: float) -> RiskEstimate:
    """The estimate, its exact interval, its kind, and the verified bracket when there is one."""
    low, high = clopper_pearson(c.k, c.done, plan.level)
    bracket: dict[str, Any] = {}
    if plan.verify_run is not None:
        u_low, u_high = clopper_pearson(c.upper_k, c.done, plan.level)
        bracket = dict(upper_k=c.upper_k, upper=c.upper_k / c.done, upper_ci_low=u_low, upper_ci_high=u_high,
                       decided=c.decided)
    if plan.attack is None or plan.attack.kind == "exact":
        kind = "exact"
    else:
        kind = "bracket" if plan.verify_run is not None else "lower bound"
    return RiskEstimate(
        value=c.k / c.done, ci_low=low, ci_high=high, k=c.k, n=c.done, level=plan.level, method=plan.method,
        definition=plan.definition, threat=None if plan.threat is None else repr(plan.threat), seconds=seconds,
        device=str(plan.device), dtype=str(plan.dtype).replace("torch.", ""), seed=plan.seed,
        chunk_size=plan.chunk_size, grad_evals=c.grad_evals, invalid_claims=c.invalid,
        target_width=plan.target_width, converged=c.converged, kind=kind, offset=plan.offset, **bracket,
    )
