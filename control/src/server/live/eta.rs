//! What people are told about a job's run time and start: the estimates the core plans
//! with, and a queued job's start projected from the core's projection (`Scheduler::project`).

use std::collections::HashSet;

use rustci_scheduler::{Estimate, JobId, Millis, PipelineJobState, QosSpec, Scheduler, TenantId};

use super::jobs::JobTable;
use super::names::{core_spec, known_labels, qos_index, Names};
use super::pipelines::PipelineJobStatus;
use crate::store::{JobState, StoredJob};

/// The `predicted_*` fields of `rustci.v1.Job`. Times are on the live clock, which is
/// Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eta {
    /// The point estimate the scheduler plans with.
    pub run_ms: Millis,
    /// The predictor's upper quantile.
    pub upper_ms: Millis,
    /// Queued: the projected start from the core's plan (when asked for); started: the
    /// real start; `None` when unknown.
    pub start_ms: Option<Millis>,
    /// A queued pipeline job the core holds back: `Created` (a need has not ended) or
    /// `Manual` (waits for a person); the store has both as queued.
    pub held: Option<PipelineJobStatus>,
}

/// A waiting job in [`Etas::queue`].
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub job: StoredJob,
    pub eta: Eta,
    /// Its place in the scheduler's visit order (0 = next); `None` for a parked job.
    pub position: Option<usize>,
}

/// A page of [`Etas::queue`]: its rows, and where the next page starts (`None`: last).
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub rows: Vec<QueueRow>,
    pub next: Option<usize>,
}

/// At most this many waiting jobs are projected for one answer (GetJob, a ListJobs
/// page): a job further back has no projected start. About 1 µs per job
/// (`Scheduler::project`), so an answer holds the live state's lock for at most ~0.1 s
/// even on a huge queue, and ~10 ms for 10,000 waiting jobs.
pub const PLAN_LIMIT: usize = 100_000;

/// ETAs at one instant, read from the live state (`Live::etas`).
#[derive(Debug, Clone, Copy)]
pub struct Etas<'a> {
    pub(super) core: &'a Scheduler,
    pub(super) names: &'a Names,
    pub(super) jobs: &'a JobTable,
    pub(super) classes: &'a [QosSpec],
    pub(super) now: Millis,
}

impl Etas<'_> {
    /// The estimate of a job: the core's while it holds the job (queued or running),
    /// else what the predictor gives it now (a finished job, or one parked because no
    /// pool has its labels yet): the store does not keep estimates.
    pub fn estimate(&self, job: &StoredJob) -> Estimate {
        if let Some(e) = self.core.estimate_of(JobId(job.id)) {
            return e;
        }
        let tenant = self
            .names
            .tenant(&job.tenant)
            // A tenant this core never saw: no history, the predictor's default.
            .unwrap_or(TenantId(u32::MAX));
        let labels = known_labels(self.core, &job.labels).unwrap_or_default();
        self.core.preview(&core_spec(
            job,
            tenant,
            qos_index(self.classes, &job.qos),
            labels,
        ))
    }

    /// The estimate and, if it started, the real start: no plan (WatchJobs, submits).
    pub fn started(&self, job: &StoredJob) -> Eta {
        let e = self.estimate(job);
        Eta {
            run_ms: e.point_ms,
            upper_ms: e.upper_ms,
            start_ms: job.start_ms,
            held: self.held(job),
        }
    }

    /// Whether the core holds a queued pipeline job back (see [`Eta::held`]).
    pub fn held(&self, job: &StoredJob) -> Option<PipelineJobStatus> {
        if job.state != JobState::Queued || job.pipeline.is_none() {
            return None;
        }
        match self.core.pipeline_job_state(JobId(job.id))? {
            PipelineJobState::Created => Some(PipelineJobStatus::Created),
            PipelineJobState::Manual => Some(PipelineJobStatus::Manual),
            _ => None,
        }
    }

    /// Everything, for one job (GetJob): a queued job's start is projected now, up to
    /// that job only (`Scheduler::predicted_start`), within [`PLAN_LIMIT`].
    pub fn one(&self, job: &StoredJob) -> Eta {
        let mut eta = self.started(job);
        if self.waits_in_core(job) {
            eta.start_ms = self
                .core
                .predicted_start(JobId(job.id), self.now, PLAN_LIMIT);
        }
        eta
    }

    /// Everything, for many jobs (ListJobs): one plan for all of their queued jobs,
    /// of the first [`PLAN_LIMIT`] waiting jobs.
    pub fn page(&self, jobs: &[StoredJob]) -> Vec<Eta> {
        let plan = jobs
            .iter()
            .any(|j| self.waits_in_core(j))
            .then(|| self.core.project(self.now, PLAN_LIMIT));
        jobs.iter()
            .map(|j| {
                let mut eta = self.started(j);
                if let (true, Some(plan)) = (self.waits_in_core(j), &plan) {
                    eta.start_ms = plan.start_of(JobId(j.id));
                }
                eta
            })
            .collect()
    }

    /// One page of the waiting jobs in the order the scheduler will visit them (the
    /// order of the core's projection, within [`PLAN_LIMIT`]), then the parked ones (no
    /// pool has their labels yet), then every other queued job (pipeline jobs the core
    /// holds back, and jobs past the projection's limit), those two with no place and in
    /// id order; of `tenant` only if given, from place `from` of that sequence on. Each
    /// row has its queue position (0 = next of all tenants' jobs) and its ETA from that
    /// one projection.
    pub fn queue(&self, tenant: Option<&str>, from: usize, size: usize) -> QueuePage {
        let plan = self.core.project(self.now, PLAN_LIMIT);
        let placed: HashSet<u64> = plan.pending.iter().map(|p| p.job.0).collect();
        let mut others: Vec<u64> = self
            .jobs
            .unfinished()
            .filter(|j| {
                j.state == JobState::Queued && !placed.contains(&j.id) && !self.jobs.is_parked(j.id)
            })
            .map(|j| j.id)
            .collect();
        others.sort_unstable();
        let order = plan
            .pending
            .iter()
            .enumerate()
            .map(|(i, p)| (p.job.0, Some(i), p.start_ms))
            .chain(self.jobs.parked().map(|id| (id, None, None)))
            .chain(
                others
                    .into_iter()
                    .map(|id| (id, None, plan.start_of(JobId(id)))),
            );
        let mut rows = Vec::new();
        let mut next = None;
        for (at, (id, position, start_ms)) in order.enumerate().skip(from) {
            let Some(job) = self.jobs.known(id) else {
                continue;
            };
            if tenant.is_some_and(|t| t != job.tenant) {
                continue;
            }
            if rows.len() == size {
                next = Some(at);
                break;
            }
            let mut eta = self.started(job);
            eta.start_ms = start_ms;
            rows.push(QueueRow {
                job: job.clone(),
                eta,
                position,
            });
        }
        QueuePage { rows, next }
    }

    /// Queued and not parked: the core's plan places it.
    fn waits_in_core(&self, job: &StoredJob) -> bool {
        job.state == JobState::Queued && !self.jobs.is_parked(job.id)
    }
}
