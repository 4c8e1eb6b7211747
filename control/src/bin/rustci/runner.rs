//! `rustci runner`: the reference runner (`rustci_control::clients::runner`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rustci_control::clients::runner::{self, RunnerOptions};

pub const RUNNER_EXAMPLES: &str = "\
Examples:
  rustci runner --server http://127.0.0.1:7411 --pool linux --labels linux,x86_64 --slots 4
  RUSTCI_RUNNER_TOKEN=... rustci runner --server https://ci.example:7411 --ca ca.pem \\
      --pool mac --labels macos --slots 2 --id mac-mini-7

Each job runs as `sh -c COMMAND` in its own process group, with RUSTCI_JOB (jobs/N),
RUSTCI_RUNNER, RUSTCI_FENCING_TOKEN, RUSTCI_TENANT and RUSTCI_ATTEMPT set. The runner
survives server restarts (it retries with backoff) and runs until killed.";

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
