//! One what-if run as `run`, `sweep` and `plan` all make it: a workload loaded once (a
//! trace or the synthetic CI generator), where estimates come from, and a fleet under a
//! policy at a load, with an autoscaler or not, simulated into its output or its report.
//!
//! `run` adds its own policy settings, progress and outputs; a sweep point or a plan
//! candidate is a [`Scenario::new`] with its fleet, autoscaler and load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustci_datasets::record::{JobRecord, TraceMeta};
use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::{check_pipelines, open_trace, TraceFormat};
use rustci_models::predictor::{Correction, PlanWith};
use rustci_models::{ModelHandle, ModelPredictor};
use rustci_scheduler::{PolicyConfig, Predictor, RequestedTime, ScalePolicy, Tsafrir, MS_PER_S};

use crate::fleet_file::FleetFile;
use crate::outcome::Skipped;
use crate::report::Report;
use crate::simulate::{simulate, RunOutput, RunSpec, SimError, UnknownQos};
use crate::workload::Supersede;

/// The arrival-rate multipliers (`load`) a run takes. Submit times are divided by the
/// load: 10^-3 stretches the latest time a trace may hold
/// ([`rustci_datasets::record::MAX_TIME_S`]) to 10^16 ms, still 900 times inside the
/// millisecond clock; 10^3 packs a year of submissions into under 9 hours.
pub const LOAD_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1000.0;

/// `Err` with the reason when `load` is outside [`LOAD_RANGE`] (or not a number).
pub fn check_load(load: f64) -> Result<(), String> {
    if LOAD_RANGE.contains(&load) {
        Ok(())
    } else {
        Err(format!(
            "must be between {} and {}, got {load}",
            LOAD_RANGE.start(),
            LOAD_RANGE.end()
        ))
    }
}

/// Every record's QoS class (if it names one) is one of the fleet's: an unknown class is
/// an error, as on the live server, not a job quietly run in the default class.
fn check_qos(w: &Workload, fleet: &FleetFile) -> Result<(), SimError> {
    let known = |q: &str| fleet.qos.iter().any(|c| c.name == q);
    match w
        .records
        .iter()
        .find(|r| r.qos.as_deref().is_some_and(|q| !known(q)))
    {
        Some(r) => Err(SimError::UnknownQos(Box::new(UnknownQos {
            workload: w.name.clone(),
            job: r.id.clone(),
            value: r.qos.clone().unwrap_or_default(),
            known: fleet
                .qos
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }))),
        None => Ok(()),
    }
}

/// Why no record could be placed: what was skipped, the label sets the jobs ask for
/// (most common first) and the pools' labels and slots.
fn nothing_placed(records: &[JobRecord], fleet: &FleetFile, skipped: &Skipped) -> String {
    let mut wants: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let mut labels = r.labels.clone();
        labels.sort();
        *wants.entry(format!("[{}]", labels.join(", "))).or_default() += 1;
    }
    let mut wants: Vec<(String, usize)> = wants.into_iter().collect();
    wants.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown: Vec<String> = wants
        .iter()
        .take(5)
        .map(|(l, n)| format!("{l} ({n} jobs)"))
        .collect();
    let more = if wants.len() > 5 {
        format!(" and {} more label sets", wants.len() - 5)
    } else {
        String::new()
    };
    let pools: Vec<String> = fleet
        .pools
        .iter()
        .map(|p| format!("{} [{}] x {} slots", p.name, p.labels.join(", "), p.slots))
        .collect();
    let max_slots = records.iter().map(|r| r.slots).max().unwrap_or(0);
    format!(
        "{} records, skipped: {} unschedulable (labels or slots no pool has), {} without a \
         run time, {} with a negative run time, {} without a size; the jobs need labels \
         {}{more} and up to {max_slots} slots; the pools are {}",
        records.len(),
        skipped.unschedulable,
        skipped.unknown_run_time,
        skipped.negative_run_time,
        skipped.unknown_slots,
        shown.join(", "),
        pools.join("; ")
    )
}

/// `rustci-sim`'s synthetic workload has pipelines: unlike the library's default
/// (`rustci_datasets::synthetic::PipelineConfig`, off so that other users keep the
/// workload of before pipelines), `[pipelines] enabled` is on unless the workload's TOML
/// sets it to `false`. `table` is that TOML as written (a `--synthetic` file, a grid's
/// `[workload] synthetic`; `None`: none given), read apart from `cfg` because `cfg`
/// cannot tell a `false` written from one defaulted.
pub fn pipelines_unless_turned_off(cfg: &mut SyntheticConfig, table: Option<&toml::Table>) {
    let turned_off = table
        .and_then(|t| t.get("pipelines"))
        .and_then(|p| p.get("enabled"))
        .and_then(toml::Value::as_bool)
        == Some(false);
    cfg.pipelines.enabled = !turned_off;
}

