//! The discrete-event engine: feeds the core job submissions, finishes and runner joins
//! in (time, class, sequence) order, and applies the decisions it returns. No wall clock
//! inside; the same inputs give the same schedule.
//!
//! With an autoscaler ([`EngineScaling`]) two more event classes come last at their
//! time: spot interruptions, then autoscaler evaluations (every `interval`). A runner
//! asked for at `t` joins at `t + provisioning delay` and is paid for from `t` until it is
//! released; only runners with no job are released (the engine checks it), so scale-in
//! never kills a running job. A spot runner's interruption time is drawn when it joins
//! (exponential, from a seeded generator); its jobs are requeued by the core
//! ([`Scheduler::interrupt`]), onto the fallback pool when there is one. Without an
//! autoscaler, or with the static one and no spot pool, no such event exists and the
//! schedule is the same as before autoscaling existed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustci_scheduler::{
    Autoscaler, CancelReason, CoreError, Decision, Event, JobId, Millis, PipelineId, PipelineState,
    PoolId, RunnerId, ScalePolicy, Scheduler,
};
use thiserror::Error;

use crate::workload::{SimJob, SimPipeline};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("the scheduler refused an event at t={at_ms} ms: {source}")]
    Core {
        at_ms: Millis,
        #[source]
        source: CoreError,
    },
    /// The core refused a pipeline of the trace (named by its trace id).
    #[error("pipeline {pipeline} at t={at_ms} ms: {source}")]
    Pipeline {
        pipeline: String,
        at_ms: Millis,
        #[source]
        source: Box<CoreError>,
    },
    /// The core broke an invariant the engine checks (capacity, double start).
    #[error("invariant broken at t={at_ms} ms: {what}")]
    Invariant { at_ms: Millis, what: String },
}

/// Event classes at equal times, in the order they are delivered: pyss's order of one
/// instant (its `JobPredictionIsOverEvent`, `JobSubmissionEvent`, `JobTerminationEvent`),
/// with runner joins first.
///
/// A job that ends exactly at its estimated end has left pyss's plan at that instant
/// before any event is handled (pyss keeps its plan by estimated ends and frees slots by
/// time), while its predictor update and its pass come with its termination, after the
/// instant's submissions. So such a job has two entries: `RELEASE_AT_ESTIMATE` frees its
/// slots before the submissions ([`Scheduler::release_at_estimate`], no pass), and its
/// `FINISH` comes with the others. Finishes of one instant keep the order their jobs
/// started in (pyss numbers a termination event when the job starts), each with its own
/// pass: a job that ends early frees its slots only then, so a pass run before it (by a
/// submission, or by an earlier-started job's end) does not see them, and one after it
/// does, along with every job that ended at its estimate.
const RUNNER_JOIN: u8 = 0;
/// A running job reached its estimated end and runs on: its estimate grows first (pyss's
/// `JobPredictionIsOverEvent` comes before everything else at its time).
const ESTIMATE_EXPIRED: u8 = 1;
const RELEASE_AT_ESTIMATE: u8 = 2;
const SUBMIT: u8 = 3;
const FINISH: u8 = 4;
/// A spot runner is taken away: after everything else at its time.
const INTERRUPT: u8 = 5;
/// The autoscaler looks at the state once everything at its time has happened.
const SCALE: u8 = 6;

#[derive(Debug, Clone, Copy)]
struct Pending {
    at: Millis,
    class: u8,
    seq: u64,
    kind: Kind,
}

/// Events of one job carry its attempt number: a job requeued by an interruption starts a
/// new attempt, and the events of the old one are skipped.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Finish(u32, u32),
    Expire(u32, u32),
    Release(u32, u32),
    Join(RunnerId, PoolId),
    Interrupt(RunnerId),
    Scale,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.class, self.seq).cmp(&(o.at, o.class, o.seq))
    }
}

/// Pending events in (time, class, sequence) order; the sequence numbers events in the
/// order they were created, so ties within a class keep that order.
struct EventQueue {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl EventQueue {
    fn with_capacity(n: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(n),
            seq: 0,
        }
    }

    fn push(&mut self, at: Millis, class: u8, kind: Kind) {
        self.heap.push(Reverse(Pending {
            at,
            class,
            seq: self.seq,
            kind,
        }));
        self.seq += 1;
    }
}

/// Where and when one job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub runner: RunnerId,
}

/// How a job ended, as the engine saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Finished,
    Failed,
    /// Cancelled by the core (supersession); its placement, if it ran, ends at the cancel.
    Cancelled,
    /// Skipped: the trace recorded it so, or the core skipped it (a condition failed).
    Skipped,
    /// A manual job nobody played.
    Manual,
}

