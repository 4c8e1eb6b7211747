//! `rustci bench`: drives full job lifecycles against a running server
//! (`rustci_control::clients::loadgen`), single jobs or pipelines (`--pipelines`), and
//! prints lifecycles per second and submit-to-lease latency percentiles.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustci_control::clients::client;
use rustci_control::clients::loadgen::{self, Load, LoadConfig, PhaseReport, PipelineShape, Until};
use serde::Serialize;

use crate::output::Format;

pub const BENCH_EXAMPLES: &str = "\
Examples:
  # 20,000 jobs from 64 concurrent submitters, as fast as the server takes them:
  rustci bench --server http://127.0.0.1:7411 --jobs 20000 --concurrency 64 --format json

  # Batch calls (SubmitJobs / CompleteJobs of 8), then latency at a fixed 10,000 jobs/s:
  rustci bench --jobs 50000 --concurrency 64 --batch 8
  rustci bench --jobs 100000 --batch 8 --rate 10000

  # A server with --auth: a tenant's API key for submitting, a runner token for leasing:
  rustci bench --api-key \"$KEY\" --token \"$RUNNER_TOKEN\" --jobs 5000 --concurrency 16

  # Pipelines of 20 jobs in 4 stages (10,000 pipelines), 16 SubmitPipeline calls in flight:
  rustci bench --pipelines --jobs 200000 --concurrency 16 --format json

Each job is leased by one of the bench's own runners (a pool and label named after the
run) and completed at once, so a lifecycle is pure control-plane work: submit (durable),
lease (durable), complete (durable). Submit-to-lease latency runs from the start of a
job's submit call to a runner holding its lease. Without --rate the submitters run
closed loop (peak throughput); with --rate they submit open loop at that many jobs per
second (latency at a chosen load).

With --pipelines, each submit call is one SubmitPipeline of --pipeline-jobs jobs spread
evenly over --stages stages (GitLab's stage rule: a stage waits for all of the one
before), --jobs is rounded up to whole pipelines, and the runners complete in
CompleteJobs calls. Submit-to-lease then runs from the moment a job became ready as the
client sees it: a first-stage job from the start of its SubmitPipeline call, a later one
from the start of the CompleteJobs call that completed the last job of the stage before.
The server may also place other tenants' unlabelled
jobs on the bench's runners, which leave them to lapse and be requeued: point it at a
test server. The runners are drained at the end.";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "RUSTCI_SERVER", default_value = "http://127.0.0.1:7411")]
    server: String,
    /// Tenant API key for submitting; not needed in local mode.
    #[arg(long, env = "RUSTCI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Runner token for the bench's runners; not needed in local mode.
    #[arg(long, env = "RUSTCI_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) for https://.
    #[arg(long, env = "RUSTCI_CA")]
    ca: Option<PathBuf>,
    /// Jobs to run through their whole lifecycle.
    #[arg(long, default_value_t = 10_000)]
    jobs: u64,
    /// Submit calls in flight at once (closed loop).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Jobs per SubmitJobs call (and at most per CompleteJobs call); 1 = unary calls.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Submit pipelines (one SubmitPipeline call each) instead of single jobs.
    #[arg(long)]
    pipelines: bool,
    /// Jobs of each pipeline (with --pipelines).
    #[arg(long, default_value_t = 20, requires = "pipelines")]
    pipeline_jobs: u32,
    /// Stages of each pipeline, the jobs spread evenly over them (with --pipelines).
    #[arg(long, default_value_t = 4, requires = "pipelines")]
    stages: u32,
    /// Submit open loop at this many jobs per second instead of closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Tenants of the jobs, comma separated, taken in turn (default: the API key's
    /// tenant, or `bench` in local mode).
    #[arg(long, value_delimiter = ',')]
    tenant: Vec<String>,
    /// Runners the bench registers.
    #[arg(long, default_value_t = 4)]
    runners: usize,
    /// Slots of each runner.
    #[arg(long, default_value_t = 512)]
    slots: u32,
    /// HTTP/2 connections for submitting (and as many for the runners).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    server: &'a str,
    mode: &'static str,
    concurrency: Option<usize>,
    rate: Option<f64>,
    batch: usize,
    runners: usize,
    slots: u32,
    /// What submit-to-lease runs from.
    latency_from: &'static str,
    #[serde(flatten)]
    report: &'a PhaseReport,
}

