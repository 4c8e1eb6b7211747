#!/usr/bin/env bash
# Pipeline results on the synthetic week (issue 14, must-show 1 and 3): time to feedback
# under FIFO, fair share and critical path with requested times, Tsafrir's predictor, the
# model and true run times, on one fleet and one span, plus the ETA accuracy at creation.
#
#   scripts/synthetic_pipelines.sh [OUT_DIR]      (SEEDS="1 2 3" for other weeks,
#                                                  FLEET=FILE.toml for another fleet)
#
# Needs the release binaries `rustci-sim` and `rustci` (cargo build --release --bins).
#
# Per seed: `rustci-sim generate` writes the week (pipelines on, the built-in workload) as
# a JobRecord CSV; `rustci retrain --history-fraction F` trains the model on the records
# before the cut only; every run replays the same span, the records after the cut
# (`--replay-from-fraction F`), on simulator/fleets/synthetic-pipelines.toml (or
# $FLEET). Tsafrir's predictor and the model first learn the records before the cut as
# finished jobs.
# Prints one markdown table per seed, then the ETA accuracy of the critical-path runs.
# Deterministic (seeded workload, seeded training); 4-5 minutes per seed on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/rustci-synthetic-pipelines}
SEEDS=${SEEDS:-1}
F=${FRACTION:-0.5}
FLEET=${FLEET:-simulator/fleets/synthetic-pipelines.toml}
RUNS_KEY=$(basename "$FLEET" .toml)
mkdir -p "$OUT"
T=${CARGO_TARGET_DIR:-target}/release
SIM="$T/rustci-sim"
RUSTCI="$T/rustci"

# name|policy|predictor[|extra flags] (MODEL stands for this seed's model directory). `critical-path`
# is the latest start capped at the ready time; the other critical-path rules and FIFO
# with the model's estimates are there for comparison (README, "the synthetic week").
runs=(
  "FIFO (easy)|easy|requested"
  "fair share|fairshare|requested"
  "critical path, requested times|critical-path|requested"
  "critical path, Tsafrir|critical-path|tsafrir"
  "critical path, model|critical-path|MODEL"
  "critical path, true run times|critical-path|clairvoyant"
  "critical path, latest start (before aging), model|critical-path-latest-start|MODEL"
  "critical path, latest start (before aging), true run times|critical-path-latest-start|clairvoyant"
  "critical path, oldest pipeline first, model|critical-path-oldest|MODEL"
  "critical path, oldest pipeline first, true run times|critical-path-oldest|clairvoyant"
  "critical path, bounded latest start, model|critical-path-bounded|MODEL"
  "critical path, bounded latest start, true run times|critical-path-bounded|clairvoyant"
  "FIFO (easy), model (its estimates drive EASY's reservations)|easy|MODEL"
  "FIFO (easy), model planning with its P90|easy|MODEL|--model-estimate upper"
  "critical path, model planning with its P90|critical-path|MODEL|--model-estimate upper"
  "critical path, bounded latest start, model planning with its P90|critical-path-bounded|MODEL|--model-estimate upper"
)

for seed in $SEEDS; do
  week="$OUT/week-$seed.csv"
  model="$OUT/model-$seed"
  [ -s "$week" ] || "$SIM" generate --seed "$seed" --out "$week" >/dev/null
  [ -f "$model/CURRENT" ] ||
    "$RUSTCI" retrain --from "$week" --history-fraction "$F" --out "$model" -q --format json \
      >"$OUT/retrain-$seed.json"
  for r in "${runs[@]}"; do
    IFS='|' read -r _ policy predictor extra <<<"$r"
    key=$(echo "$policy-$predictor$extra" | tr -cd 'A-Za-z0-9-')
    predictor=${predictor/MODEL/model:$model}
    "$SIM" run --trace "$week" --fleet "$FLEET" --replay-from-fraction "$F" \
      --policy "$policy" --predictor "$predictor" $extra -q --output "$OUT/$RUNS_KEY-$seed-$key.json" >/dev/null
  done
  echo "Seed $seed (replayed: the records after the first $F, on $FLEET)"
  echo
  python3 - "$OUT" "$RUNS_KEY-$seed" "${runs[@]}" <<'PY'
import json, re, sys
out, prefix, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for r in runs:
    name, policy, predictor, *extra = r.split('|')
    key = re.sub(r'[^A-Za-z0-9-]', '', f"{policy}-{predictor}{''.join(extra)}")
    rows.append((name, policy, predictor, json.load(open(f"{out}/{prefix}-{key}.json"))))
fifo = rows[0][3]['pipelines']['ttf_p95_s']
# "vs true run times": against the same critical-path rule with true run times.
clair = {policy: rep['pipelines']['ttf_p95_s'] for _, policy, predictor, rep in rows
         if predictor == 'clairvoyant'}
def vs_clair(policy, v):
    return f"{100 * (v / clair[policy] - 1):+.1f}%" if policy in clair else ''
print('| policy | TTF p95 s | TTF mean s | TTF p50 s | p95 vs FIFO | p95 vs true run times | utilisation | pipelines (superseded) |')
print('|---|---:|---:|---:|---:|---:|---:|---:|')
for name, policy, _, rep in rows:
    p = rep['pipelines']
    print(f"| {name} | {p['ttf_p95_s']:.0f} | {p['ttf_mean_s']:.0f} | {p['ttf_p50_s']:.0f} | "
          f"{100 * (p['ttf_p95_s'] / fifo - 1):+.1f}% | {vs_clair(policy, p['ttf_p95_s'])} | "
          f"{100 * rep['utilization']:.1f}% | {p['count']} ({p['superseded']}) |")
print()
print('ETA at creation (critical path):')
print()
print('| estimates | within 10% | within 60 s | pipelines projected |')
print('|---|---:|---:|---:|')
for name, policy, _, rep in rows:
    if policy != 'critical-path':
        continue
    p = rep['pipelines']
    print(f"| {name.split(', ')[1]} | {100 * p['eta_within_10pct']:.1f}% | "
          f"{100 * p['eta_within_60s']:.1f}% | {p['eta_count']} of {p['ttf_count']} |")
print()
PY
done
