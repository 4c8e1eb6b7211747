//! The live driver of the scheduling core: what `rustci serve` runs behind its RPCs.
//!
//! [`Live`] owns the core ([`Scheduler`]), the durable store and the clock. Every
//! request becomes core events at the clock's `now` (this file: submit, cancel,
//! register, heartbeat, acquire, complete, drain, tick, reload); the decisions the core
//! returns become leases. Every change is committed to the store, in one batch per
//! request, before the request is answered; if a commit fails the in-memory state is
//! rebuilt from the store, which stays the truth.
//!
//! The parts `Live` owns, one job each: `commit.rs` (group commit: the pending batch,
//! tickets, durability), `jobs.rs` (the job table: unfinished jobs, parked jobs,
//! idempotency keys, revisions), `runners.rs` (runners, the leases waiting for them,
//! fencing tokens), `names.rs` (tenant and pool names to the core's ids),
//! `decisions.rs` (the decision log), `stats.rs` (queue statistics), `scaling.rs` (the
//! autoscaler), `pipelines.rs` (pipelines: submit, cancel, read, rebuild; the running
//! pipelines' records). What people read: `eta.rs`, `explain.rs`. What requests carry:
//! `submission.rs` (a submission checked once, its defaults worked out), `limits.rs`.

mod clock;
mod commit;
mod config;
mod decisions;
mod error;
mod eta;
mod explain;
mod jobs;
pub mod limits;
mod names;
mod pipelines;
mod runners;
mod scaling;
mod stats;
mod submission;

use std::sync::{Arc, Mutex, MutexGuard};

use rustci_scheduler::{
    CoreError, Decision, Event, JobId, JobSpec, Millis, RequestedTime, RunnerId, Scheduler,
    SchedulerConfig,
};
use tokio::sync::{broadcast, watch, Notify};

pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{Durability, SharedStore};
pub use config::{LiveConfig, DEFAULT_CHANGE_LOG_KEEP};
pub use error::LiveError;
pub use eta::{Eta, Etas, QueuePage, QueueRow, PLAN_LIMIT};
pub use explain::{Explanation, NeedWait};
pub use pipelines::{
    PipelineJobStatus, PipelineJobSubmission, PipelineSubmission, PipelineView, PIPELINE_JOBS,
};
pub use runners::{Completion, Lease};
pub use scaling::SCALING_MEMORY_MS;
pub use stats::{ClassStats, PoolStats, QueueStats, WaitStats};
pub use submission::{CheckedSubmission, Submission, DEFAULT_QOS};

use commit::{lock_store, Commits};
use decisions::Decisions;
use error::invalid;
use jobs::{request_hash, JobTable};
use limits::{check_id, check_labels, check_slots};
use names::{core_spec, known_labels, qos_index, Names};
use pipelines::{pipeline_cancel, pipeline_status, PipelineTable};
use runners::Runners;
use scaling::Scaling;
use stats::RecentStarts;

use crate::store::{Batch, JobFilter, JobState, Store, StoreError, StoredJob, StoredRunner};

/// Finished jobs a reload estimates again, newest first (see [`Live::reload`]).
const REPLAYED_ESTIMATES: usize = 100_000;

/// The live state. Not thread-safe by itself: the server keeps it behind one mutex.
pub struct Live {
    config: LiveConfig,
    clock: Arc<dyn Clock>,
    store: SharedStore,
    core: Scheduler,
    commits: Commits,
    jobs: JobTable,
    runners: Runners,
    names: Names,
    pipelines: PipelineTable,
    decisions: Decisions,
    recent: RecentStarts,
    scaling: Scaling,
    /// Revision at the last change-log pruning.
    pruned_at: u64,
    /// Memory may not match the store: a rebuild ([`Live::reload`]) started and did not
    /// finish. Nothing is served until one does ([`Live::ensure_current`]).
    stale: bool,
    /// (this handle's, the store's) writer epochs, once a commit found that another
    /// server took the store over: nothing is served or written any more (a new leader
    /// term opens a new live state).
    fenced: Option<(u64, u64)>,
    /// Which live state of this process this is: a flush taken from one must not finish
    /// on the one that replaced it (see [`Flush`]).
    id: u64,
}

