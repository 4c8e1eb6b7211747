//! `rustci`: the server, the job CLI and the reference runner of rustci's live control
//! plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rustci_control::client::{self, job_json, parse_state, state_name, Clients};
use rustci_control::pb;
use rustci_control::runner::{self, RunnerOptions};
use rustci_control::server::{self, ServeOptions};
use rustci_control::store::sqlite::SyncMode;
use tokio_stream::StreamExt;
use tracing_subscriber::EnvFilter;

mod bench_cli;
mod retrain_cli;

const TOP_EXAMPLES: &str = "\
Examples:
  rustci serve --listen 127.0.0.1:7411 --data-dir ./rustci-data
  rustci runner --server http://127.0.0.1:7411 --pool linux --labels linux,x86_64 --slots 4
  rustci submit --server http://127.0.0.1:7411 --tenant team-a --labels linux --command 'make test'
  rustci jobs list --state queued
  rustci jobs explain jobs/42
  rustci bench --server http://127.0.0.1:7411 --jobs 20000 --concurrency 64 --format json";

const SERVE_EXAMPLES: &str = "\
Examples:
  # Local mode (no authentication; loopback only), embedded SQLite store:
  rustci serve --listen 127.0.0.1:7411 --data-dir ./rustci-data

  # With API keys and runner tokens, TLS and Prometheus metrics:
  rustci serve --listen 0.0.0.0:7411 --data-dir /var/lib/rustci --auth /etc/rustci/auth.toml \\
      --tls-cert server.pem --tls-key server.key --metrics-listen 127.0.0.1:9411

  # Two replicas coordinating through Redis (one leads, the other stands by):
  rustci serve --listen 127.0.0.1:7411 --data-dir ./d --store mongodb://db:27017 --redis redis://127.0.0.1:6379

  # MongoDB as the store, EASY backfilling:
  rustci serve --listen 127.0.0.1:7411 --data-dir ./d --store mongodb://localhost:27017 --policy easy

