//! Finding the shared (read-only, never copied into the repository) datasets from tests.
//!
//! The directory is `$RUSTCI_DATASETS` if set, else `<workspace root>/../shared/datasets`.
//! Tests that need a file call [`dataset`] and return early when it gives `None`; it prints
//! a visible `SKIPPED:` line (straight to stderr, so libtest's capture does not hide it).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming the datasets directory.
pub const ENV_VAR: &str = "RUSTCI_DATASETS";

/// The directory where the datasets are looked for (whether or not it exists).
pub fn candidate_dir() -> PathBuf {
    match std::env::var_os(ENV_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("../shared/datasets"),
    }
}

/// The datasets directory, if it exists.
pub fn datasets_dir() -> Option<PathBuf> {
    let dir = candidate_dir();
    dir.is_dir().then_some(dir)
}

/// The path of `rel` (a file or directory) under the datasets directory if it exists;
/// otherwise prints `SKIPPED: <rel> not found under <dir> (set RUSTCI_DATASETS)` to
/// stderr and returns `None`.
pub fn dataset(rel: &str) -> Option<PathBuf> {
    let dir = candidate_dir();
    let path = dir.join(rel);
    if path.exists() {
        Some(path)
    } else {
        // Not `eprintln!`: libtest captures that; a skip must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {rel} not found under {} (set {ENV_VAR})",
            dir.display()
        );
        None
    }
}