/// A group commit in flight: the batch the flusher took from a live state
/// ([`Live::take_pending`]) and the ticket it makes durable. It belongs to that live
/// state: a new leader term swaps in a new one (its own tickets, counted afresh, and
/// memory loaded from the store), and this batch's outcome says nothing about it.
#[derive(Debug, Default)]
pub struct Flush {
    pub batch: Batch,
    upto: u64,
    live: u64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("jobs", &self.jobs.len())
            .field("runners", &self.runners.len())
            .field("revision", &self.jobs.revision())
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
        let names = Names::new(config.tenant_weights.clone());
        let mut live = Self {
            commits: Commits::new(config.group_commit),
            decisions: Decisions::new(config.record_decisions),
            config,
            clock,
            store: Arc::new(Mutex::new(store)),
            core,
            jobs: JobTable::default(),
            runners: Runners::default(),
            names,
            pipelines: PipelineTable::default(),
            recent: RecentStarts::default(),
            scaling: Scaling::default(),
            pruned_at: 0,
            stale: true,
            fenced: None,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
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
        self.commits.subscribe()
    }

    pub fn revision(&self) -> u64 {
        self.jobs.revision()
    }

    /// Decisions the core made since this live state was opened.
    pub fn decisions_total(&self) -> u64 {
        self.decisions.total()
    }

    /// The core's decisions so far (with `record_decisions`).
    pub fn decision_log(&self) -> &[(Millis, Decision)] {
        self.decisions.log()
    }

    /// The notifier a runner's long poll waits on.
    pub fn runner_notify(&self, runner: &str) -> Option<Arc<Notify>> {
        self.runners.notify(runner)
    }

    /// Rebuilds everything in memory from the store. Used at start and after a failed
    /// commit. Leased jobs keep their leases; their runners get one lease TTL from now to
    /// heartbeat again before their jobs are requeued.
    pub fn reload(&mut self) -> Result<(), LiveError> {
        // Cleared only at the end: a rebuild that fails half way leaves memory that no
        // request may act on.
        self.stale = true;
        // What is not durable yet is gone with the memory it changed: its requests fail.
        self.commits.fail_pending();
        self.refuse_if_fenced()?;
        let now = self.now();
        let snap = self.store()?.load(now - self.config.usage_window_ms)?;
        self.core = Self::new_core(&self.config)?;
        let mut seen = std::collections::HashSet::new();
        self.store()?.for_each_request(&mut |t, r| {
            seen.insert(request_hash(t, r));
        })?;
        self.jobs.reset(snap.max_job_id, snap.max_revision, seen);
        self.runners.reset(snap.max_fencing_token);
        self.names.clear();
        // Recent starts name pools and tenants by the ids of the core being replaced.
        self.recent.clear();
        let mut out = Vec::new();
        for mut r in snap.runners {
            r.last_heartbeat_ms = now;
            self.join_runner(now, r, &mut out)?;
        }
        for job in &snap.recently_finished {
            if let (Some(s), Some(e)) = (job.start_ms, job.end_ms) {
                let tenant = self.names.tenant_id(&mut self.core, &job.tenant)?;
                self.core
                    .charge_usage(tenant, job.slots, s.min(now), e.min(now));
            }
        }
        self.relearn(&snap.recently_finished)?;
        let mut batch = Batch::default();
        // Every lease goes back on its runner before any waiting job enters the core: a
        // submission runs a scheduling pass, which would give a waiting job the slots of
        // a lease not restored yet (a lower job id is no older lease: fair share and QoS
        // start jobs out of id order), and that lease, no longer fitting, would be
        // requeued while its runner still runs the job.
        let mut waiting = Vec::new();
        for job in snap.unfinished {
            let id = job.id;
            if job.pipeline.is_some() {
                // Its pipeline puts it back (`restore_pipelines`, below).
                self.jobs.restore(job);
                continue;
            }
            let leased_on = match (job.state, &job.runner) {
                (JobState::Leased, Some(r)) => self.runners.id(r),
                _ => None,
            };
            self.jobs.restore(job);
            let Some(runner) = leased_on else {
                if self
                    .jobs
                    .get(id)
                    .is_some_and(|j| j.state == JobState::Leased)
                {
                    batch.jobs.extend(self.jobs.requeue(id));
                }
                waiting.push(id);
                continue;
            };
            let spec = self.spec_of(id)?;
            let start = self.jobs.get(id).and_then(|j| j.start_ms).unwrap_or(now);
            match spec.map(|s| self.core.restore_running(s, runner, start)) {
                Some(Ok(_)) => {
                    let holder = self.jobs.get_mut(id).and_then(|j| {
                        j.lease_expires_ms = Some(now + self.config.lease_ttl_ms);
                        j.runner.clone()
                    });
                    if let Some(holder) = holder {
                        self.runners
                            .reoffer(&holder, id, self.commits.next_ticket());
                    }
                }
                // Its runner cannot hold it (more leases in the store than slots, e.g.
                // a runner registered again with fewer): back to the queue, the core's
                // too, or it would never run again.
                other => {
                    tracing::warn!(
                        job = id,
                        runner = ?self.jobs.get(id).and_then(|j| j.runner.clone()),
                        error = ?other.and_then(Result::err),
                        "a lease in the store cannot be restored; requeueing the job"
                    );
                    batch.jobs.extend(self.jobs.requeue(id));
                    waiting.push(id);
                }
            }
        }
        // Pipelines restore without a pass (their running jobs first, each on its runner).
        self.restore_pipelines(now, &mut out, &mut batch)?;
        for id in waiting {
            self.enqueue(now, id, &mut out)?;
        }
        self.core.handle(now, Event::Tick, &mut out)?;
        self.apply(now, &out, &mut batch);
        let committed = self.store()?.commit(&batch);
        self.note_fenced(&committed);
        committed?;
        self.commits.restarted();
        self.jobs.forget_finished();
        self.runners.forget_dirty();
        self.stale = false;
        Ok(())
    }

