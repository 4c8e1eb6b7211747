//! What the server's tasks share: the live state behind one mutex, who may call, the
//! request counters, whether this replica leads, and the job-event feed. The gRPC
//! services, the flusher, the coordinator, the ticker, the metrics endpoint and the
//! scale hook all hold one `Arc<Shared>`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};
use tonic::Status;

use crate::server::auth::Auth;
use crate::server::counters::Counters;
use crate::server::live::{Durability, Live, LiveError};
use crate::server::locking;
use crate::store::{ReadOnlyStore, StoreError, StoredJob};

/// What every service shares.
#[derive(Debug)]
pub struct Shared {
    pub live: Mutex<Live>,
    pub auth: Auth,
    pub metrics: Counters,
    /// Standby replicas refuse work until they hold the leader lease.
    pub leader: AtomicBool,
    /// With Redis coordination: until when the leader lease is surely ours, as
    /// nanoseconds after [`lease_base`] (0: not held). Checked with the leader flag, so
    /// a process that was paused past its lease refuses work from the moment it runs
    /// again, before its coordinator has noticed. `u64::MAX` without coordination.
    lease_until: AtomicU64,
    /// Every committed job change `WatchJobs` streams: fed by the local live state
    /// (`coord::forward_changes`) and, with Redis coordination, by the leader's fan-out
    /// (see `crate::server::coord`), so watchers on a standby see changes too. May
    /// repeat or skip revisions; `WatchJobs` drops repeats and re-reads gaps from the
    /// store.
    pub events: broadcast::Sender<StoredJob>,
    /// With Redis coordination: a read-only handle on the shared store, from which a
    /// standby serves `WatchJobs` history (its own live state is an empty placeholder).
    pub history: Mutex<Option<ReadOnlyStore>>,
    /// Set when the server stops: open `WatchJobs` streams end so shutdown can finish.
    pub closing: watch::Sender<bool>,
    /// With `--model`: how the version in use measured against the baselines (the
    /// dashboard's model page).
    pub model_evaluation: Mutex<Option<rustci_models::eval::Evaluation>>,
}

impl Shared {
    pub fn new(live: Live, auth: Auth) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(live),
            auth,
            metrics: Counters::default(),
            leader: AtomicBool::new(true),
            lease_until: AtomicU64::new(u64::MAX),
            events: broadcast::channel(8192).0,
            history: Mutex::new(None),
            closing: watch::channel(false).0,
            model_evaluation: Mutex::new(None),
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

    /// Sets until when the leader lease is surely held (`None`: it is not).
    pub fn set_lease_until(&self, until: Option<std::time::Instant>) {
        let nanos = until.map_or(0, |t| {
            u64::try_from(t.saturating_duration_since(*lease_base()).as_nanos()).unwrap_or(u64::MAX)
        });
        self.lease_until.store(nanos, Ordering::SeqCst);
    }

    /// Whether this replica may serve now: it leads, and its lease has not run out.
    fn serving(&self) -> bool {
        self.leader.load(Ordering::SeqCst) && {
            let until = self.lease_until.load(Ordering::SeqCst);
            until == u64::MAX || (lease_base().elapsed().as_nanos() as u64) < until
        }
    }

    /// The live state; a poisoned lock (a panic elsewhere) is an internal error, not a
    /// second panic.
    pub fn live(&self) -> Result<MutexGuard<'_, Live>, Status> {
        if !self.serving() {
            return Err(Status::unavailable(
                "this replica is a standby; the leader serves requests",
            ));
        }
        let mut live = locking::lock(&self.live).map_err(|_| {
            Status::internal("scheduler state is unavailable after an internal error")
        })?;
        // Again under the lock: a replica stepping down clears the flag, then waits for
        // the lock; nothing that gets the lock after that may write. (The store fences
        // what a replica that missed both checks commits: see `Store::take_over`.)
        if !self.serving() {
            return Err(Status::unavailable(
                "this replica is a standby; the leader serves requests",
            ));
        }
        live.ensure_current().map_err(|e| match e {
            LiveError::Store(StoreError::Fenced { .. }) => Status::unavailable(format!(
                "this server no longer serves: {e}"
            )),
            e => Status::unavailable(format!(
                "the scheduler's state is being rebuilt from the store after a failed commit; retry: {e}"
            )),
        })?;
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
        let mut history = locking::lock(&self.history)
            .map_err(|_| Status::internal("the history store is unavailable"))?;
        match history.as_mut() {
            Some(store) => Ok(store
                .changes_since(after, tenant, limit)
                .map_err(LiveError::from)?),
            None => Err(refused),
        }
    }
}

/// The instant lease deadlines are counted from (the first use in this process).
fn lease_base() -> &'static std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(std::time::Instant::now)
}

/// Waits until the request with `ticket` is durable; UNAVAILABLE if its commit failed.
pub async fn durable(ticket: u64, mut rx: watch::Receiver<Durability>) -> Result<(), Status> {
    loop {
        match rx.borrow_and_update().outcome(ticket) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(Status::unavailable(
                    "the store could not make this change durable; nothing was changed, retry",
                ))
            }
            None => {}
        }
        if rx.changed().await.is_err() {
            return Err(Status::unavailable(
                "the scheduler restarted before this change was durable; retry",
            ));
        }
    }
}
