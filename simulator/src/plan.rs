//! `rustci-sim plan`: the cheapest fleet (or autoscaler setting) found that meets p95
//! wait targets per QoS class, each candidate a simulation.
//!
//! The search assumes that more capacity never makes a class's p95 worse (true for the
//! policies here up to small effects of ordering). It is a heuristic, not an exhaustive
//! search, but it never returns a fleet it has not simulated meeting every target:
//!
//! - fixed fleets (no autoscaler, or `static`): the largest fleet (`--max-scale` x every
//!   pool) must meet the targets, else the answer is "cannot be met" with each failing
//!   class's best p95. Then a binary search for the smallest common multiplier, then per
//!   pool (most expensive first) a binary search for the fewest runners with the others
//!   fixed.
//! - `reactive`: the shortest idle timeout (whole seconds up to `max_idle_timeout_s`).
//! - `predictive`: the largest `target_scale` in [0, 1] (steps of 0.001).
//!
//! A candidate's simulation stops as soon as it surely misses a target (more than 5% of
//! a class's jobs have started later than its p95 target): undersized fleets build long
//! queues that are the slowest to simulate, and only whether they fail matters.
//!
//! Over replications a candidate meets a target when the [`Bound`] of its p95 over them
//! does, and the choice must then meet the targets again on fresh replications
//! ([`Confirm`]) before it is the answer.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustci_scheduler::{LabelSet, ScalePolicy};
use serde::Serialize;
use thiserror::Error;

use crate::fleet_file::{scale_count, FleetError, FleetFile};
use crate::interval::Estimate;
use crate::replicate::par_map;
use crate::report::Report;
use crate::scenario::{PredictorSpec, Scenario, Workload};
use crate::simulate::SimError;

/// Steps of the common multiplier and of `target_scale` between 0 and their bound.
const STEPS: u64 = 1000;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("target {text:?}: {field}: {reason}")]
    Target {
        text: String,
        field: &'static str,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Setting { field: &'static str, reason: String },
    #[error("no target: give at least one --target CLASS:p95<=SECONDS")]
    NoTarget,
    #[error(
        "class {class}: {jobs} of its jobs need labels or slots that no pool of the fleet \
         has; no fleet size can run them, so its p95 target cannot be met"
    )]
    Unschedulable { class: String, jobs: u64 },
    #[error("class {class}: no jobs of this class in the workload; its p95 is undefined")]
    NoJobs { class: String },
    #[error("no fleet within the search bounds meets the targets ({bound}): {reasons}")]
    Unreachable { bound: String, reasons: String },
    #[error("replaying the chosen fleet: class {class} has p95 {p95_s} s, above its target {target_s} s")]
    Replay {
        class: String,
        p95_s: f64,
        target_s: f64,
    },
    #[error("replaying the chosen fleet gave other figures than the search's run of it")]
    NotReproduced,
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// `CLASS:p95<=SECONDS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub class: String,
    pub p95_s: f64,
}

impl Target {
    /// Parses `CLASS:p95<=SECONDS` (an `s` after the number is allowed). The class is
    /// checked against a fleet by [`check_targets`].
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let bad = |field, reason: String| PlanError::Target {
            text: text.to_string(),
            field,
            reason,
        };
        let Some((class, cond)) = text.split_once(':') else {
            return Err(bad(
                "syntax",
                "expected CLASS:p95<=SECONDS, e.g. standard:p95<=300".into(),
            ));
        };
        let class = class.trim();
        if class.is_empty() {
            return Err(bad("class", "empty QoS class name".into()));
        }
        let Some((metric, value)) = cond.split_once("<=") else {
            return Err(bad(
                "syntax",
                "expected p95<=SECONDS after the class, e.g. standard:p95<=300".into(),
            ));
        };
        let metric = metric.trim();
        if metric != "p95" {
            return Err(bad(
                "metric",
                format!("{metric:?} is not supported; only p95 (the 95th percentile wait)"),
            ));
        }
        let value = value.trim();
        let number = value.strip_suffix('s').unwrap_or(value).trim();
        let seconds: f64 = number
            .parse()
            .map_err(|_| bad("seconds", format!("{value:?} is not a number of seconds")))?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(bad(
                "seconds",
                format!("must be a finite number >= 0, got {value}"),
            ));
        }
        Ok(Self {
            class: class.to_string(),
            p95_s: seconds,
        })
    }
}

/// Checks that every target names a class of `fleet`, once.
pub fn check_targets(targets: &[Target], fleet: &FleetFile) -> Result<(), PlanError> {
    if targets.is_empty() {
        return Err(PlanError::NoTarget);
    }
    for (i, t) in targets.iter().enumerate() {
        let text = format!("{}:p95<={}", t.class, t.p95_s);
        if !fleet.qos.iter().any(|q| q.name == t.class) {
            let names: Vec<&str> = fleet.qos.iter().map(|q| q.name.as_str()).collect();
            return Err(PlanError::Target {
                text,
                field: "class",
                reason: format!(
                    "no QoS class {:?} in the fleet (classes: {})",
                    t.class,
                    names.join(", ")
                ),
            });
        }
        if targets[..i].iter().any(|o| o.class == t.class) {
            return Err(PlanError::Target {
                text,
                field: "class",
                reason: "a second target for the same class".into(),
            });
        }
    }
    Ok(())
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    pub fleet: FleetFile,
    pub targets: Vec<Target>,
    pub policy: String,
    pub load: f64,
    pub predictor: PredictorSpec,
    /// `None`: a fixed fleet.
    pub autoscaler: Option<ScalePolicy>,
    /// Largest multiplier of every pool's runners tried (fixed fleets).
    pub max_scale: f64,
    /// Longest idle timeout tried (reactive), seconds.
    pub max_idle_timeout_s: u64,
    /// Candidates simulated at once.
    pub threads: usize,
    /// With several replications, the bound each targeted p95 must meet.
    pub bound: Bound,
}

