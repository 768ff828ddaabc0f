"""Adaptive evaluation of defenses against the known truth: naive and adaptive attacks next to the optimal risk.

For each registered defense and each registered setting (a distribution and a threat) where it applies, the
defended model is built (trained on fresh samples), ``n`` fresh test points are attacked twice -- by the
*naive* attack (white-box PGD that ignores the defense's mechanism) and by the *adaptive* one (BPDA, EOT, a
detector-aware loss) -- and both adversarial risks are reported with exact Clopper-Pearson intervals, next to
``toyrobust.optimal_risk(dist, threat)``, the smallest adversarial risk *any* classifier can reach. A risk whose
whole interval lies below the floor is impossible: the attack, not the defense, failed, and the row is flagged
``IMPOSSIBLE (broken evaluation)``. The gap between the naive and the adaptive rows is the security a defense
only appears to give (Athalye, Carlini and Wagner 2018's "false sense of security").

The floor is ``optimal_risk`` for a classifier. A detector is a *reject option*: a flagged point is not an error,
and a reject option can legitimately beat ``optimal_risk`` (on ``PointMasses(gap=1)`` with ``eps = 0.6``,
rejecting ``[0.4, 0.6]`` -- a set of clean probability 0 -- gives adversarial risk 0 where every classifier has
1/2). What holds for a detector-plus-classifier whose detector flags clean points at rate ``fpr``: the adversary
may keep the clean point, whose error probability given ``x`` is at least ``min(eta(x), 1 - eta(x))``, so the
risk is at least ``Bayes risk - fpr / 2``; that is the floor used for detector rows.

Everything is data: :func:`register_defense` adds a :class:`Defense` (how to build it, its naive and adaptive
:class:`AttackSpec`, where it applies, its floor, extra columns such as a certified risk), and
:func:`register_setting` a :class:`Setting`; :func:`evaluate_defenses` reads the registries.

References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML 2018.
    F. Tramer, N. Carlini, W. Brendel, A. Madry, "On adaptive attacks to adversarial example defenses",
    NeurIPS 2020.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..attacks import ATTACKS, Attack, make_attack
from ..attacks.adaptive import bpda
from ..attacks.gradient import pgd
from ..bounds import optimal_risk
from ..classifiers import as_classifier
from ..clibase import COMMANDS, UsageError
from ..clispecs import parse_attack_spec
from ..distributions import GaussianMixture, Tsipras
from ..models import MLP
from ..montecarlo import clopper_pearson, derive_seed
from ..registry import Registry
from ..rng import make_generator, resolve_device
from ..threats import Linf, ThreatModel
from ..training import train
from ..transfer import transfer_attack
from .detection import OddsAreOdd, detector_aware_pgd
from .kwta import kwta_mlp

__all__ = ["EvalConfig", "AttackSpec", "Defense", "Setting", "DefenseRow", "DEFENSES", "SETTINGS",
           "register_defense", "register_setting", "evaluate_defenses", "format_table", "to_json", "add_parser",
           "command", "IMPOSSIBLE", "attacked_extras"]

#: the flag of a risk whose whole confidence interval lies below the floor
IMPOSSIBLE = "IMPOSSIBLE (broken evaluation)"


@dataclass(frozen=True)
class EvalConfig:
    """Sizes and placement of one evaluation.

    Attributes:
        quick: small trainings and attacks (the whole table in well under a minute on a CPU).
        n: test points per (defense, setting).
        seed: master seed (int >= 0); every stream is derived from it.
        device: torch device.
        level: confidence level of the intervals.
    """

    quick: bool = True
    n: int = 1000
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    level: float = 0.95

    def generator(self, *key: int) -> torch.Generator:
        """A generator on the device for the stream ``key`` (derived from the master seed)."""
        return make_generator(derive_seed(self.seed, *key), self.device)


#: ``run(defended, x, y, threat, config) -> errors``: bool (N,), True where the defended system errs on the point
#: the attack chose (its clean errors included: the clean point is in its own ball)
AttackRun = Callable[[Any, torch.Tensor, torch.Tensor, ThreatModel, EvalConfig], torch.Tensor]


@dataclass(frozen=True)
class AttackSpec:
    """An attack as data: a name for the table and the function that runs it."""

    name: str
    run: AttackRun


@dataclass(frozen=True)
class Defense:
    """A defense as data.

    Attributes:
        name: the row label.
        build: ``build(dist, threat, config) -> defended`` (trains whatever it needs on fresh samples).
        naive: the attack that ignores the defense's mechanism.
        adaptive: the attack built for it (BPDA, EOT, detector-aware).
        applies: ``applies(dist) -> bool``; default: every setting.
        floor: ``floor(dist, threat, defended) -> (value, reason)``; default: ``optimal_risk(dist, threat)``.
        extras: ``extras(defended, dist, threat, x, y, config) -> {column: value}`` (e.g. a certified risk). An
            attacked risk is given as ``"NAME risk"`` with ``"NAME low"`` and ``"NAME high"``, the ends of its
            Clopper-Pearson interval (as the extra attacks of :func:`evaluate_defenses` do): the row then flags
            ``NAME`` :data:`IMPOSSIBLE` when ``"NAME high"`` is below the floor, as it does the naive and adaptive
            risks. NaN means "not applicable" (printed ``n/a``; say why in ``notes``).
        notes: ``notes(dist, threat, config) -> {column: text}``: why a column reads as it does in this setting
            (e.g. an L2 certificate against an Linf ball); printed under the row and kept in the JSON.
        clean: ``clean(defended, x, y, config) -> errors`` (bool (N,)) on the clean points; default: the
            detector's errors or the model's wrong predictions.
        target: ``target(defended) -> model``: what an extra attack of :func:`evaluate_defenses` attacks
            (default: the defended model itself).
        judge: ``judge(defended, x, y, x_adv, config) -> errors`` (bool (N,)): whether the defended system errs at
            an extra attack's points (default: the model's wrong predictions there or at the clean point).
    """

    name: str
    build: Callable[[Any, ThreatModel, EvalConfig], Any]
    naive: AttackSpec
    adaptive: AttackSpec
    applies: Callable[[Any], bool] = lambda dist: True
    floor: Callable[[Any, ThreatModel, Any], tuple[float, str]] | None = None
    extras: Callable[..., dict[str, float]] | None = None
    clean: Callable[[Any, torch.Tensor, torch.Tensor, EvalConfig], torch.Tensor] | None = None
    target: Callable[[Any], Any] | None = None
    judge: Callable[..., torch.Tensor] | None = None
    notes: Callable[[Any, ThreatModel, EvalConfig], dict[str, str]] | None = None


@dataclass(frozen=True)
class Setting:
    """A distribution and a threat model: ``make(quick) -> (dist, threat)``."""

    name: str
    make: Callable[[bool], tuple[Any, ThreatModel]]


#: registered defenses and settings, by name (insertion order is the table's order); a name is the row's label,
#: so it is kept as written (looked up with surrounding spaces stripped, case-sensitively)
DEFENSES: Registry[Defense] = Registry("defense", normalize=str.strip)
SETTINGS: Registry[Setting] = Registry("setting", normalize=str.strip)


def _register(registry: Registry, item: Any, cls: type, replace: bool) -> Any:
    """Add ``item`` (a ``cls``) to ``registry`` under ``item.name``; a taken name is refused unless ``replace``
    (even for the very same object: registering a row twice is a mistake, not a module being reloaded)."""
    if not isinstance(item, cls):
        raise TypeError(f"{registry.kind} must be a {cls.__name__}, got {type(item).__name__}")
    if not replace and item.name in registry:
        raise ValueError(f"a {registry.kind} named {item.name!r} is already registered; pass replace=True to "
                         "replace it")
    return registry.register(item.name, item, replace=replace)


def register_defense(defense: Defense, *, replace: bool = False) -> Defense:
    """Add a defense to the table; ValueError if the name is taken (unless ``replace``)."""
    return _register(DEFENSES, defense, Defense, replace)


def register_setting(setting: Setting, *, replace: bool = False) -> Setting:
    """Add a (distribution, threat) setting; ValueError if the name is taken (unless ``replace``)."""
    return _register(SETTINGS, setting, Setting, replace)


@dataclass
class DefenseRow:
    """One line of the table: a defense on a setting, under the naive and the adaptive attack.

    Risks are fractions of the ``n`` test points on which the defended system errs at the attack's point;
    ``*_low``/``*_high`` are exact Clopper-Pearson bounds at ``level``. ``floor`` is the smallest risk any
    system of this kind can have (``optimal`` for classifiers; see the module docstring for detectors), and a
    verdict is :data:`IMPOSSIBLE` when the interval's upper end is below it. ``extra_verdicts`` holds the same
    verdict for every attacked risk among the ``extras`` (``"NAME risk"`` with ``"NAME high"``: the black-box
    transfer, the extra attacks), by ``NAME``; ``notes`` explains columns by name (see :class:`Defense`).
    """

    defense: str
    setting: str
    threat: str
    n: int
    clean_risk: float
    naive_attack: str
    naive_risk: float
    naive_low: float
    naive_high: float
    naive_verdict: str
    adaptive_attack: str
    adaptive_risk: float
    adaptive_low: float
    adaptive_high: float
    adaptive_verdict: str
    optimal: float
    floor: float
    floor_reason: str
    level: float
    seconds: float
    extras: dict[str, float] = field(default_factory=dict)
    extra_verdicts: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def false_security(self) -> bool:
        """The naive interval lies entirely below the adaptive one: the naive attack overstated robustness."""
        return self.naive_high < self.adaptive_low

    @property
    def verdicts(self) -> list[str]:
        """Every flag of the row (``[]`` when all is well): impossible risks by attack, then false security."""
        out = [f"{name}: {v}" for name, v in (("naive", self.naive_verdict), ("adaptive", self.adaptive_verdict),
                                                 *self.extra_verdicts.items()) if v != "ok"]
        if self.false_security:
            out.append("naive attack overstates robustness")
        return out


def attacked_extras(extras: dict[str, float]) -> list[str]:
    """The names ``NAME`` of the attacked risks among a row's extras (``"NAME risk"`` next to ``"NAME high"``)."""
    return [k[:-len(" risk")] for k in extras if k.endswith(" risk") and f"{k[:-len(' risk')]} high" in extras]


