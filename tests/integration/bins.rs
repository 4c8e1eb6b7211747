//! The `rustci` and `rustci-sim` binaries the tests run as processes.
//!
//! Cargo gives `CARGO_BIN_EXE_<name>` only to the tests of the package that owns the
//! binary, so they are found where cargo puts every binary it builds: `target/<profile>/`,
//! the parent of this test executable's `deps/`. `cargo test --workspace` builds them
//! (their packages keep integration tests, and cargo builds a package's binaries for
//! those); `cargo test -p rustci-tests` alone does not, and cannot build them itself (the
//! running `cargo test` holds the build directory's lock). So a missing binary, or one
//! older than a source file it is built from, fails the test with the command to run
//! instead of testing an old build. "Built from" is what the compiler read: the dep-info
//! files (`deps/<crate>-<hash>.d`) of the binary and of the workspace libraries it links
//! (their latest `.rlib`, so a library's `#[cfg(test)]` files, which the binary does not
//! depend on, do not count).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// A binary of the workspace, usable wherever a program's path is (`Command::new(BIN)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `rustci`, linking the control, models, datasets and scheduler libraries.
    Rustci,
    /// `rustci-sim`, linking the simulator, models, datasets and scheduler libraries.
    RustciSim,
}

impl Bin {
    fn name(self) -> &'static str {
        match self {
            Bin::Rustci => "rustci",
            Bin::RustciSim => "rustci-sim",
        }
    }

    /// The workspace libraries the binary links, as crate names.
    fn libraries(self) -> &'static [&'static str] {
        match self {
            Bin::Rustci => &[
                "rustci_control",
                "rustci_models",
                "rustci_datasets",
                "rustci_scheduler",
            ],
            Bin::RustciSim => &[
                "rustci_sim",
                "rustci_models",
                "rustci_datasets",
                "rustci_scheduler",
            ],
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
        cell.get_or_init(|| current_binary(self.name(), self.libraries()))
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

fn current_binary(name: &str, libraries: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe
        .parent()
        .expect("the test executable is in target/<profile>/deps");
    let profile_dir = deps.parent().expect("target/<profile>/deps has a parent");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let flag = if release { " --release" } else { "" };
    let fix = format!(
        "build it with `cargo build{flag} --bin {name}`, or run `cargo test --workspace{flag}`"
    );
    let built = modified(&bin).unwrap_or_else(|| panic!("{} is missing; {fix}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root above tests/");
    let dep_infos = binary_dep_info(&bin, deps).into_iter().chain(
        libraries
            .iter()
            .filter_map(|lib| library_dep_info(lib, deps)),
    );
    for dep_info in dep_infos {
        let text = std::fs::read_to_string(&dep_info).unwrap_or_default();
        let newer = dep_info_files(&text)
            .map(|file| root.join(file))
            .find(|file| modified(file).is_some_and(|changed| changed > built));
        if let Some(file) = newer {
            panic!(
                "{} is older than {}, which it is built from; {fix}",
                bin.display(),
                file.display()
            );
        }
    }
    bin
}

/// The dep-info of the binary: `target/<profile>/<name>` is a hard link to
/// `deps/<crate>-<hash>`, whose dep-info is `deps/<crate>-<hash>.d`.
#[cfg(unix)]
fn binary_dep_info(bin: &Path, deps: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(bin).ok()?.ino();
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(|entry| entry.ok())
        .find(|entry| entry.metadata().is_ok_and(|m| m.ino() == inode))
        .map(|entry| entry.path().with_extension("d"))
}

#[cfg(not(unix))]
fn binary_dep_info(_bin: &Path, _deps: &Path) -> Option<PathBuf> {
    None
}

/// The dep-info of the library `crate_name`'s latest build (`lib<crate>-<hash>.rlib`).
fn library_dep_info(crate_name: &str, deps: &Path) -> Option<PathBuf> {
    let prefix = format!("lib{crate_name}-");
    let rlib = std::fs::read_dir(deps)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(".rlib")
        })
        .filter_map(|entry| Some((modified(&entry.path())?, entry.path())))
        .max()?
        .1;
    let stem = rlib.file_stem()?.to_string_lossy();
    Some(deps.join(format!("{}.d", stem.strip_prefix("lib")?)))
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
                    ' ' => {
                        files.extend((!current.is_empty()).then(|| std::mem::take(&mut current)))
                    }
                    _ => current.push(c),
                }
            }
            files.extend((!current.is_empty()).then_some(current));
            files.into_iter().map(PathBuf::from)
        })
}