/// One pipeline as it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineRun {
    /// When it ended and how (`None`: it had not ended when the run stopped).
    pub end: Option<(Millis, PipelineState)>,
    /// The core's projected end right after its creation ([`EngineOptions::eta_limit`]);
    /// `None` when not asked, or when it had already ended at its creation.
    pub eta_ms: Option<Millis>,
}

/// What supersession did, with true run times (the core's `PipelineStats` counts the
/// pipelines and jobs, and the run time by its estimates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Supersession {
    /// Slot-milliseconds the jobs it cancelled would still have run: a job that had not
    /// started, its whole run time; an interrupted one, the rest of its run.
    pub saved_slot_ms: i64,
    /// Slot-milliseconds interrupted jobs had run (lost work).
    pub lost_slot_ms: i64,
}

/// What the engine replays: independent jobs (`jobs[..independent]`, in submission
/// order) and pipelines (in creation order) whose jobs are the rest of `jobs`.
#[derive(Debug, Clone, Copy)]
pub struct Arrivals<'a> {
    pub jobs: &'a [SimJob],
    pub independent: usize,
    pub pipelines: &'a [SimPipeline],
}

/// The engine's output.
#[derive(Debug, Clone, Default)]
pub struct EngineOutput {
    /// Per job (index of the job slice): where it ran; `None` if the core refused it
    /// (no eligible pool) or it never started.
    pub placements: Vec<Option<Placement>>,
    /// Per job: when it entered the core's queue (a pipeline job: when it became
    /// ready; an independent job: its submission).
    pub queued_ms: Vec<Millis>,
    /// Per job: how it ended (`None`: it had not ended when the run stopped).
    pub fates: Vec<Option<Fate>>,
    /// Per pipeline (index of [`Arrivals::pipelines`]).
    pub pipelines: Vec<PipelineRun>,
    pub supersession: Supersession,
    /// Jobs the core refused at submission because no pool can ever run them.
    pub refused: u64,
    /// Events handled: an arrival (an independent job's submission, a pipeline's
    /// creation, a pipeline job's entry into the queue when it becomes ready) or a job's
    /// end, and the estimate expiries, autoscaler evaluations and interruptions.
    pub events: u64,
    /// Of `events`, the pipeline jobs' entries into the queue (the core counts them:
    /// they happen inside a creation or an end).
    pub pipeline_job_arrivals: u64,
    /// Every decision with its time, when asked for (parity tests compare these).
    pub decisions: Option<Vec<(Millis, Decision)>>,
    /// What the autoscaler did, when there was one.
    pub scaling: Option<ScalingOutcome>,
    /// The QoS class (index) whose wait target stopped the run early
    /// ([`EngineOptions::give_up`]); the placements are then only those made so far.
    pub gave_up: Option<usize>,
}

/// Options of one engine run.
#[derive(Default)]
pub struct EngineOptions {
    pub record_decisions: bool,
    /// Called after every `progress_every` finished jobs with the count so far.
    pub progress: Option<Box<dyn FnMut(u64)>>,
    pub progress_every: u64,
    /// Runners come and go as an autoscaler decides.
    pub scaling: Option<EngineScaling>,
    /// Per QoS class (index), a p95 wait target in seconds: the run stops as soon as a
    /// class can no longer meet it, because more than 5% of its jobs have started after
    /// waiting longer (capacity planning need not finish a run that has already failed).
    /// Empty: the run always finishes.
    pub give_up: Vec<Option<f64>>,
    /// Ask the core for each pipeline's projected end right after its creation, looking
    /// at most this many waiting jobs ahead ([`Scheduler::pipeline_eta`]'s limit).
    pub eta_limit: Option<usize>,
}

/// Counts, per QoS class, the jobs that started later than the class's target.
#[derive(Debug, Default)]
struct GiveUp {
    /// Per class: (target in seconds, late jobs that prove the p95 above it, late so far).
    classes: Vec<Option<(f64, u64, u64)>>,
    /// Jobs already counted (a retried job counts once: its later start is later still).
    counted: Vec<bool>,
}

