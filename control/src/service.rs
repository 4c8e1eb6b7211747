//! The gRPC services of `rustci.v1`: thin layers that authenticate, check fields that
//! are the wire's business (names, page tokens), and call [`Live`].

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{Auth, Principal};
use crate::flush::durable;
use crate::live::{limits, Completion, Eta, Live, LiveError, Submission};
use crate::metrics::Metrics;
use crate::pb;
use crate::status::invalid;
use crate::store::{JobFilter, JobState, StoredJob, StoredRunner};

/// What every service shares.
#[derive(Debug)]
pub struct Shared {
    pub live: Mutex<Live>,
    pub auth: Auth,
    pub metrics: Metrics,
    /// Standby replicas refuse work until they hold the leader lease.
    pub leader: std::sync::atomic::AtomicBool,
    /// Every committed job change `WatchJobs` streams: fed by the local live state
    /// (`coord::forward_changes`) and, with Redis coordination, by the leader's fan-out
    /// (see `crate::coord`), so watchers on a standby see changes too. May repeat or
    /// skip revisions; `WatchJobs` drops repeats and re-reads gaps from the store.
    pub events: tokio::sync::broadcast::Sender<StoredJob>,
    /// With Redis coordination: a read-only handle on the shared store, from which a
    /// standby serves `WatchJobs` history (its own live state is an empty placeholder).
    pub history: Mutex<Option<crate::coord::ReadOnlyStore>>,
    /// Set when the server stops: open `WatchJobs` streams end so shutdown can finish.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(live: Live, auth: Auth) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(live),
            auth,
            metrics: Metrics::default(),
            leader: std::sync::atomic::AtomicBool::new(true),
            events: tokio::sync::broadcast::channel(8192).0,
            history: Mutex::new(None),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// Runs a change on the live state and returns once it is durable (group commit):
    /// a request is acknowledged only after its change is in the store.
    pub async fn change<T>(
        &self,
        f: impl FnOnce(&mut Live) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let (value, ticket, durability) = {
            let mut live = self.live()?;
            let value = f(&mut live)?;
            (value, live.last_ticket(), live.durability())
        };
        durable(ticket, durability).await?;
        Ok(value)
    }

    /// The live state; a poisoned lock (a panic elsewhere) is an internal error, not a
    /// second panic.
    pub fn live(&self) -> Result<MutexGuard<'_, Live>, Status> {
        if !self.leader.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Status::unavailable(
                "this replica is a standby; the leader serves requests",
            ));
        }
        let live = self.live.lock().map_err(|_| {
            Status::internal("scheduler state is unavailable after an internal error")
        })?;
        // Again under the lock: a replica stepping down clears the flag, then waits for
        // the lock; nothing that gets the lock after that may write (fencing).
        if !self.leader.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Status::unavailable(
                "this replica is a standby; the leader serves requests",
            ));
        }
        Ok(live)
    }

    /// Committed job versions after revision `after` (`WatchJobs` history): from the
    /// live state on the leader, from the read-only store handle on a standby.
    pub fn changes_since(
        &self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, Status> {
        let refused = match self.live() {
            Ok(mut live) => return Ok(live.changes_since(after, tenant, limit)?),
            Err(status) => status,
        };
        let mut history = self
            .history
            .lock()
            .map_err(|_| Status::internal("the history store is unavailable"))?;
        match history.as_mut() {
            Some(store) => Ok(store
                .changes_since(after, tenant, limit)
                .map_err(LiveError::from)?),
            None => Err(refused),
        }
    }

    /// `WatchJobs` events for committed job versions, with their estimates (and a
    /// started job's start) from the live state, under one lock for the whole batch.
    /// The live state is only read, so a standby's placeholder serves too (it holds no
    /// job, so its predictor estimates each one afresh).
    fn watch_events(&self, jobs: &[StoredJob]) -> Vec<pb::JobEvent> {
        let etas: Vec<Eta> = match self.live.lock() {
            Ok(live) => jobs.iter().map(|j| live.eta_started(j)).collect(),
            // Events still flow after an internal error; only the estimates are lost.
            Err(_) => vec![Eta::default(); jobs.len()],
        };
        jobs.iter()
            .zip(etas)
            .map(|(j, eta)| pb::JobEvent {
                revision: j.revision,
                job: Some(to_pb_job_eta(j, eta)),
            })
            .collect()
    }
}

fn job_state(s: JobState) -> pb::JobState {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Leased => pb::JobState::Leased,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
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
    }
}

