//! A projection of the queue, for people (ETAs): when each waiting job should start if
//! every job ran exactly its point estimate.
//!
//! The projection is list scheduling. Waiting jobs are taken in the order a scheduling
//! pass visits them (each lane by its key; lanes merged by their score at `now`, and
//! under fair share a lane's score grows by the usage its projected jobs would charge,
//! as it does in a pass when jobs start). Each job goes where it can start earliest:
//! the runner of an eligible pool that first has enough slots free, given the estimated
//! ends of running jobs (clamped to `now`: a job past its estimate is taken to end now)
//! and the jobs placed before it. Ties go to the lower pool, then to the runner with
//! fewer slots free at that time, then to the lower runner id (the pass's best fit).
//! Under strict FCFS a job starts in a pool no earlier than any earlier job that may use
//! that pool, since a pass closes a blocked job's pools to the jobs behind it.
//!
//! Every slot of a runner is one "free from" time: a slot free from `t` is free for all
//! of `[t, ∞)`. A job takes, among the slots free at its start, those that became free
//! last, so that slots free earlier stay open for later, shorter jobs (what EASY
//! backfilling does with them). A later job is never put into a slot before a job
//! already placed on it, so the projection is one pass over the queue, never puts more
//! on a runner than it has, and never delays a job placed earlier (a conservative
//! reading of backfilling). Reservations, EASY++'s shortest-first order and estimate
//! corrections are not modelled: the projection is an estimate, not a promise.
//!
//! Cost: O(R log R) to set up (R runners), then per waiting job O(P · K · (log R + D))
//! for P eligible pools, K distinct slot counts asked for in a pool and D distinct "free
//! from" times on the chosen runner (at most its slots), plus O(log L) to merge L lanes.
//! With few slot sizes that is O(queue · log runners); `limit` bounds the queue walked.
//!
//! Pipelines: after the waiting jobs, the jobs of running pipelines that are not ready
//! yet are placed, each no earlier than the projected end of its needs, assuming every
//! job succeeds (`crate::pipeline::eta`); a pipeline's end is that of its last job.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde::Serialize;

use crate::config::{Backfill, QueueOrder};
use crate::domain::{JobId, Millis, PipelineId, PoolId, PoolMask, RunnerId};
use crate::hash::IdMap;
use crate::pipeline::eta::{self, Ask, Placed};
use crate::predictor::Estimate;
use crate::scheduler::{slot_seconds, OrdF64, Scheduler};

/// What the projection needs to know about one job the core holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobView {
    pub pools: PoolMask,
    pub slots: u32,
    pub estimate: Estimate,
    /// (runner, start, estimated end) while it runs.
    pub running: Option<(RunnerId, Millis, Millis)>,
}

/// One job in a [`Projection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProjectedJob {
    pub job: JobId,
    pub slots: u32,
    /// A running job's real start, a waiting job's projected one (`>= now`). `None` when
    /// no runner can take it as things stand: no runner that takes work is in any of its
    /// pools, or (strict FCFS) it waits behind such a job.
    pub start_ms: Option<Millis>,
    /// Start plus the point estimate; for a running job its estimated end, never before
    /// the projection's `now`.
    pub end_ms: Option<Millis>,
    pub runner: Option<RunnerId>,
}

/// A running pipeline's projected end in a [`Projection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProjectedPipeline {
    pub pipeline: PipelineId,
    /// The projected end of its last job; `None` when a job it waits for cannot be
    /// placed (no runner takes it, or it waits beyond the projection's `limit`).
    pub end_ms: Option<Millis>,
}

/// Where a job is in a [`Projection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Running,
    Pending,
    Later,
}

/// The projection at one instant (see the module docs). It is a snapshot: the core
/// is not changed by making it, and it is not updated when the core changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub now: Millis,
    /// Running jobs with their real starts, by pool and estimated end.
    pub running: Vec<ProjectedJob>,
    /// Waiting jobs in the order the projection took them (the policy's order).
    pub pending: Vec<ProjectedJob>,
    /// More jobs wait than the `limit` the projection was made with; those are not in it.
    pub truncated: bool,
    /// Jobs of running pipelines not ready yet that are expected to run, in the order
    /// the projection placed them (by when they become ready).
    pub later: Vec<ProjectedJob>,
    /// Every running pipeline's projected end, by pipeline id.
    pub pipelines: Vec<ProjectedPipeline>,
    /// job -> (part, index in that part's list).
    index: IdMap<JobId, (Part, usize)>,
}

