"""APGD against PGD with the same number of gradient evaluations, on the cross-check's trained ReLU networks.

    python benchmarks/bench_apgd.py [--quick] [--device cpu|cuda|auto] [--json PATH]

For every bracketed network of ``toyrobust crosscheck`` (small ReLU MLPs on point masses, 2-D Tsipras and the
robust/non-robust features, Linf balls), both attacks run with ``steps`` gradient steps on the same points (same
seed): their adversarial rates (exact Clopper-Pearson intervals), gradient evaluations and seconds are printed, and
the APGD count is checked against the verifier's upper count on a subset (``upper="verify"``: estimate_risk raises
if the verifier proves robust a point the attack broke). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toyrobust as tr  # noqa: E402
from toyrobust.crosscheck import _bracketed_cases  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    n, steps = (1000, 20) if args.quick else (5000, 40)
    device = None if args.device == "auto" else args.device
    rows, seen = [], set()
    build = {"seed": 0, "device": device or "cpu", "progress": False, "cache": None, "trained": 0, "cached": 0}
    for case in _bracketed_cases(True, build):
        key = f"{case.group} | {case.name} | {case.threat!r}"
        if case.threat is None or key in seen:  # one row per network and ball (the attacks use the ball definition)
            continue
        seen.add(key)
        row = {"case": key}
        for label, attack in (("pgd", tr.attacks.PGD(steps=steps)), ("apgd", tr.APGD(steps=steps))):
            t = time.perf_counter()
            e = tr.estimate_risk(case.dist, case.clf, case.threat, attack=attack, n=n, seed=1, device=device)
            row[label] = {"rate": e.value, "ci": [e.ci_low, e.ci_high], "k": e.k, "grad_evals": e.grad_evals,
                          "seconds": round(time.perf_counter() - t, 3)}
        b = tr.estimate_risk(case.dist, case.clf, case.threat, attack=tr.APGD(steps=steps), n=min(n, 300), seed=1,
                             upper="verify", verify_options={"time_limit": 2.0}, device=device)
        row["verified"] = {"n": b.n, "apgd_k": b.k, "upper_k": b.upper_k, "decided": b.decided}
        row["apgd_minus_pgd"] = row["apgd"]["k"] - row["pgd"]["k"]
        rows.append(row)
        print(f"{row['case']}: pgd {row['pgd']['rate']:.4f} ({row['pgd']['grad_evals']} grads), apgd "
              f"{row['apgd']['rate']:.4f} ({row['apgd']['grad_evals']} grads); verified subset: apgd "
              f"{b.k} <= upper {b.upper_k} of {b.n}", file=sys.stderr)
    out = {"benchmark": "apgd_vs_pgd", "n": n, "steps": steps, "rows": rows}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
