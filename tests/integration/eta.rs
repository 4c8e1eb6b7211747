//! ETAs over a real socket: GetJob, ListJobs, SubmitJob and WatchJobs carry each job's
//! predicted run time, its upper quantile and its start (projected while queued, real
//! once started), on a virtual clock so that every value is exact.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::OwnerChannel;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use tokio_stream::StreamExt;

const T0: i64 = 1_700_000_000_000;
const RUN: i64 = 10_000;

async fn get(api: &mut JobServiceClient<OwnerChannel>, id: u64) -> Job {
    api.get_job(GetJobRequest {
        name: format!("jobs/{id}"),
    })
    .await
    .unwrap_or_else(|s| panic!("get jobs/{id}: {s}"))
    .into_inner()
}

fn submit_req(i: u64, labels: &[&str]) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: format!("req-{i}"),
        tenant: "team".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        command: "true".into(),
        requested_ms: RUN,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_and_watch_carry_etas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch, clock) = common::serve_virtual_at(dir.path(), T0).await;
    let mut api = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());

    // Watch from the start: the submissions arrive on the live feed.
    let mut watch = common::watch_all(&mut api).await;

    common::register_r0(&ch).await;

    // Three 10 s jobs on one slot: the first starts now, the others follow it.
    let mut names = Vec::new();
    for i in 1..=3 {
        let job = api
            .submit_job(submit_req(i, &["linux"]))
            .await
            .expect("submit")
            .into_inner();
        assert_eq!(job.predicted_run_ms, RUN, "SubmitJob carries the estimate");
        assert_eq!(job.predicted_run_upper_ms, RUN);
        names.push(job.name);
    }
    assert_eq!(names, ["jobs/1", "jobs/2", "jobs/3"]);
    // A job no registered pool can run waits outside the core: no start, an estimate.
    let gpu = api
        .submit_job(submit_req(4, &["gpu"]))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(gpu.name, "jobs/4");

    let jobs = [
        get(&mut api, 1).await,
        get(&mut api, 2).await,
        get(&mut api, 3).await,
    ];
    for j in &jobs {
        assert_eq!(j.predicted_run_ms, RUN, "{}", j.name);
        assert_eq!(j.predicted_run_upper_ms, RUN, "{}", j.name);
    }
    assert_eq!(jobs[0].state, JobState::Leased as i32);
    assert_eq!(jobs[0].predicted_start_unix_ms, jobs[0].start_ms);
    let first = jobs[0].predicted_start_unix_ms;
    assert_eq!(first, T0);
    let rel: Vec<i64> = jobs
        .iter()
        .map(|j| j.predicted_start_unix_ms - first)
        .collect();
    assert_eq!(rel, [0, RUN, 2 * RUN], "one after another, in queue order");
    let g = get(&mut api, 4).await;
    assert_eq!(
        (g.predicted_run_ms, g.predicted_start_unix_ms),
        (RUN, 0),
        "no runner can take it"
    );

    // ListJobs: the same values from one plan for the page.
    let list = api
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .jobs;
    let listed: BTreeMap<String, (i64, i64)> = list
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                (j.predicted_run_ms, j.predicted_start_unix_ms),
            )
        })
        .collect();
    assert_eq!(listed["jobs/1"], (RUN, T0));
    assert_eq!(listed["jobs/2"], (RUN, T0 + RUN));
    assert_eq!(listed["jobs/3"], (RUN, T0 + 2 * RUN));
    assert_eq!(listed["jobs/4"], (RUN, 0));

    // 15 s on, the first job outlived its estimate: the next is due now, not at 10 s.
    clock.set(T0 + 15_000);
    assert_eq!(get(&mut api, 2).await.predicted_start_unix_ms, T0 + 15_000);
    assert_eq!(get(&mut api, 3).await.predicted_start_unix_ms, T0 + 25_000);

    // It finishes; job 2 starts at once (its real start), job 3 follows it.
    let lease = common::lease_one(&mut run, "r0").await;
    assert_eq!(lease.job.as_ref().map(|j| j.name.as_str()), Some("jobs/1"));
    common::complete_ok(&mut run, "r0", &lease).await;
    let (one, two, three) = (
        get(&mut api, 1).await,
        get(&mut api, 2).await,
        get(&mut api, 3).await,
    );
    assert_eq!(one.state, JobState::Succeeded as i32);
    assert_eq!(
        (one.predicted_run_ms, one.predicted_start_unix_ms),
        (RUN, T0)
    );
    assert_eq!(two.state, JobState::Leased as i32);
    assert_eq!(two.predicted_start_unix_ms, T0 + 15_000);
    assert_eq!(three.predicted_start_unix_ms, T0 + 25_000);

    // WatchJobs: every event carries the estimates; a started job's its real start, a
    // queued job's none (the plan is not projected per change).
    let mut seen: Vec<Job> = Vec::new();
    while !seen
        .iter()
        .any(|j| j.name == "jobs/2" && j.state == JobState::Leased as i32)
    {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("a WatchJobs event within 10 s")
            .expect("the stream stays open")
            .expect("event");
        seen.push(ev.job.expect("job"));
    }
    assert!(seen.len() >= 7, "{} events", seen.len());
    for j in &seen {
        assert_eq!(j.predicted_run_ms, RUN, "{} in state {}", j.name, j.state);
        assert_eq!(j.predicted_run_upper_ms, RUN);
        let want = if j.state == JobState::Queued as i32 {
            0
        } else {
            j.start_ms
        };
        assert_eq!(
            j.predicted_start_unix_ms, want,
            "{} in state {}",
            j.name, j.state
        );
    }
    let leased_1 = seen
        .iter()
        .find(|j| j.name == "jobs/1" && j.state == JobState::Leased as i32)
        .expect("job 1's lease was watched");
    assert_eq!(leased_1.predicted_start_unix_ms, T0);

    // History read from the store (a watcher that starts late) carries them too.
    let mut late = common::watch_all(&mut api).await;
    let ev = tokio::time::timeout(Duration::from_secs(10), late.next())
        .await
        .expect("history within 10 s")
        .expect("open")
        .expect("event");
    assert_eq!(ev.job.expect("job").predicted_run_ms, RUN);

    srv.stop().await.expect("stop");
}
