//! Crashes, on each store (SQLite in the data directory, MongoDB): `rustci serve` killed
//! with SIGKILL under load and restarted on its store; a runner killed with SIGKILL
//! mid-job. Checked from the jobs' side effects
//! (start/end records per execution): no acknowledged job is lost, none ran twice at
//! the same time, and a dead runner's late completion is refused.

use crate::common;
use crate::stores::{on_both_stores, Backend, TestStore};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{
    executions, kill_group, list_all, now_ns, recorded, wait_for, wait_job_state, wait_ready,
    wait_runners, Execution, Procs,
};
use rustci_control::pb;
use tonic::Code;

const JOBS: usize = 300;

on_both_stores!(
    server_killed_under_load_loses_nothing,
    runner_killed_mid_job_lease_expires_and_stale_completion_is_refused,
    lease_not_handed_over_before_a_crash_is_handed_over_after,
);

async fn server_killed_under_load_loses_nothing(backend: Backend, test: &str) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let data = store.data_dir();
    let side = dir.path().join("runs.log");
    let server_log = dir.path().join("server.log");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::new();
    let mut serve_args = vec!["--lease-ttl-ms", "5000"];
    serve_args.extend(store.serve_args());
    procs.server("server", port, data, &serve_args, &server_log);
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    procs.runner(
        "crash-r",
        &url,
        "p",
        "linux",
        4,
        None,
        &[],
        &dir.path().join("runner.log"),
    );
    wait_runners(&c, "p", 1, Duration::from_secs(20)).await;

    // The submitter retries every submit with the same request id until it is
    // acknowledged, through the crash.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let submitter = {
        let c = c.clone();
        let acked = acked.clone();
        let side = side.clone();
        tokio::spawn(async move {
            let mut retried = 0usize;
            for i in 0..JOBS {
                let req = format!("req-{i}");
                let sleep = format!("sleep 0.{:02}", 5 + (i * 7) % 16);
                let command = recorded(&side, "x", &sleep);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let mut jobs = c.jobs.clone();
                    match jobs
                        .submit_job(pb::SubmitJobRequest {
                            request_id: req.clone(),
                            tenant: "t".into(),
                            labels: vec!["linux".into()],
                            command: command.clone(),
                            ..Default::default()
                        })
                        .await
                    {
                        Ok(r) => {
                            acked
                                .lock()
                                .expect("lock")
                                .push((req.clone(), r.into_inner().name));
                            break;
                        }
                        Err(s) => {
                            // A request in flight when the server dies comes back as
                            // Unavailable, Unknown or (hyper: "connection closed")
                            // Cancelled; the retry with the same request id is the same.
                            assert!(
                                matches!(
                                    s.code(),
                                    Code::Unavailable | Code::Unknown | Code::Cancelled
                                ),
                                "submit {req}: unexpected {s}"
                            );
                            assert!(Instant::now() < deadline, "submit {req}: still {s}");
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            retried
        })
    };

    // Kill -9 mid-way: once 100 submits are acknowledged and 30 jobs have finished (so
    // jobs are queued, leased and finished at the moment of the crash).
    wait_for(
        "load before the crash",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let n = acked.lock().expect("lock").len();
            let done = executions(&side)
                .iter()
                .filter(|e| e.end_ns.is_some())
                .count();
            async move {
                if n >= 100 && done >= 30 {
                    Ok(())
                } else {
                    Err(format!("{n} acknowledged, {done} finished"))
                }
            }
        },
    )
    .await;
    let acked_at_crash = acked.lock().expect("lock").len();
    let crash = Instant::now();
    procs.kill9("server");
    procs.server("server", port, data, &serve_args, &server_log);
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    let restart_ms = crash.elapsed().as_millis();

    let retried = tokio::time::timeout(Duration::from_secs(120), submitter)
        .await
        .expect("the submitter did not finish in 120 s")
        .expect("submitter task");
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), JOBS);

    let want: HashMap<String, String> = acked
        .iter()
        .map(|(req, name)| (name.clone(), req.clone()))
        .collect();
    assert_eq!(
        want.len(),
        JOBS,
        "each request id got its own job (a retried submit returns the first job)"
    );
    wait_for(
        "every acknowledged job to succeed after the restart",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            let c = c.clone();
            async move {
                let all = list_all(&c, "", pb::JobState::Unspecified, 1000)
                    .await
                    .map_err(|s| s.to_string())?;
                let mut by_state: HashMap<i32, usize> = HashMap::new();
                for j in &all {
                    *by_state.entry(j.state).or_default() += 1;
                }
                let ok = by_state
                    .get(&(pb::JobState::Succeeded as i32))
                    .copied()
                    .unwrap_or(0);
                if ok == JOBS {
                    Ok(())
                } else {
                    let stuck: Vec<String> = all
                        .iter()
                        .filter(|j| j.state != pb::JobState::Succeeded as i32)
                        .take(5)
                        .map(|j| {
                            format!(
                                "{} {} on {:?} attempts {}",
                                j.name,
                                rustci_control::clients::client::state_name(j.state),
                                j.runner,
                                j.attempts
                            )
                        })
                        .collect();
                    Err(format!(
                        "{} jobs, {ok} succeeded, by state {by_state:?}, e.g. {stuck:?}",
                        all.len()
                    ))
                }
            }
        },
    )
    .await;
    procs.assert_alive();

    let all = list_all(&c, "", pb::JobState::Unspecified, 1000)
        .await
        .expect("ListJobs");
    assert_eq!(all.len(), JOBS, "no duplicate jobs from retried submits");
    for j in &all {
        assert!(want.contains_key(&j.name), "unexpected job {}", j.name);
        assert_eq!(j.request_id, want[&j.name]);
    }

    let execs = executions(&side);
    let reruns = check_executions(&execs, &want.keys().cloned().collect());
    eprintln!(
        "crash ({backend:?}): {JOBS} jobs; server killed after {acked_at_crash} acknowledged submits, answering again {restart_ms} ms later; {retried} submit retries; {} executions, {reruns} job(s) ran more than once (never concurrently); total {:.2} s",
        execs.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(procs);
    store.finish().await;
}

