//! The embedded store: one SQLite database file, `<data_dir>/rustci.db`, in WAL mode.
//!
//! # Tables
//!
//! * `meta (key, value)`: `schema_version` (a database written by a newer rustci is
//!   refused), `max_fencing_token` (high-water mark of every fencing token committed,
//!   so a restart never hands out a token twice even after the job rows are gone) and
//!   `writer_epoch` (raised by every [`Store::take_over`]; a commit checks it inside its
//!   transaction, so only the latest server to take over writes).
//! * `jobs`: one row per job id, its latest version. Labels are JSON text. Indexed on
//!   `(tenant, id)`, `(state, id)` and `end_ms`; `UNIQUE (tenant, request_id)` is a safety
//!   net behind the scheduler's own idempotency check: a batch that would give a request
//!   id a second job fails as a whole.
//! * `job_changes (revision, job_id, tenant, job)`: the change log `WatchJobs` resumes
//!   from, one row per committed job version (the job as JSON). Trim it with
//!   [`SqliteStore::prune_changes`]; later commits keep trimming it a little at a time.
//!   There is deliberately no tenant index on it (one page fewer written per commit): a
//!   per-tenant `changes_since` scans the log forward from `after` until it has `limit`
//!   rows.
//! * `runners`: one row per registered runner.
//!
//! Beside it, `rustci.marks` ([`super::marks`]) holds the high-water marks of job ids,
//! revisions and fencing tokens, outside the database so that losing its last commits
//! never hands a number out twice. At open the database must pass `PRAGMA quick_check`
//! and a write probe, and is created 0600 in a 0700 directory ([`crate::perms`]).
//!
//! # Durability
//!
//! [`Store::commit`] is one SQLite transaction: either the whole batch is in the database
//! or none of it. How far a committed batch survives depends on [`SyncMode`].
//!
//! # Throughput
//!
//! A commit appends one WAL frame per page it touches (the job row, its index entries,
//! the change-log row), so new databases use 2 KiB pages (half the bytes of the 4 KiB
//! default) and checkpoint every 16 MiB of WAL. A job changed several times in one batch
//! is written to `jobs` once (its last version; the change log gets every version), and
//! an update assigns only the columns that change during a job's life, so it leaves the
//! `(tenant, request_id)` and `(tenant, id)` index entries alone. A background thread
//! checkpoints every 10 ms, so the committing connection's own automatic checkpoint
//! finds little left to copy (it used to hold a commit, and every request waiting on
//! it, for 30-50 ms every few seconds under load). Measure with
//! `cargo test --release -p rustci-control --test integration store_sqlite -- --ignored --nocapture`.
//! Locking stays NORMAL (not EXCLUSIVE) so several connections of one process (the live
//! store and a read-only history store) can share the file.
//!
//! [`read_history`] (behind [`super::history::read_history`], the source of `rustci
//! retrain`) opens the file read-only, beside a running server, and reads the finished
//! jobs in one query.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, ToSql, TransactionBehavior};

use rustci_datasets::record::JobRecord;
use rustci_scheduler::AutoCancel;

use crate::perms;

use super::marks::{Marks, MarksFile};
use super::{
    oldest_kept, trim_budget, Batch, JobFilter, JobState, PipelineFilter, PipelineStatus, Snapshot,
    Store, StoreError, StoredJob, StoredPipeline, StoredRunner, PRUNE_NOW,
};

/// The schema this build writes. A database with a higher version is refused.
/// 2: `jobs.reported_run_ms` (the runner's own timing of the command). 3: pipelines
/// (the `pipelines` table; `jobs.pipeline_id` and `jobs.pipeline`, a pipeline job's
/// place in its pipeline as JSON). 4: `pipelines.auto_cancel` (NULL: GitLab's default,
/// `conservative`). An older database is migrated when opened for writing; read-only
/// readers (of the history, `jobs` only) read it as is.
pub const SCHEMA_VERSION: i64 = 4;

/// Page size of a new database (existing databases keep theirs).
const PAGE_SIZE: i64 = 2048;

/// WAL size, in pages, that triggers an automatic checkpoint (16 MiB).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16 * 1024 * 1024 / PAGE_SIZE;

/// The database file inside the data directory.
pub const DB_FILE: &str = "rustci.db";

/// How hard a commit pushes data to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `PRAGMA synchronous=FULL`: the WAL is fsynced at every commit. A commit that
    /// returned survives a process crash, a kernel panic and a power loss. Slowest: each
    /// commit waits for the disk (typically 0.1-10 ms, depending on the device).
    #[default]
    Full,
    /// `PRAGMA synchronous=NORMAL` (in WAL mode): commits are written to the WAL but only
    /// fsynced at checkpoints. A commit that returned survives a crash of the process
    /// (panic, OOM kill, `kill -9`) because the data is in the OS page cache, but the
    /// last commits before a power loss or kernel crash may be lost (the database stays
    /// consistent: it rolls back to an earlier committed batch, never a partial one).
    Normal,
}

