//! The job table: unfinished jobs, finished ones whose end is not durable yet, jobs
//! parked outside the core, the idempotency keys, and the job and revision counters.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::store::{JobState, StoredJob};

/// Every job the live state knows without asking the store.
#[derive(Debug, Default)]
pub(super) struct JobTable {
    /// Unfinished jobs (queued and leased).
    unfinished: HashMap<u64, StoredJob>,
    /// Finished jobs whose finishing change is not durable yet (they left `unfinished`).
    finished_pending: HashMap<u64, StoredJob>,
    /// (tenant, request_id) of unfinished jobs and of finished ones not yet durable.
    requests: HashMap<(String, String), u64>,
    /// Hashes of every (tenant, request_id) ever stored, loaded at start.
    seen_requests: HashSet<u64>,
    /// Jobs whose labels no pool has yet: they wait outside the core until one does.
    parked: BTreeSet<u64>,
    next_id: u64,
    /// The latest revision: every job change gets the next one.
    revision: u64,
}

impl JobTable {
    /// Forgets every job; ids and revisions continue after the store's highest, and
    /// `seen_requests` are the store's request hashes ([`request_hash`]). Finished jobs
    /// not yet durable stay until [`JobTable::forget_finished`].
    pub(super) fn reset(&mut self, max_job_id: u64, max_revision: u64, seen: HashSet<u64>) {
        self.unfinished.clear();
        self.requests.clear();
        self.seen_requests = seen;
        self.parked.clear();
        self.next_id = max_job_id + 1;
        self.revision = max_revision;
    }

    /// Forgets the finished jobs whose end was not durable (their commit failed).
    pub(super) fn forget_finished(&mut self) {
        self.finished_pending.clear();
    }

    pub(super) fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision of the next job change.
    pub(super) fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// The id [`JobTable::next_id`] hands out next.
    pub(super) fn peek_id(&self) -> u64 {
        self.next_id
    }

    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn len(&self) -> usize {
        self.unfinished.len()
    }

    /// An unfinished job.
    pub(super) fn get(&self, id: u64) -> Option<&StoredJob> {
        self.unfinished.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut StoredJob> {
        self.unfinished.get_mut(&id)
    }

    /// An unfinished job, or a finished one whose end is not durable yet.
    pub(super) fn known(&self, id: u64) -> Option<&StoredJob> {
        self.unfinished
            .get(&id)
            .or_else(|| self.finished_pending.get(&id))
    }

    pub(super) fn unfinished(&self) -> impl Iterator<Item = &StoredJob> {
        self.unfinished.values()
    }

    /// An unfinished job from the store, at start.
    pub(super) fn restore(&mut self, job: StoredJob) {
        self.requests
            .insert((job.tenant.clone(), job.request_id.clone()), job.id);
        self.unfinished.insert(job.id, job);
    }

    /// A new job.
    pub(super) fn add(&mut self, job: StoredJob) {
        self.seen_requests
            .insert(request_hash(&job.tenant, &job.request_id));
        self.requests
            .insert((job.tenant.clone(), job.request_id.clone()), job.id);
        self.unfinished.insert(job.id, job);
    }

    /// The job a (tenant, request_id) made, if this table still holds it.
    pub(super) fn by_request(&self, tenant: &str, request_id: &str) -> Option<&StoredJob> {
        let id = self
            .requests
            .get(&(tenant.to_string(), request_id.to_string()))?;
        self.known(*id)
    }

    /// Whether a (tenant, request_id) may have been stored before: `false` is certain (a
    /// new request needs no store lookup), `true` may be a hash collision.
    pub(super) fn maybe_seen(&self, tenant: &str, request_id: &str) -> bool {
        self.seen_requests
            .contains(&request_hash(tenant, request_id))
    }

    /// Ends an unfinished job: it moves to the finished jobs not yet durable.
    pub(super) fn finish(&mut self, id: u64) -> Option<StoredJob> {
        let done = self.unfinished.remove(&id)?;
        self.finished_pending.insert(done.id, done.clone());
        Some(done)
    }

    /// Puts a leased job back in the queue (memory only) at the next revision; returns
    /// the new version for the store.
    pub(super) fn requeue(&mut self, id: u64) -> Option<StoredJob> {
        let revision = self.next_revision();
        let j = self.unfinished.get_mut(&id)?;
        j.state = JobState::Queued;
        j.runner = None;
        j.lease_expires_ms = None;
        j.start_ms = None;
        j.revision = revision;
        Some(j.clone())
    }

    /// A committed job version is durable: a finished job leaves the table (its
    /// idempotency key too; the store answers for it from now on).
    pub(super) fn durable(&mut self, job: &StoredJob) {
        if !job.state.is_finished() {
            return;
        }
        self.requests
            .remove(&(job.tenant.clone(), job.request_id.clone()));
        if self
            .finished_pending
            .get(&job.id)
            .is_some_and(|p| p.revision <= job.revision)
        {
            self.finished_pending.remove(&job.id);
        }
    }

    pub(super) fn park(&mut self, id: u64) {
        self.parked.insert(id);
    }

    /// Takes a job out of the parked ones; whether it was parked.
    pub(super) fn unpark(&mut self, id: u64) -> bool {
        self.parked.remove(&id)
    }

    pub(super) fn is_parked(&self, id: u64) -> bool {
        self.parked.contains(&id)
    }

    /// The parked jobs, in id order.
    pub(super) fn parked(&self) -> impl Iterator<Item = u64> + '_ {
        self.parked.iter().copied()
    }

    /// Every parked job, in id order; none stays parked.
    pub(super) fn take_parked(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.parked)
    }
}

/// The hash of a (tenant, request_id) kept for every stored job.
pub(super) fn request_hash(tenant: &str, request_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tenant, request_id).hash(&mut h);
    h.finish()
}
