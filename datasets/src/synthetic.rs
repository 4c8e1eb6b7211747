//! The seeded synthetic CI workload: the simulator's default workload.
//!
//! Model, in short:
//!
//! * **Tenants** (`tenant-00` ...) with Zipf-like job volume (weight of rank `k` is
//!   `1 / k^tenant_zipf_exponent`). Each tenant owns 1 to `max_repos_per_tenant`
//!   repositories (`project`), each with a pipeline of named jobs ([`JOB_NAMES`]): `build`
//!   and `test-unit` always, plus a random subset of the others, each run with its own
//!   probability.
//! * **Arrivals** are pushes: a push picks a tenant and one of its repositories and
//!   submits that pipeline's jobs at the same instant. Pushes follow a Poisson process
//!   whose rate varies in 15-minute bins with a **diurnal** cosine (peak at
//!   `peak_hour_utc`, trough 12 h later) and a **weekend** factor. Rates are set so that
//!   each tenant's expected job volume follows its weight and a weekday at the mean
//!   diurnal level yields `jobs_per_day` jobs.
//! * **Bursts** (release or merge storms) arrive as a Poisson process with the same
//!   diurnal and weekend shape; each one adds about `burst_jobs_mean` jobs from one tenant
//!   and repository within `burst_window_s` seconds.
//! * **Durations** are consistent per job definition (tenant, repository, job): each
//!   definition has a typical duration drawn from a lognormal (median
//!   `median_duration_s`, scaled by a per-job-name factor), each run varies around it by
//!   `within_job_sigma`, and a `tail_share` of runs is Pareto-distributed (heavy tail),
//!   capped at `max_duration_s`. Failed runs stop early.
//! * **Timeouts**: `requested_s` is a per-definition timeout (`timeout_factor` × typical,
//!   rounded up to 5 min, at least `min_timeout_s`). With `enforce_timeouts`, a run that
//!   would exceed it is cut at the timeout and fails, so `run_s <= requested_s` always.
//! * **Labels and slots** are fixed per job definition, from `label_sets`, assigned so
//!   that the share of *jobs* per label set is close to the configured weights.
//! * **QoS** classes are drawn per job from `qos`; outcomes per run from `failure_rate`
//!   and `cancel_rate`.
//! * **Pipelines** (off by default; the `[pipelines]` table, [`PipelineConfig`]): a
//!   repository's pushes run pipelines from its template (lint, a build matrix, a test
//!   that needs every build, integration tests, a deploy on `main`, clean-up and failure
//!   notification), each job with a [`crate::PipelineRef`]; jobs a failure skipped and
//!   manual jobs nobody started are recorded `skipped` and `manual`, without run time.
//!   Pull-request branches are pushed several times, minutes apart, so newer pipelines
//!   of a branch arrive while older ones run. Off, the workload is the one of before
//!   pipelines, byte for byte.
//!
//! Times: `submit_s` counts seconds from `start_unix` (the trace epoch, see
//! [`synthetic_meta`]); `wait_s` is `None` (the simulator computes waits). Records are
//! sorted by `submit_s`, then `id` (`j0000001`, fixed width). Everything is drawn from a
//! `ChaCha8Rng` seeded with `seed`: the same config gives the same workload.

use std::f64::consts::PI;

use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;
use crate::record::{JobRecord, Outcome, TraceMeta, MAX_TIME_S};
use crate::{Trace, TraceFormat};

mod pipelines;

pub use pipelines::{PipelineConfig, BUILD_VARIANTS, PIPELINE_STAGES};

/// A set of runner labels a job can require, its weight and the slots such a job occupies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSet {
    pub labels: Vec<String>,
    /// Relative share of jobs (weights need not sum to 1).
    pub weight: f64,
    /// Runner slots a job with these labels occupies (at least 1).
    pub slots: u32,
}

/// A QoS class name and its relative share of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosClass {
    pub name: String,
    pub weight: f64,
}

/// A default label set (static form of [`LabelSet`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefaultLabelSet {
    pub labels: &'static [&'static str],
    pub weight: f64,
    pub slots: u32,
}

