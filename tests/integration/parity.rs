//! Must-show 6: one event sequence through the simulator's engine and through the live
//! service (gRPC over loopback, virtual clock) gives the same decision log: the same
//! jobs start on the same runners at the same times. One core, two drivers.

use crate::common;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use rustci_control::server::live::{LiveConfig, ManualClock};
use rustci_control::server::ServeOptions;
use rustci_scheduler::*;
use rustci_sim::engine::{self, EngineOptions};
use rustci_sim::workload::SimJob;

const T0: Millis = 1_700_000_000_000;
const POLICY: &str = "fairshare";

/// A small deterministic generator (no dependency needed for a test workload).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

struct TestJob {
    tenant: usize,
    gpu: bool,
    slots: u32,
    submit: Millis,
    requested: Millis,
    run: Millis,
}

fn workload(n: usize) -> Vec<TestJob> {
    let mut rng = Lcg(7);
    let mut t = T0 + 1_000;
    (0..n)
        .map(|_| {
            t += 200 + rng.next(3_000) as i64;
            let requested = 2_000 + rng.next(40_000) as i64;
            let gpu = rng.next(5) == 0;
            TestJob {
                tenant: rng.next(3) as usize,
                gpu,
                slots: if gpu { 1 } else { 1 + rng.next(2) as u32 },
                submit: t,
                requested,
                // Strictly shorter than requested: no job ends exactly at its estimate.
                run: 1 + rng.next(requested as u64 - 1) as i64,
            }
        })
        .collect()
}

/// Pools as the live service learns them: `lin` (linux, 2 slots) from runners r0-r2,
/// then `gpu` (linux+gpu, 1 slot) from r3.
const RUNNERS: [(&str, &str, &[&str], u32); 4] = [
    ("r0", "lin", &["linux"], 2),
    ("r1", "lin", &["linux"], 2),
    ("r2", "lin", &["linux"], 2),
    ("r3", "gpu", &["gpu", "linux"], 1),
];

fn simulate(jobs: &[TestJob]) -> Vec<(Millis, Decision)> {
    let live = LiveConfig::default();
    let mut tenants: Vec<TenantSpec> = Vec::new();
    let mut tenant_of = BTreeMap::new();
    let sim_jobs: Vec<SimJob> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let next = tenant_of.len();
            let tenant = *tenant_of.entry(j.tenant).or_insert_with(|| {
                tenants.push(TenantSpec {
                    name: format!("t{}", j.tenant),
                    weight: 1.0,
                });
                next
            });
            SimJob {
                record: i,
                spec: JobSpec {
                    id: JobId(i as u64 + 1),
                    tenant: TenantId(tenant as u32),
                    qos: QosId(1),
                    priority: 0,
                    labels: LabelSet(if j.gpu { 0b11 } else { 0b01 }),
                    slots: j.slots,
                    requested_ms: Some(j.requested),
                    submit_ms: j.submit,
                    history: Default::default(),
                },
                run_ms: j.run,
                failed: false,
                pipeline: None,
            }
        })
        .collect();
    let pool = |name: &str, labels: u64, slots: u32| PoolSpec {
        name: name.into(),
        labels: LabelSet(labels),
        slots_per_runner: slots,
        cost_per_hour: 0.0,
        provisioning_delay_ms: 0,
    };
    let config = SchedulerConfig {
        policy: PolicyConfig::named(POLICY).expect("policy"),
        labels: vec!["linux".into(), "gpu".into()],
        pools: vec![pool("lin", 0b01, 2), pool("gpu", 0b11, 1)],
        tenants,
        qos: live.qos.clone(),
    }
    .check()
    .expect("config");
    let mut sched = Scheduler::new(
        config,
        Box::new(RequestedTime {
            default_ms: live.default_estimate_ms,
        }),
    );
    let runners: Vec<(RunnerId, PoolId, u32)> = RUNNERS
        .iter()
        .enumerate()
        .map(|(i, r)| (RunnerId(i as u32), PoolId(u16::from(r.1 == "gpu")), r.3))
        .collect();
    // The engine numbers jobs by position; shift to the live service's ids (from 1).
    let out = engine::run(
        &mut sched,
        &sim_jobs_by_index(&sim_jobs),
        &runners,
        T0,
        EngineOptions {
            record_decisions: true,
            ..Default::default()
        },
    )
    .expect("engine");
    out.decisions
        .expect("log")
        .into_iter()
        .map(|(t, d)| match d {
            Decision::Start {
                job,
                runner,
                expected_end_ms,
            } => (
                t,
                Decision::Start {
                    job: JobId(job.0 + 1),
                    runner,
                    expected_end_ms,
                },
            ),
            other => (t, other),
        })
        .collect()
}

