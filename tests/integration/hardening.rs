//! Hardening of the live service (issue 13, part A), each case as an operator or another
//! local user would meet it, with the release binary where a process boundary matters:
//! a job's processes end with its runner however the runner dies; one server per data
//! directory; private files; local mode serving only its owner; a store that cannot be
//! written refused at start; a repeated request id with another body refused; a damaged
//! store refused and job names never reused.
//!
//! The other-user cases run the binary as uid 65534 with `setpriv` (tests run as root in
//! CI); where that cannot run they print a visible `SKIPPED:` line.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    free_port, now_ns, raw_channel, tail, wait_for, wait_ready, wait_runners, with_key, Procs, BIN,
};
use rustci_control::pb;
use rustci_control::server::live::{Live, LiveConfig, Submission, SystemClock};
use rustci_control::server::{self, ServeOptions};
use rustci_control::store::sqlite::{SqliteStore, SyncMode, DB_FILE};
use rustci_control::store::Store;

use tonic::transport::Channel;
use tonic::Code;

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn euid() -> u32 {
    std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
}

/// The uid the other-user cases run as.
const OTHER_UID: u32 = 65534;

/// The release binary, runnable as [`OTHER_UID`] through `setpriv`: a hard link (or a
/// copy) of it in a directory that user may enter (the target directory is usually under
/// a home only root may enter).
struct OtherUser {
    dir: tempfile::TempDir,
}

impl OtherUser {
    /// `None` (after a visible skip line) where this cannot run: not root, or no setpriv.
    fn new(test: &str) -> Option<Self> {
        if euid() != 0 {
            skip(test, "not root: cannot run a process as another user");
            return None;
        }
        let setpriv = Command::new("setpriv")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !setpriv.is_ok_and(|s| s.success()) {
            skip(test, "setpriv (util-linux) is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        chmod(dir.path(), 0o755);
        let bin = dir.path().join("rustci");
        if std::fs::hard_link(BIN, &bin).is_err() {
            std::fs::copy(BIN, &bin).expect("copying the binary");
        }
        Some(Self { dir })
    }

    /// `rustci ARGS` as uid/gid 65534 with no supplementary groups.
    fn rustci(&self) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={OTHER_UID}"))
            .arg(format!("--regid={OTHER_UID}"))
            .arg("--clear-groups")
            .arg(self.dir.path().join("rustci"));
        cmd
    }
}

/// A private temporary directory others may enter (so a server run as another user can
/// reach a data directory inside it).
fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    chmod(dir.path(), 0o755);
    dir
}