/// The default label sets and their shares of jobs. Every one is satisfied by a pool of
/// [`DEFAULT_FLEET_POOLS`] (the pool carries all of the set's labels):
///
/// | labels | share | slots | pool |
/// |---|---|---|---|
/// | linux | 55% | 1 | linux |
/// | linux, docker | 20% | 1 | linux |
/// | linux, large | 8% | 4 | linux-large |
/// | macos | 10% | 1 | macos |
/// | linux, gpu | 2% | 1 | gpu |
/// | linux, docker, large | 5% | 8 | linux-large |
pub const DEFAULT_LABEL_SETS: [DefaultLabelSet; 6] = [
    DefaultLabelSet {
        labels: &["linux"],
        weight: 0.55,
        slots: 1,
    },
    DefaultLabelSet {
        labels: &["linux", "docker"],
        weight: 0.20,
        slots: 1,
    },
    DefaultLabelSet {
        labels: &["linux", "large"],
        weight: 0.08,
        slots: 4,
    },
    DefaultLabelSet {
        labels: &["macos"],
        weight: 0.10,
        slots: 1,
    },
    DefaultLabelSet {
        labels: &["linux", "gpu"],
        weight: 0.02,
        slots: 1,
    },
    DefaultLabelSet {
        labels: &["linux", "docker", "large"],
        weight: 0.05,
        slots: 8,
    },
];

/// The pools of the simulator's default fleet, as (name, labels, slots per runner), which
/// the default label sets are designed for.
pub const DEFAULT_FLEET_POOLS: [(&str, &[&str], u32); 4] = [
    ("linux", &["linux", "docker"], 1),
    ("linux-large", &["linux", "docker", "large"], 8),
    ("macos", &["macos"], 1),
    ("gpu", &["linux", "docker", "gpu"], 1),
];

/// The default QoS mix: urgent 10%, standard 70%, batch 20%.
pub const DEFAULT_QOS: [(&str, f64); 3] = [("urgent", 0.10), ("standard", 0.70), ("batch", 0.20)];

/// Job names of pipelines, with their duration factor (multiplies a definition's typical
/// duration). `build` and `test-unit` are in every pipeline.
pub const JOB_NAMES: [(&str, f64); 10] = [
    ("build", 1.0),
    ("test-unit", 1.0),
    ("lint", 0.3),
    ("test-integration", 2.0),
    ("e2e", 3.0),
    ("docs", 0.4),
    ("package", 0.8),
    ("security-scan", 0.6),
    ("deploy-preview", 0.7),
    ("benchmark", 2.5),
];

const REPO_NAMES: [&str; 8] = ["app", "api", "web", "infra", "sdk", "cli", "mobile", "data"];

/// Width of the time bins in which arrival rates are constant, seconds.
const BIN_S: i64 = 900;

