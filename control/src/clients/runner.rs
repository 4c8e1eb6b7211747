//! The reference runner (`rustci runner`): registers with a pool, heartbeats, long-polls
//! for leases, runs each job's `command` with `sh -c` (up to `slots` slots at once) and
//! reports how it ended with the lease's fencing token.
//!
//! Failure handling:
//! - server unreachable (down, restarting): every call is retried with capped
//!   exponential backoff; running jobs keep running and their completions are retried
//!   until the server answers (a restarted server keeps the leases of known runners);
//! - the server does not know this runner (`NOT_FOUND`: it missed its heartbeats and its
//!   leases went back to the queue): the jobs leased before are killed (their
//!   completions would be refused) and the runner registers again with the same id;
//! - a heartbeat lists a job in `cancelled_jobs`: its process group is killed and no
//!   completion is sent;
//! - leases that arrive late (the runner was paused or starved between asking and
//!   reading the answer, long enough that the server may have given up on it and
//!   leased the jobs elsewhere) are started only after a heartbeat sent since then says
//!   the server still knows the runner and has not taken them back.
//!
//! Each job runs in its own process group (so a kill reaches the whole command), with
//! `RUSTCI_JOB` (`jobs/N`), `RUSTCI_RUNNER` (`runners/ID`), `RUSTCI_FENCING_TOKEN`,
//! `RUSTCI_TENANT` and `RUSTCI_ATTEMPT` in its environment, under a guard process that
//! kills that group when the runner dies, SIGKILL included (`super::job_guard`); a runner
//! started again with the same id first kills what its dead predecessor left running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::sync::Notify;
use tonic::{Code, Request, Status};

use crate::clients::client::{connect_lazy, is_transient, Backoff, Clients};
use crate::clients::job_guard;
use crate::pb;
use crate::perms;

/// What `rustci runner` takes.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub server: String,
    /// Runner token (`authorization: Bearer`); `None` for a local-mode server.
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
    pub pool: String,
    pub labels: Vec<String>,
    pub slots: u32,
    /// Stable runner id; `None`: `{pool}-{host}-{pid}`.
    pub id: Option<String>,
    /// Long-poll wait of AcquireJobs, milliseconds.
    pub wait_ms: i64,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:7411".into(),
            token: None,
            ca: None,
            pool: "default".into(),
            labels: Vec::new(),
            slots: 1,
            id: None,
            wait_ms: 5_000,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn default_id(pool: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let clean: String = format!("{pool}-{host}-{}", std::process::id())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.chars().take(120).collect()
}

#[derive(Debug)]
struct RunningJob {
    slots: u32,
    token: u64,
    /// Registration generation the lease was acquired under.
    generation: u64,
    kill: Arc<Notify>,
}

#[derive(Debug)]
struct State {
    opts: RunnerOptions,
    clients: Clients,
    id: String,
    /// `runners/{id}`.
    name: String,
    heartbeat_ms: AtomicI64,
    /// Bumped at every (re-)registration.
    generation: AtomicU64,
    register_lock: tokio::sync::Mutex<()>,
    running: Mutex<HashMap<String, RunningJob>>,
    /// A job ended: slots may be free.
    freed: Notify,
    spawner: Spawner,
    /// This binary: each job runs under `rustci __job-guard`.
    guard_exe: PathBuf,
    /// Where each running job's process group is recorded (`job_guard::state_dir`);
    /// `None` when there is no such directory (no `$XDG_STATE_HOME` or `$HOME`).
    state_dir: Option<PathBuf>,
}

type SpawnRequest = (
    tokio::process::Command,
    tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
);

/// Forks the job guards from one thread that lives as long as the runner: a guard's
/// parent-death signal is sent when the *thread* that forked it ends, and tokio's
/// blocking-pool threads end when idle.
#[derive(Debug)]
struct Spawner(std::sync::mpsc::Sender<SpawnRequest>);

impl Spawner {
    fn start() -> Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("rustci-job-spawner".into())
            .spawn(move || {
                // tokio's child handling needs its runtime.
                let _rt = runtime.enter();
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Self(tx))
    }