def _verdict(high: float, floor: float) -> str:
    """:data:`IMPOSSIBLE` when the interval's upper end is below the floor; ``"n/a"`` for NaN (no risk); else ok."""
    if math.isnan(high):
        return "n/a"
    return IMPOSSIBLE if high < floor - 1e-12 else "ok"


def evaluate_defenses(
    *,
    defenses: list[str] | None = None,
    settings: list[str] | None = None,
    config: EvalConfig | None = None,
    report: Callable[[DefenseRow], Any] | None = None,
    attacks: list[Any] | tuple[Any, ...] = (),
) -> list[DefenseRow]:
    """Run every registered defense on every registered setting where it applies.

    Args:
        defenses: names to run (default: all registered).
        settings: names to run (default: all registered).
        config: sizes, seed, device, level.
        report: called with each row as it is finished (progress).
        attacks: extra attacks run against every defense beside its naive and adaptive ones: attack names,
            :class:`toyrobust.attacks.Attack` objects or ``(name, options)`` pairs. Each adds the columns
            ``"<label> risk"`` and ``"<label> high"`` (its Clopper-Pearson upper end, so a value below the floor is
            visibly impossible); an attack that does not apply to a defense's model gives NaN there.

    Returns:
        the rows, in registry order.
    """
    config = config or EvalConfig()
    extra = [make_attack(*a) if isinstance(a, tuple) else make_attack(a) for a in attacks]
    chosen_d = list(DEFENSES.values()) if defenses is None else [DEFENSES.lookup(n, param="defenses")
                                                                  for n in defenses]
    chosen_s = list(SETTINGS.values()) if settings is None else [SETTINGS.lookup(n, param="settings")
                                                                  for n in settings]
    rows = []
    for setting in chosen_s:
        dist, threat = setting.make(config.quick)
        opt = float(optimal_risk(dist, threat))
        for defense in chosen_d:
            if not defense.applies(dist):
                continue
            row = _evaluate_row(defense, setting, dist, threat, opt, config, extra)
            rows.append(row)
            if report is not None:
                report(row)
    return rows


