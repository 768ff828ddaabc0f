"""Figure: choosing eps on real images (seed 001 on scikit-learn's bundled 8x8 handwritten digits).

Seed 001 picks eps for MNIST from distances between images. Here its analysis runs on real data (1797 digits of
8x8 pixels in [0, 1], split 80/20 into training and test images with a fixed seed), with the projection definition
applied to real samples through ``tr.EmpiricalDistribution`` (support = the training images, projection = the
nearest training image in the threat's norm, Bayes label = its label):

* (a, b) the 10 x 10 mean distance between the training images of two classes, L2 and Linf; boxed cells are the
  classes nearer another class than themselves (seed 001's surprise: its 2s and 8s are nearer the 1s);
* (c) x0 + eps sign(x1), clipped to [0, 1], at eps = 0.2 and 0.3: within eps of x0 in Linf, plainly a mix of two
  digits; titles give the L2 and Linf distances to x0 and the label of the nearest training image (Linf, L2);
* (d) per-class eps: the label-invariant radius of each class (half the smallest Linf distance from one of its
  images to an image of another class) next to percentiles of each image's own half nearest other-class distance;
* (e) condition (2): the share of test images within eps (Linf) of a training image of their own class, and of
  those the trained network labels differently (an attack of size eps from a training image "finds" them);
* (f, g) the projection definition on real data: a ReLU network (64 -> 64 -> 10, or 128 hidden units at full size)
  trained on the training images, attacked with PGD and APGD (ball definition, margin loss) at Linf eps 0.05 ... 0.3
  on the test images; (f) the ball risk, the projection risk of the same points, and a projection-aware PGD;
  (g) the share of the ball-adversarial examples that are **not** adversarial by the projection definition because
  their nearest training image (Linf; dashed: L2) has another label. The black line marks the Linf label-invariant
  radius of the training images: PGD started from training images (the support; black triangles) has none
  excluded below it, while test images lie off the support and some are excluded at every eps.

Run: ``python analyses/choosing_eps_digits.py [--quick]``; on your own MNIST files: ``toyrobust eps-analysis --idx
train-images-idx3-ubyte``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import toyrobust as tr
from toyrobust.plotting import COLORS, save_figure, use_style

NAME = "choosing_eps_digits"
PAIRS = ((0, 1), (3, 8), (7, 4))
CRAFT_EPS = (0.2, 0.3)
PERCENTILES = (5, 25, 50)


def split(X: torch.Tensor, y: torch.Tensor, seed: int = 0, test: float = 0.2) -> tuple[torch.Tensor, ...]:
    """A seeded random split into training and test images."""
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    k = int(round(test * X.shape[0]))
    return X[perm[k:]], y[perm[k:]], X[perm[:k]], y[perm[:k]]


def per_class(X: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``limit`` images per class (seed 001 uses 100), drawn with a seed; all when ``limit`` is None."""
    if limit is None:
        return X, y
    gen = torch.Generator().manual_seed(seed)
    keep = [torch.nonzero(y == c)[:, 0][torch.randperm(int((y == c).sum()), generator=gen)[:limit]]
            for c in torch.unique(y)]
    idx = torch.sort(torch.cat(keep)).values
    return X[idx], y[idx]


def train_mlp(X: torch.Tensor, y: torch.Tensor, k: int, hidden: int, steps: int, seed: int = 0,
              device: Any = "cpu", lr: float = 1e-2, batch: int = 4096) -> tr.MLP:
    """A ReLU network with ``k`` logits trained by Adam on the cross-entropy: full batches up to ``batch`` images,
    seeded minibatches of ``batch`` beyond (MNIST-sized sets); deterministic on a CPU."""
    net = tr.MLP(X.shape[1], (hidden,), n_classes=k, seed=seed, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    X, y = X.to(device), y.to(device)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=gen).to(device) if X.shape[0] > batch else None
        opt.zero_grad()
        F.cross_entropy(net(X if idx is None else X[idx]), y if idx is None else y[idx]).backward()
        opt.step()
    return net.eval()