/// A runner's report that a job ended, checked: the runner's name and the completion.
/// `prefix` is prepended to the field names (`completions[3].` in a batch).
fn completion(prefix: &str, r: &pb::CompleteJobRequest) -> Result<(String, Completion), Status> {
    let field = |name: &str| format!("{prefix}{name}");
    let job = parse_job_name(&field("job"), &r.job)?;
    let runner = parse_runner_name(&field("runner"), &r.runner)?;
    if r.fencing_token == 0 {
        return Err(invalid(
            &field("fencing_token"),
            "is required (the token of the lease)",
        ));
    }
    // The runner's own timing (`ended_ms - started_ms`, its clock): both 0 is "not said";
    // otherwise both must be set and in order.
    let reported_run_ms = match (r.started_ms, r.ended_ms) {
        (0, 0) => None,
        (s, _) if s <= 0 => {
            return Err(invalid(
                &field("started_ms"),
                format!("must be a positive Unix time in ms when ended_ms is set, got {s}"),
            ))
        }
        (_, e) if e <= 0 => {
            return Err(invalid(
                &field("ended_ms"),
                format!("must be a positive Unix time in ms when started_ms is set, got {e}"),
            ))
        }
        (s, e) if e < s => {
            return Err(invalid(
                &field("ended_ms"),
                format!("{e} is before started_ms {s}"),
            ))
        }
        (s, e) => Some(e - s),
    };
    Ok((
        runner,
        Completion {
            job,
            fencing_token: r.fencing_token,
            success: r.success,
            exit_code: r.exit_code,
            reported_run_ms,
        },
    ))
}

/// A job with its estimates and start (see `Job.predicted_*` in `jobs.proto` for which
/// answers fill what).
pub fn to_pb_job_eta(j: &StoredJob, eta: Eta) -> pb::Job {
    pb::Job {
        predicted_run_ms: eta.run_ms,
        predicted_run_upper_ms: eta.upper_ms,
        predicted_start_unix_ms: eta.start_ms.unwrap_or(0),
        ..to_pb_job(j)
    }
}

