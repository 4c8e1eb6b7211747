//! The scheduler: takes events, returns decisions. One object serves the simulator and
//! the live service; each feeds it events with its own clock's `now` and applies the
//! [`Decision`]s it returns.
//!
//! A scheduling pass runs after every event (with the exceptions of rules 5 to 7 below).
//! It walks the waiting jobs in policy order
//! (lanes merged by their current score, see [`QueueOrder`]) and starts every job that
//! may start now on the best-fitting runner of an eligible pool. What a job that cannot
//! start does to the jobs after it is the backfill mode ([`Backfill`]).
//!
//! # Tie-breaking rules that decide EASY schedules
//!
//! Reproducing another EASY simulator job for job (pyss, used by the SC'15 predictsim
//! study) depends on these; change none of them without re-running that test:
//! 1. Queue order is submit time, then submission order (`seq`): jobs submitted at the
//!    same second keep their trace order.
//! 2. The first job in order that cannot start gets the reservation; its start time (the
//!    shadow) is the earliest moment enough slots are free by the *estimated* ends of
//!    running jobs, and `extra` is what is left at the shadow, capped at the slots free
//!    now.
//! 3. A later job starts now if it fits the slots free now and either ends (by its
//!    estimate) no later than the shadow (`now + est <= shadow`, equality allowed), or
//!    needs no more than `extra`; a long job that starts uses up `extra`, and `extra`
//!    never exceeds what is free now.
//! 4. Each pass visits the waiting jobs once, in order; a job passed over is not
//!    revisited in the same pass.
//! 5. EASY++ (`BackfillOrder::ShortestEstimate`): behind the reserved job, candidates are
//!    tried by estimate, queue order among equals; a running job that outlives its
//!    estimate gets a larger one ([`Scheduler::extend_estimate`]) with no pass of its own,
//!    and the driver delivers that before anything else at the same time.
//! 6. One instant, as pyss handles it (the simulator's engine delivers events in this
//!    order, after runner joins; pyss orders events by time, then kind, then a counter it
//!    gives each event when it creates it): estimates that run out grow first (rule 5);
//!    then every job that ends exactly at its estimate leaves the plan, with no pass
//!    ([`Scheduler::release_at_estimate`]; pyss's plan frees slots at estimated ends, by
//!    time); then the submissions, in trace order, each with its pass (but see rule 7);
//!    then the ends, in the order their jobs *started* (pyss creates a termination event
//!    when its job starts), each with its pass, where the predictor learns the run and a
//!    job that ended early frees its slots. So when a job that ends early and one that
//!    ends at its estimate end together, the first pass of the instant sees only the
//!    at-estimate slots if a submission runs it or the at-estimate job started first, and
//!    both jobs' slots if the early job started first; and a job submitted at that
//!    instant is estimated before either run is learnt.
//! 7. pyss's EASY scheduler (not its EASY++) runs a pass at a submission only if the new
//!    job fits the processors free now. Its inputs cap run times at the request, so no
//!    job outlives its estimate, and the rule can change a schedule only while slots
//!    released at their estimate (rule 6) wait for the instant's ends: only then does
//!    the core skip the pass, under classic EASY (FIFO, queue-order backfilling), when
//!    the new job fits no runner's free slots. Elsewhere every submission passes: a job
//!    past its estimate counts as ending now, so `extra` can grow with time alone and a
//!    later pass can backfill more (the live service, logs whose jobs outrun requests).

mod pipelines;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use crate::config::{Backfill, BackfillOrder, CheckedConfig, QueueOrder, WithinLane};
use crate::domain::{
    JobId, JobSpec, LabelSet, Millis, PipelineId, PoolId, PoolMask, PoolSpec, RunnerId, TenantId,
    TenantSpec,
};
use crate::error::CoreError;
use crate::explain::{JobStatus, WaitReason};
use crate::fleet::RunnerIndex;
use crate::hash::IdMap;
use crate::pipeline::state::{Pipelines, Terminal};
use crate::pipeline::{CancelReason, PipelineSpec, PipelineState};
use crate::predictor::{Estimate, Predictor};
use crate::projection::JobView;

/// Something that happened, fed to [`Scheduler::handle`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Submit(JobSpec),
    Finish {
        job: JobId,
    },
    /// The job ended with a failure: for the schedule the same as [`Event::Finish`];
    /// predictors learn the outcome ([`Predictor::observe`]).
    Fail {
        job: JobId,
    },
    Cancel {
        job: JobId,
    },
    RunnerJoined {
        runner: RunnerId,
        pool: PoolId,
    },
    RunnerLost {
        runner: RunnerId,
    },
    RunnerDraining {
        runner: RunnerId,
        draining: bool,
    },
    /// Nothing happened but time passed (QoS aging, periodic passes in the live service).
    Tick,
    // Pipelines (`crate::pipeline`; handled in `scheduler/pipelines.rs`).
    /// A pipeline: checked, older pipelines of its group superseded, its jobs without
    /// needs queued now (the others when they become ready).
    SubmitPipeline(PipelineSpec),
    /// Cancels every job of a running pipeline, running ones included.
    CancelPipeline {
        pipeline: PipelineId,
    },
    /// A person plays a manual job of a running pipeline: it is queued now.
    PlayManual {
        job: JobId,
    },
    /// A pipeline job that has not started will not run (a trace recorded it skipped):
    /// it ends Skipped now. A job that already ended is left as it is.
    Skip {
        job: JobId,
    },
}

/// What one pool holds now (see [`Scheduler::pool_loads`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolLoad {
    pub pool: PoolId,
    /// Registered runners, draining ones included.
    pub runners: u32,
    /// Runners running at least one job.
    pub busy_runners: u32,
    /// Slots of the jobs running in this pool.
    pub running_slots: u64,
    /// Waiting jobs whose first eligible pool this is, and their slots.
    pub waiting_jobs: u32,
    pub waiting_slots: u64,
    /// Runners with no job that take work, as (runner, idle since), longest idle first
    /// (ties by id).
    pub idle: Vec<(RunnerId, Millis)>,
}

