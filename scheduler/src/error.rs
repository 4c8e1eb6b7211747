//! The core's one error type.

use thiserror::Error;

use crate::domain::{JobId, Millis, PipelineId, PoolId, QosId, RunnerId, TenantId};

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    #[error("job {job}: invalid {field}: {reason}")]
    InvalidJob {
        job: JobId,
        field: &'static str,
        reason: String,
    },
    #[error("job {0} was already submitted")]
    DuplicateJob(JobId),
    #[error("job {0} is not known to the scheduler")]
    UnknownJob(JobId),
    #[error("job {0} is not running")]
    NotRunning(JobId),
    #[error("job {job} can never run: no pool has labels {missing_labels:?} with {slots} slots per runner")]
    NoEligiblePool {
        job: JobId,
        missing_labels: Vec<String>,
        slots: u32,
    },
    #[error("tenant {0} is not configured")]
    UnknownTenant(TenantId),
    #[error("QoS class {0} is not configured")]
    UnknownQos(QosId),
    #[error("pool {0} is not configured")]
    UnknownPool(PoolId),
    #[error("runner {0} is already registered")]
    DuplicateRunner(RunnerId),
    #[error("runner {0} is not registered")]
    UnknownRunner(RunnerId),
    #[error("time went backwards: event at {now} ms after one at {last} ms")]
    TimeWentBackwards { now: Millis, last: Millis },
    #[error("pipeline {0} is already running")]
    DuplicatePipeline(PipelineId),
    #[error("pipeline {0} is not running")]
    UnknownPipeline(PipelineId),
    #[error("pipeline {pipeline} has no jobs")]
    EmptyPipeline { pipeline: PipelineId },
    #[error("pipeline {pipeline}: job #{index} has an empty name")]
    UnnamedJob { pipeline: PipelineId, index: usize },
    #[error("pipeline {pipeline}: job name {job:?} is used twice")]
    DuplicateJobName { pipeline: PipelineId, job: String },
    #[error("pipeline {pipeline}: job {job:?} needs {need:?}, which is no job of the pipeline")]
    UnknownNeed {
        pipeline: PipelineId,
        job: String,
        need: String,
    },
    #[error("pipeline {pipeline}: job {job:?} lists the need {need:?} twice")]
    DuplicateNeed {
        pipeline: PipelineId,
        job: String,
        need: String,
    },
    #[error("pipeline {pipeline}: job {job:?} (stage {stage}) needs {need:?} of the later stage {need_stage}")]
    NeedOnLaterStage {
        pipeline: PipelineId,
        job: String,
        stage: u32,
        need: String,
        need_stage: u32,
    },
    #[error("pipeline {pipeline}: job {job:?} is on a cycle of needs: {}", cycle.join(" needs "))]
    NeedCycle {
        pipeline: PipelineId,
        job: String,
        /// The cycle from `job` back to it, each job needing the next.
        cycle: Vec<String>,
    },
    /// A job of a pipeline that the core would refuse as a job (its id is taken, its
    /// tenant unknown, no pool can run it...).
    #[error("pipeline {pipeline}: job {job:?}: {source}")]
    PipelineJob {
        pipeline: PipelineId,
        job: String,
        source: Box<CoreError>,
    },
    /// [`crate::Scheduler::restore_pipeline`] got a state for a different number of
    /// jobs than the spec has.
    #[error("pipeline {pipeline}: {states} job states restored for {jobs} jobs")]
    RestoreMismatch {
        pipeline: PipelineId,
        states: usize,
        jobs: usize,
    },
    #[error("job {0} is in no running pipeline")]
    NotInPipeline(JobId),
    #[error("job {0} is not a manual job waiting to be played")]
    NotManual(JobId),
    #[error("job {0} has already started: it cannot be skipped")]
    AlreadyStarted(JobId),
}
