//! `rustci serve`: the control plane server, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rustci_control::server::live::DEFAULT_CHANGE_LOG_KEEP;
use rustci_control::server::{self, ServeOptions};
use rustci_control::store::sqlite::SyncMode;

pub const SERVE_EXAMPLES: &str = "\
Examples:
  # Local mode (loopback only; only this user may call it: the CLI and runners of this
  # user send the token in ~/.config/rustci/local.token, created 0600 at first start):
  rustci serve --listen 127.0.0.1:7411 --data-dir ./rustci-data

  # With API keys and runner tokens, TLS and Prometheus metrics:
  rustci serve --listen 0.0.0.0:7411 --data-dir /var/lib/rustci --auth /etc/rustci/auth.toml \\
      --tls-cert server.pem --tls-key server.key --metrics-listen 127.0.0.1:9411

  # The same with the dashboard for the team on https://ci.example.com:7412/ (keys
  # cross the network over TLS only, and the page's cookie is Secure):
  rustci serve --listen 0.0.0.0:7411 --data-dir /var/lib/rustci --auth /etc/rustci/auth.toml \\
      --tls-cert server.pem --tls-key server.key --http-listen 0.0.0.0:7412

  # With the dashboard and its JSON API on http://127.0.0.1:7412/ (local mode: open
  # http://127.0.0.1:7412/?token=$(cat ~/.config/rustci/local.token) once):
  rustci serve --listen 127.0.0.1:7411 --data-dir ./rustci-data --http-listen 127.0.0.1:7412

  # Two replicas coordinating through Redis (one leads, the other stands by):
  rustci serve --listen 127.0.0.1:7411 --data-dir ./d --store mongodb://db:27017 --redis redis://127.0.0.1:6379

  # MongoDB as the store, EASY backfilling:
  rustci serve --listen 127.0.0.1:7411 --data-dir ./d --store mongodb://localhost:27017 --policy easy

