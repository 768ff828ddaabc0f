"""Time to estimate a ball-definition adversarial risk near 0.5 to +-0.01 (95%): estimate_risk against a plain loop.

Setting: the robust/non-robust features model (seed 003, D = 500), a Gilmer-style MLP 500 -> 1000 -> 1000 -> 1
briefly trained on fresh samples (standard risk about 1%), and an Linf radius calibrated so that the adversarial
risk is about 0.5. Both sides spend the same attack budget per point (Linf PGD, 20 steps, the same step size,
one uniform random start) and stop once the Clopper-Pearson 95% interval is at most 0.02 wide.

* ours: ``tr.estimate_risk(..., attack="pgd", target_width=0.02)``: streamed chunks sized from the running
  estimate, per-sample early stopping inside PGD.
* reference: a plain loop of fixed chunks around torchattacks' PGD (cross-entropy on two logits) when torchattacks
  is importable. torchattacks clamps to [0, 1], so the data are shifted into the box (u = 1/2 + x / 16, model and
  radii rescaled to match; no coordinate of the sample reaches the box's faces). Without torchattacks the
  reference is a plain PGD loop written here (no early stopping, fixed chunks); the output says which.

A third line runs ours with ``early_stop=False`` to show where the gain comes from.

    python benchmarks/bench_estimate.py [--device cpu|cuda|auto] [--quick] [--half-width H]

On a GPU the default half-width is 0.002 (issue 11's GPU workload, about 2.5 x 10^5 points) and ours runs with the
library's device-sized chunks; the reference keeps its fixed 4096-point chunks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toyrobust as tr  # noqa: E402
from toyrobust.montecarlo import clopper_pearson  # noqa: E402
from toyrobust.rng import resolve_device  # noqa: E402

BOX = 16.0  # u = 1/2 + x / BOX maps |x_i| <= 8 into [0, 1]


def gilmer_mlp(dim: int, hidden: int, gen: torch.Generator) -> torch.nn.Sequential:
    model = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    with torch.no_grad():
        for p in model.parameters():
            bound = 1 / p.shape[-1] ** 0.5 if p.ndim == 2 else 0.05
            p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=gen))
    return model


def train(model, dist, device, steps, batch=256, seed=0):
    """Adam on the logistic loss of the one-logit margin, fresh samples every step."""
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x, y = dist.sample(batch, generator=gen, device=device)
        loss = torch.nn.functional.softplus(-y.to(x.dtype) * model(x).squeeze(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class TwoLogitBox(torch.nn.Module):
    """The one-logit model seen through the box map, with logits (-m/2, m/2) (column 1 is label +1)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u):
        m = self.model((u - 0.5) * BOX).squeeze(-1)
        return torch.stack([-m / 2, m / 2], dim=1)


def reference_pgd(model, x, y, eps, alpha, steps, gen):
    """A plain Linf PGD (margin loss, uniform start, no early stopping): the fallback reference."""
    yf = y.to(x.dtype)
    x_adv = x + (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad((-yf * model(x_adv).squeeze(-1)).sum(), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + alpha * g.sign(), x - eps), x + eps)
    return x_adv


def plain_loop(dist, model, eps, alpha, steps, width, chunk, device, seed, use_torchattacks):
    """Fixed chunks, attack, count, stop when the Clopper-Pearson interval is narrow enough."""
    gen = torch.Generator(device=device).manual_seed(seed)
    k = n = 0
    if use_torchattacks:
        import torchattacks

        torch.manual_seed(seed)  # torchattacks draws its random start from the global RNG (script only)
        boxed = TwoLogitBox(model).eval()
        atk = torchattacks.PGD(boxed, eps=eps / BOX, alpha=alpha / BOX, steps=steps, random_start=True)
    t0 = time.perf_counter()
    while True:
        x, y = dist.sample(chunk, generator=gen, device=device)
        if use_torchattacks:
            u = 0.5 + x / BOX
            labels = (y > 0).long()
            u_adv = atk(u, labels)
            with torch.no_grad():
                wrong = boxed(u_adv).argmax(dim=1) != labels
        else:
            x_adv = reference_pgd(model, x, y, eps, alpha, steps, gen)
            with torch.no_grad():
                wrong = torch.where(model(x_adv).squeeze(-1) >= 0, 1, -1) != y
        k += int(wrong.sum())
        n += chunk
        low, high = clopper_pearson(k, n, 0.95)
        if high - low <= width:
            break
    return {"seconds": time.perf_counter() - t0, "n": n, "k": k, "value": k / n, "ci": [low, high]}