impl Projection {
    pub fn get(&self, job: JobId) -> Option<&ProjectedJob> {
        match *self.index.get(&job)? {
            (Part::Running, i) => self.running.get(i),
            (Part::Pending, i) => self.pending.get(i),
            (Part::Later, i) => self.later.get(i),
        }
    }

    /// The projected end of a running pipeline (`None` if it is not running, or if the
    /// projection cannot place a job it waits for).
    pub fn pipeline_end(&self, pipeline: PipelineId) -> Option<Millis> {
        let i = self
            .pipelines
            .binary_search_by_key(&pipeline, |p| p.pipeline)
            .ok()?;
        self.pipelines[i].end_ms
    }

    /// The real (running) or projected (waiting) start of `job`; `None` if the projection
    /// cannot place it or does not cover it (unknown, finished, beyond the limit).
    pub fn start_of(&self, job: JobId) -> Option<Millis> {
        self.get(job).and_then(|p| p.start_ms)
    }

    /// Queue position of a waiting job in the projection's order (0 = next).
    pub fn position(&self, job: JobId) -> Option<usize> {
        match *self.index.get(&job)? {
            (Part::Pending, i) => Some(i),
            (Part::Running | Part::Later, _) => None,
        }
    }
}

impl Scheduler {
    /// The projection at `now` of the first `limit` waiting jobs in policy order (see
    /// the module docs for the model and its cost). Pure: it reads the core only.
    pub fn project(&self, now: Millis, limit: usize) -> Projection {
        projection(self, now, limit, None)
    }

    /// When `job` starts: its real start if it runs, its projected start if it waits
    /// (the projection stops at it, so the cost grows with its place in the queue);
    /// `None` if unknown, if no runner can take it as things stand, or if more than
    /// `limit` waiting jobs come before it (as in [`Scheduler::project`]).
    /// A job of a running pipeline that is not ready yet gets its projected start after
    /// its needs (the whole projection is made).
    pub fn predicted_start(&self, job: JobId, now: Millis, limit: usize) -> Option<Millis> {
        let Some(view) = self.job_view(job) else {
            return if self.pipelines().holds(job) {
                projection(self, now, limit, None).start_of(job)
            } else {
                None
            };
        };
        if let Some((_, start, _)) = view.running {
            return Some(start);
        }
        projection(self, now, limit, Some(job)).start_of(job)
    }

    /// The projected end of a running pipeline: its waiting jobs among the first `limit`
    /// of the queue, then its jobs not ready yet after their needs (see
    /// [`Scheduler::project`]). `None` if the pipeline is not running, or a job it waits for
    /// cannot be placed.
    pub fn pipeline_eta(&self, pipeline: PipelineId, now: Millis, limit: usize) -> Option<Millis> {
        if !self.pipelines().is_running(pipeline) {
            return None;
        }
        projection(self, now, limit, None).pipeline_end(pipeline)
    }
}

/// One runner's slots as ascending, run-length encoded "free from" times.
#[derive(Debug)]
struct Timeline {
    id: RunnerId,
    pool: PoolId,
    takes_work: bool,
    free: Vec<(Millis, u32)>,
}

impl Timeline {
    fn add(&mut self, at: Millis, n: u32) {
        if n == 0 {
            return;
        }
        match self.free.binary_search_by_key(&at, |&(t, _)| t) {
            Ok(i) => self.free[i].1 += n,
            Err(i) => self.free.insert(i, (at, n)),
        }
    }

    /// The earliest time `k` slots are free at once, and how many are free then.
    fn earliest(&self, k: u32) -> Option<(Millis, u32)> {
        let mut acc = 0u32;
        for &(t, n) in &self.free {
            acc += n;
            if acc >= k {
                return Some((t, acc));
            }
        }
        None
    }

    /// Puts `k` slots to work from `at` until `until`: of the slots free at `at`, those
    /// that became free last, so that earlier ones stay open for later jobs.
    fn take(&mut self, k: u32, at: Millis, until: Millis) {
        let mut end = self.free.partition_point(|&(t, _)| t <= at);
        let mut need = k;
        while need > 0 && end > 0 {
            end -= 1;
            let n = need.min(self.free[end].1);
            self.free[end].1 -= n;
            need -= n;
        }
        self.free.retain(|&(_, n)| n > 0);
        self.add(until, k - need);
    }
}