impl SyncMode {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Columns of `jobs` every schema version has, in the order [`job_from_row`] reads them.
macro_rules! job_cols_v1 {
    () => {
        "id, request_id, tenant, labels, slots, command, qos, priority, requested_ms, \
         project, job_name, branch, state, submit_ms, start_ms, end_ms, runner, fencing_token, \
         lease_expires_ms, exit_code, attempts, revision"
    };
}

/// Columns of `jobs`, in the order [`job_from_row`] reads them.
const JOB_COLS: &str = concat!(job_cols_v1!(), ", reported_run_ms, pipeline");

/// [`JOB_COLS`] of a version-1 database, which a read-only reader cannot migrate.
const JOB_COLS_V1: &str = concat!(job_cols_v1!(), ", NULL, NULL");

/// [`JOB_COLS`] of a version-2 database.
const JOB_COLS_V2: &str = concat!(job_cols_v1!(), ", reported_run_ms, NULL");

const PIPELINE_COLS: &str = "id, request_id, tenant, project, git_ref, grp, state, created_ms, \
     end_ms, cancel, jobs, auto_cancel";

const RUNNER_COLS: &str = "id, pool, labels, slots, draining, last_heartbeat_ms";

/// Inserts a job, or updates the columns that change during its life. The fields fixed
/// at submission (request id, tenant, labels, slots, command, QoS, priority, requested
/// time, project, job name, branch, submit time) are only written by the insert: an
/// update that does not name a column leaves the indexes on it alone (SQLite rewrites
/// an index entry whenever a column of it is assigned, even to the same value), so a
/// state change touches the `(state, id)` and `end_ms` indexes, not all four.
static UPSERT_JOB: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO jobs ({JOB_COLS}, pipeline_id) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) \
         ON CONFLICT (id) DO UPDATE SET \
         state = excluded.state, start_ms = excluded.start_ms, end_ms = excluded.end_ms, \
         runner = excluded.runner, fencing_token = excluded.fencing_token, \
         lease_expires_ms = excluded.lease_expires_ms, exit_code = excluded.exit_code, \
         attempts = excluded.attempts, revision = excluded.revision, \
         reported_run_ms = excluded.reported_run_ms, pipeline = excluded.pipeline"
    )
});

/// Which entries of `jobs` are the last version of their job in it; `None` when every
/// one is (no job twice).
fn last_versions(jobs: &[StoredJob]) -> Option<Vec<bool>> {
    if jobs.len() < 2 {
        return None;
    }
    let mut seen = std::collections::HashSet::with_capacity(jobs.len());
    let mut last = vec![false; jobs.len()];
    let mut repeated = false;
    for (i, j) in jobs.iter().enumerate().rev() {
        if seen.insert(j.id) {
            last[i] = true;
        } else {
            repeated = true;
        }
    }
    repeated.then_some(last)
}

/// Used as `+state IN FINISHED_STATES` next to `end_ms >= ?`: the unary `+` keeps the
/// planner on the partial `end_ms` index (the recent end of history) instead of
/// `(state, id)`, which would walk every finished job ever.
const FINISHED_STATES: &str = "('succeeded', 'failed', 'cancelled', 'skipped')";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY,
    request_id       TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    labels           TEXT    NOT NULL,
    slots            INTEGER NOT NULL,
    command          TEXT    NOT NULL,
    qos              TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    requested_ms     INTEGER,
    project          TEXT,
    job_name         TEXT,
    branch           TEXT,
    state            TEXT    NOT NULL,
    submit_ms        INTEGER NOT NULL,
    start_ms         INTEGER,
    end_ms           INTEGER,
    runner           TEXT,
    fencing_token    INTEGER NOT NULL,
    lease_expires_ms INTEGER,
    exit_code        INTEGER,
    attempts         INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    reported_run_ms  INTEGER,
    pipeline_id      INTEGER,
    pipeline         TEXT,
    UNIQUE (tenant, request_id)
);
CREATE INDEX IF NOT EXISTS jobs_pipeline ON jobs (pipeline_id, id) WHERE pipeline_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS pipelines (
    id         INTEGER PRIMARY KEY,
    request_id TEXT    NOT NULL,
    tenant     TEXT    NOT NULL,
    project    TEXT,
    git_ref    TEXT,
    grp        INTEGER,
    auto_cancel TEXT,
    state      TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    end_ms     INTEGER,
    cancel     TEXT,
    jobs       INTEGER NOT NULL,
    UNIQUE (tenant, request_id)
);
CREATE INDEX IF NOT EXISTS pipelines_state_id ON pipelines (state, id);
CREATE INDEX IF NOT EXISTS jobs_tenant_id ON jobs (tenant, id);
CREATE INDEX IF NOT EXISTS jobs_state_id ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_end_ms ON jobs (end_ms) WHERE end_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_changes (
    revision INTEGER PRIMARY KEY,
    job_id   INTEGER NOT NULL,
    tenant   TEXT    NOT NULL,
    job      TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS runners (
    id                TEXT    PRIMARY KEY,
    pool              TEXT    NOT NULL,
    labels            TEXT    NOT NULL,
    slots             INTEGER NOT NULL,
    draining          INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL
);
";

/// The SQLite implementation of [`Store`]. One connection, used by the single writer.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Highest fencing token in `meta` (mirrors the committed value).
    max_fencing_token: u64,
    /// Copies committed WAL frames into the database in the background.
    checkpointer: Option<Checkpointer>,
    /// Change-log rows to keep, once [`SqliteStore::prune_changes`] was called: commits
    /// trim the rest a little at a time.
    keep_changes: Option<u64>,
    /// Job ids, revisions and fencing tokens are never handed out twice, even after the
    /// database lost its last commits (`super::marks`).
    marks: MarksFile,
    /// The writer epoch this handle took over with ([`Store::take_over`]); `None`:
    /// commits are not fenced.
    epoch: Option<u64>,
}

