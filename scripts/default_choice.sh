#!/usr/bin/env bash
# Issue 19, item 1: what `rustci retrain --history-fraction 0.5` chooses (planning
# estimate and correction, by replaying EASY++ over the held-out latest 30% of the first
# half on the log's MaxProcs) and the bounded slowdown of `rustci-sim run --policy
# easy++ --predictor model:DIR` with no other flag over the whole log and its second half.
#
#   scripts/default_choice.sh [OUT_DIR] [LOG ...]   (needs release binaries)
#   LOG: KTH-SP2 SDSC-SP2 CTC-SP2 HPC2N SDSC-BLUE (default: all five)
set -euo pipefail
D=${RUSTCI_DATASETS:-../shared/datasets}
T=${CARGO_TARGET_DIR:-target}/release
OUT=${1:-/tmp/rustci-default-choice}
shift || true
mkdir -p "$OUT"
declare -A file=(
  [KTH-SP2]=KTH-SP2-1996-2.1-cln.swf.gz [SDSC-SP2]=SDSC-SP2-1998-4.2-cln.swf.gz
  [CTC-SP2]=CTC-SP2-1996-3.1-cln.swf.gz [HPC2N]=HPC2N-2002-2.2-cln.swf.gz
  [SDSC-BLUE]=SDSC-BLUE-2000-4.2-cln.swf.gz
)
logs=("$@")
[ ${#logs[@]} -gt 0 ] || logs=(KTH-SP2 SDSC-SP2 CTC-SP2 HPC2N SDSC-BLUE)
printf '| log | chosen (estimate + correction) | held-out bsld: chosen / default | EASY++, model with defaults: all jobs (2nd half) | retrain s | replay s |\n|---|---|---|---|---|---|\n'
for log in "${logs[@]}"; do
  trace="$D/pwa_swf/${file[$log]}"
  t0=$(date +%s)
  nice "$T/rustci" retrain --from "$trace" --trace-format swf --history-fraction 0.5 \
    --out "$OUT/$log-model" --force -q --format json >"$OUT/$log-retrain.json"
  t1=$(date +%s)
  nice "$T/rustci-sim" run --trace "$trace" --trace-format swf --policy easy++ \
    --predictor "model:$OUT/$log-model" -q --output "$OUT/$log-run.json" \
    --swf-out "$OUT/$log-run.swf" >/dev/null
  t2=$(date +%s)
  python3 - "$OUT/$log-retrain.json" "$OUT/$log-run.json" "$OUT/$log-run.swf" "$log" $((t1 - t0)) $((t2 - t1)) <<'PY'
import json, sys
r, run, swf, log, tr, tp = sys.argv[1:]
p = json.load(open(r))["planning"]
rep = json.load(open(run))
rows = []
for line in open(swf):
    if line.startswith(';') or not line.strip():
        continue
    f = line.split()
    submit, wait, runs = float(f[1]), float(f[2]), float(f[3])
    if runs < 0 or wait < 0:
        continue
    rows.append((submit, max(1.0, (wait + runs) / max(runs, 10.0))))
rows.sort()
half = rows[len(rows) // 2:]
figs = {(c["estimate"], c["correction"]): c["bsld_mean"] for c in p.get("candidates", [])}
chosen = (p["estimate"], p["correction"])
held = f'{figs.get(chosen, float("nan")):.2f} / {figs.get(("point", "upper"), float("nan")):.2f}' if figs else "-"
u = rep.get("model_usage", {})
assert (u.get("estimate"), u.get("correction")) == chosen, (u, chosen)
print(f'| {log} | {chosen[0]} + {chosen[1]}{"" if p["chosen"] else " (no choice: " + p["reason"] + ")"} | {held} '
      f'| {rep["bsld_mean"]:.2f} ({sum(b for _, b in half) / len(half):.2f}) | {tr} | {tp} |')
PY
done
