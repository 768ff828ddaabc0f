"""A finite labelled sample as a distribution: real data under the projection definition (seed 001 on real images).

``EmpiricalDistribution(X, y)`` puts mass ``1/n`` on each of its ``n`` points. Its support is the sample, the
projection onto it is the **nearest sample** in the distribution's norm (L2 by default, Linf or L1 on request: the
threat's norm), and its Bayes classifier is the label of that nearest sample (1-NN). So the projection and
error-region definitions of :mod:`toyrobust.definitions` apply to real data: a perturbed image is adversarial by the
projection definition only if its nearest training image still has the original label.

Its facts: the label-invariant radius (half the smallest distance between samples of different classes, overall
and per class, seed 001's quantitative epsilon), and the distance statistics seed 001 draws as heatmaps (mean
pairwise and nearest distances between classes, as K x K matrices).

Nearest samples are exact and batched, with memory bounded by chunking: in L2 a float32 matrix-product screen keeps
every sample whose distance could be the smallest given a bound on the rounding error, and the few candidates are
re-ranked with float64 distances (ties go to the lower index); in Linf a kd-tree (``scipy.spatial.cKDTree``) on a
CPU (3.7 times faster than ``torch.cdist`` on queries near the data, such as adversarial examples; slower far from
it), chunked ``torch.cdist`` on a GPU and in L1 (``method`` chooses). Exact duplicate points keep the label of their
first occurrence.

References:
    D. Stutz, "Towards a definition for adversarial examples" (seed 000): the projection definition.
    Seed 001 ("choosing epsilon for MNIST"): within- and between-class distances, eps below half the distance to
    another class, a per-class eps.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import sympy
import torch

from ..classifiers import Classifier, Linear, check_labels
from ..constraints import check, integer_at_least
from ..rng import Draws
from ..threats import L2, Linf, ThreatModel
from ._nearest import EXACT_MAX_POINTS, DistanceStatistics
from .base import Distribution, ExampleSet, Support, check_no_nan, keep_nan

__all__ = ["EmpiricalDistribution", "NearestSample", "DistanceStatistics", "NORMS", "METHODS", "EXACT_MAX_POINTS"]

#: accepted norms and their p
NORMS = {"l2": 2.0, "linf": math.inf, "l1": 1.0}
#: nearest-sample search methods
METHODS = ("auto", "brute", "kdtree")
#: distances held in memory at once by the chunked searches and statistics
_BUDGET = 1 << 22


def _norm_name(norm: Any, name: str = "norm") -> str:
    if isinstance(norm, ThreatModel):
        norm = norm.name
    table = {"l2": "l2", "linf": "linf", "l1": "l1", 2: "l2", 1: "l1", math.inf: "linf", "inf": "linf"}
    key = norm.lower() if isinstance(norm, str) else norm
    if isinstance(key, bool) or key not in table:
        raise ValueError(f"{name} must be 'l2', 'linf' or 'l1' (or 2, inf, 1, or a threat model), got {norm!r}")
    return table[key]


def _as_points(X: Any) -> torch.Tensor:
    try:
        t = torch.as_tensor(X.detach().cpu() if isinstance(X, torch.Tensor) else X)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"X must be a float tensor or array of shape (n, d), got {type(X).__name__}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"X must hold real numbers, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"X must have shape (n, d) with n >= 1 and d >= 1, got {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        row = int((~torch.isfinite(t)).any(1).nonzero()[0, 0])
        raise ValueError(f"X must be finite, got a non-finite value in row {row}")
    return t.contiguous()


def _as_labels(y: Any, n: int, n_classes: Any) -> tuple[torch.Tensor, int | None]:
    """Labels as int64 and K (None: -1/+1)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"y must be a tensor or array of n = {n} labels, got {type(y).__name__}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"y must hold integer labels, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {tuple(t.shape)}")
    if not bool((t == torch.round(t)).all()):
        raise ValueError(f"y must hold integer labels (0..K-1 or -1/+1), got {t[t != torch.round(t)][0].item()!r}")
    t = t.to(torch.int64)
    binary = bool(((t == 1) | (t == -1)).all()) and bool((t == -1).any())
    if binary and n_classes is None:
        return t, None
    if bool((t < 0).any()):
        raise ValueError(f"y must hold the labels 0..K-1 or -1/+1, got {int(t[t < 0][0])}")
    k = int(t.max()) + 1
    if n_classes is not None:
        k_given = int(check("n_classes", n_classes, integer_at_least(1)))
        if k_given < k:
            raise ValueError(f"n_classes must be at least max(y) + 1 = {k}, got {n_classes!r}")
        k = k_given
    return t, k


