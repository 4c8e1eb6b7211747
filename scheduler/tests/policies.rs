//! Small scenarios with hand-worked schedules, one per policy.

mod common;

use common::*;
use rustci_scheduler::*;

fn policy(order: QueueOrder, backfill: Backfill) -> PolicyConfig {
    PolicyConfig {
        order,
        backfill,
        ..PolicyConfig::default()
    }
}

fn starts(run: &Run) -> Vec<(u64, Millis)> {
    run.starts.iter().map(|(&j, &(t, _))| (j, t)).collect()
}

/// Ten slots. A (6 slots) runs 0..100. B (8 slots) cannot start: it is reserved at 100
/// with extra = 10 - 8 = 2. C (2 slots, est 200) ends after the shadow but fits extra;
/// D (1 slot, est 10) ends before the shadow; E (1 slot, est 1000) would need extra,
/// which C used up, so it waits for B.
fn easy_scenario() -> Vec<(JobSpec, Millis)> {
    vec![
        (job(0, 0, 6, 100), 100),
        (job(1, 1, 8, 50), 50),
        (job(2, 2, 2, 200), 200),
        (job(3, 3, 1, 10), 10),
        (job(4, 4, 1, 1000), 1000),
    ]
}

#[test]
fn easy_backfills_only_what_does_not_delay_the_reservation() {
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 10)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &easy_scenario(), true);
    // E starts when B is done at 150? No: at 100 B takes 8 of the 10 slots while C
    // (2 slots) runs until 202, so E waits for B's end at 150.
    assert_eq!(
        starts(&run),
        vec![(0, 0), (1, 100), (2, 2), (3, 3), (4, 150)]
    );
    assert_eq!(run.reserved_at.get(&1), Some(&100));
}

#[test]
fn easy_explains_why_a_job_waits() {
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 10)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    join_all(&mut s, &[(7, 0)]);
    let mut out = Vec::new();
    for (spec, _) in easy_scenario() {
        let t = spec.submit_ms;
        s.handle(t, Event::Submit(spec), &mut out).unwrap();
    }
    assert_eq!(
        s.explain(JobId(1), 4).unwrap(),
        JobStatus::Pending {
            reason: WaitReason::Reserved {
                runner: RunnerId(7),
                at: 100
            },
            estimate: Estimate {
                point_ms: 50,
                upper_ms: 50
            },
        }
    );
    match s.explain(JobId(4), 4).unwrap() {
        JobStatus::Pending {
            reason: WaitReason::WouldDelay { job, at, .. },
            ..
        } => {
            assert_eq!((job, at), (JobId(1), 100));
        }
        other => panic!("expected WouldDelay, got {other:?}"),
    }
    assert!(matches!(
        s.explain(JobId(2), 4).unwrap(),
        JobStatus::Running { started_ms: 2, .. }
    ));
    assert!(matches!(
        s.explain(JobId(99), 4),
        Err(CoreError::UnknownJob(JobId(99)))
    ));
    // Waiting: B, then E. Running jobs have no place in the queue.
    assert_eq!(s.queue_position(JobId(1)), Some(0));
    assert_eq!(s.queue_position(JobId(4)), Some(1));
    assert_eq!(s.queue_position(JobId(2)), None);
}

#[test]
fn fcfs_is_strict() {
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::None),
        vec![pool("m", 0, 10)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &easy_scenario(), false);
    // Nothing passes B: C, D, E start when B starts or later, in order.
    assert_eq!(
        starts(&run),
        vec![(0, 0), (1, 100), (2, 100), (3, 150), (4, 150)]
    );
    let mut s = Scheduler::new(
        config(
            policy(QueueOrder::Fifo, Backfill::None),
            vec![pool("m", 0, 10)],
            1,
        ),
        Box::new(RequestedTime::default()),
    );
    join_all(&mut s, &[(0, 0)]);
    let mut out = Vec::new();
    for (spec, _) in easy_scenario() {
        let t = spec.submit_ms;
        s.handle(t, Event::Submit(spec), &mut out).unwrap();
    }
    assert!(matches!(
        s.explain(JobId(3), 4).unwrap(),
        JobStatus::Pending {
            reason: WaitReason::BlockedBehind { job: JobId(1) },
            ..
        }
    ));
}

