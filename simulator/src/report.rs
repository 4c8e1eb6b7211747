//! The run report: aggregate numbers computed from [`RunFacts`], as JSON (stable field
//! names), as a human-readable table, and a per-job CSV.
//!
//! Conventions:
//! - Times are seconds; "wait" is `start_s - submit_s`, "run" is `end_s - start_s`.
//! - Percentiles are nearest-rank (see [`percentile`]).
//! - Bounded slowdown is `max(1, (wait + run) / max(run, 10 s))` (see [`bounded_slowdown`]).
//! - Every float in the report is finite: a quantity that is undefined (e.g. a mean over
//!   zero jobs) is `None` / JSON `null`, never NaN or infinity. The engine never produces
//!   non-finite times; should one arrive anyway, it is reported as `null` (optional fields)
//!   or `0` (the few plain fields), never as NaN.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::outcome::{
    HistoryFacts, JobResult, PipelineFacts, PipelineResult, RunFacts, ScalingFacts, Skipped,
};

/// The run-time floor of the bounded slowdown, seconds: jobs shorter than this count as
/// if they ran this long, so tiny jobs with a short wait do not dominate the mean.
pub const BSLD_THRESHOLD_S: f64 = 10.0;

/// Seconds per hour, for runner-hours and cost.
const SECONDS_PER_HOUR: f64 = 3600.0;

/// How many tenants the human table lists.
const TOP_TENANTS: usize = 10;

/// Aggregate report of one simulation run. Serialized as one flat JSON object whose
/// top-level field names are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Completed (simulated) jobs: the number of rows in `RunFacts::results`.
    pub jobs: u64,
    /// Trace records not simulated, by cause.
    pub skipped: Skipped,
    /// Simulated time span `sim_end_s - sim_start_s`, seconds (0 if negative or not finite).
    pub makespan_s: f64,
    /// Mean wait (start - submit) over all jobs, seconds; null with no jobs.
    pub wait_mean_s: Option<f64>,
    /// Median wait, nearest rank: the smallest wait with at least 50% of waits <= it; null
    /// with no jobs.
    pub wait_p50_s: Option<f64>,
    /// 95th percentile wait, nearest rank: the smallest wait with at least 95% of waits
    /// <= it; null with no jobs.
    pub wait_p95_s: Option<f64>,
    /// 99th percentile wait, nearest rank: the smallest wait with at least 99% of waits
    /// <= it; null with no jobs.
    pub wait_p99_s: Option<f64>,
    /// Mean bounded slowdown `max(1, (wait + run) / max(run, 10 s))` over all jobs; null
    /// with no jobs.
    pub bsld_mean: Option<f64>,
    /// Fleet utilization in [0, 1]: sum over jobs of
    /// `slots * run` divided by `(total slots of the fleet) * makespan`; 0 when the makespan
    /// or the fleet capacity is 0.
    pub utilization: f64,
    /// Runner-hours paid for. A static fleet: sum over pools of `runners * makespan /
    /// 3600`. With an autoscaler: every runner from the moment it was asked for until it
    /// was released (or the end of the run), summed, / 3600 (the static policy gives the
    /// same number as a static fleet).
    pub runner_hours: f64,
    /// Fleet cost: sum over pools of that pool's runner-hours times its `cost_per_hour`.
    pub cost: f64,
    /// Per QoS class, by name: every class of the configuration (even with zero jobs), plus
    /// any class that appears only in job results (with no known wait target).
    pub qos: BTreeMap<String, QosReport>,
    /// Per tenant, by name: every tenant with at least one completed job.
    pub tenants: BTreeMap<String, TenantReport>,
    /// Jain's fairness index over tenants of their mean bounded slowdown,
    /// `(sum x)^2 / (n * sum x^2)`, in (0, 1]; 1.0 with one tenant, null with none.
    pub jain_fairness: Option<f64>,
    /// Per pool, by name: every pool of the fleet, plus any pool that appears only in job
    /// results (listed with 0 runners).
    pub pools: BTreeMap<String, PoolReport>,
    /// Events the engine processed.
    pub events: u64,
    /// Engine throughput `events / wall_s`; null when `wall_s` is 0.
    pub events_per_s: Option<f64>,
    /// Wall-clock time the engine took, seconds.
    pub wall_s: f64,
    /// Scheduling policy name.
    pub policy: String,
    /// Run-time predictor name.
    pub predictor: String,
    /// Workload (trace) name.
    pub workload: String,
    /// Random seed of the run, if any.
    pub seed: Option<u64>,
    /// What the autoscaler did; absent when the run had none (a plain static fleet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscaleReport>,
    /// What the pipelines did; absent when the workload had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<PipelineReport>,
    /// The trace's past the predictor learned before the replay
    /// (`--replay-from-fraction`); absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryFacts>,
    /// With a model predictor: what it planned and corrected with and where each came
    /// from; absent with other predictors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_usage: Option<ModelUsageReport>,
}

/// What a model predictor planned and corrected with, and where each came from:
/// `artifact` (the choice `rustci retrain` stored), `flag` (`--model-estimate`,
/// `--model-correction`) or `default` (an artifact without a choice).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsageReport {
    pub estimate: &'static str,
    pub estimate_from: &'static str,
    pub correction: &'static str,
    pub correction_from: &'static str,
}

