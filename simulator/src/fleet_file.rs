//! The fleet file (TOML): pools of runners, QoS classes, tenant weights.
//!
//! ```toml
//! [[pool]]
//! name = "linux"             # unique
//! labels = ["linux", "docker"]
//! runners = 40               # >= 1
//! slots = 1                  # slots (processors) per runner, >= 1
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

use std::path::Path;

use rustci_scheduler::{LabelSet, PoolSpec, QosSpec, MS_PER_S};
use serde::Deserialize;
use thiserror::Error;

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
}

fn one() -> u32 {
    1
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
pub struct Fleet {
    #[serde(rename = "pool")]
    pub pools: Vec<PoolEntry>,
    #[serde(default, rename = "qos")]
    pub qos: Vec<QosEntry>,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantEntry>,
}

impl Fleet {
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
        let mut fleet: Fleet = toml::from_str(text).map_err(|source| FleetError::Toml {
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
            }],
            qos: default_qos(),
            tenants: Vec::new(),
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
        Ok(())
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
