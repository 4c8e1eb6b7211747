//! The live driver of the scheduling core: what `rustci serve` runs behind its RPCs.
//!
//! It owns the core ([`Scheduler`]), the durable [`Store`] and the clock. Every request
//! becomes core events at the clock's `now`; the decisions the core returns become
//! leases. Every change is committed to the store, in one batch per request, before the
//! request is answered; if a commit fails the in-memory state is rebuilt from the store,
//! which stays the truth.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustci_scheduler::{
    AutoscaleConfig, AutoscaleError, Autoscaler, CoreError, Decision, Event, HistoryKeys, JobId,
    JobSpec, JobStatus, LabelSet, Millis, PolicyConfig, PoolId, PoolScaling, PoolSpec,
    PredictiveSettings, QosId, QosSpec, RequestedTime, RunnerId, ScalePolicy, Scheduler,
    SchedulerConfig, TenantId, TenantSpec, WaitReason,
};
use thiserror::Error;
use tokio::sync::{broadcast, watch, Notify};

use crate::store::{Batch, JobFilter, JobState, Store, StoreError, StoredJob, StoredRunner};

/// The driver's clock. Live it is the system clock; tests use a [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> Millis;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

/// A clock that only moves when told to (parity tests replay simulated time with it).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: Millis) -> Self {
        Self(AtomicI64::new(ms))
    }
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Limits on what clients may send; beyond them a request is `INVALID_ARGUMENT`.
pub mod limits {
    pub const ID_LEN: usize = 128;
    pub const LABEL_LEN: usize = 64;
    pub const LABELS: usize = 16;
    pub const SLOTS: u32 = 1024;
    pub const COMMAND_LEN: usize = 64 * 1024;
    pub const TEXT_LEN: usize = 256;
    pub const REQUESTED_MS: i64 = 30 * 24 * 3_600_000;
    pub const PAGE_SIZE: i32 = 1000;
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub policy: PolicyConfig,
    pub qos: Vec<QosSpec>,
    /// A runner silent this long loses its leases; its jobs go back to the queue.
    pub lease_ttl_ms: Millis,
    /// Estimate for jobs without a requested time.
    pub default_estimate_ms: Millis,
    /// Finished jobs this recent are replayed into fair-share usage on restart.
    pub usage_window_ms: Millis,
    /// Keep every core decision (parity tests).
    pub record_decisions: bool,
    /// Group commit: requests leave changes pending for a flusher task
    /// ([`crate::flush`]) and wait until they are durable. Off: each request commits.
    pub group_commit: bool,
    /// Change-log entries kept for `WatchJobs` to resume from (older ones are pruned
    /// by `tick`).
    pub change_log_keep: u64,
    /// Run-time estimates from a trained model (`rustci serve --model DIR`); the
    /// requested time (or `default_estimate_ms`) without one.
    pub model: Option<rustci_models::ModelHandle>,
    /// The policy of `GetScalingAdvice` and the scale hook (`rustci serve --autoscaler`).
    pub autoscaler: ScalePolicy,
    /// Runners of a pool idle this long may be released (reported in the advice's reason).
    pub scale_idle_timeout_ms: Millis,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            policy: PolicyConfig::named("fairshare").unwrap_or_default(),
            qos: vec![
                QosSpec {
                    name: "urgent".into(),
                    priority: 10,
                    wait_target_ms: 60_000,
                },
                QosSpec {
                    name: "standard".into(),
                    priority: 5,
                    wait_target_ms: 300_000,
                },
                QosSpec {
                    name: "batch".into(),
                    priority: 0,
                    wait_target_ms: 1_800_000,
                },
            ],
            lease_ttl_ms: 15_000,
            default_estimate_ms: 600_000,
            usage_window_ms: 28 * 24 * 3_600_000,
            record_decisions: false,
            group_commit: false,
            change_log_keep: 1_000_000,
            model: None,
            autoscaler: ScalePolicy::Reactive,
            scale_idle_timeout_ms: 300_000,
        }
    }
}

#[derive(Debug, Error)]
pub enum LiveError {
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scheduler: {0}")]
    Core(#[from] CoreError),
    #[error("autoscaler: {0}")]
    Autoscale(#[from] AutoscaleError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LiveError {
    LiveError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// What a client submits, checked by [`Live::submit`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    pub request_id: String,
    pub tenant: String,
    pub labels: Vec<String>,
    pub slots: u32,
    pub command: String,
    pub qos: String,
    pub priority: i32,
    pub requested_ms: i64,
    pub project: String,
    pub job_name: String,
    pub branch: String,
}

/// A job handed to a runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub job: StoredJob,
    pub fencing_token: u64,
    pub expires_ms: Millis,
}

/// What a runner reports when a job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub job: u64,
    pub fencing_token: u64,
    pub success: bool,
    pub exit_code: i32,
    /// How long the command ran by the runner's clock, if it said (checked by the
    /// caller: not negative).
    pub reported_run_ms: Option<i64>,
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
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitStats {
    pub queued: u64,
    pub running: u64,
    pub wait_p50_ms: Millis,
    pub wait_p95_ms: Millis,
    pub wait_p99_ms: Millis,
    pub started_last_hour: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// (pool, runners, free slots, stats)
    pub pools: Vec<(String, u32, u64, WaitStats)>,
    pub tenants: Vec<(String, WaitStats)>,
    pub revision: u64,
}

#[derive(Debug)]
struct RunnerEntry {
    stored: StoredRunner,
    id: RunnerId,
    /// Jobs leased to this runner and not yet handed over by `acquire`, with the commit
    /// ticket that makes each lease durable: a lease is handed over only once durable.
    outbox: VecDeque<(u64, u64)>,
    /// Jobs cancelled while leased here, told on the next heartbeat.
    cancelled: Vec<u64>,
    notify: Arc<Notify>,
}

/// The store handle the live state and a group-commit flusher share.
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// How far requests are durable: tickets up to `committed` are, except those in a
/// `failed` range (their commit failed and they were rolled back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durability {
    pub committed: u64,
    /// (after, up to and including) ticket ranges that failed; the latest 16.
    pub failed: Vec<(u64, u64)>,
}

impl Durability {
    /// `Some(true)` durable, `Some(false)` failed, `None` not yet known.
    pub fn outcome(&self, ticket: u64) -> Option<bool> {
        if self
            .failed
            .iter()
            .any(|&(after, upto)| after < ticket && ticket <= upto)
        {
            return Some(false);
        }
        (ticket <= self.committed).then_some(true)
    }
}

/// A job started in the last hour: (start, pool, tenant, wait).
type RecentStart = (Millis, PoolId, TenantId, Millis);

/// At most this many recent starts are kept for the wait percentiles (about 32 MB); at
/// higher start rates the statistics cover the most recent ones within the hour.
const RECENT_STARTS: usize = 1_000_000;