/// Time to feedback (creation to end) of the pipelines that ended normally: succeeded,
/// failed or blocked. Cancelled (superseded) pipelines never gave feedback and are left
/// out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtfReport {
    pub count: u64,
    pub ttf_mean_s: Option<f64>,
    pub ttf_p50_s: Option<f64>,
    pub ttf_p95_s: Option<f64>,
    pub ttf_p99_s: Option<f64>,
}

impl TtfReport {
    fn of<'a>(pipelines: impl Iterator<Item = &'a PipelineResult>) -> Self {
        Self::of_sorted(&sorted(
            pipelines.filter_map(PipelineResult::ttf_s).collect(),
        ))
    }

    /// Over times to feedback sorted ascending ([`PipelineFacts::sorted_ttfs`]).
    fn of_sorted(ttfs: &[f64]) -> Self {
        Self {
            count: ttfs.len() as u64,
            ttf_mean_s: mean(ttfs),
            ttf_p50_s: percentile(ttfs, 50.0).and_then(finite),
            ttf_p95_s: percentile(ttfs, 95.0).and_then(finite),
            ttf_p99_s: percentile(ttfs, 99.0).and_then(finite),
        }
    }
}

/// The pipelines' part of the report (field names are a stable interface).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineReport {
    /// Pipelines replayed.
    pub count: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Cancelled: superseded by a newer pipeline of their group.
    pub cancelled: u64,
    /// Ended with jobs that waited for a manual job nobody played.
    pub blocked: u64,
    /// Not ended when the run stopped (a plan's early stop).
    pub unfinished: u64,
    /// Time to feedback over the pipelines that ended normally (see [`TtfReport`]).
    pub ttf_count: u64,
    pub ttf_mean_s: Option<f64>,
    pub ttf_p50_s: Option<f64>,
    pub ttf_p95_s: Option<f64>,
    pub ttf_p99_s: Option<f64>,
    pub ttf_max_s: Option<f64>,
    /// Per QoS class and per tenant of the pipeline (its first job's).
    pub qos: BTreeMap<String, TtfReport>,
    pub tenants: BTreeMap<String, TtfReport>,
    /// Mean time, between creation and end, in which none of a pipeline's jobs ran
    /// (every ended pipeline, cancelled ones too).
    pub wait_mean_s: Option<f64>,
    /// Pipeline jobs that never ran: skipped (recorded so, or by a condition) and
    /// manual jobs nobody played. Not in `skipped` (records not simulated).
    pub skipped_jobs: u64,
    pub manual_jobs: u64,
    /// Pipelines superseded, their jobs cancelled (running ones included), and of those
    /// the running ones.
    pub superseded: u64,
    pub superseded_jobs: u64,
    pub interrupted_jobs: u64,
    /// Runner-hours (slot-hours) supersession saved: the true run times of the jobs it
    /// cancelled before they started, and the rest of the run of those it interrupted.
    pub saved_runner_hours: f64,
    /// Runner-hours interrupted jobs had run (lost work).
    pub lost_runner_hours: f64,
    /// Share of the pipelines that ended normally whose end projected right after
    /// creation was within 10% of their time to feedback, and within 60 s (`null`
    /// without any).
    pub eta_within_10pct: Option<f64>,
    pub eta_within_60s: Option<f64>,
    /// The pipelines those shares are over: ended normally, and projected at creation
    /// (a projection fails when a job it waits for is beyond the look-ahead limit, or
    /// the pipeline ended at its creation).
    pub eta_count: u64,
    /// Cancelled (or unfinished) jobs that never ran and whose name never ran to an end
    /// in the trace: skipped, no run time to replay.
    pub unreplayable_jobs: u64,
    /// Cancelled (or unfinished) jobs replayed with their name's median run time.
    pub median_run_time_jobs: u64,
    /// Pipelines dropped because a job could not run on the fleet.
    pub unschedulable_pipelines: u64,
}

