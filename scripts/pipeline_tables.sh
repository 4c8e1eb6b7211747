#!/usr/bin/env bash
# Pipeline results on the FlowBench and GitLab traces (issue 14, must-shows 1-3): time to
# feedback under FIFO, fair share and critical-path order with four kinds of estimates,
# supersession on the GitLab replay against the cancellations the export recorded, and
# the accuracy of each pipeline's finish projected at its creation. Prints the markdown
# tables of the README's "Pipeline results".
#
#   scripts/pipeline_tables.sh [OUT_DIR]
#
# Every row of a trace replays the same span on the same fleet: the records after the
# first F of the trace (`--replay-from-fraction F`); the model is trained on exactly the
# first F (`rustci retrain --history-fraction F`), and Tsafrir's predictor and the model
# observe that past before the replay starts. Neither trace records a requested time, so
# "requested" is `--default-estimate-s` (3600 s) for every job.
#
# The operating point is chosen by a rule, not by the results: FlowBench is compressed
# to the smallest load (in steps of 0.5) at which FIFO keeps the fleet at least 70% busy
# over the replayed span; GitLab runs on the largest fleet (in steps of 10 runners, from
# 100 down) at which FIFO keeps it at least 70% busy.
#
# Deterministic: the traces are fixed, the model's training is seeded, and the engine
# has no wall clock in it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustci-target}"
D=${RUSTCI_DATASETS:-../shared/datasets}
OUT=${1:-/tmp/rustci-pipelines}
mkdir -p "$OUT"
cargo build --release -q --bin rustci-sim --bin rustci
SIM="$CARGO_TARGET_DIR/release/rustci-sim"
RCI="$CARGO_TARGET_DIR/release/rustci"

# FlowBench: the two workflows run from 2024-03-27 to 04-09 (somospie, then
# pycbc_inference). The other three ran from 04-26 on, after 17 idle days that would
# dominate any utilisation figure of the whole trace. 24 one-slot runners: the testbed's
# 24 worker containers. The first half of the records is the past.
FB_WORKFLOWS=(somospie pycbc_inference)
FB_FRACTION=0.5
FB_RUNNERS=24
# GitLab: the first 30% of the records are three whole pipelines (a dependabot branch,
# main, 7.74.x); the other seven are replayed, among them both refs pushed twice.
GL_FRACTION=0.3
BUSY=0.7

FB="$OUT/flowbench-subset"
mkdir -p "$FB"
for w in "${FB_WORKFLOWS[@]}"; do
  ln -sf "$(realpath "$D/flowbench/$w.zip")" "$FB/$w.zip"
  ln -sf "$(realpath "$D/flowbench/$w.adj.json.gz")" "$FB/$w.adj.json.gz"
done
GL="$D/gitlab_datadog"

fb_run() { # out.json args...
  local out=$1; shift
  "$SIM" run --trace "$FB" --trace-format flowbench --processors "$FB_RUNNERS" \
    --replay-from-fraction "$FB_FRACTION" -q --output "$out" "$@" >/dev/null
}
gl_run() { # out.json args...
  local out=$1; shift
  "$SIM" run --trace "$GL" --trace-format gitlab -q --output "$out" "$@" >/dev/null
}
busy() { jq -e --argjson b "$BUSY" '.utilization >= $b' "$1" >/dev/null; }

# FlowBench load: the smallest multiple of 0.5 at which FIFO keeps the fleet busy.
FB_LOAD=
for l in $(seq 1 0.5 20); do
  fb_run "$OUT/fb-probe.json" --policy fcfs --load "$l"
  if busy "$OUT/fb-probe.json"; then FB_LOAD=$l; break; fi
done
[ -n "$FB_LOAD" ] || { echo "no load up to 20 keeps FlowBench's fleet ${BUSY} busy" >&2; exit 1; }

# GitLab fleet: the largest multiple of 10 runners at which FIFO keeps the fleet busy.
GL_RUNNERS=
for p in $(seq 100 -10 10); do
  gl_run "$OUT/gl-probe.json" --processors "$p" --replay-from-fraction "$GL_FRACTION" \
    --no-supersede --policy fcfs
  if busy "$OUT/gl-probe.json"; then GL_RUNNERS=$p; break; fi
