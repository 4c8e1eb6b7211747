//! Why a job waits (or runs, or ended), for people: the core's [`JobStatus`] with runner
//! names instead of ids (`ExplainJob`).

use rustci_scheduler::{JobStatus, Millis, RunnerId, WaitReason};

use crate::store::StoredJob;

/// Why a job waits, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub job: StoredJob,
    pub reason: &'static str,
    pub message: String,
    pub blocking_job: Option<u64>,
    pub runner: Option<String>,
    pub at_ms: Option<Millis>,
    /// Waiting jobs ahead of it in its lane (see `Scheduler::queue_position`).
    pub queue_position: Option<usize>,
}

impl Explanation {
    pub(super) fn finished(job: StoredJob, queue_position: Option<usize>) -> Self {
        Self {
            message: format!(
                "finished {} at {}",
                job.state.as_str(),
                job.end_ms.unwrap_or(0)
            ),
            reason: "finished",
            blocking_job: None,
            runner: job.runner.clone(),
            at_ms: job.end_ms,
            queue_position,
            job,
        }
    }

    /// A job no registered pool can run yet: it waits outside the core.
    pub(super) fn parked(job: StoredJob, queue_position: Option<usize>) -> Self {
        Self {
            reason: "no_runner_with_labels",
            message: format!(
                "no registered pool has all of the labels {:?} with {} slots per runner",
                job.labels, job.slots
            ),
            blocking_job: None,
            runner: None,
            at_ms: None,
            queue_position,
            job,
        }
    }

    /// A job the core holds, in `status`; `name` gives a runner's name.
    pub(super) fn of_status(
        job: StoredJob,
        status: JobStatus,
        queue_position: Option<usize>,
        name: impl Fn(RunnerId) -> Option<String>,
    ) -> Self {
        match status {
            JobStatus::Running { runner, expected_end_ms, .. } => Self {
                reason: "running",
                message: format!("leased to runners/{}; expected to end at {expected_end_ms}", name(runner).unwrap_or_default()),
                blocking_job: None,
                runner: name(runner),
                at_ms: Some(expected_end_ms),
                queue_position,
                job,
            },
            JobStatus::Pending { reason, .. } => match reason {
                WaitReason::NoCapacity { earliest, .. } => Self {
                    reason: "no_capacity",
                    message: match earliest {
                        Some((r, at)) => format!(
                            "every runner that has its labels is busy; runners/{} should have room at {at} by estimates",
                            name(r).unwrap_or_default()
                        ),
                        None => "every runner that has its labels is busy".into(),
                    },
                    blocking_job: None,
                    runner: earliest.and_then(|(r, _)| name(r)),
                    at_ms: earliest.map(|(_, at)| at),
                    queue_position,
                    job,
                },
                WaitReason::BlockedBehind { job: b } => Self {
                    reason: "blocked_behind",
                    message: format!("waits behind jobs/{} (first come, first served)", b.0),
                    blocking_job: Some(b.0),
                    runner: None,
                    at_ms: None,
                    queue_position,
                    job,
                },
                WaitReason::Reserved { runner, at } => Self {
                    reason: "reserved",
                    message: format!("next in line: reserved on runners/{} from {at}", name(runner).unwrap_or_default()),
                    blocking_job: None,
                    runner: name(runner),
                    at_ms: Some(at),
                    queue_position,
                    job,
                },
                WaitReason::WouldDelay { job: b, runner, at } => Self {
                    reason: "would_delay",
                    message: format!("starting now would delay jobs/{}, reserved on runners/{} from {at}", b.0, name(runner).unwrap_or_default()),
                    blocking_job: Some(b.0),
                    runner: name(runner),
                    at_ms: Some(at),
                    queue_position,
                    job,
                },
            },
        }
    }
}
