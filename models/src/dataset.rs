//! One causal pass over a job history: every job's features and baseline predictions as
//! they were at its submission, with the history fed by earlier jobs' finishes in time
//! order (a finish at the same second as a submit counts as known).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustci_datasets::{JobRecord, Outcome};

use crate::features::{feature_names, featurize, Baseline, JobInput};
use crate::history::{History, Keys};

/// Features, targets and baselines of a history, row-major, in submit order.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub extras: Vec<String>,
    pub names: Vec<String>,
    /// Row-major, `len() == rows() * width()`; NaN = missing.
    pub x: Vec<f64>,
    pub run_s: Vec<f64>,
    pub submit_s: Vec<f64>,
    pub failed: Vec<bool>,
    /// Runs of the same job seen before (the job key, or the user without a job name).
    pub same_job_runs: Vec<u64>,
    pub baseline_requested: Vec<Option<f64>>,
    pub baseline_tsafrir: Vec<f64>,
    pub baseline_last5: Vec<f64>,
    pub baseline_branch: Vec<f64>,
    pub baseline_keyed: Vec<f64>,
    /// When the job finished (submit + wait + run, the trace's clock).
    pub end_s: Vec<f64>,
    /// The key its residual is filed under for per-key calibration ([`calibration_key`]).
    pub calibration_key: Vec<u64>,
    /// Records left out, by reason.
    pub skipped_no_run_time: usize,
}

impl Prepared {
    pub fn width(&self) -> usize {
        self.names.len()
    }
    pub fn rows(&self) -> usize {
        self.run_s.len()
    }
    pub fn baseline(&self, i: usize) -> Baseline {
        Baseline {
            last5_s: self.baseline_last5[i],
            tsafrir_s: self.baseline_tsafrir[i],
            branch_s: self.baseline_branch[i],
            keyed_s: self.baseline_keyed[i],
            requested_s: self.baseline_requested[i],
        }
    }
    pub fn row(&self, i: usize) -> &[f64] {
        let w = self.width();
        &self.x[i * w..(i + 1) * w]
    }
}

/// Builds the table of `records` (sorted by submit time here if they are not).
/// `unix_start` is the trace's epoch for time-of-day features.
pub fn prepare(records: &[JobRecord], unix_start: Option<i64>, extras: Vec<String>) -> Prepared {
    let mut order: Vec<usize> = (0..records.len()).collect();
    if !records.windows(2).all(|w| w[0].submit_s <= w[1].submit_s) {
        order.sort_by_key(|&i| records[i].submit_s);
    }
    let mut out = Prepared {
        names: feature_names(&extras),
        extras,
        ..Prepared::default()
    };
    let mut history = History::default();
    // Pending finishes: (end second, record index, row); with each row's keys and size,
    // which the table does not keep (its run time, request and outcome it does).
    let mut finishes: BinaryHeap<Reverse<(i64, usize, usize)>> = BinaryHeap::new();
    let mut keys_size: Vec<(Keys, f64)> = Vec::with_capacity(records.len());
    for &i in &order {
        let r = &records[i];
        let Some(run) = r.run_s.filter(|&s| s >= 0) else {
            out.skipped_no_run_time += 1;
            continue;
        };
        while let Some(&Reverse((end, _, j))) = finishes.peek() {
            if end > r.submit_s {
                break;
            }
            finishes.pop();
            let (keys, size) = keys_size[j];
            // As the core reports an end: a failure or not (the scheduler cannot tell a
            // success from an unknown outcome).
            history.observe(
                keys,
                out.run_s[j],
                out.baseline_requested[j],
                end as f64,
                out.failed[j],
                size,
            );
        }
        let input = JobInput::from_record(r, unix_start);
        let looked = history.look(input.keys);
        featurize(&input, &looked, &out.extras, &mut out.x);
        let base = Baseline::of(&looked, input.requested_s, input.size);
        out.baseline_requested.push(input.requested_s);
        out.baseline_tsafrir.push(base.tsafrir_s);
        out.baseline_last5.push(base.last5_s);
        out.baseline_branch.push(base.branch_s);
        out.baseline_keyed.push(base.keyed_s);
        out.calibration_key.push(calibration_key(input.keys));
        let same = looked.job.unwrap_or(looked.user);
        out.same_job_runs.push(same.count);
        out.run_s.push(run as f64);
        out.submit_s.push(r.submit_s as f64);
        out.failed.push(r.outcome == Outcome::Failure);
        let end = r.submit_s + r.wait_s.unwrap_or(0).max(0) + run;
        out.end_s.push(end as f64);
        finishes.push(Reverse((end, i, keys_size.len())));
        keys_size.push((input.keys, input.size));
    }
    out
}

