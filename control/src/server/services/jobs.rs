//! `rustci.v1.JobService`: submit, read, list, watch, cancel and explain jobs. Callers
//! act for a tenant (its API key) or, in local mode, for the tenant they name.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::pipelines::{parse_pipeline_name, pb_state};
use super::wire::{
    job_state, page_after, page_size, parse_job_name, pipeline_job_as_job_state, to_pb_job,
    to_pb_job_eta, truncate,
};
use crate::pb;
use crate::server::auth::Principal;
use crate::server::live::{limits, Eta, Live, LiveError, Submission};
use crate::server::state::Shared;
use crate::server::status::invalid;
use crate::store::{JobFilter, JobState, StoredJob};

/// The tenant a job request acts for: the key's tenant, or in local mode the one named.
pub(super) fn acting_tenant(
    p: &Principal,
    asked: &str,
    field: &str,
) -> Result<Option<String>, Status> {
    match p {
        Principal::Tenant(t) if asked.is_empty() || asked == t => Ok(Some(t.clone())),
        Principal::Tenant(t) => Err(Status::permission_denied(format!(
            "{field}: this API key belongs to tenant {t:?}, not {:?}",
            truncate(asked)
        ))),
        Principal::Local | Principal::Operator => {
            Ok((!asked.is_empty()).then(|| asked.to_string()))
        }
        Principal::Runner => Err(Status::permission_denied(
            "runner tokens cannot use the job API",
        )),
    }
}

/// A tenant may only see its own jobs.
fn check_owner(p: &Principal, job: &StoredJob) -> Result<(), Status> {
    match p {
        Principal::Tenant(t) if *t != job.tenant => Err(Status::permission_denied(format!(
            "jobs/{} belongs to another tenant",
            job.id
        ))),
        Principal::Runner => Err(Status::permission_denied(
            "runner tokens cannot use the job API",
        )),
        _ => Ok(()),
    }
}

fn submission(r: pb::SubmitJobRequest, tenant: String) -> Submission {
    Submission {
        request_id: r.request_id,
        tenant,
        labels: r.labels,
        slots: r.slots,
        command: r.command,
        qos: r.qos,
        priority: r.priority,
        requested_ms: r.requested_ms,
        project: r.project,
        job_name: r.job_name,
        branch: r.branch,
    }
}

/// `WatchJobs` events for committed job versions, with their estimates (and a
/// started job's start) and their pipelines' states from the live state, under one lock
/// for the whole batch. The live state is only read, so a standby's placeholder serves
/// too (it holds no job, so its predictor estimates each one afresh, and it knows no
/// pipeline: their states are left unspecified).
fn watch_events(shared: &Shared, jobs: &[StoredJob]) -> Vec<pb::JobEvent> {
    let unknown = pb::PipelineState::Unspecified;
    let (etas, pipelines): (Vec<Eta>, Vec<pb::PipelineState>) =
        match crate::server::locking::lock(&shared.live) {
            Ok(mut live) => {
                let etas = live.etas();
                let etas = jobs.iter().map(|j| etas.started(j)).collect();
                let mut states = HashMap::new();
                let pipelines = jobs
                    .iter()
                    .map(|j| match &j.pipeline {
                        None => unknown,
                        Some(info) => *states.entry(info.pipeline).or_insert_with(|| {
                            live.pipeline_status(info.pipeline)
                                .map_or(unknown, pb_state)
                        }),
                    })
                    .collect();
                (etas, pipelines)
            }
            // Events still flow after an internal error; only the estimates are lost.
            Err(_) => (vec![Eta::default(); jobs.len()], vec![unknown; jobs.len()]),
        };
    jobs.iter()
        .zip(etas)
        .zip(pipelines)
        .map(|((j, eta), pipeline)| pb::JobEvent {
            revision: j.revision,
            job: Some(to_pb_job_eta(j, eta)),
            pipeline_state: pipeline as i32,
        })
        .collect()
}

/// Whether a `WatchJobs` stream for `pipeline` (any job: `None`) sends `job`.
fn watched(pipeline: Option<u64>, job: &StoredJob) -> bool {
    pipeline.is_none_or(|p| job.pipeline.as_ref().is_some_and(|i| i.pipeline == p))
}

#[derive(Debug, Clone)]
pub struct JobApi(pub Arc<Shared>);