#[test]
fn greedy_lets_anything_that_fits_start() {
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Greedy),
        vec![pool("m", 0, 10)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &easy_scenario(), false);
    // E takes a slot at 4 without a reservation to respect. At 100, A's end leaves
    // 10 - C(2) - E(1) = 7 free, short of B's 8, so B waits for C's end at 202.
    assert_eq!(starts(&run), vec![(0, 0), (1, 202), (2, 2), (3, 3), (4, 4)]);
}

/// One single-slot runner busy until 10; tenant 0 queued two more jobs before tenant 1
/// queued one.
fn two_tenants() -> Vec<(JobSpec, Millis)> {
    let mut jobs = vec![
        (job(0, 0, 1, 10), 10),
        (job(1, 1, 1, 10), 10),
        (job(2, 2, 1, 10), 10),
    ];
    let mut b = job(3, 3, 1, 10);
    b.tenant = TenantId(1);
    jobs.push((b, 10));
    jobs
}

#[test]
fn fair_share_serves_the_tenant_with_less_usage_first() {
    let cfg = config(
        policy(QueueOrder::FairShare, Backfill::Easy),
        vec![pool("m", 0, 1)],
        2,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &two_tenants(), false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 20), (2, 30), (3, 10)]);

    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        2,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &two_tenants(), false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 10), (2, 20), (3, 30)]);
}

#[test]
fn fair_share_usage_decays_with_its_half_life() {
    let mut p = policy(QueueOrder::FairShare, Backfill::Easy);
    p.fair_share_half_life_ms = 1_000;
    let cfg = config(p, vec![pool("m", 0, 1)], 1);
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    join_all(&mut s, &[(0, 0)]);
    let mut out = Vec::new();
    s.handle(0, Event::Submit(job(0, 0, 1, 4_000)), &mut out)
        .unwrap();
    s.handle(4_000, Event::Finish { job: JobId(0) }, &mut out)
        .unwrap();
    // 1 slot for 4 s = 4 slot-seconds, charged at start and trued up at the end.
    assert!((s.tenant_usage(TenantId(0), 4_000) - 4.0).abs() < 1e-9);
    assert!((s.tenant_usage(TenantId(0), 5_000) - 2.0).abs() < 1e-9);
    assert!((s.tenant_usage(TenantId(0), 7_000) - 0.5).abs() < 1e-9);
}

#[test]
fn priority_and_shortest_estimate_orders() {
    // Runner busy until 10; then jobs 1..3 compete.
    let mut jobs = vec![
        (job(0, 0, 1, 10), 10),
        (job(1, 1, 1, 30), 30),
        (job(2, 2, 1, 20), 20),
        (job(3, 3, 1, 5), 5),
    ];
    jobs[1].0.priority = 1;
    jobs[2].0.priority = 5;
    let cfg = config(
        policy(QueueOrder::Priority, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &jobs, false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 30), (2, 10), (3, 60)]);

    let cfg = config(
        policy(QueueOrder::ShortestEstimate, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &jobs, false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 35), (2, 15), (3, 10)]);
}

