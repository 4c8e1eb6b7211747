//! A job's processes end with its runner, however the runner dies.
//!
//! The reference runner does not start a job's `sh -c` itself: it starts `rustci
//! __job-guard`, a small supervisor, which
//! 1. asks the kernel for SIGTERM when its parent (the runner) dies
//!    (`PR_SET_PDEATHSIG`), then checks that the runner is still its parent (it may have
//!    died before the request took effect);
//! 2. starts `sh -c COMMAND` in a process group of its own and records that group in the
//!    runner's state directory;
//! 3. on SIGTERM, SIGINT or SIGHUP (the runner died, or stops the job), kills the whole
//!    group with SIGKILL and exits; when the shell ends, kills what it left in its group
//!    (a job's background processes end with the job) and exits with the shell's status.
//!
//! SIGKILL of the runner therefore reaches the job through its guard. If the guard dies
//! at the same moment (the OOM killer, `kill -9` of both), nothing is left to act at
//! once: the runner, started again with the same id, first kills every group its dead
//! predecessor recorded ([`kill_leftovers`]), after checking in `/proc/PID/environ`
//! that the processes are still that runner's job (`RUSTCI_RUNNER`, `RUSTCI_JOB`), so a
//! reused pid is never killed.
//!
//! The parent-death signal is sent when the *thread* that forked the guard ends, not the
//! process: the runner forks guards from one thread that lives as long as it does
//! (`clients::runner`).

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{killpg, SigSet, Signal};
use nix::unistd::{getppid, Pid};

/// The hidden subcommand of the `rustci` binary that runs [`guard`].
pub const SUBCOMMAND: &str = "__job-guard";

/// Runs `sh -c command` guarded (see the module docs) and returns the exit code to leave
/// with: the shell's code, 128 + the signal that ended it, or 137 when the guard killed
/// it. `parent` is the runner's pid; `record` the file to write the job's process group
/// in, removed when the guard is done.
pub fn guard(parent: u32, record: Option<&Path>, command: &str) -> io::Result<i32> {
    // Blocked in this (the only) thread, so they wait for `wait` below instead of killing
    // the guard; the shell starts with an empty mask (std resets it in the child).
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        signals.add(s);
    }
    signals.thread_block().map_err(io::Error::from)?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
    if getppid() != Pid::from_raw(parent as i32) {
        // The runner died before the parent-death signal was armed: start nothing.
        return Ok(137);
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .process_group(0)
        .spawn()?;
    let pgid = Pid::from_raw(child.id() as i32);
    if let Some(r) = record {
        write_record(r, child.id())?;
    }
    let code = loop {
        let sig = signals.wait().map_err(io::Error::from)?;
        if sig == Signal::SIGCHLD {
            if let Some(status) = child.try_wait()? {
                break exit_code(&status);
            }
            continue;
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
        break 128 + Signal::SIGKILL as i32;
    };
    // What the job left in its group ends with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    if let Some(r) = record {
        let _ = fs::remove_file(r);
    }
    Ok(code)
}

fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// The runner's state directory: `$XDG_STATE_HOME/rustci/runners/ID`, else
/// `$HOME/.local/state/rustci/runners/ID`; `None` without either.
pub fn state_dir(runner_id: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("rustci/runners").join(runner_id))
}

/// The record file of `job` (`jobs/N`) in `dir`.
pub fn record_path(dir: &Path, job: &str) -> PathBuf {
    dir.join(format!("{}.pgid", job.replace('/', "-")))
}

fn write_record(path: &Path, pgid: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, format!("{pgid}\n"))?;
    fs::rename(&tmp, path)
}

/// Kills every job group recorded in `dir` that still runs as `runner`'s (`runners/ID`)
/// job, and removes the records; returns the groups killed. Run at the runner's start,
/// before it takes work.
pub fn kill_leftovers(dir: &Path, runner: &str) -> io::Result<Vec<u32>> {
    let mut killed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(killed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "pgid") {
            continue;
        }
        let Some(job) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("jobs-"))
            .map(|n| format!("jobs/{n}"))
        else {
            continue;
        };
        let pgid = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pgid) = pgid {
            if group_runs_job(pgid, runner, &job) {
                let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
                killed.push(pgid);
            }
        }
        let _ = fs::remove_file(&path);
    }
    Ok(killed)
}

/// Whether a live process of group `pgid` has `RUSTCI_RUNNER=runner` and
/// `RUSTCI_JOB=job` in its environment (a recycled pid would not).
fn group_runs_job(pgid: u32, runner: &str, job: &str) -> bool {
    let want_runner = format!("RUSTCI_RUNNER={runner}");
    let want_job = format!("RUSTCI_JOB={job}");
    let Ok(procs) = fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        if process_group(pid) != Some(pgid) {
            return false;
        }
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let has = |kv: &str| env.split(|&b| b == 0).any(|e| e == kv.as_bytes());
        has(&want_runner) && has(&want_job)
    })
}

/// The process group of a live process, from `/proc/PID/stat`.
fn process_group(pid: u32) -> Option<u32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last
    // `)` are: state, ppid, pgrp.
    let rest = text.get(text.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_a_group_that_is_not_the_runners_job_kills_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // This test's own process group: alive, but not a job of that runner.
        let own = process_group(std::process::id()).expect("own group");
        let rec = record_path(tmp.path(), "jobs/7");
        write_record(&rec, own).expect("record");
        let killed = kill_leftovers(tmp.path(), "runners/nobody").expect("scan");
        assert!(killed.is_empty());
        assert!(!rec.exists(), "the stale record is removed");
    }
}
