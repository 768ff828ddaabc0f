"""What an attack is: an object with a name, a kind, the cases it supports, validated options and one ``run``.

An attack is a subclass of :class:`Attack`. It declares, as class data, its registry ``name`` (and ``aliases``),
its ``kind`` -- ``"exact"`` when it decides every point it supports (a qualifying point of the ball is returned
whenever one exists, so a Monte Carlo count with it is the risk itself) or ``"lower bound"`` when it may miss --
and whether it draws random numbers. Its hyper-parameters are keyword arguments of ``__init__``, validated there
once (an unknown or invalid option fails before any point is drawn). :meth:`Attack.supports` says whether it can
attack a (classifier, threat, definition, distribution) and why not when it cannot. :meth:`Attack.run` validates
the batch once and calls the private hook :meth:`Attack._attack`, which holds only the maths.

Defining a subclass with a ``name`` registers it (:data:`ATTACKS`), so a new attack is one file: it is then
usable by name in :func:`toyrobust.estimate_risk`, the cross-check, sweeps and training::

    class MyAttack(tr.Attack):
        name, kind = "mine", "exact"

        def _attack(self, clf, x, y, threat, definition, dist, generator):
            ...                                   # return candidate points (N, d) or an AttackResult

References:
    The foolbox 3 attack classes (J. Rauber et al., "Foolbox Native", JOSS 2020): options in the constructor,
    one call, the success mask computed on the returned (clipped) points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..classifiers import check_input_dim, classes_of
from ..registry import Registry
from .losses import check_inputs, check_threat, eval_mode, finish
from .result import AttackResult

__all__ = ["AttackResult", "Attack", "Support", "ATTACKS", "ATTACK_KINDS", "FunctionAttack", "make_attack"]

#: what an attack's count is: the risk itself ("exact") or a lower bound on it
ATTACK_KINDS = ("exact", "lower bound")


@dataclass(frozen=True)
class Support:
    """Whether an attack applies to a case, and why not when it does not (true in a boolean context)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


SUPPORTED = Support(True)


#: every registered attack class by name (aliases accepted, case-insensitive)
ATTACKS: Registry[type[Attack]] = Registry("attack")


