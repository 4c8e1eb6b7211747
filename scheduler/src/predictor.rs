//! Run-time estimates. The core asks a [`Predictor`]; `rustci-models` implements it with
//! trained models, so the core never links an ML library.

use serde::Serialize;

use crate::domain::{JobSpec, Millis};

/// A run-time estimate: the point value policies plan with, and an upper quantile for
/// reservations that must rarely be exceeded and for autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub point_ms: Millis,
    pub upper_ms: Millis,
}

/// A source of run-time estimates. Called once per job at submission; told every
/// finished job's real run time so that history-based predictors can learn.
pub trait Predictor: Send {
    fn estimate(&self, job: &JobSpec) -> Estimate;

    /// A job finished after running `run_ms`.
    fn observe(&mut self, _job: &JobSpec, _run_ms: Millis) {}

    /// Name for reports.
    fn name(&self) -> &str;
}

/// The user's requested time, as classic EASY uses it; `default_ms` when a job gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedTime {
    pub default_ms: Millis,
}

impl Default for RequestedTime {
    fn default() -> Self {
        Self {
            default_ms: 3_600_000,
        }
    }
}

impl Predictor for RequestedTime {
    fn estimate(&self, job: &JobSpec) -> Estimate {
        let ms = job
            .requested_ms
            .filter(|&r| r > 0)
            .unwrap_or(self.default_ms)
            .max(1);
        Estimate {
            point_ms: ms,
            upper_ms: ms,
        }
    }

    fn name(&self) -> &str {
        "requested"
    }
}