    async fn spawn(&self, cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
        let gone = || std::io::Error::other("the job spawner thread ended");
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.send((cmd, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

impl State {
    /// How long after a request was sent the server surely still counts this runner
    /// alive (it drops a runner silent for its lease TTL, three heartbeat intervals):
    /// two intervals, a margin for the request's own trip.
    fn sure_alive_for(&self) -> Duration {
        Duration::from_millis(2 * self.heartbeat_ms.load(Ordering::SeqCst).max(1) as u64)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningJob>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn free_slots(&self) -> u32 {
        let used: u32 = self.running().values().map(|j| j.slots.max(1)).sum();
        self.opts.slots.saturating_sub(used)
    }

    async fn register_once(&self) -> Result<pb::Runner, Status> {
        let mut c = self.clients.runners.clone();
        let mut req = Request::new(pb::RegisterRunnerRequest {
            runner_id: self.id.clone(),
            pool: self.opts.pool.clone(),
            labels: self.opts.labels.clone(),
            slots: self.opts.slots,
        });
        req.set_timeout(Duration::from_secs(10));
        Ok(c.register_runner(req).await?.into_inner())
    }

    /// Registers (again) unless someone already did after `seen_generation`. Retries
    /// transient failures forever; other refusals are fatal.
    async fn register(&self, seen_generation: u64) -> Result<()> {
        let _guard = self.register_lock.lock().await;
        if self.generation.load(Ordering::SeqCst) != seen_generation {
            return Ok(());
        }
        let mut backoff = Backoff::new();
        let mut failures = 0u32;
        loop {
            match self.register_once().await {
                Ok(r) => {
                    let hb = if r.heartbeat_interval_ms > 0 {
                        r.heartbeat_interval_ms
                    } else {
                        1_000
                    };
                    self.heartbeat_ms.store(hb, Ordering::SeqCst);
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(runner = %r.name, pool = %r.pool, slots = r.slots, heartbeat_ms = hb, "registered");
                    return Ok(());
                }
                Err(s) if is_transient(&s) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(code = ?s.code(), message = s.message(), "cannot register yet; retrying");
                    }
                    backoff.wait().await;
                }
                Err(s) => bail!("registration refused: {:?}: {}", s.code(), s.message()),
            }
        }
    }

    /// The server forgot this runner: every lease acquired under `generation` or before
    /// is gone. Kill those jobs and register again.
    async fn lost(&self, generation: u64) -> Result<()> {
        let killed: Vec<String> = {
            let running = self.running();
            running
                .iter()
                .filter(|(_, j)| j.generation <= generation)
                .map(|(name, j)| {
                    j.kill.notify_one();
                    name.clone()
                })
                .collect()
        };
        if !killed.is_empty() {
            tracing::warn!(jobs = ?killed, "the server no longer knows this runner: its leases are lost, stopping their jobs");
        }
        self.register(generation).await
    }

    fn kill(&self, job: &str) {
        if let Some(j) = self.running().get(job) {
            tracing::info!(job, "cancelled by the server: stopping it");
            j.kill.notify_one();
        }
    }

    fn kill_all(&self) {
        for j in self.running().values() {
            j.kill.notify_one();
        }
    }
}

/// Runs the runner until it fails fatally (a refused registration) or gets Ctrl-C /
/// SIGTERM (then its jobs are killed; their leases expire and they are requeued).
pub async fn run(opts: RunnerOptions) -> Result<()> {
    if opts.slots == 0 {
        bail!("--slots must be at least 1");
    }
    let clients = connect_lazy(&opts.server, opts.token.as_deref(), opts.ca.as_deref())?;
    let id = opts.id.clone().unwrap_or_else(|| default_id(&opts.pool));
    let name = format!("runners/{id}");
    let guard_exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the rustci binary to run job guards: {e}"))?;
    let state_dir = job_guard::state_dir(&id);
    match &state_dir {
        Some(dir) => {
            perms::private_dir(dir)
                .map_err(|e| anyhow::anyhow!("runner state directory {}: {e}", dir.display()))?;
            // Before taking work: a predecessor with this id killed with its guards
            // (SIGKILL of both) may have left jobs running.
            let killed = job_guard::kill_leftovers(dir, &name)
                .map_err(|e| anyhow::anyhow!("runner state directory {}: {e}", dir.display()))?;
            if !killed.is_empty() {
                tracing::warn!(groups = ?killed, "killed jobs a previous runner with this id left running");
            }
        }
        None => tracing::warn!(
            "no $XDG_STATE_HOME or $HOME: jobs are not recorded, so a restarted runner cannot \
             kill what a runner killed together with its job guards left running"
        ),
    }
    let state = Arc::new(State {
        name,
        id,
        clients,
        heartbeat_ms: AtomicI64::new(1_000),
        generation: AtomicU64::new(0),
        register_lock: tokio::sync::Mutex::new(()),
        running: Mutex::new(HashMap::new()),
        freed: Notify::new(),
        spawner: Spawner::start()?,
        guard_exe,
        state_dir,
        opts,
    });
    state.register(0).await?;

    let hb = tokio::spawn(heartbeat_loop(state.clone()));
    let acq = tokio::spawn(acquire_loop(state.clone()));
    let result = tokio::select! {
        r = hb => r.map_err(anyhow::Error::from).and_then(|r| r),
        r = acq => r.map_err(anyhow::Error::from).and_then(|r| r),
        r = shutdown_signal() => {
            r?;
            tracing::info!("stopping: killing running jobs");
            Ok(())
        }
    };
    state.kill_all();
    // Give the job tasks a moment to kill their process groups.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !state.running().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    result
}

async fn shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn heartbeat_loop(state: Arc<State>) -> Result<()> {
    let mut failures = 0u32;
    loop {
        let every = state.heartbeat_ms.load(Ordering::SeqCst).max(50) as u64;
        tokio::time::sleep(Duration::from_millis(every)).await;
        let generation = state.generation.load(Ordering::SeqCst);
        let mut req = Request::new(pb::HeartbeatRequest {
            name: state.name.clone(),
        });
        req.set_timeout(Duration::from_millis(every.max(1_000)));
        let mut c = state.clients.runners.clone();
        match c.heartbeat(req).await {
            Ok(r) => {
                if failures > 0 {
                    tracing::info!(failures, "heartbeats go through again");
                }
                failures = 0;
                for job in &r.get_ref().cancelled_jobs {
                    state.kill(job);
                }
            }
            Err(s) if s.code() == Code::NotFound => state.lost(generation).await?,
            Err(s) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(code = ?s.code(), message = s.message(), failures, "heartbeat failed; running jobs keep running");
                }
            }
        }
    }
}

async fn acquire_loop(state: Arc<State>) -> Result<()> {
    let mut backoff = Backoff::new();
    let mut failures = 0u32;
    loop {
        let free = state.free_slots();
        if free == 0 {
            // Wait for a job to end (bounded, in case a wake-up is missed).
            let _ = tokio::time::timeout(Duration::from_secs(1), state.freed.notified()).await;
            continue;
        }
        let generation = state.generation.load(Ordering::SeqCst);
        let wait_ms = state.opts.wait_ms.clamp(0, 60_000);
        let mut req = Request::new(pb::AcquireJobsRequest {
            name: state.name.clone(),
            max_jobs: free,
            wait_ms,
        });
        req.set_timeout(Duration::from_millis(wait_ms as u64 + 10_000));
        let mut c = state.clients.runners.clone();
        let sent = tokio::time::Instant::now();
        match c.acquire_jobs(req).await {
            Ok(r) => {
                if failures > 0 {
                    tracing::info!(failures, "connected again");
                }
                failures = 0;
                backoff.reset();
                let mut leases = r.into_inner().leases;
                if !leases.is_empty() && sent.elapsed() > state.sure_alive_for() {
                    leases = confirm_leases(&state, leases, generation).await?;
                }
                for lease in leases {
                    start_job(&state, lease, generation);
                }
            }
            Err(s) if s.code() == Code::NotFound => state.lost(generation).await?,
            Err(s) if is_transient(&s) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(code = ?s.code(), message = s.message(), failures, "acquiring jobs failed; retrying");
                }
                backoff.wait().await;
            }
            Err(s) => {
                tracing::error!(code = ?s.code(), message = s.message(), "acquiring jobs refused");
                backoff.wait().await;
            }
        }
    }
}

