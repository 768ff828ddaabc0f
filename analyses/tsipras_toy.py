"""Figure 1: the Tsipras toy distribution of seed 000 (p = 0.9, eta = 3), its Bayes rule and an eps-ball move.

Left: the class-conditional densities p(x1, x2 | y) along x2 for x1 = +1 and x1 = -1, with the Bayes thresholds
(on x1 = s the Bayes rule says +1 iff x2 >= -s log(p/(1-p)) / (2 eta)). Right: samples in the (x1, x2) plane
(x1 jittered for visibility), the Bayes boundary, the Linf ball of radius eps = 2 eta around the seed's example
x = (-1, eta) with y = +1 and its move to (-1, -eta), and where the Tsipras adversary (x2 -> x2 - 2 eta y) sends
correctly classified points: orange crosses keep their true label (the Bayes label of the projection is still y,
so they are adversarial under the projection definition), grey ones change it (adversarial only under the ball
definition).

Run: ``python analyses/tsipras_toy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import toyrobust as tr
from toyrobust.plotting import COLORS, save_figure, use_style

NAME = "tsipras_toy"
P, ETA = 0.9, 3.0


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` draws fewer points. Returns the written paths."""
    import matplotlib.pyplot as plt

    use_style()
    dist = tr.Tsipras(P, ETA, 1)
    bayes = dist.bayes_classifier()
    eps = 2 * ETA
    threat = tr.Linf(eps)
    gen = torch.Generator().manual_seed(0)

    # class-conditional densities along x2 for both values of x1
    x2 = np.linspace(-7.5, 7.5, 301 if quick else 1201)
    dens = {"x2": x2}
    for s in (1, -1):
        for y in (1, -1):
            px1 = P if s == y else 1 - P
            dens[f"p(x1={s:+d},x2|y={y:+d})"] = px1 * stats.norm.pdf(x2, ETA * y, 1.0)
    thresholds = {s: -s * math.log(P / (1 - P)) / (2 * ETA) for s in (1, -1)}

    # samples, the adversary's move, and which moved points keep their label
    n = 300 if quick else 1500
    x, y = dist.sample(n, generator=gen, dtype=torch.float64)
    correct = bayes.predict(x) == y
    x_adv = x.clone()
    x_adv[:, 1] -= 2 * ETA * y.to(x.dtype)  # the Tsipras adversary: move every Gaussian feature by 2 eta
    assert bool(threat.contains(x_adv, x).all())
    ball = tr.is_adversarial("ball", bayes, x_adv, y)
    proj = tr.is_adversarial("projection", bayes, x_adv, y, dist=dist)
    jitter = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 0.3

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    for s, style in ((1, "-"), (-1, "--")):
        for yv, color in ((1, COLORS["pos"]), (-1, COLORS["neg"])):
            ax0.plot(x2, dens[f"p(x1={s:+d},x2|y={yv:+d})"], style, color=color,
                     label=f"y = {yv:+d}, x$_1$ = {s:+d}")
        ax0.axvline(thresholds[s], color=COLORS["black"], ls=style, lw=1.0,
                    label=f"Bayes threshold on x$_1$ = {s:+d}")
    ax0.set_xlabel("x$_2$ (non-robust feature)")
    ax0.set_ylabel("density p(x$_1$, x$_2$ | y)")
    ax0.set_title("(a) class-conditional densities and Bayes thresholds (black)")
    ax0.legend(loc="upper left", fontsize=7.5)

    for yv, color, marker in ((1, COLORS["pos"], "o"), (-1, COLORS["neg"], "s")):
        sel = y == yv
        ax1.scatter(x[sel, 0] + jitter[sel], x[sel, 1], s=7, color=color, alpha=0.35, marker=marker,
                    label=f"samples, y = {yv:+d}", linewidths=0)
    moved = correct & ball
    kept = moved & proj
    changed = moved & ~proj
    shown = torch.arange(n) < 150  # draw the moves of a subset only, so the samples stay visible
    for sel, color, label in ((kept & shown, COLORS["orange"], "moved, label kept (projection-adversarial)"),
                              (changed & shown, "0.35", "moved, label changed (ball-adversarial only)")):
        ax1.scatter(x_adv[sel, 0] + jitter[sel], x_adv[sel, 1], s=16, marker="x", color=color, alpha=0.8,
                    linewidths=1.0, label=label)
    xs = np.array([-1.6, 1.6])
    w = bayes.w.to_numpy()
    ax1.plot(xs, -w[0] * xs / w[1], color=COLORS["black"], lw=1.2, label="Bayes boundary")
    x0 = np.array([-1.0, ETA])
    ax1.add_patch(plt.Rectangle((x0[0] - eps, x0[1] - eps), 2 * eps, 2 * eps, fill=False, ls=":",
                                color=COLORS["green"], lw=1.4,
                                label=f"L$_\\infty$ ball around (-1, eta), eps = 2 eta = {eps:g}"))
    ax1.annotate("", xy=(-1.0, -ETA), xytext=(-1.0, ETA),
                 arrowprops=dict(arrowstyle="->", color=COLORS["green"], lw=2))
    ax1.plot([-1.0], [ETA], "o", color=COLORS["green"], ms=7, mfc="none", mew=2)
    ax1.set_xlim(-1.7, 1.7)
    ax1.set_ylim(-8, 15.5)
    ax1.set_xticks([-1, 1])
    ax1.set_xlabel("x$_1$ (robust feature, jittered for visibility)")
    ax1.set_ylabel("x$_2$")
    ax1.set_title("(b) an L$_\\infty$ move of x$_2$ by -2 eta y")
    ax1.legend(loc="upper center", fontsize=7, ncol=2, framealpha=0.9, frameon=True)
    fig.tight_layout()

    share_kept = float(kept.sum()) / max(1, int(moved.sum()))
    summary = {"quantity": ["p", "eta", "eps", "n", "moved_correct_points", "share_keeping_label",
                            "threshold_x1=+1", "threshold_x1=-1"],
               "value": [P, ETA, eps, n, int(moved.sum()), share_kept, thresholds[1], thresholds[-1]]}
    points = {"x1": x[:, 0].tolist(), "x2": x[:, 1].tolist(), "y": y.tolist(), "x2_moved": x_adv[:, 1].tolist(),
              "ball_adversarial": ball.tolist(), "projection_adversarial": proj.tolist()}
    return save_figure(fig, NAME, {"": dens, "points": points, "summary": summary}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
