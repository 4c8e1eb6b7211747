//! Pipelines: jobs with `needs` edges and stages, as GitLab runs them.
//!
//! A driver submits a [`PipelineSpec`] with [`crate::Event::SubmitPipeline`]; the core
//! checks it once into a DAG ([`PipelineSpec::check`], `dag.rs`), keeps every job's
//! state while the pipeline runs (`state.rs`) and projects its end (`eta.rs`). A job
//! enters the core's normal queue (and is estimated by the `Predictor` like any job)
//! only when it becomes ready; from there on it is scheduled like an independent job.
//!
//! # Needs and stages
//!
//! A job with `needs: None` needs every job of the earlier stages (GitLab's stage order);
//! `needs: Some(list)` names jobs of the same or earlier stages (GitLab allows same-stage
//! needs since 14.2; a need on a later stage is refused, as GitLab does), and
//! `Some(vec![])` none. Empty pipelines, empty or duplicate names, unknown or repeated
//! needs and cycles are refused with an error naming the pipeline and the job.
//!
//! # Job states
//!
//! Created (some need not resolved) → Waiting (in the core's queue) → Running → one of
//! Succeeded, Failed (with or without `allow_failure`), Cancelled, Skipped; or Manual (a
//! manual job waiting for a person; it stays Manual if nobody plays it before the
//! pipeline ends). A runner lost under a job puts it back to Waiting.
//!
//! # Conditions
//!
//! A need is *resolved* when its job has ended. A non-blocking manual job that waits for
//! a person also counts as resolved (as skipped) for jobs that need it through the stage
//! rule, never for jobs that name it in `needs` (GitLab: such a job does not hold later
//! stages back, but a DAG dependent waits for it). A blocking manual job holds both back.
//!
//! What a resolved need means to its dependents: *success* (succeeded, or failed with
//! `allow_failure`), *failed*, *cancelled* or *skipped*. Through the stage rule the jobs
//! of all earlier stages count together: failed if any failed, else cancelled if any was
//! cancelled, else success; a skipped job there is neutral. A job whose needs are all
//! resolved then
//! - `on_success` (the default): runs if every need is a success (an explicitly named
//!   need that was skipped is not), else is Skipped;
//! - `on_failure`: runs if some need failed, else is Skipped (a cancelled need is not a
//!   failure: GitLab runs `on_failure` jobs for failed pipelines, not cancelled ones);
//! - `always`: runs;
//! - `manual`: becomes Manual if the `on_success` condition holds, else is Skipped;
//!   [`crate::Event::PlayManual`] queues it.
//!
//! A skipped job is a resolved need like any other, so skips cascade. The driver may skip
//! a job that has not started ([`crate::Event::Skip`], a trace recorded it skipped) or
//! cancel one ([`crate::Event::Cancel`]); both cascade the same way.
//!
//! # End of a pipeline
//!
//! A pipeline ends when none of its jobs waits or runs: nothing more can happen to it
//! without a person. Jobs still Created then wait behind a manual job nobody played; they
//! are Skipped. The pipeline's state ([`PipelineState`]) is Failed if a job failed
//! without `allow_failure` (GitLab reports a superseded pipeline in which a job had
//! failed as failed, as the DataDog trace shows), else Cancelled if it was cancelled or
//! superseded or one of its jobs was cancelled, else Blocked if a blocking manual job was
//! never played or jobs waited behind a manual job (GitLab shows such a pipeline as
//! blocked; the core does not wait for people), else Succeeded.
//!
//! # Supersession
//!
//! Pipelines of one concurrency group ([`PipelineSpec::group`]): a newer one supersedes
//! the older ones, each as its own [`PipelineSpec::auto_cancel`] says (GitLab's
//! `workflow: auto_cancel: on_new_commit`, GitLab MR 137892 and the `workflow` docs):
//! - `conservative` (the default): if none of its jobs not marked `interruptible` has
//!   started (running, or ended succeeded or failed), every job that has not ended is
//!   cancelled, running ones too (they are all interruptible); else nothing is;
//! - `interruptible`: its `interruptible` jobs that have not ended are cancelled,
//!   running or not; the others go on, and a job that needs a cancelled one is decided
//!   as after any cancelled need (an `on_success` job is skipped, an `always` one runs);
//! - `none`: nothing;
//! - `unstarted_and_interruptible` (not GitLab's; the simulator's replays, whose traces
//!   record neither the setting nor always `interruptible`): every job that has not
//!   started, and the running ones marked `interruptible`; the others run to their end.
//!
//! A pipeline that lost jobs this way ends Cancelled (unless one failed) once its other
//! jobs end; one that lost none is not superseded and may be by a later pipeline. A
//! pipeline whose setting is `none` is not kept in its group's list (nothing can
//! supersede it) but supersedes the older ones. [`PipelineStats`] counts the jobs and the
//! estimated run time supersession saves.
//!
//! # Critical path now
//!
//! [`crate::Scheduler::critical_path`] recomputes the critical path of a running
//! pipeline at `now`, from the same estimates as the order (made once at submission):
//! a job that ended counts 0, a running job what its estimate has left (never below 0),
//! a waiting or manual job (as if played) its whole estimate, and a job not ready yet its
//! estimate if the conditions, with the needs that have ended so far and the others
//! assumed to succeed, would run it (an `on_failure` job behind needs that have not
//! failed counts 0, as in the projected end). Each job's remaining path is its own count
//! plus its heaviest chain of dependents; the path starts at the largest and follows
//! the heaviest dependent (the first in the spec's order on a tie), listing the jobs that
//! have not ended. Runners are assumed free: the projected end (`eta.rs`) is what adds
//! the queue.
//!
//! # Restart
//!
//! A driver that restarts rebuilds each running pipeline with
//! [`crate::Scheduler::restore_pipeline`] from what its store has of every job: ended
//! jobs stay as they ended, running ones run on, and every other job whose needs all
//! ended is decided again. The conditions depend only on the needs' ends, so a job is
//! decided as it was before the restart (queued again if it was ready); a job with a
//! need still open waits for it, and no job is decided twice.
//!
//! # Critical-path order
//!
//! At submission every job is estimated once with `Predictor::preview`; a job's *rank*
//! is its estimate plus the heaviest chain of its dependents' estimates (through the
//! stage gates), the pipeline's critical path the largest rank. A job's *latest start*
//! is `created + critical path - rank`, the instant it must start for its pipeline to
//! end by `created + critical path`. Under [`crate::QueueOrder::CriticalPath`] (and
//! [`crate::WithinLane::CriticalPath`] inside fair-share and QoS lanes) a job's key is
//! `min(latest start, ready)` ([`crate::CriticalPathKey::CappedLatestStart`]), its
//! longest remaining path breaking ties: a job whose pipeline is behind its predicted
//! schedule goes ahead by how late it is, so older pipelines finish first; a job with
//! slack is placed as FIFO places it, at the instant it became ready. An independent
//! job's key is its submit time, so without pipelines the order is FIFO.
//!
//! The cap is what bounds passing. Every key is at least the job's pipeline's creation
//! (a rank is never above the critical path), and a waiting job's key at most its ready
//! time, so a ready job is passed only by jobs of pipelines created before it became
//! ready, however many newer pipelines come. The latest start alone
//! ([`crate::CriticalPathKey::LatestStart`], `critical-path-latest-start`) gave a job
//! with slack a key up to a critical path after its ready time: every newer pipeline
//! created in that window passed it, and on the synthetic week's peaks, when estimates
//! were short, those jobs waited for hours (README, "the synthetic week"). What the cap
//! gives up: inside a pipeline, a job with slack that became ready before a job on the
//! critical path goes first, as under FIFO (jobs ready at once still go by rank).
//! Keys are fixed when a job enters the queue, as the other orders' keys are.
//!
//! The other rules, by name for comparison: `critical-path-oldest`
//! ([`crate::CriticalPathKey::OldestPipeline`], older pipelines first and the longest
//! remaining path inside one, which lets every later job of every older pipeline pass a
//! waiting one) and `critical-path-bounded` ([`crate::CriticalPathKey::BoundedLatestStart`],
//! lateness capped at one critical path, which takes away what older pipelines gain).
//! The longest remaining path first across all pipelines (key `-rank`) lets every new
//! pipeline's first jobs pass the last jobs of older ones: on the synthetic stream of
//! `benches/pipeline.rs` (40 runners, 86% load) it raised the p95 time to feedback from
//! 84 min (FIFO) to 254 min, where the latest start lowered it to 74 min (BENCHMARKS.md).