/// Leases that came back later than [`State::sure_alive_for`] after they were asked
/// for: the server may have counted this runner lost meanwhile and leased the jobs to
/// another runner. A heartbeat sent now settles it: `NOT_FOUND` (lost: none of them may
/// run), or the jobs the server took back in `cancelled_jobs`; the rest are still this
/// runner's. Retried until a heartbeat answers within that time.
async fn confirm_leases(
    state: &Arc<State>,
    mut leases: Vec<pb::Lease>,
    generation: u64,
) -> Result<Vec<pb::Lease>> {
    tracing::warn!(
        leases = leases.len(),
        "leases arrived late (was this runner paused?); checking with the server before starting them"
    );
    let mut backoff = Backoff::new();
    loop {
        // Under the registration lock: no re-registration is in flight while the
        // heartbeat is, so an answer that knows this runner knows the registration the
        // leases were given to (a registration after the server lost the runner holds
        // none of them, and its heartbeat would not list them as taken back).
        let registering = state.register_lock.lock().await;
        if state.generation.load(Ordering::SeqCst) != generation {
            return Ok(Vec::new());
        }
        let sent = tokio::time::Instant::now();
        let mut req = Request::new(pb::HeartbeatRequest {
            name: state.name.clone(),
        });
        req.set_timeout(state.sure_alive_for().max(Duration::from_secs(1)));
        let answer = state.clients.runners.clone().heartbeat(req).await;
        drop(registering);
        match answer {
            Ok(r) => {
                let taken_back = &r.get_ref().cancelled_jobs;
                leases.retain(|l| l.job.as_ref().is_none_or(|j| !taken_back.contains(&j.name)));
                if sent.elapsed() <= state.sure_alive_for() {
                    return Ok(leases);
                }
            }
            Err(s) if s.code() == Code::NotFound => {
                state.lost(generation).await?;
                return Ok(Vec::new());
            }
            Err(_) => backoff.wait().await,
        }
    }
}