/// Parameters of the synthetic workload. `Default` gives the documented defaults; with
/// serde, missing fields take their defaults and unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Seed of the `ChaCha8Rng` all randomness comes from. Default 1.
    pub seed: u64,
    /// Unix time of `submit_s == 0`; sets hour of day and weekday. Default
    /// 1_704_067_200 (Monday 2024-01-01 00:00 UTC).
    pub start_unix: i64,
    /// Length of the workload in days (> 0, at most 3650). Default 7.
    pub days: f64,
    /// Mean jobs on a weekday, before bursts (>= 0). Default 20_000. The expected total is
    /// [`SyntheticConfig::expected_jobs`].
    pub jobs_per_day: f64,
    /// Number of tenants (>= 1). Default 40.
    pub tenants: u32,
    /// Zipf exponent of tenant volume: rank `k` has weight `1/k^s` (>= 0; 0 = equal).
    /// Default 1.1.
    pub tenant_zipf_exponent: f64,
    /// Each tenant has 1 to this many repositories (1..=8). Default 3.
    pub max_repos_per_tenant: u32,
    /// Relative amplitude of the diurnal cycle, 0..=1: the rate is
    /// `1 + a·cos(2π(h − peak)/24)` at hour `h` (UTC). Default 0.6.
    pub diurnal_amplitude: f64,
    /// Hour of day (UTC, 0..24) of the peak rate; the trough is 12 h later. Default 14.
    pub peak_hour_utc: f64,
    /// Rate on Saturdays and Sundays relative to weekdays (0..=1). Default 0.3.
    pub weekend_factor: f64,
    /// Mean number of bursts (release/merge storms) per weekday (>= 0). Default 2.
    pub bursts_per_day: f64,
    /// Mean number of jobs a burst adds (>= 1). Default 150.
    pub burst_jobs_mean: f64,
    /// A burst's jobs are submitted within this many seconds (>= 1). Default 300.
    pub burst_window_s: u32,
    /// Median typical duration of a job definition, seconds (> 0). Default 240.
    pub median_duration_s: f64,
    /// Log-space standard deviation of run times without the tail (>= 0), split between
    /// definitions and runs of one definition. Default 1.0.
    pub duration_sigma: f64,
    /// Log-space standard deviation of runs of one job definition around its typical
    /// duration (0..=duration_sigma). Default 0.3.
    pub within_job_sigma: f64,
    /// Share of runs drawn from the Pareto tail (0..=1). Default 0.05.
    pub tail_share: f64,
    /// Pareto shape of the tail (> 0; smaller is heavier). Default 1.5.
    pub tail_alpha: f64,
    /// A tail run lasts at least this multiple of its definition's typical duration
    /// (> 0). Default 2.
    pub tail_scale: f64,
    /// Cap on run times, seconds (>= 1). Default 21_600 (6 h).
    pub max_duration_s: i64,
    /// Timeout (`requested_s`) as a multiple of the typical duration (>= 1). Default 4.
    pub timeout_factor: f64,
    /// Smallest timeout, seconds (>= 1). Default 600.
    pub min_timeout_s: i64,
    /// Cut runs at their timeout (they then fail). Default true.
    pub enforce_timeouts: bool,
    /// Share of runs that fail (they stop after 10-100% of their duration). Default 0.08.
    pub failure_rate: f64,
    /// Share of runs cancelled (after 0-100% of their duration). Default 0.01.
    pub cancel_rate: f64,
    /// Share of pushes to `main`; the others are on `pr-<n>` branches (0..=1). Default 0.3.
    pub main_branch_share: f64,
    /// Label sets of job definitions with weights and slots. Default
    /// [`DEFAULT_LABEL_SETS`].
    pub label_sets: Vec<LabelSet>,
    /// QoS classes with weights. Default [`DEFAULT_QOS`].
    pub qos: Vec<QosClass>,
    /// Pipelines from per-repository templates (the `[pipelines]` table); off by default,
    /// which keeps the workload of before pipelines.
    #[serde(skip_serializing_if = "PipelineConfig::is_default")]
    pub pipelines: PipelineConfig,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start_unix: 1_704_067_200,
            days: 7.0,
            jobs_per_day: 20_000.0,
            tenants: 40,
            tenant_zipf_exponent: 1.1,
            max_repos_per_tenant: 3,
            diurnal_amplitude: 0.6,
            peak_hour_utc: 14.0,
            weekend_factor: 0.3,
            bursts_per_day: 2.0,
            burst_jobs_mean: 150.0,
            burst_window_s: 300,
            median_duration_s: 240.0,
            duration_sigma: 1.0,
            within_job_sigma: 0.3,
            tail_share: 0.05,
            tail_alpha: 1.5,
            tail_scale: 2.0,
            max_duration_s: 6 * 3600,
            timeout_factor: 4.0,
            min_timeout_s: 600,
            enforce_timeouts: true,
            failure_rate: 0.08,
            cancel_rate: 0.01,
            main_branch_share: 0.3,
            label_sets: default_label_sets(),
            qos: DEFAULT_QOS
                .iter()
                .map(|(name, weight)| QosClass {
                    name: name.to_string(),
                    weight: *weight,
                })
                .collect(),
            pipelines: PipelineConfig::default(),
        }
    }
}

/// [`DEFAULT_LABEL_SETS`] as owned [`LabelSet`]s.
pub fn default_label_sets() -> Vec<LabelSet> {
    DEFAULT_LABEL_SETS
        .iter()
        .map(|d| LabelSet {
            labels: d.labels.iter().map(|l| l.to_string()).collect(),
            weight: d.weight,
            slots: d.slots,
        })
        .collect()
}

/// The first pool of [`DEFAULT_FLEET_POOLS`] that carries all `labels`, if any.
pub fn default_pool_for(labels: &[String]) -> Option<&'static str> {
    DEFAULT_FLEET_POOLS
        .iter()
        .find(|(_, pool, _)| labels.iter().all(|l| pool.contains(&l.as_str())))
        .map(|(name, _, _)| *name)
}

/// Largest expected job count `validate` accepts (memory guard).
pub const MAX_EXPECTED_JOBS: f64 = 50_000_000.0;