/// The live state. Not thread-safe by itself: the server keeps it behind one mutex.
pub struct Live {
    config: LiveConfig,
    clock: Arc<dyn Clock>,
    store: SharedStore,
    core: Scheduler,
    /// Group commit: changes not yet durable, and the tickets of the requests in them.
    grouped: bool,
    pending: Batch,
    pending_seq: u64,
    committed_seq: u64,
    /// Finished jobs whose finishing change is not durable yet (they left `jobs`).
    finished_pending: HashMap<u64, StoredJob>,
    dirty_runners: Vec<String>,
    durable: watch::Sender<Durability>,
    flush: Arc<Notify>,
    /// Unfinished jobs (queued and leased).
    jobs: HashMap<u64, StoredJob>,
    requests: HashMap<(String, String), u64>,
    /// Hashes of every (tenant, request_id) ever stored, loaded at start.
    seen_requests: std::collections::HashSet<u64>,
    runners: HashMap<String, RunnerEntry>,
    runner_names: HashMap<RunnerId, String>,
    tenants: HashMap<String, TenantId>,
    pools: HashMap<String, PoolId>,
    /// Jobs whose labels no pool has yet: they wait outside the core until one does.
    parked: BTreeSet<u64>,
    next_job_id: u64,
    next_runner_id: u32,
    revision: u64,
    next_token: u64,
    changes: broadcast::Sender<StoredJob>,
    decisions: Vec<Decision>,
    decision_log: Vec<(Millis, Decision)>,
    decisions_total: u64,
    /// Revision at the last change-log pruning.
    pruned_at: u64,
    recent: VecDeque<RecentStart>,
    /// The core's autoscaler over the pools registered so far, with their number when
    /// it was built: pools only appear, and a new one rebuilds it (the predictive
    /// policy's learnt rates start over then).
    scaling: Option<(usize, Autoscaler)>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("jobs", &self.jobs.len())
            .field("runners", &self.runners.len())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Opens the live state on `store`, rebuilding queue, leases, runners and fair-share
    /// usage from it.
    pub fn open(
        config: LiveConfig,
        clock: Arc<dyn Clock>,
        store: Box<dyn Store>,
    ) -> Result<Self, LiveError> {
        let core = Self::new_core(&config)?;
        let grouped = config.group_commit;
        let (changes, _) = broadcast::channel(8192);
        let (durable, _) = watch::channel(Durability::default());
        let mut live = Self {
            config,
            clock,
            store: Arc::new(Mutex::new(store)),
            core,
            grouped,
            pending: Batch::default(),
            pending_seq: 0,
            committed_seq: 0,
            finished_pending: HashMap::new(),
            dirty_runners: Vec::new(),
            durable,
            flush: Arc::new(Notify::new()),
            jobs: HashMap::new(),
            requests: HashMap::new(),
            seen_requests: std::collections::HashSet::new(),
            runners: HashMap::new(),
            runner_names: HashMap::new(),
            tenants: HashMap::new(),
            pools: HashMap::new(),
            parked: BTreeSet::new(),
            next_job_id: 1,
            next_runner_id: 0,
            revision: 0,
            next_token: 0,
            changes,
            decisions: Vec::new(),
            decision_log: Vec::new(),
            decisions_total: 0,
            pruned_at: 0,
            recent: VecDeque::new(),
            scaling: None,
        };
        live.reload()?;
        Ok(live)
    }

