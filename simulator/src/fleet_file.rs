//! The fleet file (TOML): pools of runners, QoS classes, tenant weights.
//!
//! ```toml
//! [[pool]]
//! name = "linux"             # unique
//! labels = ["linux", "docker"]
//! runners = 40               # >= 1; all pools together <= MAX_RUNNERS (100,000)
//! slots = 1                  # slots (processors) per runner, 1 to MAX_SLOTS (10^6)
//! cost_per_hour = 0.10       # per runner, >= 0
//! provisioning_delay_s = 60  # >= 0
//!
//! [[qos]]
//! name = "standard"
//! priority = 5               # larger is more urgent
//! wait_target_s = 300        # > 0
//!
//! [[tenant]]                 # optional; tenants not listed get weight 1
//! name = "team-a"
//! weight = 2.0               # > 0
//! ```
//!
//! Autoscaling (used with `rustci-sim run --autoscaler ...` or `[autoscaler] policy`);
//! every field is optional. `runners` stays the size under the `static` policy.
//!
//! ```toml
//! [autoscaler]
//! policy = "predictive"      # static | reactive | predictive; --autoscaler overrides
//! interval_s = 15            # evaluation interval, > 0
//! quantile = 0.95            # predictive: share of jobs to start within the target
//! target_scale = 1.0         # predictive: multiplies each class's wait target, >= 0
//! window_s = 600             # predictive: forecast window after the lead time, > 0
//! half_life_s = 1800         # predictive: memory of run times, class mix, arrivals, > 0
//! seed = 1                   # spot interruptions
//!
//! [[pool]]
//! # ... the fields above, and:
//! min_runners = 0            # default 0; dynamic policies start with this many
//! max_runners = 500          # default: MAX_RUNNERS; >= min_runners
//! idle_timeout_s = 300       # default 300; an idle runner may go after this long
//! scale_to_zero = false      # with true, the floor drops to 0 after a work-free idle timeout
//! warm_pool = [{ from = "08:00", to = "18:00", idle = 4 }]   # UTC; idle <= max_runners
//! spot = { interruption_rate_per_hour = 0.05, fallback_pool = "linux-od", on_demand_cost_per_hour = 0.1 }
//! ```

use std::path::Path;

use rustci_scheduler::{
    AutoscaleConfig, AutoscaleError, CheckedAutoscale, LabelSet, PolicyConfig, PoolScaling,
    PoolSpec, PredictiveSettings, QosSpec, ScalePolicy, SchedulerConfig, SpotSettings, WarmWindow,
    MS_PER_S,
};
use serde::Deserialize;
use thiserror::Error;

/// The most runners a fleet may have: the sum of its pools' `runners`, and each
/// pool's `min_runners` and `max_runners` (an unset `max_runners` means this many).
/// A run costs about 170 bytes per runner (measured: 0.05 synthetic days peak at
/// 23.9 MB resident with 99,000 runners, 7.3 MB with 1,000), so a fleet at the limit
/// costs tens of megabytes; real CI fleets are in the thousands. Beyond it a typo (`runners = 4000000000`) would take the machine's memory
/// instead of an error.
pub const MAX_RUNNERS: u32 = 100_000;

/// The most slots (processors) one runner may have. The largest machines in the
/// Parallel Workloads Archive have well under a million processors; with
/// [`MAX_RUNNERS`] the fleet's slot total stays far inside `u64`.
pub const MAX_SLOTS: u32 = 1_000_000;

/// The built-in fleet of the synthetic CI workload.
pub const DEFAULT_CI_FLEET: &str = include_str!("../fleets/default-ci.toml");

#[derive(Debug, Error)]
pub enum FleetError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Toml {
        file: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
    /// The core's message already names the field; it is not repeated as a source.
    #[error("{file}: {error}")]
    Autoscale { file: String, error: AutoscaleError },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub runners: u32,
    #[serde(default = "one")]
    pub slots: u32,
    #[serde(default)]
    pub cost_per_hour: f64,
    #[serde(default)]
    pub provisioning_delay_s: f64,
    #[serde(default)]
    pub min_runners: u32,
    /// `None`: no limit.
    #[serde(default)]
    pub max_runners: Option<u32>,
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: f64,
    #[serde(default)]
    pub scale_to_zero: bool,
    #[serde(default)]
    pub warm_pool: Vec<WarmEntry>,
    #[serde(default)]
    pub spot: Option<SpotEntry>,
}

