//! Replications: N workloads that differ only in the workload's randomness, the same N
//! for every policy or fleet compared (common random numbers), and the runs over them
//! spread across cores.
//!
//! - Synthetic workload: replication `i` is the generator with seed `base + first + i`
//!   (`first` = 0 for a run; a plan's validation takes the seeds after the search's).
//! - Trace: a local block bootstrap of its arrivals. Blocks are calendar weeks when the
//!   trace spans at least [`WEEKS_FROM_DAYS`] days, else calendar days. Each block of
//!   the replication is a block of the trace drawn at random among those of the same
//!   kind near it: for days, a day of the same kind (Monday to Friday, or weekend) within
//!   [`DAY_WINDOW`] days; for weeks, a week within [`WEEK_WINDOW`] weeks. So the daily
//!   shape (whole days are kept), the weekly shape (weekdays stay weekdays) and a long
//!   trace's trend are kept; only which day or week happened varies. A pipeline goes
//!   with the block of its creation, whole; the draws are seeded by `(base, first + i)`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustci_datasets::record::JobRecord;

use serde_json::Value;

use crate::interval::summarise;
use crate::report::Report;
use crate::scenario::{Scenario, Workload, WorkloadSpec};
use crate::simulate::SimError;

/// A trace spanning at least this many days is resampled by weeks, else by days.
pub const WEEKS_FROM_DAYS: i64 = 56;
/// A day is drawn among the days of its kind within this many days of it.
pub const DAY_WINDOW: i64 = 14;
/// A week is drawn among the weeks within this many weeks of it.
pub const WEEK_WINDOW: i64 = 4;

const DAY_S: i64 = 86_400;

/// How the replications of a workload differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resampling {
    /// The synthetic generator's seeds.
    Seeds,
    /// Block bootstrap of a trace's days.
    Days,
    /// Block bootstrap of a trace's weeks.
    Weeks,
}

impl Resampling {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Seeds => "synthetic seeds",
            Self::Days => "block bootstrap of whole days",
            Self::Weeks => "block bootstrap of whole weeks",
        }
    }
}

/// Which replications: `n` of them from number `first` on, seeded by `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replications {
    pub n: usize,
    pub first: usize,
    pub base: u64,
}

/// Makes replication `i`'s workload on demand, so a run over N replications holds only
/// the ones being simulated (TravisTorrent resampled 20 times at once is over 10 GB).
#[derive(Debug, Clone, Copy)]
pub struct Replicator<'a> {
    spec: &'a WorkloadSpec,
    loaded: &'a Workload,
    how: Resampling,
    base: u64,
}

impl<'a> Replicator<'a> {
    /// Replications of `loaded` (the workload `spec` gives), seeded by `base`.
    pub fn new(spec: &'a WorkloadSpec, loaded: &'a Workload, base: u64) -> Self {
        let how = match spec {
            WorkloadSpec::Synthetic(_) => Resampling::Seeds,
            WorkloadSpec::Trace { .. } => resampling_of(&loaded.records, loaded.epoch_unix_s),
        };
        Self {
            spec,
            loaded,
            how,
            base,
        }
    }

    pub fn resampling(&self) -> Resampling {
        self.how
    }

    /// Replication number `i` (counted from 0 over every set: search, confirmation,
    /// validation).
    pub fn make(&self, i: usize) -> Result<Workload, SimError> {
        match self.spec {
            WorkloadSpec::Synthetic(cfg) => {
                let mut c = (**cfg).clone();
                c.seed = cfg.seed.wrapping_add(i as u64);
                WorkloadSpec::Synthetic(Box::new(c)).load()
            }
            WorkloadSpec::Trace { .. } => Ok(bootstrap(self.loaded, self.how, self.base, i as u64)),
        }
    }