def distance_tables(train: tr.EmpiricalDistribution) -> dict[str, dict[str, list]]:
    """The heatmaps (mean L2 and Linf distances between classes) and the per-class radii with percentiles."""
    heat: dict[str, list] = {"norm": [], "class_a": [], "class_b": [], "mean_distance": [], "nearest_mean": [],
                             "nearer_than_own_class": []}
    radius: dict[str, list] = {"norm": [], "class": [], "label_invariant_radius": [], "n": []}
    radius.update({f"p{q}_nearest_other": [] for q in PERCENTILES})
    for norm in ("l2", "linf"):
        s = train.distance_statistics(norm)
        nearer = set(s.nearer_elsewhere())
        for i, a in enumerate(s.labels):
            for j, b in enumerate(s.labels):
                heat["norm"].append(norm)
                heat["class_a"].append(a)
                heat["class_b"].append(b)
                heat["mean_distance"].append(float(s.mean[i, j]))
                heat["nearest_mean"].append(float(s.nearest_mean[i, j]))
                heat["nearer_than_own_class"].append((a, b) in nearer)
        radii = s.class_radius()
        for a in s.labels:
            other = s.nearest_other[s.y == a]
            radius["norm"].append(norm)
            radius["class"].append(a)
            radius["label_invariant_radius"].append(radii[a])
            radius["n"].append(int(other.size))
            for q in PERCENTILES:
                radius[f"p{q}_nearest_other"].append(float(np.percentile(other, q)))
    return {"heatmap": heat, "radius": radius}


def crafted(Xtr: torch.Tensor, ytr: torch.Tensor, net: Any, train_l2: Any, train_inf: Any) -> dict[str, list]:
    """Seed 001's crafted images x0 + eps sign(x1) (clipped to [0, 1]) for :data:`PAIRS`."""
    out: dict[str, list] = {"class_x0": [], "class_x1": [], "eps": [], "l2_to_x0": [], "linf_to_x0": [],
                            "nearest_label_linf": [], "nearest_label_l2": [], "network_label": [], "pixels": []}
    for a, b in PAIRS:
        if not (bool((ytr == a).any()) and bool((ytr == b).any())):
            continue
        x0, x1 = Xtr[ytr == a][0], Xtr[ytr == b][0]
        for eps in (0.0, *CRAFT_EPS, None):
            img = x1 if eps is None else (x0 + (eps or 0.0) * torch.sign(x1)).clamp(0, 1)
            row = img[None].to(torch.float64)
            out["class_x0"].append(a)
            out["class_x1"].append(b)
            out["eps"].append(math.nan if eps is None else eps)
            out["l2_to_x0"].append(float(torch.linalg.vector_norm(img - x0)))
            out["linf_to_x0"].append(float((img - x0).abs().max()))
            out["nearest_label_linf"].append(int(train_inf.bayes_label(row)[0]))
            out["nearest_label_l2"].append(int(train_l2.bayes_label(row)[0]))
            out["network_label"].append(int(net(img[None].to(next(net.parameters()))).argmax(1)[0]))
            out["pixels"].append(" ".join(f"{v:.4g}" for v in img.tolist()))
    return out


def condition_two(Xtr: torch.Tensor, ytr: torch.Tensor, Xte: torch.Tensor, yte: torch.Tensor,
                  wrong: torch.Tensor) -> dict[str, list]:
    """Per eps: the share of test images within eps of a training image of their class, and of those the network
    labels differently (seed 001's condition (2): a perturbation must not reach a same-class image it misreads)."""
    out: dict[str, list] = {"norm": [], "eps": [], "within_eps_same_class": [], "within_eps_and_misclassified": []}
    for norm, grid in (("linf", np.linspace(0, 1, 41)), ("l2", np.linspace(0, 8, 41))):
        D = torch.cdist(Xte.double(), Xtr.double(), p=math.inf if norm == "linf" else 2.0)
        same = torch.where(yte[:, None] == ytr[None, :], D, torch.tensor(math.inf, dtype=D.dtype)).amin(1)
        for eps in grid:
            near = same <= eps
            out["norm"].append(norm)
            out["eps"].append(float(eps))
            out["within_eps_same_class"].append(float(near.double().mean()))
            out["within_eps_and_misclassified"].append(float((near & wrong).double().mean()))
    return out


