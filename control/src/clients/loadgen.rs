//! Load generator: full job lifecycles against a server (`SubmitJob` or `SubmitJobs`, a
//! lease through `AcquireJobs`, `CompleteJob` or `CompleteJobs` the moment it is held),
//! measuring lifecycles per second and every job's submit-to-lease latency: from the
//! start of its submit call to a runner holding its lease, which the server hands out
//! only once the job is durable. `rustci bench` drives a running server with it;
//! `benches/lifecycle.rs` an in-process one.
//!
//! With [`LoadConfig::pipeline`] it submits pipelines instead (`SubmitPipeline`, one
//! pipeline per call, stages by GitLab's stage rule) and completes their jobs in
//! `CompleteJobs` calls: a job's submit-to-lease latency then runs from the moment it
//! became ready as the client sees it (see [`PipelineShape`]).
//!
//! Its runners register in a pool of their own with a label of their own (the run id),
//! and its jobs ask for that label. A server may still place other tenants' unlabelled
//! jobs on them: such a lease is left alone (it lapses and the job is requeued, with an
//! attempt more), so point it at a test server, not a production one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;
use tonic::Status;

use crate::clients::client::Clients;
use crate::pb;

/// Leases asked for per `AcquireJobs` call.
const LEASES_PER_CALL: u32 = 256;
/// How long a runner's long poll waits for work.
const POLL_WAIT_MS: i64 = 50;
/// [`LoadConfig::idle_limit`] unless told otherwise.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("registering runner {runner}: {source}")]
    Register {
        runner: String,
        #[source]
        source: Status,
    },
    #[error("no job could be submitted: {0}")]
    Submit(#[source] Status),
}

/// What to run; [`LoadConfig::check`] refuses what cannot work.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Tenants of the jobs, taken in turn; an empty name leaves it to the server (the
    /// API key's tenant, or the default one in local mode).
    pub tenants: Vec<String>,
    pub runners: usize,
    pub slots: u32,
    /// Jobs per `SubmitJobs` call; above 1, the leases of one poll (up to 256) are also
    /// completed in one `CompleteJobs` call. 1 means unary `SubmitJob` and `CompleteJob`
    /// calls.
    pub batch: usize,
    /// Names this run: its runner ids, pool, label and request ids start with it.
    pub run_id: String,
    /// A phase that sees no job complete for this long stops waiting for the rest.
    pub idle_limit: Duration,
    /// Submit pipelines of this shape instead of single jobs.
    pub pipeline: Option<PipelineShape>,
}

/// The pipelines of a pipeline load: `jobs` jobs spread evenly over `stages` stages,
/// without `needs` (a stage waits for every job of the one before). Every job succeeds.
///
/// Submit-to-lease latency of a ready job: a first-stage job from the start of its
/// pipeline's `SubmitPipeline` call; a later-stage job from the start of the
/// `CompleteJobs` call that completed the last job of the stage before (the latest such
/// call to start). A job becomes ready when the server handles that completion, a
/// little after the call starts: the figure is, if anything, a little high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineShape {
    pub jobs: u32,
    pub stages: u32,
}

impl PipelineShape {
    /// The stage of job `index`.
    fn stage_of(self, index: u32) -> u32 {
        (u64::from(index) * u64::from(self.stages) / u64::from(self.jobs.max(1))) as u32
    }
}

impl LoadConfig {
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |field, reason: &str| {
            Err(LoadError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.runners == 0 {
            return bad("runners", "must be at least 1");
        }
        if self.slots == 0 {
            return bad("slots", "must be at least 1");
        }
        if !(1..=crate::server::live::limits::BATCH).contains(&self.batch) {
            return bad("batch", "must be 1 to the server's batch limit (1000)");
        }
        if self.run_id.is_empty()
            || self.run_id.len() > 40
            || !self
                .run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("run_id", "must be 1-40 letters, digits, '-' or '_'");
        }
        if let Some(shape) = self.pipeline {
            let max = crate::server::live::PIPELINE_JOBS as u32;
            if !(1..=max).contains(&shape.jobs) {
                return Err(LoadError::InvalidConfig {
                    field: "pipeline jobs",
                    reason: format!("must be 1 to the server's limit ({max})"),
                });
            }
            if !(1..=shape.jobs).contains(&shape.stages) {
                return bad("stages", "must be 1 to the jobs of a pipeline");
            }
        }
        Ok(())
    }
}