/// Waits for `child` to exit, at most `timeout`; kills it and panics with `what` and its
/// output if it does not (or if something answers on `port` meanwhile: it is serving).
fn must_exit(mut child: Child, port: u16, timeout: Duration, what: &str) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        let serving = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if serving || Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what}: {} instead of refusing to start; stderr:\n{}",
                if serving {
                    "it serves"
                } else {
                    "it did not exit"
                },
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve_cmd(cmd: &mut Command, port: u16, data: &Path) {
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

/// Runs `cmd` as `rustci serve` on `data` (a free port), which must fail at start within
/// 20 s (`what` names the case); its stderr.
fn serve_must_fail(mut cmd: Command, data: &Path, what: &str) -> String {
    let port = free_port();
    serve_cmd(&mut cmd, port, data);
    let out = must_exit(
        cmd.spawn().expect("spawn"),
        port,
        Duration::from_secs(20),
        what,
    );
    assert!(!out.status.success(), "{what}: exit status {}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stops a `rustci serve` child with SIGTERM and waits for it.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("rustci serve did not stop on SIGTERM");
}

// ---------------------------------------------------------------------------------
// One server per data directory.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_held_data_dir_exits_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut procs = Procs::new();
    let port = free_port();
    procs.server("first", port, &data, &[], &dir.path().join("first.log"));
    wait_ready(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(30),
    )
    .await;

    let stderr = serve_must_fail(
        Command::new(BIN),
        &data,
        "a second rustci serve on a held data dir",
    );
    assert!(
        stderr.contains("in use by another rustci serve")
            && stderr.contains(&format!("listen 127.0.0.1:{port}"))
            && stderr.contains("pid "),
        "the refusal names the holder: {stderr}"
    );

    // kill -9 leaves no lock behind: the kernel released it with the process.
    procs.kill9("first");
    let port3 = free_port();
    procs.server("third", port3, &data, &[], &dir.path().join("third.log"));
    wait_ready(
        &format!("http://127.0.0.1:{port3}"),
        None,
        Duration::from_secs(30),
    )
    .await;
}

// ---------------------------------------------------------------------------------
// Private files.

const AUTH: &str = "runner_tokens = [\"runner-token-01\"]\n\n[[tenant]]\nname = \"alpha\"\napi_keys = [\"alpha-key-0001\"]\n";

fn auth_file(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join("auth.toml");
    std::fs::write(&p, AUTH).expect("auth file");
    chmod(&p, mode);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_the_database_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A data directory left open by an earlier version is narrowed too.
    std::fs::create_dir(&data).expect("mkdir");
    chmod(&data, 0o755);
    let srv = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.clone(),
        auth: Some(auth_file(dir.path(), 0o600)),
        ..ServeOptions::default()
    })
    .await
    .expect("server starts");
    let mut jobs = pb::job_service_client::JobServiceClient::new(raw_channel(srv.addr).await);
    jobs.submit_job(with_key(
        "alpha-key-0001",
        pb::SubmitJobRequest {
            request_id: "r1".into(),
            command: "echo secret-command".into(),
            ..Default::default()
        },
    ))
    .await
    .expect("submit");
    assert_eq!(mode(&data), 0o700, "data dir");
    for f in [DB_FILE, "rustci.db-wal", "rustci.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    srv.stop().await.expect("stop");
}

#[tokio::test]
async fn an_auth_file_others_may_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_file(dir.path(), 0o644);
    let err = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        auth: Some(auth.clone()),
        ..ServeOptions::default()
    })
    .await
    .expect_err("an auth file others may read must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&auth.display().to_string())
            && msg.contains("0644")
            && msg.contains(&format!("chmod 600 {}", auth.display())),
        "{msg}"
    );
}

