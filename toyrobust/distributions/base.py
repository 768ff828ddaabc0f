"""The distribution base class: parameter checks, sampling plumbing, and the posterior from the log-odds."""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeAlias

import numpy as np
import sympy
import torch

from ..blocks import Blocks, point_symbols
from ..classifiers import Classifier
from ..constraints import Constraint, check, is_symbolic
from ..registry import Registry
from ..rng import Draws, GeneratorDraws, make_generator, resolve_device, resolve_dtype

__all__ = ["Distribution", "Support", "LABELS", "ExampleSet", "LinearBayesRegions", "registered_distributions",
           "unregister_distribution", "cli_constructors", "SampleTooLargeError", "check_draw_size",
           "available_memory", "NumberOrExpr", "IntOrExpr", "VectorLike"]

# what the distributions' constructors accept (annotations; the checks themselves are the parameters' constraints)
#: a real parameter: a number (int, float, numpy scalar) or a sympy expression, e.g. ``Symbol("p", positive=True)``
NumberOrExpr: TypeAlias = float | sympy.Expr
#: an integer parameter (a dimension): an int, or a sympy expression such as ``Symbol("D", integer=True)``
IntOrExpr: TypeAlias = int | sympy.Expr
#: a vector parameter: a sequence of :data:`NumberOrExpr`, a 1-D tensor or array, or ``Blocks([(value, count), ...])``
VectorLike: TypeAlias = Sequence[NumberOrExpr] | torch.Tensor | np.ndarray | Blocks

#: the two labels, in the order used for class-indexed results
LABELS = (-1, 1)


# ---------------------------------------------------------------------------------------------------- draw sizes
#: draws whose points take fewer bytes than this are never checked against the free memory (reading it costs ~0.1 ms)
DRAW_CHECK_BYTES = 1 << 28


class SampleTooLargeError(ValueError):
    """A draw of (n, dim) points that cannot fit in the memory available on its device (see :func:`check_draw_size`)."""