fn to_pb_runner(r: &StoredRunner, heartbeat_interval_ms: i64) -> pb::Runner {
    pb::Runner {
        name: format!("runners/{}", r.id),
        pool: r.pool.clone(),
        labels: r.labels.clone(),
        slots: r.slots,
        draining: r.draining,
        last_heartbeat_ms: r.last_heartbeat_ms,
        heartbeat_interval_ms,
    }
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
fn parse_runner_name(field: &str, name: &str) -> Result<String, Status> {
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

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The tenant a job request acts for: the key's tenant, or in local mode the one named.
fn acting_tenant(p: &Principal, asked: &str, field: &str) -> Result<Option<String>, Status> {
    match p {
        Principal::Tenant(t) if asked.is_empty() || asked == t => Ok(Some(t.clone())),
        Principal::Tenant(t) => Err(Status::permission_denied(format!(
            "{field}: this API key belongs to tenant {t:?}, not {:?}",
            truncate(asked)
        ))),
        Principal::Local => Ok((!asked.is_empty()).then(|| asked.to_string())),
        Principal::Runner => Err(Status::permission_denied(
            "runner tokens cannot use the job API",
        )),
    }
}

fn require_runner(p: &Principal) -> Result<(), Status> {
    match p {
        Principal::Runner | Principal::Local => Ok(()),
        Principal::Tenant(_) => Err(Status::permission_denied(
            "tenant API keys cannot use the runner API",
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

/// At most this many items in one batch call.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub struct JobApi(pub Arc<Shared>);

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
                let eta = live.eta_started(&job);
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
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return Err(invalid(
                "requests",
                format!("1 to {MAX_BATCH} requests, got {}", requests.len()),
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
                for (i, s) in subs.iter().enumerate() {
                    live.check_submission(s).map_err(|e| match e {
                        LiveError::InvalidArgument { .. } => {
                            Status::invalid_argument(format!("requests[{i}].{e}"))
                        }
                        other => Status::from(other),
                    })?;
                }
                let mut jobs = Vec::with_capacity(subs.len());
                for s in subs {
                    let job = live.submit_checked(s)?;
                    let eta = live.eta_started(&job);
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
            let eta = live.eta(&job);
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
        let size = match r.page_size {
            0 => 100,
            n if (1..=limits::PAGE_SIZE).contains(&n) => n,
            n => {
                return Err(invalid(
                    "page_size",
                    format!("must be 0..={}, got {n}", limits::PAGE_SIZE),
                ))
            }
        } as usize;
        let after = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse::<u64>()
                .map_err(|_| invalid("page_token", "not a token this server issued"))?
        };
        let state = match pb::JobState::try_from(r.state) {
            Ok(pb::JobState::Unspecified) => None,
            Ok(pb::JobState::Queued) => Some(JobState::Queued),
            Ok(pb::JobState::Leased) => Some(JobState::Leased),
            Ok(pb::JobState::Succeeded) => Some(JobState::Succeeded),
            Ok(pb::JobState::Failed) => Some(JobState::Failed),
            Ok(pb::JobState::Cancelled) => Some(JobState::Cancelled),
            Err(_) => return Err(invalid("state", format!("unknown job state {}", r.state))),
        };
        let filter = JobFilter {
            tenant,
            state,
            request_id: None,
        };
        let (jobs, etas) = {
            let mut live = self.0.live()?;
            let jobs = live.list(&filter, after, size + 1)?;
            // One plan for the page (see `Live::etas`).
            let etas = live.etas(&jobs[..jobs.len().min(size)]);
            (jobs, etas)
        };
        let more = jobs.len() > size;
        let jobs: Vec<pb::Job> = jobs
            .iter()
            .zip(etas)
            .map(|(j, eta)| to_pb_job_eta(j, eta))
            .collect();
        let next_page_token = if more {
            jobs.last()
                .and_then(|j| j.name.strip_prefix("jobs/"))
                .unwrap_or_default()
                .to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListJobsResponse {
            jobs,
            next_page_token,
        }))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let id = parse_job_name("name", &req.get_ref().name)?;
        let job = self
            .0
            .change(move |live| {
                let job = live.job(id)?;
                check_owner(&who, &job)?;
                let job = live.cancel(id)?;
                Ok(job)
            })
            .await?;
        Ok(Response::new(to_pb_job(&job)))
    }

    type WatchJobsStream = JobEventStream;

    async fn watch_jobs(
        &self,
        req: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let r = req.into_inner();
        let tenant = acting_tenant(&who, &r.tenant, "tenant")?;
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
                    if page.is_empty() {
                        break;
                    }
                    for ev in shared.watch_events(&page) {
                        last = last.max(ev.revision);
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
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
                        out.push(j);
                    }
                    for ev in shared.watch_events(&out) {
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
            state: job_state(e.job.state) as i32,
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
        }))
    }
}

#[derive(Debug, Clone)]
pub struct RunnerApi(pub Arc<Shared>);

#[tonic::async_trait]
impl pb::runner_service_server::RunnerService for RunnerApi {
    async fn register_runner(
        &self,
        req: Request<pb::RegisterRunnerRequest>,
    ) -> Result<Response<pb::Runner>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let r = req.into_inner();
        let (interval, runner) = self
            .0
            .change(move |live| {
                let interval = live.config().lease_ttl_ms / 3;
                let runner = live.register_runner(&r.runner_id, &r.pool, r.labels, r.slots)?;
                Ok((interval, runner))
            })
            .await?;
        tracing::info!(runner = %runner.id, pool = %runner.pool, "runner registered");
        Ok(Response::new(to_pb_runner(&runner, interval)))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let name = parse_runner_name("name", &req.get_ref().name)?;
        let (lease_expires_ms, draining, cancelled) = self.0.live()?.heartbeat(&name)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lease_expires_ms,
            draining,
            cancelled_jobs: cancelled.iter().map(|j| format!("jobs/{j}")).collect(),
        }))
    }

    async fn acquire_jobs(
        &self,
        req: Request<pb::AcquireJobsRequest>,
    ) -> Result<Response<pb::AcquireJobsResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let r = req.into_inner();
        let name = parse_runner_name("name", &r.name)?;
        let max = match r.max_jobs {
            0 => 1,
            n if n <= 1000 => n as usize,
            n => return Err(invalid("max_jobs", format!("at most 1000, got {n}"))),
        };
        if !(0..=60_000).contains(&r.wait_ms) {
            return Err(invalid(
                "wait_ms",
                format!("must be 0..=60000, got {}", r.wait_ms),
            ));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(r.wait_ms as u64);
        loop {
            let (leases, notify) = {
                let mut live = self.0.live()?;
                (live.acquire(&name, max)?, live.runner_notify(&name))
            };
            if !leases.is_empty() || tokio::time::Instant::now() >= deadline {
                self.0.metrics.leased.add(leases.len() as u64);
                let leases = leases
                    .iter()
                    .map(|l| pb::Lease {
                        job: Some(to_pb_job(&l.job)),
                        fencing_token: l.fencing_token,
                        expires_ms: l.expires_ms,
                    })
                    .collect();
                return Ok(Response::new(pb::AcquireJobsResponse { leases }));
            }
            let Some(notify) = notify else {
                return Err(Status::not_found(format!("runners/{name} not found")));
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn complete_job(
        &self,
        req: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let (runner, c) = completion("", &req.into_inner())?;
        let done = self
            .0
            .change(move |live| Ok(live.complete(&runner, c)?))
            .await?;
        self.0.metrics.completed.inc();
        Ok(Response::new(to_pb_job(&done)))
    }

    async fn complete_jobs(
        &self,
        req: Request<pb::CompleteJobsRequest>,
    ) -> Result<Response<pb::CompleteJobsResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let completions = req.into_inner().completions;
        if completions.is_empty() || completions.len() > MAX_BATCH {
            return Err(invalid(
                "completions",
                format!("1 to {MAX_BATCH} completions, got {}", completions.len()),
            ));
        }
        let refused = |s: Status| pb::CompleteResult {
            job: None,
            code: s.code() as i32,
            message: s.message().to_string(),
        };
        // Checked before taking the live state's lock.
        let parsed: Vec<_> = completions
            .iter()
            .enumerate()
            .map(|(i, r)| completion(&format!("completions[{i}]."), r))
            .collect();
        let results = self
            .0
            .change(move |live| {
                let mut results = Vec::with_capacity(parsed.len());
                for p in parsed {
                    let result = match p {
                        Err(s) => refused(s),
                        Ok((runner, c)) => match live.complete(&runner, c) {
                            Ok(done) => pb::CompleteResult {
                                job: Some(to_pb_job(&done)),
                                code: 0,
                                message: String::new(),
                            },
                            Err(e) => refused(Status::from(e)),
                        },
                    };
                    results.push(result);
                }
                Ok(results)
            })
            .await?;
        self.0
            .metrics
            .completed
            .add(results.iter().filter(|r| r.code == 0).count() as u64);
        Ok(Response::new(pb::CompleteJobsResponse { results }))
    }

    async fn drain_runner(
        &self,
        req: Request<pb::DrainRunnerRequest>,
    ) -> Result<Response<pb::Runner>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let name = parse_runner_name("name", &req.get_ref().name)?;
        let (interval, r) = self
            .0
            .change(move |live| {
                let interval = live.config().lease_ttl_ms / 3;
                let r = live.drain(&name)?;
                Ok((interval, r))
            })
            .await?;
        Ok(Response::new(to_pb_runner(&r, interval)))
    }
}

