//! The server role, `rustci serve`: the live scheduler behind gRPC, with health
//! checking, reflection, a lease ticker, metrics and (optionally) TLS. This file starts
//! it; [`state`] is what its tasks share, [`services`] the gRPC services (one file each),
//! [`live`] the driver of the scheduling core, [`flush`] group commit, [`coord`] Redis
//! coordination of replicas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustci_scheduler::PolicyConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub mod auth;
pub mod coord;
pub mod counters;
pub mod data_dir;
pub mod flush;
pub mod http;
pub mod live;
pub mod locking;
pub mod metrics;
pub mod model_reload;
pub mod scale_hook;
pub mod services;
pub mod state;
pub mod status;

use self::auth::Auth;
use self::coord::{CoordConfig, Coordinator};
use self::data_dir::DataDirLock;
use self::live::{Clock, Live, LiveConfig, SystemClock};
use self::services::fleet::FleetApi;
use self::services::jobs::JobApi;
use self::services::pipelines::PipelineApi;
use self::services::runners::RunnerApi;
use self::state::Shared;
use crate::local_token;
use crate::pb;
use crate::store::mongo::MongoStore;
use crate::store::sqlite::{SqliteStore, SyncMode};
use crate::store::{ReadOnlyStore, Store};

/// Everything `rustci serve` takes.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the embedded SQLite store in `data_dir`; `Some(uri)`: MongoDB.
    pub mongodb: Option<String>,
    pub sync: SyncMode,
    pub auth: Option<PathBuf>,
    /// Local mode (no `auth`): the owner's token file (`crate::local_token`), created when
    /// missing; `None`: [`crate::local_token::default_path`].
    pub local_token: Option<PathBuf>,
    pub policy: String,
    pub lease_ttl_ms: i64,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub metrics_listen: Option<SocketAddr>,
    /// `Some(addr)`: serve the dashboard and its JSON API over HTTP here
    /// (`crate::server::http`).
    pub http_listen: Option<SocketAddr>,
    pub record_decisions: bool,
    /// `Some(url)`: coordinate with other replicas on this Redis (`crate::server::coord`):
    /// start as a standby and serve only while holding the leader lease.
    pub redis: Option<String>,
    /// The leader lease's TTL with `redis` (how long a crashed leader keeps the
    /// standbys waiting); renewed every third of it.
    pub leader_lease_ms: u64,
    /// `Some(dir)`: estimate run times with the current model version in `dir`
    /// (`rustci retrain --out dir`), and switch to a new version when one appears.
    pub model_dir: Option<PathBuf>,
    /// How often `model_dir` is checked for a new version.
    pub model_poll_ms: u64,
    /// The autoscaler policy of `GetScalingAdvice` and the scale hook.
    pub autoscaler: rustci_scheduler::ScalePolicy,
    /// `Some(cmd)`: run `cmd` when a pool's desired runner count changes
    /// (`crate::server::scale_hook`).
    pub scale_hook: Option<String>,
    /// How often the scale hook checks the advice.
    pub scale_interval_ms: u64,
    /// Job versions the change log keeps for `WatchJobs` and the dashboard's stream to
    /// resume from (`LiveConfig::change_log_keep`).
    pub change_log_keep: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7411)),
            data_dir: PathBuf::from("rustci-data"),
            mongodb: None,
            sync: SyncMode::Full,
            auth: None,
            local_token: None,
            policy: "fairshare".into(),
            lease_ttl_ms: 15_000,
            change_log_keep: LiveConfig::default().change_log_keep,
            tls: None,
            metrics_listen: None,
            http_listen: None,
            record_decisions: false,
            redis: None,
            leader_lease_ms: 5_000,
            model_dir: None,
            model_poll_ms: 5_000,
            autoscaler: rustci_scheduler::ScalePolicy::Reactive,
            scale_hook: None,
            scale_interval_ms: 10_000,
        }
    }
}

/// A server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// With `ServeOptions::http_listen`: the dashboard's address.
    pub http_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    /// With `ServeOptions::redis`.
    pub coordinator: Option<Coordinator>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    background: Vec<JoinHandle<()>>,
    /// The data directory's lock (shared with `--redis`, none with MongoDB), held until
    /// dropped.
    _data_dir_lock: Option<DataDirLock>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight calls, and returns.
    pub async fn stop(mut self) -> Result<()> {
        // Hand over first: step down and release the lease so a standby takes over now.
        if let Some(c) = self.coordinator.take() {
            c.shutdown().await;
        }
        // Ends open WatchJobs streams; graceful shutdown waits for every open call.
        self.shared.closing.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for b in &self.background {
            b.abort();
        }
        (&mut self.task)
            .await
            .context("server task")?
            .context("server")?;
        Ok(())
    }

    /// Waits until the server ends (it does on its own only on error).
    pub async fn wait(mut self) -> Result<()> {
        (&mut self.task)
            .await
            .context("server task")?
            .context("server")?;
        Ok(())
    }
}

