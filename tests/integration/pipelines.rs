//! Pipelines over a real socket (`rustci.v1.PipelineService`): an in-process server,
//! two runners with different labels driven through the runner API; every job's final
//! state is checked against the table GitLab would give, each job ran at most once, on
//! a runner with its labels, after its needs; bad pipelines are refused naming the job
//! or the field, and nothing of them is stored.

use std::collections::BTreeMap;

use rustci_control::pb;
use rustci_control::pb::pipeline_service_client::PipelineServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::server::{self, ServeOptions};
use tonic::Code;

use rustci_control::pb::job_service_client::JobServiceClient;

use crate::common::{
    complete_ok, expect_code, expect_invalid, lease_one, local_server, owner_channel, OwnerChannel,
};

fn job(name: &str, stage_index: u32, needs: Option<&[&str]>, label: &str) -> pb::PipelineJobSpec {
    pb::PipelineJobSpec {
        name: name.into(),
        stage: ["build", "test", "deploy"][stage_index as usize].into(),
        stage_index,
        needs: needs.map(|n| pb::Needs {
            names: n.iter().map(|s| s.to_string()).collect(),
        }),
        labels: vec![label.into()],
        command: format!("make {name}"),
        requested_ms: 60_000,
        ..pb::PipelineJobSpec::default()
    }
}

fn request(id: &str, jobs: Vec<pb::PipelineJobSpec>) -> pb::SubmitPipelineRequest {
    pb::SubmitPipelineRequest {
        request_id: id.into(),
        tenant: "team".into(),
        project: "shop".into(),
        git_ref: "main".into(),
        auto_cancel: true,
        auto_cancel_mode: pb::AutoCancel::Unspecified as i32,
        jobs,
    }
}

/// Stage build: `build: [linux]`, `build: [arm]`, and lint (no needs, may fail, fails);
/// stage test: each test needs its build, `test: [arm]` fails; stage deploy: deploy
/// (every earlier job) and cleanup (`when: always`).
fn release() -> Vec<pb::PipelineJobSpec> {
    let mut lint = job("lint", 0, Some(&[]), "linux");
    lint.allow_failure = true;
    let mut cleanup = job("cleanup", 2, None, "linux");
    cleanup.when = pb::When::Always as i32;
    vec![
        job("build: [linux]", 0, None, "linux"),
        job("build: [arm]", 0, None, "arm"),
        lint,
        job("test: [linux]", 1, Some(&["build: [linux]"]), "linux"),
        job("test: [arm]", 1, Some(&["build: [arm]"]), "arm"),
        job("deploy", 2, None, "linux"),
        cleanup,
    ]
}

const FAILING: [&str; 2] = ["lint", "test: [arm]"];

async fn register(run: &mut RunnerServiceClient<OwnerChannel>, id: &str, label: &str) {
    run.register_runner(pb::RegisterRunnerRequest {
        runner_id: id.into(),
        pool: label.into(),
        labels: vec![label.into()],
        slots: 1,
    })
    .await
    .expect("register");
}