/// The runners' timelines and, per (pool, slots asked for), the runners of the pool by
/// the earliest time they have that many slots free.
struct SlotTimelines {
    timelines: Vec<Timeline>,
    position: IdMap<RunnerId, usize>,
    by_pool: Vec<Vec<usize>>,
    /// Slot counts with an index, per pool: a placement updates each of them.
    sizes: Vec<Vec<u32>>,
    index: BTreeMap<(PoolId, u32), BTreeSet<Candidate>>,
}

/// A runner as a place for `k` slots: (earliest start, slots free then, id). Ordered,
/// the first is the best: earliest, then the fullest (best fit), then the lowest id.
type Candidate = (Millis, u32, RunnerId);

impl SlotTimelines {
    /// The best runner of `pool` for `k` slots.
    fn best(&mut self, pool: PoolId, k: u32) -> Option<Candidate> {
        let members = self.by_pool.get(pool.0 as usize)?;
        let set = self.index.entry((pool, k)).or_insert_with(|| {
            if let Some(s) = self.sizes.get_mut(pool.0 as usize) {
                s.push(k);
            }
            members
                .iter()
                .filter_map(|&i| self.timelines.get(i))
                .filter(|tl| tl.takes_work)
                .filter_map(|tl| tl.earliest(k).map(|(t, a)| (t, a, tl.id)))
                .collect()
        });
        set.first().copied()
    }

    fn occupy(&mut self, runner: RunnerId, k: u32, at: Millis, until: Millis) {
        let Some(tl) = self
            .position
            .get(&runner)
            .and_then(|&i| self.timelines.get_mut(i))
        else {
            return;
        };
        let pool = tl.pool;
        let sizes = self.sizes.get(pool.0 as usize).map_or(&[][..], |s| &s[..]);
        for &size in sizes {
            if let (Some((t, a)), Some(set)) =
                (tl.earliest(size), self.index.get_mut(&(pool, size)))
            {
                set.remove(&(t, a, runner));
            }
        }
        tl.take(k, at, until);
        for &size in sizes {
            if let (Some((t, a)), Some(set)) =
                (tl.earliest(size), self.index.get_mut(&(pool, size)))
            {
                set.insert((t, a, runner));
            }
        }
    }
}

