//! Helpers of the end-to-end tests: free ports, `rustci serve` and `rustci runner` child
//! processes (killed by a guard even when a test fails), readiness and bounded polling.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustci_control::clients::client::{self, connect_lazy, AuthChannel, Clients};
use rustci_control::pb;
use rustci_control::server::live::ManualClock;
use rustci_control::server::{start, start_with_clock, RunningServer, ServeOptions};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::bins::Bin;

/// The `rustci` binary, checked to be built from the current sources (`crate::bins`).
pub const BIN: Bin = Bin::Rustci;

/// Runs the `rustci` binary with `args` and waits for it.
pub fn rustci<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(BIN).args(args).output().expect("run rustci")
}

/// Runs `rustci` with `args`, which must succeed and print JSON; returns the JSON.
pub fn rustci_json(args: &[&str]) -> serde_json::Value {
    let out = rustci(args);
    assert!(
        out.status.success(),
        "rustci {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rustci {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A port nobody listens on right now (bind :0, read it, close).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// `path` opened to append a child process's output to.
pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening log {}: {e}", path.display()))
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Child processes, killed when dropped (tests that fail included).
#[derive(Debug)]
pub struct Procs {
    children: Vec<(String, Child, PathBuf)>,
    groups: Vec<u32>,
    /// The runners' `$XDG_STATE_HOME`, one per `Procs`: a runner that starts kills the
    /// jobs a predecessor with its id recorded there, and tests running at the same time
    /// (in this binary or another) use the same runner ids and job names.
    state: tempfile::TempDir,
}

impl Default for Procs {
    fn default() -> Self {
        Self {
            children: Vec::new(),
            groups: Vec::new(),
            state: tempfile::tempdir().expect("the runners' state directory"),
        }
    }
}

impl Procs {
    pub fn new() -> Self {
        Self::default()
    }

    fn spawn(&mut self, what: &str, mut cmd: Command, log: &Path) -> u32 {
        cmd.stdin(Stdio::null())
            .stdout(log_file(log))
            .stderr(log_file(log))
            .env("RUST_LOG", "info");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what} ({BIN}): {e}"));
        let pid = child.id();
        self.children
            .push((what.to_string(), child, log.to_path_buf()));
        pid
    }

    /// `rustci serve --listen 127.0.0.1:PORT --data-dir DIR [extra...]`.
    pub fn server(&mut self, name: &str, port: u16, data_dir: &Path, extra: &[&str], log: &Path) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra);
        self.spawn(name, cmd, log);
    }

    /// `rustci runner --server URL --pool P --labels L --slots N --id ID [--token T]`,
    /// with extra environment for its jobs.
    #[allow(clippy::too_many_arguments)]
    pub fn runner(
        &mut self,
        name: &str,
        server: &str,
        pool: &str,
        labels: &str,
        slots: u32,
        token: Option<&str>,
        env: &[(&str, &str)],
        log: &Path,
    ) {
        let mut cmd = Command::new(BIN);
        cmd.arg("runner")
            .arg("--server")
            .arg(server)
            .arg("--pool")
            .arg(pool)
            .arg("--labels")
            .arg(labels)
            .arg("--slots")
            .arg(slots.to_string())
            .arg("--id")
            .arg(name);
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        cmd.env("XDG_STATE_HOME", self.state.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.spawn(name, cmd, log);
    }

    /// SIGKILL a child by name and reap it.
    pub fn kill9(&mut self, name: &str) {
        let i = self
            .children
            .iter()
            .position(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no child named {name}"));
        let (_, mut child, _) = self.children.remove(i);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping the killed child");
    }

    /// Fails the test if a child died on its own (with its log).
    pub fn assert_alive(&mut self) {
        for (name, child, log) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{name} exited unexpectedly ({status}); its log:\n{}",
                    tail(log, 40)
                );
            }
        }
    }

    /// Also kill this process group at the end (jobs of a killed runner).
    pub fn kill_group_later(&mut self, pgid: u32) {
        self.groups.push(pgid);
    }

    pub fn log_of(&self, name: &str) -> Option<PathBuf> {
        self.children
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, l)| l.clone())
    }
}

pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status();
}

impl Drop for Procs {
    fn drop(&mut self) {
        // SIGTERM first: runners then kill their jobs' process groups.
        for (_, child, _) in &mut self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (_, child, _) in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for &g in &self.groups {
            kill_group(g);
        }
    }
}

/// Polls `f` every `every` until it returns `Some`, or panics after `timeout` with
/// `what` and the last state `f` described.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Clients of a server once it answers GetQueueStats.
pub async fn wait_ready(server: &str, key: Option<&str>, timeout: Duration) -> Clients {
    let clients = connect_lazy(server, key, None).expect("client endpoint");
    wait_for(
        &format!("{server} to answer GetQueueStats"),
        timeout,
        Duration::from_millis(50),
        || {
            let mut c = clients.fleet.clone();
            async move {
                c.get_queue_stats(pb::GetQueueStatsRequest {})
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }
        },
    )
    .await;
    clients
}

/// Waits until `pool` has `n` registered runners.
pub async fn wait_runners(c: &Clients, pool: &str, n: u32, timeout: Duration) {
    wait_for(
        &format!("{n} runner(s) in pool {pool}"),
        timeout,
        Duration::from_millis(50),
        || {
            let mut f = c.fleet.clone();
            async move {
                let s = f
                    .get_queue_stats(pb::GetQueueStatsRequest {})
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                    .into_inner();
                let have = s
                    .pools
                    .iter()
                    .find(|p| p.pool == pool)
                    .map_or(0, |p| p.runners);
                if have == n {
                    Ok(())
                } else {
                    Err(format!("{have} runners"))
                }
            }
        },
    )
    .await;
}

/// Polls GetJob for `name` every `every` until it is in `state`; returns the job then,
/// or panics after `timeout` with `what` and the job's last state.
pub async fn wait_job_state(
    jobs: &pb::job_service_client::JobServiceClient<OwnerChannel>,
    name: &str,
    state: pb::JobState,
    what: &str,
    timeout: Duration,
    every: Duration,
) -> pb::Job {
    wait_for(what, timeout, every, || {
        let mut jobs = jobs.clone();
        let name = name.to_string();
        async move {
            let j = jobs
                .get_job(pb::GetJobRequest { name })
                .await
                .map_err(|s| s.to_string())?
                .into_inner();
            if j.state == state as i32 {
                Ok(j)
            } else {
                Err(format!("{j:?}"))
            }
        }
    })
    .await
}

/// Nothing acknowledged is lost: `jobs` (a replica that took over) has every job of
/// `acked` under its name, with the same request id, command and tenant, and at least
/// the revision it was acknowledged at.
pub async fn assert_nothing_lost(
    jobs: &mut pb::job_service_client::JobServiceClient<OwnerChannel>,
    acked: &[pb::Job],
) {
    for j in acked {
        let got = jobs
            .get_job(pb::GetJobRequest {
                name: j.name.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} after failover: {s:?}", j.name))
            .into_inner();
        assert_eq!(got.request_id, j.request_id, "{}", j.name);
        assert_eq!(got.command, j.command, "{}", j.name);
        assert_eq!(got.tenant, j.tenant, "{}", j.name);
        assert!(got.revision >= j.revision, "{}", j.name);
    }
}

/// Every job matching (tenant, state) through ListJobs pages of `page_size`.
pub async fn list_all(
    c: &Clients,
    tenant: &str,
    state: pb::JobState,
    page_size: i32,
) -> Result<Vec<pb::Job>, tonic::Status> {
    let mut jobs = Vec::new();
    let mut token = String::new();
    let mut client = c.jobs.clone();
    loop {
        let r = client
            .list_jobs(pb::ListJobsRequest {
                tenant: tenant.to_string(),
                state: state as i32,
                page_size,
                page_token: token,
            })
            .await?
            .into_inner();
        jobs.extend(r.jobs);
        if r.next_page_token.is_empty() {
            return Ok(jobs);
        }
        token = r.next_page_token;
    }
}

/// One execution of a job, from the side-effect file: lines
/// `S <job> <tag> <pid> <ns>` and `E <job> <tag> <pid> <ns>`.
#[derive(Debug, Clone)]
pub struct Execution {
    pub job: String,
    pub tag: String,
    pub pid: u32,
    pub start_ns: u128,
    pub end_ns: Option<u128>,
}

pub fn executions(path: &Path) -> Vec<Execution> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Execution> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 5, "malformed side-effect line {line:?}");
        let pid: u32 = f[3].parse().expect("pid");
        let ns: u128 = f[4].parse().expect("timestamp");
        match f[0] {
            "S" => out.push(Execution {
                job: f[1].to_string(),
                tag: f[2].to_string(),
                pid,
                start_ns: ns,
                end_ns: None,
            }),
            "E" => {
                let e = out
                    .iter_mut()
                    .rev()
                    .find(|e| e.job == f[1] && e.pid == pid && e.end_ns.is_none())
                    .unwrap_or_else(|| panic!("end without a start: {line:?}"));
                e.end_ns = Some(ns);
            }
            other => panic!("unknown side-effect record {other:?} in {line:?}"),
        }
    }
    out
}