impl GiveUp {
    fn new(targets: &[Option<f64>], jobs: &[SimJob]) -> Self {
        if targets.iter().all(Option::is_none) {
            return Self::default();
        }
        let mut per_class = vec![0u64; targets.len()];
        for j in jobs {
            if let Some(n) = per_class.get_mut(j.spec.qos.0 as usize) {
                *n += 1;
            }
        }
        // The report's p95 is the nearest rank, the ceil(0.95 n)-th smallest wait: it is
        // above the target once n - ceil(0.95 n) + 1 waits are. That count only grows
        // with n, so jobs that never start (n smaller in the report) keep the proof.
        let classes = targets
            .iter()
            .zip(&per_class)
            .map(|(t, &n)| {
                t.map(|target| {
                    let within = ((n as f64) * 0.95).ceil() as u64;
                    (target, n - within.min(n) + 1, 0)
                })
            })
            .collect();
        Self {
            classes,
            counted: vec![false; jobs.len()],
        }
    }

    /// Job `i` of class `class` waited `wait_s`; the class it proves failing, if any.
    fn started(&mut self, i: usize, class: usize, wait_s: f64) -> Option<usize> {
        let (target, needed, late) = self.classes.get_mut(class)?.as_mut()?;
        if wait_s <= *target || self.counted.get(i).copied().unwrap_or(true) {
            return None;
        }
        self.counted[i] = true;
        *late += 1;
        (*late >= *needed).then_some(class)
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("record_decisions", &self.record_decisions)
            .field("progress_every", &self.progress_every)
            .field("scaling", &self.scaling)
            .field("give_up", &self.give_up)
            .field("eta_limit", &self.eta_limit)
            .finish_non_exhaustive()
    }
}

/// The autoscaler of a run and the seed of its spot interruptions.
#[derive(Debug)]
pub struct EngineScaling {
    pub autoscaler: Autoscaler,
    pub seed: u64,
}

/// One runner's life: asked for, ready, released (`None`: still there at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerLife {
    pub pool: PoolId,
    pub requested_ms: Millis,
    pub ready_ms: Option<Millis>,
    pub released_ms: Option<Millis>,
    /// Taken away by a spot interruption (at `released_ms`).
    pub interrupted: bool,
}

/// What autoscaling did in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingOutcome {
    /// Every runner, indexed by runner id.
    pub runners: Vec<RunnerLife>,
    pub evaluations: u64,
    pub interruptions: u64,
    /// Run time lost to interruptions (the job ran again from the start), milliseconds.
    pub retried_work_ms: i64,
    /// Interrupted jobs sent to their pool's on-demand fallback.
    pub requeued_to_fallback: u64,
    /// Jobs that were waiting when nothing could change any more (no runner would ever
    /// come for them, e.g. `max_runners = 0`).
    pub never_started: u64,
}

/// SplitMix64: a tiny seeded generator, so interruptions are the same on every run.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponential with `rate_per_ms` (> 0), milliseconds.
    fn exponential_ms(&mut self, rate_per_ms: f64) -> Millis {
        let t = -self.unit().ln() / rate_per_ms;
        if t.is_finite() && t < i64::MAX as f64 / 2.0 {
            (t.round() as Millis).max(1)
        } else {
            i64::MAX / 2
        }
    }
}

/// The engine's side of autoscaling: runner lives, runners in flight, the generator.
struct Scaling {
    autoscaler: Autoscaler,
    rng: SplitMix64,
    out: ScalingOutcome,
    /// Per pool: runners asked for and not joined yet.
    provisioning: Vec<u32>,
    /// Per pool: (provisioning delay, interruptions per ms, fallback pool).
    pools: Vec<(Millis, f64, Option<PoolId>)>,
    ticking: bool,
}

impl Scaling {
    fn new(s: EngineScaling, scheduler: &Scheduler) -> Self {
        let rules = s.autoscaler.config().pools();
        let pools = scheduler
            .config()
            .pools()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let spot = rules.get(i).and_then(|r| r.spot);
                (
                    p.provisioning_delay_ms.max(0),
                    spot.map_or(0.0, |s| s.interruption_rate_per_hour / 3_600_000.0),
                    spot.and_then(|s| s.fallback),
                )
            })
            .collect::<Vec<_>>();
        let ticking = s.autoscaler.config().policy() != ScalePolicy::Static
            || s.autoscaler.config().has_spot();
        Self {
            provisioning: vec![0; pools.len()],
            pools,
            rng: SplitMix64(s.seed),
            autoscaler: s.autoscaler,
            out: ScalingOutcome::default(),
            ticking,
        }
    }
}