/// Where the jobs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSpec {
    Synthetic(Box<SyntheticConfig>),
    Trace {
        path: PathBuf,
        /// `None`: inferred per file.
        format: Option<TraceFormat>,
    },
}

/// A loaded workload, shared (by reference) by every run over it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub records: Vec<JobRecord>,
    /// The trace's path, or the synthetic workload's seed and days.
    pub name: String,
    /// The synthetic workload's seed (`None`: a trace).
    pub seed: Option<u64>,
    /// Unix time of the records' time 0, seconds.
    pub epoch_unix_s: i64,
    /// What the trace says about itself (an SWF header's machine size, ...).
    pub meta: TraceMeta,
    /// The trace's format (`None`: synthetic).
    pub format: Option<TraceFormat>,
}

impl WorkloadSpec {
    /// Generates or reads every record; an error names the workload.
    pub fn load(&self) -> Result<Workload, SimError> {
        match self {
            Self::Synthetic(cfg) => {
                let name = format!("synthetic-ci(seed={}, days={})", cfg.seed, cfg.days);
                let records = cfg
                    .validate()
                    .and_then(|()| generate(cfg))
                    .map_err(|error| SimError::Workload {
                        name: name.clone(),
                        error: Box::new(error),
                    })?;
                Ok(Workload {
                    records,
                    name,
                    seed: Some(cfg.seed),
                    epoch_unix_s: cfg.start_unix,
                    meta: TraceMeta::default(),
                    format: None,
                })
            }
            Self::Trace { path, format } => {
                let name = path.display().to_string();
                let err = |error| SimError::Workload {
                    name: name.clone(),
                    error: Box::new(error),
                };
                let trace = open_trace(path, *format).map_err(err)?;
                let meta = trace.meta.clone();
                let format = Some(trace.format);
                let records = trace.collect_records().map_err(err)?;
                // Pipelines' names, needs and cycles, checked once with the trace's ids.
                check_pipelines(&records).map_err(err)?;
                Ok(Workload {
                    records,
                    name,
                    seed: None,
                    epoch_unix_s: meta.unix_start.unwrap_or(0),
                    meta,
                    format,
                })
            }
        }
    }
}

impl Workload {
    /// The Unix time of time 0 for time-of-day features: a trace's clock is Unix time
    /// from its epoch; the synthetic workload (seeded) has no calendar.
    fn calendar_epoch(&self) -> Option<i64> {
        self.seed.is_none().then_some(self.epoch_unix_s)
    }
}

/// Where run-time estimates come from.
#[derive(Debug, Clone)]
pub enum PredictorSpec {
    Requested {
        default_ms: i64,
    },
    Tsafrir {
        default_ms: i64,
    },
    /// Every job's true run time ([`crate::clairvoyant::Clairvoyant`]; simulator only):
    /// the bound a perfect model reaches.
    Clairvoyant,
    /// A trained model version (`model:DIR`, loaded once); each run learns its own
    /// per-user and per-job history from the jobs it sees finish.
    Model {
        handle: ModelHandle,
        /// The value planned with: the version's stored choice (`rustci retrain`), else
        /// the point; `run --model-estimate` overrides it.
        plan_with: PlanWith,
        /// How jobs that outlive their estimate are re-estimated under EASY++: the
        /// version's stored choice, else the default; `run --model-correction`
        /// overrides it.
        correction: Correction,
    },
}

impl Default for PredictorSpec {
    fn default() -> Self {
        Self::Requested {
            default_ms: 3600 * MS_PER_S,
        }
    }
}

impl PredictorSpec {
    /// `requested`, `tsafrir` or `model:DIR` (the current version in DIR); the error
    /// says what is wrong.
    pub fn parse(text: &str, default_ms: i64) -> Result<Self, SimError> {
        match text {
            "requested" => Ok(Self::Requested { default_ms }),
            "tsafrir" => Ok(Self::Tsafrir { default_ms }),
            "clairvoyant" => Ok(Self::Clairvoyant),
            other => {
                let Some(dir) = other.strip_prefix("model:") else {
                    return Err(SimError::UnknownPredictor(other.to_string()));
                };
                let current =
                    ModelHandle::load_current(Path::new(dir)).map_err(|error| SimError::Model {
                        predictor: other.to_string(),
                        error,
                    })?;
                // The version's stored choice, else the defaults; `run`'s flags override.
                let (usage, _) = current.handle.usage();
                Ok(Self::Model {
                    handle: current.handle,
                    plan_with: usage.plan_with,
                    correction: usage.correction,
                })
            }
        }
    }