def _evaluate_row(d: Defense, setting: Setting, dist: Any, threat: ThreatModel, opt: float,
                  config: EvalConfig, extra: list[Attack] = ()) -> DefenseRow:
    """One defense on one setting: build it, attack ``config.n`` fresh points naively and adaptively."""
    start = time.perf_counter()
    # streams named by the row (not its position), so a row is the same whether run alone or in the table
    row_seed = derive_seed(config.seed, zlib.crc32(setting.name.encode()), zlib.crc32(d.name.encode()))
    sub = EvalConfig(quick=config.quick, n=config.n, seed=row_seed, device=config.device, level=config.level)
    defended = d.build(dist, threat, sub)
    x, y = dist.sample(config.n, generator=sub.generator(101), device=config.device)
    floor, reason = d.floor(dist, threat, defended) if d.floor else (opt, "optimal adversarial risk")
    clean = d.clean(defended, x, y, sub) if d.clean else _clean_errors(defended, x, y, sub)
    risks = []
    for spec in (d.naive, d.adaptive):
        errors = spec.run(defended, x, y, threat, sub)
        k = int(errors.sum())
        lo, hi = clopper_pearson(k, config.n, config.level)
        risks.append((spec.name, k / config.n, float(lo), float(hi)))
    extras = d.extras(defended, dist, threat, x, y, sub) if d.extras else {}
    for i, attack in enumerate(extra):
        extras.update(_extra_attack(d, attack, defended, dist, threat, x, y, sub, 501 + i))
    (na, nr, nl, nh), (aa, ar, al, ah) = risks
    verdicts = {name: _verdict(extras[f"{name} high"], floor) for name in attacked_extras(extras)}
    return DefenseRow(defense=d.name, setting=setting.name, threat=repr(threat), n=config.n,
                      clean_risk=float(clean.to(torch.float64).mean()), naive_attack=na, naive_risk=nr,
                      naive_low=nl, naive_high=nh, naive_verdict=_verdict(nh, floor), adaptive_attack=aa,
                      adaptive_risk=ar, adaptive_low=al, adaptive_high=ah, adaptive_verdict=_verdict(ah, floor),
                      optimal=opt, floor=float(floor), floor_reason=reason, level=config.level,
                      seconds=time.perf_counter() - start, extras=dict(extras), extra_verdicts=verdicts,
                      notes=dict(d.notes(dist, threat, sub)) if d.notes else {})