/// The engine's view of the run, to check the core and to record what happened.
struct State {
    queue: EventQueue,
    out: EngineOutput,
    /// Slots used and slots of every runner, by runner id.
    used: Vec<u32>,
    capacity: Vec<u32>,
    /// Jobs whose slots left the plan at their estimated end, before their finish.
    released: Vec<bool>,
    /// Each job's attempt: an interrupted job starts over, and events of the attempt
    /// before are skipped.
    attempt: Vec<u32>,
    give_up: GiveUp,
}

impl State {
    fn grow(&mut self, runner: RunnerId, slots: u32) {
        let r = runner.0 as usize;
        if self.capacity.len() <= r {
            self.capacity.resize(r + 1, 0);
            self.used.resize(r + 1, 0);
        }
        self.capacity[r] = slots;
    }

    /// Applies one decision of the core at `now`. A requeue is legal only when a runner
    /// was taken away (`scaling` then records the lost work).
    fn apply(
        &mut self,
        now: Millis,
        d: Decision,
        scheduler: &Scheduler,
        jobs: &[SimJob],
        scaling: Option<&mut Scaling>,
    ) -> Result<(), EngineError> {
        if let Some(log) = self.out.decisions.as_mut() {
            log.push((now, d));
        }
        match d {
            Decision::Start {
                job: JobId(id),
                runner,
                expected_end_ms,
            } => {
                let i = id as usize;
                let Some(job) = jobs.get(i) else {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("start of unknown job {id}"),
                    });
                };
                if self.out.placements[i].is_some() {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("job {id} started twice"),
                    });
                }
                let r = runner.0 as usize;
                if r >= self.used.len() || self.used[r] + job.spec.slots > self.capacity[r] {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("runner {r} over capacity starting job {id}"),
                    });
                }
                self.used[r] += job.spec.slots;
                if job.pipeline.is_some() {
                    if let Some(t) = scheduler.queued_at(job.spec.id) {
                        self.out.queued_ms[i] = t;
                    }
                }
                if self.out.gave_up.is_none() {
                    // As the report computes waits: seconds of start minus submit.
                    let wait_s = now as f64 / 1000.0 - self.out.queued_ms[i] as f64 / 1000.0;
                    self.out.gave_up = self.give_up.started(i, job.spec.qos.0 as usize, wait_s);
                }
                let end_ms = now + job.run_ms;
                self.out.placements[i] = Some(Placement {
                    start_ms: now,
                    end_ms,
                    runner,
                });
                let attempt = self.attempt[i];
                self.released[i] = false;
                if end_ms == expected_end_ms {
                    self.queue.push(
                        end_ms,
                        RELEASE_AT_ESTIMATE,
                        Kind::Release(id as u32, attempt),
                    );
                } else if end_ms > expected_end_ms {
                    self.queue.push(
                        expected_end_ms,
                        ESTIMATE_EXPIRED,
                        Kind::Expire(id as u32, attempt),
                    );
                }
                // Pushed at the start: finishes of one instant keep their start order.
                self.queue
                    .push(end_ms, FINISH, Kind::Finish(id as u32, attempt));
            }
            Decision::Requeue { job, runner } => {
                let Some(scaling) = scaling else {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("job {job} requeued, but runners never fail in this engine"),
                    });
                };
                let i = job.0 as usize;
                let placed = self.out.placements.get_mut(i).and_then(Option::take);
                let (Some(pl), Some(sim_job)) = (placed, jobs.get(i)) else {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("job {job} requeued but it was not running"),
                    });
                };
                if pl.runner != runner {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!(
                            "job {job} requeued from runner {runner}, ran on {}",
                            pl.runner
                        ),
                    });
                }
                if let Some(u) = self.used.get_mut(runner.0 as usize) {
                    *u = u.saturating_sub(sim_job.spec.slots);
                }
                self.attempt[i] += 1;
                scaling.out.retried_work_ms += now - pl.start_ms;
            }
            Decision::Cancel {
                job,
                runner,
                reason,
            } => self.cancelled(now, job, runner, reason, jobs)?,
            Decision::Skip { job } => self.ended(now, job, Fate::Skipped)?,
            Decision::Manual { job } => self.ended(now, job, Fate::Manual)?,
            Decision::PipelineEnded { pipeline, state } => {
                let Some(run) = self.out.pipelines.get_mut(pipeline.0 as usize) else {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("unknown pipeline {pipeline} ended"),
                    });
                };
                if run.end.is_some() {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("pipeline {pipeline} ended twice"),
                    });
                }
                run.end = Some((now, state));
            }
        }
        Ok(())
    }

    /// Job `job` reached `fate`. A job ends once; only a manual job nobody played may
    /// still be cancelled (supersession) or skipped (the trace says so).
    fn ended(&mut self, now: Millis, job: JobId, fate: Fate) -> Result<(), EngineError> {
        let Some(slot) = self.out.fates.get_mut(job.0 as usize) else {
            return Err(EngineError::Invariant {
                at_ms: now,
                what: format!("unknown job {job} ended"),
            });
        };
        match *slot {
            None | Some(Fate::Manual) => {
                *slot = Some(fate);
                Ok(())
            }
            Some(before) => Err(EngineError::Invariant {
                at_ms: now,
                what: format!("job {job} ended {fate:?} after it had ended {before:?}"),
            }),
        }
    }

    /// The core cancelled `job`: a running one stops now (its slots free, its run so
    /// far lost), and supersession's savings are counted with the true run time.
    fn cancelled(
        &mut self,
        now: Millis,
        job: JobId,
        runner: Option<RunnerId>,
        reason: CancelReason,
        jobs: &[SimJob],
    ) -> Result<(), EngineError> {
        let i = job.0 as usize;
        let Some(sim_job) = jobs.get(i) else {
            return Err(EngineError::Invariant {
                at_ms: now,
                what: format!("cancel of unknown job {job}"),
            });
        };
        let slots = i64::from(sim_job.spec.slots);
        let superseded = matches!(reason, CancelReason::Superseded { .. });
        let saved_ms = match runner {
            None => {
                if self.out.placements[i].is_some() {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("job {job} cancelled as not started, but it runs"),
                    });
                }
                sim_job.run_ms
            }
            Some(runner) => {
                let Some(pl) = self.out.placements[i].as_mut() else {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!(
                            "job {job} cancelled on runner {runner}, but it never started"
                        ),
                    });
                };
                if pl.runner != runner || self.out.fates[i].is_some() {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!(
                            "job {job} cancelled on runner {runner}, but it does not run there"
                        ),
                    });
                }
                let rest = pl.end_ms - now;
                let ran = now - pl.start_ms;
                pl.end_ms = now;
                if !self.released[i] {
                    if let Some(u) = self.used.get_mut(runner.0 as usize) {
                        *u = u.saturating_sub(sim_job.spec.slots);
                    }
                }
                // Its finish (and estimate events) belong to an attempt that is over.
                self.attempt[i] += 1;
                self.out.supersession.lost_slot_ms += ran * slots;
                rest
            }
        };
        if superseded {
            self.out.supersession.saved_slot_ms += saved_ms * slots;
        }
        self.ended(now, job, Fate::Cancelled)
    }
}

