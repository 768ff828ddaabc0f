"""Training throughput of ``toyrobust.train`` against a bare torch loop on Gilmer et al.'s MLP.

Both loops train the same model (500 -> 1000 -> 1000 -> 1 ReLU, batch norm, same initial weights) with Adam on
fresh samples of the concentric spheres (D = 500, radii 1 and 1.3), same batch size, same logistic loss; the
bare loop is the textbook ``sample / zero_grad / forward / backward / step``. ``train`` runs without
periodic evaluation or checkpoints (``eval_every=0, eval_n=0``), so the ratio measures its bookkeeping
overhead (target >= 0.9). Runs alternate (bare, train, bare, train, ...) and the median ratio is reported, in
wall time and (on CPU) in process CPU time, which other jobs on a shared machine disturb less.

    python benchmarks/bench_training.py [--device cpu|cuda] [--quick] [--steps N] [--batch-size B] [--repeats R]
        [--threads T] [--no-batch-norm]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import toyrobust as tr
from toyrobust.models import MLP
from toyrobust.training import train


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: torch.nn.Module, dist, steps: int, batch_size: int, device: torch.device,
              seed: int) -> tuple[float, float]:
    """(wall, process CPU) seconds for ``steps`` plain training steps."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        x, y = dist.sample(batch_size, generator=gen, device=device)
        opt.zero_grad(set_to_none=True)
        loss = F.softplus(-y.to(x.dtype) * model(x)).mean()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def toyrobust_loop(model: torch.nn.Module, dist, steps: int, batch_size: int, device: torch.device,
                   seed: int) -> tuple[float, float]:
    """(wall, process CPU) seconds for the same steps through ``toyrobust.train`` (the whole call)."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    train(model, dist, steps=steps, batch_size=batch_size, lr=1e-3, seed=seed, device=device, eval_every=0,
          eval_n=0, progress=False)
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (CUDA when available)")
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-batch-norm", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = tr.rng.resolve_device(args.device)
    steps = args.steps or (20 if args.quick else (200 if device.type == "cpu" else 2000))
    batch = args.batch_size or (128 if device.type == "cpu" else 512)
    repeats = args.repeats or (2 if args.quick else 5)
    dist = tr.ConcentricSpheres(500, 1.0, 1.3)
    bn = not args.no_batch_norm

    def fresh() -> MLP:
        return MLP(500, (1000, 1000), batch_norm=bn, seed=0, device=device)

    # warm-up (allocator, kernels, lazy imports)
    bare_loop(fresh(), dist, 3, batch, device, 0)
    toyrobust_loop(fresh(), dist, 3, batch, device, 0)
    bare, ours = [], []
    for r in range(repeats):
        bare.append(bare_loop(fresh(), dist, steps, batch, device, r))
        ours.append(toyrobust_loop(fresh(), dist, steps, batch, device, r))
    ratios = [b[0] / o[0] for b, o in zip(bare, ours, strict=True)]
    cpu_ratios = [b[1] / o[1] for b, o in zip(bare, ours, strict=True)]
    out = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_norm": bn,
        "steps": steps,
        "batch_size": batch,
        "bare_samples_per_s": steps * batch / statistics.median(b[0] for b in bare),
        "train_samples_per_s": steps * batch / statistics.median(o[0] for o in ours),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
    }
    print(f"Gilmer MLP 500-1000-1000-1 (batch norm {bn}), {device}, {torch.get_num_threads()} threads, "
          f"batch {batch}, {steps} steps x {repeats} repeats")
    print(f"  bare torch loop : {out['bare_samples_per_s']:10.0f} samples/s")
    print(f"  toyrobust.train : {out['train_samples_per_s']:10.0f} samples/s")
    print(f"  ratio train/bare: {out['ratio_median']:.3f} (median; per repeat "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.9)")
    if device.type == "cpu":
        print(f"  ratio in process CPU time (robust to other load on a shared machine): "
              f"{out['cpu_ratio_median']:.3f} (per repeat {', '.join(f'{r:.3f}' for r in cpu_ratios)})")
    return out


if __name__ == "__main__":
    main()
