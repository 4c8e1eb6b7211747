//! What the client subcommands print: a table for people or JSON for scripts
//! (`--format`), and the job table's columns.

use std::borrow::Cow;

use anyhow::Result;
use clap::ValueEnum;
use rustci_control::clients::client::{self, job_json, state_name};
use rustci_control::pb;

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

pub fn print_json(v: &serde_json::Value) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Untrusted text (a job's command, names, labels) as a terminal may show it: control
/// characters escaped (`\n`, `\u{1b}`), so a job cannot retitle or recolour the
/// terminal of whoever lists it, nor break the table's rows. JSON output needs none of
/// this: serde escapes them.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` made [`printable`] and cut to `w` characters (`~` marks a cut).
pub fn cell(s: &str, w: usize) -> String {
    let s = printable(s);
    if s.chars().count() > w {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    } else {
        s.to_string()
    }
}

pub const JOB_HEADER: &str = "NAME          TENANT        STATE      LABELS            RUNNER            WAIT_MS  ATTEMPTS  EXIT  EST                START                 COMMAND";

pub fn job_row(j: &pb::Job) -> String {
    let wait = if j.start_ms > 0 {
        (j.start_ms - j.submit_ms).to_string()
    } else {
        "-".into()
    };
    let exit = if j.end_ms > 0 && state_name(j.state) != "cancelled" {
        j.exit_code.to_string()
    } else {
        "-".into()
    };
    format!(
        "{:<13} {:<13} {:<10} {:<17} {:<17} {:>7}  {:>8}  {:>4}  {:<18} {:<21} {}",
        cell(&j.name, 13),
        cell(&j.tenant, 13),
        state_name(j.state),
        cell(&j.labels.join(","), 17),
        cell(j.runner.strip_prefix("runners/").unwrap_or(&j.runner), 17),
        wait,
        j.attempts,
        exit,
        cell(&client::estimate_text(j), 18),
        cell(&client::start_text(j, client::now_unix_ms()), 21),
        cell(&j.command, 60)
    )
}

pub fn print_job(j: &pb::Job, format: Format) -> Result<()> {
    match format {
        Format::Json => print_json(&job_json(j)),
        Format::Table => {
            outln!("{JOB_HEADER}");
            outln!("{}", job_row(j));
            Ok(())
        }
    }
}