#[test]
fn qos_aging_lets_an_old_batch_job_pass_a_fresh_urgent_one() {
    // Runner busy until 1,500 s. A batch job waits from 0; an urgent one from 1,400 s.
    // At 1,500 s: batch scores 0 + 1500/100 = 15, urgent 10 + 100/60 = 11.7.
    let mut batch = job(1, 0, 1, 10_000);
    batch.qos = QosId(1);
    let jobs = vec![
        (job(0, 0, 1, 1_500_000), 1_500_000),
        (batch, 10_000),
        (job(2, 1_400_000, 1, 10_000), 10_000),
    ];
    let cfg = config(
        policy(QueueOrder::Qos, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let run = drive(&mut s, &[(0, 0)], &jobs, false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 1_500_000), (2, 1_510_000)]);

    let mut p = policy(QueueOrder::Qos, Backfill::Easy);
    p.qos_aging_weight = 0.0;
    let mut s = Scheduler::new(
        config(p, vec![pool("m", 0, 1)], 1),
        Box::new(RequestedTime::default()),
    );
    let run = drive(&mut s, &[(0, 0)], &jobs, false);
    assert_eq!(starts(&run), vec![(0, 0), (1, 1_510_000), (2, 1_500_000)]);
}

#[test]
fn labels_choose_the_pool_and_unknown_labels_are_refused() {
    // pool 0: linux (bit 0), pool 1: linux+gpu.
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("linux", 0b001, 1), pool("gpu", 0b011, 1)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    let mut gpu = job(0, 0, 1, 10);
    gpu.labels = LabelSet(0b010);
    let mut mac = job(1, 0, 1, 10);
    mac.labels = LabelSet(0b100);
    let mut linux = job(2, 0, 1, 10);
    linux.labels = LabelSet(0b001);
    let big = job(3, 0, 2, 10);
    let run = drive(
        &mut s,
        &[(0, 0), (1, 1)],
        &[(gpu, 10), (mac, 10), (linux, 10), (big, 10)],
        false,
    );
    assert_eq!(run.starts[&0].1, RunnerId(1));
    assert_eq!(run.starts[&2].1, RunnerId(0));
    assert_eq!(run.refused, vec![1, 3]);
}

#[test]
fn a_lost_runner_requeues_its_jobs_in_their_old_place() {
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 1)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(RequestedTime::default()));
    join_all(&mut s, &[(0, 0)]);
    let mut out = Vec::new();
    s.handle(0, Event::Submit(job(0, 0, 1, 10)), &mut out)
        .unwrap();
    s.handle(1, Event::Submit(job(1, 1, 1, 10)), &mut out)
        .unwrap();
    out.clear();
    s.handle(
        2,
        Event::RunnerLost {
            runner: RunnerId(0),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![Decision::Requeue {
            job: JobId(0),
            runner: RunnerId(0)
        }]
    );
    assert_eq!((s.pending_count(), s.running_count()), (2, 0));
    out.clear();
    s.handle(
        3,
        Event::RunnerJoined {
            runner: RunnerId(1),
            pool: PoolId(0),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![Decision::Start {
            job: JobId(0),
            runner: RunnerId(1),
            expected_end_ms: 13
        }]
    );
    assert!(matches!(
        s.handle(4, Event::Finish { job: JobId(1) }, &mut out),
        Err(CoreError::NotRunning(JobId(1)))
    ));
    assert!(matches!(
        s.handle(1, Event::Tick, &mut out),
        Err(CoreError::TimeWentBackwards { .. })
    ));
}

#[test]
fn bad_configuration_names_the_field() {
    let mut bad = pool("m", 0, 0);
    bad.name = "small".into();
    let err = SchedulerConfig {
        policy: PolicyConfig::default(),
        labels: vec![],
        pools: vec![bad],
        tenants: vec![],
        qos: vec![QosSpec {
            name: "q".into(),
            priority: 0,
            wait_target_ms: 1,
        }],
    }
    .check()
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("pools[0] (small).slots_per_runner"),
        "{err}"
    );
    let err = PolicyConfig::named("lottery").unwrap_err();
    assert!(
        err.to_string().contains("unknown policy \"lottery\""),
        "{err}"
    );
}

