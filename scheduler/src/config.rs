//! Scheduler and policy configuration. Parameters are checked once, by
//! [`SchedulerConfig::check`], into a [`CheckedConfig`] the scheduler trusts.

use serde::{Deserialize, Serialize};

use crate::domain::{LabelSet, Millis, PoolSpec, QosSpec, TenantSpec};
use crate::error::CoreError;

/// In what order waiting jobs are considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// First come, first served: by submit time, then submission order.
    Fifo,
    /// Higher job priority first, FIFO within a priority.
    Priority,
    /// Smallest run-time estimate first.
    ShortestEstimate,
    /// Tenant with the least decayed usage per unit of weight first (Slurm's fair-share
    /// factor idea); FIFO within a tenant.
    FairShare,
    /// QoS class priority plus aging: a job's score grows with its wait relative to its
    /// class's wait target, so a batch job is not starved forever. FIFO within a class.
    Qos,
    /// Pipeline jobs by critical path (the longest predicted path to the end of their
    /// pipeline first) under the rule [`PolicyConfig::critical_path`] sets across
    /// pipelines (see [`crate::pipeline`]); independent jobs by submit time, so without
    /// pipelines this is FIFO.
    CriticalPath,
}

/// What happens when the job in turn cannot start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backfill {
    /// Strict: the blocked job blocks every later job that could use any of its pools.
    None,
    #[default]
    /// EASY: the first blocked job of each group of pools gets a reservation on the
    /// runner where it can start earliest (by estimates); later jobs start now only if
    /// they do not delay it.
    Easy,
    /// No reservations: any later job that fits starts (CI runner controllers work this
    /// way; large jobs can starve).
    Greedy,
}

/// How critical-path order ([`QueueOrder::CriticalPath`], [`WithinLane::CriticalPath`])
/// ranks pipeline jobs (see [`crate::pipeline`], "Critical-path order"); under every rule
/// the jobs of a pipeline that became ready together go longest remaining path first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalPathKey {
    /// The latest start `created + critical path - rank`, but never later than the
    /// instant the job became ready (`critical-path`): a job behind its pipeline's
    /// schedule goes ahead by how late it is; a job with slack counts as FIFO counts it.
    /// Every key is at least its pipeline's creation, so a ready job is passed only by
    /// jobs of pipelines created before it became ready: no stream of newer pipelines
    /// passes it. Jobs with equal keys go by longest remaining path.
    #[default]
    CappedLatestStart,
    /// Older pipelines first (by creation, as FIFO orders jobs by arrival), the longest
    /// remaining path first inside a pipeline (`critical-path-oldest`): a ready job is
    /// passed only by jobs of older pipelines, but by all of their jobs still to come.
    OldestPipeline,
    /// The capped latest start, but never earlier than the ready time minus the
    /// pipeline's predicted critical path (`critical-path-bounded`): a pipeline claims at
    /// most one critical path of lateness, so a job is passed only by jobs that became
    /// ready less than one critical path (of theirs) after it.
    BoundedLatestStart,
    /// The latest start alone (`critical-path-latest-start`, the rule before aging): a
    /// job whose pipeline seems to have slack is passed by every newer pipeline whose
    /// jobs' latest starts come first, for as long as a peak lasts.
    LatestStart,
}

/// A policy as a user writes it. Checked into a [`Policy`] by [`SchedulerConfig::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub order: QueueOrder,
    pub backfill: Backfill,
    /// Half-life of the usage decay for fair share.
    pub fair_share_half_life_ms: Millis,
    /// Weight of waiting time (in multiples of the class's wait target) against class
    /// priority under the QoS order.
    pub qos_aging_weight: f64,
    /// In which order jobs behind the reservation are tried for backfilling.
    #[serde(default)]
    pub backfill_order: BackfillOrder,
    /// Order of jobs inside one fair-share tenant or one QoS class.
    #[serde(default)]
    pub within_lane: WithinLane,
    /// How critical-path order ranks jobs of different pipelines.
    #[serde(default)]
    pub critical_path: CriticalPathKey,
}

/// The order inside a lane (a tenant under fair share, a class under QoS): which of one
/// tenant's or class's jobs goes first once the policy has picked the tenant or class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithinLane {
    /// Submit order.
    #[default]
    Submit,
    /// Shortest predicted run time first: shortest-predicted-first within the bounds fair
    /// share and QoS set between tenants and classes.
    ShortestEstimate,
    /// Critical-path order ([`QueueOrder::CriticalPath`]) within the tenant or class.
    CriticalPath,
}

/// The order of backfill candidates under EASY (single-lane orders only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillOrder {
    /// Queue order (classic EASY).
    #[default]
    Queue,
    /// Shortest estimate first, queue order among equals (EASY++, Tsafrir et al. 2007).
    ShortestEstimate,
}

