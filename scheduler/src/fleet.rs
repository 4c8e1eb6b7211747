//! Runners, their free slots, and the estimated end of every running job: what placement
//! and reservations are computed from.

use std::collections::{BTreeSet, HashMap};

use crate::domain::{JobId, Millis, PoolId, PoolMask, RunnerId};
use crate::hash::IdMap;

#[derive(Debug, Clone)]
pub(crate) struct RunnerState {
    pub pool: PoolId,
    pub slots: u32,
    pub free: u32,
    pub draining: bool,
    /// Jobs running here, in start order.
    pub running: Vec<JobId>,
    /// When the runner last became idle (joined, or its last job left); meaningful only
    /// while `running` is empty. Autoscalers release runners idle long enough.
    pub idle_since: Millis,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PoolState {
    /// Runners that can take work, by (free slots, id): best fit is a range query.
    pub free_index: BTreeSet<(u32, RunnerId)>,
    /// Running jobs of this pool by estimated end: reservations walk it in order.
    pub ends: BTreeSet<(Millis, JobId, RunnerId, u32)>,
    pub runners: u32,
    pub free_slots: u64,
}

/// Where and when a blocked job could start, by estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EarliestStart {
    pub runner: RunnerId,
    pub at: Millis,
    /// Slots of that runner still free at `at` once the job is placed there, capped at
    /// the runner's free slots now: a job that runs past `at` may use at most these.
    pub extra: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RunnerIndex {
    pub runners: IdMap<RunnerId, RunnerState>,
    pub pools: Vec<PoolState>,
    /// Free slots on runners that take work, over all pools.
    pub free_slots: u64,
    scratch: HashMap<RunnerId, u32>,
}

impl RunnerIndex {
    pub fn new(pools: usize) -> Self {
        Self {
            pools: vec![PoolState::default(); pools],
            ..Self::default()
        }
    }

    fn index_remove(&mut self, id: RunnerId) {
        let r = &self.runners[&id];
        if !r.draining && r.free > 0 {
            let pool = &mut self.pools[r.pool.0 as usize];
            pool.free_index.remove(&(r.free, id));
            pool.free_slots -= u64::from(r.free);
            self.free_slots -= u64::from(r.free);
        }
    }

    fn index_insert(&mut self, id: RunnerId) {
        let r = &self.runners[&id];
        if !r.draining && r.free > 0 {
            let pool = &mut self.pools[r.pool.0 as usize];
            pool.free_index.insert((r.free, id));
            pool.free_slots += u64::from(r.free);
            self.free_slots += u64::from(r.free);
        }
    }

    pub fn add_runner(&mut self, id: RunnerId, pool: PoolId, slots: u32, now: Millis) {
        self.runners.insert(
            id,
            RunnerState {
                pool,
                slots,
                free: slots,
                draining: false,
                running: Vec::new(),
                idle_since: now,
            },
        );
        self.pools[pool.0 as usize].runners += 1;
        self.index_insert(id);
    }

    /// Removes a runner; returns the jobs that were running on it.
    pub fn remove_runner(&mut self, id: RunnerId) -> Option<RunnerState> {
        if !self.runners.contains_key(&id) {
            return None;
        }
        self.index_remove(id);
        let r = self.runners.remove(&id)?;
        self.pools[r.pool.0 as usize].runners -= 1;
        Some(r)
    }

    pub fn set_draining(&mut self, id: RunnerId, draining: bool) -> bool {
        if !self.runners.contains_key(&id) {
            return false;
        }
        self.index_remove(id);
        if let Some(r) = self.runners.get_mut(&id) {
            r.draining = draining;
        }
        self.index_insert(id);
        true
    }

    pub fn occupy(&mut self, id: RunnerId, job: JobId, slots: u32, est_end: Millis) {
        self.index_remove(id);
        let pool = {
            let r = self
                .runners
                .get_mut(&id)
                .expect("occupy: runner checked by caller");
            r.free -= slots;
            r.running.push(job);
            r.pool
        };
        self.pools[pool.0 as usize]
            .ends
            .insert((est_end, job, id, slots));
        self.index_insert(id);
    }