impl PipelineReport {
    pub fn from_facts(f: &PipelineFacts) -> Self {
        let all = &f.pipelines;
        let count = |state: &str| all.iter().filter(|p| p.state == state).count() as u64;
        // The times the run's CDF is drawn from (`plots`), so the figures and the plot
        // cannot part.
        let ttfs = f.sorted_ttfs();
        let overall = TtfReport::of_sorted(&ttfs);
        let mut by_qos: BTreeMap<&str, Vec<&PipelineResult>> = BTreeMap::new();
        let mut by_tenant: BTreeMap<&str, Vec<&PipelineResult>> = BTreeMap::new();
        for p in all {
            by_qos.entry(p.qos.as_str()).or_default().push(p);
            by_tenant.entry(p.tenant.as_str()).or_default().push(p);
        }
        let split = |m: BTreeMap<&str, Vec<&PipelineResult>>| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), TtfReport::of(v.into_iter())))
                .collect()
        };
        let waits: Vec<f64> = all.iter().filter_map(|p| p.wait_s).collect();
        // (within 10%, within 60 s) of the pipelines that ended normally with an ETA.
        let etas: Vec<(bool, bool)> = all
            .iter()
            .filter_map(|p| {
                let ttf = p.ttf_s()?;
                let miss = (p.eta_s? - p.end_s?).abs();
                Some((miss <= 0.1 * ttf, miss <= 60.0))
            })
            .collect();
        let share = |pick: fn(&(bool, bool)) -> bool| {
            (!etas.is_empty())
                .then(|| etas.iter().filter(|e| pick(e)).count() as f64 / etas.len() as f64)
        };
        Self {
            count: all.len() as u64,
            succeeded: count("succeeded"),
            failed: count("failed"),
            cancelled: count("cancelled"),
            blocked: count("blocked"),
            unfinished: count("running"),
            ttf_count: overall.count,
            ttf_mean_s: overall.ttf_mean_s,
            ttf_p50_s: overall.ttf_p50_s,
            ttf_p95_s: overall.ttf_p95_s,
            ttf_p99_s: overall.ttf_p99_s,
            ttf_max_s: ttfs.last().copied().and_then(finite),
            qos: split(by_qos),
            tenants: split(by_tenant),
            wait_mean_s: mean(&waits),
            skipped_jobs: f.skipped_jobs,
            manual_jobs: f.manual_jobs,
            superseded: f.superseded,
            superseded_jobs: f.superseded_jobs,
            interrupted_jobs: f.interrupted_jobs,
            saved_runner_hours: finite_or_zero(f.saved_runner_hours),
            lost_runner_hours: finite_or_zero(f.lost_runner_hours),
            eta_within_10pct: share(|e| e.0),
            eta_within_60s: share(|e| e.1),
            eta_count: etas.len() as u64,
            unreplayable_jobs: f.unreplayable_jobs,
            median_run_time_jobs: f.median_run_time_jobs,
            unschedulable_pipelines: f.unschedulable_pipelines,
        }
    }
}

/// The autoscaler's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscaleReport {
    /// `static`, `reactive` or `predictive`.
    pub policy: String,
    /// The arrival forecast the predictive policy used.
    pub forecast: Option<String>,
    pub interval_s: f64,
    pub evaluations: u64,
    /// Runners asked for (those there at the start included) and released by scale-in
    /// or interruption.
    pub runners_requested: u64,
    pub runners_released: u64,
    /// Most runners paid for at once (ready or provisioning), over all pools.
    pub peak_runners: u64,
    /// Spot interruptions.
    pub interruptions: u64,
    /// Run time lost to interruptions (the jobs ran again), seconds.
    pub retried_work_s: f64,
    /// Interrupted jobs retried on their pool's on-demand fallback.
    pub requeued_to_fallback: u64,
    /// Money saved by spot pools against their on-demand price:
    /// `sum over spot pools of runner_hours * (on_demand - cost_per_hour)`, minus the
    /// retried work at the (runner-hour weighted) on-demand price; null without a spot
    /// pool that has an on-demand price.
    pub spot_saved: Option<f64>,
    /// Jobs still waiting when nothing could change any more (no runner would come).
    pub never_started: u64,
    /// Per pool, by name.
    pub pools: BTreeMap<String, AutoscalePoolReport>,
}

/// One pool under the autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscalePoolReport {
    pub runner_hours: f64,
    /// `runner_hours * cost_per_hour`.
    pub cost: f64,
    /// Most runners paid for at once.
    pub peak_runners: u64,
    /// Runner-hours over the makespan: the time-averaged fleet size.
    pub mean_runners: f64,
    pub requested: u64,
    pub released: u64,
    pub interruptions: u64,
}

/// Report of one QoS class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QosReport {
    /// Completed jobs of this class.
    pub jobs: u64,
    /// Mean wait of this class's jobs, seconds; null with zero jobs.
    pub wait_mean_s: Option<f64>,
    /// Nearest-rank 95th percentile wait of this class's jobs, seconds; null with zero jobs.
    pub wait_p95_s: Option<f64>,
    /// Share in [0, 1] of this class's jobs whose wait is <= the class's wait target (a job
    /// exactly at the target counts as within); null with zero jobs or when the class has
    /// no configured target.
    pub within_target: Option<f64>,
}

/// Report of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantReport {
    /// Completed jobs of this tenant (always >= 1).
    pub jobs: u64,
    /// Mean wait of this tenant's jobs, seconds.
    pub wait_mean_s: f64,
    /// Nearest-rank 95th percentile wait of this tenant's jobs, seconds.
    pub wait_p95_s: f64,
    /// Mean bounded slowdown of this tenant's jobs (>= 1).
    pub bsld_mean: f64,
}

/// Report of one pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolReport {
    /// Completed jobs that ran in this pool.
    pub jobs: u64,
    /// Runners of the pool (static fleet).
    pub runners: u32,
    /// Share in [0, 1] of the pool's capacity used: slot-seconds run there divided by
    /// `runners * slots_per_runner * makespan`; 0 when that capacity is 0.
    pub busy_share: f64,
}