def calibrate_eps(dist, model, device, alpha_ratio, steps, n=512, iters=7):
    """Bisection on eps so that the adversarial risk found by PGD on a pilot sample is about 1/2."""
    from toyrobust.attacks import pgd

    x, y = dist.sample(n, generator=torch.Generator(device=device).manual_seed(123), device=device)
    lo, hi = 0.0, 0.5
    for _ in range(iters):
        mid = (lo + hi) / 2
        res = pgd(model, x, y, tr.Linf(mid), steps=steps, step_size=mid * alpha_ratio,
                  generator=torch.Generator(device=device).manual_seed(7))
        lo, hi = (mid, hi) if float(res.success.double().mean()) < 0.5 else (lo, mid)
    return (lo + hi) / 2


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 is steadier on a loaded machine)")
    ap.add_argument("--quick", action="store_true", help="D = 100, hidden 256, +-0.03 (a smoke run)")
    ap.add_argument("--no-torchattacks", action="store_true", help="use the plain reference PGD loop")
    ap.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 3, quick 1)")
    ap.add_argument("--half-width", type=float, default=None,
                    help="target half-width of the 95%% interval (default 0.01 on a CPU, 0.002 on a GPU: about "
                         "2.5e5 points, a workload worth a GPU; 0.03 with --quick)")
    args = ap.parse_args(argv)
    if args.half_width is not None and not 0 < args.half_width <= 0.5:
        ap.error(f"--half-width must be in (0, 0.5], got {args.half_width}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dim, hidden, half_width, train_steps = (100, 256, 0.03, 300) if args.quick else (500, 1000, 0.01, 400)
    if args.half_width is not None:
        half_width = args.half_width
    elif device.type != "cpu" and not args.quick:
        half_width = 0.002
    steps, alpha_ratio, chunk = 20, 0.25, 4096
    # ours: the reference's chunks on a CPU; the library's device-sized chunks on a GPU (that is what it is for)
    ours_chunk = chunk if device.type == "cpu" else None
    try:
        import torchattacks  # noqa: F401

        use_ta = not args.no_torchattacks
    except ImportError:
        use_ta = False

    dist = tr.GaussianMixture.robust_nonrobust(dim)
    model = gilmer_mlp(dim, hidden, torch.Generator().manual_seed(0)).to(device)
    t0 = time.perf_counter()
    train(model, dist, device, train_steps)
    train_s = time.perf_counter() - t0
    std = tr.estimate_risk(dist, model, n=20_000, seed=5)
    eps = calibrate_eps(dist, model, device, alpha_ratio, steps)
    alpha = eps * alpha_ratio
    threat = tr.Linf(eps)
    opts = {"steps": steps, "step_size": alpha, "restarts": 1, "random_start": True}

    # alternate the three runs so that load from other processes hits all alike; compare minima and medians
    runs = {"ours": [], "ours_without_early_stop": [], "reference": []}
    for _ in range(args.repeats or (1 if args.quick else 3)):
        ours = tr.estimate_risk(dist, model, threat, attack="pgd", target_width=2 * half_width, seed=1,
                                chunk_size=ours_chunk, attack_options=opts, progress=False)
        runs["ours"].append(ours.seconds)
        no_es = tr.estimate_risk(dist, model, threat, attack="pgd", target_width=2 * half_width, seed=1,
                                 chunk_size=ours_chunk, attack_options={**opts, "early_stop": False}, progress=False)
        runs["ours_without_early_stop"].append(no_es.seconds)
        ref = plain_loop(dist, model, eps, alpha, steps, 2 * half_width, chunk, device, 1, use_ta)
        runs["reference"].append(ref["seconds"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    low = {k: min(v) for k, v in runs.items()}
    result = {
        "benchmark": "estimate_time",
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "setting": f"GaussianMixture.robust_nonrobust({dim}), MLP {dim}-{hidden}-{hidden}-1 trained {train_steps} "
                   f"Adam steps ({train_s:.1f} s), Linf eps={eps:.4f}, PGD {steps} steps of {alpha:.4f}",
        "standard_risk": [std.value, std.ci_low, std.ci_high],
        "target": f"+-{half_width} at 95% (width {2 * half_width})",
        "ours_chunk_size": ours.chunk_size,
        "reference": "torchattacks.PGD in a plain loop" if use_ta else "plain PGD loop (torchattacks not importable)",
        "ours": {"n": ours.n, "value": ours.value, "ci": [ours.ci_low, ours.ci_high], "grad_evals": ours.grad_evals},
        "ours_without_early_stop": {"n": no_es.n, "value": no_es.value, "grad_evals": no_es.grad_evals},
        "reference_run": {k: v for k, v in ref.items() if k != "seconds"},
        "seconds": runs,
        "speedup_reference_over_ours_median": med["reference"] / med["ours"],
        "speedup_reference_over_ours_min": low["reference"] / low["ours"],
        "speedup_reference_over_ours_without_early_stop_min": low["reference"] / low["ours_without_early_stop"],
        "speedup_target": ">= 1.5",
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