/// The engine wants job ids equal to positions.
fn sim_jobs_by_index(jobs: &[SimJob]) -> Vec<SimJob> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| SimJob {
            spec: JobSpec {
                id: JobId(i as u64),
                ..j.spec.clone()
            },
            ..j.clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_and_live_service_make_the_same_decisions() {
    let jobs = workload(300);
    let expected = simulate(&jobs);
    assert!(
        expected.len() >= jobs.len(),
        "every job starts in the simulation"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let (srv, ch) = common::serve_virtual(
        ServeOptions {
            data_dir: dir.path().to_path_buf(),
            policy: POLICY.into(),
            record_decisions: true,
            ..ServeOptions::default()
        },
        clock.clone(),
    )
    .await;
    let mut api = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch);
    for (id, pool, labels, slots) in RUNNERS {
        run.register_runner(RegisterRunnerRequest {
            runner_id: id.into(),
            pool: pool.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            slots,
        })
        .await
        .expect("register");
    }

    // The engine's order at equal times: submissions, then finishes in start order.
    const SUBMIT: u8 = 0;
    const FINISH: u8 = 1;
    let mut queue: BinaryHeap<Reverse<(Millis, u8, u64, usize)>> = BinaryHeap::new();
    for (i, j) in jobs.iter().enumerate() {
        queue.push(Reverse((j.submit, SUBMIT, i as u64, i)));
    }
    let mut seq = jobs.len() as u64;
    let mut leases: BTreeMap<usize, (String, u64)> = BTreeMap::new();
    while let Some(Reverse((t, class, _, i))) = queue.pop() {
        clock.set(t);
        if class == SUBMIT {
            let j = &jobs[i];
            api.submit_job(SubmitJobRequest {
                request_id: format!("req-{i}"),
                tenant: format!("t{}", j.tenant),
                labels: if j.gpu {
                    vec!["linux".into(), "gpu".into()]
                } else {
                    vec!["linux".into()]
                },
                slots: j.slots,
                command: "true".into(),
                requested_ms: j.requested,
                ..Default::default()
            })
            .await
            .expect("submit");
        } else {
            let (runner, token) = leases.remove(&i).expect("leased");
            run.complete_job(CompleteJobRequest {
                job: format!("jobs/{}", i + 1),
                runner,
                fencing_token: token,
                success: true,
                ..Default::default()
            })
            .await
            .expect("complete");
        }
        // Collect what the scheduler started, in decision order.
        let log_len = srv.shared.live.lock().expect("lock").decision_log().len();
        let mut new: Vec<(usize, String, u64, Millis)> = Vec::new();
        for (id, ..) in RUNNERS {
            let got = run
                .acquire_jobs(AcquireJobsRequest {
                    name: format!("runners/{id}"),
                    max_jobs: 10,
                    wait_ms: 0,
                })
                .await
                .expect("acquire")
                .into_inner();
            for l in got.leases {
                let job = l.job.expect("job");
                let idx: usize = job
                    .name
                    .trim_start_matches("jobs/")
                    .parse::<usize>()
                    .expect("id")
                    - 1;
                new.push((idx, format!("runners/{id}"), l.fencing_token, job.start_ms));
            }
        }
        // Finish events are created in the order the decisions were made.
        let order: Vec<u64> = srv.shared.live.lock().expect("lock").decision_log()[..log_len]
            .iter()
            .filter_map(|(_, d)| match d {
                Decision::Start { job, .. } => Some(job.0),
                _ => None,
            })
            .collect();
        new.sort_by_key(|(idx, ..)| order.iter().position(|&j| j == *idx as u64 + 1));
        for (idx, runner, token, start) in new {
            leases.insert(idx, (runner, token));
            queue.push(Reverse((start + jobs[idx].run, FINISH, seq, idx)));
            seq += 1;
        }
    }
    let live_log: Vec<(Millis, Decision)> = srv
        .shared
        .live
        .lock()
        .expect("lock")
        .decision_log()
        .to_vec();
    assert_eq!(live_log.len(), expected.len(), "same number of decisions");
    for (n, (a, b)) in expected.iter().zip(&live_log).enumerate() {
        assert_eq!(a, b, "decision {n} differs: simulator {a:?}, live {b:?}");
    }
    srv.stop().await.expect("stop");
}
