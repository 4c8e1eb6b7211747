//! `rustci-sim`: replay a job history (or the built-in synthetic CI workload) against a
//! fleet and a policy and report waits, slowdowns, utilization, cost and fairness.

#[macro_use]
mod console;

mod args;
mod capacity;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use rustci_datasets::swf::{write_swf_header, write_swf_line, SwfJob};
use rustci_datasets::{jobcsv, TraceFormat};
use rustci_models::predictor::{Correction, PlanWith};
use rustci_scheduler::{Backfill, PolicyConfig, ScalePolicy, MS_PER_S};
use rustci_sim::fleet_file::{FleetFile, DEFAULT_CI_FLEET, MAX_SLOTS};
use rustci_sim::plots::RunPlotData;
use rustci_sim::replicate::{self, Replications};
use rustci_sim::report::{write_jobs_csv, write_pipelines_csv, ModelUsageReport, Report};
use rustci_sim::scenario::{PredictorSpec, Scenario, Workload, WorkloadSpec};
use rustci_sim::simulate::peak_runners;
use rustci_sim::workload::Supersede;

use crate::args::{AutoscalerArg, SyntheticArgs, WorkloadArgs};

const EXAMPLES: &str = "\
Examples:
  # The built-in synthetic CI workload (1 week) on the built-in fleet, fair share:
  rustci-sim run --policy fairshare

  # A Parallel Workloads Archive log under EASY backfilling, per-job SWF output:
  rustci-sim run --trace KTH-SP2-1996-2.1-cln.swf.gz --policy easy \\
      --swf-out kth-easy.swf --output kth-easy.json

  # All TravisTorrent projects as tenants on a labelled fleet:
  rustci-sim run --trace travistorrent_cesel/projects --fleet simulator/fleets/travis.toml

  # Twice the synthetic load, report as JSON on stdout:
  rustci-sim run --load 2 --format json

  # Autoscaling: the predictive autoscaler on the fleet file's pool settings, 60 s to
  # provision a runner, against a static fleet sized for the workload's peak:
  rustci-sim run --fleet simulator/fleets/autoscale-ci.toml --autoscaler predictive \
      --provisioning-delay-s 60 --output predictive.json
  rustci-sim run --fleet simulator/fleets/autoscale-ci.toml --autoscaler static --peak-sized

  # Plots (SVG and PNG) and a self-contained HTML report of one run:
  rustci-sim run --autoscaler reactive --plots plots/ --html plots/report.html

  # 20 replications (seeds 1..20; a trace: whole-day or whole-week bootstrap resamples):
  # every metric's mean with its 95% interval (<metric>_ci95), banded plots:
  rustci-sim run --replications 20 --format json --plots plots/ --html plots/report.html";