def available_memory(device: Any) -> tuple[int, str] | None:
    """``(bytes, where the figure comes from)`` a new tensor on ``device`` may take, or None when unknown.

    CUDA: the device's free memory plus what torch's caching allocator holds unused. CPU: the smallest of the
    available physical memory (psutil's ``available``, else ``MemAvailable`` of /proc/meminfo, else
    ``os.sysconf``), the room left under the address-space limit (``RLIMIT_AS``) and under a cgroup v2 memory limit.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        except (RuntimeError, AssertionError):
            return None
        return int(free + max(cached, 0)), f"free memory of {device}"
    if device.type != "cpu":
        return None
    found: list[tuple[int, str]] = []
    try:
        import psutil

        found.append((int(psutil.virtual_memory().available), "available memory"))
    except ImportError:
        with contextlib.suppress(OSError, ValueError, StopIteration):
            with open("/proc/meminfo", encoding="ascii") as fh:
                line = next(t for t in fh if t.startswith("MemAvailable:"))
            found.append((int(line.split()[1]) * 1024, "available memory"))
        if not found and hasattr(os, "sysconf"):
            with contextlib.suppress(OSError, ValueError):
                found.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free memory"))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm", encoding="ascii") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            found.append((max(soft - used, 0), "room under the address-space limit (RLIMIT_AS)"))
    with contextlib.suppress(OSError, ValueError):
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
                used = int(fh.read().strip())
            found.append((max(int(limit) - used, 0), "room under the cgroup memory limit"))
    return min(found) if found else None


def _size(b: int) -> str:
    """A byte count for people: 37.3 GiB."""
    if b >= 2**80:
        return f"about 2**{b.bit_length() - 1} bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.3g} {unit}" if unit != "bytes" else f"{b} bytes"
        b /= 1024
    raise AssertionError("unreachable")


def check_draw_size(n: int, dim: Any, device: Any, dtype: torch.dtype, *, what: str = "sample",
                    advice: str | None = None) -> None:
    """Raise :class:`SampleTooLargeError` (a ValueError) before allocating when ``n`` points of dimension ``dim``
    (``n * dim * itemsize`` bytes for the points alone) exceed the memory :func:`available_memory` finds on
    ``device``; the message says what was asked, the bytes it needs and what to do instead. Draws below
    :data:`DRAW_CHECK_BYTES`, a symbolic ``dim``, or a device whose free memory is unknown are not checked; a draw
    that passes may still fail (drawing briefly holds about twice the points), one that is refused cannot fit.

    Args:
        n: points drawn at once; dim: their dimension; device, dtype: where and how they are drawn.
        what: the caller, named in the message; advice: what to do (default: fewer points, or the closed form).
    """
    if is_symbolic(dim):
        return
    itemsize = torch.finfo(dtype).bits // 8
    per_point = int(dim) * itemsize
    need = int(n) * per_point
    if need < DRAW_CHECK_BYTES:
        return
    found = available_memory(device)
    if found is None or need <= found[0]:
        return
    avail, source = found
    if advice is None:
        advice = ("draw fewer points at once (n here; chunk_size for tr.estimate_risk and "
                  "toyrobust.montecarlo.iter_samples), or use the closed form tr.risk(dist, clf, threat), which draws "
                  "nothing")
    if per_point > avail:
        advice = "even one point does not fit: use the closed form tr.risk(dist, clf, threat), which draws nothing"
    exact = f"{need:,} bytes ({_size(need)})" if need < 2**80 else f"{_size(need)}"
    shown_dim = dim if int(dim) < 10**15 else f"{int(dim):.4g}"
    points = "1 point needs" if n == 1 else f"{n} points need"
    raise SampleTooLargeError(
        f"{what}: {points} {exact} for the points alone, at dimension {shown_dim} in "
        f"{str(dtype).replace('torch.', '')} ({_size(per_point)} per point): more than the {_size(avail)} of "
        f"{source} on {torch.device(device)}; {advice}")


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


@dataclass(frozen=True)
class ExampleSet:
    """Cases a distribution offers to the cross-check: one instance, named classifiers, threats to attack with.

    Attributes:
        group: the heading of the rows, e.g. ``"tsipras p=0.9 eta=3"``.
        dist: the distribution instance.
        classifiers: ``(short name, classifier)`` pairs.
        threats: threat models; every definition is checked at the first one (all of them when ``every_definition``)
            and the ball definition at the others in quick mode, every pair at full size.
        skip_quick: definitions left out of the quick run (e.g. slow PGD-type attacks in high dimension).
        every_definition: in quick mode, check every definition at every threat (cheap 1-D cases).
    """

    group: str
    dist: Any
    classifiers: tuple[tuple[str, Any], ...]
    threats: tuple[Any, ...]
    skip_quick: tuple[str, ...] = ()
    every_definition: bool = False


#: every distribution class with a command-line name, in the order the classes were defined and imported
_REGISTRY: Registry = Registry("distribution")


def registered_distributions() -> dict[str, type[Distribution]]:
    """Every registered distribution class by command-line name, in ``cli_order`` (registration happens when a
    subclass with a ``cli_name`` is defined, so a new distribution is its module and nothing else)."""
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[1].cli_order, item[0])))


def unregister_distribution(name: str) -> type[Distribution]:
    """Remove the distribution registered as ``name`` and return its class (for tests that define a throwaway
    distribution with a ``cli_name``; the package's own classes stay registered)."""
    if name not in _REGISTRY:
        raise ValueError(f"distribution={name!r} is not registered; registered: {_REGISTRY.listing()}")
    return _REGISTRY.pop(name)


def cli_constructors() -> dict[str, tuple[Callable[..., Any], dict[str, Constraint | None]]]:
    """Command-line names -> (constructor, accepted parameters and their constraints): every registered class
    and every preset a class declares in ``cli_presets`` (e.g. ``robust-nonrobust``)."""
    out: dict[str, tuple[Callable[..., Any], dict[str, Constraint | None]]] = {}
    for name, cls in registered_distributions().items():
        out[name] = (cls, cls.cli_params())
        for preset, (method, params) in cls.cli_presets.items():
            out[preset] = (getattr(cls, method), dict(params))
    return out


class Distribution:
    """A binary toy distribution with labels -1/+1 and equal priors.

    Subclasses declare ``arg_constraints`` (parameter name -> :class:`~toyrobust.constraints.Constraint`) and
    implement private hooks that hold only the maths: ``_sample``, ``_log_likelihood`` (``_log_odds`` when the
    difference of the class log-likelihoods is not the best formula), ``_log_likelihood_expr``/``_log_odds_expr``,
    ``_support``, ``_project`` and ``bayes_classifier``. The public methods (``sample``, ``log_likelihood``,
    ``log_odds``, ``posterior``, ``project``, ``support.contains``, ``bayes_label``, ``label_region_projection``,
    ...) validate their inputs here, once, like scipy.stats: ``x`` a floating-point (N, dim) tensor, labels -1/+1,
    and numeric parameters for the torch maths (sympy parameters are fine for the ``*_expr`` methods).

    A distribution also owns the facts that other layers ask about it, so that nothing above keeps a list of
    distributions: its label regions (:meth:`label_region_projection`, :meth:`label_halfspace`,
    :meth:`label_shell`), its
    label-invariant radius, its named classifiers, its hypothesis strategy and its cross-check examples. A
    subclass with a ``cli_name`` registers itself (:func:`registered_distributions`); closed-form risks and the
    optimal risk are registered beside it in its risks module.
    """

    arg_constraints: ClassVar[dict[str, Constraint]] = {}
    #: name on the command line
    cli_name: ClassVar[str] = ""
    #: how ``project`` works, ties included (shown by ``toyrobust describe``)
    projection_rule: ClassVar[str] = ""
    #: position in tables and listings (ties: by name)
    cli_order: ClassVar[int] = 100
    #: extra command-line names built by a classmethod: ``{name: (method name, {parameter: constraint})}``
    cli_presets: ClassVar[dict[str, tuple[str, dict[str, Constraint | None]]]] = {}
    #: None: labels -1/+1 (every toy law); K: labels 0..K-1 (an empirical sample with K classes)
    n_classes: ClassVar[int | None] = None
    #: public torch methods whose maths reads no parameter, so they also run with sympy parameters
    #: (e.g. ``{"project", "support.contains"}`` when the support does not depend on the parameters)
    symbolic_ok: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("cli_name", "")
        if name:
            _REGISTRY.register(name, cls)  # a second class under a taken name is refused (a re-import is not)

    @classmethod
    def cli_params(cls) -> dict[str, Constraint | None]:
        """The constructor's parameters accepted on the command line (None: parsed as a comma list)."""
        return dict(cls.arg_constraints)

    def _init_params(self, **params: Any) -> None:
        self._params = {}
        for name, value in params.items():
            constraint = self.arg_constraints[name]
            value = check(name, value, constraint)
            if not constraint.integer and isinstance(value, int) and not _fits_float(value):
                raise ValueError(f"{name} must be {constraint.name} within the float range, got an integer with "
                                 f"{len(str(abs(value)))} digits")
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

    # ------------------------------------------------------------------ validation (the one place)
    def _check_x(self, x: Any, name: str = "x") -> None:
        """Refuse anything but a floating-point tensor of shape (N, dim); the message names ``name``, what was
        received and what is allowed."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N, {self.dim}), "
                            f"got {type(x).__name__}")
        if x.ndim != 2 or (not is_symbolic(self.dim) and x.shape[1] != self.dim):
            raise ValueError(f"{name} must have shape (N, {self.dim}) for {self!r}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got dtype {x.dtype}")

    def require_numeric(self, what: str) -> None:
        """TypeError naming ``what`` when a parameter is symbolic (numeric methods and estimators need numbers)."""
        if self.is_symbolic:
            raise TypeError(f"{what} needs numeric parameters, got {self!r}; substitute numbers first")

    def _validate(self, x: Any, what: str, name: str = "x") -> None:
        """The checks of a public method taking points: ``x`` a float (N, dim) tensor, and numeric parameters
        unless ``what`` is in :attr:`symbolic_ok`."""
        self._check_x(x, name)
        if what not in self.symbolic_ok:
            self.require_numeric(what)

    def _check_labels(self, y: Any, n: int) -> None:
        """``y`` a tensor of shape (n,) (its values, -1/+1, are not read here: that would synchronise a GPU)."""
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (n,):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be a tensor of labels -1/+1 of shape ({n},), got {got}")

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
        self.require_numeric("sample")
        dtype = resolve_dtype(dtype)
        gen_device = generator.device if isinstance(generator, torch.Generator) else (
            resolve_device(device) if device is not None else torch.device("cpu"))
        gen = make_generator(generator, gen_device)
        x, y = self.draw(GeneratorDraws(gen, n), dtype)
        target = torch.device(device) if device is not None else gen.device
        return x.to(target), y.to(target)

    def draw(self, draws: Draws, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``draws.n`` labelled points made from a source of random numbers (on its device).

        The label comes first (:meth:`Draws.signs`), then the point given the label; each distribution asks for
        its numbers in a fixed order, so one source gives one set of points. Monte Carlo estimates pass rows of a
        counter-based stream (:class:`toyrobust.rng.CounterStream`), :meth:`sample` a ``torch.Generator``.

        Args:
            draws: the random numbers (:class:`toyrobust.rng.Draws`).
            dtype: float32 or float64 (default: torch's default dtype).

        Returns:
            ``(x, y)``: x of shape (n, dim), y of shape (n,) int64 in {-1, +1}.
        """
        if not isinstance(draws, Draws):
            raise TypeError(f"draws must be a toyrobust.rng.Draws, got {type(draws).__name__}")
        self.require_numeric("draw")
        dtype = resolve_dtype(dtype)
        check_draw_size(draws.n, self.dim, draws.device, dtype, what=f"{type(self).__name__}.sample")  # before any
        y = draws.signs()
        return self._sample(y, draws, dtype), y

    def _sample(self, y: torch.Tensor, draws: Draws, dtype: torch.dtype) -> torch.Tensor:
        """Hook: points (len(y), dim) given their labels ``y`` (on ``draws.device``); numeric parameters."""
        raise NotImplementedError(f"{type(self).__name__} cannot sample: implement _sample")

    # ------------------------------------------------------------------ densities
    def log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """``log p(x | y)`` of shape (N,) (density w.r.t. the support's natural measure; -inf off it).

        Args:
            x: (N, dim) floating-point points.
            y: a label -1/+1, or a tensor of labels (one per row).
        """
        self._validate(x, "log_likelihood")
        return self._log_likelihood(x, _check_label(y))

    def _log_likelihood(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """Hook: ``log p(x | y)`` for a validated ``x`` and label(s) ``y``."""
        raise NotImplementedError(f"{type(self).__name__} has no log-likelihood: implement _log_likelihood")

    def log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(y=+1 | x) - log p(y=-1 | x)`` of shape (N,); NaN where both likelihoods vanish."""
        self._validate(x, "log_odds")
        return self._log_odds(x)

    def _log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """Hook: the log-odds of a validated ``x`` (default: the difference of the class log-likelihoods)."""
        return self._log_likelihood(x, 1) - self._log_likelihood(x, -1)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """``p(y=+1 | x)`` of shape (N,) (equal priors): ``sigmoid(log_odds)``; NaN off the support."""
        return torch.sigmoid(self.log_odds(x))

    def log_likelihood_expr(self, y: int, x: Any = None) -> sympy.Expr:
        """``log p(x | y)`` as a sympy expression of a symbolic point (default: :func:`point_symbols`)."""
        return self._log_likelihood_expr(_check_label(y), self._point(x))

    def _log_likelihood_expr(self, y: int, x: Any) -> sympy.Expr:
        """Hook: ``log p(x | y)`` for a checked label ``y`` and a symbolic point ``x``."""
        raise NotImplementedError(f"{type(self).__name__} has no symbolic log-likelihood")

    def log_odds_expr(self, x: Any = None) -> sympy.Expr:
        """The log-odds as a sympy expression of a symbolic point."""
        return self._log_odds_expr(self._point(x))

    def _log_odds_expr(self, x: Any) -> sympy.Expr:
        """Hook: the symbolic log-odds (default: the difference of the class log-likelihoods)."""
        return self._log_likelihood_expr(1, x) - self._log_likelihood_expr(-1, x)

    def posterior_expr(self, x: Any = None) -> sympy.Expr:
        """``p(y=+1 | x) = 1 / (1 + exp(-log_odds))`` as a sympy expression."""
        return 1 / (1 + sympy.exp(-self.log_odds_expr(x)))

    def _point(self, x: Any) -> Any:
        return point_symbols(self.dim) if x is None else x

    # ------------------------------------------------------------------ geometry
    @property
    def support(self) -> Support:
        """The support of the data (both classes); its ``contains`` validates its points like :meth:`project`."""
        raw = self._support()

        def contains(x: torch.Tensor) -> torch.Tensor:
            self._validate(x, "support.contains")
            return raw.contains(x)

        return Support(raw.description, contains)

    def _support(self) -> Support:
        """Hook: the support, whose ``contains`` receives validated points."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its support: implement _support")

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The orthogonal (Euclidean) projection of each row of ``x`` (N, d) onto the support (see
        :attr:`projection_rule` for ties; NaN stays NaN)."""
        self._validate(x, "project")
        return self._project(x)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Hook: the projection of a validated ``x``."""
        raise NotImplementedError(f"{type(self).__name__} has no projection onto its support: implement _project")

    def bayes_classifier(self) -> Classifier:
        """The Bayes-optimal classifier (sign of the log-odds; on degenerate supports, the label of the
        projection)."""
        raise NotImplementedError(f"{type(self).__name__} has no Bayes classifier: implement bayes_classifier")

    def bayes_label(self, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Labels -1/+1 of the Bayes classifier at the rows of ``x``.

        Args:
            x: (N, d) points.
            check: refuse NaN rows (a host synchronisation on a GPU); attack loops, whose iterates are finite by
                construction, pass False.

        Raises:
            ValueError: a row of ``x`` contains NaN (it has no label; ``project`` keeps NaN as NaN).
        """
        self._check_x(x)
        if check:
            check_no_nan(x)
        return self.bayes_classifier().predict(x)

    def projected_bayes_label(self, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """``Bayes(proj(x))``: the Bayes label at the projection of each row of ``x`` (N, d) onto the support, the
        truth the projection and error-region definitions read (Stutz, seed 000). Same arguments as
        :meth:`bayes_label`; a distribution may answer without building the projected points
        (:meth:`_projected_bayes_label`), always with the same labels."""
        self._validate(x, "project")  # the checks of project(x), which this answers for
        if check:
            check_no_nan(x)
        return self._projected_bayes_label(x)

    def _projected_bayes_label(self, x: torch.Tensor) -> torch.Tensor:
        """Hook: :meth:`projected_bayes_label` of checked ``x`` (default: project, then the Bayes label)."""
        return self.bayes_label(self._project(x), check=False)

    # ------------------------------------------------------------------ facts other layers ask for
    def label_region_projection(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Euclidean projection of each row of ``z`` (N, d) onto ``R_y = {z : Bayes(proj(z)) = y}`` (y: (N,) labels).

        Points already in ``R_y`` are returned unchanged; the others land a few ulps inside. None when the
        distribution does not know its label regions (attacks then fall back to bisection).
        """
        self._validate(z, "label_region_projection", "z")
        self._check_labels(y, z.shape[0])
        return self._label_region_projection(z, y)

    def _label_region_projection(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Hook: :meth:`label_region_projection` of validated ``z`` and ``y`` (None: unknown)."""
        return None

    def label_halfspace(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``R_y`` as half-spaces ``{<a_i, z> >= beta_i}`` (``a`` (N, d), ``beta`` (N,)) when it is one, else None."""
        self._validate(z, "label_halfspace", "z")
        self._check_labels(y, z.shape[0])
        return self._label_halfspace(z, y)

    def _label_halfspace(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Hook: :meth:`label_halfspace` of validated ``z`` and ``y`` (None: not a half-space)."""
        return None

    def label_shell(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``R_y`` as a radial shell ``{lo_i <= ||z|| <= hi_i}`` (``lo``, ``hi`` (N,), ``hi`` may be inf, a few ulps
        inside) when it is one, else None."""
        self._validate(z, "label_shell", "z")
        self._check_labels(y, z.shape[0])
        return self._label_shell(z, y)

    def _label_shell(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Hook: :meth:`label_shell` of validated ``z`` and ``y`` (None: not a shell)."""
        return None

    def label_region_pieces(self, label: int) -> list[list[tuple[Any, float, bool]]] | None:
        """``R_label = {z : Bayes(proj(z)) = label}`` as a union of polyhedra, or None when it is not one (or the
        parameters are symbolic).

        Each piece is a list of rows ``(a, c, strict)`` meaning ``<a, z> <= c`` (``< c`` when ``strict``), with
        ``a`` a float64 numpy array of shape (d,). The exact projection/error-region attacks and the verifier read
        these, so a distribution with polyhedral label regions gets both without another edit.
        """
        label = _check_label(label)
        return None if self.is_symbolic else self._label_region_pieces(int(label))

    def _label_region_pieces(self, label: int) -> list[list[tuple[Any, float, bool]]] | None:
        """Hook: :meth:`label_region_pieces` for a checked label and numeric parameters (None: not polyhedral)."""
        return None

    #: radius below which the projection of every point of a ball around a support point is that support point
    #: itself (None: unknown or zero); e.g. 1 on the hypercube, where coordinates keep their sign
    projection_fixed_below: ClassVar[Any] = None

    def label_invariant_radius(self, p: float, coords: Any = None) -> Any:
        """Seed 001's quantitative epsilon: the largest eps such that no support point's projected Bayes label
        changes within its Lp ball (``p`` in 1, 2, inf; ``coords`` the perturbed coordinates, None for all)."""
        raise NotImplementedError(f"no label-invariant radius known for {type(self).__name__}")

    def named_classifiers(self) -> dict[str, Classifier]:
        """Classifiers with a name on the command line (``bayes`` always; e.g. ``robust``, ``maxmargin``)."""
        return {"bayes": self.bayes_classifier()}

    # ------------------------------------------------------------------ hypothesis strategies
    @classmethod
    def param_strategies(cls, **overrides: Any) -> dict[str, Any]:
        """One hypothesis strategy per parameter of ``arg_constraints``, from its constraint's ``typical`` range
        (end points included).

        Args:
            overrides: ``name=strategy`` replaces a parameter's strategy, ``name=value`` fixes it, and
                ``max_<name>=k`` lowers the top of its typical range to ``k`` (e.g. ``max_d=5``).
        """
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        overrides, out = dict(overrides), {}
        for name, constraint in cls.arg_constraints.items():
            cap = overrides.pop(f"max_{name}", None)
            if name in overrides:
                if cap is not None:
                    raise TypeError(f"{cls.__name__}.strategy: give {name} or max_{name}, not both")
                value = overrides.pop(name)
                out[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
            elif cap is not None:
                low = constraint.typical[0]
                if not cap >= low:
                    raise ValueError(f"max_{name} must be >= {low} (the low end of {name}'s typical range), "
                                     f"got {cap!r}")
                out[name] = replace(constraint, typical=(low, cap)).strategy()
            else:
                out[name] = constraint.strategy()
        if overrides:
            allowed = [f"{n}, max_{n}" for n in cls.arg_constraints]
            raise TypeError(f"{cls.__name__}.strategy got unknown argument(s) {sorted(overrides)}; allowed: "
                            f"{', '.join(allowed) or '(none)'}")
        return out

    @classmethod
    def strategy(cls, **overrides: Any) -> Any:
        """A hypothesis strategy drawing valid instances: ``cls(**params)`` with every parameter of
        ``arg_constraints`` drawn by :meth:`param_strategies` (which takes the same keyword arguments).

        A distribution overrides this only where its constraints do not say enough: a vector parameter (the mean
        of a Gaussian mixture), or parameters that depend on each other (``r_inner < r_outer``).

        Raises:
            NotImplementedError: the constructor needs a parameter that ``arg_constraints`` does not describe.
        """
        missing = cls._unconstrained_params()
        if missing:
            raise NotImplementedError(
                f"{cls.__name__} has no hypothesis strategy: its constructor needs {', '.join(missing)}, which "
                f"arg_constraints does not describe; override {cls.__name__}.strategy to draw it")
        from hypothesis import strategies as st  # hypothesis is an optional (test) dependency

        return st.builds(cls, **cls.param_strategies(**overrides))

    @classmethod
    def _unconstrained_params(cls) -> list[str]:
        """Constructor parameters without a default that ``arg_constraints`` does not describe."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
        return [p.name for p in params
                if p.kind in kinds and p.default is p.empty and p.name not in cls.arg_constraints]

    @classmethod
    def examples(cls, quick: bool = True) -> list[ExampleSet]:
        """The cross-check's cases for this distribution (instances, classifiers, threats)."""
        return []

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


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def check_no_nan(x: Any, name: str = "x") -> None:
    """Raise ValueError naming ``name`` when a row of the tensor ``x`` contains NaN (such a row has no label)."""
    if isinstance(x, torch.Tensor) and x.is_floating_point() and bool(torch.isnan(x).any()):
        rows = torch.isnan(x).reshape(x.shape[0], -1).any(1).nonzero().flatten()[:5].tolist() if x.ndim else []
        raise ValueError(f"{name} contains NaN (rows {rows}); a NaN point has no Bayes label")


def keep_nan(x: torch.Tensor, out: torch.Tensor, rows: bool = False) -> torch.Tensor:
    """``out`` with NaN wherever ``x`` has NaN (whole rows when ``rows``): projections propagate NaN."""
    nan = torch.isnan(x)
    if rows:
        nan = nan.any(1, keepdim=True).expand_as(out)
    return torch.where(nan, torch.full_like(out, torch.nan), out)


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


def rounding_margin(z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A margin that survives float rounding: 64 ulps of ``scale`` (points moved into a region land this deep)."""
    return 64 * torch.finfo(z.dtype).eps * scale


def linear_halfspace(bayes: Any, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``R_y = {y (<w, z> + b) >= 0}`` of a linear Bayes rule as ``{<a_i, z> >= beta_i}`` (a few ulps inside)."""
    w = bayes.w.to_tensor(z.device, z.dtype)
    ys = torch.where(y > 0, 1.0, -1.0).to(z.dtype)
    b = float(bayes.b)
    tau = rounding_margin(z, torch.linalg.vector_norm(w) * (z.abs().amax(1) + abs(b) + 1))
    return ys[:, None] * w, tau - ys * b


def linear_region_projection(bayes: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Projection of the rows of ``z`` onto ``R_y = {y (<w, z> + b) >= 0}`` of a linear Bayes rule."""
    ys = torch.where(y > 0, 1.0, -1.0).to(z.dtype)
    w = bayes.w.to_tensor(z.device, z.dtype)
    s = ys * (z @ w + float(bayes.b))
    w2 = (w * w).sum()
    tau = rounding_margin(z, w2.sqrt() * (z.abs().amax(1) + abs(float(bayes.b)) + 1))
    need = s < tau
    return torch.where(need[:, None], z + ((tau - s) / w2 * ys)[:, None] * w, z)


def linear_region_pieces(bayes: Any, label: int) -> list[list[tuple[Any, float, bool]]]:
    """``R_label`` of a linear Bayes rule ``sign(<w, z> + b)`` (ties to +1): ``<-w, z> <= b`` for +1, ``<w, z> < -b``
    for -1 (one piece, one row)."""
    import numpy as np

    w = np.asarray(bayes.w.to_numpy(), dtype=np.float64)
    b = float(bayes.b)
    return [[(-w, b, False)]] if label == 1 else [[(w, -b, True)]]


class LinearBayesRegions:
    """Label regions of a distribution whose Bayes label of the projection is its linear Bayes rule itself
    (``Bayes(proj(z)) = Bayes(z)``: point masses, whose projection keeps the Bayes label; Gaussian mixtures, whose
    support is everything): one half-space per label. Mixed in before :class:`Distribution`, whose public methods
    validate the inputs and call these hooks."""

    def _label_region_projection(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return linear_region_projection(self.bayes_classifier(), z, y)

    def _label_halfspace(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return linear_halfspace(self.bayes_classifier(), z, y)

    def _label_region_pieces(self, label: int) -> list[list[tuple[Any, float, bool]]]:
        return linear_region_pieces(self.bayes_classifier(), label)
