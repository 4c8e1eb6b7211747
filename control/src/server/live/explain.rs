//! Why a job waits (or runs, or ended), for people: the core's [`JobStatus`] with runner
//! names instead of ids (`ExplainJob`).

use rustci_scheduler::{JobStatus, Millis, RunnerId, WaitReason};

use super::pipelines::PipelineJobStatus;
use crate::store::StoredJob;

/// A need of a pipeline job that waits for its needs (`ExplainJob`).
#[derive(Debug, Clone, PartialEq)]
pub struct NeedWait {
    /// The need's name within the pipeline.
    pub name: String,
    pub job: u64,
    pub status: PipelineJobStatus,
    /// Its end if it ended, else its projected end (`None`: the projection cannot place
    /// it).
    pub end_ms: Option<Millis>,
}

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
    /// A pipeline job waiting for its needs: each need with its state and end.
    pub needs: Vec<NeedWait>,
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
            needs: Vec::new(),
            job,
        }
    }

    /// A pipeline job whose needs have not all ended: which ones it waits for, their
    /// states and (projected) ends; `start_ms` is its own projected start.
    pub(super) fn waiting_for_needs(
        job: StoredJob,
        needs: Vec<NeedWait>,
        start_ms: Option<Millis>,
    ) -> Self {
        let open: Vec<String> = needs
            .iter()
            .filter(|n| !n.status.is_ended())
            .map(|n| {
                let end = match n.end_ms {
                    Some(at) => format!("expected to end at {at}"),
                    None => "no projected end".to_string(),
                };
                format!(
                    "{:?} (jobs/{}, {}, {end})",
                    n.name,
                    n.job,
                    n.status.as_str()
                )
            })
            .collect();
        Self {
            reason: "waiting_for_needs",
            message: format!(
                "waits for {} of its {} needs: {}",
                open.len(),
                needs.len(),
                open.join(", ")
            ),
            blocking_job: needs.iter().find(|n| !n.status.is_ended()).map(|n| n.job),
            runner: None,
            at_ms: start_ms,
            queue_position: None,
            needs,
            job,
        }
    }

    /// A manual pipeline job: it waits for a person to play it (`PlayJob`).
    pub(super) fn manual(job: StoredJob) -> Self {
        Self {
            reason: "manual",
            message: "a manual job: it runs once someone plays it".into(),
            blocking_job: None,
            runner: None,
            at_ms: None,
            queue_position: None,
            needs: Vec::new(),
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
            needs: Vec::new(),
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
                needs: Vec::new(),
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
                    needs: Vec::new(),
                    job,
                },
                WaitReason::BlockedBehind { job: b } => Self {
                    reason: "blocked_behind",
                    message: format!("waits behind jobs/{} (first come, first served)", b.0),
                    blocking_job: Some(b.0),
                    runner: None,
                    at_ms: None,
                    queue_position,
                    needs: Vec::new(),
                    job,
                },
                WaitReason::Reserved { runner, at } => Self {
                    reason: "reserved",
                    message: format!("next in line: reserved on runners/{} from {at}", name(runner).unwrap_or_default()),
                    blocking_job: None,
                    runner: name(runner),
                    at_ms: Some(at),
                    queue_position,
                    needs: Vec::new(),
                    job,
                },
                WaitReason::WouldDelay { job: b, runner, at } => Self {
                    reason: "would_delay",
                    message: format!("starting now would delay jobs/{}, reserved on runners/{} from {at}", b.0, name(runner).unwrap_or_default()),
                    blocking_job: Some(b.0),
                    runner: name(runner),
                    at_ms: Some(at),
                    queue_position,
                    needs: Vec::new(),
                    job,
                },
            },
        }
    }
}