#[tokio::test]
async fn a_model_dir_others_may_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("mkdir");
    chmod(&models, 0o777);
    let err = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        model_dir: Some(models.clone()),
        ..ServeOptions::default()
    })
    .await
    .expect_err("a model directory every user may write must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&models.display().to_string()) && msg.contains("0777"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------
// A store that cannot be written.

#[test]
fn a_store_that_cannot_be_written_is_refused_at_start() {
    const TEST: &str = "a_store_that_cannot_be_written_is_refused_at_start";
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    // A store with a job in it, written by its owner and stopped cleanly.
    let port = free_port();
    let mut cmd = Command::new(BIN);
    serve_cmd(&mut cmd, port, &data);
    let first = cmd.spawn().expect("spawn");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(BIN)
            .args([
                "submit",
                "--server",
                &url,
                "--tenant",
                "t",
                "--command",
                "true",
            ])
            .output()
            .expect("submit");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "submit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(first);

    // Another user runs the server on it: the directory is theirs, the database is
    // not theirs to write (as root, chmod alone would not stop the server).
    let other = OtherUser::new(TEST);
    let cmd = match &other {
        Some(o) => {
            for entry in std::fs::read_dir(&data).expect("read data dir") {
                let p = entry.expect("entry").path();
                if p.file_name().is_some_and(|n| n != DB_FILE) {
                    std::os::unix::fs::chown(&p, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
                }
            }
            std::os::unix::fs::chown(&data, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
            chmod(&data.join(DB_FILE), 0o444);
            o.rustci()
        }
        None => {
            chmod(&data.join(DB_FILE), 0o444);
            Command::new(BIN)
        }
    };
    let stderr = serve_must_fail(cmd, &data, "rustci serve on a database it cannot write");
    assert!(
        stderr.contains("cannot be written") && stderr.contains(DB_FILE),
        "names the store and the problem: {stderr}"
    );

    // A data directory that is read-only as a whole fails at start too.
    if let Some(o) = &other {
        chmod(&data, 0o555);
        let stderr = serve_must_fail(
            o.rustci(),
            &data,
            "rustci serve on a read-only data directory",
        );
        assert!(
            stderr.contains(&data.display().to_string()),
            "names the data directory: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------
// A repeated request id with another body.

type JobClient = pb::job_service_client::JobServiceClient<Channel>;

async fn submit_as_alpha(
    jobs: &JobClient,
    body: pb::SubmitJobRequest,
) -> Result<tonic::Response<pb::Job>, tonic::Status> {
    jobs.clone()
        .submit_job(with_key("alpha-key-0001", body))
        .await
}

/// The same body again (labels in another order are the same set) returns the first
/// job; another command, other labels or another priority are ALREADY_EXISTS naming the
/// first job and the field.
async fn check_repeats(
    jobs: &JobClient,
    first_body: &pb::SubmitJobRequest,
    first_name: &str,
    label: &str,
) {
    let mut same = first_body.clone();
    same.labels.reverse();
    let again = submit_as_alpha(jobs, same)
        .await
        .expect("same body")
        .into_inner();
    assert_eq!(again.name, first_name, "{label}: idempotent retry");
    for (what, body) in [
        (
            "command",
            pb::SubmitJobRequest {
                command: "rm -rf /".into(),
                ..first_body.clone()
            },
        ),
        (
            "labels",
            pb::SubmitJobRequest {
                labels: vec!["macos".into()],
                ..first_body.clone()
            },
        ),
        (
            "priority",
            pb::SubmitJobRequest {
                priority: 5,
                ..first_body.clone()
            },
        ),
    ] {
        let e = submit_as_alpha(jobs, body)
            .await
            .expect_err("another body under the same request id");
        assert_eq!(e.code(), Code::AlreadyExists, "{label}: other {what}: {e}");
        assert!(
            e.message().contains(first_name) && e.message().contains(what),
            "{label}: names the first job and the field: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_with_another_body_is_already_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        auth: Some(auth_file(dir.path(), 0o600)),
        ..ServeOptions::default()
    })
    .await
    .expect("server starts");
    let mut jobs = pb::job_service_client::JobServiceClient::new(raw_channel(srv.addr).await);
    let first_body = pb::SubmitJobRequest {
        request_id: "deploy-42".into(),
        labels: vec!["linux".into(), "x86_64".into()],
        command: "make deploy".into(),
        ..Default::default()
    };
    let first = submit_as_alpha(&jobs, first_body.clone())
        .await
        .expect("first")
        .into_inner();
    // While the job is queued (the live table answers) and once it ended (the store does).
    check_repeats(&jobs, &first_body, &first.name, "queued").await;
    jobs.cancel_job(with_key(
        "alpha-key-0001",
        pb::CancelJobRequest {
            name: first.name.clone(),
        },
    ))
    .await
    .expect("cancel");
    wait_for(
        "the cancellation to be durable",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let mut jobs = jobs.clone();
            let name = first.name.clone();
            async move {
                let j = jobs
                    .get_job(with_key("alpha-key-0001", pb::GetJobRequest { name }))
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                (j.state == pb::JobState::Cancelled as i32)
                    .then_some(())
                    .ok_or(format!("{j:?}"))
            }
        },
    )
    .await;
    check_repeats(&jobs, &first_body, &first.name, "finished").await;
    srv.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------------
// A damaged store.

fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, SyncMode::Full).expect("open store")
}

fn submission(request: &str) -> Submission {
    Submission {
        request_id: request.into(),
        tenant: "t".into(),
        command: "true".into(),
        ..Submission::default()
    }
}

fn live_on(dir: &Path) -> Live {
    Live::open(
        LiveConfig::default(),
        Arc::new(SystemClock),
        Box::new(open_store(dir)),
    )
    .expect("live state")
}

#[test]
fn job_names_are_not_reused_after_the_database_lost_its_last_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let saved = tmp.path().join("saved.db");
    let revision_before_loss;
    {
        let mut live = live_on(&data);
        for r in ["a", "b"] {
            live.submit(submission(r)).expect("submit");
        }
    }
    // The database file as it was after two jobs (the store closed cleanly: no WAL).
    std::fs::copy(data.join(DB_FILE), &saved).expect("save");
    {
        let mut live = live_on(&data);
        let third = live.submit(submission("c")).expect("submit");
        assert_eq!(third.id, 3);
        revision_before_loss = live.revision();
    }
    // The last commit is lost (as when damaged WAL frames are dropped at recovery).
    for f in ["rustci.db-wal", "rustci.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    std::fs::copy(&saved, data.join(DB_FILE)).expect("restore");

    let mut live = live_on(&data);
    let next = live.submit(submission("d")).expect("submit");
    assert!(
        next.id > 3,
        "jobs/3 was handed out before the loss; the next job got jobs/{}",
        next.id
    );
    assert!(
        live.revision() > revision_before_loss,
        "revisions go on after the lost ones: {} <= {revision_before_loss}",
        live.revision()
    );
}

/// The page numbers of the b-tree rooted at `root` (interior pages and leaves), from the
/// `dbstat`-free layout: walks the pages itself.
fn btree_pages(db: &[u8], page_size: usize, root: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        out.push(p);
        let base = (p - 1) * page_size;
        let hdr = if p == 1 { base + 100 } else { base };
        let kind = db[hdr];
        // 2 and 5: interior index / table pages; their children are in the cells.
        if kind == 2 || kind == 5 {
            let cells = u16::from_be_bytes([db[hdr + 3], db[hdr + 4]]) as usize;
            for i in 0..cells {
                let at = hdr + 12 + 2 * i;
                let off = u16::from_be_bytes([db[at], db[at + 1]]) as usize;
                let c = base + off;
                todo.push(u32::from_be_bytes([db[c], db[c + 1], db[c + 2], db[c + 3]]) as usize);
            }
            let right = hdr + 8;
            todo.push(
                u32::from_be_bytes([db[right], db[right + 1], db[right + 2], db[right + 3]])
                    as usize,
            );
        }
    }
    out
}

#[test]
fn a_store_that_fails_the_integrity_check_is_refused_with_how_to_recover() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    {
        let mut live = live_on(&data);
        for i in 1..=400 {
            live.submit(Submission {
                tenant: format!("tenant-{}", i % 7),
                ..submission(&format!("req-{i}"))
            })
            .expect("submit");
        }
    }
    // Damage a leaf of one index that a start does not read (jobs by tenant): the
    // server used to start on it without a word.
    let db_path = data.join(DB_FILE);
    let (root, page_size) = {
        let c = rusqlite::Connection::open(&db_path).expect("open");
        let root: i64 = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'jobs_tenant_id'",
                [],
                |r| r.get(0),
            )
            .expect("index root");
        let size: i64 = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        (root as usize, size as usize)
    };
    let mut db = std::fs::read(&db_path).expect("read db");
    let pages = btree_pages(&db, page_size, root);
    let leaf = *pages.last().expect("a page");
    let start = (leaf - 1) * page_size + page_size / 2;
    for b in &mut db[start..start + 64] {
        *b = 0xA5;
    }
    std::fs::write(&db_path, &db).expect("write damaged db");

    let err = SqliteStore::open(&data, SyncMode::Full)
        .and_then(|mut s| s.load(0).map(|_| ()))
        .expect_err("a damaged store must be refused at open");
    let msg = err.to_string();
    assert!(
        msg.contains("integrity check") && msg.contains(".recover") && msg.contains(DB_FILE),
        "says what failed and how to recover: {msg}"
    );
}

// ---------------------------------------------------------------------------------
// A job's processes end with its runner.

/// Pids of the live processes whose environment holds `marker` (`KEY=VALUE`).
fn processes_with_env(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Zombies have an empty environ; exited processes are gone.
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

/// Pids of the live processes in process group `pgid`.
fn processes_in_group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((_, _, pgrp)) = stat(pid) {
            if pgrp == pgid {
                out.push(pid);
            }
        }
    }
    out
}

