//! Standard output that survives a reader who closed the pipe (`rustci-sim run --format json | head`).
//!
//! `println!` panics when stdout is a closed pipe, and the workspace forbids the `unsafe`
//! that would restore SIGPIPE's default. So every command prints through [`outln!`] and
//! [`out!`], which turn a broken pipe into [`Closed`]; `main` ends quietly on it.
//! Other write errors stay errors.

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

/// `println!` that returns [`Closed`] (with `?`) instead of panicking on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::stdout::check(writeln!(std::io::stdout().lock(), $($arg)*))?
    }};
}

/// `print!` that returns [`Closed`] (with `?`) instead of panicking on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::stdout::check(write!(std::io::stdout().lock(), $($arg)*))?
    }};
}
