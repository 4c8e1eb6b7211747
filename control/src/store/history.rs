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
//! Which jobs and how their fields map to records: [`super::record`].

use std::path::{Path, PathBuf};

use rustci_datasets::record::JobRecord;

use super::{mongo, sqlite, StoreError};

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
