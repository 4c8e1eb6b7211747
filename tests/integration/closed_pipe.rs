//! `rustci` whose reader closed the pipe (`rustci jobs list --format json | head -1`): it
//! ends quietly, status 0, with no panic, as `head` users expect. A real server on a
//! loopback socket, the release binary as a user runs it.

use std::process::{Command, Output, Stdio};

use crate::common::{serve_with_auth, BIN, TEAM_A_AUTH};

/// Runs `rustci args` with stdout a pipe whose read end is already closed, so the first
/// write fails with EPIPE whatever its timing.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .output()
        .expect("run rustci")
}

#[track_caller]
fn assert_quiet(args: &[&str], o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(0) | Some(141)),
        "rustci {args:?}: status {:?}, stderr: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "rustci {args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "rustci {args:?}: {err}");
}

#[test]
fn help_survives_a_closed_pipe() {
    for args in [&["--help"][..], &["jobs", "list", "--help"]] {
        assert_quiet(args, &into_closed_pipe(args));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, _) = serve_with_auth(dir.path(), TEAM_A_AUTH).await;
    let server = format!("http://{}", srv.addr);
    let with_conn = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--server", &server, "--api-key", "key-team-a-1"])
            .map(String::from)
            .collect()
    };
    let submit = with_conn(&["submit", "--tenant", "team-a", "--command", "make test"]);
    let o = tokio::task::spawn_blocking(move || crate::common::rustci(submit))
        .await
        .expect("submit");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for format in ["json", "table"] {
        let args = with_conn(&["jobs", "list", "--format", format]);
        let o = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = into_closed_pipe(&args);
            assert_quiet(&args, &o);
        })
        .await;
        o.expect("jobs list into a closed pipe");
    }
}
