//! `rustci-sim sweep`: a grid of what-if runs (fleet size, policy, autoscaler settings,
//! load) over one workload, run in parallel, one report row per point.
//!
//! The grid file (TOML). Every axis is a list and optional; a missing axis keeps the
//! fleet's own value. Relative paths are resolved against the grid file's folder.
//!
//! ```toml
//! fleet = "../fleets/default-ci.toml"   # default: the built-in CI fleet
//! predictor = "requested"               # requested | tsafrir | model:DIR (default requested)
//! default_estimate_s = 3600             # estimate for jobs without a requested time
//!
//! scale = [0.5, 1.0, 2.0]               # x every pool's runners (rounded, at least 1)
//! # runners = [{ linux = 100 }, { linux = 200, macos = 40 }]   # or explicit counts
//! policy = ["easy", "fairshare"]
//! autoscaler = ["none", "reactive"]     # none (fixed fleet) | static | reactive | predictive
//! idle_timeout_s = [300, 3600]          # every pool's
//! target_scale = [1.0, 0.05]            # predictive
//! min_runners = [{ linux = 2 }]         # per pool, by name
//! max_runners = [{ linux = 500, gpu = 20 }]
//! provisioning_delay_s = [60]           # every pool's
//! load = [0.5, 1, 2, 3]                 # arrival-rate multiplier
//!
//! [workload]                            # last: a TOML table takes the keys below it
//! synthetic = { seed = 1, days = 7 }    # any field of the synthetic workload's TOML; with
//!                                       # pipelines unless pipelines = { enabled = false }
//! # trace = "../../datasets/x.csv"      # or a trace, with an optional format
//! # format = "gha"                      # swf | travis | gha | csv | parquet
//! ```
//!
//! Points are the cartesian product, numbered with the axes nested in the order above
//! (fleet size outermost, load innermost).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rustci_datasets::parquet::ColumnKind;
use rustci_datasets::synthetic::SyntheticConfig;
use rustci_datasets::TraceFormat;
use rustci_scheduler::{PolicyConfig, ScalePolicy, MS_PER_S};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fleet_file::{FleetError, FleetFile, MAX_RUNNERS};
use crate::report::{PipelineReport, Report};
use crate::scenario::{
    check_load, pipelines_unless_turned_off, PredictorSpec, Scenario, Workload, WorkloadSpec,
};
use crate::simulate::SimError;

/// A grid larger than this is almost certainly a typo (and would run for days).
pub const MAX_POINTS: usize = 100_000;

#[derive(Debug, Error)]
pub enum SweepError {
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: {error}")]
    Toml {
        file: String,
        error: toml::de::Error,
    },
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("point {point} ({params}): {error}")]
    Point {
        point: usize,
        params: String,
        error: SimError,
    },
    #[error("writing {file}: {error}")]
    Write { file: String, error: std::io::Error },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default)]
    fleet: Option<PathBuf>,
    #[serde(default)]
    predictor: Option<String>,
    #[serde(default)]
    default_estimate_s: Option<i64>,
    #[serde(default)]
    workload: WorkloadEntry,
    #[serde(default)]
    scale: Vec<f64>,
    #[serde(default)]
    runners: Vec<BTreeMap<String, u32>>,
    #[serde(default)]
    policy: Vec<String>,
    #[serde(default)]
    autoscaler: Vec<String>,
    #[serde(default)]
    idle_timeout_s: Vec<f64>,
    #[serde(default)]
    target_scale: Vec<f64>,
    #[serde(default)]
    min_runners: Vec<BTreeMap<String, u32>>,
    #[serde(default)]
    max_runners: Vec<BTreeMap<String, u32>>,
    #[serde(default)]
    provisioning_delay_s: Vec<f64>,
    #[serde(default)]
    load: Vec<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadEntry {
    #[serde(default)]
    synthetic: Option<SyntheticConfig>,
    #[serde(default)]
    trace: Option<PathBuf>,
    #[serde(default)]
    format: Option<String>,
}

/// The fleet size of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum Size {
    /// The fleet file's runners.
    AsIs,
    Scale(f64),
    /// Runner counts for the named pools; the others keep theirs.
    Runners(BTreeMap<String, u32>),
}

/// One point of the grid: its parameters and the fleet they give.
#[derive(Debug, Clone)]
pub struct Point {
    pub index: usize,
    pub size: Size,
    pub policy: String,
    pub autoscaler: Option<ScalePolicy>,
    pub idle_timeout_s: Option<f64>,
    pub target_scale: Option<f64>,
    pub min_runners: Option<BTreeMap<String, u32>>,
    pub max_runners: Option<BTreeMap<String, u32>>,
    pub provisioning_delay_s: Option<f64>,
    pub load: f64,
    /// The base fleet with this point's settings, checked.
    pub fleet: FleetFile,
}

impl Point {
    /// The point's run on `workload` with estimates from `predictor`.
    pub fn scenario<'a>(
        &'a self,
        workload: &'a Workload,
        predictor: &'a PredictorSpec,
    ) -> Result<Scenario<'a>, SimError> {
        Ok(Scenario {
            autoscaler: self.autoscaler,
            load: self.load,
            ..Scenario::new(workload, &self.fleet, &self.policy, predictor)?
        })
    }

    /// The parameters, for error messages.
    pub fn describe(&self) -> String {
        let mut s = match &self.size {
            Size::AsIs => "fleet as is".to_string(),
            Size::Scale(x) => format!("scale {x}"),
            Size::Runners(m) => format!("runners {}", pool_map(m)),
        };
        let _ = write!(
            s,
            ", policy {}, autoscaler {}, load {}",
            self.policy,
            autoscaler_name(self.autoscaler),
            self.load
        );
        s
    }
}