/// A shell command that records its start and end (with `tag`) around `body`.
pub fn recorded(file: &Path, tag: &str, body: &str) -> String {
    let f = file.display();
    format!(
        "echo \"S $RUSTCI_JOB {tag} $$ $(date +%s%N)\" >> {f}; {body}; echo \"E $RUSTCI_JOB {tag} $$ $(date +%s%N)\" >> {f}"
    )
}

/// An in-process `rustci serve` with `opts` on a free loopback port, on the virtual
/// `clock`, where runners never time out (a lease TTL of ~30 years); and a channel to it.
pub async fn serve_virtual(
    opts: ServeOptions,
    clock: std::sync::Arc<ManualClock>,
) -> (RunningServer, OwnerChannel) {
    let srv = start_with_clock(
        ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            lease_ttl_ms: 1_000_000_000_000,
            ..opts
        },
        clock,
    )
    .await
    .expect("server");
    let ch = owner_channel(srv.addr).await;
    (srv, ch)
}

/// [`serve_virtual`] with the default options, its data in `dir`, on a virtual clock
/// that starts at `t0` (Unix ms); and that clock.
pub async fn serve_virtual_at(
    dir: &Path,
    t0: i64,
) -> (RunningServer, OwnerChannel, std::sync::Arc<ManualClock>) {
    let clock = std::sync::Arc::new(ManualClock::new(t0));
    let (srv, ch) = serve_virtual(
        ServeOptions {
            data_dir: dir.to_path_buf(),
            ..ServeOptions::default()
        },
        clock.clone(),
    )
    .await;
    (srv, ch, clock)
}

/// A local-mode server (no auth) on a free loopback port, its data in a temp dir; and
/// its URL.
pub async fn local_server() -> (tempfile::TempDir, RunningServer, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..ServeOptions::default()
    })
    .await
    .expect("starting the server");
    let url = format!("http://{}", srv.addr);
    (dir, srv, url)
}

/// Trains a model version on `records` (Unix-time clock) into `dir`, written whatever it
/// is worth.
pub fn retrain_into(dir: &Path, records: &[rustci_datasets::JobRecord]) {
    let opts = rustci_models::retrain::RetrainOptions {
        config: rustci_models::TrainParams::default()
            .check()
            .expect("params"),
        train_fraction: 0.7,
        force: true,
        plots: false,
        sources: vec!["test".into()],
        unix_start: Some(0),
        target_mae_tolerance: None,
    };
    rustci_models::retrain::retrain(records, dir, &opts, &mut |_| {}).expect("retrain");
}

/// Leases one job to `runners/{runner}` (no waiting) and returns the lease.
pub async fn lease_one(
    run: &mut pb::runner_service_client::RunnerServiceClient<OwnerChannel>,
    runner: &str,
) -> pb::Lease {
    run.acquire_jobs(pb::AcquireJobsRequest {
        name: format!("runners/{runner}"),
        max_jobs: 1,
        wait_ms: 0,
    })
    .await
    .expect("acquire")
    .into_inner()
    .leases
    .pop()
    .unwrap_or_else(|| panic!("no job to lease to runners/{runner}"))
}

