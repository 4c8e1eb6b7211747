//! A tiny event-driven driver for core tests: runs jobs with known run times and
//! checks every decision against the fleet it built.
#![allow(dead_code)]

pub mod pipes;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use proptest::prelude::*;
use rustci_scheduler::*;

pub fn pool(name: &str, labels: u64, slots: u32) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        labels: LabelSet(labels),
        slots_per_runner: slots,
        cost_per_hour: 1.0,
        provisioning_delay_ms: 0,
    }
}

pub fn config(policy: PolicyConfig, pools: Vec<PoolSpec>, tenants: usize) -> CheckedConfig {
    SchedulerConfig {
        policy,
        labels: vec!["linux".into(), "gpu".into(), "macos".into()],
        pools,
        tenants: (0..tenants)
            .map(|i| TenantSpec {
                name: format!("t{i}"),
                weight: 1.0,
            })
            .collect(),
        qos: vec![
            QosSpec {
                name: "urgent".into(),
                priority: 10,
                wait_target_ms: 60_000,
            },
            QosSpec {
                name: "batch".into(),
                priority: 0,
                wait_target_ms: 100_000,
            },
        ],
    }
    .check()
    .expect("valid test config")
}

pub fn job(id: u64, submit_ms: Millis, slots: u32, est_ms: Millis) -> JobSpec {
    JobSpec {
        id: JobId(id),
        tenant: TenantId(0),
        qos: QosId(0),
        priority: 0,
        labels: LabelSet::EMPTY,
        slots,
        requested_ms: Some(est_ms),
        submit_ms,
        history: Default::default(),
    }
}

/// One finished run of the driver.
#[derive(Debug, Default)]
pub struct Run {
    /// job -> (start, runner)
    pub starts: BTreeMap<u64, (Millis, RunnerId)>,
    pub finished: Vec<u64>,
    pub refused: Vec<u64>,
    /// job -> earliest reservation time ever reported by `explain`.
    pub reserved_at: BTreeMap<u64, Millis>,
}

/// Joins `runners` (id, pool) at t=0; returns each runner's free slots (all of them).
pub fn join_all(sched: &mut Scheduler, runners: &[(u32, u16)]) -> BTreeMap<u32, u32> {
    let mut out = Vec::new();
    for &(r, p) in runners {
        sched
            .handle(
                0,
                Event::RunnerJoined {
                    runner: RunnerId(r),
                    pool: PoolId(p),
                },
                &mut out,
            )
            .expect("join");
    }
    let pools = sched.config().pools();
    runners
        .iter()
        .map(|&(r, p)| (r, pools[p as usize].slots_per_runner))
        .collect()
}

/// The pools (named `p0`, `p1`, ...) and runners (id, pool) of a generated case's
/// `(labels, slots per runner, runners)` per pool.
pub fn case_fleet(pools: &[(u64, u32, u32)]) -> (Vec<PoolSpec>, Vec<(u32, u16)>) {
    let specs = pools
        .iter()
        .enumerate()
        .map(|(i, &(l, s, _))| pool(&format!("p{i}"), l, s))
        .collect();
    let mut runners = Vec::new();
    for (i, &(_, _, n)) in pools.iter().enumerate() {
        for _ in 0..n {
            runners.push((runners.len() as u32, i as u16));
        }
    }
    (specs, runners)
}

/// Runs `jobs` (with real run times) on `runners` (id, pool) joined at t=0. Panics on any
/// broken invariant: over capacity, double start, wrong labels.
pub fn drive(
    sched: &mut Scheduler,
    runners: &[(u32, u16)],
    jobs: &[(JobSpec, Millis)],
    watch_reservations: bool,
) -> Run {
    let pools: Vec<PoolSpec> = sched.config().pools().to_vec();
    let mut free = join_all(sched, runners);
    let runner_pool: BTreeMap<u32, u16> = runners.iter().copied().collect();
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].0.submit_ms, i));
    let mut finishes: BinaryHeap<Reverse<(Millis, u64)>> = BinaryHeap::new();
    let mut run = Run::default();
    let by_id: BTreeMap<u64, &(JobSpec, Millis)> = jobs.iter().map(|j| (j.0.id.0, j)).collect();
    let mut next = 0;
    loop {
        let sub = order.get(next).map(|&i| jobs[i].0.submit_ms);
        let fin = finishes.peek().map(|Reverse((t, _))| *t);
        let (now, event) = match (sub, fin) {
            (None, None) => break,
            // Finishes before submissions at equal times: this driver does not model
            // pyss's order; it only checks invariants.
            (Some(s), Some(f)) if f <= s => {
                let Reverse((t, id)) = finishes.pop().expect("peeked");
                (t, Event::Finish { job: JobId(id) })
            }
            (_, Some(_)) if sub.is_none() => {
                let Reverse((t, id)) = finishes.pop().expect("peeked");
                (t, Event::Finish { job: JobId(id) })
            }
            _ => {
                let (spec, _) = &jobs[order[next]];
                next += 1;
                (spec.submit_ms, Event::Submit(spec.clone()))
            }
        };
        if let Event::Finish { job } = &event {
            let (_, r) = run.starts[&job.0];
            *free.get_mut(&r.0).expect("runner") += by_id[&job.0].0.slots;
            run.finished.push(job.0);
        }
        out.clear();
        let submitted = match &event {
            Event::Submit(s) => Some(s.id.0),
            _ => None,
        };
        match sched.handle(now, event, &mut out) {
            Ok(()) => {}
            Err(CoreError::NoEligiblePool { job, .. }) => {
                run.refused.push(job.0);
                continue;
            }
            Err(e) => panic!("core error at {now}: {e} (submitted {submitted:?})"),
        }
        for d in &out {
            let Decision::Start { job, runner, .. } = *d else {
                panic!("unexpected {d:?}")
            };
            let (spec, run_ms) = by_id[&job.0];
            assert!(
                run.starts.insert(job.0, (now, runner)).is_none(),
                "job {job} started twice"
            );
            assert!(now >= spec.submit_ms, "job {job} started before submission");
            let f = free.get_mut(&runner.0).expect("known runner");
            assert!(
                *f >= spec.slots,
                "runner {runner} over capacity with job {job}"
            );
            *f -= spec.slots;
            let p = &pools[runner_pool[&runner.0] as usize];
            assert!(
                p.labels.covers(spec.labels),
                "job {job} on pool {} without its labels",
                p.name
            );
            finishes.push(Reverse((now + run_ms, job.0)));
        }
        if watch_reservations {
            let pending: Vec<u64> = by_id
                .keys()
                .copied()
                .filter(|id| !run.starts.contains_key(id) && !run.refused.contains(id))
                .collect();
            for id in pending {
                if let Ok(JobStatus::Pending {
                    reason: WaitReason::Reserved { at, .. },
                    ..
                }) = sched.explain(JobId(id), now)
                {
                    let e = run.reserved_at.entry(id).or_insert(at);
                    *e = (*e).min(at);
                }
            }
        }
    }
    run
}

