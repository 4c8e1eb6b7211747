//! One simulation run, from job records to the facts a report is made of.

use std::time::Instant;

use rustci_datasets::record::JobRecord;
use rustci_scheduler::{
    CoreError, Millis, PolicyConfig, PoolId, Predictor, RequestedTime, RunnerId, Scheduler,
    SchedulerConfig, MS_PER_S,
};
use thiserror::Error;

use crate::engine::{self, EngineError, EngineOptions, EngineOutput};
use crate::fleet_file::Fleet;
use crate::outcome::{JobResult, PoolFacts, QosFacts, RunFacts};
use crate::workload::{prepare, Prepared};

#[derive(Debug, Error)]
pub enum SimError {
    #[error("invalid scheduler configuration: {0}")]
    Config(#[source] CoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What to simulate.
pub struct RunSpec<'a> {
    pub records: &'a [JobRecord],
    pub fleet: &'a Fleet,
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
}

impl<'a> RunSpec<'a> {
    /// A run of a named policy with requested-time estimates at the trace's own load,
    /// quiet, without a decision log.
    pub fn new(records: &'a [JobRecord], fleet: &'a Fleet, policy: &str) -> Result<Self, SimError> {
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
            .finish()
    }
}

/// Everything one run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub facts: RunFacts,
    pub prepared: Prepared,
    pub engine: EngineOutput,
}

pub fn simulate(spec: RunSpec<'_>) -> Result<RunOutput, SimError> {
    let fleet = spec.fleet;
    let mut prepared = prepare(spec.records, fleet, spec.load);
    let config = SchedulerConfig {
        policy: spec.policy,
        labels: fleet.label_names(),
        pools: fleet.pool_specs(),
        tenants: prepared.tenants.clone(),
        qos: fleet.qos_specs(),
    }
    .check()
    .map_err(SimError::Config)?;
    let predictor_name = spec.predictor.name().to_string();
    let mut scheduler = Scheduler::new(config, spec.predictor);

    let mut runners = Vec::new();
    for (p, pool) in fleet.pools.iter().enumerate() {
        for _ in 0..pool.runners {
            runners.push((RunnerId(runners.len() as u32), PoolId(p as u16), pool.slots));
        }
    }
    let runner_pool: Vec<usize> = runners.iter().map(|r| r.1 .0 as usize).collect();
    let start_ms: Millis = prepared.jobs.first().map_or(0, |j| j.spec.submit_ms);

    let wall = Instant::now();
    let engine = engine::run(
        &mut scheduler,
        &prepared.jobs,
        &runners,
        start_ms,
        EngineOptions {
            record_decisions: spec.record_decisions,
            progress: spec.progress,
            progress_every: 1024,
        },
    )?;
    let wall_s = wall.elapsed().as_secs_f64();
    prepared.skipped.unschedulable += engine.refused;

    let ms = |t: Millis| t as f64 / MS_PER_S as f64;
    let qos_names: Vec<&str> = fleet.qos.iter().map(|q| q.name.as_str()).collect();
    let mut results = Vec::with_capacity(prepared.jobs.len());
    let mut end_ms = start_ms;
    for (job, placement) in prepared.jobs.iter().zip(&engine.placements) {
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
            submit_s: ms(job.spec.submit_ms),
            start_s: ms(pl.start_ms),
            end_s: ms(pl.end_ms),
            slots: job.spec.slots,
            pool: fleet.pools[runner_pool[pl.runner.0 as usize]].name.clone(),
            runner: pl.runner.0,
        });
    }
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
    };
    Ok(RunOutput {
        facts,
        prepared,
        engine,
    })
}
