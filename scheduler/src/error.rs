//! The core's one error type.

use thiserror::Error;

use crate::domain::{JobId, Millis, PoolId, QosId, RunnerId, TenantId};

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
}