/// Deletes up to `limit` of the oldest change-log rows that fall outside the newest
/// `keep` (counted back from revision `newest`); returns how many went.
fn trim_changes(
    conn: &Connection,
    path: &Path,
    newest: u64,
    keep: u64,
    limit: u64,
) -> Result<u64, StoreError> {
    let Some(cutoff) = oldest_kept(newest, keep) else {
        return Ok(0);
    };
    let n = conn
        .prepare_cached(
            "DELETE FROM job_changes WHERE revision IN \
             (SELECT revision FROM job_changes WHERE revision < ?1 ORDER BY revision LIMIT ?2)",
        )
        .and_then(|mut st| st.execute([U64(cutoff), U64(limit)]))
        .map_err(sqlite_err(path))?;
    Ok(n as u64)
}

/// How often the background checkpointer copies what was committed into the database.
/// Small copies often rather than big ones seldom: a checkpoint competes with the
/// writer's fsync for the disk, and at 10k jobs/s the p99 submit-to-lease latency was
/// 2.2-2.5 ms with 10 ms against 5.1 ms with 100 ms (BENCHMARKS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// A thread with its own connection that runs `PRAGMA wal_checkpoint(PASSIVE)` every
/// [`CHECKPOINT_EVERY`], so that the writer's automatic checkpoint (at
/// [`WAL_AUTOCHECKPOINT_PAGES`]) finds almost nothing left to copy: run by the
/// committing connection, that checkpoint copies every page changed since the last one
/// and syncs the database file before the commit returns, tens of milliseconds during
/// which no request of the group is answered. A passive checkpoint never blocks the
/// writer (nor waits for it); the WAL still restarts from its beginning only after a
/// checkpoint that reached its end, as before. Stopped (and joined) when the store is
/// dropped.
#[derive(Debug)]
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Commits by the writer; an idle store is not checkpointed again and again.
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Option<Self> {
        let conn = Connection::open(path).ok()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread_stop = stop.clone();
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread_commits = commits.clone();
        let thread = std::thread::Builder::new()
            .name("rustci-checkpoint".into())
            .spawn(move || {
                let mut checkpointed = 0;
                while !thread_stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    if thread_stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let now = thread_commits.load(std::sync::atomic::Ordering::Relaxed);
                    if now == checkpointed {
                        continue;
                    }
                    checkpointed = now;
                    // Busy (another checkpoint running) or failed: the next round, or the
                    // writer's own automatic checkpoint, does it.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Self {
            stop,
            commits,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating it and the directory if needed) `<data_dir>/rustci.db`.
    ///
    /// Fails with [`StoreError::Other`] if the database was written by a newer schema.
    ///
    /// Two replicas may open one new file at the same moment. Switching it to WAL needs
    /// an exclusive lock, and SQLite reports that lock as busy at once instead of calling
    /// the busy handler, so the whole opening is retried for up to ten seconds.
    pub fn open(data_dir: &Path, sync: SyncMode) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Self::open_once(data_dir, sync) {
                Err(StoreError::Sqlite {
                    source: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(data_dir: &Path, sync: SyncMode) -> Result<Self, StoreError> {
        // Every tenant's commands are in the database: private to the server's user.
        // SQLite creates the WAL and shared-memory files with the database file's mode,
        // so the database is created 0600 before SQLite opens it.
        perms::private_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        perms::create_private(&path).map_err(|source| StoreError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        let err_path = path.clone();
        let err = sqlite_err(&err_path);
        let conn = Connection::open(&path).map_err(&err)?;
        // SQLite falls back to read-only when it may not write the file; a server on it
        // would start and then answer every write with "unavailable, retry".
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(&err)? {
            return Err(StoreError::ReadOnly {
                path: path.display().to_string(),
                reason: "the file or its directory is read-only for this user".into(),
            });
        }
        conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
        // Only takes effect on a new database (before the first table; WAL fixes it).
        // Smaller pages than the 4 KiB default halve the bytes each commit appends to the
        // WAL (one frame per touched page: the row, each index, the change log), which is
        // what limits single-job commit throughput; measured in `bench_single_job_commits`.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(&err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(&err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other(format!(
                "store {}: cannot switch to WAL journal mode (got {mode})",
                path.display()
            )));
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            // Left by an earlier version with the umask's mode.
            perms::narrow(Path::new(&side), perms::PRIVATE_FILE).map_err(|source| {
                StoreError::DataDir {
                    path: Path::new(&side).display().to_string(),
                    source,
                }
            })?;
        }
        conn.pragma_update(None, "synchronous", sync.pragma())
            .map_err(&err)?;
        // Keep the WAL file from staying huge after a burst (bytes).
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(&err)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Checkpoint every 16 MiB of WAL rather than every 1000 pages: fewer checkpoints
        // (each one fsyncs) and hot index pages are copied back once per checkpoint.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(&err)?;

        check_integrity(&conn, &path)?;
        let marks = MarksFile::open(data_dir)?;

        let mut store = Self {
            conn,
            path,
            max_fencing_token: 0,
            checkpointer: None,
            keep_changes: None,
            marks,
            epoch: None,
        };
        store.init_schema()?;
        store.checkpointer = Checkpointer::start(&store.path);
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sqlite_err(&self.path)
    }

    fn init_schema(&mut self) -> Result<(), StoreError> {
        let err = sqlite_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(&err)?;
        let version = read_meta(&tx, &self.path, "schema_version")?;
        match version {
            None => {
                tx.execute_batch(SCHEMA).map_err(&err)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('max_fencing_token', 0)",
                    [SCHEMA_VERSION],
                )
                .map_err(&err)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Other(format!(
                    "store {}: the database has schema version {v}, newer than the version {SCHEMA_VERSION} \
                     this rustci supports; run a newer rustci or point --data-dir elsewhere",
                    self.path.display()
                )));
            }
            Some(v) if v < 1 => {
                return Err(StoreError::Corrupt {
                    what: "meta schema_version".into(),
                    reason: format!("invalid schema version {v}"),
                });
            }
            Some(v) => {
                if v < 2 {
                    tx.execute_batch("ALTER TABLE jobs ADD COLUMN reported_run_ms INTEGER;")
                        .map_err(&err)?;
                }
                if v < 3 {
                    // The `pipelines` table and the index come with SCHEMA below.
                    tx.execute_batch(
                        "ALTER TABLE jobs ADD COLUMN pipeline_id INTEGER; \
                         ALTER TABLE jobs ADD COLUMN pipeline TEXT;",
                    )
                    .map_err(&err)?;
                }
                if v == 3 {
                    // A version-3 database has the `pipelines` table; older ones get it,
                    // with the column, from SCHEMA below.
                    tx.execute_batch("ALTER TABLE pipelines ADD COLUMN auto_cancel TEXT;")
                        .map_err(&err)?;
                }
                if v < SCHEMA_VERSION {
                    tx.execute(
                        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                        [SCHEMA_VERSION],
                    )
                    .map_err(&err)?;
                }
                tx.execute_batch(SCHEMA).map_err(&err)?;
            }
        }
        let max_token = read_meta(&tx, &self.path, "max_fencing_token")?.unwrap_or(0);
        // A write probe: opening read-write does not prove a commit can be written (a
        // read-only mount, a WAL that cannot grow); this one-page write does.
        let probe = tx
            .execute(
                "UPDATE meta SET value = value WHERE key = 'schema_version'",
                [],
            )
            .and_then(|_| tx.commit());
        if let Err(e) = probe {
            return Err(match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
                    StoreError::ReadOnly {
                        path: self.path.display().to_string(),
                        reason: e.to_string(),
                    }
                }
                _ => err(e),
            });
        }
        self.max_fencing_token = u64::try_from(max_token).map_err(|_| StoreError::Corrupt {
            what: "meta max_fencing_token".into(),
            reason: format!("negative value {max_token}"),
        })?;
        Ok(())
    }

    /// Trims the change log to its newest `keep_last` rows (at least 1, so the latest
    /// revision stays known). Deletes at most [`PRUNE_NOW`] rows at once and returns how
    /// many; from then on every commit also deletes up to twice as many old rows as it
    /// adds, in the commit's transaction, until the log is back to `keep_last`. One big
    /// `DELETE` held the writer (and every request waiting on a commit) for about a
    /// second per 100,000 rows.
    ///
    /// `WatchJobs` cannot resume from a revision older than the oldest kept one
    /// ([`SqliteStore::oldest_change`]): a watcher that is further behind must re-list.
    pub fn prune_changes(&mut self, keep_last: u64) -> Result<u64, StoreError> {
        let keep = keep_last.max(1);
        self.keep_changes = Some(keep);
        let newest = self
            .conn
            .query_row("SELECT MAX(revision) FROM job_changes", [], |r| {
                r.get::<_, Option<U64>>(0)
            })
            .map_err(self.err())?;
        let Some(U64(newest)) = newest else {
            return Ok(0);
        };
        trim_changes(&self.conn, &self.path, newest, keep, PRUNE_NOW)
    }

    /// The oldest revision still in the change log, if any.
    pub fn oldest_change(&mut self) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row("SELECT MIN(revision) FROM job_changes", [], |r| {
                r.get::<_, Option<U64>>(0)
            })
            .map(|v| v.map(|U64(v)| v))
            .map_err(self.err())
    }

    fn query_jobs(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredJob>, StoreError> {
        self.query_rows(sql, params, job_from_row)
    }

    fn query_pipelines(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        self.query_rows(sql, params, pipeline_from_row)
    }

    /// Every row `sql` selects, read by `read` (which names a bad column).
    fn query_rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let err = self.err();
        let mut st = self.conn.prepare_cached(sql).map_err(&err)?;
        let mut rows = st.query(params).map_err(&err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(&err)? {
            out.push(read(row)?);
        }
        Ok(out)
    }
}

