//! `rustci-sim` whose reader closed the pipe (`rustci-sim run --format json | head -1`):
//! it ends quietly, status 0, with no panic, as `head` users expect.

use std::process::{Command, Output, Stdio};

/// Runs `rustci-sim args` with stdout a pipe whose read end is already closed, so the
/// first write fails with EPIPE whatever its timing.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_rustci-sim"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .output()
        .expect("run rustci-sim")
}

#[track_caller]
fn quiet(args: &[&str]) {
    let o = into_closed_pipe(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(0) | Some(141)),
        "rustci-sim {args:?}: status {:?}, stderr: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "rustci-sim {args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "rustci-sim {args:?}: {err}");
}

#[test]
fn fleet_survives_a_closed_pipe() {
    quiet(&["fleet"]);
}

#[test]
fn run_json_survives_a_closed_pipe() {
    quiet(&["run", "--days", "0.05", "--format", "json", "-q"]);
}

#[test]
fn run_table_survives_a_closed_pipe() {
    quiet(&["run", "--days", "0.05", "-q"]);
}

#[test]
fn help_survives_a_closed_pipe() {
    quiet(&["--help"]);
    quiet(&["run", "--help"]);
}
