//! The soaked system as processes: a `redis-server`, two `rustci serve --redis` replicas
//! sharing one store (a SQLite data directory on a small tmpfs, or a SecantusDB server
//! with on-disk storage that the soak starts itself, so it can restart it), reference
//! runners (`rustci runner`) and the [`Proxy`] in front of the replicas. Each can be
//! killed with SIGKILL, paused and resumed, or started again.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::proxy::Proxy;
use crate::common::{free_port, log_file, now_ns, tail, BIN};
use crate::stores::Backend;
use crate::{support_mongo, support_redis};
use rustci_control::server::ServeOptions;

/// The leader lease of the replicas (`--leader-lease-ms`).
pub const LEADER_LEASE_MS: u64 = 3_000;
/// A runner silent this long loses its leases (`--lease-ttl-ms`): longer than the
/// longest job (2 s), so a job of a paused runner has ended before it runs again.
pub const RUNNER_TTL_MS: u64 = 4_000;
/// The pool and labels every runner has.
pub const POOL: &str = "soak";

/// A child process with its log.
#[derive(Debug)]
struct Proc {
    child: Child,
    log: PathBuf,
}

fn spawn(mut cmd: Command, log: &Path, rust_log: &str) -> Proc {
    // A group of its own, whose parent (this test) is in another group of the session:
    // never an orphaned group, which the kernel sends SIGHUP when one of its members is
    // stopped (the soak's SIGSTOP). The test's own group is orphaned when the shell
    // that started it in the background has exited.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::null())
        .stdout(log_file(log))
        .stderr(log_file(log))
        .env("RUST_LOG", rust_log);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    Proc {
        child,
        log: log.to_path_buf(),
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Panics with the log if the process exited on its own.
    fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what} exited on its own ({status}); its log:\n{}",
                tail(&self.log, 40)
            );
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }
}

