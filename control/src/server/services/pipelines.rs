//! `rustci.v1.PipelineService`: submit, read, list and cancel pipelines. Callers act for
//! a tenant as in `JobService`; a tenant sees only its own pipelines.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::jobs::acting_tenant;
use super::wire::{page_after, page_size, truncate};
use crate::pb;
use crate::server::auth::Principal;
use crate::server::live::{
    PipelineJobStatus, PipelineJobSubmission, PipelineSubmission, PipelineView,
};
use crate::server::state::Shared;
use crate::server::status::invalid;
use rustci_scheduler::{AutoCancel, JobId};

use crate::store::{PipelineCancel, PipelineFilter, PipelineStatus, StoredPipeline};

#[derive(Debug, Clone)]
pub struct PipelineApi(pub Arc<Shared>);

/// Pipelines in one `ListPipelines` page: 20 unless asked, at most 100 (each may carry
/// up to 10,000 jobs).
const PAGE_DEFAULT: i32 = 20;
const PAGE_MAX: i32 = 100;

/// `pipelines/{id}` → id.
pub(super) fn parse_pipeline_name(name: &str) -> Result<u64, Status> {
    name.strip_prefix("pipelines/")
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|&id| id > 0)
        .ok_or_else(|| {
            invalid(
                "name",
                format!("expected \"pipelines/{{id}}\", got {:?}", truncate(name)),
            )
        })
}

/// A tenant may only see its own pipelines.
fn check_owner(p: &Principal, pipeline: &StoredPipeline) -> Result<(), Status> {
    match p {
        Principal::Tenant(t) if *t != pipeline.tenant => Err(Status::permission_denied(format!(
            "pipelines/{} belongs to another tenant",
            pipeline.id
        ))),
        Principal::Runner => Err(Status::permission_denied(
            "runner tokens cannot use the pipeline API",
        )),
        _ => Ok(()),
    }
}

pub(super) fn pb_state(s: PipelineStatus) -> pb::PipelineState {
    match s {
        PipelineStatus::Running => pb::PipelineState::Running,
        PipelineStatus::Succeeded => pb::PipelineState::Succeeded,
        PipelineStatus::Failed => pb::PipelineState::Failed,
        PipelineStatus::Cancelled => pb::PipelineState::Cancelled,
        PipelineStatus::Blocked => pb::PipelineState::Blocked,
    }
}

fn pb_job_state(s: PipelineJobStatus) -> pb::PipelineJobState {
    match s {
        PipelineJobStatus::Created => pb::PipelineJobState::Created,
        PipelineJobStatus::Waiting => pb::PipelineJobState::Waiting,
        PipelineJobStatus::Manual => pb::PipelineJobState::Manual,
        PipelineJobStatus::Running => pb::PipelineJobState::Running,
        PipelineJobStatus::Succeeded => pb::PipelineJobState::Succeeded,
        PipelineJobStatus::Failed => pb::PipelineJobState::Failed,
        PipelineJobStatus::Cancelled => pb::PipelineJobState::Cancelled,
        PipelineJobStatus::Skipped => pb::PipelineJobState::Skipped,
    }
}

/// A pipeline without its jobs.
fn pb_pipeline(p: &StoredPipeline, predicted_finish_ms: Option<i64>) -> pb::Pipeline {
    pb::Pipeline {
        name: format!("pipelines/{}", p.id),
        tenant: p.tenant.clone(),
        request_id: p.request_id.clone(),
        project: p.project.clone().unwrap_or_default(),
        git_ref: p.git_ref.clone().unwrap_or_default(),
        state: pb_state(p.state) as i32,
        create_ms: p.created_ms,
        end_ms: p.end_ms.unwrap_or(0),
        predicted_finish_time_ms: predicted_finish_ms.unwrap_or(0),
        cancel_reason: match p.cancel {
            Some(PipelineCancel::Superseded { by }) => format!("superseded by pipelines/{by}"),
            Some(PipelineCancel::Cancelled) => "cancelled".into(),
            None => String::new(),
        },
        jobs: Vec::new(),
        critical_path: Vec::new(),
        critical_path_ms: 0,
    }
}

