//! Features of a job, computed causally: only what was known when it was submitted (its
//! own request, its size, the clock, and the runs of the same user / job / branch that
//! had finished by then).
//!
//! | feature | meaning |
//! |---|---|
//! | `log_requested` | ln(1 + requested seconds); missing when the job gave none |
//! | `log_slots` | ln(slots) |
//! | `hour_sin`, `hour_cos` | hour of day on a circle (UTC; missing when the trace's epoch is unknown) |
//! | `weekend` | 1 on Saturday and Sunday |
//! | `{user,job,branch}_count` | ln(1 + runs seen) of that key |
//! | `{..}_last`, `_avg2`, `_med5`, `_max5`, `_mean` | ln(1 + seconds) of the last run, the mean of the last two, median and max of the last five, mean of all |
//! | `{..}_since` | ln(1 + seconds) since that key's last run ended |
//! | `user_used_request` | ln(1 + requested x the user's median used fraction of their request) |
//! | `tsafrir` | ln(1 + Tsafrir's prediction: last-two mean capped at the request) |
//! | extras | trace columns known at submit time (TravisTorrent churn, tests added; GitHub Actions lines changed, jobs in the workflow), sign(x) ln(1 + abs(x)) |
//!
//! Missing values are NaN here; training replaces them with the training median
//! ([`crate::train`]). `job` is "the same job" (job, workflow or application name of the
//! same user), `branch` the same branch of the same user.

use std::collections::BTreeMap;

use rustci_datasets::JobRecord;
use rustci_scheduler::domain::stable_hash;
use rustci_scheduler::predictor::tsafrir_point_ms;
use rustci_scheduler::JobSpec;

use crate::history::{KeyHistory, Keys, Looked};

/// Names of the features every model has, in vector order (extras follow).
pub const BASE_FEATURES: [&str; 33] = [
    "log_requested",
    "log_slots",
    "hour_sin",
    "hour_cos",
    "weekend",
    "user_count",
    "user_last",
    "user_avg2",
    "user_med5",
    "user_max5",
    "user_mean",
    "user_since",
    "user_last_failed",
    "job_count",
    "job_last",
    "job_avg2",
    "job_med5",
    "job_max5",
    "job_mean",
    "job_since",
    "job_last_failed",
    "branch_count",
    "branch_last",
    "branch_avg2",
    "branch_med5",
    "branch_max5",
    "branch_mean",
    "branch_since",
    "branch_last_failed",
    "user_used_request",
    "tsafrir",
    "has_job_history",
    "has_user_history",
];

/// The extra holding a job's size known at submit (TravisTorrent: the builds in the
/// build matrix, `datasets::travis`): run times are remembered per unit of it.
pub const SIZE_EXTRA: &str = rustci_datasets::travis::JOBS_COUNT;
/// The extra saying a build is a pull request's (1) or a push's (0).
pub const PULL_REQUEST_EXTRA: &str = rustci_datasets::travis::IS_PULL_REQUEST;

/// Trace columns that are only known after the job ran (the build's own test counts, an
/// SWF job's CPU time and memory used, a GitLab job's queue time and finish), so using
/// them would leak the answer; and ids rather than quantities (SWF's preceding-job
/// number, the GitLab runner that took the job).
pub const KNOWN_AFTER_RUN: [&str; 8] = [
    "tr_log_num_tests_run",
    "tests_total",
    "avg_cpu_s",
    "used_mem_kb",
    "preceding_job",
    rustci_datasets::gitlab::RUNNER_ID,
    rustci_datasets::gitlab::QUEUED_S,
    rustci_datasets::gitlab::FINISHED_S,
];

/// What the featurizer needs to know about one job.
#[derive(Debug, Clone, Copy)]
pub struct JobInput<'a> {
    pub keys: Keys,
    pub slots: u32,
    pub requested_s: Option<f64>,
    /// Submit time on the history's clock (the one `observe` is given).
    pub submit_s: f64,
    /// Unix seconds of the submission, when the trace's epoch is known.
    pub unix_s: Option<f64>,
    pub extra: Option<&'a BTreeMap<String, f64>>,
    /// Size known at submit ([`SIZE_EXTRA`]), at least 1; 1 without it.
    pub size: f64,
}

impl<'a> JobInput<'a> {
    /// From a trace record; `unix_start` is the trace's epoch (`TraceMeta::unix_start`,
    /// 0 for CI traces that use Unix time).
    pub fn from_record(r: &'a JobRecord, unix_start: Option<i64>) -> Self {
        let mut keys = Keys::new(
            stable_hash(&r.tenant),
            r.job_name.as_deref().map_or(0, stable_hash),
            r.branch.as_deref().map_or(0, stable_hash),
        );
        if let Some(&pr) = r.extra.get(PULL_REQUEST_EXTRA).filter(|v| v.is_finite()) {
            keys = keys.with_pull_request(pr > 0.5);
        }
        Self {
            keys,
            slots: r.slots.max(1),
            requested_s: r.requested_s.filter(|&s| s > 0).map(|s| s as f64),
            submit_s: r.submit_s as f64,
            unix_s: unix_start.map(|u| (u + r.submit_s) as f64),
            extra: Some(&r.extra),
            size: job_size(Some(&r.extra)),
        }
    }

