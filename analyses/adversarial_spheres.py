"""Figure 6: adversarial spheres (Gilmer et al. 2018): average distance to the nearest error against the error rate.

Data: ``ConcentricSpheres(D, 1, 1.3)`` (seed 003: D = 500). Let E be the part of the inner sphere that a classifier
gets wrong and mu its measure (the error rate on the inner sphere). By the spherical isoperimetric inequality no
set of measure mu is farther on average from a uniform point of the sphere than a cap, so the average (chordal)
distance to the nearest error is at most ``tr.bounds.isoperimetric_mean_distance(D, mu)`` (line; about
``Q^{-1}(mu)/sqrt(D)``): a small error rate forces errors within O(1/sqrt(D)) of most points.

Points: Gilmer et al.'s quadratic network (``tr.QuadraticNet``) and a ReLU network (``tr.MLP``), trained on fresh
samples (``tr.train``) and measured at several points of training. The error rate of the quadratic network is exact
(its twin is a quadratic form: ``P[sum_i (lambda_i - c) z_i^2 >= 0]``, a weighted chi-square sign,
``toyrobust.risks.spheres.weighted_chi2_probability``); that of the MLP is a Monte Carlo estimate with a 95%
Clopper-Pearson interval. The average distance is measured on sampled inner-sphere points: 0 where the point is
already misclassified, otherwise the length of the shortest error found by PGD kept on the sphere
(``tr.attacks.on_manifold_attack`` with L2 balls of growing radius), shortened by bisection along the great circle
to the first error; error bars: +-1.96 standard errors of the mean. An attack can only overestimate a distance, so
points above the line would be attack failures.

Run: ``python analyses/adversarial_spheres.py [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import ndtri

import toyrobust as tr
from toyrobust.attacks import on_manifold_attack
from toyrobust.bounds import isoperimetric_mean_distance
from toyrobust.plotting import COLORS, save_figure, sweep_rows, use_style
from toyrobust.risks.spheres import weighted_chi2_probability
from toyrobust.rng import resolve_device

NAME = "adversarial_spheres"


ROW_COLS = ("network", "step", "error_rate", "error_low", "error_high", "error_method", "mean_distance", "distance_se",
            "points", "not_found", "bound_at_error_rate")


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points at fraction t of the great-circle arc from a to b (rows on the same sphere)."""
    r = torch.linalg.vector_norm(a, dim=1, keepdim=True)
    cos = ((a * b).sum(dim=1, keepdim=True) / (r * r)).clamp(-1.0, 1.0)
    omega = torch.acos(cos).clamp_min(1e-12)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def _shorten(clf: tr.Classifier, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, iters: int = 30
             ) -> torch.Tensor:
    """Bisection on the arc from x (correct) to x_adv (an error) for the first error; returns its distance to x."""
    lo = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    with torch.no_grad():
        for _ in range(iters):
            mid = (lo + hi) / 2
            wrong = clf.predict(_slerp(x, x_adv, mid)) != y
            hi = torch.where(wrong, mid, hi)
            lo = torch.where(wrong, lo, mid)
        return torch.linalg.vector_norm(_slerp(x, x_adv, hi) - x, dim=1)


def nearest_error_distances(clf: tr.Classifier, x: torch.Tensor, y: torch.Tensor, levels: np.ndarray,
                            steps: int, generator: torch.Generator) -> torch.Tensor:
    """Chordal distance from each point to the nearest error found on its sphere (0 if misclassified, inf if none).

    L2 balls of growing radius ``levels`` are searched with the on-sphere PGD attack; points already broken are not
    attacked again, and each found error is moved back along the great circle to the first error.
    """
    with torch.no_grad():
        out = torch.where(clf.predict(x) != y, 0.0, math.inf).to(x.dtype)
    for eps in levels:
        rows = torch.nonzero(torch.isinf(out)).flatten()
        if len(rows) == 0:
            break
        threat = tr.L2(float(eps))
        res = on_manifold_attack(clf, x[rows], y[rows], threat, steps=steps, generator=generator)
        with torch.no_grad():
            x_adv = res.x_adv.detach()
            ok = threat.contains(x_adv, x[rows]) & (clf.predict(x_adv) != y[rows])
        if ok.any():
            out[rows[ok]] = _shorten(clf, x[rows][ok], x_adv[ok], y[rows][ok])
    return out


