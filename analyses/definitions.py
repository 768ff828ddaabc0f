"""Figure 9: the four definitions of an adversarial example side by side, for one trained network per distribution.

For each distribution a small ReLU network (``tr.MLP``) is trained on fresh samples with the logistic loss
(``tr.train``), and its adversarial risk is estimated against eps under the four definitions of
``toyrobust.definitions``: ``ball`` (f(x') != y), ``projection`` (f(x') != y while the Bayes label of the projection
of x' onto the support is still y; seed 000), ``error-region`` (f(x') != Bayes(pi(x'))) and ``prediction-change``
(f(x') != f(x)). Points: Monte Carlo estimates on one fixed sample per distribution, attacked at increasing eps with
the toolkit's default attack (``tr.attacks.default_attack``: PGD with a margin loss, and for the projection
definition PGD kept inside the label-preserving region); each candidate is verified (inside the ball, adversarial
under the definition), and a point found adversarial at some eps counts at every larger eps too (the balls are
nested), so the curves are monotone and a missed attack can only lower them. Intervals: 95% Clopper-Pearson
(``tr.clopper_pearson``); points are dodged slightly along eps for legibility. Thin dashed lines: the same four
risks of the Bayes classifier in closed form (``tr.risk``), for reference. Threats: Linf for the point masses,
Tsipras and the robust/non-robust features model, L2 for the spheres.

Run: ``python analyses/definitions.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import toyrobust as tr
from toyrobust.attacks import default_attack
from toyrobust.plotting import COLORS, save_figure, sweep_rows, use_style
from toyrobust.rng import resolve_device

NAME = "definitions"
DEF_COLORS = {"ball": COLORS["neg"], "projection": COLORS["pos"], "error-region": COLORS["green"],
              "prediction-change": COLORS["pink"]}
EST_COLS = ("distribution", "eps", "definition", "estimate", "ci_low", "ci_high", "n", "attack")
BAYES_COLS = ("distribution", "eps", "definition", "closed_form")
TRAIN_COLS = ("distribution", "model", "steps", "final_standard_risk")
DEF_MARKERS = {"ball": "o", "projection": "s", "error-region": "D", "prediction-change": "^"}


@dataclass(frozen=True)
class Setup:
    """One panel: a distribution, its threat family, the eps range and the network to train."""

    key: str
    title: str
    dist: Any
    threat: Callable[[float], Any]
    eps_max: float
    eps_label: str
    model: Callable[[], Any]
    steps: int
    lr: float


def _setups(quick: bool) -> list[Setup]:
    sphere_dim = 100 if quick else 500
    a = math.sqrt(math.log(100) / 99)
    return [
        Setup("point_masses", "point masses (gap 1), Linf", tr.PointMasses(1.0), tr.Linf, 1.5, "eps / gap",
              lambda: tr.MLP(1, (16,), seed=0), 100 if quick else 500, 1e-2),
        Setup("tsipras", "Tsipras (p 0.9, eta 3), Linf", tr.Tsipras(0.9, 3.0, 1), tr.Linf, 7.5, "eps",
              lambda: tr.MLP(2, (32, 32), seed=0), 150 if quick else 1500, 3e-3),
        Setup("robust_nonrobust", "robust/non-robust features (D 100), Linf",
              tr.GaussianMixture.robust_nonrobust(100), tr.Linf, 3 * a, f"eps (seed 003: 2a = {2 * a:.3f})",
              lambda: tr.MLP(100, (64,), seed=0), 150 if quick else 1500, 3e-3),
        Setup("spheres", f"spheres (D {sphere_dim}, radii 1, 1.3), L2", tr.ConcentricSpheres(sphere_dim, 1.0, 1.3),
              tr.L2, 0.45, "eps (label-invariant radius 0.15)",
              lambda: tr.MLP(sphere_dim, (64, 64) if quick else (256, 256), seed=0), 150 if quick else 2000, 3e-3),
    ]


def _panel(params: dict) -> dict:
    """One panel's data (a sweep task): train the network, attack it at every eps under every definition, and the
    Bayes classifier's closed forms; plain lists, so the row is stored as JSON."""
    k, quick = int(params["panel"]), bool(params["quick"])
    setup = _setups(quick)[k]
    device = resolve_device(None)
    n = 150 if quick else 1000
    n_eps = 4 if quick else 9
    # the projection attack (PGD kept in the label-preserving region) is the slow one: fewer steps when quick
    options = {"projection": {"steps": 30}} if quick else {}
    estimates: dict[str, list] = {k: [] for k in EST_COLS}
    bayes: dict[str, list] = {k: [] for k in BAYES_COLS}
    training: dict[str, list] = {k: [] for k in TRAIN_COLS}
    model = setup.model()
    result = tr.train(model, setup.dist, steps=setup.steps, batch_size=256, lr=setup.lr, seed=k,
                      device=device, eval_every=0, eval_n=2000 if quick else 20_000)
    training["distribution"].append(setup.key)
    training["model"].append(f"MLP{(setup.dist.dim,) + tuple(model.hidden) + (1,)}")
    training["steps"].append(setup.steps)
    training["final_standard_risk"].append(result.history[-1]["risk"])
    eps_grid = np.linspace(0.0, setup.eps_max, n_eps)
    fine = np.linspace(0.0, setup.eps_max, 31 if quick else 121)
    bayes_clf = setup.dist.bayes_classifier()
    gen = torch.Generator(device=device).manual_seed(1000 + k)
    x, y = setup.dist.sample(n, generator=gen)
    clf = tr.as_classifier(model)
    for definition in tr.DEFINITIONS:
        for e in fine:
            threat = None if e == 0 else setup.threat(float(e))
            bayes["distribution"].append(setup.key)
            bayes["eps"].append(float(e))
            bayes["definition"].append(definition)
            bayes["closed_form"].append(float(tr.risk(setup.dist, bayes_clf, threat, definition)))
        # the clean point lies in its own ball: adversarial at every eps if it already is
        with torch.no_grad():
            found = tr.is_adversarial(definition, clf, x, y, dist=setup.dist, x=x)
        for e in eps_grid:
            method = "none (clean points)"
            rows = torch.nonzero(~found).flatten()
            if e > 0 and len(rows):
                threat = setup.threat(float(e))
                attack = default_attack(clf, threat, definition)
                method = attack.label
                res = attack(clf, x[rows], y[rows], threat, definition=definition, dist=setup.dist,
                             generator=gen, **(options.get(definition) or {}))
                with torch.no_grad():
                    x_adv = res.x_adv.detach()
                    ok = threat.contains(x_adv, x[rows]) & tr.is_adversarial(
                        definition, clf, x_adv, y[rows], dist=setup.dist, x=x[rows])
                found[rows] |= ok
            hits = int(found.sum())
            low, high = tr.clopper_pearson(hits, n)
            for key, value in (("distribution", setup.key), ("eps", float(e)), ("definition", definition),
                               ("estimate", hits / n), ("ci_low", low), ("ci_high", high), ("n", n),
                               ("attack", method)):
                estimates[key].append(value)
    as_plain = {"estimates": estimates, "bayes": bayes, "training": training}
    return {part: {c: [v.item() if hasattr(v, "item") else v for v in vals] for c, vals in cols.items()}
            for part, cols in as_plain.items()}


