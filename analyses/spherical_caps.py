"""Figure 5: spherical caps (seed 003): the cap threshold for error measure mu, exact vs Q^{-1}(mu)/sqrt(D).

A uniform point x of the unit sphere in R^D falls in the cap ``{x_1 >= h}`` with probability
``mu(h) = 1/2 I_{1 - h^2}((D - 1)/2, 1/2)`` (h >= 0). Seed 003 approximates x by a Gaussian vector with variance 1/D
per coordinate, which gives the threshold ``h ~ Q^{-1}(mu) / sqrt(D)``: the cap of any fixed measure reaches down to
within O(1/sqrt(D)) of the equator. Left: the exact threshold h(D, mu) (``toyrobust.risks.caps.cap_height``) and the
approximation against D for several mu, with seed 003's D = 500 marked. Right: the relative error of the
approximation, ``|h_gauss - h| / h``, which decays like 1/D.

Run: ``python analyses/spherical_caps.py [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from toyrobust.plotting import COLORS, save_figure, use_style
from toyrobust.risks.caps import cap_height, gaussian_cap_error, gaussian_cap_height

NAME = "spherical_caps"
MUS = (0.3, 0.1, 1e-2, 1e-4, 1e-8)
SEED_D = 500


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` uses fewer dimensions. Returns the written paths."""
    import matplotlib.pyplot as plt

    use_style()
    dims = np.unique(np.round(np.logspace(np.log10(3), 6, 80 if quick else 400)).astype(int))
    dims = np.union1d(dims, [3, 10, 100, SEED_D, 1000])
    data: dict[str, list] = {"D": [], "mu": [], "exact_height": [], "gaussian_height": [], "relative_error": [],
                             "measure_at_gaussian_height": []}
    for mu in MUS:
        approx = gaussian_cap_error(dims, mu)
        data["D"] += dims.tolist()
        data["mu"] += [mu] * len(dims)
        data["exact_height"] += np.asarray(approx.exact_height, dtype=float).tolist()
        data["gaussian_height"] += np.asarray(approx.gaussian_height, dtype=float).tolist()
        data["relative_error"] += np.asarray(approx.relative_height_error, dtype=float).tolist()
        data["measure_at_gaussian_height"] += np.asarray(approx.gaussian_cap_measure, dtype=float).tolist()
    at_seed = {"mu": list(MUS), "exact_height": [float(cap_height(SEED_D, mu)) for mu in MUS],
               "gaussian_height": [float(gaussian_cap_height(SEED_D, mu)) for mu in MUS]}

    cols = {k: np.asarray(v, dtype=float) for k, v in data.items()}
    palette = [COLORS["pos"], COLORS["neg"], COLORS["green"], COLORS["pink"], COLORS["orange"]]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11.0, 4.6))
    for mu, color in zip(MUS, palette, strict=True):
        sel = cols["mu"] == mu
        ax0.plot(cols["D"][sel], cols["exact_height"][sel], color=color, label=f"mu = {mu:g}")
        # the approximation exceeds 1 (no cap at all) at small D for tiny mu: show it where it is a height
        approx = np.where(cols["gaussian_height"][sel] <= 1, cols["gaussian_height"][sel], np.nan)
        ax0.plot(cols["D"][sel], approx, color=color, ls="--", lw=1.4)
        ax1.plot(cols["D"][sel], cols["relative_error"][sel], color=color, label=f"mu = {mu:g}")
    for ax in (ax0, ax1):
        ax.axvline(SEED_D, color="0.35", ls=":", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dimension D (sphere S$^{D-1}$ in R$^D$)")
    for ax, y in ((ax0, 1.1), (ax1, 3.0)):
        ax.text(SEED_D * 1.15, y, "D = 500 (seed 003)", fontsize=8, color="0.35", va="top")
    ax0.plot([], [], color="0.3", label="exact (solid)")
    ax0.plot([], [], color="0.3", ls="--", lw=1.4, label="Q$^{-1}$(mu)/sqrt(D) (dashed)")
    ax0.set_ylim(1e-3, 1.5)
    ax0.set_ylabel("cap threshold h (unit sphere; cap = {x$_1$ >= h})")
    ax0.set_title("(a) threshold of the cap of measure mu")
    ax0.legend(loc="lower left", ncol=2, fontsize=7.5, frameon=True, framealpha=0.92)
    ax1.set_ylabel("relative error |h$_{gauss}$ - h| / h")
    ax1.set_title("(b) relative error of Q$^{-1}$(mu)/sqrt(D)")
    ax1.legend(loc="lower left", fontsize=8, frameon=True, framealpha=0.92)
    fig.tight_layout()
    return save_figure(fig, NAME, {"": data, "d500": at_seed}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer dimensions (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
