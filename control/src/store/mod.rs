//! Durable state of the control plane: jobs (queued, leased, finished: the history),
//! runners, and the change log `WatchJobs` resumes from.
//!
//! The live scheduler (`crate::server::live`) is the only writer. Every RPC that changes
//! state builds one [`Batch`] and commits it before it answers, so an acknowledged change
//! is durable. Implementations: [`sqlite::SqliteStore`] (embedded default) and
//! [`mongo::MongoStore`] (production history store).

pub mod history;
pub mod marks;
pub mod mongo;
pub mod record;
pub mod sqlite;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use rustci_datasets::record::JobRecord;
use rustci_scheduler::When;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path}: cannot create the data directory: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The database cannot be written by this process (read-only file, directory or
    /// mount); found at open, so a server never starts on it.
    #[error(
        "store {path} cannot be written ({reason}); the user running rustci serve must \
         own the data directory and its files, on a writable file system"
    )]
    ReadOnly { path: String, reason: String },
    /// The database failed SQLite's integrity check at open.
    #[error(
        "store {path} failed SQLite's integrity check: {problems}. Refusing to serve it: \
         committed jobs may be lost and their names handed out again. To recover, stop \
         every rustci using it, keep a copy of the data directory, then either restore a \
         backup or salvage what is readable: `sqlite3 {path} .recover | sqlite3 \
         {path}.recovered`, check it, and move {path}.recovered to {path} (removing the \
         old -wal and -shm files)"
    )]
    Damaged { path: String, problems: String },
    #[error("mongodb: {0}")]
    Mongo(#[from] Box<mongodb::error::Error>),
    #[error("store: corrupt row {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("store: {0}")]
    Other(String),
    /// The database is not a rustci store (no such table or collection).
    #[error("{path}: not a rustci store: {reason}")]
    NotAStore { path: String, reason: String },
    /// A history source ([`history::read_history`]) that cannot be used: unknown syntax, a
    /// malformed URI, a path that does not exist. `name` has no password.
    #[error("history source {name}: {reason}")]
    BadSource { name: String, reason: String },
    /// Reading a history source ([`history::read_history`]) failed. `name` has no password.
    #[error("history source {name}: {source}")]
    History {
        name: String,
        #[source]
        source: Box<StoreError>,
    },
    /// Another server took the store over ([`Store::take_over`]) after this handle did:
    /// it is the writer now, and nothing of this commit was written.
    #[error(
        "another rustci server took over this store (writer epoch {current}; this server \
         has {mine}): this server no longer writes to it. With --redis the leader lease \
         moved to another replica; without it, two servers are using one store"
    )]
    Fenced { mine: u64, current: u64 },
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Leased,
    Succeeded,
    Failed,
    Cancelled,
    /// A pipeline job that will never run: its `when` condition did not hold once its
    /// needs ended, or it waited behind a manual job nobody played.
    Skipped,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Leased => "leased",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "leased" => Self::Leased,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }
}

/// A job as stored. `id` is assigned by the live scheduler, dense and increasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    pub id: u64,
    pub request_id: String,
    pub tenant: String,
    pub labels: Vec<String>,
    pub slots: u32,
    pub command: String,
    pub qos: String,
    pub priority: i32,
    pub requested_ms: Option<i64>,
    pub project: Option<String>,
    pub job_name: Option<String>,
    pub branch: Option<String>,
    pub state: JobState,
    pub submit_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Runner holding (leased) or that last held the job.
    pub runner: Option<String>,
    /// The live lease's fencing token (leased), or the last one handed out.
    pub fencing_token: u64,
    /// When the lease ends unless its runner heartbeats, as of when it was handed out
    /// (heartbeats extend every lease of the runner without rewriting this).
    pub lease_expires_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub attempts: u32,
    /// Revision of this version of the job; strictly increasing across all changes.
    pub revision: u64,
    /// How long the command ran by the runner's own clock (`CompleteJob`'s `ended_ms -
    /// started_ms`), when the runner said; at most the lease's length. `start_ms` to
    /// `end_ms` is the lease by the server's clock: the slot the job held, which the
    /// scheduler plans with, charges and learns from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_run_ms: Option<i64>,
    /// Where the job sits in its pipeline; `None` for an independent job. Fixed at
    /// submission like the other submitted fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineJobInfo>,
}

