//! One server per data directory. `rustci serve` holds an exclusive lock on
//! `DIR/rustci.lock` for as long as it runs; a second server on the same directory
//! refuses to start and names the holder. The lock is `flock(2)` (`File::try_lock`), so
//! the kernel releases it when the holder dies, `kill -9` included: there is never a
//! stale lock to clean up. The file's content (pid, host, listen address, start time) is
//! only what the refusal shows; the lock is what counts.
//!
//! Replicas started with `--redis` share a data directory on purpose (the Redis leader
//! lease decides which one writes), so they take the lock shared: replicas run together,
//! but not beside a server without `--redis`, which would write on its own.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::perms;

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "rustci.lock";

#[derive(Debug, Error)]
pub enum DataDirError {
    #[error(
        "data directory {dir} is in use by another rustci serve ({holder}); \
         stop that server or choose another --data-dir"
    )]
    InUse { dir: String, holder: String },
    #[error("data directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    // Held for its lock, released when the file is closed.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` (0700) if needed and takes its lock, recording who holds it.
    pub fn acquire(dir: &Path, listen: SocketAddr) -> Result<Self, DataDirError> {
        Self::take(dir, listen, false)
    }

    /// [`DataDirLock::acquire`] for a replica coordinated through Redis: other replicas
    /// may hold it too, a server without Redis may not.
    pub fn acquire_shared(dir: &Path, listen: SocketAddr) -> Result<Self, DataDirError> {
        Self::take(dir, listen, true)
    }

    fn take(dir: &Path, listen: SocketAddr, shared: bool) -> Result<Self, DataDirError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| DataDirError::Io { path, source }
        };
        perms::private_dir(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = perms::private_file(&path).map_err(io(&path))?;
        let locked = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "it has not written its details yet".to_string(),
                    t => t.lines().collect::<Vec<_>>().join(", "),
                };
                return Err(DataDirError::InUse {
                    dir: dir.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // Replicas sharing the lock overwrite each other's details: a refusal names one.
        let details = format!(
            "{}pid {}\nhost {}\nlisten {listen}\nsince {}\n",
            if shared { "replica with --redis, " } else { "" },
            std::process::id(),
            host_name(),
            rustci_datasets::time::format_utc_ms(now_ms()),
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(details.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io(&path))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This machine's name, as the kernel has it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_held_directory_is_refused_naming_the_holder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = "127.0.0.1:7411".parse().expect("addr");
        let held = DataDirLock::acquire(tmp.path(), addr).expect("first");
        let err = DataDirLock::acquire(tmp.path(), addr).expect_err("second refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id()))
                && msg.contains("listen 127.0.0.1:7411"),
            "{msg}"
        );
        drop(held);
        DataDirLock::acquire(tmp.path(), addr).expect("free again once released");
    }

    #[test]
    fn replicas_share_the_lock_and_exclude_a_server_without_redis() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = "127.0.0.1:7411".parse().expect("addr");
        let a = DataDirLock::acquire_shared(tmp.path(), addr).expect("first replica");
        let b = DataDirLock::acquire_shared(tmp.path(), addr).expect("second replica");
        let err = DataDirLock::acquire(tmp.path(), addr).expect_err("a lone server refused");
        assert!(err.to_string().contains("replica with --redis"), "{err}");
        drop((a, b));
        let lone = DataDirLock::acquire(tmp.path(), addr).expect("free once they stop");
        DataDirLock::acquire_shared(tmp.path(), addr).expect_err("no replica beside it");
        drop(lone);
    }
}