/// How many runners a pool should have, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolAdvice {
    pub pool: PoolId,
    pub current: u32,
    pub desired: u32,
    pub reason: String,
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run `job` on `runner` now. `expected_end_ms` is the planning estimate, not a limit.
    Start {
        job: JobId,
        runner: RunnerId,
        expected_end_ms: Millis,
    },
    /// `job` lost its runner and waits again (in its old place in the queue).
    Requeue { job: JobId, runner: RunnerId },
    // Pipelines (`crate::pipeline`).
    /// The core cancelled a pipeline job. `runner`: it was running there and the driver
    /// must stop it; `None`: it had not started.
    Cancel {
        job: JobId,
        runner: Option<RunnerId>,
        reason: CancelReason,
    },
    /// A pipeline job will not run: its condition does not hold, or it waited behind a
    /// manual job nobody played when its pipeline ended.
    Skip { job: JobId },
    /// A manual job waits for a person ([`Event::PlayManual`]).
    Manual { job: JobId },
    /// A pipeline ended: each of its jobs has reached its one terminal state.
    PipelineEnded {
        pipeline: PipelineId,
        state: PipelineState,
    },
}

/// (primary key, secondary key, submit time, submission sequence): the order within a
/// lane. The secondary key is the critical-path order's tie-break (0 for other orders).
pub(crate) type LaneKey = (i64, i64, Millis, u64);

#[derive(Debug, Clone)]
enum EntryState {
    Pending {
        lane: usize,
        key: LaneKey,
        reason: WaitReason,
        reason_pass: u64,
    },
    Running {
        runner: RunnerId,
        start: Millis,
        est_end: Millis,
        /// Slot-seconds charged to the tenant's fair-share usage at start.
        charged: f64,
        /// Its slots already left the plan at its estimated end, before its finish
        /// ([`Scheduler::release_at_estimate`]).
        released: bool,
    },
}

#[derive(Debug, Clone)]
struct JobEntry {
    spec: JobSpec,
    estimate: Estimate,
    pools: PoolMask,
    seq: u64,
    state: EntryState,
    /// Times the estimate of this (running) job was corrected.
    corrections: u32,
}

impl JobEntry {
    /// (runner, start, estimated end) while it runs.
    fn running(&self) -> Option<(RunnerId, Millis, Millis)> {
        match self.state {
            EntryState::Running {
                runner,
                start,
                est_end,
                ..
            } => Some((runner, start, est_end)),
            EntryState::Pending { .. } => None,
        }
    }
}

/// Decayed usage of one tenant, in slot-seconds, as of `at`.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    value: f64,
    at: Millis,
}

impl Usage {
    fn value_at(&self, now: Millis, half_life_ms: f64) -> f64 {
        if self.value == 0.0 || now <= self.at {
            return self.value;
        }
        self.value * (-((now - self.at) as f64) / half_life_ms).exp2()
    }

    fn add(&mut self, now: Millis, amount: f64, half_life_ms: f64) {
        self.value = (self.value_at(now, half_life_ms) + amount).max(0.0);
        self.at = self.at.max(now);
    }
}

/// A reservation made during one pass.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    job: JobId,
    runner: RunnerId,
    at: Millis,
    extra: u32,
}

/// What one scheduling pass has decided so far.
#[derive(Debug, Clone, Default)]
struct Pass {
    now: Millis,
    number: u64,
    backfill: Backfill,
    all_pools: PoolMask,
    /// EASY reservations made in this pass.
    reservations: Vec<Reservation>,
    /// Pools some earlier job of this pass waits for (EASY protects only the first).
    waiting_pools: PoolMask,
    /// Strict FCFS: pools closed to later jobs, and the jobs that closed them.
    blocked_pools: PoolMask,
    blockers: Vec<(PoolMask, JobId)>,
    /// Jobs started: (lane, key), removed from the queue when the pass ends.
    started: Vec<(usize, LaneKey)>,
    /// EASY++'s shortest-first phase: the reservation made in queue order is the only one.
    no_new_reservations: bool,
}

impl Pass {
    fn start(&mut self, now: Millis, number: u64, backfill: Backfill, pools: usize) {
        self.now = now;
        self.number = number;
        self.backfill = backfill;
        self.all_pools = PoolMask(if pools >= 64 {
            u64::MAX
        } else {
            (1u64 << pools) - 1
        });
        self.reservations.clear();
        self.waiting_pools = PoolMask::default();
        self.blocked_pools = PoolMask::default();
        self.blockers.clear();
        self.started.clear();
        self.no_new_reservations = false;
    }

    /// Nothing more can start: no free slot, or (strict) every pool is closed.
    fn is_over(&self, free_slots: u64) -> bool {
        free_slots == 0 || (self.backfill == Backfill::None && self.blocked_pools == self.all_pools)
    }
}

/// The scheduling core. See the module docs.
pub struct Scheduler {
    config: CheckedConfig,
    predictor: Box<dyn Predictor>,
    jobs: IdMap<JobId, JobEntry>,
    lanes: Vec<BTreeMap<LaneKey, JobId>>,
    pending: usize,
    fleet: RunnerIndex,
    usage: Vec<Usage>,
    last_now: Millis,
    next_seq: u64,
    pass: u64,
    /// The latest pass: its buffers are reused, and its blockers explain jobs a strict
    /// pass never reached.
    last_pass: Pass,
    /// Running pipelines (`crate::pipeline`).
    pipelines: Pipelines,
    /// Jobs whose slots left the plan at their estimated end and whose end event has not
    /// come yet (all at the current instant; see [`Scheduler::release_at_estimate`]).
    released_pending: usize,
    /// Buffers of the pipeline steps, reused: what a step decided, and a pipeline's job
    /// ids while it is checked.
    pipeline_fx: Vec<crate::pipeline::state::Effect>,
    pipeline_ids: IdMap<JobId, ()>,
    /// The graphs of the pipelines' shapes seen so far.
    pipeline_graphs: crate::pipeline::GraphCache,
    /// Pipeline jobs that entered the queue (became ready, or a person played them).
    pipeline_jobs_queued: u64,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("policy", &self.config.policy())
            .field("predictor", &self.predictor.name())
            .field("pending", &self.pending)
            .field("jobs", &self.jobs.len())
            .field("runners", &self.fleet.runners.len())
            .finish()
    }
}

impl Scheduler {
    pub fn new(config: CheckedConfig, predictor: Box<dyn Predictor>) -> Self {
        let pools = config.pools().len();
        let tenants = config.tenants().len();
        Self {
            config,
            predictor,
            jobs: IdMap::default(),
            lanes: vec![BTreeMap::new()],
            pending: 0,
            fleet: RunnerIndex::new(pools),
            usage: vec![Usage::default(); tenants],
            last_now: Millis::MIN,
            next_seq: 0,
            pass: 0,
            last_pass: Pass::default(),
            pipelines: Pipelines::default(),
            released_pending: 0,
            pipeline_fx: Vec::new(),
            pipeline_ids: IdMap::default(),
            pipeline_graphs: crate::pipeline::GraphCache::default(),
            pipeline_jobs_queued: 0,
        }
    }