#[derive(Debug, Clone)]
pub struct FleetApi(pub Arc<Shared>);

fn wait_stats(s: &crate::live::WaitStats) -> pb::WaitStats {
    pb::WaitStats {
        queued: s.queued,
        running: s.running,
        wait_p50_ms: s.wait_p50_ms,
        wait_p95_ms: s.wait_p95_ms,
        wait_p99_ms: s.wait_p99_ms,
        started_last_hour: s.started_last_hour,
    }
}

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for FleetApi {
    async fn get_queue_stats(
        &self,
        req: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::QueueStats>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let stats = self.0.live()?.queue_stats();
        let tenants = stats
            .tenants
            .iter()
            .filter(|(t, _)| match &who {
                Principal::Tenant(me) => me == t,
                _ => true,
            })
            .map(|(t, s)| pb::TenantStats {
                tenant: t.clone(),
                stats: Some(wait_stats(s)),
            })
            .collect();
        Ok(Response::new(pb::QueueStats {
            pools: stats
                .pools
                .iter()
                .map(|(p, runners, free, s)| pb::PoolStats {
                    pool: p.clone(),
                    runners: *runners,
                    free_slots: *free,
                    stats: Some(wait_stats(s)),
                })
                .collect(),
            tenants,
            revision: stats.revision,
        }))
    }

    async fn get_scaling_advice(
        &self,
        req: Request<pb::GetScalingAdviceRequest>,
    ) -> Result<Response<pb::ScalingAdvice>, Status> {
        self.0.auth.authenticate(req.metadata())?;
        let advice = self.0.live()?.scaling_advice()?;
        Ok(Response::new(pb::ScalingAdvice {
            pools: advice
                .into_iter()
                .map(|(pool, current, desired, reason)| pb::PoolAdvice {
                    pool,
                    current_runners: current,
                    desired_runners: desired,
                    reason,
                })
                .collect(),
        }))
    }
}