pub async fn run(a: BenchArgs) -> Result<()> {
    if a.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of jobs per second, got {r}");
        }
    }
    let pipeline = a.pipelines.then_some(PipelineShape {
        jobs: a.pipeline_jobs,
        stages: a.stages,
    });
    // Whole pipelines.
    let jobs = match pipeline {
        Some(shape) => a.jobs.div_ceil(u64::from(shape.jobs.max(1))) * u64::from(shape.jobs),
        None => a.jobs,
    };
    let connections = a.connections.clamp(1, 64);
    let mut submitters = Vec::new();
    let mut runners = Vec::new();
    for _ in 0..connections {
        submitters.push(client::connect(&a.server, a.api_key.as_deref(), a.ca.as_deref()).await?);
        runners.push(client::connect(&a.server, a.token.as_deref(), a.ca.as_deref()).await?);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let config = LoadConfig {
        tenants: {
            let named: Vec<String> = a.tenant.iter().filter(|t| !t.is_empty()).cloned().collect();
            // Local mode needs a tenant; with an API key the server takes the key's.
            if named.is_empty() && a.api_key.is_none() {
                vec!["bench".to_string()]
            } else {
                named
            }
        },
        runners: a.runners,
        slots: a.slots,
        batch: a.batch,
        run_id: format!("bench-{:x}-{:x}", std::process::id(), nanos % (1 << 40)),
        idle_limit: loadgen::IDLE_LIMIT,
        pipeline,
    };
    let load = Load::start(config, submitters, runners)
        .await
        .context("starting the bench's runners")?;
    // A progress bar on terminals only: pipes and tests get the result alone.
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(jobs), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} jobs done {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(match a.rate {
            Some(r) => format!("(open loop, {r:.0} jobs/s)"),
            None => format!("(closed loop, {} calls in flight)", a.concurrency),
        });
        let (bar2, done) = (bar.clone(), load.completed_counter());
        let ticker = tokio::spawn(async move {
            loop {
                bar2.set_position(done.get());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        (bar, ticker)
    });
    let report = match a.rate {
        Some(r) => load.open_loop(r, jobs).await,
        None => {
            load.closed_loop(a.concurrency, Until::Jobs(jobs), true)
                .await
        }
    };
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    let first_error = load.first_error();
    // Jobs it stopped waiting for would stay queued with a label no runner has.
    let leftovers = if report.lifecycles < report.jobs {
        Some(load.cancel_unfinished().await)
    } else {
        None
    };
    load.stop().await;
    match leftovers {
        Some(Ok(n)) if n > 0 => eprintln!("cancelled {n} jobs of this run that did not finish"),
        Some(Err(e)) => eprintln!(
            "warning: could not cancel the jobs of this run that did not finish: {}: {}",
            e.code(),
            e.message()
        ),
        _ => {}
    }
    if report.lifecycles == 0 {
        match &first_error {
            Some(e) => bail!(
                "no job completed; the first failed call: {}: {}",
                e.code(),
                e.message()
            ),
            None => bail!("no job completed"),
        }
    }
    match a.format {
        Format::Json => {
            let out = Output {
                server: &a.server,
                mode: if a.rate.is_some() { "open" } else { "closed" },
                concurrency: a.rate.is_none().then_some(a.concurrency),
                rate: a.rate,
                batch: a.batch,
                runners: a.runners,
                slots: a.slots,
                latency_from: if pipeline.is_some() {
                    "ready: a first-stage job's SubmitPipeline call start, a later job's \
                     start of the CompleteJobs call that completed its stage's last need"
                } else {
                    "submit: the SubmitJob(s) call start"
                },
                report: &report,
            };
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            let ms = |us: u64| us as f64 / 1e3;
            outln!(
                "{} lifecycles of {} jobs in {:.2} s: {:.0} lifecycles/s",
                report.lifecycles,
                report.jobs,
                report.seconds,
                report.lifecycles_per_s
            );
            if let Some(p) = &report.pipelines {
                outln!(
                    "{} pipelines of {} jobs in {} stages; submit-to-lease from ready: first stage p50 {:.3} ms, p99 {:.3} ms; later stages p50 {:.3} ms, p99 {:.3} ms",
                    p.pipelines,
                    p.jobs_per_pipeline,
                    p.stages,
                    ms(p.first_stage_p50_us),
                    ms(p.first_stage_p99_us),
                    ms(p.later_stages_p50_us),
                    ms(p.later_stages_p99_us),
                );
            }
            outln!(
                "submit-to-lease: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                ms(report.submit_to_lease_p50_us),
                ms(report.submit_to_lease_p90_us),
                ms(report.submit_to_lease_p99_us),
                ms(report.submit_to_lease_p999_us),
                ms(report.submit_to_lease_max_us),
            );
            outln!(
                "submit answered (durable): p50 {:.3} ms, p99 {:.3} ms",
                ms(report.submit_answered_p50_us),
                ms(report.submit_answered_p99_us),
            );
        }
    }
    if report.failed_calls > 0 || report.foreign_leases > 0 || report.lifecycles < jobs {
        eprintln!(
            "warning: {} of {} jobs completed; {} calls failed{}; {} leases of other jobs left to lapse",
            report.lifecycles,
            jobs,
            report.failed_calls,
            first_error
                .map(|e| format!(" (first: {}: {})", e.code(), e.message()))
                .unwrap_or_default(),
            report.foreign_leases
        );
    }
    Ok(())
}
