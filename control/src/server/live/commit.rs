//! Group commit, the live side: each request leaves one [`Batch`] pending under a
//! ticket; a flusher (`crate::server::flush`, or the request itself without group
//! commit) commits what is pending in one transaction and announces how far tickets are
//! durable ([`Durability`]). Committed job versions go out to watchers.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch, Notify};

use super::error::LiveError;
use crate::store::{Batch, Store, StoreError, StoredJob};

/// The store handle the live state and a group-commit flusher share.
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// The store behind `store`; a poisoned lock is a store error, not a panic.
pub(super) fn lock_store(store: &SharedStore) -> Result<MutexGuard<'_, Box<dyn Store>>, LiveError> {
    crate::server::locking::lock(store)
        .map_err(|_| LiveError::Store(StoreError::Other("store lock poisoned".into())))
}

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

/// Changes not yet durable, the tickets of the requests in them, and who hears of
/// commits.
#[derive(Debug)]
pub(super) struct Commits {
    /// Group commit: a flusher commits; off, each request does.
    grouped: bool,
    pending: Batch,
    /// The latest request's ticket.
    pending_seq: u64,
    /// Tickets up to this one are durable.
    committed_seq: u64,
    durable: watch::Sender<Durability>,
    flush: Arc<Notify>,
    changes: broadcast::Sender<StoredJob>,
}

impl Commits {
    pub(super) fn new(grouped: bool) -> Self {
        Self {
            grouped,
            pending: Batch::default(),
            pending_seq: 0,
            committed_seq: 0,
            durable: watch::channel(Durability::default()).0,
            flush: Arc::new(Notify::new()),
            changes: broadcast::channel(8192).0,
        }
    }

    pub(super) fn grouped(&self) -> bool {
        self.grouped
    }

    pub(super) fn set_grouped(&mut self, on: bool) {
        self.grouped = on;
    }

    /// The ticket of the latest request.
    pub(super) fn last_ticket(&self) -> u64 {
        self.pending_seq
    }

    /// The ticket the current request's changes will have.
    pub(super) fn next_ticket(&self) -> u64 {
        self.pending_seq + 1
    }

    /// Tickets up to this one are durable.
    pub(super) fn committed(&self) -> u64 {
        self.committed_seq
    }

    pub(super) fn durability(&self) -> watch::Receiver<Durability> {
        self.durable.subscribe()
    }

    pub(super) fn flush_signal(&self) -> Arc<Notify> {
        self.flush.clone()
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<StoredJob> {
        self.changes.subscribe()
    }

    /// Ends a request: its changes join the pending ones under the next ticket. With
    /// group commit the flusher is signalled and `false` returned; without, `true`: the
    /// caller commits now ([`Commits::take_pending`]).
    pub(super) fn add(&mut self, batch: Batch) -> bool {
        self.pending_seq += 1;
        self.pending.jobs.extend(batch.jobs);
        self.pending.runners.extend(batch.runners);
        self.pending.removed_runners.extend(batch.removed_runners);
        self.pending.pipelines.extend(batch.pipelines);
        if self.grouped {
            self.flush.notify_one();
            return false;
        }
        true
    }

    /// What to commit next and the ticket it makes durable.
    pub(super) fn take_pending(&mut self) -> Option<(Batch, u64)> {
        if self.pending.is_empty() {
            return None;
        }
        Some((std::mem::take(&mut self.pending), self.pending_seq))
    }

    /// A batch up to ticket `upto` is durable; returns the highest durable ticket.
    pub(super) fn durable_upto(&mut self, upto: u64) -> u64 {
        self.committed_seq = self.committed_seq.max(upto);
        self.committed_seq
    }

    /// A committed job version, for watchers.
    pub(super) fn publish(&self, job: StoredJob) {
        let _ = self.changes.send(job);
    }

    /// Tells waiting requests how far tickets are durable.
    pub(super) fn announce(&self) {
        let committed = self.committed_seq;
        self.durable.send_modify(|d| d.committed = committed);
    }

    /// A rebuild begins: the requests not yet durable fail (their changes are gone with
    /// the memory the rebuild replaces, or their commit failed); nothing of them is
    /// committed later.
    pub(super) fn fail_pending(&mut self) {
        let (failed_from, failed_upto) = (self.committed_seq, self.pending_seq);
        self.pending = Batch::default();
        self.committed_seq = failed_upto;
        self.durable.send_modify(|d| {
            d.committed = failed_upto;
            if failed_from < failed_upto {
                d.failed.push((failed_from, failed_upto));
                if d.failed.len() > 16 {
                    d.failed.remove(0);
                }
            }
        });
    }

    /// The rebuild that began with [`Commits::fail_pending`] committed its own changes:
    /// they are a ticket of their own (leases it re-made are durable); later requests
    /// start afresh.
    pub(super) fn restarted(&mut self) {
        self.pending_seq += 1;
        self.committed_seq = self.pending_seq;
        self.announce();
    }
}