    pub fn release(&mut self, id: RunnerId, job: JobId, slots: u32, est_end: Millis, now: Millis) {
        let Some(pool) = self.runners.get(&id).map(|r| r.pool) else {
            return;
        };
        self.pools[pool.0 as usize]
            .ends
            .remove(&(est_end, job, id, slots));
        self.index_remove(id);
        if let Some(r) = self.runners.get_mut(&id) {
            r.free += slots;
            r.running.retain(|&j| j != job);
            if r.running.is_empty() {
                r.idle_since = now;
            }
        }
        self.index_insert(id);
    }

    /// Moves a running job's estimated end (its estimate was corrected).
    pub fn move_end(&mut self, id: RunnerId, job: JobId, slots: u32, old: Millis, new: Millis) {
        if let Some(pool) = self.runners.get(&id).map(|r| r.pool) {
            let ends = &mut self.pools[pool.0 as usize].ends;
            ends.remove(&(old, job, id, slots));
            ends.insert((new, job, id, slots));
        }
    }

    /// Best fit in `pool`: the runner with the fewest free slots that still has `slots`,
    /// lowest id first; `accept` may refuse a candidate (a reservation holds it).
    pub fn best_fit(
        &self,
        pool: PoolId,
        slots: u32,
        mut accept: impl FnMut(RunnerId) -> bool,
    ) -> Option<RunnerId> {
        self.pools[pool.0 as usize]
            .free_index
            .range((slots, RunnerId(0))..)
            .map(|&(_, r)| r)
            .find(|&r| accept(r))
    }

    /// Largest free slot count of any runner in `pools` that takes work.
    pub fn max_free(&self, pools: PoolMask) -> u32 {
        pools
            .iter()
            .filter_map(|p| self.pools[p.0 as usize].free_index.last().map(|&(f, _)| f))
            .max()
            .unwrap_or(0)
    }

    /// The earliest time, by estimated ends of running jobs, at which some runner of
    /// `pools` has `slots` free; ties go to the lower pool id, then to the runner whose
    /// slots free up first. Running jobs past their estimate count as ending `now`.
    pub fn earliest_start(
        &mut self,
        pools: PoolMask,
        slots: u32,
        now: Millis,
    ) -> Option<EarliestStart> {
        let mut best: Option<EarliestStart> = None;
        for p in pools.iter() {
            let state = &self.pools[p.0 as usize];
            // A runner that fits now (possible only when the caller refused it).
            if let Some(&(free, r)) = state.free_index.range((slots, RunnerId(0))..).next() {
                let cand = EarliestStart {
                    runner: r,
                    at: now,
                    extra: free - slots,
                };
                if best.is_none_or(|b| cand.at < b.at) {
                    best = Some(cand);
                }
                continue;
            }
            self.scratch.clear();
            let mut found: Option<(RunnerId, Millis)> = None;
            for &(end, _job, runner, job_slots) in &state.ends {
                let at = end.max(now);
                if let Some((_, t)) = found {
                    if at > t {
                        break;
                    }
                }
                let Some(rs) = self.runners.get(&runner) else {
                    continue;
                };
                if rs.draining || rs.slots < slots {
                    continue;
                }
                let acc = self.scratch.entry(runner).or_insert(rs.free);
                *acc += job_slots;
                if found.is_none() && *acc >= slots {
                    found = Some((runner, at));
                }
            }
            if let Some((runner, at)) = found {
                let free_now = self.runners.get(&runner).map_or(0, |r| r.free);
                let at_shadow = self.scratch.get(&runner).copied().unwrap_or(0);
                let cand = EarliestStart {
                    runner,
                    at,
                    extra: (at_shadow - slots).min(free_now),
                };
                if best.is_none_or(|b| cand.at < b.at) {
                    best = Some(cand);
                }
            }
        }
        best
    }
}
