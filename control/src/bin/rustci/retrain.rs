//! `rustci retrain`: read job history (trace files or the live store), train, evaluate
//! beside the baselines and the version in use, and write a new artifact version.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustci_control::store::history::{is_store_source, read_history, redact};
use rustci_datasets::{open_trace, JobRecord, TraceFormat};
use rustci_models::eval::Metrics;
use rustci_models::retrain::{
    retrain_with, HeldOut, RetrainOptions, RetrainReport, Stage, MAE_TOLERANCE,
};
use rustci_models::TrainParams;
use rustci_sim::fleet_file::{FleetFile, MAX_SLOTS};
use rustci_sim::held_out::choose_usage;
use serde_json::json;

use crate::output::Format;

pub const RETRAIN_EXAMPLES: &str = "\
Examples:
  # Train on an SWF log and write DIR/v000001.model (+ CURRENT):
  rustci retrain --from KTH-SP2-1996-2.1-cln.swf.gz --out ./models/kth

  # All TravisTorrent project files (a directory), JSON for scripts, with SVG plots:
  rustci retrain --from travistorrent_cesel/projects --trace-format travis --out ./models/ci --format json --plots

  # From the live store's history (MongoDB, or the embedded SQLite of `rustci serve`):
  rustci retrain --from mongodb://db:27017/rustci --out /var/lib/rustci/models
  rustci retrain --from sqlite:./rustci-data --out ./rustci-data/models

  # Replace the current version even if the new one measures worse:
  rustci retrain --from history.csv --out ./models/ci --force

  # CI history: choose the planning estimate and correction on this fleet:
  rustci retrain --from history.csv --out ./models/ci --fleet simulator/fleets/travis.toml

A new version is written only if its MAE on the held-out (latest) jobs is no worse
than the current version's on the same jobs. `rustci serve --model DIR` picks it up
without a restart; `rustci-sim run --predictor model:DIR` uses it.

