#!/usr/bin/env bash
# Scheduling gain of model predictions (issue 4, must-show 3): EASY on requested times,
# EASY++ on Tsafrir's predictor, and EASY++ on the model (point estimate and P90), per
# log. The model is trained by `rustci retrain --history-fraction 0.5` on the first half
# of each log only, then the whole log is replayed; bsld is reported for all jobs and for
# the second half (jobs the model never saw).
#
# The last column uses the planning estimate (`--model-estimate point|upper`) and the
# correction of jobs that outlive it (`--model-correction upper|incremental|doubling|
# request`) that gave the lowest bsld when the training half alone was replayed with
# EASY++: a choice made on training data only.
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
first_half() { # trace out: the first half of the jobs by submit time, as retrain keeps them
  python3 - "$1" "$2" <<'PY'
import gzip, sys
src, dst = sys.argv[1], sys.argv[2]
head, jobs = [], []
with (gzip.open if src.endswith('.gz') else open)(src, 'rt') as f:
    for line in f:
        if line.startswith(';') or not line.strip():
            head.append(line)
        else:
            jobs.append((float(line.split()[1]), len(jobs), line))
jobs.sort()
with open(dst, 'w') as out:
    out.writelines(head)
    # Rust rounds half away from zero (`f64::round`); Python's round() to even.
    out.writelines(l for _, _, l in jobs[:int(len(jobs) * 0.5 + 0.5)])
PY
}
printf '| log | EASY (requested) | EASY++ (Tsafrir) | EASY++ (model, point) | EASY++ (model, P90) | EASY++ (model, estimate and correction chosen on the training half) |\n|---|---|---|---|---|---|\n'
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
  first_half "$trace" "$OUT/$key-train.swf"
  best= bestv=
  # (Planning with the upper quantile, its `upper` correction is `incremental`.)
  for choice in point:upper point:incremental point:doubling point:request \
    upper:incremental upper:doubling upper:request; do
    "$T/rustci-sim" run --trace "$OUT/$key-train.swf" --trace-format swf --processors "$procs" -q \
      --policy easy++ --predictor "model:$OUT/$key-model" --model-estimate "${choice%%:*}" \
      --model-correction "${choice##*:}" --output "$OUT/$key-train-${choice/:/-}.json" >/dev/null
    v=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bsld_mean"])' "$OUT/$key-train-${choice/:/-}.json")
    if [ -z "$best" ] || python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$v" "$bestv"; then
      best=$choice bestv=$v
    fi
  done
  a=$(run easy --policy easy --predictor requested)
  b=$(run tsafrir --policy easy++ --predictor tsafrir)
  c=$(run model --policy easy++ --predictor "model:$OUT/$key-model")
  d=$(run model-p90 --policy easy++ --predictor "model:$OUT/$key-model" --model-estimate upper)
  e=$(run model-chosen --policy easy++ --predictor "model:$OUT/$key-model" \
    --model-estimate "${best%%:*}" --model-correction "${best##*:}")
  fmt() { set -- $1; echo "$1 (2nd half $2)"; }
  printf '| %s | %s | %s | %s | %s | %s, %s |\n' "$name" "$(fmt "$a")" "$(fmt "$b")" "$(fmt "$c")" "$(fmt "$d")" "$(fmt "$e")" "${best/:/ + }"
done