    /// From the core's job spec (simulator and live service). `epoch_s` is the Unix time
    /// of the driver's clock zero, when known.
    pub fn from_spec(spec: &JobSpec, epoch_s: Option<i64>) -> JobInput<'static> {
        let submit_s = spec.submit_ms as f64 / 1000.0;
        JobInput {
            keys: spec_keys(spec),
            slots: spec.slots.max(1),
            requested_s: spec
                .requested_ms
                .filter(|&r| r > 0)
                .map(|r| r as f64 / 1000.0),
            submit_s,
            unix_s: epoch_s.map(|e| e as f64 + submit_s),
            extra: None,
            size: 1.0,
        }
    }
}

/// [`SIZE_EXTRA`] when the job has a finite one, at least 1; else 1.
pub fn job_size(extra: Option<&BTreeMap<String, f64>>) -> f64 {
    extra
        .and_then(|e| e.get(SIZE_EXTRA))
        .copied()
        .filter(|v| v.is_finite())
        .map_or(1.0, |v| v.max(1.0))
}

/// History keys of a core job spec: the tenant is the user.
pub fn spec_keys(spec: &JobSpec) -> Keys {
    Keys::new(
        u64::from(spec.tenant.0) + 1,
        spec.history.name,
        spec.history.branch,
    )
}

fn l(x: f64) -> f64 {
    x.max(0.0).ln_1p()
}

fn opt_l(x: Option<f64>) -> f64 {
    x.map_or(f64::NAN, l)
}

fn key_features(h: Option<&KeyHistory>, now_s: f64, out: &mut Vec<f64>) {
    match h {
        Some(h) if h.count > 0 => {
            out.push((h.count as f64).ln_1p());
            out.push(opt_l(h.last()));
            out.push(opt_l(h.last_two_mean()));
            out.push(opt_l(h.median_recent()));
            out.push(opt_l(h.max_recent()));
            out.push(opt_l(h.mean_all()));
            out.push(l(now_s - h.last_end_s));
            out.push(f64::from(u8::from(h.last_failed)));
        }
        Some(_) => {
            out.push(0.0);
            out.extend([f64::NAN; 7]);
        }
        None => out.extend([f64::NAN; 8]),
    }
}

/// Tsafrir, Etsion and Feitelson (2007): the mean of the user's last two run times,
/// capped at the request; the request (if any) until there are two.
pub fn tsafrir_seconds(user: &KeyHistory, requested_s: Option<f64>) -> Option<f64> {
    let ms = |s: f64| (s * 1000.0).round() as i64;
    match user.last_two() {
        Some((last, prev)) => {
            Some(tsafrir_point_ms(ms(last), ms(prev), requested_s.map(ms)) as f64 / 1000.0)
        }
        None => requested_s,
    }
}

/// The plain predictions a job has at submit time, which the models build on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Median of the last five runs of the same job (the job name's history, or the
    /// user's without one), else the request, else the mean of every run seen, else one
    /// minute: what CI systems show as an ETA, and the anchor the models' log-scale
    /// correction is relative to (a tree ensemble corrects a good guess far better than it
    /// re-derives a median from its inputs).
    pub last5_s: f64,
    /// Tsafrir's last-two mean capped at the request (the user's last run, then the
    /// global mean, when there is less history).
    pub tsafrir_s: f64,
    /// Median of the last five runs on the same branch (the user's branch), else
    /// `last5_s`: where a trace has no job names (TravisTorrent), a branch's builds are
    /// more alike than a project's.
    pub branch_s: f64,
    /// Weighted median (recent runs weigh more) per unit of size of the most specific
    /// key with history ([`crate::history::History::look`]), times this job's size;
    /// else `last5_s`. On TravisTorrent a branch's pushes and pull requests differ, and
    /// a build's duration grows with its matrix. A stack input only: as a feature of
    /// the linear model and forest it did not lower TravisTorrent's MAE (405 s either
    /// way) and moved the forests of the SWF logs (HPC2N 20,929 -> 21,786 s).
    pub keyed_s: f64,
    pub requested_s: Option<f64>,
}