After the evaluation, the held-out (latest) jobs are replayed under EASY++ with the
evaluated model, planning with its point, its upper quantile or its point debiased by
each user's recent runs, and correcting with upper, incremental, doubling or request;
or planning with the point moved down to the 10th-40th percentile of each user's
recent residuals and correcting with the request. Each is replayed at loads 0.995, 1
and 1.005. Unless --params names a `target`, the model on the log scale is replayed
too (if its held-out MAE is within 2% of the square root's). The lowest bounded
slowdown of a typical day (the geometric mean over the replayed days of each day's
mean) is stored in the version (which trains on its scale; the log scale only if it
beats the square root's best by more than its standard error over the three
replays) and is what `--predictor
model:DIR` and `serve --model DIR` use unless told otherwise. The machine: an SWF
log's MaxProcs/MaxNodes, or `--fleet FILE`; without either no choice is made and the
defaults stay.";

#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// History to learn from: trace files or directories (SWF, TravisTorrent, GitHub
    /// Actions, a GitLab export, FlowBench workflows, JobRecord CSV or Parquet; gzip or
    /// not), a `mongodb://` URI, or `sqlite:PATH` (the data directory or database of
    /// `rustci serve`). Repeat to merge.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE|mongodb://...|sqlite:PATH")]
    from: Vec<String>,
    /// Trace format of the files (default: inferred from the name).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT")]
    trace_format: Option<TraceFormat>,
    /// Model directory: versions and the CURRENT pointer are kept here.
    #[arg(long)]
    out: PathBuf,
    /// Write the new version even if it measures worse than the current one.
    #[arg(long)]
    force: bool,
    /// Also write SVG plots (predicted vs actual, error CDF) next to the artifact.
    #[arg(long)]
    plots: bool,
    /// Share of the history (oldest first) the evaluated model trains on; the rest is
    /// the test set.
    #[arg(long, default_value_t = 0.7)]
    train_fraction: f64,
    /// Use only the oldest share of the history (by submit time), e.g. 0.5 to train on
    /// the first half of a log and replay the whole log with `rustci-sim --predictor
    /// model:DIR`, so that the second half is unseen.
    #[arg(long, default_value_t = 1.0)]
    history_fraction: f64,
    /// Training parameters as a TOML file (fields of `TrainParams`: trees, max_depth,
    /// min_samples_leaf, max_forest_rows, max_linear_rows, calibration_fraction,
    /// upper_quantile, target = "sqrt"|"log", seed). Naming `target` fixes the scale;
    /// without it, the scale is chosen by the held-out replay.
    #[arg(long)]
    params: Option<PathBuf>,
    /// Fleet file (TOML) to replay the held-out jobs on when choosing the planning
    /// estimate and correction. Default for an SWF log: one pool of its MaxProcs
    /// (MaxNodes) processors; other histories make no choice without it.
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

struct History {
    records: Vec<JobRecord>,
    unix_start: Option<i64>,
    sources: Vec<String>,
    /// Every source is an SWF log: the largest machine size their headers give (`None`
    /// if one has none).
    swf_procs: Option<Option<u32>>,
}

async fn read(args: &RetrainArgs) -> Result<History> {
    let format = args.trace_format;
    let mut records = Vec::new();
    let mut epochs: Vec<(String, Option<i64>)> = Vec::new();
    let mut swf_procs: Option<Option<u32>> = None;
    let mut all_swf = true;
    for src in &args.from {
        if is_store_source(src) {
            all_swf = false;
            // A MongoDB URI's password stays out of every message.
            let got = read_history(src)
                .await
                .with_context(|| format!("--from {}", redact(src)))?;
            records.extend(got);
            // The store keeps Unix milliseconds: its clock's epoch is 0.
            epochs.push((redact(src), Some(0)));
            continue;
        }
        let path = Path::new(src);
        let trace = open_trace(path, format).with_context(|| format!("--from {src}"))?;
        if trace.format == TraceFormat::Swf {
            let procs = trace.meta.max_procs;
            swf_procs = Some(match swf_procs {
                None => procs,
                Some(seen) => seen.zip(procs).map(|(a, b)| a.max(b)),
            });
        } else {
            all_swf = false;
        }
        let epoch = trace.meta.unix_start.or(match trace.format {
            TraceFormat::Travis | TraceFormat::Gha => Some(0),
            _ => None,
        });
        for r in trace {
            records.push(r.with_context(|| format!("--from {src}"))?);
        }
        epochs.push((src.clone(), epoch));
    }
    let unix_start = epochs.first().and_then(|e| e.1);
    if let Some((other, e)) = epochs.iter().find(|(_, e)| *e != unix_start) {
        bail!(
            "--from: {other} has clock epoch {e:?} but {} has {unix_start:?}; histories on different clocks cannot be merged",
            epochs[0].0
        );
    }
    Ok(History {
        records,
        unix_start,
        sources: args.from.clone(),
        swf_procs: swf_procs.filter(|_| all_swf),
    })
}

/// The machine the held-out jobs are replayed on, described for the report, or why
/// there is none.
fn machine(
    args: &RetrainArgs,
    history: &History,
) -> Result<std::result::Result<(FleetFile, String), String>> {
    if let Some(path) = &args.fleet {
        let fleet = FleetFile::load(path).with_context(|| format!("--fleet {}", path.display()))?;
        return Ok(Ok((fleet, format!("the fleet in {}", path.display()))));
    }
    Ok(match history.swf_procs {
        Some(Some(n)) if (1..=MAX_SLOTS).contains(&n) => Ok((
            FleetFile::processors(n),
            format!("one pool of {n} processors (the SWF header's MaxProcs/MaxNodes)"),
        )),
        Some(Some(n)) => Err(format!(
            "the SWF header's machine size {n} is outside the simulator's 1 to {MAX_SLOTS} processors"
        )),
        Some(None) => Err(
            "no machine to replay on: the SWF header has no MaxProcs or MaxNodes (give --fleet FILE)"
                .to_string(),
        ),
        None => Err(
            "no machine to replay on: the history is not an SWF log with a machine size (give --fleet FILE)"
                .to_string(),
        ),
    })
}

fn planning_json(r: &RetrainReport) -> serde_json::Value {
    match &r.planning {
        Some(c) => json!({
            "chosen": true,
            "estimate": c.usage.plan_with.name(),
            "correction": c.usage.correction.name(),
            "target": c.target.map(|t| t.name()),
            "reason": c.reason,
            "replay": c.replay,
            "candidates": c.candidates.iter().map(|f| json!({
                "estimate": f.usage.plan_with.name(),
                "correction": f.usage.correction.name(),
                "target": f.target.map(|t| t.name()),
                "bsld_mean": f.bsld_mean,
                "bsld_typical_day": f.bsld_typical_day,
                "bsld_typical_day_se": f.bsld_typical_day_se,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "chosen": false,
            "estimate": rustci_models::planning::Usage::default().plan_with.name(),
            "correction": rustci_models::planning::Usage::default().correction.name(),
            "reason": format!(
                "defaults kept: {}",
                r.planning_skipped.as_deref().unwrap_or("no replay")
            ),
        }),
    }
}

fn metrics_json(m: &Metrics) -> serde_json::Value {
    json!({
        "mae_s": m.mae_s,
        "median_ape": m.median_ape,
        "under_rate": m.under_rate,
        "n": m.n,
    })
}

fn report_json(r: &RetrainReport) -> serde_json::Value {
    let e = &r.evaluation;
    let current_artifact = r.current.as_ref().map(|c| c.path.display().to_string());
    json!({
        "model": {
            "mae_s": e.model.mae_s,
            "p90_coverage": e.model.upper_coverage,
            "median_ape": e.model.median_ape,
            "under_rate": e.model.under_rate,
            "n": e.model.n,
            "linear_mae_s": e.linear.map(|m| m.mae_s),
            "forest_mae_s": e.forest.map(|m| m.mae_s),
        },
        "baselines": {
            "requested": e.baselines.requested.as_ref().map(metrics_json),
            "tsafrir": metrics_json(&e.baselines.tsafrir),
            "last5_median": metrics_json(&e.baselines.last5_median),
        },
        "current": r.current.as_ref().map(|c| json!({
            "path": c.path,
            "mae_s": c.model.map(|m| m.mae_s),
            "new_mae_s_same_jobs": c.new_model_same_jobs.map(|m| m.mae_s),
            "compared_on_jobs": c.compared_on,
            "same_history": c.same_history,
            "problem": c.problem,
        })),
        "written": r.written,
        "decision": r.decision,
        // The version now in use: the new one, or the kept current one.
        "artifact": r.artifact.as_ref().map(|p| p.display().to_string()).or(current_artifact),
        "jobs": r.jobs,
        "train_jobs": e.train_jobs,
        "test_jobs": e.test_jobs,
        "skipped_no_run_time": r.skipped_no_run_time,
        "fingerprint": r.fingerprint,
        "failure": e.failure,
        "arrivals": r.arrivals,
        "planning": planning_json(r),
        "plots": r.plots,
        "notes": r.notes,
        "seconds": r.seconds,
    })
}

fn print_table(r: &RetrainReport) -> Result<()> {
    let e = &r.evaluation;
    outln!(
        "{} jobs ({} skipped without a run time): trained on the first {}, tested on the latest {}",
        r.jobs,
        r.skipped_no_run_time,
        e.train_jobs,
        e.test_jobs
    );
    outln!(
        "{:<22} {:>12} {:>11} {:>11} {:>10}",
        "predictor",
        "MAE (s)",
        "median APE",
        "under-pred",
        "P90 cover"
    );
    let row = |name: &str, m: &Metrics| -> Result<()> {
        outln!(
            "{:<22} {:>12.1} {:>10.1}% {:>10.1}% {:>10}",
            name,
            m.mae_s,
            m.median_ape * 100.0,
            m.under_rate * 100.0,
            m.upper_coverage
                .map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0))
        );
        Ok(())
    };
    row("model (new)", &e.model)?;
    if let Some(m) = &e.linear {
        row("  linear part", m)?;
    }
    if let Some(m) = &e.forest {
        row("  forest part", m)?;
    }
    if let Some(c) = &r.current {
        match (&c.model, &c.problem) {
            (Some(m), _) => {
                if let Some(n) = &c.new_model_same_jobs {
                    outln!(
                        "on the {} latest jobs the current version never saw:",
                        c.compared_on
                    );
                    row("  model (new)", n)?;
                }
                row("  model (current)", m)?
            }
            (None, Some(p)) => outln!("{:<22} unusable: {p}", "model (current)"),
            _ => {}
        }
    }
    match &e.baselines.requested {
        Some(m) => row("requested time", m)?,
        None => outln!("{:<22} {:>12}", "requested time", "n/a (none in trace)"),
    }
    row("tsafrir (last two)", &e.baselines.tsafrir)?;
    row("last-5 median", &e.baselines.last5_median)?;
    if let Some(f) = &e.failure {
        outln!(
            "failure classifier: Brier {:.4} vs {:.4} for the base rate ({:.1}% failures)",
            f.brier,
            f.brier_base_rate,
            f.base_rate * 100.0
        );
    }
    if let Some(a) = &r.arrivals {
        outln!(
            "arrival forecast: {:.2} jobs/h MAE over {} pool-hours (same hour last week: {:.2})",
            a.mae_jobs_per_hour,
            a.hours,
            a.naive_last_week_mae
        );
    }
    match &r.planning {
        Some(c) => {
            outln!(
                "EASY++ on the {} held-out jobs from t={} s, {}:",
                c.replay.jobs,
                c.replay.from_submit_s,
                c.replay.machine
            );
            outln!(
                "{:<10} {:<12} {:<6} {:>12} {:>8} {:>12}",
                "estimate",
                "correction",
                "scale",
                "typical day",
                "+-se",
                "mean bsld"
            );
            for f in &c.candidates {
                outln!(
                    "{:<10} {:<12} {:<6} {:>12} {:>8} {:>12.2}{}",
                    f.usage.plan_with.name(),
                    f.usage.correction.name(),
                    f.target.map_or("-", |t| t.name()),
                    f.bsld_typical_day
                        .map_or_else(|| "-".to_string(), |d| format!("{d:.2}")),
                    f.bsld_typical_day_se
                        .map_or_else(|| "-".to_string(), |se| format!("{se:.2}")),
                    f.bsld_mean,
                    if f.usage == c.usage && f.target == c.target {
                        "  <- chosen"
                    } else {
                        ""
                    }
                );
            }
            match c.target {
                Some(t) => outln!("planning: {}, {} scale ({})", c.usage, t.name(), c.reason),
                None => outln!("planning: {} ({})", c.usage, c.reason),
            }
        }
        None => outln!(
            "planning: defaults kept (point, upper): {}",
            r.planning_skipped.as_deref().unwrap_or("no replay")
        ),
    }
    for n in &r.notes {
        outln!("note: {n}");
    }
    outln!("{}", r.decision);
    if let Some(p) = &r.artifact {
        outln!("wrote {}", p.display());
    }
    for p in &r.plots {
        outln!("plot {}", p.display());
    }
    outln!("took {:.1} s", r.seconds);
    Ok(())
}

pub async fn run(args: RetrainArgs) -> Result<()> {
    let (params, target_named): (TrainParams, bool) = match &args.params {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("--params {}", p.display()))?;
            let params =
                toml::from_str(&text).with_context(|| format!("--params {}", p.display()))?;
            // Parsed once more as a table: whether the file names the scale (then it is
            // not chosen), which the typed parameters' default cannot tell.
            let named =
                toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.contains_key("target"));
            (params, named)
        }
        None => (TrainParams::default(), false),
    };
    let config = params.check().context("--params")?;
    let mut history = read(&args).await?;
    let machine = machine(&args, &history)?;
    if !(args.history_fraction > 0.0 && args.history_fraction <= 1.0) {
        bail!(
            "--history-fraction must be in (0, 1], got {}",
            args.history_fraction
        );
    }
    if args.history_fraction < 1.0 {
        history.records.sort_by_key(|r| r.submit_s);
        let keep = (history.records.len() as f64 * args.history_fraction).round() as usize;
        history.records.truncate(keep);
    }
    let opts = RetrainOptions {
        config,
        train_fraction: args.train_fraction,
        force: args.force,
        plots: args.plots,
        sources: history.sources,
        unix_start: history.unix_start,
        target_mae_tolerance: (!target_named).then_some(MAE_TOLERANCE),
    };
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(Stage::COUNT), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let out = args.out.clone();
    let records = history.records;
    let progress_bar = bar.clone();
    // Training is CPU-bound: keep it off the async runtime's workers.
    let report = tokio::task::spawn_blocking(move || {
        let mut step = 0;
        let mut chooser = |held: HeldOut<'_>| match &machine {
            Ok((fleet, described)) => match choose_usage(held, fleet, described) {
                Ok(Some(choice)) => Ok(choice),
                Ok(None) => Err("the replay placed no held-out job".to_string()),
                Err(e) => Err(format!("the replay of the held-out jobs failed: {e}")),
            },
            Err(why) => Err(why.clone()),
        };
        retrain_with(
            &records,
            &out,
            &opts,
            &mut |stage| {
                if let Some(b) = &progress_bar {
                    b.set_position(step);
                    b.set_message(stage.label());
                }
                step += 1;
            },
            &mut chooser,
        )
    })
    .await
    .context("the training task failed")?
    .with_context(|| format!("retraining into {}", args.out.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report_json(&report))?),
        Format::Table => print_table(&report)?,
    }
    Ok(())
}