/// When a closed loop stops submitting.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many jobs; the phase ends when they have all completed.
    Jobs(u64),
    /// Lifecycles are counted for `measure` after a `warmup`; jobs still in flight then
    /// are not waited for ([`Load::settle`] before the next phase, else its counts
    /// include them). Latencies, if measured, include the warm-up's.
    For { warmup: Duration, measure: Duration },
}

/// What one phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    /// Jobs whose submission was acknowledged (durable).
    pub jobs: u64,
    /// Jobs leased and completed (in the measured window, for [`Until::For`]).
    pub lifecycles: u64,
    pub seconds: f64,
    pub lifecycles_per_s: f64,
    /// Submit-to-lease latency of the measured jobs, in microseconds.
    pub submit_to_lease_p50_us: u64,
    pub submit_to_lease_p90_us: u64,
    pub submit_to_lease_p95_us: u64,
    pub submit_to_lease_p99_us: u64,
    pub submit_to_lease_p999_us: u64,
    pub submit_to_lease_max_us: u64,
    /// How long a submit call took to be answered (the job durable), in microseconds.
    pub submit_answered_p50_us: u64,
    pub submit_answered_p99_us: u64,
    /// Calls that failed: submits, lease polls, completions and heartbeats.
    pub failed_calls: u64,
    /// Open loop: calls sent more than 5 ms after they were due (the load generator fell
    /// behind; latencies count from each call's start and miss that delay).
    pub late_calls: u64,
    /// Leases of jobs this run did not submit, left to lapse.
    pub foreign_leases: u64,
    /// Pipeline loads: pipelines acknowledged, and the latency of first-stage and
    /// later-stage jobs apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<PipelineReport>,
    /// Every measured job's (submit time since the phase began, submit-to-lease latency).
    #[serde(skip)]
    pub samples: Vec<(Duration, Duration)>,
}

/// Submit-to-lease latency of a pipeline load's jobs by stage, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineReport {
    pub pipelines: u64,
    pub jobs_per_pipeline: u32,
    pub stages: u32,
    pub first_stage_p50_us: u64,
    pub first_stage_p99_us: u64,
    pub later_stages_p50_us: u64,
    pub later_stages_p99_us: u64,
}

/// What a pipeline load's latencies are computed from once the phase ends (a lease may
/// come before its submit call's answer names the pipeline).
#[derive(Debug, Default)]
struct PipelineTimes {
    /// Pipeline id -> when its `SubmitPipeline` call started.
    submitted: HashMap<u64, Instant>,
    /// (pipeline id, stage) -> the latest start of a `CompleteJobs` call completing a
    /// job of the stage.
    stage_done: HashMap<(u64, u32), Instant>,
    /// (pipeline id, stage, when a runner held a job's lease).
    leased: Vec<(u64, u32, Instant)>,
}

/// The pipeline id and job index of a pipeline job's request id
/// (`pipelines/{id}/{index}`, set by the server).
fn pipeline_job(request_id: &str) -> Option<(u64, u32)> {
    let rest = request_id.strip_prefix("pipelines/")?;
    let (id, index) = rest.split_once('/')?;
    Some((id.parse().ok()?, index.parse().ok()?))
}