    fn new_core(config: &LiveConfig) -> Result<Scheduler, LiveError> {
        let checked = SchedulerConfig {
            policy: config.policy.clone(),
            labels: Vec::new(),
            pools: Vec::new(),
            tenants: Vec::new(),
            qos: config.qos.clone(),
        }
        .check()?;
        let predictor: Box<dyn rustci_scheduler::predictor::Predictor> = match &config.model {
            // The live clock is Unix milliseconds: its epoch is 0.
            Some(model) => Box::new(rustci_models::ModelPredictor::new(model.clone(), Some(0))),
            None => Box::new(RequestedTime {
                default_ms: config.default_estimate_ms,
            }),
        };
        Ok(Scheduler::new(checked, predictor))
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// Every committed job change, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredJob> {
        self.changes.subscribe()
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Decisions the core made since this live state was opened.
    pub fn decisions_total(&self) -> u64 {
        self.decisions_total
    }

    /// The core's decisions so far (with `record_decisions`).
    pub fn decision_log(&self) -> &[(Millis, Decision)] {
        &self.decision_log
    }

    /// The notifier a runner's long poll waits on.
    pub fn runner_notify(&self, runner: &str) -> Option<Arc<Notify>> {
        self.runners.get(runner).map(|r| r.notify.clone())
    }

    /// Rebuilds everything in memory from the store. Used at start and after a failed
    /// commit. Leased jobs keep their leases; their runners get one lease TTL from now to
    /// heartbeat again before their jobs are requeued.
    pub fn reload(&mut self) -> Result<(), LiveError> {
        let now = self.now();
        let snap = self.store()?.load(now - self.config.usage_window_ms)?;
        self.core = Self::new_core(&self.config)?;
        self.jobs.clear();
        self.requests.clear();
        let mut seen = std::collections::HashSet::new();
        self.store()?.for_each_request(&mut |t, r| {
            seen.insert(request_hash(t, r));
        })?;
        self.seen_requests = seen;
        self.runners.clear();
        self.runner_names.clear();
        self.tenants.clear();
        self.pools.clear();
        self.parked.clear();
        // Recent starts name pools and tenants by the ids of the core being replaced.
        self.recent.clear();
        self.next_job_id = snap.max_job_id + 1;
        self.revision = snap.max_revision;
        self.next_token = snap.max_fencing_token;
        let mut out = Vec::new();
        for mut r in snap.runners {
            r.last_heartbeat_ms = now;
            self.join_runner(now, r, &mut out)?;
        }
        for job in &snap.recently_finished {
            if let (Some(s), Some(e)) = (job.start_ms, job.end_ms) {
                let tenant = self.tenant_id(&job.tenant)?;
                self.core
                    .charge_usage(tenant, job.slots, s.min(now), e.min(now));
            }
        }
        // The predictor sees the recent jobs again in time order, each submitted (it
        // estimates it as it did then) and later finished (it learns the run time), so
        // estimates and upper quantiles after a restart are those before it. At one
        // instant other jobs' ends come before submissions, as the models are trained
        // (a job submitted when another finished saw it); a job's own end always comes
        // after its own submission. Only the newest REPLAYED_ESTIMATES are estimated
        // again (each is a model evaluation, and a reload holds the live state): older
        // ones only teach their run times, as before per-key margins existed.
        let mut ran: Vec<(&StoredJob, Millis, Millis)> = snap
            .recently_finished
            .iter()
            .filter(|j| matches!(j.state, JobState::Succeeded | JobState::Failed))
            .filter_map(|j| match (j.start_ms, j.end_ms) {
                (Some(s), Some(e)) if e >= s => Some((j, s, e)),
                _ => None,
            })
            .collect();
        ran.sort_by_key(|&(j, _, e)| (e, j.id));
        let estimated_from = ran.len().saturating_sub(REPLAYED_ESTIMATES);
        // (time, 0 = end / 1 = submit / 2 = end at its own submit instant, job id, index)
        let mut replay: Vec<(Millis, u8, u64, usize)> = Vec::with_capacity(2 * ran.len());
        for (i, &(job, _, e)) in ran.iter().enumerate() {
            let submitted = job.submit_ms.min(e);
            if i >= estimated_from {
                replay.push((submitted, 1, job.id, i));
            }
            replay.push((e, if e == submitted { 2 } else { 0 }, job.id, i));
        }
        replay.sort_unstable();
        for (_, kind, _, i) in replay {
            let (job, s, e) = ran[i];
            let tenant = self.tenant_id(&job.tenant)?;
            let qos = self.qos_index(&job.qos);
            let labels = self.known_labels(&job.labels).unwrap_or_default();
            let spec = core_spec(job, tenant, qos, labels);
            if kind == 1 {
                self.core.learn_submitted(&spec);
            } else {
                self.core
                    .learn_finished(&spec, e - s, e, job.state == JobState::Failed);
            }
        }
        let mut batch = Batch::default();
        for job in snap.unfinished {
            self.requests
                .insert((job.tenant.clone(), job.request_id.clone()), job.id);
            let id = job.id;
            let leased_on = match (job.state, &job.runner) {
                (JobState::Leased, Some(r)) => self.runners.get(r).map(|e| e.id),
                _ => None,
            };
            self.jobs.insert(id, job);
            match leased_on {
                Some(runner) => {
                    let spec = self.spec_of(id)?;
                    let start = self.jobs.get(&id).and_then(|j| j.start_ms).unwrap_or(now);
                    match spec.map(|s| self.core.restore_running(s, runner, start)) {
                        Some(Ok(_)) => {
                            let holder = self.jobs.get_mut(&id).and_then(|j| {
                                j.lease_expires_ms = Some(now + self.config.lease_ttl_ms);
                                j.runner.clone()
                            });
                            // Offer the lease again: the runner may not have taken it
                            // before the restart (runners ignore a lease they already run).
                            if let Some(r) = holder.and_then(|h| self.runners.get_mut(&h)) {
                                r.outbox.push_back((id, self.pending_seq + 1));
                            }
                        }
                        _ => self.requeue_in_memory(id, &mut batch),
                    }
                }
                None => {
                    if self
                        .jobs
                        .get(&id)
                        .is_some_and(|j| j.state == JobState::Leased)
                    {
                        self.requeue_in_memory(id, &mut batch);
                    }
                    self.enqueue(now, id, &mut out)?;
                }
            }
        }
        self.core.handle(now, Event::Tick, &mut out)?;
        self.apply(now, &out, &mut batch);
        self.store()?.commit(&batch)?;
        // Whatever was pending is gone: its requests fail; later ones start afresh. The
        // batch just written is a ticket of its own (leases it re-made are durable).
        let (failed_from, failed_upto) = (self.committed_seq, self.pending_seq);
        self.pending_seq += 1;
        self.pending = Batch::default();
        self.finished_pending.clear();
        self.dirty_runners.clear();
        self.committed_seq = self.pending_seq;
        let upto = self.pending_seq;
        self.durable.send_modify(|d| {
            d.committed = upto;
            if failed_from < failed_upto {
                d.failed.push((failed_from, failed_upto));
                if d.failed.len() > 16 {
                    d.failed.remove(0);
                }
            }
        });
        Ok(())
    }

    fn requeue_in_memory(&mut self, id: u64, batch: &mut Batch) {
        self.revision += 1;
        if let Some(j) = self.jobs.get_mut(&id) {
            j.state = JobState::Queued;
            j.runner = None;
            j.lease_expires_ms = None;
            j.start_ms = None;
            j.revision = self.revision;
            batch.jobs.push(j.clone());
        }
    }

    fn tenant_id(&mut self, name: &str) -> Result<TenantId, LiveError> {
        if let Some(&t) = self.tenants.get(name) {
            return Ok(t);
        }
        let t = self.core.add_tenant(TenantSpec {
            name: name.to_string(),
            weight: 1.0,
        })?;
        self.tenants.insert(name.to_string(), t);
        Ok(t)
    }

    /// The label set of `labels` if every label is known to some pool.
    fn known_labels(&self, labels: &[String]) -> Option<LabelSet> {
        LabelSet::from_names(self.core.config().labels(), labels).ok()
    }

    /// The core's spec of an unfinished job, or `None` if its labels are unknown yet.
    fn spec_of(&mut self, id: u64) -> Result<Option<JobSpec>, LiveError> {
        let Some(job) = self.jobs.get(&id) else {
            return Err(LiveError::NotFound(format!("jobs/{id}")));
        };
        let (tenant, qos, labels) = (job.tenant.clone(), job.qos.clone(), job.labels.clone());
        let Some(labels) = self.known_labels(&labels) else {
            return Ok(None);
        };
        let tenant = self.tenant_id(&tenant)?;
        let qos = self.qos_index(&qos);
        let Some(job) = self.jobs.get(&id) else {
            return Err(LiveError::NotFound(format!("jobs/{id}")));
        };
        Ok(Some(core_spec(job, tenant, qos, labels)))
    }

    /// A QoS class's index; unknown names are the first class (checked at submit).
    fn qos_index(&self, name: &str) -> QosId {
        QosId(
            self.config
                .qos
                .iter()
                .position(|q| q.name == name)
                .unwrap_or(0) as u8,
        )
    }

    /// Hands a queued job to the core, or parks it while no pool can run it.
    fn enqueue(&mut self, now: Millis, id: u64, out: &mut Vec<Decision>) -> Result<(), LiveError> {
        let Some(spec) = self.spec_of(id)? else {
            self.parked.insert(id);
            return Ok(());
        };
        let learn = spec.clone();
        match self.core.handle(now, Event::Submit(spec), out) {
            Ok(()) => {
                if let Some((_, a)) = self.scaling.as_mut() {
                    a.observe_submit(&self.core, &learn, now);
                }
                Ok(())
            }
            Err(CoreError::NoEligiblePool { .. }) => {
                self.parked.insert(id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the core's decisions to the jobs and runners, adding changed jobs to
    /// `batch`.
    fn apply(&mut self, now: Millis, decisions: &[Decision], batch: &mut Batch) {
        self.decisions_total += decisions.len() as u64;
        for &d in decisions {
            if self.config.record_decisions {
                self.decision_log.push((now, d));
            }
            match d {
                Decision::Start { job, runner, .. } => {
                    let Some(name) = self.runner_names.get(&runner).cloned() else {
                        continue;
                    };
                    self.next_token += 1;
                    self.revision += 1;
                    let Some(j) = self.jobs.get_mut(&job.0) else {
                        continue;
                    };
                    j.state = JobState::Leased;
                    j.runner = Some(name.clone());
                    j.fencing_token = self.next_token;
                    j.lease_expires_ms = Some(now + self.config.lease_ttl_ms);
                    j.start_ms = Some(now);
                    j.attempts += 1;
                    j.revision = self.revision;
                    batch.jobs.push(j.clone());
                    let wait = now - j.submit_ms;
                    let tenant = self.tenants.get(&j.tenant).copied();
                    if let Some(r) = self.runners.get_mut(&name) {
                        if let (Some(&pool), Some(tenant)) =
                            (self.pools.get(&r.stored.pool), tenant)
                        {
                            self.recent.push_back((now, pool, tenant, wait));
                        }
                        r.outbox.push_back((job.0, self.pending_seq + 1));
                        self.dirty_runners.push(name.clone());
                        // With group commit the lease is not durable yet: the runner is
                        // woken once it is (`finish_flush`), not now for nothing.
                        if !self.grouped {
                            r.notify.notify_one();
                        }
                    }
                }
                Decision::Requeue { job, .. } => self.requeue_in_memory(job.0, batch),
                // The live service submits no pipelines yet (issue 14 puts them in the
                // core first), so the core returns none of these; one would be a bug,
                // logged rather than applied half-way.
                Decision::Cancel { .. }
                | Decision::Skip { .. }
                | Decision::Manual { .. }
                | Decision::PipelineEnded { .. } => {
                    tracing::error!(decision = ?d, "pipeline decision in a service that submits no pipelines");
                }
            }
        }
        while self.recent.front().is_some_and(|r| r.0 < now - 3_600_000)
            || self.recent.len() > RECENT_STARTS
        {
            self.recent.pop_front();
        }
    }

    fn store(&self) -> Result<MutexGuard<'_, Box<dyn Store>>, LiveError> {
        self.store
            .lock()
            .map_err(|_| LiveError::Store(StoreError::Other("store lock poisoned".into())))
    }

    /// Switches to group commit: requests leave their changes pending and wait for a
    /// flusher ([`Live::take_pending`], [`Live::finish_flush`]) to make them durable.
    pub fn set_group_commit(&mut self, on: bool) {
        self.grouped = on;
    }

    /// The ticket of the latest request: it is durable once [`Durability::committed`]
    /// reaches it.
    pub fn last_ticket(&self) -> u64 {
        self.pending_seq
    }

    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.durable.subscribe()
    }

    /// Notified when there is something to flush.
    pub fn flush_signal(&self) -> Arc<Notify> {
        self.flush.clone()
    }

    pub fn shared_store(&self) -> SharedStore {
        self.store.clone()
    }

    /// Ends a request: commits `batch` now, or (group commit) leaves it pending.
    fn commit(&mut self, batch: Batch) -> Result<(), LiveError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.pending_seq += 1;
        self.pending.jobs.extend(batch.jobs);
        self.pending.runners.extend(batch.runners);
        self.pending.removed_runners.extend(batch.removed_runners);
        if self.grouped {
            self.flush.notify_one();
            return Ok(());
        }
        let (batch, upto) = self.take_pending().unwrap_or_default();
        let result = self.store()?.commit(&batch);
        let failed = result.is_err();
        self.finish_flush(batch, upto, result);
        if failed {
            return Err(LiveError::Store(StoreError::Other(
                "commit failed; state was rebuilt from the store".into(),
            )));
        }
        Ok(())
    }

    /// Group commit, step 1: what to commit next and the ticket it makes durable.
    pub fn take_pending(&mut self) -> Option<(Batch, u64)> {
        if self.pending.is_empty() {
            return None;
        }
        Some((std::mem::take(&mut self.pending), self.pending_seq))
    }

    /// Group commit, step 2: after the flusher committed (or failed to commit) a batch
    /// from [`Live::take_pending`]. On failure memory is rebuilt from the store and every
    /// request not yet durable fails.
    pub fn finish_flush(&mut self, batch: Batch, upto: u64, result: Result<(), StoreError>) {
        if let Err(e) = result {
            tracing::error!(error = %e, "commit failed; rebuilding state from the store");
            if let Err(again) = self.reload() {
                tracing::error!(error = %again, "rebuilding state from the store failed too");
            }
            return;
        }
        self.committed_seq = self.committed_seq.max(upto);
        for job in batch.jobs {
            if job.state.is_finished() {
                self.requests
                    .remove(&(job.tenant.clone(), job.request_id.clone()));
                if self
                    .finished_pending
                    .get(&job.id)
                    .is_some_and(|p| p.revision <= job.revision)
                {
                    self.finished_pending.remove(&job.id);
                }
            }
            let _ = self.changes.send(job);
        }
        // Wake the runners that now have a durable lease to take. A runner whose newest
        // lease is in a later group stays dirty until that group is durable: its long
        // poll would otherwise sleep to its deadline with that lease waiting.
        let committed = self.committed_seq;
        let mut dirty = std::mem::take(&mut self.dirty_runners);
        dirty.sort_unstable();
        dirty.dedup();
        for name in dirty {
            let Some(r) = self.runners.get(&name) else {
                continue;
            };
            if r.outbox.front().is_some_and(|&(_, seq)| seq <= committed) {
                r.notify.notify_one();
            }
            if r.outbox.back().is_some_and(|&(_, seq)| seq > committed) {
                self.dirty_runners.push(name);
            }
        }
        self.durable.send_modify(|d| d.committed = committed);
    }

    /// Submits a job; a repeat of a (tenant, request_id) returns the first job.
    pub fn submit(&mut self, s: Submission) -> Result<StoredJob, LiveError> {
        self.check_submission(&s)?;
        self.submit_checked(s)
    }

    /// Every check `submit` makes on the request itself, without changing anything
    /// (batch submissions check all requests before submitting any).
    pub fn check_submission(&self, s: &Submission) -> Result<(), LiveError> {
        check_id("request_id", &s.request_id)?;
        check_id("tenant", &s.tenant)?;
        check_labels(&s.labels)?;
        let slots = if s.slots == 0 { 1 } else { s.slots };
        if slots > limits::SLOTS {
            return Err(invalid(
                "slots",
                format!("at most {}, got {slots}", limits::SLOTS),
            ));
        }
        if s.command.len() > limits::COMMAND_LEN {
            return Err(invalid(
                "command",
                format!(
                    "at most {} bytes, got {}",
                    limits::COMMAND_LEN,
                    s.command.len()
                ),
            ));
        }
        let qos = if s.qos.is_empty() {
            "standard".to_string()
        } else {
            s.qos.clone()
        };
        if !self.config.qos.iter().any(|q| q.name == qos) {
            let names: Vec<&str> = self.config.qos.iter().map(|q| q.name.as_str()).collect();
            return Err(invalid(
                "qos",
                format!("unknown class {qos:?}; known: {}", names.join(", ")),
            ));
        }
        if !(0..=limits::REQUESTED_MS).contains(&s.requested_ms) {
            return Err(invalid(
                "requested_ms",
                format!(
                    "must be 0..={}, got {}",
                    limits::REQUESTED_MS,
                    s.requested_ms
                ),
            ));
        }
        for (field, v) in [
            ("project", &s.project),
            ("job_name", &s.job_name),
            ("branch", &s.branch),
        ] {
            if v.len() > limits::TEXT_LEN {
                return Err(invalid(
                    field,
                    format!("at most {} bytes", limits::TEXT_LEN),
                ));
            }
        }
        Ok(())
    }

    /// `submit` for a request `check_submission` accepted.
    pub fn submit_checked(&mut self, s: Submission) -> Result<StoredJob, LiveError> {
        let slots = if s.slots == 0 { 1 } else { s.slots };
        let qos = if s.qos.is_empty() {
            "standard".to_string()
        } else {
            s.qos.clone()
        };
        let key = (s.tenant.clone(), s.request_id.clone());
        if let Some(id) = self.requests.get(&key) {
            if let Some(j) = self.jobs.get(id).or_else(|| self.finished_pending.get(id)) {
                return Ok(j.clone());
            }
        }
        // A request never seen needs no store lookup; a hash seen before (a retry of a
        // finished job, or a collision) is looked up.
        let hash = request_hash(&s.tenant, &s.request_id);
        if self.seen_requests.contains(&hash) {
            let filter = JobFilter {
                tenant: Some(s.tenant.clone()),
                request_id: Some(s.request_id.clone()),
                ..JobFilter::default()
            };
            if let Some(existing) = self.store()?.list_jobs(&filter, 0, 1)?.into_iter().next() {
                return Ok(existing);
            }
        }
        self.seen_requests.insert(hash);
        let now = self.now();
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.revision += 1;
        let opt = |v: String| (!v.is_empty()).then_some(v);
        let job = StoredJob {
            id,
            request_id: s.request_id,
            tenant: s.tenant,
            labels: s.labels,
            slots,
            command: s.command,
            qos,
            priority: s.priority,
            requested_ms: (s.requested_ms > 0).then_some(s.requested_ms),
            project: opt(s.project),
            job_name: opt(s.job_name),
            branch: opt(s.branch),
            state: JobState::Queued,
            submit_ms: now,
            start_ms: None,
            end_ms: None,
            runner: None,
            fencing_token: 0,
            lease_expires_ms: None,
            exit_code: None,
            attempts: 0,
            revision: self.revision,
            reported_run_ms: None,
        };
        let mut batch = Batch {
            jobs: vec![job.clone()],
            ..Batch::default()
        };
        self.jobs.insert(id, job);
        self.requests.insert(key, id);
        let mut out = std::mem::take(&mut self.decisions);
        out.clear();
        let queued = self.enqueue(now, id, &mut out);
        self.apply(now, &out, &mut batch);
        self.decisions = out;
        if let Err(e) = queued {
            self.reload()?;
            return Err(e);
        }
        self.commit(batch)?;
        self.job(id)
    }

    /// A job, unfinished (memory) or finished (store).
    pub fn job(&mut self, id: u64) -> Result<StoredJob, LiveError> {
        if let Some(j) = self.jobs.get(&id) {
            return Ok(j.clone());
        }
        if let Some(j) = self.finished_pending.get(&id) {
            return Ok(j.clone());
        }
        self.store()?
            .get_job(id)?
            .ok_or_else(|| LiveError::NotFound(format!("jobs/{id}")))
    }

    pub fn list(
        &mut self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, LiveError> {
        Ok(self.store()?.list_jobs(filter, after_id, limit)?)
    }

    pub fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, LiveError> {
        let mut store = self.store()?;
        // Revision 0 means "from the oldest kept"; a later one must still be in the log.
        if after > 0 {
            if let Some(oldest) = store.oldest_change()? {
                if after + 1 < oldest {
                    return Err(LiveError::FailedPrecondition(format!(
                        "from_revision {after} was pruned from the change log (oldest kept: {oldest}); \
                         resume from {} or re-read the jobs with ListJobs",
                        oldest - 1
                    )));
                }
            }
        }
        Ok(store.changes_since(after, tenant, limit)?)
    }

    /// Cancels a queued or leased job (a leased job's runner is told on its next
    /// heartbeat).
    pub fn cancel(&mut self, id: u64) -> Result<StoredJob, LiveError> {
        let Some(job) = self.jobs.get(&id).cloned() else {
            let j = self.job(id)?;
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{id} already finished ({})",
                j.state.as_str()
            )));
        };
        let now = self.now();
        let mut out = std::mem::take(&mut self.decisions);
        out.clear();
        if self.parked.remove(&id) {
            // Never reached the core.
        } else {
            self.core
                .handle(now, Event::Cancel { job: JobId(id) }, &mut out)?;
        }
        if job.state == JobState::Leased {
            if let Some(r) = job.runner.as_ref().and_then(|r| self.runners.get_mut(r)) {
                r.outbox.retain(|&(j, _)| j != id);
                r.cancelled.push(id);
            }
        }
        self.revision += 1;
        let mut batch = Batch::default();
        if let Some(j) = self.jobs.get_mut(&id) {
            j.state = JobState::Cancelled;
            j.end_ms = Some(now);
            j.lease_expires_ms = None;
            j.revision = self.revision;
            batch.jobs.push(j.clone());
        }
        let done = self.jobs.remove(&id);
        if let Some(d) = &done {
            self.finished_pending.insert(d.id, d.clone());
        }
        self.apply(now, &out, &mut batch);
        self.decisions = out;
        self.commit(batch)?;
        done.ok_or_else(|| LiveError::NotFound(format!("jobs/{id}")))
    }

