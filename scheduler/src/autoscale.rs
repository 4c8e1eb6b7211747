//! Autoscaling: how many runners each pool should have, decided from what the scheduler
//! holds, the jobs' run-time estimates and an arrival forecast. Like the scheduler it
//! returns decisions ([`ScaleDecision`]) and changes nothing itself: the driver asks for
//! runners (they join after the pool's provisioning delay) and releases the idle runners
//! it is told to release.
//!
//! Policies ([`ScalePolicy`]):
//! - `static`: each pool keeps its configured size.
//! - `reactive`: desired = slots running + slots waiting now, per runner
//!   ([`Scheduler::reactive_advice`]), as the runner controllers CI users run today.
//! - `predictive`: the offered load of a pool after its provisioning lead time is the
//!   forecast arrival rate ([`ArrivalForecast`]) times the mean estimated run time of its
//!   recent jobs, calibrated by the demand actually seen (Little's law: biased estimates
//!   and work spilling over from other pools show up there). Each pool is an M/M/c
//!   queue (Erlang C); runners are added, cheapest gain per price first, until for every
//!   QoS class the share of its jobs fleet-wide expected to wait longer than
//!   `target_scale x` its wait target is at most `1 - quantile` (`plan_runners`).
//!   Then the observed queue corrects it: the slots of the jobs waiting now are added.
//!
//! Then, for every policy but `static`: at least the busy runners plus the warm pool of
//! the hour, within `[min_runners, max_runners]` (with `scale_to_zero`, the floor drops to
//! zero once the pool has had no work for its idle timeout). Scale-in releases only
//! runners that have been idle (no job) for at least the idle timeout, longest idle
//! first, so it never takes a runner from under a running job.
//!
//! Under the QoS order a class waits only behind classes of equal or higher priority
//! (lower classes' running jobs are ignored: the approximation of preemptive priority);
//! under the other orders every class waits behind all the load.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{CheckedConfig, QueueOrder};
use crate::domain::{JobSpec, Millis, PoolId, PoolSpec, QosId, RunnerId};
use crate::scheduler::{PoolLoad, Scheduler};

const MS_PER_DAY: Millis = 86_400_000;

/// A demand forecast: expected job arrivals per pool. `rustci-models` implements it, so
/// the core links no ML library.
pub trait ArrivalForecast: Send {
    /// Expected arrivals of jobs whose first eligible pool is `pool` in
    /// `[from_ms, from_ms + duration_ms)` on the driver's clock.
    fn expected_arrivals(&self, pool: PoolId, from_ms: Millis, duration_ms: Millis) -> f64;

    /// A job for `pool` was submitted at `at_ms`: online forecasters learn from it.
    fn observe(&mut self, _pool: PoolId, _at_ms: Millis) {}

    /// Name for reports.
    fn name(&self) -> &str;
}

/// The autoscaling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalePolicy {
    Static,
    Reactive,
    Predictive,
}

impl ScalePolicy {
    pub const NAMES: [&'static str; 3] = ["static", "reactive", "predictive"];

    pub fn named(name: &str) -> Result<Self, AutoscaleError> {
        match name {
            "static" => Ok(Self::Static),
            "reactive" => Ok(Self::Reactive),
            "predictive" => Ok(Self::Predictive),
            other => Err(AutoscaleError::Invalid {
                field: "autoscaler.policy".into(),
                reason: format!(
                    "unknown autoscaler {other:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Reactive => "reactive",
            Self::Predictive => "predictive",
        }
    }
}

/// A warm-pool window: from `from_s` (inclusive) to `to_s` (exclusive), seconds of the
/// day (UTC on the driver's epoch), keep at least `idle` runners idle. `to_s < from_s`
/// wraps past midnight; `to_s == from_s` is the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmWindow {
    pub from_s: u32,
    pub to_s: u32,
    pub idle: u32,
}

impl WarmWindow {
    fn contains(&self, second_of_day: u32) -> bool {
        match self.from_s.cmp(&self.to_s) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.from_s..self.to_s).contains(&second_of_day),
            std::cmp::Ordering::Greater => {
                second_of_day >= self.from_s || second_of_day < self.to_s
            }
        }
    }
}

/// A spot pool: cheaper runners that are taken away at random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotSettings {
    /// Interruptions per runner-hour (a Poisson process per runner).
    pub interruption_rate_per_hour: f64,
    /// Pool (by name) an interrupted job is retried on; `None`: back into its own queue.
    pub fallback_pool: Option<String>,
}

