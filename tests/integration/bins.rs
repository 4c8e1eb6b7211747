//! The `rustci` and `rustci-sim` binaries the tests run as processes.
//!
//! Cargo gives `CARGO_BIN_EXE_<name>` only to the tests of the package that owns the
//! binary, so they are found where cargo puts every binary it builds: `target/<profile>/`,
//! the parent of this test executable's `deps/`. `cargo test --workspace` builds them
//! (their packages keep integration tests, and cargo builds a package's binaries for
//! those); `cargo test -p rustci-tests` alone does not, and cannot build them itself (the
//! running `cargo test` holds the build directory's lock). So a missing binary, or one
//! older than a file it was built from, fails the test with the command to run instead
//! of testing an old build. "Built from" is cargo's own list, the dep-info file
//! (`rustci.d`) it writes next to the binary.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// A binary of the workspace, usable wherever a program's path is (`Command::new(BIN)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    Rustci,
    RustciSim,
}

impl Bin {
    fn name(self) -> &'static str {
        match self {
            Bin::Rustci => "rustci",
            Bin::RustciSim => "rustci-sim",
        }
    }

    /// The binary's path, checked once per test run.
    pub fn path(self) -> &'static Path {
        static RUSTCI: OnceLock<PathBuf> = OnceLock::new();
        static RUSTCI_SIM: OnceLock<PathBuf> = OnceLock::new();
        let cell = match self {
            Bin::Rustci => &RUSTCI,
            Bin::RustciSim => &RUSTCI_SIM,
        };
        cell.get_or_init(|| current_binary(self.name()))
    }
}

impl AsRef<OsStr> for Bin {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl AsRef<Path> for Bin {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

fn current_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let flag = if release { " --release" } else { "" };
    let fix = format!(
        "build it with `cargo build{flag} --bin {name}`, or run `cargo test --workspace{flag}`"
    );
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; {fix}", bin.display()));
    let dep_info = profile_dir.join(format!("{name}.d"));
    let sources = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|e| panic!("{}: {e}; {fix}", dep_info.display()));
    if let Some((file, _)) = dep_info_files(&sources)
        .filter_map(|file| Some((file.clone(), modified(&file)?)))
        .find(|(_, changed)| *changed > built)
    {
        panic!(
            "{} is older than {}, which it is built from: {fix}",
            bin.display(),
            file.display()
        );
    }
    bin
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The prerequisites of a Makefile-style dep-info file (`target: a.rs b\ c.rs ...`), whose
/// spaces inside paths are escaped with a backslash.
fn dep_info_files(text: &str) -> impl Iterator<Item = PathBuf> + '_ {
    text.lines()
        .filter_map(|line| line.split_once(": ").map(|(_, deps)| deps))
        .flat_map(|deps| {
            let mut files = Vec::new();
            let mut current = String::new();
            let mut chars = deps.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => current.extend(chars.next()),
                    ' ' => files.extend((!current.is_empty()).then(|| std::mem::take(&mut current))),
                    _ => current.push(c),
                }
            }
            files.extend((!current.is_empty()).then_some(current));
            files.into_iter().map(PathBuf::from)
        })
}
