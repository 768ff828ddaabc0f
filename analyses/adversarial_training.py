"""Figure 7: adversarial training dynamics (seed 003): the non-robust weights fall to 0, w_1 to its fixed point.

A linear model ``sign(w.x + b)`` on the robust/non-robust features model ``GaussianMixture.robust_nonrobust(D)``
(``x = y (1, a, ..., a) + z``, ``a = sqrt(log D / (D - 1))``) is trained on fresh samples with the exact Linf-robust
logistic loss ``softplus(-y (w.x + b) + eps ||w||_1)`` at seed 003's ``eps = 2a``, starting from the standard
optimum ``w = 2 mean`` (``toyrobust.dynamics.adversarial_training_dynamics``). The analytic fixed point
(``toyrobust.dynamics.robust_fixed_point``) is ``w* = (2 (1 - eps), 0, ..., 0)``, ``b* = 0``: the non-robust
features are dropped. Left: the robust weight w_1 against the step, with the fixed point. Middle: the largest and
the mean |w_i| of the non-robust weights (log scale). Right: the closed-form standard and Linf-adversarial risks of
the model along training (``tr.risk``), with those of the fixed point (the classifier sign(x_1): ``Q(1)`` and
``Q(1 - eps)``).

Run: ``python analyses/adversarial_training.py [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import toyrobust as tr
from toyrobust.blocks import Blocks
from toyrobust.dynamics import adversarial_training_dynamics
from toyrobust.plotting import COLORS, save_figure, sweep_rows, use_style
from toyrobust.rng import resolve_device

NAME = "adversarial_training"
D = 100


def _run(params: dict) -> dict:
    """The training run (a sweep task): seed 003's adversarial training, its recorded weights as plain lists."""
    import torch

    dyn = adversarial_training_dynamics(D, steps=int(params["steps"]), batch_size=int(params["batch"]), seed=0,
                                        device=resolve_device(None), dtype=torch.float64)
    return {"eps": float(dyn.eps), "a": float(dyn.a), "record_steps": dyn.steps.tolist(),
            "weights": dyn.weights.tolist(), "bias": dyn.bias.tolist(), "fixed_point": dict(dyn.fixed_point)}