fn one() -> u32 {
    1
}

fn default_idle_timeout_s() -> f64 {
    300.0
}

/// A warm-pool window: `idle` runners kept idle from `from` to `to` ("HH:MM", UTC).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmEntry {
    pub from: String,
    pub to: String,
    pub idle: u32,
}

/// A spot pool's interruptions, fallback and on-demand price (for the money saved).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotEntry {
    pub interruption_rate_per_hour: f64,
    #[serde(default)]
    pub fallback_pool: Option<String>,
    /// Default: the fallback pool's `cost_per_hour`.
    #[serde(default)]
    pub on_demand_cost_per_hour: Option<f64>,
}

/// The `[autoscaler]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerEntry {
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    #[serde(default = "one_f64")]
    pub target_scale: f64,
    #[serde(default = "default_window_s")]
    pub window_s: f64,
    #[serde(default = "default_half_life_s")]
    pub half_life_s: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_interval_s() -> f64 {
    15.0
}
fn default_quantile() -> f64 {
    PredictiveSettings::default().quantile
}
fn one_f64() -> f64 {
    1.0
}
fn default_window_s() -> f64 {
    PredictiveSettings::default().window_ms as f64 / MS_PER_S as f64
}
fn default_half_life_s() -> f64 {
    PredictiveSettings::default().half_life_ms as f64 / MS_PER_S as f64
}
fn default_seed() -> u64 {
    1
}

impl Default for AutoscalerEntry {
    fn default() -> Self {
        Self {
            policy: None,
            interval_s: default_interval_s(),
            quantile: default_quantile(),
            target_scale: 1.0,
            window_s: default_window_s(),
            half_life_s: default_half_life_s(),
            seed: default_seed(),
        }
    }
}

/// "HH:MM" (or "HH:MM:SS") to seconds of the day.
fn second_of_day(text: &str) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let sec: u32 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

fn seconds_to_ms(s: f64) -> i64 {
    (s * MS_PER_S as f64).round() as i64
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosEntry {
    pub name: String,
    #[serde(default)]
    pub priority: i32,
    pub wait_target_s: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub name: String,
    pub weight: f64,
}

/// A parsed, checked fleet file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    #[serde(rename = "pool")]
    pub pools: Vec<PoolEntry>,
    #[serde(default, rename = "qos")]
    pub qos: Vec<QosEntry>,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantEntry>,
    #[serde(default)]
    pub autoscaler: Option<AutoscalerEntry>,
}

/// `runners` multiplied by `scale`, rounded, at least 1 (a what-if fleet size).
pub fn scale_count(runners: u32, scale: f64) -> u32 {
    let x = (f64::from(runners) * scale).round();
    if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        (x as u32).max(1)
    }
}

impl FleetFile {
    pub fn load(path: &Path) -> Result<Self, FleetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and checks a fleet; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FleetError> {
        let mut fleet: FleetFile = toml::from_str(text).map_err(|source| FleetError::Toml {
            file: file.into(),
            source,
        })?;
        if fleet.qos.is_empty() {
            fleet.qos = default_qos();
        }
        fleet.check(file)?;
        Ok(fleet)
    }

    /// One pool `machine` of one runner with `processors` slots: an SWF machine.
    pub fn processors(processors: u32) -> Self {
        Self {
            pools: vec![PoolEntry {
                name: "machine".into(),
                labels: Vec::new(),
                runners: 1,
                slots: processors,
                cost_per_hour: 0.0,
                provisioning_delay_s: 0.0,
                min_runners: 0,
                max_runners: None,
                idle_timeout_s: default_idle_timeout_s(),
                scale_to_zero: false,
                warm_pool: Vec::new(),
                spot: None,
            }],
            qos: default_qos(),
            tenants: Vec::new(),
            autoscaler: None,
        }
    }