/// A pipeline job's place in its pipeline: what the core needs to rebuild the pipeline
/// after a restart, and what `retrain` reads as the record's `pipeline`. The job's name
/// within the pipeline is its `job_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineJobInfo {
    /// The pipeline's id (`pipelines/{id}`).
    pub pipeline: u64,
    pub stage: String,
    /// Position of the stage in the pipeline's stage order.
    pub stage_index: u32,
    /// `None`: every job of the earlier stages; otherwise names of jobs of the pipeline.
    pub needs: Option<Vec<String>>,
    pub when: When,
    pub allow_failure: bool,
    pub interruptible: bool,
    /// When its needs ended and it entered the queue (the job's `submit_ms` is the
    /// pipeline's creation); `None` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<i64>,
    /// When a person played it (a manual job, `PlayJob`); a restart plays it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played_ms: Option<i64>,
}

/// Where a pipeline is in its life (the core's `PipelineState` once it ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Ended with jobs that waited for a manual job nobody played.
    Blocked,
}

impl PipelineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "blocked" => Self::Blocked,
            _ => return None,
        })
    }
}

/// Why a pipeline was cancelled (the core's `CancelReason`, kept so that a restart
/// rebuilds a cancelled pipeline as cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PipelineCancel {
    /// A newer pipeline of the same concurrency group was submitted.
    Superseded { by: u64 },
    /// `CancelPipeline`.
    Cancelled,
}

/// A pipeline as stored. Its jobs are the jobs whose [`PipelineJobInfo::pipeline`] is
/// its id, in id order (the order of the submitted spec); its id is its first job's id,
/// so pipeline ids need no counter of their own and are never handed out twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPipeline {
    pub id: u64,
    pub request_id: String,
    pub tenant: String,
    pub project: Option<String>,
    /// The git ref (branch or tag) the pipeline runs for.
    pub git_ref: Option<String>,
    /// Concurrency group: a newer pipeline of the group supersedes this one.
    pub group: Option<u64>,
    /// What a newer pipeline of its group does to it (stores written before the modes
    /// had none: GitLab's default).
    #[serde(default)]
    pub auto_cancel: rustci_scheduler::AutoCancel,
    pub state: PipelineStatus,
    pub created_ms: i64,
    pub end_ms: Option<i64>,
    pub cancel: Option<PipelineCancel>,
    /// How many jobs it has.
    pub jobs: u32,
}

/// Which pipelines `list_pipelines` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineFilter {
    pub tenant: Option<String>,
    pub state: Option<PipelineStatus>,
    pub project: Option<String>,
    pub git_ref: Option<String>,
    /// The pipeline a (tenant, request_id) submit created.
    pub request_id: Option<String>,
}

/// A registered runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRunner {
    pub id: String,
    pub pool: String,
    pub labels: Vec<String>,
    pub slots: u32,
    pub draining: bool,
    pub last_heartbeat_ms: i64,
}

/// The change-log trimming policy both stores follow once `prune_changes` asked for it:
/// one prune call deletes at most [`PRUNE_NOW`] entries, and each later commit up to
/// [`trim_budget`] of its own size, until only the newest `keep` revisions are left (one
/// big delete of a long log held the writer, and every request waiting on it, for about
/// a second per 100,000 entries).
pub const PRUNE_NOW: u64 = 1_000;

/// How many old change-log entries a commit that adds `added` may delete: more than it
/// adds, so a long log shrinks back to its bound.
pub fn trim_budget(added: u64) -> u64 {
    2 * added + 16
}

/// The oldest revision to keep when the newest is `newest` and `keep` are kept; `None`
/// when nothing is old enough to go.
pub fn oldest_kept(newest: u64, keep: u64) -> Option<u64> {
    (newest + 1).checked_sub(keep).filter(|&c| c > 0)
}

/// Changes committed together, atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// New versions of jobs (insert, or replace by id), oldest first; each also goes to
    /// the change log. The fields fixed at submission (request id, tenant, labels,
    /// slots, command, QoS, priority, requested time, project, job name, branch, submit
    /// time) never change between versions of one job, and a store may skip rewriting
    /// them.
    pub jobs: Vec<StoredJob>,
    pub runners: Vec<StoredRunner>,
    pub removed_runners: Vec<String>,
    /// New versions of pipelines (insert, or replace by id), oldest first.
    pub pipelines: Vec<StoredPipeline>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.runners.is_empty()
            && self.removed_runners.is_empty()
            && self.pipelines.is_empty()
    }
}

