//! The ETA projection (`Scheduler::project`): hand-worked schedules, and properties over
//! random fleets, queues and policies (starts never before `now`, no runner over
//! capacity at any instant, the same answer however it is asked).

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use rustci_scheduler::*;

const S: Millis = 1_000;

fn policy(order: QueueOrder, backfill: Backfill) -> PolicyConfig {
    PolicyConfig {
        order,
        backfill,
        ..PolicyConfig::default()
    }
}

fn new_sched(policy: PolicyConfig, pools: Vec<PoolSpec>, tenants: usize) -> Scheduler {
    Scheduler::new(
        config(policy, pools, tenants),
        Box::new(RequestedTime::default()),
    )
}

/// Submits each job at its submit time; returns the starts decided on the way.
fn submit(s: &mut Scheduler, jobs: &[JobSpec]) -> BTreeMap<u64, (Millis, RunnerId)> {
    let mut starts = BTreeMap::new();
    let mut out = Vec::new();
    for j in jobs {
        out.clear();
        s.handle(j.submit_ms, Event::Submit(j.clone()), &mut out)
            .expect("submit");
        for d in &out {
            if let Decision::Start { job, runner, .. } = *d {
                starts.insert(job.0, (j.submit_ms, runner));
            }
        }
    }
    starts
}

fn pending_starts(proj: &Projection) -> Vec<(u64, Option<Millis>)> {
    proj.pending.iter().map(|p| (p.job.0, p.start_ms)).collect()
}

/// Two runners with one slot each; jobs of 10, 20 and 30 s submitted at 0. The first
/// two start at once; the third goes to the runner that frees first, at 10 s.
#[test]
fn two_single_slot_runners_10_20_30_seconds() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut s, &[(0, 0), (1, 0)]);
    submit(
        &mut s,
        &[
            job(1, 0, 1, 10 * S),
            job(2, 0, 1, 20 * S),
            job(3, 0, 1, 30 * S),
        ],
    );
    let proj = s.project(0, 100);
    assert_eq!(proj.start_of(JobId(1)), Some(0));
    assert_eq!(proj.start_of(JobId(2)), Some(0));
    assert_eq!(proj.start_of(JobId(3)), Some(10 * S));
    assert_eq!(proj.get(JobId(3)).and_then(|p| p.runner), Some(RunnerId(0)));
    assert_eq!(proj.get(JobId(3)).and_then(|p| p.end_ms), Some(40 * S));
    assert!(!proj.truncated);
    // Running jobs: their real start; waiting ones: projected.
    assert_eq!(s.predicted_start(JobId(1), 0, usize::MAX), Some(0));
    assert_eq!(s.predicted_start(JobId(3), 0, usize::MAX), Some(10 * S));
    assert_eq!(
        s.estimate_of(JobId(3)),
        Some(Estimate {
            point_ms: 30 * S,
            upper_ms: 30 * S
        })
    );
    assert_eq!(s.estimate_of(JobId(99)), None);
    assert_eq!(s.predicted_start(JobId(99), 0, usize::MAX), None);
}

/// One slot busy until 100 s; waiting jobs of 10, 20 and 30 s follow one another. Under
/// shortest-estimate-first the projection takes them shortest first, as a pass would.
#[test]
fn waiting_jobs_follow_in_policy_order() {
    let running = job(1, 0, 1, 100 * S);
    let waiting = [
        job(2, 1, 1, 30 * S),
        job(3, 2, 1, 10 * S),
        job(4, 3, 1, 20 * S),
    ];

    let mut fifo = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut fifo, &[(0, 0)]);
    submit(&mut fifo, std::slice::from_ref(&running));
    submit(&mut fifo, &waiting);
    assert_eq!(
        pending_starts(&fifo.project(3, 100)),
        vec![(2, Some(100 * S)), (3, Some(130 * S)), (4, Some(140 * S))]
    );

    let mut sef = new_sched(
        policy(QueueOrder::ShortestEstimate, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut sef, &[(0, 0)]);
    submit(&mut sef, &[running]);
    submit(&mut sef, &waiting);
    assert_eq!(
        pending_starts(&sef.project(3, 100)),
        vec![(3, Some(100 * S)), (4, Some(110 * S)), (2, Some(130 * S))]
    );
}

