//! The live store's finished jobs as history records: the source of `rustci retrain`
//! besides trace files.
//!
//! [`read_history`] opens a store named by a source string, reads every finished job in
//! one query and returns them as [`JobRecord`]s (the one history schema of
//! rustci-datasets), ordered by submit time (then job id).
//!
//! # Sources
//!
//! | source | store |
//! |---|---|
//! | `mongodb://…`, `mongodb+srv://…` | MongoDB; database from the URI path, else `rustci` ([`mongo::DEFAULT_DATABASE`], the one `rustci serve --store mongodb://…` writes) |
//! | `sqlite:PATH` | SQLite: PATH is a `rustci serve` data directory (its [`sqlite::DB_FILE`]) or the database file itself |
//! | `PATH` | the same as `sqlite:PATH` |
//!
//! The SQLite file is opened read-only; a running server may keep writing (WAL mode lets
//! a reader see one consistent snapshot without blocking it). MongoDB is only read: no
//! index is created, so a user with the `read` role is enough. `mongodb+srv://` needs the
//! driver's DNS resolver, which this build leaves out (the driver then says so).
//!
//! # Which jobs
//!
//! Jobs in state `succeeded`, `failed` or `cancelled` that have both a start and an end:
//! a job cancelled before it ever started (no start) has no run to learn from and is left
//! out, as are queued and leased jobs.
//!
//! # Mapping to [`JobRecord`]
//!
//! Times are stored in milliseconds of the server's clock (Unix time); records have whole
//! seconds, rounded to the nearest (halves up), trace epoch 0.
//!
//! | record | stored job (`jobs` row / document) |
//! |---|---|
//! | `id` | `id` (the number of `jobs/{id}`), as text |
//! | `tenant` | `tenant` |
//! | `project`, `job_name`, `branch` | the same fields (missing or empty: none) |
//! | `labels` | `labels`, as submitted |
//! | `slots` | `slots` |
//! | `requested_s` | `requested_ms` / 1000, rounded (missing or 0: none) |
//! | `submit_s` | `submit_ms` / 1000, rounded |
//! | `wait_s` | (`start_ms` − `submit_ms`) / 1000, rounded |
//! | `run_s` | (`end_ms` − `start_ms`) / 1000, rounded |
//! | `outcome` | `state`: succeeded success; failed failure; cancelled cancelled |
//! | `qos` | `qos` (empty: none) |
//! | `queue` | `runner`: the runner that held the job last (none if never leased) |
//! | `extra` | empty |
//!
//! Durations are rounded on their own, so `start_s()`/`end_s()` of a record are within a
//! second of the stored start and end. `start_ms` is the start of the job's *last* lease:
//! a job requeued after its runner was lost waits from its submission to its last start
//! (the lost attempts count as wait; `attempts` says how many leases it had, and the
//! record does not carry it).

use std::path::{Path, PathBuf};

use rustci_datasets::record::{JobRecord, Outcome};

use super::{mongo, sqlite, JobState, StoreError, StoredJob};

/// Milliseconds to whole seconds, to the nearest (halves up), without overflow.
pub fn ms_to_s(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) >= 500)
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

impl StoredJob {
    /// The job as a history record ([module docs](self) for the mapping), or `None` if it
    /// has not finished or lacks a start or an end.
    pub fn history_record(&self) -> Option<JobRecord> {
        let outcome = match self.state {
            JobState::Succeeded => Outcome::Success,
            JobState::Failed => Outcome::Failure,
            JobState::Cancelled => Outcome::Cancelled,
            JobState::Queued | JobState::Leased => return None,
        };
        let (start, end) = (self.start_ms?, self.end_ms?);
        let mut r = JobRecord::new(
            self.id.to_string(),
            self.tenant.clone(),
            ms_to_s(self.submit_ms),
        );
        r.project = non_empty(&self.project);
        r.job_name = non_empty(&self.job_name);
        r.branch = non_empty(&self.branch);
        r.labels = self.labels.clone();
        r.slots = self.slots;
        r.requested_s = self.requested_ms.filter(|&ms| ms != 0).map(ms_to_s);
        r.wait_s = Some(ms_to_s(start.saturating_sub(self.submit_ms)));
        r.run_s = Some(ms_to_s(end.saturating_sub(start)));
        r.outcome = outcome;
        r.qos = Some(self.qos.clone()).filter(|q| !q.is_empty());
        r.queue = non_empty(&self.runner);
        Some(r)
    }
}

