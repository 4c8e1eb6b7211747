//! Helpers shared by the tests that run the `rustci-sim` binary.

use std::path::Path;
use std::process::{Command, Output};

pub fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustci-sim"))
        .args(args)
        .output()
        .expect("run rustci-sim")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}
