//! One fixture, two backends: the store a test's `rustci serve` keeps its state in, the
//! embedded SQLite store in the test's data directory or MongoDB (`--store mongodb://`)
//! in a database of the test's own, dropped at the end. [`on_both_stores!`] runs a
//! scenario once on each, as two tests named `<scenario>::sqlite` and
//! `<scenario>::mongodb`.
//!
//! The MongoDB server comes from `RUSTCI_TEST_MONGODB_URI`, with the skip/require rule of
//! the control crate's store tests (`support_mongo`). A server that starts (or becomes
//! leader) on MongoDB ends every session on the database server first (`killAllSessions`,
//! its take-over of a dead predecessor's transactions), which would abort the commits of
//! another test's server: so a MongoDB scenario holds the shared session lock alone, and
//! the MongoDB scenarios of this binary run one at a time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustci_control::clients::client::Clients;
use rustci_control::server::ServeOptions;
use rustci_control::store::mongo::MongoStore;
use rustci_datasets::JobRecord;
use tokio::sync::RwLockWriteGuard;

use crate::support_mongo::{
    mongo_test_database, mongo_uri_or_skip, uri_with_database, MONGO_SESSIONS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mongo,
}

impl Backend {
    /// Its name in test names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Mongo => "mongodb",
        }
    }
}

/// The store of one test.
#[derive(Debug)]
pub struct TestStore {
    /// `--data-dir` of the test's servers: the SQLite store lives there; with MongoDB
    /// it is still given, and the store does not use it.
    data_dir: PathBuf,
    /// With MongoDB: `mongodb://HOST:PORT/DB` of the test's own database.
    uri: Option<String>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl TestStore {
    /// The store of `test` on `backend`, in `data_dir` for SQLite; `None` (after the
    /// visible `SKIPPED:` line) when MongoDB is asked for and not configured.
    pub async fn new(backend: Backend, test: &str, data_dir: &Path) -> Option<Self> {
        let data_dir = data_dir.to_path_buf();
        match backend {
            Backend::Sqlite => Some(Self {
                data_dir,
                uri: None,
                _alone: None,
            }),
            Backend::Mongo => {
                let alone = MONGO_SESSIONS.write().await;
                let server = mongo_uri_or_skip(test)?;
                Some(Self {
                    data_dir,
                    uri: Some(uri_with_database(&server, &mongo_test_database())),
                    _alone: Some(alone),
                })
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `rustci serve` arguments that select the store (none for SQLite, the default).
    pub fn serve_args(&self) -> Vec<&str> {
        match &self.uri {
            Some(uri) => vec!["--store", uri],
            None => Vec::new(),
        }
    }

    /// `opts` with this store: its data directory and, for MongoDB, the URI.
    pub fn serve_options(&self, opts: ServeOptions) -> ServeOptions {
        ServeOptions {
            data_dir: self.data_dir.clone(),
            mongodb: self.uri.clone(),
            ..opts
        }
    }

    /// What `rustci retrain --from` reads this store's history from.
    pub fn history_source(&self) -> String {
        match &self.uri {
            Some(uri) => uri.clone(),
            None => self.data_dir.display().to_string(),
        }
    }

    /// `rustci serve` on this store (a child process in `procs`, its log in `dir`) with
    /// one reference runner (pool `p`, label `linux`, 8 slots); clients once both are up.
    pub async fn serve_with_runner(&self, procs: &mut crate::common::Procs, dir: &Path) -> Clients {
        let port = crate::common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        procs.server(
            "server",
            port,
            self.data_dir(),
            &self.serve_args(),
            &dir.join("server.log"),
        );
        let c = crate::common::wait_ready(&url, None, Duration::from_secs(30)).await;
        procs.runner(
            "r",
            &url,
            "p",
            "linux",
            8,
            None,
            &[],
            &dir.join("runner.log"),
        );
        crate::common::wait_runners(&c, "p", 1, Duration::from_secs(20)).await;
        c
    }

    /// The store's history once it holds `jobs` records (the server commits in groups,
    /// so a job reported ended may not be in the history yet).
    pub async fn history_of(&self, jobs: usize) -> Vec<JobRecord> {
        let source = self.history_source();
        crate::common::wait_for(
            "the history in the store",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                let source = source.clone();
                async move {
                    let h = rustci_control::store::history::read_history(&source)
                        .await
                        .map_err(|e| e.to_string())?;
                    if h.len() == jobs {
                        Ok(h)
                    } else {
                        Err(format!("{} records", h.len()))
                    }
                }
            },
        )
        .await
    }

    /// Drops the test's MongoDB database (at the end of a test that passed; a failed
    /// test leaves it for a look, under a name no other run uses).
    pub async fn finish(self) {
        let Some(uri) = &self.uri else { return };
        let db = rustci_control::store::mongo::database_of(uri).expect("the test's URI");
        let store = MongoStore::connect_async(uri, &db)
            .await
            .expect("connect to MongoDB to drop the test database");
        store
            .database()
            .drop()
            .await
            .expect("drop the test database");
    }
}

/// `on_both_stores!(scenario, ...)`: for each `async fn scenario(backend: Backend, test:
/// &str)`, a module `scenario` with the tests `sqlite` and `mongodb`.
macro_rules! on_both_stores {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(
                    $crate::stores::Backend::Sqlite,
                    concat!(module_path!(), "::sqlite"),
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mongodb() {
                super::$scenario(
                    $crate::stores::Backend::Mongo,
                    concat!(module_path!(), "::mongodb"),
                )
                .await;
            }
        }
    )+};
}
pub(crate) use on_both_stores;
