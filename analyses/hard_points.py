"""Figure 10: the hard-training-points toy of seed 002 (its Figures 2-4) with polynomials on [-1, 1].

Hypotheses are random polynomials h = sum_k c_k T_k in the Chebyshev basis, c_k ~ N(0, 0.6^(2k)); the learner
interpolates them on m training points (degree m - 1), and the error function is e = h_X - h. (a) seed's
Figure 2: |e| of one random hypothesis learned from 11 uniform and 11 Chebyshev points, its adversarial points
(the local maxima of |e|, exact from the roots of e'); (b) Runge's phenomenon, |f - p| for f = 1/(1 + 25 x^2) on
the same grids; (c) seed's Figure 3: the worst-case expected squared error max_x E_H e(x)^2 of each grid against
m and the number of points each needs to reach the target; (d) seed's Figure 4: the hard-points objective (2),
E_H e(x)^2, for the Chebyshev grid and for the optimised points (which minimise its maximum), their hard points
(its maxima); (e) the optimised points next to the Chebyshev nodes for each m; (f) the measured gap: each grid's
objective over the optimised points' objective.

All objectives are exact (closed form in the design matrix, maxima from polynomial roots); the optimised points
come from scipy.optimize (toyrobust.hardpoints.optimise_training_points, started at the Chebyshev nodes).

Run: ``python analyses/hard_points.py [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.polynomial import chebyshev as C

from toyrobust import hardpoints as hp
from toyrobust.plotting import COLORS, save_figure, use_style

NAME = "hard_points"
RATIO = 0.6  # std_k = RATIO^k: random functions analytic inside the Bernstein ellipse of parameter 1/RATIO
SEED = 2
STYLES = {"uniform": dict(color=COLORS["neg"], marker="s", label="uniform"),
          "chebyshev": dict(color=COLORS["pos"], marker="o", label="Chebyshev nodes"),
          "chebyshev_extrema": dict(color=COLORS["green"], marker="^", label="Chebyshev extrema"),
          "optimised": dict(color=COLORS["black"], marker="*", label="optimised (min max_x E e^2)")}


def _draw_top(row, v: dict) -> None:
    """Panels (a)-(c) on the axes ``row`` from the quantities ``v`` computed by :func:`main`."""
    (curves, points, xs, m, complexity, sc, ms, m_max, target, degree_h) = (
        v["curves"], v["points"], v["xs"], v["m"], v["complexity"],
        v["sc"], v["ms"], v["m_max"], v["target"], v["degree_h"])
    ax = row[0]
    for kind in ("uniform", "chebyshev"):
        st = STYLES[kind]
        ax.semilogy(xs, np.abs(curves[f"e_{kind}"]), color=st["color"], lw=1.4, label=f"|e|, {st['label']}")
        idx = [i for i, (p, g, r) in enumerate(zip(points["panel"], points["grid"], points["role"]))
               if p == "a" and g == kind and r == "adversarial"]
        ax.semilogy([points["x"][i] for i in idx], [abs(points["value"][i]) for i in idx], ls="none",
                    marker=st["marker"], color=st["color"], ms=6, label=f"adversarial points ({st['label']})")
    floor = 1e-4 * float(np.max(np.abs(curves["e_uniform"])))
    ax.set_ylim(floor, None)
    ax.set_xlabel("x")
    ax.set_ylabel("|e(x)| = |h_X(x) - h(x)|")
    ax.set_title(f"(a) seed Fig. 2: one random h, interpolated on {m} points")
    ax.legend(fontsize=7)

    ax = row[1]
    for kind in ("uniform", "chebyshev"):
        st = STYLES[kind]
        top = [v for p, g, r, v in zip(points["panel"], points["grid"], points["role"], points["value"])
               if p == "b" and g == kind and r == "max_error"][0]
        ax.semilogy(xs, np.maximum(np.abs(curves[f"runge_error_{kind}"]), 1e-8), color=st["color"], lw=1.4,
                    label=f"{st['label']}: max {top:.4f}")
    ax.set_ylim(1e-5, 10)
    ax.set_xlabel("x")
    ax.set_ylabel("|p(x) - f(x)|")
    ax.set_title(f"(b) Runge: f = 1/(1 + 25 x^2) on {m} points")
    ax.legend(fontsize=8)

    ax = row[2]
    for kind, st in STYLES.items():
        y = np.asarray(complexity[kind], dtype=float)
        reached = f"m = {sc[kind]['needed']}" if sc[kind]["needed"] else f"not reached by m = {m_max}"
        ax.semilogy(ms, y, color=st["color"], marker=st["marker"], ms=4, lw=1.2, label=f"{st['label']}: {reached}")
    ax.axhline(target, color="0.5", ls=":", label=f"target {target:g}")
    ax.set_xlabel("m (training points; interpolation of degree m - 1)")
    ax.set_ylabel("max_x E_H e(x)^2")
    ax.set_title(f"(c) seed Fig. 3: sample complexity (H: std_k = {RATIO}^k, N = {degree_h})")
    ax.legend(fontsize=7)



def _draw_bottom(row, v: dict) -> None:
    """Panels (d)-(f) on the axes ``row`` from the quantities ``v`` computed by :func:`main`."""
    (xs, objective, hard, cheb_d, m_d, positions, gap) = (
        v["xs"], v["objective"], v["hard"], v["cheb_d"], v["m_d"],
        v["positions"], v["gap"])
    ax = row[0]
    short = {"chebyshev": "Chebyshev nodes", "optimised": "optimised points"}
    for kind in ("chebyshev", "optimised"):
        st = STYLES[kind]
        ax.semilogy(xs, np.maximum(objective[kind], 1e-30), color=st["color"], lw=1.4, label=f"E e^2, {short[kind]}")
        idx = [i for i, (g, r) in enumerate(zip(hard["grid"], hard["role"])) if g == kind and r == "hard_point"]
        ax.semilogy([hard["x"][i] for i in idx], [hard["value"][i] for i in idx], ls="none", marker=st["marker"],
                    color=st["color"], ms=7, label=f"hard points, {short[kind]}")
    for x in cheb_d:
        ax.axvline(x, color=COLORS["pos"], lw=0.6, alpha=0.5)
    top = max(max(objective["chebyshev"]), max(objective["optimised"]))
    # three decades of head room above the curves hold the legend, inside the axes and clear of every curve
    ax.set_ylim(top * 1e-7, top * 1e3)
    ax.set_xlabel("x (vertical lines: Chebyshev nodes)")
    ax.set_ylabel("E_H (h_X(x) - h(x))^2")
    ax.set_title(f"(d) seed Fig. 4: objective (2) and hard points, m = {m_d}")
    ax.legend(fontsize=7, loc="upper center", ncol=2, markerscale=0.8, frameon=True, framealpha=0.95, edgecolor="0.8")

    ax = row[1]
    pos_m = np.asarray(positions["m"])
    ax.plot(positions["chebyshev"], pos_m, "o", mfc="none", color=COLORS["pos"], ms=8, label="Chebyshev nodes")
    ax.plot(positions["optimised"], pos_m, "*", color=COLORS["black"], ms=6, label="optimised points")
    ax.set_xlabel("x")
    ax.set_ylabel("m")
    ax.set_title("(e) optimised training points next to the Chebyshev grid")
    ax.legend(fontsize=8)

    ax = row[2]
    for kind in ("uniform", "chebyshev", "chebyshev_extrema"):
        st = STYLES[kind]
        ax.semilogy(gap["m"], gap[kind], color=st["color"], marker=st["marker"], ms=4, label=st["label"])
    ax.axhline(1.0, color=COLORS["black"], ls=":", label="optimised")
    ax.set_xlabel("m")
    ax.set_ylabel("max_x E e^2 of the grid / of the optimised points")
    ax.set_title("(f) the gap to the optimised points")
    ax.legend(fontsize=8)


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure; ``quick`` uses a lower hypothesis degree and fewer optimised grids. Returns the paths."""
    import matplotlib.pyplot as plt

    use_style()
    degree_h = 24 if quick else 40
    prior = hp.ChebyshevPrior.geometric(degree_h, RATIO)
    m_max = 20 if quick else 32
    m_opt = range(2, 9 if quick else 17)
    target = 1e-6 if quick else 1e-10
    rng = np.random.default_rng(SEED)
    xs = np.cos(np.linspace(np.pi, 0.0, 2001 if quick else 8001))

    # (a), (b): error functions on 11 points
    m = 11
    h = prior.sample(1, rng)[0]
    curves: dict[str, list] = {"x": xs.tolist()}
    points: dict[str, list] = {"panel": [], "grid": [], "role": [], "x": [], "value": []}
    for kind in ("uniform", "chebyshev"):
        train = hp.grid(kind, m)
        e = hp.error_coefficients(h, train, m - 1)
        curves[f"e_{kind}"] = C.chebval(xs, e).tolist()
        runge = C.chebval(xs, hp.fit(train, hp.runge(train), m - 1)) - hp.runge(xs)
        curves[f"runge_error_{kind}"] = runge.tolist()
        adv, vals = hp.adversarial_points(e)
        where, top = hp.interpolation_max_error(hp.runge, train)
        rows = [("a", "adversarial", adv, vals), ("a", "training", train, np.zeros(m)),
                ("b", "max_error", [where], [top]), ("b", "training", train, np.zeros(m))]
        for panel, role, xv, yv in rows:
            for x, y in zip(xv, yv):
                for key, value in zip(points, (panel, kind, role, float(x), float(y))):
                    points[key].append(value)

    # (c): sample complexity per grid (exact objectives; "optimised" searched down from the Chebyshev answer)
    sc = hp.sample_complexity(prior, target, m_max=m_max)
    ms = list(range(1, m_max + 1))
    complexity: dict[str, list] = {"m": ms}
    for kind in ("uniform", "chebyshev", "chebyshev_extrema"):
        complexity[kind] = sc[kind]["objective"]
    opt_points = {k: hp.optimise_training_points(k, prior=prior) for k in m_opt}
    opt_obj = {k: hp.grid_objective(x, k - 1, prior) for k, x in opt_points.items()}
    opt_obj.update(dict(zip(sc["optimised"]["m"], sc["optimised"]["objective"])))
    complexity["optimised"] = [opt_obj.get(k, float("nan")) for k in ms]
    needed = {"grid": list(sc), "needed": [sc[k]["needed"] if sc[k]["needed"] is not None else "" for k in sc],
              "target": [target] * len(sc)}

    # (d): the objective (2) as a function of x for m = 8, Chebyshev vs optimised training points
    m_d = 8
    cheb_d, opt_d = hp.chebyshev_nodes(m_d), opt_points[m_d]
    objective = {"x": xs.tolist(),
                 "chebyshev": hp.expected_squared_error(xs, cheb_d, m_d - 1, prior).tolist(),
                 "optimised": hp.expected_squared_error(xs, opt_d, m_d - 1, prior).tolist()}
    hard: dict[str, list] = {"grid": [], "role": [], "x": [], "value": []}
    for kind, train in (("chebyshev", cheb_d), ("optimised", opt_d)):
        hx, hv = hp.hard_points(train, m_d - 1, prior)
        for role, xv, yv in (("hard_point", hx, hv), ("training", train, np.zeros(m_d))):
            for x, y in zip(xv, yv):
                for key, value in zip(hard, (kind, role, float(x), float(y))):
                    hard[key].append(value)

    # (e), (f): optimised points next to the Chebyshev nodes; objective ratios
    positions: dict[str, list] = {"m": [], "index": [], "optimised": [], "chebyshev": []}
    gap: dict[str, list] = {"m": list(m_opt)}
    for k in m_opt:
        for i, (a, b) in enumerate(zip(opt_points[k], hp.chebyshev_nodes(k))):
            for key, value in zip(positions, (k, i, float(a), float(b))):
                positions[key].append(value)
    for kind in ("uniform", "chebyshev", "chebyshev_extrema"):
        gap[kind] = [complexity[kind][k - 1] / opt_obj[k] for k in m_opt]
    gap["max_position_difference"] = [float(np.abs(opt_points[k] - hp.chebyshev_nodes(k)).max()) for k in m_opt]

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    v = dict(locals())  # the computed quantities, by name, for the drawing helpers
    _draw_top(axes[0], v)
    _draw_bottom(axes[1], v)
    fig.tight_layout()
    data = {"": curves, "points": points, "sample_complexity": complexity, "needed": needed,
            "objective": objective, "hard_points": hard, "positions": positions, "gap": gap}
    return save_figure(fig, NAME, data, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lower degree, fewer optimised grids (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