fn pb_view(v: &PipelineView) -> pb::Pipeline {
    let path = v.critical_path.as_ref();
    let on_path = |id: u64| path.is_some_and(|c| c.jobs.contains(&JobId(id)));
    pb::Pipeline {
        critical_path: path
            .map(|c| {
                c.jobs
                    .iter()
                    .filter_map(|j| v.jobs.iter().find(|(s, _)| s.id == j.0))
                    .map(|(s, _)| s.job_name.clone().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        critical_path_ms: path.map_or(0, |c| c.remaining_ms),
        jobs: v
            .jobs
            .iter()
            .enumerate()
            .map(|(i, (j, status))| {
                let info = j.pipeline.as_ref();
                pb::PipelineJob {
                    on_critical_path: on_path(j.id),
                    remaining_path_ms: path
                        .and_then(|c| c.job_remaining_ms.get(i).copied())
                        .unwrap_or(0),
                    name: j.job_name.clone().unwrap_or_default(),
                    job: format!("jobs/{}", j.id),
                    stage: info.map(|p| p.stage.clone()).unwrap_or_default(),
                    needs: info.and_then(|p| p.needs.clone()).unwrap_or_default(),
                    needs_stages: info.is_some_and(|p| p.needs.is_none()),
                    state: pb_job_state(*status) as i32,
                    runner: j
                        .runner
                        .as_ref()
                        .map(|r| format!("runners/{r}"))
                        .unwrap_or_default(),
                    start_ms: j.start_ms.unwrap_or(0),
                    end_ms: j.end_ms.unwrap_or(0),
                    exit_code: j.exit_code.unwrap_or(0),
                    attempts: j.attempts,
                    stage_index: info.map_or(0, |p| p.stage_index),
                    allow_failure: info.is_some_and(|p| p.allow_failure),
                }
            })
            .collect(),
        ..pb_pipeline(&v.pipeline, v.predicted_finish_ms)
    }
}

fn when(j: &pb::PipelineJobSpec) -> Result<rustci_scheduler::When, Status> {
    use rustci_scheduler::When;
    Ok(match pb::When::try_from(j.when) {
        Ok(pb::When::OnSuccess) => When::OnSuccess,
        Ok(pb::When::OnFailure) => When::OnFailure,
        Ok(pb::When::Always) => When::Always,
        Ok(pb::When::Manual) => When::Manual {
            blocking: j.manual_blocking,
        },
        Err(_) => {
            return Err(invalid(
                "jobs",
                format!("job {:?}: unknown when {}", truncate(&j.name), j.when),
            ))
        }
    })
}

/// The request's supersession mode (see `SubmitPipelineRequest.auto_cancel_mode`);
/// `None`: no concurrency group.
fn auto_cancel(r: &pb::SubmitPipelineRequest) -> Result<Option<AutoCancel>, Status> {
    Ok(match pb::AutoCancel::try_from(r.auto_cancel_mode) {
        Ok(pb::AutoCancel::Unspecified) => r
            .auto_cancel
            .then_some(AutoCancel::UnstartedAndInterruptible),
        Ok(pb::AutoCancel::Conservative) => Some(AutoCancel::Conservative),
        Ok(pb::AutoCancel::Interruptible) => Some(AutoCancel::Interruptible),
        Ok(pb::AutoCancel::None) => Some(AutoCancel::None),
        Ok(pb::AutoCancel::WaitingAndInterruptible) => Some(AutoCancel::UnstartedAndInterruptible),
        Err(_) => {
            return Err(invalid(
                "auto_cancel_mode",
                format!("unknown mode {}", r.auto_cancel_mode),
            ))
        }
    })
}

fn submission(r: pb::SubmitPipelineRequest, tenant: String) -> Result<PipelineSubmission, Status> {
    let auto_cancel = auto_cancel(&r)?;
    let mut jobs = Vec::with_capacity(r.jobs.len());
    for j in r.jobs {
        let when = when(&j)?;
        jobs.push(PipelineJobSubmission {
            name: j.name,
            stage: j.stage,
            stage_index: j.stage_index,
            needs: j.needs.map(|n| n.names),
            when,
            allow_failure: j.allow_failure,
            interruptible: j.interruptible,
            labels: j.labels,
            slots: j.slots,
            command: j.command,
            qos: j.qos,
            priority: j.priority,
            requested_ms: j.requested_ms,
        });
    }
    Ok(PipelineSubmission {
        request_id: r.request_id,
        tenant,
        project: r.project,
        git_ref: r.git_ref,
        auto_cancel,
        jobs,
    })
}

#[tonic::async_trait]
impl pb::pipeline_service_server::PipelineService for PipelineApi {
    async fn submit_pipeline(
        &self,
        req: Request<pb::SubmitPipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?
            .ok_or_else(|| invalid("tenant", "is required"))?;
        let s = submission(r, tenant)?;
        let mut view = self
            .0
            .change(move |live| Ok(live.accept_pipeline(s)?))
            .await?;
        if view.predicted_finish_ms.is_none() {
            // Once durable: the answers of one group commit share one projection.
            view.predicted_finish_ms = self.0.live()?.submitted_finish(view.pipeline.id)?;
        }
        Ok(Response::new(pb_view(&view)))
    }

    async fn get_pipeline(
        &self,
        req: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_pipeline_name(&req.get_ref().name)?;
        let view = self.0.live()?.pipeline(id)?;
        check_owner(&who, &view.pipeline)?;
        Ok(Response::new(pb_view(&view)))
    }

    async fn list_pipelines(
        &self,
        req: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?;
        let size = page_size(r.page_size, PAGE_DEFAULT, PAGE_MAX)?;
        let after = page_after(&r.page_token)?;
        let state = match pb::PipelineState::try_from(r.state) {
            Ok(pb::PipelineState::Unspecified) => None,
            Ok(pb::PipelineState::Running) => Some(PipelineStatus::Running),
            Ok(pb::PipelineState::Succeeded) => Some(PipelineStatus::Succeeded),
            Ok(pb::PipelineState::Failed) => Some(PipelineStatus::Failed),
            Ok(pb::PipelineState::Cancelled) => Some(PipelineStatus::Cancelled),
            Ok(pb::PipelineState::Blocked) => Some(PipelineStatus::Blocked),
            Err(_) => {
                return Err(invalid(
                    "state",
                    format!("unknown pipeline state {}", r.state),
                ))
            }
        };
        let given = |v: String| (!v.is_empty()).then_some(v);
        let filter = PipelineFilter {
            tenant,
            state,
            project: given(r.project),
            git_ref: given(r.git_ref),
            request_id: None,
        };
        let (pipelines, more) = {
            let mut live = self.0.live()?;
            let mut found = live.list_pipelines(&filter, after, size + 1)?;
            let more = found.len() > size;
            found.truncate(size);
            let out: Vec<pb::Pipeline> = live
                .pipeline_page(found, r.with_jobs)?
                .iter()
                .map(|v| {
                    if r.with_jobs {
                        pb_view(v)
                    } else {
                        pb_pipeline(&v.pipeline, v.predicted_finish_ms)
                    }
                })
                .collect();
            (out, more)
        };
        let next_page_token = if more {
            pipelines
                .last()
                .and_then(|p| p.name.strip_prefix("pipelines/"))
                .unwrap_or_default()
                .to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListPipelinesResponse {
            pipelines,
            next_page_token,
        }))
    }

    async fn cancel_pipeline(
        &self,
        req: Request<pb::CancelPipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_pipeline_name(&req.get_ref().name)?;
        let view = self
            .0
            .change(move |live| {
                let p = live.pipeline(id)?;
                check_owner(&who, &p.pipeline)?;
                Ok(live.cancel_pipeline(id)?)
            })
            .await?;
        Ok(Response::new(pb_view(&view)))
    }
}