The auth file (TOML):
  runner_tokens = [\"runner-token-1\"]
  [[tenant]]
  name = \"team-a\"
  api_keys = [\"key-for-team-a\"]

Logs go to stderr; set RUST_LOG (default: info).";

const SUBMIT_EXAMPLES: &str = "\
Examples:
  rustci submit --tenant team-a --labels linux,x86_64 --command 'make test'
  rustci submit --server https://ci.example:7411 --ca ca.pem --api-key \"$KEY\" \\
      --labels macos --slots 2 --qos urgent --requested-ms 600000 --command './build.sh' --format json
  # Retrying with the same request id never makes a second job:
  rustci submit --tenant team-a --request-id build-1234 --labels linux --command true";

const JOBS_EXAMPLES: &str = "\
Examples:
  rustci jobs list --state queued --format json
  rustci jobs get jobs/42
  rustci jobs watch --from-revision 1200 --format json
  rustci jobs cancel jobs/42
  rustci jobs explain 42";

const RUNNER_EXAMPLES: &str = "\
Examples:
  rustci runner --server http://127.0.0.1:7411 --pool linux --labels linux,x86_64 --slots 4
  RUSTCI_RUNNER_TOKEN=... rustci runner --server https://ci.example:7411 --ca ca.pem \\
      --pool mac --labels macos --slots 2 --id mac-mini-7

Each job runs as `sh -c COMMAND` in its own process group, with RUSTCI_JOB (jobs/N),
RUSTCI_RUNNER, RUSTCI_FENCING_TOKEN, RUSTCI_TENANT and RUSTCI_ATTEMPT set. The runner
survives server restarts (it retries with backoff) and runs until killed.";

const FLEET_EXAMPLES: &str = "\
Examples:
  rustci fleet stats
  rustci fleet advice --format json";

#[derive(Debug, Parser)]
#[command(
    name = "rustci",
    version,
    about = "rustci: CI/batch job scheduler control plane",
    after_help = TOP_EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the control plane server.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Submit a job.
    #[command(after_help = SUBMIT_EXAMPLES)]
    Submit(SubmitArgs),
    /// Read, watch, cancel and explain jobs.
    #[command(after_help = JOBS_EXAMPLES)]
    Jobs {
        #[command(subcommand)]
        cmd: JobsCmd,
    },
    /// Run the reference runner: lease jobs and run their commands with `sh -c`.
    #[command(after_help = RUNNER_EXAMPLES)]
    Runner(RunnerArgs),
    /// Queue statistics and scaling advice.
    #[command(after_help = FLEET_EXAMPLES)]
    Fleet {
        #[command(subcommand)]
        cmd: FleetCmd,
    },
    /// Retrain the run-time model from job history and write a new version if no worse.
    #[command(after_help = retrain_cli::RETRAIN_EXAMPLES)]
    Retrain(retrain_cli::RetrainArgs),
    /// Load generator: full job lifecycles against a server; lifecycles/s and
    /// submit-to-lease latency.
    #[command(after_help = bench_cli::BENCH_EXAMPLES)]
    Bench(bench_cli::BenchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Sync {
    Full,
    Normal,
}

#[derive(Debug, Args)]
struct Conn {
    /// Server address: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "RUSTCI_SERVER", default_value = "http://127.0.0.1:7411")]
    server: String,
    /// Tenant API key (sent as `authorization: Bearer`); not needed in local mode.
    #[arg(long, env = "RUSTCI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate, for https://.
    #[arg(long, env = "RUSTCI_CA")]
    ca: Option<PathBuf>,
}

impl Conn {
    async fn connect(&self) -> Result<Clients> {
        client::connect(&self.server, self.api_key.as_deref(), self.ca.as_deref()).await
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, default_value = "127.0.0.1:7411")]
    listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    #[arg(long, default_value = "rustci-data")]
    data_dir: PathBuf,
    /// Auth file (TOML: runner_tokens and [[tenant]] api_keys). Without it: local mode.
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
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint (HTTP).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
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
}

#[derive(Debug, Args)]
struct SubmitArgs {
    #[command(flatten)]
    conn: Conn,
    /// Tenant; with an API key it must be the key's tenant or omitted.
    #[arg(long, env = "RUSTCI_TENANT")]
    tenant: Option<String>,
    /// Labels a runner must have, comma separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Shell command the runner runs with `sh -c`.
    #[arg(long)]
    command: String,
    /// Idempotency key (default: a new unique one). A repeat returns the first job.
    #[arg(long)]
    request_id: Option<String>,
    /// Slots on one runner.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// QoS class: urgent, standard, batch.
    #[arg(long)]
    qos: Option<String>,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Run-time estimate and timeout, milliseconds.
    #[arg(long, default_value_t = 0)]
    requested_ms: i64,
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    job_name: Option<String>,
    #[arg(long)]
    branch: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum JobsCmd {
    /// List jobs, oldest first.
    #[command(
        after_help = "Examples:\n  rustci jobs list\n  rustci jobs list --state succeeded --limit 0 --format json"
    )]
    List {
        #[command(flatten)]
        conn: Conn,
        /// Tenant (default: the key's tenant; all tenants in local mode).
        #[arg(long, env = "RUSTCI_TENANT")]
        tenant: Option<String>,
        /// queued, running (leased), succeeded, failed, cancelled, either case (default:
        /// any).
        #[arg(long)]
        state: Option<String>,
        /// At most this many jobs; 0 = all (default: all with --format json, 100 as a
        /// table).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one job.
    #[command(
        after_help = "Examples:\n  rustci jobs get jobs/42\n  rustci jobs get 42 --format json"
    )]
    Get {
        #[command(flatten)]
        conn: Conn,
        /// jobs/N or N.
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Follow every change of your jobs (runs until interrupted).
    #[command(
        after_help = "Examples:\n  rustci jobs watch\n  rustci jobs watch --from-revision 1200 --format json"
    )]
    Watch {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, env = "RUSTCI_TENANT")]
        tenant: Option<String>,
        /// Only changes after this revision (0: the whole history).
        #[arg(long, default_value_t = 0)]
        from_revision: u64,
        /// Only events whose job is in this state.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Cancel a queued or running job.
    #[command(after_help = "Examples:\n  rustci jobs cancel jobs/42")]
    Cancel {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Say why a job waits (or runs, or ended).
    #[command(
        after_help = "Examples:\n  rustci jobs explain jobs/42\n  rustci jobs explain 42 --format json"
    )]
    Explain {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum FleetCmd {
    /// Queue lengths and waits per pool and tenant.
    #[command(after_help = "Examples:\n  rustci fleet stats --format json")]
    Stats {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Desired runners per pool.
    #[command(after_help = "Examples:\n  rustci fleet advice")]
    Advice {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Args)]
struct RunnerArgs {
    /// Server address: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "RUSTCI_SERVER", default_value = "http://127.0.0.1:7411")]
    server: String,
    /// Runner token (from the server's auth file); not needed in local mode.
    #[arg(long, env = "RUSTCI_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) for https://.
    #[arg(long, env = "RUSTCI_CA")]
    ca: Option<PathBuf>,
    /// Pool; every runner of a pool has the same labels and slots.
    #[arg(long)]
    pool: String,
    /// Labels of this runner, comma separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Jobs' slots it runs at once.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Stable runner id (default: POOL-HOST-PID).
    #[arg(long)]
    id: Option<String>,
    /// Long-poll wait for work, milliseconds.
    #[arg(long, default_value_t = 5_000)]
    wait_ms: i64,
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match &cli.cmd {
        Cmd::Serve(_) | Cmd::Runner(_) => "info",
        _ => "warn",
    };
    init_logging(default_log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(s) = e.downcast_ref::<tonic::Status>() {
                eprintln!("error: {:?}: {}", s.code(), s.message());
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Submit(a) => submit(a).await,
        Cmd::Jobs { cmd } => jobs(cmd).await,
        Cmd::Runner(a) => {
            runner::run(RunnerOptions {
                server: a.server,
                token: a.token,
                ca: a.ca,
                pool: a.pool,
                labels: a.labels,
                slots: a.slots,
                id: a.id,
                wait_ms: a.wait_ms,
            })
            .await
        }
        Cmd::Fleet { cmd } => fleet(cmd).await,
        Cmd::Retrain(a) => retrain_cli::run(a).await,
        Cmd::Bench(a) => bench_cli::run(a).await,
    }
}

async fn serve(a: ServeArgs) -> Result<()> {
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
        redis: a.redis,
        leader_lease_ms: a.leader_lease_ms,
        model_dir: a.model,
        model_poll_ms: a.model_poll_ms,
        autoscaler: a.autoscaler,
        scale_hook: a.scale_hook,
        scale_interval_ms: a.scale_interval_ms,
        ..ServeOptions::default()
    };
    let running = server::start(opts).await?;
    if let Some(m) = running.metrics_addr {
        tracing::info!(%m, "metrics on http://{m}/metrics");
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

fn unique_request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cli-{nanos:x}-{:x}", std::process::id())
}

fn job_name(n: &str) -> String {
    if n.starts_with("jobs/") {
        n.to_string()
    } else {
        format!("jobs/{n}")
    }
}

fn state_filter(s: Option<&str>) -> Result<pb::JobState> {
    match s {
        None => Ok(pb::JobState::Unspecified),
        Some(s) => parse_state(s).with_context(|| {
            format!("--state: expected queued, leased, succeeded, failed or cancelled, got {s:?}")
        }),
    }
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn cell(s: &str, w: usize) -> String {
    if s.chars().count() > w {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    } else {
        s.to_string()
    }
}

/// Jobs `jobs list` shows as a table unless `--limit` says otherwise.
const TABLE_LIMIT: usize = 100;

const JOB_HEADER: &str = "NAME          TENANT        STATE      LABELS            RUNNER            WAIT_MS  ATTEMPTS  EXIT  EST                START                 COMMAND";

fn job_row(j: &pb::Job) -> String {
    let wait = if j.start_ms > 0 {
        (j.start_ms - j.submit_ms).to_string()
    } else {
        "-".into()
    };
    let exit = if j.end_ms > 0 && state_name(j.state) != "cancelled" {
        j.exit_code.to_string()
    } else {
        "-".into()
    };
    format!(
        "{:<13} {:<13} {:<10} {:<17} {:<17} {:>7}  {:>8}  {:>4}  {:<18} {:<21} {}",
        cell(&j.name, 13),
        cell(&j.tenant, 13),
        state_name(j.state),
        cell(&j.labels.join(","), 17),
        cell(j.runner.strip_prefix("runners/").unwrap_or(&j.runner), 17),
        wait,
        j.attempts,
        exit,
        cell(&client::estimate_text(j), 18),
        cell(&client::start_text(j, client::now_unix_ms()), 21),
        cell(&j.command, 60)
    )
}

fn print_job(j: &pb::Job, format: Format) -> Result<()> {
    match format {
        Format::Json => print_json(&job_json(j)),
        Format::Table => {
            println!("{JOB_HEADER}");
            println!("{}", job_row(j));
            Ok(())
        }
    }
}

async fn submit(a: SubmitArgs) -> Result<()> {
    let mut c = a.conn.connect().await?;
    let req = pb::SubmitJobRequest {
        request_id: a.request_id.unwrap_or_else(unique_request_id),
        tenant: a.tenant.unwrap_or_default(),
        labels: a.labels.into_iter().filter(|l| !l.is_empty()).collect(),
        slots: a.slots,
        command: a.command,
        qos: a.qos.unwrap_or_default(),
        priority: a.priority,
        requested_ms: a.requested_ms,
        project: a.project.unwrap_or_default(),
        job_name: a.job_name.unwrap_or_default(),
        branch: a.branch.unwrap_or_default(),
    };
    let job = c.jobs.submit_job(req).await?.into_inner();
    print_job(&job, a.format)
}

async fn jobs(cmd: JobsCmd) -> Result<()> {
    match cmd {
        JobsCmd::List {
            conn,
            tenant,
            state,
            limit,
            format,
        } => {
            let state = state_filter(state.as_deref())?;
            // Scripts get every job unless they ask for fewer; a terminal the first 100
            // (oldest first, as ListJobs pages).
            let limit = limit.unwrap_or(match format {
                Format::Json => 0,
                Format::Table => TABLE_LIMIT,
            });
            let mut c = conn.connect().await?;
            let (out, more) =
                client::list_jobs(&mut c, &tenant.unwrap_or_default(), state, limit).await?;
            match format {
                Format::Json => print_json(&serde_json::Value::Array(
                    out.iter().map(job_json).collect(),
                )),
                Format::Table => {
                    println!("{JOB_HEADER}");
                    for j in &out {
                        println!("{}", job_row(j));
                    }
                    if more {
                        eprintln!("(the first {limit} jobs; --limit 0 lists them all)");
                    }
                    Ok(())
                }
            }
        }
        JobsCmd::Get { conn, name, format } => {
            let mut c = conn.connect().await?;
            let job = c
                .jobs
                .get_job(pb::GetJobRequest {
                    name: job_name(&name),
                })
                .await?
                .into_inner();
            print_job(&job, format)
        }
        JobsCmd::Cancel { conn, name, format } => {
            let mut c = conn.connect().await?;
            let job = c
                .jobs
                .cancel_job(pb::CancelJobRequest {
                    name: job_name(&name),
                })
                .await?
                .into_inner();
            print_job(&job, format)
        }
        JobsCmd::Explain { conn, name, format } => {
            let mut c = conn.connect().await?;
            let e = c
                .jobs
                .explain_job(pb::ExplainJobRequest {
                    name: job_name(&name),
                })
                .await?
                .into_inner();
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "name": e.name,
                    "state": client::state_json(e.state),
                    "reason": e.reason,
                    "message": e.message,
                    "blocking_job": e.blocking_job,
                    "runner": e.runner,
                    "at_ms": e.at_ms,
                    "queue_position": e.queue_position,
                })),
                Format::Table => {
                    println!("{} is {}: {}", e.name, state_name(e.state), e.reason);
                    println!("  {}", e.message);
                    if !e.blocking_job.is_empty() {
                        println!("  blocking job: {}", e.blocking_job);
                    }
                    if !e.runner.is_empty() {
                        println!("  runner: {}", e.runner);
                    }
                    if e.at_ms > 0 {
                        println!("  at: {} ms", e.at_ms);
                    }
                    Ok(())
                }
            }
        }
        JobsCmd::Watch {
            conn,
            tenant,
            from_revision,
            state,
            format,
        } => {
            let only = state_filter(state.as_deref())?;
            let mut c = conn.connect().await?;
            let mut stream = c
                .jobs
                .watch_jobs(pb::WatchJobsRequest {
                    tenant: tenant.unwrap_or_default(),
                    from_revision,
                })
                .await?
                .into_inner();
            if format == Format::Table {
                println!("REVISION  {JOB_HEADER}");
            }
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => ev,
                    r = tokio::signal::ctrl_c() => { r?; return Ok(()); }
                };
                let Some(ev) = ev else {
                    return Ok(());
                };
                let ev = ev?;
                let Some(job) = ev.job else { continue };
                if only != pb::JobState::Unspecified && job.state != only as i32 {
                    continue;
                }
                match format {
                    Format::Json => println!(
                        "{}",
                        serde_json::json!({"revision": ev.revision, "job": job_json(&job)})
                    ),
                    Format::Table => println!("{:<9} {}", ev.revision, job_row(&job)),
                }
            }
        }
    }
}

