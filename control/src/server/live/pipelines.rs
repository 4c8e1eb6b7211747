//! Pipelines in the live service: a submission checked once, the running pipelines'
//! records, and what `Live` does with them (submit, cancel, read, rebuild after a
//! restart). The core decides everything about a pipeline (`rustci_scheduler::pipeline`:
//! which jobs are ready, skipped, cancelled, when it ends); the live driver records its
//! decisions on the job table and in the store (`Live::apply`), as for single jobs.
//!
//! # Ids and request ids
//!
//! A pipeline's jobs get consecutive job ids and the pipeline is named after its first
//! job (`pipelines/{id}`): pipeline ids need no counter of their own and are never handed
//! out twice. Each job's request id is `pipelines/{id}/{index}` (a prefix single jobs may
//! not use); the pipeline's own `(tenant, request_id)` is its idempotency key.
//!
//! # Concurrency group
//!
//! With an `auto_cancel` mode, a pipeline's group is a hash of its tenant, project and
//! ref: a newer pipeline of the same project and ref supersedes it as its mode says (the
//! core's rule); the mode is stored with the pipeline for a restart.

use std::collections::{BTreeMap, HashMap, HashSet};

use rustci_scheduler::{
    AutoCancel, CancelReason, CoreError, CriticalPath, Event, JobId, Millis, PipelineId,
    PipelineJob, PipelineJobState, PipelineSpec, PipelineState, Projection, RestoredJob, When,
};

use super::error::{invalid, LiveError};
use super::explain::{Explanation, NeedWait};
use super::jobs::request_hash;
use super::limits::{self, check_id};
use super::submission::Submission;
use super::{Live, PLAN_LIMIT};
use crate::store::{
    Batch, JobState, PipelineCancel, PipelineFilter, PipelineJobInfo, PipelineStatus, StoredJob,
    StoredPipeline,
};

/// The most jobs one pipeline may have (the GitLab CI reader's limit too).
pub const PIPELINE_JOBS: usize = crate::clients::ci_file::MAX_PIPELINE_JOBS;

/// The request-id prefix of pipeline jobs, refused for single jobs.
pub const PIPELINE_REQUEST_PREFIX: &str = "pipelines/";

/// A pipeline as a client submits it; [`Live::submit_pipeline`] checks it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineSubmission {
    pub request_id: String,
    pub tenant: String,
    pub project: String,
    pub git_ref: String,
    /// What a newer pipeline of the same project and ref does to this one; `None`: the
    /// pipeline is in no concurrency group (it neither supersedes nor is superseded).
    pub auto_cancel: Option<AutoCancel>,
    pub jobs: Vec<PipelineJobSubmission>,
}

/// One job of a [`PipelineSubmission`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineJobSubmission {
    /// Unique within the pipeline; `needs` and errors name the job by it.
    pub name: String,
    pub stage: String,
    /// Position of the stage in the pipeline's stage order.
    pub stage_index: u32,
    /// `None`: every job of the earlier stages; `Some(vec![])`: none.
    pub needs: Option<Vec<String>>,
    pub when: When,
    pub allow_failure: bool,
    pub interruptible: bool,
    pub labels: Vec<String>,
    /// 0: one slot.
    pub slots: u32,
    pub command: String,
    /// Empty: the default class.
    pub qos: String,
    pub priority: i32,
    /// 0: none.
    pub requested_ms: i64,
}

/// Where a job of a pipeline is, as `GetPipeline` shows it: the store's state once it
/// ended, the core's while its pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineJobStatus {
    /// A need has not ended yet.
    Created,
    /// In the queue.
    Waiting,
    /// A manual job waiting for a person.
    Manual,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

impl PipelineJobStatus {
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Waiting => "waiting",
            Self::Manual => "manual",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }
}

/// A pipeline with every job and its state, and the projected end of a running one.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineView {
    pub pipeline: StoredPipeline,
    /// In the spec's order.
    pub jobs: Vec<(StoredJob, PipelineJobStatus)>,
    /// The core's projection of the pipeline's end (running pipelines only; `None` when a
    /// job it waits for cannot be placed).
    pub predicted_finish_ms: Option<Millis>,
    /// The core's critical path now (running pipelines only); its job ids are those of
    /// `jobs`.
    pub critical_path: Option<CriticalPath>,
}