/// Autoscaling settings of one pool. Its provisioning delay and price are in its
/// [`PoolSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolScaling {
    /// The size under the `static` policy.
    pub runners: u32,
    pub min_runners: u32,
    pub max_runners: u32,
    /// A runner idle (no job) this long may be released.
    pub idle_timeout_ms: Millis,
    /// Minimum idle runners by time of day.
    pub warm_pool: Vec<WarmWindow>,
    /// The floor (`min_runners`, warm pool) drops to zero after a work-free idle timeout.
    pub scale_to_zero: bool,
    pub spot: Option<SpotSettings>,
}

/// Settings of the predictive policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictiveSettings {
    /// Share of each class's jobs that should start within the (scaled) wait target:
    /// 0.95 sizes for the p95.
    pub quantile: f64,
    /// Multiplies each class's wait target when sizing (1 = the class's own target, 0 =
    /// `quantile` of the jobs should not wait at all).
    pub target_scale: f64,
    /// Length of the forecast window that starts after the provisioning lead time.
    pub window_ms: Millis,
    /// Half-life of the running means of run time, class mix and (without a forecast)
    /// arrival rate.
    pub half_life_ms: Millis,
}

impl Default for PredictiveSettings {
    fn default() -> Self {
        Self {
            quantile: 0.95,
            target_scale: 1.0,
            window_ms: 600_000,
            half_life_ms: 1_800_000,
        }
    }
}

/// The autoscaler as a user configures it; checked once by [`AutoscaleConfig::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscaleConfig {
    pub policy: ScalePolicy,
    /// How often the driver evaluates.
    pub interval_ms: Millis,
    /// Unix milliseconds at the driver's time 0, for the warm pool's time of day (0 when
    /// the driver's clock is Unix time).
    pub epoch_ms: Millis,
    /// One per pool of the scheduler configuration, in its order.
    pub pools: Vec<PoolScaling>,
    pub predictive: PredictiveSettings,
}

/// An autoscaler configuration the scheduler's pools and classes were checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedAutoscale {
    policy: ScalePolicy,
    interval_ms: Millis,
    epoch_ms: Millis,
    pools: Vec<PoolRules>,
    predictive: PredictiveSettings,
    /// (priority, wait target) per QoS class.
    classes: Vec<(i32, Millis)>,
    by_priority: bool,
}

/// One pool's checked rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRules {
    pub name: String,
    pub runners: u32,
    pub min_runners: u32,
    pub max_runners: u32,
    pub idle_timeout_ms: Millis,
    pub warm_pool: Vec<WarmWindow>,
    pub scale_to_zero: bool,
    pub provisioning_delay_ms: Millis,
    pub slots_per_runner: u32,
    pub cost_per_hour: f64,
    pub spot: Option<SpotRules>,
}

/// A checked spot pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotRules {
    pub interruption_rate_per_hour: f64,
    pub fallback: Option<PoolId>,
}

impl PoolRules {
    /// The warm pool's idle runners at `now` (driver time), with the epoch `epoch_ms`.
    pub fn warm_idle(&self, now: Millis, epoch_ms: Millis) -> u32 {
        let second = ((now.saturating_add(epoch_ms)).rem_euclid(MS_PER_DAY) / 1000) as u32;
        self.warm_pool
            .iter()
            .filter(|w| w.contains(second))
            .map(|w| w.idle)
            .max()
            .unwrap_or(0)
    }
}

impl CheckedAutoscale {
    pub fn policy(&self) -> ScalePolicy {
        self.policy
    }
    pub fn interval_ms(&self) -> Millis {
        self.interval_ms
    }
    pub fn epoch_ms(&self) -> Millis {
        self.epoch_ms
    }
    pub fn pools(&self) -> &[PoolRules] {
        &self.pools
    }
    pub fn predictive(&self) -> &PredictiveSettings {
        &self.predictive
    }
    /// Whether any pool has spot runners.
    pub fn has_spot(&self) -> bool {
        self.pools.iter().any(|p| p.spot.is_some())
    }
}

/// A bad autoscaler setting; every variant names the field.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AutoscaleError {
    #[error("{field}: min_runners {min} is above max_runners {max}")]
    MinAboveMax { field: String, min: u32, max: u32 },
    #[error("{field}: must be >= 0, got {value}")]
    Negative { field: String, value: f64 },
    #[error("{field}: no pool named {name:?}")]
    UnknownPool { field: String, name: String },
    #[error("{field}: a warm pool of {idle} idle runners is above max_runners {max}")]
    WarmAboveMax { field: String, idle: u32, max: u32 },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl AutoscaleError {
    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::MinAboveMax { field, .. }
            | Self::Negative { field, .. }
            | Self::UnknownPool { field, .. }
            | Self::WarmAboveMax { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }
}

