//! Pipeline jobs over a real socket, seen as jobs: supersession reaching a real
//! `rustci runner` process (the interruptible job's process is killed, the others run
//! on), the states of jobs the scheduler holds back (`CREATED`, `MANUAL`) in GetJob,
//! ListJobs and the CLI, and `ExplainJob` for a job waiting for its needs (which ones,
//! their states and their projected ends).

use std::path::Path;
use std::time::Duration;

use rustci_control::pb;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::pipeline_service_client::PipelineServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::server::{self, ServeOptions};

use crate::common::{
    lease_one, owner_channel, rustci_json, wait_for, wait_job_state, wait_ready, wait_runners,
    OwnerChannel, Procs,
};

fn spec(
    name: &str,
    stage_index: u32,
    needs: Option<&[&str]>,
    command: &str,
) -> pb::PipelineJobSpec {
    pb::PipelineJobSpec {
        name: name.into(),
        stage: ["build", "test", "deploy"][stage_index as usize].into(),
        stage_index,
        needs: needs.map(|n| pb::Needs {
            names: n.iter().map(|s| s.to_string()).collect(),
        }),
        labels: vec!["linux".into()],
        command: command.into(),
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
        // No mode: rustci's rule (AUTO_CANCEL_WAITING_AND_INTERRUPTIBLE).
        auto_cancel_mode: pb::AutoCancel::Unspecified as i32,
        jobs,
    }
}

/// `jobs/{id}` of the job named `name` in `p`.
fn job_of(p: &pb::Pipeline, name: &str) -> String {
    p.jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name:?} in {p:?}"))
        .job
        .clone()
}

async fn get(pipes: &mut PipelineServiceClient<OwnerChannel>, name: &str) -> pb::Pipeline {
    pipes
        .get_pipeline(pb::GetPipelineRequest { name: name.into() })
        .await
        .expect("get pipeline")
        .into_inner()
}

/// Whether process `pid` exists and is not a zombie (`/proc/PID/stat`'s state).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name in parentheses, which may hold spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The pid a job's script wrote to `path`, once it has.
async fn pid_in(path: &Path) -> u32 {
    wait_for(
        &format!("a pid in {}", path.display()),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async move {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .ok_or_else(|| "not written yet".to_string())
        },
    )
    .await
}

async fn explain(jobs: &mut JobServiceClient<OwnerChannel>, name: &str) -> pb::Explanation {
    jobs.explain_job(pb::ExplainJobRequest { name: name.into() })
        .await
        .expect("explain")
        .into_inner()
}

