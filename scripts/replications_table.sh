#!/usr/bin/env bash
# Issue 17, must-shows 1, 2 and 5: static, reactive and predictive autoscalers on 20
# replications of the synthetic CI week and of TravisTorrent (block bootstrap of whole
# weeks), each p95 wait per QoS class and the cost with 95% intervals, and the paired
# differences (predictive - static, predictive - reactive) with which are significant;
# then `plan --replications 20` for standard:p95<=300 validated on 20 fresh
# replications; then the time of 20 replications of the synthetic week.
#
#   scripts/replications_table.sh [OUT_DIR] [synthetic|defaults|travis|plan|bench|all]
#
# Deterministic: replication i is seed 1 + i (synthetic) or bootstrap stream i of seed 1
# (TravisTorrent), the same for every scenario (common random numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustci-target}"
D=$(cd "${RUSTCI_DATASETS:-../shared/datasets}" && pwd)
OUT=${1:-/tmp/rustci-replications}
WHAT=${2:-all}
N=${REPLICATIONS:-20}
mkdir -p "$OUT"
# Set SIM to skip the build (a binary built from this tree).
if [[ -z ${SIM:-} ]]; then
  cargo build --release -q -p rustci-sim
  SIM="$CARGO_TARGET_DIR/release/rustci-sim"
fi

# One scenario file per autoscaler (the settings of scripts/autoscaler_table.sh: qos
# order, Tsafrir's estimates, 60 s to provision; static keeps the fleet file's runners).
scenarios() { # WORKLOAD_KEY FLEET WORKLOAD_TOML
  local key=$1 fleet=$2 workload=$3
  for a in static reactive predictive; do
    {
      echo "fleet = \"$fleet\""
      echo 'predictor = "tsafrir"'
      echo 'policy = ["qos"]'
      echo "autoscaler = [\"$a\"]"
      echo 'provisioning_delay_s = [60]'
      case $a in
        reactive) echo 'idle_timeout_s = [600]' ;;
        predictive) echo 'idle_timeout_s = [180]'; echo 'target_scale = [0.05]' ;;
      esac
      echo '[workload]'
      echo "$workload"
    } >"$OUT/$key-$a.toml"
  done
}

# The defaults a new user gets (`rustci-sim run --autoscaler A --seed S`: the built-in
# fleet, policy and estimates), as the issue's seed-7 figures were taken.
default_scenarios() {
  for a in static reactive predictive; do
    printf 'autoscaler = ["%s"]\n[workload]\nsynthetic = { seed = 1, days = 7 }\n' "$a" >"$OUT/defaults-$a.toml"
  done
}

table() { # WORKLOAD_KEY WORKLOAD_NAME
  local key=$1 name=$2
  for b in static reactive; do
    [ -s "$OUT/$key-predictive-vs-$b.json" ] ||
      "$SIM" compare "$OUT/$key-$b.toml" "$OUT/$key-predictive.toml" --replications "$N" \
        --format json -q >"$OUT/$key-predictive-vs-$b.json"
  done
  python3 - "$OUT" "$key" "$name" <<'PY'
import json, sys
out, key, name = sys.argv[1:4]
vs_static = json.load(open(f"{out}/{key}-predictive-vs-static.json"))
vs_reactive = json.load(open(f"{out}/{key}-predictive-vs-reactive.json"))
labels = (("static (built-in fleet)", "reactive, defaults", "predictive, defaults")
          if key == "defaults" else
          ("static (fleet file's runners)", "reactive, idle 600 s", "predictive, 5% of targets, idle 180 s"))
runs = [(labels[0], vs_static["a"]["summary"]),
        (labels[1], vs_reactive["a"]["summary"]),
        (labels[2], vs_static["b"]["summary"])]
classes = ("urgent", "standard", "batch")
def mci(s, *path):
    for p in path[:-1]:
        s = s.get(p, {})
    m = s.get(path[-1])
    ci = s.get(path[-1] + "_ci95")
    if m is None:
        return "-"
    return f"{m:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else f"{m:.0f}"
print(f"\n{name}, {vs_static['replications']} replications ({vs_static['resampling']}); mean [95% CI]\n")
print("| autoscaler | cost | runner-hours | p95 wait s urgent | standard | batch |")
print("|---|---:|---:|---:|---:|---:|")
for label, s in runs:
    print(f"| {label} | {mci(s, 'cost')} | {mci(s, 'runner_hours')} | " +
          " | ".join(mci(s, 'qos', c, 'wait_p95_s') for c in classes) + " |")
print("\nPaired differences (predictive - other), mean [95% CI], * = significant (the interval excludes 0)\n")
print("| predictive - | cost | p95 wait s urgent | standard | batch |")
print("|---|---:|---:|---:|---:|")
def d(diff, *path):
    for p in path:
        diff = diff.get(p, {}) if isinstance(diff, dict) else {}
    if not diff or "mean" not in diff:
        return "-"
    star = " *" if diff["significant"] else ""
    return f"{diff['mean']:.1f} [{diff['ci95'][0]:.1f}, {diff['ci95'][1]:.1f}]{star}"
for label, c in (("static", vs_static), (labels[1], vs_reactive)):
    dd = c["differences"]
    print(f"| {label} | {d(dd, 'cost')} | " +
          " | ".join(d(dd, 'qos', k, 'wait_p95_s') for k in classes) + " |")
PY
}

if [[ $WHAT == all || $WHAT == synthetic ]]; then
  scenarios synthetic "$ROOT/simulator/fleets/autoscale-ci.toml" 'synthetic = { seed = 1, days = 7 }'
  table synthetic "Synthetic CI week (seeds 1..$N)"
fi
if [[ $WHAT == all || $WHAT == defaults ]]; then
  default_scenarios
  table defaults "Synthetic CI week, every setting at its default (seeds 1..$N)"
fi
if [[ $WHAT == all || $WHAT == travis ]]; then
  scenarios travis "$ROOT/simulator/fleets/travis.toml" "trace = \"$D/travistorrent_cesel/projects\""
  table travis "TravisTorrent (145 projects)"
fi
if [[ $WHAT == all || $WHAT == plan ]]; then
  for bound in mean prediction every; do
    "$SIM" plan --target 'standard:p95<=300' --replications "$N" --validate "$N" \
      --bound "$bound" -q --format json >"$OUT/plan-$bound.json"
    python3 - "$OUT/plan-$bound.json" "$bound" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = r["targets"][0]; v = r["validation"]
pools = ", ".join(f"{p['name']} {p['runners']}" for p in r["pools"])
print(f"\nplan --bound {sys.argv[2]}: {pools}; cost {r['cost']:.0f}; standard p95 mean "
      f"{t['p95_s']:.0f} s, 95% CI [{t['p95_s_ci95'][0]:.0f}, {t['p95_s_ci95'][1]:.0f}], "
      f"bound {t['upper_bound_s']:.0f} s <= 300 s; {r['simulations']} candidates x "
      f"{r['replications']} replications; validation: {v['met_every_target']} of "
      f"{v['replications']} fresh replications met the target ({100 * v['share']:.0f}%)")
print("  fresh replications' standard p95 (s):", [round(x) if x is not None else None for x in v["targets"][0]["p95_s"]])
PY
  done
fi
if [[ $WHAT == all || $WHAT == bench ]]; then
  /usr/bin/time -f "%e s wall, %U s user, %M KiB max RSS" \
    "$SIM" run --replications "$N" --threads 2 -q --format json >"$OUT/bench.json"
fi