/// Pools: `lin` (linux, one runner) and `gpu` (linux+gpu, no runner yet). A gpu job has
/// no start; a linux job (which `gpu` could also run) starts on `lin`. A job whose label
/// no pool has never waits at all: the core refuses it.
#[test]
fn a_job_no_runner_can_take_has_no_start() {
    for backfill in [Backfill::None, Backfill::Easy, Backfill::Greedy] {
        let mut s = new_sched(
            policy(QueueOrder::Fifo, backfill),
            vec![pool("lin", 0b01, 1), pool("gpu", 0b11, 1)],
            1,
        );
        join_all(&mut s, &[(0, 0)]);
        let mut busy = job(1, 0, 1, 50 * S);
        busy.labels = LabelSet(0b01);
        let mut gpu = job(2, 1, 1, 10 * S);
        gpu.labels = LabelSet(0b10);
        let mut lin = job(3, 2, 1, 10 * S);
        lin.labels = LabelSet(0b01);
        submit(&mut s, &[busy, gpu, lin]);
        let mut mac = job(4, 3, 1, 10 * S);
        mac.labels = LabelSet(0b100);
        let refused = s.handle(3, Event::Submit(mac), &mut Vec::new());
        assert!(
            matches!(refused, Err(CoreError::NoEligiblePool { .. })),
            "{refused:?}"
        );

        let proj = s.project(3, 100);
        assert_eq!(
            pending_starts(&proj),
            vec![(2, None), (3, Some(50 * S))],
            "{backfill:?}"
        );
        assert_eq!(s.predicted_start(JobId(2), 3, usize::MAX), None);
        assert_eq!(s.predicted_start(JobId(4), 3, usize::MAX), None);
    }
}

/// A draining runner takes no work: with only that runner, a waiting job has no start.
#[test]
fn a_draining_runner_takes_no_projected_work() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut s, &[(0, 0)]);
    submit(&mut s, &[job(1, 0, 1, 10 * S), job(2, 0, 1, 10 * S)]);
    assert_eq!(s.project(0, 10).start_of(JobId(2)), Some(10 * S));
    s.handle(
        1,
        Event::RunnerDraining {
            runner: RunnerId(0),
            draining: true,
        },
        &mut Vec::new(),
    )
    .expect("drain");
    let proj = s.project(1, 10);
    assert_eq!(proj.start_of(JobId(1)), Some(0), "it still runs");
    assert_eq!(proj.start_of(JobId(2)), None);
}

/// A running job past its estimate is taken to end now: the job behind it starts now
/// by the projection, not at the stale estimated end.
#[test]
fn a_job_behind_an_overdue_job_starts_now() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut s, &[(0, 0)]);
    submit(&mut s, &[job(1, 0, 1, 10 * S), job(2, 1, 1, 5 * S)]);
    let proj = s.project(25 * S, 10);
    assert_eq!(proj.start_of(JobId(1)), Some(0));
    assert_eq!(proj.get(JobId(1)).and_then(|p| p.end_ms), Some(25 * S));
    assert_eq!(proj.start_of(JobId(2)), Some(25 * S));
    assert_eq!(proj.get(JobId(2)).and_then(|p| p.end_ms), Some(30 * S));
    assert_eq!(
        s.predicted_start(JobId(2), 25 * S, usize::MAX),
        Some(25 * S)
    );
}

/// One runner with 4 slots, full: A (2 slots) until 100 s, B (2 slots) until 50 s.
/// C needs 3 slots: at 100 s, taking A's two and one of B's, so B's other slot stays
/// open from 50 s and D (1 slot, 40 s) fits before C's start, as EASY would run it.
#[test]
fn slots_freed_early_stay_open_for_later_jobs() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 4)],
        1,
    );
    join_all(&mut s, &[(0, 0)]);
    let started = submit(
        &mut s,
        &[
            job(1, 0, 2, 100 * S),
            job(2, 0, 2, 50 * S),
            job(3, 0, 3, 10 * S),
            job(4, 0, 1, 40 * S),
        ],
    );
    assert_eq!(started.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    let proj = s.project(0, 10);
    assert_eq!(
        pending_starts(&proj),
        vec![(3, Some(100 * S)), (4, Some(50 * S))]
    );
}

/// Strict FCFS: a blocked job closes its pool, so the small job behind it waits for it
/// even though a slot is free now.
#[test]
fn strict_fcfs_keeps_the_queue_order() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::None),
        vec![pool("m", 0, 2)],
        1,
    );
    join_all(&mut s, &[(0, 0)]);
    submit(
        &mut s,
        &[
            job(1, 0, 1, 100 * S),
            job(2, 0, 2, 10 * S),
            job(3, 0, 1, 5 * S),
        ],
    );
    assert_eq!(
        pending_starts(&s.project(0, 10)),
        vec![(2, Some(100 * S)), (3, Some(110 * S))]
    );
}

