//! End to end: an in-process server with API keys, two reference runners as child
//! processes in two pools, 1,000 jobs from two tenants, on each store (SQLite, MongoDB). What ran, where and how often is
//! checked from the jobs' side effects, not only from the server's word; the server's
//! answers (GetJob, ListJobs, WatchJobs, GetQueueStats) are checked against each other.

use crate::common;
use crate::stores::{on_both_stores, Backend, TestStore};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    list_all, local_server, rustci_json as cli, wait_for, wait_ready, wait_runners, Procs, BIN,
};
use rustci_control::clients::client::{connect_lazy, Clients};
use rustci_control::pb;
use rustci_control::server::{self, ServeOptions};
use tokio_stream::StreamExt;
use tonic::Code;

const ALPHA_KEY: &str = "alpha-key-0001";
const BETA_KEY: &str = "beta-key-00002";
const RUNNER_TOKEN: &str = "runner-token-01";
const JOBS: usize = 1000;

fn write_auth(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("auth.toml");
    common::write_private(
        &p,
        &format!(
            "runner_tokens = [\"{RUNNER_TOKEN}\"]\n\n[[tenant]]\nname = \"alpha\"\napi_keys = [\"{ALPHA_KEY}\"]\n\n[[tenant]]\nname = \"beta\"\napi_keys = [\"{BETA_KEY}\"]\n"
        ),
    );
    p
}

fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

on_both_stores!(thousand_jobs_two_tenants_two_pools);

