//! Runners, the leases waiting for them, and fencing tokens.
//!
//! A core decision to start a job on a runner becomes a lease: the job gets a new
//! fencing token and goes into the runner's outbox with the commit ticket that makes it
//! durable. The runner's long poll (`acquire`) takes only leases already durable, so a
//! crash never forgets a lease a runner holds.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rustci_scheduler::{Millis, RunnerId};
use tokio::sync::Notify;

use super::jobs::JobTable;
use crate::store::{JobState, StoredJob, StoredRunner};

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

/// The registered runners by name and by the core's id.
#[derive(Debug, Default)]
pub(super) struct Runners {
    by_name: HashMap<String, RunnerEntry>,
    names: HashMap<RunnerId, String>,
    /// The next core id; also numbers the names of runners registered without one.
    next_id: u32,
    /// The latest fencing token handed out.
    token: u64,
    /// Runners whose newest lease is not durable yet: woken once it is.
    dirty: Vec<String>,
}

impl Runners {
    /// Forgets every runner; fencing tokens continue after `max_fencing_token`. Core ids
    /// keep counting (the core is new, but names made from them stay unique).
    pub(super) fn reset(&mut self, max_fencing_token: u64) {
        self.by_name.clear();
        self.names.clear();
        self.token = max_fencing_token;
    }

    /// Forgets which runners wait for a durable lease (their leases were rebuilt).
    pub(super) fn forget_dirty(&mut self) {
        self.dirty.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &StoredRunner> {
        self.by_name.values().map(|r| &r.stored)
    }

    pub(super) fn stored(&self, name: &str) -> Option<&StoredRunner> {
        self.by_name.get(name).map(|r| &r.stored)
    }

    pub(super) fn stored_mut(&mut self, name: &str) -> Option<&mut StoredRunner> {
        self.by_name.get_mut(name).map(|r| &mut r.stored)
    }

    pub(super) fn id(&self, name: &str) -> Option<RunnerId> {
        self.by_name.get(name).map(|r| r.id)
    }

    pub(super) fn name(&self, id: RunnerId) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    /// The notifier a runner's long poll waits on.
    pub(super) fn notify(&self, name: &str) -> Option<Arc<Notify>> {
        self.by_name.get(name).map(|r| r.notify.clone())
    }

    /// A name for a runner registered without one: `r{n}`, not taken yet.
    pub(super) fn fresh_name(&mut self) -> String {
        loop {
            let candidate = format!("r{}", self.next_id);
            if !self.by_name.contains_key(&candidate) {
                return candidate;
            }
            self.next_id += 1;
        }
    }

    /// The core id of the next runner to join.
    pub(super) fn next_id(&mut self) -> RunnerId {
        let id = RunnerId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Adds a runner the core knows as `id`.
    pub(super) fn insert(&mut self, id: RunnerId, stored: StoredRunner) {
        self.names.insert(id, stored.id.clone());
        self.by_name.insert(
            stored.id.clone(),
            RunnerEntry {
                stored,
                id,
                outbox: VecDeque::new(),
                cancelled: Vec::new(),
                notify: Arc::new(Notify::new()),
            },
        );
    }

    /// Removes a runner; its long poll is woken to find it gone.
    pub(super) fn remove(&mut self, name: &str) -> Option<RunnerId> {
        let entry = self.by_name.remove(name)?;
        self.names.remove(&entry.id);
        entry.notify.notify_waiters();
        Some(entry.id)
    }

    /// Counts every runner as heard from at `now` (one lease TTL from now to heartbeat
    /// again), as a rebuild does.
    pub(super) fn heard_all(&mut self, now: Millis) {
        for r in self.by_name.values_mut() {
            r.stored.last_heartbeat_ms = r.stored.last_heartbeat_ms.max(now);
        }
    }

    /// The runners silent for longer than `ttl` at `now`, by name.
    pub(super) fn silent(&self, now: Millis, ttl: Millis) -> Vec<String> {
        let mut lost: Vec<String> = self
            .by_name
            .values()
            .filter(|r| r.stored.last_heartbeat_ms + ttl < now)
            .map(|r| r.stored.id.clone())
            .collect();
        lost.sort();
        lost
    }

    pub(super) fn next_fencing_token(&mut self) -> u64 {
        self.token += 1;
        self.token
    }

    /// Queues a lease of `job` for runner `name`, durable with commit `ticket`. Woken
    /// now if `wake` (each request commits), else once the ticket is durable
    /// ([`Runners::wake_durable`]). Returns the runner's pool; `None` if it is unknown.
    pub(super) fn offer(&mut self, name: &str, job: u64, ticket: u64, wake: bool) -> Option<&str> {
        let r = self.by_name.get_mut(name)?;
        r.outbox.push_back((job, ticket));
        self.dirty.push(name.to_string());
        if wake {
            r.notify.notify_one();
        }
        Some(&r.stored.pool)
    }

    /// Offers a restored lease again: the runner may not have taken it before the
    /// restart (runners ignore a lease they already run).
    pub(super) fn reoffer(&mut self, name: &str, job: u64, ticket: u64) {
        if let Some(r) = self.by_name.get_mut(name) {
            r.outbox.push_back((job, ticket));
        }
    }

    /// Takes back the lease of a cancelled job; the runner is told on its next
    /// heartbeat.
    pub(super) fn withdraw(&mut self, name: &str, job: u64) {
        if let Some(r) = self.by_name.get_mut(name) {
            r.outbox.retain(|&(j, _)| j != job);
            r.cancelled.push(job);
        }
    }

    /// Wakes the runners that now have a durable lease to take. A runner whose newest
    /// lease is in a later group stays dirty until that group is durable: its long poll
    /// would otherwise sleep to its deadline with that lease waiting.
    pub(super) fn wake_durable(&mut self, committed: u64) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for name in dirty {
            let Some(r) = self.by_name.get(&name) else {
                continue;
            };
            if r.outbox.front().is_some_and(|&(_, seq)| seq <= committed) {
                r.notify.notify_one();
            }
            if r.outbox.back().is_some_and(|&(_, seq)| seq > committed) {
                self.dirty.push(name);
            }
        }
    }

    /// A runner's heartbeat at `now`: whether it drains, and the jobs cancelled while
    /// leased to it since the last one. `None` if it is unknown.
    pub(super) fn heartbeat(&mut self, name: &str, now: Millis) -> Option<(bool, Vec<u64>)> {
        let r = self.by_name.get_mut(name)?;
        r.stored.last_heartbeat_ms = now;
        Some((r.stored.draining, std::mem::take(&mut r.cancelled)))
    }

    /// Hands over up to `max` of the runner's leases made durable by commit `committed`,
    /// each to expire at `expires`. Also a heartbeat at `now`.
    pub(super) fn acquire(
        &mut self,
        name: &str,
        max: usize,
        committed: u64,
        jobs: &mut JobTable,
        now: Millis,
        expires: Millis,
    ) -> Vec<Lease> {
        let mut leases = Vec::new();
        let Some(r) = self.by_name.get_mut(name) else {
            return leases;
        };
        r.stored.last_heartbeat_ms = now;
        while leases.len() < max {
            // Only leases already durable: a crash must not forget a lease a runner holds.
            if r.outbox.front().is_some_and(|&(_, seq)| seq > committed) {
                break;
            }
            let Some((id, _)) = r.outbox.pop_front() else {
                break;
            };
            let Some(j) = jobs.get_mut(id) else {
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
        leases
    }
}
