//! `rustci jobs`: list, get, watch, cancel, play and explain jobs; export a store's
//! finished jobs (`export.rs`).

use anyhow::{Context, Result};
use clap::Subcommand;
use rustci_control::clients::client::{self, job_json, parse_state, state_name};
use rustci_control::pb;
use tokio_stream::StreamExt;

use crate::conn::Conn;
use crate::output::{job_row, print_job, print_json, printable, Format, JOB_HEADER};

pub const JOBS_EXAMPLES: &str = "\
Examples:
  rustci jobs list --state queued --format json
  rustci jobs get jobs/42
  rustci jobs watch --from-revision 1200 --format json
  rustci jobs cancel jobs/42
  rustci jobs play jobs/43
  rustci jobs explain 42
  rustci jobs export --from ./rustci-data --out history.parquet";

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
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
        /// queued, running (leased), succeeded, failed, cancelled, skipped, created (a
        /// pipeline job waiting for its needs), manual, either case (default: any).
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
    /// Play a manual pipeline job (state manual): it enters the queue.
    #[command(
        after_help = "Examples:\n  rustci jobs play jobs/43\n  rustci jobs play 43 --format json"
    )]
    Play {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a store's finished jobs (the history `rustci retrain` learns from) as
    /// Parquet, CSV or JSON lines.
    #[command(after_help = crate::export::EXPORT_EXAMPLES)]
    Export(crate::export::ExportArgs),
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

/// Jobs `jobs list` shows as a table unless `--limit` says otherwise.
const TABLE_LIMIT: usize = 100;

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
            format!("--state: expected queued, leased, succeeded, failed, cancelled, skipped, created or manual, got {s:?}")
        }),
    }
}

pub async fn run(cmd: JobsCmd) -> Result<()> {
    match cmd {
        JobsCmd::Export(args) => crate::export::run(args).await,
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
                    outln!("{JOB_HEADER}");
                    for j in &out {
                        outln!("{}", job_row(j));
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
        JobsCmd::Play { conn, name, format } => {
            let mut c = conn.connect().await?;
            let job = c
                .jobs
                .play_job(pb::PlayJobRequest {
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
                Format::Json => print_json(&client::explanation_json(&e)),
                Format::Table => {
                    outln!(
                        "{} is {}: {}",
                        printable(&e.name),
                        state_name(e.state),
                        printable(&e.reason)
                    );
                    outln!("  {}", printable(&e.message));
                    if !e.blocking_job.is_empty() {
                        outln!("  blocking job: {}", printable(&e.blocking_job));
                    }
                    if !e.runner.is_empty() {
                        outln!("  runner: {}", printable(&e.runner));
                    }
                    if e.at_ms > 0 {
                        outln!("  at: {} ms", e.at_ms);
                    }
                    for n in &e.needs {
                        outln!(
                            "  need {} ({}): {}, end {} ms",
                            printable(&n.name),
                            printable(&n.job),
                            state_name(n.state),
                            n.end_ms
                        );
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
                    pipeline: String::new(),
                })
                .await?
                .into_inner();
            if format == Format::Table {
                outln!("REVISION  {JOB_HEADER}");
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
                    Format::Json => outln!(
                        "{}",
                        serde_json::json!({"revision": ev.revision, "job": job_json(&job)})
                    ),
                    Format::Table => outln!("{:<9} {}", ev.revision, job_row(&job)),
                }
            }
        }
    }
}
