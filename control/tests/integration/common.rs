//! Running the `rustci` binary of this package from a test.

use std::process::Command;

/// Runs the `rustci` binary with `args` and waits for it.
pub fn rustci<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_rustci"))
        .args(args)
        .output()
        .expect("run rustci")
}