    /// Replications `first..first + n`, made on `threads` threads and all held (for
    /// searches that run each many times).
    pub fn many(&self, first: usize, n: usize, threads: usize) -> Result<Vec<Workload>, SimError> {
        par_map(n, threads, &|i| self.make(first + i))
    }
}

/// The replications' workloads, generated or resampled on `threads` threads, all held
/// at once (for searches that run each many times).
pub fn workloads(
    spec: &WorkloadSpec,
    loaded: &Workload,
    reps: Replications,
    threads: usize,
) -> Result<(Resampling, Vec<Workload>), SimError> {
    let r = Replicator::new(spec, loaded, reps.base);
    Ok((r.resampling(), r.many(reps.first, reps.n, threads)?))
}

/// The calendar day (Unix days) of second `t` of a workload whose time 0 is `epoch`.
fn day_of(epoch: i64, t: i64) -> i64 {
    (epoch + t).div_euclid(DAY_S)
}

/// A record's block time: its pipeline's creation, else its submission.
fn block_time(r: &JobRecord) -> i64 {
    r.pipeline.as_ref().map_or(r.submit_s, |p| p.created_s)
}

/// Days or weeks, by the rule of the module's documentation.
pub fn resampling_of(records: &[JobRecord], epoch: i64) -> Resampling {
    let days = records.iter().map(|r| day_of(epoch, block_time(r)));
    let (lo, hi) = days.fold((i64::MAX, i64::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
    if hi >= lo && hi - lo + 1 >= WEEKS_FROM_DAYS {
        Resampling::Weeks
    } else {
        Resampling::Days
    }
}

/// Monday to Friday (0) or the weekend (1) of Unix day `d` (1970-01-01 was a Thursday).
fn day_kind(d: i64) -> u8 {
    u8::from((d + 3).rem_euclid(7) >= 5)
}

/// Replication `stream` of a trace: its blocks (days or weeks, see the module) redrawn
/// with a generator seeded by `(base, stream)`. The result has the trace's span and
/// block calendar; records are shifted by whole blocks and renamed `ID@bK` (K the block
/// they now fill), so a block drawn twice gives distinct jobs and pipelines.
pub fn bootstrap(w: &Workload, how: Resampling, base: u64, stream: u64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(base);
    rng.set_stream(stream);
    let epoch = w.epoch_unix_s;
    // Blocks are numbered by Unix day, or by Monday-based Unix week.
    let (block_s, block_of): (i64, Box<dyn Fn(i64) -> i64>) = match how {
        Resampling::Weeks => (
            7 * DAY_S,
            Box::new(move |t| (day_of(epoch, t) + 3).div_euclid(7)),
        ),
        _ => (DAY_S, Box::new(move |t| day_of(epoch, t))),
    };
    let mut by_block: std::collections::BTreeMap<i64, Vec<&JobRecord>> = Default::default();
    for r in &w.records {
        by_block.entry(block_of(block_time(r))).or_default().push(r);
    }
    let (Some(&lo), Some(&hi)) = (by_block.keys().next(), by_block.keys().next_back()) else {
        return w.clone();
    };
    let mut records = Vec::with_capacity(w.records.len());
    for k in lo..=hi {
        let (window, same_kind): (i64, bool) = match how {
            Resampling::Weeks => (WEEK_WINDOW, false),
            _ => (DAY_WINDOW, true),
        };
        // Candidates: every block of the trace's span within the window (and of the same
        // day kind), empty ones included: a quiet day is part of the shape.
        let candidates: Vec<i64> = (k - window..=k + window)
            .filter(|&j| j >= lo && j <= hi)
            .filter(|&j| !same_kind || day_kind(j) == day_kind(k))
            .collect();
        let j = candidates[rng.gen_range(0..candidates.len())];
        let shift = (k - j) * block_s;
        for r in by_block.get(&j).into_iter().flatten() {
            let mut r = (*r).clone();
            r.submit_s += shift;
            r.id = format!("{}@b{k}", r.id);
            if let Some(p) = r.pipeline.as_mut() {
                p.created_s += shift;
                p.id = format!("{}@b{k}", p.id);
            }
            records.push(r);
        }
    }
    records.sort_by_key(|r| r.submit_s);
    Workload {
        records,
        name: format!("{} ({} #{stream})", w.name, how.describe()),
        ..w.clone()
    }
}

/// `a` and `b` each run on replications `0..n` of `replicator` (common random numbers:
/// replication `i` is the same workload for both, made once and run by one thread),
/// `threads` replications at a time. Reports in replication order, `a`'s then `b`'s;
/// `progress` gets the number of runs done.
pub fn paired_reports(
    a: &Scenario<'_>,
    b: &Scenario<'_>,
    replicator: &Replicator<'_>,
    n: usize,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<Report>, Vec<Report>), SimError> {
    let runs = AtomicUsize::new(0);
    let both = par_map(n, threads, &|i| {
        let w = replicator.make(i)?;
        let run = |which: &Scenario<'_>| {
            let r = Scenario {
                workload: &w,
                ..which.clone()
            }
            .report();
            progress(runs.fetch_add(1, Ordering::Relaxed) + 1);
            r
        };
        Ok::<_, SimError>((run(a)?, run(b)?))
    })?;
    Ok(both.into_iter().unzip())
}

/// Headline metric paths of a report (the terminal tables' rows): top-level figures,
/// then per QoS class, then the pipelines'.
pub fn headline_paths(s: &Value) -> Vec<Vec<String>> {
    let mut paths: Vec<Vec<String>> = [
        "jobs",
        "wait_mean_s",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "bsld_mean",
        "utilization",
        "runner_hours",
        "cost",
    ]
    .iter()
    .map(|k| vec![(*k).to_string()])
    .collect();
    if let Some(qos) = s.get("qos").and_then(Value::as_object) {
        for class in qos.keys() {
            for key in ["wait_p95_s", "within_target"] {
                paths.push(vec!["qos".into(), class.clone(), key.into()]);
            }
        }
    }
    if s.get("pipelines").is_some() {
        for key in ["ttf_mean_s", "ttf_p95_s"] {
            paths.push(vec!["pipelines".into(), key.into()]);
        }
    }
    paths
}

/// The value at `path` (object keys) of `v`.
pub fn at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k.as_str()))
}