    /// A fresh predictor for one run whose time 0 is Unix time `epoch_s` (`None`: a
    /// workload without a calendar).
    fn build_for(&self, epoch_s: Option<i64>) -> Box<dyn Predictor> {
        match self {
            Self::Requested { default_ms } => Box::new(RequestedTime {
                default_ms: *default_ms,
            }),
            Self::Tsafrir { default_ms } => Box::new(Tsafrir::new(*default_ms)),
            // Built from the prepared jobs by `simulate` (`RunSpec::clairvoyant`).
            Self::Clairvoyant => Box::new(RequestedTime::default()),
            Self::Model {
                handle,
                plan_with,
                correction,
            } => Box::new(
                ModelPredictor::new(handle.clone(), epoch_s)
                    .planning_with(*plan_with)
                    .correcting_with(*correction),
            ),
        }
    }
}

/// One run: `fleet` under `policy` at `load`, with an autoscaler or not, on `workload`,
/// estimates from `predictor` (a fresh predictor per run).
#[derive(Debug, Clone)]
pub struct Scenario<'a> {
    pub workload: &'a Workload,
    pub fleet: &'a FleetFile,
    pub policy: PolicyConfig,
    /// The policy as the report names it.
    pub policy_name: String,
    pub predictor: &'a PredictorSpec,
    /// `None`: every pool keeps its `runners` for the whole run.
    pub autoscaler: Option<ScalePolicy>,
    /// Arrival-rate multiplier.
    pub load: f64,
    /// Whether newer pipelines of a group supersede older ones (`--no-supersede`).
    pub supersede: Supersede,
    /// `--replay-from-fraction`: the first fraction of the records is learned, not
    /// replayed.
    pub history_fraction: Option<f64>,
    /// See [`crate::simulate::RunSpec::eta_limit`].
    pub eta_limit: usize,
}

impl<'a> Scenario<'a> {
    /// A named policy (`run --policy`, named so in the report) at the workload's own
    /// load, without an autoscaler.
    pub fn new(
        workload: &'a Workload,
        fleet: &'a FleetFile,
        policy: &str,
        predictor: &'a PredictorSpec,
    ) -> Result<Self, SimError> {
        Ok(Self {
            workload,
            fleet,
            policy: PolicyConfig::named(policy).map_err(SimError::Config)?,
            policy_name: policy.to_string(),
            predictor,
            autoscaler: None,
            load: 1.0,
            supersede: Supersede::ByGroup,
            history_fraction: None,
            // Sweeps and plans report no ETA accuracy: they skip the projection's cost
            // (`run` sets `--pipeline-eta-limit`).
            eta_limit: 0,
        })
    }

    /// Simulates the run, calling `progress` with the number of finished jobs; stops
    /// early once a class surely misses its p95 wait target (`give_up[class index]`,
    /// seconds; empty: run to the end).
    pub fn simulate(
        &self,
        progress: Option<Box<dyn FnMut(u64)>>,
        give_up: Vec<Option<f64>>,
    ) -> Result<RunOutput, SimError> {
        let w = self.workload;
        check_qos(w, self.fleet)?;
        let out = simulate(RunSpec {
            records: &w.records,
            fleet: self.fleet,
            policy: self.policy.clone(),
            policy_name: self.policy_name.clone(),
            predictor: self.predictor.build_for(w.calendar_epoch()),
            load: self.load,
            workload_name: w.name.clone(),
            seed: w.seed,
            record_decisions: false,
            progress,
            autoscaler: self.autoscaler,
            epoch_unix_s: w.epoch_unix_s,
            give_up,
            clairvoyant: matches!(self.predictor, PredictorSpec::Clairvoyant),
            supersede: self.supersede,
            history_fraction: self.history_fraction,
            eta_limit: self.eta_limit,
        })?;
        if !w.records.is_empty() && out.facts.results.is_empty() {
            return Err(SimError::NothingPlaced {
                workload: w.name.clone(),
                reason: nothing_placed(&w.records, self.fleet, &out.facts.skipped),
            });
        }
        Ok(out)
    }

    /// The run's report.
    pub fn report(&self) -> Result<Report, SimError> {
        let out = self.simulate(None, Vec::new())?;
        Ok(Report::from_run(&out.facts, out.scaling.as_ref()))
    }

    /// [`Scenario::report`] that stops as soon as a class surely misses its p95 wait
    /// target (`give_up[class index]`, seconds): then `Err` with the index of that class.
    pub fn report_until(
        &self,
        give_up: Vec<Option<f64>>,
    ) -> Result<Result<Report, usize>, SimError> {
        let out = self.simulate(None, give_up)?;
        Ok(match out.engine.gave_up {
            Some(class) => Err(class),
            None => Ok(Report::from_run(&out.facts, out.scaling.as_ref())),
        })
    }
}