fn invalid(field: String, reason: impl Into<String>) -> AutoscaleError {
    AutoscaleError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl AutoscaleConfig {
    /// Checks the settings against the scheduler's pools and classes.
    pub fn check(self, scheduler: &CheckedConfig) -> Result<CheckedAutoscale, AutoscaleError> {
        let specs = scheduler.pools();
        if self.interval_ms <= 0 {
            return Err(invalid(
                "autoscaler.interval_ms".into(),
                format!("must be positive, got {}", self.interval_ms),
            ));
        }
        let p = &self.predictive;
        if !(p.quantile.is_finite() && p.quantile > 0.0 && p.quantile < 1.0) {
            return Err(invalid(
                "autoscaler.quantile".into(),
                format!("must be in (0, 1), got {}", p.quantile),
            ));
        }
        if !(p.target_scale.is_finite() && p.target_scale >= 0.0) {
            return Err(AutoscaleError::Negative {
                field: "autoscaler.target_scale".into(),
                value: p.target_scale,
            });
        }
        if p.window_ms <= 0 || p.half_life_ms <= 0 {
            return Err(invalid(
                "autoscaler.window_ms / half_life_ms".into(),
                "must be positive",
            ));
        }
        if self.pools.len() != specs.len() {
            return Err(invalid(
                "autoscaler.pools".into(),
                format!(
                    "{} pool settings for {} pools",
                    self.pools.len(),
                    specs.len()
                ),
            ));
        }
        let mut pools = Vec::with_capacity(specs.len());
        for (i, (s, spec)) in self.pools.iter().zip(specs).enumerate() {
            pools.push(check_pool(i, s, spec, specs)?);
        }
        Ok(CheckedAutoscale {
            policy: self.policy,
            interval_ms: self.interval_ms,
            epoch_ms: self.epoch_ms,
            pools,
            predictive: self.predictive,
            classes: scheduler
                .qos()
                .iter()
                .map(|q| (q.priority, q.wait_target_ms))
                .collect(),
            by_priority: scheduler.policy().order() == QueueOrder::Qos,
        })
    }
}

fn check_pool(
    i: usize,
    s: &PoolScaling,
    spec: &PoolSpec,
    specs: &[PoolSpec],
) -> Result<PoolRules, AutoscaleError> {
    let at = |f: &str| format!("pool[{i}] ({}).{f}", spec.name);
    if s.min_runners > s.max_runners {
        return Err(AutoscaleError::MinAboveMax {
            field: at("min_runners"),
            min: s.min_runners,
            max: s.max_runners,
        });
    }
    if s.idle_timeout_ms < 0 {
        return Err(AutoscaleError::Negative {
            field: at("idle_timeout_ms"),
            value: s.idle_timeout_ms as f64,
        });
    }
    for (w_i, w) in s.warm_pool.iter().enumerate() {
        let field = at(&format!("warm_pool[{w_i}]"));
        if w.from_s >= 86_400 || w.to_s >= 86_400 {
            return Err(invalid(
                field,
                format!(
                    "from/to must be seconds of the day (< 86400), got {} and {}",
                    w.from_s, w.to_s
                ),
            ));
        }
        if w.idle > s.max_runners {
            return Err(AutoscaleError::WarmAboveMax {
                field,
                idle: w.idle,
                max: s.max_runners,
            });
        }
    }
    let spot = match &s.spot {
        None => None,
        Some(sp) => {
            let rate = sp.interruption_rate_per_hour;
            if !rate.is_finite() || rate < 0.0 {
                return Err(AutoscaleError::Negative {
                    field: at("spot.interruption_rate_per_hour"),
                    value: rate,
                });
            }
            let fallback = match &sp.fallback_pool {
                None => None,
                Some(name) => {
                    let field = at("spot.fallback_pool");
                    let Some(f) = specs.iter().position(|p| &p.name == name) else {
                        return Err(AutoscaleError::UnknownPool {
                            field,
                            name: name.clone(),
                        });
                    };
                    let fb = &specs[f];
                    if f == i {
                        return Err(invalid(field, "a pool cannot be its own fallback"));
                    }
                    if !fb.can_run(spec.labels, spec.slots_per_runner) {
                        return Err(invalid(
                            field,
                            format!(
                                "pool {name:?} cannot run every job of {:?} (it needs all \
                                 its labels and at least {} slots per runner)",
                                spec.name, spec.slots_per_runner
                            ),
                        ));
                    }
                    Some(PoolId(f as u16))
                }
            };
            Some(SpotRules {
                interruption_rate_per_hour: rate,
                fallback,
            })
        }
    };
    Ok(PoolRules {
        name: spec.name.clone(),
        runners: s.runners,
        min_runners: s.min_runners,
        max_runners: s.max_runners,
        idle_timeout_ms: s.idle_timeout_ms,
        warm_pool: s.warm_pool.clone(),
        scale_to_zero: s.scale_to_zero,
        provisioning_delay_ms: spec.provisioning_delay_ms,
        slots_per_runner: spec.slots_per_runner.max(1),
        cost_per_hour: spec.cost_per_hour,
        spot,
    })
}

/// What the driver should do with one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScaleDecision {
    pub pool: PoolId,
    /// Runners ready plus runners asked for and not ready yet.
    pub current: u32,
    pub desired: u32,
    /// Runners to ask for now.
    pub add: u32,
    /// Idle runners to release now: each has been idle for at least the idle timeout.
    pub release: Vec<RunnerId>,
    pub reason: String,
}