#[derive(Parser, Debug)]
#[command(name = "rustci-sim", version, about = "Discrete-event simulator for the rustci scheduler", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a trace (or the synthetic workload) and print a report.
    #[command(after_help = EXAMPLES)]
    Run(Box<RunArgs>),
    /// Write the synthetic CI workload as a JobRecord CSV (replayable with --trace).
    #[command(after_help = "Example:\n  rustci-sim generate --days 1 --out day.csv")]
    Generate(GenerateArgs),
    /// Print the built-in fleet file (a starting point for your own).
    #[command(after_help = "Example:\n  rustci-sim fleet > my-fleet.toml")]
    Fleet,
    /// Run a grid of fleet sizes, policies, autoscaler settings and loads in parallel;
    /// one report row per point (sweep.csv, sweep.parquet, sweep.json).
    #[command(after_help = capacity::SWEEP_EXAMPLES)]
    Sweep(capacity::SweepArgs),
    /// Find the cheapest fleet (or autoscaler setting) that meets p95 wait targets.
    #[command(after_help = capacity::PLAN_EXAMPLES)]
    Plan(Box<capacity::PlanArgs>),
    /// Run two scenarios on the same replications and say which differences are real:
    /// per metric the paired difference B - A, its 95% interval and whether it excludes 0.
    #[command(after_help = capacity::COMPARE_EXAMPLES)]
    Compare(capacity::CompareArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanArg {
    Point,
    Upper,
    /// The point moved by the user's recent bias (median log residual of their last
    /// finished jobs), learned during the run.
    Debiased,
    /// The point moved down to the 10th percentile of the user's recent log residuals
    /// (never above the point), learned during the run.
    P10,
    /// The same at the 20th percentile.
    P20,
    /// The same at the 30th percentile.
    P30,
    /// The same at the 40th percentile.
    P40,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum CorrectionArg {
    /// The model's upper quantile, then Tsafrir's steps beyond it.
    Upper,
    /// Tsafrir's steps beyond the planned estimate.
    Incremental,
    /// Twice the time run so far (recursive doubling), stopping once at the request.
    Doubling,
    /// The requested time.
    Request,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackfillArg {
    None,
    Easy,
    Greedy,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Fleet file (TOML). Default: the built-in CI fleet, or for SWF traces one machine
    /// of the log's MaxProcs processors.
    #[arg(long, conflicts_with = "processors")]
    fleet: Option<PathBuf>,
    /// One machine with N processors (for SWF logs).
    #[arg(long)]
    processors: Option<u32>,
    /// Policy: fcfs, easy, easy++, priority, fairshare, sef, qos, fairshare-spf, qos-spf
    /// (the last two: shortest predicted first inside each tenant / QoS class),
    /// critical-path (pipeline jobs by latest start capped at the instant they became
    /// ready: a pipeline behind its predicted schedule goes ahead, no newer pipeline
    /// passes a ready job; the longest remaining path first among jobs ready together;
    /// independent jobs FIFO; EASY backfilling), fairshare-cp and qos-cp (fair share's
    /// tenant lanes or QoS classes as they are, critical-path order inside each lane);
    /// for comparison critical-path-latest-start (the latest start uncapped, the rule
    /// before aging), critical-path-oldest, critical-path-bounded.
    #[arg(long, default_value = "easy")]
    policy: String,
    /// Override the policy's backfilling.
    #[arg(long, value_enum)]
    backfill: Option<BackfillArg>,
    /// Fair-share usage half-life, hours.
    #[arg(long, default_value_t = 168.0)]
    half_life_h: f64,
    /// Run-time estimates: `requested` (the user's requested time), `tsafrir` (the
    /// average of the user's last two run times, capped at the request), `model:DIR`
    /// (the current version of a model trained by `rustci retrain --out DIR`) or
    /// `clairvoyant` (every job's true run time: the bound a perfect model reaches;
    /// simulator only).
    #[arg(
        long,
        default_value = "requested",
        value_name = "requested|tsafrir|model:DIR|clairvoyant"
    )]
    predictor: String,
    /// A newer pipeline of a concurrency group (the trace's group, else project and
    /// branch) cancels the older ones' jobs that have not started and their
    /// interruptible running ones (the default).
    #[arg(long, overrides_with = "no_supersede")]
    supersede: bool,
    /// No pipeline is superseded.
    #[arg(long, overrides_with = "supersede")]
    no_supersede: bool,
    /// Replay only the trace after its first F (a fraction of its records by submit
    /// time, as `rustci retrain --history-fraction F` cuts its training data); the
    /// predictor (tsafrir, model:DIR) first learns that part as finished jobs, in the
    /// order they ended. A pipeline that began before the cut is not replayed.
    #[arg(long, value_name = "F")]
    replay_from_fraction: Option<f64>,
    /// Project each pipeline's end at its creation (for `eta_within_*`) looking at most
    /// N waiting jobs ahead; 0 skips the projection (faster on long queues).
    #[arg(long, default_value_t = rustci_sim::simulate::ETA_LIMIT, value_name = "N")]
    pipeline_eta_limit: usize,
    /// Write one CSV row per pipeline (id, tenant, group, created, predicted finish at
    /// creation, end, state, jobs, time to feedback).
    #[arg(long, value_name = "FILE.csv")]
    pipelines_out: Option<PathBuf>,
    /// With `--predictor model:DIR`: plan with the model's point estimate, its upper
    /// quantile (P90), the point debiased by each user's recent runs, or moved down to a
    /// low percentile of them (`p10`-`p40`). Default: what `rustci retrain` chose and
    /// stored in the version, else `point`.
    #[arg(long, value_enum)]
    model_estimate: Option<PlanArg>,
    /// With `--predictor model:DIR` and EASY++: what a job that outlived its estimate is
    /// expected to take: the model's upper quantile then Tsafrir's steps (`upper`),
    /// Tsafrir's steps (`incremental`), twice its run so far (`doubling`) or its request.
    /// Default: what `rustci retrain` chose and stored in the version, else `upper`.
    #[arg(long, value_enum)]
    model_correction: Option<CorrectionArg>,
    /// Estimate for jobs without a requested time, seconds.
    #[arg(long, default_value_t = 3600)]
    default_estimate_s: i64,
    /// Arrival-rate multiplier (2 = submit twice as fast).
    #[arg(long, default_value_t = 1.0)]
    load: f64,
    /// Autoscaler: runners come and go by the fleet file's pool settings (min/max
    /// runners, idle timeout, warm pool, spot). Overrides `[autoscaler] policy`. Without
    /// either, every pool keeps its `runners` for the whole run.
    #[arg(long, value_enum)]
    autoscaler: Option<AutoscalerArg>,
    /// With the static autoscaler: size each pool for the workload's peak (the most
    /// slots its jobs hold at once when none waits) instead of the fleet's `runners`.
    #[arg(long)]
    peak_sized: bool,
    /// Set every pool's provisioning delay (seconds from asking for a runner to it being
    /// ready).
    #[arg(long, value_name = "SECONDS")]
    provisioning_delay_s: Option<f64>,
    /// Set every pool's idle timeout (seconds a runner stays idle before it may go).
    #[arg(long, value_name = "SECONDS")]
    idle_timeout_s: Option<f64>,
    /// Predictive autoscaler: size for this fraction of each QoS class's wait target
    /// (overrides `[autoscaler] target_scale`; 0 = the quantile of jobs should not wait).
    #[arg(long, value_name = "FRACTION")]
    target_scale: Option<f64>,
    /// Write the report as JSON here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the jobs of the run. `FILE.parquet`: the trace's records (the JobRecord
    /// schema, README "Parquet") with `wait_s` and `run_s` as simulated, which `--trace`
    /// and `rustci retrain --from` read back; any other name: one CSV row per job
    /// (submit, start, end, wait, pool, runner).
    #[arg(long, value_name = "FILE")]
    jobs_out: Option<PathBuf>,
    /// Write the schedule as SWF (field 3 = simulated wait), for SWF input.
    #[arg(long)]
    swf_out: Option<PathBuf>,
    /// Write plots of the run here, each as SVG and PNG: queue length and fleet size over
    /// time, wait CDF per QoS class, per-tenant waits.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Write a self-contained HTML report (summary table and the plots inline).
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// Tenants shown in the per-tenant wait plot (longest mean wait first).
    #[arg(long, default_value_t = 15, value_name = "N")]
    top_tenants: usize,
    /// Report on stdout as a table or as JSON.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Run N replications (synthetic: seeds --seed, --seed + 1, ...; a trace: block
    /// bootstrap resamples of its days or weeks, seeded by --seed) and report every
    /// metric's mean with a 95% confidence interval (`<metric>_ci95`).
    #[arg(long, default_value_t = 1, value_name = "N")]
    replications: usize,
    /// Ask for confidence intervals (an error with one replication, which has none).
    #[arg(long)]
    ci: bool,
    /// Replications run at once (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[command(flatten)]
    synthetic: SyntheticArgs,
    /// Output CSV (JobRecord columns).
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Generate(args) => generate_cmd(args),
        Command::Sweep(args) => capacity::sweep_cmd(args),
        Command::Plan(args) => capacity::plan_cmd(*args),
        Command::Compare(args) => capacity::compare_cmd(args),
        Command::Fleet => fleet_cmd(),
    };
    if let Err(e) = result {
        // The reader took what it wanted (`| head`): as quiet as SIGPIPE would be.
        if console::closed(&e) {
            return;
        }
        eprintln!("rustci-sim: error: {}", console::error_text(&e));
        std::process::exit(1);
    }
}