/// The key a job's calibration residual is filed under: the most specific key it has
/// (job name on GitHub Actions; else the first of [`Keys::chain_keys`]: branch and pull
/// request on TravisTorrent, else branch, else user), whose runs are the most alike.
/// Keys with too few residuals fall back to the global margin
/// (`RunTimeModel::upper_margin`).
pub fn calibration_key(keys: Keys) -> u64 {
    std::iter::once(keys.job)
        .chain(keys.chain_keys())
        .find(|&k| k != 0)
        .unwrap_or(keys.user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{PULL_REQUEST_EXTRA, SIZE_EXTRA};

    fn rec(id: &str, user: &str, submit: i64, wait: i64, run: i64) -> JobRecord {
        let mut r = JobRecord::new(id, user, submit);
        r.wait_s = Some(wait);
        r.run_s = Some(run);
        r.requested_s = Some(1000);
        r
    }

    #[test]
    fn only_finished_jobs_are_history() {
        // b is submitted at 50, while a (submitted 0, ends 100) still runs: b must not
        // see a's run time. c at 100 sees a and b (a finish at the same second counts).
        let recs = vec![
            rec("a", "u", 0, 0, 100),
            rec("b", "u", 50, 0, 10),
            rec("c", "u", 100, 0, 10),
            rec("d", "u", 200, 0, 10),
        ];
        let p = prepare(&recs, None, vec![]);
        assert_eq!(p.rows(), 4);
        assert_eq!(p.same_job_runs, vec![0, 0, 2, 3]);
        // Tsafrir: the request until two runs are known, then their mean (capped).
        assert_eq!(p.baseline_tsafrir, vec![1000.0, 1000.0, 55.0, 55.0]);
        // Last-5 median: the request without history, then the median.
        assert_eq!(p.baseline_last5, vec![1000.0, 1000.0, 55.0, 10.0]);
    }

    #[test]
    fn jobs_without_run_time_are_counted_not_used() {
        let mut r = rec("x", "u", 0, 0, 1);
        r.run_s = None;
        let p = prepare(&[r, rec("y", "u", 1, 0, 5)], None, vec![]);
        assert_eq!((p.rows(), p.skipped_no_run_time), (1, 1));
    }

    #[test]
    fn keyed_median_is_per_unit_of_size_and_the_pr_key_comes_first() {
        let mut recs = Vec::new();
        // A push build of 2 jobs (300 s: 150 per job), then a PR build of 1 (50 s) on
        // the same branch, then a push of 3 and a PR of 1.
        for (i, (pr, jobs, run)) in [
            (0.0, 2.0, 300),
            (1.0, 1.0, 50),
            (0.0, 3.0, 1),
            (1.0, 1.0, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = rec(&i.to_string(), "p", 1000 * i as i64, 0, run);
            r.requested_s = None;
            r.branch = Some("main".into());
            r.extra.insert(PULL_REQUEST_EXTRA.into(), pr);
            r.extra.insert(SIZE_EXTRA.into(), jobs);
            recs.push(r);
        }
        let p = prepare(&recs, None, vec![]);
        // Row 1 (PR) has only the push's history on its branch: 150 per job x 1.
        // Row 2 (push of 3): its own key, 150 x 3. Row 3 (PR): the PR's 50.
        assert_eq!(p.baseline_keyed[1..], [150.0, 450.0, 50.0]);
        assert_eq!(p.end_s[0], 300.0);
        assert_ne!(p.calibration_key[0], p.calibration_key[1]);
    }
}