pub fn open_store(opts: &ServeOptions) -> Result<Box<dyn Store>> {
    Ok(match &opts.mongodb {
        Some(uri) => Box::new(
            MongoStore::connect(
                uri,
                &crate::store::mongo::database_of(uri)
                    .map_err(|e| anyhow::anyhow!("--store: not a valid MongoDB URI: {}", e.kind))?,
            )
            .with_context(|| "connecting to MongoDB".to_string())?,
        ),
        None => Box::new(SqliteStore::open(&opts.data_dir, opts.sync)?),
    })
}

/// The store of a server that is about to write to it (at start, or as a new leader),
/// taken over ([`Store::take_over`]) before anything is loaded from it: every earlier
/// writer is fenced off from then on, so the state loaded next is the last one written.
fn open_store_to_write(opts: &ServeOptions) -> Result<Box<dyn Store>> {
    let mut store = open_store(opts)?;
    store
        .take_over()
        .context("taking the store over as its only writer")?;
    Ok(store)
}

/// Binds and starts serving; returns once the port is open.
pub async fn start(opts: ServeOptions) -> Result<RunningServer> {
    start_with_clock(opts, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(opts: ServeOptions, clock: Arc<dyn Clock>) -> Result<RunningServer> {
    let mut tenant_weights = std::collections::BTreeMap::new();
    let auth_file = match &opts.auth {
        Some(path) => {
            let (auth, file) = Auth::load(path)?;
            for t in &file.tenants {
                if let Some(w) = t.weight {
                    tenant_weights.insert(t.name.clone(), w);
                }
            }
            Some(auth)
        }
        None => None,
    };
    // Local mode trusts the machine's own user only: every port it opens is loopback.
    let listeners = [
        ("--listen", Some(opts.listen)),
        ("--http-listen", opts.http_listen),
    ];
    for (flag, addr) in listeners {
        if let Some(addr) = addr.filter(|a| auth_file.is_none() && !a.ip().is_loopback()) {
            bail!(
                "refusing {flag} {addr} without --auth: local mode (no authentication) only listens on loopback"
            );
        }
    }
    if opts.lease_ttl_ms < 100 {
        bail!(
            "--lease-ttl-ms must be at least 100, got {}",
            opts.lease_ttl_ms
        );
    }
    if opts.redis.is_some() && opts.leader_lease_ms < 100 {
        bail!(
            "the leader lease TTL must be at least 100 ms, got {}",
            opts.leader_lease_ms
        );
    }
    // One writer per SQLite store: replicas with --redis share the directory on purpose
    // (the leader lease picks the writer), a MongoDB store does not live in it.
    let data_dir_lock = match (&opts.mongodb, &opts.redis) {
        (Some(_), _) => None,
        (None, None) => Some(DataDirLock::acquire(&opts.data_dir, opts.listen)?),
        (None, Some(_)) => Some(DataDirLock::acquire_shared(&opts.data_dir, opts.listen)?),
    };
    let model = match &opts.model_dir {
        None => None,
        Some(dir) => Some(model_reload::load(dir).await?),
    };
    let config = LiveConfig {
        model: model.as_ref().map(|(handle, _, _)| handle.clone()),
        policy: PolicyConfig::named(&opts.policy)?,
        lease_ttl_ms: opts.lease_ttl_ms,
        record_decisions: opts.record_decisions,
        group_commit: true,
        autoscaler: opts.autoscaler,
        change_log_keep: opts.change_log_keep,
        tenant_weights,
        ..LiveConfig::default()
    };
    // With Redis a replica starts as a standby on an empty placeholder state; it
    // rebuilds from the store when it wins the lease (crate::server::coord).
    let live = match &opts.redis {
        None => Live::open(config.clone(), clock.clone(), open_store_to_write(&opts)?)
            .context("rebuilding state from the store")?,
        Some(_) => coord::standby_live(config.clone(), clock.clone())?,
    };
    // After the store's checks: a store that cannot be served is named first.
    let auth = match auth_file {
        Some(auth) => auth,
        None => {
            let path = match &opts.local_token {
                Some(p) => p.clone(),
                None => local_token::default_path()?,
            };
            let token = local_token::load_or_create(&path)
                .context("local mode (no --auth) needs the owner's token")?;
            tracing::info!(token_file = %path.display(), "no --auth file: local mode, only callers with this user's token are served");
            Auth::local(token)
        }
    };
    let changes = live.subscribe();
    let shared = Shared::new(live, auth);
    let mut background = Vec::new();
    background.push(flush::spawn_flusher(shared.clone()));
    if let (Some(dir), Some((handle, path, evaluation))) = (&opts.model_dir, model) {
        *locking::lock(&shared.model_evaluation)
            .map_err(|_| anyhow::anyhow!("model evaluation lock poisoned"))? = Some(evaluation);
        background.push(model_reload::spawn_watcher(
            dir.clone(),
            handle,
            path,
            Duration::from_millis(opts.model_poll_ms.max(10)),
            shared.clone(),
        ));
    }
    let coordinator = match &opts.redis {
        None => {
            background.push(coord::forward_changes(changes, shared.events.clone()));
            None
        }
        Some(url) => {
            shared
                .leader
                .store(false, std::sync::atomic::Ordering::SeqCst);
            *shared
                .history
                .lock()
                .map_err(|_| anyhow::anyhow!("history store lock poisoned"))? =
                Some(ReadOnlyStore::new(open_store(&opts)?));
            let coord_config = CoordConfig {
                lease_ttl: Duration::from_millis(opts.leader_lease_ms),
                ..CoordConfig::new(url.clone())
            };
            let store_opts = opts.clone();
            let open_live: coord::OpenLive = Arc::new(move || {
                Live::open(
                    config.clone(),
                    clock.clone(),
                    open_store_to_write(&store_opts)?,
                )
                .context("rebuilding state from the store")
            });
            Some(Coordinator::start(coord_config, shared.clone(), open_live).await?)
        }
    };

    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let ticker = shared.clone();
    let every = Duration::from_millis((opts.lease_ttl_ms / 5).max(20) as u64);
    // A gap this long between two passes means this process did not run (SIGSTOP, a
    // starved machine): runners were not silent, this server was deaf.
    let stalled = Duration::from_millis((opts.lease_ttl_ms / 2).max(1) as u64);
    background.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            interval.tick().await;
            let gap = last.elapsed();
            last = tokio::time::Instant::now();
            if let Ok(mut live) = ticker.live() {
                if gap > stalled {
                    tracing::warn!(gap_ms = gap.as_millis() as u64, "this server did not run for a while; runners get a lease TTL to be heard again");
                    live.excuse_silence();
                }
                if let Err(e) = live.tick() {
                    tracing::error!(error = %e, "periodic scheduling pass failed");
                }
            }
        }
    }));
    if let Some(cmd) = &opts.scale_hook {
        background.push(scale_hook::spawn(
            shared.clone(),
            cmd.clone(),
            Duration::from_millis(opts.scale_interval_ms.max(10)),
        ));
    }
    let metrics_addr = match opts.metrics_listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics {a}"))?;
            let ma = l.local_addr()?;
            background.push(tokio::spawn(metrics::serve(l, shared.clone())));
            Some(ma)
        }
        None => None,
    };
    let http_addr = match opts.http_listen {
        Some(a) => {
            let (bound, task) = http::spawn(a, shared.clone(), opts.tls.as_ref()).await?;
            background.push(task);
            Some(bound)
        }
        None => None,
    };

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::job_service_server::JobServiceServer<JobApi>>()
        .await;
    health_reporter
        .set_serving::<pb::runner_service_server::RunnerServiceServer<RunnerApi>>()
        .await;
    health_reporter
        .set_serving::<pb::fleet_service_server::FleetServiceServer<FleetApi>>()
        .await;
    health_reporter
        .set_serving::<pb::pipeline_service_server::PipelineServiceServer<PipelineApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building reflection service")?;

    let mut builder = Server::builder().tcp_nodelay(true);
    if let Some((cert, key)) = &opts.tls {
        let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("TLS configuration")?;
    }
    let router = builder
        .add_service(health)
        .add_service(reflection)
        .add_service(pb::job_service_server::JobServiceServer::new(JobApi(
            shared.clone(),
        )))
        .add_service(pb::runner_service_server::RunnerServiceServer::new(
            RunnerApi(shared.clone()),
        ))
        .add_service(pb::fleet_service_server::FleetServiceServer::new(FleetApi(
            shared.clone(),
        )))
        .add_service(pb::pipeline_service_server::PipelineServiceServer::new(
            PipelineApi(shared.clone()),
        ));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming(listener), async {
            let _ = rx.await;
        }),
    );
    tracing::info!(%addr, "rustci serving");
    Ok(RunningServer {
        addr,
        metrics_addr,
        http_addr,
        shared,
        coordinator,
        shutdown: Some(tx),
        task,
        background,
        _data_dir_lock: data_dir_lock,
    })
}

/// The connections `listener` accepts, with `TCP_NODELAY` set. `Server::tcp_nodelay`
/// applies only to listeners tonic binds itself; without it on accepted sockets, Nagle's
/// algorithm and the client's delayed ACKs held small replies for 40 ms (BENCHMARKS.md).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let conn = accepted
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(conn.nodelay().expect("TCP_NODELAY readable"));
    }
}
