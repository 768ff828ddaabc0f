"""Figure 2: the two point masses of seed 000: no accurate classifier is ball-robust once eps >= gap/2.

The data are x = 0 (label +1) and x = gap (label -1). Left: against eps/gap, the standard risk, the ball-adversarial
and projection-adversarial risks of the max-margin threshold (+1 iff x <= gap/2), and the optimal ball-adversarial
risk of any classifier (0 below gap/2, 1/2 from gap/2 on: the two closed balls share the point gap/2). The
max-margin threshold has ball risk 1 beyond gap/2 (1/2 at eps = gap/2 exactly: the tie x' = gap/2 predicts +1)
but projection risk 0 at every eps: every x' that fools it is nearer the other point, so its projected label
changed. Right: at seed 000's eps = gap, the risks of every threshold t (+1 iff x <= t) against t/gap: every
accurate threshold has ball risk 1, and under the projection definition only the max-margin threshold is robust.
Every risk here jumps at exact thresholds, so the curves are drawn as steps (vertical jumps at the breakpoints).

All values are exact closed forms of the analytic engine (``tr.risk``, ties included).

Run: ``python analyses/point_masses.py [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import toyrobust as tr
from toyrobust.plotting import COLORS, save_figure, step_path, use_style

NAME = "point_masses"
GAP = 1.0
DEFINITIONS = ("ball", "projection", "error-region", "prediction-change")


def _risk(dist: tr.PointMasses, clf: tr.Linear, eps: float | None, definition: str = "ball") -> float:
    threat = None if eps is None else tr.Linf(eps)
    return float(tr.risk(dist, clf, threat, definition))


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` uses coarser grids. Returns the written paths."""
    import matplotlib.pyplot as plt

    use_style()
    dist = tr.PointMasses(GAP)
    max_margin = tr.Linear([-1.0], GAP / 2)

    # (a) risks of the max-margin threshold against eps; the grid holds the jump eps = gap/2 exactly
    eps = np.union1d(np.linspace(0.0, 1.5, 61 if quick else 301), [0.5]) * GAP
    curves: dict[str, list] = {"eps_over_gap": (eps / GAP).tolist(),
                               "standard": [_risk(dist, max_margin, None)] * len(eps)}
    for definition in DEFINITIONS:
        curves[definition.replace("-", "_")] = [_risk(dist, max_margin, float(e), definition) for e in eps]
    curves["optimal_ball"] = [float(tr.optimal_risk(dist, tr.Linf(float(e)))) for e in eps]

    # (b) every threshold t at seed 000's eps = gap; the grid holds t = gap/2 exactly
    t = np.union1d(np.linspace(-0.25, 1.25, 61 if quick else 241), [0.0, 0.5, 1.0]) * GAP
    thresholds: dict[str, list] = {"t_over_gap": (t / GAP).tolist()}
    for definition in ("ball", "projection"):
        thresholds[definition] = [_risk(dist, tr.Linear([-1.0], float(v)), GAP, definition) for v in t]
    thresholds["standard"] = [_risk(dist, tr.Linear([-1.0], float(v)), None) for v in t]
    thresholds["optimal_ball"] = [float(tr.optimal_risk(dist, tr.Linf(GAP)))] * len(t)

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.5, 4.5))
    styles = {"ball": dict(color=COLORS["neg"], label="ball-adversarial risk"),
              "optimal_ball": dict(color=COLORS["black"], ls=":", lw=2.2,
                                   label="optimal ball-adversarial risk (best classifier)"),
              "standard": dict(color="0.55", lw=3.5, alpha=0.55, label="standard risk"),
              "projection": dict(color=COLORS["pos"], ls="--", lw=2.0, label="projection-adversarial risk")}
    x = np.asarray(curves["eps_over_gap"])
    for key, style in styles.items():  # the risks jump at exact thresholds: steps, not sloped lines
        ax0.plot(*step_path(x, curves[key], breaks=[0.5]), **style)
    half = int(np.flatnonzero(x == 0.5)[0])  # the tie eps = gap/2: closed balls reach the threshold exactly
    ax0.plot([0.5], [curves["ball"][half]], "o", color=COLORS["black"], ms=5, zorder=5,
             label="(a) value at eps = gap/2 (a zero margin predicts +1)")
    ax0.set_xlabel("eps / gap (radius of the perturbation, in units of the gap)")
    ax0.set_ylabel("risk (probability)")
    ax0.set_ylim(-0.05, 1.08)
    ax0.set_title("(a) the max-margin threshold (+1 iff x <= gap/2) against eps")

    tt = np.asarray(thresholds["t_over_gap"])
    isolated = tt == 0.5  # the only projection-robust threshold: draw it as a point, not as a dip of the line
    for key, style in styles.items():
        values = np.asarray(thresholds[key], dtype=float)
        ax1.plot(*step_path(tt, np.where(isolated, np.nan, values) if key == "projection" else values,
                            breaks=[0.0, 0.5, 1.0]), **{**style, "label": None})
    ax1.plot(tt[isolated], np.asarray(thresholds["projection"])[isolated], "o", color=COLORS["pos"], ms=7,
             zorder=5, label="(b) max-margin threshold t = gap/2: projection risk 0")
    ax1.axvspan(0.0, 1.0, color=COLORS["green"], alpha=0.08, lw=0, label="(b) accurate thresholds 0 <= t < gap")
    ax1.set_xlabel("t / gap (threshold of the rule: +1 iff x <= t)")
    ax1.set_ylabel("risk (probability)")
    ax1.set_ylim(-0.05, 1.08)
    ax1.set_title("(b) every threshold at seed 000's eps = gap")
    handles = ax0.get_legend_handles_labels()
    extra = ax1.get_legend_handles_labels()
    fig.legend(handles[0] + extra[0], handles[1] + extra[1], loc="lower center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save_figure(fig, NAME, {"": curves, "thresholds": thresholds}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grids (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