async fn fleet(cmd: FleetCmd) -> Result<()> {
    match cmd {
        FleetCmd::Stats { conn, format } => {
            let mut c = conn.connect().await?;
            let s = c
                .fleet
                .get_queue_stats(pb::GetQueueStatsRequest {})
                .await?
                .into_inner();
            let ws = |w: &Option<pb::WaitStats>| {
                let w = (*w).unwrap_or_default();
                serde_json::json!({
                    "queued": w.queued, "running": w.running,
                    "wait_p50_ms": w.wait_p50_ms, "wait_p95_ms": w.wait_p95_ms,
                    "wait_p99_ms": w.wait_p99_ms, "started_last_hour": w.started_last_hour,
                })
            };
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "revision": s.revision,
                    "pools": s.pools.iter().map(|p| serde_json::json!({
                        "pool": p.pool, "runners": p.runners, "free_slots": p.free_slots,
                        "stats": ws(&p.stats),
                    })).collect::<Vec<_>>(),
                    "tenants": s.tenants.iter().map(|t| serde_json::json!({
                        "tenant": t.tenant, "stats": ws(&t.stats),
                    })).collect::<Vec<_>>(),
                })),
                Format::Table => {
                    let row = |kind: &str, name: &str, extra: String, w: &Option<pb::WaitStats>| {
                        let w = (*w).unwrap_or_default();
                        println!(
                            "{kind:<7} {:<20} {extra:<16} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8}",
                            cell(name, 20),
                            w.queued,
                            w.running,
                            w.wait_p50_ms,
                            w.wait_p95_ms,
                            w.wait_p99_ms,
                            w.started_last_hour
                        );
                    };
                    println!(
                        "KIND    NAME                 RUNNERS/FREE      QUEUED RUNNING  P50_MS    P95_MS    P99_MS    STARTED_1H"
                    );
                    for p in &s.pools {
                        row(
                            "pool",
                            &p.pool,
                            format!("{}/{}", p.runners, p.free_slots),
                            &p.stats,
                        );
                    }
                    for t in &s.tenants {
                        row("tenant", &t.tenant, String::new(), &t.stats);
                    }
                    println!("revision {}", s.revision);
                    Ok(())
                }
            }
        }
        FleetCmd::Advice { conn, format } => {
            let mut c = conn.connect().await?;
            let a = c
                .fleet
                .get_scaling_advice(pb::GetScalingAdviceRequest {})
                .await?
                .into_inner();
            match format {
                Format::Json => print_json(&serde_json::Value::Array(
                    a.pools
                        .iter()
                        .map(|p| {
                            serde_json::json!({
                                "pool": p.pool, "current_runners": p.current_runners,
                                "desired_runners": p.desired_runners, "reason": p.reason,
                            })
                        })
                        .collect(),
                )),
                Format::Table => {
                    println!("POOL                 CURRENT  DESIRED  REASON");
                    for p in &a.pools {
                        println!(
                            "{:<20} {:>7}  {:>7}  {}",
                            cell(&p.pool, 20),
                            p.current_runners,
                            p.desired_runners,
                            p.reason
                        );
                    }
                    Ok(())
                }
            }
        }
    }
}
