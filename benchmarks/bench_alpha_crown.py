"""alpha-CROWN and Quad-CROWN on the full-size spheres row: points decided by CROWN alone, CROWN then alpha-CROWN,
and CROWN, alpha-CROWN then Quad-CROWN (the L2 stage of toyrobust/verification/quadcrown.py).

The network of the cross-check row "trained, spheres D=500 | ReLU MLP | l2:0.05 | ball": ``tr.MLP(500, (1000,
1000), dtype=torch.float32)``, from a saved ``state_dict`` (``--state-dict``) or else the cross-check's own network
(trained once and cached like the cross-check's: about 4 minutes the first time; ``--quick``: the quick cross-check's
20-100-100-1 network and 300 points), 1000 points of ``tr.ConcentricSpheres(500, 1.0, 1.3)`` (``--points``, seed
169), L2 radius
0.05, ``tr.verify(..., method="bounds")`` with ``alpha_crown=False, quad_crown=False``, with the default
alpha-CROWN alone, and with both defaults, on the same points and the same attack pre-pass.

    python benchmarks/bench_alpha_crown.py [--quick] [--state-dict PATH] [--points 1000] [--threads 1] [--json P]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import toyrobust as tr


def _network(quick: bool, state_dict: str | None) -> tuple[torch.nn.Module, int]:
    """The spheres MLP: loaded from ``state_dict``, else the cross-check's cached (or freshly trained) network."""
    if state_dict is not None and not quick:
        mlp = tr.MLP(500, (1000, 1000), dtype=torch.float32)
        mlp.load_state_dict(torch.load(state_dict))
        return mlp.eval(), 500
    from toyrobust.crosscheck import default_cases

    case = next(c for c in default_cases(quick=quick, trained=True)
                if c.name == "ReLU MLP" and c.threat is not None)
    return case.clf.eval(), int(case.dist.dim)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the quick cross-check's 20-100-100-1 network, 300 points")
    ap.add_argument("--state-dict", default=None, help="a saved state_dict of the 500-1000-1000-1 MLP")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mlp, dim = _network(args.quick, args.state_dict)
    points = args.points or (300 if args.quick else 1000)
    x, y = tr.ConcentricSpheres(dim, 1.0, 1.3).sample(points, generator=torch.Generator().manual_seed(169),
                                                       dtype=torch.float32)
    out = {}
    for name, alpha, quad in (("crown", False, False), ("alpha-crown", True, False), ("quad-crown", True, True)):
        t0 = time.perf_counter()
        res = tr.verify(mlp, x, y, tr.L2(0.05), method="bounds", alpha_crown=alpha, quad_crown=quad)
        st = res.stats
        out[name] = {"robust": int(res.robust.sum()), "vulnerable": int(res.vulnerable.sum()),
                     "unknown": int((~res.robust & ~res.vulnerable).sum()), "alpha_items": st["alpha_items"],
                     "alpha_decided": st["alpha_decided"], "alpha_iterations": st["alpha_iterations"],
                     "quad_items": st["quad_items"], "quad_decided": st["quad_decided"],
                     "quad_vulnerable": st["quad_vulnerable"], "quad_iterations": st["quad_iterations"],
                     "seconds": {k: round(v, 2) for k, v in st["seconds"].items()},
                     "total_s": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(out[name]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
