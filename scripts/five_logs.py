#!/usr/bin/env python3
"""Issue 19's table: the model `rustci retrain --history-fraction 0.5` makes with its
defaults, against EASY on requested times, EASY++ on Tsafrir's predictor and EASY++ on
true run times (`--predictor clairvoyant`), on five SWF logs; bounded slowdown of all
jobs and of the second half (jobs the model never saw), each the mean over replays at
perturbed arrival rates (`--load`), with the lowest and highest replay.

    scripts/five_logs.py [--out DIR] [--loads 0.995,0.9975,1,1.0025,1.005] [--jobs 2] [LOG ...]

Needs release binaries (`cargo build --release`; `CARGO_TARGET_DIR` honoured) and the
datasets folder (`RUSTCI_DATASETS`, default ../shared/datasets). Prints a Markdown table
and writes DIR/five-logs.json with every replay's figures.
"""
import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time

LOGS = {
    "KTH-SP2": "KTH-SP2-1996-2.1-cln.swf.gz",
    "SDSC-SP2": "SDSC-SP2-1998-4.2-cln.swf.gz",
    "CTC-SP2": "CTC-SP2-1996-3.1-cln.swf.gz",
    "HPC2N": "HPC2N-2002-2.2-cln.swf.gz",
    "SDSC-BLUE": "SDSC-BLUE-2000-4.2-cln.swf.gz",
}
# (column, --policy, --predictor); the model's predictor is filled in per log.
CONFIGS = [
    ("model", "easy++", None),
    ("easy", "easy", "requested"),
    ("tsafrir", "easy++", "tsafrir"),
    ("clairvoyant", "easy++", "clairvoyant"),
]


def jobs_of(swf):
    """(submit s, bounded slowdown) of every job of a simulator's SWF output, in submit
    order; the 10 s bound as the simulator's report counts it."""
    rows = []
    with open(swf, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                raise ValueError(f"{swf}:{number}: not text (a compressed file?); give the "
                                 "simulator's --swf-out output") from None
            if line.startswith(";") or not line.strip():
                continue
            x = line.split()
            try:
                submit, wait, run = float(x[1]), float(x[2]), float(x[3])
            except (IndexError, ValueError):
                raise ValueError(f"{swf}:{number}: not an SWF job line: "
                                 f"{line.strip()[:60]!r}") from None
            if run < 0 or wait < 0:
                continue
            rows.append((submit, max(1.0, (wait + run) / max(run, 10.0))))
    rows.sort()
    return rows


def bsld(swf):
    """Mean bounded slowdown of all jobs and of the later half by submit: the report
    has no second-half figure."""
    rows = jobs_of(swf)
    half = rows[len(rows) // 2:]
    return sum(b for _, b in rows) / len(rows), sum(b for _, b in half) / len(half)


def run(sim, trace, out, log, column, policy, predictor, load):
    stem = os.path.join(out, f"{log}-{column}-{load}")
    subprocess.run(
        [sim, "run", "--trace", trace, "--trace-format", "swf", "--policy", policy,
         "--predictor", predictor, "--load", str(load), "-q", "--output", stem + ".json",
         "--swf-out", stem + ".swf"],
        check=True, stdout=subprocess.DEVNULL)
    report = json.load(open(stem + ".json"))
    _, second = bsld(stem + ".swf")
    os.remove(stem + ".swf")
    return {"log": log, "column": column, "load": load, "bsld_all": report["bsld_mean"],
            "bsld_second_half": second, "model_usage": report.get("model_usage")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/rustci-five-logs")
    ap.add_argument("--loads", default="0.995,0.9975,1,1.0025,1.005")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("logs", nargs="*", default=list(LOGS))
    a = ap.parse_args()
    data = os.environ.get("RUSTCI_DATASETS", "../shared/datasets")
    bins = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release")
    sim, rustci = os.path.join(bins, "rustci-sim"), os.path.join(bins, "rustci")
    loads = [float(x) for x in a.loads.split(",")]
    os.makedirs(a.out, exist_ok=True)
    results, retrains = [], {}
    for log in a.logs:
        trace = os.path.join(data, "pwa_swf", LOGS[log])
        model = os.path.join(a.out, f"{log}-model")
        t0 = time.time()
        r = subprocess.run(
            [rustci, "retrain", "--from", trace, "--trace-format", "swf", "--history-fraction",
             "0.5", "--out", model, "--force", "-q", "--format", "json"],
            check=True, capture_output=True, text=True)
        rep = json.loads(r.stdout)
        with open(os.path.join(a.out, f"{log}-retrain.json"), "w") as f:
            f.write(r.stdout)
        retrains[log] = {"seconds": round(time.time() - t0, 1), "planning": rep["planning"],
                         "mae_s": rep["model"]["mae_s"],
                         "tsafrir_mae_s": rep["baselines"]["tsafrir"]["mae_s"]}
        print(f"{log}: retrained in {retrains[log]['seconds']} s, chose "
              f"{rep['planning']['estimate']} + {rep['planning']['correction']}, "
              f"{rep['planning'].get('target')} scale; held-out MAE {rep['model']['mae_s']:.0f} s",
              file=sys.stderr)
        with cf.ThreadPoolExecutor(a.jobs) as pool:
            futs = [pool.submit(run, sim, trace, a.out, log, col, pol, pred or f"model:{model}", load)
                    for col, pol, pred in CONFIGS for load in loads]
            results += [f.result() for f in futs]
    json.dump({"loads": loads, "retrain": retrains, "runs": results},
              open(os.path.join(a.out, "five-logs.json"), "w"), indent=1)

    def cell(log, col, key):
        v = [r[key] for r in results if r["log"] == log and r["column"] == col]
        return sum(v) / len(v), min(v), max(v)

    print("| log | chosen | model, defaults | EASY, requested | EASY++, Tsafrir | EASY++, clairvoyant "
          "| model vs clairvoyant |")
    print("|---|---|---|---|---|---|---|")
    for log in a.logs:
        p = retrains[log]["planning"]
        cells = []
        for key in ("bsld_all", "bsld_second_half"):
            cells.append([cell(log, c, key) for c, _, _ in CONFIGS])
        def fmt(i):
            (m, lo, hi), (m2, lo2, hi2) = cells[0][i], cells[1][i]
            bold = "**" if i == 0 and all(m < cells[0][j][0] and m2 < cells[1][j][0] for j in (1, 2)) else ""
            return f"{bold}{m:.2f}{bold} ({lo:.1f}-{hi:.1f}); 2nd half {m2:.2f} ({lo2:.1f}-{hi2:.1f})"
        gap = cells[0][0][0] / cells[0][3][0] - 1
        gap2 = cells[1][0][0] / cells[1][3][0] - 1
        print(f"| {log} | {p['estimate']} + {p['correction']} | {fmt(0)} | {fmt(1)} | {fmt(2)} | {fmt(3)} "
              f"| {gap:+.0%} (2nd half {gap2:+.0%}) |")


if __name__ == "__main__":
    main()