    /// Rebuilds from the store first when an earlier rebuild failed (a store that was
    /// down, a full disk); an error while it still cannot. Every request goes through it
    /// (`crate::server::state::Shared::live`), so none acts on memory the store does not
    /// back.
    pub fn ensure_current(&mut self) -> Result<(), LiveError> {
        self.refuse_if_fenced()?;
        if self.stale {
            self.reload()?;
            tracing::info!("state rebuilt from the store after an earlier failure");
        }
        Ok(())
    }

    /// Whether another server took the store over (see [`StoreError::Fenced`]): this
    /// live state will never write again.
    pub fn is_fenced(&self) -> bool {
        self.fenced.is_some()
    }

    fn refuse_if_fenced(&self) -> Result<(), LiveError> {
        match self.fenced {
            Some((mine, current)) => Err(LiveError::Store(StoreError::Fenced { mine, current })),
            None => Ok(()),
        }
    }

    /// Remembers a commit that found the store taken over; says so once.
    fn note_fenced<T>(&mut self, result: &Result<T, StoreError>) {
        if let (Err(StoreError::Fenced { mine, current }), None) = (result, self.fenced) {
            tracing::error!(
                mine,
                current,
                "another server took over the store; this one stops writing and serving"
            );
            self.fenced = Some((*mine, *current));
        }
    }