fn fleet_cmd() -> Result<()> {
    out!("{DEFAULT_CI_FLEET}");
    Ok(())
}

fn generate_cmd(args: GenerateArgs) -> Result<()> {
    let workload = WorkloadSpec::Synthetic(Box::new(args.synthetic.config()?)).load()?;
    jobcsv::write_jobcsv(&args.out, &workload.records)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} jobs to {}",
        workload.records.len(),
        args.out.display()
    );
    Ok(())
}

fn fleet_for(args: &RunArgs, workload: &Workload) -> Result<FleetFile> {
    if let Some(path) = &args.fleet {
        return Ok(FleetFile::load(path)?);
    }
    if let Some(n) = args.processors {
        if n == 0 || n > MAX_SLOTS {
            bail!("--processors must be 1 to {MAX_SLOTS}, got {n}");
        }
        return Ok(FleetFile::processors(n));
    }
    if workload.format == Some(TraceFormat::Swf) {
        let Some(n) = workload.meta.max_procs else {
            bail!(
                "{}: the SWF header has no MaxProcs or MaxNodes; pass --processors N",
                workload.name
            );
        };
        if n > MAX_SLOTS {
            bail!(
                "{}: the SWF header's MaxProcs/MaxNodes {n} is more than the {MAX_SLOTS} \
                 processors the simulator takes",
                workload.name
            );
        }
        return Ok(FleetFile::processors(n));
    }
    Ok(FleetFile::default_ci()?)
}

