#!/usr/bin/env bash
# One prepared check of toyrobust on a CUDA machine (issue 11). Needs only a plain checkout and an environment
# with torch (CUDA build), sympy, scipy, matplotlib, hypothesis, pytest and tqdm: no network, no pip install (the
# source tree is put first on PYTHONPATH; the command line runs as `python -m toyrobust.cli`).
#
#   bash benchmarks/gpu_check.sh                 # everything under ${OUT:-/tmp/gpu_check}
#   OUT=/some/dir BUDGET=470 PYTHON=python3 bash benchmarks/gpu_check.sh
#
# Steps, most informative first, each with its own timeout and all within a total BUDGET of seconds (default 470,
# under 8 minutes; a step never gets more than what is left, and is skipped below 10 s):
#   env            nvidia-smi, torch / CUDA versions, `python -m toyrobust.cli --help`
#   cuda_tier      python -m pytest -m cuda -q  (tests/test_cuda.py: CPU and CUDA halves; not -x: every failure)
#   gpu_targets    benchmarks/bench_gpu_targets.py --device cuda  (>= 1e8 samples/s standard risk, 5e7/s exact
#                  L2 attack, the 5e7-sample Gilmer evaluation < 1 s; closed forms inside the intervals)
#   estimate_gpu   benchmarks/bench_estimate.py --device cuda --repeats 1  (>= 1.5x the torchattacks loop at +-0.002)
#   crosscheck_quick   toyrobust crosscheck --quick --device cuda, timed (target: it runs; issue 11 saw 21 s)
#   crosscheck_full    toyrobust crosscheck --device cuda, timed, with a timeout (target < 2 minutes)
#   run_all        benchmarks/run_all.py --device cuda --quick --json $OUT/bench.json
#   default_suite  python -m pytest -q -x -m 'not slow and not cuda'  (the default suite; the cuda tier ran above)
# The script keeps going after a failing step and ends with a summary (also in $OUT/summary.txt); its exit
# status is the number of steps that did not pass.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-/tmp/gpu_check}"
BUDGET="${BUDGET:-470}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
cd "$REPO" || exit 99
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg

START=$(date +%s)
SUMMARY=()
NOT_PASSED=0

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME TIMEOUT COMMAND...: run COMMAND (a bash string) with a timeout, log to $OUT/NAME.log, record the result
step() {
    local name="$1" limit="$2" cmd="$3" rest t0 rc secs status
    rest=$(( $(left) - 5 ))
    if (( rest < 10 )); then
        SUMMARY+=("$(printf '%-18s %-26s %6s s  %s' "$name" "SKIPPED (budget spent)" 0 "-")")
        NOT_PASSED=$((NOT_PASSED + 1))
        echo "=== $name: skipped, out of the ${BUDGET} s budget"
        return
    fi
    (( limit > rest )) && limit=$rest
    echo "=== $name (timeout ${limit} s): $cmd"
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" bash -c "$cmd" > "$OUT/$name.log" 2>&1
    rc=$?
    secs=$("$PY" -c "print(f'{$(date +%s.%N) - $t0:.1f}')" 2>/dev/null || echo "?")
    tail -n 25 "$OUT/$name.log"
    if (( rc == 0 )); then
        status="pass"
    elif (( rc == 124 || rc == 137 )); then
        status="TIMEOUT after ${limit} s"
    else
        status="FAIL (exit $rc)"
    fi
    (( rc == 0 )) || NOT_PASSED=$((NOT_PASSED + 1))
    SUMMARY+=("$(printf '%-18s %-26s %6s s  %s' "$name" "$status" "$secs" "$OUT/$name.log")")
    echo "=== $name: $status in $secs s"
}

step env 40 "nvidia-smi; $PY -c 'import sys, torch; print(sys.version); import importlib.util as u; print(\"triton\", \"installed\" if u.find_spec(\"triton\") else \"NOT installed (torch sampling path)\"); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"NO CUDA DEVICE\"); sys.exit(0 if torch.cuda.is_available() else 3)' && $PY -m toyrobust.cli --help > /dev/null && echo 'python -m toyrobust.cli works'"

step cuda_tier 200 "$PY -m pytest -m cuda -q -p no:cacheprovider -rfEs --durations=15 --junitxml='$OUT/cuda_tier.xml'"

step gpu_targets 70 "$PY benchmarks/bench_gpu_targets.py --device cuda --json '$OUT/gpu_targets.json'"

step estimate_gpu 90 "$PY benchmarks/bench_estimate.py --device cuda --repeats 1"

step crosscheck_quick 90 "time $PY -m toyrobust.cli crosscheck --quick --device cuda --strict --csv '$OUT/crosscheck_quick.csv'"

step crosscheck_full 140 "time $PY -m toyrobust.cli crosscheck --device cuda --strict --csv '$OUT/crosscheck_full.csv'"

step run_all 150 "$PY benchmarks/run_all.py --device cuda --quick --timeout 60 --json '$OUT/bench.json'"

step default_suite 300 "$PY -m pytest -q -x -p no:cacheprovider -m 'not slow and not cuda' --durations=10"

{
    echo
    echo "gpu_check summary ($(( $(date +%s) - START )) s of a ${BUDGET} s budget; logs and JSON in $OUT)"
    printf '%-18s %-26s %8s  %s\n' "step" "status" "time" "log"
    for line in "${SUMMARY[@]}"; do echo "$line"; done
    echo "$NOT_PASSED step(s) did not pass"
} | tee "$OUT/summary.txt"
exit "$NOT_PASSED"
