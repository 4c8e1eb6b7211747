//! One simulation run, from job records to the facts a report is made of.

use std::time::Instant;

use rustci_datasets::record::JobRecord;
use rustci_datasets::DatasetError;
use rustci_models::arrivals::OnlineArrivals;
use rustci_models::ModelError;
use rustci_scheduler::{
    ArrivalForecast, AutoscaleError, Autoscaler, CoreError, Millis, PipelineState, PolicyConfig,
    PoolId, Predictor, RequestedTime, RunnerId, ScalePolicy, Scheduler, SchedulerConfig, MS_PER_S,
};
use thiserror::Error;

use crate::clairvoyant::Clairvoyant;
use crate::engine::{
    self, Arrivals, EngineError, EngineOptions, EngineOutput, EngineScaling, Fate,
};
use crate::fleet_file::FleetFile;
use crate::outcome::{
    HistoryFacts, JobResult, PipelineFacts, PipelineResult, PoolFacts, QosFacts, RunFacts,
    RunnerSpan, ScalingFacts,
};
use crate::workload::{prepare, prepare_split, Prepared, Supersede};

/// How many waiting jobs a pipeline's projected end looks at (the core's
/// `pipeline_eta` limit): bounds the cost of asking at every pipeline's creation.
pub const ETA_LIMIT: usize = 2000;

#[derive(Debug, Error)]
pub enum SimError {
    #[error("invalid scheduler configuration: {0}")]
    Config(#[source] CoreError),
    #[error("invalid autoscaler settings: {0}")]
    Autoscale(#[source] AutoscaleError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The workload could not be generated or read (`name`: the trace's path or the
    /// synthetic workload's seed and days). A reader's error that starts with the path
    /// is shown alone, so the path is not said twice.
    #[error("{}", workload_message(name, error))]
    Workload {
        name: String,
        error: Box<DatasetError>,
    },
    /// A record names a QoS class the fleet does not have (the live server refuses such
    /// a job too), instead of running it in the default class.
    #[error(transparent)]
    UnknownQos(Box<UnknownQos>),
    /// Not one job of the workload could be placed on the fleet: a report of nothing
    /// would only hide the mismatch.
    #[error("{workload}: no job can run on this fleet: {reason}")]
    NothingPlaced { workload: String, reason: String },
    #[error("unknown predictor {0:?}; expected requested, tsafrir, clairvoyant or model:DIR")]
    UnknownPredictor(String),
    /// `model:DIR` names no usable model version.
    #[error("{predictor}: {error}")]
    Model {
        predictor: String,
        error: ModelError,
    },
}

/// A record's QoS class that the fleet does not have ([`SimError::UnknownQos`]).
#[derive(Debug, Error)]
#[error("{workload}: job {job}: QoS class {value:?} is not one of the fleet's classes ({known})")]
pub struct UnknownQos {
    pub workload: String,
    /// The record's id.
    pub job: String,
    pub value: String,
    /// The fleet's classes, comma separated.
    pub known: String,
}

fn workload_message(name: &str, error: &DatasetError) -> String {
    let text = error.to_string();
    if text.starts_with(name) {
        text
    } else {
        format!("workload {name}: {text}")
    }
}

/// What to simulate.
pub struct RunSpec<'a> {
    pub records: &'a [JobRecord],
    pub fleet: &'a FleetFile,
    pub policy: PolicyConfig,
    pub policy_name: String,
    pub predictor: Box<dyn Predictor>,
    /// Arrival-rate multiplier (submit times are divided by it).
    pub load: f64,
    pub workload_name: String,
    pub seed: Option<u64>,
    pub record_decisions: bool,
    /// Called with the number of finished jobs as the run goes.
    pub progress: Option<Box<dyn FnMut(u64)>>,
    /// Runners come and go as this autoscaler decides (with the fleet file's settings);
    /// `None`: every pool keeps its `runners` from the start (as before autoscaling).
    pub autoscaler: Option<ScalePolicy>,
    /// Unix time of the workload's time 0, seconds (the warm pool's and the arrival
    /// forecast's time of day).
    pub epoch_unix_s: i64,
    /// Per QoS class (index), a p95 wait target (seconds) whose sure miss stops the run
    /// early (see [`EngineOptions::give_up`]); empty: run to the end.
    pub give_up: Vec<Option<f64>>,
    /// Plan with every job's true run time ([`Clairvoyant`]) instead of `predictor`.
    pub clairvoyant: bool,
    /// Whether newer pipelines of a group supersede older ones.
    pub supersede: Supersede,
    /// Replay only the records after the first fraction (by submit time); the
    /// predictor learns the first part first (see [`crate::workload::prepare_split`]).
    pub history_fraction: Option<f64>,
    /// Each pipeline's end is projected at its creation looking at most this many
    /// waiting jobs ahead (0: not projected; the ETA fields are then `null`).
    pub eta_limit: usize,
}

impl<'a> RunSpec<'a> {
    /// A run of a named policy with requested-time estimates at the trace's own load,
    /// quiet, without a decision log.
    pub fn new(
        records: &'a [JobRecord],
        fleet: &'a FleetFile,
        policy: &str,
    ) -> Result<Self, SimError> {
        Ok(Self {
            records,
            fleet,
            policy: PolicyConfig::named(policy).map_err(SimError::Config)?,
            policy_name: policy.to_string(),
            predictor: Box::new(RequestedTime::default()),
            load: 1.0,
            workload_name: String::new(),
            seed: None,
            record_decisions: false,
            progress: None,
            autoscaler: None,
            epoch_unix_s: 0,
            give_up: Vec::new(),
            clairvoyant: false,
            supersede: Supersede::ByGroup,
            history_fraction: None,
            eta_limit: ETA_LIMIT,
        })
    }
}

impl std::fmt::Debug for RunSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("records", &self.records.len())
            .field("policy", &self.policy_name)
            .field("predictor", &self.predictor.name())
            .field("load", &self.load)
            .field("autoscaler", &self.autoscaler)
            .finish()
    }
}

