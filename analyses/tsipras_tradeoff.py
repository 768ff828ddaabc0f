"""Figure 4: the Tsipras trade-off: (standard risk, adversarial risk) pairs of linear classifiers vs Theorem 2.1.

Data: ``Tsipras(p = 0.9, eta = 3, d = 1)`` (seed 000's Figure 2): ``x_1 = y`` w.p. p, ``x_2 ~ N(eta y, 1)``. Threat:
an Linf ball of radius eps on the Gaussian feature (Tsipras et al.'s adversary; ``x_1`` is discrete and left
alone). Every linear classifier ``sign(w_1 x_1 + w_2 x_2 + b)`` is, up to scale, ``w = (cos phi, sin phi)`` with a
bias b; its standard and ball-adversarial risks are closed forms of the analytic engine
(``toyrobust.risks.risk_function`` on a grid of (phi, b)).

Left, eps = 2 eta: the pairs of the grid's classifiers (dots: those with standard risk at most 1/2, the others being
their negations; ``-region.csv`` lists the occupied cells of a 2-D histogram of all of them), their lower frontier
(the smallest adversarial risk of a linear classifier with standard risk at most delta), the Bayes classifier,
sign(x_1) and sign(x_2), and Tsipras et al. 2019, Theorem 2.1: any classifier with standard risk delta has robust
accuracy at most ``p/(1 - p) delta``, i.e. adversarial risk at least ``1 - p delta / (1 - p)``. Hatched: unreachable
by any classifier, i.e. below the theorem's line, below the optimal adversarial risk ``1 - p`` of any classifier
(which takes over from the line for delta > 1 - p; the line reaches 0 at (1 - p)/p ~ 0.11). sign(x_1) lies on both:
the bound is tight.
Right: the lower frontier for several eps; the theorem's bound holds from eps = 2 eta on.

Run: ``python analyses/tsipras_tradeoff.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import sympy

import toyrobust as tr
from toyrobust.blocks import Blocks
from toyrobust.bounds import tsipras_tradeoff_bound
from toyrobust.plotting import COLORS, save_figure, use_style
from toyrobust.risks import risk_function

NAME = "tsipras_tradeoff"
P, ETA, D = 0.9, 3.0, 1
EPS_RATIOS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # eps / eta for the right panel
MAIN_RATIO = 2.0  # Theorem 2.1's eps = 2 eta


def _threat(eps: float) -> tr.Linf:
    return tr.Linf(eps, coords=slice(1, None))  # the Gaussian features only


def _grid(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    n_phi, n_b = (240, 121) if quick else (1440, 641)
    # offset by half a step so that no grid classifier has w_2 = 0 exactly (sign(x_1) is added on its own)
    phi = (np.arange(n_phi) + 0.5) * (2 * math.pi / n_phi)
    b = np.linspace(-9.0, 9.0, n_b)
    PHI, B = np.meshgrid(phi, b, indexing="ij")
    return PHI.ravel(), B.ravel()


def _frontier(std: np.ndarray, adv: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each delta, the smallest adv among pairs with std <= delta, and the index of the pair reaching it."""
    order = np.argsort(std, kind="stable")
    cummin = np.minimum.accumulate(adv[order])
    argmin = order[np.maximum.accumulate(np.where(adv[order] <= cummin, np.arange(len(order)), 0))]
    pos = np.searchsorted(std[order], deltas, side="right") - 1
    ok = pos >= 0
    best = np.where(ok, cummin[np.clip(pos, 0, None)], np.nan)
    idx = np.where(ok, argmin[np.clip(pos, 0, None)], -1)
    return best, idx


def _named(dist: tr.Tsipras) -> tuple[dict[str, list], float]:
    """The named classifiers (Bayes, sign(x1), sign(x2), constant +1) at eps = 2 eta, one by one with tr.risk,
    and the optimal adversarial risk there."""
    threat = _threat(MAIN_RATIO * ETA)
    bayes = dist.bayes_classifier()
    named = {"Bayes": bayes, "sign(x1)": tr.Linear([1.0, 0.0], 0.0), "sign(x2)": tr.Linear([0.0, 1.0], 0.0),
             "constant +1": tr.Linear([0.0, 0.0], 1.0)}
    marks: dict[str, list] = {k: [] for k in ("classifier", "w1", "w2", "b", "standard_risk", "adversarial_risk")}
    for name, clf in named.items():
        w = clf.w.to_numpy()
        marks["classifier"].append(name)
        marks["w1"].append(float(w[0]))
        marks["w2"].append(float(w[1]))
        marks["b"].append(float(clf.b))
        marks["standard_risk"].append(float(tr.risk(dist, clf)))
        marks["adversarial_risk"].append(float(tr.risk(dist, clf, threat)))
    optimal = float(tr.optimal_risk(dist, threat))
    return marks, optimal