    /// The predictor sees the recent jobs again in time order, each submitted (it
    /// estimates it as it did then) and later finished (it learns the run time), so
    /// estimates and upper quantiles after a restart are those before it. At one
    /// instant other jobs' ends come before submissions, as the models are trained
    /// (a job submitted when another finished saw it); a job's own end always comes
    /// after its own submission. Only the newest [`REPLAYED_ESTIMATES`] are estimated
    /// again (each is a model evaluation, and a reload holds the live state): older
    /// ones only teach their run times, as before per-key margins existed.
    fn relearn(&mut self, finished: &[StoredJob]) -> Result<(), LiveError> {
        let mut ran: Vec<(&StoredJob, Millis, Millis)> = finished
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
            let tenant = self.names.tenant_id(&mut self.core, &job.tenant)?;
            let qos = qos_index(&self.config.qos, &job.qos);
            let labels = known_labels(&self.core, &job.labels).unwrap_or_default();
            let spec = core_spec(job, tenant, qos, labels);
            if kind == 1 {
                self.core.learn_submitted(&spec);
            } else {
                self.core
                    .learn_finished(&spec, e - s, e, job.state == JobState::Failed);
            }
        }
        Ok(())
    }

    /// The core's spec of an unfinished job, or `None` if its labels are unknown yet.
    fn spec_of(&mut self, id: u64) -> Result<Option<JobSpec>, LiveError> {
        let Some(job) = self.jobs.get(id) else {
            return Err(LiveError::NotFound(format!("jobs/{id}")));
        };
        self.names.spec(&mut self.core, &self.config.qos, job)
    }

    /// Hands a queued job to the core, or parks it while no pool can run it.
    fn enqueue(&mut self, now: Millis, id: u64, out: &mut Vec<Decision>) -> Result<(), LiveError> {
        let Some(spec) = self.spec_of(id)? else {
            self.jobs.park(id);
            return Ok(());
        };
        let learn = spec.clone();
        match self.core.handle(now, Event::Submit(spec), out) {
            Ok(()) => {
                self.scaling.observe_submit(&self.core, &learn, now);
                Ok(())
            }
            Err(CoreError::NoEligiblePool { .. }) => {
                self.jobs.park(id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the core's decisions to the jobs and runners, adding changed jobs to
    /// `batch`: a start becomes a lease (state `leased`, a new fencing token) queued for
    /// the runner's long poll with the ticket that makes it durable.
    fn apply(&mut self, now: Millis, decisions: &[Decision], batch: &mut Batch) {
        self.decisions.applied(now, decisions);
        for &d in decisions {
            match d {
                Decision::Start { job, runner, .. } => {
                    let Some(name) = self.runners.name(runner).map(str::to_string) else {
                        continue;
                    };
                    let token = self.runners.next_fencing_token();
                    let revision = self.jobs.next_revision();
                    let Some(j) = self.jobs.get_mut(job.0) else {
                        continue;
                    };
                    if let Some(p) = j.pipeline.as_mut().filter(|p| p.ready_ms.is_none()) {
                        // A pipeline job entered the queue when its needs ended.
                        p.ready_ms = self.core.queued_at(job);
                    }
                    j.state = JobState::Leased;
                    j.runner = Some(name.clone());
                    j.fencing_token = token;
                    j.lease_expires_ms = Some(now + self.config.lease_ttl_ms);
                    j.start_ms = Some(now);
                    j.attempts += 1;
                    j.revision = revision;
                    batch.jobs.push(j.clone());
                    // A pipeline job waits from when its needs ended, as in the core
                    // (and the simulator's reports), not from the pipeline's push.
                    let queued_at = j.pipeline.as_ref().and_then(|p| p.ready_ms);
                    let wait = now - queued_at.unwrap_or(j.submit_ms);
                    let tenant = self.names.tenant(&j.tenant);
                    // With group commit the lease is not durable yet: the runner is
                    // woken once it is (`finish_flush`), not now for nothing.
                    let wake = !self.commits.grouped();
                    let ticket = self.commits.next_ticket();
                    let qos = qos_index(&self.config.qos, &j.qos);
                    if let Some(pool) = self.runners.offer(&name, job.0, ticket, wake) {
                        if let (Some(pool), Some(tenant)) = (self.names.pool(pool), tenant) {
                            self.recent.push(now, pool, tenant, qos, wait);
                        }
                    }
                }
                Decision::Requeue { job, .. } => batch.jobs.extend(self.jobs.requeue(job.0)),
                Decision::Cancel { job, reason, .. } => {
                    let pipeline = self.end_job(now, job.0, JobState::Cancelled, batch);
                    if let Some(p) =
                        pipeline.and_then(|p| self.pipelines.cancelled(p, pipeline_cancel(reason)))
                    {
                        batch.pipelines.push(p);
                    }
                }
                Decision::Skip { job } => {
                    self.end_job(now, job.0, JobState::Skipped, batch);
                }
                // The job stays queued in the store until someone plays it (the live
                // service has no call to play one yet).
                Decision::Manual { .. } => {}
                Decision::PipelineEnded { pipeline, state } => {
                    if let Some(p) = self
                        .pipelines
                        .ended(pipeline.0, pipeline_status(state), now)
                    {
                        batch.pipelines.push(p);
                    }
                }
            }
        }
        self.recent.trim(now);
    }

    /// Ends an unfinished job the core ended (cancelled or skipped): a leased one's
    /// runner is told on its next heartbeat. Returns the job's pipeline.
    fn end_job(&mut self, now: Millis, id: u64, state: JobState, batch: &mut Batch) -> Option<u64> {
        let revision = self.jobs.next_revision();
        let j = self.jobs.get_mut(id)?;
        let leased_on = (j.state == JobState::Leased)
            .then(|| j.runner.clone())
            .flatten();
        j.state = state;
        j.end_ms = Some(now);
        j.lease_expires_ms = None;
        j.revision = revision;
        let pipeline = j.pipeline.as_ref().map(|p| p.pipeline);
        batch.jobs.push(j.clone());
        if let Some(r) = leased_on {
            self.runners.withdraw(&r, id);
        }
        self.jobs.unpark(id);
        self.jobs.finish(id);
        pipeline
    }

    fn store(&self) -> Result<MutexGuard<'_, Box<dyn Store>>, LiveError> {
        lock_store(&self.store)
    }

    /// Switches to group commit: requests leave their changes pending and wait for a
    /// flusher ([`Live::take_pending`], [`Live::finish_flush`]) to make them durable.
    pub fn set_group_commit(&mut self, on: bool) {
        self.commits.set_grouped(on);
    }

    /// The ticket of the latest request: it is durable once [`Durability::committed`]
    /// reaches it.
    pub fn last_ticket(&self) -> u64 {
        self.commits.last_ticket()
    }

    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.commits.durability()
    }

    /// Notified when there is something to flush.
    pub fn flush_signal(&self) -> Arc<Notify> {
        self.commits.flush_signal()
    }

    pub fn shared_store(&self) -> SharedStore {
        self.store.clone()
    }

    /// Ends a request: commits `batch` now, or (group commit) leaves it pending.
    fn commit(&mut self, batch: Batch) -> Result<(), LiveError> {
        if batch.is_empty() || !self.commits.add(batch) {
            return Ok(());
        }
        let flush = self.take_pending().unwrap_or_default();
        let result = self.store()?.commit(&flush.batch);
        let failed = result.is_err();
        self.finish_flush(flush, result);
        if failed {
            self.refuse_if_fenced()?;
            return Err(LiveError::Store(StoreError::Other(
                "commit failed; state was rebuilt from the store".into(),
            )));
        }
        Ok(())
    }

    /// Group commit, step 1: what to commit next and the ticket it makes durable.
    pub fn take_pending(&mut self) -> Option<Flush> {
        let (batch, upto) = self.commits.take_pending()?;
        Some(Flush {
            batch,
            upto,
            live: self.id,
        })
    }

    /// Group commit, step 2: after the flusher committed (or failed to commit) a batch
    /// from [`Live::take_pending`]. On failure memory is rebuilt from the store and every
    /// request not yet durable fails.
    ///
    /// A flush taken from the live state this one replaced (a new leader term) is
    /// ignored: its tickets are not ours (taking its `upto` would report our own
    /// requests durable before they are, and runners would get leases a failed commit
    /// then undoes), and a failure of the old store handle (fenced by our own take-over)
    /// says nothing about ours. Its requests already failed when their live state was
    /// dropped, and what it did commit was in the store before we loaded it.
    pub fn finish_flush(&mut self, flush: Flush, result: Result<(), StoreError>) {
        let Flush { batch, upto, live } = flush;
        if live != self.id {
            tracing::debug!(
                ok = result.is_ok(),
                "a group commit of the replaced live state finished; ignored"
            );
            return;
        }
        self.note_fenced(&result);
        if self.fenced.is_some() {
            // Not rebuilt: the store is another server's now. The requests fail.
            self.stale = true;
            self.commits.fail_pending();
            return;
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "commit failed; rebuilding state from the store");
            // The rebuild fails the batch's requests and those pending behind it first,
            // whatever becomes of it: a later commit must not report them durable.
            if let Err(again) = self.reload() {
                tracing::error!(error = %again, "rebuilding state from the store failed too; requests are refused until it succeeds");
            }
            return;
        }
        let committed = self.commits.durable_upto(upto);
        for job in batch.jobs {
            self.jobs.durable(&job);
            self.commits.publish(job);
        }
        for p in &batch.pipelines {
            self.pipelines.durable(p);
        }
        self.runners.wake_durable(committed);
        self.commits.announce();
    }

    /// Submits a job; a repeat of a (tenant, request_id) returns the first job.
    pub fn submit(&mut self, s: Submission) -> Result<StoredJob, LiveError> {
        let checked = s.check(&self.config.qos)?;
        self.submit_checked(checked)
    }

    /// [`Live::submit`] for a submission already checked (a batch checks every request
    /// before submitting any).
    pub fn submit_checked(&mut self, s: CheckedSubmission) -> Result<StoredJob, LiveError> {
        if let Some(j) = self.jobs.by_request(s.tenant(), s.request_id()) {
            return same_request(&s, j).map(|()| j.clone());
        }
        // A request never seen needs no store lookup; a hash seen before (a retry of a
        // finished job, or a collision) is looked up.
        if self.jobs.maybe_seen(s.tenant(), s.request_id()) {
            let filter = JobFilter {
                tenant: Some(s.tenant().to_string()),
                request_id: Some(s.request_id().to_string()),
                ..JobFilter::default()
            };
            if let Some(existing) = self.store()?.list_jobs(&filter, 0, 1)?.into_iter().next() {
                return same_request(&s, &existing).map(|()| existing);
            }
        }
        let now = self.now();
        let id = self.jobs.next_id();
        let job = s.into_job(id, now, self.jobs.next_revision());
        let mut batch = Batch {
            jobs: vec![job.clone()],
            ..Batch::default()
        };
        self.jobs.add(job);
        let mut out = self.decisions.buffer();
        let queued = self.enqueue(now, id, &mut out);
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
        if let Err(e) = queued {
            self.reload()?;
            return Err(e);
        }
        self.commit(batch)?;
        self.job(id)
    }

    /// A job, unfinished (memory) or finished (store).
    pub fn job(&mut self, id: u64) -> Result<StoredJob, LiveError> {
        if let Some(j) = self.jobs.known(id) {
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
        if self.jobs.get(id).is_none() {
            let j = self.job(id)?;
            return Err(LiveError::FailedPrecondition(format!(
                "jobs/{id} already finished ({})",
                j.state.as_str()
            )));
        }
        let now = self.now();
        let mut out = self.decisions.buffer();
        if !self.jobs.unpark(id) {
            // Parked jobs never reached the core.
            self.core
                .handle(now, Event::Cancel { job: JobId(id) }, &mut out)?;
        }
        let mut batch = Batch::default();
        self.end_job(now, id, JobState::Cancelled, &mut batch);
        let done = self.jobs.known(id).cloned();
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
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
        let slots = check_slots(slots)?;
        let now = self.now();
        let mut sorted = labels.clone();
        sorted.sort();
        sorted.dedup();
        if let Some(existing) = (!id.is_empty())
            .then(|| self.runners.stored_mut(id))
            .flatten()
        {
            let mut have = existing.labels.clone();
            have.sort();
            if existing.pool != pool || have != sorted || existing.slots != slots {
                return Err(LiveError::FailedPrecondition(format!(
                    "runners/{id} is registered in pool {} with labels {:?} and {} slots",
                    existing.pool, existing.labels, existing.slots
                )));
            }
            existing.last_heartbeat_ms = now;
            return Ok(existing.clone());
        }
        if let Some(p) = self.names.pool(pool) {
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
            self.runners.fresh_name()
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
        for id in self.jobs.take_parked() {
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
        let pool = self.names.pool_id(&mut self.core, &stored)?;
        let id = self.runners.next_id();
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
        self.runners.insert(id, stored);
        Ok(())
    }

    fn runner_id(&self, name: &str) -> Result<RunnerId, LiveError> {
        self.runners
            .id(name)
            .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))
    }

    /// Keeps a runner and its leases alive. Memory only: after a restart every runner
    /// gets a fresh lease TTL anyway.
    pub fn heartbeat(&mut self, name: &str) -> Result<(Millis, bool, Vec<u64>), LiveError> {
        let now = self.now();
        let expires = now + self.config.lease_ttl_ms;
        // A runner's leases live as long as it heartbeats (`tick` expires silent
        // runners), so the per-job expiry is not rewritten here: that would touch every
        // unfinished job on every heartbeat.
        let (draining, cancelled) = self
            .runners
            .heartbeat(name, now)
            .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))?;
        Ok((expires, draining, cancelled))
    }

    /// Hands over up to `max` leases the scheduler gave this runner. Also a heartbeat.
    pub fn acquire(&mut self, name: &str, max: usize) -> Result<Vec<Lease>, LiveError> {
        self.runner_id(name)?;
        let now = self.now();
        let expires = now + self.config.lease_ttl_ms;
        let committed = self.commits.committed();
        Ok(self
            .runners
            .acquire(name, max, committed, &mut self.jobs, now, expires))
    }

    /// Records a runner's report that a job ended. Refused unless `fencing_token` is the
    /// job's live lease on this runner.
    pub fn complete(&mut self, runner: &str, c: Completion) -> Result<StoredJob, LiveError> {
        // The lease is checked before the runner: a runner that missed its heartbeats is
        // forgotten, and its late completion is a stale lease (FAILED_PRECONDITION), not
        // an unknown runner.
        let Some(job) = self.jobs.get(c.job) else {
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
                "jobs/{}: fencing token {} on runners/{runner} is not the live lease (token {}, {}, state {})",
                c.job,
                c.fencing_token,
                job.fencing_token,
                job.runner
                    .as_deref()
                    .map_or_else(|| "no runner".to_string(), |r| format!("runners/{r}")),
                job.state.as_str()
            )));
        }
        self.runner_id(runner)?;
        let now = self.now();
        let mut out = self.decisions.buffer();
        let end = if c.success {
            Event::Finish { job: JobId(c.job) }
        } else {
            Event::Fail { job: JobId(c.job) }
        };
        self.core.handle(now, end, &mut out)?;
        let revision = self.jobs.next_revision();
        let mut batch = Batch::default();
        if let Some(j) = self.jobs.get_mut(c.job) {
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
            j.revision = revision;
            batch.jobs.push(j.clone());
        }
        let done = self.jobs.finish(c.job);
        self.apply(now, &out, &mut batch);
        self.decisions.give_back(out);
        self.commit(batch)?;
        done.ok_or_else(|| LiveError::NotFound(format!("jobs/{}", c.job)))
    }

    /// Stops giving a runner new work; its running jobs finish.
    pub fn drain(&mut self, name: &str) -> Result<StoredRunner, LiveError> {
        let now = self.now();
        let id = self.runner_id(name)?;
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
                .stored_mut(name)
                .ok_or_else(|| LiveError::NotFound(format!("runners/{name}")))?;
            r.draining = true;
            r.clone()
        };
        let mut batch = Batch {
            runners: vec![stored.clone()],
            ..Batch::default()
        };
        self.apply(now, &out, &mut batch);
        self.commit(batch)?;
        Ok(stored)
    }

    /// This server itself was not running for a while (paused, or starved of CPU): the
    /// runners' heartbeats of that time were not heard, so no runner is judged silent on
    /// it. Each gets one lease TTL from now, as after a rebuild.
    pub fn excuse_silence(&mut self) {
        let now = self.now();
        self.runners.heard_all(now);
    }

    /// Periodic work: runners silent for the lease TTL are lost; their jobs go back to
    /// the queue (and may start elsewhere at once). Returns the runners lost.
    pub fn tick(&mut self) -> Result<Vec<String>, LiveError> {
        let now = self.now();
        let lost = self.runners.silent(now, self.config.lease_ttl_ms);
        let mut out = self.decisions.buffer();
        let mut batch = Batch::default();
        for name in &lost {
            let Some(id) = self.runners.remove(name) else {
                continue;
            };
            tracing::warn!(runner = %name, "runner missed its heartbeats; requeueing its jobs");
            let before = out.len();
            self.core
                .handle(now, Event::RunnerLost { runner: id }, &mut out)?;
            let lost_decisions: Vec<Decision> = out.drain(before..).collect();
            self.apply(now, &lost_decisions, &mut batch);
            batch.removed_runners.push(name.clone());
        }
        if lost.is_empty() {
            // QoS aging and fair-share decay change order with time alone.
            self.core.handle(now, Event::Tick, &mut out)?;
            let ticked: Vec<Decision> = std::mem::take(&mut out);
            self.apply(now, &ticked, &mut batch);
        }
        self.decisions.give_back(out);
        self.commit(batch)?;
        let keep = self.config.change_log_keep.max(1);
        let revision = self.jobs.revision();
        if revision > self.pruned_at + (keep / 10).max(1) {
            let gone = self.store()?.prune_changes(keep)?;
            if gone > 0 {
                tracing::info!(pruned = gone, keep, "pruned the change log");
            }
            self.pruned_at = revision;
        }
        Ok(lost)
    }

    /// Why a job waits (or runs, or ended).
    pub fn explain(&mut self, id: u64) -> Result<Explanation, LiveError> {
        let job = self.job(id)?;
        let queue_position = self.core.queue_position(JobId(id));
        let now = self.now();
        if job.state.is_finished() {
            let note = self.cancel_note(&job)?;
            let mut e = Explanation::finished(job, queue_position);
            if let Some(note) = note {
                e.message = format!("{} ({note})", e.message);
            }
            return Ok(e);
        }
        if self.jobs.is_parked(id) {
            return Ok(Explanation::parked(job, queue_position));
        }
        if let Some(e) = self.explain_held(&job, now)? {
            return Ok(e);
        }
        let status = self.core.explain(JobId(id), now)?;
        let runners = &self.runners;
        Ok(Explanation::of_status(job, status, queue_position, |r| {
            runners.name(r).map(str::to_string)
        }))
    }

    pub fn queue_stats(&self) -> QueueStats {
        stats::queue_stats(
            &self.core,
            &self.names,
            &self.jobs,
            &self.runners,
            &self.recent,
            &self.config.qos,
        )
    }

    /// (pool, current, desired, reason) per registered pool from the core's autoscaler
    /// ([`LiveConfig::autoscaler`]); see `scaling.rs`.
    pub fn scaling_advice(&mut self) -> Result<Vec<(String, u32, u32, String)>, LiveError> {
        let now = self.now();
        self.scaling
            .advice(now, &self.core, &self.config, &self.store)
    }

    /// The registered runners, by name.
    pub fn runners(&self) -> Vec<StoredRunner> {
        let mut out: Vec<StoredRunner> = self.runners.all().cloned().collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Each tenant's fair-share weight and decayed usage (slot-seconds, half-life
    /// [`PolicyConfig::fair_share_half_life_ms`](rustci_scheduler::PolicyConfig)) now, as
    /// the core orders the queue by them.
    pub fn fair_share(&self) -> Vec<TenantShare> {
        let now = self.now();
        let mut out: Vec<TenantShare> = self
            .core
            .config()
            .tenants()
            .iter()
            .enumerate()
            .map(|(i, t)| TenantShare {
                tenant: t.name.clone(),
                weight: t.weight,
                usage: self
                    .core
                    .tenant_usage(rustci_scheduler::TenantId(i as u32), now),
            })
            .collect();
        // Tenants whose jobs wait outside the core (no pool has their labels yet) have
        // no usage and the weight they will get.
        for j in self.jobs.unfinished() {
            if !out.iter().any(|s| s.tenant == j.tenant) {
                out.push(TenantShare {
                    tenant: j.tenant.clone(),
                    weight: self.names.weight(&j.tenant),
                    usage: 0.0,
                });
            }
        }
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// Estimates and projected starts at the clock's `now` ([`Etas`]).
    pub fn etas(&self) -> Etas<'_> {
        Etas {
            core: &self.core,
            names: &self.names,
            jobs: &self.jobs,
            classes: &self.config.qos,
            now: self.now(),
        }
    }
}

/// A tenant's fair share ([`Live::fair_share`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantShare {
    pub tenant: String,
    pub weight: f64,
    /// Decayed slot-seconds.
    pub usage: f64,
}

/// A repeated request id is a retry only with the same body; with another, the client
/// reused the key for a different job, which must not silently get the first one.
fn same_request(s: &CheckedSubmission, first: &StoredJob) -> Result<(), LiveError> {
    match s.differs_from(first) {
        None => Ok(()),
        Some(field) => Err(LiveError::AlreadyExists(format!(
            "request_id {:?} already made jobs/{} with another {field}; a retry must send \
             the same request, a different job needs a new request_id",
            s.request_id(),
            first.id
        ))),
    }
}
