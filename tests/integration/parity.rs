//! Must-show 6 (issue 3) and 4 (issue 15): one event sequence through the simulator's
//! engine and through the live service (gRPC over loopback, virtual clock) gives the same
//! decision log: the same jobs start on the same runners at the same times, and (for
//! pipelines) the same jobs end skipped and cancelled. One core, two drivers.

use crate::common;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use rustci_control::pb;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::pipeline_service_client::PipelineServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use rustci_control::server::live::{LiveConfig, ManualClock};
use rustci_control::server::{RunningServer, ServeOptions};
use rustci_scheduler::*;
// Named: the glob imports of both have these names.
use rustci_scheduler::{PipelineJob, PipelineSpec, PipelineState, When};
use rustci_sim::engine::{self, Arrivals, EngineOptions, Fate};
use rustci_sim::workload::{SimJob, SimPipeline};

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

/// The core as the live service builds it once the runners of [`RUNNERS`] registered:
/// pools `lin` then `gpu`, labels `linux` then `gpu`, its QoS classes and estimate.
fn core(policy: &str, tenants: Vec<TenantSpec>) -> Scheduler {
    let live = LiveConfig::default();
    let pool = |name: &str, labels: u64, slots: u32| PoolSpec {
        name: name.into(),
        labels: LabelSet(labels),
        slots_per_runner: slots,
        cost_per_hour: 0.0,
        provisioning_delay_ms: 0,
    };
    let config = SchedulerConfig {
        policy: PolicyConfig::named(policy).expect("policy"),
        labels: vec!["linux".into(), "gpu".into()],
        pools: vec![pool("lin", 0b01, 2), pool("gpu", 0b11, 1)],
        tenants,
        qos: live.qos.clone(),
    }
    .check()
    .expect("config");
    Scheduler::new(
        config,
        Box::new(RequestedTime {
            default_ms: live.default_estimate_ms,
        }),
    )
}

/// [`RUNNERS`] as the engine takes them: ids in registration order.
fn sim_runners() -> Vec<(RunnerId, PoolId, u32)> {
    RUNNERS
        .iter()
        .enumerate()
        .map(|(i, r)| (RunnerId(i as u32), PoolId(u16::from(r.1 == "gpu")), r.3))
        .collect()
}