/// Everything one run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub facts: RunFacts,
    pub prepared: Prepared,
    pub engine: EngineOutput,
    /// What the autoscaler did, when there was one.
    pub scaling: Option<ScalingFacts>,
}

impl RunOutput {
    /// Queue length and fleet size over the run, for plots: sampled on demand, so the
    /// runs of a sweep or a plan, which draw none, do not pay for it.
    pub fn timeline(&self) -> Timeline {
        let static_runners = self.facts.pools.iter().map(|p| u64::from(p.runners)).sum();
        Timeline::sample(
            &self.facts.results,
            self.scaling.as_ref(),
            static_runners,
            self.facts.sim_start_s,
            self.facts.sim_end_s,
        )
    }
}

/// Most samples a [`Timeline`] keeps: its step widens past this so a long trace costs
/// no more than a short one (and plots stay small).
pub const TIMELINE_MAX_SAMPLES: usize = 2000;

/// Queue length and fleet size sampled every `step_s` (the autoscaler's interval, else
/// one simulated minute, widened to at most [`TIMELINE_MAX_SAMPLES`]). Derived from the
/// placements and the runners' lives after the run, so the engine's event loop pays
/// nothing for it and every number is exact at its sample time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub step_s: f64,
    pub samples: Vec<TimelineSample>,
}

/// The fleet at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimelineSample {
    /// Seconds on the workload's clock.
    pub t_s: f64,
    /// Jobs submitted and not yet started (jobs that never started are not counted).
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Runners ready to take jobs.
    pub runners_ready: u64,
    /// Runners paid for: asked for and not released (provisioning ones included).
    pub runners_paid: u64,
}