/// Records of `jobs` (finished ones only), ordered by (submit time in ms, job id).
pub(crate) fn sorted_records(mut jobs: Vec<(i64, u64, JobRecord)>) -> Vec<JobRecord> {
    jobs.sort_unstable_by_key(|&(submit_ms, id, _)| (submit_ms, id));
    jobs.into_iter().map(|(_, _, r)| r).collect()
}

/// A parsed history source (see the [module docs](self)). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub enum HistorySource {
    /// A MongoDB store. `uri` is as given (it may hold a password: show
    /// [`HistorySource::name`] instead).
    Mongo { uri: String, database: String },
    /// The SQLite database file of an embedded store.
    Sqlite { file: PathBuf },
}

impl std::fmt::Debug for HistorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mongo { uri, database } => f
                .debug_struct("Mongo")
                .field("uri", &redact(uri))
                .field("database", database)
                .finish(),
            Self::Sqlite { file } => f.debug_struct("Sqlite").field("file", file).finish(),
        }
    }
}

impl HistorySource {
    /// Parses `source` and, for SQLite, finds the database file (a data directory stands
    /// for its [`sqlite::DB_FILE`]). Fails with [`StoreError::BadSource`] naming the
    /// source: an unknown `scheme://`, a malformed MongoDB URI, a path that does not
    /// exist, a directory without a database.
    pub fn parse(source: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadSource {
            name: redact(source),
            reason,
        };
        if source.starts_with("mongodb://") || source.starts_with("mongodb+srv://") {
            let database = mongo::database_of(source)
                .map_err(|e| bad(format!("not a valid MongoDB URI: {}", e.kind)))?;
            return Ok(Self::Mongo {
                uri: source.to_string(),
                database,
            });
        }
        let path = match source.strip_prefix("sqlite:") {
            Some(p) => p,
            None => {
                if let Some((scheme, _)) = source.split_once("://") {
                    if !scheme.is_empty()
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    {
                        return Err(bad(format!(
                            "unknown scheme {scheme}://; expected mongodb://, mongodb+srv://, \
                             sqlite:PATH or the path of a rustci data directory or database file"
                        )));
                    }
                }
                source
            }
        };
        if path.is_empty() {
            return Err(bad(
                "empty path; expected mongodb://, mongodb+srv://, sqlite:PATH or the path \
                 of a rustci data directory or database file"
                    .into(),
            ));
        }
        let path = Path::new(path);
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let file = if meta.is_dir() {
            let file = path.join(sqlite::DB_FILE);
            if !file.is_file() {
                return Err(bad(format!(
                    "the directory {} holds no {} (not a rustci data directory)",
                    path.display(),
                    sqlite::DB_FILE
                )));
            }
            file
        } else {
            path.to_path_buf()
        };
        Ok(Self::Sqlite { file })
    }

    /// The source for messages, without a password.
    pub fn name(&self) -> String {
        match self {
            Self::Mongo { uri, database } => format!("{} (database {database})", redact(uri)),
            Self::Sqlite { file } => file.display().to_string(),
        }
    }

    /// Every finished job of the store, as records ordered by submit time (then job id).
    pub async fn read(&self) -> Result<Vec<JobRecord>, StoreError> {
        let result = match self {
            Self::Mongo { uri, database } => mongo::read_history(uri, database).await,
            Self::Sqlite { file } => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || sqlite::read_history(&file))
                    .await
                    .unwrap_or_else(|e| {
                        Err(StoreError::Other(format!("the SQLite reader failed: {e}")))
                    })
            }
        };
        result.map_err(|e| StoreError::History {
            name: self.name(),
            source: Box::new(e),
        })
    }
}