async fn thousand_jobs_two_tenants_two_pools(backend: Backend, test: &str) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let auth = write_auth(dir.path());
    let srv = server::start(store.serve_options(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        auth: Some(auth),
        ..ServeOptions::default()
    }))
    .await
    .expect("starting the server");
    let url = format!("http://{}", srv.addr);
    let runs = dir.path().join("runs.log");

    let mut procs = Procs::new();
    procs.runner(
        "lin-1",
        &url,
        "lin",
        "linux",
        2,
        Some(RUNNER_TOKEN),
        &[("RUNNER_MARK", "lin")],
        &dir.path().join("lin-1.log"),
    );
    procs.runner(
        "mac-1",
        &url,
        "mac",
        "macos",
        2,
        Some(RUNNER_TOKEN),
        &[("RUNNER_MARK", "mac")],
        &dir.path().join("mac-1.log"),
    );
    let alpha = wait_ready(&url, Some(ALPHA_KEY), Duration::from_secs(20)).await;
    let beta = connect_lazy(&url, Some(BETA_KEY), None).expect("client");
    wait_runners(&alpha, "lin", 1, Duration::from_secs(20)).await;
    wait_runners(&alpha, "mac", 1, Duration::from_secs(20)).await;

    // 1,000 jobs: tenants alternate, labels alternate in pairs so that both tenants use
    // both pools. Each job appends "<job> <request id> <runner mark>" to one file; the
    // mark comes from the runner process's environment, not from the server.
    let submit_start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..8usize {
        let (a, b) = (alpha.clone(), beta.clone());
        let runs = runs.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            for i in (worker..JOBS).step_by(8) {
                let (mut c, tenant) = if i % 2 == 0 {
                    (a.jobs.clone(), "alpha")
                } else {
                    (b.jobs.clone(), "beta")
                };
                let label = if (i / 2) % 2 == 0 { "linux" } else { "macos" };
                let req = format!("req-{i}");
                let job = c
                    .submit_job(pb::SubmitJobRequest {
                        request_id: req.clone(),
                        labels: vec![label.to_string()],
                        command: format!(
                            "echo \"$RUSTCI_JOB {req} $RUNNER_MARK\" >> {}",
                            runs.display()
                        ),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|s| panic!("submit {req}: {s}"))
                    .into_inner();
                assert_eq!(job.tenant, tenant, "the key decides the tenant");
                out.push((req, label.to_string(), job));
            }
            out
        });
    }
    let mut submitted: HashMap<String, (String, pb::Job)> = HashMap::new();
    while let Some(r) = set.join_next().await {
        for (req, label, job) in r.expect("submitter task") {
            submitted.insert(req, (label, job));
        }
    }
    let submit_secs = submit_start.elapsed().as_secs_f64();
    assert_eq!(submitted.len(), JOBS);
    let names: HashSet<&str> = submitted.values().map(|(_, j)| j.name.as_str()).collect();
    assert_eq!(names.len(), JOBS, "every submit made its own job");

    // Wait for all of them (ListJobs SUCCEEDED, both tenants), failing early on a failure.
    let run_start = Instant::now();
    wait_for(
        "1000 jobs to succeed",
        Duration::from_secs(180),
        Duration::from_millis(250),
        || {
            let (a, b) = (alpha.clone(), beta.clone());
            async move {
                let mut n = 0;
                for c in [&a, &b] {
                    let failed = list_all(c, "", pb::JobState::Failed, 1000)
                        .await
                        .map_err(|s| s.to_string())?;
                    assert!(failed.is_empty(), "jobs failed: {failed:?}");
                    n += list_all(c, "", pb::JobState::Succeeded, 1000)
                        .await
                        .map_err(|s| s.to_string())?
                        .len();
                }
                if n == JOBS {
                    Ok(())
                } else {
                    Err(format!("{n} succeeded"))
                }
            }
        },
    )
    .await;
    let run_secs = run_start.elapsed().as_secs_f64();
    procs.assert_alive();

    // Side effects: each job ran exactly once, with its own command, on a runner of a
    // pool that has its labels.
    let text = std::fs::read_to_string(&runs).expect("reading the side-effect file");
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 3, "malformed side-effect line {line:?}");
        let prev = seen.insert(f[1].to_string(), (f[0].to_string(), f[2].to_string()));
        assert!(prev.is_none(), "{} ran more than once: {line:?}", f[1]);
    }
    assert_eq!(seen.len(), JOBS, "every job left exactly one side effect");
    for (req, (label, job)) in &submitted {
        let (name, mark) = seen
            .get(req)
            .unwrap_or_else(|| panic!("{req} ({}) never ran", job.name));
        assert_eq!(name, &job.name, "{req}: RUSTCI_JOB is the submitted job");
        let want = if label == "linux" { "lin" } else { "mac" };
        assert_eq!(mark, want, "{req} ({label}) ran on a {mark} runner");
    }

    // The store: ListJobs (odd page size, so many pages) == GetJob for every job; the
    // runner the server names has the labels; one attempt each; exit code 0.
    let mut listed: BTreeMap<String, pb::Job> = BTreeMap::new();
    for (c, tenant) in [(&alpha, "alpha"), (&beta, "beta")] {
        let jobs = list_all(c, "", pb::JobState::Succeeded, 37)
            .await
            .expect("ListJobs");
        assert_eq!(jobs.len(), JOBS / 2, "{tenant}'s succeeded jobs");
        for j in jobs {
            assert_eq!(j.tenant, tenant);
            listed.insert(j.name.clone(), j);
        }
    }
    assert_eq!(listed.len(), JOBS, "ListJobs returns 1000 distinct jobs");
    let by_req: HashMap<&str, &(String, pb::Job)> =
        submitted.iter().map(|(k, v)| (k.as_str(), v)).collect();
    for j in listed.values() {
        let (label, sub) = by_req[j.request_id.as_str()];
        assert_eq!(j.name, sub.name);
        assert_eq!(j.submit_ms, sub.submit_ms, "{}: submit time", j.name);
        assert_eq!(j.attempts, 1, "{}: attempts", j.name);
        assert_eq!(j.exit_code, 0, "{}: exit code", j.name);
        assert!(j.start_ms >= j.submit_ms && j.end_ms >= j.start_ms, "{j:?}");
        // The reference runner times each command; the store keeps it, within the lease.
        let run = j.reported_run_ms.expect("the runner reported its timing");
        assert!((0..=j.end_ms - j.start_ms).contains(&run), "{j:?}");
        let want = if label == "linux" {
            "runners/lin-1"
        } else {
            "runners/mac-1"
        };
        assert_eq!(j.runner, want, "{}: runner", j.name);
        let c = if j.tenant == "alpha" { &alpha } else { &beta };
        let got = c
            .jobs
            .clone()
            .get_job(pb::GetJobRequest {
                name: j.name.clone(),
            })
            .await
            .expect("GetJob")
            .into_inner();
        assert_eq!(&got, j, "GetJob and ListJobs disagree on {}", j.name);
    }

    // WatchJobs from revision 0 (alpha's key): alpha's jobs only, revisions increasing,
    // queued -> leased -> succeeded, and the leased event's start_ms is the stored one.
    let mut stream = alpha
        .jobs
        .clone()
        .watch_jobs(pb::WatchJobsRequest {
            tenant: String::new(),
            from_revision: 0,
            pipeline: String::new(),
        })
        .await
        .expect("WatchJobs")
        .into_inner();
    let mut history: HashMap<String, Vec<pb::Job>> = HashMap::new();
    let mut finished = 0;
    let mut last_rev = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while finished < JOBS / 2 {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("WatchJobs: only {finished} finished events in 60 s"))
            .expect("WatchJobs ended early")
            .expect("WatchJobs event");
        assert!(ev.revision > last_rev, "revisions must increase");
        last_rev = ev.revision;
        let job = ev.job.expect("event job");
        assert_eq!(job.revision, ev.revision);
        assert_eq!(job.tenant, "alpha", "alpha's watch shows only alpha's jobs");
        if job.state == pb::JobState::Succeeded as i32 {
            finished += 1;
        }
        history.entry(job.name.clone()).or_default().push(job);
    }
    for (name, evs) in &history {
        let states: Vec<i32> = evs.iter().map(|j| j.state).collect();
        assert_eq!(
            states,
            vec![
                pb::JobState::Queued as i32,
                pb::JobState::Leased as i32,
                pb::JobState::Succeeded as i32
            ],
            "{name}: event states"
        );
        let stored = &listed[name];
        assert_eq!(evs[0].submit_ms, stored.submit_ms, "{name}: submit_ms");
        assert_eq!(evs[1].start_ms, stored.start_ms, "{name}: leased start_ms");
        assert_eq!(evs[1].runner, stored.runner, "{name}: leased runner");
        assert_eq!(&evs[2], stored, "{name}: the last event is the stored job");
    }

    // The waits the server reports (GetQueueStats) are the stored waits.
    let stats = alpha
        .fleet
        .clone()
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect("GetQueueStats")
        .into_inner();
    assert_eq!(stats.tenants.len(), 1, "a tenant sees only its own stats");
    let ws = stats.tenants[0].stats.expect("wait stats");
    let mut waits: Vec<i64> = listed
        .values()
        .filter(|j| j.tenant == "alpha")
        .map(|j| j.start_ms - j.submit_ms)
        .collect();
    waits.sort_unstable();
    assert_eq!(ws.started_last_hour, (JOBS / 2) as u64);
    assert_eq!(ws.queued + ws.running, 0);
    assert_eq!(ws.wait_p50_ms, nearest_rank(&waits, 50.0), "p50 wait");
    assert_eq!(ws.wait_p95_ms, nearest_rank(&waits, 95.0), "p95 wait");
    assert_eq!(ws.wait_p99_ms, nearest_rank(&waits, 99.0), "p99 wait");

    check_auth(&url, &alpha, &beta, &listed).await;

    eprintln!(
        "e2e ({backend:?}): {JOBS} jobs submitted in {submit_secs:.2} s, all succeeded {run_secs:.2} s after the last submit; p50/p95/p99 wait of alpha {}/{}/{} ms; total {:.2} s",
        ws.wait_p50_ms,
        ws.wait_p95_ms,
        ws.wait_p99_ms,
        t0.elapsed().as_secs_f64()
    );
    drop(procs);
    // An open WatchJobs stream would keep the server's graceful stop waiting.
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("the server did not stop within 10 s")
        .expect("stopping the server");
    store.finish().await;
}