/// `mean [low, high]` of the metric at `path` of a summary ("–" where it has none).
fn mean_ci(s: &Value, path: &[String]) -> String {
    let Some((last, parent)) = path.split_last() else {
        return String::new();
    };
    let Some(parent) = at(s, parent) else {
        return "–".into();
    };
    let Some(mean) = parent.get(last.as_str()).and_then(Value::as_f64) else {
        return "–".into();
    };
    match parent
        .get(format!("{last}{}", crate::interval::CI_SUFFIX))
        .and_then(Value::as_array)
    {
        Some(a) => {
            let f = |i: usize| a.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
            format!("{mean:.2} [{:.2}, {:.2}]", f(0), f(1))
        }
        None => format!("{mean:.2}"),
    }
}

/// The comparison as a text table: per headline metric A's and B's means and
/// intervals, and the paired difference B - A with its interval and whether it is
/// significant.
pub fn comparison_table(a: &Value, b: &Value, differences: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>28} {:>28} {:>34}  significant",
        "metric", "A: mean [95% CI]", "B: mean [95% CI]", "B - A: mean [95% CI] (paired)"
    );
    for path in headline_paths(a) {
        let d = at(differences, &path);
        let diff = d.map_or_else(
            || "–".to_string(),
            |d| {
                let f = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(f64::NAN);
                format!(
                    "{:.2} [{:.2}, {:.2}]",
                    f(d.get("mean")),
                    f(d.pointer("/ci95/0")),
                    f(d.pointer("/ci95/1"))
                )
            },
        );
        let sig = match d
            .and_then(|d| d.get("significant"))
            .and_then(Value::as_bool)
        {
            Some(true) => "yes",
            Some(false) => "no",
            None => "–",
        };
        let _ = writeln!(
            out,
            "{:<28} {:>28} {:>28} {:>34}  {sig}",
            path.join("."),
            mean_ci(a, &path),
            mean_ci(b, &path),
            diff
        );
    }
    out
}

