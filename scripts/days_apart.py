#!/usr/bin/env python3
"""Which days make the difference between two replays of one trace: the mean bounded
slowdown of each replay, and the days whose jobs move it most, from the simulator's SWF
output (`rustci-sim run ... --swf-out FILE`). A day's share is its jobs' summed bounded
slowdown difference over the log's job count, so the shares add up to the difference in
the means. Further replays (e.g. `--predictor clairvoyant`) are shown beside, per day.

    scripts/days_apart.py A.swf B.swf [C.swf ...] [--top 10] [--day-s 86400]

Example (issue 19's HPC2N cell, model against Tsafrir, true run times beside):

    rustci-sim run --trace HPC2N-2002-2.2-cln.swf.gz --trace-format swf --policy easy++ \\
        --predictor model:DIR -q --swf-out m.swf
    rustci-sim run ... --predictor tsafrir -q --swf-out t.swf
    rustci-sim run ... --predictor clairvoyant -q --swf-out c.swf
    scripts/days_apart.py m.swf t.swf c.swf
"""
import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
from five_logs import jobs_of  # noqa: E402


def by_day(rows, first, day_s):
    """{day: (jobs, summed bounded slowdown)} on the replay's own clock."""
    days = defaultdict(lambda: [0, 0.0])
    for submit, b in rows:
        d = days[int((submit - first) // day_s)]
        d[0] += 1
        d[1] += b
    return days


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("swf", nargs="+", help="simulator SWF outputs of one trace; the first two are compared")
    ap.add_argument("--top", type=int, default=10, help="days to list (default 10)")
    ap.add_argument("--day-s", type=float, default=86400.0, help="length of a day in seconds")
    args = ap.parse_args()
    if len(args.swf) < 2:
        ap.error("give at least two replays")
    if not args.day_s > 0 or args.top < 0:
        ap.error("--day-s must be positive and --top not negative")
    runs = []
    for path in args.swf:
        try:
            rows = jobs_of(path)
        except OSError as e:
            sys.exit(f"days_apart: {path}: {e.strerror}")
        except ValueError as e:
            sys.exit(f"days_apart: {e}")
        if not rows:
            sys.exit(f"days_apart: {path}: no jobs")
        runs.append(rows)
    n = len(runs[0])
    if any(len(r) != n for r in runs):
        sys.exit("days_apart: the replays hold different job counts "
                 + ", ".join(f"{p}: {len(r)}" for p, r in zip(args.swf, runs))
                 + "; compare replays of one trace")
    # Days are counted from each replay's own first submit.
    days = [by_day(r, r[0][0], args.day_s) for r in runs]
    means = [sum(b for _, b in r) / n for r in runs]
    names = [os.path.basename(p) for p in args.swf]
    print(f"{n} jobs; mean bounded slowdown " + ", ".join(f"{a} {m:.2f}" for a, m in zip(names, means)))
    print(f"difference {names[0]} - {names[1]}: {means[0] - means[1]:+.2f}")
    share = {d: (days[0][d][1] - days[1].get(d, (0, 0.0))[1]) / n for d in days[0]}
    share.update({d: -days[1][d][1] / n for d in days[1] if d not in days[0]})
    top = sorted(share, key=lambda d: -abs(share[d]))[:args.top]
    print(f"\n{'day':>5} {'jobs':>6} " + " ".join(f"{a[:12]:>12}" for a in names) + "   share")
    for d in sorted(top):
        jobs = max(ds.get(d, (0, 0.0))[0] for ds in days)
        cells = " ".join(f"{ds[d][1] / ds[d][0]:12.1f}" if d in ds else f"{'-':>12}" for ds in days)
        print(f"{d:5d} {jobs:6d} {cells}  {share[d]:+6.2f}")
    rest = sum(v for d, v in share.items() if d not in top)
    print(f"other days together: {rest:+.2f}")


if __name__ == "__main__":
    main()