/// Nearest-rank percentile of `sorted` (ascending, finite values): the smallest value `v`
/// of the slice such that at least `p`% of the values are <= `v`, i.e. the element of
/// 1-based rank `ceil(p / 100 * n)` (rank 1 for `p = 0`). `p` is a percentage in
/// [0, 100]; returns `None` for an empty slice or `p` outside [0, 100] (or NaN).
///
/// Examples: for `[1, 2, 3, 4]`, p50 is 2, p75 is 3, p95 and p100 are 4, p0 is 1.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    debug_assert!(
        sorted.windows(2).all(|w| w[0] <= w[1]),
        "percentile needs an ascending slice"
    );
    rustci_scheduler::stats::nearest_rank(sorted, p)
}

/// Bounded slowdown of one job: `max(1, (wait + run) / max(run, BSLD_THRESHOLD_S))`.
pub fn bounded_slowdown(wait_s: f64, run_s: f64) -> f64 {
    ((wait_s + run_s) / run_s.max(BSLD_THRESHOLD_S)).max(1.0)
}

/// `Some(x)` if `x` is finite.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `x` if finite, else 0.
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// `numerator / denominator` if the denominator is positive and the result finite, else 0.
fn ratio_or_zero(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        finite_or_zero(numerator / denominator)
    } else {
        0.0
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        None
    } else {
        finite(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// Sorts ascending (total order; the engine's values are finite).
fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Jain's fairness index of `xs`: `(sum x)^2 / (n * sum x^2)`; `None` when empty or when
/// every value is 0.
fn jain(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let sum: f64 = xs.iter().sum();
    let sum_sq: f64 = xs.iter().map(|x| x * x).sum();
    if sum_sq > 0.0 {
        finite(sum * sum / (xs.len() as f64 * sum_sq))
    } else {
        None
    }
}

/// Per-class accumulator.
struct QosAcc {
    target_s: Option<f64>,
    waits: Vec<f64>,
}

/// Per-tenant accumulator.
#[derive(Default)]
struct TenantAcc {
    waits: Vec<f64>,
    bslds: Vec<f64>,
}

/// Per-pool accumulator.
struct PoolAcc {
    runners: u32,
    slots_per_runner: u32,
    jobs: u64,
    slot_seconds: f64,
}

/// Per pool: runner-seconds paid within `[start, end]`, and the most runners paid for at
/// once; and the same peak over all pools.
fn runner_seconds(scaling: &ScalingFacts, pools: usize, start: f64, end: f64) -> RunnerTime {
    let mut seconds = vec![0.0; pools];
    let mut edges: Vec<Vec<(f64, i64)>> = vec![Vec::new(); pools];
    let mut all: Vec<(f64, i64)> = Vec::new();
    let mut requested = vec![0u64; pools];
    let mut released = vec![0u64; pools];
    let mut interrupted = vec![0u64; pools];
    for r in &scaling.runners {
        let from = r.requested_s.clamp(start, end);
        let to = r.released_s.unwrap_or(end).clamp(from, end);
        // Runners that never lived within the run (a placeholder id) are not counted.
        if r.released_s.is_some_and(|t| t <= r.requested_s) {
            continue;
        }
        if let Some(s) = seconds.get_mut(r.pool) {
            *s += to - from;
            requested[r.pool] += 1;
            if r.released_s.is_some() {
                released[r.pool] += 1;
            }
            if r.interrupted {
                interrupted[r.pool] += 1;
            }
            if to > from {
                edges[r.pool].push((from, 1));
                edges[r.pool].push((to, -1));
                all.push((from, 1));
                all.push((to, -1));
            }
        }
    }
    let peak = |mut e: Vec<(f64, i64)>| -> u64 {
        // Releases before requests at the same instant.
        e.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut n, mut most) = (0i64, 0i64);
        for (_, d) in e {
            n += d;
            most = most.max(n);
        }
        u64::try_from(most).unwrap_or(0)
    };
    RunnerTime {
        seconds,
        peaks: edges.into_iter().map(peak).collect(),
        peak_all: peak(all),
        requested,
        released,
        interrupted,
    }
}

struct RunnerTime {
    seconds: Vec<f64>,
    peaks: Vec<u64>,
    peak_all: u64,
    requested: Vec<u64>,
    released: Vec<u64>,
    interrupted: Vec<u64>,
}

impl Report {
    /// Computes the report from the engine's facts. Never panics, also with zero jobs,
    /// zero pools or a zero makespan.
    pub fn from_facts(facts: &RunFacts) -> Report {
        Self::from_run(facts, None)
    }

    /// The report of a run, with what its autoscaler did (runner-hours and cost then
    /// come from the runners' lives).
    pub fn from_run(facts: &RunFacts, scaling: Option<&ScalingFacts>) -> Report {
        let mut report = Self::static_report(facts);
        if let Some(sc) = scaling {
            report.add_scaling(facts, sc);
        }
        report
    }

    fn add_scaling(&mut self, facts: &RunFacts, sc: &ScalingFacts) {
        let makespan_s = self.makespan_s;
        let time = runner_seconds(sc, facts.pools.len(), facts.sim_start_s, facts.sim_end_s);
        let mut pools = BTreeMap::new();
        let (mut runner_hours, mut cost, mut capacity_slot_s) = (0.0, 0.0, 0.0);
        let (mut spot_saved, mut spot_hours, mut spot_od_cost) = (None, 0.0, 0.0);
        for (i, p) in facts.pools.iter().enumerate() {
            let secs = time.seconds.get(i).copied().unwrap_or(0.0);
            let hours = secs / SECONDS_PER_HOUR;
            let pool_cost = hours * p.cost_per_hour;
            runner_hours += hours;
            cost += pool_cost;
            capacity_slot_s += secs * f64::from(p.slots_per_runner);
            if let Some(Some(od)) = sc.on_demand_cost_per_hour.get(i) {
                *spot_saved.get_or_insert(0.0) += hours * od - pool_cost;
                spot_hours += hours;
                spot_od_cost += hours * od;
            }
            let peak = time.peaks.get(i).copied().unwrap_or(0);
            pools.entry(p.name.clone()).or_insert(AutoscalePoolReport {
                runner_hours: finite_or_zero(hours),
                cost: finite_or_zero(pool_cost),
                peak_runners: peak,
                mean_runners: ratio_or_zero(secs, makespan_s),
                requested: time.requested.get(i).copied().unwrap_or(0),
                released: time.released.get(i).copied().unwrap_or(0),
                interruptions: time.interrupted.get(i).copied().unwrap_or(0),
            });
            // The pool table shows the autoscaled fleet: its peak, and the share of the
            // slot-seconds paid for that jobs used.
            if let Some(report) = self.pools.get_mut(&p.name) {
                report.runners = u32::try_from(peak).unwrap_or(u32::MAX);
                let used: f64 = facts
                    .results
                    .iter()
                    .filter(|r| r.pool == p.name)
                    .map(|r| f64::from(r.slots) * r.run_s())
                    .sum();
                report.busy_share = ratio_or_zero(used, secs * f64::from(p.slots_per_runner));
            }
        }
        if let Some(saved) = spot_saved.as_mut() {
            let od_per_hour = ratio_or_zero(spot_od_cost, spot_hours);
            *saved -= sc.retried_work_s / SECONDS_PER_HOUR * od_per_hour;
        }
        let slot_seconds: f64 = facts
            .results
            .iter()
            .map(|r| f64::from(r.slots) * r.run_s())
            .sum();
        self.runner_hours = finite_or_zero(runner_hours);
        self.cost = finite_or_zero(cost);
        self.utilization = ratio_or_zero(slot_seconds, capacity_slot_s);
        self.autoscaler = Some(AutoscaleReport {
            policy: sc.policy.clone(),
            forecast: sc.forecast.clone(),
            interval_s: sc.interval_s,
            evaluations: sc.evaluations,
            runners_requested: time.requested.iter().sum(),
            runners_released: time.released.iter().sum(),
            peak_runners: time.peak_all,
            interruptions: sc.interruptions,
            retried_work_s: finite_or_zero(sc.retried_work_s),
            requeued_to_fallback: sc.requeued_to_fallback,
            spot_saved: spot_saved.and_then(finite),
            never_started: sc.never_started,
            pools,
        });
    }

    fn static_report(facts: &RunFacts) -> Report {
        let results = &facts.results;
        let makespan_s = finite_or_zero(facts.sim_end_s - facts.sim_start_s).max(0.0);

        // Overall wait distribution and bounded slowdown.
        let waits = sorted(results.iter().map(JobResult::wait_s).collect());
        let bslds: Vec<f64> = results
            .iter()
            .map(|r| bounded_slowdown(r.wait_s(), r.run_s()))
            .collect();

        // Fleet capacity, runner-hours and cost (static fleet: every runner for the whole
        // makespan).
        let hours = makespan_s / SECONDS_PER_HOUR;
        let total_slots: f64 = facts
            .pools
            .iter()
            .map(|p| f64::from(p.runners) * f64::from(p.slots_per_runner))
            .sum();
        let runner_hours: f64 = facts
            .pools
            .iter()
            .map(|p| f64::from(p.runners) * hours)
            .sum();
        let cost: f64 = facts
            .pools
            .iter()
            .map(|p| f64::from(p.runners) * hours * p.cost_per_hour)
            .sum();
        let slot_seconds: f64 = results.iter().map(|r| f64::from(r.slots) * r.run_s()).sum();
        let utilization = ratio_or_zero(slot_seconds, total_slots * makespan_s);

        // QoS classes: configured ones first (the first definition of a name wins), then
        // classes seen only in results.
        let mut qos_acc: BTreeMap<&str, QosAcc> = BTreeMap::new();
        for q in &facts.qos {
            qos_acc.entry(q.name.as_str()).or_insert(QosAcc {
                target_s: Some(q.wait_target_s),
                waits: Vec::new(),
            });
        }
        for r in results {
            qos_acc
                .entry(r.qos.as_str())
                .or_insert(QosAcc {
                    target_s: None,
                    waits: Vec::new(),
                })
                .waits
                .push(r.wait_s());
        }
        let qos = qos_acc
            .into_iter()
            .map(|(name, acc)| {
                let n = acc.waits.len();
                let within_target = match acc.target_s {
                    Some(target) if n > 0 => {
                        let within = acc.waits.iter().filter(|&&w| w <= target).count();
                        finite(within as f64 / n as f64)
                    }
                    _ => None,
                };
                let waits = sorted(acc.waits);
                let report = QosReport {
                    jobs: n as u64,
                    wait_mean_s: mean(&waits),
                    wait_p95_s: percentile(&waits, 95.0).and_then(finite),
                    within_target,
                };
                (name.to_string(), report)
            })
            .collect();

        // Tenants.
        let mut tenant_acc: BTreeMap<&str, TenantAcc> = BTreeMap::new();
        for (r, &bsld) in results.iter().zip(&bslds) {
            let acc = tenant_acc.entry(r.tenant.as_str()).or_default();
            acc.waits.push(r.wait_s());
            acc.bslds.push(bsld);
        }
        let tenants: BTreeMap<String, TenantReport> = tenant_acc
            .into_iter()
            .map(|(name, acc)| {
                let waits = sorted(acc.waits);
                let report = TenantReport {
                    jobs: waits.len() as u64,
                    wait_mean_s: mean(&waits).unwrap_or(0.0),
                    wait_p95_s: percentile(&waits, 95.0).map_or(0.0, finite_or_zero),
                    bsld_mean: mean(&acc.bslds).unwrap_or(0.0),
                };
                (name.to_string(), report)
            })
            .collect();
        let tenant_bslds: Vec<f64> = tenants.values().map(|t| t.bsld_mean).collect();

        // Pools: the fleet's pools first (the first definition of a name wins), then pools
        // seen only in results.
        let mut pool_acc: BTreeMap<&str, PoolAcc> = BTreeMap::new();
        for p in &facts.pools {
            pool_acc.entry(p.name.as_str()).or_insert(PoolAcc {
                runners: p.runners,
                slots_per_runner: p.slots_per_runner,
                jobs: 0,
                slot_seconds: 0.0,
            });
        }
        for r in results {
            let acc = pool_acc.entry(r.pool.as_str()).or_insert(PoolAcc {
                runners: 0,
                slots_per_runner: 0,
                jobs: 0,
                slot_seconds: 0.0,
            });
            acc.jobs += 1;
            acc.slot_seconds += f64::from(r.slots) * r.run_s();
        }
        let pools = pool_acc
            .into_iter()
            .map(|(name, acc)| {
                let capacity =
                    f64::from(acc.runners) * f64::from(acc.slots_per_runner) * makespan_s;
                let report = PoolReport {
                    jobs: acc.jobs,
                    runners: acc.runners,
                    busy_share: ratio_or_zero(acc.slot_seconds, capacity),
                };
                (name.to_string(), report)
            })
            .collect();

        let wall_s = finite_or_zero(facts.wall_s);
        let events_per_s = if wall_s > 0.0 {
            finite(facts.events as f64 / wall_s)
        } else {
            None
        };

        Report {
            jobs: results.len() as u64,
            skipped: facts.skipped.clone(),
            makespan_s,
            wait_mean_s: mean(&waits),
            wait_p50_s: percentile(&waits, 50.0).and_then(finite),
            wait_p95_s: percentile(&waits, 95.0).and_then(finite),
            wait_p99_s: percentile(&waits, 99.0).and_then(finite),
            bsld_mean: mean(&bslds),
            utilization,
            runner_hours: finite_or_zero(runner_hours),
            cost: finite_or_zero(cost),
            qos,
            jain_fairness: jain(&tenant_bslds),
            tenants,
            pools,
            events: facts.events,
            events_per_s,
            wall_s,
            policy: facts.policy.clone(),
            predictor: facts.predictor.clone(),
            workload: facts.workload.clone(),
            seed: facts.seed,
            autoscaler: None,
            pipelines: facts.pipelines.as_ref().map(PipelineReport::from_facts),
            history: facts.history.clone(),
            model_usage: None,
        }
    }

    /// The report as pretty-printed JSON (one object, fields in declaration order, maps
    /// sorted by key).
    pub fn to_json_pretty(&self) -> String {
        // Only strings, integers, finite floats and string-keyed maps: cannot fail.
        serde_json::to_string_pretty(self).expect("a Report always serializes to JSON")
    }

    /// The report as an aligned, human-readable text table (for stdout).
    pub fn human_table(&self) -> String {
        let mut out = String::new();
        self.write_human(&mut out)
            .expect("formatting into a String cannot fail");
        out
    }

    fn write_human(&self, out: &mut String) -> std::fmt::Result {
        let seed = self
            .seed
            .map_or_else(|| "none".to_string(), |s| s.to_string());
        writeln!(
            out,
            "rustci-sim: workload {}, policy {}, predictor {}, seed {}",
            self.workload, self.policy, self.predictor, seed
        )?;
        if let Some(u) = &self.model_usage {
            writeln!(
                out,
                "model planned with {} ({}), corrected with {} ({})",
                u.estimate, u.estimate_from, u.correction, u.correction_from
            )?;
        }
        writeln!(out)?;

        let mut summary: Vec<(&str, String)> = vec![("jobs", self.jobs.to_string())];
        let s = &self.skipped;
        let skipped_total =
            s.unknown_run_time + s.negative_run_time + s.unknown_slots + s.unschedulable;
        if skipped_total > 0 {
            let causes: Vec<String> = [
                ("unknown run time", s.unknown_run_time),
                ("negative run time", s.negative_run_time),
                ("unknown slots", s.unknown_slots),
                ("unschedulable", s.unschedulable),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
            summary.push((
                "skipped",
                format!("{skipped_total} ({})", causes.join(", ")),
            ));
        }
        summary.push((
            "makespan",
            format!("{} h", fmt_num(self.makespan_s / SECONDS_PER_HOUR)),
        ));
        summary.push((
            "wait (s)",
            format!(
                "mean {}  p50 {}  p95 {}  p99 {}",
                fmt_opt(self.wait_mean_s),
                fmt_opt(self.wait_p50_s),
                fmt_opt(self.wait_p95_s),
                fmt_opt(self.wait_p99_s)
            ),
        ));
        summary.push(("bsld mean", fmt_opt(self.bsld_mean)));
        summary.push(("utilization", fmt_pct(Some(self.utilization))));
        summary.push(("runner-hours", fmt_num(self.runner_hours)));
        summary.push(("cost", format!("{:.2}", self.cost)));
        if let Some(a) = &self.autoscaler {
            let mut line = format!(
                "{} (every {} s): peak {} runners, {} asked for, {} released",
                a.policy,
                fmt_num(a.interval_s),
                a.peak_runners,
                a.runners_requested,
                a.runners_released
            );
            if a.interruptions > 0 {
                let _ = write!(
                    line,
                    "; {} spot interruptions, {} s retried work",
                    a.interruptions,
                    fmt_num(a.retried_work_s)
                );
            }
            if let Some(saved) = a.spot_saved {
                let _ = write!(line, ", spot saved {saved:.2}");
            }
            if a.never_started > 0 {
                let _ = write!(line, "; {} jobs never started", a.never_started);
            }
            summary.push(("autoscaler", line));
        }
        if let Some(p) = &self.pipelines {
            summary.push((
                "pipelines",
                format!(
                    "{} ({} succeeded, {} failed, {} cancelled, {} blocked)",
                    p.count, p.succeeded, p.failed, p.cancelled, p.blocked
                ),
            ));
            summary.push((
                "time to feedback (s)",
                format!(
                    "mean {}  p50 {}  p95 {}  p99 {}  max {}",
                    fmt_opt(p.ttf_mean_s),
                    fmt_opt(p.ttf_p50_s),
                    fmt_opt(p.ttf_p95_s),
                    fmt_opt(p.ttf_p99_s),
                    fmt_opt(p.ttf_max_s)
                ),
            ));
            summary.push((
                "supersession",
                format!(
                    "{} pipelines, {} jobs ({} interrupted), {} runner-hours saved, {} lost",
                    p.superseded,
                    p.superseded_jobs,
                    p.interrupted_jobs,
                    fmt_num(p.saved_runner_hours),
                    fmt_num(p.lost_runner_hours)
                ),
            ));
            summary.push((
                "pipeline ETA",
                format!(
                    "{} within 10%, {} within 60 s (of {} pipelines)",
                    fmt_pct(p.eta_within_10pct),
                    fmt_pct(p.eta_within_60s),
                    p.eta_count
                ),
            ));
        }
        summary.push((
            "Jain fairness",
            self.jain_fairness
                .map_or_else(|| "-".to_string(), |j| format!("{j:.3}")),
        ));
        let width = summary.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &summary {
            writeln!(out, "  {key:<width$}  {value}")?;
        }

        if !self.qos.is_empty() {
            writeln!(out)?;
            let rows: Vec<Vec<String>> = self
                .qos
                .iter()
                .map(|(name, q)| {
                    vec![
                        name.clone(),
                        q.jobs.to_string(),
                        fmt_opt(q.wait_mean_s),
                        fmt_opt(q.wait_p95_s),
                        fmt_pct(q.within_target),
                    ]
                })
                .collect();
            write_table(
                out,
                &[
                    "qos class",
                    "jobs",
                    "mean wait s",
                    "p95 wait s",
                    "within target",
                ],
                &rows,
            )?;
        }

        if !self.tenants.is_empty() {
            writeln!(out)?;
            let mut by_jobs: Vec<(&String, &TenantReport)> = self.tenants.iter().collect();
            // Most jobs first; ties by name (the map order, kept by the stable sort).
            by_jobs.sort_by_key(|(_, t)| std::cmp::Reverse(t.jobs));
            let shown = by_jobs.len().min(TOP_TENANTS);
            writeln!(
                out,
                "top {shown} of {} tenants by jobs:",
                self.tenants.len()
            )?;
            let rows: Vec<Vec<String>> = by_jobs
                .iter()
                .take(TOP_TENANTS)
                .map(|(name, t)| {
                    vec![
                        (*name).clone(),
                        t.jobs.to_string(),
                        fmt_num(t.wait_mean_s),
                        fmt_num(t.wait_p95_s),
                    ]
                })
                .collect();
            write_table(out, &["tenant", "jobs", "mean wait s", "p95 wait s"], &rows)?;
        }

        writeln!(out)?;
        let rate = self
            .events_per_s
            .map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
        writeln!(
            out,
            "events {}  ({} events/s, wall {} s)",
            self.events,
            rate,
            fmt_num(self.wall_s)
        )?;
        Ok(())
    }
}

/// Writes a table: first column left-aligned, the others right-aligned, each as wide as
/// its widest cell.
fn write_table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) -> std::fmt::Result {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_cells: Vec<String> = headers.iter().map(|h| (*h).to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::from(" ");
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            line.push(' ');
            if i == 0 {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.push(' ');
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A number for people: 0 decimals from 1000 up, 1 from 100 up, 2 below.
fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), fmt_num)
}

/// A share in [0, 1] as a percentage with one decimal; `-` for none.
fn fmt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |s| format!("{:.1} %", s * 100.0))
}