fn check(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<(), DatasetError> {
    if ok {
        Ok(())
    } else {
        Err(DatasetError::config(field, message()))
    }
}

fn weights_ok(field: &str, weights: impl Iterator<Item = f64>) -> Result<(), DatasetError> {
    let mut sum = 0.0;
    for w in weights {
        check(w.is_finite() && w >= 0.0, field, || {
            format!("weight {w} must be finite and >= 0")
        })?;
        sum += w;
    }
    check(sum > 0.0, field, || {
        "weights must have a positive sum".to_string()
    })
}

impl SyntheticConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        check(
            self.days.is_finite() && self.days > 0.0 && self.days <= 3650.0,
            "days",
            || format!("{} must be in (0, 3650]", self.days),
        )?;
        check(
            self.jobs_per_day.is_finite() && self.jobs_per_day >= 0.0,
            "jobs_per_day",
            || format!("{} must be finite and >= 0", self.jobs_per_day),
        )?;
        check(self.tenants >= 1, "tenants", || {
            "must be at least 1".to_string()
        })?;
        check(
            self.tenant_zipf_exponent.is_finite()
                && (0.0..=10.0).contains(&self.tenant_zipf_exponent),
            "tenant_zipf_exponent",
            || format!("{} must be in [0, 10]", self.tenant_zipf_exponent),
        )?;
        check(
            (1..=REPO_NAMES.len() as u32).contains(&self.max_repos_per_tenant),
            "max_repos_per_tenant",
            || {
                format!(
                    "{} must be in 1..={}",
                    self.max_repos_per_tenant,
                    REPO_NAMES.len()
                )
            },
        )?;
        check(unit(self.diurnal_amplitude), "diurnal_amplitude", || {
            format!("{} must be in [0, 1]", self.diurnal_amplitude)
        })?;
        check(
            self.peak_hour_utc.is_finite() && (0.0..24.0).contains(&self.peak_hour_utc),
            "peak_hour_utc",
            || format!("{} must be in [0, 24)", self.peak_hour_utc),
        )?;
        check(unit(self.weekend_factor), "weekend_factor", || {
            format!("{} must be in [0, 1]", self.weekend_factor)
        })?;
        check(
            self.bursts_per_day.is_finite() && self.bursts_per_day >= 0.0,
            "bursts_per_day",
            || format!("{} must be finite and >= 0", self.bursts_per_day),
        )?;
        check(
            self.burst_jobs_mean.is_finite()
                && self.burst_jobs_mean >= 1.0
                && self.burst_jobs_mean <= 1e6,
            "burst_jobs_mean",
            || format!("{} must be in [1, 1e6]", self.burst_jobs_mean),
        )?;
        check(self.burst_window_s >= 1, "burst_window_s", || {
            "must be at least 1".to_string()
        })?;
        check(
            self.median_duration_s.is_finite() && self.median_duration_s > 0.0,
            "median_duration_s",
            || format!("{} must be finite and > 0", self.median_duration_s),
        )?;
        check(
            self.duration_sigma.is_finite() && (0.0..=5.0).contains(&self.duration_sigma),
            "duration_sigma",
            || format!("{} must be in [0, 5]", self.duration_sigma),
        )?;
        check(
            self.within_job_sigma.is_finite()
                && (0.0..=self.duration_sigma).contains(&self.within_job_sigma),
            "within_job_sigma",
            || {
                format!(
                    "{} must be in [0, duration_sigma = {}]",
                    self.within_job_sigma, self.duration_sigma
                )
            },
        )?;
        check(unit(self.tail_share), "tail_share", || {
            format!("{} must be in [0, 1]", self.tail_share)
        })?;
        check(
            self.tail_alpha.is_finite() && self.tail_alpha > 0.0,
            "tail_alpha",
            || format!("{} must be finite and > 0", self.tail_alpha),
        )?;
        check(
            self.tail_scale.is_finite() && self.tail_scale > 0.0,
            "tail_scale",
            || format!("{} must be finite and > 0", self.tail_scale),
        )?;
        for (field, v, min) in [
            ("max_duration_s", self.max_duration_s, 1),
            ("min_timeout_s", self.min_timeout_s, 1),
            ("start_unix", self.start_unix, -MAX_TIME_S),
        ] {
            check((min..=MAX_TIME_S).contains(&v), field, || {
                format!("{v} must be in [{min}, {MAX_TIME_S}] (the millisecond clock's range)")
            })?;
        }
        check(
            self.timeout_factor.is_finite() && self.timeout_factor >= 1.0,
            "timeout_factor",
            || format!("{} must be finite and >= 1", self.timeout_factor),
        )?;
        check(unit(self.failure_rate), "failure_rate", || {
            format!("{} must be in [0, 1]", self.failure_rate)
        })?;
        check(unit(self.cancel_rate), "cancel_rate", || {
            format!("{} must be in [0, 1]", self.cancel_rate)
        })?;
        check(
            self.failure_rate + self.cancel_rate <= 1.0,
            "cancel_rate",
            || "failure_rate + cancel_rate must be at most 1".to_string(),
        )?;
        check(unit(self.main_branch_share), "main_branch_share", || {
            format!("{} must be in [0, 1]", self.main_branch_share)
        })?;
        check(!self.label_sets.is_empty(), "label_sets", || {
            "must not be empty".to_string()
        })?;
        for (i, s) in self.label_sets.iter().enumerate() {
            let field = format!("label_sets[{i}]");
            check(!s.labels.is_empty(), &field, || {
                "labels must not be empty".to_string()
            })?;
            check(
                s.labels
                    .iter()
                    .all(|l| !l.trim().is_empty() && !l.contains(';')),
                &field,
                || "a label is empty or contains ';'".to_string(),
            )?;
            check(s.slots >= 1, &field, || {
                "slots must be at least 1".to_string()
            })?;
        }
        weights_ok("label_sets", self.label_sets.iter().map(|s| s.weight))?;
        check(
            !self.qos.is_empty() && self.qos.len() <= usize::from(u16::MAX),
            "qos",
            || format!("must hold 1 to {} classes", u16::MAX),
        )?;
        for (i, q) in self.qos.iter().enumerate() {
            check(!q.name.trim().is_empty(), &format!("qos[{i}]"), || {
                "name must not be empty".to_string()
            })?;
        }
        weights_ok("qos", self.qos.iter().map(|q| q.weight))?;
        self.pipelines.validate()?;
        let expected = self.expected_jobs();
        check(expected <= MAX_EXPECTED_JOBS, "jobs_per_day", || {
            format!("the workload would have about {expected:.0} jobs; at most {MAX_EXPECTED_JOBS:.0} are allowed")
        })?;
        Ok(())
    }

    /// Length in seconds.
    pub fn horizon_s(&self) -> i64 {
        (self.days * 86_400.0).round() as i64
    }

    /// Relative arrival rate at `t` seconds after `start_unix` (1 = weekday mean).
    pub fn intensity(&self, t: f64) -> f64 {
        let abs = self.start_unix as f64 + t;
        let hour = abs.rem_euclid(86_400.0) / 3600.0;
        let diurnal =
            1.0 + self.diurnal_amplitude * (2.0 * PI * (hour - self.peak_hour_utc) / 24.0).cos();
        let weekday = crate::time::weekday(abs.floor() as i64);
        let week = if weekday >= 5 {
            self.weekend_factor
        } else {
            1.0
        };
        diurnal * week
    }

    /// (start, length, intensity) of each rate bin.
    fn bins(&self) -> impl Iterator<Item = (i64, i64, f64)> + '_ {
        let horizon = self.horizon_s();
        (0..horizon.div_euclid(BIN_S) + 1).filter_map(move |b| {
            let t0 = b * BIN_S;
            let len = BIN_S.min(horizon - t0);
            (len > 0).then(|| (t0, len, self.intensity(t0 as f64 + len as f64 / 2.0)))
        })
    }

    /// Expected number of jobs (base arrivals plus bursts at their mean size).
    pub fn expected_jobs(&self) -> f64 {
        let per_day = self.jobs_per_day + self.bursts_per_day * self.burst_jobs_mean;
        if !per_day.is_finite() || !self.days.is_finite() || self.days <= 0.0 || self.days > 3650.0
        {
            return f64::INFINITY;
        }
        self.bins()
            .map(|(_, len, w)| len as f64 / 86_400.0 * w)
            .sum::<f64>()
            * per_day
    }
}

