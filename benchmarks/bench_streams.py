"""Sampling throughput: the counter-based stream (toyrobust.rng.CounterStream) against torch.randn, same shapes.

``estimate_risk`` draws its points from a counter-based stream so that the points do not depend on the chunk size
and any range can be drawn directly (the module docstring of :mod:`toyrobust.rng`). This measures what that costs
against the plain generator draw it replaced: (N, 500) standard normals in float32 and float64, N = 8192 on a
CPU (the default chunk) and 2^20 on a GPU (device-sized chunks), the stream's default backend (numpy on a CPU,
Triton on CUDA when installed, else torch) and, for reference, its torch backend, against
``torch.randn(N, 500, generator=g)`` on the same device. Runs alternate (baseline, ours, ...) so that load from
other processes hits both alike; medians are reported. A CUDA run synchronises before every clock read.

Prints one JSON object (``rows``: metric, ours, baseline, ratio, target, met); ``--json PATH`` also writes it.
Target: ratio (ours / randn, in normals per second) >= 1.0 for the default backend in float32 (torch's default
dtype; issue 20); float64 (two 53-bit words per normal pair) and the torch backend are reported for information.

A second measurement is the whole standard-risk Monte Carlo estimate (``tr.estimate_risk`` of the quadratic
classifier ``sign(1.375 sum_{i<=250} x_i^2 + 0.5 sum_{i>250} x_i^2 - 1)`` on the concentric spheres, D = 500,
float32, the library's default chunks) against the bare loop it must approach: ``torch.randint`` labels,
``torch.randn`` normals scaled to the spheres, the same margin and the error count, in chunks of the same size.
Target: >= 0.9 (issue 20). The estimate must contain the exact risk (0.0058299) at 99.9%.

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


ALPHA = [1.375] * 250 + [0.5] * 250


def bare_standard_risk(n: int, chunk: int, device: torch.device, seed: int) -> int:
    """The bare loop: labels, normals scaled to the spheres (radii 1 and 1.3), the quadratic margin, errors."""
    gen = torch.Generator(device=device).manual_seed(seed)
    alpha = torch.tensor(ALPHA, device=device)
    errors, done = 0, 0
    while done < n:
        m = min(chunk, n - done)
        y = torch.randint(0, 2, (m,), generator=gen, device=device) * 2 - 1
        z = torch.randn(m, DIM, generator=gen, device=device)
        r = torch.where(y == 1, 1.3, 1.0)
        x = z.mul_((r / torch.linalg.vector_norm(z, dim=1))[:, None])
        margin = (x * x) @ alpha - 1.0
        errors += int((torch.where(margin >= 0, 1, -1) != y).sum())
        done += m
    return errors


def measure_standard_risk(device: torch.device, n: int, repeats: int) -> dict:
    """Median seconds of the standard-risk estimate and of the bare loop (alternating), same n and chunk size."""
    import toyrobust as tr
    from toyrobust.montecarlo import device_chunk_size

    sp, quad = tr.ConcentricSpheres(DIM, 1.0, 1.3), tr.Quadratic(ALPHA, 1.0)
    chunk = device_chunk_size(device, DIM, 4, attacked=False)
    est = [None]

    def ours():
        est[0] = tr.estimate_risk(sp, quad, None, n=n, seed=0, device=device, dtype=torch.float32, level=0.999,
                                  progress=False, chunk_size=chunk)

    def base():
        bare_standard_risk(n, chunk, device, 1)

    ours()
    base()
    t_ours, t_base = [], []
    for _ in range(repeats):
        t_base.append(_time(base, device))
        t_ours.append(_time(ours, device))
    return {"ours_s": statistics.median(t_ours), "bare_s": statistics.median(t_base), "n": n, "chunk": chunk,
            "estimate": est[0].value, "contains_exact": bool(est[0].contains(0.0058299))}


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
                         "target": ">= 1.0" if default else "-", "met": (rate / base >= 1.0) if default else None})
    s = measure_standard_risk(device, (2 * 10**5 if args.quick else 10**6) * (1 if device.type == "cpu" else 20),
                              max(3, repeats // 3))
    runs["standard risk"] = s
    ratio = s["bare_s"] / s["ours_s"]
    rows.append({"metric": f"standard-risk MC, spheres D={DIM} quadratic, {s['n']} points (samples/s) vs bare "
                           "randn loop", "ours": s["n"] / s["ours_s"], "baseline": s["n"] / s["bare_s"],
                 "ratio": ratio, "target": ">= 0.9", "met": ratio >= 0.9 and s["contains_exact"]})
    result = {"benchmark": "streams", "device": str(device), "torch_threads": torch.get_num_threads(),
              "repeats": repeats, "runs": runs, "rows": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