/// (state, parent pid, process group) of a live, non-zombie process.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    (state != 'Z').then_some((state, ppid, pgrp))
}

fn kill9(pids: &[u32]) {
    for p in pids {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(p.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills what a test's jobs left running, whatever happened.
struct KillMarked(Vec<String>);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for m in &self.0 {
            kill9(&processes_with_env(m));
        }
    }
}

/// One line the job appended: (`start`/`tick`/`end`, attempt, ns, pid).
#[derive(Debug, Clone, PartialEq)]
struct Line {
    what: String,
    attempt: u32,
    ns: u128,
    pid: u32,
}

fn lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| Line {
                what: f[0].to_string(),
                attempt: f[1].parse().expect("attempt"),
                ns: f[2].parse().expect("ns"),
                pid: f[3].parse().expect("pid"),
            })
        })
        .collect()
}

/// A job that appends `start`, a `tick` every 100 ms and `end` with its attempt, the
/// time and its shell's pid: 100 ticks on its first attempt (it is killed long before),
/// 10 on later ones.
fn ticking_job(side: &Path) -> String {
    let f = side.display();
    format!(
        "rec() {{ echo \"$1 $RUSTCI_ATTEMPT $(date +%s%N) $$\" >> {f}; }}; rec start; \
         n=10; [ \"$RUSTCI_ATTEMPT\" = 1 ] && n=100; i=0; \
         while [ $i -lt $n ]; do rec tick; sleep 0.1; i=$((i+1)); done; rec end"
    )
}

