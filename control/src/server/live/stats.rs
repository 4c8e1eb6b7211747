//! Queue statistics (`GetQueueStats`, the metrics endpoint): queued and running jobs per
//! pool and tenant, and the waits of the jobs started in the last hour.

use std::collections::{HashMap, VecDeque};

use rustci_scheduler::{Millis, PoolId, Scheduler, TenantId};

use super::jobs::JobTable;
use super::names::{known_labels, Names};
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// (pool, runners, free slots, stats)
    pub pools: Vec<(String, u32, u64, WaitStats)>,
    pub tenants: Vec<(String, WaitStats)>,
    pub revision: u64,
}

/// A job started in the last hour: (start, pool, tenant, wait).
type RecentStart = (Millis, PoolId, TenantId, Millis);

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

    pub(super) fn push(&mut self, start: Millis, pool: PoolId, tenant: TenantId, wait: Millis) {
        self.0.push_back((start, pool, tenant, wait));
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
/// or the pools that could run them (queued), waits from `recent`.
pub(super) fn queue_stats(
    core: &Scheduler,
    names: &Names,
    jobs: &JobTable,
    runners: &Runners,
    recent: &RecentStarts,
) -> QueueStats {
    let pools = names.pools_by_name();
    let mut by_pool: HashMap<String, WaitStats> = HashMap::new();
    let mut by_tenant: HashMap<String, WaitStats> = HashMap::new();
    for j in jobs.unfinished() {
        let t = by_tenant.entry(j.tenant.clone()).or_default();
        match j.state {
            JobState::Leased => {
                t.running += 1;
                if let Some(r) = j.runner.as_ref().and_then(|r| runners.stored(r)) {
                    by_pool.entry(r.pool.clone()).or_default().running += 1;
                }
            }
            _ => {
                t.queued += 1;
                let eligible = known_labels(core, &j.labels)
                    .map(|l| core.eligible_pools(l, j.slots))
                    .unwrap_or_default();
                for (name, p) in &pools {
                    if eligible.contains(*p) {
                        by_pool.entry(name.clone()).or_default().queued += 1;
                    }
                }
            }
        }
    }
    let config = core.config();
    let mut pool_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
    let mut tenant_waits: HashMap<&str, Vec<Millis>> = HashMap::new();
    for &(_, pool, tenant, wait) in &recent.0 {
        if let Some(p) = config.pools().get(pool.0 as usize) {
            pool_waits.entry(p.name.as_str()).or_default().push(wait);
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
        let mut w = by_pool.remove(name).unwrap_or_default();
        fill(&mut w, pool_waits.get(name.as_str()));
        let (free, runners) = core.pool_capacity(*p);
        out.pools.push((name.clone(), runners, free, w));
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