    /// Registers (or re-registers) a runner. A new pool takes the runner's labels and
    /// slots; a known pool must match them.
    pub fn register_runner(
        &mut self,
        id: &str,
        pool: &str,
        labels: Vec<String>,
        slots: u32,
    ) -> Result<StoredRunner, LiveError> {
        check_id("pool", pool)?;
        if !id.is_empty() {
            check_id("runner_id", id)?;
            if id.contains('/') {
                return Err(invalid("runner_id", "must not contain '/'"));
            }
        }
        check_labels(&labels)?;
        let slots = if slots == 0 { 1 } else { slots };
        if slots > limits::SLOTS {
            return Err(invalid(
                "slots",
                format!("at most {}, got {slots}", limits::SLOTS),
            ));
        }
        let now = self.now();
        let mut sorted = labels.clone();
        sorted.sort();
        sorted.dedup();
        if let Some(existing) = (!id.is_empty()).then(|| self.runners.get_mut(id)).flatten() {
            let mut have = existing.stored.labels.clone();
            have.sort();
            if existing.stored.pool != pool || have != sorted || existing.stored.slots != slots {
                return Err(LiveError::FailedPrecondition(format!(
                    "runners/{id} is registered in pool {} with labels {:?} and {} slots",
                    existing.stored.pool, existing.stored.labels, existing.stored.slots
                )));
            }
            existing.stored.last_heartbeat_ms = now;
            return Ok(existing.stored.clone());
        }
        if let Some(&p) = self.pools.get(pool) {
            let spec = &self.core.config().pools()[p.0 as usize];
            let mut have = self.core.config().label_names(spec.labels);
            have.sort();
            if have != sorted || spec.slots_per_runner != slots {
                return Err(LiveError::FailedPrecondition(format!(
                    "pool {pool} has labels {have:?} and {} slots per runner",
                    spec.slots_per_runner
                )));
            }
        }
        let name = if id.is_empty() {
            loop {
                let candidate = format!("r{}", self.next_runner_id);
                if !self.runners.contains_key(&candidate) {
                    break candidate;
                }
                self.next_runner_id += 1;
            }
        } else {
            id.to_string()
        };
        let stored = StoredRunner {
            id: name,
            pool: pool.to_string(),
            labels: sorted,
            slots,
            draining: false,
            last_heartbeat_ms: now,
        };
        let mut out = Vec::new();
        self.join_runner(now, stored.clone(), &mut out)?;
        let mut batch = Batch {
            runners: vec![stored.clone()],
            ..Batch::default()
        };
        // A new pool may make parked jobs runnable.
        for id in std::mem::take(&mut self.parked) {
            self.enqueue(now, id, &mut out)?;
        }
        self.apply(now, &out, &mut batch);
        self.commit(batch)?;
        Ok(stored)
    }