impl PlanSpec {
    /// The run of a candidate `fleet`.
    fn scenario<'a>(
        &'a self,
        workload: &'a Workload,
        fleet: &'a FleetFile,
    ) -> Result<Scenario<'a>, SimError> {
        Ok(Scenario {
            autoscaler: self.autoscaler,
            load: self.load,
            ..Scenario::new(workload, fleet, &self.policy, &self.predictor)?
        })
    }
}

/// One target as the chosen fleet meets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetResult {
    pub class: String,
    pub target_p95_s: f64,
    pub p95_s: f64,
    /// `target_p95_s - p95_s` with one replication; with several, `target_p95_s -`
    /// `upper_bound_s` (>= 0 either way).
    pub margin_s: f64,
    /// What met the target: the p95 (one replication) or the plan's bound over the
    /// replications (`bound`).
    pub upper_bound_s: f64,
    /// With several replications: `p95_s` is their mean, this its 95% interval, and
    /// the upper end is what met the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_s_ci95: Option<[f64; 2]>,
}

/// The chosen fleet replayed on fresh replications (other seeds or resamples than the
/// search's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub replications: usize,
    /// Replications that met every target (p95 <= target in each).
    pub met_every_target: usize,
    pub share: f64,
    /// Per target: the replications that met it and their p95s.
    pub targets: Vec<ValidatedTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidatedTarget {
    pub class: String,
    pub target_p95_s: f64,
    pub met: usize,
    pub p95_s: Vec<Option<f64>>,
}

/// One pool of the chosen fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanPool {
    pub name: String,
    pub runners: u32,
    pub slots: u32,
    pub cost_per_hour: f64,
}

/// The answer: the chosen fleet, its cost, the margins and the replayed report.
#[derive(Debug, Clone, Serialize)]
pub struct PlanResult {
    pub pools: Vec<PlanPool>,
    /// The pools' `runners` (the static size; under reactive or predictive the report's
    /// `autoscaler.peak_runners` is the most that ran at once).
    pub total_runners: u64,
    pub policy: String,
    pub load: f64,
    pub autoscaler: Option<String>,
    /// Reactive: the chosen idle timeout (every pool).
    pub idle_timeout_s: Option<f64>,
    /// Predictive: the chosen `target_scale`.
    pub target_scale: Option<f64>,
    pub cost: f64,
    pub runner_hours: f64,
    pub targets: Vec<TargetResult>,
    /// Simulations the search ran (the replay not counted).
    pub simulations: usize,
    /// Of those, the ones stopped as soon as a class had surely missed its target.
    pub stopped_early: usize,
    /// Replications each candidate ran on (1: one run, no interval).
    pub replications: usize,
    /// The bound that met each target with several replications.
    pub bound: Bound,
    /// The chosen fleet's first replication, replayed (with one replication, the run).
    pub report: Report,
    /// With several replications: the chosen fleet's report summarised over them
    /// (`<metric>_ci95` beside each metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// `--confirm K`: the rounds on fresh replications the choice went through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// `--validate M`: the chosen fleet on M fresh replications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
    /// The chosen fleet, as a fleet file can give it.
    #[serde(skip)]
    pub fleet: FleetFile,
}