async fn get(pipes: &mut PipelineServiceClient<OwnerChannel>, name: &str) -> pb::Pipeline {
    pipes
        .get_pipeline(pb::GetPipelineRequest { name: name.into() })
        .await
        .expect("get pipeline")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_over_the_api_as_gitlab_would_run_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..ServeOptions::default()
    })
    .await
    .expect("server starts");
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());

    // No runner has the labels yet: refused, nothing stored.
    let refused = pipes.submit_pipeline(request("p1", release())).await;
    let s = expect_code(refused, Code::FailedPrecondition, "no runner");
    assert!(s.message().contains("build: [linux]"), "{s:?}");
    register(&mut run, "lin", "linux").await;
    register(&mut run, "arm", "arm").await;

    // Bad pipelines name the job or the field.
    let mut cycle = release();
    cycle[0].needs = Some(pb::Needs {
        names: vec!["lint".into()],
    });
    cycle[2].needs = Some(pb::Needs {
        names: vec!["build: [linux]".into()],
    });
    let s = expect_code(
        pipes.submit_pipeline(request("bad", cycle)).await,
        Code::InvalidArgument,
        "cycle",
    );
    assert!(s.message().contains("cycle"), "{s:?}");
    assert!(s.message().contains("lint"), "{s:?}");
    let mut unknown = release();
    unknown[3].needs = Some(pb::Needs {
        names: vec!["nope".into()],
    });
    let s = expect_code(
        pipes.submit_pipeline(request("bad", unknown)).await,
        Code::InvalidArgument,
        "unknown need",
    );
    assert!(s.message().contains("\"nope\""), "{s:?}");
    assert!(s.message().contains("test: [linux]"), "{s:?}");
    let mut twice = release();
    twice[1].name = "lint".into();
    let s = expect_code(
        pipes.submit_pipeline(request("bad", twice)).await,
        Code::InvalidArgument,
        "duplicate name",
    );
    assert!(s.message().contains("\"lint\""), "{s:?}");
    let many: Vec<pb::PipelineJobSpec> = (0..10_001)
        .map(|i| job(&format!("j{i}"), 0, Some(&[]), "linux"))
        .collect();
    let s = expect_code(
        pipes.submit_pipeline(request("bad", many)).await,
        Code::InvalidArgument,
        "too many jobs",
    );
    assert!(s.message().contains("10000"), "{s:?}");
    let mut no_command = release();
    no_command[5].command.clear();
    let s = expect_code(
        pipes.submit_pipeline(request("bad", no_command)).await,
        Code::InvalidArgument,
        "no command",
    );
    assert!(s.message().contains("\"deploy\": command"), "{s:?}");
    expect_invalid(
        pipes
            .get_pipeline(pb::GetPipelineRequest {
                name: "jobs/1".into(),
            })
            .await,
        "name",
    );
    let none = pipes
        .list_pipelines(pb::ListPipelinesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        none.pipelines.is_empty(),
        "nothing of a refused pipeline is stored"
    );

    let p = pipes
        .submit_pipeline(request("p1", release()))
        .await
        .expect("submit")
        .into_inner();
    assert!(p.name.starts_with("pipelines/"), "{p:?}");
    assert_eq!(p.state, pb::PipelineState::Running as i32);
    assert!(p.predicted_finish_time_ms > 0, "{p:?}");
    let again = pipes
        .submit_pipeline(request("p1", release()))
        .await
        .expect("resubmit")
        .into_inner();
    assert_eq!(again.name, p.name, "the same request is the same pipeline");

    // The runners take what they are given until nothing is left; each completion is
    // checked against what had ended before it was leased.
    let mut ended: BTreeMap<String, bool> = BTreeMap::new();
    let mut ran_on: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..20 {
        let mut leased = Vec::new();
        for runner in ["lin", "arm"] {
            let leases = run
                .acquire_jobs(pb::AcquireJobsRequest {
                    name: format!("runners/{runner}"),
                    max_jobs: 1,
                    wait_ms: 0,
                })
                .await
                .expect("acquire")
                .into_inner()
                .leases;
            for l in leases {
                leased.push((runner, l));
            }
        }
        if leased.is_empty() {
            break;
        }
        for (runner, lease) in leased {
            let j = lease.job.clone().expect("job");
            let name = j.job_name.clone();
            assert_eq!(j.pipeline, p.name);
            // Its needs all ended before it was leased.
            let needs: Vec<String> = if j.needs_stages {
                let stage = ["build", "test", "deploy"]
                    .iter()
                    .position(|s| *s == j.stage)
                    .expect("stage");
                release()
                    .iter()
                    .filter(|o| (o.stage_index as usize) < stage)
                    .map(|o| o.name.clone())
                    .collect()
            } else {
                j.needs.clone()
            };
            for n in &needs {
                assert!(
                    ended.contains_key(n),
                    "{name} leased before its need {n} ended"
                );
            }
            assert!(
                ran_on.insert(name.clone(), runner.to_string()).is_none(),
                "{name} leased twice"
            );
            let success = !FAILING.contains(&name.as_str());
            run.complete_job(pb::CompleteJobRequest {
                job: j.name.clone(),
                runner: format!("runners/{runner}"),
                fencing_token: lease.fencing_token,
                success,
                exit_code: i32::from(!success),
                ..Default::default()
            })
            .await
            .expect("complete");
            ended.insert(name, success);
        }
    }

    use pb::PipelineJobState as S;
    let expected = [
        ("build: [linux]", S::Succeeded, Some("linux")),
        ("build: [arm]", S::Succeeded, Some("arm")),
        ("lint", S::Failed, Some("linux")),
        ("test: [linux]", S::Succeeded, Some("linux")),
        ("test: [arm]", S::Failed, Some("arm")),
        ("deploy", S::Skipped, None),
        ("cleanup", S::Succeeded, Some("linux")),
    ];
    let done = get(&mut pipes, &p.name).await;
    let got: Vec<(String, i32, Option<String>)> = done
        .jobs
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                j.state,
                ran_on.get(&j.name).map(|r| {
                    if r == "lin" {
                        "linux".to_string()
                    } else {
                        r.clone()
                    }
                }),
            )
        })
        .collect();
    let want: Vec<(String, i32, Option<String>)> = expected
        .iter()
        .map(|&(n, s, r)| (n.to_string(), s as i32, r.map(str::to_string)))
        .collect();
    assert_eq!(got, want);
    assert!(done.jobs.iter().all(|j| j.attempts <= 1), "{done:?}");
    // A job that failed without allow_failure fails the pipeline.
    assert_eq!(done.state, pb::PipelineState::Failed as i32);
    assert!(done.end_ms > 0 && done.predicted_finish_time_ms == done.end_ms);

    // Listing filters by state, project and ref, and pages.
    let list =
        |state: pb::PipelineState, project: &str, page_token: &str| pb::ListPipelinesRequest {
            state: state as i32,
            project: project.into(),
            page_size: 1,
            page_token: page_token.into(),
            with_jobs: true,
            ..Default::default()
        };
    let failed = pipes
        .list_pipelines(list(pb::PipelineState::Failed, "shop", ""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(failed.pipelines.len(), 1);
    assert_eq!(failed.pipelines[0].jobs.len(), 7);
    let other = pipes
        .list_pipelines(list(pb::PipelineState::Unspecified, "other", ""))
        .await
        .expect("list")
        .into_inner();
    assert!(other.pipelines.is_empty());
    let s = expect_code(
        pipes
            .cancel_pipeline(pb::CancelPipelineRequest {
                name: p.name.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "cancel an ended pipeline",
    );
    assert!(s.message().contains("already ended"), "{s:?}");

    // A second pipeline: its first job leased, then the pipeline is cancelled; the
    // runner is told on its heartbeat, the rest never starts.
    let p2 = pipes
        .submit_pipeline(request(
            "p2",
            vec![job("a", 0, None, "linux"), job("b", 1, None, "linux")],
        ))
        .await
        .expect("submit p2")
        .into_inner();
    let lease = lease_one(&mut run, "lin").await;
    let cancelled = pipes
        .cancel_pipeline(pb::CancelPipelineRequest {
            name: p2.name.clone(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, pb::PipelineState::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "cancelled");
    let states: Vec<i32> = cancelled.jobs.iter().map(|j| j.state).collect();
    assert_eq!(states, vec![S::Cancelled as i32, S::Cancelled as i32]);
    let hb = run
        .heartbeat(pb::HeartbeatRequest {
            name: "runners/lin".into(),
        })
        .await
        .expect("heartbeat")
        .into_inner();
    let a = lease.job.expect("job").name;
    assert!(hb.cancelled_jobs.contains(&a), "{hb:?}");
    let page = pipes
        .list_pipelines(list(pb::PipelineState::Unspecified, "", ""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.pipelines.len(), 1);
    let next = pipes
        .list_pipelines(list(
            pb::PipelineState::Unspecified,
            "",
            &page.next_page_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        [
            page.pipelines[0].name.clone(),
            next.pipelines[0].name.clone()
        ],
        [p.name.clone(), p2.name.clone()]
    );
    srv.stop().await.expect("stop");
}

/// A pipeline's request id stays taken after a restart, once the pipeline has ended: a
/// retry gets the ended pipeline, another body under it is ALREADY_EXISTS, a new request
/// id a new pipeline (the live service knows the store's request ids from its start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_pipelines_request_id_stays_taken_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..ServeOptions::default()
    };
    let one = || vec![job("build", 0, None, "linux")];
    let srv = server::start(opts()).await.expect("server starts");
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch);
    register(&mut run, "lin", "linux").await;
    let p = pipes
        .submit_pipeline(request("p1", one()))
        .await
        .expect("submit")
        .into_inner();
    let lease = lease_one(&mut run, "lin").await;
    run.complete_job(pb::CompleteJobRequest {
        job: lease.job.expect("job").name,
        runner: "runners/lin".into(),
        fencing_token: lease.fencing_token,
        success: true,
        ..Default::default()
    })
    .await
    .expect("complete");
    assert_eq!(
        get(&mut pipes, &p.name).await.state,
        pb::PipelineState::Succeeded as i32
    );
    srv.stop().await.expect("stop");

    let srv = server::start(opts()).await.expect("server restarts");
    let mut pipes = PipelineServiceClient::new(owner_channel(srv.addr).await);
    let again = pipes
        .submit_pipeline(request("p1", one()))
        .await
        .expect("resubmit")
        .into_inner();
    assert_eq!(
        (again.name.as_str(), again.state),
        (p.name.as_str(), pb::PipelineState::Succeeded as i32),
        "the same request is the ended pipeline"
    );
    expect_code(
        pipes
            .submit_pipeline(request("p1", vec![job("other", 0, None, "linux")]))
            .await,
        Code::AlreadyExists,
        "another body under a taken request id",
    );
    let p2 = pipes
        .submit_pipeline(request("p2", one()))
        .await
        .expect("a new request")
        .into_inner();
    assert_ne!(p2.name, p.name);
    srv.stop().await.expect("stop");
}

/// The next event of `stream`, or a failure naming what was awaited (a guard against a
/// hang, not a timing assumption: every awaited event follows a call that completed).
async fn next_event(stream: &mut tonic::Streaming<pb::JobEvent>, what: &str) -> pb::JobEvent {
    tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
        .await
        .unwrap_or_else(|_| panic!("no event for {what} in 30 s"))
        .expect("watch stream")
        .unwrap_or_else(|| panic!("the watch stream ended before {what}"))
}

/// `WatchJobs` for one pipeline: only its jobs' versions, each with the pipeline's state;
/// the versions that end the pipeline carry its end, live and when replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_jobs_follows_one_pipeline_to_its_end() {
    let (_dir, srv, _url) = local_server().await;
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());
    let mut jobs = JobServiceClient::new(ch.clone());
    register(&mut run, "lin", "linux").await;
    let p = pipes
        .submit_pipeline(request(
            "w1",
            vec![
                job("build", 0, None, "linux"),
                job("test", 1, None, "linux"),
            ],
        ))
        .await
        .expect("submit")
        .into_inner();
    // An independent job the pipeline's stream must not show.
    jobs.submit_job(pb::SubmitJobRequest {
        request_id: "solo".into(),
        tenant: "team".into(),
        labels: vec!["linux".into()],
        command: "true".into(),
        requested_ms: 60_000,
        ..Default::default()
    })
    .await
    .expect("submit a job");
    expect_invalid(
        jobs.watch_jobs(pb::WatchJobsRequest {
            pipeline: "jobs/1".into(),
            ..Default::default()
        })
        .await,
        "pipeline",
    );
    let watch = |jobs: &mut JobServiceClient<OwnerChannel>| {
        let mut jobs = jobs.clone();
        let pipeline = p.name.clone();
        async move {
            jobs.watch_jobs(pb::WatchJobsRequest {
                pipeline,
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner()
        }
    };
    let mut live = watch(&mut jobs).await;
    loop {
        let leases = run
            .acquire_jobs(pb::AcquireJobsRequest {
                name: "runners/lin".into(),
                max_jobs: 1,
                wait_ms: 0,
            })
            .await
            .expect("acquire")
            .into_inner()
            .leases;
        let Some(lease) = leases.first() else { break };
        complete_ok(&mut run, "lin", lease).await;
    }

    let running = pb::PipelineState::Running as i32;
    let succeeded = pb::PipelineState::Succeeded as i32;
    let mut seen = Vec::new();
    loop {
        let ev = next_event(&mut live, "the pipeline's end").await;
        let job = ev.job.as_ref().expect("job");
        assert_eq!(job.pipeline, p.name, "only the pipeline's jobs: {ev:?}");
        assert!(
            seen.last().is_none_or(|&(r, _)| r < ev.revision),
            "revisions in order"
        );
        seen.push((ev.revision, job.job_name.clone()));
        // An event carries the pipeline's state when it is sent: a stream behind the
        // runner may send an earlier version after the pipeline ended, but never a
        // running pipeline with the last job's end.
        assert!(
            ev.pipeline_state == running || ev.pipeline_state == succeeded,
            "{ev:?}"
        );
        if job.job_name == "test" && job.state == pb::JobState::Succeeded as i32 {
            assert_eq!(
                ev.pipeline_state, succeeded,
                "the last job's end ends it: {ev:?}"
            );
            break;
        }
    }
    // Each job was stored queued (or created), leased and ended.
    for name in ["build", "test"] {
        let versions = seen.iter().filter(|(_, n)| n == name).count();
        assert_eq!(versions, 3, "{name}: {seen:?}");
    }
    assert_eq!(get(&mut pipes, &p.name).await.state, succeeded);

    // Replayed from the start: the same versions, each with the state it has now.
    let mut replay = watch(&mut jobs).await;
    for &(revision, ref name) in &seen {
        let ev = next_event(&mut replay, name).await;
        assert_eq!(ev.revision, revision);
        assert_eq!(ev.pipeline_state, succeeded, "{ev:?}");
    }
}

/// `GetPipeline` gives the critical path the core computes (one runner, estimates the
/// requested times, in minutes): compile 30 and lint 5 (build); unit 20 and integ 40
/// need compile, docs 50 needs lint; deploy 10 after both stages. At submission the path
/// is compile, integ, deploy (80; docs' remaining path is 50 + 10 = 60, unit's 30).
/// Once compile ended, lint (5, waiting or just leased), docs (50) and deploy (10) are
/// left on the heaviest chain (65 against integ's 50). Once the pipeline ended the path
/// is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pipeline_gives_the_critical_path() {
    const MIN: i64 = 60_000;
    let (_dir, srv, _url) = local_server().await;
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch);
    register(&mut run, "lin", "linux").await;
    let timed = |name: &str, stage: u32, needs: Option<&[&str]>, min: i64| {
        let mut j = job(name, stage, needs, "linux");
        j.requested_ms = min * MIN;
        j
    };
    let jobs = vec![
        timed("compile", 0, Some(&[]), 30),
        timed("lint", 0, Some(&[]), 5),
        timed("unit", 1, Some(&["compile"]), 20),
        timed("integ", 1, Some(&["compile"]), 40),
        timed("docs", 1, Some(&["lint"]), 50),
        timed("deploy", 2, None, 10),
    ];
    let p = pipes
        .submit_pipeline(request("cp", jobs))
        .await
        .expect("submit")
        .into_inner();
    let p = get(&mut pipes, &p.name).await;
    assert_eq!(p.critical_path, ["compile", "integ", "deploy"], "{p:?}");
    // compile may already count as started on the runner: a few ms of it are gone.
    assert!(
        (79 * MIN..=80 * MIN).contains(&p.critical_path_ms),
        "{}",
        p.critical_path_ms
    );
    let by_name = |p: &pb::Pipeline| -> BTreeMap<String, (bool, i64)> {
        p.jobs
            .iter()
            .map(|j| (j.name.clone(), (j.on_critical_path, j.remaining_path_ms)))
            .collect()
    };
    let jobs = by_name(&p);
    assert_eq!(jobs["integ"], (true, 50 * MIN));
    assert_eq!(jobs["deploy"], (true, 10 * MIN));
    assert_eq!(jobs["docs"], (false, 60 * MIN));
    assert_eq!(jobs["unit"], (false, 30 * MIN));
    assert!(!jobs["lint"].0 && jobs["compile"].0);

    let first = lease_one(&mut run, "lin").await;
    assert_eq!(
        first.job.as_ref().map(|j| j.job_name.as_str()),
        Some("compile")
    );
    complete_ok(&mut run, "lin", &first).await;
    let p = get(&mut pipes, &p.name).await;
    assert_eq!(p.critical_path, ["lint", "docs", "deploy"], "{p:?}");
    assert!(
        (64 * MIN..=65 * MIN).contains(&p.critical_path_ms),
        "{}",
        p.critical_path_ms
    );
    let jobs = by_name(&p);
    assert_eq!(jobs["compile"], (false, 0), "an ended job is behind");
    assert_eq!(jobs["integ"], (false, 50 * MIN));

    // The rest, in whatever order the runner gets them.
    for _ in 0..5 {
        let lease = lease_one(&mut run, "lin").await;
        complete_ok(&mut run, "lin", &lease).await;
    }
    let p = get(&mut pipes, &p.name).await;
    assert_eq!(p.state, pb::PipelineState::Succeeded as i32);
    assert!(
        p.critical_path.is_empty() && p.critical_path_ms == 0,
        "{p:?}"
    );
    assert!(p.jobs.iter().all(|j| !j.on_critical_path));
    srv.stop().await.expect("stop");
}

/// `auto_cancel_mode` over the API, one runner of one slot. On ref main, P1
/// (`conservative`) has keep (not interruptible) leased and wait (interruptible)
/// waiting: P2 (`none`) leaves all of it alone, since a non-interruptible job started.
/// On ref dev, P3 (`conservative`) has only a waiting job: P4 cancels the whole of it,
/// and P3 ends cancelled, superseded by P4. (`interruptible`:
/// `pipeline_jobs::a_newer_pipeline_kills_the_older_ones_interruptible_job_on_its_runner`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supersession_follows_each_pipelines_mode() {
    let (_dir, srv, _url) = local_server().await;
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch);
    register(&mut run, "lin", "linux").await;
    let with_mode = |id: &str, git_ref: &str, mode: pb::AutoCancel, jobs| {
        let mut r = request(id, jobs);
        r.git_ref = git_ref.into();
        r.auto_cancel_mode = mode as i32;
        r
    };
    let mut wait = job("wait", 0, None, "linux");
    wait.interruptible = true;
    let p1 = pipes
        .submit_pipeline(with_mode(
            "p1",
            "main",
            pb::AutoCancel::Conservative,
            vec![job("keep", 0, None, "linux"), wait],
        ))
        .await
        .expect("submit p1")
        .into_inner();
    let lease = lease_one(&mut run, "lin").await;
    assert_eq!(
        lease.job.as_ref().map(|j| j.job_name.as_str()),
        Some("keep")
    );
    pipes
        .submit_pipeline(with_mode(
            "p2",
            "main",
            pb::AutoCancel::None,
            vec![job("q", 0, None, "linux")],
        ))
        .await
        .expect("submit p2");
    use pb::PipelineJobState as S;
    let states = |p: &pb::Pipeline| -> Vec<(String, i32)> {
        p.jobs.iter().map(|j| (j.name.clone(), j.state)).collect()
    };
    let p1 = get(&mut pipes, &p1.name).await;
    assert_eq!(
        states(&p1),
        [
            ("keep".to_string(), S::Running as i32),
            ("wait".to_string(), S::Waiting as i32)
        ]
    );
    assert!(p1.cancel_reason.is_empty(), "{p1:?}");

    let p3 = pipes
        .submit_pipeline(with_mode(
            "p3",
            "dev",
            pb::AutoCancel::Conservative,
            vec![job("w3", 0, None, "linux")],
        ))
        .await
        .expect("submit p3")
        .into_inner();
    let p4 = pipes
        .submit_pipeline(with_mode(
            "p4",
            "dev",
            pb::AutoCancel::Conservative,
            vec![job("w4", 0, None, "linux")],
        ))
        .await
        .expect("submit p4")
        .into_inner();
    let p3 = get(&mut pipes, &p3.name).await;
    assert_eq!(states(&p3), [("w3".to_string(), S::Cancelled as i32)]);
    assert_eq!(p3.state, pb::PipelineState::Cancelled as i32);
    assert_eq!(p3.cancel_reason, format!("superseded by {}", p4.name));
    let bad = with_mode(
        "p5",
        "dev",
        pb::AutoCancel::None,
        vec![job("x", 0, None, "linux")],
    );
    let bad = pb::SubmitPipelineRequest {
        auto_cancel_mode: 9,
        ..bad
    };
    expect_invalid(pipes.submit_pipeline(bad).await, "auto_cancel_mode");
    srv.stop().await.expect("stop");
}