def projection_study(net: Any, train_inf: Any, train_l2: Any, test: tuple[torch.Tensor, torch.Tensor],
                     support: tuple[torch.Tensor, torch.Tensor], eps_grid: tuple[float, ...], steps: int,
                     bar: Any) -> dict[str, list]:
    """Ball-definition PGD and APGD at each Linf eps on the test images, the projection definition on the examples
    they find, a projection-aware PGD (its early stopping and success read the nearest training image's label), and
    PGD on training images (support points: nothing can be excluded below the label-invariant radius)."""
    cols = ("images", "attack", "eps", "ball_risk", "projection_risk", "excluded_share_linf", "excluded_share_l2",
            "found")
    out: dict[str, list] = {c: [] for c in cols}
    dev = next(net.parameters()).device
    x, y = test[0].to(dev), test[1].to(dev)
    for eps in eps_grid:
        threat = tr.Linf(eps)
        runs = (("test", "pgd", tr.attacks.PGD(steps=steps), x, y), ("test", "apgd", tr.APGD(steps=steps), x, y),
                ("training", "pgd", tr.attacks.PGD(steps=steps), support[0].to(dev), support[1].to(dev)))
        for images, name, attack, xs, ys in runs:
            res = attack.run(net, xs, ys, threat, generator=0)
            xa = res.x_adv.double()
            keep_inf = train_inf.bayes_label(xa) == ys
            keep_l2 = train_l2.bayes_label(xa) == ys
            found = int(res.success.sum())
            _row(out, images, name, eps, res.success.double().mean(), (res.success & keep_inf).double().mean(),
                 _share(res.success & ~keep_inf, found), _share(res.success & ~keep_l2, found), found)
            bar.update(1)
        aware = tr.attacks.PGD(steps=steps).run(net, x, y, threat, definition="projection", dist=train_inf,
                                                generator=0)
        _row(out, "test", "pgd (projection-aware)", eps, math.nan, aware.success.double().mean(), math.nan, math.nan,
             int(aware.success.sum()))
        bar.update(1)
    return out


def _share(mask: torch.Tensor, found: int) -> float:
    return float(mask.sum()) / found if found else math.nan