/// A number for the CSV: rounded to the microsecond (the engine's clock is in
/// milliseconds, so nothing is lost, and `12.345 - 10.1` prints as `2.245`), then in the
/// shortest form that reads back the same: `3` not `3.0`, `2.5`, never an exponent.
/// Non-finite values are written as an empty field.
fn csv_num(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    let rounded = (x * 1e6).round() / 1e6;
    if rounded == 0.0 {
        // Also turns -0 into 0.
        return "0".to_string();
    }
    if rounded.is_finite() {
        format!("{rounded}")
    } else {
        format!("{x}")
    }
}

/// RFC 4180 quoting: a field with a comma, a double quote, CR or LF is enclosed in double
/// quotes, with each double quote inside doubled.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Writes one CSV row per job, in the order given, after the header
/// `id,tenant,qos,submit_s,start_s,end_s,wait_s,run_s,slots,pool,runner`. Lines end with
/// `\n`; text fields are quoted as RFC 4180 requires; numbers are written compactly
/// (whole numbers without `.0`, times rounded to the microsecond).
pub fn write_jobs_csv(mut w: impl io::Write, results: &[JobResult]) -> io::Result<()> {
    writeln!(
        w,
        "id,tenant,qos,submit_s,start_s,end_s,wait_s,run_s,slots,pool,runner"
    )?;
    for r in results {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.id),
            csv_field(&r.tenant),
            csv_field(&r.qos),
            csv_num(r.submit_s),
            csv_num(r.start_s),
            csv_num(r.end_s),
            csv_num(r.wait_s()),
            csv_num(r.run_s()),
            r.slots,
            csv_field(&r.pool),
            r.runner
        )?;
    }
    w.flush()
}