def _extra_attack(d: Defense, attack: Attack, defended: Any, dist: Any, threat: ThreatModel, x: torch.Tensor,
                  y: torch.Tensor, config: EvalConfig, stream: int) -> dict[str, float]:
    """One extra attack against a defended system: its risk and the upper end of its interval (NaN where it does
    not apply to the defense's model)."""
    target = d.target(defended) if d.target else defended
    if not attack.supports(as_classifier(target), threat, "ball", dist):
        return {f"{attack.label} risk": math.nan, f"{attack.label} low": math.nan, f"{attack.label} high": math.nan}
    res = attack.run(target, x, y, threat, dist=dist, generator=config.generator(stream))
    errors = d.judge(defended, x, y, res.x_adv, config) if d.judge else _model_errors(defended, x, y, res.x_adv)
    return _risk_columns(attack.label, errors, config)


def _risk_columns(name: str, errors: torch.Tensor, config: EvalConfig) -> dict[str, float]:
    """An attacked risk as extras: ``"NAME risk"`` and its exact interval ``"NAME low"``, ``"NAME high"``."""
    k = int(errors.sum())
    lo, hi = clopper_pearson(k, int(errors.numel()), config.level)
    return {f"{name} risk": k / int(errors.numel()), f"{name} low": float(lo), f"{name} high": float(hi)}


def _clean_errors(defended: Any, x: torch.Tensor, y: torch.Tensor, config: EvalConfig) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(defended, OddsAreOdd):
            return defended.errors(x, y, generator=config.generator(201))
        return defended.classifier().predict(x) != y


# ------------------------------------------------------------------------------------------------ k-WTA


def _kwta_sizes(quick: bool) -> dict[str, Any]:
    # three sparse k-WTA layers (6 of 256 units kept): the naive gradient is masked (see the tests)
    return {"hidden": (256, 256, 256), "ratio": 0.02, "steps": 300 if quick else 1000,
            "attack_steps": 20 if quick else 50}


def _build_kwta(dist: Any, threat: ThreatModel, config: EvalConfig) -> torch.nn.Module:
    s = _kwta_sizes(config.quick)
    model = kwta_mlp(int(dist.dim), s["hidden"], s["ratio"], seed=derive_seed(config.seed, 1), device=config.device)
    train(model, dist, steps=s["steps"], lr=3e-3, seed=derive_seed(config.seed, 2), eval_n=0, progress=False)
    return model