def _draw_classifiers(ax0, std: np.ndarray, main_adv: np.ndarray, fr: dict[str, np.ndarray], marks: dict,
                      optimal: float, d_line: np.ndarray, bound: np.ndarray) -> None:
    """Panel (a): the grid's (standard, adversarial) pairs at eps = 2 eta, the frontier, Theorem 2.1, the named
    classifiers."""
    # classifiers with standard risk above 1/2 are the negations of those below (w, b -> -w, -b): the panel shows
    # [0, 1/2] in full rather than a slice of the mirror half cut at the axis edge
    better = std <= 0.5 + 1e-12
    ax0.scatter(std[better], main_adv[better], s=1.5, color=COLORS["sky"], alpha=0.3, lw=0, rasterized=True)
    ax0.scatter([], [], s=12, color=COLORS["sky"],
                label=f"linear classifiers ({int(better.sum()):,} of {len(std):,} on a grid: standard risk <= 1/2)")
    sel = fr["eps_over_eta"] == MAIN_RATIO
    ax0.plot(fr["delta"][sel], fr["min_adversarial_risk"][sel], color=COLORS["pos"], lw=2.2, ls=(0, (4, 2)),
             zorder=4, label="lower frontier (best linear classifier)")
    ax0.plot(d_line, bound, color=COLORS["black"], lw=1.6, label="Theorem 2.1: adv. risk >= 1 - p delta / (1 - p)")
    # no classifier goes below the theorem's line or below the optimal adversarial risk (1 - p from eps = eta on,
    # above the line for delta > 1 - p; the line is 0 from 0.11 on)
    unreachable = np.maximum(bound, optimal)
    ax0.fill_between(d_line, 0, unreachable, facecolor="none", edgecolor="0.4", hatch="///", lw=0,
                     label="unreachable by any classifier (below the bound or below 1 - p)")
    ax0.axhline(optimal, color=COLORS["black"], ls=":", lw=1.2,
                label=f"smallest adversarial risk of any classifier (1 - p = {optimal:.2g})")
    # Bayes and sign(x2) nearly coincide (both rely on x2): sign(x2) is an open square drawn around the Bayes star
    for name, marker, color, size, fill in (("Bayes", "*", COLORS["neg"], 10, None),
                                            ("sign(x2)", "s", COLORS["pink"], 16, "none"),
                                            ("sign(x1)", "D", COLORS["green"], 7, None),
                                            ("constant +1", "^", COLORS["orange"], 7, None)):
        i = marks["classifier"].index(name)
        style = dict(mfc="none", mec=color, mew=1.8) if fill == "none" else dict(color=color, mec="black", mew=0.6)
        ax0.plot(marks["standard_risk"][i], marks["adversarial_risk"][i], marker, ms=size, zorder=6, clip_on=False,
                 label=name.replace("x1", "x$_1$").replace("x2", "x$_2$"), **style)
    i, j = marks["classifier"].index("Bayes"), marks["classifier"].index("sign(x2)")
    ax0.annotate(f"Bayes (star) inside sign(x$_2$) (square):\nstandard risks {marks['standard_risk'][i]:.4f} and "
                 f"{marks['standard_risk'][j]:.4f},\nadversarial risks {marks['adversarial_risk'][i]:.3f} and "
                 f"{marks['adversarial_risk'][j]:.3f}", (marks["standard_risk"][j], marks["adversarial_risk"][j]),
                 xytext=(0.16, 0.36), textcoords="data", fontsize=7.5, va="center",
                 arrowprops=dict(arrowstyle="->", color="0.3", lw=0.8, shrinkB=9))
    ax0.set_xlim(0, 0.52)
    ax0.set_ylim(0, 1.02)
    ax0.set_xlabel("standard risk delta (probability)")
    ax0.set_ylabel("Linf-adversarial risk (probability)")
    ax0.set_title(f"(a) linear classifiers, p = {P}, eta = {ETA:g}, eps = 2 eta on x$_2$")
    ax0.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, markerscale=0.7)