impl Baseline {
    /// `size`: the job's [`JobInput::size`].
    pub fn of(looked: &Looked, requested_s: Option<f64>, size: f64) -> Self {
        let fallback = looked.global.mean_all().unwrap_or(60.0);
        let last5_s = looked
            .job
            .unwrap_or(looked.user)
            .median_recent()
            .or(requested_s)
            .unwrap_or(fallback);
        Self {
            last5_s,
            branch_s: looked
                .branch
                .and_then(|b| b.median_recent())
                .unwrap_or(last5_s),
            keyed_s: looked.keyed_per_unit.map_or(last5_s, |m| m * size.max(1.0)),
            tsafrir_s: tsafrir_seconds(&looked.user, requested_s)
                .or(looked.user.last())
                .unwrap_or(fallback),
            requested_s,
        }
    }
}

/// Appends the feature vector of `input` (base features, then `extras` in order) to `out`.
pub fn featurize(input: &JobInput<'_>, looked: &Looked, extras: &[String], out: &mut Vec<f64>) {
    out.push(opt_l(input.requested_s));
    out.push(f64::from(input.slots.max(1)).ln());
    match input.unix_s {
        Some(u) => {
            let hour = (u / 3600.0).rem_euclid(24.0);
            let angle = hour / 24.0 * std::f64::consts::TAU;
            out.push(angle.sin());
            out.push(angle.cos());
            // 1970-01-01 was a Thursday: day 0 -> index 3 with Monday = 0.
            let dow = ((u / 86_400.0).floor() as i64 + 3).rem_euclid(7);
            out.push(if dow >= 5 { 1.0 } else { 0.0 });
        }
        None => out.extend([f64::NAN; 3]),
    }
    key_features(Some(&looked.user), input.submit_s, out);
    key_features(looked.job.as_ref(), input.submit_s, out);
    key_features(looked.branch.as_ref(), input.submit_s, out);
    let used = match (looked.user.used_fraction(), input.requested_s) {
        (Some(f), Some(r)) => l(f * r),
        _ => f64::NAN,
    };
    out.push(used);
    out.push(opt_l(tsafrir_seconds(&looked.user, input.requested_s)));
    out.push(f64::from(u8::from(looked.job.is_some_and(|j| j.count > 0))));
    out.push(f64::from(u8::from(looked.user.count > 0)));
    for name in extras {
        let v = input
            .extra
            .and_then(|e| e.get(name))
            .copied()
            .filter(|v| v.is_finite())
            .map_or(f64::NAN, |v| v.signum() * v.abs().ln_1p());
        out.push(v);
    }
}

/// The extra trace columns worth using: known at submit time and present in at least
/// 30% of `records`. Sorted by name so an artifact's feature list is stable.
pub fn choose_extras<'a>(records: impl Iterator<Item = &'a JobRecord>) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut n = 0usize;
    for r in records {
        n += 1;
        for (k, v) in &r.extra {
            if v.is_finite() && !KNOWN_AFTER_RUN.contains(&k.as_str()) {
                *seen.entry(k.as_str()).or_default() += 1;
            }
        }
    }
    seen.into_iter()
        .filter(|&(_, c)| c * 10 >= n * 3)
        .map(|(k, _)| k.to_string())
        .collect()
}

/// Full feature names: base, then extras prefixed `extra:`.
pub fn feature_names(extras: &[String]) -> Vec<String> {
    BASE_FEATURES
        .iter()
        .map(|s| s.to_string())
        .chain(extras.iter().map(|e| format!("extra:{e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    #[test]
    fn vector_length_matches_the_names() {
        let extras = vec!["git_diff_src_churn".to_string()];
        let mut rec = JobRecord::new("1", "alice", 100);
        rec.requested_s = Some(600);
        rec.extra.insert("git_diff_src_churn".into(), 12.0);
        let input = JobInput::from_record(&rec, Some(0));
        let mut out = Vec::new();
        featurize(
            &input,
            &History::default().look(input.keys),
            &extras,
            &mut out,
        );
        assert_eq!(out.len(), feature_names(&extras).len());
        assert!((out[0] - 601f64.ln()).abs() < 1e-12);
        assert!((out[BASE_FEATURES.len()] - 13f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn tsafrir_caps_at_the_request() {
        let mut h = KeyHistory::default();
        assert_eq!(tsafrir_seconds(&h, Some(100.0)), Some(100.0));
        h.push(300.0, None, 0.0, false);
        h.push(100.0, None, 0.0, false);
        assert_eq!(tsafrir_seconds(&h, Some(150.0)), Some(150.0));
        assert_eq!(tsafrir_seconds(&h, None), Some(200.0));
    }

    #[test]
    fn leaky_columns_are_never_chosen() {
        let mut recs = Vec::new();
        for i in 0..10 {
            let mut r = JobRecord::new(i.to_string(), "p", i);
            r.extra.insert("tr_log_num_tests_run".into(), 5.0);
            r.extra.insert("gh_sloc".into(), 5.0);
            recs.push(r);
        }
        assert_eq!(choose_extras(recs.iter()), vec!["gh_sloc".to_string()]);
    }
}