/// Per class, how many jobs of `workload` no pool of `fleet` can run (labels or slots),
/// whatever its size. Counted as `workload::prepare` and the engine refuse them.
pub fn unschedulable_by_class(workload: &Workload, fleet: &FleetFile) -> BTreeMap<String, u64> {
    let names = fleet.label_names();
    let specs = fleet.pool_specs();
    let default = fleet.default_qos_index();
    let mut out = BTreeMap::new();
    for r in &workload.records {
        if r.run_s.is_none_or(|s| s < 0) || r.slots == 0 {
            continue;
        }
        let runnable = LabelSet::from_names(&names, &r.labels)
            .is_ok_and(|labels| specs.iter().any(|s| s.can_run(labels, r.slots)));
        if !runnable {
            let class = r
                .qos
                .as_deref()
                .and_then(|q| fleet.qos.iter().position(|c| c.name == q))
                .unwrap_or(default);
            if let Some(c) = fleet.qos.get(class) {
                *out.entry(c.name.clone()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// The knob the search turns; larger is more capacity.
#[derive(Debug, Clone, Copy)]
enum Knob {
    /// Every pool's runners x `max_scale * k / STEPS`.
    Uniform,
    /// Every pool's runners of the fleet given x `1 + k / STEPS` (a confirmation's
    /// step up).
    Grow,
    /// Pool `i`'s runners = k.
    Pool(usize),
    /// Idle timeout k seconds (reactive).
    IdleTimeout,
    /// `target_scale = 1 - k / STEPS` (predictive).
    TargetScale,
}

/// One candidate's simulations: its reports (one per replication), or the class (index)
/// whose p95 target a replication was sure to miss when its run stopped early.
#[derive(Debug, Clone)]
enum Tried {
    Ran(Vec<Report>),
    Missed(usize),
}

/// Which upper bound of a p95 over replications must meet its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The upper end of the 95% confidence interval of the mean p95: the average week
    /// meets the target.
    Mean,
    /// The upper end of the 95% prediction interval: the next week meets it with
    /// about 97.5% probability.
    Prediction,
    /// The largest p95 of the replications: every one meets the target. Distribution
    /// free: of N replications and one fresh week from the same distribution, the
    /// fresh one is the worst with probability 1/(N + 1), so it meets the target with
    /// at least N/(N + 1) (95.2% with 20), less what choosing the cheapest passing
    /// fleet on the same replications costs. Weekly p95s near a fleet's capacity edge
    /// are heavy-tailed, which the two bounds above, built on the mean and spread,
    /// understate.
    Every,
}

/// A class's p95 over replications: the value with one; with several their mean, the
/// `bound`'s upper end, and the mean's 95% interval; `None` when a replication ran no
/// job of the class.
fn p95_bound_of(p95s: &[f64], bound: Bound) -> Option<(f64, f64, Option<[f64; 2]>)> {
    match Estimate::of(p95s) {
        Some(e) => {
            let upper = match bound {
                Bound::Mean => e.high,
                Bound::Prediction => e.prediction_high(),
                Bound::Every => p95s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            Some((e.mean, upper, Some([e.low.max(0.0), e.high])))
        }
        None => p95s.first().map(|&x| (x, x, None)),
    }
}

/// [`p95_bound_of`] of a class's p95 in each report.
fn p95_bound(
    reports: &[Report],
    class: &str,
    bound: Bound,
) -> Option<(f64, f64, Option<[f64; 2]>)> {
    let p95s: Option<Vec<f64>> = reports.iter().map(|r| class_p95(r, class)).collect();
    p95_bound_of(&p95s?, bound)
}

struct Search<'a> {
    spec: &'a PlanSpec,
    workloads: Vec<&'a Workload>,
    simulations: usize,
    /// Simulations stopped early because a class had surely missed its target.
    stopped_early: usize,
    progress: &'a dyn Fn(usize),
    /// Per QoS class of the fleet (index), its p95 target in seconds, if it has one.
    give_up: Vec<Option<f64>>,
}

impl Search<'_> {
    fn fleet_at(&self, base: &FleetFile, knob: Knob, k: u64) -> Result<FleetFile, PlanError> {
        let mut f = base.clone();
        match knob {
            Knob::Uniform => {
                let x = self.spec.max_scale * k as f64 / STEPS as f64;
                for (p, b) in f.pools.iter_mut().zip(&self.spec.fleet.pools) {
                    p.runners = scale_count(b.runners, x);
                }
            }
            Knob::Grow => {
                let x = 1.0 + k as f64 / STEPS as f64;
                for p in &mut f.pools {
                    p.runners = scale_count(p.runners, x);
                }
            }
            Knob::Pool(i) => {
                if let Some(p) = f.pools.get_mut(i) {
                    p.runners = u32::try_from(k).unwrap_or(u32::MAX).max(1);
                }
            }
            Knob::IdleTimeout => f.set_idle_timeout(k as f64),
            Knob::TargetScale => {
                // (STEPS - k) / STEPS rather than 1 - k / STEPS: 0.094, not 0.0939999...
                f.autoscaler
                    .get_or_insert_with(Default::default)
                    .target_scale = STEPS.saturating_sub(k) as f64 / STEPS as f64;
            }
        }
        f.recheck("plan candidate")?;
        Ok(f)
    }

    /// The targets `tried` misses, as "class X: best p95 A s, target B s".
    fn misses(&self, tried: &Tried) -> Vec<String> {
        match tried {
            Tried::Ran(r) => self.report_misses(r),
            Tried::Missed(class) => {
                let name = self
                    .spec
                    .fleet
                    .qos
                    .get(*class)
                    .map_or("?", |q| q.name.as_str());
                let target = self.give_up.get(*class).copied().flatten().unwrap_or(0.0);
                vec![format!(
                    "class {name}: more than 5% of its jobs waited over its target {target} s \
                     (run stopped early)"
                )]
            }
        }
    }

    /// The targets runs that went to the end miss (see [`Search::misses`]): with
    /// several replications, the upper end of each p95's 95% interval must meet it.
    fn report_misses(&self, reports: &[Report]) -> Vec<String> {
        self.spec
            .targets
            .iter()
            .filter_map(|t| match p95_bound(reports, &t.class, self.spec.bound) {
                Some((_, bound, _)) if bound <= t.p95_s => None,
                Some((mean, bound, Some(_))) => Some(format!(
                    "class {}: best p95 {mean} s (upper bound {bound} s), target {} s",
                    t.class, t.p95_s
                )),
                Some((x, _, None)) => Some(format!(
                    "class {}: best p95 {x} s, target {} s",
                    t.class, t.p95_s
                )),
                None => Some(format!("class {}: no job ran", t.class)),
            })
            .collect()
    }

    /// Simulates every fleet on every replication, `spec.threads` runs at a time.
    /// Each run stops as soon as it surely misses a target (and then the fleet has
    /// missed: a candidate is taken only if every replication ran to the end), except
    /// the first `full` fleets', which run to the end (their p95 figures are reported).
    fn eval_many(&mut self, fleets: &[FleetFile], full: usize) -> Result<Vec<Tried>, PlanError> {
        let (spec, workloads, give_up) = (self.spec, &self.workloads, &self.give_up);
        let r = workloads.len().max(1);
        let runs = par_map(fleets.len() * r, spec.threads.max(1), &|k| {
            let give_up = if k / r < full {
                Vec::new()
            } else {
                give_up.clone()
            };
            spec.scenario(workloads[k % r], &fleets[k / r])?
                .report_until(give_up)
        })?;
        let mut out = Vec::with_capacity(fleets.len());
        for chunk in runs.chunks(r) {
            let missed = chunk.iter().find_map(|x| x.as_ref().err().copied());
            self.simulations += 1;
            out.push(match missed {
                Some(class) => {
                    self.stopped_early += 1;
                    Tried::Missed(class)
                }
                None => Tried::Ran(chunk.iter().filter_map(|x| x.clone().ok()).collect()),
            });
            (self.progress)(self.simulations);
        }
        Ok(out)
    }

    /// The least step up of `fleet` that meets the targets on this search's
    /// replications: every pool's runners times one factor up to 2 (fixed fleets), a
    /// longer idle timeout (reactive) or a smaller `target_scale` (predictive), up to the
    /// search's bounds; `None` when the largest step does not meet them.
    fn step_up(&mut self, fleet: &FleetFile) -> Result<Option<FleetFile>, PlanError> {
        let spec = self.spec;
        let (knob, from, top) = match spec.autoscaler {
            Some(ScalePolicy::Reactive) => (
                Knob::IdleTimeout,
                fleet
                    .pools
                    .first()
                    .map_or(0, |p| p.idle_timeout_s.max(0.0) as u64),
                spec.max_idle_timeout_s,
            ),
            Some(ScalePolicy::Predictive) => {
                let scale = fleet.autoscaler.clone().unwrap_or_default().target_scale;
                let k = STEPS as f64 * (1.0 - scale.clamp(0.0, 1.0));
                (Knob::TargetScale, k.round() as u64, STEPS)
            }
            _ => (Knob::Grow, 0, STEPS),
        };
        if from >= top {
            return Ok(None);
        }
        let biggest = self.fleet_at(fleet, knob, top)?;
        let tried = self.eval_many(std::slice::from_ref(&biggest), 0)?;
        let Some(Tried::Ran(reports)) = tried.into_iter().next() else {
            return Ok(None);
        };
        if !self.report_misses(&reports).is_empty() {
            return Ok(None);
        }
        let (grown, _) = self.smallest(fleet, knob, from, top, biggest, reports)?;
        Ok(Some(grown))
    }

    /// The smallest `k` in `(fail, meet]` whose fleet meets the targets, given that `meet`
    /// does (with `meet_report`) and `fail` is taken as failing. Each round splits the
    /// interval at `spec.threads` points simulated at once (a binary search on one core).
    fn smallest(
        &mut self,
        base: &FleetFile,
        knob: Knob,
        mut fail: u64,
        mut meet: u64,
        mut meet_fleet: FleetFile,
        mut meet_report: Vec<Report>,
    ) -> Result<(FleetFile, Vec<Report>), PlanError> {
        // Candidates at once: the threads the replications leave free.
        let split = (self.spec.threads / self.workloads.len().max(1)).max(1) as u64;
        while meet - fail > 1 {
            let m = split.min(meet - fail - 1);
            let mut ks: Vec<u64> = (1..=m)
                .map(|j| fail + (meet - fail) * j / (m + 1))
                .collect();
            ks.dedup();
            let fleets = ks
                .iter()
                .map(|&k| self.fleet_at(base, knob, k))
                .collect::<Result<Vec<_>, _>>()?;
            let reports = self.eval_many(&fleets, 0)?;
            // The smallest k that meets the targets; below it, the largest that does not.
            let mut found = None;
            for (i, (k, r)) in ks.iter().zip(&reports).enumerate() {
                if self.misses(r).is_empty() {
                    found = Some(i);
                    meet = *k;
                    break;
                }
                fail = *k;
            }
            if let Some(i) = found {
                if let Tried::Ran(r) = &reports[i] {
                    meet_fleet = fleets[i].clone();
                    meet_report = r.clone();
                }
            }
        }
        Ok((meet_fleet, meet_report))
    }
}

/// What one search found: the cheapest fleet meeting the targets on its replications.
struct Found {
    fleet: FleetFile,
    reports: Vec<Report>,
    /// Simulations so far (counting from the `simulations` the search was given).
    simulations: usize,
    stopped_early: usize,
}

/// Per QoS class of the fleet (index), its p95 target in seconds, if it has one: a run
/// may stop once more than 5% of the class's jobs waited longer.
fn give_up(spec: &PlanSpec) -> Vec<Option<f64>> {
    spec.fleet
        .qos
        .iter()
        .map(|q| {
            spec.targets
                .iter()
                .filter(|t| t.class == q.name)
                .map(|t| t.p95_s)
                .reduce(f64::min)
        })
        .collect()
}

/// The search of the module's documentation over `workloads`.
fn search(
    spec: &PlanSpec,
    workloads: &[&Workload],
    simulations: usize,
    progress: &dyn Fn(usize),
) -> Result<Found, PlanError> {
    let give_up = give_up(spec);
    let mut s = Search {
        spec,
        workloads: workloads.to_vec(),
        simulations,
        stopped_early: 0,
        progress,
        give_up,
    };
    let fixed = matches!(spec.autoscaler, None | Some(ScalePolicy::Static));
    let (knob, top, bound) = match spec.autoscaler {
        Some(ScalePolicy::Reactive) => (
            Knob::IdleTimeout,
            spec.max_idle_timeout_s,
            format!("idle timeout up to {} s", spec.max_idle_timeout_s),
        ),
        Some(ScalePolicy::Predictive) => (
            Knob::TargetScale,
            STEPS,
            "target_scale down to 0".to_string(),
        ),
        _ => (
            Knob::Uniform,
            STEPS,
            format!("--max-scale {} x every pool", spec.max_scale),
        ),
    };
    let biggest = s.fleet_at(&spec.fleet, knob, top)?;
    let least = s.fleet_at(&spec.fleet, knob, 0)?;
    // The biggest runs to the end: if it fails, its best p95 figures are the answer.
    let [top_tried, least_tried]: [Tried; 2] = s
        .eval_many(&[biggest.clone(), least.clone()], 1)?
        .try_into()
        .map_err(|_| PlanError::NotReproduced)?;
    let Tried::Ran(top_report) = top_tried else {
        return Err(PlanError::NotReproduced);
    };
    for t in &spec.targets {
        if top_report
            .iter()
            .any(|r| r.qos.get(&t.class).is_none_or(|q| q.jobs == 0))
        {
            return Err(PlanError::NoJobs {
                class: t.class.clone(),
            });
        }
    }
    let misses = s.report_misses(&top_report);
    if !misses.is_empty() {
        return Err(PlanError::Unreachable {
            bound,
            reasons: misses.join("; "),
        });
    }
    // When the least capacity meets the targets, there is nothing to search.
    let (mut fleet, mut report) = match least_tried {
        Tried::Ran(r) if s.report_misses(&r).is_empty() => (least, r),
        _ => s.smallest(&spec.fleet, knob, 0, top, biggest, top_report)?,
    };
    if fixed {
        // Trim pool by pool, the most expensive (price x runners) first.
        let mut order: Vec<usize> = (0..fleet.pools.len()).collect();
        order.sort_by(|&a, &b| {
            let cost = |i: usize| fleet.pools[i].cost_per_hour * f64::from(fleet.pools[i].runners);
            cost(b).total_cmp(&cost(a)).then(a.cmp(&b))
        });
        for i in order {
            let n = u64::from(fleet.pools[i].runners);
            if n <= 1 {
                continue;
            }
            let base = fleet.clone();
            (fleet, report) = s.smallest(&base, Knob::Pool(i), 0, n, base.clone(), report)?;
        }
    }
    Ok(Found {
        fleet,
        reports: report,
        simulations: s.simulations,
        stopped_early: s.stopped_early,
    })
}

/// Reactive: `fleet`'s idle timeout; predictive: its `target_scale`; else `None`.
fn knob_value(spec: &PlanSpec, fleet: &FleetFile) -> Option<f64> {
    match spec.autoscaler {
        Some(ScalePolicy::Reactive) => fleet.pools.first().map(|p| p.idle_timeout_s),
        Some(ScalePolicy::Predictive) => {
            Some(fleet.autoscaler.clone().unwrap_or_default().target_scale)
        }
        _ => None,
    }
}

/// `class`'s p95 wait in `report` (`None`: no job of the class ran).
fn class_p95(report: &Report, class: &str) -> Option<f64> {
    report.qos.get(class).and_then(|q| q.wait_p95_s)
}

/// Whether `report` has `target`'s class within its p95 target.
fn meets(report: &Report, target: &Target) -> bool {
    class_p95(report, &target.class).is_some_and(|x| x <= target.p95_s)
}

/// Whether `report` has every targeted class's p95 within its target.
fn meets_every(spec: &PlanSpec, report: &Report) -> bool {
    spec.targets.iter().all(|t| meets(report, t))
}

/// Finds the cheapest fleet (or autoscaler setting) found that meets every target, and
/// replays it. `progress` gets the number of simulations run so far.
pub fn plan(
    spec: &PlanSpec,
    workload: &Workload,
    progress: &dyn Fn(usize),
) -> Result<PlanResult, PlanError> {
    plan_replicated(
        spec,
        std::slice::from_ref(workload),
        &Confirm::NONE,
        None,
        progress,
    )
}

/// Fresh replications on which a fleet chosen on the search's replications must meet the
/// targets again before it is taken: the cheapest fleet that passes on N weeks is the one
/// whose N weeks happened to be kind, so its pass says little about the next week.
/// A fleet that misses is stepped up (every pool's runners by the same factor, or the
/// autoscaler's knob) to the least that meets the bound on the weeks it missed, and that
/// fleet confirmed on another fresh set.
pub struct Confirm<'a> {
    /// Replications per round (0: take the search's choice as it is).
    pub replications: usize,
    /// Confirmation rounds at most; after the last failed one its step up is returned
    /// unconfirmed (`confirmation.confirmed: false`).
    pub rounds: usize,
    /// Round `r`'s fresh replications (0-based): none of the search's, another round's
    /// or the validation's.
    pub fresh: &'a dyn Fn(usize) -> Result<Vec<Workload>, SimError>,
}

impl std::fmt::Debug for Confirm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirm")
            .field("replications", &self.replications)
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

impl Confirm<'_> {
    /// No confirmation.
    pub const NONE: Confirm<'static> = Confirm {
        replications: 0,
        rounds: 0,
        fresh: &|_| Ok(Vec::new()),
    };
}

