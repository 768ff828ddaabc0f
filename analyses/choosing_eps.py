"""Figure 8: choosing eps (seed 001): within- and between-class distances against the label-invariant radius.

Seed 001 picks eps for MNIST from distances between samples: eps must not let a point reach another class. Here the
data laws are known, so the answer can be compared with the exact label-invariant radius (``tr.bounds.
label_invariant_radius``: the largest eps for which no support point can change the Bayes label of its projection).
For the point masses (gap 1), Tsipras (p = 0.9, eta = 3), the robust/non-robust features model (D = 100) and the
concentric spheres (D = 500, radii 1 and 1.3), with L2 distances of a sample:

* top: histograms of each point's distance to its nearest other point of the same class and of the other class,
  with the label-invariant radius and the empirical radius (half the smallest between-class distance,
  ``tr.bounds.distance_statistics``) marked;
* bottom: seed 001's heatmap, the mean pairwise distance between the samples of two classes, for the spheres and
  the Tsipras model (on the spheres the outer class is nearer the inner class than to itself, as seed 001 found
  for some MNIST digits), and the two radii side by side: sample distances say nothing about the overlapping
  Gaussian classes (radius 0) and overestimate the spheres' radius tenfold.

Run: ``python analyses/choosing_eps.py [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import toyrobust as tr
from toyrobust.bounds import distance_statistics, label_invariant_radius
from toyrobust.plotting import COLORS, save_figure, use_style
from toyrobust.rng import resolve_device

NAME = "choosing_eps"


def _distributions() -> dict[str, tr.Distribution]:
    return {"point masses (gap 1)": tr.PointMasses(1.0),
            "Tsipras (p 0.9, eta 3)": tr.Tsipras(0.9, 3.0, 1),
            "robust/non-robust (D 100)": tr.GaussianMixture.robust_nonrobust(100),
            "spheres (D 500, radii 1, 1.3)": tr.ConcentricSpheres(500, 1.0, 1.3)}


def _pairwise(x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """Nearest same-class and other-class L2 distances per point, and the class-by-class mean distances."""
    dist = torch.cdist(x, x)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=x.device)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    within = torch.where(same & ~eye, dist, inf).amin(dim=1)
    between = torch.where(~same, dist, inf).amin(dim=1)
    means = np.zeros((2, 2))
    for i, a in enumerate((-1, 1)):
        for j, b in enumerate((-1, 1)):
            mask = (y[:, None] == a) & (y[None, :] == b) & ~eye
            means[i, j] = float(dist[mask].mean())
    return {"within": within.cpu().numpy(), "between": between.cpu().numpy(), "means": means}


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` uses smaller samples. Returns the written paths."""
    import matplotlib.pyplot as plt

    use_style()
    n = 400 if quick else 2000
    device = resolve_device(None)
    dists = _distributions()
    summary: dict[str, list] = {"distribution": [], "label_invariant_radius": []}
    nearest: dict[str, list] = {"distribution": [], "y": [], "within_class_nn": [], "between_class_nn": []}
    heat: dict[str, list] = {"distribution": [], "class_a": [], "class_b": [], "mean_distance": []}
    results = {}
    for k, (name, dist) in enumerate(dists.items()):
        gen = torch.Generator(device=device).manual_seed(100 + k)
        x, y = dist.sample(n, generator=gen, dtype=torch.float64)
        pw = _pairwise(x, y)
        stats = distance_statistics(dist, n=n, generator=torch.Generator(device=device).manual_seed(200 + k))
        radius = float(label_invariant_radius(dist, "l2"))
        results[name] = (pw, stats, radius)
        summary["distribution"].append(name)
        summary["label_invariant_radius"].append(radius)
        for key, value in stats.items():
            summary.setdefault(key, []).append(value)
        nearest["distribution"] += [name] * n
        nearest["y"] += y.tolist()
        nearest["within_class_nn"] += pw["within"].tolist()
        nearest["between_class_nn"] += pw["between"].tolist()
        for i, a in enumerate((-1, 1)):
            for j, b in enumerate((-1, 1)):
                heat["distribution"].append(name)
                heat["class_a"].append(a)
                heat["class_b"].append(b)
                heat["mean_distance"].append(float(pw["means"][i, j]))

    fig = plt.figure(figsize=(13.5, 7.6))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.05])
    for k, (name, (pw, stats, radius)) in enumerate(results.items()):
        ax = fig.add_subplot(grid[0, k])
        top = max(pw["within"].max(), pw["between"].max())
        bins = np.linspace(0, top * 1.02 + 1e-9, 40)
        ax.hist(pw["within"], bins=bins, color=COLORS["pos"], alpha=0.6, label="nearest same-class point")
        ax.hist(pw["between"], bins=bins, color=COLORS["neg"], alpha=0.6, label="nearest other-class point")
        ax.axvline(radius, color=COLORS["black"], lw=1.8, label="label-invariant radius (exact)")
        ax.axvline(stats["empirical_radius"], color=COLORS["green"], lw=1.8, ls="--",
                   label="empirical radius (half the smallest between-class distance)")
        ax.set_title(f"({'abcd'[k]}) {name}\nradius {radius:.3g}, empirical radius {stats['empirical_radius']:.3g}",
                     fontsize=10)
        ax.set_xlabel("L2 distance")
        ax.set_ylabel("points" if k == 0 else None)
    handles, labels = fig.axes[0].get_legend_handles_labels()

    for k, name in enumerate(("spheres (D 500, radii 1, 1.3)", "Tsipras (p 0.9, eta 3)")):
        ax = fig.add_subplot(grid[1, k])
        means = results[name][0]["means"]
        im = ax.imshow(means, cmap="viridis", vmin=0)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{means[i, j]:.3f}", ha="center", va="center", fontsize=10,
                        color="white" if means[i, j] < 0.6 * means.max() else "black")
        ax.set_xticks([0, 1], ["y = -1", "y = +1"])
        ax.set_yticks([0, 1], ["y = -1", "y = +1"])
        ax.grid(False)
        ax.set_title(f"({'ef'[k]}) mean L2 distance between classes:\n{name}", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean L2 distance")

    ax = fig.add_subplot(grid[1, 2:])
    names = list(results)
    pos = np.arange(len(names))
    exact = np.array([results[m][2] for m in names])
    empirical = np.array([results[m][1]["empirical_radius"] for m in names])
    ax.bar(pos - 0.2, exact, width=0.4, color=COLORS["black"], label="label-invariant radius (exact)")
    ax.bar(pos + 0.2, empirical, width=0.4, color=COLORS["green"], label="empirical radius (from the sample)")
    for p, e, m in zip(pos, exact, empirical, strict=True):
        ax.text(p - 0.2, e, f"{e:.3g}", ha="center", va="bottom", fontsize=8)
        ax.text(p + 0.2, m, f"{m:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos, [m.replace(" (", "\n(") for m in names], fontsize=8)
    ax.set_ylabel("radius (L2)")
    ax.set_ylim(0, 1.15 * max(empirical.max(), exact.max()))
    ax.set_title(f"(g) the largest safe eps: exact vs estimated from {n:,} samples", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.legend(handles, labels, loc="upper center", ncol=4, fontsize=8.5, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save_figure(fig, NAME, {"summary": summary, "nearest": nearest, "heatmap": heat}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