/// A driver stopped mid-run (for looking at the core's state at an instant): the jobs
/// started so far, as job -> (start, runner).
#[derive(Debug, Default)]
pub struct Partial {
    pub starts: BTreeMap<u64, (Millis, RunnerId)>,
    pub finished: Vec<u64>,
}

/// Like [`drive`], but handles only the events at or before `until` (runners join at
/// 0; at equal times finishes come before submissions), and checks capacity as it goes.
/// Jobs the core refuses are skipped.
pub fn drive_until(
    sched: &mut Scheduler,
    runners: &[(u32, u16)],
    jobs: &[(JobSpec, Millis)],
    until: Millis,
) -> Partial {
    let mut free = join_all(sched, runners);
    let mut out = Vec::new();
    let by_id: BTreeMap<u64, &(JobSpec, Millis)> = jobs.iter().map(|j| (j.0.id.0, j)).collect();
    // (time, 0 = finish / 1 = submit, job id)
    let mut events: BinaryHeap<Reverse<(Millis, u8, u64)>> = jobs
        .iter()
        .map(|(s, _)| Reverse((s.submit_ms, 1, s.id.0)))
        .collect();
    let mut part = Partial::default();
    while let Some(Reverse((now, kind, id))) = events.pop() {
        if now > until {
            break;
        }
        let spec = &by_id[&id].0;
        let event = if kind == 0 {
            let (_, r) = part.starts[&id];
            *free.get_mut(&r.0).expect("runner") += spec.slots;
            part.finished.push(id);
            Event::Finish { job: JobId(id) }
        } else {
            Event::Submit(spec.clone())
        };
        out.clear();
        match sched.handle(now, event, &mut out) {
            Ok(()) => {}
            Err(CoreError::NoEligiblePool { .. }) => continue,
            Err(e) => panic!("core error at {now}: {e}"),
        }
        for d in &out {
            let Decision::Start { job, runner, .. } = *d else {
                panic!("unexpected {d:?}")
            };
            let (spec, run_ms) = by_id[&job.0];
            assert!(part.starts.insert(job.0, (now, runner)).is_none());
            let f = free.get_mut(&runner.0).expect("known runner");
            assert!(*f >= spec.slots, "runner {runner} over capacity");
            *f -= spec.slots;
            events.push(Reverse((now + run_ms, 0, job.0)));
        }
    }
    part
}

/// Every queue order, backfill mode, backfill order and in-lane order (proptest).
pub fn all_policies() -> impl Strategy<Value = PolicyConfig> {
    (
        prop_oneof![
            Just(QueueOrder::Fifo),
            Just(QueueOrder::Priority),
            Just(QueueOrder::ShortestEstimate),
            Just(QueueOrder::FairShare),
            Just(QueueOrder::Qos)
        ],
        prop_oneof![
            Just(Backfill::None),
            Just(Backfill::Easy),
            Just(Backfill::Greedy)
        ],
        prop_oneof![
            Just(BackfillOrder::Queue),
            Just(BackfillOrder::ShortestEstimate)
        ],
        prop_oneof![Just(WithinLane::Submit), Just(WithinLane::ShortestEstimate)],
    )
        .prop_map(
            |(order, backfill, backfill_order, within_lane)| PolicyConfig {
                order,
                backfill,
                backfill_order,
                within_lane,
                fair_share_half_life_ms: 100,
                ..PolicyConfig::default()
            },
        )
}