/// Every job ran to its end at least once, no execution was cut off, and no two
/// executions of a job overlap. Returns how many jobs ran more than once.
fn check_executions(execs: &[Execution], jobs: &HashSet<String>) -> usize {
    let mut by_job: HashMap<&str, Vec<&Execution>> = HashMap::new();
    for e in execs {
        assert!(jobs.contains(&e.job), "an unknown job ran: {e:?}");
        by_job.entry(e.job.as_str()).or_default().push(e);
    }
    let mut reruns = 0;
    for job in jobs {
        let mut runs = by_job.remove(job.as_str()).unwrap_or_default();
        assert!(!runs.is_empty(), "{job} never ran");
        if runs.len() > 1 {
            reruns += 1;
        }
        runs.sort_by_key(|e| e.start_ns);
        for e in &runs {
            assert!(e.end_ns.is_some(), "{job}: an execution was cut off: {e:?}");
        }
        for w in runs.windows(2) {
            let end = w[0].end_ns.unwrap_or(u128::MAX);
            assert!(
                end <= w[1].start_ns,
                "{job} ran twice at the same time: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
    reruns
}

async fn runner_killed_mid_job_lease_expires_and_stale_completion_is_refused(
    backend: Backend,
    test: &str,
) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let side = dir.path().join("runs.log");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::new();
    let mut serve_args = vec!["--lease-ttl-ms", "1000"];
    serve_args.extend(store.serve_args());
    procs.server(
        "server",
        port,
        store.data_dir(),
        &serve_args,
        &dir.path().join("server.log"),
    );
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    procs.runner(
        "runner-a",
        &url,
        "p",
        "linux",
        1,
        None,
        &[],
        &dir.path().join("runner-a.log"),
    );
    wait_runners(&c, "p", 1, Duration::from_secs(20)).await;

    let mut jobs = c.jobs.clone();
    let job = jobs
        .submit_job(pb::SubmitJobRequest {
            request_id: "long-1".into(),
            tenant: "t".into(),
            labels: vec!["linux".into()],
            command: recorded(&side, "$RUSTCI_FENCING_TOKEN", "sleep 2"),
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner();
    let name = job.name.clone();

    // Runner A starts it; the side effect carries A's fencing token and process group.
    let first = wait_for(
        "runner A to start the job",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let ex = executions(&side);
            async move {
                ex.into_iter()
                    .next()
                    .ok_or_else(|| "no execution".to_string())
            }
        },
    )
    .await;
    let token_a: u64 = first.tag.parse().expect("fencing token in the side effect");
    let j = jobs
        .get_job(pb::GetJobRequest { name: name.clone() })
        .await
        .expect("GetJob")
        .into_inner();
    assert_eq!(j.state, pb::JobState::Leased as i32);
    assert_eq!(j.runner, "runners/runner-a");
    assert_eq!(j.attempts, 1);

    // The machine dies: the runner and its job, with SIGKILL.
    procs.kill_group_later(first.pid);
    procs.kill9("runner-a");
    kill_group(first.pid);
    let killed_ns = now_ns();
    let killed = Instant::now();

    // The lease expires (TTL 1 s) and the job goes back to the queue.
    wait_job_state(
        &jobs,
        &name,
        pb::JobState::Queued,
        "the dead runner's job to be requeued",
        Duration::from_secs(10),
        Duration::from_millis(20),
    )
    .await;
    let requeued_ms = killed.elapsed().as_millis();
    assert!(
        requeued_ms >= 500,
        "requeued {requeued_ms} ms after the kill: before the lease could expire"
    );

    let stale = |runner: &str, token: u64| pb::CompleteJobRequest {
        job: name.clone(),
        runner: runner.to_string(),
        fencing_token: token,
        success: true,
        exit_code: 0,
        started_ms: 0,
        ended_ms: 0,
    };
    let mut runners = c.runners.clone();
    let e = runners
        .complete_job(stale("runners/runner-a", token_a))
        .await
        .expect_err("a completion of an expired lease must be refused");
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "dead runner's completion of a requeued job: {e}"
    );

    // Another runner picks it up and runs it to the end.
    procs.runner(
        "runner-b",
        &url,
        "p",
        "linux",
        1,
        None,
        &[],
        &dir.path().join("runner-b.log"),
    );
    let second = wait_for(
        "runner B to start the job",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let ex = executions(&side);
            async move {
                ex.into_iter()
                    .nth(1)
                    .ok_or_else(|| "one execution".to_string())
            }
        },
    )
    .await;
    let token_b: u64 = second.tag.parse().expect("fencing token");
    assert!(token_b > token_a, "a new lease has a larger fencing token");
    assert!(
        second.start_ns >= killed_ns,
        "the second run started before the first was killed"
    );
    // While B holds the lease, A's (and any wrong token's) completion is refused.
    for (runner, token) in [
        ("runners/runner-a", token_a),
        ("runners/runner-b", token_a),
        ("runners/runner-a", token_b),
    ] {
        let e = runners
            .complete_job(stale(runner, token))
            .await
            .expect_err("must be refused");
        assert_eq!(
            e.code(),
            Code::FailedPrecondition,
            "{runner} with token {token} while runner-b holds {token_b}: {e}"
        );
    }

    let done = wait_job_state(
        &jobs,
        &name,
        pb::JobState::Succeeded,
        "runner B to finish the job",
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(done.runner, "runners/runner-b");
    assert_eq!(done.attempts, 2, "the lost lease counts as an attempt");
    let e = runners
        .complete_job(stale("runners/runner-a", token_a))
        .await
        .expect_err("a late completion of a finished job must be refused");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    let j = jobs
        .get_job(pb::GetJobRequest { name: name.clone() })
        .await
        .expect("GetJob")
        .into_inner();
    assert_eq!(j, done, "the refused completion changed nothing");

    // Side effects: A's run was cut off, B's ran to the end, never at the same time.
    let ex = executions(&side);
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert!(ex[0].end_ns.is_none(), "runner A's run was killed: {ex:?}");
    assert!(ex[1].end_ns.is_some(), "runner B's run finished: {ex:?}");
    assert_eq!(ex[1].tag, token_b.to_string());
    procs.assert_alive();
    eprintln!(
        "crash ({backend:?}): runner killed mid-job; requeued {requeued_ms} ms later (TTL 1000 ms); finished on runner B; total {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    drop(procs);
    store.finish().await;
}

/// A lease made durable but never handed over (the server died between leasing a job
/// and the runner's AcquireJobs) must still reach the runner after a restart; otherwise
/// the runner's heartbeats keep an invisible lease alive forever.
async fn lease_not_handed_over_before_a_crash_is_handed_over_after(backend: Backend, test: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let data = store.data_dir();
    let log = dir.path().join("server.log");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::new();
    let mut serve_args = vec!["--lease-ttl-ms", "3000"];
    serve_args.extend(store.serve_args());
    procs.server("server", port, data, &serve_args, &log);
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    // The test is the runner.
    let mut runners = c.runners.clone();
    runners
        .register_runner(pb::RegisterRunnerRequest {
            runner_id: "manual".into(),
            pool: "p".into(),
            labels: vec!["linux".into()],
            slots: 1,
        })
        .await
        .expect("register");
    let job = c
        .jobs
        .clone()
        .submit_job(pb::SubmitJobRequest {
            request_id: "r1".into(),
            tenant: "t".into(),
            labels: vec!["linux".into()],
            command: "true".into(),
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(
        job.state,
        pb::JobState::Leased as i32,
        "a free runner: leased at once"
    );

    procs.kill9("server");
    procs.server("server", port, data, &serve_args, &log);
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    let mut runners = c.runners.clone();
    runners
        .heartbeat(pb::HeartbeatRequest {
            name: "runners/manual".into(),
        })
        .await
        .expect("the restarted server knows the runner");
    let got = runners
        .acquire_jobs(pb::AcquireJobsRequest {
            name: "runners/manual".into(),
            max_jobs: 1,
            wait_ms: 2_000,
        })
        .await
        .expect("AcquireJobs")
        .into_inner();
    assert_eq!(
        got.leases.len(),
        1,
        "the lease of {} was never handed over and is lost (log: {})",
        job.name,
        common::tail(&log, 5)
    );
    let lease = &got.leases[0];
    assert_eq!(
        lease.job.as_ref().map(|j| j.name.as_str()),
        Some(job.name.as_str())
    );
    runners
        .complete_job(pb::CompleteJobRequest {
            job: job.name.clone(),
            runner: "runners/manual".into(),
            fencing_token: lease.fencing_token,
            success: true,
            ..Default::default()
        })
        .await
        .expect("completing the restored lease");
    drop(procs);
    store.finish().await;
}
