//! Queue statistics (`GetQueueStats`, the metrics endpoint): queued and running jobs per
//! pool, per pool and QoS class, and per tenant, and the waits of the jobs started in the
//! last hour.

use std::collections::{HashMap, VecDeque};

use rustci_scheduler::{Millis, PoolId, QosId, QosSpec, Scheduler, TenantId};

use super::jobs::JobTable;
use super::names::{known_labels, qos_index, Names};
use super::runners::Runners;
use crate::store::JobState;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitStats {
    pub queued: u64,
    pub running: u64,
    pub wait_p50_ms: Millis,
    pub wait_p95_ms: Millis,
    pub wait_p99_ms: Millis,
    pub started_last_hour: u64,
}

/// One QoS class's jobs in a pool, beside the class's wait target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub qos: String,
    pub wait_target_ms: Millis,
    pub stats: WaitStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub pool: String,
    pub runners: u32,
    /// Runners with at least one leased job.
    pub busy_runners: u32,
    pub free_slots: u64,
    pub stats: WaitStats,
    /// Every configured class, in the configuration's order (a class with no job in the
    /// pool has zeros).
    pub classes: Vec<ClassStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pools: Vec<PoolStats>,
    pub tenants: Vec<(String, WaitStats)>,
    pub revision: u64,
}

/// A job started in the last hour: (start, pool, tenant, QoS class, wait).
type RecentStart = (Millis, PoolId, TenantId, QosId, Millis);

/// At most this many recent starts are kept for the wait percentiles (about 32 MB); at
/// higher start rates the statistics cover the most recent ones within the hour.
const RECENT_STARTS: usize = 1_000_000;

/// The jobs started in the last hour, oldest first.
#[derive(Debug, Default)]
pub(super) struct RecentStarts(VecDeque<RecentStart>);

impl RecentStarts {
    /// Forgets every start (they name pools and tenants by the ids of a core being
    /// replaced).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn push(
        &mut self,
        start: Millis,
        pool: PoolId,
        tenant: TenantId,
        qos: QosId,
        wait: Millis,
    ) {
        self.0.push_back((start, pool, tenant, qos, wait));
    }

    /// Drops the starts older than an hour before `now`, and the oldest beyond
    /// [`RECENT_STARTS`].
    pub(super) fn trim(&mut self, now: Millis) {
        while self.0.front().is_some_and(|r| r.0 < now - 3_600_000) || self.0.len() > RECENT_STARTS
        {
            self.0.pop_front();
        }
    }
}

/// The statistics now: unfinished jobs from `jobs`, their pools from `runners` (leased)
/// or the pools that could run them (queued), their classes from `classes`, waits from
/// `recent`.
pub(super) fn queue_stats(
    core: &Scheduler,
    names: &Names,
    jobs: &JobTable,
    runners: &Runners,
    recent: &RecentStarts,
    classes: &[QosSpec],
) -> QueueStats {
    let pools = names.pools_by_name();
    // Keyed by (pool, class index); a pool's totals are the sums over its classes.
    let mut by_class: HashMap<(&str, usize), WaitStats> = HashMap::new();
    let mut by_tenant: HashMap<String, WaitStats> = HashMap::new();
    for j in jobs.unfinished() {
        let t = by_tenant.entry(j.tenant.clone()).or_default();
        let class = qos_index(classes, &j.qos).0 as usize;
        match j.state {
            JobState::Leased => {
                t.running += 1;
                if let Some(r) = j.runner.as_ref().and_then(|r| runners.stored(r)) {
                    if let Some((name, _)) = pools.iter().find(|(n, _)| *n == r.pool) {
                        by_class.entry((name.as_str(), class)).or_default().running += 1;
                    }
                }
            }
            _ => {
                t.queued += 1;
                let eligible = known_labels(core, &j.labels)
                    .map(|l| core.eligible_pools(l, j.slots))
                    .unwrap_or_default();
                for (name, p) in &pools {
                    if eligible.contains(*p) {
                        by_class.entry((name.as_str(), class)).or_default().queued += 1;
                    }
                }
            }
        }
    }
    // Busy runners as the autoscaler counts them, from the same fleet as `runners`.
    let loads = core.pool_loads();
    let config = core.config();
    let mut pool_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
    let mut class_waits: HashMap<(&str, usize), Vec<Millis>> = HashMap::new();
    let mut tenant_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
    for &(_, pool, tenant, qos, wait) in &recent.0 {
        if let Some(p) = config.pools().get(pool.0 as usize) {
            pool_waits.entry(p.name.as_str()).or_default().push(wait);
            class_waits
                .entry((p.name.as_str(), qos.0 as usize))
                .or_default()
                .push(wait);
        }
        if let Some(t) = config.tenants().get(tenant.0 as usize) {
            tenant_waits.entry(t.name.as_str()).or_default().push(wait);
        }
    }
    let fill = |s: &mut WaitStats, waits: Option<&Vec<Millis>>| {
        if let Some(w) = waits {
            let mut w = w.clone();
            w.sort_unstable();
            s.wait_p50_ms = nearest_rank(&w, 50.0);
            s.wait_p95_ms = nearest_rank(&w, 95.0);
            s.wait_p99_ms = nearest_rank(&w, 99.0);
            s.started_last_hour = w.len() as u64;
        }
    };
    let mut out = QueueStats {
        revision: jobs.revision(),
        ..QueueStats::default()
    };
    for (name, p) in &pools {
        let mut total = WaitStats::default();
        let classes: Vec<ClassStats> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut w = by_class.remove(&(name.as_str(), i)).unwrap_or_default();
                total.queued += w.queued;
                total.running += w.running;
                fill(&mut w, class_waits.get(&(name.as_str(), i)));
                ClassStats {
                    qos: c.name.clone(),
                    wait_target_ms: c.wait_target_ms,
                    stats: w,
                }
            })
            .collect();
        fill(&mut total, pool_waits.get(name.as_str()));
        let (free_slots, registered) = core.pool_capacity(*p);
        out.pools.push(PoolStats {
            pool: name.clone(),
            runners: registered,
            busy_runners: loads.get(p.0 as usize).map_or(0, |l| l.busy_runners),
            free_slots,
            stats: total,
            classes,
        });
    }
    for tenant in tenant_waits.keys() {
        by_tenant.entry((*tenant).to_string()).or_default();
    }
    let mut tenants: Vec<(String, WaitStats)> = by_tenant.into_iter().collect();
    tenants.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, w) in &mut tenants {
        fill(w, tenant_waits.get(name.as_str()));
    }
    out.tenants = tenants;
    out
}

fn nearest_rank(sorted: &[Millis], p: f64) -> Millis {
    rustci_scheduler::stats::nearest_rank(sorted, p).unwrap_or(0)
}