/// Replications to replay the answer on, none of the search's or the confirmations':
/// each made when its run starts (they run once, so none is held through the search).
pub struct Validate<'a> {
    pub replications: usize,
    /// Validation replication `i`'s workload.
    pub make: &'a (dyn Fn(usize) -> Result<Workload, SimError> + Sync),
}

impl std::fmt::Debug for Validate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validate")
            .field("replications", &self.replications)
            .finish_non_exhaustive()
    }
}

/// One confirmation round: the fleet replayed on `replications` fresh ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfirmRound {
    /// The fleet's runners (fixed fleets; the static size under an autoscaler).
    pub total_runners: u64,
    /// Reactive: its idle timeout; predictive: its `target_scale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knob: Option<f64>,
    /// Its mean cost over the fresh replications.
    pub cost: f64,
    pub replications: usize,
    /// Fresh replications that met every target.
    pub met_every_target: usize,
    /// The plan's bound over the fresh replications met every target.
    pub confirmed: bool,
}

/// The confirmation rounds a plan went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confirmation {
    pub rounds: Vec<ConfirmRound>,
    /// The returned fleet passed its last round (false: rounds ran out, or no step up
    /// within the bounds meets the targets on a round's replications).
    pub confirmed: bool,
}

/// [`plan`] over replications: a candidate meets a target when the `spec.bound` of its
/// p95 over `workloads` does (with one workload, its p95); the choice must then meet
/// the targets on `confirm`'s fresh replications (else it is stepped up, see
/// [`Confirm`]); the answer is then run on `validate`'s replications, if any, and the
/// share that met every target reported. `progress` counts candidates.
pub fn plan_replicated(
    spec: &PlanSpec,
    workloads: &[Workload],
    confirm: &Confirm<'_>,
    validate: Option<&Validate<'_>>,
    progress: &dyn Fn(usize),
) -> Result<PlanResult, PlanError> {
    let Some(workload) = workloads.first() else {
        return Err(PlanError::Setting {
            field: "--replications",
            reason: "must be at least 1".into(),
        });
    };
    check_targets(&spec.targets, &spec.fleet)?;
    if !(spec.max_scale.is_finite() && spec.max_scale > 0.0) {
        return Err(PlanError::Setting {
            field: "--max-scale",
            reason: format!("must be > 0, got {}", spec.max_scale),
        });
    }
    if let Err(e) = spec
        .fleet
        .scaled(spec.max_scale)
        .recheck("the scaled fleet")
    {
        return Err(PlanError::Setting {
            field: "--max-scale",
            reason: format!("{} x the fleet: {e}", spec.max_scale),
        });
    }
    let unschedulable = unschedulable_by_class(workload, &spec.fleet);
    for t in &spec.targets {
        if let Some(&jobs) = unschedulable.get(&t.class) {
            return Err(PlanError::Unschedulable {
                class: t.class.clone(),
                jobs,
            });
        }
    }
    let found = search(spec, &workloads.iter().collect::<Vec<_>>(), 0, progress)?;
    let (mut simulations, mut stopped_early) = (found.simulations, found.stopped_early);
    let (mut fleet, mut report) = (found.fleet, found.reports);
    let mut rounds = Vec::new();
    let mut confirmed = false;
    let mut stepped = false;
    let rounds_at_most = if confirm.replications == 0 {
        0
    } else {
        confirm.rounds
    };
    for round in 0..rounds_at_most {
        let fresh = (confirm.fresh)(round)?;
        let mut check = Search {
            spec,
            workloads: fresh.iter().collect(),
            simulations,
            stopped_early: 0,
            progress,
            give_up: give_up(spec),
        };
        let tried = check.eval_many(std::slice::from_ref(&fleet), 1)?;
        let Some(Tried::Ran(runs)) = tried.into_iter().next() else {
            return Err(PlanError::NotReproduced);
        };
        let ok = check.report_misses(&runs).is_empty();
        rounds.push(ConfirmRound {
            total_runners: fleet.total_runners(),
            knob: knob_value(spec, &fleet),
            cost: runs.iter().map(|r| r.cost).sum::<f64>() / runs.len().max(1) as f64,
            replications: runs.len(),
            met_every_target: runs.iter().filter(|r| meets_every(spec, r)).count(),
            confirmed: ok,
        });
        if ok {
            confirmed = true;
            break;
        }
        // The least step up that meets the bound on the weeks just missed; the next
        // round judges it on weeks it was not chosen on.
        let grown = check.step_up(&fleet);
        simulations = check.simulations;
        stopped_early += check.stopped_early;
        match grown? {
            Some(f) => {
                fleet = f;
                stepped = true;
            }
            None => break,
        }
    }
    if stepped {
        // The figures over the search's replications, of the fleet returned.
        let mut again = Search {
            spec,
            workloads: workloads.iter().collect(),
            simulations,
            stopped_early: 0,
            progress,
            give_up: Vec::new(),
        };
        let tried = again.eval_many(std::slice::from_ref(&fleet), 1)?;
        simulations = again.simulations;
        let Some(Tried::Ran(r)) = tried.into_iter().next() else {
            return Err(PlanError::NotReproduced);
        };
        report = r;
    }
    let confirmation = (rounds_at_most > 0).then_some(Confirmation { rounds, confirmed });

    // The replay: the chosen fleet once more (its first replication), exactly as
    // `run --fleet` would run it.
    let replayed = spec.scenario(workload, &fleet)?.report()?;
    let first = report.first().ok_or(PlanError::NotReproduced)?;
    if replayed.qos != first.qos || replayed.cost != first.cost {
        return Err(PlanError::NotReproduced);
    }
    let mut targets = Vec::new();
    for t in &spec.targets {
        let (p95, bound, ci) = p95_bound(&report, &t.class, spec.bound).unwrap_or((
            f64::INFINITY,
            f64::INFINITY,
            None,
        ));
        if bound > t.p95_s {
            return Err(PlanError::Replay {
                class: t.class.clone(),
                p95_s: bound,
                target_s: t.p95_s,
            });
        }
        targets.push(TargetResult {
            class: t.class.clone(),
            target_p95_s: t.p95_s,
            p95_s: p95,
            margin_s: t.p95_s - bound,
            upper_bound_s: bound,
            p95_s_ci95: ci,
        });
    }
    let summary = (report.len() > 1).then(|| {
        let values: Vec<serde_json::Value> = report
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        crate::interval::summarise(&values)
    });
    let validation = match validate {
        Some(v) if v.replications > 0 => {
            let runs = par_map(v.replications, spec.threads.max(1), &|i| {
                spec.scenario(&(v.make)(i)?, &fleet)?.report()
            })?;
            let met_every_target = runs.iter().filter(|r| meets_every(spec, r)).count();
            Some(Validation {
                replications: runs.len(),
                met_every_target,
                share: met_every_target as f64 / runs.len() as f64,
                targets: spec
                    .targets
                    .iter()
                    .map(|t| ValidatedTarget {
                        class: t.class.clone(),
                        target_p95_s: t.p95_s,
                        met: runs.iter().filter(|r| meets(r, t)).count(),
                        p95_s: runs.iter().map(|r| class_p95(r, &t.class)).collect(),
                    })
                    .collect(),
            })
        }
        _ => None,
    };
    let settings = fleet.autoscaler.clone().unwrap_or_default();
    Ok(PlanResult {
        pools: fleet
            .pools
            .iter()
            .map(|p| PlanPool {
                name: p.name.clone(),
                runners: p.runners,
                slots: p.slots,
                cost_per_hour: p.cost_per_hour,
            })
            .collect(),
        total_runners: fleet.total_runners(),
        policy: spec.policy.clone(),
        load: spec.load,
        autoscaler: spec.autoscaler.map(|a| a.name().to_string()),
        idle_timeout_s: matches!(spec.autoscaler, Some(ScalePolicy::Reactive))
            .then(|| fleet.pools.first().map_or(0.0, |p| p.idle_timeout_s)),
        target_scale: matches!(spec.autoscaler, Some(ScalePolicy::Predictive))
            .then_some(settings.target_scale),
        cost: replayed.cost,
        runner_hours: replayed.runner_hours,
        targets,
        simulations,
        stopped_early,
        replications: workloads.len(),
        bound: spec.bound,
        report: replayed,
        summary,
        confirmation,
        validation,
        fleet,
    })
}