/// The running pipelines, and the ended ones whose end is not durable yet (the store
/// has the others).
#[derive(Debug, Default)]
pub(super) struct PipelineTable {
    running: BTreeMap<u64, StoredPipeline>,
    /// (tenant, request_id) of the running pipelines.
    requests: HashMap<(String, String), u64>,
    ended_pending: HashMap<u64, StoredPipeline>,
    /// Hashes of every pipeline's (tenant, request_id) in the store, loaded at start
    /// (`request_hash`): a request never seen needs no store lookup.
    seen_requests: HashSet<u64>,
    /// The largest pipeline id the core took (submitted or restored).
    newest: u64,
    /// The last projection made for a `SubmitPipeline` answer ([`Live::submitted_finish`]).
    answer_plan: Option<AnswerPlan>,
}

/// A projection of the queue and the newest pipeline the core held when it was made:
/// it covers the submissions of that pipeline and of every older one.
#[derive(Debug)]
struct AnswerPlan {
    covers: u64,
    plan: Projection,
}

impl PipelineTable {
    pub(super) fn clear(&mut self) {
        self.running.clear();
        self.requests.clear();
        self.ended_pending.clear();
        self.seen_requests.clear();
        self.newest = 0;
        self.answer_plan = None;
    }

    /// A pipeline of the store, at start.
    fn saw(&mut self, p: &StoredPipeline) {
        self.seen_requests
            .insert(request_hash(&p.tenant, &p.request_id));
    }

    /// Whether a (tenant, request_id) may have made a pipeline before: `false` is
    /// certain, `true` may be a hash collision.
    fn maybe_seen(&self, tenant: &str, request_id: &str) -> bool {
        self.seen_requests
            .contains(&request_hash(tenant, request_id))
    }

    /// A committed pipeline version is durable: an ended pipeline leaves the table.
    pub(super) fn durable(&mut self, p: &StoredPipeline) {
        if p.state != PipelineStatus::Running {
            self.ended_pending.remove(&p.id);
        }
    }

    pub(super) fn insert(&mut self, p: StoredPipeline) {
        self.saw(&p);
        self.newest = self.newest.max(p.id);
        self.requests
            .insert((p.tenant.clone(), p.request_id.clone()), p.id);
        self.running.insert(p.id, p);
    }

    /// The projected end of pipeline `id` from the last answer plan, if that plan was
    /// made after the pipeline was submitted (`Some(None)`: it cannot place a job the
    /// pipeline waits for).
    fn planned_end(&self, id: u64) -> Option<Option<Millis>> {
        self.answer_plan
            .as_ref()
            .filter(|a| a.covers >= id)
            .map(|a| a.plan.pipeline_end(PipelineId(id)))
    }

    /// Keeps `plan`, made now, for the next answers; pipeline `id`'s projected end in it.
    fn keep_plan(&mut self, id: u64, plan: Projection) -> Option<Millis> {
        let end = plan.pipeline_end(PipelineId(id));
        self.answer_plan = Some(AnswerPlan {
            covers: self.newest,
            plan,
        });
        end
    }

    /// A running pipeline.
    pub(super) fn get(&self, id: u64) -> Option<&StoredPipeline> {
        self.running.get(&id)
    }

    /// A running pipeline, or an ended one whose end is not durable yet.
    pub(super) fn known(&self, id: u64) -> Option<&StoredPipeline> {
        self.running
            .get(&id)
            .or_else(|| self.ended_pending.get(&id))
    }

    pub(super) fn by_request(&self, tenant: &str, request_id: &str) -> Option<&StoredPipeline> {
        let id = self
            .requests
            .get(&(tenant.to_string(), request_id.to_string()))?;
        self.running.get(id)
    }

    /// Records how a running pipeline was cancelled (the first reason stays); the new
    /// version, if it changed.
    pub(super) fn cancelled(&mut self, id: u64, how: PipelineCancel) -> Option<StoredPipeline> {
        let p = self.running.get_mut(&id)?;
        if p.cancel.is_some() {
            return None;
        }
        p.cancel = Some(how);
        Some(p.clone())
    }

    /// A pipeline ended: it leaves the table; its last version.
    pub(super) fn ended(
        &mut self,
        id: u64,
        state: PipelineStatus,
        now: Millis,
    ) -> Option<StoredPipeline> {
        let mut p = self.running.remove(&id)?;
        self.requests
            .remove(&(p.tenant.clone(), p.request_id.clone()));
        p.state = state;
        p.end_ms = Some(now);
        self.ended_pending.insert(id, p.clone());
        Some(p)
    }
}

pub(super) fn pipeline_status(s: PipelineState) -> PipelineStatus {
    match s {
        PipelineState::Succeeded => PipelineStatus::Succeeded,
        PipelineState::Failed => PipelineStatus::Failed,
        PipelineState::Cancelled => PipelineStatus::Cancelled,
        PipelineState::Blocked => PipelineStatus::Blocked,
    }
}