def _row(out: dict[str, list], *values: Any) -> None:
    for key, v in zip(out, values, strict=True):
        out[key].append(float(v) if isinstance(v, torch.Tensor) else v)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def analyse(X: torch.Tensor, y: torch.Tensor, *, quick: bool = False, seed: int = 0, max_per_class: int | None = None,
            test: tuple[torch.Tensor, torch.Tensor] | None = None, max_test: int | None = None, device: Any = "cpu",
            progress: bool = False) -> dict[str, Any]:
    """Every table of the figure for images ``X`` (n, pixels) in [0, 1] with labels ``y`` 0..K-1.

    Args:
        X, y: the images and labels (split 80/20 with ``seed`` unless ``test`` gives the test images).
        quick: a smaller network, fewer attack steps and eps values.
        max_per_class: at most this many training images per class for the distance tables (seed 001: 100;
            None: all), the nearest-sample projection always uses every training image.
        max_test: at most this many test images are attacked.
        device: where the network and the attacks run.
        progress: a progress bar on stderr.
    """
    Xtr, ytr, Xte, yte = split(X, y, seed) if test is None else (X, y, *test)
    if max_test is not None:
        Xte, yte = Xte[:max_test], yte[:max_test]
    k = int(max(int(ytr.max()), int(yte.max()))) + 1
    eps_grid = (0.05, 0.1, 0.2, 0.3) if quick else (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    bar = _bar(progress, 4 + 4 * len(eps_grid))
    sub = tr.EmpiricalDistribution(*per_class(Xtr, ytr, max_per_class, seed), n_classes=k, name="training images")
    tables = distance_tables(sub)
    bar.update(1)
    train_l2 = tr.EmpiricalDistribution(Xtr, ytr, n_classes=k, name="training images")
    train_inf = train_l2.with_norm("linf")
    net = train_mlp(Xtr, ytr, k, 64 if quick else 128, 100 if quick else 600, seed, device, 2e-2 if quick else 1e-2)
    with torch.no_grad():
        wrong = (net(Xte.to(device)).argmax(1).cpu() != yte)
    bar.update(1)
    tables["crafted"] = crafted(Xtr, ytr, net, train_l2, train_inf)
    tables["condition2"] = condition_two(Xtr, ytr, Xte, yte, wrong)
    bar.update(2)
    support = (Xtr[:Xte.shape[0]], ytr[:Xte.shape[0]])
    tables["projection"] = projection_study(net, train_inf, train_l2, (Xte, yte), support, eps_grid,
                                            20 if quick else 100, bar)
    bar.close()
    # the radius from the images of the distance tables: every training image unless max_per_class subsamples
    # them (then an upper estimate: fewer pairs, a larger smallest distance)
    tables["summary"] = {"n_train": [int(Xtr.shape[0])], "n_test": [int(Xte.shape[0])], "classes": [k],
                         "test_error": [float(wrong.double().mean())],
                         "radius_linf_all_training": [sub.label_invariant_radius(math.inf)],
                         "radius_l2_all_training": [sub.label_invariant_radius(2)],
                         "images_for_distance_tables": [sub.n],
                         "nearer_than_own_class_l2": [";".join(f"{a}->{b}" for a, b in
                                                               sub.distance_statistics("l2").nearer_elsewhere())]}
    return tables


def _bar(progress: bool, total: int) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eps analysis", unit="step", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------------- figure
def _heatmap(ax: Any, fig: Any, tables: dict, norm: str, title: str) -> None:
    h = tables["heatmap"]
    rows = [i for i, n in enumerate(h["norm"]) if n == norm]
    labels = sorted({h["class_a"][i] for i in rows})
    k = len(labels)
    M = np.array([h["mean_distance"][i] for i in rows]).reshape(k, k)
    im = ax.imshow(M, cmap="viridis")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{M[i, j]:.2f}" if norm == "l2" else f"{M[i, j]:.2f}", ha="center", va="center",
                    fontsize=6.5, color="white" if M[i, j] < M.min() + 0.6 * (M.max() - M.min()) else "black")
            if h["nearer_than_own_class"][rows[i * k + j]]:
                ax.add_patch(_box(j, i))
    ax.set_xticks(range(k), labels, fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("class b")
    ax.set_ylabel("class a")
    ax.grid(False)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)


def _box(j: int, i: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=COLORS["orange"], lw=2.2)


def _crafted_panel(fig: Any, cell: Any, tables: dict, shape: tuple[int, int]) -> None:
    c = tables["crafted"]
    pairs = list(dict.fromkeys(zip(c["class_x0"], c["class_x1"], strict=True)))
    inner = cell.subgridspec(len(pairs), 4, wspace=0.05, hspace=0.55)
    for r, pair in enumerate(pairs):
        rows = [i for i, p in enumerate(zip(c["class_x0"], c["class_x1"], strict=True)) if p == pair]
        order = [rows[0], rows[-1], *rows[1:-1]]  # x0, x1, then the crafted ones
        for col, i in enumerate(order):
            ax = fig.add_subplot(inner[r, col])
            img = np.array([float(v) for v in c["pixels"][i].split()]).reshape(shape)
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("#999999")
            eps = c["eps"][i]
            head = (f"x0 (a {pair[0]})" if col == 0 else f"x1 (a {pair[1]})" if col == 1 else f"x0 + {eps:g} sign(x1)")
            sub = (f"L2 {c['l2_to_x0'][i]:.2f}, Linf {c['linf_to_x0'][i]:.2f}\nnearest: {c['nearest_label_linf'][i]} "
                   f"(Linf), {c['nearest_label_l2'][i]} (L2); net: {c['network_label'][i]}") if col >= 2 else \
                f"net: {c['network_label'][i]}"
            ax.set_title(f"{head}\n{sub}", fontsize=6.5)
            if r == 0 and col == 0:
                ax.text(-0.15, 1.9, "(c) seed 001's crafted images", transform=ax.transAxes, fontsize=10)


