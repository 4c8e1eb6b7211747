//! A commit that fails, then a rebuild from the store that fails too (a database that
//! went away, a full disk): the requests of the failed commit are answered as failed at
//! once and never later reported durable, and nothing is served until a rebuild succeeds.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustci_control::server::auth::Auth;
use rustci_control::server::live::{Live, LiveConfig, ManualClock};
use rustci_control::server::state::Shared;
use rustci_control::store::sqlite::{SqliteStore, SyncMode};
use rustci_control::store::{
    Batch, JobFilter, PipelineFilter, Snapshot, Store, StoreError, StoredJob, StoredPipeline,
};
use rustci_datasets::JobRecord;
use tonic::Code;

use crate::common::{flush, submission};

const T0: i64 = 1_700_000_000_000;

/// How many of the next commits and loads fail.
#[derive(Debug, Default)]
struct Faults {
    commits: AtomicU32,
    loads: AtomicU32,
}

impl Faults {
    fn take(n: &AtomicU32, what: &str) -> Result<(), StoreError> {
        match n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)) {
            Ok(_) => Err(StoreError::Other(format!("injected {what} failure"))),
            Err(_) => Ok(()),
        }
    }
}

/// The SQLite store, with failures on demand.
struct Faulty {
    inner: SqliteStore,
    faults: Arc<Faults>,
}

impl Store for Faulty {
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        Faults::take(&self.faults.commits, "commit")?;
        self.inner.commit(batch)
    }
    fn take_over(&mut self) -> Result<(), StoreError> {
        self.inner.take_over()
    }
    fn load(&mut self, finished_since_ms: i64) -> Result<Snapshot, StoreError> {
        Faults::take(&self.faults.loads, "load")?;
        self.inner.load(finished_since_ms)
    }
    fn get_job(&mut self, id: u64) -> Result<Option<StoredJob>, StoreError> {
        self.inner.get_job(id)
    }
    fn list_jobs(
        &mut self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        self.inner.list_jobs(filter, after_id, limit)
    }
    fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        self.inner.changes_since(after, tenant, limit)
    }
    fn history(&mut self, since_ms: i64, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.history(since_ms, limit)
    }
    fn get_pipeline(&mut self, id: u64) -> Result<Option<StoredPipeline>, StoreError> {
        self.inner.get_pipeline(id)
    }
    fn list_pipelines(
        &mut self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        self.inner.list_pipelines(filter, after_id, limit)
    }
    fn pipeline_jobs(&mut self, id: u64) -> Result<Vec<StoredJob>, StoreError> {
        self.inner.pipeline_jobs(id)
    }
}

fn outcome(live: &Live, ticket: u64) -> Option<bool> {
    live.durability().borrow().outcome(ticket)
}

#[test]
fn a_failed_commit_stays_failed_and_nothing_is_served_until_a_rebuild_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(Faults::default());
    let store = Faulty {
        inner: SqliteStore::open(dir.path(), SyncMode::Normal).expect("store"),
        faults: faults.clone(),
    };
    let config = LiveConfig {
        group_commit: true,
        ..LiveConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let mut live = Live::open(config, clock, Box::new(store)).expect("live");

    live.submit(submission("t", "a")).expect("submit a");
    let a = live.last_ticket();
    flush(&mut live);
    assert_eq!(outcome(&live, a), Some(true));

    // b's commit fails, and so does the rebuild after it.
    faults.commits.store(1, Ordering::SeqCst);
    faults.loads.store(2, Ordering::SeqCst);
    live.submit(submission("t", "b")).expect("submit b");
    let b = live.last_ticket();
    flush(&mut live);
    assert_eq!(outcome(&live, b), Some(false), "b's request fails at once");

    // Requests are refused while the store cannot be read back, served once it can.
    let shared = Shared::new(live, Auth::default());
    let refused = shared.live().expect_err("stale state is not served");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("rebuilt"), "{refused:?}");
    let mut live = shared.live().expect("served after a rebuild");

    live.submit(submission("t", "c")).expect("submit c");
    let c = live.last_ticket();
    flush(&mut live);
    assert_eq!(outcome(&live, c), Some(true));
    assert_eq!(
        outcome(&live, b),
        Some(false),
        "a later commit does not make b durable"
    );
    let stored: Vec<String> = live
        .list(&JobFilter::default(), 0, 10)
        .expect("list")
        .into_iter()
        .map(|j| j.request_id)
        .collect();
    assert_eq!(stored, ["a", "c"], "b was never stored");
}

/// A new leader term: a live state opened on a store taken over while the old live
/// state's group commit was still in flight (its flusher took the batch, then the
/// replica lost and won the lease again). That commit's outcome belongs to the old
/// state: finishing it on the new one must neither report the new one's requests
/// durable before they are (its tickets count afresh, so the old batch's last ticket
/// covers them, and runners would get leases a later failed commit undoes: the same
/// job run twice) nor fence the new one for the old handle's fencing.
#[test]
fn a_group_commit_of_a_replaced_live_state_does_not_finish_on_its_successor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LiveConfig {
        group_commit: true,
        ..LiveConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let open = || {
        let mut store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("store");
        store.take_over().expect("take over");
        Live::open(config.clone(), clock.clone(), Box::new(store)).expect("live")
    };

    // Committed before the take-over: in the store the new term loads.
    let mut old = open();
    for r in ["a", "b", "c", "d", "e"] {
        old.submit(submission("t", r)).expect("submit");
    }
    let committed = old.take_pending().expect("old batch");
    let result = old
        .shared_store()
        .lock()
        .expect("store")
        .commit(&committed.batch);
    assert!(result.is_ok(), "{result:?}");
    let mut new = open();
    new.submit(submission("t", "f")).expect("submit f");
    let f = new.last_ticket();
    new.finish_flush(committed, result);
    assert_eq!(
        outcome(&new, f),
        None,
        "f is not durable: only its own commit makes it so"
    );
    flush(&mut new);
    assert_eq!(outcome(&new, f), Some(true));

    // Fenced by the take-over: the old handle's failure is not the new state's.
    new.submit(submission("t", "g")).expect("submit g");
    let fenced = new.take_pending().expect("new batch");
    let result = new
        .shared_store()
        .lock()
        .expect("store")
        .commit(&fenced.batch);
    assert!(result.is_ok(), "{result:?}");
    let mut newer = open();
    old.submit(submission("t", "x"))
        .expect("the old state still takes requests");
    let late = old.take_pending().expect("late batch");
    let result = old
        .shared_store()
        .lock()
        .expect("store")
        .commit(&late.batch);
    assert!(
        matches!(result, Err(StoreError::Fenced { .. })),
        "the old handle is fenced: {result:?}"
    );
    newer.finish_flush(late, result);
    newer
        .submit(submission("t", "h"))
        .expect("the newer state still serves");
    let h = newer.last_ticket();
    flush(&mut newer);
    assert_eq!(outcome(&newer, h), Some(true));
    let stored: Vec<String> = newer
        .list(&JobFilter::default(), 0, 10)
        .expect("list")
        .into_iter()
        .map(|j| j.request_id)
        .collect();
    assert_eq!(stored, ["a", "b", "c", "d", "e", "f", "g", "h"]);
}