    fn join_runner(
        &mut self,
        now: Millis,
        stored: StoredRunner,
        out: &mut Vec<Decision>,
    ) -> Result<(), LiveError> {
        let pool = match self.pools.get(&stored.pool) {
            Some(&p) => p,
            None => {
                let mut bits = 0u64;
                for l in &stored.labels {
                    bits |= 1u64 << self.core.add_label(l)?;
                }
                let p = self.core.add_pool(PoolSpec {
                    name: stored.pool.clone(),
                    labels: LabelSet(bits),
                    slots_per_runner: stored.slots,
                    cost_per_hour: 0.0,
                    provisioning_delay_ms: 0,
                })?;
                self.pools.insert(stored.pool.clone(), p);
                p
            }
        };
        let id = RunnerId(self.next_runner_id);
        self.next_runner_id += 1;
        self.core
            .handle(now, Event::RunnerJoined { runner: id, pool }, out)?;
        if stored.draining {
            self.core.handle(
                now,
                Event::RunnerDraining {
                    runner: id,
                    draining: true,
                },
                out,
            )?;
        }
        self.runner_names.insert(id, stored.id.clone());
        self.runners.insert(
            stored.id.clone(),
            RunnerEntry {
                stored,
                id,
                outbox: VecDeque::new(),
                cancelled: Vec::new(),
                notify: Arc::new(Notify::new()),
            },
        );
        Ok(())
    }