async fn check_auth(
    url: &str,
    alpha: &Clients,
    beta: &Clients,
    listed: &BTreeMap<String, pb::Job>,
) {
    let beta_job = listed
        .values()
        .find(|j| j.tenant == "beta")
        .expect("a beta job")
        .clone();
    let mut a = alpha.jobs.clone();
    let e = a
        .get_job(pb::GetJobRequest {
            name: beta_job.name.clone(),
        })
        .await
        .expect_err("alpha must not read beta's job");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = a
        .cancel_job(pb::CancelJobRequest {
            name: beta_job.name.clone(),
        })
        .await
        .expect_err("alpha must not cancel beta's job");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = a
        .explain_job(pb::ExplainJobRequest {
            name: beta_job.name.clone(),
        })
        .await
        .expect_err("alpha must not explain beta's job");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = a
        .submit_job(pb::SubmitJobRequest {
            request_id: "x-1".into(),
            tenant: "beta".into(),
            command: "true".into(),
            ..Default::default()
        })
        .await
        .expect_err("alpha must not submit as beta");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = a
        .list_jobs(pb::ListJobsRequest {
            tenant: "beta".into(),
            ..Default::default()
        })
        .await
        .expect_err("alpha must not list beta's jobs");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // Unknown key, no key, runner token on the job API.
    for (key, want) in [
        (Some("not-a-key-at-all"), Code::Unauthenticated),
        (None, Code::Unauthenticated),
        (Some(RUNNER_TOKEN), Code::PermissionDenied),
    ] {
        let mut c = connect_lazy(url, key, None).expect("client").jobs;
        let e = c
            .get_job(pb::GetJobRequest {
                name: beta_job.name.clone(),
            })
            .await
            .expect_err("must be refused");
        assert_eq!(e.code(), want, "GetJob with key {key:?}: {e}");
        let e = c
            .submit_job(pb::SubmitJobRequest {
                request_id: "x-2".into(),
                tenant: "beta".into(),
                command: "true".into(),
                ..Default::default()
            })
            .await
            .expect_err("must be refused");
        assert_eq!(e.code(), want, "SubmitJob with key {key:?}: {e}");
    }
    // A tenant key on the runner API.
    let e = alpha
        .runners
        .clone()
        .register_runner(pb::RegisterRunnerRequest {
            runner_id: "sneaky".into(),
            pool: "lin".into(),
            labels: vec!["linux".into()],
            slots: 2,
        })
        .await
        .expect_err("tenant keys cannot register runners");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // Idempotent submits: an old request id with another body is refused naming the old
    // job (issue 13); two submits of a new one return one job.
    let mut b = beta.jobs.clone();
    let e = b
        .submit_job(pb::SubmitJobRequest {
            request_id: beta_job.request_id.clone(),
            command: "echo never runs twice".into(),
            ..Default::default()
        })
        .await
        .expect_err("a repeated request id with another command");
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");
    assert!(e.message().contains(&beta_job.name), "{e}");
    let req = pb::SubmitJobRequest {
        request_id: "dup-1".into(),
        labels: vec!["linux".into()],
        command: "true".into(),
        ..Default::default()
    };
    let one = b
        .submit_job(req.clone())
        .await
        .expect("submit")
        .into_inner();
    let two = b.submit_job(req).await.expect("submit again").into_inner();
    assert_eq!(one.name, two.name, "same request id, same job");
    // The same request id in another tenant is another job.
    let other = a
        .submit_job(pb::SubmitJobRequest {
            request_id: "dup-1".into(),
            labels: vec!["linux".into()],
            command: "true".into(),
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner();
    assert_ne!(other.name, one.name, "request ids are per tenant");
}

/// The CLI against a local-mode server: submit, get, list, explain, cancel, idempotency,
/// and a runner running the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_submit_get_list_cancel() {
    let (dir, srv, url) = local_server().await;
    let s = url.as_str();
    let marker = dir.path().join("ran");

    // No runner yet: the job waits.
    let cmd = format!("echo hi > {}", marker.display());
    let job = cli(&[
        "submit",
        "--server",
        s,
        "--tenant",
        "t1",
        "--labels",
        "linux,x86",
        "--command",
        &cmd,
        "--request-id",
        "r-1",
        "--format",
        "json",
    ]);
    let name = job["name"].as_str().expect("name").to_string();
    assert!(name.starts_with("jobs/"), "{job}");
    assert_eq!(job["state"], "QUEUED");
    assert_eq!(job["tenant"], "t1");
    assert_eq!(job["labels"], serde_json::json!(["linux", "x86"]));
    assert_eq!(job["command"], cmd.as_str());
    assert!(job["submit_ms"].as_i64().expect("submit_ms") > 0);
    let again = cli(&[
        "submit",
        "--server",
        s,
        "--tenant",
        "t1",
        "--labels",
        "linux,x86",
        "--command",
        &cmd,
        "--request-id",
        "r-1",
        "--format",
        "json",
    ]);
    assert_eq!(again["name"], name.as_str(), "same request id, same job");
    let e = cli(&["jobs", "explain", &name, "--server", s, "--format", "json"]);
    assert_eq!(e["reason"], "no_runner_with_labels", "{e}");

    // A job to cancel, default request id (unique).
    let c1 = cli(&[
        "submit",
        "--server",
        s,
        "--tenant",
        "t1",
        "--labels",
        "gpu",
        "--command",
        "true",
        "--format",
        "json",
    ]);
    let c2 = cli(&[
        "submit",
        "--server",
        s,
        "--tenant",
        "t1",
        "--labels",
        "gpu",
        "--command",
        "true",
        "--format",
        "json",
    ]);
    assert_ne!(c1["name"], c2["name"], "default request ids are unique");
    let cname = c1["name"].as_str().expect("name");
    let cancelled = cli(&["jobs", "cancel", cname, "--server", s, "--format", "json"]);
    assert_eq!(cancelled["state"], "CANCELLED");

    let mut procs = Procs::new();
    procs.runner(
        "cli-r",
        s,
        "lin",
        "linux,x86",
        1,
        None,
        &[],
        &dir.path().join("runner.log"),
    );
    let done = wait_for(
        "the CLI's job to succeed",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let (s, name) = (s.to_string(), name.clone());
            async move {
                let j = cli(&["jobs", "get", &name, "--server", &s, "--format", "json"]);
                if j["state"] == "SUCCEEDED" {
                    Ok(j)
                } else {
                    Err(j.to_string())
                }
            }
        },
    )
    .await;
    assert_eq!(done["runner"], "runners/cli-r");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the job's side effect"),
        "hi\n"
    );
    let listed = cli(&[
        "jobs",
        "list",
        "--server",
        s,
        "--state",
        "succeeded",
        "--format",
        "json",
    ]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let all = cli(&[
        "jobs", "list", "--server", s, "--limit", "0", "--format", "json",
    ]);
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    // The interface scripts rely on: each job with its name, tenant, state, runner,
    // attempts and RFC 3339 times, the same instants as the milliseconds.
    for j in all.as_array().expect("array") {
        for field in [
            "name",
            "tenant",
            "state",
            "runner",
            "attempts",
            "submit_time",
        ] {
            assert!(!j[field].is_null(), "{field} missing: {j}");
        }
        let time = |f: &str| j[f].as_str().map(str::to_string);
        let ms = |f: &str| j[f].as_i64().unwrap_or(0);
        let as_time = |ms: i64| (ms > 0).then(|| rustci_datasets::time::format_utc_ms(ms));
        for (t, m) in [
            ("submit_time", "submit_ms"),
            ("start_time", "start_ms"),
            ("end_time", "end_ms"),
        ] {
            assert_eq!(time(t), as_time(ms(m)), "{t} against {m}: {j}");
        }
        match j["state"].as_str() {
            Some("SUCCEEDED") => {
                assert_eq!(j["runner"], "runners/cli-r");
                assert_eq!(j["attempts"], 1);
                assert!(
                    time("end_time") >= time("start_time")
                        && time("start_time") >= time("submit_time")
                );
            }
            Some("CANCELLED") => assert!(j["start_time"].is_null(), "{j}"),
            Some("QUEUED") => assert!(j["end_time"].is_null(), "{j}"),
            other => panic!("unexpected state {other:?}: {j}"),
        }
    }
    let e = cli(&["jobs", "explain", &name, "--server", s, "--format", "json"]);
    assert_eq!(e["reason"], "finished");

    // Table output and --help examples exist.
    for sub in [
        vec!["serve", "--help"],
        vec!["submit", "--help"],
        vec!["jobs", "--help"],
        vec!["jobs", "list", "--help"],
        vec!["runner", "--help"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&sub)
            .output()
            .expect("rustci --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Examples:"),
            "{sub:?}: {text}"
        );
    }
    let out = std::process::Command::new(BIN)
        .args(["jobs", "list", "--server", s])
        .output()
        .expect("rustci jobs list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("NAME") && text.contains(&name), "{text}");

    // A bad --state is a clear error.
    let out = std::process::Command::new(BIN)
        .args(["jobs", "list", "--server", s, "--state", "bogus"])
        .output()
        .expect("rustci jobs list");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state"));

    drop(procs);
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("the server did not stop within 10 s")
        .expect("stopping the server");
}

