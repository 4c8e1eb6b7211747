//! The wire's side of the services: resource names (`jobs/{id}`, `runners/{id}`) and
//! live state to `rustci.v1` messages.

use tonic::Status;

use crate::pb;
use crate::server::live::{limits, Eta, PipelineJobStatus};
use crate::server::status::invalid;
use crate::store::{JobState, StoredJob};

pub(super) fn job_state(s: JobState) -> pb::JobState {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Leased => pb::JobState::Leased,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
        JobState::Skipped => pb::JobState::Skipped,
    }
}

pub fn to_pb_job(j: &StoredJob) -> pb::Job {
    pb::Job {
        name: format!("jobs/{}", j.id),
        tenant: j.tenant.clone(),
        request_id: j.request_id.clone(),
        labels: j.labels.clone(),
        slots: j.slots,
        command: j.command.clone(),
        qos: j.qos.clone(),
        priority: j.priority,
        requested_ms: j.requested_ms.unwrap_or(0),
        state: job_state(j.state) as i32,
        submit_ms: j.submit_ms,
        start_ms: j.start_ms.unwrap_or(0),
        end_ms: j.end_ms.unwrap_or(0),
        runner: j
            .runner
            .as_ref()
            .map(|r| format!("runners/{r}"))
            .unwrap_or_default(),
        exit_code: j.exit_code.unwrap_or(0),
        revision: j.revision,
        attempts: j.attempts,
        project: j.project.clone().unwrap_or_default(),
        job_name: j.job_name.clone().unwrap_or_default(),
        branch: j.branch.clone().unwrap_or_default(),
        predicted_run_ms: 0,
        predicted_run_upper_ms: 0,
        predicted_start_unix_ms: 0,
        reported_run_ms: j.reported_run_ms,
        pipeline: j
            .pipeline
            .as_ref()
            .map(|p| format!("pipelines/{}", p.pipeline))
            .unwrap_or_default(),
        stage: j
            .pipeline
            .as_ref()
            .map(|p| p.stage.clone())
            .unwrap_or_default(),
        needs: j
            .pipeline
            .as_ref()
            .and_then(|p| p.needs.clone())
            .unwrap_or_default(),
        needs_stages: j.pipeline.as_ref().is_some_and(|p| p.needs.is_none()),
    }
}

/// A pipeline job's state as `GetPipeline` has it, as a job state.
pub(super) fn pipeline_job_as_job_state(s: PipelineJobStatus) -> pb::JobState {
    match s {
        PipelineJobStatus::Created => pb::JobState::Created,
        PipelineJobStatus::Waiting => pb::JobState::Queued,
        PipelineJobStatus::Manual => pb::JobState::Manual,
        PipelineJobStatus::Running => pb::JobState::Leased,
        PipelineJobStatus::Succeeded => pb::JobState::Succeeded,
        PipelineJobStatus::Failed => pb::JobState::Failed,
        PipelineJobStatus::Cancelled => pb::JobState::Cancelled,
        PipelineJobStatus::Skipped => pb::JobState::Skipped,
    }
}

/// A job with its estimates and start (see `Job.predicted_*` in `jobs.proto` for which
/// answers fill what), and as created or manual if the core holds it back.
pub fn to_pb_job_eta(j: &StoredJob, eta: Eta) -> pb::Job {
    let state = match eta.held {
        Some(held) => pipeline_job_as_job_state(held),
        None => job_state(j.state),
    };
    pb::Job {
        state: state as i32,
        predicted_run_ms: eta.run_ms,
        predicted_run_upper_ms: eta.upper_ms,
        predicted_start_unix_ms: eta.start_ms.unwrap_or(0),
        ..to_pb_job(j)
    }
}

/// A page size as asked (`0`: `default`), at most `max`.
pub(super) fn page_size(asked: i32, default: i32, max: i32) -> Result<usize, Status> {
    match asked {
        0 => Ok(default as usize),
        n if (1..=max).contains(&n) => Ok(n as usize),
        n => Err(invalid("page_size", format!("must be 0..={max}, got {n}"))),
    }
}

/// The id a page token says the next page starts after (`0` for the first page).
pub(super) fn page_after(token: &str) -> Result<u64, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse::<u64>()
        .map_err(|_| invalid("page_token", "not a token this server issued"))
}

/// `jobs/{id}` → id.
pub fn parse_job_name(field: &str, name: &str) -> Result<u64, Status> {
    name.strip_prefix("jobs/")
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|&id| id > 0)
        .ok_or_else(|| {
            invalid(
                field,
                format!("expected \"jobs/{{id}}\", got {:?}", truncate(name)),
            )
        })
}

/// `runners/{id}` → id.
pub(super) fn parse_runner_name(field: &str, name: &str) -> Result<String, Status> {
    name.strip_prefix("runners/")
        .filter(|id| !id.is_empty() && id.len() <= limits::ID_LEN)
        .map(str::to_string)
        .ok_or_else(|| {
            invalid(
                field,
                format!("expected \"runners/{{id}}\", got {:?}", truncate(name)),
            )
        })
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
