//! `rustci`: the server, the job CLI and the reference runner of rustci's live control
//! plane. This file parses the command line and hands each subcommand to its module.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

// One copy of the terminal-output rule for both binaries (see the module's docs).
#[macro_use]
#[path = "../../../../simulator/src/console.rs"]
mod console;

mod bench;
mod conn;
mod export;
mod fleet;
mod jobs;
mod output;
mod pipeline;
mod retrain;
mod runner;
mod serve;
mod submit;

const TOP_EXAMPLES: &str = "\
Examples:
  rustci serve --listen 127.0.0.1:7411 --data-dir ./rustci-data
  rustci runner --server http://127.0.0.1:7411 --pool linux --labels linux,x86_64 --slots 4
  rustci submit --server http://127.0.0.1:7411 --tenant team-a --labels linux --command 'make test'
  rustci jobs list --state queued
  rustci jobs explain jobs/42
  rustci pipeline submit .gitlab-ci.yml --tenant team-a --project shop --ref main
  rustci pipeline watch pipelines/42
  rustci bench --server http://127.0.0.1:7411 --jobs 20000 --concurrency 64 --format json";

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
    #[command(after_help = serve::SERVE_EXAMPLES)]
    Serve(serve::ServeArgs),
    /// Submit a job.
    #[command(after_help = submit::SUBMIT_EXAMPLES)]
    Submit(submit::SubmitArgs),
    /// Read, watch, cancel and explain jobs.
    #[command(after_help = jobs::JOBS_EXAMPLES)]
    Jobs {
        #[command(subcommand)]
        cmd: jobs::JobsCmd,
    },
    /// Submit a GitLab CI file as a pipeline; read, list, watch and cancel pipelines.
    #[command(after_help = pipeline::PIPELINE_EXAMPLES)]
    Pipeline {
        #[command(subcommand)]
        cmd: pipeline::PipelineCmd,
    },
    /// Run the reference runner: lease jobs and run their commands with `sh -c`.
    #[command(after_help = runner::RUNNER_EXAMPLES)]
    Runner(runner::RunnerArgs),
    /// Queue statistics and scaling advice.
    #[command(after_help = fleet::FLEET_EXAMPLES)]
    Fleet {
        #[command(subcommand)]
        cmd: fleet::FleetCmd,
    },
    /// Retrain the run-time model from job history and write a new version if no worse.
    #[command(after_help = retrain::RETRAIN_EXAMPLES)]
    Retrain(retrain::RetrainArgs),
    /// Load generator: full job lifecycles against a server; lifecycles/s and
    /// submit-to-lease latency.
    #[command(after_help = bench::BENCH_EXAMPLES)]
    Bench(bench::BenchArgs),
    /// The supervisor the runner puts between itself and each job (internal).
    #[command(name = "__job-guard", hide = true)]
    JobGuard(runner::JobGuardArgs),
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
    // Before any other thread exists: the guard blocks signals to wait for them.
    if let Cmd::JobGuard(a) = &cli.cmd {
        return runner::job_guard(a);
    }
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
        // The reader took what it wanted (`| head`): as quiet as SIGPIPE would be.
        Err(e) if console::closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(s) = e.downcast_ref::<tonic::Status>() {
                eprintln!("error: {:?}: {}", s.code(), s.message());
            } else {
                eprintln!("error: {}", console::error_text(&e));
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve(a) => serve::run(a).await,
        Cmd::Submit(a) => submit::run(a).await,
        Cmd::Jobs { cmd } => jobs::run(cmd).await,
        Cmd::Pipeline { cmd } => pipeline::run(cmd).await,
        Cmd::Runner(a) => runner::run(a).await,
        Cmd::Fleet { cmd } => fleet::run(cmd).await,
        Cmd::Retrain(a) => retrain::run(a).await,
        Cmd::Bench(a) => bench::run(a).await,
        Cmd::JobGuard(_) => unreachable!("run before the runtime starts"),
    }
}