/// Runs independent `jobs` (in submission order) on the runners `runners` (id, pool,
/// slots), which join at `start_ms`; with `options.scaling`, an autoscaler adds and
/// removes runners.
pub fn run(
    scheduler: &mut Scheduler,
    jobs: &[SimJob],
    runners: &[(RunnerId, PoolId, u32)],
    start_ms: Millis,
    options: EngineOptions,
) -> Result<EngineOutput, EngineError> {
    let arrivals = Arrivals {
        jobs,
        independent: jobs.len(),
        pipelines: &[],
    };
    run_arrivals(scheduler, arrivals, runners, start_ms, options)
}

/// [`run`] with pipelines: each is submitted whole at its creation
/// ([`Event::SubmitPipeline`], with an [`Event::Skip`] for each job the trace skipped,
/// before the pass), and the core's pipeline decisions are applied: a cancelled running
/// job stops at once. Arrivals of one instant: independent jobs before pipelines.
pub fn run_arrivals(
    scheduler: &mut Scheduler,
    arrivals: Arrivals<'_>,
    runners: &[(RunnerId, PoolId, u32)],
    start_ms: Millis,
    mut options: EngineOptions,
) -> Result<EngineOutput, EngineError> {
    let jobs = arrivals.jobs;
    let independent = &jobs[..arrivals.independent.min(jobs.len())];
    let queued_before = scheduler.pipeline_jobs_queued();
    let mut st = State {
        queue: EventQueue::with_capacity(runners.len() + 1024),
        out: EngineOutput {
            placements: vec![None; jobs.len()],
            queued_ms: jobs.iter().map(|j| j.spec.submit_ms).collect(),
            fates: vec![None; jobs.len()],
            pipelines: vec![PipelineRun::default(); arrivals.pipelines.len()],
            decisions: options.record_decisions.then(Vec::new),
            ..EngineOutput::default()
        },
        used: Vec::new(),
        capacity: Vec::new(),
        released: vec![false; jobs.len()],
        attempt: vec![0; jobs.len()],
        give_up: GiveUp::new(&options.give_up, jobs),
    };
    let mut scaling = options.scaling.take().map(|s| Scaling::new(s, scheduler));
    for &(r, p, slots) in runners {
        st.queue.push(start_ms, RUNNER_JOIN, Kind::Join(r, p));
        st.grow(r, slots);
    }
    if let Some(sc) = scaling.as_mut() {
        let n = st.capacity.len();
        sc.out.runners = vec![
            RunnerLife {
                pool: PoolId(0),
                requested_ms: start_ms,
                ready_ms: Some(start_ms),
                released_ms: Some(start_ms),
                interrupted: false,
            };
            n
        ];
        for &(r, p, _) in runners {
            sc.out.runners[r.0 as usize] = RunnerLife {
                pool: p,
                requested_ms: start_ms,
                ready_ms: None,
                released_ms: None,
                interrupted: false,
            };
            if let Some(c) = sc.provisioning.get_mut(p.0 as usize) {
                *c += 1;
            }
        }
        if sc.ticking {
            st.queue.push(start_ms, SCALE, Kind::Scale);
        }
    }

    let mut decisions = Vec::new();
    let mut next = 0usize;
    let mut next_pipeline = 0usize;
    let mut finished = 0u64;
    let every = options.progress_every.max(1);

    loop {
        if st.out.gave_up.is_some() {
            break;
        }
        let job_at = independent.get(next).map(|j| j.spec.submit_ms);
        let pipeline_at = arrivals.pipelines.get(next_pipeline).map(|p| p.created_ms);
        // (time, a pipeline?) of the next arrival; an independent job first at a tie.
        let arrival = match (job_at, pipeline_at) {
            (Some(j), Some(p)) if p < j => Some((p, true)),
            (Some(j), _) => Some((j, false)),
            (None, Some(p)) => Some((p, true)),
            (None, None) => None,
        };
        let take_heap = match (st.queue.heap.peek(), arrival) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Reverse(p)), Some((at, _))) => (p.at, p.class) < (at, SUBMIT),
        };
        if let (false, Some((now, true))) = (take_heap, arrival) {
            let pipe = &arrivals.pipelines[next_pipeline];
            next_pipeline += 1;
            st.out.events += 1;
            decisions.clear();
            submit_pipeline(scheduler, pipe, now, &mut decisions)?;
            if let Some(sc) = scaling.as_mut() {
                // The autoscaler learns the jobs queued at once (the others are queued
                // when their needs end, unseen by its arrival forecast).
                for j in &pipe.spec.jobs {
                    sc.autoscaler.observe_submit(scheduler, &j.spec, now);
                }
            }
            for &d in &decisions {
                st.apply(now, d, scheduler, jobs, None)?;
            }
            for &job in &pipe.skips {
                // Unless the core already ended it (a skip cascade).
                if st
                    .out
                    .fates
                    .get(job.0 as usize)
                    .is_some_and(Option::is_none)
                {
                    st.ended(now, job, Fate::Skipped)?;
                }
            }
            if let Some(limit) = options.eta_limit {
                st.out.pipelines[next_pipeline - 1].eta_ms =
                    scheduler.pipeline_eta(pipe.spec.id, now, limit);
            }
            continue;
        }
        let (now, event) = if take_heap {
            let Some(Reverse(p)) = st.queue.heap.pop() else {
                break;
            };
            match p.kind {
                Kind::Join(runner, pool) => {
                    if let Some(sc) = scaling.as_mut() {
                        joined(sc, runner, pool, p.at, &mut st.queue);
                    }
                    (p.at, Event::RunnerJoined { runner, pool })
                }
                Kind::Scale => {
                    if let Some(sc) = scaling.as_mut() {
                        st.out.events += 1;
                        let arrivals_left =
                            next < independent.len() || next_pipeline < arrivals.pipelines.len();
                        evaluate(sc, scheduler, jobs, arrivals_left, p.at, &mut st)?;
                    }
                    continue;
                }
                Kind::Interrupt(runner) => {
                    if let Some(sc) = scaling.as_mut() {
                        st.out.events += 1;
                        interrupt(sc, scheduler, jobs, runner, p.at, &mut st)?;
                    }
                    continue;
                }
                Kind::Expire(i, attempt) => {
                    st.out.events += 1;
                    if attempt != st.attempt[i as usize] {
                        continue;
                    }
                    let job = &jobs[i as usize];
                    let Some(pl) = st.out.placements[i as usize] else {
                        continue;
                    };
                    match scheduler.extend_estimate(p.at, job.spec.id) {
                        Ok(Some(new_end)) if new_end < pl.end_ms => {
                            st.queue
                                .push(new_end, ESTIMATE_EXPIRED, Kind::Expire(i, attempt));
                        }
                        Ok(Some(new_end)) if new_end == pl.end_ms => {
                            st.queue
                                .push(new_end, RELEASE_AT_ESTIMATE, Kind::Release(i, attempt));
                        }
                        Ok(_) => {}
                        Err(source) => {
                            return Err(EngineError::Core {
                                at_ms: p.at,
                                source,
                            })
                        }
                    }
                    continue;
                }
                Kind::Release(i, attempt) | Kind::Finish(i, attempt)
                    if attempt != st.attempt[i as usize] =>
                {
                    continue
                }
                Kind::Release(i, _) => {
                    let job = &jobs[i as usize];
                    if let Some(pl) = st.out.placements[i as usize] {
                        scheduler
                            .release_at_estimate(p.at, job.spec.id)
                            .map_err(|source| EngineError::Core {
                                at_ms: p.at,
                                source,
                            })?;
                        st.used[pl.runner.0 as usize] -= job.spec.slots;
                        st.released[i as usize] = true;
                    }
                    continue;
                }
                Kind::Finish(i, _) => {
                    let job = &jobs[i as usize];
                    if let Some(pl) = st.out.placements[i as usize] {
                        if !st.released[i as usize] {
                            st.used[pl.runner.0 as usize] -= job.spec.slots;
                        }
                    }
                    let fate = if job.failed {
                        Fate::Failed
                    } else {
                        Fate::Finished
                    };
                    st.ended(p.at, job.spec.id, fate)?;
                    finished += 1;
                    if finished.is_multiple_of(every) {
                        if let Some(cb) = options.progress.as_mut() {
                            cb(finished);
                        }
                    }
                    (p.at, end_event(job))
                }
            }
        } else {
            let job = &independent[next];
            next += 1;
            (job.spec.submit_ms, Event::Submit(job.spec.clone()))
        };
        st.out.events += 1;
        decisions.clear();
        let submitted = match &event {
            Event::Submit(spec) => Some(spec.id),
            _ => None,
        };
        match scheduler.handle(now, event, &mut decisions) {
            Ok(()) => {}
            Err(CoreError::NoEligiblePool { .. }) => {
                st.out.refused += 1;
                continue;
            }
            Err(source) => return Err(EngineError::Core { at_ms: now, source }),
        }
        if let (Some(sc), Some(id)) = (scaling.as_mut(), submitted) {
            if let Some(job) = jobs.get(id.0 as usize) {
                sc.autoscaler.observe_submit(scheduler, &job.spec, now);
            }
        }
        for &d in &decisions {
            st.apply(now, d, scheduler, jobs, None)?;
        }
    }
    st.out.scaling = scaling.map(|sc| sc.out);
    st.out.pipeline_job_arrivals = scheduler.pipeline_jobs_queued() - queued_before;
    st.out.events += st.out.pipeline_job_arrivals;
    Ok(st.out)
}