impl Timeline {
    /// Samples from `start_s` to `end_s` (both included) of the jobs in `results` and
    /// either the autoscaled runners' lives or, without them, a fixed fleet of
    /// `static_runners`.
    pub fn sample(
        results: &[JobResult],
        scaling: Option<&ScalingFacts>,
        static_runners: u64,
        start_s: f64,
        end_s: f64,
    ) -> Self {
        let span = (end_s - start_s).max(0.0);
        let base = scaling.map_or(60.0, |s| s.interval_s).max(1.0);
        let step_s = base.max(span / TIMELINE_MAX_SAMPLES as f64);
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        let submits = sorted(results.iter().map(|r| r.submit_s).collect());
        let starts = sorted(results.iter().map(|r| r.start_s).collect());
        let ends = sorted(results.iter().map(|r| r.end_s).collect());
        // A runner released after it was ready leaves the ready count at its release;
        // one released while provisioning never counted as ready.
        let (requested, ready, released, released_ready) = match scaling {
            Some(sc) => (
                sorted(sc.runners.iter().map(|r| r.requested_s).collect()),
                sorted(sc.runners.iter().filter_map(|r| r.ready_s).collect()),
                sorted(sc.runners.iter().filter_map(|r| r.released_s).collect()),
                sorted(
                    sc.runners
                        .iter()
                        .filter(|r| r.ready_s.is_some())
                        .filter_map(|r| r.released_s)
                        .collect(),
                ),
            ),
            None => (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        };
        // How many of `v` are at or before `t`.
        let upto = |v: &[f64], t: f64| v.partition_point(|&x| x <= t) as u64;
        let n = (span / step_s).floor() as usize + 1;
        let samples = (0..n)
            .map(|i| {
                let t_s = (start_s + i as f64 * step_s).min(end_s.max(start_s));
                let started = upto(&starts, t_s);
                let (runners_ready, runners_paid) = if scaling.is_some() {
                    (
                        upto(&ready, t_s).saturating_sub(upto(&released_ready, t_s)),
                        upto(&requested, t_s).saturating_sub(upto(&released, t_s)),
                    )
                } else {
                    (static_runners, static_runners)
                };
                TimelineSample {
                    t_s,
                    queued: upto(&submits, t_s).saturating_sub(started),
                    running: started.saturating_sub(upto(&ends, t_s)),
                    runners_ready,
                    runners_paid,
                }
            })
            .collect();
        Self { step_s, samples }
    }
}

pub fn simulate(spec: RunSpec<'_>) -> Result<RunOutput, SimError> {
    let fleet = spec.fleet;
    let mut prepared = prepare_split(
        spec.records,
        fleet,
        spec.load,
        spec.supersede,
        spec.history_fraction,
    );
    let config = SchedulerConfig {
        policy: spec.policy,
        labels: fleet.label_names(),
        pools: fleet.pool_specs(),
        tenants: prepared.tenants.clone(),
        qos: fleet.qos_specs(),
    }
    .check()
    .map_err(SimError::Config)?;
    let predictor: Box<dyn Predictor> = if spec.clairvoyant {
        Box::new(Clairvoyant::new(&prepared.jobs))
    } else {
        spec.predictor
    };
    let predictor_name = predictor.name().to_string();
    let start_ms: Millis = prepared.start_ms();
    let epoch_ms = spec.epoch_unix_s.saturating_mul(MS_PER_S);
    let scaling = match spec.autoscaler {
        None => None,
        Some(policy) => {
            let checked = fleet
                .autoscale_config(policy, epoch_ms)
                .check(&config)
                .map_err(SimError::Autoscale)?;
            let forecast: Option<Box<dyn ArrivalForecast>> = (policy == ScalePolicy::Predictive)
                .then(|| {
                    Box::new(OnlineArrivals::new(
                        epoch_ms,
                        checked.predictive().half_life_ms,
                        start_ms,
                    )) as Box<dyn ArrivalForecast>
                });
            let seed = fleet.autoscaler.as_ref().map_or(1, |a| a.seed);
            Some(EngineScaling {
                autoscaler: Autoscaler::new(checked, forecast),
                seed,
            })
        }
    };
    let mut scheduler = Scheduler::new(config, predictor);
    if let Some(history) = &prepared.history {
        for l in &history.learned {
            scheduler.learn_submitted(&l.spec);
            scheduler.learn_finished(&l.spec, l.run_ms, l.finished_ms, l.failed);
        }
    }

    // Static fleets (and the static policy) start with `runners`; dynamic policies with
    // `min_runners`, the rest comes from the autoscaler.
    let dynamic = spec.autoscaler.is_some_and(|p| p != ScalePolicy::Static);
    let mut runners = Vec::new();
    for (p, pool) in fleet.pools.iter().enumerate() {
        let n = if dynamic {
            pool.min_runners
        } else {
            pool.runners
        };
        for _ in 0..n {
            runners.push((RunnerId(runners.len() as u32), PoolId(p as u16), pool.slots));
        }
    }
    let scaling_meta = scaling.as_ref().map(|s| {
        (
            s.autoscaler.config().policy().name().to_string(),
            s.autoscaler.forecast_name().map(str::to_string),
            s.autoscaler.config().interval_ms(),
        )
    });

    let wall = Instant::now();
    let has_pipelines = !prepared.pipelines.is_empty();
    let engine = engine::run_arrivals(
        &mut scheduler,
        Arrivals {
            jobs: &prepared.jobs,
            independent: prepared.independent,
            pipelines: &prepared.pipelines,
        },
        &runners,
        start_ms,
        EngineOptions {
            record_decisions: spec.record_decisions,
            progress: spec.progress,
            progress_every: 1024,
            scaling,
            give_up: spec.give_up,
            eta_limit: (has_pipelines && spec.eta_limit > 0).then_some(spec.eta_limit),
        },
    )?;
    let runner_pool: Vec<usize> = match &engine.scaling {
        Some(sc) => sc.runners.iter().map(|l| l.pool.0 as usize).collect(),
        None => runners.iter().map(|r| r.1 .0 as usize).collect(),
    };
    let wall_s = wall.elapsed().as_secs_f64();
    prepared.skipped.unschedulable += engine.refused;

    let ms = |t: Millis| t as f64 / MS_PER_S as f64;
    let qos_names: Vec<&str> = fleet.qos.iter().map(|q| q.name.as_str()).collect();
    let mut results = Vec::with_capacity(prepared.jobs.len());
    let mut end_ms = start_ms;
    for ((job, placement), &queued) in prepared
        .jobs
        .iter()
        .zip(&engine.placements)
        .zip(&engine.queued_ms)
    {
        let Some(pl) = placement else { continue };
        end_ms = end_ms.max(pl.end_ms);
        let record = &spec.records[job.record];
        results.push(JobResult {
            index: job.record,
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            qos: qos_names
                .get(job.spec.qos.0 as usize)
                .copied()
                .unwrap_or("")
                .to_string(),
            // A pipeline job is submitted when it becomes ready.
            submit_s: ms(queued),
            start_s: ms(pl.start_ms),
            end_s: ms(pl.end_ms),
            slots: job.spec.slots,
            pool: fleet.pools[runner_pool[pl.runner.0 as usize]].name.clone(),
            runner: pl.runner.0,
        });
    }
    let scaling = match (&engine.scaling, scaling_meta) {
        (Some(sc), Some((policy, forecast, interval_ms))) => Some(ScalingFacts {
            policy,
            forecast,
            interval_s: ms(interval_ms),
            runners: sc
                .runners
                .iter()
                .map(|l| RunnerSpan {
                    pool: l.pool.0 as usize,
                    requested_s: ms(l.requested_ms),
                    ready_s: l.ready_ms.map(ms),
                    released_s: l.released_ms.map(ms),
                    interrupted: l.interrupted,
                })
                .collect(),
            evaluations: sc.evaluations,
            interruptions: sc.interruptions,
            retried_work_s: ms(sc.retried_work_ms),
            requeued_to_fallback: sc.requeued_to_fallback,
            never_started: sc.never_started,
            on_demand_cost_per_hour: fleet.on_demand_prices(),
        }),
        _ => None,
    };
    let facts = RunFacts {
        results,
        pools: fleet
            .pools
            .iter()
            .map(|p| PoolFacts {
                name: p.name.clone(),
                runners: p.runners,
                slots_per_runner: p.slots,
                cost_per_hour: p.cost_per_hour,
            })
            .collect(),
        qos: fleet
            .qos
            .iter()
            .map(|q| QosFacts {
                name: q.name.clone(),
                wait_target_s: q.wait_target_s,
            })
            .collect(),
        skipped: prepared.skipped.clone(),
        sim_start_s: ms(start_ms),
        sim_end_s: ms(end_ms),
        events: engine.events,
        wall_s,
        policy: spec.policy_name,
        predictor: predictor_name,
        workload: spec.workload_name,
        seed: spec.seed,
        history: prepared
            .history
            .as_ref()
            .zip(spec.history_fraction)
            .map(|(h, fraction)| HistoryFacts {
                fraction,
                records: h.records,
                learned_jobs: h.learned.len() as u64,
                cut_pipeline_records: h.cut_pipeline_records,
            }),
        pipelines: has_pipelines
            .then(|| pipeline_facts(&prepared, &engine, &scheduler, &qos_names, ms)),
    };
    Ok(RunOutput {
        facts,
        prepared,
        engine,
        scaling,
    })
}

/// The pipelines' rows and counts, from the engine's output.
fn pipeline_facts(
    prepared: &Prepared,
    engine: &EngineOutput,
    scheduler: &Scheduler,
    qos_names: &[&str],
    ms: impl Fn(Millis) -> f64,
) -> PipelineFacts {
    let mut facts = PipelineFacts::default();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); prepared.pipelines.len()];
    for (i, job) in prepared.jobs.iter().enumerate() {
        if let Some(p) = job.pipeline.and_then(|p| members.get_mut(p as usize)) {
            p.push(i);
        }
    }
    for fate in engine.fates.iter().flatten() {
        match fate {
            Fate::Skipped => facts.skipped_jobs += 1,
            Fate::Manual => facts.manual_jobs += 1,
            _ => {}
        }
    }
    for ((pipe, run), members) in prepared
        .pipelines
        .iter()
        .zip(&engine.pipelines)
        .zip(&members)
    {
        let end = run.end.map(|(t, state)| {
            // A failure the replay let the pipeline go past still fails it.
            let counted = pipe
                .counted_failures
                .iter()
                .any(|j| engine.fates.get(j.0 as usize) == Some(&Some(Fate::Failed)));
            let state = match state {
                PipelineState::Succeeded if counted => PipelineState::Failed,
                s => s,
            };
            (t, state)
        });
        let state = match end.map(|e| e.1) {
            None => "running",
            Some(PipelineState::Succeeded) => "succeeded",
            Some(PipelineState::Failed) => "failed",
            Some(PipelineState::Cancelled) => "cancelled",
            Some(PipelineState::Blocked) => "blocked",
        };
        // Run intervals of its jobs, merged: the rest of its span is pipeline wait.
        let mut spans: Vec<(Millis, Millis)> = members
            .iter()
            .filter_map(|&i| engine.placements[i].map(|p| (p.start_ms, p.end_ms)))
            .collect();
        spans.sort_unstable();
        let ran_jobs = spans.len();
        let wait_s = end.map(|(t, _)| {
            let (mut busy, mut reach) = (0, pipe.created_ms);
            for (a, b) in spans {
                let a = a.max(reach);
                if b > a {
                    busy += b - a;
                    reach = b;
                }
            }
            ms((t - pipe.created_ms - busy).max(0))
        });
        facts.pipelines.push(PipelineResult {
            id: pipe.name.clone(),
            tenant: scheduler
                .config()
                .tenants()
                .get(pipe.tenant.0 as usize)
                .map_or_else(String::new, |t| t.name.clone()),
            qos: qos_names
                .get(pipe.qos.0 as usize)
                .copied()
                .unwrap_or("")
                .to_string(),
            group: pipe.spec.group,
            created_s: ms(pipe.created_ms),
            eta_s: run.eta_ms.map(&ms),
            end_s: end.map(|(t, _)| ms(t)),
            state,
            jobs: members.len(),
            ran_jobs,
            wait_s,
        });
    }
    let stats = scheduler.pipeline_stats();
    let sup = engine.supersession;
    let hours = |slot_ms: i64| slot_ms as f64 / MS_PER_S as f64 / 3600.0;
    // Counts are the core's; the runner-hours are the engine's, by true run times.
    facts.superseded = stats.superseded;
    facts.superseded_jobs = stats.superseded_jobs;
    facts.interrupted_jobs = stats.interrupted_jobs;
    facts.saved_runner_hours = hours(sup.saved_slot_ms);
    facts.lost_runner_hours = hours(sup.lost_slot_ms);
    facts.unreplayable_jobs = prepared.pipeline_counts.unreplayable_jobs;
    facts.median_run_time_jobs = prepared.pipeline_counts.median_run_time_jobs;
    facts.unschedulable_pipelines = prepared.pipeline_counts.unschedulable;
    facts
}