fn simulate(jobs: &[TestJob]) -> Vec<(Millis, Decision)> {
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
    let mut sched = core(POLICY, tenants);
    // The engine numbers jobs by position; shift to the live service's ids (from 1).
    let out = engine::run(
        &mut sched,
        &sim_jobs_by_index(&sim_jobs),
        &sim_runners(),
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

/// The live service on `dir` with a virtual clock at [`T0`], recording its decisions,
/// and the runners of [`RUNNERS`] registered in order.
async fn live_service(
    policy: &str,
    dir: &std::path::Path,
) -> (
    RunningServer,
    Arc<ManualClock>,
    common::OwnerChannel,
    RunnerServiceClient<common::OwnerChannel>,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let (srv, ch) = common::serve_virtual(
        ServeOptions {
            data_dir: dir.to_path_buf(),
            policy: policy.into(),
            record_decisions: true,
            ..ServeOptions::default()
        },
        clock.clone(),
    )
    .await;
    let mut run = RunnerServiceClient::new(ch.clone());
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
    (srv, clock, ch, run)
}

/// Every lease the runners of [`RUNNERS`] are handed now: (job index, runner, fencing
/// token, start time).
async fn lease_all(
    run: &mut RunnerServiceClient<common::OwnerChannel>,
) -> Vec<(usize, String, u64, Millis)> {
    let mut new = Vec::new();
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
            let idx = job
                .name
                .trim_start_matches("jobs/")
                .parse::<usize>()
                .expect("id")
                - 1;
            new.push((idx, format!("runners/{id}"), l.fencing_token, job.start_ms));
        }
    }
    new
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
    let (srv, clock, ch, mut run) = live_service(POLICY, dir.path()).await;
    let mut api = JobServiceClient::new(ch);

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
        let mut new = lease_all(&mut run).await;
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

// Must-show 4 of issue 15: the same for pipelines.

/// One job of a generated pipeline.
struct TestPipeJob {
    name: String,
    stage: u32,
    needs: Option<Vec<String>>,
    when: When,
    allow_failure: bool,
    interruptible: bool,
    gpu: bool,
    slots: u32,
    requested: Millis,
    run: Millis,
    fails: bool,
}

struct TestPipeline {
    tenant: usize,
    /// Pipelines of one tenant and project with an `auto_cancel` mode share a
    /// concurrency group.
    project: usize,
    auto_cancel: Option<rustci_scheduler::AutoCancel>,
    created: Millis,
    jobs: Vec<TestPipeJob>,
}

/// `n` pipelines of 2-4 stages of 1-3 jobs: the stage rule and explicit needs (some
/// empty), `when: always` and `on_failure` jobs, failing jobs with and without
/// `allow_failure`, interruptible jobs, GPU jobs; six concurrency groups, so newer
/// pipelines supersede older ones while they wait or run.
fn pipeline_workload(n: usize) -> Vec<TestPipeline> {
    let mut rng = Lcg(11);
    let mut t = T0 + 1_000;
    (0..n)
        .map(|_| {
            t += 1_000 + rng.next(16_000) as i64;
            let stages = 2 + rng.next(3) as u32;
            let mut jobs: Vec<TestPipeJob> = Vec::new();
            for stage in 0..stages {
                let earlier = jobs.len();
                for k in 0..1 + rng.next(3) {
                    let needs = match (stage, rng.next(6)) {
                        (0, _) | (_, 2..) => None,
                        (_, 0) => Some(Vec::new()),
                        (_, _) => {
                            let a = rng.next(earlier as u64) as usize;
                            let b = rng.next(earlier as u64) as usize;
                            let mut names = vec![jobs[a].name.clone()];
                            if b != a {
                                names.push(jobs[b].name.clone());
                            }
                            Some(names)
                        }
                    };
                    let when = match (stage, rng.next(10)) {
                        (0, _) | (_, 2..) => When::OnSuccess,
                        (_, 0) => When::Always,
                        (_, _) => When::OnFailure,
                    };
                    let requested = 2_000 + rng.next(20_000) as i64;
                    let gpu = rng.next(6) == 0;
                    jobs.push(TestPipeJob {
                        name: format!("s{stage}-j{k}"),
                        stage,
                        needs,
                        when,
                        allow_failure: rng.next(5) == 0,
                        interruptible: rng.next(2) == 0,
                        gpu,
                        slots: if gpu { 1 } else { 1 + rng.next(2) as u32 },
                        requested,
                        // Strictly shorter than requested, as above.
                        run: 1 + rng.next(requested as u64 - 1) as i64,
                        fails: rng.next(6) == 0,
                    });
                }
            }
            TestPipeline {
                tenant: rng.next(3) as usize,
                project: rng.next(2) as usize,
                auto_cancel: match rng.next(5) {
                    0 => None,
                    1 => Some(rustci_scheduler::AutoCancel::Conservative),
                    2 => Some(rustci_scheduler::AutoCancel::Interruptible),
                    3 => Some(rustci_scheduler::AutoCancel::UnstartedAndInterruptible),
                    _ => Some(rustci_scheduler::AutoCancel::None),
                },
                created: t,
                jobs,
            }
        })
        .collect()
}

const GIT_REF: &str = "main";

/// The engine's ids (job: position among all pipelines' jobs; pipeline: position) as
/// the live service's (job: position + 1; pipeline: its first job's id).
struct LiveIds {
    first_job: Vec<u64>,
}

impl LiveIds {
    fn new(pipes: &[TestPipeline]) -> Self {
        let mut next = 0;
        let first_job = pipes
            .iter()
            .map(|p| {
                let first = next;
                next += p.jobs.len() as u64;
                first
            })
            .collect();
        Self { first_job }
    }

    fn job(&self, j: JobId) -> JobId {
        JobId(j.0 + 1)
    }

    fn pipeline(&self, p: PipelineId) -> PipelineId {
        PipelineId(self.first_job[p.0 as usize] + 1)
    }

    fn decision(&self, d: Decision) -> Decision {
        match d {
            Decision::Start {
                job,
                runner,
                expected_end_ms,
            } => Decision::Start {
                job: self.job(job),
                runner,
                expected_end_ms,
            },
            Decision::Requeue { job, runner } => Decision::Requeue {
                job: self.job(job),
                runner,
            },
            Decision::Cancel {
                job,
                runner,
                reason,
            } => Decision::Cancel {
                job: self.job(job),
                runner,
                reason: match reason {
                    CancelReason::Superseded { by } => CancelReason::Superseded {
                        by: self.pipeline(by),
                    },
                    other => other,
                },
            },
            Decision::Skip { job } => Decision::Skip { job: self.job(job) },
            Decision::Manual { job } => Decision::Manual { job: self.job(job) },
            Decision::PipelineEnded { pipeline, state } => Decision::PipelineEnded {
                pipeline: self.pipeline(pipeline),
                state,
            },
        }
    }
}

/// The decision log (in the live service's ids) and every job's fate, by the engine.
fn simulate_pipelines(
    policy: &str,
    pipes: &[TestPipeline],
) -> (Vec<(Millis, Decision)>, Vec<Option<Fate>>) {
    let mut tenants: Vec<TenantSpec> = Vec::new();
    let mut tenant_of = BTreeMap::new();
    let mut jobs: Vec<SimJob> = Vec::new();
    let mut sim_pipes: Vec<SimPipeline> = Vec::new();
    for (p, pipe) in pipes.iter().enumerate() {
        let next = tenant_of.len();
        let tenant = TenantId(*tenant_of.entry(pipe.tenant).or_insert_with(|| {
            tenants.push(TenantSpec {
                name: format!("t{}", pipe.tenant),
                weight: 1.0,
            });
            next
        }) as u32);
        let mut spec_jobs = Vec::new();
        for j in &pipe.jobs {
            let spec = JobSpec {
                id: JobId(jobs.len() as u64),
                tenant,
                qos: QosId(1),
                priority: 0,
                labels: LabelSet(if j.gpu { 0b11 } else { 0b01 }),
                slots: j.slots,
                requested_ms: Some(j.requested),
                submit_ms: pipe.created,
                history: HistoryKeys::of(Some(&j.name), Some(GIT_REF)),
            };
            spec_jobs.push(PipelineJob {
                name: j.name.clone(),
                stage: j.stage,
                needs: j.needs.clone(),
                when: j.when,
                allow_failure: j.allow_failure,
                interruptible: j.interruptible,
                spec: spec.clone(),
            });
            jobs.push(SimJob {
                record: jobs.len(),
                spec,
                run_ms: j.run,
                failed: j.fails,
                pipeline: Some(p as u32),
            });
        }
        sim_pipes.push(SimPipeline {
            name: format!("p{p}"),
            created_ms: pipe.created,
            spec: PipelineSpec {
                id: PipelineId(p as u64),
                // Any value per (tenant, project): only equality matters.
                group: pipe
                    .auto_cancel
                    .map(|_| (pipe.tenant * 10 + pipe.project) as u64),
                auto_cancel: pipe.auto_cancel.unwrap_or_default(),
                jobs: spec_jobs,
            },
            skips: Vec::new(),
            counted_failures: Vec::new(),
            tenant,
            qos: QosId(1),
        });
    }
    let mut sched = core(policy, tenants);
    let out = engine::run_arrivals(
        &mut sched,
        Arrivals {
            jobs: &jobs,
            independent: 0,
            pipelines: &sim_pipes,
        },
        &sim_runners(),
        T0,
        EngineOptions {
            record_decisions: true,
            ..Default::default()
        },
    )
    .expect("engine");
    let ids = LiveIds::new(pipes);
    let log = out
        .decisions
        .expect("log")
        .into_iter()
        .map(|(t, d)| (t, ids.decision(d)))
        .collect();
    (log, out.fates)
}

fn pipeline_request(i: usize, p: &TestPipeline) -> SubmitPipelineRequest {
    SubmitPipelineRequest {
        request_id: format!("pipe-{i}"),
        tenant: format!("t{}", p.tenant),
        project: format!("project-{}", p.project),
        git_ref: GIT_REF.into(),
        auto_cancel: p.auto_cancel.is_some(),
        auto_cancel_mode: p.auto_cancel.map_or(pb::AutoCancel::Unspecified, |m| {
            rustci_control::clients::pipeline::pb_auto_cancel(m)
        }) as i32,
        jobs: p
            .jobs
            .iter()
            .map(|j| PipelineJobSpec {
                name: j.name.clone(),
                stage: format!("stage-{}", j.stage),
                stage_index: j.stage,
                needs: j.needs.as_ref().map(|n| Needs { names: n.clone() }),
                when: match j.when {
                    When::OnSuccess => pb::When::OnSuccess,
                    When::OnFailure => pb::When::OnFailure,
                    When::Always => pb::When::Always,
                    When::Manual { .. } => pb::When::Manual,
                } as i32,
                allow_failure: j.allow_failure,
                interruptible: j.interruptible,
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
            .collect(),
    }
}

/// Pipelines through the engine and through the live service (gRPC over loopback,
/// virtual clock): the same decision log (the same jobs start on the same runners at
/// the same times; the same jobs are skipped and cancelled, for the same reasons; the
/// same pipelines end the same way at the same times), and every job's stored end state
/// is the engine's fate.
async fn pipelines_parity(policy: &str) {
    let pipes = pipeline_workload(60);
    let (expected, fates) = simulate_pipelines(policy, &pipes);
    // The workload exercises what it is meant to (a generator change would show here).
    let count = |f: &dyn Fn(&Decision) -> bool| expected.iter().filter(|(_, d)| f(d)).count();
    let interrupted = count(&|d| {
        matches!(
            d,
            Decision::Cancel {
                runner: Some(_),
                reason: CancelReason::Superseded { .. },
                ..
            }
        )
    });
    let superseded_waiting = count(&|d| {
        matches!(
            d,
            Decision::Cancel {
                runner: None,
                reason: CancelReason::Superseded { .. },
                ..
            }
        )
    });
    let skipped = count(&|d| matches!(d, Decision::Skip { .. }));
    let ended = |s: PipelineState| {
        count(&|d| matches!(d, Decision::PipelineEnded { state, .. } if *state == s))
    };
    assert!(
        interrupted > 0 && superseded_waiting > 0 && skipped > 0,
        "the workload has interrupted ({interrupted}), superseded waiting \
         ({superseded_waiting}) and skipped ({skipped}) jobs"
    );
    assert!(
        ended(PipelineState::Succeeded) > 0
            && ended(PipelineState::Failed) > 0
            && ended(PipelineState::Cancelled) > 0,
        "pipelines end succeeded, failed and cancelled"
    );
    assert_eq!(
        ended(PipelineState::Succeeded)
            + ended(PipelineState::Failed)
            + ended(PipelineState::Cancelled),
        pipes.len(),
        "every pipeline ends in the simulation"
    );
    let allowed_failures = pipes
        .iter()
        .flat_map(|p| &p.jobs)
        .zip(&fates)
        .filter(|(j, f)| j.allow_failure && **f == Some(Fate::Failed))
        .count();
    assert!(allowed_failures > 0, "some allow_failure job fails");

    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, clock, ch, mut run) = live_service(policy, dir.path()).await;
    let mut api = PipelineServiceClient::new(ch);
    let all_jobs: Vec<&TestPipeJob> = pipes.iter().flat_map(|p| &p.jobs).collect();
    let log = |srv: &RunningServer| {
        srv.shared
            .live
            .lock()
            .expect("lock")
            .decision_log()
            .to_vec()
    };

    // As the engine orders events of one instant: creations, then finishes in start order.
    const CREATE: u8 = 0;
    const FINISH: u8 = 1;
    let mut queue: BinaryHeap<Reverse<(Millis, u8, u64, usize)>> = BinaryHeap::new();
    for (i, p) in pipes.iter().enumerate() {
        queue.push(Reverse((p.created, CREATE, i as u64, i)));
    }
    let mut seq = pipes.len() as u64;
    // Job index -> its lease; jobs the core cancelled while they ran are dropped (their
    // runner was told; the engine stops them at once and never finishes them).
    let mut leases: BTreeMap<usize, (String, u64)> = BTreeMap::new();
    let mut seen = 0;
    while let Some(Reverse((t, class, _, i))) = queue.pop() {
        clock.set(t);
        if class == CREATE {
            api.submit_pipeline(pipeline_request(i, &pipes[i]))
                .await
                .expect("submit pipeline");
        } else {
            let Some((runner, token)) = leases.remove(&i) else {
                continue; // cancelled while it ran
            };
            run.complete_job(CompleteJobRequest {
                job: format!("jobs/{}", i + 1),
                runner,
                fencing_token: token,
                success: !all_jobs[i].fails,
                exit_code: i32::from(all_jobs[i].fails),
                ..Default::default()
            })
            .await
            .expect("complete");
        }
        let now_log = log(&srv);
        let mut started: Vec<u64> = Vec::new();
        for (_, d) in &now_log[seen..] {
            match *d {
                Decision::Start { job, .. } => started.push(job.0),
                Decision::Cancel {
                    job,
                    runner: Some(_),
                    ..
                } => {
                    leases.remove(&(job.0 as usize - 1));
                }
                _ => {}
            }
        }
        seen = now_log.len();
        let mut new = lease_all(&mut run).await;
        assert_eq!(
            new.len(),
            started.len(),
            "at {t}: every job started is leased at once"
        );
        // Finish events in the order of the starts, as the engine pushes them.
        new.sort_by_key(|(idx, ..)| started.iter().position(|&j| j == *idx as u64 + 1));
        for (idx, runner, token, start) in new {
            leases.insert(idx, (runner, token));
            queue.push(Reverse((start + all_jobs[idx].run, FINISH, seq, idx)));
            seq += 1;
        }
    }
    let live_log = log(&srv);
    for (n, (a, b)) in expected.iter().zip(&live_log).enumerate() {
        assert_eq!(a, b, "decision {n} differs: simulator {a:?}, live {b:?}");
    }
    assert_eq!(live_log.len(), expected.len(), "same number of decisions");

    // Every job's stored end state is its fate in the engine, every pipeline's end its.
    let ids = LiveIds::new(&pipes);
    for (p, pipe) in pipes.iter().enumerate() {
        let name = format!("pipelines/{}", ids.first_job[p] + 1);
        let got = api
            .get_pipeline(GetPipelineRequest { name: name.clone() })
            .await
            .expect("get pipeline")
            .into_inner();
        let want = expected.iter().find_map(|(_, d)| match d {
            Decision::PipelineEnded { pipeline, state } if pipeline.0 == ids.first_job[p] + 1 => {
                Some(*state)
            }
            _ => None,
        });
        let state = match want {
            Some(PipelineState::Succeeded) => pb::PipelineState::Succeeded,
            Some(PipelineState::Failed) => pb::PipelineState::Failed,
            Some(PipelineState::Cancelled) => pb::PipelineState::Cancelled,
            Some(PipelineState::Blocked) => pb::PipelineState::Blocked,
            None => pb::PipelineState::Running,
        };
        assert_eq!(got.state, state as i32, "{name}: state");
        assert_eq!(got.jobs.len(), pipe.jobs.len(), "{name}: jobs");
        for (k, job) in got.jobs.iter().enumerate() {
            let fate = fates[ids.first_job[p] as usize + k];
            let want = match fate {
                Some(Fate::Finished) => pb::PipelineJobState::Succeeded,
                Some(Fate::Failed) => pb::PipelineJobState::Failed,
                Some(Fate::Cancelled) => pb::PipelineJobState::Cancelled,
                Some(Fate::Skipped) => pb::PipelineJobState::Skipped,
                other => panic!("{name} {}: unexpected fate {other:?}", job.name),
            };
            assert_eq!(job.state, want as i32, "{name} {}: state", job.name);
        }
    }
    srv.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_and_live_service_run_pipelines_alike_under_fair_share() {
    pipelines_parity(POLICY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_and_live_service_run_pipelines_alike_by_critical_path() {
    pipelines_parity("critical-path").await;
}