/// Trace metadata of a synthetic workload: epoch `start_unix`.
pub fn synthetic_meta(cfg: &SyntheticConfig) -> TraceMeta {
    TraceMeta {
        unix_start: Some(cfg.start_unix),
        max_procs: None,
        max_jobs: None,
        installation: Some("rustci synthetic CI workload".to_string()),
        header: vec![
            (
                "Generator".to_string(),
                "rustci-datasets synthetic".to_string(),
            ),
            ("Seed".to_string(), cfg.seed.to_string()),
        ],
    }
}

struct JobDef {
    tenant: usize,
    project: usize,
    name: &'static str,
    /// Probability a push of the repository runs this job.
    p: f64,
    typical_s: f64,
    timeout_s: i64,
    label_set: usize,
}

impl JobDef {
    /// A definition of job `name` in repository `(tenant, project)`: its typical duration
    /// (the median scaled by `factor`, varied between definitions) and its timeout.
    fn draw(
        cfg: &SyntheticConfig,
        (tenant, project): (usize, usize),
        name: &'static str,
        factor: f64,
        p: f64,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let between = (cfg.duration_sigma.powi(2) - cfg.within_job_sigma.powi(2))
            .max(0.0)
            .sqrt();
        let typical = (cfg.median_duration_s * factor * (between * normal(rng)).exp())
            .clamp(5.0, cfg.max_duration_s as f64);
        let timeout = ((typical * cfg.timeout_factor / 300.0).ceil() * 300.0) as i64;
        let timeout = timeout
            .max(cfg.min_timeout_s)
            .min(cfg.max_duration_s.max(cfg.min_timeout_s));
        Self {
            tenant,
            project,
            name,
            p,
            typical_s: typical,
            timeout_s: timeout,
            label_set: 0,
        }
    }
}