/// Completes `lease` successfully as `runners/{runner}`.
pub async fn complete_ok(
    run: &mut pb::runner_service_client::RunnerServiceClient<OwnerChannel>,
    runner: &str,
    lease: &pb::Lease,
) {
    let job = lease
        .job
        .as_ref()
        .map(|j| j.name.clone())
        .unwrap_or_default();
    run.complete_job(pb::CompleteJobRequest {
        job,
        runner: format!("runners/{runner}"),
        fencing_token: lease.fencing_token,
        success: true,
        ..Default::default()
    })
    .await
    .expect("complete");
}

/// Every job event from the first revision on (history from the store, then live).
pub async fn watch_all(
    jobs: &mut pb::job_service_client::JobServiceClient<OwnerChannel>,
) -> tonic::Streaming<pb::JobEvent> {
    jobs.watch_jobs(pb::WatchJobsRequest {
        tenant: String::new(),
        from_revision: 0,
        pipeline: String::new(),
    })
    .await
    .expect("watch")
    .into_inner()
}

/// Runner `r0`: one slot in pool `lin` (label `linux`).
pub async fn register_r0(ch: &OwnerChannel) {
    pb::runner_service_client::RunnerServiceClient::new(ch.clone())
        .register_runner(pb::RegisterRunnerRequest {
            runner_id: "r0".into(),
            pool: "lin".into(),
            labels: vec!["linux".into()],
            slots: 1,
        })
        .await
        .expect("register");
}

/// Writes a file only its owner may read, as the server wants an `--auth` file.
pub fn write_private(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).expect("write the file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// The error `r` must be: a status with `code` (else the test fails naming `what`).
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: tonic::Code,
    what: &str,
) -> tonic::Status {
    match r {
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            s
        }
        Ok(ok) => panic!("{what}: accepted {ok:?}"),
    }
}

/// The error `r` must be: INVALID_ARGUMENT with a message that starts with `field`.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
) {
    let s = expect_code(r, tonic::Code::InvalidArgument, field);
    assert!(
        s.message().starts_with(field),
        "message should name {field}: {:?}",
        s.message()
    );
}

/// An `--auth` file: one runner token, `runner-token-1`, and one tenant, `team-a`, whose
/// API key is `key-team-a-1`.
pub const TEAM_A_AUTH: &str = r#"
runner_tokens = ["runner-token-1"]

[[tenant]]
name = "team-a"
api_keys = ["key-team-a-1"]
"#;

/// `msg` with the header `authorization: <header>` (the whole value, scheme included).
pub fn with_header<T>(header: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", header.parse().expect("header"));
    r
}

/// `msg` with `authorization: Bearer <key>` (an API key or a runner token).
pub fn with_key<T>(key: &str, msg: T) -> tonic::Request<T> {
    with_header(&format!("Bearer {key}"), msg)
}

/// A connected channel to the server at `addr`, without credentials.
pub async fn raw_channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// An in-process `rustci serve` on a free loopback port with its data in `dir/data` and
/// the auth file `auth` (written to `dir/auth.toml`, private as the server wants); and a
/// channel without credentials to it.
pub async fn serve_with_auth(dir: &Path, auth: &str) -> (RunningServer, Channel) {
    let auth_file = dir.join("auth.toml");
    write_private(&auth_file, auth);
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        auth: Some(auth_file),
        ..ServeOptions::default()
    })
    .await
    .expect("server starts");
    let ch = raw_channel(srv.addr).await;
    (srv, ch)
}

/// A channel that calls as the server's owner: every call carries this user's local-mode
/// token (`rustci_control::local_token`), as the CLI's do.
pub type OwnerChannel = AuthChannel;

/// A connected [`OwnerChannel`] to the server at `addr`.
pub async fn owner_channel(addr: std::net::SocketAddr) -> OwnerChannel {
    as_owner(raw_channel(addr).await)
}

/// `ch` with this user's local-mode token on every call.
pub fn as_owner(ch: Channel) -> OwnerChannel {
    InterceptedService::new(ch, client::owner_bearer().expect("local token"))
}