pub(super) fn pipeline_cancel(r: CancelReason) -> PipelineCancel {
    match r {
        CancelReason::Superseded { by } => PipelineCancel::Superseded { by: by.0 },
        CancelReason::PipelineCancelled => PipelineCancel::Cancelled,
    }
}

fn cancel_reason(c: PipelineCancel) -> CancelReason {
    match c {
        PipelineCancel::Superseded { by } => CancelReason::Superseded { by: PipelineId(by) },
        PipelineCancel::Cancelled => CancelReason::PipelineCancelled,
    }
}

/// The concurrency group of a project and ref within a tenant (63 bits: the stores keep
/// it as a signed integer).
fn group_of(tenant: &str, project: &str, git_ref: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tenant, project, git_ref).hash(&mut h);
    h.finish() & (i64::MAX as u64)
}

/// A field error of one job, named by the job.
fn in_job(name: &str, e: LiveError) -> LiveError {
    match e {
        LiveError::InvalidArgument { field, reason } => {
            invalid("jobs", format!("job {name:?}: {field}: {reason}"))
        }
        other => other,
    }
}

impl PipelineSubmission {
    /// The pipeline's own fields and each job's, checked against [`limits`] and the QoS
    /// `classes`; the jobs as stored (ids from `first_id`, created at `now`, revisions
    /// from `revision`). The DAG itself (names, needs, cycles) is the core's check.
    fn into_jobs(
        self,
        classes: &[rustci_scheduler::QosSpec],
        first_id: u64,
        now: Millis,
        mut revision: impl FnMut() -> u64,
    ) -> Result<(StoredPipeline, Vec<StoredJob>), LiveError> {
        check_id("request_id", &self.request_id)?;
        check_id("tenant", &self.tenant)?;
        for (field, v) in [("project", &self.project), ("ref", &self.git_ref)] {
            if v.len() > limits::TEXT_LEN {
                return Err(invalid(
                    field,
                    format!("at most {} bytes", limits::TEXT_LEN),
                ));
            }
            limits::check_text(field, v)?;
        }
        if self.jobs.is_empty() {
            return Err(invalid("jobs", "a pipeline needs at least one job"));
        }
        if self.jobs.len() > PIPELINE_JOBS {
            return Err(invalid(
                "jobs",
                format!(
                    "at most {PIPELINE_JOBS} jobs in one pipeline, got {}",
                    self.jobs.len()
                ),
            ));
        }
        let given = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let group = self
            .auto_cancel
            .map(|_| group_of(&self.tenant, &self.project, &self.git_ref));
        let mut jobs = Vec::with_capacity(self.jobs.len());
        for (i, j) in self.jobs.into_iter().enumerate() {
            let name = j.name;
            if name.is_empty() {
                return Err(invalid("jobs", format!("job #{i} has no name")));
            }
            if name.len() > limits::TEXT_LEN {
                return Err(invalid(
                    "jobs",
                    format!("job #{i}: name: at most {} bytes", limits::TEXT_LEN),
                ));
            }
            limits::check_text("jobs", &name)?;
            // Checked as a single job would be; the request id is set below (single
            // jobs may not use the prefix).
            let checked = Submission {
                request_id: "-".into(),
                tenant: self.tenant.clone(),
                labels: j.labels,
                slots: j.slots,
                command: j.command,
                qos: j.qos,
                priority: j.priority,
                requested_ms: j.requested_ms,
                project: self.project.clone(),
                job_name: name.clone(),
                branch: self.git_ref.clone(),
            }
            .check(classes)
            .and_then(|c| {
                if j.stage.len() > limits::TEXT_LEN {
                    return Err(invalid(
                        "stage",
                        format!("at most {} bytes", limits::TEXT_LEN),
                    ));
                }
                limits::check_text("stage", &j.stage)?;
                for n in j.needs.iter().flatten() {
                    limits::check_text("needs", n)?;
                }
                Ok(c)
            })
            .map_err(|e| in_job(&name, e))?;
            let mut job = checked.into_job(first_id + i as u64, now, revision());
            job.request_id = format!("{PIPELINE_REQUEST_PREFIX}{first_id}/{i}");
            job.pipeline = Some(PipelineJobInfo {
                pipeline: first_id,
                stage: j.stage,
                stage_index: j.stage_index,
                needs: j.needs,
                when: j.when,
                allow_failure: j.allow_failure,
                interruptible: j.interruptible,
                ready_ms: None,
                played_ms: None,
            });
            jobs.push(job);
        }
        let pipeline = StoredPipeline {
            id: first_id,
            request_id: self.request_id,
            tenant: self.tenant,
            project: given(&self.project),
            git_ref: given(&self.git_ref),
            group,
            auto_cancel: self.auto_cancel.unwrap_or_default(),
            state: PipelineStatus::Running,
            created_ms: now,
            end_ms: None,
            cancel: None,
            jobs: jobs.len() as u32,
        };
        Ok((pipeline, jobs))
    }
}