class Attack:
    """Base class of every attack: ``attack.run(clf, x, y, threat, *, definition, dist, generator)``.

    Class data a subclass sets:
        name: registry name (subclasses with a name register themselves); ``aliases``: other accepted names.
        kind: ``"exact"`` or ``"lower bound"`` (see the module docstring); it becomes ``RiskEstimate.kind``.
        randomized: whether :meth:`run` uses its ``generator`` (a deterministic attack gives the same count for
            any split of the points, which lets estimators cut chunks into cache-sized pieces).
        targeted_option: the name of a boolean option meaning "``y`` holds target labels", if any.
        multiclass: whether it attacks K-class classifiers (K logits, labels 0..K-1) too. Not inherited: a
            subclass declares it itself (an attack built on PGD may rely on binary labels), else it takes binary
            classifiers only.

    Subclasses implement :meth:`_attack` (the maths on validated inputs, inside eval mode) and, where they do not
    apply everywhere, :meth:`supports`. Options are keyword arguments of ``__init__`` recorded with
    :meth:`_set_options`; :meth:`replace` makes a copy with some changed.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "lower bound"
    randomized: ClassVar[bool] = False
    targeted_option: ClassVar[str | None] = None
    #: whether a threat is required (a minimum-norm attack may run without one: ``threat=None``)
    needs_threat: ClassVar[bool] = True
    #: whether K-class classifiers are attacked too (read from the class's own dict: not inherited)
    multiclass: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind not in ATTACK_KINDS:
            raise ValueError(f"{cls.__name__}.kind must be one of {ATTACK_KINDS}, got {cls.kind!r}")
        name = cls.__dict__.get("name", "")
        if name:
            ATTACKS.register(name, cls, aliases=cls.__dict__.get("aliases", ()))

    def __init__(self) -> None:
        self._set_options()

    # ------------------------------------------------------------------------------------------------ options

    def _set_options(self, **options: Any) -> None:
        """Record validated options (and set each as an attribute)."""
        self._options = dict(options)
        for key, value in options.items():
            setattr(self, key, value)

    @property
    def options(self) -> dict[str, Any]:
        """The attack's hyper-parameters (a copy)."""
        return dict(getattr(self, "_options", {}))

    def replace(self, **options: Any) -> Attack:
        """A copy with some options changed (validated like the constructor's); TypeError naming unknown ones."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "none"
            raise TypeError(f"attack {self.label!r} has no option {', '.join(map(repr, unknown))}; "
                            f"its options: {allowed}")
        return type(self)(**{**self.options, **options})

    @property
    def label(self) -> str:
        """The name reported in estimates and tables (the registry name, or the class name)."""
        return self.name or type(self).__name__

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    # ------------------------------------------------------------------------------------------------ protocol

    def supports(self, clf: Any, threat: Any, definition: str = "ball", dist: Any = None) -> Support:
        """Whether this attack applies to ``clf`` under ``threat`` and ``definition`` (with ``dist``), as a
        :class:`Support` whose ``reason`` says why not. The base class supports everything."""
        return SUPPORTED

    def crosscheck_settings(self, definition: str, quick: bool) -> tuple[int | None, dict[str, Any] | None]:
        """``(n, options)`` for a cross-check row attacked by this attack: a sample size of its own for slow
        attacks (None: the run's ``n``) and options for quick runs (None: as constructed)."""
        return None, None

    def run(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, *, definition: str = "ball",
            dist: Any = None, generator: Any = None) -> AttackResult:
        """Attack a batch: validate it once, check :meth:`supports`, then run the maths.

        Args:
            clf: a toyrobust classifier or a torch module (one logit, positive means +1, or two; K logits with labels
                0..K-1 for the attacks that declare ``multiclass``).
            x: (N, d) clean points.
            y: (N,) labels in {-1, +1}, or 0..K-1 for a K-class classifier (target labels when the attack's
                targeted option is set).
            threat: the ball (a :class:`~toyrobust.threats.ThreatModel` with numeric eps).
            definition: "ball", "projection", "error-region" or "prediction-change".
            dist: the distribution (needed by the projection and error-region definitions).
            generator: ``torch.Generator`` or int seed for randomised attacks (None: fresh OS entropy).

        Returns:
            :class:`AttackResult`, its success mask computed on the returned points re-projected into the ball.
        """
        targeted = bool(self.options.get(self.targeted_option, False)) if self.targeted_option else False
        clf, x, y_true = check_inputs(clf, x, y, definition, dist, targeted)
        check_input_dim(clf, x.shape[1], "x")
        if classes_of(clf, x) is not None and not type(self).__dict__.get("multiclass", False):
            able = ", ".join(n for n, c in ATTACKS.items() if c.__dict__.get("multiclass", False))
            raise TypeError(f"attack {self.label!r} takes binary classifiers (labels -1/+1) only, got one with "
                            f"{classes_of(clf, x)} classes; attacks for K-class classifiers: {able}")
        threat = check_threat(threat, allow_none=not self.needs_threat)
        support = self.supports(clf, threat, definition, dist)
        if not support:
            raise TypeError(f"attack {self.label!r} does not apply here: {support.reason}")
        if x.shape[0] == 0:
            return finish(clf, x, y_true, x, threat, definition, dist, 0)
        with eval_mode(clf):
            out = self._attack(clf, x, y_true, threat, definition, dist, generator)
            if isinstance(out, AttackResult):
                return out
            return finish(clf, x, y_true, out, threat, definition, dist, 0)

    def _attack(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, definition: str, dist: Any,
                generator: Any) -> AttackResult | torch.Tensor:
        """The maths on validated inputs (``y`` the true labels as int64): an :class:`AttackResult`, or candidate
        points (N, d) that :meth:`run` re-projects and checks."""
        raise NotImplementedError(f"{type(self).__name__} must implement _attack")

    def __call__(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, *, definition: str = "ball",
                 dist: Any = None, generator: Any = None, **options: Any) -> AttackResult:
        """:meth:`run`, with options changed for this call (the calling convention of the attack functions)."""
        attack = self.replace(**options) if options else self
        return attack.run(clf, x, y, threat, definition=definition, dist=dist, generator=generator)


class FunctionAttack(Attack):
    """A plain function following the calling convention, as an attack (always a ``"lower bound"``: nothing
    says that a function decides every point; write an :class:`Attack` subclass with ``kind = "exact"`` for that).

    ``fn(clf, x, y, threat, *, definition, dist, generator, **options) -> AttackResult``; its result is used as
    returned (the estimators re-check every point themselves).
    """

    randomized = True

    def __init__(self, fn: Any, **options: Any) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be a function following the attack calling convention, got {fn!r}")
        self.fn = fn
        self._set_options(**options)

    @property
    def label(self) -> str:
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def replace(self, **options: Any) -> Attack:
        return FunctionAttack(self.fn, **{**self.options, **options})

    def __repr__(self) -> str:
        return f"FunctionAttack({self.label}{''.join(f', {k}={v!r}' for k, v in self.options.items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionAttack) and other.fn is self.fn and other.options == self.options

    def __hash__(self) -> int:
        return hash((FunctionAttack, self.fn))

    def run(self, clf: Any, x: torch.Tensor, y: torch.Tensor, threat: Any, *, definition: str = "ball",
            dist: Any = None, generator: Any = None) -> AttackResult:
        return self.fn(clf, x, y, threat, definition=definition, dist=dist, generator=generator, **self.options)


def make_attack(attack: Any, options: Mapping[str, Any] | None = None) -> Attack:
    """An :class:`Attack` from a name, a class, an instance or a function, with ``options`` applied.

    Args:
        attack: a registered name (:data:`ATTACKS`, e.g. ``"pgd"``), an :class:`Attack` subclass, an instance, or a
            function following the calling convention (wrapped in :class:`FunctionAttack`).
        options: keyword options for the attack (validated by its constructor).

    Raises:
        ValueError: an unknown name (every registered name is listed); TypeError: anything else, or an option the
            attack does not have.
    """
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"attack_options must be a dict of keyword arguments, got {type(options).__name__}")
    options = dict(options or {})
    if isinstance(attack, str):
        attack = ATTACKS.lookup(attack, param="attack")
    if isinstance(attack, type) and issubclass(attack, Attack):
        return attack().replace(**options) if options else attack()
    if isinstance(attack, Attack):
        return attack.replace(**options) if options else attack
    if callable(attack):
        return FunctionAttack(attack, **options)
    raise TypeError(f"attack must be an attack name ({ATTACKS.listing()}), an Attack or a function, "
                    f"got {type(attack).__name__}")