/// Submits `pipe` at `now` with the skips the trace recorded, in one pass.
fn submit_pipeline(
    scheduler: &mut Scheduler,
    pipe: &SimPipeline,
    now: Millis,
    out: &mut Vec<Decision>,
) -> Result<(), EngineError> {
    let id: PipelineId = pipe.spec.id;
    match scheduler.handle_pipeline(now, &pipe.spec, &pipe.skips, out) {
        Ok(()) => Ok(()),
        // A skip ended the pipeline (every job is then terminal): the skips after it
        // have nothing left to do.
        Err(CoreError::NotInPipeline(_)) if !scheduler.is_pipeline_running(id) => Ok(()),
        Err(source) => Err(EngineError::Pipeline {
            pipeline: pipe.name.clone(),
            at_ms: now,
            source: Box::new(source),
        }),
    }
}

/// The core's event for the end of `job`: a failure when the trace says so.
fn end_event(job: &SimJob) -> Event {
    let id = job.spec.id;
    if job.failed {
        Event::Fail { job: id }
    } else {
        Event::Finish { job: id }
    }
}

/// A runner asked for has joined: it is ready, and a spot runner gets its interruption.
fn joined(sc: &mut Scaling, runner: RunnerId, pool: PoolId, now: Millis, queue: &mut EventQueue) {
    if let Some(c) = sc.provisioning.get_mut(pool.0 as usize) {
        *c = c.saturating_sub(1);
    }
    if let Some(life) = sc.out.runners.get_mut(runner.0 as usize) {
        life.ready_ms = Some(now);
    }
    let rate = sc.pools.get(pool.0 as usize).map_or(0.0, |p| p.1);
    if rate > 0.0 {
        let at = now.saturating_add(sc.rng.exponential_ms(rate));
        queue.push(at, INTERRUPT, Kind::Interrupt(runner));
    }
}

