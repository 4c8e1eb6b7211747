//! Domain types the core schedules: jobs, pools, runners, tenants, QoS classes.
//!
//! Identifiers are small copyable integers handed out by the driver (the simulator or
//! the control plane); names live in [`crate::config::SchedulerConfig`].

use serde::{Deserialize, Serialize};

/// Milliseconds on the driver's clock. The core never reads a clock of its own.
pub type Millis = i64;

/// Milliseconds per second, for drivers whose inputs are in seconds.
pub const MS_PER_S: Millis = 1_000;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A job, unique for the lifetime of one scheduler.
    JobId(u64)
);
id_type!(
    /// A pipeline (a DAG of jobs), unique for the lifetime of one scheduler.
    PipelineId(u64)
);
id_type!(
    /// A runner (a machine or a CI agent); it belongs to one pool.
    RunnerId(u32)
);
id_type!(
    /// Index of a pool in the configuration.
    PoolId(u16)
);
id_type!(
    /// Index of a tenant in the configuration.
    TenantId(u32)
);
id_type!(
    /// Index of a QoS class in the configuration.
    QosId(u8)
);

/// A set of labels, one bit per label name registered in the configuration (at most 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LabelSet(pub u64);

impl LabelSet {
    pub const EMPTY: LabelSet = LabelSet(0);

    /// True when `self` has every label of `required`.
    pub fn covers(self, required: LabelSet) -> bool {
        self.0 & required.0 == required.0
    }

    /// Labels of `required` that `self` lacks.
    pub fn missing(self, required: LabelSet) -> LabelSet {
        LabelSet(required.0 & !self.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set of `labels`, where bit `i` stands for `names[i]`; the first label not in
    /// `names` is the error.
    pub fn from_names<'a, S: AsRef<str> + ?Sized + 'a>(
        names: &[String],
        labels: impl IntoIterator<Item = &'a S>,
    ) -> Result<LabelSet, &'a S> {
        let mut set = 0u64;
        for l in labels {
            match names.iter().position(|n| n == l.as_ref()) {
                Some(i) => set |= 1u64 << i,
                None => return Err(l),
            }
        }
        Ok(LabelSet(set))
    }
}

/// A set of pools, one bit per pool (at most 64 pools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PoolMask(pub u64);

impl PoolMask {
    pub fn contains(self, pool: PoolId) -> bool {
        self.0 & (1u64 << pool.0) != 0
    }
    pub fn intersects(self, other: PoolMask) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn insert(&mut self, pool: PoolId) {
        self.0 |= 1u64 << pool.0;
    }
    pub fn union(self, other: PoolMask) -> PoolMask {
        PoolMask(self.0 | other.0)
    }
    /// Pools in ascending id order.
    pub fn iter(self) -> impl Iterator<Item = PoolId> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            Some(PoolId(i as u16))
        })
    }
}

/// What a client asks for when it submits a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    pub tenant: TenantId,
    pub qos: QosId,
    /// Larger runs earlier under the priority policy.
    pub priority: i32,
    /// Labels a runner's pool must carry.
    pub labels: LabelSet,
    /// Slots (processors) the job occupies on one runner.
    pub slots: u32,
    /// The user's run-time estimate (SWF requested time, a CI timeout), if given.
    pub requested_ms: Option<Millis>,
    pub submit_ms: Millis,
    /// Which earlier jobs count as "the same job" for history-based predictors.
    #[serde(default)]
    pub history: HistoryKeys,
}

/// Stable hashes of a job's name (workflow/job or SWF application) and branch, so that
/// predictors can keep per-job history without the core holding strings. 0 = unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryKeys {
    pub name: u64,
    pub branch: u64,
}

impl HistoryKeys {
    pub fn of(name: Option<&str>, branch: Option<&str>) -> Self {
        Self {
            name: name.map_or(0, stable_hash),
            branch: branch.map_or(0, stable_hash),
        }
    }
}

/// FNV-1a: stable across runs and platforms (unlike `std`'s hasher), never 0 for a name.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// A pool of identical runners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub name: String,
    pub labels: LabelSet,
    /// Slots (processors) per runner.
    pub slots_per_runner: u32,
    pub cost_per_hour: f64,
    /// Time from asking for a runner to it being ready (used by autoscalers).
    pub provisioning_delay_ms: Millis,
}

impl PoolSpec {
    /// Whether a runner of this pool can ever run a job with these labels and slots.
    pub fn can_run(&self, labels: LabelSet, slots: u32) -> bool {
        self.labels.covers(labels) && self.slots_per_runner >= slots
    }
}

/// A tenant (user, team or project) with its fair-share weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSpec {
    pub name: String,
    pub weight: f64,
}

/// A QoS class: a priority and a wait target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QosSpec {
    pub name: String,
    /// Larger is more urgent.
    pub priority: i32,
    /// A job of this class should start within this long of its submission.
    pub wait_target_ms: Millis,
}