fn listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits for `ok` until `timeout`, failing with `what` and `proc`'s log.
fn wait_until(what: &str, timeout: Duration, proc: &mut Proc, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        proc.assert_alive(what);
        assert!(
            Instant::now() < deadline,
            "{what}: not up after {timeout:?}; its log:\n{}",
            tail(&proc.log, 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SecantusDB's launcher (`$SECANTUS_VENV`, else `~/.cache/rustci-secantus`), or `None`
/// after the SKIPPED line; a failure instead with `RUSTCI_REQUIRE_MONGODB=1`.
pub fn secantus_or_skip(test: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("SECANTUS_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/rustci-secantus")));
    let bin = venv
        .map(|v| v.join("bin/secantusd-py"))
        .filter(|b| b.is_file());
    if bin.is_none() {
        support_mongo::skip_mongo(
            test,
            "no SecantusDB launcher (set SECANTUS_VENV or install it as .ci/run does)",
        );
    }
    bin
}

/// A tmpfs of `size` mounted on `dir` (unmounted on drop), or why not.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system with `filler` until it is full; returns the bytes written.
    pub fn fill(&self, filler: &Path) -> u64 {
        let mut f = File::create(filler).expect("creating the filler");
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        // The last pages of a nearly full tmpfs: byte by byte is too slow, small is enough.
        let small = [0u8; 4096];
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[derive(Debug)]
pub struct Replica {
    pub port: u16,
    proc: Option<Proc>,
    log: PathBuf,
}

#[derive(Debug)]
pub struct Runner {
    pub id: String,
    proc: Option<Proc>,
}

/// A runner killed by the soak, and when (Unix ns).
#[derive(Debug, Clone)]
pub struct Killed {
    pub id: String,
    pub at_ns: u128,
}

#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    /// The jobs' side-effect file.
    pub effects: PathBuf,
    pub data_dir: PathBuf,
    /// With MongoDB: the URI given to `--store` (none: the SQLite store in `data_dir`).
    pub mongodb: Option<String>,
    pub redis_port: u16,
    redis: Option<Proc>,
    pub mongo_port: u16,
    mongo_bin: Option<PathBuf>,
    mongo: Option<Proc>,
    pub tmpfs: Option<Tmpfs>,
    pub replicas: Vec<Replica>,
    pub runners: Vec<Runner>,
    pub killed_runners: Vec<Killed>,
    runner_slots: u32,
    runner_generation: u32,
    pub proxy: Option<Proxy>,
}

impl Cluster {
    /// Starts Redis, the store's server (MongoDB), two replicas, the proxy and `runners`
    /// runners, having waited until a replica leads (the soak's first probe job shows
    /// that the runners work).
    pub async fn start(
        kind: Backend,
        dir: &Path,
        mongo_bin: Option<PathBuf>,
        runners: usize,
        slots: u32,
    ) -> Self {
        let data_dir = dir.join("data");
        let tmpfs = match kind {
            Backend::Sqlite => match Tmpfs::mount(&data_dir, "1g") {
                Ok(t) => Some(t),
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "soak: cannot mount a tmpfs on {} ({e}): the disk-full fault is left out",
                        data_dir.display()
                    );
                    std::fs::create_dir_all(&data_dir).expect("data dir");
                    None
                }
            },
            Backend::Mongo => {
                std::fs::create_dir_all(&data_dir).expect("data dir");
                None
            }
        };
        let mongo_port = free_port();
        let mongodb = (kind == Backend::Mongo)
            .then(|| format!("mongodb://127.0.0.1:{mongo_port}/rustci_soak"));
        let mut c = Self {
            dir: dir.to_path_buf(),
            effects: dir.join("effects.log"),
            data_dir,
            mongodb,
            redis_port: free_port(),
            redis: None,
            mongo_port,
            mongo_bin,
            mongo: None,
            tmpfs,
            replicas: Vec::new(),
            runners: Vec::new(),
            killed_runners: Vec::new(),
            runner_slots: slots,
            runner_generation: 0,
            proxy: None,
        };
        std::fs::create_dir_all(dir.join("state")).expect("runner state dir");
        c.start_redis();
        if kind == Backend::Mongo {
            c.start_mongo();
        }
        for i in 0..2 {
            let port = free_port();
            c.replicas.push(Replica {
                port,
                proc: None,
                log: dir.join(format!("replica-{i}.log")),
            });
            c.start_replica(i);
        }
        let proxy = Proxy::start(c.replicas.iter().map(|r| r.port).collect()).await;
        let leader = proxy.wait_leader(Duration::from_secs(60)).await;
        assert!(
            leader.is_some(),
            "no replica leads 60 s after start:\n{}",
            c.logs()
        );
        c.proxy = Some(proxy);
        for _ in 0..runners {
            c.add_runner();
        }
        c
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("the proxy runs")
    }

    pub fn start_redis(&mut self) {
        let dir = self.dir.join("redis");
        std::fs::create_dir_all(&dir).expect("redis dir");
        let cmd = support_redis::command(self.redis_port, &dir);
        let mut p = spawn(cmd, &self.dir.join("redis.log"), "info");
        let port = self.redis_port;
        wait_until("redis-server", Duration::from_secs(10), &mut p, || {
            support_redis::ping(port)
        });
        self.redis = Some(p);
    }

    pub fn kill_redis(&mut self) {
        if let Some(p) = self.redis.take() {
            p.kill9();
        }
    }

    /// SecantusDB on disk, with every commit fsynced: without `--sync-on-commit` it
    /// acknowledges journaled (`j: true`) writes it loses to a SIGKILL.
    pub fn start_mongo(&mut self) {
        let bin = self.mongo_bin.clone().expect("SecantusDB launcher");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &self.mongo_port.to_string(),
        ])
        .arg("--storage-path")
        .arg(self.dir.join("mongo"))
        .args(["--sync-on-commit", "--log-level", "WARNING"]);
        let mut p = spawn(cmd, &self.dir.join("mongo.log"), "info");
        let port = self.mongo_port;
        wait_until("SecantusDB", Duration::from_secs(90), &mut p, || {
            listening(port)
        });
        self.mongo = Some(p);
    }

    pub fn kill_mongo(&mut self) {
        if let Some(p) = self.mongo.take() {
            p.kill9();
        }
    }

    pub fn start_replica(&mut self, i: usize) {
        let redis = format!("redis://127.0.0.1:{}", self.redis_port);
        let r = &mut self.replicas[i];
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", r.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--store", self.mongodb.as_deref().unwrap_or("sqlite")])
            .args(["--redis", &redis])
            .args(["--leader-lease-ms", &LEADER_LEASE_MS.to_string()])
            .args(["--lease-ttl-ms", &RUNNER_TTL_MS.to_string()]);
        let mut p = spawn(cmd, &r.log, "info");
        let port = r.port;
        wait_until(
            &format!("replica-{i}"),
            Duration::from_secs(60),
            &mut p,
            || listening(port),
        );
        r.proc = Some(p);
    }

    pub fn kill_replica(&mut self, i: usize) {
        if let Some(p) = self.replicas[i].proc.take() {
            p.kill9();
        }
    }

    pub fn signal_replica(&self, i: usize, sig: &str) {
        self.replicas[i]
            .proc
            .as_ref()
            .expect("the replica runs")
            .signal(sig);
    }

    /// Starts a runner with a new id (a killed runner's leases must go back to the queue
    /// through the server, not through a successor with the same id).
    pub fn add_runner(&mut self) {
        self.runner_generation += 1;
        let id = format!("soak-{}", self.runner_generation);
        let server = self.proxy().url();
        let mut cmd = Command::new(BIN);
        cmd.arg("runner")
            .args(["--server", &server, "--pool", POOL, "--labels", "linux"])
            .args(["--slots", &self.runner_slots.to_string()])
            .args(["--id", &id, "--wait-ms", "2000"])
            .env("XDG_STATE_HOME", self.dir.join("state"));
        let p = spawn(cmd, &self.dir.join(format!("runner-{id}.log")), "warn");
        self.runners.push(Runner { id, proc: Some(p) });
    }

    /// SIGKILLs runner `i` (its jobs die with their guards) and starts a replacement.
    pub fn kill_runner(&mut self, i: usize) -> String {
        let r = self.runners.remove(i);
        let id = r.id.clone();
        if let Some(p) = r.proc {
            p.kill9();
        }
        self.killed_runners.push(Killed {
            id: id.clone(),
            at_ns: now_ns(),
        });
        self.add_runner();
        id
    }

    pub fn signal_runner(&self, i: usize, sig: &str) {
        self.runners[i]
            .proc
            .as_ref()
            .expect("the runner runs")
            .signal(sig);
    }

    /// Fails if a process died without being killed by the soak.
    pub fn assert_alive(&mut self) {
        if let Some(p) = &mut self.redis {
            p.assert_alive("redis-server");
        }
        if let Some(p) = &mut self.mongo {
            p.assert_alive("SecantusDB");
        }
        for (i, r) in self.replicas.iter_mut().enumerate() {
            if let Some(p) = &mut r.proc {
                p.assert_alive(&format!("replica-{i}"));
            }
        }
        for r in &mut self.runners {
            if let Some(p) = &mut r.proc {
                p.assert_alive(&format!("runner {}", r.id));
            }
        }
    }

    /// The last lines of every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica-{i} ---\n{}", tail(&r.log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What the replicas are given to open their store (for reading it afterwards).
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            data_dir: self.data_dir.clone(),
            mongodb: self.mongodb.clone(),
            ..ServeOptions::default()
        }
    }

    /// Stops the runners and the replicas (SIGTERM), leaving the store's server up.
    pub fn stop_services(&mut self) {
        self.proxy = None;
        for r in &mut self.runners {
            if let Some(p) = r.proc.take() {
                p.stop(Duration::from_secs(5));
            }
        }
        for r in &mut self.replicas {
            if let Some(p) = r.proc.take() {
                p.stop(Duration::from_secs(5));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_services();
        self.kill_redis();
        self.kill_mongo();
    }
}