fn start_job(state: &Arc<State>, lease: pb::Lease, generation: u64) {
    let Some(job) = lease.job else {
        tracing::warn!("a lease without a job; ignored");
        return;
    };
    let kill = Arc::new(Notify::new());
    {
        let mut running = state.running();
        if let Some(old) = running.get(&job.name) {
            if old.token == lease.fencing_token {
                // The same lease handed out again (e.g. by a restarted server): it runs.
                return;
            }
            // A newer lease of a job we still run: the old run's lease is gone.
            tracing::warn!(job = %job.name, old = old.token, new = lease.fencing_token, "job leased again; stopping the old run");
            old.kill.notify_one();
        }
        running.insert(
            job.name.clone(),
            RunningJob {
                slots: job.slots,
                token: lease.fencing_token,
                generation,
                kill: kill.clone(),
            },
        );
    }
    tokio::spawn(run_job(state.clone(), job, lease.fencing_token, kill));
}

fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

async fn run_job(state: Arc<State>, job: pb::Job, token: u64, kill: Arc<Notify>) {
    let started_ms = now_ms();
    tracing::info!(job = %job.name, token, command_bytes = job.command.len(), "starting");
    let mut cmd = tokio::process::Command::new(&state.guard_exe);
    cmd.arg(job_guard::SUBCOMMAND)
        .arg("--parent")
        .arg(std::process::id().to_string());
    if let Some(dir) = &state.state_dir {
        cmd.arg("--record")
            .arg(job_guard::record_path(dir, &job.name));
    }
    cmd.arg("--")
        .arg(&job.command)
        .env("RUSTCI_JOB", &job.name)
        .env("RUSTCI_RUNNER", &state.name)
        .env("RUSTCI_FENCING_TOKEN", token.to_string())
        .env("RUSTCI_TENANT", &job.tenant)
        .env("RUSTCI_ATTEMPT", job.attempts.to_string())
        .stdin(Stdio::null())
        // Out of the runner's process group: a Ctrl-C at the runner's terminal reaches
        // the runner, which stops its jobs without completing them (they are requeued),
        // not the guards, which would end the jobs as failed.
        .process_group(0);
    let spawned = state.spawner.spawn(cmd).await;
    let outcome = match spawned {
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "cannot start the job guard");
            Some((false, 127))
        }
        Ok(mut child) => {
            let guard = child.id();
            tokio::select! {
                status = child.wait() => match status {
                    Ok(st) => Some((st.success(), exit_code(&st))),
                    Err(e) => {
                        tracing::error!(job = %job.name, error = %e, "waiting for the job failed");
                        Some((false, -1))
                    }
                },
                _ = kill.notified() => {
                    // The guard kills the job's process group and exits.
                    if let Some(pid) = guard {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                    let _ = child.wait().await;
                    None
                }
            }
        }
    };
    let ended_ms = now_ms();
    if let Some((success, code)) = outcome {
        tracing::info!(job = %job.name, success, exit_code = code, ms = ended_ms - started_ms, "finished");
        complete(
            &state, &job.name, token, success, code, started_ms, ended_ms,
        )
        .await;
    } else {
        tracing::info!(job = %job.name, "killed; no completion sent");
    }
    {
        let mut running = state.running();
        if running.get(&job.name).is_some_and(|j| j.token == token) {
            running.remove(&job.name);
        }
    }
    state.freed.notify_one();
}

async fn complete(
    state: &State,
    job: &str,
    token: u64,
    success: bool,
    exit_code: i32,
    started_ms: i64,
    ended_ms: i64,
) {
    let mut backoff = Backoff::new();
    let mut failures = 0u32;
    loop {
        let mut req = Request::new(pb::CompleteJobRequest {
            job: job.to_string(),
            runner: state.name.clone(),
            fencing_token: token,
            success,
            exit_code,
            started_ms,
            ended_ms,
        });
        req.set_timeout(Duration::from_secs(10));
        let mut c = state.clients.runners.clone();
        match c.complete_job(req).await {
            Ok(_) => return,
            Err(s) if is_transient(&s) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(job, code = ?s.code(), message = s.message(), "reporting the completion failed; retrying");
                }
                backoff.wait().await;
            }
            Err(s) => {
                // FAILED_PRECONDITION: the lease is gone (or a retry of a completion the
                // server already stored); NOT_FOUND: the server forgot this runner.
                tracing::warn!(job, code = ?s.code(), message = s.message(), "completion refused");
                return;
            }
        }
    }
}