def _model_errors(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        clf = model.classifier()
        return (clf.predict(x_adv) != y) | (clf.predict(x) != y)


def _kwta_naive(model: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, config: EvalConfig) -> torch.Tensor:
    res = pgd(model, x, y, threat, steps=_kwta_sizes(config.quick)["attack_steps"], generator=config.generator(301))
    return _model_errors(model, x, y, res.x_adv)


def _kwta_adaptive(model: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                   config: EvalConfig) -> torch.Tensor:
    # BPDA (k-WTA's backward taken as ReLU's); the model is deterministic, so the adversary can check each
    # point and keep whichever of the BPDA and the naive point succeeds (the union is a valid attack)
    res = pgd(bpda(model, "relu"), x, y, threat, steps=_kwta_sizes(config.quick)["attack_steps"],
              generator=config.generator(302))
    return _model_errors(model, x, y, res.x_adv) | _kwta_naive(model, x, y, threat, config)


def _transfer_extras(model: Any, dist: Any, threat: ThreatModel, x: torch.Tensor, y: torch.Tensor,
                     config: EvalConfig) -> dict[str, float]:
    """The black-box transfer attack's risk (a substitute MLP trained on 2000 label queries) with its exact interval:
    when it beats the naive white-box attack, the white-box gradient was masked (Athalye et al. 2018, section 3.1);
    like any attacked risk it cannot lie below the optimal risk, so the row flags it when it does."""
    out = transfer_attack(model, dist, x, y, threat, label_queries=2000, train_steps=300 if config.quick else 1000,
                          seed=derive_seed(config.seed, 501))
    errors = out.result.success.to(y.device) | ~out.clean_correct.to(y.device)  # its adversarial_risk, per point
    return _risk_columns("transfer (black-box)", errors, config)


register_defense(Defense(
    name="k-WTA MLP",
    build=_build_kwta,
    naive=AttackSpec("PGD (autograd through k-WTA)", _kwta_naive),
    adaptive=AttackSpec("BPDA-ReLU PGD (+ naive)", _kwta_adaptive),
    extras=_transfer_extras,
))


# ------------------------------------------------------------------------------------------------ odds-are-odd


def _detector_sizes(quick: bool) -> dict[str, Any]:
    return {"hidden": (64,), "steps": 300 if quick else 1000, "n_fit": 2000 if quick else 20_000,
            "n_noise": 32, "sigma": 0.5, "fpr": 0.05, "attack_steps": 20 if quick else 50, "eot": 16,
            "choose_draws": 4 if quick else 16}


def _build_detector(dist: Any, threat: ThreatModel, config: EvalConfig) -> OddsAreOdd:
    s = _detector_sizes(config.quick)
    model = MLP(int(dist.dim), s["hidden"], seed=derive_seed(config.seed, 1), device=config.device)
    train(model, dist, steps=s["steps"], lr=3e-3, seed=derive_seed(config.seed, 2), eval_n=0, progress=False)
    det = OddsAreOdd(model, sigma=s["sigma"], n_noise=s["n_noise"], fpr=s["fpr"], generator=config.generator(3))
    x_fit, _ = dist.sample(s["n_fit"], generator=config.generator(4), device=config.device)
    return det.fit(x_fit)


def _detector_naive(det: OddsAreOdd, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                    config: EvalConfig) -> torch.Tensor:
    res = pgd(det.clf, x, y, threat, steps=_detector_sizes(config.quick)["attack_steps"],
              generator=config.generator(401))
    with torch.no_grad():
        return det.errors(res.x_adv, y, generator=config.generator(402))  # one fresh draw of the detector


def _detector_adaptive(det: OddsAreOdd, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                       config: EvalConfig) -> torch.Tensor:
    s = _detector_sizes(config.quick)
    aware = detector_aware_pgd(det, x, y, threat, lam=10.0, eot_samples=s["eot"], steps=s["attack_steps"],
                               generator=config.generator(403))
    naive = pgd(det.clf, x, y, threat, steps=s["attack_steps"], generator=config.generator(401))
    # the adversary picks, per point, the candidate (clean, naive, aware) it estimates best with draws of its
    # own (never the evaluation's draw), then the choice is judged on one fresh draw
    cands = torch.stack([x, naive.x_adv, aware.x_adv])  # (3, N, d)
    gen = config.generator(404)
    with torch.no_grad():
        est = torch.stack([sum(det.errors(c, y, generator=gen).to(x.dtype) for _ in range(s["choose_draws"]))
                           for c in cands])
        pick = est.argmax(dim=0)
        chosen = cands[pick, torch.arange(x.shape[0], device=x.device)]
        return det.errors(chosen, y, generator=config.generator(402))


def _detector_floor(dist: Any, threat: ThreatModel, det: OddsAreOdd) -> tuple[float, str]:
    bayes = float(optimal_risk(dist, None))
    return max(0.0, bayes - det.fpr / 2), "Bayes risk - fpr/2 (a detector is a reject option)"


def _detector_extras(det: OddsAreOdd, dist: Any, threat: ThreatModel, x: torch.Tensor, y: torch.Tensor,
                     config: EvalConfig) -> dict[str, float]:
    """Detection rates: on fresh clean points (the false-positive rate) and on the naive PGD points that fool
    the classifier (the rate Roth et al. report)."""
    s = _detector_sizes(config.quick)
    res = pgd(det.clf, x, y, threat, steps=s["attack_steps"], generator=config.generator(401))
    with torch.no_grad():
        fooled = det.predict(res.x_adv) != y
        flagged = det.detect(res.x_adv, generator=config.generator(405))
        clean_flags = det.detect(x, generator=config.generator(406))
    n_fooled = int(fooled.sum())
    return {"detected (naive adv.)": float((flagged & fooled).sum()) / n_fooled if n_fooled else math.nan,
            "flagged (clean)": float(clean_flags.to(torch.float64).mean())}


register_defense(Defense(
    name="odds-are-odd + MLP",
    build=_build_detector,
    naive=AttackSpec("PGD on the classifier", _detector_naive),
    adaptive=AttackSpec("detector-aware EOT PGD (+ naive)", _detector_adaptive),
    floor=_detector_floor,
    extras=_detector_extras,
    target=lambda det: det.clf,
    judge=lambda det, x, y, x_adv, config: det.errors(x_adv, y, generator=config.generator(402)),
))


# ------------------------------------------------------------------------------------------------ settings

register_setting(Setting("robust/non-robust D=20", lambda quick: (GaussianMixture.robust_nonrobust(20), Linf(0.3))))
register_setting(Setting("Tsipras 2-D (p=0.9, eta=3)", lambda quick: (Tsipras(p=0.9, eta=3.0), Linf(1.5))))


# ------------------------------------------------------------------------------------------------ output


#: the widest line :func:`format_table` prints
TABLE_WIDTH = 120


def _interval(risk: float, low: float, high: float) -> str:
    """``0.170 [0.147, 0.195]``; ``n/a`` for a risk that is not applicable (NaN)."""
    if math.isnan(risk):
        return "n/a"
    return f"{risk:.3f} [{low:.3f}, {high:.3f}]" if not math.isnan(low) else f"{risk:.3f} [-, {high:.3f}]"


def _attack_lines(r: DefenseRow) -> list[tuple[str, str, str, str]]:
    """(role, attack, risk [interval], verdict) for the naive, the adaptive and every attacked extra risk."""
    out = [("naive", r.naive_attack, _interval(r.naive_risk, r.naive_low, r.naive_high), r.naive_verdict),
           ("adaptive", r.adaptive_attack, _interval(r.adaptive_risk, r.adaptive_low, r.adaptive_high),
            r.adaptive_verdict)]
    for name in attacked_extras(r.extras):
        e = r.extras
        out.append(("extra", name, _interval(e[f"{name} risk"], e.get(f"{name} low", math.nan), e[f"{name} high"]),
                    r.extra_verdicts.get(name, "ok")))
    return out


def _other_extras(r: DefenseRow) -> list[str]:
    """``column value`` for the extras that are not attacked risks (certified risk, detection rates)."""
    attacked = {f"{name} {end}" for name in attacked_extras(r.extras) for end in ("risk", "low", "high")}
    return [f"{k} {'n/a' if math.isnan(v) else f'{v:.3f}'}" for k, v in r.extras.items() if k not in attacked]


def _wrap(line: str, width: int) -> list[str]:
    """``line`` cut at spaces into lines of at most ``width`` characters, continuations indented under its text."""
    body = line.lstrip(" ")
    indent = " " * (len(line) - len(body))
    return textwrap.wrap(body, width, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_long_words=True, break_on_hyphens=False) or [line]


def format_table(rows: list[DefenseRow], width: int = TABLE_WIDTH) -> str:
    """A plain-text report that fits ``width`` columns: one block per (defense, setting), one indented line per
    attack (its risk with the interval and its verdict), then the clean, optimal and floor values, the other
    extras, the notes and the row's verdict. ``--json`` (:func:`to_json`) carries the same data, complete."""
    name_w = min(36, max((len(a[1]) for r in rows for a in _attack_lines(r)), default=0))
    risk_w = max((len(a[2]) for r in rows for a in _attack_lines(r)), default=0)
    out = []
    for r in rows:
        block = [f"{r.defense} | {r.setting} | {r.threat} | n = {r.n}",
                 f"    clean {r.clean_risk:.3f} | optimal {r.optimal:.3f} | floor {r.floor:.3f} = {r.floor_reason}"]
        for role, name, risk, verdict in _attack_lines(r):
            block.append(f"    {role:<8}  {name:<{name_w}}  {risk:<{risk_w}}  {verdict}".rstrip())
        if _other_extras(r):
            block.append("    also      " + " | ".join(_other_extras(r)))
        block += [f"    note      {col}: {text}" for col, text in r.notes.items()]
        block.append("    verdict   " + ("; ".join(r.verdicts) or "ok"))
        out += [w for line in block for w in _wrap(line, width)] + [""]
    level = f"{rows[0].level:g}" if rows else "0.95"
    foot = (f"risks: fraction of the n test points the defended system gets wrong at the attack's point, [exact "
            f"{level} Clopper-Pearson interval]; floor: the least risk possible ({IMPOSSIBLE} when an interval lies "
            "below it); n/a: not applicable")
    return "\n".join(out + _wrap(foot, width))


def to_json(rows: list[DefenseRow]) -> str:
    """The rows as a JSON list of objects (non-finite numbers as null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(u) for k, u in v.items()}
        return v

    return json.dumps([{**{k: clean(v) for k, v in asdict(r).items()}, "false_security": r.false_security,
                        "verdicts": r.verdicts}
                       for r in rows], indent=2)


# ------------------------------------------------------------------------------------------------ command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``defend`` subcommand to ``toyrobust``'s subparsers; returns its parser."""
    p = subparsers.add_parser(
        "defend", help=COMMANDS["defend"],
        description="For each defense (k-WTA, odds-are-odd detection, and any registered one) on each "
                    "distribution where it applies: the adversarial risk under the naive attack and under the "
                    "adaptive one (BPDA, EOT, detector-aware) with exact Clopper-Pearson intervals, next to the "
                    f"optimal adversarial risk; a risk below what any defense can reach is flagged {IMPOSSIBLE}.")
    p.add_argument("--quick", action="store_true", help="small trainings and attacks (under a minute on a CPU)")
    p.add_argument("--n", type=int, default=None, help="test points per row (default 1000 quick, 10000 otherwise)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--attack", action="append", default=[], metavar="NAME[:OPTION=VALUE,...]",
                   help="an extra attack run against every defense (repeatable), e.g. apgd or apgd:steps=50; "
                        f"registered: {ATTACKS.listing()}")
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``toyrobust defend``: print the table (or JSON); bad input raises the CLI's one-line UsageError."""
    n = args.n if args.n is not None else (1000 if args.quick else 10_000)
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    try:
        device = resolve_device(args.device)
        torch.empty(0, device=device)
    except (ValueError, RuntimeError, AssertionError) as err:  # torch without CUDA raises AssertionError
        raise UsageError(f"--device {args.device!r}: {str(err).splitlines()[0]}") from None
    config = EvalConfig(quick=args.quick, n=n, seed=args.seed, device=device, level=args.level)
    attacks = [parse_attack_spec(spec) for spec in args.attack]

    def report(row: DefenseRow) -> None:
        if not args.json:
            msg = (f"{row.defense} | {row.setting}: naive {row.naive_risk:.3f}, adaptive {row.adaptive_risk:.3f} "
                   f"({row.seconds:.1f} s)")
            print(msg, file=sys.stderr, flush=True)  # noqa: T201 (command-line output)

    rows = evaluate_defenses(config=config, report=report, attacks=attacks)
    print(to_json(rows) if args.json else format_table(rows))  # noqa: T201 (command-line output)
    return 0
