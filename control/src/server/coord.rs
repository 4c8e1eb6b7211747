//! Redis coordination of replicas: one leader at a time, and job events fanned out to
//! every replica.
//!
//! # Leader lease
//!
//! Replicas share one store (a SQLite data directory or MongoDB) and one Redis. The
//! leader holds the key `<prefix>:leader` (default prefix `rustci`), whose value is its
//! unique replica id:
//!
//! * acquire: `SET key id NX PX ttl`; a standby polls at least every `ttl/3` (sooner
//!   when `PTTL` says the key is about to expire);
//! * renew: every `ttl/3`, a Lua compare-and-`PEXPIRE` that extends the key only if it
//!   still holds our id;
//! * release (graceful shutdown): a Lua compare-and-`DEL`.
//!
//! Fencing: a leader counts its lease as valid until `sent + ttl - margin`, where `sent`
//! is when its last successful acquire/renew was *sent* (Redis starts the TTL later, when
//! it runs the command) and `margin = max(ttl/10, 20 ms)`. When a renewal returns 0 (the
//! key is gone or someone else's), or when that deadline passes without a successful
//! renewal (Redis slow or unreachable), the replica stops serving at once
//! (`Shared.leader = false`, so every RPC answers UNAVAILABLE) and then waits for the
//! request holding the live lock, if any, to finish. So an old leader has stopped writing
//! before the key can expire and another replica can take it. The same deadline is kept
//! in `Shared` and checked by every request (`Shared::live`): a leader paused past it
//! (SIGSTOP, a VM freeze) refuses work from the moment it runs again, before its lease
//! loop has noticed.
//!
//! None of that stops a commit already on its way to the store when the process paused.
//! The store does: a new leader takes the store over ([`Store::take_over`]) before it
//! loads it, which raises the store's writer epoch, and every commit checks its own epoch
//! inside its transaction. The old leader's late commit fails with
//! [`StoreError::Fenced`], writes nothing, and its live state stops serving for good
//! (the next term, if it wins the lease again, opens a new one).
//!
//! Becoming leader rebuilds the live state from the shared store: a fresh store handle
//! and [`Live::open`] (the old leader may have written since; a fresh handle also
//! refreshes the store's cached fencing-token high-water mark), swapped into
//! `Shared.live`, and only then `Shared.leader = true`. A standby's own `Live` is a
//! placeholder on [`StandbyStore`] (empty, refuses writes): a standby never writes to the
//! shared store, not even the requeues and leases a `reload` would commit.
//!
//! # Job events
//!
//! The leader publishes every committed job change (the [`StoredJob`] as JSON) on the
//! channel `<prefix>:jobs`. Every replica (the leader too) subscribes and feeds what it
//! receives into `Shared.events`, the broadcast `WatchJobs` streams read; the leader also
//! feeds its own changes into it directly. Duplicates (the leader's own changes coming
//! back from Redis) are dropped by revision in `WatchJobs`. Redis pub/sub is at most once:
//! a message lost while a subscriber reconnects shows up as a revision gap at the next
//! event, and `WatchJobs` then re-reads the missed changes from the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::server::live::{Clock, Live, LiveConfig};
use crate::server::state::Shared;
use crate::store::{
    Batch, JobFilter, PipelineFilter, Snapshot, Store, StoreError, StoredJob, StoredPipeline,
};

/// Builds the leader's live state from the shared store (blocking: opens the store and
/// rebuilds everything from it).
pub type OpenLive = Arc<dyn Fn() -> Result<Live> + Send + Sync>;

/// Where and how replicas coordinate.
#[derive(Debug, Clone)]
pub struct CoordConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Keys and channels are `<prefix>:leader` and `<prefix>:jobs`.
    pub prefix: String,
    /// How long a leader's lease lasts without renewal: the longest a crashed leader
    /// keeps the others waiting.
    pub lease_ttl: Duration,
    /// This replica's id, the lease key's value; unique per process and coordinator.
    pub replica_id: String,
}