def _quadratic_inner_error(net: tr.QuadraticNet) -> float:
    """Exact error rate on the unit sphere: P[sum_i (lambda_i - c) z_i^2 >= 0] for the twin sum_i lambda_i z_i^2 - c."""
    twin = net.twin().quadratic
    lam = twin.alpha.to_numpy()
    return weighted_chi2_probability(lam - float(twin.c))


def _sizes(quick: bool) -> tuple:
    if quick:
        return 50, 100, (64, 64), 30, 4000, (20, 60, 150), np.geomspace(0.02, 2.0, 9), 20
    return 500, 1000, (512, 512), 120, 20_000, (50, 100, 200, 400, 800, 1600), np.geomspace(0.01, 2.0, 15), 25


def _networks(params: dict) -> dict:
    """Both networks' measurements (one sweep task: the two share the attack generator's stream), as plain lists."""
    quick = bool(params["quick"])
    device = resolve_device(None)
    dim, hidden_q, hidden_m, m, n_mu, snapshots, levels, attack_steps = _sizes(quick)
    dist = tr.ConcentricSpheres(dim, 1.0, 1.3)
    gen = torch.Generator(device=device).manual_seed(0)
    # fixed evaluation points on the inner sphere (label -1)
    z = torch.randn(max(m, n_mu), dim, generator=gen, device=device)
    pts = z / torch.linalg.vector_norm(z, dim=1, keepdim=True)
    labels = torch.full((len(pts),), -1, dtype=torch.int64, device=device)

    rows: dict[str, list] = {k: [] for k in ROW_COLS}
    for kind in ("quadratic", "mlp"):
        if kind == "quadratic":
            model = tr.QuadraticNet(dim, hidden_q, seed=0, init_bias=((1 + 1.3) / 2) ** 2)
        else:
            model = tr.MLP(dim, hidden_m, seed=0)
        states = {}

        def keep(step: int, net: torch.nn.Module, record: dict | None, states: dict = states) -> None:
            if step in snapshots:
                states[step] = copy.deepcopy(net.state_dict())

        tr.train(model, dist, steps=max(snapshots), batch_size=128, lr=1e-3, seed=1, device=device,
                 eval_every=0, eval_n=0, callback=keep)
        for step in snapshots:
            model.load_state_dict(states[step])
            model.eval()
            clf = model.classifier()
            with torch.no_grad():
                wrong = clf.predict(pts[:n_mu]) != labels[:n_mu]
            if kind == "quadratic":
                mu = _quadratic_inner_error(model)
                low = high = mu
                method = "exact (weighted chi-square sign)"
            else:
                k = int(wrong.sum())
                mu = k / n_mu
                low, high = tr.clopper_pearson(k, n_mu)
                method = f"Monte Carlo, {n_mu} points, 95% Clopper-Pearson"
            d = nearest_error_distances(clf, pts[:m], labels[:m], levels, attack_steps, gen)
            found = torch.isfinite(d)
            dd = d[found].double().cpu().numpy()
            rows["network"].append(kind)
            rows["step"].append(step)
            rows["error_rate"].append(mu)
            rows["error_low"].append(low)
            rows["error_high"].append(high)
            rows["error_method"].append(method)
            rows["mean_distance"].append(float(dd.mean()) if len(dd) else math.nan)
            rows["distance_se"].append(float(dd.std(ddof=1) / math.sqrt(len(dd))) if len(dd) > 1 else math.nan)
            rows["points"].append(m)
            rows["not_found"].append(int((~found).sum()))
            rows["bound_at_error_rate"].append(isoperimetric_mean_distance(dim, mu) if mu > 0 else math.nan)
    return {"rows": {c: [v.item() if hasattr(v, "item") else v for v in vals] for c, vals in rows.items()}}


