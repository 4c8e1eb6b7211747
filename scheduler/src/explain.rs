//! Why a job waits, and where it is.

use serde::Serialize;

use crate::domain::{JobId, Millis, PoolMask, RunnerId};
use crate::predictor::Estimate;

/// Why a pending job did not start in the latest scheduling pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitReason {
    /// Every runner of the job's pools that takes work is too full for it. `earliest`
    /// is where and when it could start by the estimates of running jobs, if known.
    NoCapacity {
        pools: PoolMask,
        earliest: Option<(RunnerId, Millis)>,
    },
    /// Strict FCFS: an earlier job that needs some of the same pools is waiting.
    BlockedBehind { job: JobId },
    /// EASY: this job holds the reservation on `runner` from `at`.
    Reserved { runner: RunnerId, at: Millis },
    /// EASY: starting now would delay `job`, reserved on `runner` from `at`.
    WouldDelay {
        job: JobId,
        runner: RunnerId,
        at: Millis,
    },
}

/// Where a job is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobStatus {
    Pending {
        reason: WaitReason,
        /// The run-time estimate the scheduler plans with.
        estimate: Estimate,
    },
    Running {
        runner: RunnerId,
        started_ms: Millis,
        expected_end_ms: Millis,
    },
}
