#!/usr/bin/env python3
"""How well `rustci retrain`'s held-out choice picks the usage that wins the whole log
(issue 19): for each SWF log, every candidate usage is replayed on the slice retrain
holds out of the first half, and on the whole log; then each choice rule (the mean
bounded slowdown over the held-out jobs, or the typical day: the geometric mean of the
daily means, as `planning::typical_day`) is judged by the whole-log figures of what it
picks.

    scripts/choice_study.py [--out DIR] [--jobs 2] [LOG ...]

As retrain does with `--history-fraction 0.5`: a model trained on the first 35% of
the log is replayed over 35-50% (`--replay-from-fraction 0.7` of the first half) at
loads 0.995, 1 and 1.005; a model trained on the first half is replayed over the whole
log at five loads (0.995-1.005), as `scripts/five_logs.py` does. Both models learn on
the square-root scale. Needs release binaries (`CARGO_TARGET_DIR` honoured) and the
datasets folder (`RUSTCI_DATASETS`, default ../shared/datasets). All five logs take
about 25 minutes on 2 cores; KTH-SP2 alone under a minute.
"""
import argparse
import concurrent.futures as cf
import gzip
import math
import os
import subprocess
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import five_logs  # noqa: E402
from five_logs import LOGS  # noqa: E402

# planning::CANDIDATES, in its order (a tie goes to the earlier one).
CANDIDATES = [
    ("point", "upper"), ("point", "incremental"), ("point", "doubling"),
    ("point", "request"), ("upper", "incremental"), ("upper", "doubling"),
    ("upper", "request"), ("debiased", "upper"), ("debiased", "incremental"),
    ("debiased", "doubling"), ("debiased", "request"), ("p10", "request"),
    ("p20", "request"), ("p30", "request"), ("p40", "request"),
]
HELD_OUT_LOADS = [0.995, 1.0, 1.005]
WHOLE_LOADS = [0.995, 0.9975, 1.0, 1.0025, 1.005]
DAY_S = 86400.0


def binary(name):
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(target, "release", name)


def jobs_of(swf):
    """five_logs.jobs_of, and the file removed."""
    rows = five_logs.jobs_of(swf)
    os.remove(swf)
    return rows


def typical_day(jobs):
    days = defaultdict(list)
    for s, b in jobs:
        days[math.floor(s / DAY_S)].append(b)
    return math.exp(sum(math.log(sum(v) / len(v)) for v in days.values()) / len(days))


def cut(trace, fraction, path):
    with gzip.open(trace, "rt") as f:
        lines = f.read().splitlines()
    header = [l for l in lines if l.startswith(";")]
    records = [l for l in lines if l.strip() and not l.startswith(";")]
    with open(path, "w") as f:
        f.write("\n".join(header + records[: int(len(records) * fraction)]) + "\n")


def retrain(trace, out, params):
    subprocess.run([binary("rustci"), "retrain", "--from", trace, "--trace-format", "swf",
                    "--params", params, "--out", out, "-q", "--format", "json"],
                   check=True, stdout=subprocess.DEVNULL)


def replay(args):
    trace, model, extra, (estimate, correction), load, swf = args
    subprocess.run([binary("rustci-sim"), "run", "--trace", trace, "--trace-format", "swf",
                    "--policy", "easy++", "--predictor", "model:" + model,
                    "--model-estimate", estimate, "--model-correction", correction,
                    "--load", str(load), "-q", "--output", os.devnull, "--swf-out", swf]
                   + extra, check=True, stdout=subprocess.DEVNULL)
    return jobs_of(swf)


def study(log, out, pool):
    data = os.environ.get("RUSTCI_DATASETS", "../shared/datasets")
    trace = os.path.join(data, "pwa_swf", LOGS[log])
    params = os.path.join(out, "sqrt.toml")
    with open(params, "w") as f:
        f.write('target = "sqrt"\n')
    for fraction in (0.35, 0.5):
        cut(trace, fraction, os.path.join(out, f"{log}-{fraction}.swf"))
        retrain(os.path.join(out, f"{log}-{fraction}.swf"), os.path.join(out, f"{log}-m{fraction}"), params)
    held, whole = {}, {}
    for c in CANDIDATES:
        runs = [(os.path.join(out, f"{log}-0.5.swf"), os.path.join(out, f"{log}-m0.35"),
                 ["--replay-from-fraction", "0.7"], c, l, os.path.join(out, f"h-{log}-{c[0]}-{c[1]}-{l}.swf"))
                for l in HELD_OUT_LOADS]
        results = list(pool.map(replay, runs))
        mean = sum(sum(b for _, b in r) / len(r) for r in results) / len(results)
        pooled = []
        for l, r in zip(HELD_OUT_LOADS, results):
            first = min(s for s, _ in r)
            pooled += [((s - first) * l, b) for s, b in r]
        held[c] = (mean, typical_day(pooled))
        runs = [(trace, os.path.join(out, f"{log}-m0.5"), [], c, l,
                 os.path.join(out, f"w-{log}-{c[0]}-{c[1]}-{l}.swf")) for l in WHOLE_LOADS]
        alls, seconds = [], []
        for r in pool.map(replay, runs):
            alls.append(sum(b for _, b in r) / len(r))
            half = r[len(r) // 2:]
            seconds.append(sum(b for _, b in half) / len(half))
        whole[c] = (sum(alls) / len(alls), sum(seconds) / len(seconds))
    return held, whole


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="choice-study")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("logs", nargs="*", default=list(LOGS))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    name = lambda c: f"{c[0]} + {c[1]}"
    print("| log | rule | chosen | whole log | 2nd half | best on the whole log |")
    print("|---|---|---|---|---|---|")
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        for log in a.logs:
            held, whole = study(log, a.out, pool)
            best = min(whole, key=lambda c: whole[c][0])
            for rule, i in (("mean", 0), ("typical day", 1)):
                c = min(CANDIDATES, key=lambda c: held[c][i])  # min keeps the earlier on a tie
                print(f"| {log} | {rule} | {name(c)} | {whole[c][0]:.2f} | {whole[c][1]:.2f} "
                      f"| {name(best)}: {whole[best][0]:.2f} / {whole[best][1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
