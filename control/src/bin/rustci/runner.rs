//! `rustci runner`: the reference runner (`rustci_control::clients::runner`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rustci_control::clients::job_guard;
use rustci_control::clients::runner::{self, RunnerOptions};

pub const RUNNER_EXAMPLES: &str = "\
Examples:
  rustci runner --server http://127.0.0.1:7411 --pool linux --labels linux,x86_64 --slots 4
  RUSTCI_RUNNER_TOKEN=... rustci runner --server https://ci.example:7411 --ca ca.pem \\
      --pool mac --labels macos --slots 2 --id mac-mini-7

Each job runs as `sh -c COMMAND` in its own process group, with RUSTCI_JOB (jobs/N),
RUSTCI_RUNNER, RUSTCI_FENCING_TOKEN, RUSTCI_TENANT and RUSTCI_ATTEMPT set, under a guard
that kills the group when the runner dies (even by SIGKILL). Running jobs are recorded in
$XDG_STATE_HOME/rustci/runners/ID (else ~/.local/state/...): a runner restarted with the
same --id kills what its predecessor left. The runner survives server restarts (it
retries with backoff) and runs until killed.";

#[derive(Debug, Args)]
pub struct RunnerArgs {
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

pub async fn run(a: RunnerArgs) -> Result<()> {
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

/// `rustci __job-guard --parent PID [--record FILE] -- COMMAND`.
#[derive(Debug, Args)]
pub struct JobGuardArgs {
    /// The runner's pid: the guard starts nothing if it is already gone.
    #[arg(long)]
    parent: u32,
    /// Where to record the job's process group.
    #[arg(long)]
    record: Option<PathBuf>,
    /// The job's command, for `sh -c`.
    #[arg(last = true)]
    command: String,
}

/// Runs a job under its guard; exits with the job's status.
pub fn job_guard(a: &JobGuardArgs) -> ExitCode {
    match job_guard::guard(a.parent, a.record.as_deref(), &a.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("error: job guard: {e}");
            ExitCode::from(127)
        }
    }
}
