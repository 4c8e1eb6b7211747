//! The `sweep` and `plan` subcommands of `rustci-sim` (capacity planning); the logic is
//! in the library (`rustci_sim::sweep`, `rustci_sim::plan`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustci_scheduler::{PolicyConfig, ScalePolicy, MS_PER_S};
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::plan::{fleet_toml, plan_replicated, Bound, Confirm, PlanSpec, Target, Validate};
use rustci_sim::replicate::{self, Replications};
use rustci_sim::scenario::PredictorSpec;
use rustci_sim::sweep::{run_grid, ttf_by_setting, write_rows, Grid};

use crate::args::{AutoscalerArg, WorkloadArgs};

/// Most time-to-feedback CDF figures on a sweep's page (one per setting of the axes
/// other than the policy).
const MAX_TTF_CDFS: usize = 50;

pub const SWEEP_EXAMPLES: &str = "\
Examples:
  # The 100-point benchmark grid (1 week, 500 runners): sizes x policies x loads
  rustci-sim sweep --grid simulator/grids/bench-100.toml --out /tmp/sweep100

  # A small grid of your own:
  cat > grid.toml <<'EOF'
  fleet = \"my-fleet.toml\"        # relative to this file; default: the built-in fleet
  scale = [0.5, 1, 2]
  policy = [\"easy\", \"fairshare\"]
  load = [1, 2]
  [workload]
  synthetic = { seed = 1, days = 1 }
  EOF
  rustci-sim sweep --grid grid.toml --out sweep-out   # writes sweep.csv, sweep.parquet, sweep.json
  # Every point on the same 5 replications, intervals in the files and the frontier:
  rustci-sim sweep --grid grid.toml --out sweep-ci --replications 5

Grid axes (all lists, all optional): scale | runners, policy, autoscaler, idle_timeout_s,
target_scale, min_runners, max_runners, provisioning_delay_s, load. See the README,
\"Capacity planning: sweep and plan\".";

pub const PLAN_EXAMPLES: &str = "\
Examples:
  # The cheapest fixed fleet for the synthetic week with standard jobs' p95 wait <= 300 s:
  rustci-sim plan --fleet simulator/fleets/default-ci.toml \\
      --target 'standard:p95<=300' --target 'urgent:p95<=60' --format json \\
      --fleet-out planned.toml
  rustci-sim run --fleet planned.toml --format json      # replays it

  # A plan over 20 weeks, not one: each candidate on 20 replications, every one of
  # them must meet the target; the choice must meet it again on 20 fresh weeks (else
  # it is stepped up until it meets them, and that is confirmed on 20 more, and so
  # on); then 20 other weeks replay the answer:
  rustci-sim plan --target 'standard:p95<=300' --replications 20 --validate 20

  # The average week within the target (the upper end of the mean's 95% interval),
  # no confirmation:
  rustci-sim plan --target 'standard:p95<=300' --replications 20 --bound mean --confirm 0

  # The shortest reactive idle timeout that meets the target on a trace:
  rustci-sim plan --fleet simulator/fleets/travis.toml --trace projects/ \\
      --autoscaler reactive --target 'standard:p95<=120'

A target that no fleet within the bounds meets exits with status 1, naming the class and
its best p95.";

pub const COMPARE_EXAMPLES: &str = "\
Examples:
  # Two scenario files (the grid file format with one value per axis):
  cat > reactive.toml <<'EOF'
  fleet = \"simulator/fleets/autoscale-ci.toml\"
  policy = [\"qos\"]
  autoscaler = [\"reactive\"]
  idle_timeout_s = [600]
  provisioning_delay_s = [60]
  EOF
  sed 's/reactive/predictive/; s/idle_timeout_s = \\[600\\]/target_scale = [0.05]/' \\
      reactive.toml > predictive.toml
  rustci-sim compare reactive.toml predictive.toml --replications 20
  rustci-sim compare reactive.toml predictive.toml --format json | jq .differences.cost

Both files must name the same workload (a trace is resampled by days or weeks, the
synthetic workload by seeds): replication i is the same workload for A and B.";

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Scenario A (a grid file with one value per axis: workload, fleet, policy,
    /// autoscaler settings, load, predictor).
    #[arg(value_name = "A.toml")]
    a: PathBuf,
    /// Scenario B; differences are B - A.
    #[arg(value_name = "B.toml")]
    b: PathBuf,
    /// Replications (at least 2: the interval is over them).
    #[arg(long, default_value_t = 20, value_name = "N")]
    replications: usize,
    /// Seed of a trace's block bootstrap (the synthetic workload uses its own seed,
    /// then the next ones).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs at once (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// The answer on stdout as a table or as JSON
    /// (`differences.<metric> = {mean, ci95: [low, high], significant}`).
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    format: PlanFormat,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Grid file (TOML): the workload, the fleet and the axes.
    #[arg(long, value_name = "GRID.toml")]
    grid: PathBuf,
    /// Output folder: sweep.csv, sweep.parquet (the same table, typed) and sweep.json, one
    /// row per point.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Points run at once (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Run every point on N replications (the same N for every point: synthetic seeds
    /// from the grid's seed on, or block bootstrap resamples of the trace seeded by
    /// --seed); sweep.json then has each figure's mean with `<metric>_ci95`, sweep.csv
    /// a column per figure and interval end, the frontier error bars and bands.
    #[arg(long, default_value_t = 1, value_name = "N")]
    replications: usize,
    /// Seed of a trace's block bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BoundArg {
    Mean,
    Prediction,
    Every,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Fleet file (TOML) whose pools are scaled. Default: the built-in CI fleet.
    #[arg(long)]
    fleet: Option<PathBuf>,
    /// A p95 wait target, `CLASS:p95<=SECONDS` (repeat for several classes).
    #[arg(long = "target", value_name = "CLASS:p95<=SECONDS", required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Scheduling policy (as `run --policy`).
    #[arg(long, default_value = "easy")]
    policy: String,
    /// Arrival-rate multiplier.
    #[arg(long, default_value_t = 1.0)]
    load: f64,
    /// Run-time estimates: requested, tsafrir or model:DIR (the current version of a
    /// `rustci retrain` directory).
    #[arg(long, default_value = "requested")]
    predictor: String,
    /// Plan an autoscaler setting instead of fixed runner counts: static scales the
    /// runners, reactive searches the idle timeout, predictive the target_scale.
    #[arg(long, value_enum)]
    autoscaler: Option<AutoscalerArg>,
    /// The largest fleet tried: this multiple of every pool's runners.
    #[arg(long, default_value_t = 8.0)]
    max_scale: f64,
    /// Reactive: the longest idle timeout tried, seconds.
    #[arg(long, default_value_t = 14_400)]
    max_idle_timeout_s: u64,
    /// Candidate fleets simulated at once (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the chosen fleet as a fleet file (replay with `run --fleet`).
    #[arg(long, value_name = "FILE.toml")]
    fleet_out: Option<PathBuf>,
    /// The answer on stdout as a table or as JSON.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    format: PlanFormat,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Run each candidate on N replications (synthetic: seeds --seed, --seed + 1, ...;
    /// a trace: block bootstrap resamples seeded by --seed) and take a fleet only when
    /// the upper end of the 95% interval of each targeted p95 meets its target.
    #[arg(long, default_value_t = 1, value_name = "N")]
    replications: usize,
    /// With --replications: the bound of each targeted p95 that must meet its target:
    /// `mean` (the upper end of the 95% confidence interval of the mean p95: the
    /// average week meets it) or `prediction` (the upper end of the 95% prediction
    /// interval: the next week meets it with about 97.5% probability, for normal
    /// weeks) or `every` (every replication meets it: a fresh week does with at least
    /// N/(N + 1), whatever the distribution, less the search's own choosing).
    /// The default is `every`: a planner asks whether next week meets the target.
    #[arg(long, value_enum, default_value_t = BoundArg::Every)]
    bound: BoundArg,
    /// With --replications N > 1: the chosen fleet must meet the bound again on K fresh
    /// replications (default N; 0: no confirmation); if it does not, it is stepped up
    /// to the least that meets the bound on them (runners x one factor, or the
    /// autoscaler's knob) and that fleet is confirmed on K other fresh ones. The
    /// cheapest fleet that passes on N weeks is the one whose weeks happened to be
    /// kind; a pass on weeks it was not chosen on is evidence.
    #[arg(long, value_name = "K")]
    confirm: Option<usize>,
    /// Confirmation rounds at most; after the last failed one its step up is returned,
    /// marked unconfirmed.
    #[arg(long, default_value_t = 4, value_name = "R")]
    confirm_rounds: usize,
    /// Replay the chosen fleet on M fresh replications and report the share that met
    /// every target. They are none of the search's or the confirmations': replications
    /// N + R*K to N + R*K + M - 1 (seeds --seed + that index).
    #[arg(long, value_name = "M")]
    validate: Option<usize>,
}

pub(crate) fn bar(quiet: bool, len: Option<u64>, template: &str) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

pub(crate) fn threads(arg: Option<usize>) -> Result<usize> {
    match arg {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

pub fn sweep_cmd(args: SweepArgs) -> Result<()> {
    let grid = Grid::load(&args.grid)?;
    let workload = grid.workload.load()?;
    let threads = threads(args.threads)?;
    if args.replications == 0 {
        anyhow::bail!("--replications must be at least 1");
    }
    if args.replications > 1 {
        return sweep_replicated(&args, &grid, &workload, threads);
    }
    let bar = bar(
        args.quiet,
        Some(grid.points.len() as u64),
        "{elapsed_precise} [{bar:40}] {pos}/{len} points ({eta} left)",
    );
    let rows = run_grid(&grid, &workload, threads, &|done| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    write_rows(&args.out, &rows)?;
    // Cost vs p95 wait, one series per policy (+ autoscaler): the frontier a planner reads.
    let points: Vec<(String, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let name = if r.autoscaler.is_empty() || r.autoscaler == "none" {
                r.policy.clone()
            } else {
                format!("{} / {}", r.policy, r.autoscaler)
            };
            r.wait_p95_s.map(|p95| (name, r.cost, p95))
        })
        .collect();
    let svg = rustci_sim::plots::frontier_svg(&points)?;
    let svg_path = args.out.join("frontier.svg");
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    rustci_sim::plots::frontier_plot(&points, &args.out.join("frontier.png"))?;
    // With pipelines: per setting of the other axes, the policies' time-to-feedback CDFs
    // (a page of hundreds of plots would not be read: the first MAX_TTF_CDFS).
    let settings = ttf_by_setting(&rows);
    let ttf_cdfs = settings
        .iter()
        .take(MAX_TTF_CDFS)
        .map(|(setting, series)| Ok((setting.clone(), rustci_sim::plots::ttf_cdf_svg(series)?)))
        .collect::<Result<Vec<_>>>()?;
    let left_out = settings.len().saturating_sub(MAX_TTF_CDFS);
    let html_path = args.out.join("sweep.html");
    std::fs::write(
        &html_path,
        rustci_sim::html::render_sweep(&rows, &svg, &ttf_cdfs, left_out),
    )
    .with_context(|| format!("writing {}", html_path.display()))?;
    eprintln!(
        "{} points ({} jobs each, {} threads) -> {}/sweep.csv, sweep.parquet, sweep.json, frontier.svg/.png, sweep.html",
        rows.len(),
        workload.records.len(),
        threads,
        args.out.display()
    );
    Ok(())
}

/// The replications' base seed for a grid's workload: the synthetic workload's own
/// seed, else `--seed` (a trace's bootstrap).
fn base_seed(spec: &rustci_sim::scenario::WorkloadSpec, seed: u64) -> u64 {
    match spec {
        rustci_sim::scenario::WorkloadSpec::Synthetic(cfg) => cfg.seed,
        rustci_sim::scenario::WorkloadSpec::Trace { .. } => seed,
    }
}

/// A scenario file: a grid of exactly one point.
fn scenario_file(path: &std::path::Path) -> Result<Grid> {
    let grid = Grid::load(path)?;
    if grid.points.len() != 1 {
        anyhow::bail!(
            "{}: a scenario has one value per axis; this file gives {} points (use \
             `rustci-sim sweep` for a grid)",
            path.display(),
            grid.points.len()
        );
    }
    Ok(grid)
}

pub fn compare_cmd(args: CompareArgs) -> Result<()> {
    rustci_sim::interval::need_interval("compare --replications", args.replications)?;
    let (ga, gb) = (scenario_file(&args.a)?, scenario_file(&args.b)?);
    if ga.workload != gb.workload {
        anyhow::bail!(
            "{} and {} name different workloads ({:?} and {:?}): a paired comparison runs \
             both on the same replications of one workload",
            args.a.display(),
            args.b.display(),
            ga.workload,
            gb.workload
        );
    }
    let threads = threads(args.threads)?;
    let workload = ga.workload.load()?;
    let base = base_seed(&ga.workload, args.seed);
    let reps = Replications {
        n: args.replications,
        first: 0,
        base,
    };
    let replicator = replicate::Replicator::new(&ga.workload, &workload, base);
    let how = replicator.resampling();
    let (pa, pb) = (&ga.points[0], &gb.points[0]);
    let (sa, sb) = (
        pa.scenario(&workload, &ga.predictor)?,
        pb.scenario(&workload, &gb.predictor)?,
    );
    let bar = bar(
        args.quiet,
        Some(2 * reps.n as u64),
        "{elapsed_precise} [{bar:40}] {pos}/{len} runs ({eta} left)",
    );
    let (ra, rb) = replicate::paired_reports(&sa, &sb, &replicator, reps.n, threads, &|n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let json = |r: &[rustci_sim::report::Report]| -> Result<Vec<serde_json::Value>> {
        r.iter().map(|x| Ok(serde_json::to_value(x)?)).collect()
    };
    let (va, vb) = (json(&ra)?, json(&rb)?);
    let (suma, sumb) = (replicate::summary(&va, how), replicate::summary(&vb, how));
    let differences = rustci_sim::interval::paired(&va, &vb);
    match args.format {
        PlanFormat::Json => {
            let out = serde_json::json!({
                "replications": reps.n,
                "resampling": how.describe(),
                "a": {"file": args.a.display().to_string(), "scenario": pa.describe(), "summary": suma},
                "b": {"file": args.b.display().to_string(), "scenario": pb.describe(), "summary": sumb},
                "differences": differences,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        PlanFormat::Table => {
            outln!(
                "A = {} ({})\nB = {} ({})\n{} replications ({}); B - A paired by replication\n",
                args.a.display(),
                pa.describe(),
                args.b.display(),
                pb.describe(),
                reps.n,
                how.describe()
            );
            out!(
                "{}",
                replicate::comparison_table(&suma, &sumb, &differences)
            );
        }
    }
    Ok(())
}

/// `sweep --replications N`: every point on the same N replications, summarised.
fn sweep_replicated(
    args: &SweepArgs,
    grid: &Grid,
    workload: &rustci_sim::scenario::Workload,
    threads: usize,
) -> Result<()> {
    let base = base_seed(&grid.workload, args.seed);
    let reps = Replications {
        n: args.replications,
        first: 0,
        base,
    };
    let (how, workloads) = replicate::workloads(&grid.workload, workload, reps, threads)?;
    let bar = bar(
        args.quiet,
        Some((grid.points.len() * reps.n) as u64),
        "{elapsed_precise} [{bar:40}] {pos}/{len} runs ({eta} left)",
    );
    let per_point = rustci_sim::sweep::run_grid_replicated(grid, &workloads, threads, &|n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let summaries: Vec<serde_json::Value> = per_point
        .iter()
        .map(|rows| {
            let mut s = rustci_sim::sweep::summarise_rows(rows);
            if let Some(m) = s.as_object_mut() {
                m.insert("resampling".into(), how.describe().into());
            }
            s
        })
        .collect();
    rustci_sim::sweep::write_summaries(&args.out, &summaries)?;
    let f = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let ci = |v: &serde_json::Value, k: &str| -> Option<[f64; 2]> {
        let a = v.get(format!("{k}_ci95"))?.as_array()?;
        Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?])
    };
    let (points, cis): (Vec<(String, f64, f64)>, Vec<_>) = per_point
        .iter()
        .zip(&summaries)
        .filter_map(|(rows, s)| {
            let r = rows.first()?;
            let name = if r.autoscaler.is_empty() || r.autoscaler == "none" {
                r.policy.clone()
            } else {
                format!("{} / {}", r.policy, r.autoscaler)
            };
            let bars = ci(s, "cost").zip(ci(s, "wait_p95_s"));
            Some(((name, f(s, "cost")?, f(s, "wait_p95_s")?), bars))
        })
        .unzip();
    let svg = rustci_sim::plots::frontier_svg_ci(&points, &cis)?;
    let svg_path = args.out.join("frontier.svg");
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    rustci_sim::plots::frontier_plot_ci(&points, &cis, &args.out.join("frontier.png"))?;
    let html_path = args.out.join("sweep.html");
    std::fs::write(
        &html_path,
        rustci_sim::html::render_sweep_replicated(&summaries, &svg),
    )
    .with_context(|| format!("writing {}", html_path.display()))?;
    eprintln!(
        "{} points x {} replications ({}; {threads} threads) -> {}/sweep.csv, sweep.parquet, sweep.json, frontier.svg/.png, sweep.html",
        grid.points.len(),
        reps.n,
        how.describe(),
        args.out.display()
    );
    Ok(())
}

pub fn plan_cmd(args: PlanArgs) -> Result<()> {
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let fleet = match &args.fleet {
        Some(p) => FleetFile::load(p)?,
        None => FleetFile::default_ci()?,
    };
    rustci_sim::scenario::check_load(args.load).map_err(|r| anyhow::anyhow!("--load {r}"))?;
    PolicyConfig::named(&args.policy).context("--policy")?;
    rustci_sim::plan::check_targets(&targets, &fleet)?;
    let workload_spec = args.workload.spec()?;
    let workload = workload_spec.load()?;
    let default_ms = 3600 * MS_PER_S;
    // As `run` does: the flag, else the fleet file's `[autoscaler] policy`, so that the
    // written fleet replays the run that was planned.
    let autoscaler = match (args.autoscaler, fleet.autoscaler_policy()) {
        (Some(a), _) => Some(a.policy()),
        (None, Some(name)) => Some(ScalePolicy::named(name).context("[autoscaler] policy")?),
        (None, None) => None,
    };
    let spec = PlanSpec {
        fleet,
        targets,
        policy: args.policy.clone(),
        load: args.load,
        predictor: PredictorSpec::parse(&args.predictor, default_ms).context("--predictor")?,
        autoscaler,
        max_scale: args.max_scale,
        max_idle_timeout_s: args.max_idle_timeout_s,
        threads: threads(args.threads)?,
        bound: match args.bound {
            BoundArg::Mean => Bound::Mean,
            BoundArg::Prediction => Bound::Prediction,
            BoundArg::Every => Bound::Every,
        },
    };
    let bar = bar(
        args.quiet,
        None,
        "{elapsed_precise} {spinner} {pos} candidate fleets simulated",
    );
    if args.replications == 0 || args.validate == Some(0) {
        anyhow::bail!("--replications and --validate must be at least 1");
    }
    if args.replications == 1 {
        eprintln!(
            "note: {}",
            rustci_sim::interval::IntervalError::TooFew {
                what: "plan --replications 1 meets each target on one run only: no \
                       confidence bound"
                    .into(),
                replications: 1
            }
        );
    }
    // Replication numbers: the search's 0..N, confirmation round r's N + r*K.., the
    // validation's N + R*K..: no set sees another's weeks.
    let replicator =
        replicate::Replicator::new(&workload_spec, &workload, args.workload.synthetic.seed);
    let workloads = if args.replications == 1 {
        vec![workload.clone()]
    } else {
        replicator.many(0, args.replications, spec.threads)?
    };
    let confirm_n = match args.confirm {
        Some(k) => k,
        None if args.replications > 1 => args.replications,
        None => 0,
    };
    let fresh = |round: usize| {
        replicator.many(
            args.replications + round * confirm_n,
            confirm_n,
            spec.threads,
        )
    };
    let confirm = Confirm {
        replications: confirm_n,
        rounds: args.confirm_rounds,
        fresh: &fresh,
    };
    let first_validation = args.replications + args.confirm_rounds * confirm_n;
    let make_validation = |i: usize| replicator.make(first_validation + i);
    let validate = args.validate.map(|m| Validate {
        replications: m,
        make: &make_validation,
    });
    let result = plan_replicated(&spec, &workloads, &confirm, validate.as_ref(), &|n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let result = result?;
    if let Some(path) = &args.fleet_out {
        std::fs::write(path, fleet_toml(&result.fleet, spec.autoscaler))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match args.format {
        PlanFormat::Json => outln!("{}", serde_json::to_string_pretty(&result)?),
        PlanFormat::Table => out!("{}", result.human()),
    }
    Ok(())
}
