//! Helpers of the control crate's tests: the `rustci` binary of this package, a plain
//! submission, one group-commit flush.

use std::process::Command;

use rustci_control::server::live::{Live, Submission};

/// Runs the `rustci` binary with `args` and waits for it.
pub fn rustci<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_rustci"))
        .args(args)
        .output()
        .expect("run rustci")
}

/// A one-slot `linux` job of `tenant` running `true`, asking for a minute.
pub fn submission(tenant: &str, request_id: &str) -> Submission {
    Submission {
        request_id: request_id.into(),
        tenant: tenant.into(),
        labels: vec!["linux".into()],
        command: "true".into(),
        requested_ms: 60_000,
        ..Submission::default()
    }
}

/// What a group-commit flusher does (`rustci_control::server::flush`), once: take what
/// is pending, commit it to the store, report the result.
pub fn flush(live: &mut Live) {
    let flush = live.take_pending().expect("something to flush");
    let result = live
        .shared_store()
        .lock()
        .expect("store")
        .commit(&flush.batch);
    live.finish_flush(flush, result);
}
