"""How many steps the full-size cross-check networks need: the old long constant-rate runs against the schedules in
``toyrobust.crosscheck.TRAINING`` (not run by ``run_all.py``: the old runs take most of an hour on 2 CPU cores).

Each run trains one network with :func:`toyrobust.train` (standard risk on a fixed 10,000-point evaluation sample
at 16 points of the run; the adversarial one too for the linear models), then estimates its final standard risk
on 100,000 fresh points with a 0.999 Clopper-Pearson interval. One JSON line per run on stdout.

    python benchmarks/crosscheck_training.py                       # every network, old and new
    python benchmarks/crosscheck_training.py mlp:new quad:old      # a selection
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import toyrobust as tr
from toyrobust.crosscheck import TRAINING
from toyrobust.models import MLP, LinearModel, QuadraticNet
from toyrobust.montecarlo import estimate_risk
from toyrobust.threats import Linf
from toyrobust.training import train

D = 500
A = math.sqrt(math.log(D) / (D - 1))
SPHERES = tr.ConcentricSpheres(500, 1.0, 1.3)
#: name -> (model factory, distribution, extra train options, TRAINING entry)
NETS = {
    "linear": (lambda: LinearModel(D, dtype=torch.float64), tr.GaussianMixture.robust_nonrobust(D),
               dict(threat=Linf(2 * A)), "linear"),
    "adv-linear": (lambda: LinearModel(D, dtype=torch.float64), tr.GaussianMixture.robust_nonrobust(D),
                   dict(adversarial="closed-form", threat=Linf(2 * A)), "linear"),
    "quad": (lambda: QuadraticNet(500, 1000, init_bias=2.3 ** 2 / 4, seed=0, dtype=torch.float64), SPHERES, {},
             "quadratic"),
    "mlp": (lambda: MLP(500, (1000, 1000), seed=0, dtype=torch.float32), SPHERES, {}, "mlp"),
    "pm16": (lambda: MLP(1, (16,), seed=0, dtype=torch.float32), tr.PointMasses(1.0), {}, "small mlp"),
    "ts32": (lambda: MLP(2, (32, 32), seed=0, dtype=torch.float32), tr.Tsipras(0.9, 3.0, 1), {}, "small mlp"),
    "rn64": (lambda: MLP(20, (64,), seed=0, dtype=torch.float32), tr.GaussianMixture.robust_nonrobust(20), {},
             "small mlp"),
}
#: the settings before issue 19 item 5 (constant learning rate)
OLD = {"linear": dict(steps=3000, batch_size=256, lr=0.05), "quadratic": dict(steps=4000, batch_size=128, lr=1e-3),
       "mlp": dict(steps=4000, batch_size=128, lr=1e-3), "small mlp": dict(steps=2000, batch_size=128, lr=0.01)}


def measure(name: str, which: str) -> dict:
    make, dist, extra, entry = NETS[name]
    opts = OLD[entry] if which == "old" else TRAINING[entry]["full"]
    model = make()
    start = time.perf_counter()
    res = train(model, dist, seed=0, progress=False, eval_every=max(1, opts["steps"] // 16), eval_n=10_000,
                **extra, **opts)
    wall = time.perf_counter() - start
    est = estimate_risk(dist, model, None, n=100_000, seed=123, level=0.999)
    return {"net": name, "which": which, "options": {k: str(v) for k, v in opts.items()}, "wall_s": round(wall, 1),
            "curve": [(h["step"], h["risk"], h["adv_risk"]) for h in res.history],
            "standard_risk": est.value, "ci": [est.ci_low, est.ci_high], "load_average": list(_load())}


def _load() -> tuple[float, ...]:
    try:
        with open("/proc/loadavg") as fh:
            return tuple(float(v) for v in fh.read().split()[:3])
    except OSError:
        return ()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", metavar="NET:old|new",
                        help=f"nets {', '.join(NETS)}; default: every net, old and new")
    args = parser.parse_args()
    runs = args.runs or [f"{n}:{w}" for n in NETS for w in ("new", "old")]
    for run in runs:
        name, _, which = run.partition(":")
        if name not in NETS or which not in ("old", "new"):
            parser.error(f"a run is NET:old or NET:new with NET in {', '.join(NETS)}, got {run!r}")
        print(json.dumps(measure(name, which)), flush=True)


if __name__ == "__main__":
    main()