    fn runner(&self, name: &str) -> Result<&RunnerEntry, LiveError> {
        self.runners
            .get(name)
            .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))
    }

    /// Keeps a runner and its leases alive. Memory only: after a restart every runner
    /// gets a fresh lease TTL anyway.
    pub fn heartbeat(&mut self, name: &str) -> Result<(Millis, bool, Vec<u64>), LiveError> {
        let now = self.now();
        let expires = now + self.config.lease_ttl_ms;
        let r = self
            .runners
            .get_mut(name)
            .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))?;
        r.stored.last_heartbeat_ms = now;
        // A runner's leases live as long as it heartbeats (`tick` expires silent
        // runners), so the per-job expiry is not rewritten here: that would touch every
        // unfinished job on every heartbeat.
        let cancelled = std::mem::take(&mut r.cancelled);
        Ok((expires, r.stored.draining, cancelled))
    }

    /// Hands over up to `max` leases the scheduler gave this runner. Also a heartbeat.
    pub fn acquire(&mut self, name: &str, max: usize) -> Result<Vec<Lease>, LiveError> {
        self.runner(name)?;
        let now = self.now();
        let expires = now + self.config.lease_ttl_ms;
        let mut leases = Vec::new();
        let Some(r) = self.runners.get_mut(name) else {
            return Ok(leases);
        };
        r.stored.last_heartbeat_ms = now;
        while leases.len() < max {
            // Only leases already durable: a crash must not forget a lease a runner holds.
            if r.outbox
                .front()
                .is_some_and(|&(_, seq)| seq > self.committed_seq)
            {
                break;
            }
            let Some((id, _)) = r.outbox.pop_front() else {
                break;
            };
            let Some(j) = self.jobs.get_mut(&id) else {
                continue;
            };
            if j.state != JobState::Leased || j.runner.as_deref() != Some(name) {
                continue;
            }
            j.lease_expires_ms = Some(expires);
            leases.push(Lease {
                job: j.clone(),
                fencing_token: j.fencing_token,
                expires_ms: expires,
            });
        }
        Ok(leases)
    }

    /// Records a runner's report that a job ended. Refused unless `fencing_token` is the
    /// job's live lease on this runner.
    pub fn complete(&mut self, runner: &str, c: Completion) -> Result<StoredJob, LiveError> {
        // The lease is checked before the runner: a runner that missed its heartbeats is
        // forgotten, and its late completion is a stale lease (FAILED_PRECONDITION), not
        // an unknown runner.
        let Some(job) = self.jobs.get(&c.job) else {
            let j = self.job(c.job)?;
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{} already finished ({}); a late or repeated completion is refused",
                c.job,
                j.state.as_str()
            )));
        };
        if job.state != JobState::Leased
            || job.runner.as_deref() != Some(runner)
            || job.fencing_token != c.fencing_token
        {
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{}: fencing token {} on runners/{runner} is not the live lease (token {}, runner {:?}, state {})",
                c.job,
                c.fencing_token,
                job.fencing_token,
                job.runner,
                job.state.as_str()
            )));
        }
        self.runner(runner)?;
        let now = self.now();
        let mut out = std::mem::take(&mut self.decisions);
        out.clear();
        let end = if c.success {
            Event::Finish { job: JobId(c.job) }
        } else {
            Event::Fail { job: JobId(c.job) }
        };
        self.core.handle(now, end, &mut out)?;
        self.revision += 1;
        let mut batch = Batch::default();
        if let Some(j) = self.jobs.get_mut(&c.job) {
            j.state = if c.success {
                JobState::Succeeded
            } else {
                JobState::Failed
            };
            j.end_ms = Some(now);
            j.exit_code = Some(c.exit_code);
            // A command runs inside its lease: a longer report is a runner's clock
            // running fast, and the lease bounds it.
            let lease_ms = j.start_ms.map_or(0, |s| (now - s).max(0));
            j.reported_run_ms = c.reported_run_ms.map(|r| r.clamp(0, lease_ms));
            j.lease_expires_ms = None;
            j.revision = self.revision;
            batch.jobs.push(j.clone());
        }
        let done = self.jobs.remove(&c.job);
        if let Some(d) = &done {
            self.finished_pending.insert(d.id, d.clone());
        }
        self.apply(now, &out, &mut batch);
        self.decisions = out;
        self.commit(batch)?;
        done.ok_or_else(|| LiveError::NotFound(format!("jobs/{}", c.job)))
    }

    /// Stops giving a runner new work; its running jobs finish.
    pub fn drain(&mut self, name: &str) -> Result<StoredRunner, LiveError> {
        let now = self.now();
        let id = self.runner(name)?.id;
        let mut out = Vec::new();
        self.core.handle(
            now,
            Event::RunnerDraining {
                runner: id,
                draining: true,
            },
            &mut out,
        )?;
        let stored = {
            let r = self
                .runners
                .get_mut(name)
                .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))?;
            r.stored.draining = true;
            r.stored.clone()
        };
        let mut batch = Batch {
            runners: vec![stored.clone()],
            ..Batch::default()
        };
        self.apply(now, &out, &mut batch);
        self.commit(batch)?;
        Ok(stored)
    }

    /// Periodic work: runners silent for the lease TTL are lost; their jobs go back to
    /// the queue (and may start elsewhere at once). Returns the runners lost.
    pub fn tick(&mut self) -> Result<Vec<String>, LiveError> {
        let now = self.now();
        let ttl = self.config.lease_ttl_ms;
        let mut lost: Vec<String> = self
            .runners
            .values()
            .filter(|r| r.stored.last_heartbeat_ms + ttl < now)
            .map(|r| r.stored.id.clone())
            .collect();
        lost.sort();
        let mut out = std::mem::take(&mut self.decisions);
        out.clear();
        let mut batch = Batch::default();
        for name in &lost {
            let Some(entry) = self.runners.remove(name) else {
                continue;
            };
            self.runner_names.remove(&entry.id);
            tracing::warn!(runner = %name, "runner missed its heartbeats; requeueing its jobs");
            let before = out.len();
            self.core
                .handle(now, Event::RunnerLost { runner: entry.id }, &mut out)?;
            let lost_decisions: Vec<Decision> = out.drain(before..).collect();
            self.apply(now, &lost_decisions, &mut batch);
            batch.removed_runners.push(name.clone());
            entry.notify.notify_waiters();
        }
        if lost.is_empty() {
            // QoS aging and fair-share decay change order with time alone.
            self.core.handle(now, Event::Tick, &mut out)?;
            let ticked: Vec<Decision> = std::mem::take(&mut out);
            self.apply(now, &ticked, &mut batch);
        }
        self.decisions = out;
        self.commit(batch)?;
        let keep = self.config.change_log_keep.max(1);
        if self.revision > self.pruned_at + (keep / 10).max(1) {
            let gone = self.store()?.prune_changes(keep)?;
            if gone > 0 {
                tracing::info!(pruned = gone, keep, "pruned the change log");
            }
            self.pruned_at = self.revision;
        }
        Ok(lost)
    }

    pub fn explain(&mut self, id: u64) -> Result<Explanation, LiveError> {
        let job = self.job(id)?;
        let queue_position = self.core.queue_position(JobId(id));
        let now = self.now();
        if job.state.is_finished() {
            return Ok(Explanation {
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
            });
        }
        if self.parked.contains(&id) {
            return Ok(Explanation {
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
            });
        }
        let status = self.core.explain(JobId(id), now)?;
        let name = |r: RunnerId, live: &Self| live.runner_names.get(&r).cloned();
        Ok(match status {
            JobStatus::Running { runner, expected_end_ms, .. } => Explanation {
                reason: "running",
                message: format!("leased to runners/{}; expected to end at {expected_end_ms}", name(runner, self).unwrap_or_default()),
                blocking_job: None,
                runner: name(runner, self),
                at_ms: Some(expected_end_ms),
                queue_position,
                job,
            },
            JobStatus::Pending { reason, .. } => match reason {
                WaitReason::NoCapacity { earliest, .. } => Explanation {
                    reason: "no_capacity",
                    message: match earliest {
                        Some((r, at)) => format!(
                            "every runner that has its labels is busy; runners/{} should have room at {at} by estimates",
                            name(r, self).unwrap_or_default()
                        ),
                        None => "every runner that has its labels is busy".into(),
                    },
                    blocking_job: None,
                    runner: earliest.and_then(|(r, _)| name(r, self)),
                    at_ms: earliest.map(|(_, at)| at),
                    queue_position,
                    job,
                },
                WaitReason::BlockedBehind { job: b } => Explanation {
                    reason: "blocked_behind",
                    message: format!("waits behind jobs/{} (first come, first served)", b.0),
                    blocking_job: Some(b.0),
                    runner: None,
                    at_ms: None,
                    queue_position,
                    job,
                },
                WaitReason::Reserved { runner, at } => Explanation {
                    reason: "reserved",
                    message: format!("next in line: reserved on runners/{} from {at}", name(runner, self).unwrap_or_default()),
                    blocking_job: None,
                    runner: name(runner, self),
                    at_ms: Some(at),
                    queue_position,
                    job,
                },
                WaitReason::WouldDelay { job: b, runner, at } => Explanation {
                    reason: "would_delay",
                    message: format!("starting now would delay jobs/{}, reserved on runners/{} from {at}", b.0, name(runner, self).unwrap_or_default()),
                    blocking_job: Some(b.0),
                    runner: name(runner, self),
                    at_ms: Some(at),
                    queue_position,
                    job,
                },
            },
        })
    }

    pub fn queue_stats(&self) -> QueueStats {
        let mut pools: Vec<(String, PoolId)> =
            self.pools.iter().map(|(n, &p)| (n.clone(), p)).collect();
        pools.sort();
        let mut by_pool: HashMap<String, WaitStats> = HashMap::new();
        let mut by_tenant: HashMap<String, WaitStats> = HashMap::new();
        for j in self.jobs.values() {
            let t = by_tenant.entry(j.tenant.clone()).or_default();
            match j.state {
                JobState::Leased => {
                    t.running += 1;
                    if let Some(r) = j.runner.as_ref().and_then(|r| self.runners.get(r)) {
                        by_pool.entry(r.stored.pool.clone()).or_default().running += 1;
                    }
                }
                _ => {
                    t.queued += 1;
                    let eligible = self
                        .known_labels(&j.labels)
                        .map(|l| self.core.eligible_pools(l, j.slots))
                        .unwrap_or_default();
                    for (name, p) in &pools {
                        if eligible.contains(*p) {
                            by_pool.entry(name.clone()).or_default().queued += 1;
                        }
                    }
                }
            }
        }
        let config = self.core.config();
        let mut pool_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
        let mut tenant_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
        for &(_, pool, tenant, wait) in &self.recent {
            if let Some(p) = config.pools().get(pool.0 as usize) {
                pool_waits.entry(p.name.as_str()).or_default().push(wait);
            }
            if let Some(t) = config.tenants().get(tenant.0 as usize) {
                tenant_waits.entry(t.name.as_str()).or_default().push(wait);
            }
        }
        let fill = |s: &mut WaitStats, waits: Option<&Vec<Millis>>| {
            if let Some(w) = waits {
                let mut w = w.clone();
                w.sort_unstable();
                s.wait_p50_ms = nearest_rank(&w, 50.0);
                s.wait_p95_ms = nearest_rank(&w, 95.0);
                s.wait_p99_ms = nearest_rank(&w, 99.0);
                s.started_last_hour = w.len() as u64;
            }
        };
        let mut out = QueueStats {
            revision: self.revision,
            ..QueueStats::default()
        };
        for (name, p) in &pools {
            let mut s = by_pool.remove(name).unwrap_or_default();
            fill(&mut s, pool_waits.get(name.as_str()));
            let (free, runners) = self.core.pool_capacity(*p);
            out.pools.push((name.clone(), runners, free, s));
        }
        for tenant in tenant_waits.keys() {
            by_tenant.entry((*tenant).to_string()).or_default();
        }
        let mut tenants: Vec<(String, WaitStats)> = by_tenant.into_iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, s) in &mut tenants {
            fill(s, tenant_waits.get(name.as_str()));
        }
        out.tenants = tenants;
        out
    }

    /// (pool, current, desired, reason) per registered pool from the core's autoscaler
    /// ([`LiveConfig::autoscaler`]). The live service has no fleet file: every pool may
    /// grow without bound and shrink to zero, and under the static policy its size is the
    /// runners registered now.
    pub fn scaling_advice(&mut self) -> Result<Vec<(String, u32, u32, String)>, LiveError> {
        let now = self.now();
        let pools = self.core.config().pools().len();
        let policy = self.config.autoscaler;
        // Static keeps no memory and its size follows the registrations: build it anew.
        if policy == ScalePolicy::Static || self.scaling.as_ref().is_none_or(|(n, _)| *n != pools) {
            let config = AutoscaleConfig {
                policy,
                interval_ms: 10_000,
                // The live clock is Unix milliseconds.
                epoch_ms: 0,
                pools: (0..pools)
                    .map(|p| PoolScaling {
                        runners: self.core.pool_capacity(PoolId(p as u16)).1,
                        min_runners: 0,
                        max_runners: u32::MAX,
                        idle_timeout_ms: self.config.scale_idle_timeout_ms,
                        warm_pool: Vec::new(),
                        scale_to_zero: false,
                        spot: None,
                    })
                    .collect(),
                predictive: PredictiveSettings::default(),
            }
            .check(self.core.config())?;
            let half_life_ms = config.predictive().half_life_ms;
            let forecast =
                (policy == ScalePolicy::Predictive).then(|| self.arrival_forecast(half_life_ms));
            let mut autoscaler = Autoscaler::new(config, forecast);
            if policy == ScalePolicy::Predictive {
                self.seed_autoscaler(&mut autoscaler, now)?;
            }
            self.scaling = Some((pools, autoscaler));
        }
        let Some((_, autoscaler)) = self.scaling.as_mut() else {
            return Ok(Vec::new());
        };
        // Runners join by registering: none is known to be on its way.
        let provisioning = vec![0; pools];
        let names = self.core.config().pools();
        Ok(autoscaler
            .evaluate(now, &self.core, &provisioning)
            .into_iter()
            .map(|d| {
                (
                    names[d.pool.0 as usize].name.clone(),
                    d.current,
                    d.desired,
                    d.reason,
                )
            })
            .collect())
    }
}

