//! What the binaries write to the terminal: standard output that survives a reader who
//! closed the pipe (`rustci-sim run --format json | head`, `rustci jobs list | head`),
//! and errors without repeats.
//!
//! `println!` panics when stdout is a closed pipe, and the workspace forbids the `unsafe`
//! that would restore SIGPIPE's default. So every command prints through [`outln!`] and
//! [`out!`], which turn a broken pipe into [`Closed`]; `main` ends quietly on it.
//! Other write errors stay errors. The two binaries share no crate that could hold a
//! module for terminals, so `rustci` (`control/src/bin/rustci/main.rs`) compiles this
//! same file with `#[path]`: one copy of the rule.

use std::fmt;
use std::io;

/// The reader of standard output went away: nothing more to print, nothing wrong.
#[derive(Debug)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for Closed {}

/// A write to stdout as the commands' error: `Closed` for a broken pipe.
pub fn check(r: io::Result<()>) -> anyhow::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Whether `e` is (or wraps) a closed standard output.
pub fn closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Closed>())
}

/// The error and its causes joined by `: `, leaving out a cause whose text is already
/// shown: many errors (thiserror's with `{source}` in their message, TOML's) print
/// their cause themselves, and `{:#}` would then read `X: X`. A cause that starts with
/// the path its context ends with (`--from a.csv` then `a.csv: cannot open`) loses
/// that path.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(text.trim()) {
            continue;
        }
        let last = out.rsplit(' ').next().unwrap_or_default();
        let text = match text.strip_prefix(last) {
            Some(rest) if last.len() >= 3 && rest.starts_with(": ") => rest[2..].to_string(),
            _ => text,
        };
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `println!` that returns [`Closed`] (with `?`) instead of panicking on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::console::check(writeln!(std::io::stdout().lock(), $($arg)*))?
    }};
}

/// `print!` that returns [`Closed`] (with `?`) instead of panicking on a closed pipe.
#[allow(unused_macros)] // `rustci` ends every line it prints
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::console::check(write!(std::io::stdout().lock(), $($arg)*))?
    }};
}