/// Writes one CSV row per pipeline after the header
/// `id,tenant,group,created_s,eta_s,end_s,state,jobs,ttf_s,wait_s` (empty cells where a
/// value is unknown: no group, no ETA, not ended, no time to feedback).
pub fn write_pipelines_csv(mut w: impl io::Write, pipelines: &[PipelineResult]) -> io::Result<()> {
    writeln!(
        w,
        "id,tenant,group,created_s,eta_s,end_s,state,jobs,ttf_s,wait_s"
    )?;
    let opt = |x: Option<f64>| x.map(csv_num).unwrap_or_default();
    for p in pipelines {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&p.id),
            csv_field(&p.tenant),
            p.group.map(|g| g.to_string()).unwrap_or_default(),
            csv_num(p.created_s),
            opt(p.eta_s),
            opt(p.end_s),
            p.state,
            p.jobs,
            opt(p.ttf_s()),
            opt(p.wait_s)
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 25.0), Some(1.0));
        assert_eq!(percentile(&v, 26.0), Some(2.0));
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        assert_eq!(percentile(&v, 75.0), Some(3.0));
        assert_eq!(percentile(&v, 95.0), Some(4.0));
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, -1.0), None);
        assert_eq!(percentile(&v, 100.5), None);
        assert_eq!(percentile(&v, f64::NAN), None);
    }

    #[test]
    fn percentile_integer_ranks_are_not_rounded_up() {
        // 1..=20: p95 has rank exactly 19, p5 rank exactly 1.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 5.0), Some(1.0));
        // 1..=1000: p99.9 has rank exactly 999 (99.9 is not exact in binary).
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.9), Some(999.0));
        assert_eq!(percentile(&v, 99.0), Some(990.0));
        // Ties: the smallest value with at least p% of values <= it.
        assert_eq!(percentile(&[5.0, 5.0, 5.0, 9.0], 75.0), Some(5.0));
    }

    #[test]
    fn bounded_slowdown_bounds() {
        assert_eq!(bounded_slowdown(0.0, 100.0), 1.0);
        assert_eq!(bounded_slowdown(0.0, 4.0), 1.0);
        assert_eq!(bounded_slowdown(16.0, 4.0), 2.0);
        assert_eq!(bounded_slowdown(30.0, 30.0), 2.0);
    }

    #[test]
    fn jain_index() {
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[2.5]), Some(1.0));
        assert!((jain(&[1.0, 3.0]).unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn csv_numbers_are_compact() {
        assert_eq!(csv_num(3.0), "3");
        assert_eq!(csv_num(-0.0), "0");
        assert_eq!(csv_num(2.5), "2.5");
        assert_eq!(csv_num(12.345 - 10.1), "2.245");
        assert_eq!(csv_num(1e-7), "0");
        assert_eq!(csv_num(1_700_000_000.125), "1700000000.125");
        assert_eq!(csv_num(f64::NAN), "");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn human_number_format() {
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(123.456), "123.5");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_opt(None), "-");
        assert_eq!(fmt_pct(Some(0.5)), "50.0 %");
    }
}