impl CoordConfig {
    pub const DEFAULT_PREFIX: &'static str = "rustci";
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_millis(5_000);

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.into(),
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            replica_id: unique_replica_id(),
        }
    }

    pub fn leader_key(&self) -> String {
        format!("{}:leader", self.prefix)
    }

    pub fn jobs_channel(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// How often a leader renews and a standby polls.
    pub fn renew_every(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How long before the lease could expire in Redis a leader stops serving.
    pub fn fencing_margin(&self) -> Duration {
        (self.lease_ttl / 10).max(Duration::from_millis(20))
    }
}

/// `host-pid-n-nanos`: unique per process and per coordinator in it.
pub fn unique_replica_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{host}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
         else return 0 end",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             return redis.call('DEL', KEYS[1]) \
         else return 0 end",
    )
});

/// The store under a standby's placeholder [`Live`]: empty, and it refuses every write
/// (a standby must never write to the shared store).
#[derive(Debug, Default, Clone, Copy)]
pub struct StandbyStore;

impl StandbyStore {
    fn refused() -> StoreError {
        StoreError::Other("this replica is a standby; the leader serves requests".into())
    }
}

impl Store for StandbyStore {
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            Ok(())
        } else {
            Err(Self::refused())
        }
    }
    fn take_over(&mut self) -> Result<(), StoreError> {
        Err(Self::refused())
    }
    fn load(&mut self, _finished_since_ms: i64) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }
    fn get_job(&mut self, _id: u64) -> Result<Option<StoredJob>, StoreError> {
        Err(Self::refused())
    }
    fn list_jobs(
        &mut self,
        _filter: &JobFilter,
        _after_id: u64,
        _limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        Err(Self::refused())
    }
    fn for_each_request(&mut self, _f: &mut dyn FnMut(&str, &str)) -> Result<(), StoreError> {
        // The placeholder knows no jobs; the leader's state is loaded on promotion.
        Ok(())
    }
    fn get_pipeline(&mut self, _id: u64) -> Result<Option<StoredPipeline>, StoreError> {
        Err(Self::refused())
    }
    fn list_pipelines(
        &mut self,
        _filter: &PipelineFilter,
        _after_id: u64,
        _limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        // The placeholder runs no pipelines (its reload asks for the running ones).
        Ok(Vec::new())
    }
    fn pipeline_jobs(&mut self, _id: u64) -> Result<Vec<StoredJob>, StoreError> {
        Err(Self::refused())
    }
    fn changes_since(
        &mut self,
        _after: u64,
        _tenant: Option<&str>,
        _limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        Err(Self::refused())
    }
    fn history(
        &mut self,
        _since_ms: i64,
        _limit: usize,
    ) -> Result<Vec<rustci_datasets::record::JobRecord>, StoreError> {
        Err(Self::refused())
    }
}

/// A standby's placeholder live state (nothing in it; it never writes).
pub fn standby_live(config: LiveConfig, clock: Arc<dyn Clock>) -> Result<Live> {
    Live::open(config, clock, Box::new(StandbyStore)).context("opening the standby state")
}