def _radius_panel(ax: Any, tables: dict) -> None:
    rad = tables["radius"]
    rows = [i for i, n in enumerate(rad["norm"]) if n == "linf"]
    cls = np.array([rad["class"][i] for i in rows])
    r = np.array([rad["label_invariant_radius"][i] for i in rows])
    ax.bar(cls, r, color=COLORS["black"], width=0.55, label="label-invariant radius of the class")
    for q, m, col in zip(PERCENTILES, ("v", "o", "^"), (COLORS["neg"], COLORS["pos"], COLORS["green"]), strict=True):
        v = np.array([rad[f"p{q}_nearest_other"][i] for i in rows]) / 2
        ax.plot(cls, v, m, color=col, label=f"{q}th percentile of an image's half nearest other-class distance")
    ax.axhline(0.3, color=COLORS["pink"], ls="--", lw=1.4, label="eps = 0.3 (the usual MNIST choice)")
    ax.set_xticks(cls)
    ax.set_xlabel("class")
    ax.set_ylabel("eps (Linf)")
    ax.set_ylim(0, 1.75 * max(0.3, float(np.nanmax([rad["p50_nearest_other"][i] for i in rows])) / 2))
    ax.set_title("(d) per-class eps (Linf): the class's radius\nand each image's own (half its nearest other class)",
                 fontsize=10)
    ax.legend(fontsize=6.6, loc="upper left")


def _condition_panel(ax: Any, tables: dict) -> None:
    c = tables["condition2"]
    rows = [i for i, n in enumerate(c["norm"]) if n == "linf"]
    eps = [c["eps"][i] for i in rows]
    ax.plot(eps, [c["within_eps_same_class"][i] for i in rows], color=COLORS["pos"],
            label="within eps of a training image of its class")
    ax.plot(eps, [c["within_eps_and_misclassified"][i] for i in rows], color=COLORS["neg"],
            label="... and labelled differently by the network")
    ax.axvline(0.3, color=COLORS["pink"], ls="--", lw=1.4)
    ax.set_xlabel("eps (Linf)")
    ax.set_ylabel("share of test images")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("(e) condition (2): test images an eps-move from\na training image of their class reaches",
                 fontsize=10)
    ax.legend(fontsize=7, loc="center right")


def _projection_panels(ax_f: Any, ax_g: Any, tables: dict) -> None:
    p, r = tables["projection"], tables["summary"]["radius_linf_all_training"][0]
    styles = {"pgd": ("o", COLORS["neg"]), "apgd": ("s", COLORS["pos"])}
    for name, (marker, col) in styles.items():
        rows = [i for i, a in enumerate(p["attack"]) if a == name and p["images"][i] == "test"]
        eps = [p["eps"][i] for i in rows]
        ax_f.plot(eps, [p["ball_risk"][i] for i in rows], marker=marker, color=col, label=f"{name.upper()}: ball")
        ax_f.plot(eps, [p["projection_risk"][i] for i in rows], marker=marker, color=col, ls=":", mfc="none",
                  label=f"{name.upper()}: same points, projection definition")
        ax_g.plot(eps, [p["excluded_share_linf"][i] for i in rows], marker=marker, color=col,
                  label=f"{name.upper()}, nearest image in Linf")
        ax_g.plot(eps, [p["excluded_share_l2"][i] for i in rows], marker=marker, color=col, ls="--", mfc="none",
                  label=f"{name.upper()}, nearest image in L2")
    rows = [i for i, a in enumerate(p["attack"]) if a == "pgd (projection-aware)"]
    ax_f.plot([p["eps"][i] for i in rows], [p["projection_risk"][i] for i in rows], marker="D", color=COLORS["green"],
              label="projection-aware PGD: projection definition")
    rows = [i for i, im in enumerate(p["images"]) if im == "training"]
    ax_g.plot([p["eps"][i] for i in rows], [p["excluded_share_linf"][i] for i in rows], marker="^",
              color=COLORS["black"], label="PGD on training images (the support), Linf")
    for ax in (ax_f, ax_g):
        ax.axvline(r, color=COLORS["black"], lw=1.2)
        ax.set_xlabel("eps (Linf)")
        ax.set_ylim(-0.02, 1.02)
    ax_g.text(r, 0.97, " label-invariant radius\n of the training images:\n none excluded below it", fontsize=7,
              va="top")
    ax_f.set_ylabel("share of test images")
    ax_g.set_ylabel("share of the ball-adversarial examples")
    ax_f.set_title("(f) the network's Linf adversarial risk\n(test images; line: label-invariant radius)", fontsize=10)
    ax_g.set_title("(g) ball-adversarial but not by the projection\ndefinition: nearest image has another label",
                   fontsize=10)
    ax_f.legend(fontsize=6.8, loc="center right")
    ax_g.legend(fontsize=6.8, loc="upper left", bbox_to_anchor=(0.0, 0.8))