/// A parsed grid: the workload, the base fleet and every point.
#[derive(Debug, Clone)]
pub struct Grid {
    pub workload: WorkloadSpec,
    pub fleet: FleetFile,
    pub predictor: PredictorSpec,
    pub points: Vec<Point>,
}

fn autoscaler_name(a: Option<ScalePolicy>) -> &'static str {
    a.map_or("none", |p| p.name())
}

/// `linux=2 gpu=0` (pool order of the map).
fn pool_map(m: &BTreeMap<String, u32>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[None]` for an empty axis (the fleet's own value), else every value.
fn axis<T: Clone>(values: &[T]) -> Vec<Option<T>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.iter().cloned().map(Some).collect()
    }
}

impl Grid {
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SweepError::Io {
            file: file.clone(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &file, base)
    }

    /// Parses and checks a grid; `file` names it in errors, relative paths are taken from
    /// `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, SweepError> {
        let g: GridFile = toml::from_str(text).map_err(|error| SweepError::Toml {
            file: file.into(),
            error,
        })?;
        let bad = |field: String, reason: String| SweepError::Invalid {
            file: file.into(),
            field,
            reason,
        };
        let fleet = match &g.fleet {
            Some(p) => FleetFile::load(&base.join(p))?,
            None => FleetFile::default_ci()?,
        };
        let workload = match (g.workload.synthetic, g.workload.trace) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "workload".into(),
                    "give either synthetic or trace, not both".into(),
                ))
            }
            (None, Some(trace)) => WorkloadSpec::Trace {
                path: base.join(trace),
                format: match &g.workload.format {
                    Some(f) => Some(
                        f.parse::<TraceFormat>()
                            .map_err(|e| bad("workload.format".into(), e.to_string()))?,
                    ),
                    None => None,
                },
            },
            (synthetic, None) => {
                if g.workload.format.is_some() {
                    return Err(bad(
                        "workload.format".into(),
                        "only with workload.trace".into(),
                    ));
                }
                let mut cfg = synthetic.unwrap_or_default();
                // As `run --synthetic`: pipelines unless the table turns them off.
                let table: toml::Table =
                    toml::from_str(text).map_err(|error| SweepError::Toml {
                        file: file.into(),
                        error,
                    })?;
                let written = table
                    .get("workload")
                    .and_then(|w| w.get("synthetic"))
                    .and_then(toml::Value::as_table);
                pipelines_unless_turned_off(&mut cfg, written);
                cfg.validate()
                    .map_err(|e| bad("workload.synthetic".into(), e.to_string()))?;
                WorkloadSpec::Synthetic(Box::new(cfg))
            }
        };
        let default_s = g.default_estimate_s.unwrap_or(3600);
        if default_s <= 0 {
            return Err(bad(
                "default_estimate_s".into(),
                format!("must be > 0, got {default_s}"),
            ));
        }
        let default_ms = default_s * MS_PER_S;
        let predictor =
            PredictorSpec::parse(g.predictor.as_deref().unwrap_or("requested"), default_ms)
                .map_err(|e| bad("predictor".into(), e.to_string()))?;

        // Each axis is checked on its own first, so an error names the value's index.
        if !g.scale.is_empty() && !g.runners.is_empty() {
            return Err(bad(
                "scale".into(),
                "give either scale or runners, not both".into(),
            ));
        }
        for (i, x) in g.scale.iter().enumerate() {
            if !(x.is_finite() && *x > 0.0) {
                return Err(bad(format!("scale[{i}]"), format!("must be > 0, got {x}")));
            }
            // Checked here, not at its point: a sweep should not run for hours and then
            // stop at a fleet that could never be simulated.
            if let Err(e) = fleet.scaled(*x).recheck("the scaled fleet") {
                return Err(bad(format!("scale[{i}]"), format!("{x} x the fleet: {e}")));
            }
        }
        let known = |name: &str, m: &BTreeMap<String, u32>, i: usize| {
            for pool in m.keys() {
                if !fleet.pools.iter().any(|p| &p.name == pool) {
                    let names: Vec<&str> = fleet.pools.iter().map(|p| p.name.as_str()).collect();
                    return Err(bad(
                        format!("{name}[{i}].{pool}"),
                        format!("no pool named {pool:?} (pools: {})", names.join(", ")),
                    ));
                }
            }
            Ok(())
        };
        for (i, m) in g.runners.iter().enumerate() {
            if let Some((pool, _)) = m.iter().find(|(_, n)| **n == 0) {
                return Err(bad(
                    format!("runners[{i}].{pool}"),
                    "must be at least 1".into(),
                ));
            }
        }
        for (name, axis) in [
            ("runners", &g.runners),
            ("min_runners", &g.min_runners),
            ("max_runners", &g.max_runners),
        ] {
            for (i, m) in axis.iter().enumerate() {
                known(name, m, i)?;
                if let Some((pool, n)) = m.iter().find(|(_, n)| **n > MAX_RUNNERS) {
                    return Err(bad(
                        format!("{name}[{i}].{pool}"),
                        format!("at most {MAX_RUNNERS} runners (the simulator's limit), got {n}"),
                    ));
                }
            }
        }
        for (i, p) in g.policy.iter().enumerate() {
            PolicyConfig::named(p).map_err(|e| bad(format!("policy[{i}]"), e.to_string()))?;
        }
        let mut autoscalers = Vec::new();
        for (i, a) in g.autoscaler.iter().enumerate() {
            autoscalers.push(match a.as_str() {
                "none" => None,
                name => Some(
                    ScalePolicy::named(name)
                        .map_err(|e| bad(format!("autoscaler[{i}]"), e.to_string()))?,
                ),
            });
        }
        for (name, values, min) in [
            ("idle_timeout_s", &g.idle_timeout_s, 0.0),
            ("target_scale", &g.target_scale, 0.0),
            ("provisioning_delay_s", &g.provisioning_delay_s, 0.0),
        ] {
            for (i, x) in values.iter().enumerate() {
                if !(x.is_finite() && *x >= min) {
                    return Err(bad(
                        format!("{name}[{i}]"),
                        format!("must be >= 0, got {x}"),
                    ));
                }
            }
        }
        for (i, x) in g.load.iter().enumerate() {
            check_load(*x).map_err(|reason| bad(format!("load[{i}]"), reason))?;
        }

        let sizes: Vec<Size> = if !g.scale.is_empty() {
            g.scale.iter().map(|x| Size::Scale(*x)).collect()
        } else if !g.runners.is_empty() {
            g.runners.iter().cloned().map(Size::Runners).collect()
        } else {
            vec![Size::AsIs]
        };
        let policies = if g.policy.is_empty() {
            vec!["easy".to_string()]
        } else {
            g.policy.clone()
        };
        let autoscalers = if autoscalers.is_empty() {
            // The fleet file's `[autoscaler] policy`, as `run` does.
            vec![match fleet.autoscaler_policy() {
                Some(name) => Some(
                    ScalePolicy::named(name)
                        .map_err(|e| bad("fleet: autoscaler.policy".into(), e.to_string()))?,
                ),
                None => None,
            }]
        } else {
            autoscalers
        };
        let idles = axis(&g.idle_timeout_s);
        let targets = axis(&g.target_scale);
        let mins = axis(&g.min_runners);
        let maxs = axis(&g.max_runners);
        let delays = axis(&g.provisioning_delay_s);
        let loads = if g.load.is_empty() {
            vec![1.0]
        } else {
            g.load.clone()
        };
        let total = [
            sizes.len(),
            policies.len(),
            autoscalers.len(),
            idles.len(),
            targets.len(),
            mins.len(),
            maxs.len(),
            delays.len(),
            loads.len(),
        ]
        .iter()
        .try_fold(1usize, |acc, n| acc.checked_mul(*n))
        .unwrap_or(usize::MAX);
        if total > MAX_POINTS {
            return Err(bad(
                "grid".into(),
                format!("{total} points; at most {MAX_POINTS}"),
            ));
        }

        let mut points = Vec::with_capacity(total);
        for size in &sizes {
            for policy in &policies {
                for autoscaler in &autoscalers {
                    for idle in &idles {
                        for target in &targets {
                            for min in &mins {
                                for max in &maxs {
                                    for delay in &delays {
                                        for load in &loads {
                                            let mut p = Point {
                                                index: points.len(),
                                                size: size.clone(),
                                                policy: policy.clone(),
                                                autoscaler: *autoscaler,
                                                idle_timeout_s: *idle,
                                                target_scale: *target,
                                                min_runners: min.clone(),
                                                max_runners: max.clone(),
                                                provisioning_delay_s: *delay,
                                                load: *load,
                                                fleet: fleet.clone(),
                                            };
                                            p.fleet = point_fleet(&fleet, &p).map_err(|e| {
                                                bad(
                                                    format!("point {} ({})", p.index, p.describe()),
                                                    e.to_string(),
                                                )
                                            })?;
                                            points.push(p);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Self {
            workload,
            fleet,
            predictor,
            points,
        })
    }
}

/// The fleet of one point, checked.
fn point_fleet(base: &FleetFile, p: &Point) -> Result<FleetFile, FleetError> {
    let mut f = match &p.size {
        Size::AsIs => base.clone(),
        Size::Scale(x) => base.scaled(*x),
        Size::Runners(m) => {
            let mut f = base.clone();
            for pool in &mut f.pools {
                if let Some(n) = m.get(&pool.name) {
                    pool.runners = *n;
                }
            }
            f
        }
    };
    for pool in &mut f.pools {
        if let Some(n) = p.min_runners.as_ref().and_then(|m| m.get(&pool.name)) {
            pool.min_runners = *n;
        }
        if let Some(n) = p.max_runners.as_ref().and_then(|m| m.get(&pool.name)) {
            pool.max_runners = Some(*n);
        }
    }
    if let Some(t) = p.idle_timeout_s {
        f.set_idle_timeout(t);
    }
    if let Some(d) = p.provisioning_delay_s {
        f.set_provisioning_delay(d);
    }
    if let Some(x) = p.target_scale {
        f.autoscaler
            .get_or_insert_with(Default::default)
            .target_scale = x;
    }
    f.recheck("grid point")?;
    Ok(f)
}

/// One QoS class of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QosRow {
    pub jobs: u64,
    pub wait_p95_s: Option<f64>,
    pub within_target: Option<f64>,
}

/// A point's pipelines (a workload with pipelines only): the run report's headline
/// figures under the same names (`pipelines.*` of `rustci-sim run`'s JSON). Sweeps skip
/// the ETA projection, so `eta_within_10pct` and `eta_within_60s` are `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineRow {
    pub count: u64,
    pub ttf_count: u64,
    pub ttf_mean_s: Option<f64>,
    pub ttf_p50_s: Option<f64>,
    pub ttf_p95_s: Option<f64>,
    pub ttf_p99_s: Option<f64>,
    pub wait_mean_s: Option<f64>,
    pub skipped_jobs: u64,
    pub superseded: u64,
    pub superseded_jobs: u64,
    pub saved_runner_hours: f64,
    pub eta_within_10pct: Option<f64>,
    pub eta_within_60s: Option<f64>,
}

impl PipelineRow {
    fn new(p: &PipelineReport) -> Self {
        Self {
            count: p.count,
            ttf_count: p.ttf_count,
            ttf_mean_s: p.ttf_mean_s,
            ttf_p50_s: p.ttf_p50_s,
            ttf_p95_s: p.ttf_p95_s,
            ttf_p99_s: p.ttf_p99_s,
            wait_mean_s: p.wait_mean_s,
            skipped_jobs: p.skipped_jobs,
            superseded: p.superseded,
            superseded_jobs: p.superseded_jobs,
            saved_runner_hours: p.saved_runner_hours,
            eta_within_10pct: p.eta_within_10pct,
            eta_within_60s: p.eta_within_60s,
        }
    }
}

/// One point's parameters and results. Only deterministic figures (no wall time), so
/// two sweeps of one grid give the same rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub point: usize,
    pub scale: Option<f64>,
    /// Runners per pool (the static size; dynamic policies start at `min_runners`).
    pub runners: BTreeMap<String, u32>,
    pub total_runners: u64,
    pub policy: String,
    pub autoscaler: String,
    pub idle_timeout_s: Option<f64>,
    pub target_scale: Option<f64>,
    pub min_runners: Option<String>,
    pub max_runners: Option<String>,
    pub provisioning_delay_s: Option<f64>,
    pub load: f64,
    pub jobs: u64,
    pub unschedulable: u64,
    pub runner_hours: f64,
    pub cost: f64,
    pub wait_mean_s: Option<f64>,
    pub wait_p95_s: Option<f64>,
    pub wait_p99_s: Option<f64>,
    pub bsld_mean: Option<f64>,
    pub utilization: f64,
    /// Most runners paid for at once (autoscaled runs).
    pub peak_runners: Option<u64>,
    pub never_started: Option<u64>,
    pub qos: BTreeMap<String, QosRow>,
    /// Only when the workload has pipelines (as in the run report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<PipelineRow>,
    /// The pipelines' times to feedback, ascending (empty without pipelines): the
    /// sweep page's CDFs, not a column.
    #[serde(skip)]
    pub ttfs_s: Vec<f64>,
}

impl Row {
    /// `ttfs_s`: the run's times to feedback, ascending.
    fn new(p: &Point, r: &Report, ttfs_s: Vec<f64>) -> Self {
        Self {
            point: p.index,
            scale: match p.size {
                Size::Scale(x) => Some(x),
                _ => None,
            },
            runners: p
                .fleet
                .pools
                .iter()
                .map(|q| (q.name.clone(), q.runners))
                .collect(),
            total_runners: p.fleet.total_runners(),
            policy: p.policy.clone(),
            autoscaler: autoscaler_name(p.autoscaler).to_string(),
            idle_timeout_s: p.idle_timeout_s,
            target_scale: p.target_scale,
            min_runners: p.min_runners.as_ref().map(pool_map),
            max_runners: p.max_runners.as_ref().map(pool_map),
            provisioning_delay_s: p.provisioning_delay_s,
            load: p.load,
            jobs: r.jobs,
            unschedulable: r.skipped.unschedulable,
            runner_hours: r.runner_hours,
            cost: r.cost,
            wait_mean_s: r.wait_mean_s,
            wait_p95_s: r.wait_p95_s,
            wait_p99_s: r.wait_p99_s,
            bsld_mean: r.bsld_mean,
            utilization: r.utilization,
            peak_runners: r.autoscaler.as_ref().map(|a| a.peak_runners),
            never_started: r.autoscaler.as_ref().map(|a| a.never_started),
            qos: r
                .qos
                .iter()
                .map(|(k, q)| {
                    (
                        k.clone(),
                        QosRow {
                            jobs: q.jobs,
                            wait_p95_s: q.wait_p95_s,
                            within_target: q.within_target,
                        },
                    )
                })
                .collect(),
            pipelines: r.pipelines.as_ref().map(PipelineRow::new),
            ttfs_s,
        }
    }

    /// The point's settings other than its policy (what the policies of a sweep are
    /// compared at), naming only the axes the grid set.
    pub fn setting(&self) -> String {
        // Runner counts per pool tell apart two `runners` entries of the same total.
        let mut s = match self.scale {
            Some(x) => format!("{} runners (x{x})", self.total_runners),
            None => format!(
                "{} runners ({})",
                self.total_runners,
                pool_map(&self.runners)
            ),
        };
        if self.autoscaler != "none" {
            let _ = write!(s, ", autoscaler {}", self.autoscaler);
        }
        for (name, v) in [
            ("idle timeout", self.idle_timeout_s),
            ("target scale", self.target_scale),
            ("provisioning delay", self.provisioning_delay_s),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ", {name} {v}");
            }
        }
        for (name, v) in [("min", &self.min_runners), ("max", &self.max_runners)] {
            if let Some(v) = v {
                let _ = write!(s, ", {name} {v}");
            }
        }
        let _ = write!(s, ", load {}", self.load);
        s
    }
}

/// The time-to-feedback CDFs a sweep's page draws: per setting of the other axes (in
/// point order), the times of each policy there. Empty when the workload has no
/// pipelines.
pub fn ttf_by_setting(rows: &[Row]) -> Vec<(String, BTreeMap<String, Vec<f64>>)> {
    let mut out: Vec<(String, BTreeMap<String, Vec<f64>>)> = Vec::new();
    for r in rows.iter().filter(|r| r.pipelines.is_some()) {
        let setting = r.setting();
        let i = match out.iter().position(|(s, _)| *s == setting) {
            Some(i) => i,
            None => {
                out.push((setting, BTreeMap::new()));
                out.len() - 1
            }
        };
        out[i].1.insert(r.policy.clone(), r.ttfs_s.clone());
    }
    out
}

/// Runs every point on `threads` threads (a shared work queue), calling `progress` with
/// the number of points done. Rows come back in point order whatever the threads did.
/// The first failing point (lowest index) is the error; the others stop early.
pub fn run_grid(
    grid: &Grid,
    workload: &Workload,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Row>, SweepError> {
    let n = grid.points.len();
    // Heaviest first (most load per runner: the longest queues, the slowest runs), so
    // that no thread is left with one long point at the end. Only the order of work
    // changes; rows are put back in point order afterwards.
    let weight = |p: &Point| p.load / p.fleet.total_runners().max(1) as f64;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        weight(&grid.points[b])
            .total_cmp(&weight(&grid.points[a]))
            .then(a.cmp(&b))
    });
    let rows = crate::replicate::par_map_progress(
        n,
        threads,
        &|slot| point_row(grid, workload, &grid.points[order[slot]]),
        progress,
    )?;
    let mut by_point: Vec<(usize, Row)> = order.into_iter().zip(rows).collect();
    by_point.sort_by_key(|(i, _)| *i);
    Ok(by_point.into_iter().map(|(_, r)| r).collect())
}

