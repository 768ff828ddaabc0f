"""The cross-check: every analytic answer next to a Monte Carlo estimate from real attacks, with a verdict.

Each :class:`Case` names a distribution, a classifier (analytic, a trained network with an analytic twin, or a
trained network with no closed form), a threat model and a definition. :func:`run_case` computes

* the analytic risk ``tr.risk(...)`` where a closed form is registered (for a trained linear or quadratic
  network: the closed form of its analytic twin, after checking that the twin's margin equals the network's);
* the Monte Carlo estimate ``tr.estimate_risk(...)`` with its Clopper-Pearson interval, attacking the object
  itself (exact attacks for analytic classifiers, PGD for networks);

and a verdict that reads what the estimate is (:attr:`RiskEstimate.kind`): the risk itself (an exact attack, or
the standard risk), a lower bound on it (an attack that may miss), or a bracket (a lower bound and a verified
upper bound from :func:`toyrobust.verification.verify`). See :data:`LEGEND` for every verdict.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .attacks import default_attack
from .bounds import isoperimetric_expansion, optimal_risk
from .classifiers import Classifier, as_classifier
from .definitions import DEFINITIONS, check_definition
from .distributions import (
    ConcentricSpheres,
    Distribution,
    GaussianMixture,
    PointMasses,
    Tsipras,
    registered_distributions,
)
from .models import MLP, LinearModel, QuadraticNet
from .montecarlo import clopper_pearson, estimate_risk
from .netcache import train_cached
from .risks import risk
from .threats import L2, Linf, ThreatModel

__all__ = ["Case", "CaseResult", "default_cases", "run_case", "run", "format_table", "to_json", "to_csv",
           "VERDICTS", "LEGEND", "PROBLEMS", "judge", "timing_lines", "BUILD_SECONDS"]

VERDICTS = ("agree", "exact", "bracket", "attack weaker", "disagree", "bound holds", "vacuous", "bound violated",
            "estimate only")
#: what each verdict means (printed under the table)
LEGEND = {
    "agree": "a closed form inside the interval of an exact estimate (exact attack or standard risk), or inside "
             "the interval of a lower-bound estimate",
    "exact": "a trained network bracketed by the verifier, which decided every point: the interval is the risk "
             "itself (and contains the closed form where there is one)",
    "bracket": "a trained network bracketed by the verifier with some points undecided: the risk lies in "
               "[lower CI low, upper CI high] (which contains the closed form where there is one)",
    "attack weaker": "an attack that may miss (a lower bound) found fewer adversarial examples than the closed "
                     "form says exist: the closed form is above the interval",
    "disagree": "a closed form outside an exact interval, below a lower bound's interval (more verified "
                "adversarial examples than it allows), or outside a bracket; or a twin that is not the network",
    "bound holds": "no closed form: the estimate is consistent with every analytic lower bound, one of them "
                   "non-zero",
    "vacuous": "no closed form, and the only bounds are 0 (e.g. an optimal risk of 0): nothing was checked",
    "bound violated": "a lower bound lies above the interval's upper end (above the verified upper bound for a "
                      "bracket; for a lower-bound estimate: the attack is too weak, or the bound is wrong)",
    "estimate only": "neither a closed form nor a bound applies",
}
#: verdicts that flag a problem (``--strict`` fails on them)
PROBLEMS = ("disagree", "bound violated")


@dataclass
class Case:
    """One row of the cross-check.

    Attributes:
        group: a heading, e.g. ``"point masses"``.
        name: the classifier's short name, e.g. ``"bayes"`` or ``"trained linear (twin)"``.
        dist: the distribution.
        clf: the object attacked by Monte Carlo (a classifier or a torch module).
        threat: threat model or None (standard risk).
        definition: one of :data:`~toyrobust.definitions.DEFINITIONS`.
        twin: the analytic classifier whose closed form stands for ``clf`` (trained networks), or None.
        bounds: extra named lower bounds for the risk (for networks with no closed form); each name says where
            its number comes from (a closed form, or the estimate's n and seed).
        attack_options: passed to the attack (e.g. PGD steps).
        n: Monte Carlo sample size for this case (default: the run's ``n``); set for slow attacks and verifiers,
            whose rows then ignore ``--n`` (marked ``*`` in the table).
        upper: ``"verify"`` to bracket a torch network with the verifier (see :func:`toyrobust.estimate_risk`).
        verify_options: passed to the verifier.
        open_reason: why the verifier may leave points undecided (printed in the notes of a bracket left open).
    """

    group: str
    name: str
    dist: Distribution
    clf: Any
    threat: ThreatModel | None
    definition: str = "ball"
    twin: Classifier | None = None
    bounds: dict[str, float] = field(default_factory=dict)
    attack_options: dict[str, Any] | None = None
    n: int | None = None
    upper: str | None = None
    verify_options: dict[str, Any] | None = None
    open_reason: str | None = None


@dataclass
class CaseResult:
    """The outcome of one case (plain data: serialises to JSON and CSV).

    ``kind`` is the estimate's kind (exact, lower bound, bracket); ``upper``, ``upper_ci_low``, ``upper_ci_high``
    and ``decided`` the verified upper bound of a bracket (None otherwise); ``n_fixed`` whether the case fixed its
    own sample size (the run's ``n`` did not apply).
    """

    group: str
    classifier: str
    distribution: str
    threat: str
    definition: str
    analytic: float | None
    analytic_method: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    level: float
    attack: str
    verdict: str
    detail: str
    seconds: float
    kind: str = "lower bound"
    upper: float | None = None
    upper_ci_low: float | None = None
    upper_ci_high: float | None = None
    decided: int | None = None
    n_fixed: bool = False


def _threat_name(threat: ThreatModel | None) -> str:
    return "none" if threat is None else f"{threat.name}:{threat.eps:g}"


#: fresh points on which a twin's margin is compared with its network's
_TWIN_POINTS = 512


def _twin_gap(case: Case, seed: int) -> float:
    """Largest |network margin - twin margin| on fresh samples (0 means the twin is the network)."""
    x, _ = case.dist.sample(_TWIN_POINTS, generator=seed + 7, dtype=torch.float64)
    net = as_classifier(case.clf)
    module = getattr(net, "module", None)
    if isinstance(module, torch.nn.Module):
        p = next(module.parameters(), None)
        if p is not None:
            x = x.to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        a = net.margin(x).double().cpu()
        b = case.twin.margin(x.double().cpu())
    return float((a - b).abs().max() / (1 + b.abs().max()))


def _bounds_for(case: Case, analytic_std: Callable[[], float | None]) -> dict[str, float]:
    """Analytic lower bounds that apply to any classifier on this case."""
    out = dict(case.bounds)
    if case.definition == "ball" and case.threat is not None:
        try:
            out["optimal adversarial risk (closed form)"] = float(optimal_risk(case.dist, case.threat))
        except (NotImplementedError, TypeError, ValueError):
            pass
    if case.definition == "ball" and case.threat is None:
        try:
            out["Bayes risk (closed form)"] = float(risk(case.dist, case.dist.bayes_classifier()))
        except NotImplementedError:
            pass
    return out


def run_case(case: Case, *, n: int = 20_000, seed: int = 0, level: float = 0.999, device: Any = "cpu",
             progress: bool = False) -> CaseResult:
    """Compute the analytic value (or bounds) and the Monte Carlo estimate of one case, and judge them.

    Args:
        case: the case.
        n: Monte Carlo sample size.
        seed: master seed of the estimate.
        level: confidence level of the two-sided Clopper-Pearson interval.
        device: where the Monte Carlo runs.
        progress: show the estimator's progress bar.
    """
    check_definition(case.definition)
    start = time.perf_counter()
    details = []
    analytic, method = None, "no closed form"
    source = case.twin if case.twin is not None else case.clf
    if case.twin is not None:
        gap = _twin_gap(case, seed)
        details.append(f"twin margin gap {gap:.1e} (largest over {_TWIN_POINTS} fresh points, seed={seed + 7})")
        if gap > 1e-6:
            details.append("TWIN DIFFERS FROM NETWORK")
    missing = None
    if isinstance(source, Classifier):
        try:
            res = risk(case.dist, source, case.threat, case.definition)
            analytic, method = float(res), res.method
        except NotImplementedError as err:
            missing = _why_no_closed_form(err)
    est = estimate_risk(case.dist, case.clf, case.threat, case.definition, n=case.n or n, seed=seed, level=level,
                        device=device, dtype=torch.float64 if not isinstance(case.clf, torch.nn.Module) else None,
                        progress=progress, attack_options=case.attack_options, upper=case.upper,
                        verify_options=case.verify_options)
    if est.invalid_claims:
        details.append(f"{est.invalid_claims} attack claims failed verification (this row's points, seed={seed})")
    if est.kind == "bracket":
        details.append(f"verified upper {est.upper:.4g} [{est.upper_ci_low:.4f}, {est.upper_ci_high:.4f}], "
                       f"decided {est.decided}/{est.n} (the verifier on this row's points, seed={seed})")
        if est.decided < est.n and case.open_reason:
            details.append(f"left open: {case.open_reason}")
    bounds = _bounds_for(case, lambda: None) if analytic is None else {}
    verdict, why = judge(est, analytic, bounds, twin_differs=any("DIFFERS" in d for d in details))
    details += why
    if verdict in ("estimate only", "vacuous"):
        details.append(_why_open(est, missing))
    return CaseResult(
        group=case.group, classifier=case.name, distribution=repr(case.dist), threat=_threat_name(case.threat),
        definition=case.definition, analytic=analytic, analytic_method=method, estimate=est.value,
        ci_low=est.ci_low, ci_high=est.ci_high, n=est.n, level=level, attack=est.method, verdict=verdict,
        detail="; ".join(details), seconds=time.perf_counter() - start, kind=est.kind, upper=est.upper,
        upper_ci_low=est.upper_ci_low, upper_ci_high=est.upper_ci_high, decided=est.decided,
        n_fixed=case.n is not None)


def _why_no_closed_form(err: NotImplementedError) -> str:
    """The closed-form registry's reason, without its advice to estimate (the row is that estimate)."""
    text = " ".join(str(err).split())
    for cut in ("; estimate it", ": estimate it", "; use tr.estimate_risk"):
        text = text.split(cut)[0]
    return text if len(text) <= 240 else text[:237] + "..."


def _why_open(est: Any, missing: str | None) -> str:
    """A row left without a check says why: no closed form (the registry's reason), and what its estimate is."""
    what = ("the estimate is exact (every point decided), there is nothing to compare it with" if est.kind == "exact"
            else f"the estimate is a lower bound ({est.method}, an attack that may miss) and no verifier decides "
                 f"this classifier under this definition")
    return f"left open: {missing or 'no closed form for this classifier'}; {what}"


def judge(est: Any, analytic: float | None, bounds: dict[str, float] | None = None, *,
          twin_differs: bool = False) -> tuple[str, list[str]]:
    """The verdict of one row from what the estimate is (``est.kind``), and details for the bounds.

    Args:
        est: a :class:`~toyrobust.montecarlo.RiskEstimate` (or anything with its fields ``kind``, ``ci_low``,
            ``ci_high``, ``n`` and, for a bracket, ``upper_ci_high`` and ``decided``).
        analytic: the closed form, or None.
        bounds: named analytic lower bounds on the risk (used without a closed form).
        twin_differs: the analytic twin is not the network (always "disagree").

    Returns:
        ``(verdict, details)``; the verdicts are listed in :data:`LEGEND`.
    """
    tol = 1e-12  # absorbs float rounding of risks that are exactly 0 or 1
    kind = est.kind
    closed = kind == "bracket" and est.decided == est.n
    high = est.upper_ci_high if kind == "bracket" else est.ci_high
    if twin_differs:
        return "disagree", []
    if analytic is not None:
        if kind == "exact" or closed:
            inside = est.ci_low - tol <= analytic <= est.ci_high + tol
            return ("agree" if kind == "exact" else "exact") if inside else "disagree", []
        if kind == "bracket":
            return ("bracket" if est.ci_low - tol <= analytic <= high + tol else "disagree"), []
        if analytic < est.ci_low - tol:
            return "disagree", []
        return ("attack weaker" if analytic > est.ci_high + tol else "agree"), []
    bounds = bounds or {}
    broken = {k: v for k, v in bounds.items() if v > high + tol}
    details = [f"{k} {v:.4g}" + (" (ABOVE the interval)" if k in broken else "") for k, v in bounds.items()]
    if broken:
        return "bound violated", details
    if kind == "bracket":
        return ("exact" if closed else "bracket"), details
    if bounds:
        return ("bound holds" if any(v > tol for v in bounds.values()) else "vacuous"), details
    return "estimate only", details


# ------------------------------------------------------------------------------------------ the default cases
def _attack_settings(case: Case, quick: bool) -> tuple[int | None, dict[str, Any] | None]:
    """Sample size and attack options of an analytic case, as the attack that will run says
    (:meth:`toyrobust.attacks.Attack.crosscheck_settings`): None (the run's ``n``) for exact attacks, fewer points
    and quicker options for the slow definition-aware ones."""
    attack = default_attack(case.clf, case.threat, case.definition, dist=case.dist)
    return attack.crosscheck_settings(case.definition, quick)


def _grid(quick: bool, threats: list[ThreatModel], skip_quick: tuple[str, ...] = ()) -> list[tuple[ThreatModel, str]]:
    """(threat, definition) pairs: every definition for every threat, or in quick mode every definition (less
    ``skip_quick``) for the first threat and the ball definition for the others."""
    if not quick:
        return [(t, d) for t in threats for d in DEFINITIONS]
    return [(threats[0], d) for d in DEFINITIONS if d not in skip_quick] + [(t, "ball") for t in threats[1:]]


def _analytic_cases(quick: bool) -> list[Case]:
    """The analytic cases every registered distribution offers (:meth:`Distribution.examples`)."""
    cases: list[Case] = []
    for cls in registered_distributions().values():
        for ex in cls.examples(quick):
            threats = list(ex.threats)
            if quick and ex.every_definition:
                grid = [(t, d) for t in threats for d in DEFINITIONS]
            else:
                grid = _grid(quick, threats, ex.skip_quick)
            for clf_name, clf in ex.classifiers:
                cases.append(Case(ex.group, clf_name, ex.dist, clf, None))
                for threat, definition in grid:
                    case = Case(ex.group, clf_name, ex.dist, clf, threat, definition)
                    case.n, case.attack_options = _attack_settings(case, quick)
                    cases.append(case)
    return cases


#: how each cross-check network is trained, quick and full size: steps, batch size, peak learning rate and schedule
#: (Adam throughout). The full-size settings were chosen by measuring when the standard risk stops improving; the
#: table in benchmarks/README.md ("cross-check training schedules") compares them with the long constant-rate runs
#: they replaced.
TRAINING: dict[str, dict[str, dict[str, Any]]] = {
    "linear": {"quick": dict(steps=300, batch_size=256, lr=0.05),
               "full": dict(steps=300, batch_size=1024, lr=0.05, schedule="cosine")},
    # the quadratic network starts at the Bayes rule (init_bias = the mean squared radius): a larger rate only
    # perturbs it (3e-3 for 600 steps ends at a standard risk of 3.9%, 1e-3 for 4000 steps at 0.14%)
    "quadratic": {"quick": dict(steps=400, batch_size=128, lr=1e-3),
                  "full": dict(steps=300, batch_size=256, lr=1e-4, schedule="cosine")},
    "mlp": {"quick": dict(steps=400, batch_size=128, lr=1e-3),
            "full": dict(steps=600, batch_size=256, lr=2e-3, schedule="cosine")},
    "small mlp": {"quick": dict(steps=400, batch_size=128, lr=0.01),
                  "full": dict(steps=300, batch_size=256, lr=0.02, schedule="cosine")},
}


def _fit(model: Any, dist: Distribution, what: str, quick: bool, build: dict[str, Any], **extra: Any) -> None:
    """Train ``model`` with :data:`TRAINING`'s settings for ``what``, through the network cache (``build``: seed,
    device, progress and cache of :func:`default_cases`)."""
    settings = dict(TRAINING[what]["quick" if quick else "full"], **extra)
    res = train_cached(model, dist, cache=build["cache"], seed=build["seed"], device=build["device"],
                       progress=build["progress"], **settings)
    build["trained" if res is not None else "cached"] += 1


def _trained_cases(quick: bool, build: dict[str, Any]) -> list[Case]:
    cases: list[Case] = []
    seed, device = build["seed"], build["device"]
    D = 50 if quick else 500
    gm = GaussianMixture.robust_nonrobust(D)
    a = math.sqrt(math.log(D) / (D - 1))
    for label, adversarial in (("trained linear", None), ("adv-trained linear", "closed-form")):
        model = LinearModel(D, dtype=torch.float64)
        _fit(model, gm, "linear", quick, build, adversarial=adversarial, threat=Linf(2 * a))
        twin = model.twin()
        for threat in (None, Linf(2 * a), L2(0.5)):
            cases.append(Case(f"trained, robust/non-robust D={D}", f"{label} (network)", gm, model, threat,
                              twin=twin, attack_options={"steps": 20}))
        cases.append(Case(f"trained, robust/non-robust D={D}", f"{label} (twin)", gm, twin, Linf(2 * a)))

    dim, hidden = (20, 100) if quick else (500, 1000)
    sp = ConcentricSpheres(dim, 1.0, 1.3)
    quad = QuadraticNet(dim, hidden, init_bias=(1 + 1.3) ** 2 / 4, seed=seed, dtype=torch.float64)
    _fit(quad, sp, "quadratic", quick, build)
    cases += _quadratic_net_cases(sp, quad, f"trained, spheres D={dim}")

    # the quick run's 20-100-100-1 network in both runs (the size whose L2 rows the branch and bound decides), then
    # the full run's 500-1000-1000-1 one
    for d_mlp, h_mlp in ((20, 100),) + (() if quick else ((dim, hidden),)):
        sp_mlp = ConcentricSpheres(d_mlp, 1.0, 1.3)
        mlp = MLP(d_mlp, (h_mlp, h_mlp), seed=seed, dtype=torch.float32)
        _fit(mlp, sp_mlp, "mlp", d_mlp == 20, build)
        cases += _sphere_mlp_cases(sp_mlp, mlp, f"trained, spheres D={d_mlp}", quick, device, seed)
    return cases + _bracketed_cases(quick, build)


def _sphere_mlp_cases(sp: ConcentricSpheres, mlp: Any, group: str, quick: bool, device: Any,
                      seed: int) -> list[Case]:
    """The spheres ReLU MLP's rows: its standard risk, and L2 0.05 and 0.2 bracketed by the attack and the
    verifier (:data:`_SPHERE_MLP_ROWS`: exact where the L2 branch and bound decides every point)."""
    cases = []
    for eps, bounds in _sphere_mlp_bounds(sp, mlp, (0.05, 0.2), seed, device).items():
        n, verify_options, reason = _SPHERE_MLP_ROWS[(f"D={int(sp.dim)}", eps, quick)]
        cases.append(Case(group, "ReLU MLP", sp, mlp, L2(eps), bounds=bounds, attack_options={"steps": 40},
                          upper="verify", n=n, verify_options=verify_options, open_reason=reason))
    cases.append(Case(group, "ReLU MLP", sp, mlp, None))
    return cases


def _sphere_mlp_bounds(sp: ConcentricSpheres, mlp: Any, radii: tuple[float, ...], seed: int,
                       device: Any) -> dict[float, dict[str, float]]:
    """Per L2 radius, the lower bounds of the spheres MLP's rows, each named with where its number comes from:
    the isoperimetric bound from each sphere's error rate (its lower 0.999 end, points and seed said), and the
    standard risk's lower end from a separate estimate (n, seed and level said: it is not the standard-risk row)."""
    dim = int(sp.dim)
    mlp_std = estimate_risk(sp, mlp, None, n=20_000, seed=seed + 1, level=0.999, device=device)
    # every bound says where its number comes from: these are separate estimates, not the table's rows
    std_note = (f"standard risk (lower end, a separate estimate: n={mlp_std.n}, seed={seed + 1}, level 0.999; "
                f"not the standard-risk row)")
    # per-sphere error rates, lower confidence ends, give the isoperimetric bound on the ball risk
    errs, sources = [], []
    for yv, r in ((-1, 1.0), (1, 1.3)):
        # sampled where the network lives: a CPU batch fed to a CUDA model crashed the first GPU run
        x, _ = sp.sample(4000, generator=seed + 11 + yv, dtype=torch.float32, device=next(mlp.parameters()).device)
        x = x[(x.norm(dim=1) - r).abs() < 1e-3]
        with torch.no_grad():
            wrong = int((as_classifier(mlp).predict(x) != yv).sum())
        errs.append((clopper_pearson(wrong, x.shape[0], 0.999)[0], r))
        sources.append(f"{x.shape[0]} points on radius {r:g}, seed={seed + 11 + yv}")
    iso_note = f"isoperimetric bound (from each sphere's error rate, lower 0.999 ends: {'; '.join(sources)})"
    out = {}
    for eps in radii:
        iso = 0.5 * sum(float(isoperimetric_expansion(dim, mu, eps, r)) if mu > 0 else 0.0 for mu, r in errs)
        out[eps] = {iso_note: iso, std_note: mlp_std.ci_low}
    return out


def _quadratic_net_cases(sp: ConcentricSpheres, quad: QuadraticNet, group: str) -> list[Case]:
    """The quadratic network's rows: its standard risk, and L2 0.05 decided exactly by the verifier (the
    trust-region subproblem), both next to the closed form of its twin."""
    twin = quad.twin()
    # the verifier decides every point exactly, so the attack only cross-checks its verdicts (a point it breaks
    # must not be proven robust): 10 steps, not 40 (measured at full size: 57 of the row's 64 s were the attack)
    return [Case(group, "quadratic net (network)", sp, quad, threat, twin=twin, attack_options={"steps": 10},
                 upper=None if threat is None else "verify") for threat in (None, L2(0.05))]


#: points per bracketed row (the verifier solves a MILP per undecided point) and its time limit per point
_BRACKET_N = 1000
#: the spheres-MLP rows per (size, L2 radius, quick): points (None: the run's n), the verifier's options, and why
#: points may stay undecided (printed with a bracket left open). Measured (benchmarks/README.md, "Quad-CROWN's branch
#: and bound"; 1 thread, idle): at D = 20 the L2 search (Quad-CROWN's branch and bound, then the SOCP one) decides
#: every point at 0.05 (20000 points in 10 s) and at 0.2 (300 of 300 in 17 s; the SOCP branch and bound alone left 3
#: open at 60 s a point); at D = 500 only the bounds run (CROWN per point, alpha-CROWN then Quad-CROWN on what it
#: leaves open: 921 of 1000 points decided at 0.05, all at 0.2)
_SPHERE_SEARCH_OPEN = ("the L2 search (Quad-CROWN's branch and bound, then the SOCP one) ran out of its 30 s on these "
                       "points (measured on an idle 2-core machine, 1 thread: 300 of 300 decided in 17 s, the slowest "
                       "point in 12 s; a loaded or slower machine gets less done in the time)")
_SPHERE_BOUNDS_ONLY = ("the verifier's bounds only: CROWN, alpha-CROWN, then Quad-CROWN (quadratic relaxations of the "
                       "first layer minimised exactly over the ball), which decides 92% of the points at L2 0.05 where "
                       "every single-neuron relaxation left 52% open about 35 below the sampled margins (measured: "
                       "benchmarks/README.md, Quad-CROWN); the open points' bounds end between -1.1 and 0, most of "
                       "that gap in the second layer's chords. Neither branch and bound closes them in time: the SOCP "
                       "one cannot split ~500 unstable neurons per layer, and Quad-CROWN's moved the worst leaf of two "
                       "open points from -1.1 to -0.5 in 120 s (2400 leaves each). Tightening the second layer's "
                       "bounds by Quad-CROWN closes most of the gap (on 3 open points: 329-563 unstable second-layer "
                       "neurons down to 25-133, bounds -0.02, -0.76, -1.09 up to +0.52, 0.00, -0.22) but costs 26-37 "
                       "s a point on one thread, most of an hour for the row's 79 open points")
_SPHERE_MLP_ROWS: dict[tuple[str, float, bool], tuple[int | None, dict[str, Any], str | None]] = {
    ("D=20", 0.05, True): (5000, {"time_limit": 30.0}, None),
    ("D=20", 0.05, False): (None, {"time_limit": 30.0}, None),
    ("D=20", 0.2, True): (300, {"time_limit": 30.0}, _SPHERE_SEARCH_OPEN),
    ("D=20", 0.2, False): (300, {"time_limit": 30.0}, _SPHERE_SEARCH_OPEN),
    ("D=500", 0.05, False): (1000, {"method": "bounds"}, _SPHERE_BOUNDS_ONLY),
    ("D=500", 0.2, False): (1000, {"method": "bounds"}, _SPHERE_BOUNDS_ONLY),
}
_BRACKET_VERIFY = {"time_limit": 2.0}


def _bracketed_cases(quick: bool, build: dict[str, Any]) -> list[Case]:
    """Small ReLU MLPs (<= two hidden layers of 64) bracketed by the verifier under Linf: the attack's lower
    bound and the verified upper bound, on point masses, 2-D Tsipras and the robust/non-robust features (D = 20)."""

    D = 20
    a = math.sqrt(math.log(D) / (D - 1))
    setups = (
        (PointMasses(1.0), (16,), Linf(0.3), ("ball", "projection", "error-region")),
        (Tsipras(0.9, 3.0, 1), (32, 32), Linf(0.5), ("ball", "projection")),
        (GaussianMixture.robust_nonrobust(D), (64,), Linf(2 * a), ("ball",)),
    )
    cases = []
    for dist, hidden, threat, definitions in setups:
        mlp = MLP(int(dist.dim), hidden, seed=build["seed"], dtype=torch.float32)
        _fit(mlp, dist, "small mlp", quick, build)
        name = f"ReLU MLP {'x'.join(map(str, hidden))}"
        group = {PointMasses: "trained, point masses gap=1", Tsipras: "trained, tsipras p=0.9 eta=3"}.get(
            type(dist), f"trained, robust/non-robust D={D}")
        for definition in definitions:
            cases.append(Case(group, name, dist, mlp, threat, definition, n=_BRACKET_N, upper="verify",
                              verify_options=dict(_BRACKET_VERIFY)))
    return cases


#: how long the last :func:`default_cases` of this process took (``seconds``; ``trained``: networks were trained
#: then) -- the "building the cases" stage of :func:`format_table`'s closing times
BUILD_SECONDS: dict[str, Any] = {}


def default_cases(quick: bool = True, *, trained: bool = True, seed: int = 0, device: Any = "cpu",
                  progress: bool = False, cache: str | os.PathLike | bool | None = None) -> list[Case]:
    """The default case list: all four distributions, all norms and definitions, analytic and trained models.

    Args:
        quick: small dimensions and short trainings instead of the full size.
        trained: include the trained networks (trained here, or loaded from the network cache).
        seed: seed of the trainings.
        device: where the trainings run.
        progress: show training progress bars.
        cache: the network cache (:func:`toyrobust.netcache.train_cached`): None for the default folder
            (``$TOYROBUST_CACHE_DIR``, ``$XDG_CACHE_HOME/toyrobust`` or ``~/.cache/toyrobust``), a folder, or
            False to train every network afresh and store none.
    """
    start = time.perf_counter()
    cases = _analytic_cases(quick)
    build = {"seed": seed, "device": device, "progress": progress, "cache": cache, "trained": 0, "cached": 0}
    if trained:
        cases += _trained_cases(quick, build)
    BUILD_SECONDS.clear()
    BUILD_SECONDS.update(seconds=time.perf_counter() - start, trained=trained, networks_trained=build["trained"],
                         networks_cached=build["cached"])
    return cases


class CrossCheckTable(list):
    """The results of :func:`run`: a list of :class:`CaseResult` that prints as :func:`format_table` and shows as
    an HTML table in Jupyter; :meth:`to_json` and :meth:`to_csv` serialise it."""

    def __str__(self) -> str:
        return format_table(self)

    def _repr_html_(self) -> str:
        """Jupyter: the rows as an HTML table, problem verdicts in bold red."""
        from .display import crosscheck_html

        return crosscheck_html(self)

    def to_json(self) -> str:
        """:func:`to_json` of the rows."""
        return to_json(self)

    def to_csv(self) -> str:
        """:func:`to_csv` of the rows."""
        return to_csv(self)


def run(cases: list[Case], *, n: int = 20_000, seed: int = 0, level: float = 0.999, device: Any = "cpu",
        report: Callable[[int, int, CaseResult], Any] | None = None) -> CrossCheckTable:
    """Run every case; ``report(i, total, result)`` is called after each one. The results come back as a
    :class:`CrossCheckTable` (a list of :class:`CaseResult`)."""
    results = CrossCheckTable()
    for i, case in enumerate(cases, 1):
        res = run_case(case, n=n, seed=seed + i, level=level, device=device)
        results.append(res)
        if report:
            report(i, len(cases), res)
    return results


# ------------------------------------------------------------------------------------------ output
_COLUMNS = ("group", "classifier", "threat", "definition", "analytic", "estimate", "ci", "n", "verdict", "detail")
_SHOUT = ("disagree", "bound violated", "attack weaker")


def _row(r: CaseResult) -> list[str]:
    analytic = "-" if r.analytic is None else f"{r.analytic:.4g}"
    if r.kind == "bracket" and r.upper_ci_high is not None:
        ci = f"[{r.ci_low:.4f}, {r.upper_ci_high:.4f}]"  # lower end of the attack, upper end of the verifier
    else:
        ci = f"[{r.ci_low:.4f}, {r.ci_high:.4f}]"
    if r.kind == "lower bound":
        ci = ">= " + ci  # the risk may lie above the interval
    verdict = r.verdict.upper() if r.verdict in _SHOUT else r.verdict
    n = f"{r.n}*" if r.n_fixed else str(r.n)
    return [r.group, r.classifier, r.threat, r.definition, analytic, f"{r.estimate:.4f}", ci, n, verdict,
            r.detail]


def format_table(results: list[CaseResult]) -> str:
    """A fixed-width table for people: the rows, a summary line of verdict counts and a legend of every verdict.

    The interval column is the Clopper-Pearson interval of the estimate; ``>= [..]`` marks a lower-bound estimate
    (an attack that may miss), and a bracket shows ``[attack's lower end, verifier's upper end]``. An ``n`` marked
    ``*`` is the case's own sample size (the run's ``n`` did not apply). The closing lines give the times
    (:func:`timing_lines`).
    """
    rows = [list(_COLUMNS)] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    level = results[0].level if results else float("nan")
    kinds = {k: sum(r.kind == k for r in results) for k in ("exact", "lower bound", "bracket")}
    lines.append("")
    lines.append(f"{len(results)} cases at level {level:g} (two-sided Clopper-Pearson): "
                 + ", ".join(f"{c} {v}" for v, c in counts.items() if c))
    lines.append("estimates: " + ", ".join(f"{c} {k}" for k, c in kinds.items() if c)
                 + (f"; {sum(r.n_fixed for r in results)} rows fix their own n (marked *)"
                    if any(r.n_fixed for r in results) else ""))
    lines.append("")
    # lower-case names here, so that a search of the output for a capitalised problem verdict finds only rows
    lines.append("verdicts (the problems " + ", ".join(_SHOUT) + " are capitalised in the rows):")
    width = max(len(v) for v in VERDICTS)
    lines += [f"  {v:<{width}}  {LEGEND[v]}" for v in VERDICTS]
    lines.append(f"  {'>= [a, b]':<{width}}  a lower-bound estimate (an attack that may miss); [a, b] alone: exact "
                 f"or a bracket")
    return "\n".join(lines + [""] + timing_lines(results))


def timing_lines(results: list[CaseResult], build: dict[str, Any] | None = None) -> list[str]:
    """The closing times of a cross-check: the total wall time, building the cases (from ``build``, default
    :data:`BUILD_SECONDS`: where the networks are trained) and running them, then each group's running time."""
    build = BUILD_SECONDS if build is None else build
    ran = sum(r.seconds for r in results)
    wall, workers = getattr(results, "run_wall", None), getattr(results, "workers", 0)
    if wall is not None and workers:  # cases ran side by side: the wall clock, not their sum
        ran = wall
    built = float(build.get("seconds", 0.0))
    groups: dict[str, float] = {}
    for r in results:
        groups[r.group] = groups.get(r.group, 0.0) + r.seconds
    cases = f"{len(results)} case{'' if len(results) == 1 else 's'}"
    if "seconds" in build:
        what = "building the cases"
        if build.get("trained"):
            what += (f" (networks: {build.get('networks_trained', 0)} trained, {build.get('networks_cached', 0)} "
                     f"from the cache)" if "networks_trained" in build else " (training the networks)")
        on = (f" on {workers} workers (the cases' own times add up to {sum(r.seconds for r in results):.1f} s)"
              if wall is not None and workers else "")
        head = (f"times: {cases} in {built + ran:.1f} s (wall clock): {what} {built:.1f} s, running "
                f"them {ran:.1f} s{on}; by group (running):")
    else:
        head = f"times: {cases} run in {ran:.1f} s (wall clock); by group:"
    lines = [head]
    width = max((len(g) for g in groups), default=0)
    total = sum(groups.values())
    for group, sec in groups.items():
        share = f"{100 * sec / total:3.0f}%" if total > 0 else "  -"
        lines.append(f"  {group:<{width}}  {sec:7.1f} s  {share}")
    return lines


def to_json(results: list[CaseResult]) -> str:
    """JSON list of the results (one object per case)."""
    return json.dumps([asdict(r) for r in results], indent=2)


def to_csv(results: list[CaseResult]) -> str:
    """CSV of the results, one row per case."""
    buf = io.StringIO()
    names = list(CaseResult.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=names)
    writer.writeheader()
    for r in results:
        writer.writerow(asdict(r))
    return buf.getvalue()