struct State {
    stop: AtomicBool,
    /// Whether submit calls record their jobs' start times.
    measure: AtomicBool,
    /// Jobs made so far (request ids and tenants follow it).
    made: AtomicU64,
    acknowledged: AtomicU64,
    completed: AtomicU64,
    failed_calls: AtomicU64,
    foreign: AtomicU64,
    first_error: Mutex<Option<Status>>,
    /// Request id -> when its submit call started.
    sent: Mutex<HashMap<String, Instant>>,
    samples: Mutex<Vec<(Instant, Duration)>>,
    answered: Mutex<Vec<Duration>>,
    last_completion: Mutex<Option<Instant>>,
    pipeline: Option<PipelineShape>,
    pipeline_times: Mutex<PipelineTimes>,
    batch: usize,
    idle_limit: Duration,
    tenants: Vec<String>,
    label: String,
    prefix: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn job(&self) -> pb::SubmitJobRequest {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        pb::SubmitJobRequest {
            request_id: format!("{}{n}", self.prefix),
            tenant: self.tenants[(n as usize) % self.tenants.len()].clone(),
            labels: vec![self.label.clone()],
            command: "true".into(),
            requested_ms: 1_000,
            ..Default::default()
        }
    }

    /// The next pipeline: its jobs ask for the run's label, its project is the run id.
    fn pipeline_request(&self, shape: PipelineShape) -> pb::SubmitPipelineRequest {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        pb::SubmitPipelineRequest {
            request_id: format!("{}{n}", self.prefix),
            tenant: self.tenants[(n as usize) % self.tenants.len()].clone(),
            project: self.label.clone(),
            git_ref: "bench".into(),
            auto_cancel: false,
            auto_cancel_mode: pb::AutoCancel::Unspecified as i32,
            jobs: (0..shape.jobs)
                .map(|i| {
                    let stage = shape.stage_of(i);
                    pb::PipelineJobSpec {
                        name: format!("job-{i}"),
                        stage: format!("stage-{stage}"),
                        stage_index: stage,
                        labels: vec![self.label.clone()],
                        command: "true".into(),
                        requested_ms: 1_000,
                        ..Default::default()
                    }
                })
                .collect(),
        }
    }

    /// Jobs per submit call.
    fn per_call(&self) -> u64 {
        match self.pipeline {
            Some(shape) => u64::from(shape.jobs),
            None => self.batch as u64,
        }
    }

    /// One submit call of up to `n` jobs: a pipeline, `SubmitJobs` or `SubmitJob`.
    async fn submit(&self, client: Clients, n: u64) {
        match self.pipeline {
            Some(shape) => submit_pipeline(client, self, shape).await,
            None => {
                let jobs = (0..n).map(|_| self.job()).collect();
                submit(client, self, jobs).await
            }
        }
    }

    fn failed(&self, status: Status) {
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert(status);
    }

    fn completed(&self, n: u64) {
        if n > 0 {
            self.completed.fetch_add(n, Ordering::Relaxed);
            *lock(&self.last_completion) = Some(Instant::now());
        }
    }
}

/// Counters at a phase's start.
struct PhaseStart {
    at: Instant,
    acknowledged: u64,
    completed: u64,
    failed: u64,
    foreign: u64,
}

/// A running load: its runners lease and complete while phases submit.
pub struct Load {
    state: Arc<State>,
    submitters: Vec<Clients>,
    runner_clients: Clients,
    runner_names: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("runners", &self.runner_names)
            .field("batch", &self.state.batch)
            .finish_non_exhaustive()
    }
}