impl JobApi {
    /// `act` on the job called `name`, if the caller may act on it (its tenant's key, or
    /// local mode): CancelJob and PlayJob.
    async fn act_on_own_job<T>(
        &self,
        req: &Request<T>,
        name: &str,
        act: fn(&mut Live, u64) -> Result<StoredJob, LiveError>,
    ) -> Result<Response<pb::Job>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_job_name("name", name)?;
        let job = self
            .0
            .change(move |live| {
                check_owner(&who, &live.job(id)?)?;
                Ok(act(live, id)?)
            })
            .await?;
        Ok(Response::new(to_pb_job(&job)))
    }

    /// The waiting jobs in the order the scheduler will visit them, a page at a time
    /// (`Etas::queue`), with ListJobs' checks and page sizes: a tenant's key sees its own
    /// jobs; the page token is the place in that order where the next page starts. Each
    /// job comes with its queue position (`None`: parked, no pool has its labels yet).
    #[allow(clippy::type_complexity)]
    pub fn queue(
        &self,
        req: &Request<()>,
        tenant: &str,
        asked_size: i32,
        page_token: &str,
    ) -> Result<(Vec<(pb::Job, Option<usize>)>, String), Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let tenant = acting_tenant(&who, tenant, "tenant")?;
        let size = page_size(asked_size, 100, limits::PAGE_SIZE)?;
        let from = usize::try_from(page_after(page_token)?)
            .map_err(|_| invalid("page_token", "not a token this server issued"))?;
        let page = self.0.live()?.etas().queue(tenant.as_deref(), from, size);
        let jobs = page
            .rows
            .into_iter()
            .map(|r| (to_pb_job_eta(&r.job, r.eta), r.position))
            .collect();
        let next = page.next.map(|n| n.to_string()).unwrap_or_default();
        Ok((jobs, next))
    }
}

type JobEventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::job_service_server::JobService for JobApi {
    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?.unwrap_or_default();
        let (job, eta) = self
            .0
            .change(move |live| {
                let job = live.submit(submission(r, tenant))?;
                let eta = live.etas().started(&job);
                Ok((job, eta))
            })
            .await?;
        self.0.metrics.submitted.inc();
        // Built outside the live state's lock.
        Ok(Response::new(to_pb_job_eta(&job, eta)))
    }

    async fn submit_jobs(
        &self,
        req: Request<pb::SubmitJobsRequest>,
    ) -> Result<Response<pb::SubmitJobsResponse>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let requests = req.into_inner().requests;
        if requests.is_empty() || requests.len() > limits::BATCH {
            return Err(invalid(
                "requests",
                format!("1 to {} requests, got {}", limits::BATCH, requests.len()),
            ));
        }
        let mut subs = Vec::with_capacity(requests.len());
        for (i, r) in requests.into_iter().enumerate() {
            let tenant = acting_tenant(&who, &r.tenant, &format!("requests[{i}].tenant"))?
                .unwrap_or_default();
            subs.push(submission(r, tenant));
        }
        let jobs = self
            .0
            .change(move |live| {
                // All or nothing: check every request before submitting any.
                let mut checked = Vec::with_capacity(subs.len());
                for (i, s) in subs.into_iter().enumerate() {
                    checked.push(s.check(&live.config().qos).map_err(|e| match e {
                        LiveError::InvalidArgument { .. } => {
                            Status::invalid_argument(format!("requests[{i}].{e}"))
                        }
                        other => Status::from(other),
                    })?);
                }
                let mut jobs = Vec::with_capacity(checked.len());
                for s in checked {
                    let job = live.submit_checked(s)?;
                    let eta = live.etas().started(&job);
                    jobs.push(to_pb_job_eta(&job, eta));
                }
                Ok(jobs)
            })
            .await?;
        self.0.metrics.submitted.add(jobs.len() as u64);
        Ok(Response::new(pb::SubmitJobsResponse { jobs }))
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_job_name("name", &req.get_ref().name)?;
        let (job, eta) = {
            let mut live = self.0.live()?;
            let job = live.job(id)?;
            check_owner(&who, &job)?;
            // The plan is projected on demand, up to this job only; nothing is cached,
            // so the answer is as fresh as the core.
            let eta = live.etas().one(&job);
            (job, eta)
        };
        Ok(Response::new(to_pb_job_eta(&job, eta)))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?;
        let size = page_size(r.page_size, 100, limits::PAGE_SIZE)?;
        let after = page_after(&r.page_token)?;
        let asked = pb::JobState::try_from(r.state)
            .map_err(|_| invalid("state", format!("unknown job state {}", r.state)))?;
        let state = match asked {
            pb::JobState::Unspecified => None,
            // Stored as queued: the page is filtered by what the core holds back.
            pb::JobState::Queued | pb::JobState::Created | pb::JobState::Manual => {
                Some(JobState::Queued)
            }
            pb::JobState::Leased => Some(JobState::Leased),
            pb::JobState::Succeeded => Some(JobState::Succeeded),
            pb::JobState::Failed => Some(JobState::Failed),
            pb::JobState::Cancelled => Some(JobState::Cancelled),
            pb::JobState::Skipped => Some(JobState::Skipped),
        };
        let filter = JobFilter {
            tenant,
            state,
            request_id: None,
        };
        let (jobs, etas) = {
            let mut live = self.0.live()?;
            let jobs = live.list(&filter, after, size + 1)?;
            // One plan for the page (see `Etas::page`).
            let etas = live.etas().page(&jobs[..jobs.len().min(size)]);
            (jobs, etas)
        };
        let more = jobs.len() > size;
        // The token follows the store's page: a page filtered to created, manual or
        // queued jobs may be short, never skips one.
        let next_page_token = if more {
            jobs.get(size - 1)
                .map(|j| j.id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let jobs: Vec<pb::Job> = jobs
            .iter()
            .zip(etas)
            .map(|(j, eta)| to_pb_job_eta(j, eta))
            .filter(|j| state.is_none() || j.state == asked as i32)
            .collect();
        Ok(Response::new(pb::ListJobsResponse {
            jobs,
            next_page_token,
        }))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let name = req.get_ref().name.clone();
        self.act_on_own_job(&req, &name, Live::cancel).await
    }

    async fn play_job(
        &self,
        req: Request<pb::PlayJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let name = req.get_ref().name.clone();
        self.act_on_own_job(&req, &name, Live::play).await
    }

    type WatchJobsStream = JobEventStream;

    async fn watch_jobs(
        &self,
        req: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?;
        let pipeline = match r.pipeline.as_str() {
            "" => None,
            name => Some(parse_pipeline_name(name).map_err(|_| {
                invalid(
                    "pipeline",
                    format!("expected \"pipelines/{{id}}\", got {:?}", truncate(name)),
                )
            })?),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let shared = self.0.clone();
        // Subscribe before reading history so that no change falls between the two.
        let mut changes = shared.events.subscribe();
        let mut closing = shared.closing.subscribe();
        let mut last = r.from_revision;
        tokio::spawn(async move {
            'history: loop {
                loop {
                    let page = match shared.changes_since(last, tenant.as_deref(), 1000) {
                        Ok(page) => page,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    };
                    let Some(newest) = page.last().map(|j| j.revision) else {
                        break;
                    };
                    let page: Vec<StoredJob> =
                        page.into_iter().filter(|j| watched(pipeline, j)).collect();
                    for ev in watch_events(&shared, &page) {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    last = last.max(newest);
                }
                // Highest revision seen on the feed since the last history read.
                let mut seen: Option<u64> = None;
                loop {
                    let next = tokio::select! {
                        next = changes.recv() => next,
                        _ = closing.wait_for(|c| *c) => return,
                    };
                    let mut batch = match next {
                        Ok(j) => vec![j],
                        // Fell behind the live feed: catch up from the store.
                        Err(RecvError::Lagged(_)) => continue 'history,
                        Err(RecvError::Closed) => return,
                    };
                    // What else already waits shares one lock of the live state for its
                    // estimates, so a busy feed costs fewer locks, not more.
                    let mut resync = false;
                    while batch.len() < 256 {
                        match changes.try_recv() {
                            Ok(j) => batch.push(j),
                            Err(TryRecvError::Lagged(_)) => {
                                resync = true;
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                        }
                    }
                    let mut out = Vec::with_capacity(batch.len());
                    for j in batch {
                        if let Some(s) = seen {
                            if j.revision <= s {
                                continue; // a repeat (fan-out echo)
                            }
                            if j.revision > s + 1 {
                                // A skipped revision: the rest comes from the store.
                                resync = true;
                                break;
                            }
                        }
                        seen = Some(j.revision);
                        if j.revision <= last || tenant.as_ref().is_some_and(|t| *t != j.tenant) {
                            continue;
                        }
                        last = j.revision;
                        if watched(pipeline, &j) {
                            out.push(j);
                        }
                    }
                    for ev in watch_events(&shared, &out) {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if resync {
                        continue 'history;
                    }
                }
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as JobEventStream
        ))
    }

    async fn explain_job(
        &self,
        req: Request<pb::ExplainJobRequest>,
    ) -> Result<Response<pb::Explanation>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_job_name("name", &req.get_ref().name)?;
        let mut live = self.0.live()?;
        check_owner(&who, &live.job(id)?)?;
        let e = live.explain(id)?;
        Ok(Response::new(pb::Explanation {
            name: format!("jobs/{id}"),
            state: match e.reason {
                "waiting_for_needs" => pb::JobState::Created,
                "manual" => pb::JobState::Manual,
                _ => job_state(e.job.state),
            } as i32,
            reason: e.reason.to_string(),
            message: e.message,
            blocking_job: e
                .blocking_job
                .map(|b| format!("jobs/{b}"))
                .unwrap_or_default(),
            runner: e.runner.map(|r| format!("runners/{r}")).unwrap_or_default(),
            at_ms: e.at_ms.unwrap_or(0),
            queue_position: e
                .queue_position
                .map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX)),
            needs: e
                .needs
                .iter()
                .map(|n| pb::NeedStatus {
                    name: n.name.clone(),
                    job: format!("jobs/{}", n.job),
                    state: pipeline_job_as_job_state(n.status) as i32,
                    end_ms: n.end_ms.unwrap_or(0),
                })
                .collect(),
        }))
    }
}