class EmpiricalDistribution(Distribution):
    """A finite labelled sample ``(X, y)`` with mass ``1/n`` per point; labels 0..K-1 (K classes) or -1/+1.

    Sampling draws points uniformly (through the counter-based streams of :func:`toyrobust.estimate_risk` too);
    ``_sample`` given labels draws uniformly within the class. The support is the sample; ``project`` sends a point
    to its nearest sample in ``norm`` and ``bayes_label`` gives that sample's label (1-NN), so the projection
    definition reads "the nearest training sample still has the original label". The class log-likelihoods are
    taken with respect to the counting measure (``log(multiplicity / n_y)`` on the sample, -inf off it), and the
    log-odds include the class frequencies (binary labels).

    Args:
        X: (n, d) points (tensor, array or nested lists; a 1-D sequence is n points of dimension 1).
        y: (n,) integer labels: -1/+1, or 0..K-1.
        norm: the norm of the nearest-sample projection, ``"l2"`` (default), ``"linf"`` or ``"l1"`` (use the
            threat's norm: :meth:`with_norm`).
        n_classes: K when some classes have no sample here (default: max(y) + 1; None for -1/+1 labels).
        method: nearest-sample search, ``"auto"`` (L2: chunked matrix products; Linf: a kd-tree on a CPU; else
            chunked ``torch.cdist``), ``"brute"`` or ``"kdtree"``.
        name: a short name for ``repr`` and tables (e.g. ``"digits"``).
    """

    cli_name = "empirical"
    cli_order = 50
    cli_presets = {"digits": ("digits", {"n": integer_at_least(20, typical_high=1797)})}
    projection_rule = ("x -> the nearest sample in the distribution's norm (equal distances: the lower index in L2 and "
                       "with method='brute'); exact duplicates keep the label of their first occurrence")
    #: examples for tests/test_distributions.py: valid keyword sets, and invalid ones with the parameter named
    valid_params: ClassVar[tuple] = ((("X", [[0.0], [1.0]]), ("y", [1, -1])),
                                     (("X", [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), ("y", [0, 2, 1])),
                                     (("X", [0.0, 1.0]), ("y", [1, 0]), ("norm", "linf")))
    invalid_params: ClassVar[tuple] = (((("X", [[0.0], [1.0]]), ("y", [1, 2, 3])), "y"),
                                       ((("X", [[0.0], [math.nan]]), ("y", [1, -1])), "X"),
                                       ((("X", [[0.0], [1.0]]), ("y", [-1, 2])), "y"),
                                       ((("X", [[0.0], [1.0]]), ("y", [0.5, 1])), "y"),
                                       ((("X", [[0.0], [1.0]]), ("y", [0, 1]), ("norm", "l3")), "norm"),
                                       ((("X", []), ("y", [])), "X"))

    def __init__(self, X: Any, y: Any, *, norm: Any = "l2", n_classes: int | None = None, method: str = "auto",
                 name: str | None = None):
        self._params = {}
        self.X = _as_points(X)
        self.n, self.dim = int(self.X.shape[0]), int(self.X.shape[1])
        self.y, self.n_classes = _as_labels(y, self.n, n_classes)
        self.norm = _norm_name(norm)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.method = method
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {type(name).__name__}")
        self.name = name
        self.labels = tuple(range(self.n_classes)) if self.n_classes is not None else (-1, 1)
        self._index = self._class_index(self.y)
        self.counts = torch.bincount(self._index, minlength=len(self.labels))
        # exact duplicates: every point answers with its first occurrence (one label per location)
        _, inverse = torch.unique(self.X, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), self.n, dtype=torch.int64).scatter_reduce(
            0, inverse, torch.arange(self.n), "amin")
        self._canon = first[inverse]
        self._cache: dict[Any, Any] = {}

    def _class_index(self, y: torch.Tensor) -> torch.Tensor:
        """Row of each (checked) label in the class-indexed tables: ``(y + 1) / 2`` for -1/+1, ``y`` for 0..K-1."""
        y = torch.as_tensor(y, dtype=torch.int64)
        return torch.div(y + 1, 2, rounding_mode="floor") if self.n_classes is None else y

    # ------------------------------------------------------------------------------------------- identity
    def __repr__(self) -> str:
        named = f"{self.name!r}, " if self.name else ""
        labels = "-1/+1" if self.n_classes is None else f"0..{self.n_classes - 1}"
        return f"EmpiricalDistribution({named}n={self.n}, dim={self.dim}, labels={labels}, norm={self.norm!r})"

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other.norm == self.norm and other.n_classes == self.n_classes
                and torch.equal(other.X, self.X) and torch.equal(other.y, self.y))

    def __hash__(self) -> int:
        return hash((self.n, self.dim, self.norm, float(self.X.sum()), int(self.y.sum())))

    @classmethod
    def cli_params(cls) -> dict[str, Any]:
        """``--param X=V1,V2,... --param y=L1,L2,...``: n points of dimension 1 (the ``digits`` preset for images)."""
        return {"X": None, "y": None}

    @classmethod
    def digits(cls, n: int | None = None, *, norm: Any = "l2") -> EmpiricalDistribution:
        """scikit-learn's bundled 8x8 handwritten digits (:func:`toyrobust.datasets.digits`, 1797 images in [0, 1],
        labels 0..9), the first ``n`` of them."""
        from ..datasets import digits

        X, y = digits(n=n, dtype=torch.float64)
        return cls(X, y, norm=norm, name="digits")

    def with_norm(self, norm: Any) -> EmpiricalDistribution:
        """The same sample with nearest samples taken in another norm (e.g. the threat's)."""
        out = EmpiricalDistribution.__new__(EmpiricalDistribution)
        out.__dict__.update(self.__dict__)
        out.norm, out._cache = _norm_name(norm), {}
        return out

    # ------------------------------------------------------------------------------------------- device copies
    def _data(self, device: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` on ``device`` in ``dtype`` (cached)."""
        key = ("data", str(torch.device(device)), dtype)
        if key not in self._cache:
            self._cache[key] = (self.X.to(device=device, dtype=dtype), self.y.to(device))
        return self._cache[key]

    # ------------------------------------------------------------------------------------------- sampling
    def draw(self, draws: Draws, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``draws.n`` points drawn uniformly from the sample (one uniform each), with their labels."""
        if not isinstance(draws, Draws):
            raise TypeError(f"draws must be a toyrobust.rng.Draws, got {type(draws).__name__}")
        from ..rng import resolve_dtype

        dtype = resolve_dtype(dtype)
        u = draws.uniform(1, torch.float64)[:, 0]
        idx = (u * self.n).to(torch.int64).clamp_(max=self.n - 1)
        X, y = self._data(draws.device, dtype)
        return X[idx], y[idx]

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        """Points given their labels: uniform among the samples of each label (one uniform each)."""
        check_labels(y, y.shape[0], self.n_classes)
        order = torch.argsort(self._index, stable=True).to(y.device)
        counts = self.counts.to(y.device)
        starts = torch.cumsum(counts, 0) - counts
        cls = self._class_index(y).to(y.device)
        if bool((counts[cls] == 0).any()):
            raise ValueError(f"y asks for a label with no sample in {self!r}")
        u = draws.uniform(1, torch.float64)[:, 0]
        k = torch.minimum((u * counts[cls]).to(torch.int64), counts[cls] - 1)
        X, _ = self._data(y.device, dtype)
        return X[order[starts[cls] + k]]

    # ------------------------------------------------------------------------------------------- labels
    def _check_one_label(self, y: Any) -> Any:
        if isinstance(y, torch.Tensor) and y.ndim:
            return check_labels(y, y.shape[0], self.n_classes)
        y = y.item() if isinstance(y, torch.Tensor) else y
        if isinstance(y, bool) or y not in self.labels:
            if self.n_classes is None:
                raise ValueError(f"y must be -1 or +1, got {y!r}")
            raise ValueError(f"y must be one of the labels 0..{self.n_classes - 1}, got {y!r}")
        return y

    def _check_labels(self, y: Any, n: int) -> None:
        check_labels(y, n, self.n_classes)

    # ------------------------------------------------------------------------------------------- nearest samples
    def nearest(self, x: torch.Tensor, norm: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest sample of each row of ``x``: ``(distances (N,), indices (N,))`` in ``norm`` (default: the
        distribution's), exact (see the module docstring), with exact duplicates mapped to their first occurrence.

        Args:
            x: (N, dim) floating-point points (NaN rows are refused).
            norm: "l2", "linf" or "l1" (or 2, inf, 1, a threat model); None: the distribution's norm.
        """
        self._check_x(x)
        check_no_nan(x)
        norm = self.norm if norm is None else _norm_name(norm)
        d, idx = self._nearest(x.detach(), norm)
        return d.to(x.dtype), self._canon.to(idx.device)[idx]

    def _nearest(self, x: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
        from ._nearest import nearest_brute, nearest_kdtree

        method = self.method
        if method == "auto":
            method = "kdtree" if norm == "linf" and x.device.type == "cpu" else "brute"
        if x.shape[0] == 0:
            return x.new_zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.int64, device=x.device)
        if method == "kdtree":
            return nearest_kdtree(self, x, norm)
        return nearest_brute(self, x, norm)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """The nearest sample (NaN rows stay NaN)."""
        nan = torch.isnan(x).any(1)
        safe = torch.where(nan[:, None], torch.zeros_like(x), x)
        _, idx = self.nearest(safe)
        X, _ = self._data(x.device, x.dtype)
        return keep_nan(x, X[idx], rows=True)

    def project(self, x: torch.Tensor, norm: Any = None) -> torch.Tensor:
        """The nearest sample to each row of ``x`` (N, dim) in ``norm`` (default: the distribution's); NaN stays
        NaN. See :attr:`projection_rule` for ties."""
        self._validate(x, "project")
        if norm is not None and _norm_name(norm) != self.norm:
            return self.with_norm(norm)._project(x)
        return self._project(x)

    def bayes_label(self, x: torch.Tensor, *, check: bool = True, norm: Any = None) -> torch.Tensor:
        """The label of the nearest sample (1-NN) of each row of ``x``, in ``norm`` (default: the distribution's).

        Raises:
            ValueError: a row of ``x`` contains NaN.
        """
        self._check_x(x)
        _, idx = self.nearest(x, norm)
        return self.y.to(x.device)[idx]

    def bayes_classifier(self) -> NearestSample:
        """The 1-NN classifier: the label of the nearest sample (the Bayes label of the projection)."""
        return NearestSample(self)

    def named_classifiers(self) -> dict[str, Classifier]:
        """``bayes``: the 1-NN classifier."""
        return {"bayes": self.bayes_classifier()}

    # ------------------------------------------------------------------------------------------- densities
    def _tolerance(self, x: torch.Tensor) -> torch.Tensor:
        """Distance up to which a point counts as a sample point (rounding of ``x``'s dtype)."""
        scale = 1 + x.detach().abs().amax(1)
        return 4 * math.sqrt(self.dim) * torch.finfo(x.dtype).eps * scale

    def _on_sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, idx = self.nearest(x)
        return d <= self._tolerance(x).to(d.dtype), idx

    def _multiplicity(self) -> torch.Tensor:
        """(n, K) for each sample: how many samples of each class sit at its location (rows of first occurrences)."""
        if "mult" not in self._cache:
            m = torch.zeros(self.n, len(self.labels), dtype=torch.float64)
            m.index_put_((self._canon, self._index), torch.ones(self.n, dtype=torch.float64), accumulate=True)
            self._cache["mult"] = m
        return self._cache["mult"]

    def log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``log p(x | y)`` (counting measure): ``log(multiplicity of x in class y / n_y)`` on the sample, -inf off
        it. ``y`` is one label or a tensor of labels (one per row)."""
        self._validate(x, "log_likelihood")
        return self._log_likelihood(x, self._check_one_label(y))

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        on, idx = self._on_sample(x)
        col = torch.as_tensor(y, device=x.device)
        col = col.expand(x.shape[0]) if col.ndim == 0 else col
        k = self._class_index(col.cpu())
        mult = self._multiplicity()[idx.cpu(), k] / self.counts[k].clamp(min=1).to(torch.float64)
        out = torch.where(on.cpu() & (mult > 0), torch.log(mult), torch.tensor(-math.inf, dtype=torch.float64))
        return out.to(device=x.device, dtype=x.dtype)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``log(count_+1(x)) - log(count_-1(x))`` (class frequencies included): +-inf on the sample, NaN off it."""
        if self.n_classes is not None:
            raise TypeError(f"log_odds is for labels -1/+1; {self!r} has {self.n_classes} classes: use "
                            "log_likelihood(x, y) per class")
        on, idx = self._on_sample(x)
        m = self._multiplicity()[idx.cpu()]
        out = torch.log(m[:, 1]) - torch.log(m[:, 0])
        out = torch.where(on.cpu(), out, torch.tensor(math.nan, dtype=torch.float64))
        return out.to(device=x.device, dtype=x.dtype)

    def _support(self) -> Support:
        def contains(x: torch.Tensor) -> torch.Tensor:
            return self._on_sample(x)[0]

        return Support(f"the {self.n} sample points ({self.dim}-D, labels {self._label_words()})", contains)

    def _label_words(self) -> str:
        return "-1/+1" if self.n_classes is None else f"0..{self.n_classes - 1}"

    # ------------------------------------------------------------------------------------------- seed 001's facts
    def distance_statistics(self, norm: Any = None) -> DistanceStatistics:
        """Within- and between-class distances (seed 001's heatmaps) in ``norm`` (default: the distribution's),
        computed in row blocks holding about 4M distances at once (cached per norm)."""
        norm = self.norm if norm is None else _norm_name(norm)
        key = ("stats", norm)
        if key not in self._cache:
            from ._nearest import distance_statistics

            self._cache[key] = distance_statistics(self, norm)
        return self._cache[key]

    def label_invariant_radius(self, p: float, coords: Any = None) -> float:
        """Half the smallest ``p``-distance between samples of different classes: below it no perturbation of a
        sample can bring it nearer (in that norm) to a sample of another class, so the nearest-sample label of
        every point of the ball stays put; at it, the midpoint of the closest pair is a tie (the supremum is
        attained exactly there when the projection uses the same norm). Infinite with one class."""
        if coords is not None and L2(0, coords=coords).coord_indices(self.dim) != list(range(self.dim)):
            raise NotImplementedError("the label-invariant radius of an empirical sample is known for balls on every "
                                      "coordinate only")
        return self.distance_statistics(_norm_name(p, "p")).radius

    def class_radius(self, norm: Any = None) -> dict[int, float]:
        """Seed 001's per-class eps: for each class, half the smallest distance from one of its samples to a sample
        of another class (in ``norm``; default: the distribution's)."""
        return self.distance_statistics(norm).class_radius()

    def describe(self) -> dict[str, str]:
        """Parameters, support, projection rule, Bayes rule, class counts and the label-invariant radius per norm."""
        counts = ", ".join(f"{lab}: {int(c)}" for lab, c in zip(self.labels, self.counts.tolist(), strict=True))
        out = {"distribution": repr(self), "dimension": str(self.dim), "support": self.support.description,
               "projection": self.projection_rule,
               "log-odds": "(degenerate: +oo on the y=+1 sample points, -oo on the y=-1 ones, no data elsewhere)"
               if self.n_classes is None else "(K classes: log p(x | y) = log(multiplicity / n_y) on the sample)",
               "bayes rule": f"the label of the nearest sample (1-NN) in {self.norm}", "class counts": counts}
        if self.n <= 20_000:
            for norm in NORMS:
                out[f"label-invariant radius ({norm})"] = f"{self.distance_statistics(norm).radius:.6g}"
        return out

    # ------------------------------------------------------------------------------------------- exact decisions
    def supports_exact_attack(self, clf: Any, threat: Any, definition: str) -> bool:
        """Whether :meth:`exact_attack` decides this case: the L2 nearest-sample projection, a ball on every
        coordinate, at most :data:`EXACT_MAX_POINTS` distinct points, and the 1-NN classifier of this sample (any
        definition) or a numeric linear classifier (projection, error-region; labels -1/+1)."""
        from ._nearest import supports_cells

        own = isinstance(clf, NearestSample) and clf.dist == self
        return supports_cells(self, clf, own, threat, definition)

    def exact_attack(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                     definition: str) -> torch.Tensor:
        """Points of the ball around each row of ``x`` that qualify under ``definition`` wherever one exists (the
        clean point elsewhere), by deciding each Voronoi cell of the sample exactly (:mod:`._cells`)."""
        from ._nearest import attack_cells

        return attack_cells(self, clf, x, y, threat, definition)

    def vulnerable(self, clf: Any, threat: ThreatModel, definition: str) -> torch.Tensor:
        """Bool (n,): whether each sample point has a qualifying point in its ball (exact; the closed forms of
        :mod:`toyrobust.risks.empirical` average it)."""
        X, y = self._data("cpu", torch.float64)
        x_adv = self.exact_attack(clf, X, y, threat, definition)
        from ..definitions import is_adversarial

        with torch.no_grad():
            return is_adversarial(definition, clf, threat.project(x_adv, X), y, dist=self, x=X)

    # ------------------------------------------------------------------------------------------- strategies, examples
    @classmethod
    def strategy(cls, max_n: int = 8, max_dim: int = 3, binary: bool = True, norm: str = "l2") -> Any:
        """Small samples: 2..max_n distinct points with integer-and-half coordinates in [-3, 3] (so distances have
        ties only where they should), dimension 1..max_dim, labels -1/+1 with both present (``binary``) or 0..2."""
        from hypothesis import strategies as st

        def build(dim: int, data: Any) -> EmpiricalDistribution:
            coord = st.integers(-6, 6).map(lambda v: v / 2)
            pts = data.draw(st.lists(st.tuples(*[coord] * dim), min_size=2, max_size=max_n, unique=True))
            labels = [1, -1] if binary else [0, 1, 2]
            y = data.draw(st.lists(st.sampled_from(labels), min_size=len(pts), max_size=len(pts)).filter(
                lambda v: len(set(v)) >= 2))
            return cls([list(p) for p in pts], y, norm=norm)

        return st.builds(build, st.integers(1, max_dim), st.data())

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        dist = cls([[0.0, 0.0], [1.0, 0.2], [0.2, 1.1], [2.0, 1.0], [1.6, 2.2], [2.8, 2.6]],
                   [1, 1, -1, -1, 1, -1], name="six points")
        return [ExampleSet("empirical six points 2-D", dist,
                           (("1-NN (Bayes)", dist.bayes_classifier()), ("linear", Linear([1.0, 0.5], -1.6))),
                           (L2(0.4), Linf(0.3)))]


class NearestSample(Classifier):
    """The 1-NN classifier of an :class:`EmpiricalDistribution`: the label of the nearest sample in its norm.

    Binary samples (labels -1/+1): ``margin(x) = d_-1(x) - d_+1(x)``, the distances to the nearest sample of each
    class (positive means +1). K classes: ``scores(x) = -(d_0(x), ..., d_{K-1}(x))`` (N, K). Both differentiable
    (PGD attacks them); ``predict`` is the distribution's ``bayes_label`` (ties as its projection), so this is
    exactly ``Bayes(proj(x))``.
    """

    def __init__(self, dist: EmpiricalDistribution):
        if not isinstance(dist, EmpiricalDistribution):
            raise TypeError(f"dist must be an EmpiricalDistribution, got {type(dist).__name__}")
        self.dist = dist
        self.dim = dist.dim
        self.n_classes = dist.n_classes

    def __repr__(self) -> str:
        return f"NearestSample({self.dist!r})"

    def class_distances(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) distance to the nearest sample of each class (inf for a class with none); differentiable."""
        d = self.dist
        X, _ = d._data(x.device, x.dtype)
        D = torch.cdist(x, X, p=NORMS[d.norm])
        cols = []
        for k in range(len(d.labels)):
            mask = (d._index == k).to(x.device)
            cols.append(D[:, mask].amin(1) if bool(mask.any()) else torch.full_like(D[:, 0], math.inf))
        return torch.stack(cols, 1)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_classes is None:
            return self.margin(x)
        self.dist._check_x(x)
        return -self.class_distances(x)

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_classes is not None:
            raise ValueError(f"{self!r} has {self.n_classes} classes: no binary margin; use scores(x)")
        self.dist._check_x(x)
        dist = self.class_distances(x)
        return dist[:, 0] - dist[:, 1]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.dist.bayes_label(x)

    def margin_expr(self, x: Any = None) -> sympy.Expr:
        raise NotImplementedError("the 1-NN rule of a sample has no closed-form margin: the label of the nearest "
                                  "sample")
