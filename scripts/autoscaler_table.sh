#!/usr/bin/env bash
# Autoscaler comparison (issue 5, must-show 1): a static fleet sized for the peak, the
# reactive autoscaler (at three idle timeouts) and the predictive one, on the synthetic CI
# week and on the TravisTorrent extract, every pool provisioned in 60 s. Prints a
# markdown table: runner-hours, cost and p95 wait per QoS class, then the two checks of
# the issue with the numbers they compare.
#
#   scripts/autoscaler_table.sh [OUT_DIR]
#
# Deterministic: the synthetic workload is seeded (seed 1), the traces are fixed, and the
# engine has no wall clock in it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustci-target}"
D=${RUSTCI_DATASETS:-../shared/datasets}
OUT=${1:-/tmp/rustci-autoscaler}
mkdir -p "$OUT"
cargo build --release -q -p rustci-sim
SIM="$CARGO_TARGET_DIR/release/rustci-sim"

# Settings shared by every run: estimates from Tsafrir's predictor (the predictive policy
# sizes with them), QoS order, 60 s to provision a runner.
COMMON=(--predictor tsafrir --policy qos --provisioning-delay-s 60 -q)
# The predictive autoscaler: 95% of each class should start within 5% of its wait target
# (urgent 3 s, standard 15 s, batch 90 s), idle runners beyond its size go after 180 s.
PREDICTIVE=(--autoscaler predictive --target-scale 0.05 --idle-timeout-s 180)

workloads=(
  "synthetic CI week (seed 1)|--fleet simulator/fleets/autoscale-ci.toml --seed 1"
  "TravisTorrent (145 projects)|--trace $D/travistorrent_cesel/projects --fleet simulator/fleets/travis.toml"
)
runs=(
  "static, sized for the peak|--autoscaler static --peak-sized"
  "reactive, idle timeout 600 s|--autoscaler reactive --idle-timeout-s 600"
  "reactive, idle timeout 3600 s|--autoscaler reactive --idle-timeout-s 3600"
  "reactive, idle timeout 14400 s|--autoscaler reactive --idle-timeout-s 14400"
  "predictive, 5% of targets, idle 180 s|${PREDICTIVE[*]}"
)

printf '| workload | policy | runner-hours | vs static | cost | p95 wait s (urgent / standard / batch) |\n'
printf '|---|---|---:|---:|---:|---|\n'
for w in "${workloads[@]}"; do
  IFS='|' read -r wname wargs <<<"$w"
  wkey=$(echo "$wname" | tr -cd 'A-Za-z0-9')
  for r in "${runs[@]}"; do
    IFS='|' read -r rname rargs <<<"$r"
    rkey=$(echo "$rname" | tr -cd 'A-Za-z0-9')
    # shellcheck disable=SC2086
    "$SIM" run $wargs $rargs "${COMMON[@]}" --output "$OUT/$wkey-$rkey.json" >/dev/null
  done
  python3 - "$OUT" "$wkey" "$wname" "${runs[@]}" <<'PY'
import json, re, sys
out, wkey, wname, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows = []
for r in runs:
    name = r.split('|')[0]
    key = re.sub(r'[^A-Za-z0-9]', '', name)
    rows.append((name, json.load(open(f"{out}/{wkey}-{key}.json"))))
static = rows[0][1]['runner_hours']
def p95(rep, c):
    v = rep['qos'].get(c, {}).get('wait_p95_s')
    return '-' if v is None else f"{v:.0f}"
for name, rep in rows:
    waits = ' / '.join(p95(rep, c) for c in ('urgent', 'standard', 'batch'))
    rel = f"{100 * (rep['runner_hours'] / static - 1):+.0f}%"
    print(f"| {wname} | {name} | {rep['runner_hours']:.0f} | {rel} | {rep['cost']:.0f} | {waits} |")
PY
done

echo
echo "Checks (per workload): predictive vs static peak: p95 per class <= static's and"
echo "runner-hours <= 70% of static's; predictive vs every reactive run costing at least as"
echo "much: standard p95 below reactive's (or both 0 s, predictive cheaper)."
for w in "${workloads[@]}"; do
  IFS='|' read -r wname _ <<<"$w"
  wkey=$(echo "$wname" | tr -cd 'A-Za-z0-9')
  python3 - "$OUT" "$wkey" "$wname" "${runs[@]}" <<'PY'
import json, re, sys
out, wkey, wname, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
load = lambda name: json.load(open(f"{out}/{wkey}-{re.sub(r'[^A-Za-z0-9]', '', name)}.json"))
names = [r.split('|')[0] for r in runs]
static, pred = load(names[0]), load(names[-1])
def p95(rep, c):
    return rep['qos'].get(c, {}).get('wait_p95_s')
classes = [c for c in ('urgent', 'standard', 'batch') if p95(static, c) is not None]
same = all(p95(pred, c) <= p95(static, c) for c in classes)
saving = 1 - pred['runner_hours'] / static['runner_hours']
print(f"- {wname}: vs static: p95 {'<=' if same else 'ABOVE'} static's in every class, "
      f"{100 * saving:.0f}% fewer runner-hours ({'ok' if same and saving >= 0.3 else 'MISSED'})")
for name in names[1:-1]:
    rep = load(name)
    if rep['cost'] >= pred['cost']:
        ps, rs = p95(pred, 'standard'), p95(rep, 'standard')
        cheaper = 100 * (1 - pred['cost'] / rep['cost'])
        verdict = ('ok: lower p95' if ps < rs else
                   f'ok: both 0 s, predictive {cheaper:.0f}% cheaper' if ps == rs == 0 else
                   'MISSED')
        print(f"  vs {name}: cost {pred['cost']:.0f} <= {rep['cost']:.0f}, standard p95 "
              f"{ps:.0f} s vs {rs:.0f} s ({verdict})")
    else:
        print(f"  vs {name}: costs less ({rep['cost']:.0f} < {pred['cost']:.0f}); standard p95 "
              f"{p95(rep, 'standard'):.0f} s vs predictive's {p95(pred, 'standard'):.0f} s")
PY
done
