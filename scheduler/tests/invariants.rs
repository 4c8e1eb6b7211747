//! Property tests: for random fleets, jobs and policies, no runner goes over capacity,
//! no job starts twice, none is lost, every job runs on a pool with its labels, EASY
//! never delays the reserved job, and strict FCFS never lets a job pass an earlier one
//! that competes for the same pools.

mod common;

use common::*;
use proptest::prelude::*;
use rustci_scheduler::*;

#[derive(Debug, Clone)]
struct Case {
    pools: Vec<(u64, u32, u32)>, // labels, slots per runner, runners
    jobs: Vec<(u64, u32, Millis, Millis, Millis, u32, i32)>, // labels, slots, submit, est, run, tenant, priority
}

fn case(max_jobs: usize) -> impl Strategy<Value = Case> {
    let pools = prop::collection::vec((0u64..8, 1u32..5, 1u32..4), 1..4);
    let jobs = prop::collection::vec(
        (
            0u64..8,
            1u32..5,
            0i64..200,
            1i64..60,
            0.0f64..1.0,
            0u32..3,
            0i32..3,
        ),
        1..max_jobs,
    );
    (pools, jobs).prop_map(|(pools, jobs)| Case {
        pools,
        jobs: jobs
            .into_iter()
            .map(|(l, s, sub, est, frac, t, p)| {
                (l, s, sub, est, (est as f64 * frac).round() as i64, t, p)
            })
            .collect(),
    })
}

type Built = (Scheduler, Vec<(u32, u16)>, Vec<(JobSpec, Millis)>);

fn build(c: &Case, policy: PolicyConfig, exact: bool) -> Built {
    let (pools, runners) = case_fleet(&c.pools);
    let jobs = c
        .jobs
        .iter()
        .enumerate()
        .map(|(i, &(l, s, sub, est, run, t, p))| {
            let mut j = job(i as u64, sub, s, est);
            j.labels = LabelSet(l);
            j.tenant = TenantId(t);
            j.priority = p;
            j.qos = QosId((i % 2) as u8);
            (j, if exact { est } else { run })
        })
        .collect();
    let s = Scheduler::new(config(policy, pools, 3), Box::new(RequestedTime::default()));
    (s, runners, jobs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// `drive` itself asserts capacity, single start and labels at every decision.
    #[test]
    fn no_job_lost_and_none_over_capacity(c in case(40), policy in all_policies()) {
        let (mut s, runners, jobs) = build(&c, policy, false);
        let run = drive(&mut s, &runners, &jobs, false);
        let accepted = jobs.len() - run.refused.len();
        prop_assert_eq!(run.starts.len(), accepted);
        prop_assert_eq!(run.finished.len(), accepted);
        prop_assert_eq!((s.pending_count(), s.running_count()), (0, 0));
        // A job is refused only when no pool could ever run it.
        for &id in &run.refused {
            let spec = &jobs[id as usize].0;
            prop_assert!(s.eligible_pools(spec.labels, spec.slots).is_empty());
        }
    }

    #[test]
    fn easy_never_delays_the_reserved_job(c in case(40), sjf in any::<bool>()) {
        // EASY, and EASY++'s shortest-first backfilling.
        let backfill_order = if sjf { BackfillOrder::ShortestEstimate } else { BackfillOrder::Queue };
        let policy = PolicyConfig { order: QueueOrder::Fifo, backfill: Backfill::Easy, backfill_order, ..PolicyConfig::default() };
        // Run times equal to estimates: the reservation is a promise.
        let (mut s, runners, jobs) = build(&c, policy, true);
        let run = drive(&mut s, &runners, &jobs, true);
        for (job, at) in &run.reserved_at {
            let (start, _) = run.starts[job];
            prop_assert!(start <= *at, "job {} reserved at {} started at {}", job, at, start);
        }
    }

    #[test]
    fn strict_fcfs_never_passes_a_competing_earlier_job(c in case(30)) {
        let policy = PolicyConfig { order: QueueOrder::Fifo, backfill: Backfill::None, ..PolicyConfig::default() };
        let (mut s, runners, jobs) = build(&c, policy, false);
        let run = drive(&mut s, &runners, &jobs, false);
        let pool_of = |r: RunnerId| PoolId(runners[r.0 as usize].1);
        let mut order: Vec<usize> = (0..jobs.len()).filter(|&i| run.starts.contains_key(&(i as u64))).collect();
        order.sort_by_key(|&i| (jobs[i].0.submit_ms, i));
        for (n, &a) in order.iter().enumerate() {
            for &b in &order[n + 1..] {
                // b may pass a only on a pool a cannot use.
                let ja = &jobs[a].0;
                let b_pool = pool_of(run.starts[&(b as u64)].1);
                if s.eligible_pools(ja.labels, ja.slots).contains(b_pool) {
                    prop_assert!(run.starts[&(a as u64)].0 <= run.starts[&(b as u64)].0,
                        "job {} started before earlier job {}", b, a);
                }
            }
        }
    }

    #[test]
    fn decisions_are_deterministic(c in case(30), policy in all_policies()) {
        let (mut s1, runners, jobs) = build(&c, policy.clone(), false);
        let (mut s2, _, _) = build(&c, policy, false);
        let a = drive(&mut s1, &runners, &jobs, false);
        let b = drive(&mut s2, &runners, &jobs, false);
        prop_assert_eq!(a.starts, b.starts);
    }
}