def figure(tables: dict, shape: tuple[int, int] = (8, 8), title: str = "8x8 digits") -> Any:
    """The figure of :func:`analyse`'s tables."""
    import matplotlib.pyplot as plt

    use_style()
    fig = plt.figure(figsize=(18, 9.4))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1], hspace=0.45, wspace=0.3)
    nearer = tables["summary"]["nearer_than_own_class_l2"][0] or "none"
    _heatmap(fig.add_subplot(grid[0, 0]), fig, tables, "l2",
             f"(a) mean L2 distance, class a to class b\nnearer another class than itself: {nearer}")
    _heatmap(fig.add_subplot(grid[0, 1]), fig, tables, "linf", "(b) mean Linf distance, class a to class b")
    _crafted_panel(fig, grid[0, 2:], tables, shape)
    _radius_panel(fig.add_subplot(grid[1, 0]), tables)
    _condition_panel(fig.add_subplot(grid[1, 1]), tables)
    _projection_panels(fig.add_subplot(grid[1, 2]), fig.add_subplot(grid[1, 3]), tables)
    s = tables["summary"]
    used = s["images_for_distance_tables"][0]
    which = "the training images" if used == s["n_train"][0] else f"{used} training images (an upper estimate)"
    fig.suptitle(f"Choosing eps on real images ({title}: {s['n_train'][0]} training, {s['n_test'][0]} test images; "
                 f"network test error {s['test_error'][0]:.1%}; label-invariant radius of {which}: Linf "
                 f"{s['radius_linf_all_training'][0]:.3f}, L2 {s['radius_l2_all_training'][0]:.3f})", fontsize=11.5)
    return fig


def run(X: torch.Tensor, y: torch.Tensor, *, quick: bool = False, out: str | Path | None = None, name: str = NAME,
        shape: tuple[int, int] | None = None, title: str = "8x8 digits", progress: bool = False,
        report: Callable[[str], Any] | None = None, **options: Any) -> list[Path]:
    """:func:`analyse` then :func:`figure` for any images (the ``toyrobust eps-analysis`` command calls this)."""
    tables = analyse(X, y, quick=quick, progress=progress, **options)
    side = int(round(math.sqrt(X.shape[1])))
    shape = shape or ((side, side) if side * side == X.shape[1] else (1, X.shape[1]))
    fig = figure(tables, shape, title)
    return save_figure(fig, name, tables, out)


def main(quick: bool = False, out: str | Path | None = None) -> list[Path]:
    """Build the figure on the bundled digits; ``quick`` uses a smaller network and fewer attack steps."""
    X, y = tr.datasets.digits()
    return run(X, y, quick=quick, out=out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller network, fewer attack steps (seconds)")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    args = parser.parse_args()
    for path in main(quick=args.quick, out=args.out):
        print(path)