impl PlanResult {
    /// A short human summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "chosen fleet ({} simulations, {} stopped early; policy {}, load {}{}):",
            self.simulations,
            self.stopped_early,
            self.policy,
            self.load,
            self.autoscaler
                .as_deref()
                .map(|a| format!(", autoscaler {a}"))
                .unwrap_or_default()
        );
        let scaled = self
            .report
            .autoscaler
            .as_ref()
            .filter(|a| a.policy != "static");
        for p in &self.pools {
            // Under a dynamic autoscaler `runners` is only the static size; the peak is
            // what the run reached.
            match scaled.and_then(|a| a.pools.get(&p.name)) {
                Some(a) => {
                    let _ = writeln!(
                        s,
                        "  {:<16} peak {:>6} runners x {} slots at {}/h",
                        p.name, a.peak_runners, p.slots, p.cost_per_hour
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {:<16} {:>6} runners x {} slots at {}/h",
                        p.name, p.runners, p.slots, p.cost_per_hour
                    );
                }
            }
        }
        if let Some(t) = self.idle_timeout_s {
            let _ = writeln!(s, "  idle timeout {t} s");
        }
        if let Some(t) = self.target_scale {
            let _ = writeln!(s, "  target_scale {t}");
        }
        let total = match scaled {
            Some(a) => format!("peak {} runners", a.peak_runners),
            None => format!("{} runners", self.total_runners),
        };
        let _ = writeln!(
            s,
            "total {total}, {:.1} runner-hours, cost {:.2}",
            self.runner_hours, self.cost
        );
        for t in &self.targets {
            match t.p95_s_ci95 {
                Some([lo, hi]) => {
                    let _ = writeln!(
                        s,
                        "  {:<10} p95 mean {:.1} s, 95% CI [{lo:.1}, {hi:.1}] over {} replications; {:?} bound {:.1} s <= target {} s (margin {:.1} s)",
                        t.class, t.p95_s, self.replications, self.bound, t.upper_bound_s, t.target_p95_s, t.margin_s
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {:<10} p95 {} s <= target {} s (margin {} s)",
                        t.class, t.p95_s, t.target_p95_s, t.margin_s
                    );
                }
            }
        }
        if let Some(c) = &self.confirmation {
            for (i, r) in c.rounds.iter().enumerate() {
                let knob = r.knob.map(|k| format!(", knob {k}")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "confirmation round {}: {} runners{knob}, cost {:.0}, met every target on {} of {} fresh replications: {}",
                    i + 1,
                    r.total_runners,
                    r.cost,
                    r.met_every_target,
                    r.replications,
                    if r.confirmed { "confirmed" } else { "stepped up" }
                );
            }
            if !c.confirmed {
                let _ = writeln!(
                    s,
                    "NOT CONFIRMED: the fleet above was not seen to meet the targets on \
                     replications it was not chosen on (raise --confirm-rounds)"
                );
            }
        }
        if let Some(v) = &self.validation {
            let _ = writeln!(
                s,
                "validation: {} of {} fresh replications met every target ({:.0}%)",
                v.met_every_target,
                v.replications,
                100.0 * v.share
            );
            for t in &v.targets {
                let _ = writeln!(
                    s,
                    "  {:<10} {} of {} within {} s",
                    t.class, t.met, v.replications, t.target_p95_s
                );
            }
        }
        s
    }
}

