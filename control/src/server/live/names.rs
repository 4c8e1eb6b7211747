//! The core's ids for the names clients use: tenants and pools (added to the core as they
//! first appear), QoS classes and labels; and a stored job as the core's [`JobSpec`].

use std::collections::{BTreeMap, HashMap};

use rustci_scheduler::{
    HistoryKeys, JobId, JobSpec, LabelSet, PoolId, PoolSpec, QosId, QosSpec, Scheduler, TenantId,
    TenantSpec,
};

use super::error::LiveError;
use crate::store::{StoredJob, StoredRunner};

/// Tenant and pool names to the core's ids.
#[derive(Debug, Default)]
pub(super) struct Names {
    tenants: HashMap<String, TenantId>,
    pools: HashMap<String, PoolId>,
    /// Fair-share weights by tenant name ([`super::LiveConfig::tenant_weights`]); kept
    /// when the names are forgotten.
    weights: BTreeMap<String, f64>,
}

impl Names {
    pub(super) fn new(weights: BTreeMap<String, f64>) -> Self {
        Self {
            weights,
            ..Self::default()
        }
    }

    /// The fair-share weight `name` gets in the core: its configured one, else 1.
    pub(super) fn weight(&self, name: &str) -> f64 {
        self.weights.get(name).copied().unwrap_or(1.0)
    }

    /// Forgets every name (the core they named is replaced).
    pub(super) fn clear(&mut self) {
        self.tenants.clear();
        self.pools.clear();
    }

    pub(super) fn tenant(&self, name: &str) -> Option<TenantId> {
        self.tenants.get(name).copied()
    }

    /// The tenant's id, added to `core` (with its weight) the first time.
    pub(super) fn tenant_id(
        &mut self,
        core: &mut Scheduler,
        name: &str,
    ) -> Result<TenantId, LiveError> {
        if let Some(&t) = self.tenants.get(name) {
            return Ok(t);
        }
        let t = core.add_tenant(TenantSpec {
            name: name.to_string(),
            weight: self.weight(name),
        })?;
        self.tenants.insert(name.to_string(), t);
        Ok(t)
    }

    pub(super) fn pool(&self, name: &str) -> Option<PoolId> {
        self.pools.get(name).copied()
    }

    /// The pool of a runner, added to `core` the first time with the runner's labels and
    /// slots.
    pub(super) fn pool_id(
        &mut self,
        core: &mut Scheduler,
        runner: &StoredRunner,
    ) -> Result<PoolId, LiveError> {
        if let Some(&p) = self.pools.get(&runner.pool) {
            return Ok(p);
        }
        let mut bits = 0u64;
        for l in &runner.labels {
            bits |= 1u64 << core.add_label(l)?;
        }
        let p = core.add_pool(PoolSpec {
            name: runner.pool.clone(),
            labels: LabelSet(bits),
            slots_per_runner: runner.slots,
            cost_per_hour: 0.0,
            provisioning_delay_ms: 0,
        })?;
        self.pools.insert(runner.pool.clone(), p);
        Ok(p)
    }

    /// Every pool, by name.
    pub(super) fn pools_by_name(&self) -> Vec<(String, PoolId)> {
        let mut pools: Vec<(String, PoolId)> =
            self.pools.iter().map(|(n, &p)| (n.clone(), p)).collect();
        pools.sort();
        pools
    }

    /// The core's spec of `job`, or `None` while no pool knows all of its labels (its
    /// tenant is added to the core only once they are known).
    pub(super) fn spec(
        &mut self,
        core: &mut Scheduler,
        classes: &[QosSpec],
        job: &StoredJob,
    ) -> Result<Option<JobSpec>, LiveError> {
        let Some(labels) = known_labels(core, &job.labels) else {
            return Ok(None);
        };
        let tenant = self.tenant_id(core, &job.tenant)?;
        Ok(Some(core_spec(
            job,
            tenant,
            qos_index(classes, &job.qos),
            labels,
        )))
    }
}

/// The label set of `labels` if every label is known to some pool.
pub(super) fn known_labels(core: &Scheduler, labels: &[String]) -> Option<LabelSet> {
    LabelSet::from_names(core.config().labels(), labels).ok()
}

/// A QoS class's index; unknown names are the first class (checked at submit).
pub(super) fn qos_index(classes: &[QosSpec], name: &str) -> QosId {
    QosId(classes.iter().position(|q| q.name == name).unwrap_or(0) as u8)
}

/// The core's view of a stored job once its tenant, QoS class and labels are resolved.
pub(super) fn core_spec(
    job: &StoredJob,
    tenant: TenantId,
    qos: QosId,
    labels: LabelSet,
) -> JobSpec {
    JobSpec {
        id: JobId(job.id),
        tenant,
        qos,
        priority: job.priority,
        labels,
        slots: job.slots,
        requested_ms: job.requested_ms,
        submit_ms: job.submit_ms,
        history: HistoryKeys::of(
            job.job_name.as_deref().filter(|n| !n.is_empty()),
            job.branch.as_deref().filter(|b| !b.is_empty()),
        ),
    }
}
