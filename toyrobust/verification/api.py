"""Complete verification of ReLU networks: robust (proven), vulnerable (with a counterexample) or unknown.

For each point ``x`` with label ``y`` and ball ``B(x)``, the question is whether some ``x' in B(x)`` is
adversarial. With a label region ``R_l`` (closure of ``{z : Bayes(proj(z)) = l}``, a union of polyhedra, see
:mod:`.regions`), each definition is a set of *sub-problems* ``(l, R)``: "is there ``x' in B(x) ∩ R`` with
``f(x') != l``?"

* ``"ball"``: ``(y, R^d)``;  ``"projection"``: ``(y, R_y)``;  ``"error-region"``: ``(+1, R_+1)`` and ``(-1, R_-1)``.

Pipeline per batch (every stage only sees what the earlier ones left open):

1. forward pass at ``x' = x`` (a misclassified clean point is vulnerable with ``x_adv = x``);
2. a quick PGD with the margin loss (:func:`toyrobust.attacks.pgd`), each candidate re-checked by our own forward
   pass, ball membership and region test;
3. IBP then CROWN bounds (:mod:`.bounds`, batched, in float64 on the model's device): a sub-problem is robust when
   the lower bound of ``l * m`` over the ball exceeds ``tol``, or when every polyhedron of ``R`` misses the ball
   (one row ``a.x <= b`` with ``min_B a.x > b``);
4. for Linf and L1 balls, the MILP of Tjeng et al. (:mod:`.milp`) with the CROWN pre-activation bounds (stable
   neurons need no binary), per-point time limit: infeasible or a dual bound above ``tol`` proves robustness; a
   solution is accepted only when the forward pass confirms it (else a second program asks for ``l * m <= -tol``
   strictly inside the region); a time-out leaves the point unknown.

The tie rule and tolerances (never erring towards "robust"): ``predict`` is +1 when ``m >= 0``. A counterexample
must be adversarial by the model's own forward pass (in its dtype) with that rule, lie in the ball
(``threat.contains``) and lie at least ``1e-9 (1 + |b| + |A||x'|)`` inside a polyhedron of the region; a
certificate needs ``l * m > tol`` on the whole ball, ``tol = max(1e-6, 64 eps_mach(model dtype)) * (1 + max|m|)``
(``max|m|`` from CROWN), which covers HiGHS's feasibility tolerances (1e-6 to 1e-7) and the model's rounding.
Margins within ``tol`` of 0 at the worst point are left unknown.

For L2 balls (and networks whose unstable neurons exceed ``max_binaries``) only stages 1-3 run: sound and
incomplete.

References:
    V. Tjeng, K. Xiao, R. Tedrake, "Evaluating robustness of neural networks with mixed integer programming",
    ICLR 2019. H. Zhang et al., CROWN, NeurIPS 2018. S. Gowal et al., IBP, 2018.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..classifiers import margin_from_logits
from ..threats import L1, L2, Linf, ThreatModel
from .bounds import InputBall, LayerBounds, crown_bounds, ibp_bounds
from .milp import build_milp, solve_milp
from .network import ReluNetwork, extract_network

__all__ = ["VerificationResult", "DistanceResult", "verify", "minimal_distance"]

DEFINITIONS = ("ball", "projection", "error-region")
METHODS = ("auto", "milp", "bounds")
Polys = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class VerificationResult:
    """Per-point verdicts of :func:`verify`.

    Attributes:
        robust: bool (N,): no adversarial point in the ball (proven).
        vulnerable: bool (N,): ``x_adv`` is adversarial (checked by a forward pass).
        x_adv: (N, d) counterexamples (``x`` where none), on x's device and dtype.
        lower_bound: float64 (N,): a proven lower bound on ``min l * m(x')`` over the ball (and region), the
            minimum over the point's sub-problems (+inf when the region misses the ball).
        status: ``"robust"``, ``"vulnerable"`` or ``"unknown"`` per point.
        decided_by: the stage that decided (``"clean"``, ``"pgd"``, ``"ibp"``, ``"crown"``, ``"region"``,
            ``"milp"``) or why not (``"timeout"``, ``"too-large"``, ``"incomplete"``, ``"boundary"``).
        stats: counts and seconds (see :func:`verify`).
    """

    robust: torch.Tensor
    vulnerable: torch.Tensor
    x_adv: torch.Tensor
    lower_bound: torch.Tensor
    status: list[str]
    decided_by: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def unknown(self) -> torch.Tensor:
        """bool (N,): neither robust nor vulnerable."""
        return ~(self.robust | self.vulnerable)

    def counts(self) -> dict[str, int]:
        """``{"robust": ..., "vulnerable": ..., "unknown": ...}``."""
        return {"robust": int(self.robust.sum()), "vulnerable": int(self.vulnerable.sum()),
                "unknown": int(self.unknown.sum())}


@dataclass
class DistanceResult:
    """Per-point minimal adversarial distances of :func:`minimal_distance`.

    Attributes:
        distance: float64 (N,): the exact infimum of ``||x' - x||`` over adversarial ``x'`` (HiGHS optimum), 0 for
            a misclassified point, ``inf`` when nothing within ``max_eps`` (then ``lower = max_eps``), NaN when the
            solver stopped first.
        lower, upper: proven bracket (dual bound, primal value).
        x_adv: (N, d) minimisers (on the decision boundary: with ``y = +1`` a point with ``m = 0`` still predicts
            +1 by the tie rule, so the infimum is not attained); ``x`` where none.
        status: ``"optimal"``, ``"misclassified"``, ``"beyond-max-eps"`` or ``"timeout"``.
    """

    distance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    x_adv: torch.Tensor
    status: list[str]


# ----------------------------------------------------------------------------------------------------- checks


def _check_x(x: Any, net: ReluNetwork) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != net.dim:
        raise ValueError(f"x must have shape (N, {net.dim}) for this model, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    return x.detach()


def _check_y(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match x, got {arr.shape}")
    if n and not np.all((arr == 1) | (arr == -1)):
        raise ValueError(f"y must contain only the labels -1 and +1, got values {np.unique(arr)[:5]}")
    return arr.astype(np.int64)


def _check_threat(threat: Any, d: int) -> tuple[float, float, np.ndarray]:
    if not isinstance(threat, (Linf, L1, L2)):
        raise TypeError(f"threat must be a toyrobust Linf, L1 or L2 threat model, got {type(threat).__name__}")
    eps = threat.radius
    if not math.isfinite(eps):
        raise ValueError(f"threat eps must be finite, got {eps!r}")
    mask = np.zeros(d, dtype=bool)
    mask[threat.coord_indices(d)] = True
    return eps, float(threat.p), mask


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _regions(region: Any, definition: str, d: int) -> dict[int, Polys] | None:
    if definition == "ball":
        if region is not None:
            raise ValueError("region is only used by definition='projection' or 'error-region'; got a region with "
                             "definition='ball'")
        return None
    if not callable(region):
        raise TypeError(f"definition {definition!r} needs region: a callable label -> list of (A, b), got "
                        f"{type(region).__name__}")
    out: dict[int, Polys] = {}
    for label in (-1, 1):
        pieces = region(label)
        polys: Polys = []
        for piece in pieces:
            A, b = piece
            A = np.atleast_2d(np.asarray(A, dtype=np.float64))
            b = np.asarray(b, dtype=np.float64).reshape(-1)
            if A.ndim != 2 or A.shape[1] != d or b.shape != (A.shape[0],):
                raise ValueError(f"region({label}) must give pairs (A, b) with A of shape (m, {d}) and b of shape "
                                 f"(m,), got A {A.shape} and b {b.shape}")
            if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
                raise ValueError(f"region({label}) must hold finite numbers")
            polys.append((A, b))
        out[label] = polys
    return out


# ------------------------------------------------------------------------------------------------ forward pass


def _param(model: torch.nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def _model_margin(model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The model's own margin at z, in the model's dtype and on its device."""
    p = _param(model)
    if p is not None:
        z = z.to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        return margin_from_logits(model(z))


def _in_region(z: np.ndarray, polys: Polys | None) -> np.ndarray:
    """bool (N,): z strictly inside (by 1e-9 (1 + |b| + |A||z|)) some polyhedron; all True without a region."""
    if polys is None:
        return np.ones(z.shape[0], dtype=bool)
    inside = np.zeros(z.shape[0], dtype=bool)
    for A, b in polys:
        slack = 1e-9 * (1 + np.abs(b)[None, :] + np.abs(z) @ np.abs(A).T)
        inside |= np.all(z @ A.T <= b[None, :] - slack, axis=1)
    return inside


def _confirm(model, threat, z, x0, labels: np.ndarray, polys: Polys | None) -> np.ndarray:
    """bool (N,): z in the ball around x0, strictly in the region, and ``predict(z) != label`` by a forward pass."""
    if z.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    m = _model_margin(model, z)
    pred = np.where(m.detach().cpu().numpy() >= 0, 1, -1)
    in_ball = threat.contains(z, x0).cpu().numpy()
    zz = z.detach().to("cpu", torch.float64).numpy()
    return (pred != labels) & in_ball & _in_region(zz, polys)


def _into_ball(z: np.ndarray, x0: torch.Tensor, eps: float, p: float, mask: np.ndarray) -> torch.Tensor:
    """A solver point pulled exactly into the ball (solver tolerances), in x0's dtype and device."""
    c = x0.detach().to("cpu", torch.float64).numpy()
    delta = np.where(mask, z - c, 0.0)
    if p == math.inf:
        delta = np.clip(delta, -eps, eps)
    else:
        n1 = np.abs(delta).sum()
        if n1 > eps:
            delta *= eps / n1
    out = torch.as_tensor(c + delta, dtype=x0.dtype, device=x0.device)
    return out


# ------------------------------------------------------------------------------------------------------ verify


def _pgd(model, x, labels, threat, steps, restarts, generator) -> torch.Tensor:
    from ..attacks import pgd

    p = _param(model)
    xm = x if p is None else x.to(device=p.device, dtype=p.dtype)
    res = pgd(model, xm, torch.as_tensor(labels, device=xm.device), threat, steps=steps, restarts=restarts,
              loss="margin", generator=generator)
    return res.x_adv.to(device=x.device, dtype=x.dtype)


def verify(model: Any, x: torch.Tensor, y: Any, threat: ThreatModel, *, definition: str = "ball",
           region: Any = None, time_limit: float = 5.0, method: str = "auto", max_binaries: int = 2000,
           pgd_steps: int = 40, pgd_restarts: int = 2, generator: Any = 0,
           atol: float | None = None) -> VerificationResult:
    """Verify a ReLU network on N points: robust (proven), vulnerable (counterexample) or unknown.

    Decides, per point, whether some ``x'`` in the ball ``{||x' - x||_p <= eps}`` (on ``threat.coords``) is
    adversarial under ``definition`` -- see the module docstring for the sub-problems, the pipeline and the
    tolerances. Complete for Linf and L1 (mixed-integer programming, Tjeng et al. 2019) up to the time limit;
    for L2 a sound certificate only (IBP and CROWN) plus attacks.

    Args:
        model: a ReLU network (``nn.Sequential`` of Linear/ReLU/Flatten/Identity, eval-mode BatchNorm1d/Dropout,
            toyrobust's ``MLP`` or ``LinearModel``), one logit or two (column 1 is label +1).
        x: (N, d) points (any float dtype; ``x_adv`` keeps it).
        y: (N,) labels in {-1, +1}.
        threat: ``Linf``, ``L1`` or ``L2`` (numeric eps, optional coords).
        definition: ``"ball"``, ``"projection"`` or ``"error-region"``.
        region: for the latter two, ``region(label) -> [(A, b), ...]``: the closure of ``R_label`` as a union of
            polyhedra ``{A z <= b}`` (see :mod:`toyrobust.verification.regions`).
        time_limit: seconds of MILP per point (shared by its sub-problems).
        method: ``"auto"`` (MILP for Linf/L1 when the point's unstable neurons are at most ``max_binaries``),
            ``"milp"`` (always for Linf/L1; L2 raises) or ``"bounds"`` (no MILP: sound, incomplete).
        max_binaries: the cap on unstable neurons for ``"auto"``.
        pgd_steps, pgd_restarts: the PGD pre-pass (``pgd_steps=0`` skips it).
        generator: seed or torch.Generator for PGD's random starts.
        atol: the certification margin ``tol`` (None: see the module docstring).

    Returns:
        :class:`VerificationResult`; ``stats`` holds ``n_points``, ``hidden_neurons`` (per point), the mean
        number of unstable neurons per point under IBP and under CROWN, ``milp_calls``, ``binaries`` (total over
        the programs solved), ``binaries_naive`` (what every-ReLU-a-binary would have used), and ``seconds`` per
        stage.
    """
    net = extract_network(model)
    x = _check_x(x, net)
    n, d = x.shape
    yl = _check_y(y, n)
    eps, p, mask = _check_threat(threat, d)
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "milp" and p == 2:
        raise ValueError("method='milp' needs an Linf or L1 threat (the L2 ball is not polyhedral); got L2: use "
                         "method='auto' or 'bounds' for the certificate")
    time_limit = _check_positive("time_limit", time_limit)
    if atol is not None:
        atol = _check_positive("atol", atol)
    if isinstance(max_binaries, bool) or not isinstance(max_binaries, int) or max_binaries < 0:
        raise ValueError(f"max_binaries must be an int >= 0, got {max_binaries!r}")
    regs = _regions(region, definition, d)
    # sub-problems: (label, polys) per point
    if definition == "ball":
        subs = [[(int(yl[i]), None)] for i in range(n)]
    elif definition == "projection":
        subs = [[(int(yl[i]), regs[int(yl[i])])] for i in range(n)]
    else:
        subs = [[(1, regs[1]), (-1, regs[-1])] for _ in range(n)]
    # per sub-problem state: None (open), True (robust), or a counterexample tensor
    state: list[list[Any]] = [[None] * len(s) for s in subs]
    how: list[list[str]] = [[""] * len(s) for s in subs]
    lower = np.full((n, 2), -math.inf)
    seconds = {"forward": 0.0, "pgd": 0.0, "bounds": 0.0, "milp": 0.0}
    p_model = _param(model)
    mdtype = p_model.dtype if p_model is not None else torch.float64
    rel = atol if atol is not None else max(1e-6, 64 * torch.finfo(mdtype).eps)

    def open_items() -> list[tuple[int, int]]:
        return [(i, k) for i in range(n) for k in range(len(subs[i])) if state[i][k] is None
                and not any(isinstance(s, torch.Tensor) for s in state[i])]

    def confirm_batch(items, zs) -> None:
        # group by sub-problem kind so the region test is vectorised
        groups: dict[tuple[int, int], list[int]] = {}
        for j, (i, k) in enumerate(items):
            groups.setdefault((k, subs[i][k][0]), []).append(j)
        for (k, lab), js in groups.items():
            rows = [items[j][0] for j in js]
            polys = subs[rows[0]][k][1]
            ok = _confirm(model, threat, zs[js], x[rows], np.full(len(rows), lab), polys)
            for j, good in zip(js, ok):
                if good:
                    i, kk = items[j]
                    state[i][kk] = zs[j]

    # 1. clean points
    t0 = time.perf_counter()
    items = open_items()
    if items:
        confirm_batch(items, x[[i for i, _ in items]])
        for i, k in items:
            if isinstance(state[i][k], torch.Tensor):
                how[i][k] = "clean"
    seconds["forward"] = time.perf_counter() - t0
    # 2. PGD
    t0 = time.perf_counter()
    if pgd_steps > 0 and eps > 0:
        items = open_items()
        by_label: dict[int, list[tuple[int, int]]] = {}
        for i, k in items:
            by_label.setdefault(subs[i][k][0], []).append((i, k))
        for lab, its in by_label.items():
            rows = [i for i, _ in its]
            z = _pgd(model, x[rows], np.full(len(rows), lab), threat, pgd_steps, pgd_restarts, generator)
            confirm_batch(its, z.to(dtype=x.dtype, device=x.device))
            for i, k in its:
                if isinstance(state[i][k], torch.Tensor):
                    how[i][k] = "pgd"
    seconds["pgd"] = time.perf_counter() - t0
    # 3. bounds on all points still open
    t0 = time.perf_counter()
    items = open_items()
    rows_open = sorted({i for i, _ in items})
    stats: dict[str, Any] = {"n_points": n, "hidden_neurons": sum(net.hidden_sizes), "milp_calls": 0,
                             "binaries": 0, "binaries_naive": 0, "unstable_ibp_mean": float("nan"),
                             "unstable_crown_mean": float("nan"), "tol_rel": rel}
    crown: LayerBounds | None = None
    row_pos: dict[int, int] = {}
    tols = np.zeros(n)
    if rows_open:
        row_pos = {i: j for j, i in enumerate(rows_open)}
        xb = x[rows_open].to(device=net.device, dtype=torch.float64)
        ball = InputBall(xb, eps, p, torch.as_tensor(mask, device=net.device))
        ibp = ibp_bounds(net, ball)
        crown = crown_bounds(net, ball, ibp=ibp)
        if net.hidden_sizes:
            stats["unstable_ibp_mean"] = float(sum(u.sum(1) for u in ibp.unstable()).double().mean())
            stats["unstable_crown_mean"] = float(sum(u.sum(1) for u in crown.unstable()).double().mean())
        ml, mu = (t.cpu().numpy() for t in crown.margin())
        il, iu = (t.cpu().numpy() for t in ibp.margin())
        scale = 1 + np.maximum(np.abs(ml), np.abs(mu))
        for i, k in items:
            j = row_pos[i]
            tols[i] = rel * scale[j]
            lab, polys = subs[i][k]
            lb_c = ml[j] if lab > 0 else -mu[j]
            lb_i = il[j] if lab > 0 else -iu[j]
            lower[i, k] = lb_c
            if polys is not None and _region_misses(polys, xb[j].cpu().numpy(), eps, p, mask):
                state[i][k], how[i][k], lower[i, k] = True, "region", math.inf
            elif lb_c > tols[i]:
                state[i][k], how[i][k] = True, "ibp" if lb_i > tols[i] else "crown"
    seconds["bounds"] = time.perf_counter() - t0
    # 4. MILP
    t0 = time.perf_counter()
    items = open_items()
    if items and p != 2 and method != "bounds":
        weights = [w.cpu().numpy() for w in net.weights]
        biases = [b.cpu().numpy() for b in net.biases]
        deadline: dict[int, float] = {}
        for i, k in items:
            if any(isinstance(s, torch.Tensor) for s in state[i]):
                continue  # already vulnerable through another sub-problem
            j = row_pos[i]
            lo = [t[j].cpu().numpy() for t in crown.lower[:-1]]
            up = [t[j].cpu().numpy() for t in crown.upper[:-1]]
            n_unst = int(sum(((a < 0) & (b > 0)).sum() for a, b in zip(lo, up)))
            if method == "auto" and n_unst > max_binaries:
                how[i][k] = "too-large"
                continue
            deadline.setdefault(i, time.perf_counter() + time_limit)
            lab, polys = subs[i][k]
            x0 = x[i].detach().to("cpu", torch.float64).numpy()
            verdict, lb, z = _milp_subproblem(weights, biases, x0, eps, p, mask, lo, up, lab, polys, tols[i],
                                              deadline[i], stats)
            lower[i, k] = max(lower[i, k], lb)
            if verdict == "robust":
                state[i][k], how[i][k] = True, "milp"
            elif z is not None:
                zt = _into_ball(z, x[i], eps, p, mask)[None, :]
                if _confirm(model, threat, zt, x[i:i + 1], np.array([lab]), polys)[0]:
                    state[i][k], how[i][k] = zt[0], "milp"
                else:
                    z2 = _milp_counterexample(weights, biases, x0, eps, p, mask, lo, up, lab, polys, tols[i],
                                              deadline[i], stats)
                    if z2 is not None:
                        zt = _into_ball(z2, x[i], eps, p, mask)[None, :]
                        if _confirm(model, threat, zt, x[i:i + 1], np.array([lab]), polys)[0]:
                            state[i][k], how[i][k] = zt[0], "milp"
                    if state[i][k] is None:
                        how[i][k] = "boundary"
            else:
                how[i][k] = verdict
    seconds["milp"] = time.perf_counter() - t0
    stats["seconds"] = seconds
    # combine
    robust = np.zeros(n, dtype=bool)
    vulnerable = np.zeros(n, dtype=bool)
    x_adv = x.clone()
    status, decided = [], []
    for i in range(n):
        adv = [(s, h) for s, h in zip(state[i], how[i]) if isinstance(s, torch.Tensor)]
        if adv:
            vulnerable[i] = True
            x_adv[i] = adv[0][0].to(dtype=x.dtype, device=x.device)
            status.append("vulnerable")
            decided.append(adv[0][1])
        elif all(s is True for s in state[i]):
            robust[i] = True
            status.append("robust")
            order = ["milp", "crown", "ibp", "region"]
            decided.append(min((h for h in how[i]), key=lambda h: order.index(h) if h in order else 9))
        else:
            status.append("unknown")
            reasons = [h for s, h in zip(state[i], how[i]) if s is None]
            decided.append(reasons[0] if reasons and reasons[0] else "incomplete")
    lb = np.array([min(lower[i, : len(subs[i])]) for i in range(n)]) if n else np.zeros(0)
    return VerificationResult(
        robust=torch.as_tensor(robust, device=x.device), vulnerable=torch.as_tensor(vulnerable, device=x.device),
        x_adv=x_adv, lower_bound=torch.as_tensor(lb, dtype=torch.float64), status=status, decided_by=decided,
        stats=stats)


def _region_misses(polys: Polys, x0: np.ndarray, eps: float, p: float, mask: np.ndarray) -> bool:
    """True when every polyhedron has a row ``a.z <= b`` violated on the whole ball (``min_B a.z > b``)."""
    q = {math.inf: 1, 1: math.inf, 2: 2}[p]
    for A, b in polys:
        dual = np.linalg.norm(A * mask[None, :], ord=q, axis=1)
        if not np.any(A @ x0 - eps * dual > b + 1e-12 * (1 + np.abs(b))):
            return False
    return True


def _milp_subproblem(weights, biases, x0, eps, p, mask, lo, up, lab, polys, tol, deadline, stats):
    """``min lab * m`` over ball ∩ region with the cut ``lab * m <= tol``: (verdict, lower bound, point)."""
    prob = build_milp(weights, biases, x0, eps, p, mask, lo, up, label=lab, cut=tol, region=polys)
    if prob is None:
        return "robust", math.inf, None
    stats["milp_calls"] += 1
    stats["binaries"] += prob.n_binary
    stats["binaries_naive"] += sum(w.shape[0] for w in weights[:-1])
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return "timeout", -math.inf, None
    out = solve_milp(prob, remaining)
    if out.status == "infeasible":
        return "robust", tol, None
    if out.dual_bound > tol:
        return "robust", out.dual_bound, None
    if out.x is not None:
        return "candidate", out.dual_bound, out.x
    return ("timeout" if out.status == "time_limit" else "error"), out.dual_bound, None


def _milp_counterexample(weights, biases, x0, eps, p, mask, lo, up, lab, polys, tol, deadline, stats):
    """A point with ``lab * m <= -tol`` strictly inside the region, or None."""
    prob = build_milp(weights, biases, x0, eps, p, mask, lo, up, label=lab, cut=-2 * tol, region=polys,
                      shrink=1e-6)
    if prob is None:
        return None
    stats["milp_calls"] += 1
    stats["binaries"] += prob.n_binary
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return None
    out = solve_milp(prob, remaining)
    return out.x


# --------------------------------------------------------------------------------------------- minimal distance


def minimal_distance(model: Any, x: torch.Tensor, y: Any, norm: str = "linf", *, max_eps: float | None = None,
                     time_limit: float = 10.0, coords: Any = None, generator: Any = 0) -> DistanceResult:
    """The exact minimal adversarial distance ``inf {||x' - x||_p : predict(x') != y}`` by MILP, p = inf or 1.

    ``min e`` subject to the network's MILP encoding (Tjeng et al. 2019), ``|x'_i - x_i| <= e`` (Linf) or
    ``sum_i |x'_i - x_i| <= e`` (L1), and ``y m(x') <= 0`` (the closure of the adversarial set, so the optimum is
    the infimum). The search box has radius ``max_eps``; None means the norm of the first counterexample PGD
    finds with radii 2^k / 16 (k = 0..24), whose own distance is an upper bound. Pre-activation bounds come from
    CROWN over that box.

    Args:
        model: a ReLU network (see :func:`verify`).
        x: (N, d) points; y: (N,) labels in {-1, +1}.
        norm: ``"linf"`` or ``"l1"``.
        max_eps: the largest radius searched (None: found by PGD as above).
        time_limit: seconds of MILP per point.
        coords: perturb only these coordinates (as in the threat models).
        generator: seed or torch.Generator for PGD.

    Returns:
        :class:`DistanceResult`.
    """
    net = extract_network(model)
    x = _check_x(x, net)
    n, d = x.shape
    yl = _check_y(y, n)
    if norm not in ("linf", "l1"):
        raise ValueError(f"norm must be 'linf' or 'l1', got {norm!r}")
    cls = Linf if norm == "linf" else L1
    time_limit = _check_positive("time_limit", time_limit)
    if max_eps is not None:
        max_eps = _check_positive("max_eps", max_eps)
    dist = np.full(n, math.nan)
    lo_d, up_d = np.zeros(n), np.full(n, math.inf)
    x_adv = x.clone()
    status = ["timeout"] * n
    m0 = _model_margin(model, x).cpu().numpy()
    pred = np.where(m0 >= 0, 1, -1)
    radius = np.full(n, math.nan)
    for i in np.flatnonzero(pred != yl):
        dist[i], lo_d[i], up_d[i], status[i] = 0.0, 0.0, 0.0, "misclassified"
    todo = [i for i in range(n) if status[i] != "misclassified"]
    if max_eps is not None:
        radius[todo] = max_eps
    else:
        left = list(todo)
        for k in range(25):
            if not left:
                break
            threat = cls(2.0 ** k / 16, coords=coords)
            z = _pgd(model, x[left], yl[left], threat, 40, 1, generator).to(dtype=x.dtype, device=x.device)
            ok = _confirm(model, threat, z, x[left], yl[left], None)
            delta = (z - x[left]).detach().to("cpu", torch.float64)
            nrm = delta.abs().amax(1) if norm == "linf" else delta.abs().sum(1)
            for j in np.flatnonzero(ok):
                i = left[j]
                # shorten along the segment x -> z: the last sign change found by bisection
                t = _segment_crossing(model, x[i], z[j], int(yl[i]))
                radius[i] = float(nrm[j]) * t * (1 + 1e-9) + 1e-12
            left = [i for j, i in enumerate(left) if not ok[j]]
        for i in left:
            status[i] = "beyond-max-eps"
            dist[i], lo_d[i] = math.inf, 2.0 ** 24 / 16
    todo = [i for i in todo if math.isfinite(radius[i])]
    if todo:
        mask = np.zeros(d, dtype=bool)
        mask[cls(1.0, coords=coords).coord_indices(d)] = True
        p = math.inf if norm == "linf" else 1.0
        xb = x[todo].to(device=net.device, dtype=torch.float64)
        weights = [w.cpu().numpy() for w in net.weights]
        biases = [b.cpu().numpy() for b in net.biases]
        tmask = torch.as_tensor(mask, device=net.device)
        r_lo = _certified_radius(net, xb, yl[todo], radius[todo], p, tmask)
        for j, i in enumerate(todo):
            ball = InputBall(xb[j:j + 1], float(radius[i]), p, tmask)
            cb = crown_bounds(net, ball)
            lo = [t[0].cpu().numpy() for t in cb.lower[:-1]]
            up = [t[0].cpu().numpy() for t in cb.upper[:-1]]
            x0 = xb[j].cpu().numpy()
            prob = build_milp(weights, biases, x0, float(radius[i]), p, mask, lo, up, label=int(yl[i]),
                              objective="distance", min_distance=float(r_lo[j]))
            out = solve_milp(prob, time_limit)
            if out.status == "infeasible":
                status[i], dist[i], lo_d[i] = "beyond-max-eps", math.inf, float(radius[i])
                continue
            lo_d[i] = max(out.dual_bound, 0.0)
            if out.x is not None:
                up_d[i] = out.value
                x_adv[i] = torch.as_tensor(out.x, dtype=x.dtype, device=x.device)
            if out.status == "optimal":
                status[i], dist[i] = "optimal", out.value
    return DistanceResult(dist, lo_d, up_d, x_adv, status)


def _segment_crossing(model: Any, x0: torch.Tensor, z: torch.Tensor, label: int, iters: int = 40) -> float:
    """The smallest ``t`` in (0, 1] found by bisection with ``x0 + t (z - x0)`` adversarial (z is adversarial)."""
    ts = torch.linspace(0, 1, 65, dtype=torch.float64)[1:]
    pts = x0[None, :] + ts.to(x0)[:, None] * (z - x0)[None, :]
    pred = np.where(_model_margin(model, pts).cpu().numpy() >= 0, 1, -1)
    first = int(np.flatnonzero(pred != label)[0])
    hi = float(ts[first])
    lo = float(ts[first - 1]) if first > 0 else 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        m = _model_margin(model, (x0 + mid * (z - x0))[None, :]).cpu().numpy()[0]
        if (1 if m >= 0 else -1) != label:
            hi = mid
        else:
            lo = mid
    return hi


def _certified_radius(net: ReluNetwork, xb: torch.Tensor, labels: np.ndarray, r_hi: np.ndarray, p: float,
                      mask: torch.Tensor, iters: int = 12) -> np.ndarray:
    """A radius below which CROWN proves ``label * m > 0`` (bisection, batched); a lower bound on the distance."""
    lab = torch.as_tensor(labels, dtype=torch.float64, device=xb.device)
    lo = torch.zeros(xb.shape[0], dtype=torch.float64, device=xb.device)
    hi = torch.as_tensor(r_hi, dtype=torch.float64, device=xb.device)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ball = InputBall(xb, mid[:, None], p, mask)
        ml, mu = crown_bounds(net, ball).margin()
        ok = torch.where(lab > 0, ml, -mu) > 0
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return lo.cpu().numpy() * (1 - 1e-9)