/// One autoscaler evaluation at `now`: new runners are asked for (they join after the
/// pool's provisioning delay), idle runners released.
fn evaluate(
    sc: &mut Scaling,
    scheduler: &mut Scheduler,
    jobs: &[SimJob],
    arrivals_left: bool,
    now: Millis,
    st: &mut State,
) -> Result<(), EngineError> {
    sc.out.evaluations += 1;
    let scale = sc.autoscaler.evaluate(now, scheduler, &sc.provisioning);
    let mut lost = Vec::new();
    let mut added = 0u32;
    for d in &scale {
        let p = d.pool.0 as usize;
        let slots = scheduler
            .config()
            .pools()
            .get(p)
            .map_or(1, |s| s.slots_per_runner);
        let delay = sc.pools.get(p).map_or(0, |x| x.0);
        for _ in 0..d.add {
            let id = RunnerId(st.capacity.len() as u32);
            st.grow(id, slots);
            sc.out.runners.push(RunnerLife {
                pool: d.pool,
                requested_ms: now,
                ready_ms: None,
                released_ms: None,
                interrupted: false,
            });
            sc.provisioning[p] += 1;
            st.queue
                .push(now + delay, RUNNER_JOIN, Kind::Join(id, d.pool));
            added += 1;
        }
        for &r in &d.release {
            let busy = st.used.get(r.0 as usize).copied().unwrap_or(0);
            if busy > 0 || scheduler.runner_jobs(r).is_none_or(|j| !j.is_empty()) {
                return Err(EngineError::Invariant {
                    at_ms: now,
                    what: format!("the autoscaler released runner {r}, which runs a job"),
                });
            }
            if let Some(life) = sc.out.runners.get_mut(r.0 as usize) {
                life.released_ms = Some(now);
            }
            lost.push(Event::RunnerLost { runner: r });
        }
    }
    if !lost.is_empty() {
        let mut decisions = Vec::new();
        scheduler
            .handle_all(now, lost, &mut decisions)
            .map_err(|source| EngineError::Core { at_ms: now, source })?;
        for d in decisions {
            st.apply(now, d, scheduler, jobs, None)?;
        }
    }
    let work_left = scheduler.pending_count() > 0 || scheduler.running_count() > 0;
    // Waiting jobs with nothing left that could change (no event pending, nothing asked
    // for) would wait forever: stop and count them.
    let stuck =
        !arrivals_left && scheduler.running_count() == 0 && added == 0 && st.queue.heap.is_empty();
    if stuck {
        sc.out.never_started = scheduler.pending_count() as u64;
    } else if arrivals_left || work_left {
        st.queue.push(
            now + sc.autoscaler.config().interval_ms(),
            SCALE,
            Kind::Scale,
        );
    }
    Ok(())
}