    /// The built-in CI fleet.
    pub fn default_ci() -> Result<Self, FleetError> {
        Self::parse(DEFAULT_CI_FLEET, "<built-in default-ci fleet>")
    }

    fn check(&self, file: &str) -> Result<(), FleetError> {
        let bad = |field: String, reason: String| FleetError::Invalid {
            file: file.into(),
            field,
            reason,
        };
        if self.pools.is_empty() {
            return Err(bad("pool".into(), "at least one [[pool]] is needed".into()));
        }
        if self.pools.len() > 64 {
            return Err(bad(
                "pool".into(),
                format!("at most 64 pools, got {}", self.pools.len()),
            ));
        }
        for (i, p) in self.pools.iter().enumerate() {
            let f = |name: &str| format!("pool[{i}] ({}).{name}", p.name);
            if p.name.trim().is_empty() {
                return Err(bad(format!("pool[{i}].name"), "must not be empty".into()));
            }
            if self.pools[..i].iter().any(|q| q.name == p.name) {
                return Err(bad(f("name"), "duplicate pool name".into()));
            }
            if p.runners == 0 {
                return Err(bad(f("runners"), "must be at least 1".into()));
            }
            if p.slots == 0 {
                return Err(bad(f("slots"), "must be at least 1".into()));
            }
            for (name, n) in [
                ("runners", Some(p.runners)),
                ("min_runners", Some(p.min_runners)),
                ("max_runners", p.max_runners),
            ] {
                if let Some(n) = n.filter(|&n| n > MAX_RUNNERS) {
                    return Err(bad(
                        f(name),
                        format!("at most {MAX_RUNNERS} runners (the simulator's limit), got {n}"),
                    ));
                }
            }
            if p.slots > MAX_SLOTS {
                return Err(bad(
                    f("slots"),
                    format!("at most {MAX_SLOTS} per runner, got {}", p.slots),
                ));
            }
            if !(p.cost_per_hour.is_finite() && p.cost_per_hour >= 0.0) {
                return Err(bad(
                    f("cost_per_hour"),
                    format!("must be a finite number >= 0, got {}", p.cost_per_hour),
                ));
            }
            if !(p.provisioning_delay_s.is_finite() && p.provisioning_delay_s >= 0.0) {
                return Err(bad(
                    f("provisioning_delay_s"),
                    format!(
                        "must be a finite number >= 0, got {}",
                        p.provisioning_delay_s
                    ),
                ));
            }
            if let Some(l) = p.labels.iter().find(|l| l.trim().is_empty()) {
                return Err(bad(f("labels"), format!("empty label {l:?}")));
            }
            if !(p.idle_timeout_s.is_finite() && p.idle_timeout_s >= 0.0) {
                return Err(bad(
                    f("idle_timeout_s"),
                    format!("must be a finite number >= 0, got {}", p.idle_timeout_s),
                ));
            }
            for (w, entry) in p.warm_pool.iter().enumerate() {
                for (name, value) in [("from", &entry.from), ("to", &entry.to)] {
                    if second_of_day(value).is_none() {
                        return Err(bad(
                            f(&format!("warm_pool[{w}].{name}")),
                            format!("expected a UTC time of day \"HH:MM\", got {value:?}"),
                        ));
                    }
                }
            }
            if let Some(price) = p.spot.as_ref().and_then(|s| s.on_demand_cost_per_hour) {
                if !(price.is_finite() && price >= 0.0) {
                    return Err(bad(
                        f("spot.on_demand_cost_per_hour"),
                        format!("must be a finite number >= 0, got {price}"),
                    ));
                }
            }
        }
        let total: u64 = self.pools.iter().map(|p| u64::from(p.runners)).sum();
        if total > u64::from(MAX_RUNNERS) {
            return Err(bad(
                "pool.runners".into(),
                format!(
                    "at most {MAX_RUNNERS} runners in all pools together (the simulator's \
                     limit), got {total}"
                ),
            ));
        }
        if self.label_names().len() > 64 {
            return Err(bad(
                "pool.labels".into(),
                "at most 64 distinct labels".into(),
            ));
        }
        for (i, q) in self.qos.iter().enumerate() {
            if q.name.trim().is_empty() {
                return Err(bad(format!("qos[{i}].name"), "must not be empty".into()));
            }
            if self.qos[..i].iter().any(|o| o.name == q.name) {
                return Err(bad(
                    format!("qos[{i}] ({}).name", q.name),
                    "duplicate QoS class".into(),
                ));
            }
            if !(q.wait_target_s.is_finite() && q.wait_target_s > 0.0) {
                return Err(bad(
                    format!("qos[{i}] ({}).wait_target_s", q.name),
                    format!("must be > 0, got {}", q.wait_target_s),
                ));
            }
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(bad(
                    format!("tenant[{i}] ({}).weight", t.name),
                    format!("must be > 0, got {}", t.weight),
                ));
            }
        }
        if let Some(a) = &self.autoscaler {
            for (name, value) in [
                ("interval_s", a.interval_s),
                ("window_s", a.window_s),
                ("half_life_s", a.half_life_s),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(bad(
                        format!("autoscaler.{name}"),
                        format!("must be a finite number > 0, got {value}"),
                    ));
                }
            }
            if let Some(p) = &a.policy {
                ScalePolicy::named(p).map_err(|error| FleetError::Autoscale {
                    file: file.into(),
                    error,
                })?;
            }
        }
        // The autoscaling rules the core checks (min above max, fallback pools, warm pool
        // over max): checked here so that a bad file fails when it is loaded.
        self.checked_autoscale(ScalePolicy::Static, 0)
            .map_err(|e| match e {
                AutoscaleSetupError::Autoscale(error) => FleetError::Autoscale {
                    file: file.into(),
                    error,
                },
                AutoscaleSetupError::Config(reason) => FleetError::Invalid {
                    file: file.into(),
                    field: "pool".into(),
                    reason,
                },
            })?;
        Ok(())
    }

    /// The autoscaler settings of this fleet under `policy`; `epoch_ms` is the Unix time
    /// (ms) of the simulation's time 0.
    pub fn autoscale_config(&self, policy: ScalePolicy, epoch_ms: i64) -> AutoscaleConfig {
        let a = self.autoscaler.clone().unwrap_or_default();
        AutoscaleConfig {
            policy,
            interval_ms: seconds_to_ms(a.interval_s).max(1),
            epoch_ms,
            pools: self
                .pools
                .iter()
                .map(|p| PoolScaling {
                    runners: p.runners,
                    min_runners: p.min_runners,
                    max_runners: p.max_runners.unwrap_or(MAX_RUNNERS),
                    idle_timeout_ms: seconds_to_ms(p.idle_timeout_s),
                    warm_pool: p
                        .warm_pool
                        .iter()
                        .map(|w| WarmWindow {
                            from_s: second_of_day(&w.from).unwrap_or(0),
                            to_s: second_of_day(&w.to).unwrap_or(0),
                            idle: w.idle,
                        })
                        .collect(),
                    scale_to_zero: p.scale_to_zero,
                    spot: p.spot.as_ref().map(|s| SpotSettings {
                        interruption_rate_per_hour: s.interruption_rate_per_hour,
                        fallback_pool: s.fallback_pool.clone(),
                    }),
                })
                .collect(),
            predictive: PredictiveSettings {
                quantile: a.quantile,
                target_scale: a.target_scale,
                window_ms: seconds_to_ms(a.window_s).max(1),
                half_life_ms: seconds_to_ms(a.half_life_s).max(1),
            },
        }
    }

    /// The autoscaler settings checked against this fleet's pools and classes.
    pub fn checked_autoscale(
        &self,
        policy: ScalePolicy,
        epoch_ms: i64,
    ) -> Result<CheckedAutoscale, AutoscaleSetupError> {
        let config = SchedulerConfig {
            policy: PolicyConfig::default(),
            labels: self.label_names(),
            pools: self.pool_specs(),
            tenants: Vec::new(),
            qos: self.qos_specs(),
        }
        .check()
        .map_err(|e| AutoscaleSetupError::Config(e.to_string()))?;
        self.autoscale_config(policy, epoch_ms)
            .check(&config)
            .map_err(AutoscaleSetupError::Autoscale)
    }

    /// The on-demand price per runner-hour each spot pool is compared with (its own
    /// `on_demand_cost_per_hour`, else its fallback pool's price); `None` for other pools.
    pub fn on_demand_prices(&self) -> Vec<Option<f64>> {
        self.pools
            .iter()
            .map(|p| {
                let spot = p.spot.as_ref()?;
                spot.on_demand_cost_per_hour.or_else(|| {
                    let name = spot.fallback_pool.as_ref()?;
                    self.pools
                        .iter()
                        .find(|q| &q.name == name)
                        .map(|q| q.cost_per_hour)
                })
            })
            .collect()
    }

    /// The policy named in the file's `[autoscaler]` section, if any.
    pub fn autoscaler_policy(&self) -> Option<&str> {
        self.autoscaler.as_ref().and_then(|a| a.policy.as_deref())
    }

    /// Every pool's provisioning delay set to `seconds` (what-if runs).
    pub fn set_provisioning_delay(&mut self, seconds: f64) {
        for p in &mut self.pools {
            p.provisioning_delay_s = seconds;
        }
    }

    /// Every pool's idle timeout set to `seconds` (what-if runs).
    pub fn set_idle_timeout(&mut self, seconds: f64) {
        for p in &mut self.pools {
            p.idle_timeout_s = seconds;
        }
    }

    /// This fleet with every pool's runners multiplied by `scale` ([`scale_count`]).
    pub fn scaled(&self, scale: f64) -> FleetFile {
        let mut f = self.clone();
        for p in &mut f.pools {
            p.runners = scale_count(p.runners, scale);
        }
        f
    }

    /// Checks the fleet again after it was changed in code; `what` names the change.
    pub fn recheck(&self, what: &str) -> Result<(), FleetError> {
        self.check(what)
    }

    /// Every label any pool carries, in order of first appearance: bit `i` of a
    /// [`LabelSet`] is `label_names()[i]`.
    pub fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for p in &self.pools {
            for l in &p.labels {
                if !names.contains(l) {
                    names.push(l.clone());
                }
            }
        }
        names
    }

    pub fn pool_specs(&self) -> Vec<PoolSpec> {
        let names = self.label_names();
        self.pools
            .iter()
            .map(|p| PoolSpec {
                name: p.name.clone(),
                labels: LabelSet::from_names(&names, &p.labels).unwrap_or_default(),
                slots_per_runner: p.slots,
                cost_per_hour: p.cost_per_hour,
                provisioning_delay_ms: (p.provisioning_delay_s * MS_PER_S as f64).round() as i64,
            })
            .collect()
    }

    pub fn qos_specs(&self) -> Vec<QosSpec> {
        self.qos
            .iter()
            .map(|q| QosSpec {
                name: q.name.clone(),
                priority: q.priority,
                wait_target_ms: (q.wait_target_s * MS_PER_S as f64).round().max(1.0) as i64,
            })
            .collect()
    }

    /// The QoS class jobs without one get: `standard` if defined, else the first.
    pub fn default_qos_index(&self) -> usize {
        self.qos
            .iter()
            .position(|q| q.name == "standard")
            .unwrap_or(0)
    }

    pub fn total_runners(&self) -> u64 {
        self.pools.iter().map(|p| u64::from(p.runners)).sum()
    }
}

/// Why the autoscaler settings of a fleet cannot be used.
#[derive(Debug, Error)]
pub enum AutoscaleSetupError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Autoscale(AutoscaleError),
}

/// Used when a fleet file names no QoS classes.
pub fn default_qos() -> Vec<QosEntry> {
    [
        ("urgent", 10, 60.0),
        ("standard", 5, 300.0),
        ("batch", 0, 1800.0),
    ]
    .into_iter()
    .map(|(name, priority, wait_target_s)| QosEntry {
        name: name.into(),
        priority,
        wait_target_s,
    })
    .collect()
}