/// Feeds the local live state's committed changes into `events` (what `WatchJobs`
/// reads) until the live state is dropped.
pub fn forward_changes(
    mut changes: broadcast::Receiver<StoredJob>,
    events: broadcast::Sender<StoredJob>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(job) => {
                    let _ = events.send(job);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Watchers see the gap in revisions and re-read from the store.
                    tracing::warn!(missed = n, "job event forwarder fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// Lease state shared by the lease loop and a promotion in progress.
#[derive(Debug, Default)]
struct Role {
    /// We hold the lease in Redis (as far as we know).
    held: bool,
    /// Bumped on every gain and loss, so a promotion that finishes after the lease was
    /// lost (or lost and won again) does not make us leader.
    epoch: u64,
    /// The tasks forwarding the current leader live state's changes.
    forwarders: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    config: CoordConfig,
    client: Client,
    shared: Arc<Shared>,
    role: Mutex<Role>,
    leader_tx: watch::Sender<bool>,
    subscribed_tx: watch::Sender<bool>,
}

/// One replica's side of the coordination: the lease loop and the event subscriber.
pub struct Coordinator {
    inner: Arc<Inner>,
    lease_task: JoinHandle<()>,
    sub_task: JoinHandle<()>,
    promotion: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("replica_id", &self.inner.config.replica_id)
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

async fn connect(client: &Client, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A connection made on first use and dropped after an error (the next use reconnects).
struct Conn {
    client: Client,
    timeout: Duration,
    conn: Option<MultiplexedConnection>,
}

impl Conn {
    async fn get(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        match self.conn {
            Some(ref mut c) => Ok(c),
            None => {
                let c = connect(&self.client, self.timeout).await?;
                Ok(self.conn.insert(c))
            }
        }
    }

    fn failed(&mut self) {
        self.conn = None;
    }
}

impl Coordinator {
    /// Starts coordinating `shared`: it becomes a standby (`leader = false`) at once and
    /// the leader when it wins the lease, with its live state rebuilt by `open_live`.
    /// Fails if Redis does not answer a PING.
    pub async fn start(
        config: CoordConfig,
        shared: Arc<Shared>,
        open_live: OpenLive,
    ) -> Result<Self> {
        let client = Client::open(config.url.as_str())
            .with_context(|| format!("invalid Redis URL {:?}", config.url))?;
        let mut conn = connect(&client, config.lease_ttl)
            .await
            .with_context(|| format!("connecting to Redis at {}", config.url))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .with_context(|| format!("Redis at {} does not answer PING", config.url))?;
        shared.leader.store(false, Ordering::SeqCst);
        shared.set_lease_until(None);
        let (leader_tx, _) = watch::channel(false);
        let (subscribed_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            client,
            shared,
            role: Mutex::new(Role::default()),
            leader_tx,
            subscribed_tx,
        });
        tracing::info!(replica = %inner.config.replica_id, key = %inner.config.leader_key(),
            ttl_ms = inner.config.lease_ttl.as_millis() as u64, "Redis coordination: starting as standby");
        let promotion = Arc::new(Mutex::new(None));
        let sub_task = tokio::spawn(subscribe_loop(inner.clone()));
        let lease_task = tokio::spawn(lease_loop(
            inner.clone(),
            open_live,
            promotion.clone(),
            Some(conn),
        ));
        Ok(Self {
            inner,
            lease_task,
            sub_task,
            promotion,
        })
    }

    pub fn replica_id(&self) -> &str {
        &self.inner.config.replica_id
    }

    pub fn config(&self) -> &CoordConfig {
        &self.inner.config
    }

    /// Whether this replica serves (holds the lease and has rebuilt its state).
    pub fn is_leader(&self) -> bool {
        self.inner.shared.leader.load(Ordering::SeqCst)
    }

    /// Follows leadership transitions.
    pub fn leader_changes(&self) -> watch::Receiver<bool> {
        self.inner.leader_tx.subscribe()
    }

    /// Waits up to `timeout` for `is_leader() == want`.
    pub async fn wait_leader(&self, want: bool, timeout: Duration) -> bool {
        let mut rx = self.leader_changes();
        tokio::time::timeout(timeout, rx.wait_for(|&l| l == want))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits up to `timeout` until the job-event subscription is active.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.subscribed_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|&s| s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Graceful stop: stops serving, releases the lease (compare-and-delete) so a
    /// standby takes over without waiting for the TTL, and ends the background tasks.
    pub async fn shutdown(self) {
        self.stop_tasks();
        let was_leader = step_down(&self.inner, "shutting down");
        let key = self.inner.config.leader_key();
        let id = self.inner.config.replica_id.clone();
        let released = async {
            let mut conn = connect(&self.inner.client, self.inner.config.renew_every()).await?;
            RELEASE
                .key(&key)
                .arg(&id)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.inner.config.renew_every(), released).await {
            Ok(Ok(1)) => tracing::info!(replica = %id, "released the leader lease"),
            Ok(Ok(_)) if was_leader => {
                tracing::warn!(replica = %id, "the leader lease was no longer ours at shutdown")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(replica = %id, error = %e, "could not release the leader lease; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(replica = %id, "releasing the leader lease timed out; it expires on its own")
            }
        }
    }

    /// Crash simulation: ends every background task without stepping down or releasing
    /// the lease, like a process that died (the lease expires after its TTL).
    pub fn kill(&self) {
        self.stop_tasks();
    }

    fn stop_tasks(&self) {
        self.lease_task.abort();
        self.sub_task.abort();
        if let Some(p) = lock(&self.promotion).take() {
            p.abort();
        }
        for f in lock(&self.inner.role).forwarders.drain(..) {
            f.abort();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops serving at once; returns whether we were leader. Then waits (off the runtime)
/// for a request holding the live lock to finish: `Shared::live` checks the flag again
/// once it holds the lock, so nothing writes after that.
fn step_down(inner: &Arc<Inner>, why: &str) -> bool {
    let was_leader = {
        let mut role = lock(&inner.role);
        let was = role.held;
        role.held = false;
        role.epoch += 1;
        inner.shared.set_lease_until(None);
        inner.shared.leader.swap(false, Ordering::SeqCst) || was
    };
    inner.leader_tx.send_replace(false);
    if was_leader {
        tracing::warn!(replica = %inner.config.replica_id, reason = why, "lost the leader lease: now standby");
        let shared = inner.shared.clone();
        tokio::task::spawn_blocking(move || drop(lock(&shared.live)));
    }
    was_leader
}

async fn lease_loop(
    inner: Arc<Inner>,
    open_live: OpenLive,
    promotion: Arc<Mutex<Option<JoinHandle<()>>>>,
    first: Option<MultiplexedConnection>,
) {
    let cfg = &inner.config;
    let key = cfg.leader_key();
    let id = cfg.replica_id.clone();
    let ttl_ms = cfg.lease_ttl.as_millis() as u64;
    let every = cfg.renew_every();
    let margin = cfg.fencing_margin();
    let mut conn = Conn {
        client: inner.client.clone(),
        timeout: every,
        conn: first,
    };
    // Some(deadline) while we hold the lease: when we must have stopped serving.
    let mut valid_until: Option<Instant> = None;
    let mut errors = 0u32;
    loop {
        let sent = Instant::now();
        match valid_until {
            None => {
                let attempt = async {
                    let c = conn.get().await?;
                    let got: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&id)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut *c)
                        .await?;
                    if got.is_some() {
                        return Ok::<_, redis::RedisError>(None);
                    }
                    // Someone holds it: come back when it would expire, or at the poll
                    // interval, whichever is sooner.
                    let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut *c).await?;
                    Ok(Some(pttl))
                };
                let wait = match tokio::time::timeout(every, attempt).await {
                    Ok(Ok(None)) => {
                        errors = 0;
                        valid_until = Some(sent + cfg.lease_ttl - margin);
                        inner
                            .shared
                            .set_lease_until(valid_until.map(Instant::into_std));
                        let epoch = {
                            let mut role = lock(&inner.role);
                            role.held = true;
                            role.epoch += 1;
                            role.epoch
                        };
                        tracing::info!(replica = %id, "won the leader lease; rebuilding state from the store");
                        let task = tokio::spawn(promote(inner.clone(), open_live.clone(), epoch));
                        if let Some(old) = lock(&promotion).replace(task) {
                            old.abort();
                        }
                        every
                    }
                    Ok(Ok(Some(pttl))) => {
                        errors = 0;
                        let until_expiry = Duration::from_millis(pttl.max(0) as u64 + 2);
                        until_expiry.clamp(Duration::from_millis(5), every)
                    }
                    Ok(Err(e)) => {
                        conn.failed();
                        errors += 1;
                        if errors == 1 || errors.is_power_of_two() {
                            tracing::warn!(replica = %id, error = %e, "cannot reach Redis to acquire the leader lease");
                        }
                        every
                    }
                    Err(_) => {
                        conn.failed();
                        errors += 1;
                        if errors == 1 || errors.is_power_of_two() {
                            tracing::warn!(replica = %id, "Redis timed out acquiring the leader lease");
                        }
                        every
                    }
                };
                tokio::time::sleep_until(sent + wait).await;
            }
            Some(deadline) => {
                if sent >= deadline {
                    step_down(&inner, "the lease could not be renewed in time");
                    valid_until = None;
                    continue;
                }
                let attempt = async {
                    let c = conn.get().await?;
                    RENEW
                        .key(&key)
                        .arg(&id)
                        .arg(ttl_ms)
                        .invoke_async::<i64>(&mut *c)
                        .await
                };
                let next = match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(Ok(1)) => {
                        errors = 0;
                        valid_until = Some(sent + cfg.lease_ttl - margin);
                        inner
                            .shared
                            .set_lease_until(valid_until.map(Instant::into_std));
                        sent + every
                    }
                    Ok(Ok(_)) => {
                        step_down(&inner, "the lease is no longer ours");
                        valid_until = None;
                        continue;
                    }
                    Ok(Err(e)) => {
                        conn.failed();
                        tracing::warn!(replica = %id, error = %e, "renewing the leader lease failed; retrying");
                        (Instant::now() + every / 4).min(deadline)
                    }
                    Err(_) => {
                        conn.failed();
                        deadline
                    }
                };
                tokio::time::sleep_until(next).await;
            }
        }
    }
}

/// Rebuilds the live state from the shared store and, if the lease is still ours (same
/// epoch), starts serving.
async fn promote(inner: Arc<Inner>, open_live: OpenLive, epoch: u64) {
    let current = || {
        let role = lock(&inner.role);
        role.held && role.epoch == epoch
    };
    let started = Instant::now();
    let live = loop {
        let open = open_live.clone();
        match tokio::task::spawn_blocking(move || open()).await {
            Ok(Ok(live)) => break live,
            Ok(Err(e)) => {
                tracing::error!(replica = %inner.config.replica_id, error = %format!("{e:#}"), "rebuilding state from the store failed; retrying")
            }
            Err(e) => {
                tracing::error!(replica = %inner.config.replica_id, error = %e, "rebuilding state from the store panicked; retrying")
            }
        }
        tokio::time::sleep(inner.config.renew_every()).await;
        if !current() {
            return;
        }
    };
    let local = live.subscribe();
    let publish = live.subscribe();
    let old = {
        let mut guard = lock(&inner.shared.live);
        let old = std::mem::replace(&mut *guard, live);
        inner.shared.live.clear_poison();
        old
    };
    drop(old);
    let forwarders = vec![
        forward_changes(local, inner.shared.events.clone()),
        tokio::spawn(publish_loop(inner.clone(), publish)),
    ];
    let mut role = lock(&inner.role);
    for f in std::mem::replace(&mut role.forwarders, forwarders) {
        f.abort();
    }
    if role.held && role.epoch == epoch {
        inner.shared.leader.store(true, Ordering::SeqCst);
        drop(role);
        inner.leader_tx.send_replace(true);
        tracing::info!(replica = %inner.config.replica_id,
            rebuild_ms = started.elapsed().as_millis() as u64, "now the leader: serving");
    }
}

/// Publishes the leader's committed job changes on `<prefix>:jobs`.
async fn publish_loop(inner: Arc<Inner>, mut changes: broadcast::Receiver<StoredJob>) {
    let channel = inner.config.jobs_channel();
    let mut conn = Conn {
        client: inner.client.clone(),
        timeout: inner.config.renew_every(),
        conn: None,
    };
    loop {
        let job = match changes.recv().await {
            Ok(job) => job,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "job event publisher fell behind");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let payload = match serde_json::to_string(&job) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, job = job.id, "cannot encode a job event");
                continue;
            }
        };
        let sent = async {
            let c = conn.get().await?;
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query_async::<i64>(&mut *c)
                .await
        };
        match tokio::time::timeout(inner.config.renew_every(), sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                conn.failed();
                tracing::warn!(error = %e, job = job.id, "publishing a job event failed");
            }
            Err(_) => {
                conn.failed();
                tracing::warn!(job = job.id, "publishing a job event timed out");
            }
        }
    }
}

/// Subscribes to `<prefix>:jobs` (reconnecting as needed) and feeds `Shared.events`.
async fn subscribe_loop(inner: Arc<Inner>) {
    let channel = inner.config.jobs_channel();
    let mut failures = 0u32;
    loop {
        let subscribed = async {
            let mut pubsub = inner.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(inner.config.lease_ttl, subscribed).await {
            Ok(Ok(pubsub)) => {
                failures = 0;
                inner.subscribed_tx.send_replace(true);
                tracing::debug!(replica = %inner.config.replica_id, %channel, "subscribed to job events");
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    match serde_json::from_slice::<StoredJob>(msg.get_payload_bytes()) {
                        Ok(job) => {
                            let _ = inner.shared.events.send(job);
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed job event"),
                    }
                }
                inner.subscribed_tx.send_replace(false);
                tracing::warn!(replica = %inner.config.replica_id, "job event subscription ended; resubscribing");
            }
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(replica = %inner.config.replica_id, error = %e, "cannot subscribe to job events");
                }
            }
            Err(_) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(replica = %inner.config.replica_id, "subscribing to job events timed out");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100) * failures.clamp(1, 10)).await;
    }
}