/// Every finished job (succeeded, failed, cancelled, with a start and an end) of the
/// database file `db_file`, as history records ordered by submit time, then id (mapping:
/// [`super::record`]).
///
/// Opens the file read-only and reads it in one transaction: a server using it at the
/// same time keeps committing (WAL mode), and the records are one consistent snapshot.
/// Creates nothing (a missing file is an error); a file that is not SQLite, a database
/// that is not a rustci store or one of a newer schema is refused.
pub fn read_history(db_file: &Path) -> Result<Vec<JobRecord>, StoreError> {
    let err = sqlite_err(db_file);
    let mut conn = Connection::open_with_flags(
        db_file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    let tx = conn.transaction().map_err(&err)?;
    let mut tables: Vec<String> = Vec::new();
    {
        let mut st = tx
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'jobs')",
            )
            .map_err(&err)?;
        let mut rows = st.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            tables.push(row.get(0).map_err(&err)?);
        }
    }
    for table in ["meta", "jobs"] {
        if !tables.iter().any(|t| t == table) {
            return Err(StoreError::NotAStore {
                path: db_file.display().to_string(),
                reason: format!("the database has no `{table}` table"),
            });
        }
    }
    let cols = match read_meta(&tx, db_file, "schema_version")? {
        None => {
            return Err(StoreError::NotAStore {
                path: db_file.display().to_string(),
                reason: "the `meta` table has no schema_version".into(),
            })
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::Other(format!(
                "the database {} has schema version {v}, newer than the version \
                 {SCHEMA_VERSION} this rustci supports; run a newer rustci",
                db_file.display()
            )))
        }
        Some(1) => JOB_COLS_V1,
        Some(2) => JOB_COLS_V2,
        Some(_) => JOB_COLS,
    };
    let mut out = Vec::new();
    {
        let mut st = tx
            .prepare(&format!(
                "SELECT {cols} FROM jobs WHERE state IN {FINISHED_STATES} \
                 AND start_ms IS NOT NULL AND end_ms IS NOT NULL"
            ))
            .map_err(&err)?;
        let mut rows = st.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let job = job_from_row(row)?;
            if let Some(r) = job.history_record() {
                out.push((job.submit_ms, job.id, r));
            }
        }
    }
    tx.finish().map_err(&err)?;
    Ok(super::record::sorted_records(out))
}