fn projection(sched: &Scheduler, now: Millis, limit: usize, stop_at: Option<JobId>) -> Projection {
    let core = sched.fleet();
    let mut proj = Projection {
        now,
        ..Projection::default()
    };

    // Timelines, in runner id order so that nothing depends on hash order.
    let mut ids: Vec<RunnerId> = core.runners.keys().copied().collect();
    ids.sort_unstable();
    let mut runners = SlotTimelines {
        timelines: Vec::with_capacity(ids.len()),
        position: IdMap::default(),
        by_pool: vec![Vec::new(); core.pools.len()],
        sizes: vec![Vec::new(); core.pools.len()],
        index: BTreeMap::new(),
    };
    for id in ids {
        let Some(r) = core.runners.get(&id) else {
            continue;
        };
        let i = runners.timelines.len();
        let mut tl = Timeline {
            id,
            pool: r.pool,
            takes_work: !r.draining,
            free: Vec::new(),
        };
        tl.add(now, r.free);
        runners.timelines.push(tl);
        runners.position.insert(id, i);
        if let Some(members) = runners.by_pool.get_mut(r.pool.0 as usize) {
            members.push(i);
        }
    }
    for pool in &core.pools {
        for &(est_end, job, runner, slots) in &pool.ends {
            let end = est_end.max(now);
            if let Some(tl) = runners
                .position
                .get(&runner)
                .and_then(|&i| runners.timelines.get_mut(i))
            {
                tl.add(end, slots);
            }
            let start = sched
                .job_view(job)
                .and_then(|v| v.running)
                .map_or(now, |(_, s, _)| s);
            proj.index.insert(job, (Part::Running, proj.running.len()));
            proj.running.push(ProjectedJob {
                job,
                slots,
                start_ms: Some(start),
                end_ms: Some(end),
                runner: Some(runner),
            });
        }
    }

    let config = sched.config();
    let strict = config.policy().backfill() == Backfill::None;
    let fair_share = config.policy().order() == QueueOrder::FairShare;
    // Strict FCFS: per pool, when it opens to later jobs. A pass closes every pool of a
    // job that cannot start until it does; `Millis::MAX`: closed for good, behind a job
    // that never starts. Other policies leave every pool open from `now`.
    let mut floors = vec![now; core.pools.len()];
    // Where a job of `pools` needing `slots` for `point_ms` starts, no earlier than
    // `not_before`; the job is put there.
    let mut locate = |ask: Ask| -> Option<Placed> {
        let mut best: Option<(Millis, RunnerId)> = None;
        for p in ask.pools.iter() {
            let floor = floors.get(p.0 as usize).copied().unwrap_or(now);
            if floor == Millis::MAX {
                continue;
            }
            if let Some((t, _, r)) = runners.best(p, ask.slots) {
                let t = t.max(floor).max(ask.not_before);
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, r));
                }
            }
        }
        let placed = best.map(|(start, runner)| {
            let end = start.saturating_add(ask.point_ms);
            runners.occupy(runner, ask.slots, start, end);
            (start, end, runner)
        });
        if strict {
            let closed_until = placed.map_or(Millis::MAX, |(start, _, _)| start);
            for p in ask.pools.iter() {
                if let Some(f) = floors.get_mut(p.0 as usize) {
                    *f = (*f).max(closed_until);
                }
            }
        }
        placed
    };
    let mut place = |proj: &mut Projection, job: JobId| -> Option<JobView> {
        let v = sched.job_view(job)?;
        let placed = locate(Ask {
            pools: v.pools,
            slots: v.slots,
            point_ms: v.estimate.point_ms,
            not_before: now,
        });
        proj.index.insert(job, (Part::Pending, proj.pending.len()));
        proj.pending.push(projected(job, v.slots, placed));
        Some(v)
    };
    let done = |proj: &Projection| {
        proj.pending.len() >= limit
            || stop_at.is_some_and(|s| proj.pending.last().is_some_and(|p| p.job == s))
    };

    let lanes = sched.lanes();
    if lanes.len() <= 1 {
        let mut queue = lanes.iter().flat_map(|l| l.values()).peekable();
        while let Some(&&job) = queue.peek() {
            if done(&proj) {
                break;
            }
            queue.next();
            place(&mut proj, job);
        }
        proj.truncated = queue.peek().is_some() && proj.pending.len() >= limit;
    } else {
        // Lanes merged by score as in a pass; a heap entry is (score, head key, lane).
        let weight = |lane: usize| config.tenants().get(lane).map_or(1.0, |t| t.weight);
        let mut charged = vec![0.0f64; lanes.len()];
        let mut cursors: Vec<_> = lanes.iter().map(|l| l.iter().peekable()).collect();
        let mut heap = BinaryHeap::new();
        for (lane, cur) in cursors.iter_mut().enumerate() {
            if let Some((k, _)) = cur.peek() {
                heap.push(Reverse((OrdF64(sched.lane_score(lane, k, now)), **k, lane)));
            }
        }
        while let Some(&Reverse((_, _, lane))) = heap.peek() {
            if done(&proj) {
                break;
            }
            heap.pop();
            let Some((_, &job)) = cursors.get_mut(lane).and_then(|c| c.next()) else {
                continue;
            };
            if let Some(v) = place(&mut proj, job) {
                if fair_share && proj.pending.last().is_some_and(|p| p.start_ms.is_some()) {
                    // A pass charges a job's expected usage when it starts.
                    charged[lane] += slot_seconds(v.slots, v.estimate.point_ms) / weight(lane);
                }
            }
            if let Some((k, _)) = cursors.get_mut(lane).and_then(|c| c.peek()) {
                let score = sched.lane_score(lane, k, now) + charged[lane];
                heap.push(Reverse((OrdF64(score), **k, lane)));
            }
        }
        proj.truncated = !heap.is_empty() && proj.pending.len() >= limit;
    }

    if stop_at.is_some_and(|job| proj.index.contains_key(&job)) {
        return proj;
    }
    let etas = eta::project(
        sched.pipelines(),
        now,
        |job| proj.get(job).and_then(|p| p.end_ms),
        locate,
    );
    for (job, slots, placed) in etas.later {
        proj.index.insert(job, (Part::Later, proj.later.len()));
        proj.later.push(projected(job, slots, placed));
    }
    proj.pipelines = etas
        .ends
        .into_iter()
        .map(|(pipeline, end_ms)| ProjectedPipeline { pipeline, end_ms })
        .collect();
    proj
}

fn projected(job: JobId, slots: u32, placed: Option<Placed>) -> ProjectedJob {
    ProjectedJob {
        job,
        slots,
        start_ms: placed.map(|p| p.0),
        end_ms: placed.map(|p| p.1),
        runner: placed.map(|p| p.2),
    }
}
