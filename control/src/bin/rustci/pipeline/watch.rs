//! `rustci pipeline watch pipelines/N`: follow a pipeline until it ends. On a terminal
//! the stages and jobs are redrawn in place; in a pipe, or with `--format json`, each
//! change is one line (nothing is redrawn).
//!
//! The pipeline is read again (GetPipeline) whenever WatchJobs reports a change of one
//! of its jobs, and every `--poll-ms` in any case: the predicted finish moves without
//! any job changing, and a caller that may not watch (or a stream that broke) still
//! sees the pipeline to its end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use rustci_control::clients::client::{clock_text, now_unix_ms, time_json};
use rustci_control::clients::pipeline::{ended, job_json, pipeline_name, state_json};
use rustci_control::pb;
use tokio_stream::StreamExt;
use tonic::Streaming;

use super::table::{job_state, lines, state_name};
use crate::conn::Conn;
use crate::output::{printable, Format};

pub const WATCH_EXAMPLES: &str = "\
Examples:
  rustci pipeline watch pipelines/42
  rustci pipeline watch 42 --format json | jq -c 'select(.event == \"job\")'
  # Exit non-zero unless the pipeline succeeded (for scripts):
  rustci pipeline watch pipelines/42 --exit-status

Ends when the pipeline ends (or on Ctrl-C). On a terminal the table is redrawn; in a
pipe each change is one line: the time, the pipeline, then the job and its new state
and runner, or the pipeline's new state. With --format json each line is an object
with \"event\" (\"job\" or \"pipeline\"), \"pipeline\", \"pipeline_state\" and, for a job, \"job\".";

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    conn: Conn,
    /// pipelines/N or N.
    name: String,
    /// Exit with an error unless the pipeline ends SUCCEEDED.
    #[arg(long)]
    exit_status: bool,
    /// Read the pipeline at least this often (milliseconds), changes or not.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    poll_ms: u64,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Each job's state and runner, and the pipeline's state, as last printed.
#[derive(Default)]
struct Shown {
    jobs: HashMap<String, (i32, String)>,
    state: Option<i32>,
}

pub async fn run(a: WatchArgs) -> Result<()> {
    let name = pipeline_name(&a.name);
    let mut c = a.conn.connect().await?;
    let redraw = a.format == Format::Table && std::io::stdout().is_terminal();
    // The revision before the first read: any later change of its jobs wakes the loop.
    let revision = c
        .fleet
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .map(|s| s.into_inner().revision);
    let mut events = match revision {
        Ok(from_revision) => c
            .jobs
            .watch_jobs(pb::WatchJobsRequest {
                tenant: String::new(),
                from_revision,
                // Only its jobs (a server before this field sends every job; `change_of`
                // filters too).
                pipeline: name.clone(),
            })
            .await
            .ok()
            .map(tonic::Response::into_inner),
        Err(s) => {
            tracing::info!("polling only: no revision to watch from ({s})");
            None
        }
    };
    let mut shown = Shown::default();
    let poll = Duration::from_millis(a.poll_ms);
    let p = loop {
        let p = c
            .pipelines
            .get_pipeline(pb::GetPipelineRequest { name: name.clone() })
            .await?
            .into_inner();
        if redraw {
            // Home and clear, then the whole table again.
            let screen = lines(&p, now_unix_ms()).join("\n");
            outln!("\x1b[H\x1b[2J{screen}");
        } else {
            print_changes(&mut shown, &p, a.format)?;
        }
        if ended(&p) {
            break p;
        }
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; return Ok(()); }
            () = tokio::time::sleep(poll) => {}
            () = change_of(&mut events, &name) => {}
        }
    };
    if a.exit_status && p.state != pb::PipelineState::Succeeded as i32 {
        bail!("{name} ended {}", state_json(p.state));
    }
    Ok(())
}

/// Waits for a WatchJobs event of a job of pipeline `name`, then takes the events that
/// came with it (one read of the pipeline covers them). Never returns once the stream is
/// gone: the poll goes on alone.
async fn change_of(events: &mut Option<Streaming<pb::JobEvent>>, name: &str) {
    let Some(stream) = events else {
        return std::future::pending().await;
    };
    let ours = |ev: &pb::JobEvent| ev.job.as_ref().is_some_and(|j| j.pipeline == name);
    loop {
        match stream.next().await {
            Some(Ok(ev)) if ours(&ev) => break,
            Some(Ok(_)) => {}
            Some(Err(s)) => {
                tracing::info!("polling only: the job stream ended ({s})");
                *events = None;
                return std::future::pending().await;
            }
            None => {
                *events = None;
                return std::future::pending().await;
            }
        }
    }
    // Whatever else is already here belongs to the same read.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::ZERO, stream.next()).await {}
}

/// One line per job whose state or runner changed since the last read, then one for
/// the pipeline if its state changed (the first read shows everything).
fn print_changes(shown: &mut Shown, p: &pb::Pipeline, format: Format) -> Result<()> {
    let now = now_unix_ms();
    let mut jobs: Vec<&pb::PipelineJob> = p.jobs.iter().collect();
    jobs.sort_by_key(|j| j.stage_index);
    for j in jobs {
        let now_is = (j.state, j.runner.clone());
        if shown.jobs.get(&j.name) == Some(&now_is) {
            continue;
        }
        match format {
            Format::Json => outln!(
                "{}",
                serde_json::json!({
                    "event": "job",
                    "time": time_json(now),
                    "pipeline": p.name,
                    "pipeline_state": state_json(p.state),
                    "job": job_json(j),
                })
            ),
            Format::Table => outln!(
                "{}  {}  {}  {}{}",
                clock_text(now, now),
                printable(&p.name),
                printable(&j.name),
                job_state(j),
                if j.runner.is_empty() {
                    String::new()
                } else {
                    format!("  {}", printable(&j.runner))
                }
            ),
        }
        shown.jobs.insert(j.name.clone(), now_is);
    }
    if shown.state != Some(p.state) {
        match format {
            Format::Json => outln!(
                "{}",
                serde_json::json!({
                    "event": "pipeline",
                    "time": time_json(now),
                    "pipeline": p.name,
                    "pipeline_state": state_json(p.state),
                    "predicted_finish_time": time_json(p.predicted_finish_time_ms),
                    "end_time": time_json(p.end_ms),
                    "cancel_reason": p.cancel_reason,
                })
            ),
            Format::Table => outln!(
                "{}  {}  {}",
                clock_text(now, now),
                printable(&p.name),
                state_name(p.state)
            ),
        }
        shown.state = Some(p.state);
    }
    Ok(())
}