/// A `u64` stored as SQLite's signed 64-bit integer; values above `i64::MAX` are refused
/// (rusqlite's own `u64` support is behind a feature this crate does not enable).
#[derive(Debug, Clone, Copy)]
struct U64(u64);

impl ToSql for U64 {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0)
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

impl FromSql for U64 {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let v = i64::column_result(value)?;
        u64::try_from(v)
            .map(U64)
            .map_err(|_| FromSqlError::OutOfRange(v))
    }
}

/// SQLite's own check of every page of the database (b-tree structure, cell and record
/// format, free list), without matching index entries to rows: `PRAGMA quick_check`. It
/// reads the whole file once: 4.7 s for a million finished jobs (370 MB, 2 KiB pages,
/// page cache warm, on a loaded 2-core machine; the full `integrity_check` took 18 s),
/// so a start pays about 5 s per million stored jobs. A store that fails it is refused,
/// since serving it could lose committed jobs or hand out their names again.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut problems = Vec::new();
    let mut st = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(sqlite_err(path))?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sqlite_err(path))?;
    for row in rows {
        match row {
            Ok(line) if line == "ok" => {}
            Ok(line) => problems.push(line),
            // A page so damaged that the check itself fails is a failed check too.
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.display().to_string(),
        problems: problems.join("; "),
    })
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn read_meta(conn: &Connection, path: &Path, key: &str) -> Result<Option<i64>, StoreError> {
    let value: Option<rusqlite::types::Value> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sqlite_err(path))?;
    match value {
        None => Ok(None),
        Some(rusqlite::types::Value::Integer(v)) => Ok(Some(v)),
        Some(other) => Err(StoreError::Corrupt {
            what: format!("meta {key}"),
            reason: format!("not an integer: {other:?}"),
        }),
    }
}

/// The store's writer epoch (0 before any server took it over).
fn read_epoch(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let epoch = read_meta(conn, path, "writer_epoch")?.unwrap_or(0);
    u64::try_from(epoch).map_err(|_| StoreError::Corrupt {
        what: "meta writer_epoch".into(),
        reason: format!("negative value {epoch}"),
    })
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("cannot encode as JSON: {e}"))
}

fn corrupt(what: String, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

/// Column `idx` (`name`) of the row of the `what` called `id`, or the corruption named.
fn col<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    what: &str,
    id: impl std::fmt::Display,
    idx: usize,
    name: &str,
) -> Result<T, StoreError> {
    row.get(idx)
        .map_err(|e| corrupt(format!("{what} {id} column {name}"), e))
}

