"""PGD throughput (sample-steps per second) of toyrobust's Linf PGD against a bare attack loop, same model and batch.

Two models: the 2 -> 64 -> 64 -> 1 ReLU network (Tsipras points, batch 4096, 40 steps, Linf 0.3) and the Gilmer-style
MLP 500 -> 1000 -> 1000 -> 1 (ReLU) on the concentric spheres (D = 500, radii 1 and
1.3), batch 4096, 20 steps. The bare loop is the least an Linf PGD must do per step: one forward, one backward to
the input, a sign step and a clamp to the ball. The ratio ours / bare is the target (>= 0.9). toyrobust's PGD runs
with ``early_stop=False`` and no random start so both do the same number of steps on the same points; a second
line reports the default settings (random start, early stopping) for information.

Beyond the bare loop's ``steps`` forward-backward passes, PGD makes two forward passes per call: the last iterate
is evaluated (it may be the first success), and the returned points are re-checked (the success mask is computed
on what is returned, PITFALLS 6). A forward pass costs about a third of a forward-backward one, so the ratio is
capped near ``steps / (steps + 2/3)``: 0.88 at 5 steps, 0.97 at 20. ``--quick`` therefore keeps 20 steps and shrinks
the batch instead.

    python benchmarks/bench_pgd_throughput.py [--device cpu|cuda|auto] [--quick]
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
from toyrobust.rng import resolve_device  # noqa: E402


def gilmer_mlp(dim: int = 500, hidden: int = 1000, seed: int = 0) -> torch.nn.Module:
    """The 500 -> 1000 -> 1000 -> 1 ReLU network of Gilmer et al. 2018 ("Adversarial spheres"), one logit."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    with torch.no_grad():
        for p in model.parameters():  # default-like init from a local generator (the global RNG is left alone)
            bound = 1 / p.shape[-1] ** 0.5 if p.ndim == 2 else 0.05
            p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=gen))
    return model.eval()


def bare_loop(model, x, y, eps, alpha, steps):
    """forward + backward to the input + sign step + clamp, nothing else."""
    x_adv = x.clone()
    lo, hi = x - eps, x + eps
    yf = y.to(x.dtype)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = (-yf * model(x_adv).squeeze(-1)).sum()
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + alpha * g.sign(), lo), hi)
    return x_adv


def timed(fn, device, repeats):
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def small_mlp(seed: int = 0) -> torch.nn.Module:
    """The 2 -> 64 -> 64 -> 1 ReLU network of the cross-check's small cases (issue 20's small-network row)."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 1))
    with torch.no_grad():
        for p in model.parameters():
            bound = 1 / p.shape[-1] ** 0.5 if p.ndim == 2 else 0.05
            p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=gen))
    return model.eval()


def measure(name, model, x, y, eps, alpha, steps, device, repeats) -> dict:
    """Alternating medians of ours (no random start, no early stopping: the bare loop's work) and the bare loop."""
    from toyrobust.attacks import pgd

    for p in model.parameters():
        p.requires_grad_(False)  # same for both; neither needs parameter gradients
    threat = tr.Linf(eps)
    gen = torch.Generator(device=device)

    def ours():
        return pgd(model, x, y, threat, steps=steps, step_size=alpha, restarts=1, random_start=False,
                   early_stop=False, generator=gen.manual_seed(2))

    def bare():
        return bare_loop(model, x, y, eps, alpha, steps)

    # warm up both (allocator, kernels), then alternate so drift hits both alike
    bare()
    ours()
    t_bare, t_ours = [], []
    for _ in range(repeats):
        t_bare += timed(bare, device, 1)
        t_ours += timed(ours, device, 1)
    t_default = timed(lambda: pgd(model, x, y, threat, steps=steps, step_size=alpha, generator=gen.manual_seed(2)),
                      device, 1)
    work = x.shape[0] * steps
    return {"network": name, "batch": x.shape[0], "steps": steps,
            "bare_sample_steps_per_s": work / statistics.median(t_bare),
            "ours_sample_steps_per_s": work / statistics.median(t_ours),
            "ratio_ours_over_bare": statistics.median(t_bare) / statistics.median(t_ours),
            "ratio_ours_over_bare_min": min(t_bare) / min(t_ours),
            "ours_default_settings_seconds": t_default[0], "bare_seconds": t_bare, "ours_seconds": t_ours,
            "target": ">= 0.95"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 is steadier on a loaded machine)")
    ap.add_argument("--quick", action="store_true", help="smaller batches, 2 repeats (a smoke run)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    repeats = args.repeats or (3 if args.quick else 7)
    runs = []
    # issue 20's small network: 2-64-64-1, batch 4096, 40 steps, on Tsipras points
    small = small_mlp().to(device)
    x, y = tr.Tsipras(0.9, 1.0).sample(args.batch or 4096, generator=torch.Generator(device=device).manual_seed(1),
                                       device=device)
    runs.append(measure("2-64-64-1", small, x, y, 0.3, 0.02, args.steps or 40, device, repeats))
    # Gilmer et al.'s network on the spheres
    big = gilmer_mlp().to(device)
    batch = args.batch or (512 if args.quick else 4096)
    x, y = tr.ConcentricSpheres(500, 1.0, 1.3).sample(batch, generator=torch.Generator(device=device).manual_seed(1),
                                                      device=device)
    runs.append(measure("500-1000-1000-1", big, x, y, 0.02, 0.005, args.steps or 20, device, repeats))
    result = {"benchmark": "pgd_throughput", "device": str(device), "torch_threads": torch.get_num_threads(),
              "runs": runs,
              "rows": [{"metric": f"PGD Linf sample-steps/s, {r['network']}, batch {r['batch']}, {r['steps']} steps, "
                                  "vs the bare loop", "ours": r["ours_sample_steps_per_s"],
                        "baseline": r["bare_sample_steps_per_s"], "ratio": r["ratio_ours_over_bare"],
                        "target": ">= 0.95", "met": r["ratio_ours_over_bare"] >= 0.95} for r in runs]}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
