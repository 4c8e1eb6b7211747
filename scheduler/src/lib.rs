//! rustci's scheduling core: pure, deterministic, no I/O.
//!
//! Drivers (the simulator `rustci-sim` and the live service `rustci serve`) own the
//! clock. They feed [`Event`]s with their `now` into one [`Scheduler`] and apply the
//! [`Decision`]s it returns. Policies are configured by [`PolicyConfig`], checked once
//! into a [`CheckedConfig`]. Run-time estimates come from a [`Predictor`]. Pipelines
//! (DAGs of jobs with stages and conditions) are described in [`pipeline`].

pub mod autoscale;
pub mod config;
pub mod domain;
pub mod error;
pub mod explain;
mod fleet;
pub mod hash;
pub mod pipeline;
pub mod predictor;
pub mod projection;
pub mod scheduler;
pub mod stats;

pub use autoscale::{
    ArrivalForecast, AutoscaleConfig, AutoscaleError, Autoscaler, CheckedAutoscale, PoolRules,
    PoolScaling, PredictiveSettings, ScaleDecision, ScalePolicy, SpotRules, SpotSettings,
    WarmWindow,
};
pub use config::{
    Backfill, BackfillOrder, CheckedConfig, CriticalPathKey, PolicyConfig, QueueOrder,
    SchedulerConfig, WithinLane,
};
pub use domain::{
    HistoryKeys, JobId, JobSpec, LabelSet, Millis, PipelineId, PoolId, PoolMask, PoolSpec, QosId,
    QosSpec, RunnerId, TenantId, TenantSpec, MS_PER_S,
};
pub use error::CoreError;
pub use explain::{JobStatus, WaitReason};
pub use pipeline::{
    AutoCancel, CancelReason, CheckedPipeline, CriticalPath, PipelineJob, PipelineJobState,
    PipelineSpec, PipelineState, PipelineStats, RestoredJob, When,
};
pub use predictor::{tsafrir_correction, Estimate, Predictor, RequestedTime, Tsafrir};
pub use projection::{ProjectedJob, ProjectedPipeline, Projection};
pub use scheduler::{Decision, Event, PoolAdvice, PoolLoad, Scheduler};