/// `text` as a TOML basic string.
fn toml_str(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A float TOML reads back as the same float (`{:?}` always has a `.` or an exponent).
fn toml_f64(x: f64) -> String {
    format!("{x:?}")
}

/// `fleet` as a fleet file (`FleetFile::parse` reads it back equal); with `autoscaler`, the
/// `[autoscaler] policy` is set so that `rustci-sim run --fleet` replays the same run.
pub fn fleet_toml(fleet: &FleetFile, autoscaler: Option<ScalePolicy>) -> String {
    let mut s = String::from("# Written by `rustci-sim plan`.\n");
    if autoscaler.is_some() || fleet.autoscaler.is_some() {
        let a = fleet.autoscaler.clone().unwrap_or_default();
        let _ = writeln!(s, "\n[autoscaler]");
        if let Some(p) = autoscaler
            .map(|p| p.name().to_string())
            .or(a.policy.clone())
        {
            let _ = writeln!(s, "policy = {}", toml_str(&p));
        }
        let _ = writeln!(s, "interval_s = {}", toml_f64(a.interval_s));
        let _ = writeln!(s, "quantile = {}", toml_f64(a.quantile));
        let _ = writeln!(s, "target_scale = {}", toml_f64(a.target_scale));
        let _ = writeln!(s, "window_s = {}", toml_f64(a.window_s));
        let _ = writeln!(s, "half_life_s = {}", toml_f64(a.half_life_s));
        let _ = writeln!(s, "seed = {}", a.seed);
    }
    for p in &fleet.pools {
        let _ = writeln!(s, "\n[[pool]]");
        let _ = writeln!(s, "name = {}", toml_str(&p.name));
        let labels: Vec<String> = p.labels.iter().map(|l| toml_str(l)).collect();
        let _ = writeln!(s, "labels = [{}]", labels.join(", "));
        let _ = writeln!(s, "runners = {}", p.runners);
        let _ = writeln!(s, "slots = {}", p.slots);
        let _ = writeln!(s, "cost_per_hour = {}", toml_f64(p.cost_per_hour));
        let _ = writeln!(
            s,
            "provisioning_delay_s = {}",
            toml_f64(p.provisioning_delay_s)
        );
        let _ = writeln!(s, "min_runners = {}", p.min_runners);
        if let Some(m) = p.max_runners {
            let _ = writeln!(s, "max_runners = {m}");
        }
        let _ = writeln!(s, "idle_timeout_s = {}", toml_f64(p.idle_timeout_s));
        let _ = writeln!(s, "scale_to_zero = {}", p.scale_to_zero);
        if !p.warm_pool.is_empty() {
            let windows: Vec<String> = p
                .warm_pool
                .iter()
                .map(|w| {
                    format!(
                        "{{ from = {}, to = {}, idle = {} }}",
                        toml_str(&w.from),
                        toml_str(&w.to),
                        w.idle
                    )
                })
                .collect();
            let _ = writeln!(s, "warm_pool = [{}]", windows.join(", "));
        }
        if let Some(spot) = &p.spot {
            let mut fields = vec![format!(
                "interruption_rate_per_hour = {}",
                toml_f64(spot.interruption_rate_per_hour)
            )];
            if let Some(f) = &spot.fallback_pool {
                fields.push(format!("fallback_pool = {}", toml_str(f)));
            }
            if let Some(c) = spot.on_demand_cost_per_hour {
                fields.push(format!("on_demand_cost_per_hour = {}", toml_f64(c)));
            }
            let _ = writeln!(s, "spot = {{ {} }}", fields.join(", "));
        }
    }
    for q in &fleet.qos {
        let _ = writeln!(s, "\n[[qos]]");
        let _ = writeln!(s, "name = {}", toml_str(&q.name));
        let _ = writeln!(s, "priority = {}", q.priority);
        let _ = writeln!(s, "wait_target_s = {}", toml_f64(q.wait_target_s));
    }
    for t in &fleet.tenants {
        let _ = writeln!(s, "\n[[tenant]]");
        let _ = writeln!(s, "name = {}", toml_str(&t.name));
        let _ = writeln!(s, "weight = {}", toml_f64(t.weight));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked: p95s 100, 120, 140, 400 s (mean 190, sample sd 140.95, t(3) 3.1824):
    /// the mean's bound 190 + 3.1824 * 140.95 / 2 = 414.3, the prediction bound 190 +
    /// 3.1824 * 140.95 * sqrt(1.25) = 691.5, every replication's 400 (the largest).
    #[test]
    fn each_bound_of_four_p95s() {
        let p95s = [100.0, 120.0, 140.0, 400.0];
        let upper = |b| p95_bound_of(&p95s, b).map(|(_, u, _)| u).unwrap();
        assert!(
            (upper(Bound::Mean) - 414.3).abs() < 0.1,
            "{}",
            upper(Bound::Mean)
        );
        assert!(
            (upper(Bound::Prediction) - 691.5).abs() < 0.1,
            "{}",
            upper(Bound::Prediction)
        );
        assert_eq!(upper(Bound::Every), 400.0);
        // One replication: the value itself, whatever the bound, and no interval.
        assert_eq!(
            p95_bound_of(&[250.0], Bound::Every),
            Some((250.0, 250.0, None))
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("standard:p95<=300").unwrap(),
            Target {
                class: "standard".into(),
                p95_s: 300.0
            }
        );
        assert_eq!(Target::parse("urgent: p95 <= 30s").unwrap().p95_s, 30.0);
        for (text, field) in [
            ("standard:p95<=abc", "seconds"),
            ("standard:p95<=-5", "seconds"),
            ("standard:p95<=inf", "seconds"),
            ("standard:p99<=5", "metric"),
            ("standard", "syntax"),
            ("standard:p95=5", "syntax"),
            (":p95<=5", "class"),
        ] {
            let e = Target::parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn unknown_and_repeated_classes_are_refused() {
        let fleet = FleetFile::default_ci().unwrap();
        let t = |s: &str| Target::parse(s).unwrap();
        let e = check_targets(&[t("gold:p95<=5")], &fleet)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class") && e.contains("gold") && e.contains("standard"),
            "{e}"
        );
        let e = check_targets(&[t("batch:p95<=5"), t("batch:p95<=9")], &fleet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("second target"), "{e}");
        assert!(check_targets(&[], &fleet).is_err());
    }

    /// A run stopped early really misses its target, and a run that is not stopped is
    /// the same run as without the early stop.
    #[test]
    fn stopping_early_is_sound() {
        use crate::scenario::WorkloadSpec;
        use rustci_datasets::synthetic::SyntheticConfig;
        let workload = WorkloadSpec::Synthetic(Box::new(SyntheticConfig {
            days: 1.0,
            ..SyntheticConfig::default()
        }))
        .load()
        .unwrap();
        let base = FleetFile::default_ci().unwrap();
        let give_up: Vec<Option<f64>> = base
            .qos
            .iter()
            .map(|q| match q.name.as_str() {
                "standard" => Some(300.0),
                "urgent" => Some(60.0),
                _ => None,
            })
            .collect();
        let (mut stopped, mut finished) = (0, 0);
        for scale in [0.3, 0.6, 1.0, 2.0] {
            let mut fleet = base.clone();
            for p in &mut fleet.pools {
                p.runners = scale_count(p.runners, scale);
            }
            let p = PredictorSpec::default();
            let run = Scenario::new(&workload, &fleet, "qos", &p).unwrap();
            let full = run.report().unwrap();
            match run.report_until(give_up.clone()).unwrap() {
                Ok(r) => {
                    finished += 1;
                    assert_eq!(r.qos, full.qos, "x{scale}");
                    assert_eq!(r.cost, full.cost, "x{scale}");
                }
                Err(class) => {
                    stopped += 1;
                    let q = &full.qos[&base.qos[class].name];
                    let target = give_up[class].unwrap();
                    assert!(
                        q.wait_p95_s.is_some_and(|p95| p95 > target),
                        "x{scale}: stopped for {} but its p95 is {:?}",
                        base.qos[class].name,
                        q.wait_p95_s
                    );
                }
            }
        }
        assert!(
            stopped > 0 && finished > 0,
            "stopped {stopped}, finished {finished}"
        );
    }

    #[test]
    fn fleet_toml_reads_back_equal() {
        for text in [
            crate::fleet_file::DEFAULT_CI_FLEET,
            include_str!("../fleets/autoscale-ci.toml"),
        ] {
            let fleet = FleetFile::parse(text, "t").unwrap();
            let back = FleetFile::parse(&fleet_toml(&fleet, None), "back").unwrap();
            assert_eq!(back, fleet);
        }
        let mut spot = FleetFile::default_ci().unwrap();
        spot.pools[0].warm_pool = vec![crate::fleet_file::WarmEntry {
            from: "08:00".into(),
            to: "18:00".into(),
            idle: 2,
        }];
        spot.pools[0].max_runners = Some(500);
        spot.pools[0].spot = Some(crate::fleet_file::SpotEntry {
            interruption_rate_per_hour: 0.05,
            fallback_pool: Some("linux-large".into()),
            on_demand_cost_per_hour: Some(0.3),
        });
        spot.tenants = vec![crate::fleet_file::TenantEntry {
            name: "team \"a\"".into(),
            weight: 2.5,
        }];
        let text = fleet_toml(&spot, Some(ScalePolicy::Reactive));
        let back = FleetFile::parse(&text, "back").unwrap();
        assert_eq!(back.autoscaler_policy(), Some("reactive"));
        assert_eq!(back.pools, spot.pools);
        assert_eq!(back.tenants, spot.tenants);
    }
}