impl Load {
    /// Registers the runners (on the `runners` channels, in turn) and starts them and
    /// their heartbeats; jobs are submitted on the `submitters` channels, in turn.
    pub async fn start(
        config: LoadConfig,
        submitters: Vec<Clients>,
        runners: Vec<Clients>,
    ) -> Result<Self, LoadError> {
        config.check()?;
        let Some(first_runner_channel) = runners.first().cloned() else {
            return Err(LoadError::InvalidConfig {
                field: "runners",
                reason: "no channel to register runners on".into(),
            });
        };
        if submitters.is_empty() {
            return Err(LoadError::InvalidConfig {
                field: "submitters",
                reason: "no channel to submit on".into(),
            });
        }
        let mut tenants = config.tenants.clone();
        if tenants.is_empty() {
            tenants.push(String::new());
        }
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            measure: AtomicBool::new(false),
            made: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            first_error: Mutex::new(None),
            sent: Mutex::new(HashMap::new()),
            samples: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
            last_completion: Mutex::new(None),
            pipeline: config.pipeline,
            pipeline_times: Mutex::new(PipelineTimes::default()),
            batch: config.batch,
            idle_limit: config.idle_limit,
            tenants,
            label: config.run_id.clone(),
            prefix: format!("{}-", config.run_id),
        });
        let mut names = Vec::new();
        let mut tasks = Vec::new();
        let mut heartbeat_ms: i64 = 1_000;
        for i in 0..config.runners {
            let mut c = runners[i % runners.len()].clone();
            let id = format!("{}-{i}", config.run_id);
            let r = match c
                .runners
                .register_runner(pb::RegisterRunnerRequest {
                    runner_id: id.clone(),
                    pool: config.run_id.clone(),
                    labels: vec![config.run_id.clone()],
                    slots: config.slots,
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(source) => {
                    for t in tasks {
                        JoinHandle::abort(&t);
                    }
                    return Err(LoadError::Register { runner: id, source });
                }
            };
            if r.heartbeat_interval_ms > 0 {
                heartbeat_ms = heartbeat_ms.min(r.heartbeat_interval_ms);
            }
            tasks.push(tokio::spawn(run_runner(c, r.name.clone(), state.clone())));
            names.push(r.name);
        }
        tasks.push(tokio::spawn(heartbeats(
            first_runner_channel.clone(),
            names.clone(),
            Duration::from_millis(heartbeat_ms.max(10) as u64),
            state.clone(),
        )));
        Ok(Self {
            state,
            submitters,
            runner_clients: first_runner_channel,
            runner_names: names,
            tasks,
        })
    }

    /// `concurrency` submitters, each making its next call as soon as its last was
    /// answered; submit-to-lease latencies are recorded if `measure`.
    pub async fn closed_loop(
        &self,
        concurrency: usize,
        until: Until,
        measure: bool,
    ) -> PhaseReport {
        let start = self.begin(measure);
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let limit = match until {
            Until::Jobs(n) => Some(n),
            Until::For { .. } => None,
        };
        let batch = self.state.per_call();
        let mut tasks = Vec::new();
        for s in 0..concurrency.max(1) {
            let client = self.submitters[s % self.submitters.len()].clone();
            let (state, stop, issued) = (self.state.clone(), stop.clone(), issued.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let first = issued.fetch_add(batch, Ordering::Relaxed);
                    let n = match limit {
                        Some(limit) if first >= limit => break,
                        Some(limit) => batch.min(limit - first),
                        None => batch,
                    };
                    state.submit(client.clone(), n).await;
                }
            }));
        }
        let report = match until {
            Until::For { warmup, measure } => {
                tokio::time::sleep(warmup).await;
                let c0 = self.state.completed.load(Ordering::Relaxed);
                let t0 = Instant::now();
                tokio::time::sleep(measure).await;
                let done = self.state.completed.load(Ordering::Relaxed) - c0;
                let seconds = t0.elapsed().as_secs_f64();
                stop.store(true, Ordering::Relaxed);
                for t in tasks {
                    let _ = t.await;
                }
                let mut r = self.finish(&start, seconds);
                r.lifecycles = done;
                r.lifecycles_per_s = done as f64 / seconds.max(1e-9);
                r
            }
            Until::Jobs(_) => {
                for t in tasks {
                    let _ = t.await;
                }
                let seconds = self.wait_for_completions(&start).await;
                self.finish(&start, seconds)
            }
        };
        self.state.measure.store(false, Ordering::Relaxed);
        report
    }

    /// Submits `jobs` jobs at `rate` per second (one call per batch, on time whether or
    /// not earlier calls were answered), records their latencies and waits until they
    /// have completed.
    pub async fn open_loop(&self, rate: f64, jobs: u64) -> PhaseReport {
        let start = self.begin(true);
        let batch = self.state.per_call();
        let interval = Duration::from_secs_f64(batch as f64 / rate.max(1e-3));
        let late = open_loop(start.at, interval, jobs.div_ceil(batch), |call| {
            let client = self.submitters[(call as usize) % self.submitters.len()].clone();
            let state = self.state.clone();
            let n = batch.min(jobs - call * batch);
            async move { state.submit(client, n).await }
        })
        .await;
        let seconds = self.wait_for_completions(&start).await;
        let mut r = self.finish(&start, seconds);
        r.late_calls = late;
        self.state.measure.store(false, Ordering::Relaxed);
        r
    }

    /// Waits until no job has completed for `quiet` (at most `limit`): the backlog of a
    /// closed loop that stopped counting has drained.
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let before = self.state.completed.load(Ordering::Relaxed);
            tokio::time::sleep(quiet).await;
            if self.state.completed.load(Ordering::Relaxed) == before || Instant::now() > deadline {
                return;
            }
        }
    }

    /// A handle that reads how many jobs this load has completed so far (for progress
    /// displays while a phase runs).
    pub fn completed_counter(&self) -> CompletedCounter {
        CompletedCounter(self.state.clone())
    }

    /// The first error a call of this load got, if any.
    pub fn first_error(&self) -> Option<Status> {
        lock(&self.state.first_error).clone()
    }

    /// Cancels this run's jobs that are still queued or leased (a phase that stopped
    /// waiting for them leaves them behind, and once the runners are drained nothing
    /// else would run them); returns how many were cancelled.
    pub async fn cancel_unfinished(&self) -> Result<u64, Status> {
        let mut client = self.submitters[0].clone();
        let mut tenants = self.state.tenants.clone();
        tenants.sort();
        tenants.dedup();
        let mut cancelled = 0;
        if self.state.pipeline.is_some() {
            for tenant in tenants {
                cancelled += self.cancel_pipelines(&mut client, &tenant).await?;
            }
            return Ok(cancelled);
        }
        for tenant in tenants {
            for state in [pb::JobState::Queued, pb::JobState::Leased] {
                let (jobs, _) =
                    crate::clients::client::list_jobs(&mut client, &tenant, state, 0).await?;
                for job in jobs {
                    if job.request_id.starts_with(&self.state.prefix) {
                        client
                            .jobs
                            .cancel_job(pb::CancelJobRequest { name: job.name })
                            .await?;
                        cancelled += 1;
                    }
                }
            }
        }
        Ok(cancelled)
    }

    /// Cancels this run's running pipelines of `tenant`; returns their jobs that had not
    /// ended.
    async fn cancel_pipelines(&self, client: &mut Clients, tenant: &str) -> Result<u64, Status> {
        let mut cancelled = 0;
        let mut page_token = String::new();
        loop {
            let page = client
                .pipelines
                .list_pipelines(pb::ListPipelinesRequest {
                    tenant: tenant.to_string(),
                    state: pb::PipelineState::Running as i32,
                    project: self.state.label.clone(),
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            for p in page.pipelines {
                let before = client
                    .pipelines
                    .cancel_pipeline(pb::CancelPipelineRequest { name: p.name })
                    .await?
                    .into_inner();
                cancelled += before
                    .jobs
                    .iter()
                    .filter(|j| j.state == pb::PipelineJobState::Cancelled as i32)
                    .count() as u64;
            }
            if page.next_page_token.is_empty() {
                return Ok(cancelled);
            }
            page_token = page.next_page_token;
        }
    }

    /// Stops the runners and drains them on the server (which drops them once their
    /// heartbeats stop).
    pub async fn stop(self) {
        self.state.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        let mut c = self.runner_clients;
        for name in self.runner_names {
            let _ = c
                .runners
                .drain_runner(pb::DrainRunnerRequest { name })
                .await;
        }
    }

    fn begin(&self, measure: bool) -> PhaseStart {
        lock(&self.state.sent).clear();
        lock(&self.state.samples).clear();
        lock(&self.state.answered).clear();
        *lock(&self.state.pipeline_times) = PipelineTimes::default();
        self.state.measure.store(measure, Ordering::Relaxed);
        PhaseStart {
            at: Instant::now(),
            acknowledged: self.state.acknowledged.load(Ordering::Relaxed),
            completed: self.state.completed.load(Ordering::Relaxed),
            failed: self.state.failed_calls.load(Ordering::Relaxed),
            foreign: self.state.foreign.load(Ordering::Relaxed),
        }
    }

    /// Waits until every job acknowledged since `start` has completed (or none has for
    /// [`LoadConfig::idle_limit`]); returns the seconds from `start` to the last
    /// completion.
    async fn wait_for_completions(&self, start: &PhaseStart) -> f64 {
        let mut seen = self.state.completed.load(Ordering::Relaxed);
        let mut progress_at = Instant::now();
        loop {
            let acked = self.state.acknowledged.load(Ordering::Relaxed) - start.acknowledged;
            let done = self.state.completed.load(Ordering::Relaxed);
            if done - start.completed >= acked {
                break;
            }
            if done != seen {
                (seen, progress_at) = (done, Instant::now());
            } else if progress_at.elapsed() > self.state.idle_limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let last = lock(&self.state.last_completion).unwrap_or(start.at);
        last.saturating_duration_since(start.at).as_secs_f64()
    }

    fn finish(&self, start: &PhaseStart, seconds: f64) -> PhaseReport {
        let st = &self.state;
        let lifecycles = st.completed.load(Ordering::Relaxed) - start.completed;
        let pipelines = st.pipeline.map(|shape| self.pipeline_samples(shape));
        let mut samples: Vec<(Duration, Duration)> = lock(&st.samples)
            .iter()
            .map(|&(t, d)| (t.saturating_duration_since(start.at), d))
            .collect();
        samples.sort_by_key(|&(t, _)| t);
        let mut lat: Vec<Duration> = samples.iter().map(|&(_, d)| d).collect();
        lat.sort();
        let mut answered = lock(&st.answered).clone();
        answered.sort();
        let us = |v: &[Duration], p: f64| percentile(v, p).as_micros() as u64;
        PhaseReport {
            jobs: st.acknowledged.load(Ordering::Relaxed) - start.acknowledged,
            lifecycles,
            seconds,
            lifecycles_per_s: lifecycles as f64 / seconds.max(1e-9),
            submit_to_lease_p50_us: us(&lat, 50.0),
            submit_to_lease_p90_us: us(&lat, 90.0),
            submit_to_lease_p95_us: us(&lat, 95.0),
            submit_to_lease_p99_us: us(&lat, 99.0),
            submit_to_lease_p999_us: us(&lat, 99.9),
            submit_to_lease_max_us: us(&lat, 100.0),
            submit_answered_p50_us: us(&answered, 50.0),
            submit_answered_p99_us: us(&answered, 99.0),
            failed_calls: st.failed_calls.load(Ordering::Relaxed) - start.failed,
            foreign_leases: st.foreign.load(Ordering::Relaxed) - start.foreign,
            late_calls: 0,
            pipelines,
            samples,
        }
    }

    /// A pipeline load's latencies, into `samples` (all jobs) and by stage.
    fn pipeline_samples(&self, shape: PipelineShape) -> PipelineReport {
        let times = lock(&self.state.pipeline_times);
        let mut samples = lock(&self.state.samples);
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for &(pipeline, stage, at) in &times.leased {
            let ready = if stage == 0 {
                times.submitted.get(&pipeline)
            } else {
                times.stage_done.get(&(pipeline, stage - 1))
            };
            // None: submitted or made ready before the phase measured.
            let Some(&ready) = ready else { continue };
            let d = at.saturating_duration_since(ready);
            samples.push((ready, d));
            if stage == 0 { &mut first } else { &mut later }.push(d);
        }
        first.sort();
        later.sort();
        let us = |v: &[Duration], p: f64| percentile(v, p).as_micros() as u64;
        PipelineReport {
            pipelines: times.submitted.len() as u64,
            jobs_per_pipeline: shape.jobs,
            stages: shape.stages,
            first_stage_p50_us: us(&first, 50.0),
            first_stage_p99_us: us(&first, 99.0),
            later_stages_p50_us: us(&later, 50.0),
            later_stages_p99_us: us(&later, 99.0),
        }
    }
}

/// Jobs a [`Load`] has completed so far.
#[derive(Clone)]
pub struct CompletedCounter(Arc<State>);

impl std::fmt::Debug for CompletedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CompletedCounter")
            .field(&self.get())
            .finish()
    }
}

