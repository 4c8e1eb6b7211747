//! Local mode's owner token. A server without `--auth` serves only callers that present
//! the token in `<config dir>/local.token`, a file only its user may read (0600 in a 0700
//! directory); the CLI and runners of that user on the same machine send it by default.
//! Another local user cannot read the file, so their calls are `UNAUTHENTICATED`: loopback
//! alone says nothing about who is calling on a shared CI host.
//!
//! The token is per user, not per server: every local-mode server a user starts (a restart,
//! a second replica, another port) accepts it, so runners keep working across restarts.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::perms;

/// Overrides the directory that holds `local.token` (default `$XDG_CONFIG_HOME/rustci`,
/// else `$HOME/.config/rustci`).
pub const CONFIG_DIR_ENV: &str = "RUSTCI_CONFIG_DIR";
/// The token file's name in the config directory.
pub const FILE_NAME: &str = "local.token";
/// Random bytes in a token (written as hex).
const TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LocalTokenError {
    #[error("no place for the local-mode token: set {CONFIG_DIR_ENV} or HOME")]
    NoConfigDir,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The file is readable by others, owned by someone else, or not a token.
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
}

/// This user's token: who may call a local-mode server.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalToken(String);

impl std::fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalToken(<redacted>)")
    }
}

impl LocalToken {
    /// The token as sent in `authorization: Bearer`.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on where they
    /// differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Where this user's token lives: `$RUSTCI_CONFIG_DIR/local.token`, else
/// `$XDG_CONFIG_HOME/rustci/local.token`, else `$HOME/.config/rustci/local.token`.
pub fn default_path() -> Result<PathBuf, LocalTokenError> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = from_env(CONFIG_DIR_ENV)
        .or_else(|| from_env("XDG_CONFIG_HOME").map(|d| d.join("rustci")))
        .or_else(|| from_env("HOME").map(|d| d.join(".config").join("rustci")))
        .ok_or(LocalTokenError::NoConfigDir)?;
    Ok(dir.join(FILE_NAME))
}

/// The server's side: the token in `path`, created (random, 0600, its directory 0700) when
/// there is none. Servers starting at once agree on one token: a new one is written to a
/// file of its own and linked into place, so the first link wins and the others read it.
pub fn load_or_create(path: &Path) -> Result<LocalToken, LocalTokenError> {
    let io_err = |p: &Path| {
        let path = p.display().to_string();
        move |source| LocalTokenError::Io { path, source }
    };
    if let Some(token) = read(path)? {
        return Ok(token);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    perms::private_dir(dir).map_err(io_err(dir))?;
    let token = LocalToken(random_hex().map_err(io_err(Path::new("/dev/urandom")))?);
    // Unique per attempt (servers in one process start at once too); never the secret.
    let nonce = random_hex().map_err(io_err(Path::new("/dev/urandom")))?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", &nonce[..16]));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(perms::PRIVATE_FILE)
            .open(&tmp)?;
        f.write_all(token.0.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read(path)?.ok_or_else(|| LocalTokenError::Refused {
                path: path.display().to_string(),
                reason: "vanished while it was being created".into(),
            })
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The token in `path`; `None` when there is no such file. Refused when group or others
/// may read or change it (the token may already be known), when another user owns it, or
/// when it does not hold a token.
pub fn read(path: &Path) -> Result<Option<LocalToken>, LocalTokenError> {
    let shown = path.display().to_string();
    let refused = |reason: String| LocalTokenError::Refused {
        path: shown.clone(),
        reason,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LocalTokenError::Io {
                path: shown.clone(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| LocalTokenError::Io {
        path: shown.clone(),
        source,
    })?;
    perms::check_secret_file(path, &meta, "the local-mode token").map_err(&refused)?;
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me {
        return Err(refused(format!(
            "owned by uid {}, not by this user (uid {me}); remove it or set {CONFIG_DIR_ENV}",
            meta.uid()
        )));
    }
    let mut text = String::new();
    file.take(1024)
        .read_to_string(&mut text)
        .map_err(|source| LocalTokenError::Io {
            path: shown.clone(),
            source,
        })?;
    let token = text.trim();
    if token.len() != 2 * TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused(format!(
            "does not hold a local-mode token ({} hex digits); remove it and restart the server",
            2 * TOKEN_BYTES
        )));
    }
    Ok(Some(LocalToken(token.to_string())))
}

fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_is_created_private_once_and_read_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("cfg/local.token");
        let a = load_or_create(&path).expect("create");
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(perms::mode_bits(&meta), 0o600);
        let dir = fs::metadata(path.parent().expect("dir")).expect("stat");
        assert_eq!(perms::mode_bits(&dir), 0o700);
        assert_eq!(
            load_or_create(&path).expect("again"),
            a,
            "one token per user"
        );
        assert_eq!(read(&path).expect("read"), Some(a.clone()));
        assert!(a.matches(a.secret()));
        assert!(!a.matches(&a.secret()[1..]));
        assert!(!a.matches(&"0".repeat(64)));
        assert_eq!(read(&tmp.path().join("none")).expect("missing"), None);
    }

    #[test]
    fn a_token_others_may_read_or_that_is_not_one_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("local.token");
        load_or_create(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load_or_create(&path).expect_err("0644 refused").to_string();
        assert!(
            err.contains("local.token") && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, "short\n").expect("write");
        let err = read(&path).expect_err("not a token").to_string();
        assert!(err.contains("does not hold"), "{err}");
    }

    #[test]
    fn servers_starting_at_once_agree_on_one_token() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("local.token");
        let tokens: Vec<LocalToken> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path).expect("token")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(tokens.iter().all(|t| *t == tokens[0]));
    }
}