impl PolicyConfig {
    /// The named policies of the CLI: `fcfs` (strict FIFO), `easy` (FIFO + EASY),
    /// `easy++` (EASY with shortest-estimate-first backfilling), `priority`, `fairshare`,
    /// `sef` (shortest estimate first) and `qos`, `fairshare-spf` / `qos-spf`
    /// (shortest predicted first inside each tenant / class), `critical-path` (pipeline
    /// jobs by their latest start capped at their ready time, see [`CriticalPathKey`]),
    /// `critical-path-oldest`, `critical-path-bounded` and `critical-path-latest-start`
    /// (the other [`CriticalPathKey`] rules) and `fairshare-cp` / `qos-cp`
    /// (`critical-path` inside each tenant / class), all but `fcfs` with EASY
    /// backfilling.
    pub fn named(name: &str) -> Result<Self, CoreError> {
        let mut backfill_order = BackfillOrder::Queue;
        let mut within_lane = WithinLane::Submit;
        let mut critical_path = CriticalPathKey::default();
        let (order, backfill) = match name {
            "fcfs" => (QueueOrder::Fifo, Backfill::None),
            "easy" => (QueueOrder::Fifo, Backfill::Easy),
            "easy++" | "easy-plus-plus" => {
                backfill_order = BackfillOrder::ShortestEstimate;
                (QueueOrder::Fifo, Backfill::Easy)
            }
            "priority" => (QueueOrder::Priority, Backfill::Easy),
            "fairshare" | "fair-share" => (QueueOrder::FairShare, Backfill::Easy),
            "sef" | "shortest" => (QueueOrder::ShortestEstimate, Backfill::Easy),
            "qos" => (QueueOrder::Qos, Backfill::Easy),
            "fairshare-spf" => {
                within_lane = WithinLane::ShortestEstimate;
                (QueueOrder::FairShare, Backfill::Easy)
            }
            "qos-spf" => {
                within_lane = WithinLane::ShortestEstimate;
                (QueueOrder::Qos, Backfill::Easy)
            }
            "critical-path" | "cp" => (QueueOrder::CriticalPath, Backfill::Easy),
            "critical-path-oldest" => {
                critical_path = CriticalPathKey::OldestPipeline;
                (QueueOrder::CriticalPath, Backfill::Easy)
            }
            "critical-path-bounded" => {
                critical_path = CriticalPathKey::BoundedLatestStart;
                (QueueOrder::CriticalPath, Backfill::Easy)
            }
            "critical-path-latest-start" => {
                critical_path = CriticalPathKey::LatestStart;
                (QueueOrder::CriticalPath, Backfill::Easy)
            }
            "fairshare-cp" => {
                within_lane = WithinLane::CriticalPath;
                (QueueOrder::FairShare, Backfill::Easy)
            }
            "qos-cp" => {
                within_lane = WithinLane::CriticalPath;
                (QueueOrder::Qos, Backfill::Easy)
            }
            other => {
                return Err(CoreError::InvalidConfig {
                    field: "policy".into(),
                    reason: format!(
                        "unknown policy {other:?}; expected one of {}",
                        Self::NAMES.join(", ")
                    ),
                })
            }
        };
        Ok(Self {
            order,
            backfill,
            backfill_order,
            within_lane,
            critical_path,
            ..Self::default()
        })
    }

    pub const NAMES: [&'static str; 15] = [
        "fcfs",
        "easy",
        "easy++",
        "priority",
        "fairshare",
        "sef",
        "qos",
        "fairshare-spf",
        "qos-spf",
        "critical-path",
        "critical-path-oldest",
        "critical-path-bounded",
        "critical-path-latest-start",
        "fairshare-cp",
        "qos-cp",
    ];
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            order: QueueOrder::Fifo,
            backfill: Backfill::Easy,
            fair_share_half_life_ms: 7 * 24 * 3_600_000,
            qos_aging_weight: 1.0,
            backfill_order: BackfillOrder::Queue,
            within_lane: WithinLane::Submit,
            critical_path: CriticalPathKey::default(),
        }
    }
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) order: QueueOrder,
    pub(crate) backfill: Backfill,
    pub(crate) half_life_ms: f64,
    pub(crate) qos_aging_weight: f64,
    pub(crate) backfill_order: BackfillOrder,
    pub(crate) within_lane: WithinLane,
    pub(crate) critical_path: CriticalPathKey,
}

impl Policy {
    pub fn order(&self) -> QueueOrder {
        self.order
    }
    pub fn backfill(&self) -> Backfill {
        self.backfill
    }
}

