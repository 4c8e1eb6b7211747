//! A job's scripts as one `sh -c` command, and its variables as `export` lines.
//!
//! GitLab's runner runs `before_script` and `script` in one shell that stops at the
//! first failing command (the job fails with its exit code), then `after_script` in a
//! new shell, whether `script` failed or not; `after_script` sees the job's variables but
//! not what `script` set or where it `cd`'d, and its own failure does not fail the job.
//! The composition below does the same in POSIX `sh`:
//!
//! ```text
//! ( set -e
//!   <before_script lines>
//!   <script lines>
//! )
//! rustci_status=$?
//! ( <after_script lines> ) || true
//! exit "$rustci_status"
//! ```
//!
//! Without `after_script` it is `set -e` and the lines. What differs from GitLab:
//! `pipefail` is not set (POSIX `sh` does not have it everywhere), commands are not
//! echoed into the log, and a job that is cancelled or outlives its timeout is killed
//! with its process group, so its `after_script` does not run (GitLab runs it on
//! cancellation).

use std::fmt::Write as _;

use super::Variable;

/// The command for `sh -c`.
pub(super) fn compose(before: &[String], script: &[String], after: &[String]) -> String {
    let mut out = String::new();
    if after.is_empty() {
        out.push_str("set -e\n");
        for line in before.iter().chain(script) {
            out.push_str(line);
            out.push('\n');
        }
        return out;
    }
    out.push_str("( set -e\n");
    for line in before.iter().chain(script) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(")\nrustci_status=$?\n(\n");
    for line in after {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(") || true\nexit \"$rustci_status\"\n");
    out
}

/// `export NAME=value` lines for the variables, in order (a later one may use an earlier
/// one). A value with `expand` keeps GitLab's references to other variables (`$NAME`,
/// `${NAME}`) and `$$` for a literal `$`; everything else in it is literal, command
/// substitution included. Without `expand` the whole value is literal.
pub(super) fn exports(variables: &[Variable]) -> String {
    let mut out = String::new();
    for v in variables {
        let value = if v.expand {
            expanding(&v.value)
        } else {
            literal(&v.value)
        };
        // Names were checked to be shell identifiers.
        let _ = writeln!(out, "export {}={value}", v.name);
    }
    out
}

/// Single quotes: nothing inside is special.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Double quotes with only variable references left active.
fn expanding(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '"' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '$' => match chars.peek() {
                Some('$') => {
                    chars.next();
                    out.push_str("\\$");
                }
                Some(&n) if n == '{' || n == '_' || n.is_ascii_alphabetic() => out.push('$'),
                _ => out.push_str("\\$"),
            },
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Runs `script` with `sh -c` and returns (exit code, stdout).
    fn run(script: &str) -> (i32, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn script_stops_at_the_first_failure_and_after_script_still_runs() {
        let cmd = compose(
            &lines(&["echo before", "cd /"]),
            &lines(&["echo one", "exit 3", "echo never"]),
            &lines(&["echo after in $(pwd) ${X:-unset}", "false"]),
        );
        let (code, out) = run(&format!("cd /tmp\n{cmd}"));
        assert_eq!(code, 3, "the job fails with the script's exit code");
        assert_eq!(out, "before\none\nafter in /tmp unset\n");
    }

    #[test]
    fn after_script_failure_does_not_fail_the_job() {
        let cmd = compose(&[], &lines(&["X=1", "echo ok"]), &lines(&["exit 7"]));
        assert_eq!(run(&cmd), (0, "ok\n".to_owned()));
    }

    #[test]
    fn without_after_script_a_failing_line_fails() {
        let cmd = compose(&lines(&["echo b"]), &lines(&["false", "echo never"]), &[]);
        assert_eq!(run(&cmd), (1, "b\n".to_owned()));
        let multi = compose(&[], &lines(&["echo a\nfalse\necho never"]), &[]);
        assert_eq!(run(&multi), (1, "a\n".to_owned()));
    }

    #[test]
    fn exports_quote_values() {
        let vars = [
            Variable::new("A", "x y", true),
            Variable::new(
                "B",
                "$A/z ${A}! $$HOME $(echo no) `echo no` \"q\" \\ $1",
                true,
            ),
            Variable::new("C", "$A 'it''s'", false),
        ];
        let script = format!("{}printf '%s|%s|%s' \"$A\" \"$B\" \"$C\"", exports(&vars));
        let (code, out) = run(&script);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "x y|x y/z x y! $HOME $(echo no) `echo no` \"q\" \\ $1|$A 'it''s'"
        );
    }
}