/// Fair share: a lane's score grows by the usage its projected jobs would charge, so
/// two tenants alternate. Tenant 0's first job runs (10 slot-seconds charged); tenant
/// 1 goes next, then they alternate (ties by queue order).
#[test]
fn fair_share_alternates_tenants_in_the_projection() {
    let mut s = new_sched(
        policy(QueueOrder::FairShare, Backfill::Easy),
        vec![pool("m", 0, 1)],
        2,
    );
    join_all(&mut s, &[(0, 0)]);
    let mut jobs = Vec::new();
    for (id, tenant) in [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)] {
        let mut j = job(id, 0, 1, 10 * S);
        j.tenant = TenantId(tenant);
        jobs.push(j);
    }
    submit(&mut s, &jobs);
    assert_eq!(
        pending_starts(&s.project(0, 10)),
        vec![
            (4, Some(10 * S)),
            (2, Some(20 * S)),
            (5, Some(30 * S)),
            (3, Some(40 * S))
        ]
    );
}

#[test]
fn a_limit_keeps_the_first_jobs_and_says_so() {
    let mut s = new_sched(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    join_all(&mut s, &[(0, 0)]);
    submit(
        &mut s,
        &(1..=5).map(|i| job(i, 0, 1, S)).collect::<Vec<_>>(),
    );
    let full = s.project(0, usize::MAX);
    let cut = s.project(0, 2);
    assert!(!full.truncated);
    assert!(cut.truncated);
    assert_eq!(cut.pending[..], full.pending[..2]);
    assert_eq!(cut.start_of(JobId(4)), None, "beyond the limit");
    assert_eq!(full.position(JobId(4)), Some(2));
    assert_eq!(s.predicted_start(JobId(4), 0, 2), None, "beyond the limit");
    assert_eq!(s.predicted_start(JobId(4), 0, 3), Some(3 * S));
}

/// A queue of 10,000 jobs on 200 runners: a projection must be cheap enough for one RPC.
#[test]
fn a_large_queue_is_projected_quickly() {
    let mut s = new_sched(
        policy(QueueOrder::FairShare, Backfill::Easy),
        vec![pool("small", 0, 2), pool("big", 0, 8)],
        3,
    );
    let runners: Vec<(u32, u16)> = (0..200).map(|i| (i, (i % 2) as u16)).collect();
    let jobs: Vec<JobSpec> = (0..11_000u64)
        .map(|i| {
            let mut j = job(
                i,
                0,
                1 + (i % 3) as u32,
                (1 + (i * 7919) % 600) as Millis * S,
            );
            j.tenant = TenantId((i % 3) as u32);
            j
        })
        .collect();
    // Queued before the runners join: one pass per join, not one per submission.
    submit(&mut s, &jobs);
    join_all(&mut s, &runners);
    assert!(s.pending_count() >= 10_000);
    let t = std::time::Instant::now();
    let proj = s.project(0, usize::MAX);
    let took = t.elapsed();
    assert_eq!(proj.pending.len(), s.pending_count());
    assert!(proj.pending.iter().all(|p| p.start_ms.is_some()));
    // Generous for a loaded machine; a quadratic projection takes far longer.
    eprintln!(
        "projection of {} waiting jobs on 200 runners: {took:?}",
        proj.pending.len()
    );
    assert!(took.as_millis() < 2_000, "projecting took {took:?}");
}

#[derive(Debug, Clone)]
struct Case {
    pools: Vec<(u64, u32, u32)>, // labels, slots per runner, runners
    jobs: Vec<(u64, u32, Millis, Millis, Millis, u32, i32)>, // labels, slots, submit, est, run, tenant, priority
    at: Millis,
    drain: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let pools = prop::collection::vec((0u64..8, 1u32..5, 0u32..4), 1..4);
    let jobs = prop::collection::vec(
        (
            0u64..8,
            1u32..5,
            0i64..200,
            1i64..60,
            0.0f64..2.0,
            0u32..3,
            0i32..3,
        ),
        1..40,
    );
    (pools, jobs, 0i64..260, any::<bool>()).prop_map(|(pools, jobs, at, drain)| Case {
        pools,
        jobs: jobs
            .into_iter()
            .map(|(l, s, sub, est, frac, t, p)| {
                (
                    l,
                    s,
                    sub,
                    est,
                    ((est as f64 * frac).round() as i64).max(1),
                    t,
                    p,
                )
            })
            .collect(),
        at,
        drain,
    })
}

/// The core at `c.at`, mid-run: some jobs finished, some running (some past their
/// estimate), some waiting; runner 0 draining if `c.drain`.
fn state_at(c: &Case, policy: PolicyConfig) -> (Scheduler, Vec<(u32, u16)>, Vec<JobSpec>) {
    let (pools, runners) = case_fleet(&c.pools);
    let jobs: Vec<(JobSpec, Millis)> = c
        .jobs
        .iter()
        .enumerate()
        .map(|(i, &(l, s, sub, est, run, t, p))| {
            let mut j = job(i as u64, sub, s, est);
            j.labels = LabelSet(l);
            j.tenant = TenantId(t);
            j.priority = p;
            j.qos = QosId((i % 2) as u8);
            (j, run)
        })
        .collect();
    let mut s = new_sched(policy, pools, 3);
    drive_until(&mut s, &runners, &jobs, c.at);
    if c.drain && !runners.is_empty() {
        s.handle(
            c.at,
            Event::RunnerDraining {
                runner: RunnerId(0),
                draining: true,
            },
            &mut Vec::new(),
        )
        .expect("drain");
    }
    (s, runners, jobs.into_iter().map(|(j, _)| j).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn projections_start_no_job_before_now_and_overfill_no_runner(
        c in case(),
        policy in all_policies(),
        later in 0i64..100,
    ) {
        let (s, runners, jobs) = state_at(&c, policy.clone());
        // Projecting later than the last event: running jobs may be past their estimates.
        let now = c.at + later;
        let proj = s.project(now, usize::MAX);
        prop_assert_eq!(proj.pending.len(), s.pending_count());
        prop_assert_eq!(proj.running.len(), s.running_count());
        prop_assert!(!proj.truncated);

        let spec_of: BTreeMap<u64, &JobSpec> = jobs.iter().map(|j| (j.id.0, j)).collect();
        let pool_of: BTreeMap<u32, u16> = runners.iter().copied().collect();
        let drained = c.drain.then_some(0u32);
        let takes_work = |p: u16| runners.iter().any(|&(r, q)| q == p && Some(r) != drained);
        // runner -> intervals [from, to) with slots, from `now` on
        let mut load: BTreeMap<u32, Vec<(Millis, Millis, u32)>> = BTreeMap::new();
        for r in &proj.running {
            let (Some(start), Some(end), Some(runner)) = (r.start_ms, r.end_ms, r.runner) else {
                return Err(TestCaseError::fail(format!("running job without a place: {r:?}")));
            };
            prop_assert!(start <= c.at);
            prop_assert!(end >= now);
            load.entry(runner.0).or_default().push((now, end, r.slots));
        }
        for p in &proj.pending {
            let spec = spec_of[&p.job.0];
            let eligible = s.eligible_pools(spec.labels, spec.slots);
            match (p.start_ms, p.end_ms, p.runner) {
                (Some(start), Some(end), Some(runner)) => {
                    prop_assert!(start >= now, "job {} at {} before now {}", p.job, start, now);
                    prop_assert_eq!(end, start + spec.requested_ms.unwrap_or(0));
                    prop_assert!(eligible.contains(PoolId(pool_of[&runner.0])));
                    prop_assert!(Some(runner.0) != drained, "projected on a draining runner");
                    load.entry(runner.0).or_default().push((start, end, p.slots));
                }
                (None, None, None) => {
                    // Only strict FCFS may leave a job that some runner could take
                    // without a start (behind a job that never starts).
                    if policy.backfill != Backfill::None {
                        prop_assert!(
                            !eligible.iter().any(|q| takes_work(q.0)),
                            "job {} has runners but no start", p.job
                        );
                    }
                }
                other => return Err(TestCaseError::fail(format!("half-placed job: {other:?}"))),
            }
        }
        for (runner, intervals) in &load {
            let slots = c.pools[pool_of[runner] as usize].1;
            for &(at, _, _) in intervals {
                let used: u32 = intervals
                    .iter()
                    .filter(|&&(from, to, _)| from <= at && at < to)
                    .map(|&(_, _, n)| n)
                    .sum();
                prop_assert!(used <= slots, "runner {} holds {} of {} slots at {}", runner, used, slots, at);
            }
        }

        // The same answer however it is asked: again, cut short, or one job at a time.
        prop_assert_eq!(&s.project(now, usize::MAX), &proj);
        let n = proj.pending.len() / 2;
        let cut = s.project(now, n);
        prop_assert_eq!(&cut.pending[..], &proj.pending[..n]);
        prop_assert_eq!(cut.truncated, n < proj.pending.len());
        for p in &proj.pending {
            prop_assert_eq!(s.predicted_start(p.job, now, usize::MAX), p.start_ms);
        }
        for r in &proj.running {
            prop_assert_eq!(s.predicted_start(r.job, now, usize::MAX), r.start_ms);
        }
    }
}