/// A value that decays with a half-life: recent observations count more.
#[derive(Debug, Clone, Copy, Default)]
struct Decayed {
    value: f64,
    at: Millis,
}

impl Decayed {
    fn value_at(&self, now: Millis, half_life_ms: f64) -> f64 {
        if now <= self.at {
            return self.value;
        }
        self.value * (-((now - self.at) as f64) / half_life_ms).exp2()
    }

    fn add(&mut self, now: Millis, amount: f64, half_life_ms: f64) {
        self.value = self.value_at(now, half_life_ms) + amount;
        self.at = self.at.max(now);
    }
}

/// What the autoscaler has learnt about one pool's jobs of one class.
#[derive(Debug, Clone, Copy, Default)]
struct ClassStats {
    /// Decayed count of submissions.
    jobs: Decayed,
    /// Decayed sum of estimated runner-milliseconds (run time x share of a runner).
    work_ms: Decayed,
}

#[derive(Debug, Clone, Default)]
struct PoolMemory {
    classes: Vec<ClassStats>,
    /// Last time the pool had work (a submission, a running or a waiting job).
    last_active: Option<Millis>,
    /// Decayed sums over evaluations of the demand seen (runners' worth of slots running
    /// or waiting) and of the load the estimates explain (recent arrivals x estimated
    /// run time): by Little's law they should match, and their ratio corrects the
    /// estimates (biased predictors, work that spills over from other pools).
    seen: Decayed,
    explained: Decayed,
    last_calibrated: Option<Millis>,
}

/// The calibration of estimated load by observed demand stays within these bounds.
const CALIBRATION: (f64, f64) = (0.2, 5.0);

/// The autoscaler: learns from submissions ([`Autoscaler::observe_submit`]) and decides
/// on each evaluation ([`Autoscaler::evaluate`]).
pub struct Autoscaler {
    config: CheckedAutoscale,
    forecast: Option<Box<dyn ArrivalForecast>>,
    memory: Vec<PoolMemory>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("policy", &self.config.policy)
            .field("forecast", &self.forecast.as_ref().map(|f| f.name()))
            .finish_non_exhaustive()
    }
}

impl Autoscaler {
    /// Without a forecast the predictive policy uses each pool's recent arrival rate.
    pub fn new(config: CheckedAutoscale, forecast: Option<Box<dyn ArrivalForecast>>) -> Self {
        let classes = config.classes.len();
        let memory = (0..config.pools.len())
            .map(|_| PoolMemory {
                classes: vec![ClassStats::default(); classes],
                ..PoolMemory::default()
            })
            .collect();
        Self {
            config,
            forecast,
            memory,
        }
    }

    pub fn config(&self) -> &CheckedAutoscale {
        &self.config
    }

    pub fn forecast_name(&self) -> Option<&str> {
        self.forecast.as_ref().map(|f| f.name())
    }

    /// `spec` was just submitted to `scheduler`: learns its pool (the first that can run
    /// it), class and run-time estimate. Jobs the scheduler refused are ignored.
    pub fn observe_submit(&mut self, scheduler: &Scheduler, spec: &JobSpec, now: Millis) {
        if let Some(estimate) = scheduler.estimate_of(spec.id) {
            self.observe_job(scheduler, spec, estimate.point_ms, now);
        }
    }

    /// `spec`, expected to run `run_ms`, arrived at `at`: learns its pool (the first that
    /// can run it), class and runner-time. For submissions ([`Self::observe_submit`]) and
    /// for a live service teaching a new autoscaler the jobs its store holds.
    pub fn observe_job(
        &mut self,
        scheduler: &Scheduler,
        spec: &JobSpec,
        run_ms: Millis,
        at: Millis,
    ) {
        let Some(pool) = scheduler
            .eligible_pools(spec.labels, spec.slots)
            .iter()
            .next()
        else {
            return;
        };
        let per = self
            .config
            .pools
            .get(pool.0 as usize)
            .map_or(1, |p| p.slots_per_runner);
        let work = run_ms as f64 * f64::from(spec.slots) / f64::from(per);
        self.observe(pool, spec.qos, work, at);
    }

