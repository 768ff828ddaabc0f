"""alpha-CROWN on the full-size spheres row: points decided by CROWN alone against CROWN then alpha-CROWN.

The network of the cross-check row "trained, spheres D=500 | ReLU MLP | l2:0.05 | ball": ``tr.MLP(500, (1000,
1000), dtype=torch.float32)`` loaded from a saved ``state_dict`` (``--state-dict``; the cross-check trains it, this
script does not), 1000 points of ``tr.ConcentricSpheres(500, 1.0, 1.3)`` (``--points``, seed 169), L2 radius
0.05, ``tr.verify(..., method="bounds")`` once with ``alpha_crown=False`` and once with the default alpha-CROWN,
on the same points and the same attack pre-pass. Also the same alpha-CROWN budgets at 20 and 200 steps on the
points CROWN leaves open (bounds reused), to show where the optimisation stops paying.

    python benchmarks/bench_alpha_crown.py [--state-dict /tmp/mlp500.pt] [--points 1000] [--threads 1] [--json P]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import toyrobust as tr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state-dict", default="/tmp/mlp500.pt")
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mlp = tr.MLP(500, (1000, 1000), dtype=torch.float32)
    mlp.load_state_dict(torch.load(args.state_dict))
    mlp.eval()
    x, y = tr.ConcentricSpheres(500, 1.0, 1.3).sample(args.points, generator=torch.Generator().manual_seed(169),
                                                       dtype=torch.float32)
    out = {}
    for name, alpha in (("crown", False), ("alpha-crown", True)):
        t0 = time.perf_counter()
        res = tr.verify(mlp, x, y, tr.L2(0.05), method="bounds", alpha_crown=alpha)
        st = res.stats
        out[name] = {"robust": int(res.robust.sum()), "vulnerable": int(res.vulnerable.sum()),
                     "unknown": int((~res.robust & ~res.vulnerable).sum()), "alpha_items": st["alpha_items"],
                     "alpha_decided": st["alpha_decided"], "alpha_iterations": st["alpha_iterations"],
                     "seconds": {k: round(v, 2) for k, v in st["seconds"].items()},
                     "total_s": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(out[name]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
