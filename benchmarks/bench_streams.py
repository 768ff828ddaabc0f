"""Sampling throughput: the counter-based stream (toyrobust.rng.CounterStream) against torch.randn, same shapes.

``estimate_risk`` draws its points from a counter-based stream so that the points do not depend on the chunk size
and any range can be drawn directly (the module docstring of :mod:`toyrobust.rng`). This measures what that costs
against the plain generator draw it replaced: (N, 500) standard normals in float32 and float64, N = 8192 on a
CPU (the default chunk) and 2^20 on a GPU (device-sized chunks), the stream's default backend (numpy on a CPU,
Triton on CUDA when installed, else torch) and, for reference, its torch backend, against
``torch.randn(N, 500, generator=g)`` on the same device. Runs alternate (baseline, ours, ...) so that load from
other processes hits both alike; medians are reported. A CUDA run synchronises before every clock read.

Prints one JSON object (``rows``: metric, ours, baseline, ratio, target, met); ``--json PATH`` also writes it.
Target: ratio (ours / randn, in normals per second) >= 0.9 for the default backend in float32 (torch's default
dtype); float64 (two 53-bit words per normal pair) and the torch backend are reported for information.

    python benchmarks/bench_streams.py [--device cpu|cuda|auto] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from toyrobust.rng import CounterStream, resolve_device

DIM = 500


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(device: torch.device, n: int, dtype: torch.dtype, backend: str, repeats: int) -> dict:
    """Median seconds of ``repeats`` draws of (n, DIM) normals: the stream (consecutive row ranges) and randn."""
    stream = CounterStream(1, 0, device=device, backend=backend)
    gen = torch.Generator(device=device).manual_seed(1)
    start = [0]

    def ours():
        stream.rows(start[0], n).normal(DIM, dtype)
        start[0] += n

    def base():
        torch.randn(n, DIM, generator=gen, device=device, dtype=dtype)

    ours()  # warm-up: scratch buffers, kernel compilation
    base()
    t_ours, t_base = [], []
    for _ in range(repeats):
        t_base.append(_time(base, device))
        t_ours.append(_time(ours, device))
    return {"backend": stream.backend, "ours_s": statistics.median(t_ours), "randn_s": statistics.median(t_base),
            "n": n}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: CUDA when available)")
    ap.add_argument("--quick", action="store_true", help="5 repeats instead of 15")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the JSON object to PATH")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    n = 8192 if device.type == "cpu" else 1 << 20
    repeats = 5 if args.quick else 15
    rows, runs = [], {}
    for dtype in (torch.float32, torch.float64):
        for backend in ("auto", "torch"):
            r = measure(device, n, dtype, backend, repeats)
            name = str(dtype).replace("torch.", "")
            runs[f"{name} {r['backend']}"] = r
            rate, base = n * DIM / r["ours_s"], n * DIM / r["randn_s"]
            # the target is for the default backend in torch's default dtype; the rest is for information
            default = backend == "auto" and dtype == torch.float32
            rows.append({"metric": f"{name} normals/s, ({n}, {DIM}), stream backend {r['backend']}"
                                   f"{'' if backend == 'auto' else ' (reference)'} vs torch.randn",
                         "ours": rate, "baseline": base, "ratio": rate / base,
                         "target": ">= 0.9" if default else "-", "met": (rate / base >= 0.9) if default else None})
    result = {"benchmark": "streams", "device": str(device), "torch_threads": torch.get_num_threads(),
              "repeats": repeats, "runs": runs, "rows": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