    /// A job of class `qos` needing `work_ms` runner-milliseconds arrived for `pool`.
    pub fn observe(&mut self, pool: PoolId, qos: QosId, work_ms: f64, now: Millis) {
        let hl = self.config.predictive.half_life_ms as f64;
        if let Some(m) = self.memory.get_mut(pool.0 as usize) {
            if let Some(c) = m.classes.get_mut(qos.0 as usize) {
                c.jobs.add(now, 1.0, hl);
                c.work_ms.add(now, work_ms.max(0.0), hl);
            }
            m.last_active = Some(now);
        }
        if let Some(f) = self.forecast.as_mut() {
            f.observe(pool, now);
        }
    }

    /// One evaluation at `now`: a decision per pool. `provisioning[p]` is the number of
    /// runners of pool `p` asked for and not joined yet.
    pub fn evaluate(
        &mut self,
        now: Millis,
        scheduler: &Scheduler,
        provisioning: &[u32],
    ) -> Vec<ScaleDecision> {
        let loads = scheduler.pool_loads();
        let reactive = match self.config.policy {
            ScalePolicy::Reactive => scheduler.reactive_advice_for(&loads),
            _ => Vec::new(),
        };
        if self.config.policy == ScalePolicy::Predictive {
            self.calibrate(now, &loads);
        }
        let mut predictive = match self.config.policy {
            ScalePolicy::Predictive => self.predictive(now, &loads),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(loads.len());
        for load in &loads {
            let i = load.pool.0 as usize;
            let Some(rules) = self.config.pools.get(i) else {
                continue;
            };
            if load.running_slots > 0 || load.waiting_slots > 0 {
                if let Some(m) = self.memory.get_mut(i) {
                    m.last_active = Some(now);
                }
            }
            let in_flight = provisioning.get(i).copied().unwrap_or(0);
            let current = load.runners.saturating_add(in_flight);
            let mut reason = String::new();
            let wanted = match self.config.policy {
                ScalePolicy::Static => {
                    let _ = write!(reason, "static: {} runners", rules.runners);
                    out.push(decide(now, rules, load, current, rules.runners, reason));
                    continue;
                }
                ScalePolicy::Reactive => {
                    let advice = reactive.get(i);
                    let desired = advice.map_or(0, |a| a.desired);
                    reason.push_str(advice.map_or("reactive", |a| a.reason.as_str()));
                    desired
                }
                ScalePolicy::Predictive => match predictive.get_mut(i) {
                    Some((n, why)) => {
                        reason = std::mem::take(why);
                        *n
                    }
                    None => 0,
                },
            };
            let desired = self.floor_and_clamp(now, i, load, rules, wanted, &mut reason);
            out.push(decide(now, rules, load, current, desired, reason));
        }
        out
    }

    /// Adds the observed and the explained demand since the last evaluation (runner-ms)
    /// to each pool's sums.
    fn calibrate(&mut self, now: Millis, loads: &[PoolLoad]) {
        let hl = self.config.predictive.half_life_ms as f64;
        for load in loads {
            let i = load.pool.0 as usize;
            let per = self
                .config
                .pools
                .get(i)
                .map_or(1.0, |r| f64::from(r.slots_per_runner));
            let Some(m) = self.memory.get_mut(i) else {
                continue;
            };
            let dt = m.last_calibrated.map_or(0, |t| (now - t).max(0)) as f64;
            m.last_calibrated = Some(now);
            let work: f64 = m.classes.iter().map(|c| c.work_ms.value_at(now, hl)).sum();
            let explained = work * std::f64::consts::LN_2 / hl;
            let seen = (load.running_slots + load.waiting_slots) as f64 / per;
            m.seen.add(now, seen * dt, hl);
            m.explained.add(now, explained * dt, hl);
        }
    }

    /// Observed over explained demand of pool `i`; 1 until the estimates have explained
    /// at least a runner's worth of work for half a half-life.
    fn calibration(&self, now: Millis, i: usize) -> f64 {
        let hl = self.config.predictive.half_life_ms as f64;
        let Some(m) = self.memory.get(i) else {
            return 1.0;
        };
        let explained = m.explained.value_at(now, hl);
        if explained < hl / 2.0 {
            return 1.0;
        }
        (m.seen.value_at(now, hl) / explained).clamp(CALIBRATION.0, CALIBRATION.1)
    }

    /// Busy runners + warm pool, then `[min, max]`; the floor is zero for a pool that
    /// scales to zero and has had no work for its idle timeout.
    fn floor_and_clamp(
        &self,
        now: Millis,
        pool: usize,
        load: &PoolLoad,
        rules: &PoolRules,
        wanted: u32,
        reason: &mut String,
    ) -> u32 {
        let asleep = rules.scale_to_zero
            && self
                .memory
                .get(pool)
                .and_then(|m| m.last_active)
                .is_none_or(|t| now - t >= rules.idle_timeout_ms);
        let mut desired = wanted;
        let (min, warm) = if asleep {
            (0, 0)
        } else {
            (
                rules.min_runners,
                rules.warm_idle(now, self.config.epoch_ms),
            )
        };
        if warm > 0 {
            let with_warm = load.busy_runners.saturating_add(warm);
            if with_warm > desired {
                let _ = write!(
                    reason,
                    "; warm pool: {} busy + {warm} idle",
                    load.busy_runners
                );
                desired = with_warm;
            }
        }
        if asleep && rules.min_runners > 0 {
            reason.push_str("; scaled to zero (no work for the idle timeout)");
        }
        let clamped = desired.clamp(min, rules.max_runners);
        if clamped != desired {
            let _ = write!(reason, "; clamped to [{min}, {}]", rules.max_runners);
        }
        clamped
    }

    /// The predictive policy's runner count for every pool (before floor and clamp), and
    /// why. See `plan_runners` for the sizing; the observed queue then adds the slots
    /// of the jobs waiting now.
    fn predictive(&self, now: Millis, loads: &[PoolLoad]) -> Vec<(u32, String)> {
        let settings = &self.config.predictive;
        let hl = settings.half_life_ms as f64;
        let window = settings.window_ms;
        let mut models = Vec::with_capacity(loads.len());
        let mut rates = Vec::with_capacity(loads.len());
        for load in loads {
            let i = load.pool.0 as usize;
            let (Some(memory), Some(rules)) = (self.memory.get(i), self.config.pools.get(i)) else {
                models.push(PoolModel::default());
                rates.push(0.0);
                continue;
            };
            // Class mix and mean runner-time per job, from the recent submissions.
            let stats: Vec<(f64, f64)> = memory
                .classes
                .iter()
                .map(|c| (c.jobs.value_at(now, hl), c.work_ms.value_at(now, hl)))
                .collect();
            let jobs: f64 = stats.iter().map(|s| s.0).sum();
            let lead = rules.provisioning_delay_ms;
            // Jobs per millisecond expected after the lead time.
            let rate = match &self.forecast {
                Some(f) => {
                    f.expected_arrivals(load.pool, now + lead, window).max(0.0) / window as f64
                }
                // The steady state of a decayed count of a Poisson stream is
                // rate * half-life / ln 2.
                None => jobs * std::f64::consts::LN_2 / hl,
            };
            rates.push(rate);
            let calibration = self.calibration(now, i);
            let mut model = PoolModel {
                cap: rules.max_runners,
                price: rules.cost_per_hour,
                classes: Vec::with_capacity(stats.len()),
            };
            for (k, &(k_jobs, _)) in stats.iter().enumerate() {
                let Some(&(priority, target_ms)) = self.config.classes.get(k) else {
                    continue;
                };
                if !(jobs > 0.0 && rate > 0.0 && k_jobs > 0.0) {
                    model.classes.push(None);
                    continue;
                }
                // The load this class waits behind.
                let (mut n, mut work) = (0.0, 0.0);
                for (j, &(j_jobs, j_work)) in stats.iter().enumerate() {
                    let ahead = !self.config.by_priority
                        || self.config.classes.get(j).is_some_and(|c| c.0 >= priority);
                    if ahead {
                        n += j_jobs;
                        work += j_work;
                    }
                }
                let mean_ms = work / n.max(f64::MIN_POSITIVE) * calibration;
                model
                    .classes
                    .push((n > 0.0 && work > 0.0).then(|| ClassLoad {
                        arrivals: k_jobs,
                        load: rate * (n / jobs) * mean_ms,
                        mean_ms,
                        target_ms: target_ms as f64 * settings.target_scale,
                    }));
            }
            models.push(model);
        }
        let sizes = plan_runners(&models, 1.0 - settings.quantile);
        loads
            .iter()
            .zip(&models)
            .zip(sizes)
            .zip(rates)
            .map(|(((load, model), size), rate)| {
                let lead = self
                    .config
                    .pools
                    .get(load.pool.0 as usize)
                    .map_or(0, |r| r.provisioning_delay_ms);
                let per = self
                    .config
                    .pools
                    .get(load.pool.0 as usize)
                    .map_or(1, |r| u64::from(r.slots_per_runner));
                let offered = model
                    .classes
                    .iter()
                    .flatten()
                    .map(|c| c.load)
                    .fold(0.0, f64::max);
                let source = self
                    .forecast
                    .as_ref()
                    .map_or("recent arrivals", |f| f.name());
                let mut reason = format!(
                    "predictive: {:.1} jobs/h forecast ({source}) after the {} s lead, load \
                     {offered:.2} runners (estimates x{:.2} by observed demand); Erlang C \
                     sizing for the class targets at p{:.0} fleet-wide (x{}): {size}",
                    rate * 3_600_000.0,
                    lead / 1000,
                    self.calibration(now, load.pool.0 as usize),
                    settings.quantile * 100.0,
                    settings.target_scale,
                );
                // Correction by the observed queue: the Erlang size serves the arrivals to
                // come; jobs already waiting are demand that is late, and get runners of
                // their own (the runners asked for and not ready yet count as there).
                let backlog = load.waiting_slots.div_ceil(per);
                let backlog = u32::try_from(backlog).unwrap_or(u32::MAX);
                if backlog > 0 {
                    let _ = write!(
                        reason,
                        "; +{backlog} for {} waiting slots",
                        load.waiting_slots
                    );
                }
                // The Erlang size covers the busy runners in a steady state; before the
                // forecast has learnt anything it may not, and the backlog comes on top.
                (size.max(load.busy_runners).saturating_add(backlog), reason)
            })
            .collect()
    }
}

/// One class of jobs at one pool, as an M/M/c queue.
#[derive(Debug, Clone, Copy)]
struct ClassLoad {
    /// Recent arrivals of the class at the pool (decayed count): its weight among the
    /// class's jobs fleet-wide.
    arrivals: f64,
    /// The load the class waits behind (runners) and its mean service time.
    load: f64,
    mean_ms: f64,
    target_ms: f64,
}

impl ClassLoad {
    /// `P(wait > target)` with `c` servers, given Erlang B at `c`.
    fn exceeds(&self, c: u32, b: f64) -> f64 {
        let cf = f64::from(c);
        if cf <= self.load {
            return 1.0;
        }
        let pw = cf * b / (cf - self.load * (1.0 - b));
        pw * (-(cf - self.load) * self.target_ms / self.mean_ms).exp()
    }
}

/// A pool for `plan_runners`.
#[derive(Debug, Clone, Default)]
struct PoolModel {
    cap: u32,
    price: f64,
    /// By class; `None`: no recent jobs of the class here.
    classes: Vec<Option<ClassLoad>>,
}

/// A pool will not be sized below this share of its own jobs starting within their
/// class's target, whatever the other pools do.
const POOL_FLOOR_EXCEED: f64 = 0.9;

/// Erlang B at `c + 1` from Erlang B at `c`.
fn erlang_b_next(b: f64, load: f64, c: u32) -> f64 {
    load * b / (f64::from(c) + 1.0 + load * b)
}

/// Runners per pool so that, for every class, the share of its jobs fleet-wide expected to
/// wait longer than the class's target is at most `eps`, at the least cost: each pool
/// starts at the fewest runners that keep it stable and give at least half of its own
/// jobs their target; then, while a class misses, the runner that removes the most
/// missing share per unit of price is added. A cheap pool or one with many of a class's
/// jobs gets the margin first; a small, expensive pool is not held to the fleet-wide
/// quantile on its own (its few jobs barely move the class's p95).
fn plan_runners(pools: &[PoolModel], eps: f64) -> Vec<u32> {
    let classes = pools.iter().map(|p| p.classes.len()).max().unwrap_or(0);
    // Each class's arrivals over all pools.
    let mut total = vec![0.0; classes];
    for p in pools {
        for (k, c) in p.classes.iter().enumerate() {
            if let Some(c) = c {
                total[k] += c.arrivals;
            }
        }
    }
    // Per pool: runners and Erlang B per class at that many runners.
    let mut size = vec![0u32; pools.len()];
    let mut b: Vec<Vec<f64>> = pools.iter().map(|p| vec![1.0; p.classes.len()]).collect();
    for (i, p) in pools.iter().enumerate() {
        if p.classes.iter().all(Option::is_none) {
            continue;
        }
        let mut c = 0u32;
        loop {
            let ok =
                p.classes.iter().zip(&b[i]).all(|(q, &bq)| {
                    q.is_none_or(|q| c > 0 && q.exceeds(c, bq) <= POOL_FLOOR_EXCEED)
                });
            if ok || c >= p.cap {
                break;
            }
            for (q, bq) in p.classes.iter().zip(b[i].iter_mut()) {
                if let Some(q) = q {
                    *bq = erlang_b_next(*bq, q.load, c);
                }
            }
            c += 1;
        }
        size[i] = c;
    }
    let exceeds = |i: usize, k: usize, c: u32, bq: f64| -> f64 {
        match pools[i].classes[k] {
            Some(q) if total[k] > 0.0 => q.arrivals / total[k] * q.exceeds(c, bq),
            _ => 0.0,
        }
    };
    let mut missing: Vec<f64> = (0..classes)
        .map(|k| {
            (0..pools.len())
                .filter(|&i| k < pools[i].classes.len())
                .map(|i| exceeds(i, k, size[i], b[i][k]))
                .sum()
        })
        .collect();
    // Each step adds one runner; the bound only guards against a model that never meets
    // the targets (every pool at its cap ends the loop first).
    for _ in 0..100_000 {
        if missing.iter().all(|&m| m <= eps) {
            break;
        }
        let mut best: Option<(f64, usize)> = None;
        for (i, p) in pools.iter().enumerate() {
            if size[i] >= p.cap || p.classes.iter().all(Option::is_none) {
                continue;
            }
            let mut gain = 0.0;
            for (k, q) in p.classes.iter().enumerate() {
                let Some(q) = q else { continue };
                if missing[k] <= eps {
                    continue;
                }
                let next_b = erlang_b_next(b[i][k], q.load, size[i]);
                gain += exceeds(i, k, size[i], b[i][k]) - exceeds(i, k, size[i] + 1, next_b);
            }
            let score = gain / p.price.max(1e-9);
            if gain > 1e-12 && best.is_none_or(|(s, _)| score > s) {
                best = Some((score, i));
            }
        }
        let Some((_, i)) = best else { break };
        for (k, q) in pools[i].classes.iter().enumerate() {
            let Some(q) = q else { continue };
            let before = exceeds(i, k, size[i], b[i][k]);
            b[i][k] = erlang_b_next(b[i][k], q.load, size[i]);
            missing[k] += exceeds(i, k, size[i] + 1, b[i][k]) - before;
        }
        size[i] += 1;
    }
    size
}

/// Turns a desired count into what to add and which idle runners to release.
fn decide(
    now: Millis,
    rules: &PoolRules,
    load: &PoolLoad,
    current: u32,
    desired: u32,
    mut reason: String,
) -> ScaleDecision {
    let add = desired.saturating_sub(current);
    let surplus = current.saturating_sub(desired) as usize;
    let release: Vec<RunnerId> = load
        .idle
        .iter()
        .filter(|&&(_, since)| now - since >= rules.idle_timeout_ms)
        .take(surplus)
        .map(|&(r, _)| r)
        .collect();
    if !release.is_empty() {
        let _ = write!(
            reason,
            "; releasing {} runners idle >= {} s",
            release.len(),
            rules.idle_timeout_ms / 1000
        );
    }
    ScaleDecision {
        pool: load.pool,
        current,
        desired,
        add,
        release,
        reason,
    }
}

/// Erlang C: the probability that a job waits in an M/M/c queue with `servers` servers
/// and offered load `load` (arrival rate x mean service time, in servers). 1 when the
/// queue is unstable (`load >= servers`).
pub fn erlang_c(servers: u32, load: f64) -> f64 {
    if load <= 0.0 {
        return 0.0;
    }
    let c = f64::from(servers);
    if servers == 0 || load >= c {
        return 1.0;
    }
    // Erlang B by its recursion (stable for large c), then C from B.
    let mut b = 1.0;
    for k in 1..=servers {
        b = load * b / (f64::from(k) + load * b);
    }
    c * b / (c - load * (1.0 - b))
}

/// `P(wait > t_ms)` in an M/M/c queue: `C(c, A) * exp(-(c - A) * t / S)`.
pub fn wait_exceeds(servers: u32, load: f64, mean_service_ms: f64, t_ms: f64) -> f64 {
    let pw = erlang_c(servers, load);
    if pw >= 1.0 || mean_service_ms <= 0.0 {
        return pw;
    }
    pw * (-(f64::from(servers) - load) * t_ms.max(0.0) / mean_service_ms).exp()
}

/// The fewest servers (at most `cap`) with `P(wait > t_ms) <= eps`; `cap` when even that
/// many are not enough. One pass of the Erlang B recursion: O(result).
pub fn servers_for(load: f64, mean_service_ms: f64, t_ms: f64, eps: f64, cap: u32) -> u32 {
    if load.is_nan() || load <= 0.0 || !load.is_finite() {
        return 0;
    }
    let mut b = 1.0;
    for k in 1..=cap {
        b = load * b / (f64::from(k) + load * b);
        let c = f64::from(k);
        if c <= load {
            continue;
        }
        let pw = c * b / (c - load * (1.0 - b));
        let tail = if mean_service_ms > 0.0 {
            (-(c - load) * t_ms.max(0.0) / mean_service_ms).exp()
        } else {
            1.0
        };
        if pw * tail <= eps {
            return k;
        }
    }
    cap
}