async fn submit_ticking(c: &rustci_control::clients::client::Clients, side: &Path) -> String {
    let mut jobs = c.jobs.clone();
    jobs.submit_job(pb::SubmitJobRequest {
        request_id: "tick-1".into(),
        tenant: "t".into(),
        labels: vec!["linux".into()],
        command: ticking_job(side),
        ..Default::default()
    })
    .await
    .expect("submit")
    .into_inner()
    .name
}

async fn first_line(side: &Path, what: &str, attempt: u32) -> Line {
    let side = side.to_path_buf();
    let what = what.to_string();
    wait_for(
        &format!("`{what} {attempt}` in the job's side effects"),
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let ls = lines(&side);
            let what = what.clone();
            async move {
                ls.iter()
                    .find(|l| l.what == what && l.attempt == attempt)
                    .cloned()
                    .ok_or_else(|| format!("{ls:?}"))
            }
        },
    )
    .await
}

/// A server on `port` (state under `dir`) with a lease TTL of `ttl_ms`, runner `id` in
/// pool `p` with `env`, and the ticking job started on it: its first `start` line.
async fn ticking_job_on_a_runner(
    dir: &Path,
    port: u16,
    ttl_ms: u32,
    id: &str,
    env: &[(&str, &str)],
) -> (Procs, rustci_control::clients::client::Clients, Line) {
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::new();
    let ttl = ttl_ms.to_string();
    procs.server(
        "server",
        port,
        &dir.join("data"),
        &["--lease-ttl-ms", &ttl],
        &dir.join("server.log"),
    );
    let c = wait_ready(&url, None, Duration::from_secs(30)).await;
    procs.runner(
        id,
        &url,
        "p",
        "linux",
        1,
        None,
        env,
        &dir.join(format!("{id}.log")),
    );
    wait_runners(&c, "p", 1, Duration::from_secs(20)).await;
    let side = dir.join("side.log");
    submit_ticking(&c, &side).await;
    let start1 = first_line(&side, "start", 1).await;
    (procs, c, start1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_with_sigkill_takes_its_job_with_it_and_attempts_never_overlap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let side = dir.path().join("side.log");
    let state = dir.path().join("state");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let tag = format!("{}", now_ns() % 1_000_000_000);
    let (a, b) = (format!("sigkill-a-{tag}"), format!("sigkill-b-{tag}"));
    let marker_a = format!("RUSTCI_RUNNER=runners/{a}");
    let _cleanup = KillMarked(vec![marker_a.clone(), format!("RUSTCI_RUNNER=runners/{b}")]);
    let env = [("XDG_STATE_HOME", state.to_str().expect("utf-8 path"))];
    let (mut procs, c, start1) = ticking_job_on_a_runner(dir.path(), port, 1000, &a, &env).await;

    // Runner B waits for work in the same pool: it takes the job the moment the lease
    // lapses, so only the end of the first attempt keeps the two apart.
    procs.runner(
        &b,
        &url,
        "p",
        "linux",
        1,
        None,
        &env,
        &dir.path().join("b.log"),
    );
    wait_runners(&c, "p", 2, Duration::from_secs(20)).await;
    assert!(
        !processes_with_env(&marker_a).is_empty(),
        "the first attempt runs under runner A"
    );

    procs.kill9(&a);
    let killed = Instant::now();
    let killed_ns = now_ns();
    let gone = loop {
        let left = processes_with_env(&marker_a);
        if left.is_empty() {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(1) {
            let shown: Vec<String> = left
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
                })
                .collect();
            panic!(
                "1 s after runner A was killed with SIGKILL its job still runs: {shown:?}; runner log:\n{}",
                tail(&dir.path().join(format!("{a}.log")), 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let end2 = first_line(&side, "end", 2).await;
    let all = lines(&side);
    let start2 = all
        .iter()
        .find(|l| l.what == "start" && l.attempt == 2)
        .cloned()
        .expect("attempt 2 started");
    let last1 = all
        .iter()
        .filter(|l| l.attempt == 1)
        .map(|l| l.ns)
        .max()
        .expect("attempt 1 lines");
    assert!(
        !all.iter().any(|l| l.what == "end" && l.attempt == 1),
        "the killed attempt never ended: {all:?}"
    );
    assert!(
        last1 < start2.ns,
        "attempt 1 wrote at {last1} after attempt 2 started at {}: they overlapped",
        start2.ns
    );
    assert!(
        last1 <= killed_ns,
        "attempt 1 wrote after its runner was killed"
    );
    assert!(start1.ns < last1 && start2.ns < end2.ns);
    eprintln!(
        "job processes gone {} ms after SIGKILL; attempt 2 started {} ms after the kill",
        gone.as_millis(),
        (start2.ns.saturating_sub(killed_ns)) / 1_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runner_kills_what_its_dead_predecessor_left_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let id = format!("restart-{}", now_ns() % 1_000_000_000);
    let _cleanup = KillMarked(vec![format!("RUSTCI_RUNNER=runners/{id}")]);
    let env = [("XDG_STATE_HOME", state.to_str().expect("utf-8 path"))];
    // A long lease: the job is not requeued during the test.
    let (mut procs, _c, start1) =
        ticking_job_on_a_runner(dir.path(), port, 600_000, &id, &env).await;
    let (_, parent, pgid) = stat(start1.pid).expect("the job's shell runs");

    // The runner and whatever stands between it and the job's shell die at once (the
    // OOM killer, kill -9 of both): nothing is left to take the job down with them.
    // The guard goes first, so that it cannot act on its runner's death. (Stopping it
    // instead does not keep it still: it leads its own process group, which the
    // runner's death orphans, and the kernel wakes a stopped member of an orphaned
    // group with SIGHUP, on which the guard ends the job.)
    kill9(&[parent]);
    procs.kill9(&id);
    let orphans = wait_for(
        "the job's shell to outlive its runner",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let alive = stat(start1.pid).is_some_and(|(_, ppid, _)| ppid != parent);
            let group = processes_in_group(pgid);
            async move { alive.then_some(group).ok_or_else(|| "not yet".to_string()) }
        },
    )
    .await;

    // The same runner, started again, first ends what its predecessor left.
    procs.runner(
        &id,
        &url,
        "p",
        "linux",
        1,
        None,
        &env,
        &dir.path().join("second.log"),
    );
    wait_for(
        "the restarted runner to end its predecessor's job",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let left = processes_in_group(pgid);
            async move {
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still running in group {pgid}: {left:?}"))
                }
            }
        },
    )
    .await;
    eprintln!("left running after both died: {orphans:?} (group {pgid})");
}

// ---------------------------------------------------------------------------------
// Local mode serves only its owner.

/// `rustci ARGS` against `url` with `cfg` as the config directory (where the local-mode
/// token lives), as a user whose home that is.
fn rustci_with_config(cmd: &mut Command, url: &str, cfg: &Path, args: &[&str]) -> Output {
    cmd.args(args)
        .arg("--server")
        .arg(url)
        .env("RUSTCI_CONFIG_DIR", cfg)
        .env_remove("RUSTCI_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run rustci")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_serves_only_the_owner_with_the_token_file() {
    const TEST: &str = "local_mode_serves_only_the_owner_with_the_token_file";
    let dir = shared_tempdir();
    let cfg = dir.path().join("owner-config");
    let token_file = cfg.join(rustci_control::local_token::FILE_NAME);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(BIN);
    serve_cmd(&mut cmd, port, &dir.path().join("data"));
    cmd.env("RUSTCI_CONFIG_DIR", &cfg);
    let mut server = KillOnDrop(Some(cmd.spawn().expect("spawn")));
    wait_for(
        "the server to listen",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
    // The token was written before the port opened, private to its owner.
    assert_eq!(mode(&token_file), 0o600, "token file");
    assert_eq!(mode(&cfg), 0o700, "config dir");
    let token = std::fs::read_to_string(&token_file).expect("token");
    let token = token.trim();

    // The owner's CLI sends the token without being told.
    let out = rustci_with_config(
        &mut Command::new(BIN),
        &url,
        &cfg,
        &["submit", "--tenant", "t", "--command", "true"],
    );
    assert!(
        out.status.success(),
        "the owner submits: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rustci_with_config(
        &mut Command::new(BIN),
        &url,
        &cfg,
        &["jobs", "list", "--format", "json"],
    );
    assert!(out.status.success(), "the owner lists");
    assert!(String::from_utf8_lossy(&out.stdout).contains("jobs/1"));

    // A caller without it, or with another, gets UNAUTHENTICATED naming local mode.
    let mut jobs = pb::job_service_client::JobServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let submit = || pb::SubmitJobRequest {
        request_id: "x".into(),
        tenant: "t".into(),
        command: "id".into(),
        ..Default::default()
    };
    let refused = jobs.submit_job(submit()).await.expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("local mode"),
        "{}",
        refused.message()
    );
    let wrong = jobs
        .submit_job(with_key(&"0".repeat(token.len()), submit()))
        .await
        .expect_err("another token");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let runners = pb::runner_service_client::RunnerServiceClient::connect(url.clone())
        .await
        .expect("connect")
        .register_runner(pb::RegisterRunnerRequest::default())
        .await
        .expect_err("a runner without the token");
    assert_eq!(runners.code(), Code::Unauthenticated);
    jobs.submit_job(with_key(token, submit()))
        .await
        .expect("the token opens it");

    // A user whose config holds no token (another user's view of the machine).
    let elsewhere = dir.path().join("elsewhere");
    let out = rustci_with_config(&mut Command::new(BIN), &url, &elsewhere, &["jobs", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "listed without the token: {stderr}");
    assert!(stderr.contains("local mode"), "says why: {stderr}");

    // Another local user, for real: cannot read the owner's token, so cannot call.
    if let Some(other) = OtherUser::new(TEST) {
        let own = other.dir.path().join("cfg");
        for cfg in [&cfg, &own] {
            let out = rustci_with_config(&mut other.rustci(), &url, cfg, &["jobs", "list"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "another user listed the jobs: {stderr}"
            );
            assert!(
                stderr.contains("local mode") || stderr.contains("ermission denied"),
                "says why: {stderr}"
            );
        }
    }
    stop(server.0.take().expect("server"));
}

/// Kills a child left running when a test fails half way.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