def main(quick: bool = False, out: str | Path | None = None, executor: Any = None, max_workers: int = 0,
         resume: bool = False) -> list[Path]:
    """Build the figure; ``quick`` trains less and uses fewer points and eps values. Returns the written paths.

    The four panels are the tasks of a sweep (:func:`toyrobust.plotting.sweep_rows`): kept in a resumable store,
    computed in this process by default or on ``executor``."""
    import matplotlib.pyplot as plt

    use_style()
    rows = sorted(sweep_rows(NAME, quick, {"panel": [0, 1, 2, 3], "quick": quick}, _panel, executor=executor,
                             max_workers=max_workers, resume=resume), key=lambda r: int(r["panel"]))
    # the CSV columns in their documented order (the store keeps JSON objects, whose keys come back sorted)
    estimates: dict[str, list] = {k: [] for k in EST_COLS}
    bayes: dict[str, list] = {k: [] for k in BAYES_COLS}
    training: dict[str, list] = {k: [] for k in TRAIN_COLS}
    for row in rows:
        for part, merged in (("estimates", estimates), ("bayes", bayes), ("training", training)):
            for c in merged:
                merged[c].extend(row[part][c])
    fig, axes = plt.subplots(1, 4, figsize=(15.0, 4.4))
    for k, (setup, ax) in enumerate(zip(_setups(quick), axes, strict=True)):
        est_cols = {c: np.asarray(v) for c, v in estimates.items()}
        ref_cols = {c: np.asarray(v) for c, v in bayes.items()}
        for j, definition in enumerate(tr.DEFINITIONS):
            color = DEF_COLORS[definition]
            sel = (ref_cols["distribution"] == setup.key) & (ref_cols["definition"] == definition)
            ax.plot(ref_cols["eps"][sel], ref_cols["closed_form"][sel].astype(float), color=color, lw=1.0,
                    alpha=0.7, ls=(0, (3, 2)))
            sel = (est_cols["distribution"] == setup.key) & (est_cols["definition"] == definition)
            x = est_cols["eps"][sel].astype(float) + (j - 1.5) * 0.008 * setup.eps_max  # side by side
            y = est_cols["estimate"][sel].astype(float)
            err = np.vstack([y - est_cols["ci_low"][sel].astype(float), est_cols["ci_high"][sel].astype(float) - y])
            ax.errorbar(x, y, yerr=err, fmt=DEF_MARKERS[definition] + "-", color=color, ms=4.5, lw=1.3, capsize=2,
                        mfc="white", label=definition)
        ax.set_title(f"({'abcd'[k]}) {setup.title}\ntrained {training['model'][k]}, "
                     f"standard risk {training['final_standard_risk'][k]:.3g}", fontsize=9.5)
        ax.set_xlabel(setup.eps_label)
        ax.set_ylim(-0.03, 1.03)
        if k == 0:
            ax.set_ylabel("adversarial risk (probability)")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="0.4", lw=1.0, ls=(0, (3, 2))))
    labels.append("Bayes classifier, closed form (thin dashed line, same colour)")
    fig.legend(handles, [f"trained network, {lab} (Monte Carlo, 95% CI)" if lab in tr.DEFINITIONS else lab
                         for lab in labels], loc="lower center", ncol=3, fontsize=8.5, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save_figure(fig, NAME, {"": estimates, "bayes": bayes, "training": training}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less training, fewer points and eps values")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    parser.add_argument("--workers", type=int, default=0, help="processes for the figure's sweep (0: this one)")
    parser.add_argument("--resume", action="store_true", help="reuse the rows of an earlier or interrupted run")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out, max_workers=args.workers, resume=args.resume):
        print(path)