/// `rustci bench` (the load generator's stable interface) against a local-mode server:
/// closed loop with unary calls, then open loop with batch calls. Every job it reports
/// ran exactly once, on one of its own runners, which are drained at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bench_runs_every_job_once_and_reports_its_figures() {
    let (_dir, srv, url) = local_server().await;
    let t = Instant::now();
    let closed = cli(&[
        "bench",
        "--server",
        &url,
        "--jobs",
        "300",
        "--concurrency",
        "4",
        "--format",
        "json",
    ]);
    let closed_wall = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let open = cli(&[
        "bench", "--server", &url, "--jobs", "200", "--batch", "8", "--rate", "2000", "--format",
        "json",
    ]);
    let open_wall = t.elapsed().as_secs_f64();
    // 25 calls of 8 jobs, one every 4 ms: the last is sent 96 ms after the first.
    let open_seconds = open["seconds"].as_f64().expect("seconds");
    assert!(open_seconds >= 0.096, "{open}");
    assert!(open["late_calls"].as_u64().is_some(), "{open}");
    for (r, jobs, mode, wall) in [
        (&closed, 300, "closed", closed_wall),
        (&open, 200, "open", open_wall),
    ] {
        assert_eq!(r["mode"], mode, "{r}");
        assert_eq!(
            (r["jobs"].as_u64(), r["lifecycles"].as_u64()),
            (Some(jobs), Some(jobs)),
            "{r}"
        );
        assert_eq!(r["failed_calls"], 0, "{r}");
        // The measured span lies inside the command's own run time.
        let seconds = r["seconds"].as_f64().expect("seconds");
        assert!(
            seconds > 0.0 && seconds < wall,
            "{seconds} s of {wall} s: {r}"
        );
        assert!(r["lifecycles_per_s"].as_f64().expect("lifecycles_per_s") > 0.0);
        let (p50, p99) = (
            r["submit_to_lease_p50_us"].as_u64().expect("p50"),
            r["submit_to_lease_p99_us"].as_u64().expect("p99"),
        );
        assert!(p50 > 0 && p50 <= p99, "{r}");
        assert!(
            p99 <= r["submit_to_lease_max_us"].as_u64().expect("max"),
            "{r}"
        );
    }

    let c = connect_lazy(&url, None, None).expect("client");
    let jobs = list_all(&c, "bench", pb::JobState::Unspecified, 1000)
        .await
        .expect("list");
    assert_eq!(jobs.len(), 500, "every job the two runs submitted");
    let listed = cli(&["jobs", "list", "--server", &url, "--format", "json"]);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(500),
        "jobs list --format json lists every job unless --limit says otherwise"
    );
    let mut request_ids = HashSet::new();
    for j in &jobs {
        assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
        assert_eq!(j.attempts, 1, "leased once: {j:?}");
        assert!(j.runner.starts_with("runners/bench-"), "{j:?}");
        assert!(
            request_ids.insert(j.request_id.clone()),
            "one job per request"
        );
    }
    let stats = c
        .fleet
        .clone()
        .get_queue_stats(pb::GetQueueStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    // Both runs' runners are drained: registered until their heartbeats lapse, but
    // offering no slot.
    let bench_pools: Vec<_> = stats
        .pools
        .iter()
        .filter(|p| p.pool.starts_with("bench-"))
        .collect();
    assert_eq!(bench_pools.len(), 2, "{stats:?}");
    assert!(bench_pools.iter().all(|p| p.free_slots == 0), "{stats:?}");

    // Bad input is refused before anything is registered.
    let out = std::process::Command::new(BIN)
        .args(["bench", "--server", &url, "--jobs", "0"])
        .output()
        .expect("rustci bench");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--jobs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.stop().await.expect("stop");
}