The auth file (TOML):
  runner_tokens = [\"runner-token-1\"]
  operator_tokens = [\"operator-token-1\"]   # see every tenant (dashboard, CLI)
  [[tenant]]
  name = \"team-a\"
  api_keys = [\"key-for-team-a\"]

Logs go to stderr; set RUST_LOG (default: info).";

/// `IP:PORT` or `HOST:PORT` (`localhost:9411`): a host name is resolved once, at start,
/// to its first address.
fn resolve(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not IP:PORT or HOST:PORT that resolves: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, default_value = "127.0.0.1:7411", value_parser = resolve)]
    listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    #[arg(long, default_value = "rustci-data")]
    data_dir: PathBuf,
    /// Auth file (TOML: runner_tokens and [[tenant]] api_keys). Without it: local mode,
    /// which serves only callers with this user's token ($RUSTCI_CONFIG_DIR/local.token,
    /// default ~/.config/rustci/local.token; the CLI and runners send it by default).
    #[arg(long)]
    auth: Option<PathBuf>,
    /// Store: `sqlite` (embedded, in --data-dir) or a `mongodb://` URI (the database
    /// its path names, else `rustci`).
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// SQLite durability: `full` fsyncs every group commit (survives power loss);
    /// `normal` survives process crashes such as kill -9, not power loss.
    #[arg(long, value_enum, default_value = "full")]
    sync: Sync,
    /// Scheduling policy: fcfs, easy, easy++, priority, fairshare, sef, qos, fairshare-spf,
    /// qos-spf (shortest predicted first inside each tenant / QoS class; see --model).
    #[arg(long, default_value = "fairshare")]
    policy: String,
    /// A runner silent this long loses its leases (milliseconds).
    #[arg(long, default_value_t = 15_000)]
    lease_ttl_ms: i64,
    /// TLS certificate chain (PEM) of the gRPC port and the dashboard (--http-listen is
    /// then HTTPS); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint (HTTP): IP:PORT or HOST:PORT.
    #[arg(long, value_parser = resolve)]
    metrics_listen: Option<SocketAddr>,
    /// Address of the dashboard and its JSON API (HTTP: `/`, `/api/v1/jobs`, ...):
    /// IP:PORT or HOST:PORT. Loopback only without --auth, as --listen.
    #[arg(long, value_parser = resolve)]
    http_listen: Option<SocketAddr>,
    /// Redis URL (redis://HOST:PORT): coordinate replicas; start as a standby and serve
    /// only while holding the leader lease.
    #[arg(long)]
    redis: Option<String>,
    /// TTL of the leader lease with --redis (milliseconds).
    #[arg(long, default_value_t = 5_000, requires = "redis")]
    leader_lease_ms: u64,
    /// Estimate run times with the current model in DIR (written by `rustci retrain
    /// --out DIR`); a new version there is picked up without a restart.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// How often --model DIR is checked for a new version (milliseconds).
    #[arg(long, default_value_t = 5_000, requires = "model")]
    model_poll_ms: u64,
    /// Autoscaler policy behind `rustci fleet advice` (GetScalingAdvice) and --scale-hook:
    /// static, reactive or predictive.
    #[arg(long, default_value = "reactive", value_parser = rustci_scheduler::ScalePolicy::named)]
    autoscaler: rustci_scheduler::ScalePolicy,
    /// Run this shell command when a pool's desired runner count changes, with
    /// RUSTCI_POOL, RUSTCI_DESIRED, RUSTCI_CURRENT and RUSTCI_REASON in its environment
    /// (at most one run per pool at a time; failures are logged).
    #[arg(long, value_name = "CMD")]
    scale_hook: Option<String>,
    /// How often --scale-hook checks the advice (milliseconds).
    #[arg(long, default_value_t = 10_000, requires = "scale_hook")]
    scale_interval_ms: u64,
    /// Job versions the change log keeps; a watch or dashboard stream resuming from an
    /// older revision is told to re-read (FAILED_PRECONDITION, the stream's `reload`).
    #[arg(long, default_value_t = DEFAULT_CHANGE_LOG_KEEP, value_parser = clap::value_parser!(u64).range(1..))]
    change_log_keep: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Sync {
    Full,
    Normal,
}

pub async fn run(a: ServeArgs) -> Result<()> {
    let mongodb = match a.store.as_str() {
        "sqlite" | "" => None,
        uri if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") => {
            Some(uri.to_string())
        }
        other => bail!("--store: expected `sqlite` or a mongodb:// URI, got {other:?}"),
    };
    let opts = ServeOptions {
        listen: a.listen,
        data_dir: a.data_dir,
        mongodb,
        sync: match a.sync {
            Sync::Full => SyncMode::Full,
            Sync::Normal => SyncMode::Normal,
        },
        auth: a.auth,
        policy: a.policy,
        lease_ttl_ms: a.lease_ttl_ms,
        tls: a.tls_cert.zip(a.tls_key),
        metrics_listen: a.metrics_listen,
        http_listen: a.http_listen,
        redis: a.redis,
        leader_lease_ms: a.leader_lease_ms,
        model_dir: a.model,
        model_poll_ms: a.model_poll_ms,
        autoscaler: a.autoscaler,
        scale_hook: a.scale_hook,
        scale_interval_ms: a.scale_interval_ms,
        change_log_keep: a.change_log_keep,
        ..ServeOptions::default()
    };
    let running = server::start(opts).await?;
    if let Some(m) = running.metrics_addr {
        tracing::info!(%m, "metrics on http://{m}/metrics");
    }
    if let Some(h) = running.http_addr {
        tracing::info!(%h, "dashboard on http://{h}/ (sign in once with ?token=KEY)");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("waiting for Ctrl-C")?;
            tracing::info!("interrupted; stopping");
        }
        _ = term.recv() => tracing::info!("SIGTERM; stopping"),
    }
    running.stop().await
}