    pub fn config(&self) -> &CheckedConfig {
        &self.config
    }

    pub fn predictor_name(&self) -> &str {
        self.predictor.name()
    }

    /// Registers a label name (live services learn labels from runners); returns its
    /// bit. A known name returns its existing bit.
    pub fn add_label(&mut self, name: &str) -> Result<u32, CoreError> {
        if let Some(i) = self.config.labels.iter().position(|l| l == name) {
            return Ok(i as u32);
        }
        if name.is_empty() || self.config.labels.len() >= 64 {
            return Err(CoreError::InvalidConfig {
                field: "labels".into(),
                reason: format!("cannot add label {name:?}: empty, or 64 labels already"),
            });
        }
        self.config.labels.push(name.to_string());
        Ok((self.config.labels.len() - 1) as u32)
    }

    /// Adds a pool (live services learn pools from runners). Waiting jobs that fit it
    /// may use it from the next pass on.
    pub fn add_pool(&mut self, spec: PoolSpec) -> Result<PoolId, CoreError> {
        let invalid = |reason: String| CoreError::InvalidConfig {
            field: format!("pool {}", spec.name),
            reason,
        };
        if self.config.pools.len() >= 64 {
            return Err(invalid("at most 64 pools".into()));
        }
        if spec.name.is_empty() || self.config.pools.iter().any(|p| p.name == spec.name) {
            return Err(invalid("empty or duplicate pool name".into()));
        }
        if spec.slots_per_runner == 0 {
            return Err(invalid("slots_per_runner must be at least 1".into()));
        }
        let label_bits = if self.config.labels.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.config.labels.len()) - 1
        };
        if spec.labels.0 & !label_bits != 0 {
            return Err(invalid("uses a label bit with no name".into()));
        }
        let id = PoolId(self.config.pools.len() as u16);
        self.config.pools.push(spec);
        self.fleet.pools.push(Default::default());
        for entry in self.jobs.values_mut() {
            let p = &self.config.pools[id.0 as usize];
            if p.can_run(entry.spec.labels, entry.spec.slots) {
                entry.pools.insert(id);
            }
        }
        Ok(id)
    }

    /// Puts back a job that was already running on `runner` since `start_ms` (a
    /// restarting service rebuilding its state). The runner must have joined.
    pub fn restore_running(
        &mut self,
        spec: JobSpec,
        runner: RunnerId,
        start_ms: Millis,
    ) -> Result<Millis, CoreError> {
        let (id, slots) = (spec.id, spec.slots);
        let pools = self.eligible_pools(spec.labels, spec.slots);
        match self.fleet.runners.get(&runner) {
            None => return Err(CoreError::UnknownRunner(runner)),
            Some(r) if !(pools.contains(r.pool) && r.free >= slots) => {
                return Err(CoreError::InvalidJob {
                    job: id,
                    field: "runner",
                    reason: format!("runner {runner} cannot hold it"),
                })
            }
            Some(_) => {}
        }
        self.submit(spec)?;
        if let Some(&EntryState::Pending { lane, key, .. }) = self.jobs.get(&id).map(|e| &e.state) {
            self.lanes[lane].remove(&key);
            self.pending -= 1;
        }
        Ok(self.occupy(id, runner, start_ms, start_ms.max(self.last_now)))
    }

    /// Puts a job (just taken off the queue) on `runner` from `start`: the runner's slots,
    /// the estimated end in the plan, and the expected usage charged to its tenant at
    /// `charge_at`. Returns the estimated end.
    fn occupy(&mut self, job: JobId, runner: RunnerId, start: Millis, charge_at: Millis) -> Millis {
        let Some(entry) = self.jobs.get(&job) else {
            return start;
        };
        let (slots, est, tenant) = (entry.spec.slots, entry.estimate.point_ms, entry.spec.tenant);
        let est_end = start + est;
        self.fleet.occupy(runner, job, slots, est_end);
        let charged = slot_seconds(slots, est);
        self.charge(tenant, charge_at, charged);
        if let Some(e) = self.jobs.get_mut(&job) {
            e.state = EntryState::Running {
                runner,
                start,
                est_end,
                charged,
                released: false,
            };
        }
        est_end
    }

    /// Charges a finished job's usage (`slots` from `start_ms` to `end_ms`) to its
    /// tenant's fair-share account as of its end (a restarting service replaying its
    /// history).
    pub fn charge_usage(&mut self, tenant: TenantId, slots: u32, start_ms: Millis, end_ms: Millis) {
        self.charge(tenant, end_ms, slot_seconds(slots, end_ms - start_ms));
    }

    /// A job submitted before this scheduler existed (a restarting service replaying its
    /// history in time order, its end through [`Scheduler::learn_finished`]): the
    /// predictor is told of the submission ([`Predictor::estimate`]) as it was then, so
    /// that a predictor that measures its estimates against the runs (per-key margins)
    /// can do so again. The core does not queue the job, so the estimate is not kept.
    pub fn learn_submitted(&mut self, spec: &JobSpec) {
        self.predictor.estimate(spec);
    }

    /// A job that finished before this scheduler existed (a restarting service replaying
    /// its history, oldest first): the predictor learns its run time as if it had
    /// finished here.
    pub fn learn_finished(
        &mut self,
        spec: &JobSpec,
        run_ms: Millis,
        finished_ms: Millis,
        failed: bool,
    ) {
        self.predictor.observe(spec, run_ms, finished_ms, failed);
    }

    /// Registers another tenant (live services learn tenants as they come).
    pub fn add_tenant(&mut self, spec: TenantSpec) -> Result<TenantId, CoreError> {
        if !(spec.weight.is_finite() && spec.weight > 0.0) {
            return Err(CoreError::InvalidConfig {
                field: format!("tenant {}.weight", spec.name),
                reason: format!("must be finite and > 0, got {}", spec.weight),
            });
        }
        let id = TenantId(self.config.tenants.len() as u32);
        self.config.tenants.push(spec);
        self.usage.push(Usage::default());
        Ok(id)
    }

    pub fn pending_count(&self) -> usize {
        self.pending
    }

    pub fn running_count(&self) -> usize {
        self.jobs.len() - self.pending
    }

    pub fn runner_count(&self) -> usize {
        self.fleet.runners.len()
    }

    /// Slots free now on runners that take work.
    pub fn free_slots(&self) -> u64 {
        self.fleet.free_slots
    }

    /// Free slots and registered runners of one pool.
    pub fn pool_capacity(&self, pool: PoolId) -> (u64, u32) {
        self.fleet
            .pools
            .get(pool.0 as usize)
            .map_or((0, 0), |p| (p.free_slots, p.runners))
    }

    /// What each pool holds now, the input of autoscaling: its runners (busy, and idle
    /// ones with the time they became idle), the slots running there, and the waiting
    /// jobs (each counted in the first pool that can run it, where a scale-out would
    /// serve it).
    pub fn pool_loads(&self) -> Vec<PoolLoad> {
        let mut loads: Vec<PoolLoad> = (0..self.config.pools().len())
            .map(|i| PoolLoad {
                pool: PoolId(i as u16),
                runners: 0,
                busy_runners: 0,
                running_slots: 0,
                waiting_jobs: 0,
                waiting_slots: 0,
                idle: Vec::new(),
            })
            .collect();
        for entry in self.jobs.values() {
            match entry.state {
                EntryState::Running { runner, .. } => {
                    let pool = self.fleet.runners.get(&runner).map(|r| r.pool);
                    if let Some(l) = pool.and_then(|p| loads.get_mut(p.0 as usize)) {
                        l.running_slots += u64::from(entry.spec.slots);
                    }
                }
                EntryState::Pending { .. } => {
                    let pool = entry.pools.iter().next();
                    if let Some(l) = pool.and_then(|p| loads.get_mut(p.0 as usize)) {
                        l.waiting_jobs += 1;
                        l.waiting_slots += u64::from(entry.spec.slots);
                    }
                }
            }
        }
        for (&id, r) in self.fleet.runners.iter() {
            let Some(l) = loads.get_mut(r.pool.0 as usize) else {
                continue;
            };
            l.runners += 1;
            if !r.running.is_empty() {
                l.busy_runners += 1;
            } else if !r.draining {
                l.idle.push((id, r.idle_since));
            }
        }
        for l in &mut loads {
            // The fleet is a hash map: sort so that the choice of runners is deterministic.
            l.idle.sort_unstable_by_key(|&(id, since)| (since, id));
        }
        loads
    }

    /// Reactive scaling advice per pool: enough runners for the slots running now plus
    /// the slots of waiting jobs (each counted in the first pool that can run it), like
    /// the runner controllers CI users run today.
    pub fn reactive_advice(&self) -> Vec<PoolAdvice> {
        self.reactive_advice_for(&self.pool_loads())
    }

    /// [`Scheduler::reactive_advice`] from loads [`Scheduler::pool_loads`] just gave (an
    /// autoscaler that already holds them need not walk the jobs again).
    pub(crate) fn reactive_advice_for(&self, loads: &[PoolLoad]) -> Vec<PoolAdvice> {
        let pools = self.config.pools();
        loads
            .iter()
            .map(|l| {
                let per = pools
                    .get(l.pool.0 as usize)
                    .map_or(1, |p| u64::from(p.slots_per_runner.max(1)));
                let demand = l.running_slots + l.waiting_slots;
                PoolAdvice {
                    pool: l.pool,
                    current: l.runners,
                    desired: u32::try_from(demand.div_ceil(per)).unwrap_or(u32::MAX),
                    reason: format!(
                        "reactive: {demand} slots running or waiting / {per} slots per runner"
                    ),
                }
            })
            .collect()
    }

    /// The jobs running on `runner` (empty when idle); `None` for an unknown runner.
    pub fn runner_jobs(&self, runner: RunnerId) -> Option<&[JobId]> {
        self.fleet
            .runners
            .get(&runner)
            .map(|r| r.running.as_slice())
    }

    /// The pool of a registered runner.
    pub fn runner_pool(&self, runner: RunnerId) -> Option<PoolId> {
        self.fleet.runners.get(&runner).map(|r| r.pool)
    }

    /// A runner was taken away under its jobs (a spot interruption): like
    /// [`Event::RunnerLost`] its jobs wait again in their old places, and with `retry_on`
    /// each of them that pool can run may from now on run only there (a spot pool's
    /// on-demand fallback). Runs a scheduling pass.
    pub fn interrupt(
        &mut self,
        now: Millis,
        runner: RunnerId,
        retry_on: Option<PoolId>,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.check_time(now)?;
        if let Some(p) = retry_on {
            if p.0 as usize >= self.config.pools().len() {
                return Err(CoreError::UnknownPool(p));
            }
        }
        self.runner_lost(now, runner, retry_on, out)?;
        self.last_now = now;
        self.schedule(now, out);
        Ok(())
    }

    /// Events must come in time order: `now` may not be before the last event's time.
    fn check_time(&self, now: Millis) -> Result<(), CoreError> {
        if now < self.last_now {
            return Err(CoreError::TimeWentBackwards {
                now,
                last: self.last_now,
            });
        }
        Ok(())
    }

    /// Pools that could ever run a job with these labels and slots.
    pub fn eligible_pools(&self, labels: LabelSet, slots: u32) -> PoolMask {
        let mut mask = PoolMask::default();
        for (i, p) in self.config.pools().iter().enumerate() {
            if p.can_run(labels, slots) {
                mask.insert(PoolId(i as u16));
            }
        }
        mask
    }

    /// The tenant's fair-share usage (decayed slot-seconds) at `now`.
    pub fn tenant_usage(&self, tenant: TenantId, now: Millis) -> f64 {
        self.usage
            .get(tenant.0 as usize)
            .map_or(0.0, |u| u.value_at(now, self.config.policy.half_life_ms))
    }

    /// Applies `event` at `now`, runs a scheduling pass, and appends what the driver must
    /// do to `out`. On error nothing changed. Under classic EASY a submission may run no
    /// pass (tie-breaking rule 7).
    pub fn handle(
        &mut self,
        now: Millis,
        event: Event,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.check_time(now)?;
        let submitted = match &event {
            Event::Submit(spec) => Some(spec.id),
            _ => None,
        };
        self.apply(now, event, out)?;
        self.last_now = now;
        if submitted.is_none_or(|job| self.submission_passes(job)) {
            self.schedule(now, out);
        }
        Ok(())
    }

    /// Whether the submission of `job` runs a pass (tie-breaking rule 7): not under
    /// classic EASY (FIFO, backfill in queue order) while slots released at their estimate
    /// wait for their end events, unless the job fits the free slots of a runner that can
    /// run it.
    fn submission_passes(&self, job: JobId) -> bool {
        let policy = &self.config.policy;
        let classic_easy = policy.order == QueueOrder::Fifo
            && policy.backfill == Backfill::Easy
            && policy.backfill_order == BackfillOrder::Queue;
        !classic_easy
            || self.released_pending == 0
            || self
                .jobs
                .get(&job)
                .is_some_and(|e| e.spec.slots <= self.fleet.max_free(e.pools))
    }

    /// Applies several events that happen at the same instant, then runs one pass: the
    /// pass sees all of them at once (for example every runner an autoscaler releases at
    /// `now`). Stops at the first event the core refuses; the events before it stay
    /// applied and the pass still runs.
    pub fn handle_all(
        &mut self,
        now: Millis,
        events: impl IntoIterator<Item = Event>,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.check_time(now)?;
        self.last_now = now;
        let mut result = Ok(());
        for event in events {
            if let Err(e) = self.apply(now, event, out) {
                result = Err(e);
                break;
            }
        }
        self.schedule(now, out);
        result
    }

    fn apply(
        &mut self,
        now: Millis,
        event: Event,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        match event {
            Event::Submit(spec) => self.submit(spec)?,
            // A pipeline job's end moves its pipeline on (`scheduler/pipelines.rs`).
            Event::Finish { job } => {
                self.finish(now, job, false)?;
                self.pipeline_job_ended(now, job, Terminal::Succeeded, out);
            }
            Event::Fail { job } => {
                self.finish(now, job, true)?;
                self.pipeline_job_ended(now, job, Terminal::Failed { allowed: false }, out);
            }
            Event::Cancel { job } => self.cancel_event(now, job, out)?,
            Event::RunnerJoined { runner, pool } => {
                let slots = self
                    .config
                    .pools()
                    .get(pool.0 as usize)
                    .ok_or(CoreError::UnknownPool(pool))?
                    .slots_per_runner;
                if self.fleet.runners.contains_key(&runner) {
                    return Err(CoreError::DuplicateRunner(runner));
                }
                self.fleet.add_runner(runner, pool, slots, now);
            }
            Event::RunnerLost { runner } => self.runner_lost(now, runner, None, out)?,
            Event::RunnerDraining { runner, draining } => {
                if !self.fleet.set_draining(runner, draining) {
                    return Err(CoreError::UnknownRunner(runner));
                }
            }
            Event::Tick => {}
            Event::SubmitPipeline(spec) => self.submit_pipeline(now, &spec, out)?,
            Event::CancelPipeline { pipeline } => self.cancel_pipeline(now, pipeline, out)?,
            Event::PlayManual { job } => self.play_manual(now, job, out)?,
            Event::Skip { job } => self.skip_event(now, job, out)?,
        }
        Ok(())
    }

    /// A running job outlived its estimate: the estimate grows by the predictor's
    /// corrector ([`Predictor::correct`], Tsafrir's by default). No scheduling pass runs (the published
    /// EASY++ runs do not reschedule here; the next event's pass sees the new estimate).
    /// Returns the new expected end, or `None` when the estimate cannot grow.
    pub fn extend_estimate(
        &mut self,
        now: Millis,
        job: JobId,
    ) -> Result<Option<Millis>, CoreError> {
        self.check_time(now)?;
        let entry = self.jobs.get_mut(&job).ok_or(CoreError::UnknownJob(job))?;
        // A job whose slots left the plan at its estimated end is over for planning.
        let EntryState::Running {
            runner,
            start,
            est_end,
            charged,
            released: false,
        } = entry.state
        else {
            return Err(CoreError::NotRunning(job));
        };
        let duration = self
            .predictor
            .correct(&entry.spec, entry.estimate, entry.corrections);
        entry.corrections += 1;
        let new_end = start.saturating_add(duration);
        if new_end <= est_end {
            return Ok(None);
        }
        entry.state = EntryState::Running {
            runner,
            start,
            est_end: new_end,
            charged,
            released: false,
        };
        let slots = entry.spec.slots;
        self.fleet.move_end(runner, job, slots, est_end, new_end);
        self.last_now = now;
        Ok(Some(new_end))
    }

    /// A running job ends now, exactly at its estimated end, and the driver reports its
    /// end ([`Event::Finish`] or [`Event::Fail`]) later at this same instant: its slots
    /// leave the plan at once, with no pass, so that every pass of the instant sees them
    /// free (tie-breaking rule 6). The predictor and fair share learn of the job, and the
    /// pass runs, with its end event.
    pub fn release_at_estimate(&mut self, now: Millis, job: JobId) -> Result<(), CoreError> {
        self.check_time(now)?;
        let entry = self.jobs.get_mut(&job).ok_or(CoreError::UnknownJob(job))?;
        let EntryState::Running {
            runner,
            est_end,
            ref mut released,
            ..
        } = entry.state
        else {
            return Err(CoreError::NotRunning(job));
        };
        if *released {
            return Err(CoreError::NotRunning(job));
        }
        if est_end != now {
            return Err(CoreError::InvalidJob {
                job,
                field: "estimated end",
                reason: format!("{est_end} ms is not now ({now} ms)"),
            });
        }
        *released = true;
        self.released_pending += 1;
        let slots = entry.spec.slots;
        self.fleet.release(runner, job, slots, est_end, now);
        self.last_now = now;
        Ok(())
    }

    /// When `job` entered the queue, while it waits or runs: for a pipeline job, the
    /// instant it became ready (its spec's own `submit_ms` is replaced then).
    pub fn queued_at(&self, job: JobId) -> Option<Millis> {
        self.jobs.get(&job).map(|e| e.spec.submit_ms)
    }

    /// The run-time estimate the core plans `job` with, while it waits or runs.
    pub fn estimate_of(&self, job: JobId) -> Option<Estimate> {
        self.jobs.get(&job).map(|e| e.estimate)
    }

    /// What the predictor expects of a job this core is not submitting (ETAs of finished
    /// or parked jobs; [`Predictor::preview`], which remembers nothing), bounded as a
    /// submission's estimate is: a point of at least 1 ms, an upper quantile no lower
    /// than the point.
    pub fn preview(&self, spec: &JobSpec) -> Estimate {
        at_least_one_ms(self.predictor.preview(spec))
    }

    pub(crate) fn fleet(&self) -> &RunnerIndex {
        &self.fleet
    }

    pub(crate) fn lanes(&self) -> &[BTreeMap<LaneKey, JobId>] {
        &self.lanes
    }

    /// What `crate::projection` needs of a job the core holds.
    pub(crate) fn job_view(&self, job: JobId) -> Option<JobView> {
        let e = self.jobs.get(&job)?;
        Some(JobView {
            pools: e.pools,
            slots: e.spec.slots,
            estimate: e.estimate,
            running: e.running(),
        })
    }

    /// How many waiting jobs are ahead of `job` in its lane (the whole queue for FIFO,
    /// priority and shortest-estimate orders; its tenant's or QoS class's jobs under
    /// fair share and QoS, whose lanes interleave by score). `None` unless it waits.
    pub fn queue_position(&self, job: JobId) -> Option<usize> {
        let EntryState::Pending { lane, key, .. } = self.jobs.get(&job)?.state else {
            return None;
        };
        Some(self.lanes.get(lane)?.range(..key).count())
    }

    /// Where `job` is and, if it waits, why.
    pub fn explain(&mut self, job: JobId, now: Millis) -> Result<JobStatus, CoreError> {
        let entry = self.jobs.get(&job).ok_or(CoreError::UnknownJob(job))?;
        Ok(match entry.state {
            EntryState::Running {
                runner,
                start,
                est_end,
                ..
            } => JobStatus::Running {
                runner,
                started_ms: start,
                expected_end_ms: est_end,
            },
            EntryState::Pending {
                reason,
                reason_pass,
                ..
            } => {
                let estimate = entry.estimate;
                let reason = if reason_pass == self.pass && reason_pass != 0 {
                    reason
                } else if let Some(&(_, blocker)) = self
                    .last_pass
                    .blockers
                    .iter()
                    .find(|(m, j)| m.intersects(entry.pools) && *j != job)
                    .filter(|_| self.config.policy.backfill == Backfill::None)
                {
                    // The last strict pass stopped once every pool was closed.
                    WaitReason::BlockedBehind { job: blocker }
                } else {
                    // The last pass stopped before this job: nothing was free.
                    let (pools, slots) = (entry.pools, entry.spec.slots);
                    let earliest = self
                        .fleet
                        .earliest_start(pools, slots, now)
                        .map(|e| (e.runner, e.at));
                    WaitReason::NoCapacity { pools, earliest }
                };
                JobStatus::Pending { reason, estimate }
            }
        })
    }

    fn lane_and_key(&self, spec: &JobSpec, estimate: Estimate, seq: u64) -> (usize, LaneKey) {
        // Critical-path order: a pipeline job's key under the policy's rule across
        // pipelines (queued now, so it became ready at its submit time); an independent
        // job's submit time.
        let critical_path = || {
            self.pipelines
                .critical_path_key(spec.id, spec.submit_ms, self.config.policy.critical_path)
                .unwrap_or((spec.submit_ms, 0))
        };
        let inner = match self.config.policy.within_lane {
            WithinLane::Submit => (0, 0),
            WithinLane::ShortestEstimate => (estimate.point_ms, 0),
            WithinLane::CriticalPath => critical_path(),
        };
        let (s, id) = (spec.submit_ms, seq);
        match self.config.policy.order {
            QueueOrder::Fifo => (0, (0, 0, s, id)),
            QueueOrder::CriticalPath => {
                let (a, b) = critical_path();
                (0, (a, b, s, id))
            }
            QueueOrder::Priority => (0, (-i64::from(spec.priority), 0, s, id)),
            QueueOrder::ShortestEstimate => (0, (estimate.point_ms, 0, s, id)),
            QueueOrder::FairShare => (spec.tenant.0 as usize, (inner.0, inner.1, s, id)),
            QueueOrder::Qos => (spec.qos.0 as usize, (inner.0, inner.1, s, id)),
        }
    }

    fn submit(&mut self, spec: JobSpec) -> Result<(), CoreError> {
        // A job of a running pipeline keeps its id even before it is queued.
        if self.pipelines.holds(spec.id) {
            return Err(CoreError::DuplicateJob(spec.id));
        }
        let pools = self.check_job(&spec)?;
        self.admit(spec, pools);
        Ok(())
    }

    /// Checks a job for submission; returns the pools that can run it.
    fn check_job(&self, spec: &JobSpec) -> Result<PoolMask, CoreError> {
        let id = spec.id;
        if self.jobs.contains_key(&id) {
            return Err(CoreError::DuplicateJob(id));
        }
        if spec.tenant.0 as usize >= self.config.tenants().len() {
            return Err(CoreError::UnknownTenant(spec.tenant));
        }
        if spec.qos.0 as usize >= self.config.qos().len() {
            return Err(CoreError::UnknownQos(spec.qos));
        }
        if spec.slots == 0 {
            return Err(CoreError::InvalidJob {
                job: id,
                field: "slots",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(r) = spec.requested_ms.filter(|&r| r < 0) {
            return Err(CoreError::InvalidJob {
                job: id,
                field: "requested_ms",
                reason: format!("must not be negative, got {r}"),
            });
        }
        let pools = self.eligible_pools(spec.labels, spec.slots);
        if pools.is_empty() {
            let have = self
                .config
                .pools()
                .iter()
                .fold(0u64, |acc, p| acc | p.labels.0);
            return Err(CoreError::NoEligiblePool {
                job: id,
                missing_labels: self.config.label_names(LabelSet(spec.labels.0 & !have)),
                slots: spec.slots,
            });
        }
        Ok(pools)
    }

    /// Queues a checked job: estimates it and puts it in its lane.
    fn admit(&mut self, spec: JobSpec, pools: PoolMask) {
        let id = spec.id;
        let estimate = at_least_one_ms(self.predictor.estimate(&spec));
        let seq = self.next_seq;
        self.next_seq += 1;
        let (lane, key) = self.lane_and_key(&spec, estimate, seq);
        self.enqueue(id, lane, key);
        self.jobs.insert(
            id,
            JobEntry {
                spec,
                estimate,
                pools,
                seq,
                corrections: 0,
                state: EntryState::Pending {
                    lane,
                    key,
                    reason: WaitReason::NoCapacity {
                        pools,
                        earliest: None,
                    },
                    reason_pass: 0,
                },
            },
        );
    }

    fn enqueue(&mut self, id: JobId, lane: usize, key: LaneKey) {
        if self.lanes.len() <= lane {
            self.lanes.resize_with(lane + 1, BTreeMap::new);
        }
        self.lanes[lane].insert(key, id);
        self.pending += 1;
    }

    fn finish(&mut self, now: Millis, job: JobId, failed: bool) -> Result<(), CoreError> {
        let entry = self.jobs.get(&job).ok_or(CoreError::UnknownJob(job))?;
        let EntryState::Running {
            runner,
            start,
            est_end,
            charged,
            released,
        } = entry.state
        else {
            return Err(CoreError::NotRunning(job));
        };
        let entry = self.jobs.remove(&job).ok_or(CoreError::UnknownJob(job))?;
        if released {
            self.released_pending -= 1;
        } else {
            self.fleet
                .release(runner, job, entry.spec.slots, est_end, now);
        }
        let run_ms = now - start;
        self.true_up(entry.spec.tenant, entry.spec.slots, now, start, charged);
        self.predictor.observe(&entry.spec, run_ms, now, failed);
        Ok(())
    }

    fn cancel(&mut self, now: Millis, job: JobId) -> Result<(), CoreError> {
        let entry = self.jobs.remove(&job).ok_or(CoreError::UnknownJob(job))?;
        match entry.state {
            EntryState::Pending { lane, key, .. } => {
                self.lanes[lane].remove(&key);
                self.pending -= 1;
            }
            EntryState::Running {
                runner,
                start,
                est_end,
                charged,
                released,
            } => {
                if released {
                    self.released_pending -= 1;
                } else {
                    self.fleet
                        .release(runner, job, entry.spec.slots, est_end, now);
                }
                self.true_up(entry.spec.tenant, entry.spec.slots, now, start, charged);
            }
        }
        self.predictor.forget(&entry.spec);
        Ok(())
    }

    fn runner_lost(
        &mut self,
        now: Millis,
        runner: RunnerId,
        retry_on: Option<PoolId>,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        let running = self
            .fleet
            .runners
            .get(&runner)
            .ok_or(CoreError::UnknownRunner(runner))?
            .running
            .clone();
        for job in running {
            let Some(entry) = self.jobs.get(&job) else {
                continue;
            };
            let EntryState::Running {
                start,
                est_end,
                charged,
                ..
            } = entry.state
            else {
                continue;
            };
            let (slots, tenant) = (entry.spec.slots, entry.spec.tenant);
            let (lane, key) = self.lane_and_key(&entry.spec, entry.estimate, entry.seq);
            let retry = retry_on.filter(|p| {
                self.config
                    .pools()
                    .get(p.0 as usize)
                    .is_some_and(|spec| spec.can_run(entry.spec.labels, slots))
            });
            if let Some(entry) = self.jobs.get_mut(&job) {
                if let Some(p) = retry {
                    entry.pools = PoolMask::default();
                    entry.pools.insert(p);
                }
                entry.state = EntryState::Pending {
                    lane,
                    key,
                    reason: WaitReason::NoCapacity {
                        pools: entry.pools,
                        earliest: None,
                    },
                    reason_pass: 0,
                };
            }
            self.fleet.release(runner, job, slots, est_end, now);
            self.true_up(tenant, slots, now, start, charged);
            self.enqueue(job, lane, key);
            out.push(Decision::Requeue { job, runner });
        }
        self.fleet.remove_runner(runner);
        Ok(())
    }

    /// Replaces what was charged at start (decayed since) by the slot-seconds really used,
    /// so usage reflects the work done as of its end.
    fn true_up(&mut self, tenant: TenantId, slots: u32, now: Millis, start: Millis, charged: f64) {
        let hl = self.config.policy.half_life_ms;
        let decayed = charged * (-((now - start) as f64) / hl).exp2();
        let actual = slot_seconds(slots, now - start);
        self.charge(tenant, now, actual - decayed);
    }

    fn charge(&mut self, tenant: TenantId, now: Millis, slot_seconds: f64) {
        let hl = self.config.policy.half_life_ms;
        if let Some(u) = self.usage.get_mut(tenant.0 as usize) {
            u.add(now, slot_seconds, hl);
        }
    }

    /// Lane score at `now` (lower goes first) for the lane whose first job has `key`.
    pub(crate) fn lane_score(&self, lane: usize, key: &LaneKey, now: Millis) -> f64 {
        let policy = &self.config.policy;
        match policy.order {
            QueueOrder::FairShare => {
                let weight = self.config.tenants.get(lane).map_or(1.0, |t| t.weight);
                self.usage
                    .get(lane)
                    .map_or(0.0, |u| u.value_at(now, policy.half_life_ms))
                    / weight
            }
            QueueOrder::Qos => match self.config.qos.get(lane) {
                Some(q) => {
                    let waited = (now - key.2).max(0) as f64 / q.wait_target_ms as f64;
                    -(f64::from(q.priority) + policy.qos_aging_weight * waited)
                }
                None => 0.0,
            },
            _ => 0.0,
        }
    }

    /// One scheduling pass at `now`.
    fn schedule(&mut self, now: Millis, out: &mut Vec<Decision>) {
        if self.pending == 0 || self.fleet.free_slots == 0 {
            return;
        }
        self.pass += 1;
        let pools = self.fleet.pools.len();
        let mut p = std::mem::take(&mut self.last_pass);
        p.start(now, self.pass, self.config.policy.backfill, pools);
        let lanes = std::mem::take(&mut self.lanes);
        if lanes.len() == 1 {
            // One lane (FIFO, priority, shortest estimate): its own order is the order.
            let sjf = self.config.policy.backfill_order == BackfillOrder::ShortestEstimate
                && p.backfill == Backfill::Easy;
            let mut queue = lanes[0].iter();
            for (&key, &job) in queue.by_ref() {
                if p.is_over(self.fleet.free_slots) {
                    break;
                }
                self.visit(&mut p, job, 0, key, out);
                if sjf && !p.reservations.is_empty() {
                    break;
                }
            }
            if sjf && !p.reservations.is_empty() {
                // EASY++: behind the reserved job, the shortest estimates try first
                // (queue order among equals).
                let mut rest: Vec<(Millis, LaneKey, JobId)> = queue
                    .map(|(&k, &j)| {
                        (
                            self.jobs
                                .get(&j)
                                .map_or(Millis::MAX, |e| e.estimate.point_ms),
                            k,
                            j,
                        )
                    })
                    .collect();
                rest.sort_by_key(|&(est, key, _)| (est, key));
                p.no_new_reservations = true;
                for (_, key, job) in rest {
                    if p.is_over(self.fleet.free_slots) {
                        break;
                    }
                    self.visit(&mut p, job, 0, key, out);
                }
            }
            self.finish_pass(lanes, p);
            return;
        }
        // Lanes are merged by score; a heap entry is (score, head key, lane).
        let mut cursors: Vec<std::collections::btree_map::Iter<'_, LaneKey, JobId>> =
            lanes.iter().map(|l| l.iter()).collect();
        let mut heap: BinaryHeap<Reverse<(OrdF64, LaneKey, usize)>> = BinaryHeap::new();
        let mut heads: Vec<Option<(LaneKey, JobId)>> = vec![None; lanes.len()];
        for (i, cur) in cursors.iter_mut().enumerate() {
            if let Some((k, j)) = cur.next() {
                heads[i] = Some((*k, *j));
                heap.push(Reverse((OrdF64(self.lane_score(i, k, now)), *k, i)));
            }
        }
        while let Some(Reverse((_, _, lane))) = heap.pop() {
            if p.is_over(self.fleet.free_slots) {
                break;
            }
            let Some((key, job)) = heads[lane].take() else {
                continue;
            };
            self.visit(&mut p, job, lane, key, out);
            if let Some((k, j)) = cursors[lane].next() {
                heads[lane] = Some((*k, *j));
                heap.push(Reverse((OrdF64(self.lane_score(lane, k, now)), *k, lane)));
            }
        }
        drop(cursors);
        self.finish_pass(lanes, p);
    }

    /// Puts the lanes back, drops the started jobs from the queue, and keeps the pass's
    /// buffers (and what it learnt, for `explain`).
    fn finish_pass(&mut self, lanes: Vec<BTreeMap<LaneKey, JobId>>, mut p: Pass) {
        self.lanes = lanes;
        for (lane, key) in p.started.drain(..) {
            self.lanes[lane].remove(&key);
            self.pending -= 1;
        }
        self.last_pass = p;
    }

    fn visit(
        &mut self,
        p: &mut Pass,
        job: JobId,
        lane: usize,
        key: LaneKey,
        out: &mut Vec<Decision>,
    ) {
        let (now, pass, backfill, may_reserve) =
            (p.now, p.number, p.backfill, !p.no_new_reservations);
        let Pass {
            reservations,
            waiting_pools,
            blocked_pools,
            blockers,
            started,
            ..
        } = p;
        let Some(entry) = self.jobs.get(&job) else {
            return;
        };
        let (pools, slots, est) = (entry.pools, entry.spec.slots, entry.estimate.point_ms);

        let reason = 'wait: {
            // Strict FCFS: pools an earlier blocked job needs are closed to later jobs.
            let usable = PoolMask(pools.0 & !blocked_pools.0);
            if usable.is_empty() {
                let blocker = blockers
                    .iter()
                    .find(|(m, _)| m.intersects(pools))
                    .map_or(job, |&(_, j)| j);
                break 'wait WaitReason::BlockedBehind { job: blocker };
            }
            let mut refused: Option<Reservation> = None;
            let mut chosen = None;
            if slots <= self.fleet.max_free(usable) {
                for pool in usable.iter() {
                    let fit = self.fleet.best_fit(pool, slots, |r| {
                        match reservations.iter().find(|res| res.runner == r) {
                            None => true,
                            Some(res) if now + est <= res.at || slots <= res.extra => true,
                            Some(res) => {
                                refused = Some(*res);
                                false
                            }
                        }
                    });
                    if let Some(r) = fit {
                        chosen = Some(r);
                        break;
                    }
                }
            }
            if let Some(runner) = chosen {
                let est_end = self.occupy(job, runner, now, now);
                let free_after = self.fleet.runners.get(&runner).map_or(0, |r| r.free);
                if let Some(res) = reservations.iter_mut().find(|res| res.runner == runner) {
                    if est_end > res.at {
                        res.extra -= slots;
                    }
                    res.extra = res.extra.min(free_after);
                }
                started.push((lane, key));
                out.push(Decision::Start {
                    job,
                    runner,
                    expected_end_ms: est_end,
                });
                return;
            }
            if let Some(res) = refused {
                *waiting_pools = waiting_pools.union(pools);
                break 'wait WaitReason::WouldDelay {
                    job: res.job,
                    runner: res.runner,
                    at: res.at,
                };
            }
            match backfill {
                Backfill::None => {
                    *blocked_pools = blocked_pools.union(pools);
                    blockers.push((pools, job));
                    WaitReason::NoCapacity {
                        pools,
                        earliest: None,
                    }
                }
                // Only the first blocked job of a group of pools is protected: a job
                // that shares a pool with an earlier blocked job must not be promised
                // a runner that earlier job may take.
                Backfill::Easy if may_reserve && !pools.intersects(*waiting_pools) => {
                    *waiting_pools = waiting_pools.union(pools);
                    match self.fleet.earliest_start(pools, slots, now) {
                        Some(e) => {
                            reservations.push(Reservation {
                                job,
                                runner: e.runner,
                                at: e.at,
                                extra: e.extra,
                            });
                            WaitReason::Reserved {
                                runner: e.runner,
                                at: e.at,
                            }
                        }
                        None => WaitReason::NoCapacity {
                            pools,
                            earliest: None,
                        },
                    }
                }
                Backfill::Easy => {
                    *waiting_pools = waiting_pools.union(pools);
                    WaitReason::NoCapacity {
                        pools,
                        earliest: None,
                    }
                }
                Backfill::Greedy => WaitReason::NoCapacity {
                    pools,
                    earliest: None,
                },
            }
        };
        if let Some(EntryState::Pending {
            reason: r,
            reason_pass,
            ..
        }) = self.jobs.get_mut(&job).map(|e| &mut e.state)
        {
            *r = reason;
            *reason_pass = pass;
        }
    }
}

/// Fair-share usage of `slots` held for `ms` (never negative).
pub(crate) fn slot_seconds(slots: u32, ms: Millis) -> f64 {
    f64::from(slots) * ms.max(0) as f64 / 1000.0
}

/// f64 with a total order, for heap keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF64(pub(crate) f64);

impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A job takes at least a millisecond, and its upper quantile is never below its point.
fn at_least_one_ms(mut estimate: Estimate) -> Estimate {
    estimate.point_ms = estimate.point_ms.max(1);
    estimate.upper_ms = estimate.upper_ms.max(estimate.point_ms);
    estimate
}