impl Live {
    /// Predictive scaling's arrival forecast (rustci-models). With `--model DIR`, the
    /// weekly profile of the model version in use covers the first day, blended into
    /// what is learnt online; without one, the online learner alone, as in the simulator.
    /// The live clock is Unix time, so the epoch is 0.
    fn arrival_forecast(&self, half_life_ms: Millis) -> Box<dyn rustci_scheduler::ArrivalForecast> {
        let now = self.now();
        let Some(model) = self.config.model.clone() else {
            return Box::new(rustci_models::arrivals::OnlineArrivals::new(
                0,
                half_life_ms,
                now,
            ));
        };
        // A trained pool key (a job label set) belongs to the first pool that can run
        // its jobs, as an arriving job does.
        let mut keys = vec![Vec::new(); self.core.config().pools().len()];
        if let Some(arrivals) = model.arrivals() {
            for key in arrivals.pools.keys() {
                let labels = rustci_models::arrivals::key_labels(key);
                let Ok(set) = LabelSet::from_names(self.core.config().labels(), labels) else {
                    continue;
                };
                if let Some(pool) = self.core.eligible_pools(set, 1).iter().next() {
                    if let Some(k) = keys.get_mut(pool.0 as usize) {
                        k.push(key.clone());
                    }
                }
            }
        }
        Box::new(rustci_models::arrivals::ProfiledArrivals::new(
            model,
            keys,
            0,
            half_life_ms,
            now,
        ))
    }

