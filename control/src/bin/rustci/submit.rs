//! `rustci submit`: submit one job.

use anyhow::{bail, Result};
use clap::Args;
use rustci_control::pb;

use crate::conn::Conn;
use crate::output::{print_job, Format};

pub const SUBMIT_EXAMPLES: &str = "\
Examples:
  rustci submit --tenant team-a --labels linux,x86_64 --command 'make test'
  rustci submit --server https://ci.example:7411 --ca ca.pem --api-key \"$KEY\" \\
      --labels macos --slots 2 --qos urgent --requested-ms 600000 --command './build.sh' --format json
  # Retrying with the same request id never makes a second job:
  rustci submit --tenant team-a --request-id build-1234 --labels linux --command true";

#[derive(Debug, Args)]
pub struct SubmitArgs {
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

pub fn unique_request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cli-{nanos:x}-{:x}", std::process::id())
}

pub async fn run(a: SubmitArgs) -> Result<()> {
    if a.command.trim().is_empty() {
        bail!("--command is empty: give the shell command the runner should run");
    }
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