/// The summary of per-replication reports (see [`crate::interval::summarise`]) with
/// `replications` (their number) and `resampling` (how they differ) added.
pub fn summary(reports: &[Value], how: Resampling) -> Value {
    let mut s = summarise(reports);
    if let Some(m) = s.as_object_mut() {
        m.insert("replications".into(), Value::from(reports.len()));
        m.insert("resampling".into(), Value::from(how.describe()));
    }
    s
}

/// The headline figures of a summary as a text table: mean and 95% interval.
pub fn summary_table(s: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} replications ({}), mean [95% confidence interval, Student's t]",
        s["replications"],
        s["resampling"].as_str().unwrap_or("")
    );
    for path in headline_paths(s) {
        if at(s, &path).is_some_and(Value::is_number) {
            let _ = writeln!(out, "  {:<32} {}", path.join("."), mean_ci(s, &path));
        }
    }
    out
}

/// `f(0..n)` on `threads` threads (a shared counter hands out the indices), in index
/// order. The first error (lowest index) is returned; once one fails, the others stop
/// taking work.
pub fn par_map<T: Send, E: Send>(
    n: usize,
    threads: usize,
    f: &(dyn Fn(usize) -> Result<T, E> + Sync),
) -> Result<Vec<T>, E> {
    par_map_progress(n, threads, f, &|_| {})
}