/// A spot runner is taken away at `now` (unless it was released before).
fn interrupt(
    sc: &mut Scaling,
    scheduler: &mut Scheduler,
    jobs: &[SimJob],
    runner: RunnerId,
    now: Millis,
    st: &mut State,
) -> Result<(), EngineError> {
    let Some(life) = sc.out.runners.get_mut(runner.0 as usize) else {
        return Ok(());
    };
    if life.released_ms.is_some() {
        return Ok(());
    }
    life.released_ms = Some(now);
    life.interrupted = true;
    let fallback = sc.pools.get(life.pool.0 as usize).and_then(|p| p.2);
    sc.out.interruptions += 1;
    let mut decisions = Vec::new();
    scheduler
        .interrupt(now, runner, fallback, &mut decisions)
        .map_err(|source| EngineError::Core { at_ms: now, source })?;
    for d in decisions {
        if fallback.is_some() && matches!(d, Decision::Requeue { .. }) {
            sc.out.requeued_to_fallback += 1;
        }
        st.apply(now, d, scheduler, jobs, Some(sc))?;
    }
    if let Some(u) = st.used.get_mut(runner.0 as usize) {
        *u = 0;
    }
    if let Some(c) = st.capacity.get_mut(runner.0 as usize) {
        *c = 0;
    }
    Ok(())
}