fn run(args: RunArgs) -> Result<()> {
    rustci_sim::scenario::check_load(args.load).map_err(|r| anyhow::anyhow!("--load {r}"))?;
    if args.default_estimate_s <= 0 {
        bail!(
            "--default-estimate-s must be positive, got {}",
            args.default_estimate_s
        );
    }
    if let Some(f) = args.replay_from_fraction {
        if !(f > 0.0 && f < 1.0) {
            bail!("--replay-from-fraction must be in (0, 1), got {f}");
        }
    }
    if !(args.half_life_h.is_finite() && args.half_life_h > 0.0) {
        bail!("--half-life-h must be positive, got {}", args.half_life_h);
    }
    if args.swf_out.is_some()
        && args.workload.trace.is_some()
        && args
            .workload
            .trace_format
            .is_some_and(|f| f != TraceFormat::Swf)
    {
        bail!("--swf-out needs SWF input");
    }
    let workload = args.workload.spec()?.load()?;
    if args.swf_out.is_some() && workload.format != Some(TraceFormat::Swf) {
        bail!("--swf-out needs SWF input; use --jobs-out for other traces");
    }
    let mut fleet = fleet_for(&args, &workload)?;
    let autoscaler = match (args.autoscaler, fleet.autoscaler_policy()) {
        (Some(a), _) => Some(a.policy()),
        (None, Some(name)) => Some(ScalePolicy::named(name)?),
        (None, None) => None,
    };
    if let Some(d) = args.provisioning_delay_s {
        fleet.set_provisioning_delay(d);
        fleet.recheck("--provisioning-delay-s")?;
    }
    if let Some(t) = args.idle_timeout_s {
        fleet.set_idle_timeout(t);
        fleet.recheck("--idle-timeout-s")?;
    }
    if let Some(x) = args.target_scale {
        fleet
            .autoscaler
            .get_or_insert_with(Default::default)
            .target_scale = x;
        fleet.recheck("--target-scale")?;
    }
    if args.peak_sized {
        if autoscaler != Some(ScalePolicy::Static) {
            bail!("--peak-sized sizes a static fleet: use it with --autoscaler static");
        }
        let peaks = peak_runners(&workload.records, &fleet, args.load);
        for (pool, peak) in fleet.pools.iter_mut().zip(peaks) {
            pool.runners = peak.max(1);
        }
        fleet.recheck("--peak-sized")?;
    }
    let mut policy = PolicyConfig::named(&args.policy)?;
    if let Some(b) = args.backfill {
        policy.backfill = match b {
            BackfillArg::None => Backfill::None,
            BackfillArg::Easy => Backfill::Easy,
            BackfillArg::Greedy => Backfill::Greedy,
        };
    }
    policy.fair_share_half_life_ms = (args.half_life_h * 3600.0 * MS_PER_S as f64) as i64;
    let policy_name = format!("{} (backfill: {:?})", args.policy, policy.backfill).to_lowercase();

    let bar = progress_bar(args.quiet, workload.records.len() as u64);
    let progress: Option<Box<dyn FnMut(u64)>> = bar
        .clone()
        .map(|b| Box::new(move |n| b.set_position(n)) as Box<dyn FnMut(u64)>);
    let default_ms = args.default_estimate_s * MS_PER_S;
    let mut predictor = PredictorSpec::parse(&args.predictor, default_ms).context("--predictor")?;
    let mut model_usage = None;
    if let PredictorSpec::Model {
        handle,
        plan_with,
        correction,
    } = &mut predictor
    {
        let stored = if handle.usage().1 {
            "artifact"
        } else {
            "default"
        };
        if let Some(arg) = args.model_estimate {
            *plan_with = match arg {
                PlanArg::Point => PlanWith::Point,
                PlanArg::Upper => PlanWith::Upper,
                PlanArg::Debiased => PlanWith::Debiased,
                PlanArg::P10 => PlanWith::Low10,
                PlanArg::P20 => PlanWith::Low20,
                PlanArg::P30 => PlanWith::Low30,
                PlanArg::P40 => PlanWith::Low40,
            };
        }
        if let Some(arg) = args.model_correction {
            *correction = match arg {
                CorrectionArg::Upper => Correction::UpperThenIncremental,
                CorrectionArg::Incremental => Correction::Incremental,
                CorrectionArg::Doubling => Correction::Doubling,
                CorrectionArg::Request => Correction::Request,
            };
        }
        let from = |flag: bool| if flag { "flag" } else { stored };
        model_usage = Some(ModelUsageReport {
            estimate: plan_with.name(),
            estimate_from: from(args.model_estimate.is_some()),
            correction: correction.name(),
            correction_from: from(args.model_correction.is_some()),
        });
    }
    let scenario = Scenario {
        workload: &workload,
        fleet: &fleet,
        policy,
        policy_name,
        predictor: &predictor,
        autoscaler,
        load: args.load,
        supersede: if args.no_supersede {
            Supersede::Never
        } else {
            Supersede::ByGroup
        },
        history_fraction: args.replay_from_fraction,
        eta_limit: args.pipeline_eta_limit,
    };
    if args.ci || args.replications != 1 {
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        return run_replicated(&args, &scenario, model_usage);
    }
    let out = scenario.simulate(progress, Vec::new())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut report = Report::from_run(&out.facts, out.scaling.as_ref());
    report.model_usage = model_usage;

    if let Some(path) = &args.output {
        std::fs::write(path, report.to_json_pretty() + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.jobs_out {
        if rustci_datasets::is_parquet_name(path) {
            let records: Vec<_> = simulated_records(&workload, &out.facts.results)
                .into_iter()
                .map(|(_, r)| r)
                .collect();
            let epoch = workload.meta.unix_start;
            rustci_datasets::parquet::write_trace_parquet(path, &records, epoch)?;
        } else {
            let w = create(path)?;
            let mut w = BufWriter::new(w);
            write_jobs_csv(&mut w, &out.facts.results)
                .with_context(|| format!("writing {}", path.display()))?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &args.pipelines_out {
        let Some(pipelines) = &out.facts.pipelines else {
            bail!("--pipelines-out: the workload has no pipelines");
        };
        let mut w = BufWriter::new(create(path)?);
        write_pipelines_csv(&mut w, &pipelines.pipelines)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.swf_out {
        write_swf(path, &workload, &out.facts.results)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.plots.is_some() || args.html.is_some() {
        let data = RunPlotData::new(&out.facts, &report, &out.timeline(), args.top_tenants);
        if let Some(dir) = &args.plots {
            data.write_all(dir)?;
        }
        if let Some(path) = &args.html {
            rustci_sim::html::write(path, &report, &data)?;
        }
    }
    match args.format {
        OutputFormat::Json => outln!("{}", report.to_json_pretty()),
        OutputFormat::Table => out!("{}", report.human_table()),
    }
    Ok(())
}

/// `run --replications N`: the scenario on N replications of its workload, summarised.
fn run_replicated(
    args: &RunArgs,
    scenario: &Scenario<'_>,
    model_usage: Option<ModelUsageReport>,
) -> Result<()> {
    rustci_sim::interval::need_interval(
        if args.ci { "--ci" } else { "--replications" },
        args.replications,
    )?;
    for (given, flag) in [
        (args.jobs_out.is_some(), "--jobs-out"),
        (args.swf_out.is_some(), "--swf-out"),
        (args.pipelines_out.is_some(), "--pipelines-out"),
    ] {
        if given {
            bail!(
                "{flag} writes the jobs of one run; with --replications there are {} runs \
                 (run one replication's seed without --replications to write its jobs)",
                args.replications
            );
        }
    }
    let threads = capacity::threads(args.threads)?;
    let spec = args.workload.spec()?;
    let reps = Replications {
        n: args.replications,
        first: 0,
        base: args.workload.synthetic.seed,
    };
    let replicator = replicate::Replicator::new(&spec, scenario.workload, reps.base);
    let how = replicator.resampling();
    let bar = capacity::bar(
        args.quiet,
        Some(reps.n as u64),
        "{elapsed_precise} [{bar:40}] {pos}/{len} replications ({eta} left)",
    );
    let outs = replicate::par_map_progress(
        reps.n,
        threads,
        &|i| {
            // Made here and dropped after its run: one workload per thread in memory.
            let w = replicator.make(i)?;
            let out = Scenario {
                workload: &w,
                ..scenario.clone()
            }
            .simulate(None, Vec::new())?;
            let mut report = Report::from_run(&out.facts, out.scaling.as_ref());
            report.model_usage.clone_from(&model_usage);
            // Plots need each replication's curves, not its jobs: keep only those.
            let curves = (args.plots.is_some() || args.html.is_some())
                .then(|| RunPlotData::new(&out.facts, &report, &out.timeline(), args.top_tenants));
            Ok::<_, anyhow::Error>((serde_json::to_value(&report)?, curves))
        },
        &|n| {
            if let Some(b) = &bar {
                b.set_position(n as u64);
            }
        },
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (values, curves): (Vec<serde_json::Value>, Vec<Option<RunPlotData>>) =
        outs.into_iter().unzip();
    let summary = replicate::summary(&values, how);
    let text = serde_json::to_string_pretty(&summary)?;
    if let Some(path) = &args.output {
        std::fs::write(path, text.clone() + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let curves: Vec<RunPlotData> = curves.into_iter().flatten().collect();
    if !curves.is_empty() {
        let bands = rustci_sim::plots::Bands::new(&curves);
        if let Some(dir) = &args.plots {
            bands.write_all(dir)?;
        }
        if let Some(path) = &args.html {
            rustci_sim::html::write_replicated(path, &summary, &bands)?;
        }
    }
    match args.format {
        OutputFormat::Json => outln!("{text}"),
        OutputFormat::Table => out!("{}", replicate::summary_table(&summary)),
    }
    Ok(())
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// The jobs that ran, in input order, each the trace's own record with `wait_s` the
/// simulated wait (from its submission, or for a pipeline job from when its needs were
/// done) and `run_s` the run time as simulated, in whole seconds; with its input index.
fn simulated_records(
    workload: &Workload,
    results: &[rustci_sim::outcome::JobResult],
) -> Vec<(usize, rustci_datasets::JobRecord)> {
    let mut sorted: Vec<&rustci_sim::outcome::JobResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.index);
    sorted
        .into_iter()
        .map(|r| {
            let mut rec = workload.records[r.index].clone();
            rec.wait_s = Some(r.wait_s().round() as i64);
            rec.run_s = Some(r.run_s().round() as i64);
            (r.index, rec)
        })
        .collect()
}

/// The schedule as SWF, in input order: the trace's own fields, with field 3 the
/// simulated wait (and the run time as simulated).
fn write_swf(
    path: &Path,
    workload: &Workload,
    results: &[rustci_sim::outcome::JobResult],
) -> Result<()> {
    let mut w = BufWriter::new(create(path)?);
    write_swf_header(
        &mut w,
        &workload.meta,
        &[(
            "Note".into(),
            "schedule simulated by rustci-sim; field 3 is the simulated wait".into(),
        )],
    )?;
    for (index, rec) in simulated_records(workload, results) {
        let number = rec.id.parse::<u64>().unwrap_or(index as u64 + 1);
        write_swf_line(&mut w, &SwfJob::from_record(&rec, number))?;
    }
    w.flush()?;
    Ok(())
}

fn progress_bar(quiet: bool, len: u64) -> Option<ProgressBar> {
    capacity::bar(
        quiet,
        Some(len),
        "{elapsed_precise} [{bar:40}] {pos}/{len} jobs finished ({per_sec}, eta {eta})",
    )
}