struct Repo {
    name: String,
    defs: Vec<usize>,
}

struct Tenant {
    name: String,
    repos: Vec<Repo>,
    /// Expected jobs per push.
    jobs_per_push: f64,
}

#[derive(Clone, Copy)]
struct Pending {
    submit: i64,
    def: u32,
    /// 0 = main, else `pr-<n>`.
    branch: u32,
    /// Ignored when the job never ran (skipped, manual).
    run: i64,
    outcome: Outcome,
    qos: u16,
    /// The job's place in a pipeline, if it has one.
    pipeline: Option<pipelines::Place>,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

struct Catalog {
    tenants: Vec<Tenant>,
    defs: Vec<JobDef>,
    /// Normalized job-volume weight per tenant.
    volume: Vec<f64>,
}

fn build_catalog(cfg: &SyntheticConfig, rng: &mut ChaCha8Rng) -> Catalog {
    let n = cfg.tenants as usize;
    let width = n.saturating_sub(1).to_string().len().max(2);
    let raw: Vec<f64> = (1..=n)
        .map(|k| (k as f64).powf(-cfg.tenant_zipf_exponent))
        .collect();
    let total: f64 = raw.iter().sum();
    let volume: Vec<f64> = raw.iter().map(|w| w / total).collect();

    let mut tenants = Vec::with_capacity(n);
    let mut defs: Vec<JobDef> = Vec::new();
    for t in 0..n {
        let name = format!("tenant-{t:0width$}");
        let n_repos = rng.gen_range(1..=cfg.max_repos_per_tenant as usize);
        let mut repo_names = REPO_NAMES.to_vec();
        repo_names.shuffle(rng);
        let mut repos = Vec::with_capacity(n_repos);
        let mut sum_p = 0.0;
        for (r, repo_name) in repo_names.iter().take(n_repos).enumerate() {
            let mut names: Vec<(&'static str, f64)> = JOB_NAMES[2..].to_vec();
            names.shuffle(rng);
            let extra = rng.gen_range(0..=4usize);
            let chosen = JOB_NAMES[..2]
                .iter()
                .copied()
                .chain(names.into_iter().take(extra));
            let mut ids = Vec::new();
            for (j, (job, factor)) in chosen.enumerate() {
                let p = if j < 2 { 1.0 } else { rng.gen_range(0.3..1.0) };
                sum_p += p;
                ids.push(defs.len());
                defs.push(JobDef::draw(cfg, (t, r), job, factor, p, rng));
            }
            repos.push(Repo {
                name: format!("{name}/{repo_name}"),
                defs: ids,
            });
        }
        tenants.push(Tenant {
            name,
            jobs_per_push: sum_p / n_repos as f64,
            repos,
        });
    }

    // Label sets per definition: largest expected volume first, each to the set furthest
    // below its target share (ties broken at random), so job shares track the weights.
    let share = |d: &JobDef| {
        let t = &tenants[d.tenant];
        volume[d.tenant] * d.p / (t.jobs_per_push * t.repos.len() as f64)
    };
    let mut order: Vec<usize> = (0..defs.len()).collect();
    order.shuffle(rng);
    order.sort_by(|&a, &b| share(&defs[b]).total_cmp(&share(&defs[a])));
    let wsum: f64 = cfg.label_sets.iter().map(|s| s.weight).sum();
    let target: Vec<f64> = cfg.label_sets.iter().map(|s| s.weight / wsum).collect();
    let mut assigned = vec![0.0; target.len()];
    for d in order {
        let s = share(&defs[d]);
        let mut best = 0;
        let mut best_gap = f64::NEG_INFINITY;
        for (i, (&t, &a)) in target.iter().zip(&assigned).enumerate() {
            if t <= 0.0 {
                continue;
            }
            // Gap after assigning: prefer the set whose share stays closest to target.
            let gap = t - a - s / 2.0 + rng.gen_range(0.0..1e-9);
            if gap > best_gap {
                best_gap = gap;
                best = i;
            }
        }
        assigned[best] += s;
        defs[d].label_set = best;
    }
    Catalog {
        tenants,
        defs,
        volume,
    }
}

/// Draws the run time and outcome of one run of `def`.
fn draw_run(cfg: &SyntheticConfig, def: &JobDef, rng: &mut ChaCha8Rng) -> (i64, Outcome) {
    let mut run = if rng.gen::<f64>() < cfg.tail_share {
        let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        def.typical_s * cfg.tail_scale * u.powf(-1.0 / cfg.tail_alpha)
    } else {
        def.typical_s * (cfg.within_job_sigma * normal(rng)).exp()
    };
    let u: f64 = rng.gen();
    let mut outcome = if u < cfg.failure_rate {
        run *= rng.gen_range(0.1..=1.0);
        Outcome::Failure
    } else if u < cfg.failure_rate + cfg.cancel_rate {
        run *= rng.gen::<f64>();
        Outcome::Cancelled
    } else {
        Outcome::Success
    };
    let mut run = if run.is_finite() {
        (run.round() as i64).clamp(1, cfg.max_duration_s)
    } else {
        cfg.max_duration_s
    };
    if cfg.enforce_timeouts && run > def.timeout_s {
        run = def.timeout_s;
        outcome = Outcome::Failure;
    }
    (run, outcome)
}

fn weighted(
    weights: impl IntoIterator<Item = f64>,
    field: &str,
) -> Result<WeightedIndex<f64>, DatasetError> {
    WeightedIndex::new(weights).map_err(|e| DatasetError::config(field, e.to_string()))
}

fn poisson(lambda: f64, rng: &mut ChaCha8Rng) -> u64 {
    if lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    match Poisson::new(lambda) {
        Ok(p) => {
            let v: f64 = p.sample(rng);
            v.max(0.0) as u64
        }
        Err(_) => 0,
    }
}

/// Drives the arrival process over the rate bins: `push(t, tenant, repo, burst, rng)`
/// submits one push of `repo` of `tenant` at `t` (`burst`: a burst's push) and returns
/// the jobs it made, which bursts count towards their size.
fn arrivals(
    cfg: &SyntheticConfig,
    cat: &Catalog,
    push_rate: f64,
    push_tenant: &WeightedIndex<f64>,
    burst_tenant: &WeightedIndex<f64>,
    rng: &mut ChaCha8Rng,
    mut push: impl FnMut(i64, usize, usize, bool, &mut ChaCha8Rng) -> u64,
) {
    let horizon = cfg.horizon_s();
    let burst_rate = cfg.bursts_per_day / 86_400.0;
    for (t0, len, w) in cfg.bins().collect::<Vec<_>>() {
        let n_push = poisson(push_rate * len as f64 * w, rng);
        for _ in 0..n_push {
            let t = t0 + rng.gen_range(0..len);
            let tenant = push_tenant.sample(rng);
            let repo = rng.gen_range(0..cat.tenants[tenant].repos.len());
            push(t, tenant, repo, false, rng);
        }
        let n_burst = poisson(burst_rate * len as f64 * w, rng);
        for _ in 0..n_burst {
            let start = t0 + rng.gen_range(0..len);
            let tenant = burst_tenant.sample(rng);
            let repo = rng.gen_range(0..cat.tenants[tenant].repos.len());
            let target = 1 + poisson(cfg.burst_jobs_mean - 1.0, rng);
            let mut made = 0u64;
            while made < target {
                let t = (start + rng.gen_range(0..i64::from(cfg.burst_window_s))).min(horizon - 1);
                made += push(t, tenant, repo, true, rng);
            }
        }
    }
}

/// Generates the workload: sorted by `submit_s`, then `id`; deterministic for a config.
pub fn generate(cfg: &SyntheticConfig) -> Result<Vec<JobRecord>, DatasetError> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut cat = build_catalog(cfg, &mut rng);
    let templates = if cfg.pipelines.enabled {
        pipelines::build_templates(cfg, &mut cat, &mut rng)?
    } else {
        Vec::new()
    };

    // Pushes: tenant probability ∝ volume / jobs per push, so job volume ∝ volume.
    let per_push: Vec<f64> = if cfg.pipelines.enabled {
        (0..cat.tenants.len())
            .map(|t| {
                let repos = cat.tenants[t].repos.len();
                (0..repos)
                    .map(|r| pipelines::jobs_per_arrival(cfg, &cat, &templates, (t, r)))
                    .sum::<f64>()
                    / repos as f64
            })
            .collect()
    } else {
        cat.tenants.iter().map(|t| t.jobs_per_push).collect()
    };
    let push_w: Vec<f64> = per_push
        .iter()
        .zip(&cat.volume)
        .map(|(per, v)| v / per)
        .collect();
    let pushes_per_job: f64 = push_w.iter().sum();
    let push_tenant = weighted(push_w.iter().copied(), "tenants")?;
    let burst_tenant = weighted(cat.volume.iter().copied(), "tenants")?;
    let qos_pick = weighted(cfg.qos.iter().map(|q| q.weight), "qos")?;
    let push_rate = cfg.jobs_per_day * pushes_per_job / 86_400.0; // pushes per second

    let mut pending: Vec<Pending> = Vec::with_capacity((cfg.expected_jobs() * 1.05) as usize + 16);
    let independent =
        |t: i64, tenant: usize, repo: usize, rng: &mut ChaCha8Rng, out: &mut Vec<Pending>| {
            let branch = if rng.gen::<f64>() < cfg.main_branch_share {
                0
            } else {
                rng.gen_range(1..=2000)
            };
            let mut n = 0;
            for &d in &cat.tenants[tenant].repos[repo].defs {
                let def = &cat.defs[d];
                if def.p < 1.0 && rng.gen::<f64>() >= def.p {
                    continue;
                }
                let (run, outcome) = draw_run(cfg, def, rng);
                let qos = qos_pick.sample(rng) as u16;
                out.push(Pending {
                    submit: t,
                    def: d as u32,
                    branch,
                    run,
                    outcome,
                    qos,
                    pipeline: None,
                });
                n += 1;
            }
            n
        };
    let mut runner = pipelines::Runner::new(cfg, &cat, &qos_pick);
    arrivals(
        cfg,
        &cat,
        push_rate,
        &push_tenant,
        &burst_tenant,
        &mut rng,
        |t, tenant, repo, burst, rng| match templates
            .get(tenant)
            .and_then(|r| r.get(repo))
            .and_then(Option::as_ref)
        {
            Some(tpl) => runner.push(t, tpl, burst, rng, &mut pending),
            None => independent(t, tenant, repo, rng, &mut pending),
        },
    );

    pending.sort_by_key(|p| p.submit);
    let width = pending.len().saturating_sub(1).to_string().len().max(7);
    let label_sets: Vec<Vec<String>> = cfg.label_sets.iter().map(|s| s.labels.clone()).collect();
    let mut names = pipelines::Names::default();
    let out = pending
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let def = &cat.defs[p.def as usize];
            let tenant = &cat.tenants[def.tenant];
            let set = &cfg.label_sets[def.label_set];
            let mut rec = JobRecord::new(format!("j{i:0width$}"), tenant.name.clone(), p.submit);
            rec.project = Some(tenant.repos[def.project].name.clone());
            rec.job_name = Some(def.name.to_string());
            rec.branch = Some(if p.branch == 0 {
                "main".to_string()
            } else {
                format!("pr-{}", p.branch)
            });
            rec.labels = label_sets[def.label_set].clone();
            rec.slots = set.slots;
            rec.requested_s = Some(def.timeout_s);
            rec.run_s = match p.outcome {
                Outcome::Skipped | Outcome::Manual => None,
                _ => Some(p.run),
            };
            rec.outcome = p.outcome;
            rec.qos = Some(cfg.qos[p.qos as usize].name.clone());
            if let Some(place) = p.pipeline {
                rec.pipeline = names.pipeline_ref(place, p.submit, &templates, &cat, def);
            }
            rec
        })
        .collect();
    Ok(out)
}

/// [`generate`] as a [`Trace`] with [`synthetic_meta`] (format tag `Csv`, the
/// `JobRecord` schema).
pub fn generate_trace(cfg: &SyntheticConfig) -> Result<Trace, DatasetError> {
    let records = generate(cfg)?;
    let mut meta = synthetic_meta(cfg);
    meta.max_jobs = Some(records.len() as u64);
    Ok(Trace::from_records(meta, TraceFormat::Csv, records))
}