/// Reads every finished job of the store named by `source` (`mongodb://…`,
/// `mongodb+srv://…`, `sqlite:PATH`, or the path of a `rustci serve` data directory or its
/// database file) as history records ordered by submit time (then job id). See the
/// [module docs](self) for the sources and the mapping.
///
/// Errors name the source (without a password): [`StoreError::BadSource`] when it cannot
/// be used at all, [`StoreError::History`] around the store's own error otherwise (a
/// file that is not SQLite or not a rustci store, a server that cannot be reached).
pub async fn read_history(source: &str) -> Result<Vec<JobRecord>, StoreError> {
    HistorySource::parse(source)?.read().await
}

/// Whether `source` names a store rather than a trace file: a MongoDB URI, `sqlite:…`, a
/// directory holding a [`sqlite::DB_FILE`], or a file that starts with the SQLite header.
/// Only looks; [`read_history`] reports what is wrong with a source.
pub fn is_store_source(source: &str) -> bool {
    if source.starts_with("mongodb://")
        || source.starts_with("mongodb+srv://")
        || source.starts_with("sqlite:")
    {
        return true;
    }
    let path = Path::new(source);
    if path.is_dir() {
        return path.join(sqlite::DB_FILE).is_file();
    }
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// `uri` with the password of its user info (if any) replaced by `***`. The user info
/// ends at the last `@` before any `?`, so a password with an unescaped `/` or `@` (which
/// the driver refuses) is hidden too.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let before_query = rest.find('?').unwrap_or(rest.len());
    let Some(at) = rest[..before_query].rfind('@') else {
        return uri.to_string();
    };
    let (userinfo, hosts) = (&rest[..at], &rest[at + 1..]);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_nearest_second() {
        assert_eq!(
            [0, 499, 500, 1_499, 1_500, -1, -500, -501].map(ms_to_s),
            [0, 0, 1, 1, 2, 0, 0, -1]
        );
        assert_eq!(ms_to_s(i64::MAX), i64::MAX / 1000 + 1);
        assert_eq!(ms_to_s(i64::MIN), i64::MIN / 1000 - 1);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("mongodb://u:pw@h:1/db?x=1"),
            "mongodb://u:***@h:1/db?x=1"
        );
        assert_eq!(redact("mongodb://u@h/db"), "mongodb://u@h/db");
        assert_eq!(redact("mongodb://h1,h2/?a=b"), "mongodb://h1,h2/?a=b");
        assert_eq!(
            redact("mongodb+srv://u:p@c.example"),
            "mongodb+srv://u:***@c.example"
        );
        assert_eq!(redact("/data/dir"), "/data/dir");
        assert_eq!(redact("mongodb://u:a/b@h/db"), "mongodb://u:***@h/db");
        assert_eq!(redact("mongodb://u:a@b@h/?x=@"), "mongodb://u:***@h/?x=@");
    }

    #[test]
    fn parses_mongodb_databases() {
        let db = |s: &str| match HistorySource::parse(s).map_err(|e| e.to_string()) {
            Ok(HistorySource::Mongo { database, .. }) => database,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(db("mongodb://localhost:27017"), "rustci");
        assert_eq!(db("mongodb://localhost:27017/"), "rustci");
        assert_eq!(db("mongodb://h/history?replicaSet=rs0"), "history");
        assert_eq!(db("mongodb://u:p@h1:1,h2:2/?authSource=admin"), "rustci");
        let src = HistorySource::parse("mongodb://u:s3cret@h/x").map_err(|e| e.to_string());
        assert!(!format!("{src:?}").contains("s3cret"), "{src:?}");
    }
}