/// Point `p` of `grid` run on `workload`, as its row.
fn point_row(grid: &Grid, workload: &Workload, p: &Point) -> Result<Row, SweepError> {
    p.scenario(workload, &grid.predictor)
        .and_then(|s| s.simulate(None, Vec::new()))
        .map(|out| {
            let report = Report::from_run(&out.facts, out.scaling.as_ref());
            let ttfs = out
                .facts
                .pipelines
                .as_ref()
                .map(|f| f.sorted_ttfs())
                .unwrap_or_default();
            Row::new(p, &report, ttfs)
        })
        .map_err(|error| SweepError::Point {
            point: p.index,
            params: p.describe(),
            error,
        })
}

/// Every point on every replication (`workloads`: common to all points), `threads`
/// runs at once; per point (in point order) its rows, one per replication.
pub fn run_grid_replicated(
    grid: &Grid,
    workloads: &[Workload],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Vec<Row>>, SweepError> {
    let r = workloads.len().max(1);
    let rows = crate::replicate::par_map_progress(
        grid.points.len() * r,
        threads,
        &|k| point_row(grid, &workloads[k % r], &grid.points[k / r]),
        progress,
    )?;
    Ok(rows.chunks(r).map(<[Row]>::to_vec).collect())
}

/// One point's replications summarised: the row's figures as means with
/// `<metric>_ci95` beside them, and `replications`.
pub fn summarise_rows(rows: &[Row]) -> serde_json::Value {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let mut s = crate::interval::summarise(&values);
    if let Some(m) = s.as_object_mut() {
        m.insert("replications".into(), rows.len().into());
    }
    s
}

/// Summaries as CSV: one column per leaf of the first summary (nested keys joined by
/// `.`, an interval as `<metric>_ci95.low` and `.high`), one row per point.
pub fn summaries_csv(summaries: &[serde_json::Value]) -> String {
    let rows: Vec<Vec<(String, String)>> = summaries
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            json_leaves("", s, &mut out);
            out.into_iter()
                .map(|(k, v)| {
                    let cell = match v {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => csv_text(s),
                        other => other.to_string(),
                    };
                    (k, cell)
                })
                .collect()
        })
        .collect();
    let Some(first) = rows.first() else {
        return String::new();
    };
    let header: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    let mut out = csv_header(&header);
    for r in &rows {
        let cells: Vec<&str> = header
            .iter()
            .map(|h| {
                r.iter()
                    .find(|(k, _)| k == h)
                    .map_or("", |(_, v)| v.as_str())
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Writes `dir/sweep.csv` ([`summaries_csv`]), the same table as `dir/sweep.parquet`,
/// and `dir/sweep.json` (the summaries).
pub fn write_summaries(dir: &Path, summaries: &[serde_json::Value]) -> Result<(), SweepError> {
    write_csv_json(dir, &summaries_csv(summaries), summaries)
}

/// The QoS classes of the rows, in name order (the CSV's per-class columns).
fn classes(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = rows.iter().flat_map(|r| r.qos.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names
}

/// The header line (names quoted where needed), with its newline.
fn csv_header<S: AsRef<str>>(names: &[S]) -> String {
    let mut out = names
        .iter()
        .map(|h| csv_text(h.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    out
}

fn csv_opt(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| v.to_string())
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The `pipelines.*` columns of `sweep.csv`, in [`PipelineRow`]'s field order.
const PIPELINE_COLUMNS: [&str; 13] = [
    "count",
    "ttf_count",
    "ttf_mean_s",
    "ttf_p50_s",
    "ttf_p95_s",
    "ttf_p99_s",
    "wait_mean_s",
    "skipped_jobs",
    "superseded",
    "superseded_jobs",
    "saved_runner_hours",
    "eta_within_10pct",
    "eta_within_60s",
];

/// The rows as CSV: parameters, then the report figures, then (with pipelines)
/// `pipelines.*`, then `qos.<class>.*` columns.
pub fn rows_csv(rows: &[Row]) -> String {
    let pools: Vec<String> = rows
        .first()
        .map(|r| r.runners.keys().cloned().collect())
        .unwrap_or_default();
    let classes = classes(rows);
    let mut header: Vec<String> = vec!["point".into(), "scale".into()];
    header.extend(pools.iter().map(|p| format!("runners.{p}")));
    header.extend(
        [
            "total_runners",
            "policy",
            "autoscaler",
            "idle_timeout_s",
            "target_scale",
            "min_runners",
            "max_runners",
            "provisioning_delay_s",
            "load",
            "jobs",
            "unschedulable",
            "runner_hours",
            "cost",
            "wait_mean_s",
            "wait_p95_s",
            "wait_p99_s",
            "bsld_mean",
            "utilization",
            "peak_runners",
            "never_started",
        ]
        .map(String::from),
    );
    // Pipeline columns only for a workload with pipelines, so that other sweeps' files
    // stay as they were.
    let pipelines = rows.iter().any(|r| r.pipelines.is_some());
    if pipelines {
        header.extend(PIPELINE_COLUMNS.iter().map(|c| format!("pipelines.{c}")));
    }
    for c in &classes {
        for f in ["jobs", "wait_p95_s", "within_target"] {
            header.push(format!("qos.{c}.{f}"));
        }
    }
    let mut out = csv_header(&header);
    for r in rows {
        let mut f: Vec<String> = vec![r.point.to_string(), csv_opt(r.scale)];
        f.extend(
            pools
                .iter()
                .map(|p| r.runners.get(p).map_or_else(String::new, u32::to_string)),
        );
        f.extend([
            r.total_runners.to_string(),
            csv_text(&r.policy),
            r.autoscaler.clone(),
            csv_opt(r.idle_timeout_s),
            csv_opt(r.target_scale),
            csv_text(r.min_runners.as_deref().unwrap_or("")),
            csv_text(r.max_runners.as_deref().unwrap_or("")),
            csv_opt(r.provisioning_delay_s),
            r.load.to_string(),
            r.jobs.to_string(),
            r.unschedulable.to_string(),
            r.runner_hours.to_string(),
            r.cost.to_string(),
            csv_opt(r.wait_mean_s),
            csv_opt(r.wait_p95_s),
            csv_opt(r.wait_p99_s),
            csv_opt(r.bsld_mean),
            r.utilization.to_string(),
            r.peak_runners.map_or_else(String::new, |x| x.to_string()),
            r.never_started.map_or_else(String::new, |x| x.to_string()),
        ]);
        if pipelines {
            match &r.pipelines {
                Some(p) => f.extend([
                    p.count.to_string(),
                    p.ttf_count.to_string(),
                    csv_opt(p.ttf_mean_s),
                    csv_opt(p.ttf_p50_s),
                    csv_opt(p.ttf_p95_s),
                    csv_opt(p.ttf_p99_s),
                    csv_opt(p.wait_mean_s),
                    p.skipped_jobs.to_string(),
                    p.superseded.to_string(),
                    p.superseded_jobs.to_string(),
                    p.saved_runner_hours.to_string(),
                    csv_opt(p.eta_within_10pct),
                    csv_opt(p.eta_within_60s),
                ]),
                None => f.extend(PIPELINE_COLUMNS.map(|_| String::new())),
            }
        }
        for c in &classes {
            match r.qos.get(c) {
                Some(q) => f.extend([
                    q.jobs.to_string(),
                    csv_opt(q.wait_p95_s),
                    csv_opt(q.within_target),
                ]),
                None => f.extend([String::new(), String::new(), String::new()]),
            }
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

/// Writes `dir/sweep.csv`, the same table as `dir/sweep.parquet`, and `dir/sweep.json`
/// (an array of rows, in point order).
pub fn write_rows(dir: &Path, rows: &[Row]) -> Result<(), SweepError> {
    write_csv_json(dir, &rows_csv(rows), rows)
}

/// The type of each column of the table of `items` (the CSV's header names the JSON
/// leaves of the items, joined by dots; an interval `x_ci95` is `x_ci95.low` and
/// `.high`): the type the items' fields have, not what the cells look like, so that a
/// column keeps its type on every run (an f64 is Float64 even when every value of a run
/// is whole). A column null in every item is not in the map (Float64).
fn column_kinds(items: &serde_json::Value) -> BTreeMap<String, ColumnKind> {
    use serde_json::Value;
    let mut flat = Vec::new();
    for item in items.as_array().into_iter().flatten() {
        json_leaves("", item, &mut flat);
    }
    let mut kinds = BTreeMap::new();
    for (column, value) in flat {
        let kind = match value {
            Value::Number(n) if n.is_f64() => ColumnKind::Float,
            Value::Number(_) => ColumnKind::Int,
            Value::Bool(_) => ColumnKind::Bool,
            Value::String(_) => ColumnKind::Text,
            _ => continue,
        };
        kinds.entry(column).or_insert(kind);
    }
    kinds
}

/// The leaves of `v` under `prefix`, their keys joined by dots, in order: the columns of
/// a table of JSON items. An interval `x_ci95` (`[low, high]`) is two leaves,
/// `x_ci95.low` and `x_ci95.high`.
fn json_leaves<'a>(
    prefix: &str,
    v: &'a serde_json::Value,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                json_leaves(&key, x, out);
            }
        }
        serde_json::Value::Array(a) if a.len() == 2 && prefix.ends_with("_ci95") => {
            out.push((format!("{prefix}.low"), &a[0]));
            out.push((format!("{prefix}.high"), &a[1]));
        }
        other => out.push((prefix.to_string(), other)),
    }
}

/// Writes `dir/sweep.csv` (`csv`) and `dir/sweep.json` (`items` as a JSON array).
fn write_csv_json<T: Serialize>(dir: &Path, csv: &str, items: &[T]) -> Result<(), SweepError> {
    let werr = |file: &Path| {
        let file = file.display().to_string();
        move |error| SweepError::Write { file, error }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let csv_path = dir.join("sweep.csv");
    std::fs::write(&csv_path, csv).map_err(werr(&csv_path))?;
    let json = dir.join("sweep.json");
    let values = serde_json::to_value(items)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        .map_err(werr(&json))?;
    // The same table, typed, for notebooks and other tools (pandas.read_parquet).
    let parquet = dir.join("sweep.parquet");
    let kinds = column_kinds(&values);
    let kind_of = |column: &str| kinds.get(column).copied().unwrap_or(ColumnKind::Float);
    rustci_datasets::parquet::write_csv_table(&parquet, "sweep.csv", csv, &kind_of)
        .map_err(std::io::Error::other)
        .map_err(werr(&parquet))?;
    let text = serde_json::to_string_pretty(&values)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        .map_err(werr(&json))?;
    std::fs::write(&json, text + "\n").map_err(werr(&json))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Grid, SweepError> {
        Grid::parse(text, "grid.toml", Path::new("."))
    }

    #[test]
    fn points_are_the_product_in_axis_order() {
        let g = parse(
            "scale = [1, 2]\npolicy = [\"easy\", \"fcfs\"]\nload = [1, 3]\n\
             [workload]\nsynthetic = { days = 0.1 }\n",
        )
        .unwrap();
        assert_eq!(g.points.len(), 8);
        let p = &g.points[5];
        assert_eq!(p.size, Size::Scale(2.0));
        assert_eq!(p.policy, "easy");
        assert_eq!(p.load, 3.0);
        assert_eq!(p.fleet.pools[0].runners, 440);
        assert_eq!(
            g.points.iter().map(|p| p.index).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
    }

    #[test]
    fn autoscaler_axes_set_each_point_fleet() {
        let g = parse(
            "autoscaler = [\"none\", \"reactive\"]\nidle_timeout_s = [60, 600]\n\
             max_runners = [{ gpu = 3 }]\n[workload]\nsynthetic = { days = 0.1 }\n",
        )
        .unwrap();
        assert_eq!(g.points.len(), 4);
        let p = &g.points[3];
        assert_eq!(p.autoscaler, Some(ScalePolicy::Reactive));
        assert!(p.fleet.pools.iter().all(|q| q.idle_timeout_s == 600.0));
        assert_eq!(p.fleet.pools[3].max_runners, Some(3));
        assert_eq!(g.points[0].autoscaler, None);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("scale = [1, -2]", "scale[1]"),
            ("policy = [\"easy\", \"nope\"]", "policy[1]"),
            ("autoscaler = [\"sometimes\"]", "autoscaler[0]"),
            (
                "runners = [{ linux = 2, solaris = 3 }]",
                "runners[0].solaris",
            ),
            ("max_runners = [{ vax = 1 }]", "max_runners[0].vax"),
            ("load = [0]", "load[0]"),
            ("idle_timeout_s = [-1]", "idle_timeout_s[0]"),
            ("predictor = \"oracle\"", "predictor"),
            ("scale = [1]\nrunners = [{ linux = 1 }]", "scale"),
            (
                "[workload]\nsynthetic = { days = 1 }\ntrace = \"x.csv\"",
                "workload",
            ),
            (
                "[workload]\nsynthetic = { days = -1 }",
                "workload.synthetic",
            ),
            (
                "min_runners = [{ linux = 9 }]\nmax_runners = [{ linux = 3 }]",
                "min_runners",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text:?}: {e}");
        }
        let e = parse("speed = [1]").unwrap_err().to_string();
        assert!(e.contains("speed"), "{e}");
    }

    /// A row of `policy` on `runners` whose pipelines took `ttfs_s` (pipelines figures
    /// otherwise empty).
    fn pipeline_row(policy: &str, runners: &[(&str, u32)], ttfs_s: Vec<f64>) -> Row {
        Row {
            point: 0,
            scale: None,
            runners: runners.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            total_runners: runners.iter().map(|(_, v)| u64::from(*v)).sum(),
            policy: policy.into(),
            autoscaler: "none".into(),
            idle_timeout_s: None,
            target_scale: None,
            min_runners: None,
            max_runners: None,
            provisioning_delay_s: None,
            load: 1.0,
            jobs: ttfs_s.len() as u64,
            unschedulable: 0,
            runner_hours: 1.0,
            cost: 1.0,
            wait_mean_s: None,
            wait_p95_s: None,
            wait_p99_s: None,
            bsld_mean: None,
            utilization: 0.5,
            peak_runners: None,
            never_started: None,
            qos: BTreeMap::new(),
            pipelines: Some(PipelineRow {
                count: ttfs_s.len() as u64,
                ttf_count: ttfs_s.len() as u64,
                ttf_mean_s: None,
                ttf_p50_s: None,
                ttf_p95_s: None,
                ttf_p99_s: None,
                wait_mean_s: None,
                skipped_jobs: 0,
                superseded: 0,
                superseded_jobs: 0,
                saved_runner_hours: 0.0,
                eta_within_10pct: None,
                eta_within_60s: None,
            }),
            ttfs_s,
        }
    }

    /// One CDF per setting of the other axes, each with every policy's times; two
    /// `runners` entries of the same total are two settings.
    #[test]
    fn ttf_cdfs_group_the_policies_of_each_setting() {
        let a = [("linux", 4), ("macos", 1)];
        let b = [("linux", 2), ("macos", 3)];
        let rows = vec![
            pipeline_row("easy", &a, vec![1.0, 2.0]),
            pipeline_row("critical-path", &a, vec![3.0]),
            pipeline_row("easy", &b, vec![4.0]),
            pipeline_row("critical-path", &b, vec![5.0, 6.0]),
        ];
        let groups = ttf_by_setting(&rows);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].0, "5 runners (linux=4 macos=1), load 1");
        assert_eq!(groups[0].1["easy"], vec![1.0, 2.0]);
        assert_eq!(groups[0].1["critical-path"], vec![3.0]);
        assert_eq!(groups[1].1["critical-path"], vec![5.0, 6.0]);
        // Without pipelines there is nothing to draw.
        let mut plain = pipeline_row("easy", &a, Vec::new());
        plain.pipelines = None;
        assert!(ttf_by_setting(&[plain]).is_empty());
    }

    #[test]
    fn csv_has_a_column_per_class_and_pool() {
        let row = Row {
            point: 0,
            scale: Some(1.5),
            runners: [("linux".to_string(), 3)].into_iter().collect(),
            total_runners: 3,
            policy: "easy".into(),
            autoscaler: "none".into(),
            idle_timeout_s: None,
            target_scale: None,
            min_runners: Some("linux=1 gpu=0".into()),
            max_runners: None,
            provisioning_delay_s: None,
            load: 2.0,
            jobs: 10,
            unschedulable: 0,
            runner_hours: 1.5,
            cost: 0.25,
            wait_mean_s: Some(3.0),
            wait_p95_s: None,
            wait_p99_s: None,
            bsld_mean: Some(1.0),
            utilization: 0.5,
            peak_runners: None,
            never_started: None,
            qos: [(
                "standard".to_string(),
                QosRow {
                    jobs: 10,
                    wait_p95_s: Some(4.0),
                    within_target: Some(1.0),
                },
            )]
            .into_iter()
            .collect(),
            pipelines: None,
            ttfs_s: Vec::new(),
        };
        let csv = rows_csv(std::slice::from_ref(&row));

        // Parquet's types come from the fields: `qos.standard.wait_p95_s` and `load`
        // read "4" and "2" here, and are Float64 all the same; `wait_p95_s`, None in
        // every row, too.
        let kinds = column_kinds(&serde_json::to_value([&row]).unwrap());
        let kind = |c: &str| kinds.get(c).copied().unwrap_or(ColumnKind::Float);
        assert_eq!(kind("qos.standard.wait_p95_s"), ColumnKind::Float);
        assert_eq!(kind("load"), ColumnKind::Float);
        assert_eq!(kind("wait_p95_s"), ColumnKind::Float);
        assert_eq!(kind("runners.linux"), ColumnKind::Int);
        assert_eq!(kind("qos.standard.jobs"), ColumnKind::Int);
        assert_eq!(kind("policy"), ColumnKind::Text);
        assert_eq!(kind("min_runners"), ColumnKind::Text);
        let dir = tempfile::tempdir().unwrap();
        write_rows(dir.path(), &[row]).unwrap();
        assert!(dir.path().join("sweep.parquet").exists());

        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let values: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), values.len());
        let at = |h: &str| values[header.iter().position(|x| *x == h).unwrap()];
        assert_eq!(at("runners.linux"), "3");
        assert_eq!(at("qos.standard.wait_p95_s"), "4");
        assert_eq!(at("wait_p95_s"), "");
        assert_eq!(at("min_runners"), "linux=1 gpu=0");
    }
}