/// [`par_map`] calling `progress` with the number done.
pub fn par_map_progress<T: Send, E: Send>(
    n: usize,
    threads: usize,
    f: &(dyn Fn(usize) -> Result<T, E> + Sync),
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<T>, E> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || {
        let mut out = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let r = f(i);
            failed.fetch_or(r.is_err(), Ordering::Relaxed);
            out.push((i, r));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
        }
        out
    };
    let mut all: Vec<(usize, Result<T, E>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.clamp(1, n.max(1)))
            .map(|_| s.spawn(worker))
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustci_datasets::record::PipelineRef;

    /// A trace of `days` days from Monday 2024-01-01 (Unix day 19723), one job per hour,
    /// each day's jobs tagged with the day in `tenant`, and a pipeline every day at noon.
    fn trace(days: i64) -> Workload {
        let epoch = 19_723 * DAY_S;
        let mut records = Vec::new();
        for d in 0..days {
            for h in 0..24 {
                let mut r =
                    JobRecord::new(format!("j{d}-{h}"), format!("day{d}"), d * DAY_S + h * 3600);
                r.run_s = Some(60);
                records.push(r);
            }
            for (n, name) in ["build", "test"].iter().enumerate() {
                let mut r =
                    JobRecord::new(format!("p{d}-{n}"), format!("day{d}"), d * DAY_S + 43_200);
                r.job_name = Some((*name).into());
                r.run_s = Some(60);
                r.pipeline = Some(PipelineRef::new(
                    format!("pipe{d}"),
                    d * DAY_S + 43_200,
                    *name,
                    n as u32,
                ));
                records.push(r);
            }
        }
        Workload {
            records,
            name: "t".into(),
            seed: None,
            epoch_unix_s: epoch,
            meta: Default::default(),
            format: None,
        }
    }

    #[test]
    fn monday_is_a_weekday_and_saturday_is_not() {
        assert_eq!(day_kind(19_723), 0); // Monday 2024-01-01
        assert_eq!(day_kind(19_727), 0); // Friday
        assert_eq!(day_kind(19_728), 1); // Saturday
        assert_eq!(day_kind(19_729), 1); // Sunday
    }

    /// Every day of a replication is one whole day of the trace (all 26 of its jobs, at
    /// the same times of day), of the same kind, and pipelines stay whole.
    #[test]
    fn the_bootstrap_keeps_whole_days() {
        let w = trace(21);
        assert_eq!(resampling_of(&w.records, w.epoch_unix_s), Resampling::Days);
        let mut moved = 0;
        for stream in 0..10 {
            let b = bootstrap(&w, Resampling::Days, 1, stream);
            assert_eq!(b.records.len(), w.records.len());
            let mut days: std::collections::BTreeMap<i64, Vec<&JobRecord>> = Default::default();
            for r in &b.records {
                days.entry(r.submit_s.div_euclid(DAY_S))
                    .or_default()
                    .push(r);
            }
            assert_eq!(days.len(), 21);
            for (d, jobs) in days {
                // One source day fills the whole day.
                let src: std::collections::BTreeSet<&str> =
                    jobs.iter().map(|r| r.tenant.as_str()).collect();
                assert_eq!(src.len(), 1, "day {d}: {src:?}");
                let s: i64 = src.iter().next().unwrap()[3..].parse().unwrap();
                moved += usize::from(s != d);
                assert_eq!(
                    day_kind(19_723 + s),
                    day_kind(19_723 + d),
                    "day {d} from {s}"
                );
                assert!((s - d).abs() <= DAY_WINDOW);
                assert_eq!(jobs.len(), 26);
                let times: Vec<i64> = jobs.iter().map(|r| r.submit_s - d * DAY_S).collect();
                let mut want: Vec<i64> = (0..24).map(|h| h * 3600).collect();
                want.extend([43_200, 43_200]);
                let mut got = times.clone();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "day {d}");
                for r in jobs.iter().filter(|r| r.pipeline.is_some()) {
                    let p = r.pipeline.as_ref().unwrap();
                    assert_eq!(p.created_s, d * DAY_S + 43_200);
                    assert_eq!(p.id, format!("pipe{s}@b{}", 19_723 + d));
                }
            }
            rustci_datasets::check_pipelines(&b.records).unwrap();
        }
        assert!(moved > 0, "no day was ever redrawn");
        // Same stream, same replication; another stream, another one.
        assert_eq!(
            bootstrap(&w, Resampling::Days, 1, 3).records,
            bootstrap(&w, Resampling::Days, 1, 3).records
        );
        assert_ne!(
            bootstrap(&w, Resampling::Days, 1, 3).records,
            bootstrap(&w, Resampling::Days, 1, 4).records
        );
    }

    #[test]
    fn a_long_trace_is_resampled_by_weeks() {
        let w = trace(70);
        assert_eq!(resampling_of(&w.records, w.epoch_unix_s), Resampling::Weeks);
        let b = bootstrap(&w, Resampling::Weeks, 1, 0);
        // Each calendar week holds seven consecutive days of one source week, in order.
        for week in 0..10 {
            let src: Vec<i64> = (0..7)
                .map(|d| {
                    let day = week * 7 + d;
                    let r = b
                        .records
                        .iter()
                        .find(|r| r.submit_s.div_euclid(DAY_S) == day)
                        .unwrap();
                    r.tenant[3..].parse::<i64>().unwrap() - day
                })
                .collect();
            assert!(
                src.iter().all(|&s| s == src[0] && s % 7 == 0),
                "week {week}: {src:?}"
            );
        }
    }

    #[test]
    fn par_map_keeps_order_and_returns_the_first_error() {
        let out = par_map(50, 3, &|i| Ok::<_, String>(i * 2)).unwrap();
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        let e = par_map(50, 1, &|i| if i >= 7 { Err(i) } else { Ok(i) }).unwrap_err();
        assert_eq!(e, 7);
        assert!(par_map(0, 4, &|i| Ok::<_, ()>(i)).unwrap().is_empty());
    }
}