def main(quick: bool = False, out: str | Path | None = None, executor: Any = None, max_workers: int = 0,
         resume: bool = False) -> list[Path]:
    """Build the figure; ``quick`` trains for fewer steps on smaller batches. Returns the written paths.

    The training run is a sweep task (:func:`toyrobust.plotting.sweep_rows`): a rebuilt figure reuses the stored
    weights, and ``executor`` may run it elsewhere."""
    import matplotlib.pyplot as plt

    use_style()
    steps, batch = (300, 256) if quick else (2000, 1024)
    (row,) = sweep_rows(NAME, quick, {"steps": steps, "batch": batch}, _run, executor=executor,
                        max_workers=max_workers, resume=resume)
    W = np.array(row["weights"], dtype=float)
    dyn = SimpleNamespace(eps=row["eps"], a=row["a"], steps=np.array(row["record_steps"]), weights=W,
                          bias=np.array(row["bias"], dtype=float), w_robust=W[:, 0],
                          w_nonrobust_mean=W[:, 1:].mean(axis=1), w_nonrobust_absmax=np.abs(W[:, 1:]).max(axis=1),
                          fixed_point=row["fixed_point"])
    dist = tr.GaussianMixture.robust_nonrobust(D)
    threat = tr.Linf(dyn.eps)
    fixed = dyn.fixed_point
    standard, adversarial = [], []
    for w, b in zip(dyn.weights, dyn.bias, strict=True):
        clf = tr.Linear(w, float(b))
        standard.append(float(tr.risk(dist, clf)))
        adversarial.append(float(tr.risk(dist, clf, threat)))
    star = tr.Linear(Blocks([(fixed["w_robust"], 1), (0.0, D - 1)]), fixed["b"])
    star_standard, star_adversarial = float(tr.risk(dist, star)), float(tr.risk(dist, star, threat))

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(13.0, 4.2))
    ax0.plot(dyn.steps, dyn.w_robust, color=COLORS["pos"], label="w$_1$ (robust feature)")
    ax0.axhline(fixed["w_robust"], color=COLORS["black"], ls="--", lw=1.3,
                label=f"fixed point 2 (1 - eps) = {fixed['w_robust']:.3f}")
    ax0.plot(dyn.steps, dyn.bias, color=COLORS["green"], lw=1.2, label="bias b (fixed point 0)")
    ax0.set_xlabel("training step")
    ax0.set_ylabel("weight")
    ax0.set_title("(a) the robust weight")
    ax0.legend(loc="upper right", fontsize=7.5, frameon=True, framealpha=0.92)

    floor = 1e-9  # |w_i| below this are drawn at the floor (the log axis has no 0)
    ax1.plot(dyn.steps, np.maximum(dyn.w_nonrobust_absmax, floor), color=COLORS["neg"],
             label="max |w$_i$|, i = 2..D")
    ax1.plot(dyn.steps, np.maximum(np.abs(dyn.w_nonrobust_mean), floor), color=COLORS["orange"], ls="--",
             label="|mean w$_i$|, i = 2..D")
    ax1.axhline(2 * dyn.a, color="0.5", ls=":", lw=1.2, label=f"start: 2a = {2 * dyn.a:.3f} (standard optimum)")
    ax1.set_yscale("log")
    ax1.set_ylim(floor / 2, 2)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("non-robust weight (fixed point 0)")
    ax1.set_title("(b) the non-robust weights fall to 0")
    ax1.legend(loc="lower left", fontsize=7.5, frameon=True, framealpha=0.92)

    ax2.plot(dyn.steps, standard, color=COLORS["pos"], label="standard risk")
    ax2.plot(dyn.steps, adversarial, color=COLORS["neg"], label="Linf-adversarial risk (eps = 2a)")
    ax2.axhline(star_standard, color=COLORS["pos"], ls="--", lw=1.2, label=f"fixed point: Q(1) = {star_standard:.3f}")
    ax2.axhline(star_adversarial, color=COLORS["neg"], ls="--", lw=1.2,
                label=f"fixed point: Q(1 - eps) = {star_adversarial:.3f}")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("risk (probability, closed form)")
    ax2.set_title("(c) risks along adversarial training")
    ax2.legend(loc="center right", fontsize=7.5, frameon=True, framealpha=0.92)
    fig.suptitle(f"Adversarial training on robust/non-robust features, D = {D}, eps = 2a = {dyn.eps:.3f}, "
                 f"{steps} steps of {batch} fresh samples", fontsize=11)
    fig.tight_layout()

    record = {"step": dyn.steps.tolist(), "w_robust": dyn.w_robust.tolist(), "bias": dyn.bias.tolist(),
              "w_nonrobust_mean": dyn.w_nonrobust_mean.tolist(),
              "w_nonrobust_absmax": dyn.w_nonrobust_absmax.tolist(), "standard_risk": standard,
              "adversarial_risk": adversarial,
              "fixed_point_w_robust": [fixed["w_robust"]] * len(standard)}
    weights = {f"w{i + 1}": dyn.weights[:, i].tolist() for i in range(D)}
    summary = {"quantity": ["D", "a", "eps", "steps", "batch_size", "fixed_point_w_robust", "fixed_point_b",
                            "fixed_point_standard_risk", "fixed_point_adversarial_risk", "final_w_robust",
                            "final_w_nonrobust_absmax"],
               "value": [D, dyn.a, dyn.eps, steps, batch, fixed["w_robust"], fixed["b"], star_standard,
                         star_adversarial, float(dyn.w_robust[-1]), float(dyn.w_nonrobust_absmax[-1])]}
    return save_figure(fig, NAME, {"": record, "weights": {"step": dyn.steps.tolist(), **weights},
                                   "summary": summary}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller training steps (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    parser.add_argument("--workers", type=int, default=0, help="processes for the figure's sweep (0: this one)")
    parser.add_argument("--resume", action="store_true", help="reuse the rows of an earlier or interrupted run")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out, max_workers=args.workers, resume=args.resume):
        print(path)