/// Shortest predicted first inside a QoS class: one 1-slot runner, busy 0..100 with the
/// first job; at t=1 three batch jobs wait with estimates 300, 10 and 50 (ids 2, 3, 4) and one
/// urgent job with 500 (id 5). The urgent class goes first either way; inside the batch
/// class `qos` keeps submit order (2, 3, 4) and `qos-spf` takes the shortest first
/// (3, 4, 2).
#[test]
fn qos_spf_orders_by_estimate_inside_a_class() {
    let order_of = |name: &str| {
        let mut policy = PolicyConfig::named(name).expect("policy");
        policy.backfill = Backfill::None;
        let mut s = Scheduler::new(
            config(policy, vec![pool("m", 0, 1)], 1),
            Box::new(RequestedTime::default()),
        );
        let mut jobs = vec![(job(1, 0, 1, 100), 100)];
        for (id, est, qos) in [(2, 300, 1), (3, 10, 1), (4, 50, 1), (5, 500, 0)] {
            let mut j = job(id, 1, 1, est);
            j.qos = QosId(qos);
            jobs.push((j, est));
        }
        jobs[0].0.qos = QosId(1);
        let run = drive(&mut s, &[(0, 0)], &jobs, false);
        let mut started: Vec<(Millis, u64)> =
            starts(&run).into_iter().map(|(j, t)| (t, j)).collect();
        started.sort();
        started.into_iter().map(|(_, j)| j).collect::<Vec<_>>()
    };
    assert_eq!(order_of("qos"), vec![1, 5, 2, 3, 4]);
    assert_eq!(order_of("qos-spf"), vec![1, 5, 3, 4, 2]);
}

/// Records what the core tells a predictor about ended (and forgotten) jobs.
#[derive(Default)]
struct Ends(
    std::sync::Arc<std::sync::Mutex<Vec<(JobId, Millis, bool)>>>,
    std::sync::Arc<std::sync::Mutex<Vec<JobId>>>,
);

impl Predictor for Ends {
    fn preview(&self, job: &JobSpec) -> Estimate {
        RequestedTime::default().preview(job)
    }
    fn observe(&mut self, job: &JobSpec, run_ms: Millis, _finished_ms: Millis, failed: bool) {
        if let Ok(mut v) = self.0.lock() {
            v.push((job.id, run_ms, failed));
        }
    }
    fn forget(&mut self, job: &JobSpec) {
        if let Ok(mut v) = self.1.lock() {
            v.push(job.id);
        }
    }
    fn name(&self) -> &str {
        "ends"
    }
}

#[test]
fn predictors_learn_whether_a_job_failed() {
    let ends = Ends::default();
    let (seen, forgotten) = (ends.0.clone(), ends.1.clone());
    let cfg = config(
        policy(QueueOrder::Fifo, Backfill::Easy),
        vec![pool("m", 0, 2)],
        1,
    );
    let mut s = Scheduler::new(cfg, Box::new(ends));
    join_all(&mut s, &[(0, 0)]);
    let mut out = Vec::new();
    s.handle(0, Event::Submit(job(0, 0, 1, 4_000)), &mut out)
        .unwrap();
    s.handle(0, Event::Submit(job(1, 0, 1, 4_000)), &mut out)
        .unwrap();
    assert_eq!(s.pool_capacity(PoolId(0)).0, 0, "both jobs run");
    s.handle(3_000, Event::Fail { job: JobId(0) }, &mut out)
        .unwrap();
    // A failed job leaves its runner as a finished one does.
    assert_eq!(s.pool_capacity(PoolId(0)).0, 1);
    s.handle(4_000, Event::Finish { job: JobId(1) }, &mut out)
        .unwrap();
    assert_eq!(s.pool_capacity(PoolId(0)).0, 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(JobId(0), 3_000, true), (JobId(1), 4_000, false)]
    );
    // A cancelled job never ends: the predictor is told to forget it instead.
    s.handle(5_000, Event::Submit(job(2, 0, 1, 4_000)), &mut out)
        .unwrap();
    s.handle(6_000, Event::Cancel { job: JobId(2) }, &mut out)
        .unwrap();
    assert_eq!(*forgotten.lock().unwrap(), vec![JobId(2)]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