/// A retry must send the same pipeline: same project, ref and job names in order.
fn same_pipeline(
    s: &PipelineSubmission,
    first: &StoredPipeline,
    jobs: &[StoredJob],
) -> Result<(), LiveError> {
    let names: Vec<&str> = s.jobs.iter().map(|j| j.name.as_str()).collect();
    let stored: Vec<&str> = jobs
        .iter()
        .map(|j| j.job_name.as_deref().unwrap_or(""))
        .collect();
    let differs = if first.project.as_deref().unwrap_or("") != s.project {
        Some("project")
    } else if first.git_ref.as_deref().unwrap_or("") != s.git_ref {
        Some("ref")
    } else if names != stored {
        Some("jobs")
    } else {
        None
    };
    match differs {
        None => Ok(()),
        Some(field) => Err(LiveError::AlreadyExists(format!(
            "request_id {:?} already made pipelines/{} with other {field}; a retry must send \
             the same request, a different pipeline needs a new request_id",
            s.request_id, first.id
        ))),
    }
}

impl Live {
    /// Submits a pipeline: every job and the pipeline are stored in one batch, durable
    /// before the answer; a repeat of a `(tenant, request_id)` returns the first pipeline.
    /// Errors name the field or the job (a cycle, an unknown need, a duplicate name, too
    /// many jobs, a job no registered runner can run). The view's predicted finish is
    /// projected now ([`Live::submitted_finish`]).
    pub fn submit_pipeline(&mut self, s: PipelineSubmission) -> Result<PipelineView, LiveError> {
        let mut view = self.accept_pipeline(s)?;
        if view.predicted_finish_ms.is_none() {
            view.predicted_finish_ms = self.submitted_finish(view.pipeline.id)?;
        }
        Ok(view)
    }