/// `rustci bench --pipelines`: pipelines of 20 jobs in 4 stages over gRPC, every job
/// leased once and completed; the JSON's counts match what the server stored, every
/// pipeline succeeded with each stage after the one before, and the latencies are
/// ordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bench_pipelines_runs_every_pipeline_to_its_end_and_reports_its_figures() {
    let (_dir, srv, url) = local_server().await;
    let t = Instant::now();
    // 390 jobs are rounded up to 20 whole pipelines.
    let r = cli(&[
        "bench",
        "--server",
        &url,
        "--pipelines",
        "--jobs",
        "390",
        "--concurrency",
        "4",
        "--format",
        "json",
    ]);
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(
        (r["jobs"].as_u64(), r["lifecycles"].as_u64()),
        (Some(400), Some(400)),
        "{r}"
    );
    assert_eq!(r["failed_calls"], 0, "{r}");
    assert_eq!(r["foreign_leases"], 0, "{r}");
    assert!(
        r["latency_from"]
            .as_str()
            .is_some_and(|s| s.starts_with("ready")),
        "{r}"
    );
    let p = &r["pipelines"];
    assert_eq!(
        (
            p["pipelines"].as_u64(),
            p["jobs_per_pipeline"].as_u64(),
            p["stages"].as_u64()
        ),
        (Some(20), Some(20), Some(4)),
        "{r}"
    );
    let seconds = r["seconds"].as_f64().expect("seconds");
    assert!(
        seconds > 0.0 && seconds < wall,
        "{seconds} s of {wall} s: {r}"
    );
    assert!(r["lifecycles_per_s"].as_f64().expect("lifecycles_per_s") > 0.0);
    let us = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    for (p50, p99) in [
        (
            us(&r, "submit_to_lease_p50_us"),
            us(&r, "submit_to_lease_p99_us"),
        ),
        (us(p, "first_stage_p50_us"), us(p, "first_stage_p99_us")),
        (us(p, "later_stages_p50_us"), us(p, "later_stages_p99_us")),
    ] {
        assert!(p50 > 0 && p50 <= p99, "{r}");
        assert!(p99 <= us(&r, "submit_to_lease_max_us"), "{r}");
    }

    // What the server stored: 20 pipelines succeeded, each stage after the one before.
    let c = connect_lazy(&url, None, None).expect("client");
    let listed = c
        .pipelines
        .clone()
        .list_pipelines(pb::ListPipelinesRequest {
            tenant: "bench".into(),
            page_size: 100,
            with_jobs: true,
            ..Default::default()
        })
        .await
        .expect("list pipelines")
        .into_inner();
    assert_eq!(listed.pipelines.len(), 20);
    for pipe in &listed.pipelines {
        assert_eq!(pipe.state, pb::PipelineState::Succeeded as i32, "{pipe:?}");
        assert_eq!(pipe.jobs.len(), 20, "{pipe:?}");
        let mut stages: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for j in &pipe.jobs {
            assert_eq!(j.state, pb::PipelineJobState::Succeeded as i32, "{j:?}");
            assert_eq!(j.attempts, 1, "leased once: {j:?}");
            assert!(j.runner.starts_with("runners/bench-"), "{j:?}");
            let s = stages.entry(&j.stage).or_insert((i64::MAX, i64::MIN));
            *s = (s.0.min(j.start_ms), s.1.max(j.end_ms));
        }
        assert_eq!(stages.len(), 4, "{pipe:?}");
        let spans: Vec<(i64, i64)> = stages.into_values().collect();
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "a stage started before the one before ended: {pipe:?}"
            );
        }
    }

    // Pipeline options are refused where they cannot work.
    for args in [
        &["--pipelines", "--pipeline-jobs", "3", "--stages", "4"][..],
        &["--stages", "2"][..],
    ] {
        let out = std::process::Command::new(BIN)
            .args(["bench", "--server", &url])
            .args(args)
            .output()
            .expect("rustci bench");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("stages"),
            "{args:?}: {err}"
        );
    }
    srv.stop().await.expect("stop");
}