/// Must show 2, under `auto_cancel` with no mode (AUTO_CANCEL_WAITING_AND_INTERRUPTIBLE):
/// a second pipeline of the same project and ref cancels the first's jobs that have not
/// started (one waiting in the queue, one waiting for its needs) and its running
/// interruptible job, whose process the runner kills; its running non-interruptible
/// job runs on and succeeds (GitLab's `conservative` would have kept the whole first
/// pipeline: `pipelines::supersession_follows_each_pipelines_mode`); the first pipeline then ends cancelled,
/// superseded by the second, which runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_pipeline_kills_the_older_ones_interruptible_job_on_its_runner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        // Heartbeats every second: the runner hears of the cancellation within one.
        lease_ttl_ms: 3_000,
        ..ServeOptions::default()
    })
    .await
    .expect("server starts");
    let url = format!("http://{}", srv.addr);
    let mut procs = Procs::new();
    let log = dir.path().join("runner.log");
    procs.runner("sup-r", &url, "lin", "linux", 2, None, &[], &log);
    let clients = wait_ready(&url, None, Duration::from_secs(20)).await;
    wait_runners(&clients, "lin", 1, Duration::from_secs(20)).await;
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut jobs = JobServiceClient::new(ch.clone());

    let d = dir.path().display().to_string();
    // `exec`: the pid written is the process the runner's guard waits for, so it is
    // reaped (gone from /proc) as soon as it is killed.
    let mut int = spec(
        "int",
        0,
        None,
        &format!("echo $$ > {d}/int.pid; exec sleep 600"),
    );
    int.interruptible = true;
    let keep = spec(
        "keep",
        0,
        None,
        &format!("echo $$ > {d}/keep.pid; while [ ! -e {d}/release ]; do sleep 0.05; done"),
    );
    // Third in order and the shortest: the two slots go to int and keep first (FIFO
    // by id, or by rank under the critical-path order).
    let mut queued = spec("queued", 0, None, "true");
    queued.requested_ms = 1_000;
    let after = spec("after", 1, None, "true");
    let first = pipes
        .submit_pipeline(request("first", vec![int, keep, queued, after]))
        .await
        .expect("submit the first pipeline")
        .into_inner();
    let int_pid = pid_in(&dir.path().join("int.pid")).await;
    let keep_pid = pid_in(&dir.path().join("keep.pid")).await;
    assert!(alive(int_pid) && alive(keep_pid));
    let int_job = job_of(&first, "int");
    let keep_job = job_of(&first, "keep");
    for j in [&int_job, &keep_job] {
        let got = jobs
            .get_job(pb::GetJobRequest { name: j.clone() })
            .await
            .expect("get job")
            .into_inner();
        assert_eq!(got.state, pb::JobState::Leased as i32, "{got:?}");
    }
    let before = get(&mut pipes, &first.name).await;
    use pb::PipelineJobState as S;
    let states: Vec<(String, i32)> = before
        .jobs
        .iter()
        .map(|j| (j.name.clone(), j.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("int".to_string(), S::Running as i32),
            ("keep".to_string(), S::Running as i32),
            ("queued".to_string(), S::Waiting as i32),
            ("after".to_string(), S::Created as i32),
        ]
    );

    let second = pipes
        .submit_pipeline(request("second", vec![spec("quick", 0, None, "true")]))
        .await
        .expect("submit the second pipeline")
        .into_inner();
    let superseded = get(&mut pipes, &first.name).await;
    let states: Vec<(String, i32)> = superseded
        .jobs
        .iter()
        .map(|j| (j.name.clone(), j.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("int".to_string(), S::Cancelled as i32),
            ("keep".to_string(), S::Running as i32),
            ("queued".to_string(), S::Cancelled as i32),
            ("after".to_string(), S::Cancelled as i32),
        ]
    );
    // It still runs (keep), but its end is decided.
    assert_eq!(superseded.state, pb::PipelineState::Running as i32);
    let reason = format!("superseded by {}", second.name);
    assert_eq!(superseded.cancel_reason, reason);
    let why = explain(&mut jobs, &int_job).await;
    assert_eq!(why.state, pb::JobState::Cancelled as i32, "{why:?}");
    assert!(why.message.contains(&reason), "{why:?}");

    // The runner hears of it on a heartbeat and kills the job's process group.
    wait_for(
        "the interruptible job's process to be killed",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async move {
            if alive(int_pid) {
                Err(format!("pid {int_pid} still runs"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert!(alive(keep_pid), "the non-interruptible job runs on");
    let still = jobs
        .get_job(pb::GetJobRequest {
            name: keep_job.clone(),
        })
        .await
        .expect("get keep")
        .into_inner();
    assert_eq!(still.state, pb::JobState::Leased as i32, "{still:?}");

    // The second pipeline's job runs in the slot the killed job left.
    let quick = job_of(&second, "quick");
    let every = Duration::from_millis(50);
    wait_job_state(
        &jobs,
        &quick,
        pb::JobState::Succeeded,
        "quick to succeed",
        Duration::from_secs(30),
        every,
    )
    .await;
    std::fs::write(dir.path().join("release"), b"").expect("release keep");
    let kept = wait_job_state(
        &jobs,
        &keep_job,
        pb::JobState::Succeeded,
        "keep to succeed",
        Duration::from_secs(30),
        every,
    )
    .await;
    assert_eq!(kept.exit_code, 0);
    let ended = wait_for(
        "the first pipeline to end",
        Duration::from_secs(10),
        every,
        || {
            let mut pipes = pipes.clone();
            let name = first.name.clone();
            async move {
                let p = get(&mut pipes, &name).await;
                if p.state == pb::PipelineState::Running as i32 {
                    Err(format!("{p:?}"))
                } else {
                    Ok(p)
                }
            }
        },
    )
    .await;
    assert_eq!(
        ended.state,
        pb::PipelineState::Cancelled as i32,
        "{ended:?}"
    );
    assert_eq!(ended.cancel_reason, reason);
    // The killed job was not reported as ended by the runner: it stays cancelled, run once.
    let killed = jobs
        .get_job(pb::GetJobRequest { name: int_job })
        .await
        .expect("get int")
        .into_inner();
    assert_eq!(killed.state, pb::JobState::Cancelled as i32, "{killed:?}");
    assert_eq!(killed.attempts, 1);
    let second = get(&mut pipes, &second.name).await;
    assert_eq!(
        second.state,
        pb::PipelineState::Succeeded as i32,
        "{second:?}"
    );
    procs.assert_alive();
    drop(procs);
    srv.stop().await.expect("stop");
}

/// Jobs the scheduler holds back show as such: a job waiting for its needs is CREATED
/// (GetJob, ListJobs filtered by state, `rustci jobs list`), a manual job MANUAL; and
/// ExplainJob says which needs a CREATED job waits for, their states and ends, by
/// hand: build runs from its start for its 60 s estimate; test (needs build) is
/// projected on the one runner from build's end for 60 s; deploy (every earlier job)
/// from test's projected end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_its_needs_is_created_and_explained_with_its_needs_etas() {
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
    let mut jobs = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());
    run.register_runner(pb::RegisterRunnerRequest {
        runner_id: "r".into(),
        pool: "lin".into(),
        labels: vec!["linux".into()],
        slots: 1,
    })
    .await
    .expect("register");

    let mut approve = spec("approve", 2, Some(&[]), "true");
    approve.when = pb::When::Manual as i32;
    let p = pipes
        .submit_pipeline(request(
            "p",
            vec![
                spec("build", 0, None, "make"),
                spec("test", 1, Some(&["build"]), "make test"),
                spec("deploy", 2, None, "make deploy"),
                approve,
            ],
        ))
        .await
        .expect("submit")
        .into_inner();
    let [build, test, deploy, approve] =
        ["build", "test", "deploy", "approve"].map(|n| job_of(&p, n));
    let lease = lease_one(&mut run, "r").await;
    assert_eq!(
        lease.job.as_ref().map(|j| j.name.clone()),
        Some(build.clone())
    );

    let state_of = |j: &pb::Job| (j.name.clone(), j.state);
    let mut got = Vec::new();
    let mut estimates = Vec::new();
    for name in [&build, &test, &deploy, &approve] {
        let j = jobs
            .get_job(pb::GetJobRequest { name: name.clone() })
            .await
            .expect("get job")
            .into_inner();
        assert_eq!(j.pipeline, p.name);
        got.push(state_of(&j));
        estimates.push(j.predicted_run_ms);
    }
    use pb::JobState as J;
    assert_eq!(
        got,
        vec![
            (build.clone(), J::Leased as i32),
            (test.clone(), J::Created as i32),
            (deploy.clone(), J::Created as i32),
            (approve.clone(), J::Manual as i32),
        ]
    );
    let listed = |state: J| {
        let mut jobs = jobs.clone();
        async move {
            let r = jobs
                .list_jobs(pb::ListJobsRequest {
                    state: state as i32,
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner();
            r.jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(J::Created).await, vec![test.clone(), deploy.clone()]);
    assert_eq!(listed(J::Manual).await, vec![approve.clone()]);
    assert!(
        listed(J::Queued).await.is_empty(),
        "nothing is in the queue"
    );
    let url = format!("http://{}", srv.addr);
    let cli = tokio::task::spawn_blocking(move || {
        rustci_json(&[
            "jobs", "list", "--server", &url, "--state", "created", "--format", "json",
        ])
    })
    .await
    .expect("the CLI ran");
    let cli_jobs: Vec<(String, String)> = cli
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array: {cli}"))
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap_or("").to_string(),
                j["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        cli_jobs,
        vec![
            (test.clone(), "CREATED".to_string()),
            (deploy.clone(), "CREATED".to_string())
        ]
    );

    // build runs: its expected end is its start plus its estimate (the requested 60 s
    // without a trained model).
    let running = explain(&mut jobs, &build).await;
    assert_eq!(running.reason, "running");
    let build_end = running.at_ms;
    let build_job = jobs
        .get_job(pb::GetJobRequest {
            name: build.clone(),
        })
        .await
        .expect("get build")
        .into_inner();
    assert_eq!(build_end, build_job.start_ms + estimates[0]);

    let why = explain(&mut jobs, &test).await;
    assert_eq!(why.reason, "waiting_for_needs", "{why:?}");
    assert_eq!(why.state, J::Created as i32);
    let needs: Vec<(String, String, i32, i64)> = why
        .needs
        .iter()
        .map(|n| (n.name.clone(), n.job.clone(), n.state, n.end_ms))
        .collect();
    assert_eq!(
        needs,
        vec![("build".into(), build.clone(), J::Leased as i32, build_end)]
    );
    assert_eq!(why.blocking_job, build);
    assert_eq!(why.at_ms, build_end, "test starts when build ends");
    assert!(why.message.contains("\"build\""), "{why:?}");

    // deploy needs every job of the earlier stages: build, and test after it.
    let test_end = build_end + estimates[1];
    let why = explain(&mut jobs, &deploy).await;
    let needs: Vec<(String, i32, i64)> = why
        .needs
        .iter()
        .map(|n| (n.name.clone(), n.state, n.end_ms))
        .collect();
    assert_eq!(
        needs,
        vec![
            ("build".into(), J::Leased as i32, build_end),
            ("test".into(), J::Created as i32, test_end),
        ]
    );
    assert_eq!(why.at_ms, test_end);
    let manual = explain(&mut jobs, &approve).await;
    assert_eq!(
        (manual.reason.as_str(), manual.state),
        ("manual", J::Manual as i32)
    );

    // build ends: test enters the queue; deploy's explanation has build's real end.
    run.complete_job(pb::CompleteJobRequest {
        job: build.clone(),
        runner: "runners/r".into(),
        fencing_token: lease.fencing_token,
        success: true,
        ..Default::default()
    })
    .await
    .expect("complete build");
    let done = jobs
        .get_job(pb::GetJobRequest {
            name: build.clone(),
        })
        .await
        .expect("get build")
        .into_inner();
    let t = jobs
        .get_job(pb::GetJobRequest { name: test.clone() })
        .await
        .expect("get test")
        .into_inner();
    assert!(
        t.state == J::Queued as i32 || t.state == J::Leased as i32,
        "test is ready: {t:?}"
    );
    let why = explain(&mut jobs, &deploy).await;
    assert_eq!(why.needs[0].state, J::Succeeded as i32);
    assert_eq!(why.needs[0].end_ms, done.end_ms);
    assert_eq!(why.needs[1].name, "test");
    srv.stop().await.expect("stop");
}

/// PlayJob: a manual job is MANUAL until played, then waits in the queue (the one slot
/// is busy), still QUEUED after a restart on the same data (the play is durable), and
/// runs; what needs it runs after it and the pipeline succeeds. Playing a job that is
/// not a manual one waiting is FAILED_PRECONDITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_played_manual_job_stays_played_across_a_restart_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..ServeOptions::default()
    };
    let srv = server::start(opts()).await.expect("server starts");
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let mut jobs = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());
    run.register_runner(pb::RegisterRunnerRequest {
        runner_id: "r".into(),
        pool: "lin".into(),
        labels: vec!["linux".into()],
        slots: 1,
    })
    .await
    .expect("register");
    let mut approve = spec("approve", 0, Some(&[]), "true");
    approve.when = pb::When::Manual as i32;
    let p = pipes
        .submit_pipeline(request(
            "p",
            vec![
                spec("busy", 0, Some(&[]), "make"),
                approve,
                spec("ship", 1, Some(&["approve"]), "make ship"),
            ],
        ))
        .await
        .expect("submit")
        .into_inner();
    let [busy, approve, ship] = ["busy", "approve", "ship"].map(|n| job_of(&p, n));
    let busy_lease = lease_one(&mut run, "r").await;
    assert_eq!(
        busy_lease.job.as_ref().map(|j| j.name.clone()),
        Some(busy.clone())
    );
    let state = |jobs: &JobServiceClient<OwnerChannel>, name: &str| {
        let mut jobs = jobs.clone();
        let name = name.to_string();
        async move {
            jobs.get_job(pb::GetJobRequest { name })
                .await
                .expect("get job")
                .into_inner()
                .state
        }
    };
    use pb::JobState as J;
    assert_eq!(state(&jobs, &approve).await, J::Manual as i32);
    assert_eq!(state(&jobs, &ship).await, J::Created as i32);

    let not_manual = jobs
        .play_job(pb::PlayJobRequest { name: ship.clone() })
        .await;
    let s = crate::common::expect_code(
        not_manual,
        tonic::Code::FailedPrecondition,
        "play a created job",
    );
    assert!(s.message().contains("not a manual job"), "{s:?}");
    // The CLI says so too, and fails.
    let url = format!("http://{}", srv.addr);
    let cli_ship = ship.clone();
    let out = tokio::task::spawn_blocking(move || {
        crate::common::rustci(["jobs", "play", &cli_ship, "--server", &url])
    })
    .await
    .expect("the CLI ran");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a manual job"),
        "{out:?}"
    );
    let played = jobs
        .play_job(pb::PlayJobRequest {
            name: approve.clone(),
        })
        .await
        .expect("play")
        .into_inner();
    assert_eq!(
        played.state,
        J::Queued as i32,
        "the one slot is busy: {played:?}"
    );
    let again = jobs
        .play_job(pb::PlayJobRequest {
            name: approve.clone(),
        })
        .await;
    crate::common::expect_code(again, tonic::Code::FailedPrecondition, "play twice");

    // A restart on the same data: the play was durable.
    srv.stop().await.expect("stop");
    let srv = server::start(opts()).await.expect("server restarts");
    let ch = owner_channel(srv.addr).await;
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let jobs = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());
    assert_eq!(state(&jobs, &approve).await, J::Queued as i32);
    assert_eq!(state(&jobs, &ship).await, J::Created as i32);

    // The runner ends busy (its lease survived the restart), then runs approve, then ship.
    let complete = |run: &mut RunnerServiceClient<OwnerChannel>, lease: pb::Lease| {
        let mut run = run.clone();
        async move {
            run.complete_job(pb::CompleteJobRequest {
                job: lease.job.map(|j| j.name).unwrap_or_default(),
                runner: "runners/r".into(),
                fencing_token: lease.fencing_token,
                success: true,
                ..Default::default()
            })
            .await
            .expect("complete")
        }
    };
    complete(&mut run, busy_lease).await;
    let next = lease_one(&mut run, "r").await;
    assert_eq!(
        next.job.as_ref().map(|j| j.name.clone()),
        Some(approve.clone())
    );
    complete(&mut run, next).await;
    let last = lease_one(&mut run, "r").await;
    assert_eq!(
        last.job.as_ref().map(|j| j.name.clone()),
        Some(ship.clone())
    );
    complete(&mut run, last).await;
    let done = get(&mut pipes, &p.name).await;
    assert_eq!(done.state, pb::PipelineState::Succeeded as i32, "{done:?}");
    srv.stop().await.expect("stop");
}