    /// [`Live::submit_pipeline`] without projecting a new pipeline's finish: its view has
    /// `predicted_finish_ms: None`, to be filled by [`Live::submitted_finish`] once the
    /// submission is durable, so that the answers of one group commit share one
    /// projection instead of each holding the live state for a projection of its own.
    pub fn accept_pipeline(&mut self, s: PipelineSubmission) -> Result<PipelineView, LiveError> {
        check_id("request_id", &s.request_id)?;
        check_id("tenant", &s.tenant)?;
        if let Some(p) = self.pipelines.by_request(&s.tenant, &s.request_id).cloned() {
            let view = self.pipeline(p.id)?;
            let jobs: Vec<StoredJob> = view.jobs.iter().map(|(j, _)| j.clone()).collect();
            return same_pipeline(&s, &p, &jobs).map(|()| view);
        }
        // A request never seen needs no store lookup (a submission holds the live state
        // while it waits for the store, which a commit may be holding).
        let existing = if self.pipelines.maybe_seen(&s.tenant, &s.request_id) {
            let filter = PipelineFilter {
                tenant: Some(s.tenant.clone()),
                request_id: Some(s.request_id.clone()),
                ..PipelineFilter::default()
            };
            self.store()?.list_pipelines(&filter, 0, 1)?.pop()
        } else {
            None
        };
        if let Some(p) = existing {
            let view = self.pipeline(p.id)?;
            let jobs: Vec<StoredJob> = view.jobs.iter().map(|(j, _)| j.clone()).collect();
            return same_pipeline(&s, &p, &jobs).map(|()| view);
        }
        let now = self.now();
        // Checked before any id is taken: a refused request changes nothing.
        let first_id = self.jobs.peek_id();
        let mut revision = self.jobs.revision();
        let (pipeline, jobs) = s.into_jobs(&self.config.qos, first_id, now, || {
            revision += 1;
            revision
        })?;
        let mut core_jobs = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let Some(spec) = self.names.spec(&mut self.core, &self.config.qos, job)? else {
                return Err(LiveError::FailedPrecondition(format!(
                    "job {:?}: no registered runner has all of the labels {:?}; register one \
                     before submitting the pipeline",
                    job.job_name.as_deref().unwrap_or(""),
                    job.labels
                )));
            };
            let Some(info) = job.pipeline.as_ref() else {
                continue; // `into_jobs` sets it on every job
            };
            core_jobs.push(core_job(job, info, spec));
        }
        let spec = PipelineSpec {
            id: PipelineId(pipeline.id),
            group: pipeline.group,
            auto_cancel: pipeline.auto_cancel,
            jobs: core_jobs,
        };
        let mut out = self.decisions.buffer();
        if let Err(e) = self.core.handle(now, Event::SubmitPipeline(spec), &mut out) {
            self.decisions.give_back(out);
            return Err(pipeline_error(e));
        }
        // The core took it: the ids and revisions are used now.
        for _ in &jobs {
            self.jobs.next_id();
            self.jobs.next_revision();
        }
        let mut batch = Batch {
            jobs: jobs.clone(),
            pipelines: vec![pipeline.clone()],
            ..Batch::default()
        };
        for job in jobs {
            self.jobs.add(job);
        }
        self.pipelines.insert(pipeline.clone());
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
        self.commit(batch)?;
        self.pipeline_unprojected(pipeline.id)
    }

    /// The predicted finish of pipeline `id` for its `SubmitPipeline` answer: from the
    /// last answer plan if that was made after the pipeline was submitted, else from a
    /// projection of the queue now (`Scheduler::project`), kept for the next answers.
    /// The answers of one group commit, given once it is durable, so share one
    /// projection, each made no earlier than its own submission (a projection costs
    /// about 1 µs per waiting job and per job of every running pipeline, under the live
    /// state's lock). An ended pipeline's end.
    pub fn submitted_finish(&mut self, id: u64) -> Result<Option<Millis>, LiveError> {
        if self.pipelines.get(id).is_none() {
            return Ok(self.stored_pipeline(id)?.end_ms);
        }
        if let Some(end) = self.pipelines.planned_end(id) {
            return Ok(end);
        }
        let plan = self.core.project(self.now(), PLAN_LIMIT);
        Ok(self.pipelines.keep_plan(id, plan))
    }

    /// Cancels every job of a running pipeline, running ones too (their runners are told
    /// on their next heartbeat); the pipeline ends cancelled.
    pub fn cancel_pipeline(&mut self, id: u64) -> Result<PipelineView, LiveError> {
        if self.pipelines.get(id).is_none() {
            let p = self.stored_pipeline(id)?;
            return Err(LiveError::FailedPrecondition(format!(
                "pipelines/{id} already ended ({})",
                p.state.as_str()
            )));
        }
        let now = self.now();
        let mut out = self.decisions.buffer();
        self.core.handle(
            now,
            Event::CancelPipeline {
                pipeline: PipelineId(id),
            },
            &mut out,
        )?;
        let mut batch = Batch::default();
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
        self.commit(batch)?;
        self.pipeline(id)
    }

    /// Plays a manual job of a running pipeline: it enters the queue now. The play is
    /// durable (`PipelineJobInfo::played_ms`, in the same batch as what it started): a
    /// restart plays it again (`restore_pipelines`).
    pub fn play(&mut self, id: u64) -> Result<StoredJob, LiveError> {
        if self.jobs.get(id).is_none() {
            let j = self.job(id)?;
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{id} already finished ({})",
                j.state.as_str()
            )));
        }
        if self.core.pipeline_job_state(JobId(id)) != Some(PipelineJobState::Manual) {
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{id} is not a manual job waiting to be played"
            )));
        }
        let now = self.now();
        let mut out = self.decisions.buffer();
        if let Err(e) = self
            .core
            .handle(now, Event::PlayManual { job: JobId(id) }, &mut out)
        {
            self.decisions.give_back(out);
            return Err(e.into());
        }
        let mut batch = Batch::default();
        let revision = self.jobs.next_revision();
        if let Some(j) = self.jobs.get_mut(id) {
            if let Some(p) = j.pipeline.as_mut() {
                p.played_ms = Some(now);
            }
            j.revision = revision;
            batch.jobs.push(j.clone());
        }
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
        self.commit(batch)?;
        self.jobs
            .known(id)
            .cloned()
            .ok_or_else(|| LiveError::NotFound(format!("jobs/{id}")))
    }

    /// A pipeline's state now (the live table's, else the store's).
    pub fn pipeline_status(&mut self, id: u64) -> Result<PipelineStatus, LiveError> {
        Ok(match self.pipelines.known(id) {
            Some(p) => p.state,
            None => self.stored_pipeline(id)?.state,
        })
    }

    fn stored_pipeline(&mut self, id: u64) -> Result<StoredPipeline, LiveError> {
        if let Some(p) = self.pipelines.known(id) {
            return Ok(p.clone());
        }
        self.store()?
            .get_pipeline(id)?
            .ok_or_else(|| LiveError::NotFound(format!("pipelines/{id}")))
    }

    /// A pipeline, every job with its state, and the projected end of a running one.
    pub fn pipeline(&mut self, id: u64) -> Result<PipelineView, LiveError> {
        let mut view = self.pipeline_unprojected(id)?;
        if view.pipeline.state == PipelineStatus::Running {
            view.predicted_finish_ms =
                self.core
                    .pipeline_eta(PipelineId(id), self.now(), PLAN_LIMIT);
        }
        Ok(view)
    }

    /// A page of pipelines as `ListPipelines` gives them: the running ones' predicted
    /// finishes from one projection of the queue for the whole page (not one each:
    /// a projection walks every waiting job and every running pipeline), their jobs
    /// only `with_jobs` (no store read for the others).
    pub fn pipeline_page(
        &mut self,
        page: Vec<StoredPipeline>,
        with_jobs: bool,
    ) -> Result<Vec<PipelineView>, LiveError> {
        let running = page.iter().any(|p| p.state == PipelineStatus::Running);
        let plan = running.then(|| self.core.project(self.now(), PLAN_LIMIT));
        page.into_iter()
            .map(|p| {
                let finish = match (&plan, p.state) {
                    (Some(plan), PipelineStatus::Running) => plan.pipeline_end(PipelineId(p.id)),
                    _ => p.end_ms,
                };
                let mut view = if with_jobs {
                    self.pipeline_unprojected(p.id)?
                } else {
                    PipelineView {
                        pipeline: p,
                        jobs: Vec::new(),
                        predicted_finish_ms: None,
                        critical_path: None,
                    }
                };
                view.predicted_finish_ms = finish;
                Ok(view)
            })
            .collect()
    }

    /// [`Live::pipeline`] without the projection: a running pipeline's
    /// `predicted_finish_ms` is `None`.
    fn pipeline_unprojected(&mut self, id: u64) -> Result<PipelineView, LiveError> {
        let pipeline = self.stored_pipeline(id)?;
        let ids = id..id + u64::from(pipeline.jobs);
        // The job table's version first: it may not be durable yet (group commit). The
        // store is read only for jobs the table no longer holds (not a just-submitted
        // pipeline's: the submission holds the live state, and a commit the store).
        let jobs: Vec<StoredJob> = match ids.clone().map(|j| self.jobs.known(j).cloned()).collect()
        {
            Some(all) => all,
            None => {
                let mut stored: HashMap<u64, StoredJob> = self
                    .store()?
                    .pipeline_jobs(id)?
                    .into_iter()
                    .map(|j| (j.id, j))
                    .collect();
                ids.filter_map(|j| self.jobs.known(j).cloned().or_else(|| stored.remove(&j)))
                    .collect()
            }
        };
        let running = pipeline.state == PipelineStatus::Running;
        let jobs = jobs
            .into_iter()
            .map(|job| {
                let status = self.job_status(&job, running);
                (job, status)
            })
            .collect();
        // The projection is the caller's (`Live::pipeline`, `Live::submitted_finish`);
        // the critical path is the pipeline's own and cheap.
        let predicted_finish_ms = if running { None } else { pipeline.end_ms };
        let critical_path = if running {
            self.core.critical_path(PipelineId(id), self.now())
        } else {
            None
        };
        Ok(PipelineView {
            pipeline,
            jobs,
            predicted_finish_ms,
            critical_path,
        })
    }

    fn job_status(&self, job: &StoredJob, running: bool) -> PipelineJobStatus {
        match job.state {
            JobState::Succeeded => return PipelineJobStatus::Succeeded,
            JobState::Failed => return PipelineJobStatus::Failed,
            JobState::Cancelled => return PipelineJobStatus::Cancelled,
            JobState::Skipped => return PipelineJobStatus::Skipped,
            JobState::Leased => return PipelineJobStatus::Running,
            JobState::Queued => {}
        }
        if !running {
            return PipelineJobStatus::Waiting;
        }
        match self.core.pipeline_job_state(JobId(job.id)) {
            Some(PipelineJobState::Created) => PipelineJobStatus::Created,
            Some(PipelineJobState::Manual) => PipelineJobStatus::Manual,
            Some(PipelineJobState::Running) => PipelineJobStatus::Running,
            _ => PipelineJobStatus::Waiting,
        }
    }

    /// Why a pipeline job the core holds back waits: its needs have not all ended (each
    /// need with its state and its end, projected by the core if it has not ended), or
    /// it is a manual job. `None` for any other job.
    pub(super) fn explain_held(
        &mut self,
        job: &StoredJob,
        now: Millis,
    ) -> Result<Option<Explanation>, LiveError> {
        let Some(info) = job.pipeline.as_ref() else {
            return Ok(None);
        };
        match self.core.pipeline_job_state(JobId(job.id)) {
            Some(PipelineJobState::Created) => {}
            Some(PipelineJobState::Manual) => return Ok(Some(Explanation::manual(job.clone()))),
            _ => return Ok(None),
        }
        // One projection for the needs' ends (the view's own is not used).
        let view = self.pipeline_unprojected(info.pipeline)?;
        let plan = self.core.project(now, PLAN_LIMIT);
        let needs = view
            .jobs
            .iter()
            .filter(|(j, _)| {
                let name = j.job_name.as_deref().unwrap_or("");
                match (&info.needs, j.pipeline.as_ref()) {
                    (Some(names), _) => names.iter().any(|n| n == name),
                    (None, Some(other)) => other.stage_index < info.stage_index,
                    (None, None) => false,
                }
            })
            .map(|(j, status)| NeedWait {
                name: j.job_name.clone().unwrap_or_default(),
                job: j.id,
                status: *status,
                end_ms: if status.is_ended() {
                    j.end_ms
                } else {
                    plan.get(JobId(j.id)).and_then(|p| p.end_ms)
                },
            })
            .collect();
        Ok(Some(Explanation::waiting_for_needs(
            job.clone(),
            needs,
            plan.start_of(JobId(job.id)),
        )))
    }

    /// Why a cancelled pipeline job was cancelled, if its pipeline was: "superseded by
    /// pipelines/N" or "its pipeline was cancelled".
    pub(super) fn cancel_note(&mut self, job: &StoredJob) -> Result<Option<String>, LiveError> {
        let Some(info) = job
            .pipeline
            .as_ref()
            .filter(|_| job.state == JobState::Cancelled)
        else {
            return Ok(None);
        };
        Ok(match self.stored_pipeline(info.pipeline)?.cancel {
            Some(PipelineCancel::Superseded { by }) => {
                Some(format!("superseded by pipelines/{by}"))
            }
            Some(PipelineCancel::Cancelled) => Some("its pipeline was cancelled".into()),
            None => None,
        })
    }

    /// Pipelines with id > `after_id` matching `filter`, by id, at most `limit`.
    pub fn list_pipelines(
        &mut self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, LiveError> {
        Ok(self.store()?.list_pipelines(filter, after_id, limit)?)
    }

    /// Rebuilds the running pipelines in the core after the runners rejoined (part of
    /// [`Live::reload`]): each job as the store has it (`RestoredJob`), leased jobs back
    /// on their runners. A pipeline the core cannot take back (a job whose labels no
    /// runner has any more) is cancelled, with its unfinished jobs, in `batch`.
    pub(super) fn restore_pipelines(
        &mut self,
        now: Millis,
        out: &mut Vec<rustci_scheduler::Decision>,
        batch: &mut Batch,
    ) -> Result<(), LiveError> {
        self.pipelines.clear();
        // Every pipeline, for the request ids; the running ones are rebuilt.
        let filter = PipelineFilter::default();
        let mut after = 0;
        let mut played = Vec::new();
        loop {
            let page = self.store()?.list_pipelines(&filter, after, 1_000)?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            for p in page {
                self.pipelines.saw(&p);
                if p.state != PipelineStatus::Running {
                    continue;
                }
                let jobs = self.store()?.pipeline_jobs(p.id)?;
                self.pipelines.insert(p.clone());
                if let Err(e) = self.restore_pipeline(now, &p, &jobs, out, batch) {
                    tracing::error!(pipeline = p.id, error = %e, "cannot rebuild the pipeline; cancelling it");
                    self.abandon_pipeline(now, &p, &jobs, batch);
                    continue;
                }
                played.extend(
                    jobs.iter()
                        .filter(|j| j.pipeline.as_ref().is_some_and(|i| i.played_ms.is_some()))
                        .map(|j| JobId(j.id)),
                );
            }
        }
        // Played manual jobs the core made manual again are played again, once every
        // pipeline is back (a play runs a scheduling pass).
        for job in played {
            if self.core.pipeline_job_state(job) == Some(PipelineJobState::Manual) {
                self.core.handle(now, Event::PlayManual { job }, out)?;
            }
        }
        Ok(())
    }

    fn restore_pipeline(
        &mut self,
        now: Millis,
        p: &StoredPipeline,
        jobs: &[StoredJob],
        out: &mut Vec<rustci_scheduler::Decision>,
        batch: &mut Batch,
    ) -> Result<(), LiveError> {
        let mut core_jobs = Vec::with_capacity(jobs.len());
        let mut states = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (Some(info), Some(spec)) = (
                job.pipeline.as_ref(),
                self.names.spec(&mut self.core, &self.config.qos, job)?,
            ) else {
                return Err(LiveError::FailedPrecondition(format!(
                    "job {} of pipelines/{}: no runner has its labels {:?}",
                    job.id, p.id, job.labels
                )));
            };
            core_jobs.push(core_job(job, info, spec));
            states.push(match job.state {
                JobState::Succeeded => RestoredJob::Succeeded,
                JobState::Failed => RestoredJob::Failed,
                JobState::Cancelled => RestoredJob::Cancelled,
                JobState::Skipped => RestoredJob::Skipped,
                JobState::Leased => match job.runner.as_deref().and_then(|r| self.runners.id(r)) {
                    Some(runner) => RestoredJob::Running {
                        runner,
                        start_ms: job.start_ms.unwrap_or(now).min(now),
                    },
                    None => RestoredJob::Open,
                },
                JobState::Queued => RestoredJob::Open,
            });
        }
        let spec = PipelineSpec {
            id: PipelineId(p.id),
            group: p.group,
            auto_cancel: p.auto_cancel,
            jobs: core_jobs,
        };
        self.core.restore_pipeline(
            now,
            &spec,
            p.created_ms.min(now),
            p.cancel.map(cancel_reason),
            &states,
            out,
        )?;
        // Leased jobs back on their runners keep their leases; the others wait again.
        for job in jobs.iter().filter(|j| j.state == JobState::Leased) {
            let running =
                self.core.pipeline_job_state(JobId(job.id)) == Some(PipelineJobState::Running);
            match (running, job.runner.as_deref()) {
                (true, Some(holder)) => {
                    if let Some(j) = self.jobs.get_mut(job.id) {
                        j.lease_expires_ms = Some(now + self.config.lease_ttl_ms);
                    }
                    self.runners
                        .reoffer(holder, job.id, self.commits.next_ticket());
                }
                _ => batch.jobs.extend(self.jobs.requeue(job.id)),
            }
        }
        Ok(())
    }

    /// Ends a pipeline the core could not take back: its unfinished jobs and itself
    /// cancelled.
    fn abandon_pipeline(
        &mut self,
        now: Millis,
        p: &StoredPipeline,
        jobs: &[StoredJob],
        batch: &mut Batch,
    ) {
        for job in jobs.iter().filter(|j| !j.state.is_finished()) {
            let revision = self.jobs.next_revision();
            if let Some(j) = self.jobs.get_mut(job.id) {
                j.state = JobState::Cancelled;
                j.end_ms = Some(now);
                j.lease_expires_ms = None;
                j.revision = revision;
                batch.jobs.push(j.clone());
            }
            self.jobs.finish(job.id);
        }
        self.pipelines.cancelled(p.id, PipelineCancel::Cancelled);
        if let Some(ended) = self.pipelines.ended(p.id, PipelineStatus::Cancelled, now) {
            batch.pipelines.push(ended);
        }
    }
}