/// A load whose jobs cannot finish (its only runner drained from outside) stops waiting
/// after its idle limit, reports what it saw, and cancels the jobs it left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_cannot_finish_cancels_its_leftover_jobs() {
    use rustci_control::clients::loadgen::{Load, LoadConfig, Until};

    let (_dir, srv, url) = local_server().await;
    let clients = connect_lazy(&url, None, None).expect("client");
    let load = Load::start(
        LoadConfig {
            tenants: vec!["stuck".into()],
            runners: 1,
            slots: 4,
            batch: 1,
            run_id: "stuck-run".into(),
            idle_limit: Duration::from_millis(300),
            pipeline: None,
        },
        vec![clients.clone()],
        vec![clients.clone()],
    )
    .await
    .expect("start");
    clients
        .runners
        .clone()
        .drain_runner(pb::DrainRunnerRequest {
            name: "runners/stuck-run-0".into(),
        })
        .await
        .expect("drain");
    let r = load.closed_loop(2, Until::Jobs(20), true).await;
    assert_eq!((r.jobs, r.lifecycles), (20, 0), "{r:?}");
    assert_eq!(r.submit_to_lease_p99_us, 0, "no job was leased");
    assert_eq!(load.cancel_unfinished().await.expect("cancel"), 20);
    load.stop().await;
    let jobs = list_all(&clients, "stuck", pb::JobState::Unspecified, 100)
        .await
        .expect("list");
    assert_eq!(jobs.len(), 20);
    assert!(
        jobs.iter()
            .all(|j| j.state == pb::JobState::Cancelled as i32),
        "{jobs:?}"
    );
    srv.stop().await.expect("stop");
}