impl CompletedCounter {
    pub fn get(&self) -> u64 {
        self.0.completed.load(Ordering::Relaxed)
    }
}

/// The `p`th percentile (nearest rank, [`rustci_scheduler::stats::nearest_rank`]) of an
/// ascending slice; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    rustci_scheduler::stats::nearest_rank(sorted, p).unwrap_or_default()
}

/// A call of an open loop sent later than this after it was due counts as late.
const LATE: Duration = Duration::from_millis(5);

/// Open loop: the `n`th of `calls` calls is spawned at `start_at + n * interval` whether
/// or not earlier calls were answered; finished calls are reaped without waiting, so a
/// slow server never slows the schedule. Returns when all were answered, with how many
/// went out more than [`LATE`] after they were due: the load generator itself fell
/// behind, and latencies (counted from each call's start, since tokio's timer is only
/// millisecond-precise) miss that delay.
pub async fn open_loop<F, Fut>(
    start_at: Instant,
    interval: Duration,
    calls: u64,
    mut call: F,
) -> u64
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut inflight = tokio::task::JoinSet::new();
    let mut late = 0;
    for n in 0..calls {
        let due = start_at + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        if due.elapsed() > LATE {
            late += 1;
        }
        inflight.spawn(call(n));
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    late
}

/// One submit call (`SubmitJobs` for more than one job).
async fn submit(mut client: Clients, state: &State, jobs: Vec<pb::SubmitJobRequest>) {
    if jobs.is_empty() {
        return;
    }
    let t = Instant::now();
    if state.measure.load(Ordering::Relaxed) {
        let mut sent = lock(&state.sent);
        for j in &jobs {
            sent.insert(j.request_id.clone(), t);
        }
    }
    let n = jobs.len() as u64;
    let result = if jobs.len() > 1 || state.batch > 1 {
        client
            .jobs
            .submit_jobs(pb::SubmitJobsRequest { requests: jobs })
            .await
            .map(|_| ())
    } else {
        let job = jobs.into_iter().next().unwrap_or_default();
        client.jobs.submit_job(job).await.map(|_| ())
    };
    match result {
        Ok(()) => {
            state.acknowledged.fetch_add(n, Ordering::Relaxed);
            if state.measure.load(Ordering::Relaxed) {
                lock(&state.answered).push(t.elapsed());
            }
        }
        Err(e) => state.failed(e),
    }
}

