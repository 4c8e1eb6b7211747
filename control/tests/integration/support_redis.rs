//! A throwaway `redis-server` for tests: its own process on a free loopback port, no
//! persistence, killed on drop.
//!
//! If `redis-server` is not installed, [`RedisServer::start`] prints a visible
//! `SKIPPED: ...` line on stderr (not captured by the test harness) and returns `None`;
//! with `RUSTCI_REQUIRE_REDIS=1` (CI) it panics instead. `REDIS_SERVER` overrides the
//! binary.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Sends `PING` and expects `+PONG`.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Whether `redis-server` is installed; if not, prints the visible `SKIPPED:` line, or
/// panics with `RUSTCI_REQUIRE_REDIS=1` (CI).
pub fn installed_or_skip(test: &str) -> bool {
    let bin = binary();
    let installed = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !installed {
        let msg =
            format!("SKIPPED: {test}: `{bin}` is not installed (apt-get install -y redis-server)");
        if std::env::var_os("RUSTCI_REQUIRE_REDIS").is_some_and(|v| v != "0") {
            panic!("{msg}, and RUSTCI_REQUIRE_REDIS is set");
        }
        let _ = writeln!(std::io::stderr(), "{msg}");
    }
    installed
}

/// The command of a throwaway server on `port`: loopback only, no persistence, its
/// files in `dir`.
pub fn command(port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    cmd
}

impl RedisServer {
    /// Starts a server and waits until it answers PING; `None` (test skipped) if
    /// `redis-server` is not installed.
    pub fn start(test: &str) -> Option<Self> {
        if !installed_or_skip(test) {
            return None;
        }
        let bin = binary();
        // The port may be taken between probing and binding: try a few.
        let mut last_err = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir for redis");
            let port = free_port();
            let mut child = command(port, dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if ping(port) {
                    return Some(Self {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("{bin} on port {port} exited: {status}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("{bin} on port {port} did not answer PING in 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start redis-server: {last_err}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