mod dag;
pub(crate) mod eta;
pub(crate) mod state;

use serde::Serialize;

use crate::domain::{JobId, Millis, PipelineId};

pub use dag::{AutoCancel, CheckedPipeline, PipelineJob, PipelineSpec, When};
pub(crate) use dag::{Dag, DagJob, GraphCache};

/// How a pipeline ended (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    Succeeded,
    Failed,
    Cancelled,
    /// Jobs never ran because they waited for a manual job nobody played (or a blocking
    /// manual job was never played).
    Blocked,
}

/// Where a job of a running pipeline is ([`crate::Scheduler::pipeline_job_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PipelineJobState {
    Created,
    Waiting,
    Running,
    Manual,
    Succeeded,
    Failed { allowed: bool },
    Cancelled,
    Skipped,
}

/// A pipeline job as a driver's store has it after a restart
/// ([`crate::Scheduler::restore_pipeline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RestoredJob {
    /// Neither started nor ended (created, waiting in the queue, or manual): the core
    /// decides it again from its needs' ends.
    Open,
    /// Running on `runner` since `start_ms`.
    Running {
        runner: crate::domain::RunnerId,
        start_ms: crate::domain::Millis,
    },
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

/// A running pipeline's critical path now ([`crate::Scheduler::critical_path`]; see the
/// module docs, "Critical path now").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CriticalPath {
    /// Its jobs that have not ended, first to last: each needs the one before it
    /// (directly or through the stage rule). Ended jobs are left out.
    pub jobs: Vec<JobId>,
    /// Its predicted length from now: the sum of the listed jobs' remaining estimates,
    /// the time the pipeline still needs on runners that are always free.
    pub remaining_ms: Millis,
    /// Per job of the spec, in its order: the predicted remaining path from it to the end
    /// of the pipeline (its own remaining estimate plus its heaviest chain of
    /// dependents); 0 for a job that ended or is not expected to run.
    pub job_remaining_ms: Vec<Millis>,
}

/// Why the core cancelled a job ([`crate::Decision::Cancel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CancelReason {
    /// A newer pipeline of the same concurrency group was submitted.
    Superseded { by: PipelineId },
    /// [`crate::Event::CancelPipeline`].
    PipelineCancelled,
}

/// Counts over the pipelines a scheduler has seen ([`crate::Scheduler::pipeline_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PipelineStats {
    pub submitted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub blocked: u64,
    /// Pipelines superseded by a newer one of their group.
    pub superseded: u64,
    /// Jobs supersession cancelled (not started, or interrupted while running).
    pub superseded_jobs: u64,
    /// Of those, the ones that were running.
    pub interrupted_jobs: u64,
    /// Run time supersession saved by the estimates: a whole estimate per job that had
    /// not started, the rest of its estimate per interrupted job.
    pub saved_run_ms: i64,
    /// Run time interrupted jobs had already used (lost work).
    pub lost_run_ms: i64,
}