/// A stored pipeline job as the core's pipeline job, its spec already resolved.
fn core_job(
    job: &StoredJob,
    info: &PipelineJobInfo,
    spec: rustci_scheduler::JobSpec,
) -> PipelineJob {
    PipelineJob {
        name: job.job_name.clone().unwrap_or_default(),
        stage: info.stage_index,
        needs: info.needs.clone(),
        when: info.when,
        allow_failure: info.allow_failure,
        interruptible: info.interruptible,
        spec,
    }
}

/// The core's refusal of a pipeline as the client's error: a problem of the DAG names
/// the job (`INVALID_ARGUMENT`); a job no runner can run is `FAILED_PRECONDITION`.
fn pipeline_error(e: CoreError) -> LiveError {
    match e {
        CoreError::PipelineJob { job, source, .. } => match *source {
            CoreError::NoEligiblePool { .. } => {
                LiveError::FailedPrecondition(format!("job {job:?}: {source}"))
            }
            other => invalid("jobs", format!("job {job:?}: {other}")),
        },
        CoreError::EmptyPipeline { .. }
        | CoreError::UnnamedJob { .. }
        | CoreError::DuplicateJobName { .. }
        | CoreError::UnknownNeed { .. }
        | CoreError::DuplicateNeed { .. }
        | CoreError::NeedOnLaterStage { .. }
        | CoreError::NeedCycle { .. } => invalid("jobs", e.to_string()),
        other => LiveError::Core(other),
    }
}