/// Reads a `jobs` row selected with [`JOB_COLS`]; any bad column is [`StoreError::Corrupt`]
/// naming the job and the column.
fn job_from_row(row: &Row<'_>) -> Result<StoredJob, StoreError> {
    let U64(id) = row
        .get(0)
        .map_err(|e| corrupt("job ? column id".into(), e))?;
    let labels_json: String = col(row, "job", id, 3, "labels")?;
    let labels: Vec<String> = serde_json::from_str(&labels_json)
        .map_err(|e| corrupt(format!("job {id} column labels"), e))?;
    let state_str: String = col(row, "job", id, 12, "state")?;
    let state = JobState::parse(&state_str).ok_or_else(|| {
        corrupt(
            format!("job {id} column state"),
            format!("unknown state {state_str:?}"),
        )
    })?;
    Ok(StoredJob {
        id,
        request_id: col(row, "job", id, 1, "request_id")?,
        tenant: col(row, "job", id, 2, "tenant")?,
        labels,
        slots: col(row, "job", id, 4, "slots")?,
        command: col(row, "job", id, 5, "command")?,
        qos: col(row, "job", id, 6, "qos")?,
        priority: col(row, "job", id, 7, "priority")?,
        requested_ms: col(row, "job", id, 8, "requested_ms")?,
        project: col(row, "job", id, 9, "project")?,
        job_name: col(row, "job", id, 10, "job_name")?,
        branch: col(row, "job", id, 11, "branch")?,
        state,
        submit_ms: col(row, "job", id, 13, "submit_ms")?,
        start_ms: col(row, "job", id, 14, "start_ms")?,
        end_ms: col(row, "job", id, 15, "end_ms")?,
        runner: col(row, "job", id, 16, "runner")?,
        fencing_token: col::<U64>(row, "job", id, 17, "fencing_token")?.0,
        lease_expires_ms: col(row, "job", id, 18, "lease_expires_ms")?,
        exit_code: col(row, "job", id, 19, "exit_code")?,
        attempts: col(row, "job", id, 20, "attempts")?,
        revision: col::<U64>(row, "job", id, 21, "revision")?.0,
        reported_run_ms: col(row, "job", id, 22, "reported_run_ms")?,
        pipeline: col::<Option<String>>(row, "job", id, 23, "pipeline")?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| corrupt(format!("job {id} column pipeline"), e))?,
    })
}

/// Reads a `pipelines` row selected with [`PIPELINE_COLS`].
fn pipeline_from_row(row: &Row<'_>) -> Result<StoredPipeline, StoreError> {
    let U64(id) = row
        .get(0)
        .map_err(|e| corrupt("pipeline ? column id".into(), e))?;
    let state_str: String = col(row, "pipeline", id, 6, "state")?;
    let state = PipelineStatus::parse(&state_str).ok_or_else(|| {
        corrupt(
            format!("pipeline {id} column state"),
            format!("unknown state {state_str:?}"),
        )
    })?;
    Ok(StoredPipeline {
        id,
        request_id: col(row, "pipeline", id, 1, "request_id")?,
        tenant: col(row, "pipeline", id, 2, "tenant")?,
        project: col(row, "pipeline", id, 3, "project")?,
        git_ref: col(row, "pipeline", id, 4, "git_ref")?,
        group: col::<Option<U64>>(row, "pipeline", id, 5, "grp")?.map(|U64(g)| g),
        state,
        created_ms: col(row, "pipeline", id, 7, "created_ms")?,
        end_ms: col(row, "pipeline", id, 8, "end_ms")?,
        cancel: col::<Option<String>>(row, "pipeline", id, 9, "cancel")?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| corrupt(format!("pipeline {id} column cancel"), e))?,
        jobs: col(row, "pipeline", id, 10, "jobs")?,
        auto_cancel: match col::<Option<String>>(row, "pipeline", id, 11, "auto_cancel")? {
            None => AutoCancel::default(),
            Some(text) => auto_cancel_parse(&text).ok_or_else(|| {
                corrupt(
                    format!("pipeline {id} column auto_cancel"),
                    format!("unknown mode {text:?}"),
                )
            })?,
        },
    })
}

/// A supersession mode as `pipelines.auto_cancel` keeps it (GitLab's words).
fn auto_cancel_str(mode: AutoCancel) -> &'static str {
    match mode {
        AutoCancel::Conservative => "conservative",
        AutoCancel::Interruptible => "interruptible",
        AutoCancel::None => "none",
        AutoCancel::UnstartedAndInterruptible => "unstarted_and_interruptible",
    }
}

fn auto_cancel_parse(text: &str) -> Option<AutoCancel> {
    [
        AutoCancel::Conservative,
        AutoCancel::Interruptible,
        AutoCancel::None,
        AutoCancel::UnstartedAndInterruptible,
    ]
    .into_iter()
    .find(|&m| auto_cancel_str(m) == text)
}