def main(quick: bool = False, out: str | Path | None = None, executor: Any = None, max_workers: int = 0,
         resume: bool = False) -> list[Path]:
    """Build the figure; ``quick`` uses a smaller dimension, networks and samples. Returns the written paths.

    The trainings and attacks are a sweep task (:func:`toyrobust.plotting.sweep_rows`): a rebuilt figure reuses the
    stored measurements, and ``executor`` may run them elsewhere."""
    import matplotlib.pyplot as plt

    use_style()
    dim, hidden_q, hidden_m, *_ = _sizes(quick)
    (row,) = sweep_rows(NAME, quick, {"quick": quick}, _networks, executor=executor, max_workers=max_workers,
                        resume=resume)
    rows: dict[str, list] = {c: list(row["rows"][c]) for c in ROW_COLS}  # the documented column order
    measured = [v for v in rows["error_rate"] if v > 0]
    low_mu = min([1e-5] + [v / 10 for v in measured])
    mus = np.concatenate([np.geomspace(low_mu, 0.5, 40 if quick else 120)[:-1], np.linspace(0.5, 0.999, 20)])
    curve = {"error_rate": mus.tolist(),
             "isoperimetric_bound": [isoperimetric_mean_distance(dim, float(v)) for v in mus],
             "gaussian_approximation": (-ndtri(mus) / math.sqrt(dim)).tolist()}

    fig, ax = plt.subplots(figsize=(7.2, 4.9))
    ax.plot(curve["error_rate"], curve["isoperimetric_bound"], color=COLORS["black"], lw=1.8,
            label="isoperimetric bound (cap of measure mu), exact")
    ax.plot(curve["error_rate"], curve["gaussian_approximation"], color="0.5", ls="--", lw=1.2,
            label="Q$^{-1}$(mu) / sqrt(D)")
    cols = {k: np.asarray(v) for k, v in rows.items()}
    for kind, color, marker, label in (("quadratic", COLORS["neg"], "s", f"quadratic network (h = {hidden_q})"),
                                       ("mlp", COLORS["pos"], "o", f"ReLU MLP {hidden_m}")):
        sel = (cols["network"] == kind) & (cols["error_rate"].astype(float) > 0)
        mu = cols["error_rate"][sel].astype(float)
        dist_mean = cols["mean_distance"][sel].astype(float)
        xerr = np.vstack([mu - cols["error_low"][sel].astype(float), cols["error_high"][sel].astype(float) - mu])
        yerr = 1.96 * cols["distance_se"][sel].astype(float)
        ax.plot(mu, dist_mean, color=color, lw=0.8, alpha=0.5)  # the training trajectory, in step order
        # markers unclipped: a network wrong on the whole inner sphere sits at (1, 0), on the axes' corner
        bars = ax.errorbar(mu, dist_mean, xerr=xerr, yerr=yerr, fmt=marker, color=color, mfc="white", ms=6,
                           capsize=3, lw=1.2, label=f"{label}, steps {', '.join(str(v) for v in cols['step'][sel])}")
        bars[0].set_clip_on(False)
        # the last step filled (no text label: labels collided with the markers)
        ax.plot(mu[-1:], dist_mean[-1:], marker, color=color, ms=6, zorder=5, clip_on=False)
    ax.plot([], [], color="0.5", lw=0.8, label="thin lines: training order; filled marker: last step")
    ax.set_xscale("log")
    ax.set_xlabel("error rate mu on the inner sphere")
    ax.set_ylabel("average L2 distance to the nearest error")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Adversarial spheres, D = {dim}: distance to the nearest error vs error rate")
    ax.legend(loc="upper right", fontsize=7.5, frameon=True, framealpha=0.92)
    fig.tight_layout()
    return save_figure(fig, NAME, {"": curve, "networks": rows}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller dimension, networks and samples")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    parser.add_argument("--workers", type=int, default=0, help="processes for the figure's sweep (0: this one)")
    parser.add_argument("--resume", action="store_true", help="reuse the rows of an earlier or interrupted run")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out, max_workers=args.workers, resume=args.resume):
        print(path)
