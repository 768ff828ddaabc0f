"""Figure 3: robust vs non-robust features (seed 003): accurate but fragile Bayes rule, robust but weak sign(x1).

Data: ``GaussianMixture.robust_nonrobust(D)``, ``x = y (1, a, ..., a) + z`` with ``a = sqrt(log D / (D - 1))`` and
``z ~ N(0, I_D)``; threat: seed 003's Linf ball of radius ``eps = 2a`` (which flips the non-robust features). For
the Bayes classifier ``sign(<mean, x>)`` and the robust classifier ``sign(x1)``: the standard risk and the
Linf-adversarial (ball definition) risk against D, closed forms as lines

* Bayes: standard ``Q(sqrt(1 + log D))``, adversarial ``Q((1 + log D - eps ||mean||_1) / sqrt(1 + log D))``;
* sign(x1): standard ``Q(1)`` (about 0.16), adversarial ``Q(1 - eps)``;

the smallest adversarial risk any classifier can reach (``tr.optimal_risk``: ``Q(dist_2(mean, eps-ball))``, here
the same as sign(x1)'s), and Monte Carlo estimates (``tr.estimate_risk`` with the exact attack) as points with
95% Clopper-Pearson intervals.

Run: ``python analyses/robust_features.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import toyrobust as tr
from toyrobust.blocks import Blocks
from toyrobust.plotting import COLORS, save_figure, sweep_rows, use_style

NAME = "robust_features"


def _setup(D: int) -> tuple[tr.GaussianMixture, dict[str, tr.Linear], tr.Linf]:
    dist = tr.GaussianMixture.robust_nonrobust(D)
    a = math.sqrt(math.log(D) / (D - 1))
    classifiers = {"bayes": dist.bayes_classifier(), "sign_x1": tr.Linear(Blocks([(1.0, 1), (0.0, D - 1)]), 0.0)}
    return dist, classifiers, tr.Linf(2 * a)


def _monte_carlo(mc_dims: list[int], n: int, quick: bool, executor=None, max_workers: int = 0,
                 resume: bool = False) -> dict:
    """The estimates as a sweep (task ``estimate``, :func:`toyrobust.plotting.sweep_rows`): standard and Linf
    (eps = 2a) risk of the Bayes rule and of sign(x1) at each D, seed ``1000 + i`` for the i-th dimension (as a plain
    loop would use)."""
    dims, threats, seeds, chunks = [], [], [], []
    for i, D in enumerate(mc_dims):
        _, _, threat = _setup(D)
        for spec in ("none", f"linf:{float(threat.eps)!r}"):
            dims.append(D)
            threats.append(spec)
            seeds.append(1000 + i)
            chunks.append(max(256, 2_000_000 // D))
    grid = {"dist": "robust-nonrobust", "classifier": ["bayes", "robust"], "n": n,
            "zip": [{"D": dims, "threat": threats, "seed": seeds, "chunk_size": chunks}]}
    rows = sweep_rows(NAME, quick, grid, "estimate", executor=executor, max_workers=max_workers, resume=resume)
    return {(int(row["D"]), row["classifier"], row["threat"]): row for row in rows}


def main(quick: bool = False, out: str | Path | None = None, executor=None, max_workers: int = 0,
         resume: bool = False) -> list[Path]:
    """Build the figure; ``quick`` uses fewer dimensions and samples. Returns the written paths.

    ``executor`` / ``max_workers`` say where the Monte Carlo sweep runs (default: in this process); see
    :func:`toyrobust.sweep`."""
    import matplotlib.pyplot as plt

    use_style()
    # closed forms on a dense grid of dimensions (integers, log-spaced)
    dims = np.unique(np.round(np.logspace(math.log10(2), 5, 60 if quick else 200)).astype(int))
    curves: dict[str, list] = {"D": dims.tolist(), "eps": []}
    for key in ("bayes_standard", "bayes_adversarial", "sign_x1_standard", "sign_x1_adversarial",
                "optimal_adversarial"):
        curves[key] = []
    for D in dims:
        dist, clfs, threat = _setup(int(D))
        curves["eps"].append(float(threat.eps))
        for name, clf in clfs.items():
            curves[f"{name}_standard"].append(float(tr.risk(dist, clf)))
            curves[f"{name}_adversarial"].append(float(tr.risk(dist, clf, threat)))
        curves["optimal_adversarial"].append(float(tr.optimal_risk(dist, threat)))

    # Monte Carlo at a few dimensions (the exact attack: no attack error, so only sampling error remains), run as a
    # parameter sweep: each (D, classifier, risk) is one task whose row is kept in a store, so a killed run resumes
    # where it stopped and the estimates can be computed elsewhere (executor: a process pool or a Dask client)
    mc_dims = [10, 100, 1000] if quick else [10, 30, 100, 300, 1000, 3000]
    n = 2_000 if quick else 20_000
    rows = _monte_carlo(mc_dims, n, quick, executor=executor, max_workers=max_workers, resume=resume)
    points: dict[str, list] = {k: [] for k in ("D", "classifier", "risk", "estimate", "ci_low", "ci_high", "n",
                                                "closed_form")}
    names = {"bayes": "bayes", "robust": "sign_x1"}
    for D in mc_dims:
        dist, clfs, threat = _setup(D)
        for spec, name in names.items():
            for kind, th in (("standard", None), ("adversarial", threat)):
                row = rows[(D, spec, "none" if th is None else f"linf:{float(th.eps)!r}")]
                points["D"].append(D)
                points["classifier"].append(name)
                points["risk"].append(kind)
                points["estimate"].append(row["value"])
                points["ci_low"].append(row["ci_low"])
                points["ci_high"].append(row["ci_high"])
                points["n"].append(row["n"])
                points["closed_form"].append(float(tr.risk(dist, clfs[name], th)))

    fig, ax = plt.subplots(figsize=(7.4, 5.6))
    series = (("bayes", "standard", COLORS["pos"], "-", "o", "Bayes sign(<mean, x>): standard risk"),
              ("bayes", "adversarial", COLORS["pos"], "--", "s", "Bayes sign(<mean, x>): Linf-adversarial risk"),
              ("sign_x1", "standard", COLORS["neg"], "-", "o", "robust sign(x$_1$): standard risk"),
              ("sign_x1", "adversarial", COLORS["neg"], "--", "s", "robust sign(x$_1$): Linf-adversarial risk"))
    pts = {k: np.asarray(v) for k, v in points.items()}
    for name, kind, color, ls, marker, label in series:
        ax.plot(curves["D"], curves[f"{name}_{kind}"], color=color, ls=ls, label=label)
        sel = (pts["classifier"] == name) & (pts["risk"] == kind)
        err = np.vstack([pts["estimate"][sel] - pts["ci_low"][sel], pts["ci_high"][sel] - pts["estimate"][sel]])
        ax.errorbar(pts["D"][sel], pts["estimate"][sel], yerr=err, fmt=marker, color=color, mfc="white", ms=5,
                    capsize=3, lw=1.2, zorder=4)
    ax.plot(curves["D"], curves["optimal_adversarial"], color=COLORS["black"], ls=":", lw=1.6,
            label="smallest Linf-adversarial risk of any classifier")
    ax.errorbar([], [], yerr=[], fmt="o", color="0.3", mfc="white", capsize=3,
                label=f"Monte Carlo, exact attack, n = {n:,} (95% CI)")
    ax.set_xscale("log")
    ax.set_xlabel("dimension D (1 robust + D - 1 non-robust features)")
    ax.set_yscale("logit")  # shows risks near 0 (Bayes, standard) and near 1 (Bayes, adversarial) alike
    ax.set_ylabel("risk (probability, logit scale)")
    ax.set_ylim(1e-4, 0.9995)
    ax.set_title("Robust vs non-robust features: Linf ball of radius eps = 2 sqrt(log D / (D - 1))")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, NAME, {"": curves, "montecarlo": points}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer dimensions and samples (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    parser.add_argument("--workers", type=int, default=0, help="processes for the Monte Carlo sweep (0: this one)")
    parser.add_argument("--resume", action="store_true", help="reuse the rows of an earlier or interrupted run")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out, max_workers=args.workers, resume=args.resume):
        print(path)