fn runner_from_row(row: &Row<'_>) -> Result<StoredRunner, StoreError> {
    let id: String = row
        .get(0)
        .map_err(|e| corrupt("runner ? column id".into(), e))?;
    let labels_json: String = col(row, "runner", &id, 2, "labels")?;
    let labels: Vec<String> = serde_json::from_str(&labels_json)
        .map_err(|e| corrupt(format!("runner {id} column labels"), e))?;
    Ok(StoredRunner {
        pool: col(row, "runner", &id, 1, "pool")?,
        labels,
        slots: col(row, "runner", &id, 3, "slots")?,
        draining: col(row, "runner", &id, 4, "draining")?,
        last_heartbeat_ms: col(row, "runner", &id, 5, "last_heartbeat_ms")?,
        id,
    })
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let used = batch.jobs.iter().fold(Marks::default(), |m, j| Marks {
            job_id: m.job_id.max(j.id),
            revision: m.revision.max(j.revision),
            fencing_token: m.fencing_token.max(j.fencing_token),
        });
        let err = sqlite_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Under the write lock: a server that took over later has raised the epoch, and
        // only the current writer may reserve numbers in the marks file.
        if let Some(mine) = self.epoch {
            let current = read_epoch(&tx, &self.path)?;
            if current != mine {
                return Err(StoreError::Fenced { mine, current });
            }
        }
        self.marks.cover(used)?;
        let mut batch_max_token = self.max_fencing_token;
        if !batch.jobs.is_empty() {
            let mut upsert = tx.prepare_cached(&UPSERT_JOB).map_err(&err)?;
            let mut change = tx
                .prepare_cached("INSERT INTO job_changes (revision, job_id, tenant, job) VALUES (?1, ?2, ?3, ?4)")
                .map_err(&err)?;
            // A job often changes more than once in one group (submitted and leased at
            // once): `jobs` gets its last version only, the change log every version.
            let last = last_versions(&batch.jobs);
            for (i, j) in batch.jobs.iter().enumerate() {
                if last.as_ref().is_none_or(|l| l[i]) {
                    let labels = serde_json::to_string(&j.labels).map_err(json_err)?;
                    let pipeline = j
                        .pipeline
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(json_err)?;
                    upsert
                        .execute(params![
                            U64(j.id),
                            j.request_id,
                            j.tenant,
                            labels,
                            j.slots,
                            j.command,
                            j.qos,
                            j.priority,
                            j.requested_ms,
                            j.project,
                            j.job_name,
                            j.branch,
                            j.state.as_str(),
                            j.submit_ms,
                            j.start_ms,
                            j.end_ms,
                            j.runner,
                            U64(j.fencing_token),
                            j.lease_expires_ms,
                            j.exit_code,
                            j.attempts,
                            U64(j.revision),
                            j.reported_run_ms,
                            pipeline,
                            j.pipeline.as_ref().map(|p| U64(p.pipeline)),
                        ])
                        .map_err(&err)?;
                }
                let json = serde_json::to_string(j).map_err(json_err)?;
                change
                    .execute(params![U64(j.revision), U64(j.id), j.tenant, json])
                    .map_err(&err)?;
                batch_max_token = batch_max_token.max(j.fencing_token);
            }
            if let Some(keep) = self.keep_changes {
                let newest = batch.jobs.iter().map(|j| j.revision).max().unwrap_or(0);
                let added = batch.jobs.len() as u64;
                trim_changes(&tx, &self.path, newest, keep, trim_budget(added))?;
            }
        }
        if !batch.runners.is_empty() {
            let mut upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO runners ({RUNNER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, labels = excluded.labels, \
                     slots = excluded.slots, draining = excluded.draining, \
                     last_heartbeat_ms = excluded.last_heartbeat_ms"
                ))
                .map_err(&err)?;
            for r in &batch.runners {
                let labels = serde_json::to_string(&r.labels).map_err(json_err)?;
                upsert
                    .execute(params![
                        r.id,
                        r.pool,
                        labels,
                        r.slots,
                        r.draining,
                        r.last_heartbeat_ms
                    ])
                    .map_err(&err)?;
            }
        }
        if !batch.pipelines.is_empty() {
            let mut upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO pipelines ({PIPELINE_COLS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                     end_ms = excluded.end_ms, cancel = excluded.cancel"
                ))
                .map_err(&err)?;
            for p in &batch.pipelines {
                let cancel = p
                    .cancel
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(json_err)?;
                upsert
                    .execute(params![
                        U64(p.id),
                        p.request_id,
                        p.tenant,
                        p.project,
                        p.git_ref,
                        p.group.map(U64),
                        p.state.as_str(),
                        p.created_ms,
                        p.end_ms,
                        cancel,
                        p.jobs,
                        auto_cancel_str(p.auto_cancel),
                    ])
                    .map_err(&err)?;
            }
        }
        if !batch.removed_runners.is_empty() {
            let mut delete = tx
                .prepare_cached("DELETE FROM runners WHERE id = ?1")
                .map_err(&err)?;
            for id in &batch.removed_runners {
                delete.execute([id]).map_err(&err)?;
            }
        }
        if batch_max_token > self.max_fencing_token {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'max_fencing_token'")
                .and_then(|mut st| st.execute([U64(batch_max_token)]))
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        self.marks.committed(used);
        self.max_fencing_token = batch_max_token;
        if let Some(c) = &self.checkpointer {
            c.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn load(&mut self, finished_since_ms: i64) -> Result<Snapshot, StoreError> {
        let unfinished = self.query_jobs(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE state IN ('queued', 'leased') ORDER BY id"),
            [],
        )?;
        let recently_finished = self.query_jobs(
            &format!(
                "SELECT {JOB_COLS} FROM jobs WHERE end_ms >= ?1 AND +state IN {FINISHED_STATES} ORDER BY +id"
            ),
            [finished_since_ms],
        )?;
        let err = self.err();
        let mut runners = Vec::new();
        {
            let mut st = self
                .conn
                .prepare_cached(&format!("SELECT {RUNNER_COLS} FROM runners ORDER BY id"))
                .map_err(&err)?;
            let mut rows = st.query([]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                runners.push(runner_from_row(row)?);
            }
        }
        let U64(max_job_id) = self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM jobs", [], |r| r.get(0))
            .map_err(&err)?;
        let U64(max_change) = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(revision), 0) FROM job_changes",
                [],
                |r| r.get(0),
            )
            .map_err(&err)?;
        // Numbers past the database's own may have been handed out in commits it lost.
        let floor = self.marks.floor();
        Ok(Snapshot::new(
            unfinished,
            runners,
            recently_finished,
            max_job_id.max(floor.job_id),
            max_change.max(floor.revision),
            self.max_fencing_token.max(floor.fencing_token),
        ))
    }

    fn get_job(&mut self, id: u64) -> Result<Option<StoredJob>, StoreError> {
        Ok(self
            .query_jobs(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [U64(id)],
            )?
            .pop())
    }

    fn take_over(&mut self) -> Result<(), StoreError> {
        let err = sqlite_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let epoch = read_epoch(&tx, &self.path)? + 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('writer_epoch', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [U64(epoch)],
        )
        .map_err(&err)?;
        // What the previous writer reserved since this handle opened.
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let marks = MarksFile::open(dir)?;
        tx.commit().map_err(&err)?;
        self.marks = marks;
        self.epoch = Some(epoch);
        Ok(())
    }

    fn prune_changes(&mut self, keep_last: u64) -> Result<u64, StoreError> {
        SqliteStore::prune_changes(self, keep_last)
    }

    fn oldest_change(&mut self) -> Result<Option<u64>, StoreError> {
        SqliteStore::oldest_change(self)
    }

    fn for_each_request(&mut self, f: &mut dyn FnMut(&str, &str)) -> Result<(), StoreError> {
        let err = self.err();
        let mut st = self
            .conn
            .prepare("SELECT tenant, request_id FROM jobs")
            .map_err(&err)?;
        let mut rows = st.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let tenant: String = row.get(0).map_err(&err)?;
            let request: String = row.get(1).map_err(&err)?;
            f(&tenant, &request);
        }
        Ok(())
    }

    fn list_jobs(
        &mut self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        // One statement per combination of filters (each cached by its text), so every
        // combination can use its index: (tenant, id), (state, id) or (tenant, request_id).
        let mut sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id > ?1");
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(5);
        let after = U64(after_id);
        args.push(&after);
        if let Some(t) = &filter.tenant {
            args.push(t);
            sql.push_str(&format!(" AND tenant = ?{}", args.len()));
        }
        let state = filter.state.map(JobState::as_str);
        if let Some(s) = &state {
            args.push(s);
            sql.push_str(&format!(" AND state = ?{}", args.len()));
        }
        if let Some(r) = &filter.request_id {
            args.push(r);
            sql.push_str(&format!(" AND request_id = ?{}", args.len()));
        }
        let limit = limit_param(limit);
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        self.query_jobs(&sql, args.as_slice())
    }

    fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        let err = self.err();
        let limit = limit_param(limit);
        let mut st = match tenant {
            None => self.conn.prepare_cached(
                "SELECT revision, job_id, job FROM job_changes WHERE revision > ?1 ORDER BY revision LIMIT ?2",
            ),
            Some(_) => self.conn.prepare_cached(
                "SELECT revision, job_id, job FROM job_changes WHERE tenant = ?3 AND revision > ?1 \
                 ORDER BY revision LIMIT ?2",
            ),
        }
        .map_err(&err)?;
        let mut rows = match tenant {
            None => st.query(params![U64(after), limit]),
            Some(t) => st.query(params![U64(after), limit, t]),
        }
        .map_err(&err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(&err)? {
            let U64(revision) = row
                .get(0)
                .map_err(|e| corrupt("job_changes ? column revision".into(), e))?;
            let U64(job_id) = row.get(1).map_err(|e| {
                corrupt(format!("job_changes revision {revision} column job_id"), e)
            })?;
            let what = || format!("job {job_id} (job_changes revision {revision}) column job");
            let json: String = row.get(2).map_err(|e| corrupt(what(), e))?;
            let job: StoredJob = serde_json::from_str(&json).map_err(|e| corrupt(what(), e))?;
            out.push(job);
        }
        Ok(out)
    }

    fn get_pipeline(&mut self, id: u64) -> Result<Option<StoredPipeline>, StoreError> {
        Ok(self
            .query_pipelines(
                &format!("SELECT {PIPELINE_COLS} FROM pipelines WHERE id = ?1"),
                [U64(id)],
            )?
            .pop())
    }

    fn list_pipelines(
        &mut self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        let mut sql = format!("SELECT {PIPELINE_COLS} FROM pipelines WHERE id > ?1");
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(7);
        let after = U64(after_id);
        args.push(&after);
        let conditions = [
            ("tenant", filter.tenant.as_deref()),
            ("state", filter.state.map(PipelineStatus::as_str)),
            ("project", filter.project.as_deref()),
            ("git_ref", filter.git_ref.as_deref()),
            ("request_id", filter.request_id.as_deref()),
        ];
        for (col, v) in &conditions {
            if let Some(v) = v {
                args.push(v);
                sql.push_str(&format!(" AND {col} = ?{}", args.len()));
            }
        }
        let limit = limit_param(limit);
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        self.query_pipelines(&sql, args.as_slice())
    }

    fn pipeline_jobs(&mut self, id: u64) -> Result<Vec<StoredJob>, StoreError> {
        self.query_jobs(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE pipeline_id = ?1 ORDER BY id"),
            [U64(id)],
        )
    }

    fn history(&mut self, since_ms: i64, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let jobs = self.query_jobs(
            &format!(
                "SELECT {JOB_COLS} FROM jobs WHERE end_ms >= ?1 AND +state IN {FINISHED_STATES} \
                 ORDER BY end_ms, id LIMIT ?2"
            ),
            params![since_ms, limit_param(limit)],
        )?;
        Ok(jobs.iter().filter_map(StoredJob::history_record).collect())
    }
}
