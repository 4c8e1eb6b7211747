#!/usr/bin/env bash
# Scheduling gain of model predictions (issue 4, must-show 3): EASY on requested times,
# EASY++ on Tsafrir's predictor, and EASY++ on the model (point estimate and P90), per
# log. The model is trained by `rustci retrain --history-fraction 0.5` on the first half
# of each log only, then the whole log is replayed; bsld is reported for all jobs and for
# the second half (jobs the model never saw).
#
#   scripts/scheduling_gain.sh [OUT_DIR]     (needs release binaries: cargo build --release)
set -euo pipefail
D=${RUSTCI_DATASETS:-../shared/datasets}
T=${CARGO_TARGET_DIR:-target}/release
OUT=${1:-/tmp/rustci-gain}
mkdir -p "$OUT"
logs=(
  "KTH-SP2 (pyss input)|$D/pyss_easy_reference/KTH-SP2_res_easy_backfill_scheduler_None_None.swf.gz|100"
  "SDSC-SP2|$D/pwa_swf/SDSC-SP2-1998-4.2-cln.swf.gz|128"
  "CTC-SP2|$D/pwa_swf/CTC-SP2-1996-3.1-cln.swf.gz|338"
  "HPC2N|$D/pwa_swf/HPC2N-2002-2.2-cln.swf.gz|240"
)
bsld() { # report.json swf-out -> "all second-half"
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows = []
for line in open(sys.argv[2]):
    if line.startswith(';') or not line.strip():
        continue
    f = line.split()
    submit, wait, run = float(f[1]), float(f[2]), float(f[3])
    if run < 0 or wait < 0:
        continue
    rows.append((submit, max(1.0, (wait + run) / max(run, 10.0))))
rows.sort()
half = rows[len(rows) // 2:]
print(f"{r['bsld_mean']:.2f} {sum(b for _, b in half) / len(half):.2f}")
PY
}
printf '| log | EASY (requested) | EASY++ (Tsafrir) | EASY++ (model, point) | EASY++ (model, P90) |\n|---|---|---|---|---|\n'
for entry in "${logs[@]}"; do
  IFS='|' read -r name trace procs <<<"$entry"
  key=$(echo "$name" | tr -cd 'A-Za-z0-9')
  # shellcheck disable=SC2086
  "$T/rustci" retrain --from "$trace" --trace-format swf --history-fraction 0.5 --out "$OUT/$key-model" --force -q --format json ${RETRAIN_ARGS:-} >"$OUT/$key-retrain.json"
  run() { # tag policy predictor [extra]
    local tag=$1; shift
    "$T/rustci-sim" run --trace "$trace" --trace-format swf --processors "$procs" -q \
      --output "$OUT/$key-$tag.json" --swf-out "$OUT/$key-$tag.swf" "$@" >/dev/null
    bsld "$OUT/$key-$tag.json" "$OUT/$key-$tag.swf"
  }
  a=$(run easy --policy easy --predictor requested)
  b=$(run tsafrir --policy easy++ --predictor tsafrir)
  c=$(run model --policy easy++ --predictor "model:$OUT/$key-model")
  d=$(run model-p90 --policy easy++ --predictor "model:$OUT/$key-model" --model-estimate upper)
  fmt() { set -- $1; echo "$1 (2nd half $2)"; }
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$(fmt "$a")" "$(fmt "$b")" "$(fmt "$c")" "$(fmt "$d")"
done