/// One `SubmitPipeline` call; the pipeline's id and the call's start are kept for the
/// latencies.
async fn submit_pipeline(mut client: Clients, state: &State, shape: PipelineShape) {
    let request = state.pipeline_request(shape);
    let n = request.jobs.len() as u64;
    let t = Instant::now();
    match client.pipelines.submit_pipeline(request).await {
        Ok(r) => {
            state.acknowledged.fetch_add(n, Ordering::Relaxed);
            if state.measure.load(Ordering::Relaxed) {
                lock(&state.answered).push(t.elapsed());
                let name = r.into_inner().name;
                if let Some(id) = name
                    .strip_prefix("pipelines/")
                    .and_then(|id| id.parse().ok())
                {
                    lock(&state.pipeline_times).submitted.insert(id, t);
                }
            }
        }
        Err(e) => state.failed(e),
    }
}

/// A runner: long-polls for leases and completes each at once, as a runner with free
/// slots would, concurrently with its next poll.
async fn run_runner(mut client: Clients, name: String, state: Arc<State>) {
    while !state.stop.load(Ordering::Relaxed) {
        let got = match client
            .runners
            .acquire_jobs(pb::AcquireJobsRequest {
                name: name.clone(),
                max_jobs: LEASES_PER_CALL,
                wait_ms: POLL_WAIT_MS,
            })
            .await
        {
            Ok(r) => r.into_inner().leases,
            Err(e) => {
                state.failed(e);
                tokio::time::sleep(Duration::from_millis(POLL_WAIT_MS as u64)).await;
                continue;
            }
        };
        let now = Instant::now();
        let mut completions = Vec::with_capacity(got.len());
        // Pipeline loads: (pipeline, stage) of each completion.
        let mut stages = Vec::new();
        {
            // Only the locks this load's kind uses.
            let mut times = state
                .pipeline
                .is_some()
                .then(|| lock(&state.pipeline_times));
            let mut single = state
                .pipeline
                .is_none()
                .then(|| (lock(&state.sent), lock(&state.samples)));
            let measure = state.measure.load(Ordering::Relaxed);
            for l in got {
                let Some(job) = l.job else { continue };
                if let Some(shape) = state.pipeline {
                    let Some((pipeline, index)) =
                        pipeline_job(&job.request_id).filter(|_| job.project == state.label)
                    else {
                        state.foreign.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let stage = shape.stage_of(index);
                    if let Some(times) = times.as_mut().filter(|_| measure) {
                        times.leased.push((pipeline, stage, now));
                    }
                    stages.push((pipeline, stage));
                } else if !job.request_id.starts_with(&state.prefix) {
                    state.foreign.fetch_add(1, Ordering::Relaxed);
                    continue;
                } else if let Some((sent, samples)) = single.as_mut() {
                    if let Some(t) = sent.remove(&job.request_id) {
                        samples.push((t, now - t));
                    }
                }
                completions.push(pb::CompleteJobRequest {
                    job: job.name,
                    runner: name.clone(),
                    fencing_token: l.fencing_token,
                    success: true,
                    ..Default::default()
                });
            }
        }
        if completions.is_empty() {
            continue;
        }
        if state.batch > 1 || state.pipeline.is_some() {
            let (mut c, state) = (client.clone(), state.clone());
            tokio::spawn(async move {
                if !stages.is_empty() && state.measure.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let mut times = lock(&state.pipeline_times);
                    for key in stages {
                        let at = times.stage_done.entry(key).or_insert(t);
                        *at = (*at).max(t);
                    }
                }
                match c
                    .runners
                    .complete_jobs(pb::CompleteJobsRequest { completions })
                    .await
                {
                    Ok(r) => {
                        let results = r.into_inner().results;
                        let ok = results.iter().filter(|r| r.code == 0).count() as u64;
                        state.completed(ok);
                        if let Some(bad) = results.iter().find(|r| r.code != 0) {
                            state.failed(Status::new(bad.code.into(), bad.message.clone()));
                        }
                    }
                    Err(e) => state.failed(e),
                }
            });
        } else {
            for done in completions {
                let (mut c, state) = (client.clone(), state.clone());
                tokio::spawn(async move {
                    match c.runners.complete_job(done).await {
                        Ok(_) => state.completed(1),
                        Err(e) => state.failed(e),
                    }
                });
            }
        }
    }
}

async fn heartbeats(mut client: Clients, names: Vec<String>, every: Duration, state: Arc<State>) {
    let mut tick = tokio::time::interval(every);
    while !state.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for name in &names {
            if let Err(e) = client
                .runners
                .heartbeat(pb::HeartbeatRequest { name: name.clone() })
                .await
            {
                state.failed(e);
            }
        }
    }
}
