//! The live driver's one error type; `crate::server::status` turns it into gRPC
//! statuses.

use rustci_scheduler::{AutoscaleError, CoreError};
use thiserror::Error;

use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum LiveError {
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A request id reused with another body.
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scheduler: {0}")]
    Core(#[from] CoreError),
    #[error("autoscaler: {0}")]
    Autoscale(#[from] AutoscaleError),
}

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> LiveError {
    LiveError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}