/// Per pool, the runners a static fleet needs so that no job of `records` waits: the
/// most slots its jobs (each in the first pool that can run it) ever hold at once when
/// every job starts at its submission, in runners (rounded up). Jobs no pool can run
/// are left out.
pub fn peak_runners(records: &[JobRecord], fleet: &FleetFile, load: f64) -> Vec<u32> {
    let prepared = prepare(records, fleet, load, Supersede::Never);
    let specs = fleet.pool_specs();
    // (time, +slots at a start / -slots at an end) per pool; ends before starts at a tie.
    let mut edges: Vec<Vec<(Millis, i64)>> = vec![Vec::new(); specs.len()];
    for job in &prepared.jobs {
        let Some(p) = specs
            .iter()
            .position(|s| s.can_run(job.spec.labels, job.spec.slots))
        else {
            continue;
        };
        let slots = i64::from(job.spec.slots);
        edges[p].push((job.spec.submit_ms, slots));
        edges[p].push((job.spec.submit_ms + job.run_ms, -slots));
    }
    edges
        .into_iter()
        .zip(&specs)
        .map(|(mut e, spec)| {
            e.sort_unstable();
            let (mut now, mut peak) = (0i64, 0i64);
            for (_, d) in e {
                now += d;
                peak = peak.max(now);
            }
            let per = i64::from(spec.slots_per_runner.max(1));
            u32::try_from((peak + per - 1) / per).unwrap_or(u32::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(submit_s: f64, start_s: f64, end_s: f64) -> JobResult {
        JobResult {
            index: 0,
            id: String::new(),
            tenant: "t".into(),
            qos: "standard".into(),
            submit_s,
            start_s,
            end_s,
            slots: 1,
            pool: "p".into(),
            runner: 0,
        }
    }

    fn span(requested_s: f64, ready_s: Option<f64>, released_s: Option<f64>) -> RunnerSpan {
        RunnerSpan {
            pool: 0,
            requested_s,
            ready_s,
            released_s,
            interrupted: false,
        }
    }

    #[test]
    fn timeline_counts_queue_running_and_runners_at_each_sample() {
        // Two jobs at 0: one starts at once (0-150 s), one waits until 100 s (to 200 s).
        let jobs = [job(0.0, 0.0, 150.0), job(0.0, 100.0, 200.0)];
        let t = Timeline::sample(&jobs, None, 3, 0.0, 200.0);
        assert_eq!(t.step_s, 60.0);
        let q: Vec<(f64, u64, u64, u64)> = t
            .samples
            .iter()
            .map(|s| (s.t_s, s.queued, s.running, s.runners_ready))
            .collect();
        assert_eq!(
            q,
            [
                (0.0, 1, 1, 3),
                (60.0, 1, 1, 3),
                (120.0, 0, 2, 3),
                (180.0, 0, 1, 3)
            ]
        );

        // Autoscaled: one runner there from the start, one asked at 30 s and ready at
        // 90 s, one asked at 30 s and released at 50 s before it was ready.
        let scaling = ScalingFacts {
            policy: "reactive".into(),
            forecast: None,
            interval_s: 30.0,
            runners: vec![
                span(0.0, Some(0.0), None),
                span(30.0, Some(90.0), Some(150.0)),
                span(30.0, None, Some(50.0)),
            ],
            evaluations: 0,
            interruptions: 0,
            retried_work_s: 0.0,
            requeued_to_fallback: 0,
            never_started: 0,
            on_demand_cost_per_hour: Vec::new(),
        };
        let t = Timeline::sample(&jobs, Some(&scaling), 0, 0.0, 180.0);
        assert_eq!(t.step_s, 30.0);
        let r: Vec<(u64, u64)> = t
            .samples
            .iter()
            .map(|s| (s.runners_ready, s.runners_paid))
            .collect();
        // t = 0, 30, 60, 90, 120, 150, 180
        assert_eq!(r, [(1, 1), (1, 3), (1, 2), (2, 2), (2, 2), (1, 1), (1, 1)]);
    }

    #[test]
    fn timeline_step_widens_for_long_runs() {
        let t = Timeline::sample(&[], None, 1, 0.0, 1e7);
        assert!(t.samples.len() <= TIMELINE_MAX_SAMPLES + 1);
        assert!(t.step_s >= 1e7 / TIMELINE_MAX_SAMPLES as f64);
    }
}