done
[ -n "$GL_RUNNERS" ] || { echo "no fleet of 10-100 runners is kept ${BUSY} busy on GitLab" >&2; exit 1; }

"$RCI" retrain --from "$FB" --trace-format flowbench --history-fraction "$FB_FRACTION" \
  --out "$OUT/fb-model" --force -q --format json >"$OUT/fb-retrain.json"
"$RCI" retrain --from "$GL" --trace-format gitlab --history-fraction "$GL_FRACTION" \
  --out "$OUT/gl-model" --force -q --format json >"$OUT/gl-retrain.json"

rows=(
  "FIFO|fifo|--policy fcfs --predictor requested"
  "fair share|fairshare|--policy fairshare --predictor requested"
  "critical path, requested times|cp-requested|--policy critical-path --predictor requested"
  "critical path, Tsafrir's predictor|cp-tsafrir|--policy critical-path --predictor tsafrir"
  "critical path, model|cp-model|--policy critical-path --predictor model:MODEL"
  "critical path, true run times|cp-true|--policy critical-path --predictor clairvoyant"
  "fair share, critical path inside lanes, model|fs-cp-model|--policy fairshare-cp --predictor model:MODEL"
  "critical path, latest start (before aging), model|cpl-model|--policy critical-path-latest-start --predictor model:MODEL"
  "critical path, latest start (before aging), true run times|cpl-true|--policy critical-path-latest-start --predictor clairvoyant"
  "critical path, oldest pipeline first, model|cpo-model|--policy critical-path-oldest --predictor model:MODEL"
  "critical path, bounded latest start, model|cpb-model|--policy critical-path-bounded --predictor model:MODEL"
)
for r in "${rows[@]}"; do
  IFS='|' read -r _ key args <<<"$r"
  # shellcheck disable=SC2086
  fb_run "$OUT/fb-$key.json" --load "$FB_LOAD" ${args//MODEL/$OUT/fb-model}
  # shellcheck disable=SC2086
  gl_run "$OUT/gl-$key.json" --processors "$GL_RUNNERS" --replay-from-fraction "$GL_FRACTION" \
    --no-supersede ${args//MODEL/$OUT/gl-model}
done

# jq helpers for table cells; `$fifo` is the FIFO row's report of the same trace.
JQ_DEFS='def pct(a; b): ((a - b) / b * 100 * 10 | round / 10) as $p | if $p > 0 then "+\($p)%" else "\($p)%" end;
def share: . * 1000 | round / 10 | "\(.)%";'
pct() { # value reference -> signed percent change (the cells' pct, for the goal lines)
  jq -nr --argjson a "$1" --argjson b "$2" "$JQ_DEFS pct(\$a; \$b)"
}
num() { jq -r "$1" "$2"; }
model_line() { # trace-prefix fraction: the model's and the baselines' MAE on the history's test split
  jq -r --arg f "$2" '"Model (retrain on the first \($f)): MAE \(.model.mae_s | round) s; Tsafrir \(.baselines.tsafrir.mae_s | round) s; last-5 median \(.baselines.last5_median.mae_s | round) s"' "$OUT/$1-retrain.json"
}
table() { # trace-prefix label jq-cell... : one markdown row per policy row
  local prefix=$1 label=$2 cells
  shift 2
  for r in "${rows[@]}"; do
    IFS='|' read -r name key _ <<<"$r"
    cells=$(for e in "$@"; do
      jq -r --slurpfile fifo "$OUT/$prefix-fifo.json" "$JQ_DEFS $e" "$OUT/$prefix-$key.json"
    done | paste -sd'|' | sed 's/|/ | /g')
    echo "| ${label:+$label | }$name | $cells |"
  done
}

echo "FlowBench: ${FB_WORKFLOWS[*]}, $FB_RUNNERS runners, --load $FB_LOAD, --replay-from-fraction $FB_FRACTION"
echo
printf '| policy, estimates | pipelines | utilisation | TTF mean s | TTF p50 s | TTF p95 s | p95 vs FIFO |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
table fb "" .pipelines.ttf_count '.utilization | share' '.pipelines.ttf_mean_s | round' \
  '.pipelines.ttf_p50_s | round' '.pipelines.ttf_p95_s | round' \
  'pct(.pipelines.ttf_p95_s; $fifo[0].pipelines.ttf_p95_s)'
fifo95=$(num .pipelines.ttf_p95_s "$OUT/fb-fifo.json")
m95=$(num .pipelines.ttf_p95_s "$OUT/fb-cp-model.json")
t95=$(num .pipelines.ttf_p95_s "$OUT/fb-cp-true.json")
echo
echo "Goal: critical path with the model >= 20% below FIFO's p95 ($(pct "$m95" "$fifo95")) and within 5% of true run times ($(pct "$m95" "$t95"))."
model_line fb "$FB_FRACTION"
for key in fifo fairshare cp-model; do
  echo "TTF mean per workflow, $key: $(jq -r '.pipelines.tenants | to_entries | map("\(.key) \(.value.ttf_mean_s | round) s (\(.value.count))") | join(", ")' "$OUT/fb-$key.json")"
done

echo
echo "GitLab: $GL_RUNNERS runners, --replay-from-fraction $GL_FRACTION, --no-supersede"
echo
printf '| policy, estimates | pipelines | utilisation | TTF mean s | TTF longest s | mean vs FIFO | longest vs FIFO |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
table gl "" .pipelines.ttf_count '.utilization | share' '.pipelines.ttf_mean_s | round' \
  '.pipelines.ttf_max_s | round' 'pct(.pipelines.ttf_mean_s; $fifo[0].pipelines.ttf_mean_s)' \
  'pct(.pipelines.ttf_max_s; $fifo[0].pipelines.ttf_max_s)'
fifomean=$(num .pipelines.ttf_mean_s "$OUT/gl-fifo.json")
mm=$(num .pipelines.ttf_mean_s "$OUT/gl-cp-model.json")
tm=$(num .pipelines.ttf_mean_s "$OUT/gl-cp-true.json")
echo
echo "Goal (on the mean, 7 pipelines): critical path with the model vs FIFO $(pct "$mm" "$fifomean"), vs true run times $(pct "$mm" "$tm")."
model_line gl "$GL_FRACTION"

# Supersession: the whole GitLab trace (all ten pipelines), FIFO, with and without it,
# on the table's fleet and on one large enough that nothing queues for a runner.
echo
echo "Supersession, GitLab, whole trace, FIFO"
echo
busy_hours() { jq -r --argjson p "$2" '.utilization * $p * .makespan_s / 3600 * 10 | round / 10' "$1"; }
printf '| fleet | superseded pipelines | jobs cancelled | of them running | runner-hours saved | TTF mean s (pipelines) | runner-hours run |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for p in "$GL_RUNNERS" 1000; do
  gl_run "$OUT/gl-sup-$p.json" --processors "$p" --policy fcfs --supersede
  gl_run "$OUT/gl-nosup-$p.json" --processors "$p" --policy fcfs --no-supersede
  f="$OUT/gl-sup-$p.json"
  printf '| %s runners | %s | %s | %s | %s | %s (%s) | %s (without supersession %s) |\n' "$p" \
    "$(num .pipelines.superseded "$f")" \
    "$(num .pipelines.superseded_jobs "$f")" \
    "$(num .pipelines.interrupted_jobs "$f")" \
    "$(jq -r '.pipelines.saved_runner_hours * 10 | round / 10' "$f")" \
    "$(jq -r '.pipelines.ttf_mean_s | round' "$f")" \
    "$(num .pipelines.ttf_count "$f")" \
    "$(busy_hours "$f" "$p")" "$(busy_hours "$OUT/gl-nosup-$p.json" "$p")"
done
# What the export recorded: for each ref with two pipelines in the jobs file, the older
# pipeline's jobs with status `canceled`, and how many of them had started.
python3 - "$GL" <<'PY'
import csv, gzip, sys
from collections import defaultdict
d = sys.argv[1]
refs = {}
for name in ("gitlab_pipelines_2000.csv.gz", "gitlab_pipelines.csv.gz"):
    with gzip.open(f"{d}/{name}", "rt", newline="") as f:
        for row in csv.DictReader(f):
            refs[row["pipeline_id"]] = (row["ref"], row["created_at"])
jobs = defaultdict(list)
with gzip.open(f"{d}/gitlab_jobs.csv.gz", "rt", newline="") as f:
    for row in csv.DictReader(f):
        jobs[row["pipeline_id"]].append(row)
by_ref = defaultdict(list)
for pid in jobs:
    ref, created = refs[pid]
    by_ref[ref].append((created, pid))
total = started = hours = 0
parts, none = [], []
for ref, ps in sorted(by_ref.items()):
    if len(ps) < 2:
        continue
    ps.sort()
    for _, pid in ps[:-1]:
        c = [j for j in jobs[pid] if j["status"] == "canceled"]
        s = [j for j in c if j["started_at"]]
        if not c:
            none.append(ref)
            continue
        total += len(c)
        started += len(s)
        hours += sum(float(j["duration"] or 0) for j in s) / 3600
        parts.append(f"{len(c)} on {ref}")
print(f"| recorded (the export) | {len(parts)} | {total} ({', '.join(parts)}) | {started} had started | "
      f"n/a ({hours:.1f} h run by the started ones) | | |")
if none:
    print(f"\n(Also pushed twice, with nothing cancelled in the older pipeline: {', '.join(none)}.)")
PY

echo
echo "ETA at creation (share of the pipelines that ended normally whose finish, projected right after creation, was within 10% / within 60 s)"
echo
printf '| trace | policy, estimates | pipelines | within 10%% | within 60 s |\n'
printf '|---|---|---:|---:|---:|\n'
table fb FlowBench .pipelines.eta_count '.pipelines.eta_within_10pct | share' '.pipelines.eta_within_60s | share'
table gl GitLab .pipelines.eta_count '.pipelines.eta_within_10pct | share' '.pipelines.eta_within_60s | share'

# The stage-order approximation: the replayed pipelines on a fleet where nothing queues
# for a runner (their time to feedback is then their stage-serialised critical path),
# beside the durations the export recorded for the same pipelines.
gl_run "$OUT/gl-wide.json" --processors 1000 --replay-from-fraction "$GL_FRACTION" \
  --no-supersede --policy fcfs --pipelines-out "$OUT/gl-wide-pipelines.csv"
echo
python3 - "$GL" "$OUT/gl-wide-pipelines.csv" <<'PY'
import csv, gzip, sys
d, replayed = sys.argv[1], sys.argv[2]
recorded = {}
with gzip.open(f"{d}/gitlab_pipelines.csv.gz", "rt", newline="") as f:
    for row in csv.DictReader(f):
        if row["duration"]:
            recorded[row["pipeline_id"]] = float(row["duration"])
with open(replayed, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["ttf_s"]]
rec = [recorded[r["id"]] for r in rows]
sim = [float(r["ttf_s"]) for r in rows]
print(f"Stage order: the {len(rows)} replayed GitLab pipelines took {sum(rec) / len(rec):.0f} s on average "
      f"(longest {max(rec):.0f} s) as recorded; replayed with the stage rule on 1000 runners "
      f"(no queue for a runner) they take {sum(sim) / len(sim):.0f} s (longest {max(sim):.0f} s).")
PY

# FlowBench's ETA without a backlog: on an unloaded fleet (`--load 1`) a run's projection
# at creation is its own critical path by the estimates, so the ratio of projected to
# simulated time to feedback shows the estimates' bias per workflow.
for p in model:"$OUT/fb-model" clairvoyant; do
  fb_run "$OUT/fb-load1.json" --load 1 --policy critical-path --predictor "$p" \
    --pipelines-out "$OUT/fb-load1-pipelines.csv"
  python3 - "$OUT/fb-load1-pipelines.csv" "${p%%:*}" <<'PY'
import csv, statistics, sys
from collections import defaultdict
ratios = defaultdict(list)
with open(sys.argv[1], newline="") as f:
    for r in csv.DictReader(f):
        if r["eta_s"] and r["ttf_s"] and float(r["ttf_s"]) > 0:
            ratios[r["tenant"]].append((float(r["eta_s"]) - float(r["created_s"])) / float(r["ttf_s"]))
parts = ", ".join(f"{t} {statistics.median(v):.2f} ({len(v)} runs)" for t, v in sorted(ratios.items()))
print(f"FlowBench, --load 1, critical path, {sys.argv[2]}: median projected / simulated time to feedback: {parts}")
PY
done
