//! Issue 13, items 9 and the smaller ones, on the live service (real gRPC over a
//! loopback socket) and the `rustci` binary: control characters refused in every text
//! field (commands keep newline and tab) and escaped in tables; an empty command
//! refused; the `bearer` scheme in any case; a stale completion's message without Rust
//! debug text; `--metrics-listen HOST:PORT`.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    expect_invalid, free_port, lease_one, serve_with_auth, tail, with_header, Procs, BIN,
    TEAM_A_AUTH,
};
use rustci_control::clients::client::Bearer;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use tonic::Code;

fn job(rid: &str, command: &str) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: rid.into(),
        tenant: "team-a".into(),
        command: command.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_srv, ch) = serve_with_auth(dir.path(), TEAM_A_AUTH).await;
    let mut jobs = JobServiceClient::new(ch);
    let key = "Bearer key-team-a-1";
    let cases: Vec<(&str, SubmitJobRequest)> = vec![
        ("command", job("c1", "echo \u{1b}]0;owned\u{7}")),
        ("command", job("c2", "true\0rm -rf /")),
        ("command", job("c3", "")),
        ("command", job("c4", " \n\t")),
        (
            "labels",
            SubmitJobRequest {
                labels: vec!["linux\0".into()],
                ..job("l1", "true")
            },
        ),
        (
            "project",
            SubmitJobRequest {
                project: "web\0".into(),
                ..job("p1", "true")
            },
        ),
        (
            "job_name",
            SubmitJobRequest {
                job_name: "build\u{1b}[31m".into(),
                ..job("n1", "true")
            },
        ),
        (
            "branch",
            SubmitJobRequest {
                branch: "main\0".into(),
                ..job("b1", "true")
            },
        ),
        ("request_id", job("r\0", "true")),
    ];
    for (field, req) in cases {
        expect_invalid(jobs.submit_job(with_header(key, req)).await, field);
    }
    // Tenants are checked where the server knows them: with an API key, the key's.
    let listed = jobs
        .list_jobs(with_header(key, ListJobsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.jobs.is_empty(), "nothing stored: {:?}", listed.jobs);

    // What a shell command needs passes: lines and tabs.
    let ok = jobs
        .submit_job(with_header(key, job("ok", "make\ttest\nmake install")))
        .await
        .expect("a command of two lines with a tab")
        .into_inner();
    assert_eq!(ok.command, "make\ttest\nmake install");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_srv, ch) = serve_with_auth(dir.path(), TEAM_A_AUTH).await;
    let mut jobs = JobServiceClient::new(ch);
    for (i, header) in [
        "bearer key-team-a-1",
        "BEARER key-team-a-1",
        "Bearer key-team-a-1",
    ]
    .into_iter()
    .enumerate()
    {
        jobs.submit_job(with_header(header, job(&format!("b{i}"), "true")))
            .await
            .unwrap_or_else(|s| panic!("{header:?}: {s:?}"));
    }
    let s = jobs
        .submit_job(with_header("Basic key-team-a-1", job("basic", "true")))
        .await
        .expect_err("another scheme");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_completion_names_the_lease_holder_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_srv, ch) = serve_with_auth(dir.path(), TEAM_A_AUTH).await;
    let mut jobs = JobServiceClient::new(ch.clone());
    let runner_token = Bearer::new(Some("runner-token-1")).expect("runner token");
    let mut run = RunnerServiceClient::with_interceptor(ch, runner_token);
    run.register_runner(RegisterRunnerRequest {
        runner_id: "r1".into(),
        pool: "linux".into(),
        labels: vec!["linux".into()],
        slots: 1,
    })
    .await
    .expect("register");
    jobs.submit_job(with_header("Bearer key-team-a-1", job("s1", "true")))
        .await
        .expect("submit");
    let lease = lease_one(&mut run, "r1").await;
    let name = lease
        .job
        .as_ref()
        .map(|j| j.name.clone())
        .unwrap_or_default();
    let s = run
        .complete_job(CompleteJobRequest {
            job: name,
            runner: "runners/r1".into(),
            fencing_token: lease.fencing_token + 1,
            success: true,
            ..Default::default()
        })
        .await
        .expect_err("a wrong fencing token");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(
        !s.message().contains("Some(") && s.message().contains("runners/r1"),
        "{:?}",
        s.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_escape_what_a_job_carries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve_with_auth(dir.path(), TEAM_A_AUTH).await;
    let mut jobs = JobServiceClient::new(ch);
    jobs.submit_job(with_header(
        "Bearer key-team-a-1",
        job("t1", "make\ttest\nmake install"),
    ))
    .await
    .expect("submit");
    let server = format!("http://{}", srv.addr);
    let o = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["jobs", "list", "--server", &server])
            .args(["--api-key", "key-team-a-1"])
            .output()
            .expect("run rustci")
    })
    .await
    .expect("jobs list");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).expect("UTF-8");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {out:?}");
    assert!(
        lines[1].ends_with("make\\ttest\\nmake install") && !out.contains('\t'),
        "{out:?}"
    );
}

#[test]
fn submit_refuses_an_empty_command_before_connecting() {
    // Port 9 (discard) on loopback: nothing answers gRPC there; the error must come first.
    let o = crate::common::rustci([
        "submit",
        "--server",
        "http://127.0.0.1:9",
        "--command",
        "  ",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("--command is empty"), "{err}");
}

#[test]
fn metrics_listen_takes_a_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics) = (free_port(), free_port());
    let log = dir.path().join("serve.log");
    let mut procs = Procs::new();
    procs.server(
        "serve",
        port,
        &dir.path().join("data"),
        &["--metrics-listen", &format!("localhost:{metrics}")],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        procs.assert_alive();
        if let Ok(mut s) = std::net::TcpStream::connect(("localhost", metrics)) {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .expect("request");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics on localhost:{metrics}: {}",
            tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

#[test]
fn errors_say_their_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.csv");
    let missing = missing.display().to_string();
    let o = crate::common::rustci([
        "retrain",
        "--from",
        &missing,
        "--out",
        &dir.path().join("models").display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert_eq!(err.matches(&missing).count(), 1, "the path once: {err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the cause once: {err}"
    );

    let auth = dir.path().join("auth.toml");
    crate::common::write_private(&auth, "[[tenant]\nname = 1\n");
    let o = crate::common::rustci([
        "serve",
        "--auth",
        &auth.display().to_string(),
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert_eq!(err.matches("invalid table header").count(), 1, "{err}");
}