def _draw_frontiers(ax1, dist: tr.Tsipras, fr: dict[str, np.ndarray], d_line: np.ndarray, bound: np.ndarray
                    ) -> None:
    """Panel (b): the lower frontier for every eps of EPS_RATIOS, Theorem 2.1 and the unreachable region."""
    palette = [COLORS["sky"], COLORS["green"], COLORS["orange"], COLORS["pink"], COLORS["pos"], COLORS["neg"]]
    for ratio, color in zip(EPS_RATIOS, palette, strict=True):
        sel = fr["eps_over_eta"] == ratio
        ax1.plot(fr["delta"][sel], fr["min_adversarial_risk"][sel], color=color, lw=1.8, zorder=3,
                 ls=(0, (4, 2)) if ratio == MAIN_RATIO else "-",
                 label=f"eps = {ratio:g} eta")
    ax1.plot(d_line, bound, color=COLORS["black"], lw=1.6, label="Theorem 2.1 bound (eps >= 2 eta)")
    optimal_from_2eta = float(tr.optimal_risk(dist, _threat(2 * ETA)))  # 1 - p for every eps >= eta
    ax1.fill_between(d_line, 0, np.maximum(bound, optimal_from_2eta),
                     facecolor="none", edgecolor="0.4", hatch="///", lw=0,
                     label="unreachable by any classifier when eps >= 2 eta")
    ax1.set_xlim(0, 0.52)
    ax1.set_ylim(0, 1.02)
    ax1.set_xlabel("standard risk delta (probability)")
    ax1.set_ylabel("smallest Linf-adversarial risk (probability)")
    ax1.set_title("(b) lower frontier of linear classifiers against eps")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5)


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` uses a coarser grid of classifiers. Returns the written paths."""
    import matplotlib.pyplot as plt

    use_style()
    dist = tr.Tsipras(P, ETA, D)
    w1, beta, b = sympy.symbols("w1 beta b", real=True)
    eps_sym = sympy.Symbol("eps", nonnegative=True)
    generic = tr.Linear(Blocks([(w1, 1), (beta, D)]), b)
    f_std = risk_function(dist, generic, None, symbols=(w1, beta, b))
    f_adv = risk_function(dist, generic, _threat(eps_sym), symbols=(w1, beta, b, eps_sym))

    phi, bias = _grid(quick)
    c, s = np.cos(phi), np.sin(phi)
    std = f_std(c, s, bias)
    deltas = np.linspace(0.0, 0.5, 101 if quick else 501)
    frontier: dict[str, list] = {k: [] for k in ("eps_over_eta", "delta", "min_adversarial_risk", "w1", "w2", "b",
                                                 "theorem_2_1_bound")}
    region: dict[str, list] = {}
    for ratio in EPS_RATIOS:
        eps = ratio * ETA
        adv = f_adv(c, s, bias, eps)
        best, idx = _frontier(std, adv, deltas)
        for delta, value, i in zip(deltas, best, idx, strict=True):
            frontier["eps_over_eta"].append(ratio)
            frontier["delta"].append(float(delta))
            frontier["min_adversarial_risk"].append(float(value))
            frontier["w1"].append(float(c[i]) if i >= 0 else math.nan)
            frontier["w2"].append(float(s[i]) if i >= 0 else math.nan)
            frontier["b"].append(float(bias[i]) if i >= 0 else math.nan)
            bound = 1 - tsipras_tradeoff_bound(P, float(delta)) if ratio >= 2 else math.nan
            frontier["theorem_2_1_bound"].append(bound)
        if ratio == MAIN_RATIO:
            bins = 100 if quick else 200
            hist, _, _ = np.histogram2d(std, adv, bins=bins, range=[[0, 1], [0, 1]])
            centers = (np.arange(bins) + 0.5) / bins
            occupied = np.argwhere(hist > 0)
            region = {"standard_risk_bin": centers[occupied[:, 0]].tolist(),
                      "adversarial_risk_bin": centers[occupied[:, 1]].tolist(),
                      "classifiers_in_bin": hist[hist > 0].astype(int).tolist()}
            main_adv = adv


    marks, optimal = _named(dist)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11.0, 6.0))
    fr = {k: np.asarray(v) for k, v in frontier.items()}
    d_line = np.linspace(0, 1, 401)
    bound = 1 - np.array([tsipras_tradeoff_bound(P, v) for v in d_line])
    _draw_classifiers(ax0, std, main_adv, fr, marks, optimal, d_line, bound)
    _draw_frontiers(ax1, dist, fr, d_line, bound)
    fig.tight_layout()
    data = {"frontier": frontier, "classifiers": marks, "region": region,
            "summary": {"quantity": ["p", "eta", "d", "eps_main", "optimal_adversarial_risk", "grid_classifiers"],
                        "value": [P, ETA, D, MAIN_RATIO * ETA, optimal, int(len(phi))]}}
    return save_figure(fig, NAME, data, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a coarser grid of classifiers (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