    /// Teaches a new predictive autoscaler the jobs submitted in the last
    /// [`SCALING_MEMORY_MS`] (from the store, so a restart or a new pool does not start it
    /// from nothing): arrivals per pool, class mix and runner-time per job (the run time
    /// of a finished job, the estimate of others).
    fn seed_autoscaler(
        &mut self,
        autoscaler: &mut Autoscaler,
        now: Millis,
    ) -> Result<(), LiveError> {
        let since = now - SCALING_MEMORY_MS;
        let snap = self.store()?.load(since)?;
        let mut jobs: Vec<StoredJob> = snap
            .recently_finished
            .into_iter()
            .chain(snap.unfinished)
            .filter(|j| j.submit_ms >= since && j.submit_ms <= now)
            .collect();
        jobs.sort_by_key(|j| (j.submit_ms, j.id));
        for job in &jobs {
            let Some(labels) = self.known_labels(&job.labels) else {
                continue;
            };
            // A finished job's run; a waiting or running one's estimate from the core,
            // as a submission teaches it; else (cancelled before it ran, or parked) its
            // request.
            let run_ms = match (job.start_ms, job.end_ms) {
                (Some(s), Some(e)) if e >= s => e - s,
                _ => match self.core.estimate_of(JobId(job.id)) {
                    Some(estimate) => estimate.point_ms,
                    None => job
                        .requested_ms
                        .filter(|&r| r > 0)
                        .unwrap_or(self.config.default_estimate_ms),
                },
            };
            // The autoscaler reads no tenant.
            let spec = core_spec(job, TenantId(u32::MAX), self.qos_index(&job.qos), labels);
            autoscaler.observe_job(&self.core, &spec, run_ms, job.submit_ms);
        }
        Ok(())
    }
}

/// How far back a new predictive autoscaler learns from stored jobs.
pub const SCALING_MEMORY_MS: Millis = 2 * 24 * 3_600_000;

/// What people are told about a job's run time and start (the `predicted_*` fields of
/// `rustci.v1.Job`). Times are on the live clock, which is Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eta {
    /// The point estimate the scheduler plans with.
    pub run_ms: Millis,
    /// The predictor's upper quantile.
    pub upper_ms: Millis,
    /// Queued: the projected start from the core's plan (when asked for); started: the
    /// real start; `None` when unknown.
    pub start_ms: Option<Millis>,
}

/// At most this many waiting jobs are projected for one answer (GetJob, a ListJobs
/// page): a job further back has no projected start. About 1 µs per job
/// (`Scheduler::project`), so an answer holds the live state's lock for at most ~0.1 s
/// even on a huge queue, and ~10 ms for 10,000 waiting jobs.
pub const PLAN_LIMIT: usize = 100_000;

/// Finished jobs a reload estimates again, newest first (see `Live::reload`).
const REPLAYED_ESTIMATES: usize = 100_000;

/// The core's view of a stored job once its tenant, QoS class and labels are resolved.
fn core_spec(job: &StoredJob, tenant: TenantId, qos: QosId, labels: LabelSet) -> JobSpec {
    JobSpec {
        id: JobId(job.id),
        tenant,
        qos,
        priority: job.priority,
        labels,
        slots: job.slots,
        requested_ms: job.requested_ms,
        submit_ms: job.submit_ms,
        history: HistoryKeys::of(
            job.job_name.as_deref().filter(|n| !n.is_empty()),
            job.branch.as_deref().filter(|b| !b.is_empty()),
        ),
    }
}

impl Live {
    /// The estimate of a job: the core's while it holds the job (queued or running),
    /// else what the predictor gives it now (a finished job, or one parked because no
    /// pool has its labels yet): the store does not keep estimates.
    pub fn estimate(&self, job: &StoredJob) -> rustci_scheduler::Estimate {
        if let Some(e) = self.core.estimate_of(JobId(job.id)) {
            return e;
        }
        let tenant = self
            .tenants
            .get(&job.tenant)
            .copied()
            // A tenant this core never saw: no history, the predictor's default.
            .unwrap_or(TenantId(u32::MAX));
        let labels = self.known_labels(&job.labels).unwrap_or_default();
        self.core
            .preview(&core_spec(job, tenant, self.qos_index(&job.qos), labels))
    }

    /// The estimate and, if it started, the real start: no plan (WatchJobs, submits).
    pub fn eta_started(&self, job: &StoredJob) -> Eta {
        let e = self.estimate(job);
        Eta {
            run_ms: e.point_ms,
            upper_ms: e.upper_ms,
            start_ms: job.start_ms,
        }
    }

    /// Everything, for one job (GetJob): a queued job's start is projected now, up to
    /// that job only (`Scheduler::predicted_start`), within [`PLAN_LIMIT`].
    pub fn eta(&self, job: &StoredJob) -> Eta {
        let mut eta = self.eta_started(job);
        if job.state == JobState::Queued && !self.parked.contains(&job.id) {
            eta.start_ms = self
                .core
                .predicted_start(JobId(job.id), self.now(), PLAN_LIMIT);
        }
        eta
    }

    /// Everything, for many jobs (ListJobs): one plan for all of their queued jobs,
    /// of the first [`PLAN_LIMIT`] waiting jobs.
    pub fn etas(&self, jobs: &[StoredJob]) -> Vec<Eta> {
        let queued = |j: &StoredJob| j.state == JobState::Queued && !self.parked.contains(&j.id);
        let plan = jobs
            .iter()
            .any(queued)
            .then(|| self.core.project(self.now(), PLAN_LIMIT));
        jobs.iter()
            .map(|j| {
                let mut eta = self.eta_started(j);
                if let (true, Some(plan)) = (queued(j), &plan) {
                    eta.start_ms = plan.start_of(JobId(j.id));
                }
                eta
            })
            .collect()
    }
}

fn nearest_rank(sorted: &[Millis], p: f64) -> Millis {
    rustci_scheduler::stats::nearest_rank(sorted, p).unwrap_or(0)
}

/// Labels of a job or a runner: at most `limits::LABELS`, each 1 to
/// `limits::LABEL_LEN` characters without commas or white space.
fn check_labels(labels: &[String]) -> Result<(), LiveError> {
    if labels.len() > limits::LABELS {
        return Err(invalid(
            "labels",
            format!("at most {} labels, got {}", limits::LABELS, labels.len()),
        ));
    }
    if let Some(l) = labels.iter().find(|l| {
        l.is_empty()
            || l.len() > limits::LABEL_LEN
            || l.contains(',')
            || l.chars().any(char::is_whitespace)
    }) {
        return Err(invalid(
            "labels",
            format!(
                "label {l:?} must be 1-{} characters without commas or spaces",
                limits::LABEL_LEN
            ),
        ));
    }
    Ok(())
}

fn request_hash(tenant: &str, request_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tenant, request_id).hash(&mut h);
    h.finish()
}

fn check_id(field: &'static str, v: &str) -> Result<(), LiveError> {
    if v.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if v.len() > limits::ID_LEN {
        return Err(invalid(
            field,
            format!("at most {} bytes, got {}", limits::ID_LEN, v.len()),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}