/// Everything the scheduler needs to know up front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    pub policy: PolicyConfig,
    /// Label names; a [`LabelSet`] bit `i` means `labels[i]`.
    pub labels: Vec<String>,
    pub pools: Vec<PoolSpec>,
    pub tenants: Vec<TenantSpec>,
    pub qos: Vec<QosSpec>,
}

/// A configuration that passed [`SchedulerConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig {
    pub(crate) policy: Policy,
    pub(crate) labels: Vec<String>,
    pub(crate) pools: Vec<PoolSpec>,
    pub(crate) tenants: Vec<TenantSpec>,
    pub(crate) qos: Vec<QosSpec>,
}

impl CheckedConfig {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn pools(&self) -> &[PoolSpec] {
        &self.pools
    }
    pub fn tenants(&self) -> &[TenantSpec] {
        &self.tenants
    }
    pub fn qos(&self) -> &[QosSpec] {
        &self.qos
    }
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Names of the labels in `set`.
    pub fn label_names(&self, set: LabelSet) -> Vec<String> {
        self.labels
            .iter()
            .enumerate()
            .filter(|(i, _)| set.0 & (1u64 << i) != 0)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

impl SchedulerConfig {
    pub fn check(self) -> Result<CheckedConfig, CoreError> {
        let p = &self.policy;
        if p.fair_share_half_life_ms <= 0 {
            return Err(invalid(
                "policy.fair_share_half_life_ms",
                format!("must be positive, got {}", p.fair_share_half_life_ms),
            ));
        }
        if !(p.qos_aging_weight.is_finite() && p.qos_aging_weight >= 0.0) {
            return Err(invalid(
                "policy.qos_aging_weight",
                format!("must be finite and >= 0, got {}", p.qos_aging_weight),
            ));
        }
        if self.labels.len() > 64 {
            return Err(invalid(
                "labels",
                format!("at most 64 label names, got {}", self.labels.len()),
            ));
        }
        for (i, l) in self.labels.iter().enumerate() {
            if l.is_empty() {
                return Err(invalid(format!("labels[{i}]"), "empty label name"));
            }
            if self.labels[..i].contains(l) {
                return Err(invalid(
                    format!("labels[{i}]"),
                    format!("duplicate label {l:?}"),
                ));
            }
        }
        if self.pools.len() > 64 {
            return Err(invalid(
                "pools",
                format!("at most 64 pools, got {}", self.pools.len()),
            ));
        }
        let label_bits = if self.labels.len() == 64 {
            u64::MAX
        } else {
            (1u64 << self.labels.len()) - 1
        };
        for (i, pool) in self.pools.iter().enumerate() {
            let at = |f: &str| format!("pools[{i}] ({}).{f}", pool.name);
            if pool.name.is_empty() {
                return Err(invalid(format!("pools[{i}].name"), "empty pool name"));
            }
            if self.pools[..i].iter().any(|p| p.name == pool.name) {
                return Err(invalid(at("name"), "duplicate pool name"));
            }
            if pool.slots_per_runner == 0 {
                return Err(invalid(at("slots_per_runner"), "must be at least 1"));
            }
            if !(pool.cost_per_hour.is_finite() && pool.cost_per_hour >= 0.0) {
                return Err(invalid(
                    at("cost_per_hour"),
                    format!("must be finite and >= 0, got {}", pool.cost_per_hour),
                ));
            }
            if pool.provisioning_delay_ms < 0 {
                return Err(invalid(
                    at("provisioning_delay_ms"),
                    format!("must be >= 0, got {}", pool.provisioning_delay_ms),
                ));
            }
            if pool.labels.0 & !label_bits != 0 {
                return Err(invalid(at("labels"), "uses a label bit with no name"));
            }
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(invalid(
                    format!("tenants[{i}] ({}).weight", t.name),
                    format!("must be finite and > 0, got {}", t.weight),
                ));
            }
        }
        if self.qos.is_empty() {
            return Err(invalid("qos", "at least one QoS class is needed"));
        }
        if self.qos.len() > 255 {
            return Err(invalid("qos", "at most 255 QoS classes"));
        }
        for (i, q) in self.qos.iter().enumerate() {
            if q.wait_target_ms <= 0 {
                return Err(invalid(
                    format!("qos[{i}] ({}).wait_target_ms", q.name),
                    format!("must be positive, got {}", q.wait_target_ms),
                ));
            }
        }
        Ok(CheckedConfig {
            policy: Policy {
                order: p.order,
                backfill: p.backfill,
                half_life_ms: p.fair_share_half_life_ms as f64,
                qos_aging_weight: p.qos_aging_weight,
                backfill_order: p.backfill_order,
                within_lane: p.within_lane,
                critical_path: p.critical_path,
            },
            labels: self.labels,
            pools: self.pools,
            tenants: self.tenants,
            qos: self.qos,
        })
    }
}
