//! The one place where errors become gRPC statuses (Google API guidelines: the field
//! is named in INVALID_ARGUMENT; secrets never appear).

use tonic::{Code, Status};

use crate::server::live::LiveError;
use crate::store::StoreError;

impl From<LiveError> for Status {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
            LiveError::NotFound(_) => Status::not_found(e.to_string()),
            LiveError::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
            LiveError::PermissionDenied(_) => Status::permission_denied(e.to_string()),
            LiveError::AlreadyExists(_) => Status::already_exists(e.to_string()),
            LiveError::Store(s) => store_status(&s),
            LiveError::Core(c) => Status::new(Code::Internal, format!("scheduler: {c}")),
            LiveError::Autoscale(a) => Status::new(Code::Internal, format!("autoscaler: {a}")),
        }
    }
}

fn store_status(e: &StoreError) -> Status {
    // The request was not made durable: the client may retry (submits are idempotent).
    Status::unavailable(format!("store unavailable, nothing was changed: {e}"))
}

/// INVALID_ARGUMENT naming `field`.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}