/// What a restarting server needs to rebuild its state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Queued and leased jobs, by id.
    pub unfinished: Vec<StoredJob>,
    pub runners: Vec<StoredRunner>,
    /// Jobs that finished at or after the `finished_since_ms` asked for (fair-share usage).
    pub recently_finished: Vec<StoredJob>,
    pub max_job_id: u64,
    pub max_revision: u64,
    pub max_fencing_token: u64,
}

impl Snapshot {
    /// A snapshot whose highest revision and fencing token also cover the unfinished
    /// jobs, in case the change log or the recorded high-water mark lag behind them.
    pub fn new(
        unfinished: Vec<StoredJob>,
        runners: Vec<StoredRunner>,
        recently_finished: Vec<StoredJob>,
        max_job_id: u64,
        max_change: u64,
        max_token_recorded: u64,
    ) -> Self {
        let max_revision = unfinished
            .iter()
            .map(|j| j.revision)
            .fold(max_change, u64::max);
        let max_fencing_token = unfinished
            .iter()
            .map(|j| j.fencing_token)
            .fold(max_token_recorded, u64::max);
        Self {
            unfinished,
            runners,
            recently_finished,
            max_job_id,
            max_revision,
            max_fencing_token,
        }
    }
}

/// Which jobs `list_jobs` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub state: Option<JobState>,
    /// The job a (tenant, request_id) submit created: idempotency across restarts.
    pub request_id: Option<String>,
}

pub trait Store: Send + 'static {
    /// Commits every change of `batch` in one durable transaction.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Everything needed to rebuild the live state.
    fn load(&mut self, finished_since_ms: i64) -> Result<Snapshot, StoreError>;

    fn get_job(&mut self, id: u64) -> Result<Option<StoredJob>, StoreError>;

    /// Jobs with id > `after_id` matching `filter`, by id, at most `limit`.
    fn list_jobs(
        &mut self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError>;

    /// Job versions with revision > `after`, oldest first, at most `limit`; only the
    /// tenant's when `tenant` is given.
    fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError>;

    fn get_pipeline(&mut self, id: u64) -> Result<Option<StoredPipeline>, StoreError>;

    /// Pipelines with id > `after_id` matching `filter`, by id, at most `limit`.
    fn list_pipelines(
        &mut self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError>;

    /// Every job of pipeline `id`, by id (the spec's order).
    fn pipeline_jobs(&mut self, id: u64) -> Result<Vec<StoredJob>, StoreError>;

    /// Finished jobs that ended at or after `since_ms`, as history records.
    fn history(&mut self, since_ms: i64, limit: usize) -> Result<Vec<JobRecord>, StoreError>;

    /// Deletes all but the latest `keep_last` entries of the change log; returns how many
    /// went. `WatchJobs` cannot resume before the oldest kept revision.
    fn prune_changes(&mut self, _keep_last: u64) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The oldest revision still in the change log, if known.
    fn oldest_change(&mut self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Makes this handle the store's only writer. Called once by a server about to
    /// write (at start, or as a new leader), before it loads the state and before its
    /// first commit. It raises the store's writer epoch and keeps the new value: from
    /// then on every commit checks, inside its own transaction, that the epoch is still
    /// this handle's, and fails with [`StoreError::Fenced`] (writing nothing) once a later
    /// server took over. So a leader that was paused past its lease, or a second server
    /// started on the same store, cannot overwrite the new writer's work. A handle that
    /// never took over (tests, tools) commits unfenced.
    ///
    /// It also ends what a dead predecessor left open, so that the first commits do not
    /// wait on it; a failure of that part is only warned about (commits retry conflicts
    /// and would wait until the database itself ends the predecessor's work).
    fn take_over(&mut self) -> Result<(), StoreError>;

    /// Calls `f(tenant, request_id)` for every job ever stored (the live state keeps a
    /// hash of each so that a new submission needs no store lookup). The default pages
    /// through `list_jobs`; stores override it with a narrower query.
    fn for_each_request(&mut self, f: &mut dyn FnMut(&str, &str)) -> Result<(), StoreError> {
        let mut after = 0;
        loop {
            let page = self.list_jobs(&JobFilter::default(), after, 10_000)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id;
            for j in &page {
                f(&j.tenant, &j.request_id);
            }
        }
    }
}

/// A store handle used only to read (`Shared.history`: a standby's `WatchJobs`
/// history).
pub struct ReadOnlyStore(Box<dyn Store>);

impl ReadOnlyStore {
    pub fn new(store: Box<dyn Store>) -> Self {
        Self(store)
    }

    pub fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        self.0.changes_since(after, tenant, limit)
    }
}

impl std::fmt::Debug for ReadOnlyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOnlyStore")
    }
}
