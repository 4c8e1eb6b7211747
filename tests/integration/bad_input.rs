//! Must-show 4: every RPC with a missing, oversized or invalid field gets
//! INVALID_ARGUMENT naming the field; an unknown key gets UNAUTHENTICATED; nothing
//! panics and nothing is stored. Real gRPC over a loopback socket.

use rustci_control::pb::fleet_service_client::FleetServiceClient;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use rustci_control::server::{start, ServeOptions};
use tonic::{Code, Request};

use crate::common::{expect_invalid, serve_with_auth, with_key, TEAM_A_AUTH as AUTH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_names_the_bad_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve_with_auth(dir.path(), AUTH).await;
    let mut jobs = JobServiceClient::new(ch.clone());
    let mut runners = RunnerServiceClient::new(ch.clone());
    let mut fleet = FleetServiceClient::new(ch);
    let (k, rt) = ("key-team-a-1", "runner-token-1");
    let ok = || SubmitJobRequest {
        request_id: "r1".into(),
        command: "true".into(),
        ..Default::default()
    };

    // SubmitJob
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                request_id: String::new(),
                ..ok()
            },
        ))
        .await,
        "request_id",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                request_id: "x".repeat(129),
                ..ok()
            },
        ))
        .await,
        "request_id",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                labels: vec!["a b".into()],
                ..ok()
            },
        ))
        .await,
        "labels",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                labels: (0..17).map(|i| format!("l{i}")).collect(),
                ..ok()
            },
        ))
        .await,
        "labels",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                slots: 100_000,
                ..ok()
            },
        ))
        .await,
        "slots",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                command: "x".repeat(70_000),
                ..ok()
            },
        ))
        .await,
        "command",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                qos: "platinum".into(),
                ..ok()
            },
        ))
        .await,
        "qos",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                requested_ms: -5,
                ..ok()
            },
        ))
        .await,
        "requested_ms",
    );
    expect_invalid(
        jobs.submit_job(with_key(
            k,
            SubmitJobRequest {
                branch: "b".repeat(300),
                ..ok()
            },
        ))
        .await,
        "branch",
    );
    // GetJob, CancelJob, ExplainJob
    for name in ["", "jobs/", "jobs/abc", "runners/1", "jobs/0", "jobs/-1"] {
        expect_invalid(
            jobs.get_job(with_key(k, GetJobRequest { name: name.into() }))
                .await,
            "name",
        );
        expect_invalid(
            jobs.cancel_job(with_key(k, CancelJobRequest { name: name.into() }))
                .await,
            "name",
        );
        expect_invalid(
            jobs.explain_job(with_key(k, ExplainJobRequest { name: name.into() }))
                .await,
            "name",
        );
    }
    // ListJobs
    expect_invalid(
        jobs.list_jobs(with_key(
            k,
            ListJobsRequest {
                page_size: -1,
                ..Default::default()
            },
        ))
        .await,
        "page_size",
    );
    expect_invalid(
        jobs.list_jobs(with_key(
            k,
            ListJobsRequest {
                page_size: 5000,
                ..Default::default()
            },
        ))
        .await,
        "page_size",
    );
    expect_invalid(
        jobs.list_jobs(with_key(
            k,
            ListJobsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        ))
        .await,
        "page_token",
    );
    expect_invalid(
        jobs.list_jobs(with_key(
            k,
            ListJobsRequest {
                state: 42,
                ..Default::default()
            },
        ))
        .await,
        "state",
    );
    // RegisterRunner
    let reg = || RegisterRunnerRequest {
        runner_id: "w1".into(),
        pool: "lin".into(),
        labels: vec!["linux".into()],
        slots: 1,
    };
    expect_invalid(
        runners
            .register_runner(with_key(
                rt,
                RegisterRunnerRequest {
                    pool: String::new(),
                    ..reg()
                },
            ))
            .await,
        "pool",
    );
    expect_invalid(
        runners
            .register_runner(with_key(
                rt,
                RegisterRunnerRequest {
                    runner_id: "a/b".into(),
                    ..reg()
                },
            ))
            .await,
        "runner_id",
    );
    expect_invalid(
        runners
            .register_runner(with_key(
                rt,
                RegisterRunnerRequest {
                    slots: 5000,
                    ..reg()
                },
            ))
            .await,
        "slots",
    );
    expect_invalid(
        runners
            .register_runner(with_key(
                rt,
                RegisterRunnerRequest {
                    labels: vec![String::new()],
                    ..reg()
                },
            ))
            .await,
        "labels",
    );
    // Heartbeat, AcquireJobs, CompleteJob, DrainRunner
    for name in ["", "w1", "jobs/1", "runners/"] {
        expect_invalid(
            runners
                .heartbeat(with_key(rt, HeartbeatRequest { name: name.into() }))
                .await,
            "name",
        );
        expect_invalid(
            runners
                .acquire_jobs(with_key(
                    rt,
                    AcquireJobsRequest {
                        name: name.into(),
                        ..Default::default()
                    },
                ))
                .await,
            "name",
        );
        expect_invalid(
            runners
                .drain_runner(with_key(rt, DrainRunnerRequest { name: name.into() }))
                .await,
            "name",
        );
    }
    let acq = || AcquireJobsRequest {
        name: "runners/w1".into(),
        max_jobs: 1,
        wait_ms: 0,
    };
    expect_invalid(
        runners
            .acquire_jobs(with_key(
                rt,
                AcquireJobsRequest {
                    max_jobs: 100_000,
                    ..acq()
                },
            ))
            .await,
        "max_jobs",
    );
    expect_invalid(
        runners
            .acquire_jobs(with_key(
                rt,
                AcquireJobsRequest {
                    wait_ms: -1,
                    ..acq()
                },
            ))
            .await,
        "wait_ms",
    );
    expect_invalid(
        runners
            .acquire_jobs(with_key(
                rt,
                AcquireJobsRequest {
                    wait_ms: 3_600_000,
                    ..acq()
                },
            ))
            .await,
        "wait_ms",
    );
    let done = || CompleteJobRequest {
        job: "jobs/1".into(),
        runner: "runners/w1".into(),
        fencing_token: 1,
        ..Default::default()
    };
    expect_invalid(
        runners
            .complete_job(with_key(
                rt,
                CompleteJobRequest {
                    job: "1".into(),
                    ..done()
                },
            ))
            .await,
        "job",
    );
    expect_invalid(
        runners
            .complete_job(with_key(
                rt,
                CompleteJobRequest {
                    runner: String::new(),
                    ..done()
                },
            ))
            .await,
        "runner",
    );
    expect_invalid(
        runners
            .complete_job(with_key(
                rt,
                CompleteJobRequest {
                    fencing_token: 0,
                    ..done()
                },
            ))
            .await,
        "fencing_token",
    );
    // Timings: both or neither, positive, in order.
    for (started_ms, ended_ms, field) in [
        (1_700_000_000_000, 0, "ended_ms"),
        (0, 1_700_000_000_000, "started_ms"),
        (-5, 1_700_000_000_000, "started_ms"),
        (1_700_000_000_000, 1_699_999_999_000, "ended_ms"),
    ] {
        expect_invalid(
            runners
                .complete_job(with_key(
                    rt,
                    CompleteJobRequest {
                        started_ms,
                        ended_ms,
                        ..done()
                    },
                ))
                .await,
            field,
        );
    }

    // SubmitJobs: all or nothing, the bad field named with its index.
    let batch = |reqs: Vec<SubmitJobRequest>| SubmitJobsRequest { requests: reqs };
    expect_invalid(
        jobs.submit_jobs(with_key(k, batch(vec![]))).await,
        "requests",
    );
    expect_invalid(
        jobs.submit_jobs(with_key(
            k,
            batch(vec![
                ok(),
                SubmitJobRequest {
                    request_id: "r2".into(),
                    labels: vec!["a,b".into()],
                    ..ok()
                },
            ]),
        ))
        .await,
        "requests[1].labels",
    );
    // CompleteJobs: an empty call is invalid; bad items are refused one by one.
    expect_invalid(
        runners
            .complete_jobs(with_key(
                rt,
                CompleteJobsRequest {
                    completions: vec![],
                },
            ))
            .await,
        "completions",
    );
    let res = runners
        .complete_jobs(with_key(
            rt,
            CompleteJobsRequest {
                completions: vec![
                    CompleteJobRequest {
                        fencing_token: 0,
                        ..done()
                    },
                    CompleteJobRequest {
                        started_ms: 2_000,
                        ended_ms: 1_000,
                        ..done()
                    },
                ],
            },
        ))
        .await
        .expect("per-item results")
        .into_inner();
    for (r, field) in res
        .results
        .iter()
        .zip(["completions[0].fencing_token", "completions[1].ended_ms"])
    {
        assert_eq!(r.code, Code::InvalidArgument as i32);
        assert!(r.message.starts_with(field), "{r:?}");
    }

    // Nothing of the above was stored.
    let all = jobs
        .list_jobs(with_key(k, ListJobsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(all.jobs.is_empty(), "{:?}", all.jobs);

    // Authentication: unknown key, missing key, wrong kind of credential.
    for r in [
        jobs.submit_job(with_key("not-a-key-at-all", ok()))
            .await
            .map(|_| ()),
        jobs.submit_job(Request::new(ok())).await.map(|_| ()),
        fleet
            .get_queue_stats(with_key("nope-nope-nope", GetQueueStatsRequest {}))
            .await
            .map(|_| ()),
    ] {
        let s = r.expect_err("must be refused");
        assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
        assert!(
            !s.message().contains("not-a-key"),
            "the key must not be echoed: {}",
            s.message()
        );
    }
    let s = runners
        .register_runner(with_key(k, reg()))
        .await
        .expect_err("tenant key on runner API");
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = jobs
        .submit_job(with_key(rt, ok()))
        .await
        .expect_err("runner token on job API");
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = jobs
        .submit_job(with_key(
            k,
            SubmitJobRequest {
                tenant: "team-b".into(),
                ..ok()
            },
        ))
        .await
        .expect_err("other tenant");
    assert_eq!(s.code(), Code::PermissionDenied);

    // Not found and failed precondition, for completeness.
    let s = jobs
        .get_job(with_key(
            k,
            GetJobRequest {
                name: "jobs/999".into(),
            },
        ))
        .await
        .expect_err("missing");
    assert_eq!(s.code(), Code::NotFound);
    let s = runners
        .heartbeat(with_key(
            rt,
            HeartbeatRequest {
                name: "runners/ghost".into(),
            },
        ))
        .await
        .expect_err("unknown runner");
    assert_eq!(s.code(), Code::NotFound);
    srv.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_refuses_a_public_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = start(ServeOptions {
        listen: "0.0.0.0:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..ServeOptions::default()
    })
    .await
    .expect_err("no --auth on a public address");
    assert!(err.to_string().contains("without --auth"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_submit_together_and_complete_item_by_item() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve_with_auth(dir.path(), AUTH).await;
    let mut jobs = JobServiceClient::new(ch.clone());
    let mut runners = RunnerServiceClient::new(ch);
    let (k, rt) = ("key-team-a-1", "runner-token-1");
    runners
        .register_runner(with_key(
            rt,
            RegisterRunnerRequest {
                runner_id: "w1".into(),
                pool: "lin".into(),
                labels: vec!["linux".into()],
                slots: 8,
            },
        ))
        .await
        .expect("register");
    let reqs: Vec<SubmitJobRequest> = (0..5)
        .map(|i| SubmitJobRequest {
            request_id: format!("b{i}"),
            labels: vec!["linux".into()],
            command: "true".into(),
            ..Default::default()
        })
        .collect();
    let first = jobs
        .submit_jobs(with_key(
            k,
            SubmitJobsRequest {
                requests: reqs.clone(),
            },
        ))
        .await
        .expect("batch")
        .into_inner()
        .jobs;
    assert_eq!(first.len(), 5);
    // Idempotent as a whole and per request.
    let again = jobs
        .submit_jobs(with_key(k, SubmitJobsRequest { requests: reqs }))
        .await
        .expect("batch again")
        .into_inner()
        .jobs;
    assert_eq!(
        first.iter().map(|j| &j.name).collect::<Vec<_>>(),
        again.iter().map(|j| &j.name).collect::<Vec<_>>()
    );
    let leases = runners
        .acquire_jobs(with_key(
            rt,
            AcquireJobsRequest {
                name: "runners/w1".into(),
                max_jobs: 10,
                wait_ms: 2000,
            },
        ))
        .await
        .expect("acquire")
        .into_inner()
        .leases;
    assert_eq!(leases.len(), 5);
    let mut completions: Vec<CompleteJobRequest> = leases
        .iter()
        .map(|l| CompleteJobRequest {
            job: l.job.as_ref().expect("job").name.clone(),
            runner: "runners/w1".into(),
            fencing_token: l.fencing_token,
            success: true,
            ..Default::default()
        })
        .collect();
    // One stale token among them.
    completions[2].fencing_token += 1000;
    let results = runners
        .complete_jobs(with_key(rt, CompleteJobsRequest { completions }))
        .await
        .expect("complete batch")
        .into_inner()
        .results;
    let codes: Vec<i32> = results.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![0, 0, Code::FailedPrecondition as i32, 0, 0]);
    assert_eq!(
        results[0].job.as_ref().expect("job").state,
        JobState::Succeeded as i32
    );
    let succeeded = jobs
        .list_jobs(with_key(
            k,
            ListJobsRequest {
                state: JobState::Succeeded as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .jobs;
    assert_eq!(succeeded.len(), 4, "the accepted completions are stored");
    srv.stop().await.expect("stop");
}
